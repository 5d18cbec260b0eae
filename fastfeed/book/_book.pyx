"""L2 order books for Binance diff-depth streams: sans-IO synchronisation and int64 levels.

A ``BookSet`` holds one book per symbol id (the decoder's symbol ids).  It consumes depth
rows (``DEPTH_DTYPE``, one row per level, rows of one event consecutive, the last flagged)
straight from a numpy array or from the decoder's depth ring, and implements the local
order book procedure of Binance ("How to manage a local order book correctly" in the spot
WebSocket streams docs and on the USD-M futures docs pages) per symbol:

* ``SYNCING``: events are buffered (bounded, oldest dropped first and counted) and the
  symbol sits in the snapshot request queue (``take_snapshot_requests()``).
* ``apply_snapshot()``: rejected as too old (and re-requested) when the first buffered event
  the snapshot does not cover starts after it; otherwise loaded, covered events dropped,
  the rest replayed.  State ``BRIDGING`` until the first event spanning ``lastUpdateId``
  is applied, then ``VALID``.
* ``VALID``: every event is checked.  Spot: ``u <= id`` is stale (ignored, counted),
  ``U > id + 1`` is a gap.  USD-M: ``u <= id`` is stale, ``pu != id`` is a gap.  A gap, a
  crossed book (best bid >= best ask after an event) or a value that cannot be represented
  resyncs that symbol alone: book cleared, the gapped event becomes the first buffered one,
  snapshot requested.  Other symbols keep updating.

Every applied event writes one row to the ``tops`` ring (best bid/ask after it); book events
(synced, gap, crossed, resync, ...) write a row with their code to ``tops`` too, so they are
in order with the updates, and a detailed row to the ``events`` ring; they are counted and
logged on the ``fastfeed.book`` logger.

Prices and quantities are int64: the rows' fixed-point values (scale 1e8), optionally
divided by a per-symbol tick and lot size (``set_scale``).  Depth cap: each side holds at
most ``max_levels`` levels.  A level worse than every held level of a full side is dropped;
an insert into a full side evicts the worst level.  Either way the side's exact region
shrinks: ``bounds()`` gives the price beyond which the side may miss levels (the snapshot's
worst level sets it too, since a REST snapshot is cut at its limit), so a later delete of an
unknown level there is normal.  Levels that arrive beyond the bound are still held while
there is room.  If a side loses every level of its exact region, its best is unknown: the
book resyncs (``Event.DEPLETED``).
"""
import logging
from collections import namedtuple
from enum import IntEnum

import numpy as np
cimport numpy as cnp
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport INT64_MIN
from libc.string cimport memcpy, memmove, memset

from fastfeed.core._ring cimport Ring
from fastfeed.core._rows cimport FP_NONE, ROW_LAST_OF_EVENT, DepthRow
from fastfeed.core._rows cimport field_offset as _off

from fastfeed.core._decoder import parse_decimal
from fastfeed.core._rows import DEPTH_DTYPE as _DEPTH_DTYPE  # private: not this module's API
from fastfeed.core._rows import struct_dtype as _dtype

cnp.import_array()

cdef double FP_SCALE_D = 1e8   # exact in binary, so fp / 1e8 is float(decimal string)

cdef enum:
    ACT_SKIP = 0
    ACT_APPLY = 1
    ACT_BUFFER = 2

cdef enum:
    LINK_NEXT = 0
    LINK_STALE = 1      # covered: older than the book / snapshot
    LINK_GAP = 2

cdef enum:
    SET_UPDATED = 0
    SET_INSERTED = 1
    SET_REMOVED = 2
    SET_MISSING = 3
    SET_DROPPED = 4     # beyond the cap
    SET_EVICTED = 5     # inserted, the worst level evicted

COUNTER_NAMES = (
    "events", "levels", "stale", "gaps", "crossed", "resyncs", "snapshots",
    "snapshots_stale", "covered", "buffer_dropped", "buffer_gaps", "cap_dropped",
    "missing_deletes", "bad_values", "buffered", "snapshots_ignored", "depleted",
)

State = IntEnum("State", {"SYNCING": SYNCING, "BRIDGING": BRIDGING, "VALID": VALID})
State.__doc__ = "Synchronisation state of one symbol's book."

Event = IntEnum("Event", {
    "UPDATE": EV_UPDATE, "SYNCED": EV_SYNCED, "GAP": EV_GAP, "CROSSED": EV_CROSSED,
    "RESYNC": EV_RESYNC, "STALE": EV_STALE, "SNAPSHOT": EV_SNAPSHOT,
    "SNAPSHOT_STALE": EV_SNAPSHOT_STALE, "BUFFER_OVERFLOW": EV_BUFFER_OVERFLOW,
    "BAD_VALUE": EV_BAD_VALUE, "LOST": EV_LOST, "NEW": EV_NEW, "RESET": EV_RESET,
    "DEPLETED": EV_DEPLETED,
})
Event.__doc__ = "Codes of the rows of the tops and events rings."


class SnapshotResult(IntEnum):
    """Outcome of BookSet.apply_snapshot."""
    SYNCED = 0      # loaded and bridged by a buffered event: the book is VALID
    WAITING = 1     # loaded; no buffered event reaches past it yet (state BRIDGING)
    TOO_OLD = 2     # older than the first buffered event: not loaded, requested again
    IGNORED = 3     # the book is already VALID: nothing done
    FAILED = 4      # loaded, but replaying the buffer invalidated it again (crossed / bad value)


Top = namedtuple("Top", ["bid_price", "bid_qty", "ask_price", "ask_qty"])
Top.__doc__ = "Top-N levels, best first: four arrays (float64 from top(), int64 fp from top_fp())."

_LOG_LEVEL = {
    EV_SYNCED: logging.INFO, EV_GAP: logging.WARNING, EV_CROSSED: logging.WARNING,
    EV_RESYNC: logging.INFO, EV_STALE: logging.DEBUG, EV_SNAPSHOT: logging.DEBUG,
    EV_SNAPSHOT_STALE: logging.INFO, EV_BUFFER_OVERFLOW: logging.WARNING,
    EV_BAD_VALUE: logging.ERROR, EV_LOST: logging.ERROR, EV_RESET: logging.INFO,
    EV_DEPLETED: logging.WARNING,
}


cdef TopRow _tr
cdef EventRow _er


TOP_DTYPE = _dtype([
    ("recv_ns", "<i8", _off(&_tr.recv_ns, &_tr)),
    ("event_time", "<i8", _off(&_tr.event_time, &_tr)),
    ("transact_time", "<i8", _off(&_tr.transact_time, &_tr)),
    ("first_id", "<i8", _off(&_tr.first_id, &_tr)),
    ("update_id", "<i8", _off(&_tr.update_id, &_tr)),
    ("bid_price", "<f8", _off(&_tr.bid_price, &_tr)),
    ("bid_qty", "<f8", _off(&_tr.bid_qty, &_tr)),
    ("ask_price", "<f8", _off(&_tr.ask_price, &_tr)),
    ("ask_qty", "<f8", _off(&_tr.ask_qty, &_tr)),
    ("bid_price_fp", "<i8", _off(&_tr.bid_price_fp, &_tr)),
    ("bid_qty_fp", "<i8", _off(&_tr.bid_qty_fp, &_tr)),
    ("ask_price_fp", "<i8", _off(&_tr.ask_price_fp, &_tr)),
    ("ask_qty_fp", "<i8", _off(&_tr.ask_qty_fp, &_tr)),
    ("symbol", "<u4", _off(&_tr.symbol, &_tr)),
    ("levels", "<u2", _off(&_tr.levels, &_tr)),
    ("state", "u1", _off(&_tr.state, &_tr)),
    ("code", "u1", _off(&_tr.code, &_tr)),
], sizeof(TopRow))

