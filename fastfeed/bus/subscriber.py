"""Rebuilds a publisher's rings on another machine from NATS JetStream."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from fastfeed._aio import Backoff, Service, wait_event
from fastfeed.bus import wire
from fastfeed.bus._append import append_rows
from fastfeed.bus.publisher import RateLog, check_url
from fastfeed.core._ring import Ring

log = logging.getLogger("fastfeed.bus")

_CAPACITIES = {"trades": 65536, "depth": 131072, "tickers": 65536, "partial": 16384, "events": 4096}


class Subscriber(Service):
    """Rings rebuilt from a :class:`~fastfeed.bus.Publisher`'s messages.

    ``async with Subscriber("nats://host:4222", ["fastfeed.spot.trades.*"]) as sub:``, then
    ``sub.trades``, ``sub.depth``, ``sub.tickers``, ``sub.partial``, ``sub.events``: real
    :class:`~fastfeed.Ring` objects of the feed's dtypes (``read``, ``reader``, ``tail``,
    ``written``), holding the rows of the subjects taken, in the stream's order.  Rows keep the
    publisher's symbol ids; ``sub.symbol(i)`` names them.  ``async for _ in sub`` (or
    ``await sub.wait()``) wakes after new rows.

    ``subjects``: one or more subjects or wildcards (``fastfeed.spot.>``,
    ``fastfeed.spot.depth.BTCUSDT``), taken by one ordered JetStream consumer, so rows of
    different subjects keep the order the stream stored them in.  ``start``: ``"new"`` (only
    what is published from now on), ``"history"`` (everything the stream still holds), or a
    stream sequence number to start from.  ``start()`` gives up after ``start_timeout``
    seconds without a server; once connected, it reconnects on its own for ever.

    Gaps: each subject's messages carry the sequence of their first row; rows skipped on a
    subject (the publisher dropped them, or the stream lost them) are counted in ``lost`` (and
    by ring in ``stats()["lost"]``) and logged, never silent.  Rows before the first message a
    subscriber receives on a subject are not counted: they came before its start.
    """

    def __init__(
        self,
        url: str,
        subjects: str | list[str] | tuple[str, ...],
        *,
        start: str | int = "new",
        stream: str | None = None,
        trades: int = _CAPACITIES["trades"],
        depth: int = _CAPACITIES["depth"],
        tickers: int = _CAPACITIES["tickers"],
        partial: int = _CAPACITIES["partial"],
        events: int = _CAPACITIES["events"],
        pending_bytes: int = 64 << 20,
        start_timeout: float | None = 10.0,
    ):
        self.servers = check_url(url)
        self.url = url
        if isinstance(subjects, str):
            subjects = [subjects]
        self.subjects = list(subjects)
        if not self.subjects or not all(isinstance(s, str) and s for s in self.subjects):
            raise ValueError(f"subjects must be non-empty strings, got {subjects!r}")
        if not (start in ("new", "history") or (isinstance(start, int) and start >= 1)):
            raise ValueError(
                f"start must be 'new', 'history' or a stream sequence >= 1, got {start!r}"
            )
        self.start_at = start
        self.stream = stream
        self.pending_bytes = pending_bytes
        self.start_timeout = start_timeout
        caps = dict(trades=trades, depth=depth, tickers=tickers, partial=partial, events=events)
        self.rings: dict[str, Ring] = {n: Ring(wire.DTYPES[n], caps[n]) for n in wire.RINGS}
        self.symbols: dict[int, str] = {0: ""}
        self.counters: collections.Counter[str] = collections.Counter()
        self.lost_by_ring: collections.Counter[str] = collections.Counter()
        self.source_lost: dict[str, int] = {}
        self.last_header: wire.Header | None = None
        self._expect: dict[str, tuple[int, int]] = {}  # subject -> (run, next first)
        self._gaps: dict[str, collections.deque[tuple[int, int]]] = {}  # the last gaps
        self._hooks: list[Callable[[], Any]] = []
        self._closing = False
        self._nc: Any = None
        self._sub: Any = None
        self._event: asyncio.Event | None = None
        self._gap_log = RateLog(log, logging.WARNING)
        self._late_log = RateLog(log, logging.WARNING)
        self._bad_log = RateLog(log, logging.ERROR)
        self._client_log = RateLog(log, logging.WARNING)

    @property
    def trades(self) -> Ring:
        return self.rings["trades"]

    @property
    def depth(self) -> Ring:
        return self.rings["depth"]

    @property
    def tickers(self) -> Ring:
        return self.rings["tickers"]

    @property
    def partial(self) -> Ring:
        return self.rings["partial"]

    @property
    def events(self) -> Ring:
        return self.rings["events"]

    @property
    def lost(self) -> int:
        """Rows the publisher published (or dropped) on the subjects taken that never arrived."""
        return sum(self.lost_by_ring.values())

    def symbol(self, i: int) -> str:
        """The publisher's name of symbol id ``i`` (learnt from its messages)."""
        return self.symbols[int(i)]

    def add_hook(self, hook: Callable[[], Any]) -> None:
        """Call ``hook()`` after each message's rows are in the rings (keep it short)."""
        self._hooks.append(hook)

    def remove_hook(self, hook: Callable[[], Any]) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connects and starts the consumer.  ``ConnectionError`` when no server answers within
        ``start_timeout`` seconds; nats-py's ``NotFoundError`` when no stream holds the
        subjects."""
        try:
            import nats
            from nats.js.api import ConsumerConfig, DeliverPolicy
            from nats.js.errors import ServerError, ServiceUnavailableError
        except ImportError:  # pragma: no cover - the bus extra
            raise ImportError("fastfeed.bus needs nats-py: pip install 'fastfeed[bus]'") from None
        self._event = asyncio.Event()

        async def disconnected() -> None:
            if self._closing:
                return
            self.counters["disconnects"] += 1
            log.warning("bus subscriber: disconnected from NATS (%s)", self.url)

        async def reconnected() -> None:
            self.counters["reconnects"] += 1
            log.warning("bus subscriber: reconnected to NATS")

        async def error(e: Exception) -> None:
            if self._closing:
                return
            self.counters["client_errors"] += 1
            self._client_log(1, "bus subscriber: NATS client error: %s", e)

        # nats-py retries a first connect for as long as reconnects are allowed (for ever):
        # bounded here, so a wrong URL or a server that is down is an error, not a hang.
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self.servers,
                    name="fastfeed-subscriber",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    connect_timeout=2,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                ),
                self.start_timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectionError(
                f"no NATS server answered at {self.url} within {self.start_timeout} s"
            ) from None
        js = self._nc.jetstream()
        # A cluster that just lost a node may time out a consumer's creation while it elects
        # new leaders: retried until start_timeout.  A missing stream is not retried.
        deadline = None if self.start_timeout is None else time.monotonic() + self.start_timeout
        backoff = Backoff(0.1, 2.0)
        while True:
            try:
                self._sub = await js.subscribe(
                    self.subjects[0],
                    cb=self._on_msg,
                    stream=self.stream,
                    config=self._consumer_config(ConsumerConfig, DeliverPolicy),
                    ordered_consumer=True,
                    idle_heartbeat=1.0,
                    pending_bytes_limit=self.pending_bytes,
                )
                return
            except (nats.errors.TimeoutError, ServiceUnavailableError, ServerError) as e:
                delay = backoff.next()
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise
                log.warning("bus subscriber: consumer not created (%r); retry in %.2f s", e, delay)
                await asyncio.sleep(delay)

    def _consumer_config(self, config_cls: Any, policies: Any) -> Any:
        cfg = config_cls()
        if len(self.subjects) > 1:
            cfg.filter_subjects = list(self.subjects)
        if self.start_at == "new":
            cfg.deliver_policy = policies.NEW
        elif self.start_at == "history":
            cfg.deliver_policy = policies.ALL
        else:
            cfg.deliver_policy = policies.BY_START_SEQUENCE
            cfg.opt_start_seq = int(self.start_at)
        return cfg

    async def close(self) -> None:
        self._closing = True
        if self._nc is not None:
            try:
                await asyncio.wait_for(self._nc.close(), 2.0)
            except Exception:
                pass
            self._nc = None

    async def wait(self) -> None:
        """Returns after new rows arrived (at once if some arrived since the last call)."""
        assert self._event is not None, "start() first"
        await self._event.wait()
        self._event.clear()

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> None:
        await self.wait()

    async def wait_rows(self, ring: str, n: int, timeout: float) -> bool:
        """Waits until ring ``ring`` has ``n`` rows written in all; True if it did in time."""
        end = time.monotonic() + timeout
        while self.rings[ring].written < n:
            left = end - time.monotonic()
            if left <= 0:
                return False
            ev = asyncio.Event()
            self.add_hook(ev.set)
            try:
                await wait_event(ev, min(left, 0.1))
            finally:
                self.remove_hook(ev.set)
        return True

    # ------------------------------------------------------------------ messages

    async def _on_msg(self, msg: Any) -> None:
        self.on_message(msg.subject, msg.data)

    def on_message(self, subject: str, data: bytes) -> None:
        """One bus message into the rings (what the consumer calls; public for tests)."""
        try:
            h = wire.unpack(data)
        except wire.WireError as e:
            self.counters["bad_messages"] += 1
            self._bad_log(1, "bus subscriber: %s on %s", e, subject)
            return
        self.counters["messages"] += 1
        name = h.ring_name
        skip = 0
        exp = self._expect.get(subject)
        if exp is not None:
            run, nxt = exp
            if run != h.run:
                self.counters["publisher_restarts"] += 1
                log.info("bus subscriber: a new publisher run on %s", subject)
            elif h.first > nxt:
                gap = h.first - nxt
                self.lost_by_ring[name] += gap
                gaps = self._gaps.setdefault(subject, collections.deque(maxlen=16))
                gaps.append((nxt, h.first))
                self._gap_log(
                    1,
                    "bus subscriber: %d rows lost on %s (sequence %d, expected %d)",
                    gap,
                    subject,
                    h.first,
                    nxt,
                )
            elif h.first + h.row_count <= nxt:
                # Behind the sequence: a copy of rows held, or rows already counted as lost
                # arriving late (the stream stored them out of order); neither is appended.
                g = self._gaps.get(subject, ())
                if any(a <= h.first and h.first + h.row_count <= b for a, b in g):
                    self.counters["late_rows"] += h.row_count
                    self._late_log(
                        1,
                        "bus subscriber: %d rows on %s came after later rows (sequence %d); "
                        "counted as lost",
                        h.row_count,
                        subject,
                        h.first,
                    )
                else:
                    self.counters["duplicates"] += 1
                return
            elif h.first < nxt:
                skip = nxt - h.first
        self._expect[subject] = (h.run, h.first + h.row_count)
        if h.flags & wire.FLAG_BY_SYMBOL and h.symbol_id not in self.symbols:
            self.symbols[h.symbol_id] = h.symbol
        if h.source_lost > self.source_lost.get(name, 0):
            self.source_lost[name] = h.source_lost
        append_rows(self.rings[name], memoryview(data)[h.offset + skip * h.row_size :])
        self.counters["rows"] += h.row_count - skip
        self.last_header = h
        if self._event is not None:
            self._event.set()
        for hook in self._hooks:
            try:
                hook()
            except Exception:
                log.exception("bus subscriber hook failed")

    def stats(self) -> dict[str, Any]:
        """``messages``, ``rows``, ``lost`` (total) and ``lost_by_ring``, ``duplicates``,
        ``late_rows`` (lost rows that came after later ones: still counted in ``lost``),
        ``bad_messages``, ``publisher_restarts``, ``disconnects``, ``reconnects``, and the
        publisher's own ``source_lost`` by ring; ``written`` by ring."""
        out: dict[str, Any] = {
            k: self.counters[k]
            for k in (
                "messages",
                "rows",
                "duplicates",
                "late_rows",
                "bad_messages",
                "publisher_restarts",
                "disconnects",
                "reconnects",
                "client_errors",
            )
        }
        out["lost"] = self.lost
        out["lost_by_ring"] = dict(self.lost_by_ring)
        out["source_lost"] = dict(self.source_lost)
        out["written"] = {n: r.written for n, r in self.rings.items()}
        return out
