"""numpy dtypes of the ring rows, built from the C structs in _rows.pxd."""
import numpy as np

FP_SCALE = 10 ** FP_DECIMALS
FP_NONE_VALUE = FP_NONE


cdef TradeRow _t
cdef DepthRow _d
cdef TickerRow _k
cdef PartialRow _p


def struct_dtype(fields, Py_ssize_t itemsize):
    """The numpy dtype of a C row struct: ``fields`` are ``(name, format, offset)`` with the
    offsets from ``field_offset`` (_rows.pxd), ``itemsize`` its sizeof, padding included."""
    names, formats, offsets = zip(*fields)
    return np.dtype({"names": list(names), "formats": list(formats),
                     "offsets": list(offsets), "itemsize": itemsize})


TRADE_DTYPE = struct_dtype([
    ("recv_ns", "<i8", field_offset(&_t.recv_ns, &_t)),
    ("event_time", "<i8", field_offset(&_t.event_time, &_t)),
    ("trade_time", "<i8", field_offset(&_t.trade_time, &_t)),
    ("trade_id", "<i8", field_offset(&_t.trade_id, &_t)),
    ("first_id", "<i8", field_offset(&_t.first_id, &_t)),
    ("last_id", "<i8", field_offset(&_t.last_id, &_t)),
    ("price", "<f8", field_offset(&_t.price, &_t)),
    ("qty", "<f8", field_offset(&_t.qty, &_t)),
    ("normal_qty", "<f8", field_offset(&_t.normal_qty, &_t)),
    ("price_fp", "<i8", field_offset(&_t.price_fp, &_t)),
    ("qty_fp", "<i8", field_offset(&_t.qty_fp, &_t)),
    ("symbol", "<u4", field_offset(&_t.symbol, &_t)),
    ("buyer_maker", "?", field_offset(&_t.buyer_maker, &_t)),
    ("is_agg", "?", field_offset(&_t.is_agg, &_t)),
], sizeof(TradeRow))

DEPTH_DTYPE = struct_dtype([
    ("recv_ns", "<i8", field_offset(&_d.recv_ns, &_d)),
    ("event_time", "<i8", field_offset(&_d.event_time, &_d)),
    ("transact_time", "<i8", field_offset(&_d.transact_time, &_d)),
    ("first_id", "<i8", field_offset(&_d.first_id, &_d)),
    ("last_id", "<i8", field_offset(&_d.last_id, &_d)),
    ("prev_last_id", "<i8", field_offset(&_d.prev_last_id, &_d)),
    ("price", "<f8", field_offset(&_d.price, &_d)),
    ("qty", "<f8", field_offset(&_d.qty, &_d)),
    ("price_fp", "<i8", field_offset(&_d.price_fp, &_d)),
    ("qty_fp", "<i8", field_offset(&_d.qty_fp, &_d)),
    ("symbol", "<u4", field_offset(&_d.symbol, &_d)),
    ("side", "i1", field_offset(&_d.side, &_d)),
    ("flags", "u1", field_offset(&_d.flags, &_d)),
], sizeof(DepthRow))

TICKER_DTYPE = struct_dtype([
    ("recv_ns", "<i8", field_offset(&_k.recv_ns, &_k)),
    ("event_time", "<i8", field_offset(&_k.event_time, &_k)),
    ("transact_time", "<i8", field_offset(&_k.transact_time, &_k)),
    ("update_id", "<i8", field_offset(&_k.update_id, &_k)),
    ("bid_price", "<f8", field_offset(&_k.bid_price, &_k)),
    ("bid_qty", "<f8", field_offset(&_k.bid_qty, &_k)),
    ("ask_price", "<f8", field_offset(&_k.ask_price, &_k)),
    ("ask_qty", "<f8", field_offset(&_k.ask_qty, &_k)),
    ("bid_price_fp", "<i8", field_offset(&_k.bid_price_fp, &_k)),
    ("bid_qty_fp", "<i8", field_offset(&_k.bid_qty_fp, &_k)),
    ("ask_price_fp", "<i8", field_offset(&_k.ask_price_fp, &_k)),
    ("ask_qty_fp", "<i8", field_offset(&_k.ask_qty_fp, &_k)),
    ("symbol", "<u4", field_offset(&_k.symbol, &_k)),
], sizeof(TickerRow))

PARTIAL_DTYPE = struct_dtype([
    ("recv_ns", "<i8", field_offset(&_p.recv_ns, &_p)),
    ("event_time", "<i8", field_offset(&_p.event_time, &_p)),
    ("last_id", "<i8", field_offset(&_p.last_id, &_p)),
    ("price", "<f8", field_offset(&_p.price, &_p)),
    ("qty", "<f8", field_offset(&_p.qty, &_p)),
    ("price_fp", "<i8", field_offset(&_p.price_fp, &_p)),
    ("qty_fp", "<i8", field_offset(&_p.qty_fp, &_p)),
    ("symbol", "<u4", field_offset(&_p.symbol, &_p)),
    ("level", "<u2", field_offset(&_p.level, &_p)),
    ("side", "i1", field_offset(&_p.side, &_p)),
    ("flags", "u1", field_offset(&_p.flags, &_p)),
], sizeof(PartialRow))
