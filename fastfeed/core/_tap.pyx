# cython: language_level=3
"""The recorder's hot-path part: every record is copied into one preallocated buffer.

The listener calls :meth:`FrameTap.frame` (a cdef call, no Python object) for every data
message with its receive time and connection id; the feed's marker rows come through
:meth:`FrameTap.event`.  When the buffer is full, ``on_full`` (the recorder's writer) takes it
with :meth:`take` (the buffer itself, no copy: a spare one takes its place) and a background
thread compresses and writes it, then gives it back (:meth:`give_back`), so buffers are
reused rather than allocated, faulted in and freed once per chunk.  The tap never releases the
GIL, and ``take`` runs with the GIL held, so the two never see a half-written record.
"""
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t, uint16_t
from libc.string cimport memcpy
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize

import logging

log = logging.getLogger("fastfeed.record")


cdef class FrameTap:
    """A preallocated record buffer of ``capacity`` bytes (records of the recording format),
    handed to ``on_full`` once it holds ``handoff`` bytes (default: when the next record does
    not fit).  The room above ``handoff`` is for the largest record."""

    def __cinit__(self, Py_ssize_t capacity=2 << 20, Py_ssize_t handoff=0):
        if capacity < 4096:
            raise ValueError("capacity must be >= 4096 bytes")
        if handoff <= 0 or handoff > capacity:
            handoff = capacity
        self.handoff = handoff
        self.spare = []
        self.cur = bytearray(capacity)   # zero-filled: its pages are faulted in now
        self.buf = PyByteArray_AS_STRING(self.cur)
        self.cap = capacity
        self.len = 0
        self.nrec = 0
        self.first_ns = self.last_ns = 0
        self.records = self.frames = self.bytes = 0
        self.dropped = self.dropped_bytes = self.handoff_errors = 0
        self.on_full = None

    @property
    def capacity(self):
        return self.cap

    @property
    def pending_bytes(self):
        """Bytes buffered, not yet taken."""
        return self.len

    cdef bint put(self, uint8_t kind, uint32_t conn, int64_t recv_ns, const char* p,
                  Py_ssize_t n) noexcept:
        cdef Py_ssize_t need = R_HEADER + n
        cdef uint32_t n32 = <uint32_t>n
        cdef uint16_t zero = 0
        cdef char* h
        if self.len + need > self.cap:
            self._full()
            if self.len + need > self.cap:
                # larger than the whole buffer, or the writer could not take it: counted
                self.dropped += 1
                self.dropped_bytes += <uint64_t>n
                return False
        h = self.buf + self.len
        memcpy(h, &recv_ns, 8)
        memcpy(h + 8, &conn, 4)
        memcpy(h + 12, &n32, 4)
        h[16] = <char>kind
        h[17] = 0
        memcpy(h + 18, &zero, 2)
        memcpy(h + R_HEADER, p, n)
        self.len += need
        if self.nrec == 0:
            self.first_ns = recv_ns
        self.last_ns = recv_ns
        self.nrec += 1
        self.records += 1
        self.bytes += <uint64_t>n
        if self.len >= self.handoff:
            self._full()
        return True

    cdef void frame(self, uint32_t conn, const char* p, Py_ssize_t n, int64_t recv_ns) noexcept:
        if self.put(R_FRAME, conn, recv_ns, p, n):
            self.frames += 1

    cdef void event(self, uint8_t reason, uint32_t conn, uint32_t sym, uint8_t slot,
                    int64_t expected, int64_t got, int64_t now) noexcept:
        cdef char b[24]
        b[0] = <char>reason
        b[1] = <char>slot
        b[2] = 0
        b[3] = 0
        memcpy(b + 4, &sym, 4)
        memcpy(b + 8, &expected, 8)
        memcpy(b + 16, &got, 8)
        self.put(R_EVENT, conn, now, b, 24)

    cdef void _full(self) noexcept:
        if self.on_full is None:
            return
        try:
            self.on_full()
        except BaseException:
            self.handoff_errors += 1
            try:
                log.exception("recorder: handing a full buffer to the writer failed")
            except BaseException:
                pass

    def put_record(self, int kind, uint32_t conn, int64_t recv_ns, const unsigned char[::1] data):
        """Append one record from Python (the cold kinds: META, SNAPSHOT).  Returns False if
        it could not be buffered (larger than the buffer): the caller writes it alone."""
        cdef Py_ssize_t n = data.shape[0]
        if R_HEADER + n > self.cap:
            return False
        cdef const char* p = <const char*>&data[0] if n else <const char*>b""
        return self.put(<uint8_t>kind, conn, recv_ns, p, n)

    def add_event(self, int reason, uint32_t conn, uint32_t symbol, int slot, int64_t expected,
                  int64_t got, int64_t recv_ns):
        """Append an EVENT record from Python (tests, tools)."""
        self.event(<uint8_t>reason, conn, symbol, <uint8_t>slot, expected, got, recv_ns)

    def add_frame(self, uint32_t conn, const unsigned char[::1] data, int64_t recv_ns):
        """Append a FRAME record from Python (tests, tools); the feed uses the cdef path."""
        cdef Py_ssize_t n = data.shape[0]
        self.frame(conn, <const char*>&data[0] if n else <const char*>b"", n, recv_ns)

    def take(self):
        """The buffered records as ``(buffer, length, count, first recv_ns, last recv_ns)``, or
        None when empty.  The records are ``buffer[:length]``; the tap goes on in a spare buffer
        (a new one if none was given back).  Pass ``buffer`` to :meth:`give_back` once done."""
        if self.nrec == 0:
            return None
        out = (self.cur, self.len, self.nrec, self.first_ns, self.last_ns)
        # A new buffer is not zero-filled: that would fault in all its pages here, on the
        # read path, at once; only the bytes the tap writes are ever read or written out.
        self.cur = (self.spare.pop() if self.spare
                    else PyByteArray_FromStringAndSize(NULL, self.cap))
        self.buf = PyByteArray_AS_STRING(self.cur)
        self.len = 0
        self.nrec = 0
        return out

    def give_back(self, bytearray buffer, Py_ssize_t keep=4):
        """Return a buffer from :meth:`take` for reuse (at most ``keep`` are kept)."""
        if len(buffer) == self.cap and len(self.spare) < keep:
            self.spare.append(buffer)

    def stats(self):
        return {"records": self.records, "frames": self.frames, "bytes": self.bytes,
                "dropped": self.dropped, "dropped_bytes": self.dropped_bytes,
                "handoff_errors": self.handoff_errors, "buffered": self.len}
