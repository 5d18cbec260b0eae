"""Binance market-stream decoder: payload bytes in, numpy ring rows out (sans-IO).

The hot path is one validating pass over the payload (see _json.h).  It dispatches on key
names, never on key order, collects the fields it knows into a C struct, skips everything
else, and only at the end decides the message kind and writes rows.  Nothing on that path
creates a Python object; control replies and unknown messages take a cold path.
"""
import json
import logging
from collections import deque

from cpython.buffer cimport PyBUF_SIMPLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_CheckExact, PyByteArray_GET_SIZE
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.conversion cimport PyOS_string_to_double
from libc.stddef cimport ptrdiff_t
from libc.math cimport NAN
from libc.stdint cimport int8_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memchr, memcpy, memset

from fastfeed.core._clock cimport ff_now_ns
from fastfeed.core._json cimport (ff_bytes_eq, ff_hash, ff_parse_decimal, ff_scan, ff_skip_value,
                                  ff_skip_ws)
from fastfeed.core._ring cimport Ring, ff_prefetch_w
from fastfeed.core._rows cimport (FP_NONE, ROW_LAST_OF_EVENT, DepthRow, PartialRow, TickerRow,
                                  TradeRow)
from fastfeed.core._codes import Kind, Reject
from fastfeed.core._rows import DEPTH_DTYPE, PARTIAL_DTYPE, TICKER_DTYPE, TRADE_DTYPE

log = logging.getLogger("fastfeed.decoder")


cdef tuple _KINDS = tuple(Kind)

#: Which digit kernels this build uses: "sse2" (x86-64) or "portable" (SWAR; other CPUs, or
#: a build with FASTFEED_NO_SIMD=1).  Both give identical results.
SIMD = FFC_SIMD_NAME.decode()

cdef extern from "_binance.h":
    enum:
        EV_NONE, EV_AGGTRADE, EV_TRADE, EV_DEPTH, EV_BOOKTICKER, EV_SHUTDOWN, EV_OTHER
        F_E, F_T, F_S, F_AID, F_TID, F_P, F_Q, F_FIRST, F_LAST, F_M, F_UU, F_U, F_PU
        F_BL, F_AL, F_BP, F_BQ, F_AP, F_AQ, F_NQ, F_LUID, F_BIDS, F_ASKS, F_EV, F_CTRL
        F_DATA, F_STREAM
        ST_B, ST_A, ST_BIDS, ST_ASKS
        # fields each kind requires, and the optional ones it uses when present
        REQ_AGG, OPT_AGG, REQ_TRADE, REQ_DEPTH, OPT_DEPTH, REQ_TICKER, OPT_TICKER
        REQ_PARTIAL, OPT_PARTIAL

cdef enum:
    # escape-decoding arena: bounds one payload's escaped strings (TOO_LONG)
    SCRATCH_BYTES = 4096
    MAX_SYMBOL_BYTES = 0xFFFF   # a longer symbol name is TOO_LONG
    RECENT_SLOTS = 8
    RECENT_BYTES = 512


cdef extern from "_compact.h":
    enum:
        FF_SYM_UNKNOWN, FF_SYM_PLAIN
    const char* FFC_SIMD_NAME
    void ffc_forget_symbols(ff_ctx* c) noexcept
    void ffc_remember_symbol(ff_ctx* c, const Fields* F, int64_t id, const void* owner) noexcept
    int ffp_payload(ff_ctx* c, ff_scan* s, Fields* F, Fields* inner) noexcept
    int ffc_object(ff_ctx* c, ff_scan* s, Fields* F, Fields* inner) noexcept


cdef double py_strtod(const char* p, ptrdiff_t n, int* ok) noexcept:
    # ff_parse_decimal's correctly rounded slow path: CPython's own dtoa, the one float()
    # uses (locale-independent).  Rare: a decimal with more than 19 digits or far exponents.
    cdef double f = 0.0
    ok[0] = 0
    try:
        b = PyBytes_FromStringAndSize(p, n)
        f = PyOS_string_to_double(b, NULL, NULL)
        ok[0] = 1
    except Exception:   # cannot happen for the grammar ff_parse_decimal checked; fail safe
        pass
    return f


def parse_decimal(s):
    """``(float, fp)`` of a decimal string (str or bytes), exactly as the decoder reads a
    price or quantity: the float equals Python's ``float(s)`` and ``fp`` is the exact
    int64 at scale 10**8, or ``FP_NONE`` where there is none.  ValueError for a string that
    is not a decimal (grammar ``[+-]? (digits [. digits*] | . digits) ([eE] [+-]? digits)?``)."""
    b = s.encode() if isinstance(s, str) else bytes(s)
    cdef double f = 0.0
    cdef int64_t fp = FP_NONE
    if ff_parse_decimal(<const uint8_t*><const char*>b, len(b), &f, &fp, FP_NONE, py_strtod):
        raise ValueError(f"not a decimal: {s!r}")
    return f, fp


cdef inline void reset_fields(Fields* F) noexcept:
    F.seen = F.bad = F.keys = 0
    F.ev = EV_NONE
    F.sym = FF_SYM_UNKNOWN
    F.nlv[0] = F.nlv[1] = F.nlv[2] = F.nlv[3] = 0


cdef uint64_t levels_fp_none(Fields* F, int st, Py_ssize_t max_levels) noexcept:
    """*_fp fields of staging area st that are FP_NONE (the inexact_fixed_point counter:
    looked at only when the pass's decimal parser made one)."""
    cdef Level* lv = F.stage + st * max_levels
    cdef uint64_t n = 0
    cdef Py_ssize_t i
    for i in range(F.nlv[st]):
        n += (lv[i].price.fp == FP_NONE) + (lv[i].qty.fp == FP_NONE)
    return n


