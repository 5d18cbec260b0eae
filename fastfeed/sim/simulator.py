"""The simulator itself: :class:`ExchangeSimulator` wires market, servers, TLS and faults."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from fastfeed._aio import cancel_and_wait
from fastfeed.feed.endpoint import Endpoint

from .blast import BlastResult, FeedTemplates, PacedResult, blast_to, build_blast, paced_to
from .config import SimConfig
from .faults import Faults
from .market import Levels, Market
from .rest import RestServer
from .tls import SimTLS
from .wsserver import SimConnection, WSServer

log = logging.getLogger("fastfeed.sim")


class ExchangeSimulator:
    """A simulated exchange on 127.0.0.1: ``async with ExchangeSimulator(...) as sim``.

    Takes a :class:`SimConfig` and/or its fields as keyword arguments
    (``ExchangeSimulator(market="usdm", seed=3, ping_interval=0.2)``).

    Attributes after start: ``ws_url`` (``wss://127.0.0.1:port``), ``rest_url``
    (``https://127.0.0.1:port``), ``ca_file`` (PEM of the CA that signed both servers),
    ``market`` (:class:`~fastfeed.sim.market.Market`), ``faults`` (:class:`Faults`), ``sent``
    (Counter of messages by kind over all connections), ``connections`` (open
    :class:`SimConnection` objects), ``all_connections`` (every connection ever accepted),
    ``snapshots`` (``(symbol, lastUpdateId)`` of every REST snapshot served).
    """

    def __init__(self, config: SimConfig | None = None, **overrides: Any):
        cfg = config or SimConfig()
        if overrides:
            if "symbols" in overrides and isinstance(overrides["symbols"], str):
                overrides["symbols"] = tuple(overrides["symbols"].split(","))
            cfg = replace(cfg, **overrides)
        self.config = cfg.resolved()
        self.sent: Counter = Counter()
        self.snapshots: list[tuple[str, int]] = []
        self.market = Market(
            self.config.symbols,
            self.config.market,
            seed=self.config.seed,
            rate=self.config.rate,
            levels=self.config.levels,
            history=self.config.history,
            interval_scale=self.config.interval_scale,
            start_us=time.time_ns() // 1000,
            activity=self.config.activity,
        )
        self._tls = SimTLS()
        self._ws = WSServer(self)
        self._rest = RestServer(self)
        self.faults = Faults(self._ws, self._rest, self._tls)
        self._tasks: list[asyncio.Task] = []
        self._handles: list[asyncio.TimerHandle] = []
        self._templates: FeedTemplates | None = None
        self.ws_url = self.rest_url = self.ca_file = ""
        self._running = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> ExchangeSimulator:
        """Make certificates, bind both servers and (``clock="wall"``) start the market."""
        self.ca_file = self._tls.ca_file
        await self._ws.start(self._tls.server_context)
        await self._rest.start(self._tls.server_context)
        host = self.config.host
        h = f"[{host}]" if ":" in host else host
        self.ws_url = f"wss://{h}:{self._ws.port}"
        self.rest_url = f"https://{h}:{self._rest.port}"
        self.market.now_us = self.market.start_us = time.time_ns() // 1000
        self.market._reset_clock()
        self._running = True
        if self.config.clock == "wall":
            self._tasks.append(asyncio.create_task(self._drive()))
        loop = asyncio.get_running_loop()
        for at, name, value in self.config.faults:
            self._handles.append(loop.call_later(at, self._timed_fault, name, value))
        log.info("simulator up: ws %s rest %s ca %s", self.ws_url, self.rest_url, self.ca_file)
        return self

    async def stop(self) -> None:
        """Close every connection and both servers; remove the certificate directory."""
        self._running = False
        for h in self._handles:
            h.cancel()
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self._ws.stop()
        await self._rest.stop()
        if self._tls is not None:
            self._tls.cleanup()

    async def __aenter__(self) -> ExchangeSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _timed_fault(self, name: str, value: str | None) -> None:
        log.info("fault %s=%s", name, value)
        self.faults.apply(name, value)

    async def _drive(self) -> None:
        tick = self.config.tick
        while self._running:
            await asyncio.sleep(tick)
            self._pump(time.time_ns() // 1000)

    def _pump(self, t_us: int) -> int:
        events = self.market.advance_to(t_us, self._ws.wanted)
        self._ws.broadcast(events)
        return len(events)

    # ------------------------------------------------------------------ helpers
    def advance(self, seconds: float) -> int:
        """Run the market ``seconds`` of simulated time and send what it produced (the
        ``clock="manual"`` way to drive it; also works with the wall clock).  Returns the
        number of events produced."""
        return self._pump(self.market.now_us + int(seconds * 1e6))

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client ``SSLContext`` that trusts the simulator's CA."""
        return self._tls.client_context()

    def endpoint(self) -> Endpoint:
        """A :class:`fastfeed.Endpoint` for this simulator (after start): its market, WebSocket
        and REST URLs, and a verifying TLS context that trusts its CA.  Give it to the feed
        (``BinanceFeed(streams, endpoint=sim.endpoint())``); the order book on that feed
        takes it from there."""
        if not self.ws_url:
            raise RuntimeError("the simulator is not started: use it inside `async with`")
        return Endpoint(self.config.market, self.ws_url, self.rest_url, self.client_ssl_context())

    @property
    def connections(self) -> list[SimConnection]:
        return list(self._ws.connections.values())

    @property
    def all_connections(self) -> list[SimConnection]:
        return list(self._ws.all_connections)

    def forget_closed(self) -> int:
        """Drops the records of closed connections (a long run or a memory test would
        otherwise keep every one); returns how many were dropped."""
        live = [c for c in self._ws.all_connections if not c.closed.done()]
        dropped = len(self._ws.all_connections) - len(live)
        self._ws.all_connections[:] = live
        return dropped

    def connection(self, conn_id: int) -> SimConnection:
        return next(c for c in self._ws.all_connections if c.id == conn_id)

    async def wait_connections(self, n: int = 1, timeout: float = 5.0) -> list[SimConnection]:
        """Wait until at least ``n`` connections are open; return them."""
        deadline = time.monotonic() + timeout
        while len(self._ws.connections) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._ws.connections)} of {n} connections")
            await asyncio.sleep(0.002)
        return self.connections

    def book_at(
        self, symbol: str, update_id: int, limit: int | None = None
    ) -> tuple[Levels, Levels]:
        """Ground truth: ``(bids, asks)`` after every change with id <= ``update_id``, as lists
        of ``(price_str, qty_str)`` best first (strings formatted as the streams print them).
        Raises ``ValueError`` if ``update_id`` is older than the kept ``history``."""
        return self.market.book(symbol).book_at(update_id, limit)

    def snapshot(self, symbol: str, limit: int | None = None) -> tuple[int, Levels, Levels]:
        """``(lastUpdateId, bids, asks)`` of the current book."""
        return self.market.book(symbol).snapshot(limit)

    def limits(self) -> dict[str, Any]:
        """The exchange rules this simulator enforces, the most any client came to each, and
        every time one was broken: ``{"limits": {...}, "peaks": {...}, "violations": [(time,
        rule, conn id, value, limit), ...]}``.  Rules: ``streams`` per connection,
        ``control`` frames per ``control_window``, connection ``attempts`` per
        ``attempt_window``, ``url`` length; and REST ``weight`` (429 and 418 answers are
        violations too: ``rest_log``).  A test that finds no violation and peaks within the
        limits has proof that the client kept them."""
        cfg, ws = self.config, self._ws
        conns = ws.all_connections
        rest = [
            (t, f"rest {status}", 0, 0, cfg.weight_limit)
            for t, _p, _s, status, _ra in self._rest.log
            if status in (429, 418)
        ]
        return {
            "limits": {
                "streams": cfg.max_streams,
                "control": cfg.control_limit,
                "attempts": cfg.attempt_limit,
                "url": cfg.max_url,
                "weight": cfg.weight_limit,
            },
            "peaks": {
                "streams": max((c.peak_streams for c in conns), default=0),
                "control": max((c.peak_control for c in conns), default=0),
                "attempts": ws.peak_attempts,
                "url": ws.longest_url,
                "weight": self._rest.peak_weight,
            },
            "violations": sorted(ws.violations + rest),
        }

    @property
    def rest_log(self) -> list:
        """``(monotonic arrival time, path, symbol, status, Retry-After)`` of recent REST depth
        requests (Retry-After in seconds, None when absent)."""
        return list(self._rest.log)

    def last_update_id(self, symbol: str) -> int:
        return self.market.book(symbol).last_id

    # ------------------------------------------------------------------ benchmarks
    def templates(self) -> FeedTemplates:
        if self._templates is None:
            sym = self.config.symbols[0]
            self._templates = FeedTemplates(self.config.market, sym, self.config.seed)
        return self._templates

    def prepare_blast(
        self, n: int, us: bool = False, combined: bool = True
    ) -> tuple[list[bytes], int]:
        """Pre-encode ``n`` frames of a combined aggTrade+depthUpdate feed ->
        ``(chunks, bytes)``; pass the result to :meth:`blast` to keep encoding off the clock."""
        return build_blast(self.templates(), n, us=us, combined=combined)

    async def blast(
        self,
        n: int,
        conn: SimConnection | int | None = None,
        prepared: tuple[list[bytes], int] | None = None,
    ) -> BlastResult:
        """Write ``n`` pre-encoded messages (alternating ``<sym>@aggTrade`` and
        ``<sym>@depth@100ms``, envelope and time unit per the connection) to ``conn`` (default:
        the only/first open connection) as fast as the socket takes them."""
        c = self._one(conn)
        chunks, _ = prepared or self.prepare_blast(n, us=c.us, combined=c.combined)
        return await blast_to(c, chunks, n)

    async def paced(
        self, rate: float, n: int, conn: SimConnection | int | None = None, fine: bool = False
    ) -> PacedResult:
        """Send ``n`` messages at ``rate``/s to ``conn``, each stamped with its send time in
        ``E`` (connection's time unit) and ``"sendNs"`` (ns, last key).  ``fine``: each at
        its own scheduled time, one per loop turn (``fastfeed.sim.blast.paced_to``)."""
        return await paced_to(self._one(conn), self.templates(), rate, n, fine=fine)

    def _one(self, conn: SimConnection | int | None) -> SimConnection:
        if isinstance(conn, SimConnection):
            return conn
        if isinstance(conn, int):
            return self._ws.connections[conn]
        if not self._ws.connections:
            raise RuntimeError("no open connection")
        return next(iter(self._ws.connections.values()))

    def _on_connection(self, conn: SimConnection) -> None:
        cfg = self.config
        if cfg.blast:
            self._tasks.append(
                asyncio.create_task(self._bench_task(self.blast(cfg.blast, conn), conn))
            )
        elif cfg.paced:
            self._tasks.append(
                asyncio.create_task(
                    self._bench_task(
                        self.paced(cfg.paced, cfg.paced_count, conn, fine=cfg.paced_fine), conn
                    )
                )
            )

    async def _bench_task(
        self, coro: Coroutine[Any, Any, BlastResult | PacedResult], conn: SimConnection
    ) -> None:
        res = await coro
        log.warning("conn %d: %s", conn.id, res)
