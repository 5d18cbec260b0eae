# cython: language_level=3
"""C-level picows listener: frame payload -> per-connection decoder -> id filter -> feed rings.

Each connection has its own decoder (control replies, counters) that shares the feed's rings
and symbol table, so rows are decoded in place.  :class:`FeedSink` keeps the last id of every
(symbol, stream kind).  A message whose id is not newer than the last one is a duplicate (a
second connection during rotation, a resent or stale event): its rows are taken back
(``Ring.rollback``) and counted; an id that skips ahead writes a gap marker into
``sink.events`` positioned before the message's rows.  No Python object is
created per message; Python is touched once per socket read at most (the wake callback), and
on the cold path (control replies, close frames, errors).
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from libc.string cimport memcpy, memset
from cpython.mem cimport PyMem_Malloc, PyMem_Free, PyMem_Calloc

from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType, WSCloseCode
from fastfeed.core._clock cimport ff_now_ns
from fastfeed.core._decoder cimport (BinanceDecoder, SymbolTable, K_TRADE, K_DEPTH, K_TICKER,
                                K_PARTIAL)
from fastfeed.core._ring cimport Ring
from fastfeed.core._rows cimport TradeRow, DepthRow, TickerRow, PartialRow

import numpy as np

import logging

log = logging.getLogger("fastfeed.listener")

cdef EventRow _e

cdef Py_ssize_t _off(void* field, void* base):
    return <char*>field - <char*>base

EVENT_DTYPE = np.dtype({
    "names": ["recv_ns", "trades_pos", "depth_pos", "tickers_pos", "partial_pos",
              "expected_id", "got_id", "symbol", "conn", "reason", "slot"],
    "formats": ["<i8", "<i8", "<i8", "<i8", "<i8", "<i8", "<i8", "<u4", "<u4", "u1", "u1"],
    "offsets": [_off(&_e.recv_ns, &_e), _off(&_e.trades_pos, &_e), _off(&_e.depth_pos, &_e),
                _off(&_e.tickers_pos, &_e), _off(&_e.partial_pos, &_e),
                _off(&_e.expected_id, &_e), _off(&_e.got_id, &_e), _off(&_e.symbol, &_e),
                _off(&_e.conn, &_e), _off(&_e.reason, &_e), _off(&_e.slot, &_e)],
    "itemsize": sizeof(EventRow)})

SLOT_NAMES = ("aggTrade", "trade", "depth", "bookTicker", "partial")
N_LATENCY_BUCKETS = N_LAT_BUCKETS


cdef inline int lat_bucket(uint64_t us) noexcept:
    # log2 buckets with 4 sub-buckets each (HDR-lite): <= 19% relative error, 64 octaves.
    cdef int b, sub
    if us < 4:
        return <int>us
    b = 63 - __builtin_clzll(us)
    sub = <int>((us >> (b - 2)) & 3)
    return (b - 1) * 4 + sub if (b - 1) * 4 + sub < N_LAT_BUCKETS else N_LAT_BUCKETS - 1

cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil


def latency_bucket_bounds():
    """Lower bound in microseconds of every latency bucket (for percentile estimates)."""
    out = []
    cdef int i, b, sub
    for i in range(N_LAT_BUCKETS):
        if i < 4:
            out.append(i)
        else:
            b = i // 4 + 1
            sub = i % 4
            out.append((1 << b) + sub * (1 << (b - 2)))
    return out


cdef inline void _set_pos(EventRow* r, int k, int64_t pos) noexcept:
    if k == K_TRADE:
        r.trades_pos = pos
    elif k == K_DEPTH:
        r.depth_pos = pos
    elif k == K_TICKER:
        r.tickers_pos = pos
    else:
        r.partial_pos = pos


@cython.final
cdef class FeedSink:
    """The feed's shared rings plus the id filter and counters every connection writes through.

    ``decoder`` holds the rings (``trades``, ``depth``, ``tickers``, ``partial``) and the symbol
    table; ``events`` is a ring of marker rows (``EVENT_DTYPE``) in order with the data rows.
    """

    def __cinit__(self, BinanceDecoder decoder, Py_ssize_t events=1024):
        self.decoder = decoder
        self.events = Ring(EVENT_DTYPE, events)
        self.nsym = decoder.symbols.max_symbols + 1
        self.last_id = <int64_t*>PyMem_Malloc(self.nsym * N_SLOTS * sizeof(int64_t))
        self.last_ns = <int64_t*>PyMem_Calloc(self.nsym * N_SLOTS, sizeof(int64_t))
        if not (self.last_id and self.last_ns):
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(self.nsym * N_SLOTS):
            self.last_id[i] = -1
        memset(self.dup, 0, sizeof(self.dup))
        memset(self.gaps, 0, sizeof(self.gaps))
        memset(self.accepted, 0, sizeof(self.accepted))
        memset(self.lat, 0, sizeof(self.lat))
        self.lat_neg = 0
        self.event_unit_ns = 1000000
        self.busy_ns = self.batches = 0
        self.accepted_total = 0
        self.unroutable = 0
        self.dirty = self.pending = False
        self.wake = None
        self.recorder = None

    def __dealloc__(self):
        PyMem_Free(self.last_id)
        PyMem_Free(self.last_ns)

    cdef void mark_c(self, uint8_t reason, uint32_t conn, uint32_t sym, uint8_t slot,
                     int64_t expected, int64_t got, int64_t now) noexcept:
        cdef EventRow* r = <EventRow*>self.events.reserve(0)
        r.recv_ns = now
        r.trades_pos = <int64_t>self.decoder.trades._written
        r.depth_pos = <int64_t>self.decoder.depth._written
        r.tickers_pos = <int64_t>self.decoder.tickers._written
        r.partial_pos = <int64_t>self.decoder.partial._written
        r.expected_id = expected
        r.got_id = got
        r.symbol = sym
        r.conn = conn
        r.reason = reason
        r.slot = slot
        self.events.commit(1)
        if self.recorder is not None:
            self.recorder.event(reason, conn, sym, slot, expected, got, now)
        self.dirty = True

    def mark(self, int reason, uint32_t conn=0, uint32_t symbol=0, int slot=255,
             int64_t expected=-1, int64_t got=-1):
        """Write a marker row (reason code from ``fastfeed.feed.EventReason``) and wake readers."""
        self.mark_c(<uint8_t>reason, conn, symbol, <uint8_t>slot, expected, got, ff_now_ns())
        self.flush()

    def flush(self):
        """Wake the consumer if rows arrived since it last cleared ``pending``."""
        if self.dirty and not self.pending and self.wake is not None:
            self.pending = True
            self.dirty = False
            self.wake()

    cdef inline void latency(self, int64_t now, int64_t event_time) noexcept:
        cdef int64_t d
        if event_time <= 0:
            return
        d = now - event_time * self.event_unit_ns
        if d < 0:
            self.lat_neg += 1
        else:
            self.lat[lat_bucket(<uint64_t>d / <uint64_t>1000)] += 1   # unsigned: no sign fix-up

    def last_ids(self, uint32_t symbol):
        """Last accepted id of each stream slot of ``symbol`` (-1 = none)."""
        if symbol >= self.nsym:
            raise IndexError(symbol)
        return tuple(self.last_id[symbol * N_SLOTS + s] for s in range(N_SLOTS))

    def last_recv_ns(self, uint32_t symbol, int slot):
        """Receive time of the last accepted row of (symbol, slot); 0 = never."""
        if symbol >= self.nsym or slot < 0 or slot >= N_SLOTS:
            raise IndexError(symbol)
        return self.last_ns[symbol * N_SLOTS + slot]

    def latency_histogram(self):
        """(counts per bucket, count of negative latencies); see latency_bucket_bounds()."""
        return [self.lat[i] for i in range(N_LAT_BUCKETS)], self.lat_neg

    def counters(self):
        """Filter and timing counters as plain Python values."""
        return {
            "accepted": {SLOT_NAMES[i]: self.accepted[i] for i in range(N_SLOTS)},
            "duplicates": {SLOT_NAMES[i]: self.dup[i] for i in range(N_SLOTS)},
            "gaps": {SLOT_NAMES[i]: self.gaps[i] for i in range(N_SLOTS)},
            "busy_ns": self.busy_ns,
            "batches": self.batches,
            "unroutable": self.unroutable,
        }


cdef class FeedListener(WSListener):
    """picows listener for one connection.  ``on_ws_frame`` runs at C level: reassembles
    fragments into a preallocated buffer of ``max_message`` bytes, decodes into ``stage`` and
    copies the new rows into ``sink`` through the id filter.  Close frames are answered; a
    message over ``max_message`` or a broken fragment sequence is a protocol error (close 1009
    or 1002).  Pings are answered by picows's auto-pong (exactly one pong per ping)."""

    def __cinit__(self, FeedSink sink, BinanceDecoder stage, uint32_t conn_id=0,
                  Py_ssize_t max_message=1 << 20):
        self.sink = sink
        self.stage = stage
        self.conn_id = conn_id
        self.transport = None
        # Decode in place: the stage decoder (this connection's control handling and counters)
        # writes straight into the feed's rings with the feed's symbol table, so no row is
        # copied; the id filter takes back what it rejects (Ring.rollback).  See
        # docs/decisions/0202-feed-decode-in-place.md.
        stage.trades = sink.decoder.trades
        stage.depth = sink.decoder.depth
        stage.tickers = sink.decoder.tickers
        stage.partial = sink.decoder.partial
        stage.symbols = sink.decoder.symbols
        self.overlap = <uint8_t*>PyMem_Calloc(sink.nsym * N_SLOTS, 1)
        self.frag_cap = max_message
        self.frag = <char*>PyMem_Malloc(max_message)
        if not (self.overlap and self.frag):
            raise MemoryError()
        self.frag_len = 0
        self.in_frag = False
        self.frames = self.messages = self.bytes = self.fragments = self.duplicates = 0
        self.last_msg_ns = self.connected_ns = self.batch_start = 0
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
        if self.on_disconnected is not None:
            self.on_disconnected(self)

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
            elif frame.fin:
                self._message(frame.payload_ptr, n)
            elif n > self.frag_cap:
                self._fail("fragmented message over max_message", 1009)
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
        elif mt == WSMsgType.CLOSE:
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
            self._end_batch()

    cdef void _fail(self, str why, int code):
        self.protocol_error = why
        self.sink.mark_c(EV_PROTOCOL, self.conn_id, 0, 255, -1, -1, ff_now_ns())
        if self.transport is not None:
            self.transport.send_close(<WSCloseCode>code, why.encode())
            self.transport.disconnect()

    cdef void _end_batch(self) noexcept:
        cdef FeedSink sink = self.sink
        if self.batch_start:
            sink.busy_ns += <uint64_t>(ff_now_ns() - self.batch_start)
            sink.batches += 1
            self.batch_start = 0
        if sink.dirty and not sink.pending and sink.wake is not None:
            sink.pending = True
            sink.dirty = False
            try:
                sink.wake()
            except BaseException:
                # A failing wake callback must not break the read path, but must be seen.
                log.exception("feed wake callback failed")

    cdef void _message(self, const char* p, Py_ssize_t n) noexcept:
        cdef FeedSink sink = self.sink
        cdef BinanceDecoder dec = sink.decoder
        cdef Ring dst
        cdef uint64_t w0
        cdef int k, slot
        cdef uint32_t sym
        cdef int64_t id, last, expected, et, got
        cdef Py_ssize_t idx
        cdef char* row
        # One clock read per socket read: every frame of a read arrived together, and a
        # second read per frame costs ~30-50 ns on a VM.
        cdef int64_t now = self.batch_start
        if now == 0:
            now = ff_now_ns()
            self.batch_start = now
        self.last_msg_ns = now
        self.messages += 1
        self.bytes += <uint64_t>n
        if not self.active:
            return
        if sink.recorder is not None:
            sink.recorder.frame(self.conn_id, p, n, now)
        # The stage decoder shares the feed's rings (see __cinit__): rows land in place and
        # are taken back below if the filter rejects them.
        cdef uint64_t b_tr = dec.trades._written, b_de = dec.depth._written
        cdef uint64_t b_ti = dec.tickers._written, b_pa = dec.partial._written
        k = self.stage.decode_ptr(p, n, now)
        if k == K_TRADE:
            dst = dec.trades; w0 = b_tr
        elif k == K_DEPTH:
            dst = dec.depth; w0 = b_de
        elif k == K_TICKER:
            dst = dec.tickers; w0 = b_ti
        elif k == K_PARTIAL:
            dst = dec.partial; w0 = b_pa
        else:
            return
        # every kind writes >= 1 row per message (depth writes a side=-1 row for empty diffs)
        if dst._written == w0:
            return
        row = dst.slot(w0)
        expected = -1
        et = 0
        if k == K_TRADE:
            sym = (<TradeRow*>row).symbol
            slot = S_AGG if (<TradeRow*>row).is_agg else S_TRADE
            id = (<TradeRow*>row).trade_id
            et = (<TradeRow*>row).event_time
        elif k == K_DEPTH:
            id = (<DepthRow*>row).last_id
            sym = (<DepthRow*>row).symbol
            slot = S_DEPTH
            et = (<DepthRow*>row).event_time
        elif k == K_TICKER:
            sym = (<TickerRow*>row).symbol
            slot = S_TICKER
            id = (<TickerRow*>row).update_id
            et = (<TickerRow*>row).event_time
        else:
            id = (<PartialRow*>row).last_id
            sym = (<PartialRow*>row).symbol
            slot = S_PARTIAL
        if sym >= sink.nsym:
            # Cannot happen (the stage decodes with the sink's own table, whose ids stay
            # below nsym), but a row the filter cannot place is dropped loudly.
            dst.rollback(w0)
            self._drop_unroutable(k, sym)
            return
        idx = <Py_ssize_t>sym * N_SLOTS + slot
        last = sink.last_id[idx]
        if last >= 0 and id <= last:
            # already delivered (other connection during rotation, resent or stale event)
            dst.rollback(w0)
            sink.dup[slot] += 1
            self.duplicates += 1
            self.overlap[idx] = 1
            return
        if last >= 0:
            got = id
            if slot == S_AGG or slot == S_TRADE:
                if id != last + 1:
                    expected = last + 1
            elif slot == S_DEPTH:
                got = (<DepthRow*>row).first_id
                if (<DepthRow*>row).prev_last_id >= 0:
                    if (<DepthRow*>row).prev_last_id != last:
                        expected = last
                elif got > last + 1:
                    expected = last + 1
            if expected >= 0:
                sink.gaps[slot] += 1
                # the marker sits before this message's rows, which are already committed
                sink.mark_c(EV_GAP, self.conn_id, sym, <uint8_t>slot, expected, got, now)
                _set_pos(<EventRow*>sink.events.slot(sink.events._written - 1), k, <int64_t>w0)
            else:
                self.overlap[idx] = 1
        sink.last_id[idx] = id
        sink.last_ns[idx] = now
        sink.accepted[slot] += 1
        sink.accepted_total += 1
        sink.latency(now, et)
        sink.dirty = True

    cdef void replay_message(self, const char* p, Py_ssize_t n, int64_t recv_ns) noexcept:
        # fastfeed.record's replay: a recorded message through the live path, at its time
        self.batch_start = recv_ns
        self._message(p, n)
        self.batch_start = 0

    cdef void _drop_unroutable(self, int k, uint32_t sym) noexcept:
        self.sink.unroutable += 1
        try:
            log.error("conn %d: dropped a message (kind %d) with symbol id %d outside the feed's "
                      "table of %d", self.conn_id, k, sym, self.sink.nsym)
        except BaseException:
            pass

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
                "duplicates": self.duplicates, "last_msg_ns": self.last_msg_ns,
                "close_code": self.close_code, "close_reason": self.close_reason,
                "protocol_error": self.protocol_error}
