from libc.stdint cimport uint64_t


cdef extern from "_prefetch.h":
    void ff_prefetch_w(const void* p) noexcept   # a hint: never faults, no effect on results


cdef class Ring:
    cdef readonly object array      # the preallocated numpy structured array (read-only to Python)
    cdef char* base
    cdef readonly Py_ssize_t itemsize
    cdef uint64_t cap
    cdef uint64_t mask
    cdef uint64_t _written
    cdef uint64_t _floor            # rows below this sequence are gone even if written - cap is lower

    # Writer side, C level only.  A writer fills rows at slot(written + k) and publishes
    # them with commit(n); nothing is visible to readers before commit.
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

    # Oldest sequence still held: normally written - cap, higher after a rollback.
    cdef inline uint64_t oldest_seq(self) noexcept:
        cdef uint64_t o = self._written - self.cap if self._written > self.cap else 0
        return o if o > self._floor else self._floor

    # Take back the rows committed since seq ``w0`` (a writer that filters after writing, see
    # _listener.pyx).  Their slots overwrote the rows ``cap`` older, so those count as gone.
    cdef inline void rollback(self, uint64_t w0) noexcept:
        if self._written > self.cap and self._written - self.cap > self._floor:
            self._floor = self._written - self.cap
        self._written = w0

    cdef object _rows(self, uint64_t start, uint64_t end, bint copy)
