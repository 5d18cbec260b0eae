cimport cython
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from fastfeed.core._codes cimport (K_CONTROL, K_DEPTH, K_ERROR, K_PARTIAL, K_TICKER, K_TRADE,
                                   K_UNKNOWN, N_KINDS, N_REJECTS, R_BAD_NUMBER, R_BAD_UTF8,
                                   R_MISSING_FIELD, R_OK, R_SYNTAX, R_TOO_DEEP, R_TOO_LONG,
                                   R_TOO_MANY_LEVELS, R_TOO_MANY_SYMBOLS, R_TRUNCATED,
                                   R_WRONG_TYPE)
from fastfeed.core._json cimport ff_scan, ff_strtod_fn
from fastfeed.core._ring cimport Ring
from fastfeed.core._rows cimport DepthRow

cdef extern from "_binance.h":
    ctypedef struct ff_dec "ff_dec":
        double f            # equals Python's float() of the decimal string
        int64_t fp          # exact fixed point at 10**-8, or FP_NONE
    ctypedef struct Level "ff_level":
        ff_dec price
        ff_dec qty
    ctypedef struct Fields "ff_fields":   # one message's collected fields
        uint32_t seen, bad, keys
        uint8_t reason[32]
        int ev
        int64_t E, T, aid, tid, first, last, UU, u, pu, luid
        int m
        ff_dec p, q, nq, bp, bq, ap, aq
        const uint8_t* s_ptr
        ptrdiff_t s_len
        int64_t sym         # id from the plans' symbol cache, or FF_SYM_PLAIN / FF_SYM_UNKNOWN
        int sym_slot
        const uint8_t* stream_ptr
        ptrdiff_t stream_len
        Level* stage        # 4 staging areas of ctx.max_levels (ST_B .. ST_ASKS)
        ptrdiff_t nlv[4]
        int depth
    ctypedef struct ff_ctx:
        uint8_t* scratch
        ptrdiff_t scratch_cap, scratch_used
        ptrdiff_t max_levels
        int64_t fp_none
        int fp_none_seen
        ff_strtod_fn strtod
        const void* sym_owner
    int ffb_parse_object(ff_ctx* c, ff_scan* s, Fields* F, Fields* inner) noexcept

# What the decoder staged: everything a filter needs to accept or reject a message without
# reading its rows (BinanceDecoder.stage_ptr fills it; commit_staged writes the rows).
ctypedef struct MsgHeader:
    int kind                # K_TRADE .. K_PARTIAL (only these stage rows)
    uint8_t agg             # trades: 1 aggTrade, 0 trade
    uint32_t symbol
    int64_t first_id        # trade id; depth U; ticker update id; partial lastUpdateId
    int64_t last_id         # trade id; depth u; ticker update id; partial lastUpdateId
    int64_t prev_id         # depth pu (USD-M), else -1
    int64_t event_time      # E, or -1 where the payload has none
    Py_ssize_t nrows        # rows commit_staged will write (>= 1)


@cython.final
cdef class SymbolTable:
    cdef char* arena
    cdef Py_ssize_t arena_used, arena_cap
    cdef uint32_t* offsets      # id -> start in arena (id 0 is the empty name)
    cdef uint32_t* lengths
    cdef uint32_t count, max_symbols
    cdef uint32_t last          # id of the last name looked up
    cdef uint32_t* slots        # open addressing: 0 = empty, else id
    cdef uint64_t* hashes
    cdef uint32_t nslots
    cdef object _names          # cache of decoded Python names, filled on demand

    cdef int64_t _slot(self, const char* p, Py_ssize_t n, uint64_t h) noexcept
    cdef int64_t intern(self, const char* p, Py_ssize_t n) noexcept


