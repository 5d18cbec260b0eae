"""numpy dtypes of the ring rows, built from the C structs in _rows.pxd."""
import numpy as np

from libc.stdint cimport INT64_MIN

cdef int64_t FP_NONE = INT64_MIN

FP_SCALE = 10 ** FP_DECIMALS
FP_NONE_VALUE = INT64_MIN


cdef inline Py_ssize_t _off(void* field, void* row) noexcept:
    return <char*>field - <char*>row


cdef TradeRow _t
cdef DepthRow _d
cdef TickerRow _k
cdef PartialRow _p


def _dtype(fields, Py_ssize_t itemsize):
    names, formats, offsets = zip(*fields)
    return np.dtype({"names": list(names), "formats": list(formats),
                     "offsets": list(offsets), "itemsize": itemsize})


TRADE_DTYPE = _dtype([
    ("recv_ns", "<i8", _off(&_t.recv_ns, &_t)),
    ("event_time", "<i8", _off(&_t.event_time, &_t)),
    ("trade_time", "<i8", _off(&_t.trade_time, &_t)),
    ("trade_id", "<i8", _off(&_t.trade_id, &_t)),
    ("first_id", "<i8", _off(&_t.first_id, &_t)),
    ("last_id", "<i8", _off(&_t.last_id, &_t)),
    ("price", "<f8", _off(&_t.price, &_t)),
    ("qty", "<f8", _off(&_t.qty, &_t)),
    ("normal_qty", "<f8", _off(&_t.normal_qty, &_t)),
    ("price_fp", "<i8", _off(&_t.price_fp, &_t)),
    ("qty_fp", "<i8", _off(&_t.qty_fp, &_t)),
    ("symbol", "<u4", _off(&_t.symbol, &_t)),
    ("buyer_maker", "?", _off(&_t.buyer_maker, &_t)),
    ("is_agg", "?", _off(&_t.is_agg, &_t)),
], sizeof(TradeRow))

DEPTH_DTYPE = _dtype([
    ("recv_ns", "<i8", _off(&_d.recv_ns, &_d)),
    ("event_time", "<i8", _off(&_d.event_time, &_d)),
    ("transact_time", "<i8", _off(&_d.transact_time, &_d)),
    ("first_id", "<i8", _off(&_d.first_id, &_d)),
    ("last_id", "<i8", _off(&_d.last_id, &_d)),
    ("prev_last_id", "<i8", _off(&_d.prev_last_id, &_d)),
    ("price", "<f8", _off(&_d.price, &_d)),
    ("qty", "<f8", _off(&_d.qty, &_d)),
    ("price_fp", "<i8", _off(&_d.price_fp, &_d)),
    ("qty_fp", "<i8", _off(&_d.qty_fp, &_d)),
    ("symbol", "<u4", _off(&_d.symbol, &_d)),
    ("side", "i1", _off(&_d.side, &_d)),
    ("flags", "u1", _off(&_d.flags, &_d)),
], sizeof(DepthRow))

TICKER_DTYPE = _dtype([
    ("recv_ns", "<i8", _off(&_k.recv_ns, &_k)),
    ("event_time", "<i8", _off(&_k.event_time, &_k)),
    ("transact_time", "<i8", _off(&_k.transact_time, &_k)),
    ("update_id", "<i8", _off(&_k.update_id, &_k)),
    ("bid_price", "<f8", _off(&_k.bid_price, &_k)),
    ("bid_qty", "<f8", _off(&_k.bid_qty, &_k)),
    ("ask_price", "<f8", _off(&_k.ask_price, &_k)),
    ("ask_qty", "<f8", _off(&_k.ask_qty, &_k)),
    ("bid_price_fp", "<i8", _off(&_k.bid_price_fp, &_k)),
    ("bid_qty_fp", "<i8", _off(&_k.bid_qty_fp, &_k)),
    ("ask_price_fp", "<i8", _off(&_k.ask_price_fp, &_k)),
    ("ask_qty_fp", "<i8", _off(&_k.ask_qty_fp, &_k)),
    ("symbol", "<u4", _off(&_k.symbol, &_k)),
], sizeof(TickerRow))

PARTIAL_DTYPE = _dtype([
    ("recv_ns", "<i8", _off(&_p.recv_ns, &_p)),
    ("event_time", "<i8", _off(&_p.event_time, &_p)),
    ("last_id", "<i8", _off(&_p.last_id, &_p)),
    ("price", "<f8", _off(&_p.price, &_p)),
    ("qty", "<f8", _off(&_p.qty, &_p)),
    ("price_fp", "<i8", _off(&_p.price_fp, &_p)),
    ("qty_fp", "<i8", _off(&_p.qty_fp, &_p)),
    ("symbol", "<u4", _off(&_p.symbol, &_p)),
    ("level", "<u2", _off(&_p.level, &_p)),
    ("side", "i1", _off(&_p.side, &_p)),
    ("flags", "u1", _off(&_p.flags, &_p)),
], sizeof(PartialRow))
