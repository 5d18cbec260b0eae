"""Writes received rows into a Ring: the bus subscriber's writer side (one memcpy a row)."""
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from fastfeed.core._ring cimport Ring


def append_rows(Ring ring, const unsigned char[::1] data):
    """Appends the rows in ``data`` (whole rows of ``ring.dtype``, as ``rows.tobytes()`` gives
    them) to ``ring`` and commits them at once; returns how many.  The ring's readers see
    them as if its own writer had written them (more than ``capacity`` rows overwrite each
    other, and readers count those as lost)."""
    cdef Py_ssize_t size = ring.itemsize
    cdef Py_ssize_t total = data.shape[0]
    if total % size:
        raise ValueError(f"{total} bytes are not whole rows of {size} bytes")
    cdef Py_ssize_t n = total // size
    cdef Py_ssize_t i
    if n == 0:
        return 0
    cdef const unsigned char* src = &data[0]
    for i in range(n):
        memcpy(ring.reserve(<uint64_t>i), src + i * size, <size_t>size)
    ring.commit(<uint64_t>n)
    return n
