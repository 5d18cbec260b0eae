# cython: language_level=3
"""C-level picows listener (transport only): frames in, payloads to the feed's filter.

``on_ws_frame`` reassembles fragments, reads the receive clock once per socket read, and hands
each message to :meth:`FeedSink.take <fastfeed.feed._filter.FeedSink.take>` with this
connection's decoder (decode, filter, commit: see ``_filter.pyx``).  It answers close frames
and names protocol errors.  No Python object is created per message; Python is touched once
per socket read at most (the sink's hooks), and on the cold path (control replies, close
frames, errors).
"""
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from libc.string cimport memcmp, memcpy
from cpython.mem cimport PyMem_Malloc, PyMem_Free, PyMem_Calloc

from picows.picows cimport (WSListener, WSTransport, WSFrame, WSMsgType, WSCloseCode,
                            WSCloseHandshake)
from fastfeed.core._clock cimport ff_now_ns
from fastfeed.core._decoder cimport BinanceDecoder
from fastfeed.feed._filter cimport FeedSink, EV_PROTOCOL, N_SLOTS, T_DUPLICATE

import logging

log = logging.getLogger("fastfeed.listener")

cdef const char* PROBE = b"fastfeed-probe"
cdef Py_ssize_t PROBE_LEN = 14


def _retrieve(fut):
    if not fut.cancelled() and fut.exception() is not None:
        log.debug("connection ended with %r", fut.exception())


