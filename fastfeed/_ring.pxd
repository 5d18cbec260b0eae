from libc.stdint cimport uint64_t


cdef class Ring:
    cdef readonly object array      # the preallocated numpy structured array (read-only to Python)
    cdef char* base
    cdef readonly Py_ssize_t itemsize
    cdef uint64_t cap
    cdef uint64_t mask
    cdef uint64_t _written

    # Writer side, C level only.  A writer fills rows at slot(written + k) and publishes
    # them with commit(n); nothing is visible to readers before commit.
    cdef inline char* slot(self, uint64_t seq) noexcept:
        return self.base + <Py_ssize_t>(seq & self.mask) * self.itemsize

    cdef inline char* reserve(self, uint64_t k) noexcept:
        return self.base + <Py_ssize_t>((self._written + k) & self.mask) * self.itemsize

    cdef inline void commit(self, uint64_t n) noexcept:
        self._written += n

    cdef object _rows(self, uint64_t start, uint64_t end, bint copy)
