from libc.stdint cimport int64_t, uint64_t


cdef extern from "_prefetch.h":
    void ff_prefetch_w(const void* p) noexcept   # a hint: never faults, no effect on results


cdef class Ring:
    cdef readonly object array      # the preallocated numpy structured array (read-only to Python)
    cdef char* base
    cdef readonly Py_ssize_t itemsize
    cdef uint64_t cap
    cdef uint64_t mask
    cdef uint64_t _written

    # Writer side, C level only.  A writer fills rows at slot(written + k) and publishes
    # them with commit(n); nothing is visible to readers before commit.  A writer only
    # reserves rows it is going to commit (the feed filters a message before its rows are
    # written, docs/decisions/0211-feed-decode-filter-commit.md): a reserved slot holds the
    # row ``cap`` older, which readers may still be reading.
    cdef inline char* slot(self, uint64_t seq) noexcept:
        return self.base + <Py_ssize_t>(seq & self.mask) * self.itemsize

    cdef inline char* reserve(self, uint64_t k) noexcept:
        return self.base + <Py_ssize_t>((self._written + k) & self.mask) * self.itemsize

    # reserve(k), and the slot 8 rows on asked for, for writing: the rings are larger than
    # the caches, so a row's first write would otherwise wait for its line (~7% of an
    # aggTrade's decode).
    cdef inline char* reserve_ahead(self, uint64_t k) noexcept:
        ff_prefetch_w(self.reserve(k + 8))
        return self.reserve(k)

    cdef inline void commit(self, uint64_t n) noexcept:
        self._written += n

    # Oldest sequence still held.
    cdef inline uint64_t oldest_seq(self) noexcept:
        return self._written - self.cap if self._written > self.cap else 0

    cdef object _rows(self, uint64_t start, uint64_t end, bint copy)

    # The row buffer of ``out``, a caller-owned writable C-contiguous numpy array of this
    # ring's dtype holding at least one row (latest, row, the feed's last_row): checked,
    # nothing allocated.  TypeError / ValueError naming the mismatch.
    cdef char* row_out(self, object out) except NULL