cdef extern from "_binance.h":
    int lowest_bit "ffb_lowest_bit"(uint32_t x) noexcept   # x != 0
    const uint8_t* find_at "ffb_find_at"(const uint8_t* p, const uint8_t* end) noexcept
    bint stream_is_partial "ffb_stream_is_partial"(const uint8_t* p, Py_ssize_t n) noexcept


# A symbol table's bound: the filter keeps per-(symbol, slot) state for every id, so this
# caps its memory (2**24 ids: about 1.3 GB there); Binance lists a few thousand symbols.
cdef Py_ssize_t MAX_TABLE_SYMBOLS = 1 << 24


cdef class SymbolTable:
    """Symbol names <-> small integer ids, without a Python object per lookup.

    Id 0 is the empty name (a row whose symbol is unknown, e.g. spot partial depth on a
    raw stream without a default symbol).  Payloads' names are kept as they come; the
    Python lookups (``id``, ``find``, ``in``) fold ASCII letters to upper case, as Binance's
    symbols are, so a stream name's lower-case symbol finds the same id.  The table is a
    sequence of names by id: ``len``, ``iter``, ``symbols[i]``.
    """

    def __cinit__(self, Py_ssize_t max_symbols=16384):
        if max_symbols < 1 or max_symbols > MAX_TABLE_SYMBOLS:
            raise ValueError(f"max_symbols must be in 1..{MAX_TABLE_SYMBOLS}, got {max_symbols}")
        cdef uint32_t nslots = 1
        while nslots < 2 * (max_symbols + 1):
            nslots <<= 1
        self.max_symbols = max_symbols
        self.nslots = nslots
        self.arena_cap = 1 << 14
        self.arena = <char*>PyMem_Malloc(self.arena_cap)
        self.offsets = <uint32_t*>PyMem_Malloc((max_symbols + 1) * sizeof(uint32_t))
        self.lengths = <uint32_t*>PyMem_Malloc((max_symbols + 1) * sizeof(uint32_t))
        self.hashes = <uint64_t*>PyMem_Malloc((max_symbols + 1) * sizeof(uint64_t))
        self.slots = <uint32_t*>PyMem_Malloc(nslots * sizeof(uint32_t))
        if not (self.arena and self.offsets and self.lengths and self.hashes and self.slots):
            raise MemoryError()
        memset(self.slots, 0, nslots * sizeof(uint32_t))
        self.offsets[0] = 0
        self.lengths[0] = 0
        self.hashes[0] = 0
        self.count = 1
        self.last = 0
        self.arena_used = 0
        self._names = [""]

    def __dealloc__(self):
        PyMem_Free(self.arena)
        PyMem_Free(self.offsets)
        PyMem_Free(self.lengths)
        PyMem_Free(self.hashes)
        PyMem_Free(self.slots)

    cdef int64_t _slot(self, const char* p, Py_ssize_t n, uint64_t h) noexcept:
        """The open-addressing slot that holds the name p[:n] (hash h), or the empty slot
        where it would go."""
        cdef uint32_t mask = self.nslots - 1
        cdef uint32_t j = <uint32_t>(h ^ (h >> 32)) & mask
        cdef uint32_t sid
        while True:
            sid = self.slots[j]
            if sid == 0 or (self.hashes[sid] == h and self.lengths[sid] == n
                            and ff_bytes_eq(<const uint8_t*>self.arena + self.offsets[sid],
                                            <const uint8_t*>p, n)):
                return j
            j = (j + 1) & mask

    cdef int64_t intern(self, const char* p, Py_ssize_t n) noexcept:
        """Id of the name p[:n] as it is (case-sensitive), added if new; -R_TOO_MANY_SYMBOLS
        when the table is full, -R_TOO_LONG for a name over MAX_SYMBOL_BYTES."""
        if n == 0:
            return 0
        # Consecutive messages mostly carry the same symbol: check the last one first.
        if self.lengths[self.last] == n and ff_bytes_eq(
                <const uint8_t*>self.arena + self.offsets[self.last], <const uint8_t*>p, n):
            return self.last
        cdef uint64_t h = ff_hash(<const uint8_t*>p, n)
        cdef uint32_t j = <uint32_t>self._slot(p, n, h)
        cdef uint32_t sid = self.slots[j]
        if sid != 0:
            self.last = sid
            return sid
        if n > MAX_SYMBOL_BYTES:
            return -R_TOO_LONG
        if self.count > self.max_symbols:
            return -R_TOO_MANY_SYMBOLS
        cdef Py_ssize_t need = self.arena_used + n
        cdef Py_ssize_t cap = self.arena_cap
        cdef char* grown
        if need > cap:
            while need > cap:
                cap *= 2
            grown = <char*>PyMem_Realloc(self.arena, cap)
            if grown == NULL:
                return -R_TOO_MANY_SYMBOLS
            self.arena = grown
            self.arena_cap = cap
        sid = self.count
        memcpy(self.arena + self.arena_used, p, n)
        self.offsets[sid] = <uint32_t>self.arena_used
        self.lengths[sid] = <uint32_t>n
        self.hashes[sid] = h
        self.arena_used = need
        self.slots[j] = sid
        self.count += 1
        self.last = sid
        return sid

    @staticmethod
    def _key(name):
        # Binance's symbols are upper case and its stream names lower case: Python-side
        # lookups fold ASCII letters up, so "btcusdt" and "BTCUSDT" are one id.
        b = name.encode("utf-8", "surrogatepass") if isinstance(name, str) else bytes(name)
        return b.upper()

    def name(self, Py_ssize_t i):
        """The name of symbol id i (IndexError if there is none)."""
        if i < 0 or i >= self.count:
            raise IndexError(f"no symbol id {i}")
        while len(self._names) < self.count:
            k = len(self._names)
            self._names.append(self.arena[self.offsets[k]:self.offsets[k] + self.lengths[k]]
                               .decode("utf-8", "surrogatepass"))
        return self._names[i]

    def find(self, name):
        """The id of ``name`` (str or bytes; ASCII case ignored), or None: never adds one."""
        b = self._key(name)
        if not b:
            return 0
        cdef uint32_t sid = self.slots[self._slot(b, len(b), ff_hash(<const uint8_t*>b, len(b)))]
        return sid if sid != 0 else None

    def id(self, name):
        """The id of ``name`` (str or bytes), added if new.  ASCII letters are folded to upper
        case first, as Binance's symbols are: ``id("btcusdt") == id("BTCUSDT")``."""
        b = self._key(name)
        cdef int64_t sid = self.intern(b, len(b))
        if sid == -R_TOO_LONG:
            raise ValueError(f"symbol name longer than {MAX_SYMBOL_BYTES} bytes")
        if sid < 0:
            raise OverflowError("symbol table is full")
        return sid

    def __len__(self):
        """Ids in use, id 0 (the empty name) included."""
        return self.count

    def __getitem__(self, Py_ssize_t i):
        """``symbols[i]`` is ``name(i)``."""
        return self.name(i)

    def __iter__(self):
        """Names in id order, from id 0 (the empty name)."""
        return iter(self.names())

    def __contains__(self, name):
        """``"BTCUSDT" in symbols`` (ASCII case ignored), never adding it."""
        return isinstance(name, (str, bytes, bytearray, memoryview)) and self.find(name) is not None

    def names(self):
        """All names, indexed by id."""
        return [self.name(i) for i in range(self.count)]


