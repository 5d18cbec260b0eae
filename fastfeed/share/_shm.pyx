# cython: language_level=3
"""The C side of fastfeed.share: the writer's :class:`Segment` and the reader's
:class:`SharedRing`.

The writer's own rings live in the segment (``Ring.adopt``): the decoder writes rows straight
into shared memory, and each commit stores the ring's ``written`` there (a release store, no
extra copy).  Before a row's bytes, the ring stores ``intent`` (one past the highest row being
written).  A reader copies rows, then reads ``intent``: row ``s`` is intact if
``s >= intent - capacity``; rows that fail the check are counted as lost, never returned (a
seqlock per ring).  The layout and the protocol: docs/decisions/0601-shared-memory-rings.md.
"""
cimport cython
from libc.stdint cimport UINT64_MAX, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memmove
from cpython.buffer cimport PyBUF_WRITABLE, PyObject_GetBuffer, PyBuffer_Release

import sys

import numpy as np
cimport numpy as cnp

from fastfeed.core._clock cimport ff_now_ns
from fastfeed.core._decoder cimport SymbolTable
from fastfeed.core._ring cimport Ring, ff_ring_pub
from fastfeed.core._ring import ReadResult
from fastfeed.share.errors import StaleSegment

cnp.import_array()

HEADER_SIZE = sizeof(ff_seg_header)
RING_PUB_SIZE = sizeof(ff_ring_pub)
READER_SLOTS = FF_READER_SLOTS
MAX_RINGS = FF_MAX_RINGS
MAGIC = FF_SHM_MAGIC
LAYOUT = FF_SHM_LAYOUT
STATE_INIT, STATE_LIVE, STATE_CLOSED, STATE_REPLACED = (FF_SEG_INIT, FF_SEG_LIVE, FF_SEG_CLOSED,
                                                        FF_SEG_REPLACED)
STATE_NAMES = {FF_SEG_INIT: "initializing", FF_SEG_LIVE: "live", FF_SEG_CLOSED: "closed",
               FF_SEG_REPLACED: "replaced"}


cdef char* _address(object mm) except NULL:
    """Base address of a writable mapping (the buffer is released at once: the caller keeps
    ``mm`` alive, and an mmap never moves)."""
    cdef Py_buffer view
    PyObject_GetBuffer(mm, &view, PyBUF_WRITABLE)
    cdef char* p = <char*>view.buf
    PyBuffer_Release(&view)
    return p


def header_fields(mm):
    """The header's fixed fields as a dict (both sides; tests and ``fastfeed.attach``)."""
    cdef ff_seg_header* h = <ff_seg_header*>_address(mm)
    return {
        "magic": h.magic, "layout": h.layout, "header_size": h.header_size,
        "generation": h.generation, "created_ns": h.created_ns, "writer_pid": h.writer_pid,
        "state": ff_load_acq32(&h.state), "desc_offset": h.desc_offset,
        "desc_len": h.desc_len, "total_size": h.total_size,
        "heartbeat_ns": ff_load_acq_i64(&h.heartbeat_ns), "notifies": h.notifies,
        "wakes": h.wakes, "waiters": ff_load_sc32(&h.waiters), "nsym": ff_load_acq32(&h.nsym),
        "sym_dropped": h.sym_dropped,
        "readers": [h.readers[i].pid for i in range(FF_READER_SLOTS) if h.readers[i].pid],
    }


def table_capacity(SymbolTable t):
    """How many names ``t`` can hold (its ``max_symbols``)."""
    return t.max_symbols


def mark_replaced(mm):
    """A new writer takes the name over: tell the old segment's readers (state, then wake the
    sleeping ones)."""
    cdef ff_seg_header* h = <ff_seg_header*>_address(mm)
    ff_store_rel32(&h.state, FF_SEG_REPLACED)
    ff_add32(&h.futex, 1)
    ff_futex_wake_all(&h.futex)


