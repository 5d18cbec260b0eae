# C layout of the ring rows.  Each struct is mirrored by a numpy dtype built from the
# struct's own offsets in _rows.pyx, so the two cannot drift apart.
from libc.stdint cimport int8_t, int64_t, uint8_t, uint16_t, uint32_t


# Where a field sits in its struct: struct_dtype(((name, format, field_offset(&x.f, &x)),
# ...), sizeof(x)) in _rows.pyx builds the numpy dtype of any row struct (the feed's event
# rows and the book's rows use it too).
cdef inline Py_ssize_t field_offset(const void* field, const void* row) noexcept:
    return <const char*>field - <const char*>row

# Fixed-point scale of the *_fp fields: value = fp / 10**8.  Binance's own engine uses
# 8 decimal places, so every price and quantity it sends fits exactly.
cdef enum:
    FP_DECIMALS = 8
# Marks an *_fp field whose decimal has no exact int64 value at that scale: INT64_MIN, a
# compile-time constant in every module that cimports it.
cdef extern from "<stdint.h>":
    const int64_t FP_NONE "INT64_MIN"

cdef enum:
    ROW_LAST_OF_EVENT = 1   # flags bit: last row written for this message

# ``_pad`` makes a struct's tail padding a field the decoder writes as zero: rows are then
# byte-stable (tobytes, checksums, shared memory, the bus).  Left implicit, the compiler may
# merge the last small stores into one wider store that fills padding with whatever a
# register held (seen in the -O2 wheel build, not the -O3 in-place one).  The dtypes
# (_rows.pyx) name only the real fields; itemsize is unchanged.

ctypedef struct TradeRow:
    int64_t recv_ns
    int64_t event_time
    int64_t trade_time
    int64_t trade_id
    int64_t first_id
    int64_t last_id
    double price
    double qty
    double normal_qty       # futures "nq"; NaN where absent
    int64_t price_fp
    int64_t qty_fp
    uint32_t symbol
    uint8_t buyer_maker
    uint8_t is_agg          # 1 aggTrade, 0 trade
    uint8_t _pad[2]

ctypedef struct DepthRow:
    int64_t recv_ns
    int64_t event_time
    int64_t transact_time   # futures "T"; -1 where absent
    int64_t first_id        # U
    int64_t last_id         # u
    int64_t prev_last_id    # pu; -1 where absent
    double price
    double qty
    int64_t price_fp
    int64_t qty_fp
    uint32_t symbol
    int8_t side             # 0 bid, 1 ask, -1 event with no level (keeps the id chain visible)
    uint8_t flags
    uint8_t _pad[2]

ctypedef struct TickerRow:
    int64_t recv_ns
    int64_t event_time      # -1 where absent (spot)
    int64_t transact_time   # -1 where absent (spot)
    int64_t update_id
    double bid_price
    double bid_qty
    double ask_price
    double ask_qty
    int64_t bid_price_fp
    int64_t bid_qty_fp
    int64_t ask_price_fp
    int64_t ask_qty_fp
    uint32_t symbol
    uint32_t _pad

ctypedef struct PartialRow:
    int64_t recv_ns
    int64_t event_time      # -1 where absent (spot partial depth)
    int64_t last_id         # lastUpdateId, or u for futures partial depth
    double price
    double qty
    int64_t price_fp
    int64_t qty_fp
    uint32_t symbol
    uint16_t level          # 0 = best
    int8_t side
    uint8_t flags