cdef cnp.dtype _TOP_DESCR = TOP_DTYPE

BOOK_EVENT_DTYPE = _dtype([
    ("recv_ns", "<i8", _off(&_er.recv_ns, &_er)),
    ("event_time", "<i8", _off(&_er.event_time, &_er)),
    ("book_id", "<i8", _off(&_er.book_id, &_er)),
    ("first_id", "<i8", _off(&_er.first_id, &_er)),
    ("last_id", "<i8", _off(&_er.last_id, &_er)),
    ("prev_last_id", "<i8", _off(&_er.prev_last_id, &_er)),
    ("top_seq", "<u8", _off(&_er.top_seq, &_er)),
    ("symbol", "<u4", _off(&_er.symbol, &_er)),
    ("code", "u1", _off(&_er.code, &_er)),
    ("reason", "u1", _off(&_er.reason, &_er)),
    ("state", "u1", _off(&_er.state, &_er)),
], sizeof(EventRow))


def to_fp(s):
    """Exact fixed-point (scale 1e8) int of a decimal string such as ``"61837.63000000"``:
    the decoder's own reader (``fastfeed.core._decoder.parse_decimal``), so a snapshot's
    levels are read exactly as the stream's.

    Raises ValueError for a value with no exact int64 at that scale (more than 8
    significant decimals, or too large) or a string that is not a decimal.
    """
    fp = parse_decimal(s.strip())[1]
    if fp == FP_NONE:
        raise ValueError(f"{s!r} has no exact fixed-point value at 8 decimals")
    return fp


# ---------------------------------------------------------------------------------------
# One side: sorted int64 keys, best at the end, inside an allocation of 2 * cap.

cdef inline Py_ssize_t _lower_bound(const int64_t* k, Py_ssize_t n, int64_t key) noexcept:
    # First i with k[i] >= key: branchless binary search.
    cdef const int64_t* base = k
    cdef Py_ssize_t half
    if n == 0:
        return 0
    while n > 1:
        half = n >> 1
        base = base + half if base[half] < key else base
        n -= half
    return (base - k) + (base[0] < key)


cdef inline void _recentre(Side* s) noexcept:
    cdef Py_ssize_t new_off = (s.alloc - s.n) >> 1
    memmove(s.keys + new_off, s.keys + s.off, s.n * sizeof(int64_t))
    memmove(s.qtys + new_off, s.qtys + s.off, s.n * sizeof(int64_t))
    s.off = new_off


cdef inline void _compact(Side* s) noexcept:
    # Squeeze the tombstones out, then recentre.
    cdef int64_t* k = s.keys + s.off
    cdef int64_t* q = s.qtys + s.off
    cdef Py_ssize_t i, j = 0
    for i in range(s.n):
        if q[i] != 0:
            k[j] = k[i]
            q[j] = q[i]
            j += 1
    s.n = j
    s.tomb = 0
    _recentre(s)


cdef inline void _trim(Side* s) noexcept:
    # Both ends stay live: the best and the worst level are read in O(1).
    while s.n and s.qtys[s.off + s.n - 1] == 0:
        s.n -= 1
        s.tomb -= 1
    while s.n and s.qtys[s.off] == 0:
        s.off += 1
        s.n -= 1
        s.tomb -= 1


cdef enum:
    TOMB_REACH = 32         # how far an insert looks for a tombstone to take over


cdef inline void _side_insert(Side* s, Py_ssize_t i, int64_t key, int64_t qty) noexcept:
    # Insert before slot i (keys[i-1] < key < keys[i]).  A tombstone within reach takes the
    # shift; otherwise move whichever part (above or below i) is shorter.
    cdef Py_ssize_t n = s.n, p, t, lim
    cdef int64_t* q = s.qtys + s.off
    s.live += 1
    if s.tomb and (n - i if n - i < i else i) > 8:     # near an end, the plain move is shorter
        lim = i + TOMB_REACH if i + TOMB_REACH < n else n
        t = i
        while t < lim and q[t] != 0:
            t += 1
        if t < lim:                          # shift [i, t) up one slot onto the tombstone
            p = s.off + i
            memmove(s.keys + p + 1, s.keys + p, (t - i) * sizeof(int64_t))
            memmove(s.qtys + p + 1, s.qtys + p, (t - i) * sizeof(int64_t))
            s.keys[p] = key
            s.qtys[p] = qty
            s.tomb -= 1
            return
        lim = i - TOMB_REACH if i > TOMB_REACH else 0
        t = i - 1
        while t >= lim and q[t] != 0:
            t -= 1
        if t >= lim:                         # shift (t, i) down one slot onto it
            p = s.off + t
            memmove(s.keys + p, s.keys + p + 1, (i - 1 - t) * sizeof(int64_t))
            memmove(s.qtys + p, s.qtys + p + 1, (i - 1 - t) * sizeof(int64_t))
            s.keys[s.off + i - 1] = key
            s.qtys[s.off + i - 1] = qty
            s.tomb -= 1
            return
    if n - i <= i:
        if s.off + n == s.alloc:
            _recentre(s)
        p = s.off + i
        memmove(s.keys + p + 1, s.keys + p, (n - i) * sizeof(int64_t))
        memmove(s.qtys + p + 1, s.qtys + p, (n - i) * sizeof(int64_t))
    else:
        if s.off == 0:
            _recentre(s)
        s.off -= 1
        memmove(s.keys + s.off, s.keys + s.off + 1, i * sizeof(int64_t))
        memmove(s.qtys + s.off, s.qtys + s.off + 1, i * sizeof(int64_t))
        p = s.off + i
    s.keys[p] = key
    s.qtys[p] = qty
    s.n = n + 1


cdef inline void _side_remove(Side* s, Py_ssize_t i) noexcept:
    s.live -= 1
    if i == s.n - 1:
        s.n -= 1
    elif i == 0:
        s.off += 1
        s.n -= 1
    else:
        s.qtys[s.off + i] = 0
        s.tomb += 1
    _trim(s)
    # Tombstones cost a little on every search and top-N read: keep them a minority.
    if s.tomb > 64 and 4 * s.tomb > s.live:
        _compact(s)


