# The feed's id filter and shared rings (see _filter.pyx).
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from fastfeed.core._decoder cimport BinanceDecoder, MsgHeader, K_PARTIAL
from fastfeed.core._ring cimport Ring

# Stream slots: one id sequence per (symbol, slot kind).
cdef enum:
    S_AGG = 0
    S_TRADE = 1
    S_DEPTH = 2
    S_TICKER = 3
    S_PARTIAL = 4
    N_SLOTS = 5

# Event (marker) reasons; fastfeed.feed.EventReason mirrors them.
cdef enum:
    EV_GAP = 1          # id sequence jumped (rows missing between two rows)
    EV_CONNECT = 2
    EV_DISCONNECT = 3
    EV_ROTATE = 4       # replacement connection took over
    EV_PROTOCOL = 5     # protocol error on a connection
    EV_SUBSCRIBE = 6
    EV_WATCHDOG = 7

# What FeedSink.take did with one payload.
cdef enum:
    T_NONE = 0          # no rows (control, unknown, rejected payload)
    T_ACCEPTED = 1      # rows committed
    T_DUPLICATE = 2     # not newer than the last id of its stream: dropped, counted
    T_UNROUTABLE = 3    # symbol id outside the filter's table: dropped, counted, logged

cdef enum:
    N_LAT_BUCKETS = 256

ctypedef struct EventRow:
    int64_t recv_ns
    int64_t trades_pos          # written positions of each data ring when the marker was written
    int64_t depth_pos
    int64_t tickers_pos
    int64_t partial_pos
    int64_t expected_id         # for gaps: next id expected, and the id that arrived
    int64_t got_id
    uint32_t symbol
    uint32_t conn
    uint8_t reason
    uint8_t slot


cdef class FeedSink:
    cdef readonly BinanceDecoder decoder   # the feed's rings and symbol table
    cdef readonly Ring events
    cdef uint32_t nsym
    cdef int64_t* last_id       # [sym * N_SLOTS + slot], -1 = none yet
    cdef int64_t* last_ns
    cdef uint64_t dup[N_SLOTS]
    cdef uint64_t gaps[N_SLOTS]
    cdef uint64_t accepted[N_SLOTS]
    cdef uint64_t lat[N_LAT_BUCKETS]
    cdef uint64_t lat_neg
    cdef public int64_t event_unit_ns   # event_time unit: 1_000_000 (ms) or 1_000 (us)
    cdef uint64_t busy_ns, batches
    cdef readonly uint64_t accepted_total  # messages accepted, all slots (a cheap poll)
    cdef readonly uint64_t unroutable      # messages dropped: symbol id outside the filter's table
    cdef bint dirty                     # rows or markers committed since the hooks last ran
    cdef tuple hooks                    # callables(), run once per socket read with new rows

    # Decode one payload with ``dec`` (which shares this sink's rings), filter it from its
    # header, commit it if accepted.  Returns T_NONE / T_ACCEPTED / T_DUPLICATE /
    # T_UNROUTABLE.  Inline: compiled into the caller (the listener), one call frame less per
    # message.
    cdef inline int take(self, BinanceDecoder dec, const char* p, Py_ssize_t n, int64_t now,
                         uint32_t conn, uint8_t* overlap) noexcept:
        if dec.stage_ptr(p, n, now) > K_PARTIAL:
            return T_NONE
        cdef int r = self.admit(&dec.hdr, conn, overlap, now)
        if r == T_ACCEPTED:
            dec.commit_staged()
        return r

    cdef int admit(self, const MsgHeader* h, uint32_t conn, uint8_t* overlap, int64_t now) noexcept
    cdef void _drop_unroutable(self, int k, uint32_t sym) noexcept
    cdef void mark_c(self, uint8_t reason, uint32_t conn, uint32_t sym, uint8_t slot,
                     int64_t expected, int64_t got, int64_t now) noexcept
    cdef void end_read(self, int64_t started) noexcept
    cdef void notify(self) noexcept
    cdef inline void latency(self, int64_t now, int64_t event_time) noexcept
