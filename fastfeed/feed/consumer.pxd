# The C-level consumer API: a Cython strategy receives each socket read's new rows with no
# Python call at all.
#
#     from fastfeed.feed._filter cimport FeedSink
#     from fastfeed.feed.consumer cimport ff_read, ff_trade, FF_TRADES
#
#     cdef void on_read(void* ctx, const ff_read* rd) noexcept:
#         cdef uint64_t seq
#         for seq in range(rd.rings[FF_TRADES].start, rd.rings[FF_TRADES].end):
#             row = ff_trade(rd, seq)          # const TradeRow* (fastfeed.core._rows)
#             ...
#
#     (<FeedSink>feed.sink).add_consumer(on_read, <void*>self, self)   # at most FF_MAX_CONSUMERS
#     (<FeedSink>feed.sink).remove_consumer(on_read, <void*>self)      # or remove_consumers(self)
#
# When it runs: once per socket read that committed rows or marker rows, on the event loop
# thread with the GIL held, right after the read's last message was committed to the rings,
# before the Python hooks (feed.add_hook) and before any `async for` / feed.wait() waiter
# wakes.  A replay calls it once per played batch.
#
# What it gets: ``ff_read``: the read's receive time and, for every ring (FF_TRADES, FF_DEPTH,
# FF_TICKERS, FF_PARTIAL, FF_EVENTS), the sequence range [start, end) of the rows committed
# since the consumers last ran.  Rows are the C structs of fastfeed.core._rows (TradeRow,
# DepthRow, TickerRow, PartialRow) and fastfeed.feed._filter (EventRow), in the rings' own
# memory: read them during the call, copy what you keep (the writer reuses the slots once the
# ring wraps).  ``lost`` counts new rows the ring overwrote within that one read (more rows
# than its capacity); they are not in [start, end).  A gap, reconnect or rotation is a row in
# FF_EVENTS, in order with the data rows (its *_pos fields say where the data rings stood).
#
# Rules: the function is ``noexcept`` (an exception cannot leave it: the read path has nowhere
# to send it); it must not block; it may call Python (it holds the GIL), but the point of this
# path is that it needs not.  It must not add or remove consumers of the sink it runs in;
# ``owner`` (any Python object, typically the strategy holding ``ctx``) is kept alive while
# the consumer is registered, so ``ctx`` may point into it.  docs/decisions/0213-consumer-paths.md
from libc.stdint cimport int64_t, uint64_t
from fastfeed.core._rows cimport TradeRow, DepthRow, TickerRow, PartialRow

cdef enum:
    FF_MAX_CONSUMERS = 8
    # ff_read.rings indices; the data rings' indices equal fastfeed.Kind (TRADE .. PARTIAL)
    FF_TRADES = 0
    FF_DEPTH = 1
    FF_TICKERS = 2
    FF_PARTIAL = 3
    FF_EVENTS = 4
    FF_N_RINGS = 5

ctypedef struct ff_span:
    const char* base        # the ring's row 0
    uint64_t mask           # capacity - 1: row ``seq`` is at base + (seq & mask) * itemsize
    Py_ssize_t itemsize
    uint64_t start          # first new row's sequence number
    uint64_t end            # one past the last new row (the ring's ``written``)
    uint64_t lost           # new rows overwritten within this read (not in start..end)

ctypedef struct ff_read:
    int64_t recv_ns         # receive time of the read (the rows' recv_ns); a marker's time
    ff_span rings[FF_N_RINGS]

ctypedef void (*ff_consumer_fn)(void* ctx, const ff_read* rd) noexcept


cdef inline const char* ff_row(const ff_span* s, uint64_t seq) noexcept:
    return s.base + <Py_ssize_t>(seq & s.mask) * s.itemsize

cdef inline const TradeRow* ff_trade(const ff_read* rd, uint64_t seq) noexcept:
    return <const TradeRow*>ff_row(&rd.rings[FF_TRADES], seq)

cdef inline const DepthRow* ff_depth(const ff_read* rd, uint64_t seq) noexcept:
    return <const DepthRow*>ff_row(&rd.rings[FF_DEPTH], seq)

cdef inline const TickerRow* ff_ticker(const ff_read* rd, uint64_t seq) noexcept:
    return <const TickerRow*>ff_row(&rd.rings[FF_TICKERS], seq)

cdef inline const PartialRow* ff_partial(const ff_read* rd, uint64_t seq) noexcept:
    return <const PartialRow*>ff_row(&rd.rings[FF_PARTIAL], seq)
