# cython: language_level=3, boundscheck=False, wraparound=False
"""A C-level spinning reader of a shared ring (``fastfeed/share/_shm.pxd``): what a strategy
written in C or Cython and attached to a served feed does, with no Python between the
writer's commit and the row in hand.  bench_shm.py measures it beside the Python reader."""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

from fastfeed.share._shm cimport (
    FF_SEG_LIVE,
    SharedRing,
    ff_cpu_relax,
    ff_load_acq32,
    ff_load_acq64,
)


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec* ts)
    enum:
        CLOCK_REALTIME


def spin_latency(SharedRing ring, int64_t[::1] out, uint64_t cursor):
    """Spins for each of ``len(out)`` new rows after ``cursor``, copies the newest row,
    checks it was not overwritten meanwhile (the ring's ``intent``), and stores the wall clock
    minus the row's ``recv_ns`` (ns) in ``out``.  Returns how many were measured: fewer if the
    segment stops being live."""
    cdef char row[512]
    cdef Py_ssize_t k = 0
    cdef Py_ssize_t n = out.shape[0]
    cdef uint64_t w
    cdef timespec ts
    cdef int64_t recv_ns
    if ring.itemsize > 512:
        raise ValueError("rows over 512 bytes")
    with nogil:
        while k < n:
            w = ff_load_acq64(&ring.pub.written)
            if w <= cursor:
                if ff_load_acq32(&ring.hdr.state) != FF_SEG_LIVE:
                    break
                ff_cpu_relax()
                continue
            if ring.copy_rows(row, w - 1, w) > w - 1:
                cursor = w  # overwritten while copied: not a row to time
                continue
            clock_gettime(CLOCK_REALTIME, &ts)
            memcpy(&recv_ns, row, 8)  # recv_ns is every row's first field
            out[k] = <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec - recv_ns
            k += 1
            cursor = w
    return k
