# cython: language_level=3
"""The feed's id filter: decode, filter, commit.

:class:`FeedSink` holds the feed's rings (through its decoder), the ``events`` ring of marker
rows, and the last id of every (symbol, stream kind).  :meth:`FeedSink.take` runs one payload
through a connection's decoder: the decoder stages the message and returns its header (kind,
symbol, ids, event time, row count; ``MsgHeader``); the filter decides from the header alone;
a gap marker goes into ``events`` before the message's rows; and only an accepted message's
rows are written and committed.  A duplicate or stale message (a second connection during a
rotation, a resent or stale event) is counted and never touches a ring.  See
docs/decisions/0211-feed-decode-filter-commit.md.

No Python object is created per message.  Once per socket read that committed rows, in this
order: the C-level consumers (``consumer.pxd``: no Python at all), the Python hooks
(:meth:`FeedSink.add_hook`), then the waiters of ``feed.wait()`` / ``async for`` (futures
resolved here, in C).  Python runs on the cold path otherwise.  The transport
(``_listener.pyx``) only frames bytes and calls :meth:`take`; this module never touches a
socket, so it is tested on payloads alone (:meth:`FeedSink.decode`).
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from libc.string cimport memcpy, memset
from cpython.buffer cimport PyBUF_SIMPLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.mem cimport PyMem_Malloc, PyMem_Free

from fastfeed.core._clock cimport ff_now_ns
from fastfeed.core._decoder cimport BinanceDecoder
from fastfeed.core._ring cimport Ring
from fastfeed.feed.consumer cimport FF_TRADES, FF_DEPTH, FF_TICKERS, FF_PARTIAL
from fastfeed.core._rows cimport field_offset as _off
from fastfeed.core._codes import SLOT_NAMES
from fastfeed.core._rows import struct_dtype

import logging

log = logging.getLogger("fastfeed.filter")

cdef EventRow _e

EVENT_DTYPE = struct_dtype(zip(
    ["recv_ns", "trades_pos", "depth_pos", "tickers_pos", "partial_pos",
     "expected_id", "got_id", "symbol", "conn", "reason", "slot"],
    ["<i8", "<i8", "<i8", "<i8", "<i8", "<i8", "<i8", "<u4", "<u4", "u1", "u1"],
    [_off(&_e.recv_ns, &_e), _off(&_e.trades_pos, &_e), _off(&_e.depth_pos, &_e),
     _off(&_e.tickers_pos, &_e), _off(&_e.partial_pos, &_e),
     _off(&_e.expected_id, &_e), _off(&_e.got_id, &_e), _off(&_e.symbol, &_e),
     _off(&_e.conn, &_e), _off(&_e.reason, &_e), _off(&_e.slot, &_e)]), sizeof(EventRow))
N_LATENCY_BUCKETS = N_LAT_BUCKETS


def latency_bucket_bounds():
    """Lower bound in microseconds of every latency bucket (for percentile estimates)."""
    out = []
    cdef int i, b, sub
    for i in range(N_LAT_BUCKETS):
        if i < 4:
            out.append(i)
        else:
            b = i // 4 + 1
            sub = i % 4
            out.append((1 << b) + sub * (1 << (b - 2)))
    return out


@cython.final
cdef class FeedSink:
    """The feed's shared rings plus the id filter and counters every connection writes through.

    ``decoder`` holds the rings (``trades``, ``depth``, ``tickers``, ``partial``) and the symbol
    table; ``events`` is a ring of marker rows (``EVENT_DTYPE``) in order with the data rows.
    Connections decode with their own decoders built with ``BinanceDecoder(share=decoder)``.
    """

    def __cinit__(self, BinanceDecoder decoder, Py_ssize_t events=1024):
        self.decoder = decoder
        self.events = Ring(EVENT_DTYPE, events)
        self.nsym = decoder.symbols.max_symbols + 1
        self.ent = <FilterEntry*>PyMem_Malloc(self.nsym * N_SLOTS * sizeof(FilterEntry))
        if not self.ent:
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(self.nsym * N_SLOTS):
            self.ent[i].last_id = self.ent[i].last_seq = -1
            self.ent[i].last_ns = self.ent[i].unused = 0
        cdef Ring r
        for i, r in enumerate((decoder.trades, decoder.depth, decoder.tickers, decoder.partial,
                               self.events)):
            self.wpos[i] = &r._written
            self.rd.rings[i].base = r.base
            self.rd.rings[i].mask = r.mask
            self.rd.rings[i].itemsize = r.itemsize
            self.rd.rings[i].start = self.rd.rings[i].end = self.rd.rings[i].lost = 0
        self.rd.recv_ns = 0
        self.read_ns = 0
        self.ncons = 0
        self.cons_owners = ()
        self.waiters = []
        self.woken = self.pending = False
        memset(self.dup, 0, sizeof(self.dup))
        memset(self.gaps, 0, sizeof(self.gaps))
        memset(self.accepted, 0, sizeof(self.accepted))
        memset(self.lat, 0, sizeof(self.lat))
        self.lat_neg = 0
        self.event_unit_ns = 1000000
        self.busy_ns = self.batches = 0
        self.accepted_total = 0
        self.unroutable = 0
        self.dup_age_ns = -1
        self.dirty = False
        self.hooks = ()
        self.recorder = None

    def __dealloc__(self):
        PyMem_Free(self.ent)

    # ------------------------------------------------------------------ hot path

    cdef void _drop_unroutable(self, int k, uint32_t sym) noexcept:
        self.unroutable += 1
        try:
            log.error("dropped a message (kind %d) with symbol id %d outside the feed's "
                      "table of %d", k, sym, self.nsym)
        except BaseException:
            pass

    cdef void mark_c(self, uint8_t reason, uint32_t conn, uint32_t sym, uint8_t slot,
                     int64_t expected, int64_t got, int64_t now) noexcept:
        cdef EventRow* r = <EventRow*>self.events.reserve(0)
        r.recv_ns = now
        r.trades_pos = <int64_t>self.wpos[FF_TRADES][0]
        r.depth_pos = <int64_t>self.wpos[FF_DEPTH][0]
        r.tickers_pos = <int64_t>self.wpos[FF_TICKERS][0]
        r.partial_pos = <int64_t>self.wpos[FF_PARTIAL][0]
        r.expected_id = expected
        r.got_id = got
        r.symbol = sym
        r.conn = conn
        r.reason = reason
        r.slot = slot
        self.events.commit(1)
        if self.recorder is not None:
            self.recorder.event(reason, conn, sym, slot, expected, got, now)
        self.read_ns = now
        self.dirty = True

    cdef void end_read(self, int64_t started) noexcept:
        """A socket read is done: run the consumers if it committed rows, then account its
        time (after them: the clock read is not on their path)."""
        self.notify()
        if started:
            self.busy_ns += <uint64_t>(ff_now_ns() - started)
            self.batches += 1

    cdef void notify(self) noexcept:
        # C consumers first (no Python), then the hooks (synchronous Python), then the
        # waiters of wait() (they run later, on the next loop turn).
        if not self.dirty:
            return
        self.dirty = False
        if self.ncons:
            self._run_consumers()
        if self.hooks:
            for hook in self.hooks:
                try:
                    hook()
                except BaseException:
                    # A failing hook must not break the read path (or the other hooks), but
                    # must be seen.
                    log.exception("feed hook %r failed", hook)
        self._wake_waiters()

    cdef void _run_consumers(self) noexcept:
        cdef int i
        cdef uint64_t w, cap
        cdef tuple _held = self.cons_owners      # a consumer cannot free its own ctx mid-call
        for i in range(FF_N_RINGS):
            w = self.wpos[i][0]
            cap = self.rd.rings[i].mask + 1
            self.rd.rings[i].start = self.rd.rings[i].end
            self.rd.rings[i].lost = 0
            if w - self.rd.rings[i].start > cap:
                self.rd.rings[i].lost = w - cap - self.rd.rings[i].start
                self.rd.rings[i].start = w - cap
            self.rd.rings[i].end = w
        self.rd.recv_ns = self.read_ns
        for i in range(self.ncons):
            self.cons_fn[i](self.cons_ctx[i], &self.rd)

    cdef void _wake_waiters(self) noexcept:
        cdef list ws = self.waiters
        cdef bint woke = False
        if ws:
            self.waiters = []
            try:
                for fut in ws:
                    if not fut.done():     # a cancelled wait is skipped
                        fut.set_result(None)
                        woke = True
            except BaseException:
                log.exception("waking a feed waiter failed")
        if woke:
            self.woken = True
        elif not self.woken:
            self.pending = True         # nobody waited: the next wait() returns at once

    # ------------------------------------------------------------------ consumers

    cdef int add_consumer(self, ff_consumer_fn fn, void* ctx, object owner) except -1:
        """Register a C-level consumer (consumer.pxd): ``fn(ctx, read)`` once per socket read
        with new rows, first in line.  ``owner`` is kept alive while registered.  At most
        FF_MAX_CONSUMERS; the same (fn, ctx) twice is a ValueError."""
        cdef int i
        if fn == NULL:
            raise ValueError("consumer function is NULL")
        for i in range(self.ncons):
            if self.cons_fn[i] == fn and self.cons_ctx[i] == ctx:
                raise ValueError("this consumer (fn, ctx) is already registered")
        if self.ncons >= FF_MAX_CONSUMERS:
            raise ValueError(f"at most {FF_MAX_CONSUMERS} C-level consumers per feed")
        if self.ncons == 0:
            # A first consumer starts at the rings' current end (nothing old is replayed).
            for i in range(FF_N_RINGS):
                self.rd.rings[i].start = self.rd.rings[i].end = self.wpos[i][0]
        self.cons_fn[self.ncons] = fn
        self.cons_ctx[self.ncons] = ctx
        self.cons_owners = self.cons_owners + (owner,)
        self.ncons += 1
        return 0

    cdef bint remove_consumer(self, ff_consumer_fn fn, void* ctx) noexcept:
        """Unregister (fn, ctx); False if it was not registered."""
        cdef int i, j
        for i in range(self.ncons):
            if self.cons_fn[i] == fn and self.cons_ctx[i] == ctx:
                for j in range(i, self.ncons - 1):
                    self.cons_fn[j] = self.cons_fn[j + 1]
                    self.cons_ctx[j] = self.cons_ctx[j + 1]
                self.ncons -= 1
                self.cons_owners = self.cons_owners[:i] + self.cons_owners[i + 1:]
                return True
        return False

    def remove_consumers(self, owner):
        """Unregister every C-level consumer registered with ``owner``; returns how many."""
        cdef int i = 0, n = 0
        while i < self.ncons:
            if self.cons_owners[i] is owner:
                self.remove_consumer(self.cons_fn[i], self.cons_ctx[i])
                n += 1
            else:
                i += 1
        return n

    @property
    def consumers(self):
        """Number of C-level consumers registered."""
        return self.ncons

    # ------------------------------------------------------------------ waiters

    def waiter(self, loop):
        """For ``feed.wait()``: None if rows arrived since the last wake while nobody waited
        (return at once), else a new future of ``loop`` resolved (in C, after the hooks) at
        the next socket read with rows, or by :meth:`wake`."""
        self.woken = False
        if self.pending:
            self.pending = False
            return None
        if len(self.waiters) >= 16:
            # waits cancelled while no read came (timeouts): keep the list bounded
            self.waiters = [f for f in self.waiters if not f.done()]
        fut = loop.create_future()
        self.waiters.append(fut)
        return fut

    def wake(self):
        """Resolve every waiter now (closing, a fatal error, a state change)."""
        self._wake_waiters()

    # ------------------------------------------------------------------ Python side

    def add_hook(self, hook):
        """Call ``hook()`` once per socket read that committed rows or markers (and after
        :meth:`mark`), after the C-level consumers and before the waiters of ``wait()``.
        Runs on the event loop inside the read: keep it short (read a ring by cursor)."""
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {hook!r}")
        self.hooks = self.hooks + (hook,)

    def remove_hook(self, hook):
        """Stop calling ``hook`` (no error if it was not added)."""
        self.hooks = tuple(h for h in self.hooks if h is not hook and h != hook)

    def decode(self, BinanceDecoder dec, payload, int64_t recv_ns=0, uint32_t conn=0):
        """Sans-IO: run one payload through ``dec`` (built with ``share=`` this sink's
        decoder) and the filter, as a connection does.  Returns "none", "accepted",
        "duplicate" or "unroutable".  Does not run the hooks (call :meth:`flush`)."""
        if dec.trades is not self.decoder.trades or dec.symbols is not self.decoder.symbols:
            raise ValueError("dec must share this sink's rings: BinanceDecoder(share=sink.decoder)")
        cdef Py_buffer view
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:
            r = self.take(<void*>dec, <const char*>view.buf, view.len,
                          recv_ns if recv_ns else ff_now_ns(), conn, NULL)
        finally:
            PyBuffer_Release(&view)
        return ("none", "accepted", "duplicate", "unroutable")[r]

    def mark(self, int reason, uint32_t conn=0, uint32_t symbol=0, int slot=255,
             int64_t expected=-1, int64_t got=-1):
        """Write a marker row (reason code from ``fastfeed.feed.EventReason``) and run the
        hooks."""
        self.mark_c(<uint8_t>reason, conn, symbol, <uint8_t>slot, expected, got, ff_now_ns())
        self.notify()

    def flush(self):
        """Run the hooks if rows or markers arrived since they last ran."""
        self.notify()

    def last_ids(self, uint32_t symbol):
        """Last accepted id of each stream slot of ``symbol`` (-1 = none)."""
        if symbol >= self.nsym:
            raise IndexError(symbol)
        return tuple(self.ent[symbol * N_SLOTS + s].last_id for s in range(N_SLOTS))

    def last_recv_ns(self, uint32_t symbol, int slot):
        """Receive time of the last accepted row of (symbol, slot); 0 = never."""
        if symbol >= self.nsym or slot < 0 or slot >= N_SLOTS:
            raise IndexError(symbol)
        return self.ent[symbol * N_SLOTS + slot].last_ns

    def last_row(self, uint32_t symbol, int slot, out):
        """Copy the last row of (symbol, stream slot) accepted by the filter into ``out[0]``
        (an array of the ring's dtype you made once, e.g. ``np.zeros(1, ring.dtype)``); for
        depth and partial depth, the last level row of the last message.  Returns its ring
        sequence number, or -1 (none yet, or overwritten since).  Allocates nothing."""
        if symbol >= self.nsym or slot < 0 or slot >= N_SLOTS:
            raise IndexError(f"symbol {symbol} / slot {slot} out of range")
        return self._copy_last(symbol, slot, out)

    def last_trade(self, uint32_t symbol, out):
        """:meth:`last_row` of the newer of the symbol's aggTrade and trade rows."""
        if symbol >= self.nsym:
            raise IndexError(f"symbol {symbol} out of range")
        cdef Py_ssize_t i = <Py_ssize_t>symbol * N_SLOTS
        slot = S_AGG if self.ent[i + S_AGG].last_seq >= self.ent[i + S_TRADE].last_seq else S_TRADE
        return self._copy_last(symbol, slot, out)

    cdef int64_t _copy_last(self, uint32_t symbol, int slot, out) except -2:
        cdef FilterEntry* e = self.ent + <Py_ssize_t>symbol * N_SLOTS + slot
        cdef Ring ring
        if slot == S_AGG or slot == S_TRADE:
            ring = self.decoder.trades
        elif slot == S_DEPTH:
            ring = self.decoder.depth
        elif slot == S_TICKER:
            ring = self.decoder.tickers
        else:
            ring = self.decoder.partial
        cdef char* dst = ring.row_out(out)
        if e.last_seq < 0 or <uint64_t>e.last_seq < ring.oldest_seq():
            return -1
        memcpy(dst, ring.slot(<uint64_t>e.last_seq), ring.itemsize)
        return e.last_seq

    def latency_histogram(self):
        """(counts per bucket, count of negative latencies); see latency_bucket_bounds()."""
        return [self.lat[i] for i in range(N_LAT_BUCKETS)], self.lat_neg

    def counters(self):
        """Filter and timing counters as plain Python values."""
        return {
            "accepted": {SLOT_NAMES[i]: self.accepted[i] for i in range(N_SLOTS)},
            "duplicates": {SLOT_NAMES[i]: self.dup[i] for i in range(N_SLOTS)},
            "gaps": {SLOT_NAMES[i]: self.gaps[i] for i in range(N_SLOTS)},
            "busy_ns": self.busy_ns,
            "batches": self.batches,
            "unroutable": self.unroutable,
        }
