# cython: language_level=3
"""Benchmark-only C-level consumer (built on first use by ``consumer_clients.build``): the
latency of every trade and every depth message at the moment consumer code runs, with no
Python call per read (fastfeed/feed/consumer.pxd)."""
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, free

from fastfeed.core._clock cimport ff_now_ns
from fastfeed.core._rows cimport ROW_LAST_OF_EVENT, DepthRow, TradeRow
from fastfeed.feed._filter cimport FeedSink
from fastfeed.feed.consumer cimport FF_DEPTH, FF_TRADES, ff_depth, ff_read, ff_trade


cdef struct Lat:
    int64_t* ns         # now - event time, one per trade row / depth message
    uint64_t n, cap
    int64_t unit_ns     # event_time unit in ns (1000: time_unit="us")


cdef void on_read(void* ctx, const ff_read* rd) noexcept:
    cdef Lat* L = <Lat*>ctx
    cdef int64_t now = ff_now_ns()     # once per call: every row of the read arrives now
    cdef uint64_t seq
    cdef const TradeRow* t
    cdef const DepthRow* d
    for seq in range(rd.rings[FF_TRADES].start, rd.rings[FF_TRADES].end):
        t = ff_trade(rd, seq)
        if L.n < L.cap:
            L.ns[L.n] = now - t.event_time * L.unit_ns
            L.n += 1
    for seq in range(rd.rings[FF_DEPTH].start, rd.rings[FF_DEPTH].end):
        d = ff_depth(rd, seq)
        if d.flags & ROW_LAST_OF_EVENT and L.n < L.cap:    # one per depth message
            L.ns[L.n] = now - d.event_time * L.unit_ns
            L.n += 1


cdef class LatencyConsumer:
    """Registers ``on_read`` on ``feed.sink`` for up to ``n`` latencies."""
    cdef Lat L
    cdef FeedSink sink

    def __cinit__(self, feed, uint64_t n, int64_t unit_ns=1000):
        self.L.ns = <int64_t*>malloc((n if n else 1) * sizeof(int64_t))
        if not self.L.ns:
            raise MemoryError()
        self.L.n = 0
        self.L.cap = n
        self.L.unit_ns = unit_ns
        self.sink = feed.sink
        self.sink.add_consumer(on_read, &self.L, self)

    def __dealloc__(self):
        free(self.L.ns)

    @property
    def count(self):
        return self.L.n

    def close(self):
        if self.sink is not None:
            self.sink.remove_consumer(on_read, &self.L)
            self.sink = None

    def latencies_us(self):
        """The latencies taken so far, in microseconds (float64)."""
        import numpy as np
        return np.array([self.L.ns[i] for i in range(self.L.n)], dtype=np.int64) / 1e3
