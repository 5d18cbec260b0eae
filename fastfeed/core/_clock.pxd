from libc.stdint cimport int64_t

cdef extern from "_clock.h" nogil:
    int64_t ff_now_ns()