@cython.final
cdef class BinanceDecoder:
    cdef readonly Ring trades, depth, tickers, partial
    cdef readonly SymbolTable symbols
    cdef Level* stage           # 4 staging areas of max_levels each (outer/inner x bids/asks)
    cdef ff_ctx ctx             # scanner state: escape arena, level bound, counters
    cdef uint64_t kind_count[N_KINDS]
    cdef uint64_t kind_bytes[N_KINDS]
    cdef uint64_t reject_count[N_REJECTS]
    cdef uint64_t fp_inexact            # decimals written into rows as FP_NONE
    cdef char* recent                   # last rejected / unknown payloads (truncated copies)
    cdef uint32_t recent_len[16]
    cdef uint32_t recent_full_len[16]
    cdef uint8_t recent_code[16]
    cdef uint64_t recent_seq[2]         # per class: rejected (0) and unknown (1)
    cdef readonly uint32_t default_symbol
    cdef public object on_control       # callable(dict) or None, cold path
    cdef readonly object control_messages   # bounded deque of parsed control replies
    cdef readonly uint64_t shutdown_count   # serverShutdown events seen
    cdef readonly int64_t last_shutdown_time
    cdef public object on_shutdown      # callable(event_time) or None, cold path
    cdef bint _shutdown                 # the control payload being classified is serverShutdown
    cdef int64_t _shutdown_E
    cdef readonly uint64_t control_dropped  # control replies that did not parse on the cold path
    cdef readonly uint64_t slow_count       # payloads that missed the straight-line plans
    cdef Fields f_outer, f_inner        # the message being decoded (staged until committed)
    cdef Fields* staged                 # f_outer or f_inner: the staged message's fields
    cdef int64_t staged_recv
    cdef int st_bids, st_asks           # staging areas of a staged partial / depth message
    cdef MsgHeader hdr                  # the staged message's header

    # The hot entry points.  stage_ptr parses, validates and counts one payload; when it
    # returns K_TRADE .. K_PARTIAL, ``hdr`` describes the message and commit_staged writes
    # its rows (nothing is written before: a message left uncommitted leaves no trace in
    # the rings; the next stage_ptr replaces it).  decode_ptr is both.
    cdef int stage_ptr(self, const char* payload, Py_ssize_t n, int64_t recv_ns) noexcept
    cdef void commit_staged(self) noexcept
    cdef int decode_ptr(self, const char* payload, Py_ssize_t n, int64_t recv_ns) noexcept

    cdef Py_ssize_t _decode_lines(self, const char* p, Py_ssize_t n, int64_t recv_ns) noexcept
    cdef inline const char* _decode_line(
            self, const char* p, const char* end, int64_t recv_ns) noexcept
    cdef void _begin_plan(self, Fields* outer, Fields* inner) noexcept
    cdef void _begin(self, Fields* outer, Fields* inner) noexcept
    cdef int _decode_slow(
            self, const char* payload, Py_ssize_t n, Fields* outer, Fields* inner,
            int64_t recv_ns) noexcept
    cdef inline int _finish(
            self, const char* payload, Py_ssize_t n, Fields* outer, Fields* inner, int64_t recv_ns,
            bint planned) noexcept
    cdef list _recent(self, int cls)
    cdef int _reject(self, const char* payload, Py_ssize_t n, int reason) noexcept
    cdef int _other(self, const char* payload, Py_ssize_t n, int k) noexcept
    cdef void _remember(self, int cls, const char* payload, Py_ssize_t n, int code) noexcept
    cdef void _cold_control(self, const char* payload, Py_ssize_t n) noexcept
    cdef int _check(self, Fields* F, uint32_t req, uint32_t opt) noexcept
    cdef int _classify(self, Fields* F) noexcept
    cdef inline int _stage_trade(self, Fields* F, bint agg) noexcept
    cdef int _stage_depth(self, Fields* F) noexcept
    cdef int _stage_ticker(self, Fields* F) noexcept
    cdef int _stage_levels(
            self, Fields* F, int kind, uint32_t sym, int64_t last_id, int st_bids,
            int st_asks) noexcept
    cdef int64_t _stream_symbol(self, const uint8_t* p, Py_ssize_t n) noexcept
    cdef inline int64_t _symbol(self, Fields* F) noexcept
    cdef inline void _emit_trade(self, Fields* F, int64_t recv_ns, bint agg) noexcept
    cdef void _emit_ticker(self, Fields* F, int64_t recv_ns) noexcept
    cdef void _emit_depth(self, Fields* F, int64_t recv_ns, uint32_t sym) noexcept
    cdef void _depth_head(
            self, DepthRow* row, Fields* F, int64_t recv_ns, uint32_t sym, int64_t T,
            int64_t pu) noexcept
    cdef void _emit_partial(
            self, Fields* F, int64_t recv_ns, uint32_t sym, int64_t last_id, int st_bids,
            int st_asks) noexcept
