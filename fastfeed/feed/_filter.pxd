# The feed's id filter and shared rings (see _filter.pyx).  The per-message path (take, admit,
# latency) is defined here, inline: it is compiled into the listener that calls it, with no
# call frame per message.
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from fastfeed.core._decoder cimport (BinanceDecoder, MsgHeader, K_TRADE, K_DEPTH, K_TICKER,
                                     K_PARTIAL)
from fastfeed.core._ring cimport Ring
from fastfeed.core._tap cimport FrameTap
from fastfeed.feed.consumer cimport ff_consumer_fn, ff_read, FF_MAX_CONSUMERS, FF_N_RINGS

# Stream slots (S_*, N_SLOTS) and event reasons (EV_*): the codes of _codes.h.
from fastfeed.core._codes cimport (EV_CONNECT, EV_DISCONNECT, EV_GAP, EV_PROTOCOL, EV_ROTATE,
                                   EV_SUBSCRIBE, EV_WATCHDOG, N_SLOTS, S_AGG, S_DEPTH,
                                   S_PARTIAL, S_TICKER, S_TRADE)

# What FeedSink.take did with one payload.
cdef enum:
    T_NONE = 0          # no rows (control, unknown, rejected payload)
    T_ACCEPTED = 1      # rows committed
    T_DUPLICATE = 2     # not newer than the last id of its stream: dropped, counted
    T_UNROUTABLE = 3    # symbol id outside the filter's table: dropped, counted, logged

cdef enum:
    N_LAT_BUCKETS = 256

cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil

cdef inline int lat_bucket(uint64_t us) noexcept:
    # log2 buckets with 4 sub-buckets each (HDR-lite): <= 19% relative error, 64 octaves.
    cdef int b, sub
    if us < 4:
        return <int>us
    b = 63 - __builtin_clzll(us)
    sub = <int>((us >> (b - 2)) & 3)
    return (b - 1) * 4 + sub if (b - 1) * 4 + sub < N_LAT_BUCKETS else N_LAT_BUCKETS - 1


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


# The filter's state of one (symbol, stream slot): 32 bytes, so an entry never straddles a
# cache line and a message touches one line of the table (id, time and row position).
ctypedef struct FilterEntry:
    int64_t last_id         # last accepted id, -1 = none yet
    int64_t last_ns         # receive time of the last accepted message
    int64_t last_seq        # ring sequence of the last accepted message's last row, -1 = none
    int64_t unused          # keeps an entry at 32 bytes


