# C-level interface of the L2 order book core (see _book.pyx for the semantics).
#
# Other Cython modules (the feed) cimport BookSet and call apply_rows / apply_ring at C level;
# Python users go through the def methods documented in _book.pyi.
from libc.math cimport NAN
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cimport numpy as cnp

from fastfeed.core._ring cimport Ring
from fastfeed.core._rows cimport DepthRow

cdef enum BookState:
    SYNCING = 0     # no book: events are buffered, a snapshot is requested
    BRIDGING = 1    # snapshot loaded, waiting for the first event spanning its lastUpdateId
    VALID = 2       # book exact at last_update_id

# Codes of the rows of the tops ring and of the events ring.
cdef enum BookEvent:
    EV_UPDATE = 0           # an event was applied (tops ring only)
    EV_SYNCED = 1           # first event applied on top of a snapshot: the book is valid
    EV_GAP = 2              # continuity broken (spot U > id+1, futures pu != id)
    EV_CROSSED = 3          # best bid >= best ask after an event
    EV_RESYNC = 4           # book discarded, snapshot requested (reason = the cause)
    EV_STALE = 5            # event older than the book, ignored (u <= id)
    EV_SNAPSHOT = 6         # snapshot loaded, waiting to bridge
    EV_SNAPSHOT_STALE = 7   # snapshot older than the stream: fetch again
    EV_BUFFER_OVERFLOW = 8  # oldest buffered events dropped while syncing
    EV_BAD_VALUE = 9        # price/qty not representable (FP_NONE, off tick, bad side)
    EV_LOST = 10            # depth rows were overwritten before the book read them
    EV_NEW = 11             # symbol first seen (reason of its first EV_RESYNC)
    EV_RESET = 12           # resync forced by the caller (reconnect, validation)
    EV_DEPLETED = 13        # a side lost every level of its exact region: best unknown

cdef enum:
    N_COUNTERS = 17

# Per-book counters (indices into Book.counters); names in _book.pyx COUNTER_NAMES.
cdef enum:
    C_EVENTS = 0            # events applied
    C_LEVELS = 1            # levels applied
    C_STALE = 2             # events ignored as older than the book or buffer
    C_GAPS = 3              # gaps detected while valid
    C_CROSSED = 4
    C_RESYNCS = 5
    C_SNAPSHOTS = 6         # snapshots loaded
    C_SNAPSHOTS_STALE = 7   # snapshots rejected as older than the stream
    C_COVERED = 8           # buffered events dropped because the snapshot covers them
    C_BUFFER_DROPPED = 9    # events dropped by buffer overflow
    C_BUFFER_GAPS = 10      # gaps inside the buffer (buffer restarted)
    C_CAP_DROPPED = 11      # levels dropped or evicted by the depth cap
    C_MISSING_DELETES = 12  # qty 0 for a level the book does not hold (normal)
    C_BAD_VALUES = 13
    C_BUFFERED = 14         # events buffered (total)
    C_SNAPSHOTS_IGNORED = 15  # snapshots received while already valid
    C_DEPLETED = 16         # resyncs because a capped / cut side ran out of exact levels


# One side of a book: keys ascending with the best level at the END, stored in the middle
# of an allocation twice the cap so an insert or delete memmoves the shorter half.
# Bids key = price, asks key = -price: one code path serves both sides.  A level removed
# from the middle stays as a tombstone (qty 0, key kept, so the keys stay sorted) that a
# later insert nearby takes over instead of moving half the side; both ends are always live.
ctypedef struct Side:
    int64_t* keys
    int64_t* qtys
    Py_ssize_t off          # index of the worst held slot
    Py_ssize_t n            # slots held: live levels and tombstones
    Py_ssize_t live         # levels held
    Py_ssize_t tomb         # tombstones among the slots
    Py_ssize_t cap          # max levels (the depth cap)
    Py_ssize_t alloc        # 2 * cap
    int64_t bound           # keys >= bound are exact; INT64_MIN: the whole side is exact


ctypedef struct Book:
    Side side[2]
    int64_t last_id         # book update id (valid/bridging)
    int64_t price_div       # tick size in fp units (1 = plain fixed point)
    int64_t qty_div         # lot size in fp units
    uint32_t symbol
    uint8_t state
    uint8_t queued          # in the snapshot request queue
    uint8_t last_reason     # code of the last event that invalidated the book
    uint8_t buf_overflowed  # overflow already reported in this syncing period
    # buffer of depth rows while syncing (allocated on demand, freed once valid)
    DepthRow* buf
    Py_ssize_t buf_n
    Py_ssize_t buf_cap
    Py_ssize_t buf_event_start  # first row of the event being buffered
    int64_t buf_first_id        # U of the first buffered event (-1: none)
    int64_t buf_last_id         # u of the last buffered event
    bint buf_chained            # buf_last_id is meaningful
    uint64_t buf_events
    uint64_t counters[N_COUNTERS]
    # header of the last event applied (-1 until one is): what best_into() reports with the
    # best levels, so a reader can tell how fresh they are
    int64_t ev_recv_ns
    int64_t ev_time
    int64_t ev_transact_time
    int64_t ev_first_id


ctypedef struct TopRow:
    int64_t recv_ns
    int64_t event_time
    int64_t transact_time
    int64_t first_id        # U of the event (-1 for rows not tied to an event)
    int64_t update_id       # book update id after the event
    double bid_price        # NaN when the side is empty
    double bid_qty
    double ask_price
    double ask_qty
    int64_t bid_price_fp    # fixed point 1e8; 0 when the side is empty
    int64_t bid_qty_fp
    int64_t ask_price_fp
    int64_t ask_qty_fp
    uint32_t symbol
    uint16_t levels         # levels applied by the event (saturating)
    uint8_t state           # BookState after the event
    uint8_t code            # BookEvent


