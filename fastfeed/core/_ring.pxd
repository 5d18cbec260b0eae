from libc.stdint cimport int64_t, uint64_t


cdef extern from "_prefetch.h":
    void ff_prefetch_w(const void* p) noexcept   # a hint: never faults, no effect on results


# A ring published in shared memory (fastfeed.share, docs/decisions/0601-shared-memory-rings.md)
# keeps two counters there: ``written`` (the commit, a release store) and ``intent`` (one past
# the highest row the writer may be writing, stored before the row's bytes).  A reader copies
# rows, then reads ``intent``: a row ``s`` is intact if ``s >= intent - capacity``.  On x86
# both are plain stores with a compiler barrier.  ``intent`` runs up to ``pub_slack`` rows
# ahead (capacity / 64, at most 15): one store per 16 rows instead of one per row, for readers
# about to be lapped anyway a few rows more counted as lost.
cdef extern from *:
    """
    #include <stdint.h>
    /* The rings of a segment pack their counters, 4 rings to a cache line: a writer's batch
       of commits to several rings then moves one or two lines to the readers, not two per
       ring (decision 0601). */
    typedef struct { uint64_t written; uint64_t intent; } ff_ring_pub;
    static inline void ff_pub_intent(ff_ring_pub* p, uint64_t v, uint64_t slack) {
        if (v > p->intent) {
            __atomic_store_n(&p->intent, v + slack, __ATOMIC_RELAXED);
            __atomic_thread_fence(__ATOMIC_RELEASE);  /* intent visible before the row's bytes */
        }
    }
    static inline void ff_pub_written(ff_ring_pub* p, uint64_t v) {
        __atomic_store_n(&p->written, v, __ATOMIC_RELEASE);  /* rows visible before written */
    }
    """
    ctypedef struct ff_ring_pub:
        uint64_t written
        uint64_t intent
    void ff_pub_intent(ff_ring_pub* p, uint64_t v, uint64_t slack) noexcept nogil
    void ff_pub_written(ff_ring_pub* p, uint64_t v) noexcept nogil


cdef class Ring:
    cdef readonly object array      # the preallocated numpy structured array (read-only to Python)
    cdef char* base
    cdef readonly Py_ssize_t itemsize
    cdef uint64_t cap
    cdef uint64_t mask
    cdef uint64_t _written
    cdef ff_ring_pub* pub           # NULL, or this ring's counters in a shared segment
    cdef uint64_t pub_slack         # intent claims this many rows more: one store per chunk

    # Writer side, C level only.  A writer fills rows at slot(written + k) and publishes
    # them with commit(n); nothing is visible to readers before commit.  A writer only
    # reserves rows it is going to commit (the feed filters a message before its rows are
    # written, docs/decisions/0211-feed-decode-filter-commit.md): a reserved slot holds the
    # row ``cap`` older, which readers may still be reading.
    cdef inline char* slot(self, uint64_t seq) noexcept:
        return self.base + <Py_ssize_t>(seq & self.mask) * self.itemsize

    cdef inline char* reserve(self, uint64_t k) noexcept:
        if self.pub != NULL:
            ff_pub_intent(self.pub, self._written + k + 1, self.pub_slack)
        return self.base + <Py_ssize_t>((self._written + k) & self.mask) * self.itemsize

    # reserve(k), and the slot 8 rows on asked for, for writing: the rings are larger than
    # the caches, so a row's first write would otherwise wait for its line (~7% of an
    # aggTrade's decode).
    cdef inline char* reserve_ahead(self, uint64_t k) noexcept:
        ff_prefetch_w(self.slot(self._written + k + 8))
        return self.reserve(k)

    cdef inline void commit(self, uint64_t n) noexcept:
        self._written += n
        if self.pub != NULL:
            ff_pub_written(self.pub, self._written)

    # Oldest sequence still held.
    cdef inline uint64_t oldest_seq(self) noexcept:
        return self._written - self.cap if self._written > self.cap else 0

    cdef object _rows(self, uint64_t start, uint64_t end, bint copy)

    # The row buffer of ``out``, a caller-owned writable C-contiguous numpy array of this
    # ring's dtype holding at least one row (latest, row, the feed's last_row): checked,
    # nothing allocated.  TypeError / ValueError naming the mismatch.
    cdef char* row_out(self, object out) except NULL
    # Moves the rows into ``arr`` (same dtype and capacity, e.g. in a shared segment) and
    # publishes ``written`` / ``intent`` at ``pub`` from now on (NULL: stop publishing).
    cdef int adopt(self, object arr, ff_ring_pub* pub) except -1
