"""``fastfeed.BinanceFeed``: the session layer (asyncio) around the C-level listener.

One :class:`BinanceFeed` owns one set of rings (``feed.decoder``) and one *route* per
connection.  A market's streams form a group (spot: one; USD-M: ``/public`` for
depth/bookTicker and ``/market`` for trades), split into *shards* of at most
``max_streams_per_connection`` streams, and each shard has ``redundancy`` *legs*: routes that
carry the same streams.  Each route is supervised by a task that connects, subscribes, watches
health, reconnects with capped exponential backoff with jitter (inside the exchange's
connection-attempt limit, shared by all routes), and rotates to a replacement connection on
``serverShutdown`` or before the 24 h lifetime.  Every connection writes through one
:class:`~fastfeed.feed._filter.FeedSink`, whose id filter makes the rotation seamless and lets
the first copy of a message from any leg win (see docs/decisions/0201-feed-bridge-by-id-filter.md,
0211-feed-decode-filter-commit.md and 0220-feed-shards-and-legs.md).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import socket
import ssl as _ssl
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSError,
    WSInvalidStatusError,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from fastfeed._aio import Backoff, Service, cancel_and_wait
from fastfeed.core._codes import EventReason
from fastfeed.core._decoder import BinanceDecoder
from fastfeed.errors import (
    ConnectError,
    FeedError,
    HandshakeError,
    StartTimeoutError,
    SubscriptionError,
    TLSVerificationError,
)
from fastfeed.feed._filter import EVENT_DTYPE, FeedSink, latency_bucket_bounds
from fastfeed.feed._listener import FeedListener
from fastfeed.feed.config import FeedConfig, with_options
from fastfeed.feed.endpoint import Endpoint, Market, check_ws_url
from fastfeed.feed.rings import FeedRings
from fastfeed.feed.streams import (
    check_streams,
    stream_slot,
    usdm_route,
)

log = logging.getLogger("fastfeed.feed")


# Linux's TCP_INFO starts with the connection's state; anything but ESTABLISHED under an open
# connection means the peer reset it or closed it (tcp_states.h).
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_ESTABLISHED = 1
_TCP_STATES = {7: "reset or closed (TCP CLOSE)", 8: "closed by peer (TCP CLOSE_WAIT)"}
_CLOSING = "transport closing"

# Binance's per-connection stream cap (spot and USD-M WebSocket docs; the simulator keeps
# USD-M's older 200, which is the safe side), and the longest URL the stream hosts accept
# (8004 characters, measured by a public client: streams past it are subscribed live).
_MAX_STREAMS = {"spot": 1024, "usdm": 200}
_MAX_URL = 8000
_SUBS_PER_MESSAGE = 100  # streams per SUBSCRIBE: keeps each control frame small


def _tcp_info(sock: socket.socket) -> tuple[int, int] | None:
    """(state, segments sent and not yet acknowledged) of a TCP socket; None where the kernel
    does not say (not Linux, not TCP)."""
    if _TCP_INFO is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 28)
    except OSError:
        return None
    # struct tcp_info: u8 state, 7 more u8, then u32 rto, ato, snd_mss, rcv_mss, unacked
    return info[0], int.from_bytes(info[24:28], "little") if len(info) >= 28 else 0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - non-Linux
        return 0


def retry_can_fix(err: BaseException) -> bool:
    """Whether retrying may cure ``err`` on a feed's first start (docs/decisions/0210): network
    errors (refused, unreachable, DNS, timeouts), 5xx, 408, 418 and 429 may pass; a
    certificate that does not verify, another 4xx handshake refusal, a refused subscription
    and a server that does not speak TLS will not."""
    if isinstance(err, TLSVerificationError):
        return False
    if isinstance(err, HandshakeError):
        return err.status is None or not 400 <= err.status < 500 or err.status in (408, 418, 429)
    if isinstance(err, SubscriptionError):
        return err.code is None  # no reply in time may pass; a refusal will not
    cause = err.__cause__
    return not (isinstance(cause, _ssl.SSLError) and cause.reason == "WRONG_VERSION_NUMBER")


def _handshake_error(e: WSInvalidStatusError, url: str) -> HandshakeError:
    """A :class:`HandshakeError` with the status, the server's message (Binance answers a
    JSON ``{"code", "msg"}``) and ``Retry-After``."""
    resp = getattr(e, "response", None)
    status = getattr(resp, "status", None)
    headers = getattr(resp, "headers", None) or {}
    ra = None
    try:
        raw = headers.get("Retry-After")
        ra = float(raw) if raw else None
    except (TypeError, ValueError, AttributeError):
        pass
    msg = ""
    body = getattr(e, "raw_body", None) or b""
    try:
        doc = json.loads(body[:2048])
        msg = str(doc.get("msg", "")) if isinstance(doc, dict) else ""
    except (ValueError, UnicodeDecodeError):
        msg = body[:200].decode("utf-8", "replace").strip()
    return HandshakeError(int(status) if status is not None else None, msg, ra, url=url)


class _Conn:
    """One WebSocket connection of a route (cold-path bookkeeping only)."""

    def __init__(self, feed: BinanceFeed, route: _Route, conn_id: int):
        self.feed, self.route, self.id = feed, route, conn_id
        # Per-connection decoder: control replies and counters, writing into the feed's
        # rings with the feed's symbol table.
        self.stage = BinanceDecoder(max_levels=1000, control_maxlen=16, share=feed.decoder)
        self.stage.on_control = self._on_control
        self.stage.on_shutdown = self._on_shutdown
        self.listener: FeedListener | None = None
        self.transport: WSTransport | None = None
        self.pending: dict = {}
        self.sends: collections.deque = collections.deque(maxlen=feed.control_rate)
        loop = asyncio.get_running_loop()
        self.trigger: asyncio.Future = loop.create_future()  # reason this connection must go
        self.gone: asyncio.Future = loop.create_future()  # disconnected
        self.opened = time.monotonic()
        self.probe: asyncio.Task | None = None  # liveness ping in flight
        self.probe_ok_ns = 0  # when the last probe's pong came back
        self.quiet_probes = 0  # probes answered since the last data: each doubles the wait
        self.bad_ticks = 0  # liveness ticks in a row that found the socket dead or closing

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
                # picows's stub declares WSCloseCode an Enum; at runtime it is an IntEnum
                code = int(hs.sent.code)  # type: ignore[call-overload]
                why = f"closed by client {code}: {hs.sent.reason or ''}"
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

    def _on_shutdown(self, event_time: int) -> None:
        # the decoder recognised a serverShutdown event (before passing it to _on_control)
        log.warning("conn %d (%s): serverShutdown, rotating", self.id, self.route.name)
        self.fire("serverShutdown")

    def _on_control(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return  # (a serverShutdown event went to _on_shutdown first)
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
        assert self.transport is not None, "requests go only over an open connection"
        self.transport.send(WSMsgType.TEXT, json.dumps(body, separators=(",", ":")).encode())
        try:
            return await asyncio.wait_for(fut, feed.ack_timeout)
        except asyncio.TimeoutError as e:
            self.pending.pop(rid, None)
            raise SubscriptionError(
                None, f"no reply to {method} within ack_timeout={feed.ack_timeout}s", rid
            ) from e

    async def _pace(self) -> None:
        # At most control_rate messages in any 1 s window (the limit also counts pings/pongs,
        # so control_rate is kept below it).
        while len(self.sends) == self.sends.maxlen:
            wait = self.sends[0] + 1.0 - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        self.sends.append(time.monotonic())

    def _socket(self):
        u = getattr(self.transport, "underlying_transport", None)
        return None if u is None else u.get_extra_info("socket")

    def socket_dead(self) -> str | None:
        """Why the kernel socket under this connection is no longer usable (a reset, a FIN,
        closed), or None.  Cheap (one getsockopt), and independent of the transport, which
        may fail to report it (docs/decisions/0212-feed-dead-connection.md)."""
        u = getattr(self.transport, "underlying_transport", None)
        if u is None:
            return None
        if u.is_closing():
            return _CLOSING
        sock = self._socket()
        if sock is None or sock.fileno() < 0:
            return "socket closed"
        info = _tcp_info(sock)
        if info is not None and info[0] != _TCP_ESTABLISHED:
            return _TCP_STATES.get(info[0], f"TCP state {info[0]}")
        return None

    async def close(self, code: int = 1000, timeout: float = 1.0) -> None:
        tr = self.transport
        if tr is None or self.gone.done():
            return
        try:
            if not tr.is_close_frame_sent:
                # picows's stub wants a WSCloseCode (an Enum there); it takes any int code
                tr.send_close(code, b"")  # type: ignore[arg-type]
            tr.disconnect()
            await asyncio.wait_for(asyncio.shield(self.gone), timeout)
        except (asyncio.TimeoutError, Exception):
            tr.disconnect(False)


class _Route:
    """One connection slot: leg ``leg`` of shard ``shard`` of a route ``group`` ("spot",
    "public", "market").  The legs of a shard share one ``streams`` list."""

    def __init__(
        self,
        name: str,
        prefix: str,
        streams: list[str],
        *,
        group: str | None = None,
        shard: int = 0,
        leg: int = 0,
        url: str = "",
    ):
        self.name, self.prefix, self.streams = name, prefix, streams
        self.group = group or name
        self.shard, self.leg, self.url = shard, leg, url
        self.legs: list[_Route] = [self]  # this shard's legs, this one included
        self.conn: _Conn | None = None
        self.ready = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.rotating = False
        self.rate = 0.0  # measured messages per second (moving average), for placement
        self._rate_mark: tuple[int, int, float] = (0, 0, 0.0)  # (conn id, messages, time)
        self._silence: tuple[int, int] = (-1, 0)  # (my messages, sibling legs' messages)
        # Opened by subscribe() and not up yet: an error a retry cannot fix ends this route
        # alone (subscribe() raises it), not the whole feed.
        self.probation = False
        self.last_error: BaseException | None = None


class BinanceFeed(Service, FeedRings):
    """Binance market streams into numpy rings: ``async with BinanceFeed(streams) as feed``.

    Rings: ``feed.trades``, ``feed.depth``, ``feed.tickers``, ``feed.partial`` (the shared
    :class:`~fastfeed.BinanceDecoder` is ``feed.decoder``) and ``feed.events`` (marker rows,
    ``EVENT_DTYPE``: reason, conn, symbol, and the ``written`` position of every data ring at
    that moment, so consumers see each gap/reconnect/rotation in order with the rows).

    ``await feed.wait()`` or ``async for _ in feed`` wakes once per socket read with new rows;
    ``feed.add_hook(callable)`` calls a function of yours at that moment instead.
    ``feed.stats()`` returns counters.  Leaving the context (or cancelling it) closes cleanly.

    ``streams``: a list of stream names (a lone string is one stream).  Where to connect:
    ``endpoint`` (:class:`~fastfeed.Endpoint`: market, URLs, TLS; default Binance spot), or
    its shortcuts ``market`` ("spot" | "usdm"), ``url`` (base ``wss://host:port``) and
    ``ssl`` (an ``SSLContext``), which replace those fields of ``endpoint``.  Settings:
    ``config`` (:class:`~fastfeed.FeedConfig`), or its fields as keyword arguments
    (``ping_interval=5``), which replace those of ``config``.  ``on_data`` (callable(feed),
    called once per wake from an internal task), ``on_state`` (callable(str, dict)) and
    ``record`` (a directory or a :class:`fastfeed.Recorder`: record every message, event and
    order-book snapshot; see docs/recording-format.md).
    Every argument is checked here: a wrong one raises ``TypeError`` / ``ValueError`` naming
    it.  Entering the feed raises at once on what a retry cannot fix (TLS verification, an
    HTTP 4xx handshake refusal, a refused subscription) and retries network errors until
    ``config.start_timeout`` (:class:`~fastfeed.errors.StartTimeoutError`).
    """

    endpoint: Endpoint
    config: FeedConfig

    def __init__(
        self,
        streams: str | Iterable[str],
        market: Market | None = None,
        url: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        *,
        endpoint: Endpoint | None = None,
        config: FeedConfig | None = None,
        on_data: Callable[[BinanceFeed], object] | None = None,
        on_state: Callable[[str, dict[str, Any]], object] | None = None,
        record: Any = None,
        **options: Any,
    ) -> None:
        self.streams = check_streams(streams)
        if endpoint is None:
            endpoint = Endpoint(market if market is not None else "spot", url, None, ssl)
        elif not isinstance(endpoint, Endpoint):
            raise TypeError(f"endpoint must be a fastfeed.Endpoint, got {endpoint!r}")
        elif market is not None or url is not None or ssl is not None:
            endpoint = endpoint.replace(market=market, ws_url=url, ssl=ssl)
        if config is not None and not isinstance(config, FeedConfig):
            raise TypeError(f"config must be a fastfeed.FeedConfig, got {config!r}")
        cfg = with_options(config or FeedConfig(), options, "BinanceFeed")
        for name, cb in (("on_data", on_data), ("on_state", on_state)):
            if cb is not None and not callable(cb):
                raise TypeError(f"{name} must be callable or None, got {cb!r}")
        self.endpoint, self.config = endpoint, cfg
        self.market: Market = endpoint.market
        self.url = endpoint.ws_url
        # The effective settings, read by the connection code (config keeps what was asked).
        self.subscribe_mode = cfg.subscribe
        self.time_unit = cfg.time_unit
        self.ping_interval = cfg.ping_interval
        self.pong_timeout = min(cfg.pong_timeout, cfg.ping_interval)
        self.stream_timeout = cfg.stream_timeout
        self.backoff_initial, self.backoff_max = cfg.backoff_initial, cfg.backoff_max
        self.max_lifetime, self.rotation_timeout = cfg.max_lifetime, cfg.rotation_timeout
        self.ack_timeout, self.start_timeout, self.connect_timeout = (
            cfg.ack_timeout,
            cfg.start_timeout,
            cfg.connect_timeout,
        )
        self.attempt_limit, self.attempt_window = cfg.attempt_limit, cfg.attempt_window
        self.control_rate = cfg.control_rate or (4 if self.market == "spot" else 8)
        self.rcvbuf, self.max_frame_size = cfg.rcvbuf, cfg.max_frame_size
        self.read_buffer = cfg.read_buffer
        self.max_streams = cfg.max_streams_per_connection or _MAX_STREAMS[self.market]
        if self.max_streams > _MAX_STREAMS[self.market]:
            log.warning(
                "max_streams_per_connection=%d is above the exchange's %d per connection",
                self.max_streams,
                _MAX_STREAMS[self.market],
            )
        self.max_rate = cfg.max_rate_per_connection
        self.redundancy = cfg.redundancy
        self.leg_urls = tuple(check_ws_url(u, "leg_urls") for u in cfg.leg_urls)
        self.on_data, self.on_state = on_data, on_state
        self._ssl: _ssl.SSLContext | None = None  # the endpoint's, taken at start
        self.decoder = BinanceDecoder(
            trades=cfg.trades, depth=cfg.depth, tickers=cfg.tickers, partial=cfg.partial
        )
        self.sink = FeedSink(self.decoder, cfg.events)
        self.sink.event_unit_ns = 1000 if self.time_unit == "us" else 1_000_000
        from fastfeed.record import attach  # record=: a directory or a Recorder (or None)

        self.recorder = attach(self, record)
        self._ids = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._attempts: collections.deque = collections.deque(maxlen=self.attempt_limit)
        self.reconnects: collections.Counter = collections.Counter()
        self.probes = 0  # liveness pings sent to silent connections
        self.failures: collections.Counter = collections.Counter()
        self.errors: collections.deque = collections.deque(maxlen=32)  # recent (time, route, error)
        # decoder counters of closed connections
        self._retired: collections.Counter[str] = collections.Counter()
        self._retired_bytes: collections.Counter[str] = collections.Counter()
        self._retired_rejects: collections.Counter[str] = collections.Counter()
        self._conns: list[_Conn] = []
        self._routes: list[_Route] = []
        self._sub_lock: asyncio.Lock | None = None  # subscribe/unsubscribe, one at a time
        self._slot_cache: dict[str, tuple[int, int] | None] = {}
        self._live = False  # start() ran: wait() may be called
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._fatal: BaseException | None = None
        self._up = False  # every route was up once: from then on every error is retried
        self._started = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the route supervisors and wait until every route is subscribed."""
        self._live = True
        self._started = time.monotonic()
        self._ssl = self.endpoint.ssl
        self._sub_lock = asyncio.Lock()
        for group in ("spot",) if self.market == "spot" else ("public", "market"):
            mine = [s for s in self.streams if self._route_of(s) == group]
            for chunk in self._split(mine):
                self._add_shard(group, chunk)
        self._tasks.append(asyncio.create_task(self._watchdog(), name="fastfeed-watchdog"))
        self._tasks.append(asyncio.create_task(self._liveness(), name="fastfeed-liveness"))
        if self.on_data is not None:
            self._tasks.append(asyncio.create_task(self._data_loop(), name="fastfeed-on-data"))
        try:
            await asyncio.wait_for(self._all_ready(), self.start_timeout)
        except asyncio.TimeoutError:
            last = self._fatal or (self.errors[-1][2] if self.errors else None)
            await self.close()
            raise StartTimeoutError(
                f"feed not up within start_timeout={self.start_timeout}s "
                f"({self.endpoint.host()}); last error: {last or 'none'}"
            ) from last
        except BaseException:
            await self.close()
            raise
        self._up = True
        log.info(
            "feed up: %s %d streams on %d connection(s) (%d shard(s) x %d leg(s))",
            self.market,
            len(self.streams),
            len(self._routes),
            len(self._shards()),
            self.redundancy,
        )

    async def _all_ready(self) -> None:
        while True:
            if self._fatal is not None:
                raise self._fatal
            if all(r.ready.is_set() for r in self._routes):
                return
            fut = self.sink.waiter(asyncio.get_running_loop())
            if fut is not None:
                await fut

    async def close(self) -> None:
        """Stop every task and close every connection (idempotent)."""
        if self._closing:
            return
        self._closing = True
        await cancel_and_wait(self._tasks)
        for c in list(self._conns):
            await c.close()
            self._retire(c)
        from fastfeed.record import detach

        detach(self)
        self.sink.wake()
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
        assert self._live, "start() runs before wait()"
        # A future resolved in C once the read's hooks ran (no asyncio.Event in between:
        # docs/decisions/0213-consumer-paths.md); None when rows came while nobody waited.
        fut = self.sink.waiter(asyncio.get_running_loop())
        if fut is not None:
            await fut
        if self._fatal is not None:
            raise self._fatal

    def __aiter__(self) -> BinanceFeed:
        return self

    async def __anext__(self) -> BinanceFeed:
        try:
            await self.wait()
        except FeedError:
            if self._closing:
                raise StopAsyncIteration from None
            raise
        return self

    # ------------------------------------------------------------------ live subscriptions
    async def subscribe(self, streams: str | Sequence[str]) -> None:
        """Add streams on the live connections; raises :class:`SubscriptionError`.

        Each new stream goes to the least-loaded shard of its route (fewest streams, then
        the lowest measured message rate) that is below ``max_streams_per_connection`` (and
        ``max_rate_per_connection``); when every shard is full, new shards (connections) are
        opened for the rest, and this returns once they are subscribed."""
        streams = check_streams(streams)
        if self._sub_lock is None or self._closing:
            raise FeedError("subscribe() needs a running feed: use it inside `async with`")
        async with self._sub_lock:
            new = [s for s in streams if s not in self.streams]
            by_group: dict[str, list[str]] = {}
            for s in new:
                by_group.setdefault(self._route_of(s), []).append(s)
            plan: dict[_Route, list[str]] = {}
            opened: list[_Route] = []
            for group, ss in by_group.items():
                rest = self._place(group, ss, plan)
                for chunk in self._split(rest):
                    opened.extend(self._add_shard(group, chunk))
            shards = list(plan)
            results = await asyncio.gather(
                *(self._subscribe_shard(shard, plan[shard]) for shard in shards),
                return_exceptions=True,
            )
            refused: BaseException | None = None
            for shard, res in zip(shards, results):
                if isinstance(res, BaseException):
                    refused = refused or res
                    continue
                shard.streams.extend(plan[shard])
                self.streams.extend(plan[shard])
            for r in opened:
                if r.leg == 0:
                    self.streams.extend(r.streams)
            if opened:
                await self._wait_ready(opened, "new connection(s) for subscribed streams")
            if refused is not None:
                raise refused

    async def _subscribe_shard(self, shard: _Route, streams: list[str]) -> None:
        """SUBSCRIBE ``streams`` on every live leg of ``shard``.  A refusal raises; a leg
        that drops meanwhile is reconnecting, and its next connection subscribes the whole
        list (the caller adds these streams to it)."""
        results = await asyncio.gather(
            *(self._send_subs(leg.conn, "SUBSCRIBE", streams) for leg in shard.legs),
            return_exceptions=True,
        )
        for res in results:
            if isinstance(res, SubscriptionError) and res.code is not None:
                raise res
            if isinstance(res, BaseException):
                log.warning("route %s: %s; subscribed on reconnect", shard.name, res)

    async def unsubscribe(self, streams: str | Sequence[str]) -> None:
        """Remove streams from the live connections (every leg of their shards)."""
        streams = check_streams(streams)
        if self._sub_lock is None or self._closing:
            raise FeedError("unsubscribe() needs a running feed: use it inside `async with`")
        async with self._sub_lock:
            sends = []
            for shard in self._shards():
                gone = [s for s in streams if s in shard.streams]
                if not gone:
                    continue
                sends += [
                    self._send_subs(leg.conn, "UNSUBSCRIBE", gone)
                    for leg in shard.legs
                    if leg.conn is not None
                ]
                shard.streams[:] = [s for s in shard.streams if s not in gone]
            self.streams[:] = [s for s in self.streams if s not in streams]
            await asyncio.gather(*sends)

    def _route_of(self, s: str) -> str:
        return "spot" if self.market == "spot" else usdm_route(s)

    # ------------------------------------------------------------------ shards
    def _shards(self, group: str | None = None) -> list[_Route]:
        """The first leg of every shard (of ``group``)."""
        return [r for r in self._routes if r.leg == 0 and (group is None or r.group == group)]

    def _split(self, streams: list[str]) -> list[list[str]]:
        """``streams`` in as few chunks of at most ``max_streams`` as possible, of equal size
        (within one), in order."""
        if not streams:
            return []
        n = -(-len(streams) // self.max_streams)
        return [streams[i * len(streams) // n : (i + 1) * len(streams) // n] for i in range(n)]

    def _place(self, group: str, streams: list[str], plan: dict[_Route, list[str]]) -> list[str]:
        """Assign ``streams`` to existing shards of ``group`` (into ``plan``), each to the
        least-loaded one with room; returns those that fit nowhere."""
        shards = [
            r
            for r in self._shards(group)
            if self.max_rate is None or r.rate < self.max_rate or not r.streams
        ]
        rest = []
        for s in streams:
            room = [r for r in shards if len(r.streams) + len(plan.get(r, ())) < self.max_streams]
            if not room:
                rest.append(s)
                continue
            best = min(room, key=lambda r: (len(r.streams) + len(plan.get(r, ())), r.rate))
            plan.setdefault(best, []).append(s)
        return rest

    def _add_shard(self, group: str, streams: list[str]) -> list[_Route]:
        """Create the legs of a new shard of ``group`` carrying ``streams`` (one list, shared
        by the legs) and start their supervisors."""
        prefix = "" if group == "spot" else "/" + group
        taken = {r.shard for r in self._routes if r.group == group}
        shard = next(i for i in itertools.count() if i not in taken)
        legs = []
        for leg in range(self.redundancy):
            name = group + (f"#{shard}" if shard else "") + (f"/{leg}" if leg else "")
            url = self.leg_urls[leg % len(self.leg_urls)] if self.leg_urls else self.url
            legs.append(_Route(name, prefix, streams, group=group, shard=shard, leg=leg, url=url))
        for r in legs:
            r.legs = legs
            r.probation = self._up
            r.task = asyncio.create_task(self._route_loop(r), name=f"fastfeed-{r.name}")
            self._tasks.append(r.task)
        self._routes.extend(legs)
        return legs

    async def _wait_ready(self, routes: list[_Route], what: str) -> None:
        async def ready() -> None:
            while True:
                if self._fatal is not None:
                    raise self._fatal
                failed = next((r for r in routes if r.task is not None and r.task.done()), None)
                if failed is not None:
                    # a refusal a retry cannot fix: this new shard goes, the feed stays
                    await self._drop_routes(routes)
                    raise failed.last_error or FeedError(f"{what}: route {failed.name} ended")
                if all(r.ready.is_set() for r in routes):
                    return
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(ready(), self.start_timeout)
        except asyncio.TimeoutError:
            last = self.errors[-1][2] if self.errors else None
            raise FeedError(
                f"{what} not up within start_timeout={self.start_timeout}s (still retrying); "
                f"last error: {last or 'none'}"
            ) from last

    async def _drop_routes(self, routes: list[_Route]) -> None:
        """Stop and forget ``routes`` (the legs of shards that could not start), and their
        streams."""
        await cancel_and_wait([r.task for r in routes if r.task is not None])
        gone = set()
        for r in routes:
            gone.update(r.streams)
            if r.conn is not None:
                await r.conn.close()
                self._retire(r.conn)
            if r in self._routes:
                self._routes.remove(r)
            if r.task in self._tasks:
                self._tasks.remove(r.task)
        self.streams[:] = [s for s in self.streams if s not in gone]

    async def _send_subs(self, conn: _Conn | None, method: str, streams: list[str]) -> None:
        if conn is None:
            return
        for i in range(0, len(streams), _SUBS_PER_MESSAGE):  # keep each frame small
            chunk = streams[i : i + _SUBS_PER_MESSAGE]
            try:
                await conn.request(method, chunk)
            except SubscriptionError as e:
                raise SubscriptionError(e.code, e.msg, e.request_id, chunk) from e

    # ------------------------------------------------------------------ connections
    def _route_url(self, route: _Route, streams: list[str]) -> tuple[str, list[str]]:
        """The URL for a connection of ``route`` carrying ``streams``, and the streams that
        did not fit in it (``subscribe="live"``: all of them), to subscribe once connected."""
        q = "timeUnit=MICROSECOND" if self.time_unit == "us" else ""
        base = (route.url or self.url) + route.prefix + "/stream"
        if self.subscribe_mode != "url" or not streams:
            return base + ("?" + q if q else ""), list(streams)
        n, size = 0, len(base) + len("?streams=") + len(q) + 1
        while n < len(streams) and size + len(streams[n]) + 1 <= _MAX_URL:
            size += len(streams[n]) + 1
            n += 1
        if n == 0:
            return base + ("?" + q if q else ""), list(streams)
        url = base + "?streams=" + "/".join(streams[:n]) + ("&" + q if q else "")
        return url, list(streams[n:])

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

        url, later = self._route_url(route, list(route.streams))
        host = self.endpoint.host()
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
                    # a Logger, not a name: picows would prefix a name with "picows."
                    logger_name=logging.getLogger(f"fastfeed.picows.{route.name}"),
                ),
                self.connect_timeout,
            )
        except _ssl.SSLCertVerificationError as e:
            raise TLSVerificationError(
                f"certificate of {host} did not verify: {e.verify_message or e}; give the "
                "server's CA: Endpoint(ssl=fastfeed.default_ssl_context(cafile=...)), "
                "sim.endpoint() for the simulator, or SSL_CERT_FILE"
            ) from e
        except _ssl.SSLError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e):
                raise TLSVerificationError(f"certificate of {host} did not verify: {e}") from e
            hint = "; does this port speak TLS?" if e.reason == "WRONG_VERSION_NUMBER" else ""
            raise ConnectError(f"TLS handshake with {host} failed: {e}{hint}") from e
        except WSInvalidStatusError as e:
            raise _handshake_error(e, url) from e
        except WSError as e:
            raise HandshakeError(None, str(e), url=url) from e
        except asyncio.TimeoutError as e:
            raise ConnectError(
                f"no connection to {host} within connect_timeout={self.connect_timeout}s"
            ) from e
        except OSError as e:
            # errno's text ("Connection refused"), not asyncio's "Connect call failed (...)"
            why = os.strerror(e.errno) if isinstance(e.errno, int) and e.errno > 0 else None
            raise ConnectError(f"cannot connect to {host}: {why or e.strerror or e}") from e
        if lis is None:
            tr.disconnect(False)
            raise HandshakeError(None, "connection closed during the handshake", url=url)
        # the factory above makes every listener of this connection a FeedListener
        conn.listener, conn.transport = cast(FeedListener, lis), tr
        self._conns.append(conn)
        try:
            if later:
                await self._send_subs(conn, "SUBSCRIBE", later)
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
            if conn.probe is not None:
                conn.probe.cancel()
            if conn.listener is not None:
                conn.listener.on_disconnected = None

    def _fail(self, route: _Route, err: BaseException) -> None:
        route.last_error = err
        self.failures[type(err).__name__] += 1
        self.errors.append((time.time(), route.name, err))
        self._state("connect_failed", route=route.name, error=str(err))
        self.sink.wake()  # lets start() notice

    async def _route_loop(self, route: _Route) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while not self._closing:
            err: BaseException | None = None
            try:
                conn = await self._open(route)
            except SubscriptionError as e:
                if e.code is not None:  # the exchange rejected the streams: retrying won't help
                    log.error("route %s: %s", route.name, e)
                    if not route.probation:
                        self._fatal = e
                    self._fail(route, e)
                    return
                err = e
            except FeedError as e:
                err = e
            except Exception as e:  # a bug: fail loudly rather than leave a dead route
                log.exception("route %s: unexpected error", route.name)
                self._fatal = e
                self._fail(route, e)
                return
            if err is not None and (route.probation or not self._up) and not retry_can_fix(err):
                log.error("route %s: %s (not retried: a retry cannot fix this)", route.name, err)
                if not route.probation:
                    self._fatal = err
                self._fail(route, err)
                return
            if err is not None:
                delay = backoff.next()
                if isinstance(err, HandshakeError) and err.retry_after:
                    delay = max(delay, err.retry_after)
                log.warning("route %s: %s; retry in %.2fs", route.name, err, delay)
                self._fail(route, err)
                await asyncio.sleep(delay)
                continue
            route.conn = conn
            route.probation = False
            route.ready.set()
            self.sink.wake()
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
            assert new.listener is not None, "_open() returns a connected _Conn"
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

    def _slot(self, stream: str) -> tuple[int, int] | None:
        """(symbol id, slot) of a stream the rings carry per symbol, else None (cached: the
        watchdog asks for every stream of every connection each tick)."""
        try:
            return self._slot_cache[stream]
        except KeyError:
            pass
        ss = stream_slot(stream)
        out = None if ss is None else (self.decoder.symbols.id(ss[0]), ss[1])
        if len(self._slot_cache) > 4 * len(self.streams) + 1024:
            self._slot_cache.clear()  # bounded: unsubscribed streams leave
        self._slot_cache[stream] = out
        return out

    def _slots(self, route: _Route) -> list[tuple[int, int]]:
        return [ss for ss in map(self._slot, route.streams) if ss is not None]

    def _watched(self):
        """(route, connection) for each route's live connection not being rotated or closed."""
        for r in self._routes:
            c = r.conn
            if c is not None and not r.rotating and c.listener is not None and not c.trigger.done():
                yield r, c

    async def _watchdog(self) -> None:
        tick = 0.25 if self.stream_timeout is None else max(0.01, min(1.0, self.stream_timeout / 4))
        while True:
            await asyncio.sleep(tick)
            now_ns = time.time_ns()
            for r, c in self._watched():
                self._measure(r, c, now_ns)
                if time.monotonic() - c.opened > self.max_lifetime:
                    c.fire("lifetime")
                    continue
                if self.stream_timeout is None:
                    continue
                limit_ns = self.stream_timeout * 1e9
                if len(r.legs) > 1 and self._leg_silent(r, c, now_ns, limit_ns):
                    self.sink.mark(EventReason.WATCHDOG, c.id)
                    c.fire(f"watchdog: leg silent for {self.stream_timeout}s")
                    continue
                for s in r.streams:
                    ss = self._slot(s)
                    if ss is None:
                        continue
                    sym, slot = ss
                    base = max(self.sink.last_recv_ns(sym, slot), c.listener.connected_ns)
                    if now_ns - base > limit_ns:
                        self.sink.mark(EventReason.WATCHDOG, c.id, sym, slot)
                        c.fire(f"watchdog: no data on {s} for {self.stream_timeout}s")
                        break

    _LEG_SILENT_MESSAGES = 5  # messages the other legs got while this one got none

    def _leg_silent(self, r: _Route, c: _Conn, now_ns: int, limit_ns: float) -> bool:
        """A leg that received nothing for ``stream_timeout`` while its sibling legs received
        several messages.  The filter's receive times are the shard's (the first copy's), so
        the per-stream check never sees a leg that went quiet beside a working one; and a
        quiet stream is not a silent leg (its sibling got nothing either)."""
        lis = c.listener
        assert lis is not None
        others = sum(
            o.conn.listener.messages
            for o in r.legs
            if o is not r and o.conn is not None and o.conn.listener is not None
        )
        mine, base = r._silence
        if lis.messages != mine or others < base:  # progress, or a sibling reconnected
            r._silence = (lis.messages, others)
            return False
        quiet = now_ns - max(lis.last_msg_ns, lis.connected_ns)
        return quiet > limit_ns and others - base >= self._LEG_SILENT_MESSAGES

    def _measure(self, r: _Route, c: _Conn, now_ns: int) -> None:
        """Update ``r.rate`` (messages per second, averaged over about 4 s) at most once a
        second."""
        assert c.listener is not None
        cid, n0, t0 = r._rate_mark
        n, t = c.listener.messages, now_ns / 1e9
        if cid != c.id:
            r._rate_mark = (c.id, n, t)
        elif t - t0 >= 1.0:
            rate = (n - n0) / (t - t0)
            r.rate = rate if r.rate == 0.0 else r.rate + (rate - r.rate) / 4
            r._rate_mark = (cid, n, t)

    # A dead connection is noticed within about a second whatever the transport reports: the
    # kernel socket's state is checked every tick, and a connection silent for much longer
    # than it usually is gets a ping with a short deadline
    # (docs/decisions/0212-feed-dead-connection.md).
    _LIVENESS_TICK = 0.1  # seconds between checks
    _PROBE_AFTER_READS = 4  # silence of this many usual gaps between reads ...
    _PROBE_MIN = 0.2  # ... and at least this long (seconds) sends a probe ping
    _PROBE_TIMEOUT = 0.5  # the probe's pong deadline (capped at pong_timeout)

    async def _liveness(self) -> None:
        tick = self._LIVENESS_TICK
        while True:
            await asyncio.sleep(tick)
            now_ns = time.time_ns()
            for _, c in self._watched():
                why = c.socket_dead()
                # The transport normally reports a dead socket within the same turn: give it one
                # tick; and a close in progress (a close handshake) a second.
                c.bad_ticks = c.bad_ticks + 1 if why else 0
                if c.bad_ticks >= (10 if why == _CLOSING else 2):
                    c.fire(f"connection lost: {why}, and the transport did not report it")
                    continue
                if c.probe is None and now_ns - self._last_heard(c) > self._probe_after(c) * 1e9:
                    c.probe = asyncio.create_task(self._probe(c), name=f"fastfeed-probe-{c.id}")

    def _last_heard(self, c: _Conn) -> int:
        lis = c.listener
        assert lis is not None  # _watched() yields connections with a listener
        return max(lis.last_msg_ns, lis.last_ctrl_ns, lis.connected_ns, c.probe_ok_ns)

    def _probe_after(self, c: _Conn) -> float:
        lis = c.listener
        assert lis is not None
        if lis.last_msg_ns > c.probe_ok_ns:
            c.quiet_probes = 0  # data since the last probe
        usual = self._PROBE_AFTER_READS * lis.read_gap_ns / 1e9
        # a stream that stays quiet is probed ever less often (pings count against the
        # exchange's message limit); never less often than the keepalive would ping anyway
        return min(max(usual, self._PROBE_MIN) * 2**c.quiet_probes, self.ping_interval)

    async def _heard_since(self, c: _Conn, t0: int, timeout: float) -> bool:
        """Whether ``c`` hears anything (a pong, any frame) at or after ``t0`` within
        ``timeout`` seconds.  Woken by the listener at the end of each read
        (``FeedListener.heard``), not by polling: an idle connection costs no wake-ups."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        lis = c.listener
        while lis is not None and self._last_heard(c) < t0:
            left = deadline - loop.time()
            if left <= 0:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            lis.heard = fut
            try:
                await asyncio.wait_for(fut, left)
            except asyncio.TimeoutError:
                return c.listener is not None and self._last_heard(c) >= t0
            finally:
                if lis.heard is fut:
                    lis.heard = None
            lis = c.listener
        return lis is not None

    async def _probe(self, c: _Conn) -> None:
        timeout = min(self._PROBE_TIMEOUT, self.pong_timeout)
        t0 = time.time_ns()
        silent = (t0 - self._last_heard(c)) / 1e9
        self.probes += 1
        log.debug("conn %d: silent for %.2fs, probing", c.id, silent)
        try:
            await c._pace()
            t0 = time.time_ns()
            assert c.listener is not None
            c.listener.send_probe()
            if await self._heard_since(c, t0, timeout):  # its pong, or any frame
                c.probe_ok_ns = time.time_ns()
                c.quiet_probes += 1
                return
            if c.trigger.done():
                return
            sock = c._socket()
            info = _tcp_info(sock) if sock is not None else None
            if info is not None and info[1] == 0:
                # The peer's kernel acknowledged the ping: the host is there, its server is
                # slow.  Not dead; the keepalive's pong timeout judges a server that stays mute.
                c.probe_ok_ns = time.time_ns()
                c.quiet_probes += 1
                log.info("conn %d: silent for %.2fs, ping acknowledged, no pong yet", c.id, silent)
                return
            log.warning(
                "conn %d: no data for %.2fs and no pong within %.2fs: dead connection",
                c.id,
                silent,
                timeout,
            )
            c.fire(f"connection lost: no data for {silent:.2f}s, no pong within {timeout}s")
        except Exception:
            pass  # the connection went away meanwhile: _on_disconnected names it
        finally:
            c.probe = None

    def _state(self, what: str, **info: Any) -> None:
        if self.on_state is not None:
            try:
                self.on_state(what, info)
            except Exception:
                log.exception("on_state callback failed")

    # ------------------------------------------------------------------ stats
    def latency_percentiles(self, ps: Sequence[float] = (50, 99, 99.9)) -> dict[float, int | None]:
        """Receive latency (recv time - event time) percentiles in microseconds, from the
        histogram (bucket lower bounds; <= 19 % relative error)."""
        hist, _neg = self.sink.latency_histogram()
        bounds = latency_bucket_bounds()
        total = sum(hist)
        out: dict[float, int | None] = {}
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

    def _conn_stats(self, c: _Conn) -> dict[str, Any]:
        """One connection's counters, with its place (route, shard, leg) and, for the legs
        of a redundant feed, how often its copy of a message won: ``wins`` (data messages
        the filter took from this connection), ``duplicates`` (copies that arrived after
        another leg's) and ``behind_ms`` (how much later, on average, over the ``late``
        duplicates that copied the message that won)."""
        assert c.listener is not None
        st = c.listener.stats()
        counts = c.stage.stats()["counts"]
        data = sum(counts[k] for k in ("trade", "depth", "ticker", "partial"))
        r = c.route
        return dict(
            st,
            route=r.name,
            shard=r.shard,
            leg=r.leg,
            streams=len(r.streams),
            rate=round(r.rate, 1),
            wins=max(0, data - st["duplicates"]),
            # for copies of a message another leg delivered first: how late, on average
            behind_ms=st["late_ns"] / st["late"] / 1e6 if st["late"] else None,
        )

    def stats(self) -> dict[str, Any]:
        """Counters: messages and bytes per kind, rejects by reason, duplicates/gaps filtered,
        reconnects by reason, age of the last row per stream, latency, time in the
        listener+decoder, ring overwrites, RSS; per connection (``connections``: route,
        shard, leg, streams, measured rate, and for redundant legs ``wins`` and
        ``behind_ms``) and per shard (``shards``: route, streams, its legs' connection ids)."""
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
        _hist, neg = self.sink.latency_histogram()
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
            "probes": self.probes,
            "connect_failures": dict(self.failures),
            "events": self.sink.events.written,
            "age_s": ages,
            "latency_us": self.latency_percentiles(),
            "latency_negative": neg,
            "busy_ns": sc["busy_ns"],
            "reads": sc["batches"],
            "connections": [self._conn_stats(c) for c in self._conns if c.listener is not None],
            "shards": [
                {
                    "route": r.name,
                    "group": r.group,
                    "streams": len(r.streams),
                    "legs": [leg.conn.id if leg.conn else None for leg in r.legs],
                }
                for r in self._shards()
            ],
            "rss_bytes": _rss_bytes(),
            "uptime_s": time.monotonic() - self._started if self._started else 0.0,
        }


__all__ = ["EVENT_DTYPE", "BinanceFeed", "EventReason"]
