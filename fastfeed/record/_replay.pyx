# cython: language_level=3
"""Replay's inner loop: the FRAME records of a decompressed chunk go through each recorded
connection's :class:`~fastfeed.feed._listener.FeedListener` message path at C level (the
same decoder, id filter and event markers as the live feed), one cdef call per message."""
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from libc.string cimport memcpy

from fastfeed.feed._filter cimport FeedSink
from fastfeed.feed._listener cimport FeedListener
from fastfeed.core._tap cimport R_FRAME, R_HEADER

# play() statuses
END = 0          # the chunk is done
OTHER = 1        # a non-FRAME record at pos: the caller handles it and goes on after it
UNKNOWN_CONN = 2  # a FRAME of a connection without a listener yet: add_listener, then go on
LIMIT = 3        # max_frames played
UNTIL = 4        # the next frame is later than until_ns
MALFORMED = -1   # a record runs past the chunk's end


cdef class Player:
    """Routes FRAME records to the listener of their connection."""
    cdef readonly FeedSink sink
    cdef dict listeners
    cdef uint32_t last_conn
    cdef FeedListener last_lis
    cdef readonly uint64_t frames

    def __cinit__(self, FeedSink sink):
        self.sink = sink
        self.listeners = {}
        self.last_lis = None
        self.last_conn = 0
        self.frames = 0

    def add_listener(self, FeedListener lis):
        self.listeners[lis.conn_id] = lis

    def listener(self, uint32_t conn):
        return self.listeners.get(conn)

    def mark(self, int reason, uint32_t conn, uint32_t symbol, int slot, int64_t expected,
             int64_t got, int64_t recv_ns):
        """Write a recorded marker row at its recorded time (no wake)."""
        self.sink.mark_c(<uint8_t>reason, conn, symbol, <uint8_t>slot, expected, got, recv_ns)

    def play(self, const unsigned char[::1] raw, Py_ssize_t pos, Py_ssize_t max_frames=-1,
             int64_t until_ns=0):
        """Play FRAME records from ``pos``.  Returns ``(pos, frames played, status)``; the
        statuses are this module's END, OTHER, UNKNOWN_CONN, LIMIT, UNTIL, MALFORMED."""
        cdef Py_ssize_t n = raw.shape[0]
        cdef const char* base = <const char*>&raw[0] if n else NULL
        cdef Py_ssize_t played = 0
        cdef int64_t recv_ns
        cdef uint32_t conn, ln
        cdef int status = END
        cdef FeedListener lis
        while pos < n:
            if pos + R_HEADER > n:
                status = MALFORMED
                break
            memcpy(&recv_ns, base + pos, 8)
            memcpy(&conn, base + pos + 8, 4)
            memcpy(&ln, base + pos + 12, 4)
            if pos + R_HEADER + <Py_ssize_t>ln > n:
                status = MALFORMED
                break
            if <uint8_t>base[pos + 16] != R_FRAME:
                status = OTHER
                break
            if played == max_frames:
                status = LIMIT
                break
            if until_ns and recv_ns > until_ns:
                status = UNTIL
                break
            if self.last_lis is None or conn != self.last_conn:
                lis = self.listeners.get(conn)
                if lis is None:
                    status = UNKNOWN_CONN
                    break
                self.last_lis = lis
                self.last_conn = conn
            self.last_lis.replay_message(base + pos + R_HEADER, <Py_ssize_t>ln, recv_ns)
            played += 1
            pos += R_HEADER + <Py_ssize_t>ln
        self.frames += <uint64_t>played
        return pos, played, status