ctypedef struct EventRow:
    int64_t recv_ns
    int64_t event_time
    int64_t book_id         # book (or buffer) update id when it happened
    int64_t first_id        # U, u, pu of the event that caused it (-1 if none)
    int64_t last_id
    int64_t prev_last_id
    uint64_t top_seq        # sequence number of the matching row in the tops ring
    uint32_t symbol
    uint8_t code            # BookEvent
    uint8_t reason          # for EV_RESYNC: the cause
    uint8_t state           # BookState after it


# One side of a snapshot being loaded: int64 fixed-point (price, qty) pairs read in place
# (PARTIAL rows, an (n, 2) array, ...) through two pointers and a stride.
ctypedef struct SnapSide:
    const char* price       # the first level's price_fp
    const char* qty         # the first level's qty_fp
    Py_ssize_t stride       # bytes from one level to the next
    Py_ssize_t n            # levels given (qty 0 included)
    Py_ssize_t kept         # levels with qty != 0
    bint best_first         # kept levels strictly best first (no duplicate price)
    bint cut                # the snapshot may have been cut at its limit


cdef class BookSet:
    cdef Book** books               # indexed by symbol id
    cdef uint32_t max_symbols
    cdef uint32_t* queue            # FIFO of symbol ids waiting for a snapshot
    cdef uint32_t q_head, q_len
    cdef readonly bint usdm         # pu chain rules (USD-M / COIN-M) instead of spot rules
    cdef readonly str market
    cdef readonly Py_ssize_t max_levels
    cdef readonly Py_ssize_t buffer_rows
    cdef readonly bint auto_track
    cdef readonly bint resync_on_stale
    cdef readonly Ring tops
    cdef readonly Ring events
    cdef object _logger
    cdef public object name_of          # callable(symbol id) -> name, for log lines; or None
    # event in progress (rows of one event may span two batches)
    cdef bint in_event
    cdef bint skip_to_event_end
    cdef Book* cur
    cdef DepthRow cur_row           # first row of the event in progress
    cdef int cur_action
    cdef Py_ssize_t cur_levels
    cdef bint cur_bad
    cdef bint cur_bridge
    # set-wide counters
    cdef readonly uint64_t untracked_events
    cdef readonly uint64_t malformed_events
    cdef readonly uint64_t lost_rows

    cdef Book* book(self, uint32_t symbol) noexcept
    cdef Book* track_c(self, uint32_t symbol) noexcept
    cdef void apply_rows(self, const DepthRow* rows, Py_ssize_t n) noexcept
    cdef uint64_t apply_ring(self, Ring ring, uint64_t cursor) noexcept
    # internals
    cdef void _apply_level(self, const DepthRow* r) noexcept
    cdef void _begin_event(self, const DepthRow* r) noexcept
    cdef void _end_event(self) noexcept
    cdef void _buffer_begin(self, Book* b, const DepthRow* r) noexcept
    cdef void _buffer_row(self, const DepthRow* r) noexcept
    cdef bint _buffer_make_room(self, Book* b) noexcept
    cdef void _overflowed(self, Book* b, const DepthRow* r) noexcept
    cdef void _request(self, Book* b) noexcept
    cdef void _resync(self, Book* b, uint8_t reason, const DepthRow* r) noexcept
    cdef void _lost(self) noexcept
    cdef uint64_t _write_top(self, Book* b, uint8_t code, const DepthRow* r) noexcept
    cdef void _emit(self, Book* b, uint8_t code, uint8_t reason, const DepthRow* r) noexcept
    cdef void _log(self, EventRow* e) noexcept
    cdef Book* _get(self, Py_ssize_t symbol) except NULL
    cdef int _snapshot_side(self, Book* b, levels, int side, limit, SnapSide* out,
                            list keep) except -1
    cdef void _load_side(self, Book* b, int side, const SnapSide* ss) noexcept
    cdef tuple _side_arrays(self, Book* b, int side, Py_ssize_t n, bint as_float)


# O(1) top of book, for Cython consumers.  fill_best: both sides' best price and qty (int64
# fp and float64; 0 and NaN for an empty side) into the best fields of a TopRow, as the tops
# ring and BookSet.best_into() show them.  best_bid_fp / best_ask_fp: valid only when
# side.n > 0.
cdef inline void _side_best(const Book* b, int side, int64_t* price_fp, int64_t* qty_fp,
                            double* price, double* qty) noexcept:
    # both ends of a side are always live levels (no tombstone): O(1)
    cdef const Side* s = &b.side[side]
    if s.n:
        price_fp[0] = (s.keys[s.off + s.n - 1] if side == 0 else -s.keys[s.off + s.n - 1]) \
            * b.price_div
        qty_fp[0] = s.qtys[s.off + s.n - 1] * b.qty_div
        price[0] = price_fp[0] / 1e8     # exact scale: the correctly rounded decimal
        qty[0] = qty_fp[0] / 1e8
    else:
        price_fp[0] = qty_fp[0] = 0
        price[0] = qty[0] = NAN

cdef inline void fill_best(TopRow* t, const Book* b) noexcept:
    _side_best(b, 0, &t.bid_price_fp, &t.bid_qty_fp, &t.bid_price, &t.bid_qty)
    _side_best(b, 1, &t.ask_price_fp, &t.ask_qty_fp, &t.ask_price, &t.ask_qty)

cdef inline int64_t best_bid_fp(Book* b) noexcept:
    return b.side[0].keys[b.side[0].off + b.side[0].n - 1] * b.price_div

cdef inline int64_t best_ask_fp(Book* b) noexcept:
    return -b.side[1].keys[b.side[1].off + b.side[1].n - 1] * b.price_div