cdef inline int _side_set(Side* s, int64_t key, int64_t qty) noexcept:
    """Set the absolute qty of a level (0 removes it), honouring the depth cap."""
    cdef int64_t* k = s.keys + s.off
    cdef Py_ssize_t n = s.n
    cdef Py_ssize_t i = _lower_bound(k, n, key)
    if i < n and k[i] == key:
        if s.qtys[s.off + i] == 0:          # a tombstone: the level is not held
            if qty == 0:
                return SET_MISSING
            if s.live == s.cap:
                _compact(s)                  # then insert it the ordinary way, below
                k = s.keys + s.off
                n = s.n
                i = _lower_bound(k, n, key)
            else:
                s.qtys[s.off + i] = qty
                s.tomb -= 1
                s.live += 1
                return SET_INSERTED
        elif qty != 0:
            s.qtys[s.off + i] = qty
            return SET_UPDATED
        else:
            _side_remove(s, i)
            return SET_REMOVED
    if qty == 0:
        return SET_MISSING      # Binance: removing a level you do not hold is normal
    cdef int res = SET_INSERTED
    if s.live == s.cap:
        if i == 0:
            # worse than every held level of a full side: forget it, and that region
            if key >= s.bound:
                s.bound = key + 1
            return SET_DROPPED
        if k[0] >= s.bound:
            s.bound = k[0] + 1
        s.off += 1                          # evict the worst level (always live)
        s.n -= 1
        s.live -= 1
        _trim(s)
        i = _lower_bound(s.keys + s.off, s.n, key)
        res = SET_EVICTED
    if s.tomb and (s.n >= s.cap or s.off == 0 or s.off + s.n == s.alloc):
        # slots (live + tombstones) stay within the allocation
        _compact(s)
        i = _lower_bound(s.keys + s.off, s.n, key)
    _side_insert(s, i, key, qty)
    return res


cdef inline void _side_clear(Side* s) noexcept:
    s.n = 0
    s.live = 0
    s.tomb = 0
    s.off = s.cap
    s.bound = INT64_MIN


cdef inline bint _depleted(Side* s) noexcept:
    # The best held level is outside the exact region (or the side is empty while levels
    # beyond its bound may exist): the true best is unknown.
    return s.bound != INT64_MIN and (s.n == 0 or s.keys[s.off + s.n - 1] < s.bound)


cdef inline bint _crossed(Book* b) noexcept:
    if b.side[0].n == 0 or b.side[1].n == 0:
        return False
    return (b.side[0].keys[b.side[0].off + b.side[0].n - 1]
            >= -b.side[1].keys[b.side[1].off + b.side[1].n - 1])


# Binance's sequencing rules (module docstring), shared by the valid book and the buffer.
cdef inline int _link(bint usdm, int64_t book_id, const DepthRow* r) noexcept:
    if r.last_id <= book_id:
        return LINK_STALE
    if usdm:
        return LINK_NEXT if r.prev_last_id == book_id else LINK_GAP
    return LINK_NEXT if r.first_id <= book_id + 1 else LINK_GAP


cdef inline int _bridge(bint usdm, int64_t lid, const DepthRow* r) noexcept:
    # First event on a snapshot.  Spot: drop u <= lid, apply U <= lid+1 <= u.
    # USD-M: drop u < lid, apply U <= lid <= u.  Otherwise the snapshot is too old.
    if usdm:
        if r.last_id < lid:
            return LINK_STALE
        return LINK_NEXT if r.first_id <= lid else LINK_GAP
    if r.last_id <= lid:
        return LINK_STALE
    return LINK_NEXT if r.first_id <= lid + 1 else LINK_GAP


cdef enum:
    BAD_INEXACT = 1     # FP_NONE: the decimal has no exact int64 at scale 1e8
    BAD_RANGE = 2       # price <= 0 or qty < 0
    BAD_GRID = 4        # off the tick / lot grid


_I8 = np.dtype(np.int64)


cdef inline int64_t _at(const char* base, Py_ssize_t i, Py_ssize_t stride) noexcept:
    cdef int64_t v
    memcpy(&v, base + i * stride, sizeof(int64_t))     # rows of a packed dtype may be unaligned
    return v


cdef void _point(SnapSide* ss, cnp.ndarray a, Py_ssize_t price_off, Py_ssize_t qty_off,
                 Py_ssize_t stride) noexcept:
    cdef const char* base = <const char*>cnp.PyArray_DATA(a)
    ss.price = base + price_off
    ss.qty = base + qty_off
    ss.stride = stride
    ss.n = cnp.PyArray_DIM(a, 0)


cdef int _scan_side(const Book* b, SnapSide* ss, int side) noexcept:
    # One pass over a snapshot side: BAD_* flags of its values, the levels it keeps (qty > 0)
    # and whether they come strictly best first (bids descending, asks ascending).
    cdef Py_ssize_t i
    cdef int bad = 0
    cdef int64_t p, q, key, prev = 0
    ss.kept = 0
    ss.best_first = True
    for i in range(ss.n):
        p = _at(ss.price, i, ss.stride)
        q = _at(ss.qty, i, ss.stride)
        if p == FP_NONE or q == FP_NONE:
            bad |= BAD_INEXACT
        elif p <= 0 or q < 0:
            bad |= BAD_RANGE
        elif (b.price_div != 1 and p % b.price_div) or (b.qty_div != 1 and q % b.qty_div):
            bad |= BAD_GRID     # (a division costs more than the rest of the pass: skip it)
        elif q != 0:
            key = p if side == 0 else -p        # the side's key order (before the tick)
            if ss.kept and key >= prev:
                ss.best_first = False
            prev = key
            ss.kept += 1
    return bad


cdef cnp.ndarray _pairs(const SnapSide* ss):
    # A side's (price_fp, qty_fp) as a fresh contiguous (n, 2) int64 array.
    cdef cnp.ndarray a = np.empty((ss.n, 2), dtype=np.int64)
    cdef int64_t* d = <int64_t*>cnp.PyArray_DATA(a)
    cdef Py_ssize_t i
    for i in range(ss.n):
        d[2 * i] = _at(ss.price, i, ss.stride)
        d[2 * i + 1] = _at(ss.qty, i, ss.stride)
    return a


cdef inline void _forget_event(Book* b) noexcept:
    b.ev_recv_ns = b.ev_time = b.ev_transact_time = b.ev_first_id = -1


cdef void _free_book(Book* b) noexcept:
    if b == NULL:
        return
    PyMem_Free(b.side[0].keys)
    PyMem_Free(b.side[0].qtys)
    PyMem_Free(b.side[1].keys)
    PyMem_Free(b.side[1].qtys)
    PyMem_Free(b.buf)
    PyMem_Free(b)


