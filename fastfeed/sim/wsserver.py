"""The simulator's WebSocket server: picows over TLS, Binance paths, rules and faults."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import struct
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from .control import TooManyStreams, error_reply, handle_control
from .market import SPOT, DepthUpdate, Event, usdm_route

if TYPE_CHECKING:  # pragma: no cover
    from . import ExchangeSimulator

log = logging.getLogger("fastfeed.sim")

_TIME_UNITS = {"MICROSECOND": True, "microsecond": True, "MILLISECOND": False, "millisecond": False}


class HandshakeReject(Exception):
    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status, self.msg = status, msg


def parse_target(target: str, market: str) -> tuple[str, bool, list[str], bool]:
    """``(route, combined, streams, microseconds)`` for a request target, or HandshakeReject.

    Spot: ``/ws``, ``/ws/<s1>/<s2>``, ``/stream``, ``/stream?streams=a/b``.  USD-M adds the
    ``/public`` and ``/market`` prefixes; an unrouted path is ``public``, as Binance's USD-M
    futures docs say of connections without a route.
    """
    parts = urlsplit(target)
    path = unquote(parts.path).rstrip("/") or "/"
    query = parse_qs(parts.query, keep_blank_values=True)
    route = "public"
    if market != SPOT:
        for prefix in ("/public", "/market"):
            if path == prefix or path.startswith(prefix + "/"):
                route, path = prefix[1:], path[len(prefix) :] or "/"
                break
    if path == "/ws" or path.startswith("/ws/"):
        combined = False
        streams = [s for s in path[4:].split("/") if s]
    elif path == "/stream":
        combined = True
        raw = query.get("streams", [""])[0]
        streams = [s for s in unquote(raw).split("/") if s]
    else:
        raise HandshakeReject(404, "Not Found")
    us = False
    if "timeUnit" in query:
        tu = query["timeUnit"][0]
        if tu not in _TIME_UNITS:
            raise HandshakeReject(400, "Invalid timeUnit")
        us = _TIME_UNITS[tu]
    return route, combined, streams, us


class SimConnection(WSListener):
    """Server side of one client connection.

    Public attributes for tests: ``id``, ``path``, ``route``, ``combined``, ``us`` (timeUnit
    microseconds), ``sent`` (Counter of messages sent by kind: ``aggTrade``, ``trade``,
    ``depthUpdate``, ``bookTicker``, ``partialDepth``, ``reply``, ``error``,
    ``serverShutdown``, ``ping``, ``malformed``, ``oversize``, ``blast``, ``paced``),
    ``received`` (Counter of client frames by type), ``records`` (last messages sent, when
    recording is on), ``close_code``/``close_reason`` (what the server closed with),
    ``connected_at`` and ``closed`` (a future done on disconnect), ``peer`` (the client's
    ``(host, port)``: which client connection this is), and the rule peaks:
    ``peak_streams`` (most streams held at once) and ``peak_control`` (most client frames in
    any ``control_window``).
    """

    def __init__(
        self,
        server: WSServer,
        conn_id: int,
        path: str,
        route: str,
        combined: bool,
        streams: list[str],
        us: bool,
    ):
        super().__init__()
        self.server = server
        self.id = conn_id
        self.path = path
        self.route = route
        self.combined = combined
        self.us = us
        self._initial = streams
        self._subs: list[str] = []
        self.sent: Counter = Counter()
        self.received: Counter = Counter()
        self.records: deque = deque(maxlen=server.cfg.record or 1)
        self.transport: WSTransport | None = None
        self.connected_at = 0.0
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.ignore_pings = server.ignore_pings
        self.muted = False
        self.delay = server.delay
        self.jitter = server.jitter  # plus a random 0..jitter s per message (order kept)
        self._rng = random.Random(conn_id)
        self._last_due = 0.0
        self.peer: tuple | None = None
        self.peak_streams = 0
        self.peak_control = 0
        self.fragment_left = 0
        self.fragment_parts = 3
        self.blasting = False
        self._ctl_times: deque = deque()
        self._pending_pings: dict[bytes, float] = {}
        self._ping_seq = 0
        self._handles: list = []
        self._life_handles: list = []
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._slow_q: deque = deque()
        self._slow_handle: asyncio.TimerHandle | None = None
        self._frag_buf: bytearray | None = None

    # ------------------------------------------------------------------ picows callbacks
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.connected_at = time.monotonic()
        self.peer = transport.underlying_transport.get_extra_info("peername")
        self.server._register(self)
        loop = asyncio.get_running_loop()
        cfg = self.server.cfg
        if cfg.ping_interval > 0:
            self._handles.append(loop.call_later(cfg.ping_interval, self._ping))
        self.schedule_lifetime(self.server.lifetime, self.server.shutdown_notice)
        if self._initial and not self.subscribe(self._initial):
            self.close(1008, "Too many streams")
        self.server.sim._on_connection(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mt = frame.msg_type
        self.received[mt.name] += 1
        if mt == WSMsgType.CLOSE:
            if self.close_code is None:
                code = frame.get_close_code()
                self.close_code = code.value
                transport.send_close(code)
            transport.disconnect()
            return
        # Binance counts pings, pongs and JSON messages against one per-second budget.
        now = time.monotonic()
        q = self._ctl_times
        q.append(now)
        win = self.server.cfg.control_window
        while q and q[0] <= now - win:
            q.popleft()
        self.peak_control = max(self.peak_control, len(q))
        if len(q) > self.server.cfg.control_limit:
            self.server.violation("control", self.id, len(q), self.server.cfg.control_limit)
            self.close(1008, "Too many requests")
            return
        if mt == WSMsgType.PING:
            if not self.ignore_pings:
                transport.send_pong(frame.get_payload_as_bytes())
        elif mt == WSMsgType.PONG:
            payload = frame.get_payload_as_bytes()
            sent = self._pending_pings.get(payload)
            if sent is not None:
                # A pong answers its ping and every older one; unsolicited pongs answer nothing.
                for k, v in list(self._pending_pings.items()):
                    if v <= sent:
                        del self._pending_pings[k]
        elif mt == WSMsgType.TEXT or mt == WSMsgType.CONTINUATION:
            data = frame.get_payload_as_bytes()
            if mt == WSMsgType.TEXT and frame.fin:
                self._control(data)
            elif mt == WSMsgType.TEXT:
                self._frag_buf = bytearray(data)
            elif self._frag_buf is not None:
                self._frag_buf += data
                if frame.fin:
                    data, self._frag_buf = bytes(self._frag_buf), None
                    self._control(data)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for h in self._handles + self._life_handles:
            h.cancel()
        if self._slow_handle is not None:
            self._slow_handle.cancel()
        self._can_write.set()
        self.server._unregister(self)
        if not self.closed.done():
            self.closed.set_result(None)
        # Closed connections stay listed for tests; their TLS transport and buffers must not.
        self.transport = None

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # ------------------------------------------------------------------ subscriptions
    def valid_stream(self, name: str) -> bool:
        return self.server.sim.market.valid_stream(name)

    def subscriptions(self) -> list[str]:
        return list(self._subs)

    def subscribe(self, names: Iterable[str]) -> bool:
        new = [n for n in dict.fromkeys(names) if n not in self._subs]
        if len(self._subs) + len(new) > self.server.cfg.max_streams:
            self.server.violation(
                "streams", self.id, len(self._subs) + len(new), self.server.cfg.max_streams
            )
            return False
        for n in new:
            self._subs.append(n)
            if self._deliverable(n):
                self.server.subscribers.setdefault(n, set()).add(self)
        self.peak_streams = max(self.peak_streams, len(self._subs))
        return True

    def unsubscribe(self, names: Iterable[str]) -> None:
        for n in names:
            if n in self._subs:
                self._subs.remove(n)
                s = self.server.subscribers.get(n)
                if s is not None:
                    s.discard(self)

    def _deliverable(self, stream: str) -> bool:
        # USD-M: aggTrade/trade live on /market, depth and bookTicker on /public.  A stream
        # subscribed on the wrong path is accepted and listed but never sent, as on fstream.
        if self.server.market == SPOT:
            return True
        return usdm_route(stream.partition("@")[2]) == self.route

    def _control(self, data: bytes) -> None:
        try:
            reply = handle_control(data, self, self.server.cfg.error_shape == "nested")
        except TooManyStreams:
            self.close(1008, "Too many streams")
            return
        self.sent[
            "error" if (b'"code"' in reply[:12] or reply.startswith(b'{"error"')) else "reply"
        ] += 1
        self._record("control", None, reply)
        if self.transport is not None:
            self.transport.send(WSMsgType.TEXT, reply)

    # ------------------------------------------------------------------ sending
    def _record(self, kind: str, stream: str | None, payload: bytes) -> None:
        if self.server.cfg.record:
            self.records.append((kind, stream, payload))

    def deliver(self, ev: Event) -> None:
        """Send one market event (raw or enveloped, in this connection's time unit)."""
        if self.muted or self.blasting:
            return
        key = (self.us, self.combined)
        payload = ev._cache.get(key)
        if payload is None:
            payload = ev.render(self.us)
            if self.combined:
                payload = b'{"stream":"%s","data":%s}' % (ev.stream.encode(), payload)
            ev._cache[key] = payload
        self.send_data(payload, ev.kind, ev.stream)

    def send_data(self, payload: bytes, kind: str, stream: str | None = None) -> None:
        """Send a data frame, honouring the slow-server and fragmentation faults."""
        if self.transport is None or self.transport.is_disconnected:
            return
        self.sent[kind] += 1
        self.server.sim.sent[kind] += 1
        self._record(kind, stream, payload)
        if self.delay > 0 or self.jitter > 0:
            due = time.monotonic() + self.delay + self._rng.random() * self.jitter
            self._last_due = due = max(due, self._last_due)  # a TCP stream keeps its order
            self._slow_q.append((due, payload))
            if self._slow_handle is None:
                self._schedule_slow()
            return
        self._send_frame(payload)

    def _schedule_slow(self) -> None:
        due = self._slow_q[0][0]
        self._slow_handle = asyncio.get_running_loop().call_later(
            max(0.0, due - time.monotonic()), self._drain_slow
        )

    def _drain_slow(self) -> None:
        self._slow_handle = None
        now = time.monotonic()
        while self._slow_q and self._slow_q[0][0] <= now:
            self._send_frame(self._slow_q.popleft()[1])
        if self._slow_q:
            self._schedule_slow()

    def _send_frame(self, payload: bytes) -> None:
        tr = self.transport
        if tr is None or tr.is_disconnected:
            return
        if self.fragment_left > 0 and len(payload) >= self.fragment_parts:
            self.fragment_left -= 1
            n = self.fragment_parts
            step = -(-len(payload) // n)
            chunks = [payload[i : i + step] for i in range(0, len(payload), step)]
            tr.send(WSMsgType.TEXT, chunks[0], fin=False)
            for c in chunks[1:-1]:
                tr.send(WSMsgType.CONTINUATION, c, fin=False)
            tr.send(WSMsgType.CONTINUATION, chunks[-1], fin=True)
            return
        tr.send(WSMsgType.TEXT, payload)

    def write_raw(self, data: bytes) -> None:
        """Write pre-framed bytes straight to the TLS transport (blast mode)."""
        if self.transport is not None:
            self.transport.underlying_transport.write(data)

    async def wait_writable(self) -> None:
        await self._can_write.wait()

    # ------------------------------------------------------------------ keepalive, lifetime
    def _ping(self) -> None:
        tr = self.transport
        if tr is None or tr.is_disconnected:
            return
        cfg = self.server.cfg
        self._ping_seq += 1
        payload = str(int(time.time() * 1000) * 1000 + self._ping_seq % 1000).encode()
        self._pending_pings[payload] = time.monotonic()
        tr.send_ping(payload)
        self.sent["ping"] += 1
        loop = asyncio.get_running_loop()
        self._handles = [h for h in self._handles if not h.cancelled()]
        self._handles.append(loop.call_later(cfg.pong_timeout, self._pong_deadline, payload))
        self._handles.append(loop.call_later(cfg.ping_interval, self._ping))

    def _pong_deadline(self, payload: bytes) -> None:
        if payload in self._pending_pings and self.transport and not self.transport.is_disconnected:
            # No close frame: the exchange just drops a connection that stopped answering.
            log.info(
                "conn %d: no pong within %.3fs, disconnecting",
                self.id,
                self.server.cfg.pong_timeout,
            )
            self.close_reason = "pong timeout"
            self.transport.disconnect()

    def schedule_lifetime(self, lifetime: float, notice: float) -> None:
        """(Re)arm the forced close at ``lifetime`` seconds after connect, with a
        ``serverShutdown`` event ``notice`` seconds before it."""
        for h in self._life_handles:
            h.cancel()
        loop = asyncio.get_running_loop()
        left = self.connected_at + lifetime - time.monotonic()
        notice = min(notice, lifetime / 2)
        self._life_handles = [
            loop.call_later(max(0.0, left - notice), self._shutdown_event),
            loop.call_later(max(0.0, left), self._lifetime_close),
        ]

    def _shutdown_event(self) -> None:
        E = time.time_ns() // (1000 if self.us else 1_000_000)
        data = b'{"e":"serverShutdown","E":%d}' % E
        if self.combined:
            data = b'{"stream":"!serverShutdown","data":%s}' % data
        self.send_data(data, "serverShutdown", "!serverShutdown")

    def _lifetime_close(self) -> None:
        self.close(self.server.cfg.lifetime_close_code, "")

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame with ``code``/``reason`` and disconnect."""
        tr = self.transport
        if tr is None or tr.is_disconnected:
            return
        self.close_code, self.close_reason = code, reason
        tr.send_close(WSCloseCode(code), reason.encode())
        tr.disconnect()

    def reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0), no close frame."""
        tr = self.transport
        if tr is None or tr.is_disconnected:
            return
        sock = tr.underlying_transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:  # pragma: no cover
                pass
        self.close_reason = "reset"
        tr.disconnect(graceful=False)


class WSServer:
    """Owns the listening socket, the connections and the stream -> subscribers map."""

    def __init__(self, sim: ExchangeSimulator):
        self.sim = sim
        self.cfg = sim.config
        self.market = self.cfg.market
        self.subscribers: dict[str, set[SimConnection]] = {}
        self.connections: dict[int, SimConnection] = {}
        self.all_connections: list[SimConnection] = []
        self.attempts: deque = deque()
        self.next_id = 1
        self.lifetime = self.cfg.lifetime
        self.shutdown_notice = self.cfg.shutdown_notice
        self.ignore_pings = False
        self.delay = 0.0
        self.jitter = 0.0
        # Rule peaks and every broken rule, for tests to prove a client kept the limits
        # (ExchangeSimulator.limits()).
        self.peak_attempts = 0
        self.longest_url = 0
        self.violations: list[tuple[float, str, int, int, int]] = []
        self.handshake_status: int | None = None
        self.handshake_count: int | None = None
        self.depth_faults: list[list] = []  # [kind, stream or None, remaining]
        self._recent: dict[str, deque] = {}
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, ssl_context: ssl.SSLContext) -> None:
        self.server = await ws_create_server(
            self._factory,
            self.cfg.host,
            self.cfg.port,
            ssl=ssl_context,
            enable_auto_pong=False,  # pings are counted against the rate limit, and can be ignored
            max_frame_size=self.cfg.max_frame_size,
            websocket_handshake_timeout=5,
            logger_name="fastfeed.sim.ws",
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for c in list(self.connections.values()):
            c.close(1001, "")
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 2)
            except (asyncio.TimeoutError, Exception):  # pragma: no cover
                pass

    # ------------------------------------------------------------------ handshake
    def _factory(self, request: WSUpgradeRequest) -> SimConnection | WSUpgradeResponseWithListener:
        target = request.path.decode("latin-1")
        now = time.monotonic()
        a = self.attempts
        while a and a[0] <= now - self.cfg.attempt_window:
            a.popleft()
        if len(a) >= self.cfg.attempt_limit:
            # The handshake answer to too many attempts is not documented; 429 is assumed.
            self.violation("attempts", 0, len(a) + 1, self.cfg.attempt_limit)
            retry = max(1, int(a[0] + self.cfg.attempt_window - now + 0.999))
            return self._reject(429, "Too many connection attempts", {"Retry-After": str(retry)})
        a.append(now)
        self.peak_attempts = max(self.peak_attempts, len(a))
        self.longest_url = max(self.longest_url, len(target))
        if len(target) > self.cfg.max_url:
            # Binance's stream hosts refuse longer request targets (8004 characters,
            # measured by a public client); the answer's form is assumed.
            self.violation("url", 0, len(target), self.cfg.max_url)
            return self._reject(414, "URI Too Long")
        if self.handshake_status is not None:
            status = self.handshake_status
            if self.handshake_count is not None:
                self.handshake_count -= 1
                if self.handshake_count <= 0:
                    self.handshake_status = self.handshake_count = None
            headers = {"Retry-After": "1"} if status in (429, 503) else None
            return self._reject(status, "Simulated fault", headers)
        try:
            route, combined, streams, us = parse_target(target, self.market)
        except HandshakeReject as e:
            return self._reject(e.status, e.msg)
        bad = [s for s in streams if not self.sim.market.valid_stream(s)]
        if bad:
            return self._reject(400, "Invalid request: invalid stream")
        if len(streams) > self.cfg.max_streams:
            return self._reject(400, "Invalid request: too many streams")
        conn = SimConnection(self, self.next_id, target, route, combined, streams, us)
        self.next_id += 1
        return conn

    def violation(self, rule: str, conn_id: int, value: int, limit: int) -> None:
        """Record (and log) a client breaking an exchange rule."""
        self.violations.append((time.monotonic(), rule, conn_id, value, limit))
        log.warning("conn %d broke the %s limit: %d > %d", conn_id, rule, value, limit)

    def _reject(
        self, status: int, msg: str, headers: dict[str, str] | None = None
    ) -> WSUpgradeResponseWithListener:
        body = error_reply(-1 if status != 400 else 2, msg)
        resp = WSUpgradeResponse.create_error_response(status, body, headers)
        return WSUpgradeResponseWithListener(resp, None)

    def _register(self, c: SimConnection) -> None:
        self.connections[c.id] = c
        self.all_connections.append(c)

    def _unregister(self, c: SimConnection) -> None:
        self.connections.pop(c.id, None)
        for s in list(c._subs):
            subs = self.subscribers.get(s)
            if subs is not None:
                subs.discard(c)

    # ------------------------------------------------------------------ broadcast
    def wanted(self, stream: str) -> bool:
        return bool(self.subscribers.get(stream))

    def broadcast(self, events: list[Event]) -> None:
        subs_map = self.subscribers
        for ev in events:
            subs = subs_map.get(ev.stream)
            if not subs:
                continue
            if isinstance(ev, DepthUpdate) and not ev.partial:  # kind "depthUpdate"
                if self.depth_faults:
                    self._depth_with_faults(ev, subs)
                    continue
                self._recent.setdefault(ev.stream, deque(maxlen=4)).append(ev)
            for c in tuple(subs):
                c.deliver(ev)

    def _depth_with_faults(self, ev: DepthUpdate, subs: set[SimConnection]) -> None:
        recent = self._recent.setdefault(ev.stream, deque(maxlen=4))
        fault = None
        for f in self.depth_faults:
            if f[1] is None or f[1] == ev.stream:
                fault = f
                break
        if fault is None:
            recent.append(ev)
            for c in tuple(subs):
                c.deliver(ev)
            return
        fault[2] -= 1
        if fault[2] <= 0:
            self.depth_faults.remove(fault)
        kind = fault[0]
        log.info("depth fault %s on %s at U=%s u=%s", kind, ev.stream, ev.U, ev.u)
        if kind == "gap":
            recent.append(ev)  # produced (ground truth moves on) but never sent
            return
        for c in tuple(subs):
            c.deliver(ev)
            if kind == "duplicate":
                c.deliver(ev)
            elif kind == "stale":
                old = recent[0] if recent else ev
                c.deliver(old)
        recent.append(ev)
