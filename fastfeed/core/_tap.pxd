# C-level recorder tap: records copied into a preallocated buffer (see _tap.pyx).
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t

cdef enum:
    R_FRAME = 1
    R_EVENT = 2
    R_SNAPSHOT = 3
    R_META = 4
    R_HEADER = 20       # record header bytes (format.RECORD_HEADER)


cdef class FrameTap:
    cdef char* buf
    cdef object cur                     # the bytearray buf points into
    cdef list spare                     # buffers given back by the writer
    cdef Py_ssize_t cap, len, handoff
    cdef uint32_t nrec
    cdef int64_t first_ns, last_ns
    cdef readonly uint64_t records, frames, bytes, dropped, dropped_bytes, handoff_errors
    cdef public object on_full          # callable(): called when the buffer is full

    cdef void frame(self, uint32_t conn, const char* p, Py_ssize_t n, int64_t recv_ns) noexcept
    cdef void event(self, uint8_t reason, uint32_t conn, uint32_t sym, uint8_t slot,
                    int64_t expected, int64_t got, int64_t now) noexcept
    cdef bint put(self, uint8_t kind, uint32_t conn, int64_t recv_ns, const char* p,
                  Py_ssize_t n) noexcept
    cdef void _full(self) noexcept