cdef class FeedListener(WSListener):
    """picows listener for one connection.  ``on_ws_frame`` runs at C level: reassembles
    fragments into a preallocated buffer of ``max_message`` bytes and hands each message to
    ``sink`` with ``decoder`` (this connection's control handling and counters; built with
    ``BinanceDecoder(share=sink.decoder)``).  Close frames are answered; a message over
    ``max_message`` or a broken fragment sequence is a protocol error (close 1009 or 1002).
    Pings are answered by picows's auto-pong (exactly one pong per ping)."""

    def __cinit__(self, FeedSink sink, BinanceDecoder decoder, uint32_t conn_id=0,
                  Py_ssize_t max_message=1 << 20):
        if decoder.trades is not sink.decoder.trades or decoder.symbols is not sink.decoder.symbols:
            raise ValueError(
                "decoder must share the sink's rings: BinanceDecoder(share=sink.decoder)")
        self.sink = sink
        self.decoder = decoder
        self.conn_id = conn_id
        self.transport = None
        self.overlap = <uint8_t*>PyMem_Calloc(sink.nsym * N_SLOTS, 1)
        self.frag_cap = max_message
        self.frag = <char*>PyMem_Malloc(max_message)
        if not (self.overlap and self.frag):
            raise MemoryError()
        self.frag_len = 0
        self.in_frag = False
        self.frames = self.messages = self.bytes = self.fragments = self.duplicates = 0
        self.late = self.late_ns = 0
        self.last_msg_ns = self.connected_ns = self.batch_start = 0
        self.last_ctrl_ns = self.read_gap_ns = 0
        self.close_code = -1
        self.close_reason = None
        self.protocol_error = None
        self.on_connected = None
        self.on_disconnected = None
        self.active = True

    def __dealloc__(self):
        PyMem_Free(self.overlap)
        PyMem_Free(self.frag)

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        self.connected_ns = ff_now_ns()
        if self.on_connected is not None:
            self.on_connected(self)

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.active = False
        self._name_parser_error(transport)
        # picows puts a parser error (and any local failure) on this future after this
        # callback; nobody awaits it, and asyncio would log "Future exception was never
        # retrieved".  The cause is named above and logged.
        if transport.disconnected_future is not None:
            transport.disconnected_future.add_done_callback(_retrieve)
        if self.on_disconnected is not None:
            self.on_disconnected(self)

    cdef void _name_parser_error(self, WSTransport transport):
        # picows's frame parser (a frame over max_frame_size, bad framing, bad UTF-8 in a
        # close) closes with 1009 / 1002 / 1007 without telling this listener (and may still
        # deliver the frame it rejected; docs/decisions/0212-feed-dead-connection.md).  That
        # close is ours and it is a protocol error: name it so, with its event row.
        cdef WSCloseHandshake hs = transport.close_handshake
        if self.protocol_error is not None or hs is None or hs.sent is None or hs.recv_then_sent:
            return
        cdef int code = <int>hs.sent.code
        if code == 1002 or code == 1007 or code == 1009:
            self.protocol_error = f"{hs.sent.reason or 'close'} ({code})"
            self.sink.mark_c(EV_PROTOCOL, self.conn_id, 0, 255, -1, -1, ff_now_ns())
            self.sink.notify()

    # The session's liveness probe pings with this payload and watches for its pong itself
    # (last_ctrl_ns), apart from picows's keepalive: a probe never holds the keepalive back.
    cpdef is_user_specific_pong(self, WSFrame frame):
        return frame.msg_type == WSMsgType.PONG and not (
            frame.payload_size == PROBE_LEN and memcmp(frame.payload_ptr, PROBE, PROBE_LEN) == 0)

    def send_probe(self):
        """Send the liveness probe: a ping whose pong updates ``last_ctrl_ns``."""
        if self.transport is not None:
            self.transport.send_ping(PROBE[:PROBE_LEN])

    cpdef pause_writing(self):
        pass   # we send a few control frames only; nothing to throttle

    cpdef resume_writing(self):
        pass

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType mt = frame.msg_type
        cdef Py_ssize_t n = frame.payload_size
        self.frames += 1
        if mt == WSMsgType.TEXT or mt == WSMsgType.BINARY:
            if self.in_frag:
                self._fail("data frame inside a fragmented message", 1002)
            elif n > self.frag_cap:
                self._fail("message over max_message", 1009)
            elif frame.fin:
                self._message(frame.payload_ptr, n)
            else:
                memcpy(self.frag, frame.payload_ptr, n)
                self.frag_len = n
                self.in_frag = True
                self.fragments += 1
        elif mt == WSMsgType.CONTINUATION:
            if not self.in_frag:
                self._fail("continuation without a first frame", 1002)
            elif self.frag_len + n > self.frag_cap:
                self.in_frag = False
                self._fail("fragmented message over max_message", 1009)
            else:
                memcpy(self.frag + self.frag_len, frame.payload_ptr, n)
                self.frag_len += n
                self.fragments += 1
                if frame.fin:
                    self.in_frag = False
                    self._message(self.frag, self.frag_len)
        else:
            self.last_ctrl_ns = ff_now_ns()   # cold path: control frames are rare
            self._heard()
        if mt == WSMsgType.CLOSE:
            # picows does not answer a peer's close: echo the code, then disconnect.
            self.close_code = <int>frame.get_close_code()
            self.close_reason = frame.get_close_message()
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code(), b"")
            transport.disconnect()
        elif mt == WSMsgType.PING:
            # Only reached if auto-pong is off: answer once with the ping's payload.
            transport.send_pong(frame.get_payload_as_bytes())
        if frame.last_in_buffer:
            self.sink.end_read(self.batch_start)
            self.batch_start = 0
            if self.heard is not None:   # once per read, not per message
                self._heard()

    cdef void _heard(self) noexcept:
        # The probe waits on this instead of polling last_heard every few ms: an idle
        # connection wakes nobody until something arrives.
        fut = self.heard
        if fut is None:
            return
        self.heard = None
        try:
            if not fut.done():
                fut.set_result(None)
        except BaseException:
            log.exception("liveness probe wake-up failed")

    cdef void _fail(self, str why, int code):
        if self.transport is not None:
            self._name_parser_error(self.transport)   # picows's parser may have failed first
        if self.protocol_error is not None:
            return   # the first error is the cause; the connection is already closing
        self.protocol_error = why
        self.sink.mark_c(EV_PROTOCOL, self.conn_id, 0, 255, -1, -1, ff_now_ns())
        if self.transport is not None:
            self.transport.send_close(<WSCloseCode>code, why.encode())
            self.transport.disconnect()

    cdef void _message(self, const char* p, Py_ssize_t n) noexcept:
        # One clock read per socket read: every frame of a read arrived together, and a
        # second read per frame costs ~30-50 ns on a VM.
        cdef int64_t now = self.batch_start
        cdef int64_t gap
        if now == 0:
            now = ff_now_ns()
            self.batch_start = now
            # How often this connection normally reads data (1/8 moving average): the session
            # probes a connection that stays silent for much longer (a dead one).
            if self.last_msg_ns:
                gap = now - self.last_msg_ns
                if self.read_gap_ns == 0:
                    self.read_gap_ns = gap
                else:
                    self.read_gap_ns += (gap - self.read_gap_ns) // 8
        self.last_msg_ns = now
        self.messages += 1
        self.bytes += <uint64_t>n
        if not self.active:
            return
        if self.sink.recorder is not None:
            self.sink.recorder.frame(self.conn_id, p, n, now)
        if self.sink.take(<void*>self.decoder, p, n, now, self.conn_id,
                          self.overlap) == T_DUPLICATE:
            self.duplicates += 1
            if self.sink.dup_age_ns >= 0:   # redundant legs: how far behind the winner
                self.late += 1
                self.late_ns += <uint64_t>self.sink.dup_age_ns

    cdef void replay_message(self, const char* p, Py_ssize_t n, int64_t recv_ns) noexcept:
        # fastfeed.record's replay: a recorded message through the live path, at its time
        self.batch_start = recv_ns
        self._message(p, n)
        self.batch_start = 0

    # ------------------------------------------------------------------ Python side
    def caught_up(self, uint32_t symbol, int slot):
        """True once this connection delivered a row of (symbol, slot) that continued or
        repeated the feed's sequence: it overlaps whatever connection it replaces."""
        if symbol >= self.sink.nsym or slot < 0 or slot >= N_SLOTS:
            return False
        return bool(self.overlap[symbol * N_SLOTS + slot])

    def stats(self):
        """Per-connection counters."""
        return {"conn": self.conn_id, "frames": self.frames, "messages": self.messages,
                "bytes": self.bytes, "fragments": self.fragments,
                "duplicates": self.duplicates, "late": self.late, "late_ns": self.late_ns,
                "last_msg_ns": self.last_msg_ns,
                "close_code": self.close_code, "close_reason": self.close_reason,
                "protocol_error": self.protocol_error}
