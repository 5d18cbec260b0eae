# cython: language_level=3
"""Benchmark-only C-level consumer (built on first use by ``consumer_clients.build``): the
latency of every trade and every depth message at the moment consumer code runs, with no
Python call per read (fastfeed/feed/consumer.pxd)."""
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, free
from posix.time cimport CLOCK_PROCESS_CPUTIME_ID, clock_gettime, timespec

from fastfeed.core._clock cimport ff_now_ns
from fastfeed.core._rows cimport ROW_LAST_OF_EVENT, DepthRow, TradeRow
from fastfeed.feed._filter cimport FeedSink
from fastfeed.feed.consumer cimport FF_DEPTH, FF_TRADES, ff_depth, ff_read, ff_trade


cdef struct Lat:
    int64_t* ns         # now - event time, one per trade row / depth message
    uint64_t n, cap
    int64_t unit_ns     # event_time unit in ns (1000: time_unit="us")
    uint64_t warm       # the CPU window opens at this many latencies ...
    double cpu0, cpu1   # ... and closes at cap: process CPU seconds, read here (no Python)


cdef inline double process_cpu() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


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
    # steady-state CPU, as bench_e2e's mark() takes it for the Python clients
    if L.cpu0 < 0 and L.n >= L.warm:
        L.cpu0 = process_cpu()
    if L.cpu1 < 0 and L.n >= L.cap:
        L.cpu1 = process_cpu()


cdef class LatencyConsumer:
    """Registers ``on_read`` on ``feed.sink`` for up to ``n`` latencies."""
    cdef Lat L
    cdef FeedSink sink

    def __cinit__(self, feed, uint64_t n, int64_t unit_ns=1000, uint64_t warmup=0):
        self.L.ns = <int64_t*>malloc((n if n else 1) * sizeof(int64_t))
        if not self.L.ns:
            raise MemoryError()
        self.L.n = 0
        self.L.cap = n
        self.L.unit_ns = unit_ns
        self.L.warm = warmup
        self.L.cpu0 = self.L.cpu1 = -1
        self.sink = feed.sink
        self.sink.add_consumer(on_read, &self.L, self)

    def __dealloc__(self):
        free(self.L.ns)

    @property
    def count(self):
        return self.L.n

    def cpu_window(self):
        """(CPU seconds, latencies) between the warm-up and the last latency, or None."""
        if self.L.cpu0 < 0 or self.L.cpu1 < 0:
            return None
        return self.L.cpu1 - self.L.cpu0, self.L.cap - self.L.warm

    def close(self):
        if self.sink is not None:
            self.sink.remove_consumer(on_read, &self.L)
            self.sink = None

    def latencies_us(self):
        """The latencies taken so far, in microseconds (float64)."""
        import numpy as np
        return np.array([self.L.ns[i] for i in range(self.L.n)], dtype=np.int64) / 1e3