@cython.final
cdef class Segment:
    """The writer's side of a shared segment (built by :func:`fastfeed.share.segment.create`).

    ``mm`` is the segment's writable mapping, laid out as ``layout`` says; ``rings`` are
    ``(Ring, data_offset, pub_offset)``: each ring moves into the segment and publishes its
    counters there from now on.  ``symbols`` is the decoder's table, copied into the segment's
    symbol area as it grows (:meth:`notify`).
    """

    def __cinit__(self, mm, uint64_t generation, bytes desc, uint64_t desc_offset,
                  list rings, SymbolTable symbols, uint64_t sym_offsets, uint64_t sym_area,
                  uint32_t sym_max, uint32_t sym_area_size, uint32_t pid):
        self.mm = mm
        self.base = _address(mm)
        self.hdr = <ff_seg_header*>self.base
        self.generation = generation
        self.rings = []
        self.symbols = symbols
        self.sym_off = <uint32_t*>(self.base + sym_offsets)
        self.sym_area = self.base + sym_area
        self.sym_max = sym_max
        self.sym_area_size = sym_area_size
        self.closed = False
        cdef ff_seg_header* h = self.hdr
        h.layout = FF_SHM_LAYOUT
        h.header_size = sizeof(ff_seg_header)
        h.generation = generation
        h.created_ns = ff_now_ns()
        h.writer_pid = pid
        h.desc_offset = desc_offset
        h.desc_len = len(desc)
        h.total_size = len(mm)
        memcpy(self.base + desc_offset, <const char*>desc, len(desc))
        self.sym_off[0] = 0
        cdef Ring ring
        for entry in rings:   # all or none: check before moving any
            ring = entry[0]
            if ring.pub != NULL:
                raise ValueError("a ring of this feed is already served by a shared segment; "
                                 "close that one first")
        for ring, data_off, pub_off in rings:
            arr = np.frombuffer(mm, dtype=ring.array.dtype, count=ring.capacity, offset=data_off)
            ring.adopt(arr, <ff_ring_pub*>(self.base + <uint64_t>pub_off))
            self.rings.append(ring)
        self.publish_symbols()
        h.heartbeat_ns = ff_now_ns()
        h.magic = FF_SHM_MAGIC
        ff_store_rel32(&h.state, FF_SEG_LIVE)

    cdef void publish_symbols(self) noexcept:
        cdef SymbolTable t = self.symbols
        cdef uint32_t n = ff_load_acq32(&self.hdr.nsym)
        cdef uint32_t i, end, length
        if n == 0:
            n = 1           # id 0, the empty name
        if t.count <= n:
            if self.hdr.nsym == 0:
                ff_store_rel32(&self.hdr.nsym, 1)
            return
        end = self.sym_off[n - 1 + 1] if n > 1 else 0
        for i in range(n, t.count):
            if i > self.sym_max:
                break
            length = t.lengths[i]
            if end + length > self.sym_area_size:
                self.hdr.sym_dropped = t.count - i
                break
            memcpy(self.sym_area + end, t.arena + t.offsets[i], length)
            end += length
            self.sym_off[i + 1] = end
            n = i + 1
        self.hdr.sym_bytes = end
        ff_store_rel32(&self.hdr.nsym, n)

    cdef void notify_c(self) noexcept:
        if self.closed:
            return
        if self.symbols.count != self.hdr.nsym:
            self.publish_symbols()
        ff_seg_notify(self.hdr)

    def notify(self):
        """After a batch of commits (the feed's hook, once per socket read): new symbol names
        into the segment and a wake-up for sleeping readers (a syscall only when one
        sleeps)."""
        self.notify_c()

    def heartbeat(self):
        """The writer's timer: heartbeat and symbols even when no rows arrive, and the slots
        of readers that died asleep released (their count would cost every notify a
        syscall)."""
        if self.closed:
            return 0
        if self.symbols.count != self.hdr.nsym:
            self.publish_symbols()
        ff_store_rel_i64(&self.hdr.heartbeat_ns, ff_now_ns())
        return self.sweep()

    def sweep(self):
        """Frees the slots of reader processes that no longer exist; returns how many."""
        import os
        cdef int i, freed = 0
        cdef uint32_t pid
        for i in range(FF_READER_SLOTS):
            pid = ff_load_acq32(&self.hdr.readers[i].pid)
            if pid == 0:
                continue
            try:
                os.kill(pid, 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            if self.hdr.readers[i].sleeping:
                self.hdr.readers[i].sleeping = 0
                ff_sub32(&self.hdr.waiters, 1)
            ff_cas32(&self.hdr.readers[i].pid, pid, 0)
            freed += 1
        return freed

    def close(self):
        """Moves the rings back into private memory (the feed keeps running), marks the segment
        closed and wakes its sleeping readers.  The caller unlinks the name."""
        if self.closed:
            return
        cdef Ring ring
        for ring in self.rings:
            ring.adopt(np.zeros(ring.capacity, dtype=ring.array.dtype), NULL)
        self.rings = []
        self.closed = True
        ff_store_rel32(&self.hdr.state, FF_SEG_CLOSED)
        ff_add32(&self.hdr.futex, 1)
        ff_futex_wake_all(&self.hdr.futex)

    @property
    def waiters(self):
        """Readers asleep (or about to sleep) on the segment's futex."""
        return ff_load_sc32(&self.hdr.waiters)


def claim_slot(mm, uint32_t pid):
    """A reader's slot in the header (where it says it sleeps); -1 when all are taken."""
    cdef ff_seg_header* h = <ff_seg_header*>_address(mm)
    cdef int i
    for i in range(FF_READER_SLOTS):
        if ff_cas32(&h.readers[i].pid, 0, pid):
            h.readers[i].sleeping = 0
            h.readers[i].attached_ns = ff_now_ns()
            return i
    return -1


def release_slot(mm, int i, uint32_t pid):
    cdef ff_seg_header* h = <ff_seg_header*>_address(mm)
    if 0 <= i < FF_READER_SLOTS:
        ff_cas32(&h.readers[i].pid, pid, 0)


def read_symbols(mm, uint64_t sym_offsets, uint64_t sym_area, uint32_t have):
    """Names ``have`` .. published count - 1 (id order)."""
    cdef char* base = _address(mm)
    cdef ff_seg_header* h = <ff_seg_header*>base
    cdef uint32_t n = ff_load_acq32(&h.nsym)
    cdef uint32_t* off = <uint32_t*>(base + sym_offsets)
    cdef uint32_t i
    out = []
    for i in range(have, n):
        if i == 0:
            out.append("")
        else:
            out.append((base + sym_area)[off[i]:off[i + 1]].decode("utf-8", "replace"))
    return out


@cython.final
cdef class SharedRing:
    """A reader's view of one ring of a shared segment, with :class:`fastfeed.Ring`'s reading
    API: ``written``, ``capacity``, ``dtype``, ``array``, ``oldest``, ``read``, ``tail``,
    ``reader``; plus ``wait`` (spin, then sleep on the segment's futex), ``read_into``
    (no allocation) and ``intact`` (was a zero-copy view overwritten?).

    ``read`` copies the rows and then checks that the writer did not overwrite them during the
    copy; rows it did overwrite are counted in ``lost``, never returned.
    """

    def __cinit__(self, mm, str name, dtype, uint64_t capacity, uint64_t data_offset,
                  uint64_t pub_offset, int slot):
        self.mm = mm
        self.base = _address(mm)
        self.hdr = <ff_seg_header*>self.base
        self.pub = <ff_ring_pub*>(self.base + pub_offset)
        self.slot = &self.hdr.readers[slot] if 0 <= slot < FF_READER_SLOTS else NULL
        arr = np.frombuffer(mm, dtype=dtype, count=capacity, offset=data_offset)
        arr.flags.writeable = False
        self.array = arr
        self.base = <char*>cnp.PyArray_DATA(arr)
        self.name = name
        self.itemsize = arr.dtype.itemsize
        self.cap = capacity
        self.mask = capacity - 1
        self.generation = self.hdr.generation

    @property
    def written(self):
        """Total rows the writer committed (monotonic)."""
        return ff_load_acq64(&self.pub.written)

    @property
    def capacity(self):
        return self.cap

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def oldest(self):
        """Oldest sequence that is still intact."""
        return self.valid_from()

    @property
    def state(self):
        """The segment's state: ``"live"``, ``"closed"`` (the writer closed it) or
        ``"replaced"`` (a restarted writer serves the name with a new generation)."""
        return STATE_NAMES.get(ff_load_acq32(&self.hdr.state), "?")

    def __len__(self):
        cdef uint64_t w = ff_load_acq64(&self.pub.written)
        return w - min(w, self.valid_from())

    cdef uint64_t valid_from(self) noexcept nogil:
        cdef uint64_t intent = ff_load_acq64(&self.pub.intent)
        return intent - self.cap if intent > self.cap else 0

    cdef uint64_t copy_rows(self, char* out, uint64_t start, uint64_t end) noexcept nogil:
        """Copies rows [start, end) to ``out``, then returns the first sequence that was
        certainly not overwritten during the copy."""
        cdef uint64_t i0 = start & self.mask
        cdef uint64_t n = end - start
        cdef uint64_t first
        if i0 + n <= self.cap:
            memcpy(out, self.base + i0 * self.itemsize, n * self.itemsize)
        else:
            first = self.cap - i0
            memcpy(out, self.base + i0 * self.itemsize, first * self.itemsize)
            memcpy(out + first * self.itemsize, self.base, (n - first) * self.itemsize)
        ff_fence_acq()
        return self.valid_from()

    cdef void sleep_in(self) noexcept nogil:
        """Count this reader in as asleep (the writer wakes only when someone is)."""
        if self.slot != NULL:
            self.slot.sleeping = 1
        ff_add32(&self.hdr.waiters, 1)

    cdef void sleep_out(self, uint32_t word, int64_t now, int64_t deadline,
                        bint wait) noexcept nogil:
        """Wait (if ``wait``) one slice on the futex while it holds ``word``, pass the
        writer's one wake-up on to the next sleeper, and count this reader out."""
        cdef int64_t slice_ns
        if wait:
            # Slices of 100 ms: a dead writer and Ctrl-C are noticed.  Without a slot the
            # writer's sweep cannot repair a count we leak: 1 ms slices.
            slice_ns = 100000000 if self.slot != NULL else 1000000
            if deadline >= 0 and deadline - now < slice_ns:
                slice_ns = deadline - now
            ff_futex_wait(&self.hdr.futex, word, slice_ns)
        if ff_load_sc32(&self.hdr.waiters) > 1:
            ff_futex_wake_one(&self.hdr.futex)
        ff_sub32(&self.hdr.waiters, 1)
        if self.slot != NULL:
            self.slot.sleeping = 0

    cdef int _check_state(self, uint64_t cursor, uint64_t w) except -1:
        cdef uint32_t st = ff_load_acq32(&self.hdr.state)
        if st != FF_SEG_LIVE and cursor >= w:
            raise StaleSegment(self._stale_message(st))
        return 0

    def _stale_message(self, uint32_t st):
        if st == FF_SEG_REPLACED:
            return (f"shared segment generation {self.generation:#x} was replaced: its writer "
                    f"(pid {self.hdr.writer_pid}) restarted and serves a new generation; "
                    f"attach again (fastfeed.attach)")
        if st == FF_SEG_CLOSED:
            return (f"shared segment generation {self.generation:#x} was closed by its writer "
                    f"(pid {self.hdr.writer_pid})")
        return f"shared segment generation {self.generation:#x} is gone (state {st})"

    cdef int bounds(self, object cursor, object limit, uint64_t* cur, uint64_t* end,
                    uint64_t* lost) except -1:
        """The rows to read since ``cursor``: [cur, end), and ``lost`` before ``cur``."""
        cdef long long c = cursor
        if c < 0:
            raise ValueError(f"cursor must be >= 0, got {cursor}")
        cdef long long lim = -1
        if limit is not None:
            lim = limit
            if lim < 0:
                raise ValueError(f"limit must be >= 0 or None, got {limit!r}")
        lost[0] = 0
        return self.span(<uint64_t>c, <uint64_t>lim if lim >= 0 else UINT64_MAX, cur, end,
                         lost)

    cdef int span(self, uint64_t c, uint64_t room, uint64_t* cur, uint64_t* end,
                  uint64_t* lost) except -1:
        """The rows to read since sequence ``c``, at most ``room``: [cur, end); what was
        overwritten before ``cur`` is added to ``lost[0]``."""
        cdef uint64_t w = ff_load_acq64(&self.pub.written)
        if c > w:
            raise ValueError(f"cursor {c} is outside 0..{w}")
        self._check_state(c, w)
        cur[0] = c
        cdef uint64_t oldest = self.valid_from()
        if c < oldest:
            lost[0] += min(oldest, w) - c
            cur[0] = min(oldest, w)
        end[0] = cur[0] + min(room, w - cur[0])
        return 0

    def read(self, cursor=0, limit=None, copy=True):
        """Rows committed since ``cursor``: ``ReadResult(rows, cursor, lost)``, as
        :meth:`fastfeed.Ring.read`.  ``rows`` is a checked copy: every row returned is the
        writer's row, whole; rows overwritten before or during the read are counted in
        ``lost`` and skipped.  ``copy=False`` returns a zero-copy view (a copy where the rows
        wrap) checked at the time of the call; the writer may overwrite it afterwards: call
        :meth:`intact` with the view's first sequence (``cursor - len(rows)``) once you are
        done with it.  Raises :class:`~fastfeed.share.StaleSegment` once everything is read
        from a segment its writer closed or a restarted writer replaced."""
        cdef uint64_t cur, end, lost, ok, n
        self.bounds(cursor, limit, &cur, &end, &lost)
        n = end - cur
        cdef uint64_t i0 = cur & self.mask
        if not copy and i0 + n <= self.cap:
            view = self.array[i0:i0 + n]
            ok = self.valid_from()
        else:
            view = np.zeros(n, dtype=self.array.dtype)
            ok = self.copy_rows(<char*>cnp.PyArray_DATA(view), cur, end)
        if ok > cur:
            k = min(ok, end) - cur
            lost += k
            view = view[k:]
        return ReadResult(view, end, lost)

    def read_into(self, cnp.ndarray out, cursor=0):
        """Copies up to ``len(out)`` rows since ``cursor`` into ``out`` (a C-contiguous
        array of this ring's dtype) and allocates nothing: returns ``(n, cursor, lost)``,
        the rows being ``out[:n]`` (checked as :meth:`read` checks them)."""
        self.check_out(out)
        cdef uint64_t cur, end, lost
        self.bounds(cursor, cnp.PyArray_DIM(out, 0), &cur, &end, &lost)
        return self.copy_checked(<char*>cnp.PyArray_DATA(out), cur, end, &lost), end, lost

    cdef int check_out(self, object arr) except -1:
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"out must be a numpy array of {self.array.dtype}")
        cdef cnp.ndarray out = arr
        if not (cnp.PyArray_IS_C_CONTIGUOUS(out) and cnp.PyArray_ISWRITEABLE(out)
                and cnp.PyArray_NDIM(out) == 1
                and (out.dtype is self.array.dtype or out.dtype == self.array.dtype)):
            raise TypeError(f"out must be a writable C-contiguous 1-d array of "
                            f"{self.array.dtype}")
        return 0

    cdef uint64_t copy_checked(self, char* p, uint64_t cur, uint64_t end,
                               uint64_t* lost) noexcept nogil:
        """The checked copy behind every ``read_into``: rows [cur, end) to ``p``, those the
        writer overwrote meanwhile dropped (added to ``lost[0]``); returns the rows kept, at
        the start of ``p``."""
        cdef uint64_t ok = self.copy_rows(p, cur, end)
        cdef uint64_t k
        if ok > cur:
            k = min(ok, end) - cur
            lost[0] += k
            memmove(p, p + k * self.itemsize, (end - cur - k) * self.itemsize)
            cur += k
        return end - cur

    def intact(self, start):
        """True if the row at sequence ``start`` (and so every later row) has not been
        overwritten: the check that makes a zero-copy view from ``read(copy=False)`` safe to
        have used."""
        return <uint64_t>start >= self.valid_from()

    def tail(self, Py_ssize_t n):
        """Copy of the last ``n`` intact rows, oldest first."""
        if n < 0:
            raise ValueError("n must be >= 0")
        cdef uint64_t w = ff_load_acq64(&self.pub.written)
        cdef uint64_t start = w - min(<uint64_t>n, w - min(w, self.valid_from()))
        out = np.zeros(w - start, dtype=self.array.dtype)
        cdef uint64_t ok = self.copy_rows(<char*>cnp.PyArray_DATA(out), start, w)
        if ok > start:
            out = out[min(ok, w) - start:]
        return out

    def reader(self, start="now"):
        """A :class:`SharedRingReader` at the current end (``"now"``) or the oldest row."""
        if start not in ("now", "oldest"):
            raise ValueError(f"start must be 'now' or 'oldest', got {start!r}")
        return SharedRingReader(self, self.written if start == "now" else self.oldest)

    def wait(self, cursor, timeout=None, spin=0.0, poll=0.0):
        """Block until rows past ``cursor`` are committed: True, or False after ``timeout``
        seconds (None: no limit).  Spins for ``spin`` seconds first (``float("inf")``: spin
        only; the lowest latency, one core busy), then sleeps on the segment's futex (the
        writer wakes sleepers once per socket read, a syscall on its time), or with ``poll``
        seconds > 0 naps that long between looks and costs the writer nothing.  The GIL is
        released meanwhile, except that a thread that is its process's only Python thread
        spins holding it, for at most ``sys.getswitchinterval()`` (nobody waits for it; taking
        it back costs latency).  Raises
        :class:`~fastfeed.share.StaleSegment` when the segment was closed or replaced and
        nothing is left to read, or its writer died."""
        return self.wait_for(cursor, timeout, spin, poll) == 1

    cdef int wait_for(self, uint64_t cursor, object timeout, object spin,
                      object poll) except -1:
        """:meth:`wait` with its arguments checked: 1 (rows past ``cursor``) or 0."""
        if ff_load_acq64(&self.pub.written) > cursor:
            return 1     # the common case of a busy feed: no clock, no GIL release
        cdef double t = -1.0 if timeout is None else float(timeout)
        cdef double s = float(spin)
        if s < 0:
            raise ValueError(f"spin must be >= 0, got {spin!r}")
        return self.wait_c(cursor, t, s, _poll_ns(poll))

    cdef int spin_for_rows(self, uint64_t cursor, int64_t end) noexcept nogil:
        """Spins until rows past ``cursor`` are committed (1), the segment stops being live
        (-1), or the monotonic clock reaches ``end`` (0; read every 64 rounds)."""
        cdef int rounds = 0
        while True:
            if ff_load_acq64(&self.pub.written) > cursor:
                return 1
            if ff_load_acq32(&self.hdr.state) != FF_SEG_LIVE:
                return -1
            rounds += 1
            if rounds & 63:
                ff_cpu_relax()
            elif ff_mono_ns() >= end:
                return 0

    cdef int wait_c(self, uint64_t cursor, double timeout, double spin,
                    int64_t poll_ns) except -1:
        cdef int64_t t0 = ff_mono_ns()
        cdef int64_t deadline = t0 + <int64_t>(timeout * 1e9) if timeout >= 0 else -1
        cdef int64_t spin_end = (t0 + <int64_t>(spin * 1e9) if spin < 1e9
                                 else 0x7fffffffffffffff)
        cdef int64_t now
        cdef uint32_t f
        cdef int got = 0, r
        cdef bint spinning = spin > 0
        cdef int64_t check_at, end
        if spinning and _gil_is_ours_alone():
            # No other Python thread can want the GIL: spin holding it, for at most the
            # interpreter's switch interval (as running Python code would).  A row that comes
            # meanwhile is returned without taking the GIL back, a third of a spinning Python
            # reader's latency here (decision 0601).  Then the loop below spins without it.
            end = t0 + <int64_t>(_switch_interval() * 1e9)
            if spin_end < end:
                end = spin_end
            if deadline >= 0 and deadline < end:
                end = deadline
            if self.spin_for_rows(cursor, end) == 1:
                return 1
        while True:
            check_at = ff_mono_ns() + 100000000   # back to Python every 100 ms: signals, writer
            with nogil:
                while True:
                    if ff_load_acq64(&self.pub.written) > cursor:
                        got = 1
                        break
                    if ff_load_acq32(&self.hdr.state) != FF_SEG_LIVE:
                        break
                    if spinning:
                        end = spin_end if spin_end < check_at else check_at
                        if deadline >= 0 and deadline < end:
                            end = deadline
                        r = self.spin_for_rows(cursor, end)
                        if r != 0:
                            got = r == 1
                            break
                        now = ff_mono_ns()
                        if (deadline >= 0 and now >= deadline) or now >= check_at:
                            break
                        spinning = False   # spin_end came first
                    now = ff_mono_ns()
                    if deadline >= 0 and now >= deadline:
                        break
                    if poll_ns > 0:
                        # Not counted in as asleep, so the writer never wakes us: nap, look.
                        if now >= check_at:
                            break
                        _nap(poll_ns, now, deadline)
                        continue
                    # Sleep: count in, read the word, re-check, then wait on the word (the
                    # writer publishes, bumps the word, then reads the count; all seq_cst).
                    self.sleep_in()
                    f = ff_load_sc32(&self.hdr.futex)
                    self.sleep_out(f, now, deadline,
                                   ff_load_acq64(&self.pub.written) <= cursor
                                   and ff_load_acq32(&self.hdr.state) == FF_SEG_LIVE)
                    break
            if got:
                return 1
            self._check_state(cursor, ff_load_acq64(&self.pub.written))
            if ff_load_acq64(&self.pub.written) > cursor:
                return 1
            if deadline >= 0 and ff_mono_ns() >= deadline:
                return 0
            self._check_writer()
            cpython_check_signals()

    def wait_word(self, uint32_t seen, timeout=None, spin=0.0, poll=0.0):
        """Block until the writer's notify count differs from ``seen`` (``notify_word``):
        the feed-level wait of :class:`fastfeed.share.SharedFeed`.  Same arguments and errors
        as :meth:`wait`; returns the new count, or None on timeout."""
        cdef double t = -1.0 if timeout is None else float(timeout)
        cdef int64_t poll_ns = _poll_ns(poll)
        cdef int64_t t0 = ff_mono_ns()
        cdef int64_t deadline = t0 + <int64_t>(t * 1e9) if t >= 0 else -1
        cdef int64_t spin_end = t0 + <int64_t>(min(float(spin), 1e9) * 1e9)
        cdef int64_t now, check_at
        cdef uint32_t f = seen
        cdef int got = 0
        while True:
            check_at = ff_mono_ns() + 100000000
            with nogil:
                while True:
                    f = ff_load_sc32(&self.hdr.futex)
                    if f != seen:
                        got = 1
                        break
                    now = ff_mono_ns()
                    if (deadline >= 0 and now >= deadline) or now >= check_at:
                        break
                    if now < spin_end:
                        ff_cpu_relax()
                        continue
                    if poll_ns > 0:   # nap and look again: the writer never wakes us
                        _nap(poll_ns, now, deadline)
                        continue
                    self.sleep_in()
                    self.sleep_out(seen, now, deadline, True)   # returns at once if moved on
                    break
            if got:
                return f
            st = ff_load_acq32(&self.hdr.state)
            if st != FF_SEG_LIVE:
                raise StaleSegment(self._stale_message(st))
            if deadline >= 0 and ff_mono_ns() >= deadline:
                return None
            self._check_writer()
            cpython_check_signals()

    @property
    def notify_word(self):
        """The writer's notify count (bumped once per batch of commits)."""
        return ff_load_sc32(&self.hdr.futex)

    def _check_writer(self):
        import os
        pid = self.hdr.writer_pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise StaleSegment(f"the writer of shared segment generation "
                               f"{self.generation:#x} (pid {pid}) exited without closing it"
                               ) from None
        except PermissionError:
            pass

    def __repr__(self):
        return (f"<SharedRing {self.name} capacity={self.cap} "
                f"written={ff_load_acq64(&self.pub.written)}>")


cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1


cdef double _switch_interval() except -1.0:
    return sys.getswitchinterval()


cdef int64_t _poll_ns(object poll) except -1:
    """A wait's ``poll`` (seconds, 0 to 1) checked, in ns; above 0 the calling thread's timer
    slack is cut for naps that long (``ff_poll_slack``), once per wait."""
    cdef double p = float(poll)
    if not 0 <= p <= 1:
        raise ValueError(f"poll must be between 0 and 1 (seconds), got {poll!r}")
    cdef int64_t ns = <int64_t>(p * 1e9)
    if ns > 0:
        ff_poll_slack(ns)
    return ns


cdef inline void _nap(int64_t poll_ns, int64_t now, int64_t deadline) noexcept nogil:
    """One polling nap: ``poll_ns``, or less so as to end at ``deadline`` (-1: none)."""
    ff_nap(poll_ns if deadline < 0 or deadline - now > poll_ns else deadline - now)


cdef extern from "Python.h":
    ctypedef struct PyInterpreterState:
        pass
    ctypedef struct PyThreadState:
        pass
    PyInterpreterState* PyInterpreterState_Head()
    PyInterpreterState* PyInterpreterState_Next(PyInterpreterState*)
    PyInterpreterState* PyInterpreterState_Get()
    PyThreadState* PyInterpreterState_ThreadHead(PyInterpreterState*)
    PyThreadState* PyThreadState_Next(PyThreadState*)


