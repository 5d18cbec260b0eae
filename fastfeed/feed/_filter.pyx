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

No Python object is created per message.  Python runs once per socket read at most (the hooks,
:meth:`FeedSink.add_hook`), and on the cold path.  The transport (``_listener.pyx``) only frames
bytes and calls :meth:`take`; this module never touches a socket, so it is tested on payloads
alone (:meth:`FeedSink.decode`).
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from libc.string cimport memset
from cpython.buffer cimport PyBUF_SIMPLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.mem cimport PyMem_Malloc, PyMem_Free, PyMem_Calloc

from fastfeed.core._clock cimport ff_now_ns
from fastfeed.core._decoder cimport BinanceDecoder
from fastfeed.core._ring cimport Ring
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
        self.last_id = <int64_t*>PyMem_Malloc(self.nsym * N_SLOTS * sizeof(int64_t))
        self.last_ns = <int64_t*>PyMem_Calloc(self.nsym * N_SLOTS, sizeof(int64_t))
        if not (self.last_id and self.last_ns):
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(self.nsym * N_SLOTS):
            self.last_id[i] = -1
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
        PyMem_Free(self.last_id)
        PyMem_Free(self.last_ns)

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
        r.trades_pos = <int64_t>self.decoder.trades._written
        r.depth_pos = <int64_t>self.decoder.depth._written
        r.tickers_pos = <int64_t>self.decoder.tickers._written
        r.partial_pos = <int64_t>self.decoder.partial._written
        r.expected_id = expected
        r.got_id = got
        r.symbol = sym
        r.conn = conn
        r.reason = reason
        r.slot = slot
        self.events.commit(1)
        if self.recorder is not None:
            self.recorder.event(reason, conn, sym, slot, expected, got, now)
        self.dirty = True

    cdef void end_read(self, int64_t started) noexcept:
        """A socket read is done: account its time and run the hooks if it committed rows."""
        if started:
            self.busy_ns += <uint64_t>(ff_now_ns() - started)
            self.batches += 1
        self.notify()

    cdef void notify(self) noexcept:
        if not self.dirty:
            return
        self.dirty = False
        for hook in self.hooks:
            try:
                hook()
            except BaseException:
                # A failing hook must not break the read path (or the other hooks), but
                # must be seen.
                log.exception("feed hook %r failed", hook)

    # ------------------------------------------------------------------ Python side

    def add_hook(self, hook):
        """Call ``hook()`` once per socket read that committed rows or markers (and after
        :meth:`mark`).  Runs on the event loop inside the read: keep it short (set an
        event, read a ring)."""
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
            r = self.take(dec, <const char*>view.buf, view.len,
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
        return tuple(self.last_id[symbol * N_SLOTS + s] for s in range(N_SLOTS))

    def last_recv_ns(self, uint32_t symbol, int slot):
        """Receive time of the last accepted row of (symbol, slot); 0 = never."""
        if symbol >= self.nsym or slot < 0 or slot >= N_SLOTS:
            raise IndexError(symbol)
        return self.last_ns[symbol * N_SLOTS + slot]

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
