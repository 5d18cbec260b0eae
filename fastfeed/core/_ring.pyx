"""Preallocated numpy ring buffers with a monotonic 64-bit write sequence."""
import operator
from collections import namedtuple

import numpy as np
cimport numpy as cnp
from libc.string cimport memcpy, memset

cnp.import_array()

ReadResult = namedtuple("ReadResult", ["rows", "cursor", "lost"])
ReadResult.__doc__ = """Result of Ring.read: the rows since the cursor, the cursor to pass next
time, and how many rows were overwritten before the reader got to them."""


def _index(name, value):
    """``value`` as an int (numpy integers too); TypeError naming ``name`` for a float or
    anything else, where a C conversion would truncate it or fail with an OverflowError."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


cdef class Ring:
    """A fixed-capacity ring of numpy structured rows.

    ``written`` counts every row ever committed; row ``seq`` lives at index
    ``seq % capacity`` until ``capacity`` newer rows overwrite it.  Readers keep their own
    cursor (a sequence number), so any number of readers can share one ring.
    """

    def __cinit__(self, dtype, Py_ssize_t capacity):
        if capacity < 1 or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two, got {capacity}")
        arr = np.zeros(capacity, dtype=dtype)
        self.base = <char*>cnp.PyArray_DATA(arr)
        # np.zeros maps large rings lazily; touch every page now so the first pass of the
        # writer takes no page faults (latency spikes, RSS growing under load).
        memset(self.base, 0, capacity * arr.dtype.itemsize)
        arr.flags.writeable = False   # C writes through base; Python readers get read-only views
        self.array = arr
        self.itemsize = arr.dtype.itemsize
        self.cap = <uint64_t>capacity
        self.mask = self.cap - 1
        self._written = 0
        self.pub = NULL
        self.pub_slack = 0

    @property
    def written(self):
        """Total rows ever written (monotonic)."""
        return self._written

    @property
    def capacity(self):
        return self.cap

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def oldest(self):
        """Sequence number of the oldest row still held."""
        return self.oldest_seq()

    def __len__(self):
        return self._written - self.oldest_seq()

    def tail(self, Py_ssize_t n):
        """Copy of the last ``n`` rows (fewer if fewer are held), oldest first."""
        if n < 0:
            raise ValueError("n must be >= 0")
        cdef uint64_t avail = self._written - self.oldest_seq()
        cdef uint64_t k = min(<uint64_t>n, avail)
        return self._rows(self._written - k, self._written, True)

    def read(self, cursor=0, limit=None):
        """Rows committed since ``cursor``: returns ``ReadResult(rows, cursor, lost)``.

        ``rows`` is a zero-copy read-only view when the rows sit contiguously in the
        ring, and a copy when they wrap around its end.  A view stays valid only until
        the writer runs again (the next decode; in a feed, the next event-loop turn):
        copy what you keep.  ``lost`` is exactly how many rows since ``cursor`` were
        overwritten before this read; the returned cursor already skips them.
        ``limit`` caps the number of rows returned (the cursor then stops there).
        """
        cursor = _index("cursor", cursor)
        if limit is not None and _index("limit", limit) < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit!r}")
        cdef uint64_t w = self._written
        if cursor < 0 or cursor > w:
            raise ValueError(f"cursor {cursor} is outside 0..{w}")
        cdef uint64_t cur = <uint64_t>cursor
        cdef uint64_t oldest = self.oldest_seq()
        cdef uint64_t lost = 0
        if cur < oldest:
            lost = oldest - cur
            cur = oldest
        cdef uint64_t end = w
        if limit is not None and end - cur > <uint64_t>limit:
            end = cur + <uint64_t>limit
        return ReadResult(self._rows(cur, end, False), end, lost)

    def reader(self, start="now"):
        """A RingReader positioned at the current end (``"now"``) or the oldest row."""
        if start not in ("now", "oldest"):
            raise ValueError(f"start must be 'now' or 'oldest', got {start!r}")
        return RingReader(self, self._written if start == "now" else self.oldest)

    cdef object _rows(self, uint64_t start, uint64_t end, bint copy):
        cdef uint64_t i0 = start & self.mask
        cdef uint64_t n = end - start
        if i0 + n <= self.cap and not copy:
            return self.array[i0:i0 + n]
        # A copy is made byte for byte: numpy copies a dtype with holes (the rows' tail
        # padding) field by field and leaves the holes as uninitialised heap, so tobytes()
        # of the same rows would differ from copy to copy.  Wrapped rows are joined here too
        # (np.concatenate would drop the padding that keeps rows in C-struct layout).
        out = np.empty(n, dtype=self.array.dtype)
        cdef char* dst = <char*>cnp.PyArray_DATA(<cnp.ndarray>out)
        cdef uint64_t first = min(n, self.cap - i0)
        memcpy(dst, self.slot(start), first * self.itemsize)
        if n > first:
            memcpy(dst + first * self.itemsize, self.base, (n - first) * self.itemsize)
        return out

    def latest(self, out):
        """Copy the newest row into ``out[0]`` (an array of this ring's dtype you made once:
        ``np.zeros(1, ring.dtype)``) and return its sequence number; -1 (``out`` untouched)
        if the ring is empty.  Allocates nothing: for the question a strategy asks every
        time."""
        cdef char* dst = self.row_out(out)
        if self._written == 0:
            return -1
        memcpy(dst, self.slot(self._written - 1), self.itemsize)
        return <int64_t>(self._written - 1)

    def row(self, int64_t seq, out):
        """Copy row ``seq`` into ``out[0]`` and return ``seq``; -1 (``out`` untouched) if
        the row is not held: not written yet, or overwritten.  Allocates nothing."""
        cdef char* dst = self.row_out(out)
        if seq < 0 or <uint64_t>seq >= self._written or <uint64_t>seq < self.oldest_seq():
            return -1
        memcpy(dst, self.slot(<uint64_t>seq), self.itemsize)
        return seq

    cdef char* row_out(self, object out) except NULL:
        if not cnp.PyArray_Check(out):
            raise TypeError(
                f"out must be a numpy array of the ring's dtype, got {type(out).__name__}")
        cdef cnp.ndarray a = <cnp.ndarray>out
        if (<object>cnp.PyArray_DESCR(a)) is not self.array.dtype and a.dtype != self.array.dtype:
            raise TypeError(f"out has dtype {a.dtype}, not the ring's ({self.array.dtype})")
        if not cnp.PyArray_ISCARRAY(a):
            raise ValueError("out must be writable and C-contiguous")
        if cnp.PyArray_SIZE(a) < 1:
            raise ValueError("out must hold at least one row")
        return <char*>cnp.PyArray_DATA(a)
    cdef int adopt(self, object arr, ff_ring_pub* pub) except -1:
        if pub != NULL and self.pub != NULL and pub != self.pub:
            raise ValueError("this ring is already served by a shared segment; close it first")
        if arr.dtype != self.array.dtype or arr.shape != (self.cap,):
            raise ValueError(f"adopt needs {self.cap} rows of the ring's dtype, got {arr.dtype} "
                             f"{arr.shape}")
        cdef char* base = <char*>cnp.PyArray_DATA(arr)
        if base != self.base:
            memcpy(base, self.base, self.cap * self.itemsize)
            arr.flags.writeable = False
            self.base = base
            self.array = arr
        self.pub = pub
        self.pub_slack = min(<uint64_t>15, self.cap // 64)
        if pub != NULL:
            ff_pub_intent(pub, self._written, 0)
            ff_pub_written(pub, self._written)
        return 0

    def __repr__(self):
        return f"<Ring {self.array.dtype.names[:3]}... capacity={self.cap} written={self._written}>"


class RingReader:
    """A cursor over one ring that also totals what it lost to overwrites."""

    __slots__ = ("ring", "cursor", "lost")

    def __init__(self, ring, cursor=0):
        self.ring = ring
        self.cursor = cursor
        self.lost = 0

    def read(self, limit=None):
        """New rows since the last read (a view or a copy, see Ring.read)."""
        rows, self.cursor, lost = self.ring.read(self.cursor, limit)
        self.lost += lost
        return rows

    @property
    def pending(self):
        return self.ring.written - self.cursor