cdef inline bint _gil_is_ours_alone() noexcept:
    """True when the calling thread is the only Python thread of the only interpreter, so no
    thread is waiting for the GIL (asked with the GIL held)."""
    return (PyInterpreterState_Next(PyInterpreterState_Head()) == NULL
            and PyThreadState_Next(PyInterpreterState_ThreadHead(PyInterpreterState_Get()))
            == NULL)


cdef inline int cpython_check_signals() except -1:
    return PyErr_CheckSignals()


cdef class SharedRingReader:
    """A cursor over one :class:`SharedRing` that totals what it lost (``lost``) and what it
    received (``received``), as :class:`fastfeed.RingReader`; ``read_into`` and
    ``wait_into`` fill the caller's array and allocate nothing."""

    def __init__(self, SharedRing ring, cursor=0):
        if cursor < 0:
            raise ValueError(f"cursor must be >= 0, got {cursor}")
        self.ring = ring
        self.cursor = cursor
        self.lost = 0
        self.received = 0

    def read(self, limit=None, copy=True):
        """New rows since the last read (checked copies; see SharedRing.read)."""
        rows, self.cursor, lost = self.ring.read(self.cursor, limit, copy)
        self.lost += lost
        self.received += len(rows)
        return rows

    def read_into(self, cnp.ndarray out):
        """Copies up to ``len(out)`` new rows into ``out`` (checked as :meth:`read`) and
        returns how many: the rows are ``out[:n]``.  Allocates nothing."""
        self.ring.check_out(out)
        return self.take(out)

    cdef uint64_t take(self, object arr) except? 0xffffffffffffffff:
        """The rows since the cursor into ``arr`` (checked by ``check_out``): moves the
        cursor, totals ``received`` and ``lost``, returns the rows in ``arr[:n]``."""
        cdef cnp.ndarray out = arr
        cdef uint64_t cur, end, n
        self.ring.span(self.cursor, cnp.PyArray_DIM(out, 0), &cur, &end, &self.lost)
        n = self.ring.copy_checked(<char*>cnp.PyArray_DATA(out), cur, end, &self.lost)
        self.cursor = end
        self.received += n
        return n

    def wait_into(self, cnp.ndarray out, timeout=None, spin=0.0, poll=0.0):
        """:meth:`wait`, then :meth:`read_into` in one call: the rows are ``out[:n]``, and
        ``n`` is 0 after ``timeout`` seconds.  The spinning reader's call: nothing is
        allocated and no Python runs between the row's arrival and the copy."""
        self.ring.check_out(out)
        if self.ring.wait_for(self.cursor, timeout, spin, poll) != 1:
            return 0
        return self.take(out)

    def wait(self, timeout=None, spin=0.0, poll=0.0):
        """Block until rows past the cursor exist (see SharedRing.wait)."""
        return self.ring.wait(self.cursor, timeout, spin, poll)

    @property
    def pending(self):
        return self.ring.written - self.cursor