cdef class FeedSink:
    # Hot fields first, together: the per-message path reads these and the entry table.
    cdef FilterEntry* ent       # [sym * N_SLOTS + slot]
    cdef uint64_t* wpos[FF_N_RINGS]   # each ring's ``_written`` (trades .. partial, events)
    cdef uint32_t nsym
    cdef bint dirty                     # rows or markers committed since the hooks last ran
    cdef int64_t read_ns                # receive time of the last message or marker
    cdef public int64_t event_unit_ns   # event_time unit: 1_000_000 (ms) or 1_000 (us)
    cdef readonly uint64_t accepted_total  # messages accepted, all slots (a cheap poll)
    cdef uint64_t accepted[N_SLOTS]
    cdef int ncons                      # C-level consumers (consumer.pxd)
    cdef ff_consumer_fn cons_fn[FF_MAX_CONSUMERS]
    cdef void* cons_ctx[FF_MAX_CONSUMERS]
    cdef ff_read rd                     # what the consumers get; start = where they stopped
    cdef tuple cons_owners              # kept alive while registered
    cdef tuple hooks                    # callables(), run once per socket read with new rows
    cdef list waiters                   # futures of wait(): resolved after the hooks
    cdef bint woken                     # waiters were resolved and none waited since
    cdef bint pending                   # rows arrived while nobody waited (and none woken)
    cdef readonly BinanceDecoder decoder   # the feed's rings and symbol table
    cdef readonly Ring events
    cdef uint64_t dup[N_SLOTS]
    cdef uint64_t gaps[N_SLOTS]
    cdef uint64_t lat[N_LAT_BUCKETS]
    cdef uint64_t lat_neg
    cdef uint64_t busy_ns, batches
    cdef readonly uint64_t unroutable      # messages dropped: symbol id outside the filter's table
    cdef readonly int64_t dup_age_ns       # last duplicate: ns since the copy that won, or -1
    cdef public FrameTap recorder       # fastfeed.record: frames and events copied here, or None

    cdef int add_consumer(self, ff_consumer_fn fn, void* ctx, object owner) except -1
    cdef bint remove_consumer(self, ff_consumer_fn fn, void* ctx) noexcept
    cdef int64_t _copy_last(self, uint32_t symbol, int slot, object out) except -2

    # Decode one payload with ``decp`` (a BinanceDecoder that shares this sink's rings, held
    # by the caller: a borrowed pointer, so no reference count moves per message), filter it
    # from its header, commit it if accepted.  Returns T_NONE / T_ACCEPTED / T_DUPLICATE /
    # T_UNROUTABLE.  Inline: compiled into the caller (the listener), one call frame less per
    # message.
    cdef inline int take(self, void* decp, const char* p, Py_ssize_t n, int64_t now,
                         uint32_t conn, uint8_t* overlap) noexcept:
        if (<BinanceDecoder>decp).stage_ptr(p, n, now) > K_PARTIAL:
            return T_NONE
        cdef FilterEntry* e = NULL
        cdef int r = self.admit(&(<BinanceDecoder>decp).hdr, conn, overlap, now, &e)
        if r == T_ACCEPTED:
            (<BinanceDecoder>decp).commit_staged()
            # kinds TRADE .. PARTIAL index their rings' positions
            e.last_seq = <int64_t>self.wpos[(<BinanceDecoder>decp).hdr.kind][0] - 1
        return r

    cdef inline int admit(self, const MsgHeader* h, uint32_t conn, uint8_t* overlap,
                          int64_t now, FilterEntry** entry) noexcept:
        """The filter's decision from a message's header.  Counts it, writes a GAP marker
        (before the message's rows, which are not committed yet) when its ids skip ahead,
        and marks ``overlap`` (this connection's [sym * N_SLOTS + slot] flags; may be NULL)
        when it repeats or continues the feed's sequence.  ``entry`` gets the (symbol, slot)
        entry of an accepted message (its caller records the rows' positions there)."""
        cdef int slot
        cdef int64_t last, expected = -1, got
        cdef Py_ssize_t idx
        cdef FilterEntry* e
        if h.kind == K_TRADE:
            slot = S_AGG if h.agg else S_TRADE
        elif h.kind == K_DEPTH:
            slot = S_DEPTH
        elif h.kind == K_TICKER:
            slot = S_TICKER
        else:
            slot = S_PARTIAL
        if h.symbol >= self.nsym:
            # Cannot happen (connections decode with the sink's own table, whose ids stay
            # below nsym), but a message the filter cannot place is dropped loudly.
            self._drop_unroutable(h.kind, h.symbol)
            return T_UNROUTABLE
        idx = <Py_ssize_t>h.symbol * N_SLOTS + slot
        e = self.ent + idx
        last = e.last_id
        if last >= 0 and h.last_id <= last:
            # already delivered (other connection during rotation, resent or stale event)
            self.dup[slot] += 1
            # a copy of the message that won (redundant legs): how late this one is
            self.dup_age_ns = now - e.last_ns if h.last_id == last else -1
            if overlap != NULL:
                overlap[idx] = 1
            return T_DUPLICATE
        if last >= 0:
            got = h.last_id
            if slot == S_AGG or slot == S_TRADE:
                if h.last_id != last + 1:
                    expected = last + 1
            elif slot == S_DEPTH:
                got = h.first_id
                if h.prev_id >= 0:
                    if h.prev_id != last:
                        expected = last
                elif got > last + 1:
                    expected = last + 1
            if expected >= 0:
                self.gaps[slot] += 1
                self.mark_c(EV_GAP, conn, h.symbol, <uint8_t>slot, expected, got, now)
            elif overlap != NULL:
                overlap[idx] = 1
        e.last_id = h.last_id
        e.last_ns = now
        entry[0] = e
        self.read_ns = now
        self.accepted[slot] += 1
        self.accepted_total += 1
        if slot != S_PARTIAL:   # partial books are snapshots, not in the latency histogram
            self.latency(now, h.event_time)
        self.dirty = True
        return T_ACCEPTED

    cdef void _drop_unroutable(self, int k, uint32_t sym) noexcept
    cdef void mark_c(self, uint8_t reason, uint32_t conn, uint32_t sym, uint8_t slot,
                     int64_t expected, int64_t got, int64_t now) noexcept
    cdef void end_read(self, int64_t started) noexcept
    cdef void notify(self) noexcept
    cdef void _run_consumers(self) noexcept
    cdef void _wake_waiters(self) noexcept
    cdef inline void latency(self, int64_t now, int64_t event_time) noexcept:
        cdef int64_t d
        if event_time <= 0:
            return
        d = now - event_time * self.event_unit_ns
        if d < 0:
            self.lat_neg += 1
        else:
            self.lat[lat_bucket(<uint64_t>d // <uint64_t>1000)] += 1   # unsigned: no sign fix-up
