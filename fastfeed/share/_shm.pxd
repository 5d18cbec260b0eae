# C-level interface of fastfeed.share's segment (see _shm.pyx and _shm.h).
from libc.stdint cimport int64_t, uint32_t, uint64_t
from fastfeed.core._decoder cimport SymbolTable
from fastfeed.core._ring cimport ff_ring_pub


cdef extern from "_shm.h" nogil:
    ctypedef struct ff_reader_slot:
        uint32_t pid
        uint32_t sleeping
        uint64_t attached_ns

    ctypedef struct ff_seg_header:
        uint64_t magic
        uint32_t layout
        uint32_t header_size
        uint64_t generation
        int64_t created_ns
        uint32_t writer_pid
        uint32_t state
        uint64_t desc_offset
        uint64_t desc_len
        uint64_t total_size
        int64_t heartbeat_ns
        uint64_t notifies
        uint64_t wakes
        uint32_t futex
        uint32_t waiters
        uint32_t nsym
        uint32_t sym_bytes
        uint32_t sym_dropped
        ff_reader_slot readers[64]

    enum:
        FF_SEG_INIT
        FF_SEG_LIVE
        FF_SEG_CLOSED
        FF_SEG_REPLACED
        FF_READER_SLOTS
        FF_MAX_RINGS
        FF_SHM_LAYOUT
    uint64_t FF_SHM_MAGIC

    uint64_t ff_load_acq64(const uint64_t* p)
    uint32_t ff_load_acq32(const uint32_t* p)
    void ff_store_rel32(uint32_t* p, uint32_t v)
    void ff_store_rel64(uint64_t* p, uint64_t v)
    void ff_store_rel_i64(int64_t* p, int64_t v)
    int64_t ff_load_acq_i64(const int64_t* p)
    void ff_fence_acq()
    uint32_t ff_add32(uint32_t* p, uint32_t v)
    uint32_t ff_sub32(uint32_t* p, uint32_t v)
    uint32_t ff_load_sc32(const uint32_t* p)
    int ff_cas32(uint32_t* p, uint32_t expect, uint32_t v)
    int64_t ff_mono_ns()
    int ff_futex_wait(uint32_t* addr, uint32_t val, int64_t timeout_ns)
    void ff_futex_wake_all(uint32_t* addr)
    void ff_seg_notify(ff_seg_header* h)
    void ff_futex_wake_one(uint32_t* addr)
    void ff_cpu_relax()
    void ff_poll_slack(int64_t nap_ns)
    void ff_nap(int64_t ns)


cdef class Segment:
    cdef object mm
    cdef char* base
    cdef ff_seg_header* hdr
    cdef list rings
    cdef SymbolTable symbols
    cdef uint32_t* sym_off
    cdef char* sym_area
    cdef uint32_t sym_max, sym_area_size
    cdef readonly bint closed
    cdef readonly uint64_t generation

    cdef void notify_c(self) noexcept
    cdef void publish_symbols(self) noexcept


cdef class SharedRing:
    cdef object mm
    cdef char* base
    cdef ff_ring_pub* pub
    cdef ff_seg_header* hdr
    cdef ff_reader_slot* slot
    cdef readonly object array
    cdef readonly str name
    cdef readonly Py_ssize_t itemsize
    cdef uint64_t cap, mask
    cdef readonly uint64_t generation

    cdef uint64_t copy_rows(self, char* out, uint64_t start, uint64_t end) noexcept nogil
    cdef uint64_t valid_from(self) noexcept nogil
    cdef int wait_c(self, uint64_t cursor, double timeout, double spin,
                    int64_t poll_ns) except -1
    cdef int spin_for_rows(self, uint64_t cursor, int64_t end) noexcept nogil
    cdef int _check_state(self, uint64_t cursor, uint64_t w) except -1
    cdef void sleep_in(self) noexcept nogil
    cdef void sleep_out(self, uint32_t word, int64_t now, int64_t deadline,
                        bint wait) noexcept nogil
    cdef int bounds(self, object cursor, object limit, uint64_t* cur, uint64_t* end,
                    uint64_t* lost) except -1
    cdef int span(self, uint64_t c, uint64_t room, uint64_t* cur, uint64_t* end,
                  uint64_t* lost) except -1
    cdef int check_out(self, object out) except -1
    cdef uint64_t copy_checked(self, char* p, uint64_t cur, uint64_t end,
                               uint64_t* lost) noexcept nogil
    cdef int wait_for(self, uint64_t cursor, object timeout, object spin,
                      object poll) except -1


cdef class SharedRingReader:
    cdef readonly SharedRing ring
    cdef public uint64_t cursor, lost, received

    cdef uint64_t take(self, object out) except? 0xffffffffffffffff