cdef class BookSet:
    """L2 books for the symbols of one market, fed by depth rows.  See the module docstring.

    ``BookSet(market="spot", max_levels=5000, buffer_rows=65536, max_symbols=16384,
    tops_capacity=65536, events_capacity=4096, auto_track=True, resync_on_stale=False,
    logger=None)``

    * ``market``: ``"spot"`` (``U == prev u + 1``) or ``"usdm"`` / ``"coinm"`` (``pu`` chain).
    * ``max_levels``: depth cap per side.  Memory: 32 bytes x max_levels per side.
    * ``buffer_rows``: bound of each syncing symbol's event buffer, in depth rows.
    * ``auto_track``: create a book on the first row of an unknown symbol id; otherwise
      only symbols passed to ``track()`` are kept and other rows are counted and skipped.
    * ``resync_on_stale``: treat an event older than a valid book as a fault (resync)
      instead of ignoring it as Binance's procedure says.
    * ``logger``: a ``logging.Logger`` or its name for the book events (default
      ``"fastfeed.book"``).  Log lines name a symbol through ``name_of`` (a callable from
      symbol id to name; :class:`~fastfeed.OrderBook` sets the feed's) or else by its id.
    """

    def __cinit__(self, str market="spot", Py_ssize_t max_levels=5000,
                  Py_ssize_t buffer_rows=65536, Py_ssize_t max_symbols=16384,
                  Py_ssize_t tops_capacity=65536, Py_ssize_t events_capacity=4096,
                  bint auto_track=True, bint resync_on_stale=False, logger=None):
        if market not in ("spot", "usdm", "coinm"):
            raise ValueError(f"market must be 'spot', 'usdm' or 'coinm', got {market!r}")
        if max_levels < 1:
            raise ValueError("max_levels must be >= 1")
        if buffer_rows < 1:
            raise ValueError("buffer_rows must be >= 1")
        if max_symbols < 1 or max_symbols > 1 << 24:
            raise ValueError("max_symbols must be in 1..2**24")
        self.market = market
        self.usdm = market != "spot"
        self.max_levels = max_levels
        self.buffer_rows = buffer_rows
        self.max_symbols = <uint32_t>max_symbols
        self.auto_track = auto_track
        self.resync_on_stale = resync_on_stale
        self.tops = Ring(TOP_DTYPE, tops_capacity)
        self.events = Ring(BOOK_EVENT_DTYPE, events_capacity)
        # a name or a Logger: shadow books (e.g. OrderBook's validation) log apart
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or "fastfeed.book")
        self._logger = logger
        self.name_of = None
        self.books = <Book**>PyMem_Malloc(max_symbols * sizeof(Book*))
        self.queue = <uint32_t*>PyMem_Malloc(max_symbols * sizeof(uint32_t))
        if self.books == NULL or self.queue == NULL:
            raise MemoryError()
        memset(self.books, 0, max_symbols * sizeof(Book*))
        self.q_head = self.q_len = 0

    def __dealloc__(self):
        cdef uint32_t i
        if self.books != NULL:
            for i in range(self.max_symbols):
                _free_book(self.books[i])
            PyMem_Free(self.books)
        PyMem_Free(self.queue)

    # ----------------------------------------------------------------------- C level

    cdef Book* book(self, uint32_t symbol) noexcept:
        if symbol >= self.max_symbols:
            return NULL
        return self.books[symbol]

    cdef Book* track_c(self, uint32_t symbol) noexcept:
        cdef Book* b
        cdef int s
        if symbol >= self.max_symbols:
            return NULL
        b = self.books[symbol]
        if b != NULL:
            return b
        b = <Book*>PyMem_Malloc(sizeof(Book))
        if b == NULL:
            return NULL
        memset(b, 0, sizeof(Book))
        for s in range(2):
            b.side[s].cap = self.max_levels
            b.side[s].alloc = 2 * self.max_levels
            b.side[s].keys = <int64_t*>PyMem_Malloc(b.side[s].alloc * sizeof(int64_t))
            b.side[s].qtys = <int64_t*>PyMem_Malloc(b.side[s].alloc * sizeof(int64_t))
            if b.side[s].keys == NULL or b.side[s].qtys == NULL:
                _free_book(b)
                return NULL
            _side_clear(&b.side[s])
        b.price_div = 1
        b.qty_div = 1
        b.symbol = symbol
        b.state = SYNCING
        b.last_id = -1
        b.buf_first_id = -1
        _forget_event(b)
        self.books[symbol] = b
        self._request(b)
        self._emit(b, EV_RESYNC, EV_NEW, NULL)
        return b

    cdef void apply_rows(self, const DepthRow* rows, Py_ssize_t n) noexcept:
        """Apply a batch of depth rows (any symbols).  An event may span two batches."""
        cdef Py_ssize_t i
        cdef const DepthRow* r
        for i in range(n):
            r = rows + i
            if self.skip_to_event_end:
                # after lost rows the batch may start inside an event: skip its remainder
                if r.flags & ROW_LAST_OF_EVENT:
                    self.skip_to_event_end = False
                continue
            if self.in_event and (r.symbol != self.cur_row.symbol
                                  or r.last_id != self.cur_row.last_id):
                # the previous event never got its last row: close it as it stands
                self.malformed_events += 1
                self._end_event()
            if not self.in_event:
                self._begin_event(r)
            if self.cur_action == ACT_APPLY:
                if r.side >= 0:
                    self._apply_level(r)
            elif self.cur_action == ACT_BUFFER:
                self._buffer_row(r)
            if r.flags & ROW_LAST_OF_EVENT:
                self._end_event()

    cdef uint64_t apply_ring(self, Ring ring, uint64_t cursor) noexcept:
        """Apply the depth ring's rows since ``cursor``; returns the next cursor.

        Rows overwritten before this call cannot be known, so every book resyncs.
        """
        cdef uint64_t w = ring._written
        cdef uint64_t oldest = ring.oldest_seq()
        cdef uint64_t i0, cnt
        if cursor > w:
            cursor = w
        if cursor < oldest:
            self.lost_rows += oldest - cursor
            self._lost()
            cursor = oldest
        while cursor < w:
            i0 = cursor & ring.mask
            cnt = w - cursor
            if cnt > ring.cap - i0:
                cnt = ring.cap - i0
            self.apply_rows(<const DepthRow*>ring.slot(cursor), <Py_ssize_t>cnt)
            cursor += cnt
        return cursor

    # ----------------------------------------------------------------------- hot path

    cdef void _apply_level(self, const DepthRow* r) noexcept:
        cdef Book* b = self.cur
        cdef int64_t p = r.price_fp, q = r.qty_fp
        cdef int res
        # FP_NONE is INT64_MIN, so it fails these tests too
        if p <= 0 or q < 0 or r.side > 1:
            self.cur_bad = True
            return
        if b.price_div != 1:
            if p % b.price_div:
                self.cur_bad = True
                return
            p = p // b.price_div
        if b.qty_div != 1:
            if q % b.qty_div:
                self.cur_bad = True
                return
            q = q // b.qty_div
        res = _side_set(&b.side[r.side], p if r.side == 0 else -p, q)
        self.cur_levels += 1
        if res >= SET_MISSING:
            if res == SET_MISSING:
                b.counters[C_MISSING_DELETES] += 1
            else:
                b.counters[C_CAP_DROPPED] += 1

    cdef void _begin_event(self, const DepthRow* r) noexcept:
        cdef Book* b
        cdef int link
        self.in_event = True
        self.cur_row = r[0]
        self.cur_levels = 0
        self.cur_bad = False
        self.cur_bridge = False
        self.cur_action = ACT_SKIP
        b = self.book(r.symbol)
        if b == NULL and self.auto_track:
            b = self.track_c(r.symbol)
        self.cur = b
        if b == NULL:
            self.untracked_events += 1
            return
        if b.state == VALID:
            link = _link(self.usdm, b.last_id, r)
            if link == LINK_NEXT:
                self.cur_action = ACT_APPLY
            elif link == LINK_STALE:
                b.counters[C_STALE] += 1
                self._emit(b, EV_STALE, 0, r)
                if self.resync_on_stale:
                    self._resync(b, EV_STALE, r)
            else:
                b.counters[C_GAPS] += 1
                self._emit(b, EV_GAP, 0, r)
                self._resync(b, EV_GAP, r)
                self._buffer_begin(b, r)
        elif b.state == BRIDGING:
            link = _bridge(self.usdm, b.last_id, r)
            if link == LINK_NEXT:
                self.cur_action = ACT_APPLY
                self.cur_bridge = True
            elif link == LINK_STALE:
                b.counters[C_COVERED] += 1
            else:
                b.counters[C_SNAPSHOTS_STALE] += 1
                self._emit(b, EV_SNAPSHOT_STALE, 0, r)
                self._resync(b, EV_SNAPSHOT_STALE, r)
                self._buffer_begin(b, r)
        else:
            if b.buf_chained:
                link = _link(self.usdm, b.buf_last_id, r)
                if link == LINK_STALE:
                    b.counters[C_STALE] += 1
                    return
                if link == LINK_GAP:
                    # the buffer before the gap can never be bridged: start over from here
                    b.counters[C_BUFFER_GAPS] += 1
                    b.buf_n = 0
                    b.buf_events = 0
            self._buffer_begin(b, r)

    cdef void _end_event(self) noexcept:
        cdef Book* b = self.cur
        cdef const DepthRow* r = &self.cur_row
        self.in_event = False
        if b == NULL:
            return
        if self.cur_action == ACT_APPLY:
            b.last_id = r.last_id
            b.ev_recv_ns = r.recv_ns
            b.ev_time = r.event_time
            b.ev_transact_time = r.transact_time
            b.ev_first_id = r.first_id
            b.counters[C_EVENTS] += 1
            b.counters[C_LEVELS] += <uint64_t>self.cur_levels
            if self.cur_bad:
                b.counters[C_BAD_VALUES] += 1
                self._emit(b, EV_BAD_VALUE, 0, r)
                self._resync(b, EV_BAD_VALUE, r)
                return
            if self.cur_bridge:
                b.state = VALID
                self._emit(b, EV_SYNCED, 0, r)
            else:
                self._write_top(b, EV_UPDATE, r)
            if _crossed(b):
                b.counters[C_CROSSED] += 1
                self._emit(b, EV_CROSSED, 0, r)
                self._resync(b, EV_CROSSED, r)
            elif _depleted(&b.side[0]) or _depleted(&b.side[1]):
                b.counters[C_DEPLETED] += 1
                self._emit(b, EV_DEPLETED, 0, r)
                self._resync(b, EV_DEPLETED, r)
        elif self.cur_action == ACT_BUFFER:
            b.buf_events += 1
            b.counters[C_BUFFERED] += 1
            b.buf_last_id = r.last_id
            b.buf_chained = True

    # ----------------------------------------------------------------------- buffering

    cdef void _buffer_begin(self, Book* b, const DepthRow* r) noexcept:
        self.cur_action = ACT_BUFFER
        b.buf_event_start = b.buf_n
        if b.buf_events == 0:
            b.buf_first_id = r.first_id

    cdef void _buffer_row(self, const DepthRow* r) noexcept:
        cdef Book* b = self.cur
        if b.buf_n == b.buf_cap and not self._buffer_make_room(b):
            # this one event is larger than the whole buffer: drop it, the chain restarts
            b.counters[C_BUFFER_DROPPED] += 1
            self._overflowed(b, r)
            b.buf_n = 0
            b.buf_events = 0
            b.buf_chained = False
            b.buf_first_id = -1
            self.cur_action = ACT_SKIP
            return
        b.buf[b.buf_n] = r[0]
        b.buf_n += 1

    cdef bint _buffer_make_room(self, Book* b) noexcept:
        cdef Py_ssize_t new_cap, i, cut
        cdef DepthRow* nb
        if b.buf_cap < self.buffer_rows:
            new_cap = b.buf_cap * 2 if b.buf_cap else 256
            if new_cap > self.buffer_rows:
                new_cap = self.buffer_rows
            nb = <DepthRow*>PyMem_Realloc(b.buf, new_cap * sizeof(DepthRow))
            if nb != NULL:
                b.buf = nb
                b.buf_cap = new_cap
                return True
        # Full: drop the oldest complete events, at least a quarter of the buffer at a time
        # so the memmove is amortised.  The newest events are the ones a snapshot can bridge.
        cut = 0
        i = 0
        while i < b.buf_event_start:
            if b.buf[i].flags & ROW_LAST_OF_EVENT:
                cut = i + 1
                b.buf_events -= 1
                b.counters[C_BUFFER_DROPPED] += 1
                if cut >= b.buf_cap >> 2:
                    break
            i += 1
        if cut == 0:
            return False
        memmove(b.buf, b.buf + cut, (b.buf_n - cut) * sizeof(DepthRow))
        b.buf_n -= cut
        b.buf_event_start -= cut
        b.buf_first_id = b.buf[0].first_id if b.buf_n else -1
        self._overflowed(b, &b.buf[0] if b.buf_n else NULL)
        return True

    cdef void _overflowed(self, Book* b, const DepthRow* r) noexcept:
        if not b.buf_overflowed:
            b.buf_overflowed = 1
            self._emit(b, EV_BUFFER_OVERFLOW, 0, r)

    # ----------------------------------------------------------------------- cold path

    cdef void _request(self, Book* b) noexcept:
        if b.queued or self.q_len >= self.max_symbols:
            return
        self.queue[(self.q_head + self.q_len) % self.max_symbols] = b.symbol
        self.q_len += 1
        b.queued = 1

    cdef void _resync(self, Book* b, uint8_t reason, const DepthRow* r) noexcept:
        b.counters[C_RESYNCS] += 1
        b.state = SYNCING
        b.last_reason = reason
        b.last_id = -1
        _forget_event(b)
        _side_clear(&b.side[0])
        _side_clear(&b.side[1])
        b.buf_n = 0
        b.buf_events = 0
        b.buf_chained = False
        b.buf_first_id = -1
        b.buf_overflowed = 0
        self._request(b)
        self._emit(b, EV_RESYNC, reason, r)

    cdef void _lost(self) noexcept:
        cdef uint32_t i
        cdef Book* b
        # an event cut by the loss must not be applied half: skip to its end
        self.in_event = False
        self.skip_to_event_end = True
        for i in range(self.max_symbols):
            b = self.books[i]
            if b != NULL:
                self._emit(b, EV_LOST, 0, NULL)
                self._resync(b, EV_LOST, NULL)

    cdef uint64_t _write_top(self, Book* b, uint8_t code, const DepthRow* r) noexcept:
        cdef TopRow* t = <TopRow*>self.tops.reserve(0)
        cdef uint64_t seq = self.tops._written
        if r != NULL:
            t.recv_ns = r.recv_ns
            t.event_time = r.event_time
            t.transact_time = r.transact_time
            t.first_id = r.first_id if code == EV_UPDATE or code == EV_SYNCED else -1
        else:
            t.recv_ns = t.event_time = t.transact_time = -1
            t.first_id = -1
        t.update_id = b.last_id
        fill_best(t, b)
        t.symbol = b.symbol
        t.levels = <uint16_t>(self.cur_levels if self.cur_levels < 65535 else 65535) \
            if code == EV_UPDATE or code == EV_SYNCED else 0
        t.state = b.state
        t.code = code
        self.tops.commit(1)
        return seq

    cdef void _emit(self, Book* b, uint8_t code, uint8_t reason, const DepthRow* r) noexcept:
        """A book event: a row in tops (in order with the updates), a row in events, a log."""
        cdef uint64_t seq = self._write_top(b, code, r)
        cdef EventRow* e = <EventRow*>self.events.reserve(0)
        e.recv_ns = r.recv_ns if r != NULL else -1
        e.event_time = r.event_time if r != NULL else -1
        e.first_id = r.first_id if r != NULL else -1
        e.last_id = r.last_id if r != NULL else -1
        e.prev_last_id = r.prev_last_id if r != NULL else -1
        e.book_id = b.buf_last_id if b.state == SYNCING and b.buf_chained else b.last_id
        e.top_seq = seq
        e.symbol = b.symbol
        e.code = code
        e.reason = reason
        e.state = b.state
        self.events.commit(1)
        self._log(e)

    cdef void _log(self, EventRow* e) noexcept:
        level = _LOG_LEVEL.get(e.code, logging.INFO)
        if self._logger.isEnabledFor(level):
            # Symbols by name where the owner gave a table (OrderBook does), else by id.
            sym = self.name_of(e.symbol) if self.name_of is not None else f"id {e.symbol}"
            self._logger.log(level, "book %s %s: %s U=%d u=%d pu=%d book_id=%d",
                             Event(e.code).name, sym,
                             Event(e.reason).name if e.code == EV_RESYNC else "",
                             e.first_id, e.last_id, e.prev_last_id, e.book_id)

    cdef Book* _get(self, Py_ssize_t symbol) except NULL:
        # a C integer: the queries read a book without a Python object (best_into allocates
        # nothing)
        cdef Book* b = self.books[symbol] if 0 <= symbol < self.max_symbols else NULL
        if b == NULL:
            raise KeyError(f"symbol {symbol} is not tracked")
        return b

    # ----------------------------------------------------------------------- Python API

    def apply_depth_rows(self, rows):
        """Apply a numpy array of ``DEPTH_DTYPE`` rows (any symbols, in stream order).

        Rows of syncing symbols are buffered; valid books are updated and checked.  An
        array with the same fields in another layout (``np.concatenate`` drops the padding)
        is converted first.
        """
        if not isinstance(rows, np.ndarray) or rows.ndim != 1:
            raise TypeError("rows must be a 1-D numpy array of DEPTH_DTYPE")
        if rows.dtype != _DEPTH_DTYPE:
            if rows.dtype.names != _DEPTH_DTYPE.names:
                raise TypeError("rows must be a 1-D numpy array of DEPTH_DTYPE")
            rows = rows.astype(_DEPTH_DTYPE)
        if not rows.flags.c_contiguous:
            rows = np.ascontiguousarray(rows)
        self.apply_rows(<const DepthRow*>cnp.PyArray_DATA(rows), rows.shape[0])

    def apply_depth_ring(self, Ring ring not None, cursor):
        """Apply the rows of a depth ring written since ``cursor``; returns the next cursor.

        Reads the ring in place at C level (no copy).  If rows were overwritten before this
        call (``cursor`` older than the ring holds), every book resyncs (``Event.LOST``).
        """
        if ring.itemsize != sizeof(DepthRow) or ring.array.dtype != _DEPTH_DTYPE:
            raise TypeError("ring must hold DEPTH_DTYPE rows")
        if cursor < 0:
            raise ValueError("cursor must be >= 0")
        return self.apply_ring(ring, <uint64_t>cursor)

    def track(self, symbol):
        """Start a book for ``symbol`` (state SYNCING, snapshot requested); idempotent."""
        if not 0 <= symbol < self.max_symbols:
            raise ValueError(f"symbol id must be in 0..{self.max_symbols - 1}")
        if self.track_c(<uint32_t>symbol) == NULL:
            raise MemoryError()

    def untrack(self, symbol):
        """Drop ``symbol``'s book; later rows for it are skipped (or re-tracked if auto_track)."""
        cdef Book* b = self._get(symbol)
        if self.in_event and self.cur == b:
            self.cur = NULL
            self.cur_action = ACT_SKIP
        self.books[<uint32_t>symbol] = NULL
        b.queued = 0
        _free_book(b)

    def set_scale(self, symbol, tick_fp=1, lot_fp=1):
        """Store ``symbol``'s levels in ticks and lots (sizes in fp units, e.g. 0.01 -> 10**6).

        Prices and quantities not on the grid are then bad values (the book resyncs and
        counts them).  Changing the scale of a non-empty book resyncs it.
        """
        if tick_fp < 1 or lot_fp < 1:
            raise ValueError("tick_fp and lot_fp must be >= 1")
        self.track(symbol)
        cdef Book* b = self._get(symbol)
        if b.price_div == tick_fp and b.qty_div == lot_fp:
            return
        b.price_div = tick_fp
        b.qty_div = lot_fp
        if b.state != SYNCING:
            self._resync(b, EV_RESET, NULL)

    def reset(self, symbol=None):
        """Discard a book (all books if ``symbol`` is None) and request a snapshot.

        Use after a reconnect: events missed while disconnected are unknown.
        """
        cdef uint32_t i
        if symbol is None:
            for i in range(self.max_symbols):
                if self.books[i] != NULL:
                    self._resync(self.books[i], EV_RESET, NULL)
            self.in_event = False
            return
        self._resync(self._get(symbol), EV_RESET, NULL)

    def take_snapshot_requests(self, limit=None):
        """Pop the symbols waiting for a REST snapshot, oldest request first.

        Each syncing symbol is returned once; it comes back when a snapshot turns out too
        old, when it resyncs again, or after ``request_snapshot()`` (e.g. a failed fetch).
        """
        out = []
        cdef uint32_t sym
        cdef Book* b
        while self.q_len and (limit is None or len(out) < limit):
            sym = self.queue[self.q_head]
            self.q_head = (self.q_head + 1) % self.max_symbols
            self.q_len -= 1
            b = self.books[sym]
            if b == NULL:
                continue
            b.queued = 0
            if b.state == SYNCING:
                out.append(sym)
        return out

    def request_snapshot(self, symbol):
        """Queue ``symbol`` for a snapshot again (e.g. its fetch failed).  No-op when valid."""
        cdef Book* b = self._get(symbol)
        if b.state == SYNCING:
            self._request(b)

    def needs_snapshot(self):
        """Symbols in state SYNCING (no snapshot loaded), whether or not already taken."""
        cdef uint32_t i
        return [i for i in range(self.max_symbols)
                if self.books[i] != NULL and self.books[i].state == SYNCING]

    def apply_snapshot(self, symbol, last_update_id, bids, asks, limit=None):
        """Load a REST snapshot for ``symbol`` and replay its buffered events.

        ``bids`` / ``asks``: best first or in any order, each either a sequence of
        ``(price, qty)`` decimal strings (the REST JSON), an int64 array of shape (n, 2)
        holding fixed-point values, or a structured array with ``price_fp`` / ``qty_fp``
        fields (``PARTIAL_DTYPE`` rows of one side).  ``limit``: the depth requested; a
        side with fewer levels is complete, otherwise levels beyond its worst are unknown
        (``bounds()``).  Returns a ``SnapshotResult``.
        """
        self.track(symbol)
        cdef Book* b = self._get(symbol)
        cdef int64_t lid = last_update_id
        cdef SnapSide ss[2]
        cdef Py_ssize_t i, nrows
        cdef DepthRow* buf
        cdef int link
        cdef bint start, restore
        cdef Book* saved_cur = NULL
        cdef DepthRow saved_row
        cdef int saved_action = 0
        cdef Py_ssize_t saved_levels = 0
        cdef bint saved_bad = False, saved_bridge = False, saved_skip
        if b.state == VALID:
            b.counters[C_SNAPSHOTS_IGNORED] += 1
            return SnapshotResult.IGNORED
        keep = []   # arrays the two SnapSides point into (converted or sorted sides)
        self._snapshot_side(b, bids, 0, limit, &ss[0], keep)
        self._snapshot_side(b, asks, 1, limit, &ss[1], keep)
        # Step 4: the first buffered event the snapshot does not cover must start within it.
        start = True
        for i in range(b.buf_n):
            if start:
                link = _bridge(self.usdm, lid, &b.buf[i])
                if link == LINK_NEXT:
                    break
                if link == LINK_GAP:
                    b.counters[C_SNAPSHOTS_STALE] += 1
                    self._emit(b, EV_SNAPSHOT_STALE, 0, &b.buf[i])
                    self._request(b)
                    return SnapshotResult.TOO_OLD
            start = (b.buf[i].flags & ROW_LAST_OF_EVENT) != 0
        self._load_side(b, 0, &ss[0])
        self._load_side(b, 1, &ss[1])
        _forget_event(b)
        b.last_id = lid
        b.state = BRIDGING
        b.counters[C_SNAPSHOTS] += 1
        self._emit(b, EV_SNAPSHOT, 0, NULL)
        # Replay the buffer through the live path.  Detach it first: a resync during the
        # replay starts a new buffer.  A live event of another symbol may be in progress.
        buf = b.buf
        nrows = b.buf_n
        b.buf = NULL
        b.buf_n = b.buf_cap = 0
        b.buf_events = 0
        b.buf_chained = False
        b.buf_first_id = -1
        b.buf_overflowed = 0
        restore = self.in_event and self.cur != b
        if restore:
            saved_cur = self.cur
            saved_row = self.cur_row
            saved_action, saved_levels = self.cur_action, self.cur_levels
            saved_bad, saved_bridge = self.cur_bad, self.cur_bridge
        # else the in-progress event (if any) is this symbol's: its rows are in the buffer,
        # and the replay begins it again and leaves it in progress
        self.in_event = False
        saved_skip = self.skip_to_event_end
        self.skip_to_event_end = False
        self.apply_rows(buf, nrows)
        PyMem_Free(buf)
        self.skip_to_event_end = saved_skip
        if restore:
            self.cur = saved_cur
            self.cur_row = saved_row
            self.cur_action, self.cur_levels = saved_action, saved_levels
            self.cur_bad, self.cur_bridge = saved_bad, saved_bridge
            self.in_event = True
        if b.state == VALID:
            return SnapshotResult.SYNCED
        if b.state == BRIDGING:
            return SnapshotResult.WAITING
        return SnapshotResult.FAILED

    cdef int _snapshot_side(self, Book* b, levels, int side, limit, SnapSide* out,
                            list keep) except -1:
        # Point ``out`` at one side's int64 (price_fp, qty_fp) pairs, checked, best first.
        # PARTIAL rows (any structured array with int64 price_fp / qty_fp) and int64 (n, 2)
        # arrays are read in place at C level; decimal strings go through to_fp first.  A
        # side not given best first (REST sides are) is sorted once by numpy, then re-read.
        cdef cnp.ndarray a
        cdef int bad
        if isinstance(levels, np.ndarray) and levels.dtype.names is not None:
            fields = levels.dtype.fields
            if "price_fp" not in fields or "qty_fp" not in fields:
                raise ValueError("snapshot rows need price_fp and qty_fp fields")
            a = levels.reshape(-1)
            (pt, po), (qt, qo) = fields["price_fp"][:2], fields["qty_fp"][:2]
            if pt == _I8 and qt == _I8:
                _point(out, a, po, qo, a.strides[0])
            else:
                a = np.stack([a["price_fp"].astype(np.int64), a["qty_fp"].astype(np.int64)], 1)
                _point(out, a, 0, a.strides[1], a.strides[0])
        else:
            if isinstance(levels, np.ndarray):
                a = np.asarray(levels, dtype=np.int64).reshape(-1, 2)
            else:
                a = np.array([(to_fp(x[0]), to_fp(x[1])) for x in levels], np.int64).reshape(-1, 2)
            _point(out, a, 0, a.strides[1], a.strides[0])
        keep.append(a)
        out.cut = limit is None or out.n >= limit
        bad = _scan_side(b, out, side)
        if bad & BAD_INEXACT:
            raise ValueError("snapshot value with no exact fixed-point value at 8 decimals")
        if bad & BAD_RANGE:
            raise ValueError("snapshot prices must be > 0 and quantities >= 0")
        if bad & BAD_GRID:
            raise ValueError("snapshot level off the tick / lot grid")
        if out.best_first:
            return 0
        a = _pairs(out)
        p = a[:, 0]
        a = a[np.argsort(p if side else -p, kind="stable")]
        keep.append(a)
        _point(out, a, 0, a.strides[1], a.strides[0])
        _scan_side(b, out, side)
        if not out.best_first:  # sorted, so only an equal price can be out of order
            raise ValueError("snapshot has a price twice on one side")
        return 0

    cdef void _load_side(self, Book* b, int side, const SnapSide* ss) noexcept:
        # The best ``max_levels`` kept levels of a checked side; the j-th best goes to slot
        # m - 1 - j (a side is stored best last).
        cdef Side* s = &b.side[side]
        cdef Py_ssize_t m = ss.kept if ss.kept < s.cap else s.cap
        cdef Py_ssize_t i, j = 0
        cdef int64_t p, q
        cdef int64_t* k
        cdef int64_t* qs
        s.n = s.live = m
        s.tomb = 0
        s.off = (s.alloc - m) >> 1
        k = s.keys + s.off + m - 1
        qs = s.qtys + s.off + m - 1
        i = 0
        while j < m and i < ss.n:  # (the bound on i only guards against a changed array)
            q = _at(ss.qty, i, ss.stride)
            if q != 0:
                p = _at(ss.price, i, ss.stride)
                if b.price_div != 1:
                    p //= b.price_div
                if b.qty_div != 1:
                    q //= b.qty_div
                k[-j] = p if side == 0 else -p
                qs[-j] = q
                j += 1
            i += 1
        # levels beyond the worst held one are unknown when the depth cap or the limit cut
        s.bound = s.keys[s.off] if m and (ss.kept > s.cap or ss.cut) else INT64_MIN

    # ----------------------------------------------------------------------- queries

    def symbols(self):
        """Tracked symbol ids."""
        cdef uint32_t i
        return [i for i in range(self.max_symbols) if self.books[i] != NULL]

    def state(self, symbol):
        """``State`` of ``symbol``'s book."""
        return State(self._get(symbol).state)

    def is_valid(self, symbol):
        """True when ``symbol``'s book is exact at ``last_update_id(symbol)``."""
        return self._get(symbol).state == VALID

    def open_event(self):
        """The symbol whose event is part-applied (its last row not yet given), else None.

        An event may span two ``apply_*`` calls; between them its book holds the event's
        first rows, and the checks that run at an event's end (crossed, depleted) have not
        run yet.  Read a book at an event boundary, or skip the symbol this names.
        """
        if self.in_event and self.cur != NULL:
            return self.cur.symbol
        return None

    def last_update_id(self, symbol):
        """The book's update id (snapshot lastUpdateId or last applied u); -1 when syncing."""
        return self._get(symbol).last_id

    def first_buffered_id(self, symbol):
        """``U`` of the first buffered event (-1 if none): a snapshot must reach it."""
        return self._get(symbol).buf_first_id

    def buffered_events(self, symbol):
        """Events currently buffered for ``symbol``."""
        return self._get(symbol).buf_events

    def last_reason(self, symbol):
        """``Event`` code of the last cause of a resync of ``symbol``."""
        return Event(self._get(symbol).last_reason)

    def stats(self, symbol=None):
        """Counters of one book (dict), or of all books summed plus set-wide counters."""
        cdef Book* b
        cdef uint32_t i
        cdef int c
        if symbol is not None:
            b = self._get(symbol)
            d = {COUNTER_NAMES[c]: b.counters[c] for c in range(N_COUNTERS)}
            d["state"] = State(b.state).name
            d["bid_levels"] = b.side[0].live
            d["ask_levels"] = b.side[1].live
            return d
        d = dict.fromkeys(COUNTER_NAMES, 0)
        for i in range(self.max_symbols):
            b = self.books[i]
            if b != NULL:
                for c in range(N_COUNTERS):
                    d[COUNTER_NAMES[c]] += b.counters[c]
        d["untracked_events"] = self.untracked_events
        d["malformed_events"] = self.malformed_events
        d["lost_rows"] = self.lost_rows
        d["symbols"] = len(self.symbols())
        d["valid"] = sum(1 for i in self.symbols() if self.books[i].state == VALID)
        return d

    def best(self, Py_ssize_t symbol):
        """``(bid_price, bid_qty, ask_price, ask_qty)`` floats; NaN for an empty side.

        Read in C, O(1).  Each float is the correctly rounded value of the exchange's
        decimal string.
        """
        cdef TopRow t
        fill_best(&t, self._get(symbol))
        return (t.bid_price, t.bid_qty, t.ask_price, t.ask_qty)

    def best_fp(self, Py_ssize_t symbol):
        """``(bid_price, bid_qty, ask_price, ask_qty)`` fixed point (1e8); None if empty."""
        cdef Book* b = self._get(symbol)
        cdef TopRow t
        fill_best(&t, b)
        return (t.bid_price_fp if b.side[0].n else None, t.bid_qty_fp if b.side[0].n else None,
                t.ask_price_fp if b.side[1].n else None, t.ask_qty_fp if b.side[1].n else None)

    def best_into(self, Py_ssize_t symbol, cnp.ndarray out not None):
        """Write ``symbol``'s top of book into ``out[0]`` (a ``TOP_DTYPE`` array) in place;
        returns True when the book is VALID.  Allocates nothing: for a strategy asking on
        every event (``out = np.zeros(1, TOP_DTYPE)`` once, then read ``out[0]``).

        The row is what the ``tops`` ring would show now: best bid/ask (float64 and int64
        fp; NaN / 0 for an empty side), ``update_id``, ``state``, ``code`` UPDATE, and the
        ``recv_ns`` / ``event_time`` / ``transact_time`` / ``first_id`` of the last event
        applied (-1 when none was since the snapshot).
        """
        cdef Book* b = self._get(symbol)
        cdef cnp.dtype d = <cnp.dtype><void*>cnp.PyArray_DESCR(out)
        if d is not _TOP_DESCR and not cnp.PyArray_EquivTypes(d, _TOP_DESCR):
            raise TypeError("out must be a TOP_DTYPE array")
        if cnp.PyArray_SIZE(out) < 1 or not cnp.PyArray_ISCARRAY(out):
            raise ValueError("out must be a writeable C-contiguous array of >= 1 row")
        cdef TopRow* t = <TopRow*>cnp.PyArray_DATA(out)
        t.recv_ns = b.ev_recv_ns
        t.event_time = b.ev_time
        t.transact_time = b.ev_transact_time
        t.first_id = b.ev_first_id
        t.update_id = b.last_id
        fill_best(t, b)
        t.symbol = b.symbol
        t.levels = 0
        t.state = b.state
        t.code = EV_UPDATE
        return b.state == VALID

    def top_fp(self, Py_ssize_t symbol, Py_ssize_t n=10):
        """Top ``n`` levels per side, best first, as int64 fixed-point (1e8) arrays (copies)."""
        cdef Book* b = self._get(symbol)
        bp, bq = self._side_arrays(b, 0, n, False)
        ap, aq = self._side_arrays(b, 1, n, False)
        return Top(bp, bq, ap, aq)

    def top(self, Py_ssize_t symbol, Py_ssize_t n=10):
        """Top ``n`` levels per side, best first, as float64 arrays (copies).

        Each float is the correctly rounded value of the exchange's decimal string.
        """
        cdef Book* b = self._get(symbol)
        bp, bq = self._side_arrays(b, 0, n, True)
        ap, aq = self._side_arrays(b, 1, n, True)
        return Top(bp, bq, ap, aq)

    def levels(self, Py_ssize_t symbol, side):
        """All held levels of one side (0 bids, 1 asks), best first: int64 fp (price, qty)."""
        cdef Book* b = self._get(symbol)
        if side not in (0, 1):
            raise ValueError("side must be 0 (bids) or 1 (asks)")
        return self._side_arrays(b, side, b.side[side].live, False)

    def bounds_fp(self, symbol):
        """``bounds()`` in fixed point (1e8): ints, or None for a side exact all the way."""
        cdef Book* b = self._get(symbol)
        out = []
        for side in (0, 1):
            bnd = b.side[side].bound
            out.append(None if bnd == INT64_MIN else (bnd if side == 0 else -bnd) * b.price_div)
        return tuple(out)

    def bounds(self, symbol):
        """Prices beyond which each side may miss levels: ``(bid_low, ask_high)``.

        Bids at or above ``bid_low`` and asks at or below ``ask_high`` are exact; None
        means that side is exact all the way.  A snapshot cut at its limit sets it to its
        worst level; the depth cap moves it one fixed-point unit (1e-8, or one tick with
        ``set_scale``) inside the worst level it dropped.
        """
        return tuple(None if x is None else x / 1e8 for x in self.bounds_fp(symbol))

    cdef tuple _side_arrays(self, Book* b, int side, Py_ssize_t n, bint as_float):
        # The best n live levels, best first (tombstones skipped): int64 fp, or float64.
        cdef Side* s = &b.side[side]
        if n > s.live:
            n = s.live
        if n < 0:
            n = 0
        cdef cnp.npy_intp dim = n
        cdef int typ = cnp.NPY_FLOAT64 if as_float else cnp.NPY_INT64
        cdef cnp.ndarray p = cnp.PyArray_EMPTY(1, &dim, typ, 0)
        cdef cnp.ndarray q = cnp.PyArray_EMPTY(1, &dim, typ, 0)
        cdef int64_t* pp = <int64_t*>cnp.PyArray_DATA(p)
        cdef int64_t* qp = <int64_t*>cnp.PyArray_DATA(q)
        cdef double* pf = <double*>pp
        cdef double* qf = <double*>qp
        cdef Py_ssize_t i = 0, j = s.off + s.n - 1
        cdef int64_t sign = 1 if side == 0 else -1
        cdef int64_t price, qty
        while i < n:
            if s.qtys[j] != 0:
                price = sign * s.keys[j] * b.price_div
                qty = s.qtys[j] * b.qty_div
                if as_float:
                    pf[i] = price / FP_SCALE_D
                    qf[i] = qty / FP_SCALE_D
                else:
                    pp[i] = price
                    qp[i] = qty
                i += 1
            j -= 1
        return p, q

    def __repr__(self):
        return (f"<BookSet market={self.market} symbols={len(self.symbols())} "
                f"max_levels={self.max_levels}>")