cdef inline bint is_pow2(Py_ssize_t n):
    return n > 0 and (n & (n - 1)) == 0


cdef class BinanceDecoder:
    """Decodes Binance market-stream payloads into numpy ring buffers.

    Rings: ``trades`` (aggTrade, trade), ``depth`` (diff depth, one row per level),
    ``tickers`` (bookTicker), ``partial`` (partial depth and REST snapshots, one row per
    level).  Capacities are powers of two.  ``max_levels`` bounds the levels one side of
    one message may carry (the REST snapshot maximum is 5000).  ``share=`` another decoder
    writes into that decoder's rings with its symbol table (the capacities and
    ``max_symbols`` are then its): a feed's connections each decode with their own counters
    and control handling into the feed's one set of rings.
    """

    def __cinit__(self, Py_ssize_t trades=1 << 16, Py_ssize_t depth=1 << 17,
                  Py_ssize_t tickers=1 << 16, Py_ssize_t partial=1 << 14,
                  Py_ssize_t max_levels=5000, Py_ssize_t max_symbols=16384,
                  Py_ssize_t control_maxlen=256, default_symbol=None,
                  BinanceDecoder share=None):
        for name, cap in (("trades", trades), ("depth", depth), ("tickers", tickers),
                          ("partial", partial)):
            if not is_pow2(cap):
                raise ValueError(f"{name} capacity must be a power of two, got {cap}")
        if max_levels < 1:
            raise ValueError("max_levels must be >= 1")
        if share is not None:
            self.trades, self.depth = share.trades, share.depth
            self.tickers, self.partial = share.tickers, share.partial
            self.symbols = share.symbols
        else:
            self.trades = Ring(TRADE_DTYPE, trades)
            self.depth = Ring(DEPTH_DTYPE, depth)
            self.tickers = Ring(TICKER_DTYPE, tickers)
            self.partial = Ring(PARTIAL_DTYPE, partial)
            self.symbols = SymbolTable(max_symbols)
        self.ctx.max_levels = max_levels
        self.ctx.fp_none = FP_NONE
        self.ctx.strtod = py_strtod
        self.fp_inexact = 0
        ffc_forget_symbols(&self.ctx)
        self.ctx.scratch_cap = SCRATCH_BYTES
        self.ctx.scratch_used = 0
        self.ctx.scratch = <uint8_t*>PyMem_Malloc(SCRATCH_BYTES)
        self.stage = <Level*>PyMem_Malloc(8 * max_levels * sizeof(Level))
        self.recent = <char*>PyMem_Malloc(2 * RECENT_SLOTS * RECENT_BYTES)
        if not (self.stage and self.ctx.scratch and self.recent):
            raise MemoryError()
        memset(self.kind_count, 0, sizeof(self.kind_count))
        memset(self.kind_bytes, 0, sizeof(self.kind_bytes))
        memset(self.reject_count, 0, sizeof(self.reject_count))
        memset(self.recent_len, 0, sizeof(self.recent_len))
        memset(self.recent_full_len, 0, sizeof(self.recent_full_len))
        memset(self.recent_code, 0, sizeof(self.recent_code))
        self.recent_seq[0] = 0
        self.recent_seq[1] = 0
        self.on_control = None
        self.control_messages = deque(maxlen=control_maxlen)
        self.shutdown_count = 0
        self.last_shutdown_time = -1
        self.control_dropped = 0
        self.slow_count = 0
        self.on_shutdown = None
        self._shutdown = False
        self.default_symbol = 0
        if default_symbol is not None:
            self.set_default_symbol(default_symbol)

    def __dealloc__(self):
        PyMem_Free(self.stage)
        PyMem_Free(self.ctx.scratch)
        PyMem_Free(self.recent)

    # ------------------------------------------------------------------ Python API

    def decode(self, payload, int64_t recv_ns=0):
        """Decodes one payload (bytes, bytearray or any contiguous buffer) -> Kind.

        ``recv_ns`` is the receive time written into the rows; 0 reads the wall clock.
        Never raises for a bad payload: it returns Kind.ERROR and counts the reason.
        """
        cdef Py_buffer view
        cdef int k
        if PyBytes_CheckExact(payload):
            k = self.decode_ptr(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload), recv_ns)
        elif PyByteArray_CheckExact(payload):
            k = self.decode_ptr(PyByteArray_AS_STRING(payload), PyByteArray_GET_SIZE(payload),
                                recv_ns)
        else:
            PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
            try:
                k = self.decode_ptr(<const char*>view.buf, view.len, recv_ns)
            finally:
                PyBuffer_Release(&view)
        return <object>_KINDS[k]

    def decode_lines(self, buffer, int64_t recv_ns=0):
        """Decodes newline-separated payloads in one C-level loop; returns how many.

        Empty lines are skipped.  One receive time (``recv_ns``, or the clock read once)
        stamps the whole batch.
        """
        cdef Py_buffer view
        PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
        try:
            return self._decode_lines(<const char*>view.buf, view.len, recv_ns)
        finally:
            PyBuffer_Release(&view)

    cdef Py_ssize_t _decode_lines(self, const char* p, Py_ssize_t n, int64_t recv_ns) noexcept:
        cdef const char* end = p + n
        cdef Py_ssize_t count = 0
        if recv_ns == 0:
            recv_ns = ff_now_ns()
        while p < end:
            if p[0] != b'\n' and not (p[0] == b'\r' and (p + 1 == end or p[1] == b'\n')):
                count += 1
            p = self._decode_line(p, end, recv_ns)
        return count

    def set_default_symbol(self, name):
        """Symbol for payloads that carry none (spot partial depth on a raw /ws stream)."""
        self.default_symbol = self.symbols.id(name)

    def symbol(self, Py_ssize_t i):
        """Name of symbol id i."""
        return self.symbols.name(i)

    def symbol_id(self, name):
        """Id of a symbol name, added if new (``symbols.id``: ASCII case is ignored, so
        ``symbol_id("btcusdt") == symbol_id("BTCUSDT")``).  ``symbols.find(name)`` looks up
        without adding."""
        return self.symbols.id(name)

    @property
    def counts(self):
        """Payloads decoded, by Kind."""
        return {kind: self.kind_count[<int>kind] for kind in Kind}

    @property
    def bytes_by_kind(self):
        """Payload bytes decoded, by Kind."""
        return {kind: self.kind_bytes[<int>kind] for kind in Kind}

    @property
    def errors(self):
        """Rejected payloads, by Reject reason (every reason listed, zeros included)."""
        return {r: self.reject_count[<int>r] for r in Reject}

    @property
    def inexact_fixed_point(self):
        """Decimals written into rows whose *_fp field is FP_NONE (no exact int64 at scale
        1e-8), each counted once."""
        return self.fp_inexact

    def recent_rejected(self):
        """The last rejected payloads, oldest first: (Reject, payload head, full length)."""
        return self._recent(0)

    def recent_unknown(self):
        """The last UNKNOWN payloads, oldest first: (None, payload head, full length)."""
        return [(None, b, n) for _, b, n in self._recent(1)]

    cdef list _recent(self, int cls):
        out = []
        cdef uint64_t seq = self.recent_seq[cls]
        cdef uint64_t i
        cdef int slot
        for i in range(seq - min(seq, <uint64_t>RECENT_SLOTS), seq):
            slot = cls * RECENT_SLOTS + <int>(i % RECENT_SLOTS)
            out.append((Reject(self.recent_code[slot]) if cls == 0 else None,
                        self.recent[slot * RECENT_BYTES:
                                    slot * RECENT_BYTES + self.recent_len[slot]],
                        self.recent_full_len[slot]))
        return out

    def stats(self):
        """Counters as plain Python values."""
        return {
            "counts": {k.name.lower(): v for k, v in self.counts.items()},
            "bytes": {k.name.lower(): v for k, v in self.bytes_by_kind.items()},
            "rejected": {r.name.lower(): v for r, v in self.errors.items() if v},
            "inexact_fixed_point": self.fp_inexact,
            "control_dropped": self.control_dropped,
            "off_plan": self.slow_count,
            "shutdowns": self.shutdown_count,
            "symbols": len(self.symbols) - 1,
            "rows": {"trades": self.trades.written, "depth": self.depth.written,
                     "tickers": self.tickers.written, "partial": self.partial.written},
        }

    # ------------------------------------------------------------------ hot path

    cdef int decode_ptr(self, const char* payload, Py_ssize_t n, int64_t recv_ns) noexcept:
        cdef int k = self.stage_ptr(payload, n, recv_ns)
        if k <= K_PARTIAL:
            self.commit_staged()
        return k

    cdef int stage_ptr(self, const char* payload, Py_ssize_t n, int64_t recv_ns) noexcept:
        cdef ff_scan s
        cdef Fields* outer = &self.f_outer
        cdef Fields* inner = &self.f_inner
        self._begin_plan(outer, inner)
        s.p = <const uint8_t*>payload
        s.end = s.p + n
        if (n > 0 and payload[0] == b'{' and ffp_payload(&self.ctx, &s, outer, inner) == 0
                and s.p == s.end):
            return self._finish(payload, n, outer, inner, recv_ns, True)
        return self._decode_slow(payload, n, outer, inner, recv_ns)

    cdef inline const char* _decode_line(
            self, const char* p, const char* end, int64_t recv_ns) noexcept:
        """Decodes the line at p; returns where the next one starts.  A plan cannot cross
        a newline (it takes no whitespace), so it runs before the line end is known."""
        cdef ff_scan s
        cdef const char* nl
        cdef Fields* outer = &self.f_outer
        cdef Fields* inner = &self.f_inner
        self._begin_plan(outer, inner)
        s.p = <const uint8_t*>p
        s.end = <const uint8_t*>end
        if (p[0] == b'{' and ffp_payload(&self.ctx, &s, outer, inner) == 0
                and (s.p == s.end or s.p[0] == b'\n')):
            if self._finish(p, <const char*>s.p - p, outer, inner, recv_ns, True) <= K_PARTIAL:
                self.commit_staged()
            return <const char*>s.p + 1
        nl = <const char*>memchr(p, b'\n', end - p)
        if nl == NULL:
            nl = end
        if nl > p and not (nl - p == 1 and p[0] == b'\r'):
            if self._decode_slow(p, nl - p, outer, inner, recv_ns) <= K_PARTIAL:
                self.commit_staged()
        return nl + 1

    cdef void _begin_plan(self, Fields* outer, Fields* inner) noexcept:
        # A plan sets what it succeeds with (seen, keys, ev, nlv); it never marks a field bad.
        self.ctx.scratch_used = 0
        self.ctx.fp_none_seen = 0
        outer.bad = inner.bad = 0
        outer.stage = self.stage
        inner.stage = self.stage + 4 * self.ctx.max_levels

    cdef void _begin(self, Fields* outer, Fields* inner) noexcept:
        self._begin_plan(outer, inner)
        reset_fields(outer)
        reset_fields(inner)

    cdef int _decode_slow(self, const char* payload, Py_ssize_t n, Fields* outer, Fields* inner,
                          int64_t recv_ns) noexcept:
        """Any order (ffc_object), then anything at all (ffb_parse_object), from scratch."""
        cdef ff_scan s
        cdef int r
        self.slow_count += 1
        self._begin(outer, inner)
        s.p = <const uint8_t*>payload
        s.end = s.p + n
        ff_skip_ws(&s)
        if s.p >= s.end:
            return self._reject(payload, n, R_TRUNCATED)
        if s.p[0] == b'{':
            r = ffc_object(&self.ctx, &s, outer, inner)
            if r != 0:
                self._begin(outer, inner)
                s.p = <const uint8_t*>payload
                ff_skip_ws(&s)
                r = ffb_parse_object(&self.ctx, &s, outer, inner)
        else:
            r = ff_skip_value(&s)
            if r == 0:
                ff_skip_ws(&s)
                if s.p != s.end:
                    r = R_SYNTAX
            if r:
                return self._reject(payload, n, r)
            return self._other(payload, n, K_UNKNOWN)
        if r == 0:
            ff_skip_ws(&s)
            if s.p != s.end:
                r = R_SYNTAX
        if r:
            return self._reject(payload, n, r)
        return self._finish(payload, n, outer, inner, recv_ns, False)

    cdef inline int _finish(self, const char* payload, Py_ssize_t n, Fields* outer, Fields* inner,
                            int64_t recv_ns, bint planned) noexcept:
        """Classifies one parsed payload, stages it (``hdr``; rows are written by
        commit_staged) and counts it."""
        cdef int k
        cdef Fields* F
        if recv_ns == 0:
            recv_ns = ff_now_ns()
        if (outer.seen & F_STREAM) and (outer.keys & F_DATA):
            if not (outer.seen & F_DATA):
                return self._other(payload, n, K_UNKNOWN)   # data is not an object (e.g. an array)
            F = inner
            F.stream_ptr = outer.stream_ptr
            F.stream_len = outer.stream_len
        else:
            F = outer
            F.stream_len = -1
        # A plan checked every field it returns (seen = the kind's required ones, none bad):
        # trades and depth diffs go straight to staging, past _classify's checks.
        if planned and (F.seen & F_EV) and F.ev == EV_DEPTH:
            k = self._stage_depth(F)
        elif planned and (F.seen & F_EV) and (F.ev == EV_AGGTRADE or F.ev == EV_TRADE):
            k = self._stage_trade(F, F.ev == EV_AGGTRADE)
        else:
            k = self._classify(F)
        if k >= K_ERROR:
            return self._reject(payload, n, k - K_ERROR)
        if k == K_CONTROL or k == K_UNKNOWN:
            return self._other(payload, n, k)
        self.kind_count[k] += 1
        self.kind_bytes[k] += n
        self.staged = F
        self.staged_recv = recv_ns
        return k

    cdef int _reject(self, const char* payload, Py_ssize_t n, int reason) noexcept:
        self.kind_count[K_ERROR] += 1
        self.kind_bytes[K_ERROR] += n
        self.reject_count[reason] += 1
        self._remember(0, payload, n, reason)
        return K_ERROR

    cdef int _other(self, const char* payload, Py_ssize_t n, int k) noexcept:
        self.kind_count[k] += 1
        self.kind_bytes[k] += n
        if k == K_CONTROL:
            self._cold_control(payload, n)
        else:
            self._remember(1, payload, n, 0)
        return k

    cdef void _remember(self, int cls, const char* payload, Py_ssize_t n, int code) noexcept:
        cdef int slot = cls * RECENT_SLOTS + <int>(self.recent_seq[cls] % RECENT_SLOTS)
        cdef Py_ssize_t m = n if n < RECENT_BYTES else RECENT_BYTES
        memcpy(self.recent + slot * RECENT_BYTES, payload, m)
        self.recent_len[slot] = <uint32_t>m
        self.recent_full_len[slot] = <uint32_t>n if n < 0xFFFFFFFF else 0xFFFFFFFF
        self.recent_code[slot] = <uint8_t>code
        self.recent_seq[cls] += 1

    cdef void _cold_control(self, const char* payload, Py_ssize_t n) noexcept:
        # Cold path: subscription replies, errors, serverShutdown.  Rare, so it may allocate.
        # The scanner validated the payload, so json (big integers, lone surrogates and all)
        # parses it; only a failing callback is a drop.
        cdef bint shutdown = self._shutdown
        self._shutdown = False
        if shutdown:
            self.shutdown_count += 1
            self.last_shutdown_time = self._shutdown_E
            log.warning("serverShutdown received (E=%s)", self._shutdown_E)
        try:
            msg = json.loads(PyBytes_FromStringAndSize(payload, n))
            self.control_messages.append(msg)
            if shutdown and self.on_shutdown is not None:
                self.on_shutdown(self._shutdown_E)
            if self.on_control is not None:
                self.on_control(msg)
        except BaseException:
            self.control_dropped += 1
            log.exception("control message handling failed")

    # ------------------------------------------------------------------ rows

    cdef int _check(self, Fields* F, uint32_t req, uint32_t opt) noexcept:
        """0 when every required field is valid and no used optional field is bad."""
        cdef uint32_t badu = F.bad & (req | opt)
        cdef int b
        if badu:
            return F.reason[lowest_bit(badu)]
        cdef uint32_t missing = req & ~F.seen
        if missing:
            b = lowest_bit(missing)
            return R_WRONG_TYPE if F.keys & ((<uint32_t>1) << b) else R_MISSING_FIELD
        return 0

    cdef int _classify(self, Fields* F) noexcept:
        """Classifies the collected fields and stages the message (``hdr``).  Returns a
        Kind, or K_ERROR + reason.  Every check that can reject a message is made here, so
        commit_staged cannot fail."""
        cdef int r
        cdef int64_t sym
        if F.keys & F_EV:
            if not (F.seen & F_EV):
                return K_ERROR + (F.reason[lowest_bit(F_EV)] if F.bad & F_EV else R_WRONG_TYPE)
            if F.ev == EV_AGGTRADE:
                r = self._check(F, REQ_AGG, OPT_AGG)
                return K_ERROR + r if r else self._stage_trade(F, True)
            if F.ev == EV_TRADE:
                r = self._check(F, REQ_TRADE, 0)
                return K_ERROR + r if r else self._stage_trade(F, False)
            if F.ev == EV_DEPTH:
                r = self._check(F, REQ_DEPTH, OPT_DEPTH)
                return K_ERROR + r if r else self._stage_depth(F)
            if F.ev == EV_BOOKTICKER:
                r = self._check(F, REQ_TICKER, OPT_TICKER)
                return K_ERROR + r if r else self._stage_ticker(F)
            if F.ev == EV_SHUTDOWN:
                # the one place that recognises it; the cold path acts on it
                self._shutdown = True
                self._shutdown_E = F.E if F.seen & F_E else -1
                return K_CONTROL
            return K_UNKNOWN
        if F.keys & F_LUID:
            r = self._check(F, REQ_PARTIAL, OPT_PARTIAL)
            if r:
                return K_ERROR + r
            if F.stream_len > 0:
                sym = self._stream_symbol(F.stream_ptr, F.stream_len)
            else:
                sym = self.default_symbol
            if sym < 0:
                return K_ERROR - sym
            return self._stage_levels(F, K_PARTIAL, <uint32_t>sym, F.luid, ST_BIDS, ST_ASKS)
        if (F.keys & F_U) and (F.keys & F_S):
            r = self._check(F, REQ_TICKER, OPT_TICKER)
            return K_ERROR + r if r else self._stage_ticker(F)
        if F.keys & F_CTRL:
            return K_CONTROL
        return K_UNKNOWN

    cdef int64_t _stream_symbol(self, const uint8_t* p, Py_ssize_t n) noexcept:
        # Stream names carry the symbol in lower case; rows use Binance's upper-case "s".
        cdef const uint8_t* at = find_at(p, p + n)
        cdef Py_ssize_t m = (at - p) if at != NULL else n
        cdef uint8_t small[64]
        cdef uint8_t* buf = small
        cdef Py_ssize_t i
        cdef int64_t sym
        if m > MAX_SYMBOL_BYTES:
            return -R_TOO_LONG
        if m > 64:
            buf = <uint8_t*>PyMem_Malloc(m)   # rare: no Binance symbol is this long
            if buf == NULL:
                return -R_TOO_MANY_SYMBOLS
        for i in range(m):
            buf[i] = p[i] - 32 if b'a' <= p[i] <= b'z' else p[i]
        sym = self.symbols.intern(<const char*>buf, m)
        if buf != small:
            PyMem_Free(buf)
        return sym

    cdef inline int64_t _symbol(self, Fields* F) noexcept:
        """The id of F's symbol "s": from the plans' cache when they matched it, else looked
        up (and cached when a plan read it, so that it is a plain name); -reason when it
        cannot have one (SymbolTable.intern)."""
        if F.sym >= 0 and self.ctx.sym_owner == <void*>self.symbols:
            return F.sym
        cdef int64_t sym = self.symbols.intern(<const char*>F.s_ptr, F.s_len)
        if F.sym == FF_SYM_PLAIN and sym >= 0:
            ffc_remember_symbol(&self.ctx, F, sym, <void*>self.symbols)
        return sym

    # ------------------------------------------------------------------ staging

    cdef inline int _stage_trade(self, Fields* F, bint agg) noexcept:
        cdef int64_t sym = self._symbol(F)
        if sym < 0:
            return K_ERROR - sym
        cdef MsgHeader* h = &self.hdr
        h.kind = K_TRADE
        h.agg = agg
        h.symbol = <uint32_t>sym
        h.first_id = h.last_id = F.aid if agg else F.tid
        h.prev_id = -1
        h.event_time = F.E
        h.nrows = 1
        return K_TRADE

    cdef int _stage_depth(self, Fields* F) noexcept:
        # "<symbol>@depth<N>" streams carry depthUpdate events too: partial books, by name
        cdef int64_t sym = self._symbol(F)
        if sym < 0:
            return K_ERROR - sym
        if F.stream_len > 0 and stream_is_partial(F.stream_ptr, F.stream_len):
            return self._stage_levels(F, K_PARTIAL, <uint32_t>sym, F.u, ST_B, ST_A)
        return self._stage_levels(F, K_DEPTH, <uint32_t>sym, F.u, ST_B, ST_A)

    cdef int _stage_ticker(self, Fields* F) noexcept:
        cdef int64_t sym = self._symbol(F)
        if sym < 0:
            return K_ERROR - sym
        cdef MsgHeader* h = &self.hdr
        h.kind = K_TICKER
        h.agg = 0
        h.symbol = <uint32_t>sym
        h.first_id = h.last_id = F.u
        h.prev_id = -1
        h.event_time = F.E if F.seen & F_E else -1
        h.nrows = 1
        return K_TICKER

    cdef int _stage_levels(self, Fields* F, int kind, uint32_t sym, int64_t last_id,
                           int st_bids, int st_asks) noexcept:
        """A depth diff (K_DEPTH) or a partial book (K_PARTIAL): one row per level, or one
        marker row when there is none."""
        cdef Py_ssize_t total = F.nlv[st_bids] + F.nlv[st_asks]
        if <uint64_t>total > (self.depth.cap if kind == K_DEPTH else self.partial.cap):
            return K_ERROR + R_TOO_MANY_LEVELS
        cdef MsgHeader* h = &self.hdr
        h.kind = kind
        h.agg = 0
        h.symbol = sym
        h.last_id = last_id
        if kind == K_DEPTH:
            h.first_id = F.UU
            h.prev_id = F.pu if F.seen & F_PU else -1
        else:
            h.first_id = last_id
            h.prev_id = -1
        h.event_time = F.E if F.seen & F_E else -1
        h.nrows = total if total else 1
        self.st_bids = st_bids
        self.st_asks = st_asks
        return kind

    # ------------------------------------------------------------------ commit

    cdef void commit_staged(self) noexcept:
        cdef Fields* F = self.staged
        cdef int k = self.hdr.kind
        if k == K_TRADE:
            self._emit_trade(F, self.staged_recv, self.hdr.agg)
        elif k == K_DEPTH:
            self._emit_depth(F, self.staged_recv, self.hdr.symbol)
        elif k == K_TICKER:
            self._emit_ticker(F, self.staged_recv)
        else:
            self._emit_partial(F, self.staged_recv, self.hdr.symbol, self.hdr.last_id,
                               self.st_bids, self.st_asks)

    cdef inline void _emit_trade(self, Fields* F, int64_t recv_ns, bint agg) noexcept:
        cdef TradeRow* row = <TradeRow*>self.trades.reserve_ahead(0)
        row.recv_ns = recv_ns
        row.event_time = F.E
        row.trade_time = F.T
        if agg:
            row.trade_id = F.aid
            row.first_id = F.first
            row.last_id = F.last
        else:
            row.trade_id = row.first_id = row.last_id = F.tid
        row.price = F.p.f
        row.qty = F.q.f
        row.price_fp = F.p.fp
        row.qty_fp = F.q.fp
        row.normal_qty = F.nq.f if F.seen & F_NQ else NAN
        row.symbol = self.hdr.symbol
        row.buyer_maker = F.m
        row.is_agg = agg
        row._pad[0] = row._pad[1] = 0
        if self.ctx.fp_none_seen:
            self.fp_inexact += (F.p.fp == FP_NONE) + (F.q.fp == FP_NONE)
        self.trades.commit(1)

    cdef void _emit_ticker(self, Fields* F, int64_t recv_ns) noexcept:
        cdef TickerRow* row = <TickerRow*>self.tickers.reserve_ahead(0)
        row.recv_ns = recv_ns
        row.event_time = F.E if F.seen & F_E else -1
        row.transact_time = F.T if F.seen & F_T else -1
        row.update_id = F.u
        row.bid_price = F.bp.f
        row.bid_qty = F.bq.f
        row.ask_price = F.ap.f
        row.ask_qty = F.aq.f
        row.bid_price_fp = F.bp.fp
        row.bid_qty_fp = F.bq.fp
        row.ask_price_fp = F.ap.fp
        row.ask_qty_fp = F.aq.fp
        row.symbol = self.hdr.symbol
        row._pad = 0
        if self.ctx.fp_none_seen:
            self.fp_inexact += ((F.bp.fp == FP_NONE) + (F.bq.fp == FP_NONE) + (F.ap.fp == FP_NONE)
                                + (F.aq.fp == FP_NONE))
        self.tickers.commit(1)

    cdef void _emit_depth(self, Fields* F, int64_t recv_ns, uint32_t sym) noexcept:
        cdef Py_ssize_t total = F.nlv[ST_B] + F.nlv[ST_A]
        cdef Py_ssize_t i, n
        cdef int side
        cdef const Level* lv
        cdef DepthRow* row = NULL
        cdef int64_t T = F.T if F.seen & F_T else -1
        cdef int64_t pu = F.pu if F.seen & F_PU else -1
        if total == 0:
            # No level changed, but the update ids still advance: keep the chain visible.
            row = <DepthRow*>self.depth.reserve(0)
            self._depth_head(row, F, recv_ns, sym, T, pu)
            row.side = -1
            row.price = row.qty = NAN
            row.price_fp = row.qty_fp = FP_NONE
            row.flags = ROW_LAST_OF_EVENT
            self.depth.commit(1)
            return
        # One reservation (a shared ring's intent) for every row, then the rows at a constant
        # stride, the head's fields held in locals: F and the rows may alias as far as the
        # compiler knows, so a per-row F.E would be a load per row.
        self.depth.reserve(<uint64_t>(total - 1))
        cdef DepthRow* base = <DepthRow*>self.depth.base
        cdef uint64_t mask = self.depth.mask
        cdef uint64_t w = self.depth._written
        cdef int64_t E = F.E, first = F.UU, last = F.u
        for side in range(2):
            lv = F.stage + (ST_B + side) * self.ctx.max_levels
            n = F.nlv[ST_B + side]
            for i in range(n):
                ff_prefetch_w(base + ((w + 8) & mask))   # see Ring.reserve_ahead
                row = base + (w & mask)
                row.recv_ns = recv_ns
                row.event_time = E
                row.transact_time = T
                row.first_id = first
                row.last_id = last
                row.prev_last_id = pu
                row.price = lv[i].price.f
                row.qty = lv[i].qty.f
                row.price_fp = lv[i].price.fp
                row.qty_fp = lv[i].qty.fp
                row.symbol = sym
                row.side = <int8_t>side
                row.flags = 0
                row._pad[0] = row._pad[1] = 0
                w += 1
        row.flags = ROW_LAST_OF_EVENT
        if self.ctx.fp_none_seen:
            self.fp_inexact += (levels_fp_none(F, ST_B, self.ctx.max_levels)
                                + levels_fp_none(F, ST_A, self.ctx.max_levels))
        self.depth.commit(total)

    cdef void _depth_head(self, DepthRow* row, Fields* F, int64_t recv_ns, uint32_t sym,
                          int64_t T, int64_t pu) noexcept:
        row.recv_ns = recv_ns
        row.event_time = F.E
        row.transact_time = T
        row.first_id = F.UU
        row.last_id = F.u
        row.prev_last_id = pu
        row.symbol = sym
        row._pad[0] = row._pad[1] = 0

    cdef void _emit_partial(self, Fields* F, int64_t recv_ns, uint32_t sym, int64_t last_id,
                            int st_bids, int st_asks) noexcept:
        cdef Py_ssize_t total = F.nlv[st_bids] + F.nlv[st_asks]
        cdef Py_ssize_t i
        cdef int side
        cdef Level* lv
        cdef PartialRow* row = NULL
        cdef int64_t E = F.E if F.seen & F_E else -1
        if total == 0:
            row = <PartialRow*>self.partial.reserve(0)
            row.recv_ns = recv_ns
            row.event_time = E
            row.last_id = last_id
            row.symbol = sym
            row.level = 0
            row.side = -1
            row.price = row.qty = NAN
            row.price_fp = row.qty_fp = FP_NONE
            row.flags = ROW_LAST_OF_EVENT
            self.partial.commit(1)
            return
        # As _emit_depth: one reservation, rows at a constant stride.
        self.partial.reserve(<uint64_t>(total - 1))
        cdef PartialRow* base = <PartialRow*>self.partial.base
        cdef uint64_t mask = self.partial.mask
        cdef uint64_t w = self.partial._written
        for side in range(2):
            lv = F.stage + (st_asks if side else st_bids) * self.ctx.max_levels
            for i in range(F.nlv[st_asks if side else st_bids]):
                row = base + ((w + <uint64_t>i) & mask)
                row.recv_ns = recv_ns
                row.event_time = E
                row.last_id = last_id
                row.symbol = sym
                row.level = <uint16_t>i if i < 0xFFFF else 0xFFFF
                row.side = <int8_t>side
                row.price = lv[i].price.f
                row.qty = lv[i].qty.f
                row.price_fp = lv[i].price.fp
                row.qty_fp = lv[i].qty.fp
                row.flags = 0
            w += <uint64_t>F.nlv[st_asks if side else st_bids]
        row.flags = ROW_LAST_OF_EVENT
        if self.ctx.fp_none_seen:
            self.fp_inexact += (levels_fp_none(F, st_bids, self.ctx.max_levels)
                                + levels_fp_none(F, st_asks, self.ctx.max_levels))
        self.partial.commit(total)
