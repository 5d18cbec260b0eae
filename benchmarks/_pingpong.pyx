# cython: language_level=3, boundscheck=False, wraparound=False
"""The machine's floor under any shared-memory reader: one cache line's round trip between two
CPUs, measured in C by two threads that bounce a counter (bench_shm.py prints it beside the
rings' latency)."""

from libc.stdint cimport uint64_t

cdef extern from *:
    """
    /* Two counters 256 bytes apart: separate cache lines (and adjacent-line prefetch pairs). */
    static uint64_t ff_pp_words[64] __attribute__((aligned(128)));
    static inline uint64_t ff_pp_load(int i) {
        return __atomic_load_n(&ff_pp_words[i], __ATOMIC_ACQUIRE);
    }
    static inline void ff_pp_store(int i, uint64_t v) {
        __atomic_store_n(&ff_pp_words[i], v, __ATOMIC_RELEASE);
    }
    """
    uint64_t ff_pp_load(int i) nogil
    void ff_pp_store(int i, uint64_t v) nogil


def reset():
    """Zero both counters (before the two threads start)."""
    ff_pp_store(0, 0)
    ff_pp_store(32, 0)


def bounce(int side, uint64_t n):
    """Side 0 stores i and waits for side 1 to echo it, n times; side 1 echoes.  Releases the
    GIL: the two sides run in two threads, each pinned to its CPU."""
    cdef uint64_t i
    with nogil:
        for i in range(1, n + 1):
            if side == 0:
                ff_pp_store(0, i)
                while ff_pp_load(32) != i:
                    pass
            else:
                while ff_pp_load(0) != i:
                    pass
                ff_pp_store(32, i)
