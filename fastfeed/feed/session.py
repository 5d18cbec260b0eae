"""``fastfeed.BinanceFeed``: the session layer (asyncio) around the C-level listener.

One :class:`BinanceFeed` owns one set of rings (``feed.decoder``) and one or two *routes*
(spot: one connection; USD-M: ``/public`` for depth/bookTicker and ``/market`` for trades).
Each route is supervised by a task that connects, subscribes, watches health, reconnects with
capped exponential backoff with jitter (inside the exchange's connection-attempt limit), and
rotates to a replacement connection on ``serverShutdown`` or before the 24 h lifetime.  Every
connection writes through one :class:`~fastfeed.feed._listener.FeedSink`, whose id filter makes
the rotation seamless (see docs/decisions/0201-feed-bridge-by-id-filter.md).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import itertools
import json
import logging
import os
import socket
import ssl as _ssl
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSError,
    WSInvalidStatusError,
    WSMsgType,
    ws_connect,
)

from fastfeed._aio import Backoff, Service, cancel_and_wait
from fastfeed.core._decoder import BinanceDecoder
from fastfeed.errors import (
    ConnectError,
    FeedError,
    HandshakeError,
    SubscriptionError,
    TLSVerificationError,
)
from fastfeed.feed._listener import (
    EVENT_DTYPE,
    FeedListener,
    FeedSink,
    latency_bucket_bounds,
)
from fastfeed.feed.endpoint import SPOT_URL, USDM_URL, default_ssl_context
from fastfeed.feed.streams import (
    stream_slot,
    usdm_route,
)

log = logging.getLogger("fastfeed.feed")


class EventReason(enum.IntEnum):
    """``reason`` of a row in ``feed.events`` (mirrors the C enum in _listener.pxd)."""

    GAP = 1
    CONNECT = 2
    DISCONNECT = 3
    ROTATE = 4
    PROTOCOL = 5
    SUBSCRIBE = 6
    WATCHDOG = 7


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - non-Linux
        return 0


class _Conn:
    """One WebSocket connection of a route (cold-path bookkeeping only)."""

    def __init__(self, feed: BinanceFeed, route: _Route, conn_id: int):
        self.feed, self.route, self.id = feed, route, conn_id
        # Per-connection decoder: control replies and counters.  Its rings are replaced by
        # the feed's when the listener is made (rows are decoded in place), so they are 1 row.
        self.stage = BinanceDecoder(
            trades=1, depth=1, tickers=1, partial=1, max_levels=1000, control_maxlen=16
        )
        self.stage.on_control = self._on_control
        self.listener: FeedListener | None = None
        self.transport = None
        self.pending: dict = {}
        self.sends: collections.deque = collections.deque(maxlen=feed.control_rate)
        loop = asyncio.get_running_loop()
        self.trigger: asyncio.Future = loop.create_future()  # reason this connection must go
        self.gone: asyncio.Future = loop.create_future()  # disconnected
        self.opened = time.monotonic()

    def fire(self, reason: str) -> None:
        if not self.trigger.done():
            self.trigger.set_result(reason)

    def _on_disconnected(self, lis: FeedListener) -> None:
        hs = self.transport.close_handshake if self.transport is not None else None
        if lis.protocol_error:
            why = f"protocol error: {lis.protocol_error}"
        elif hs is not None and hs.sent is not None and not hs.recv_then_sent:
            # We closed first, and the feed's own closes name their reason before closing:
            # this close is picows's keepalive giving up (a server echoing it is no reason).
            if hs.sent.code == WSCloseCode.GOING_AWAY:
                why = f"pong timeout ({self.feed.pong_timeout}s)"
            else:
                why = f"closed by client {int(hs.sent.code)}: {hs.sent.reason or ''}"
        elif lis.close_code >= 0:
            # the counter keys on what precedes ":", so the server's free text stays in the log
            why = f"closed by server {lis.close_code}: {lis.close_reason or ''}"
        else:
            why = "connection lost"
        if not self.gone.done():
            self.gone.set_result(why)
        self.fire(why)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectError(f"disconnected before reply ({why})"))

    def _on_control(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        body = msg.get("data", msg) if "stream" in msg else msg
        if isinstance(body, dict) and body.get("e") == "serverShutdown":
            log.warning("conn %d (%s): serverShutdown, rotating", self.id, self.route.name)
            self.fire("serverShutdown")
            return
        rid = msg.get("id")
        err = (
            msg.get("error")
            if isinstance(msg.get("error"), dict)
            else (msg if "code" in msg else None)
        )
        if err is not None:
            exc = SubscriptionError(err.get("code"), str(err.get("msg")), rid)
            fut = self.pending.pop(rid, None)
            if fut is None and self.pending:  # error without id: the oldest request
                fut = self.pending.pop(next(iter(self.pending)))
            if fut is not None and not fut.done():
                fut.set_exception(exc)
            else:
                log.error("conn %d: unsolicited error reply %s", self.id, msg)
            return
        fut = self.pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_result(msg.get("result"))

    async def request(self, method: str, params: list | None = None) -> Any:
        """Send a control request paced under the limit and await its reply."""
        feed = self.feed
        await self._pace()
        rid = next(feed._ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        body = {"method": method, "id": rid}
        if params is not None:
            body["params"] = params
        self.transport.send(WSMsgType.TEXT, json.dumps(body, separators=(",", ":")).encode())
        try:
            return await asyncio.wait_for(fut, feed.ack_timeout)
        except asyncio.TimeoutError:
            self.pending.pop(rid, None)
            raise SubscriptionError(
                None, f"no reply to {method} within {feed.ack_timeout}s", rid
            ) from None

    async def _pace(self) -> None:
        # At most control_rate messages in any 1 s window (the limit also counts pings/pongs,
        # so control_rate is kept below it).
        while len(self.sends) == self.sends.maxlen:
            wait = self.sends[0] + 1.0 - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        self.sends.append(time.monotonic())

    async def close(self, code: int = 1000, timeout: float = 1.0) -> None:
        tr = self.transport
        if tr is None or self.gone.done():
            return
        try:
            if not tr.is_close_frame_sent:
                tr.send_close(code, b"")
            tr.disconnect()
            await asyncio.wait_for(asyncio.shield(self.gone), timeout)
        except (asyncio.TimeoutError, Exception):
            tr.disconnect(False)


class _Route:
    def __init__(self, name: str, prefix: str, streams: list[str]):
        self.name, self.prefix, self.streams = name, prefix, streams
        self.conn: _Conn | None = None
        self.ready = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.rotating = False


class BinanceFeed(Service):
    """Binance market streams into numpy rings: ``async with BinanceFeed(streams) as feed``.

    Rings: ``feed.trades``, ``feed.depth``, ``feed.tickers``, ``feed.partial`` (the shared
    :class:`~fastfeed.BinanceDecoder` is ``feed.decoder``) and ``feed.events`` (marker rows,
    ``EVENT_DTYPE``: reason, conn, symbol, and the ``written`` position of every data ring at
    that moment, so consumers see each gap/reconnect/rotation in order with the rows).

    ``await feed.wait()`` or ``async for _ in feed`` wakes once per socket read with new rows.
    ``feed.stats()`` returns counters.  Leaving the context (or cancelling it) closes cleanly.

    Main options: ``market`` ("spot" | "usdm"), ``url`` (base ``wss://host:port``, default the
    exchange), ``ssl`` (an ``SSLContext``; default verifies with certifi or system CAs),
    ``subscribe`` ("url": streams in the URL; "live": SUBSCRIBE after connect), ``time_unit``
    ("ms" | "us"), ``ping_interval``/``pong_timeout`` (client keepalive),
    ``stream_timeout`` (no-data watchdog per stream), ``backoff_initial``/``backoff_max``,
    ``max_lifetime`` (rotate before the 24 h cut), ``rotation_timeout``, ``ack_timeout``,
    ``start_timeout`` (how long ``__aenter__`` waits for the first subscription; it then raises
    the last connection error), ``rcvbuf`` (SO_RCVBUF), ``max_frame_size``, ring capacities
    (``trades``, ``depth``, ``tickers``, ``partial``, ``events``), ``on_data`` (callable(feed),
    called once per wake from an internal task) and ``on_state`` (callable(str, dict)).
    """

    def __init__(
        self,
        streams: Iterable[str],
        market: str = "spot",
        url: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        *,
        subscribe: str = "url",
        time_unit: str = "ms",
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        stream_timeout: float | None = 60.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_lifetime: float = 23.5 * 3600,
        rotation_timeout: float = 30.0,
        ack_timeout: float = 10.0,
        start_timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        attempt_limit: int = 300,
        attempt_window: float = 300.0,
        control_rate: int | None = None,
        rcvbuf: int = 1 << 20,
        max_frame_size: int = 1 << 20,
        read_buffer: int = 1 << 16,
        trades: int = 1 << 16,
        depth: int = 1 << 17,
        tickers: int = 1 << 16,
        partial: int = 1 << 14,
        events: int = 1 << 12,
        on_data: Callable[[BinanceFeed], Any] | None = None,
        on_state: Callable[[str, dict], Any] | None = None,
    ):
        if market not in ("spot", "usdm"):
            raise ValueError("market must be 'spot' or 'usdm'")
        if subscribe not in ("url", "live"):
            raise ValueError("subscribe must be 'url' or 'live'")
        self.streams = [s for s in streams]
        self.market = market
        self.url = (url or (SPOT_URL if market == "spot" else USDM_URL)).rstrip("/")
        self.subscribe_mode = subscribe
        self.time_unit = time_unit
        self.ping_interval, self.pong_timeout = ping_interval, min(pong_timeout, ping_interval)
        self.stream_timeout = stream_timeout
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.max_lifetime, self.rotation_timeout = max_lifetime, rotation_timeout
        self.ack_timeout, self.start_timeout, self.connect_timeout = (
            ack_timeout,
            start_timeout,
            connect_timeout,
        )
        self.attempt_limit, self.attempt_window = attempt_limit, attempt_window
        self.control_rate = control_rate or (4 if market == "spot" else 8)
        self.rcvbuf, self.max_frame_size, self.read_buffer = rcvbuf, max_frame_size, read_buffer
        self.on_data, self.on_state = on_data, on_state
        self._ssl = ssl
        self.decoder = BinanceDecoder(trades=trades, depth=depth, tickers=tickers, partial=partial)
        self.sink = FeedSink(self.decoder, events)
        self.sink.event_unit_ns = 1000 if time_unit == "us" else 1_000_000
        self._ids = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._attempts: collections.deque = collections.deque(maxlen=attempt_limit)
        self.reconnects: collections.Counter = collections.Counter()
        self.failures: collections.Counter = collections.Counter()
        self.errors: collections.deque = collections.deque(maxlen=32)  # recent (time, route, error)
        self._retired = collections.Counter()  # decoder counters of closed connections
        self._retired_bytes = collections.Counter()
        self._retired_rejects = collections.Counter()
        self._conns: list[_Conn] = []
        self._routes: list[_Route] = []
        self._event: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._fatal: BaseException | None = None
        self._started = 0.0

    # ------------------------------------------------------------------ rings
    @property
    def trades(self):
        return self.decoder.trades

    @property
    def depth(self):
        return self.decoder.depth

    @property
    def tickers(self):
        return self.decoder.tickers

    @property
    def partial(self):
        return self.decoder.partial

    @property
    def events(self):
        return self.sink.events

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the route supervisors and wait until every route is subscribed."""
        self._event = asyncio.Event()
        self.sink.wake = self._event.set
        self._started = time.monotonic()
        if self._ssl is None:
            self._ssl = default_ssl_context()
        if self.market == "spot":
            self._routes = [_Route("spot", "", list(self.streams))]
        else:
            pub = [s for s in self.streams if usdm_route(s) == "public"]
            mkt = [s for s in self.streams if usdm_route(s) == "market"]
            self._routes = [
                r
                for r in (_Route("public", "/public", pub), _Route("market", "/market", mkt))
                if r.streams
            ]
        for r in self._routes:
            r.task = asyncio.create_task(self._route_loop(r), name=f"fastfeed-{r.name}")
            self._tasks.append(r.task)
        self._tasks.append(asyncio.create_task(self._watchdog(), name="fastfeed-watchdog"))
        if self.on_data is not None:
            self._tasks.append(asyncio.create_task(self._data_loop(), name="fastfeed-on-data"))
        try:
            await asyncio.wait_for(self._all_ready(), self.start_timeout)
        except asyncio.TimeoutError:
            err = self._fatal or (
                self.errors[-1][2] if self.errors else ConnectError("start timeout")
            )
            await self.close()
            raise err from None
        except BaseException:
            await self.close()
            raise
        log.info(
            "feed up: %s %d streams on %d connection(s)",
            self.market,
            len(self.streams),
            len(self._routes),
        )

    async def _all_ready(self) -> None:
        while True:
            if self._fatal is not None:
                raise self._fatal
            if all(r.ready.is_set() for r in self._routes):
                return
            self._event.clear()
            await self._event.wait()

    async def close(self) -> None:
        """Stop every task and close every connection (idempotent)."""
        if self._closing:
            return
        self._closing = True
        await cancel_and_wait(self._tasks)
        for c in list(self._conns):
            await c.close()
            self._retire(c)
        if self._event is not None:
            self._event.set()
        self._state("closed")

    # ------------------------------------------------------------------ consumers
    async def wait(self) -> None:
        """Return when new rows or markers arrived (once per socket read at most).  Raises
        the feed's fatal error (e.g. a :class:`SubscriptionError` on resubscribe), or
        :class:`FeedError` once the feed is closed."""
        if self._fatal is not None:
            raise self._fatal
        if self._closing:
            raise FeedError("feed closed")
        await self._event.wait()
        self._event.clear()
        self.sink.pending = False
        if self._fatal is not None:
            raise self._fatal

    def __aiter__(self):
        return self

    async def __anext__(self) -> BinanceFeed:
        try:
            await self.wait()
        except FeedError:
            if self._closing:
                raise StopAsyncIteration from None
            raise
        return self

    async def _data_loop(self) -> None:
        while True:
            await self.wait()
            try:
                self.on_data(self)
            except Exception:
                log.exception("on_data callback failed")

    # ------------------------------------------------------------------ live subscriptions
    async def subscribe(self, streams: Sequence[str]) -> None:
        """Add streams on the live connection(s); raises :class:`SubscriptionError`."""
        for r in self._routes_for(streams):
            new = [s for s in streams if self._route_of(s) == r.name and s not in r.streams]
            if new and r.conn is not None:
                await self._send_subs(r.conn, "SUBSCRIBE", new)
            r.streams.extend(new)
        self.streams.extend(s for s in streams if s not in self.streams)

    async def unsubscribe(self, streams: Sequence[str]) -> None:
        """Remove streams from the live connection(s)."""
        for r in self._routes_for(streams):
            gone = [s for s in streams if s in r.streams]
            if gone and r.conn is not None:
                await self._send_subs(r.conn, "UNSUBSCRIBE", gone)
            r.streams[:] = [s for s in r.streams if s not in gone]
        self.streams[:] = [s for s in self.streams if s not in streams]

    def _route_of(self, s: str) -> str:
        return "spot" if self.market == "spot" else usdm_route(s)

    def _routes_for(self, streams):
        names = {self._route_of(s) for s in streams}
        missing = names - {r.name for r in self._routes}
        if missing:
            raise FeedError(
                f"no connection for route(s) {sorted(missing)}; create the feed with them"
            )
        return [r for r in self._routes if r.name in names]

    async def _send_subs(self, conn: _Conn, method: str, streams: list[str]) -> None:
        for i in range(0, len(streams), 100):  # keep each frame small
            await conn.request(method, streams[i : i + 100])

    # ------------------------------------------------------------------ connections
    def _route_url(self, route: _Route) -> str:
        q = "timeUnit=MICROSECOND" if self.time_unit == "us" else ""
        base = self.url + route.prefix + "/stream"
        if self.subscribe_mode == "url" and route.streams:
            return base + "?streams=" + "/".join(route.streams) + ("&" + q if q else "")
        return base + ("?" + q if q else "")

    async def _socket_factory(self, parsed):
        # Our own socket so SO_RCVBUF is capped (bounded kernel memory per connection).
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(parsed.host, parsed.port, type=socket.SOCK_STREAM)
        last: BaseException | None = None
        for fam, typ, proto, _, addr in infos:
            sock = socket.socket(fam, typ, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
                sock.setblocking(False)
                await loop.sock_connect(sock, addr)
                return sock
            except OSError as e:
                last = e
                sock.close()
        raise last or OSError("no address")

    async def _gate(self) -> None:
        # Stay inside the exchange's connection-attempt limit (300 per 5 min per IP).
        if len(self._attempts) == self._attempts.maxlen:
            wait = self._attempts[0] + self.attempt_window - time.monotonic()
            if wait > 0:
                log.warning("connection-attempt limit reached; waiting %.1fs", wait)
                await asyncio.sleep(wait)
        self._attempts.append(time.monotonic())

    async def _open(self, route: _Route) -> _Conn:
        """Connect and subscribe one connection of ``route``; raises a :class:`FeedError`."""
        await self._gate()
        conn = _Conn(self, route, next(self._conn_ids))
        sink, stage, cid, maxmsg = self.sink, conn.stage, conn.id, self.max_frame_size

        def factory(*_):
            lis = FeedListener(sink, stage, cid, maxmsg)
            lis.on_disconnected = conn._on_disconnected
            return lis

        url = self._route_url(route)
        log.info("conn %d (%s): connecting %s", conn.id, route.name, url.split("?")[0])
        try:
            tr, lis = await asyncio.wait_for(
                ws_connect(
                    factory,
                    url,
                    ssl_context=self._ssl,
                    enable_auto_ping=True,
                    auto_ping_idle_timeout=self.ping_interval,
                    auto_ping_reply_timeout=self.pong_timeout,
                    auto_ping_strategy=WSAutoPingStrategy.PING_PERIODICALLY,
                    enable_auto_pong=True,
                    max_frame_size=self.max_frame_size,
                    read_buffer_init_size=self.read_buffer,
                    socket_factory=self._socket_factory,
                    websocket_handshake_timeout=self.connect_timeout,
                    logger_name=f"fastfeed.picows.{route.name}",
                ),
                self.connect_timeout,
            )
        except _ssl.SSLCertVerificationError as e:
            raise TLSVerificationError(
                f"certificate verification failed for {url.split('?')[0]}: {e.verify_message or e}"
            ) from e
        except _ssl.SSLError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e):
                raise TLSVerificationError(f"certificate verification failed: {e}") from e
            raise ConnectError(f"TLS error: {e}") from e
        except WSInvalidStatusError as e:
            resp = getattr(e, "response", None)
            status = getattr(resp, "status", None)
            ra = None
            try:
                ra = (
                    float(resp.headers.get("Retry-After"))
                    if resp is not None and resp.headers.get("Retry-After")
                    else None
                )
            except (TypeError, ValueError, AttributeError):
                pass
            raise HandshakeError(int(status) if status is not None else None, "", ra) from e
        except WSError as e:
            raise HandshakeError(None, str(e)) from e
        except asyncio.TimeoutError as e:
            raise ConnectError(f"connect timeout after {self.connect_timeout}s") from e
        except OSError as e:
            raise ConnectError(f"connect failed: {e}") from e
        if lis is None:
            tr.disconnect(False)
            raise HandshakeError(None, "no listener (handshake closed)")
        conn.listener, conn.transport = lis, tr
        self._conns.append(conn)
        try:
            if self.subscribe_mode == "live" and route.streams:
                await self._send_subs(conn, "SUBSCRIBE", list(route.streams))
        except BaseException:
            await conn.close()
            self._retire(conn)
            raise
        self.sink.mark(EventReason.CONNECT, conn.id)
        self._state("connected", conn=conn.id, route=route.name)
        return conn

    def _retire(self, conn: _Conn) -> None:
        if conn in self._conns:
            self._conns.remove(conn)
            st = conn.stage.stats()
            self._retired.update(st["counts"])
            self._retired_bytes.update(st["bytes"])
            self._retired_rejects.update(st["rejected"])
            conn.stage.on_control = None
            if conn.listener is not None:
                conn.listener.on_disconnected = None

    def _fail(self, route: _Route, err: BaseException) -> None:
        self.failures[type(err).__name__] += 1
        self.errors.append((time.time(), route.name, err))
        self._state("connect_failed", route=route.name, error=str(err))
        if self._event is not None:
            self._event.set()  # lets start() notice

    async def _route_loop(self, route: _Route) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while not self._closing:
            err: BaseException | None = None
            try:
                conn = await self._open(route)
            except SubscriptionError as e:
                if e.code is not None:  # the exchange rejected the streams: retrying won't help
                    log.error("route %s: %s", route.name, e)
                    self._fatal = e
                    self._fail(route, e)
                    return
                err = e
            except FeedError as e:
                err = e
            if err is not None:
                delay = backoff.next()
                if isinstance(err, HandshakeError) and err.retry_after:
                    delay = max(delay, err.retry_after)
                log.warning("route %s: %s; retry in %.2fs", route.name, err, delay)
                self._fail(route, err)
                await asyncio.sleep(delay)
                continue
            route.conn = conn
            route.ready.set()
            self._event.set()
            reason, conn = await self._serve(route, conn)
            lis = conn.listener
            if (
                lis is not None
                and lis.messages > 0
                and time.time_ns() - lis.connected_ns >= self.backoff_max * 1e9
            ):
                backoff.reset()  # it worked for a while: start over
            self.reconnects[reason.split(":")[0]] += 1
            self.sink.mark(EventReason.DISCONNECT, conn.id)
            log.warning("conn %d (%s): %s; reconnecting", conn.id, route.name, reason)
            self._state("disconnected", conn=conn.id, route=route.name, reason=reason)
            await conn.close()
            self._retire(conn)
            route.conn = None
            # Backoff here too: a connection that keeps dying young must not become a
            # reconnect loop against the exchange's connection-attempt limit.
            await asyncio.sleep(backoff.next())

    async def _serve(self, route: _Route, conn: _Conn) -> tuple[str, _Conn]:
        """Wait on ``conn`` until it must go; rotations happen in here.  Returns the reason
        the current connection was lost, and that connection (after a rotation, not the one
        passed in: the caller closes and retires it)."""
        while True:
            reason = await asyncio.shield(conn.trigger)
            if conn.gone.done() or reason not in ("serverShutdown", "lifetime"):
                return reason, conn
            new = await self._rotate(route, conn, reason)
            if new is None:
                await asyncio.shield(conn.gone)
                return "rotation failed: " + reason, conn
            conn = new

    async def _rotate(self, route: _Route, old: _Conn, reason: str) -> _Conn | None:
        """Open the replacement first, let both feed the filter until the new one has caught
        up on every stream (or the timeout), then close the old one."""
        route.rotating = True
        log.info("conn %d (%s): rotating (%s)", old.id, route.name, reason)
        deadline = time.monotonic() + self.rotation_timeout
        new = None
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        try:
            while new is None and time.monotonic() < deadline and not self._closing:
                try:
                    new = await self._open(route)
                except FeedError as e:
                    self._fail(route, e)
                    await asyncio.sleep(min(backoff.next(), max(0.0, deadline - time.monotonic())))
            if new is None:
                return None
            slots = self._slots(route)
            while time.monotonic() < deadline and not new.gone.done():
                if all(new.listener.caught_up(sym, slot) for sym, slot in slots):
                    break
                if (
                    old.gone.done()
                    and slots
                    and all(
                        self.sink.last_recv_ns(s, sl) >= new.listener.connected_ns
                        for s, sl in slots
                    )
                ):
                    break
                await asyncio.sleep(0.005)
            route.conn = new
            self.sink.mark(EventReason.ROTATE, new.id)
            self.reconnects["rotation"] += 1
            self._state("rotated", old=old.id, new=new.id, route=route.name, reason=reason)
            await old.close(1000)
            self._retire(old)
            return new
        finally:
            route.rotating = False

    def _slots(self, route: _Route) -> list[tuple[int, int]]:
        out = []
        for s in route.streams:
            ss = stream_slot(s)
            if ss is not None:
                out.append((self.decoder.symbols.id(ss[0]), ss[1]))
        return out

    async def _watchdog(self) -> None:
        tick = 0.25 if self.stream_timeout is None else max(0.01, min(1.0, self.stream_timeout / 4))
        while True:
            await asyncio.sleep(tick)
            now_ns = time.time_ns()
            for r in self._routes:
                c = r.conn
                if c is None or r.rotating or c.listener is None or c.trigger.done():
                    continue
                if time.monotonic() - c.opened > self.max_lifetime:
                    c.fire("lifetime")
                    continue
                if self.stream_timeout is None:
                    continue
                for s in r.streams:
                    ss = stream_slot(s)
                    if ss is None:
                        continue
                    sym = self.decoder.symbols.id(ss[0])
                    base = max(self.sink.last_recv_ns(sym, ss[1]), c.listener.connected_ns)
                    if now_ns - base > self.stream_timeout * 1e9:
                        self.sink.mark(EventReason.WATCHDOG, c.id, sym, ss[1])
                        c.fire(f"watchdog: no data on {s} for {self.stream_timeout}s")
                        break

    def _state(self, what: str, **info) -> None:
        if self.on_state is not None:
            try:
                self.on_state(what, info)
            except Exception:
                log.exception("on_state callback failed")

    # ------------------------------------------------------------------ stats
    def latency_percentiles(self, ps=(50, 99, 99.9)) -> dict:
        """Receive latency (recv time - event time) percentiles in microseconds, from the
        histogram (bucket lower bounds; <= 19 % relative error)."""
        hist, _neg = self.sink.latency_histogram()
        bounds = latency_bucket_bounds()
        total = sum(hist)
        out = {}
        for p in ps:
            if not total:
                out[p] = None
                continue
            need, acc = total * p / 100.0, 0
            for b, c in zip(bounds, hist):
                acc += c
                if acc >= need:
                    out[p] = b
                    break
        return out

    def stats(self) -> dict:
        """Counters: messages and bytes per kind, rejects by reason, duplicates/gaps filtered,
        reconnects by reason, age of the last row per stream, latency, time in the
        listener+decoder, ring overwrites, RSS."""
        counts = collections.Counter(self._retired)
        nbytes = collections.Counter(self._retired_bytes)
        rejects = collections.Counter(self._retired_rejects)
        for c in self._conns:
            st = c.stage.stats()
            counts.update(st["counts"])
            nbytes.update(st["bytes"])
            rejects.update(st["rejected"])
        now = time.time_ns()
        ages = {}
        for s in self.streams:
            ss = stream_slot(s)
            if ss is not None:
                t = self.sink.last_recv_ns(self.decoder.symbols.id(ss[0]), ss[1])
                ages[s] = (now - t) / 1e9 if t else None
        sc = self.sink.counters()
        hist, neg = self.sink.latency_histogram()
        rings = {n: getattr(self.decoder, n) for n in ("trades", "depth", "tickers", "partial")}
        return {
            "messages": dict(counts),
            "bytes": dict(nbytes),
            "rejected": dict(rejects),
            "rows": {n: r.written for n, r in rings.items()},
            "overwritten": {n: max(0, r.written - r.capacity) for n, r in rings.items()},
            "accepted": sc["accepted"],
            "duplicates": sc["duplicates"],
            "gaps": sc["gaps"],
            "unroutable": sc["unroutable"],
            "reconnects": dict(self.reconnects),
            "connect_failures": dict(self.failures),
            "events": self.sink.events.written,
            "age_s": ages,
            "latency_us": self.latency_percentiles(),
            "latency_negative": neg,
            "busy_ns": sc["busy_ns"],
            "reads": sc["batches"],
            "connections": [
                dict(c.listener.stats(), route=c.route.name)
                for c in self._conns
                if c.listener is not None
            ],
            "rss_bytes": _rss_bytes(),
            "uptime_s": time.monotonic() - self._started if self._started else 0.0,
        }


__all__ = ["EVENT_DTYPE", "BinanceFeed", "EventReason"]
