"""Publishes a feed's new rows to NATS JetStream, one message per ring and symbol per read.

The feed never waits for the bus: a hook copies each read's new rows into a bounded queue and
returns; a task sends them.  When the queue is full a whole batch is dropped, counted and
logged; the subscribers see the same rows as a gap in the subject's sequence.  Every message
asks JetStream for an ack (on a reply subject of our own, parsed cheaply); messages not acked
within ``ack_timeout``, or sent before a reconnect, are sent again with the same
``Nats-Msg-Id``, so the stream stores each once
(``docs/decisions/0610-bus-nats-jetstream.md``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from typing import Any

import numpy as np

from fastfeed._aio import Backoff, Service, cancel_and_wait, wait_event
from fastfeed.bus import wire

log = logging.getLogger("fastfeed.bus")

DATA_RINGS = ("trades", "depth", "tickers", "partial")
ALL_RINGS = (*DATA_RINGS, "events")
URL_SCHEMES = ("nats://", "tls://", "ws://", "wss://")


def check_url(url: str) -> list[str]:
    """``url`` (comma-separated servers allowed) as a list; ValueError naming a bad one."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"NATS url must be a non-empty string, got {url!r}")
    servers = [u.strip() for u in url.split(",") if u.strip()]
    for u in servers:
        if not u.startswith(URL_SCHEMES):
            raise ValueError(
                f"NATS url {u!r} must start with one of {', '.join(URL_SCHEMES)} "
                "(for example nats://127.0.0.1:4222)"
            )
    return servers


def coalesce_writes(nc: Any) -> None:
    """One socket write per flush of the NATS client ``nc``.  nats-py flushes its pending
    commands with ``writelines`` (three pieces a message), and uvloop writes each piece on its
    own: publishing ran 2.5x slower on uvloop than on asyncio (0.50 s against 0.19 s for
    1841 messages); joined, uvloop is as fast.  The transport object outlives reconnects."""
    tr = getattr(nc, "_transport", None)
    if tr is not None and hasattr(tr, "write") and hasattr(tr, "writelines"):
        tr.writelines = lambda parts: tr.write(b"".join(parts))


def drop_unsent_publishes(nc: Any, reply_prefix: str) -> int:
    """Removes from nats-py's buffer of commands not yet written the publishes whose reply
    subject starts with ``reply_prefix`` (ours), and returns how many.  nats-py writes that
    buffer first after a reconnect; our in-flight batches go again after it, so the stream
    would store the newer batches of the buffer before older ones lost with the connection,
    and a subscriber would count those as lost.  They are all in flight (our own record),
    and go again in order."""
    pending = getattr(nc, "_pending", None)
    if not isinstance(pending, list) or not pending:
        return 0
    mark = f" {reply_prefix}".encode()
    keep = [c for c in pending if not (c.startswith(b"HPUB ") and mark in c[: c.find(b"\r\n")])]
    dropped = len(pending) - len(keep)
    if dropped:
        pending[:] = keep
        nc._pending_data_size = sum(len(c) for c in keep)
    return dropped


class RateLog:
    """Logs at most once per ``interval`` seconds, with what happened since the last line."""

    def __init__(self, logger: logging.Logger, level: int, interval: float = 1.0):
        self.logger, self.level, self.interval = logger, level, interval
        self.last = -1e9
        self.pending = 0

    def __call__(self, n: int, fmt: str, *args: Any) -> None:
        self.pending += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.logger.log(self.level, fmt + " (%d since the last such line)", *args, self.pending)
            self.last, self.pending = now, 0


class _RingState:
    __slots__ = ("by_symbol", "crc", "cursor", "id", "lost", "name", "ring", "seqs", "subjects")

    def __init__(self, name: str, ring: Any):
        self.name, self.ring = name, ring
        self.id = wire.RINGS[name]
        self.crc = wire.DTYPE_CRCS[name]
        if ring.dtype != wire.DTYPES[name]:
            raise ValueError(f"the feed's {name} ring has dtype {ring.dtype}, not the bus's")
        self.by_symbol = name != "events"
        self.cursor = ring.written
        self.lost = 0
        self.seqs: dict[int, int] = {}  # symbol id -> rows published (or dropped) so far
        self.subjects: dict[int, tuple[str, bytes]] = {}


class Publisher(Service):
    """Publishes ``feed``'s rows to NATS JetStream at ``url``.

    ``async with Publisher(feed, "nats://127.0.0.1:4222") as pub:`` (or ``await pub.start()`` /
    ``await pub.close()``).  ``feed`` is a running :class:`~fastfeed.BinanceFeed` or a
    :class:`~fastfeed.Replay`: anything with the rings, ``decoder`` and ``add_hook``.  Rows
    committed from ``start()`` on are published; ``start()`` does not wait for the server
    (``await pub.wait_connected(timeout)`` does).

    Subjects: ``<prefix>.<market>.<ring>.<SYMBOL>`` (``trades``, ``depth``, ``tickers``,
    ``partial``) and ``<prefix>.<market>.events``.  The stream (``stream``, default
    ``<PREFIX>_<MARKET>``) captures ``<prefix>.<market>.>`` and keeps at most ``max_bytes``
    and ``max_age`` seconds of history (oldest discarded), on ``replicas`` servers, in
    ``storage`` ("file" or "memory").  It is created, or updated to these bounds.

    Backpressure: at most ``queue_batches`` messages and ``queue_bytes`` bytes wait to be sent,
    and ``max_inflight`` wait for their acks; past that, a read's batch is dropped whole
    (``stats()["dropped_batches"]`` / ``["dropped_rows"]``, logged at most once a second).
    Reconnects are the client's own (``reconnect_wait`` between attempts, for ever), counted
    and logged.
    """

    def __init__(
        self,
        feed: Any,
        url: str,
        *,
        market: str | None = None,
        prefix: str = "fastfeed",
        stream: str | None = None,
        rings: tuple[str, ...] | list[str] = ALL_RINGS,
        max_bytes: int = 1 << 30,
        max_age: float = 3600.0,
        replicas: int = 1,
        storage: str = "file",
        queue_batches: int = 8192,
        queue_bytes: int = 64 << 20,
        max_inflight: int = 1024,
        ack_timeout: float = 2.0,
        reconnect_wait: float = 0.25,
        name: str | None = None,
    ):
        self.servers = check_url(url)
        self.url = url
        self.feed = feed
        if market is None:
            market = getattr(feed, "market", None) or "spot"
        self.market = str(market)
        if not isinstance(prefix, str) or any(
            not t or wire.token(t) != t for t in prefix.split(".")
        ):
            raise ValueError(
                f"prefix {prefix!r} is not a NATS subject prefix: dot-separated tokens of "
                "letters, digits, '_' and '-' (e.g. 'fastfeed' or 'desk1.fastfeed')"
            )
        self.prefix = prefix
        self.stream = stream or f"{prefix}_{wire.token(self.market)}".upper().replace(".", "_")
        for r in rings:
            if r not in wire.RINGS:
                raise ValueError(f"unknown ring {r!r}; rings are {', '.join(ALL_RINGS)}")
        for label, v in (
            ("queue_batches", queue_batches),
            ("queue_bytes", queue_bytes),
            ("max_inflight", max_inflight),
            ("max_bytes", max_bytes),
            ("replicas", replicas),
        ):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{label} must be a positive int, got {v!r}")
        if max_age <= 0 or ack_timeout <= 0 or reconnect_wait <= 0:
            raise ValueError("max_age, ack_timeout and reconnect_wait must be > 0 seconds")
        if storage not in ("file", "memory"):
            raise ValueError(f"storage must be 'file' or 'memory', got {storage!r}")
        self.ring_names = tuple(rings)
        self.max_bytes, self.max_age = max_bytes, float(max_age)
        self.replicas, self.storage = replicas, storage
        self.queue_batches, self.queue_bytes = queue_batches, queue_bytes
        self.max_inflight, self.ack_timeout = max_inflight, float(ack_timeout)
        self.reconnect_wait = float(reconnect_wait)
        self.name = name or f"fastfeed-publisher-{os.getpid()}"
        self.run_id = int.from_bytes(os.urandom(8), "little") or 1

        self.counters: collections.Counter[str] = collections.Counter()
        # (subject, payload, rows); sent in order
        self._queue: collections.deque[tuple[str, bytes, int]] = collections.deque()
        self._queued_bytes = 0
        # message number -> [subject, payload, rows, sent at (monotonic)], oldest first
        self._inflight: collections.OrderedDict[int, list[Any]] = collections.OrderedDict()
        self._next_n = 0
        self._rings: list[_RingState] = []
        #: each ring's ``written`` when ``start()`` hooked the feed: the first row published
        self.start_positions: dict[str, int] = {}
        self._nc: Any = None
        self._inbox = ""
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None  # the sender task, idle
        self._connected: asyncio.Event | None = None
        self._resend = False
        self._stream_ok = False
        self._stopping = False
        self._started = False
        self._drop_log = RateLog(log, logging.WARNING)
        # one per kind of line: "(N since the last such line)" counts that kind alone
        self._client_log = RateLog(log, logging.WARNING)
        self._ack_log = RateLog(log, logging.ERROR)
        self._send_log = RateLog(log, logging.WARNING)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Hooks the feed (rows from now on are published) and starts the sender task."""
        if self._started:
            raise RuntimeError("Publisher already started")
        try:
            import nats  # noqa: F401
        except ImportError:  # pragma: no cover - the bus extra
            raise ImportError("fastfeed.bus needs nats-py: pip install 'fastfeed[bus]'") from None
        self._started = True
        self._connected = asyncio.Event()
        self._rings = [_RingState(n, getattr(self.feed, n)) for n in self.ring_names]
        self.start_positions = {st.name: st.cursor for st in self._rings}
        self.feed.add_hook(self._on_read)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bus publisher")

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Waits until the server is connected and the stream exists; True if so."""
        assert self._connected is not None, "start() first"
        return await wait_event(self._connected, timeout)

    async def close(self, timeout: float = 2.0) -> None:
        """Publishes what the feed committed so far, waits up to ``timeout`` seconds for the
        queue to be sent and acked, then disconnects.  What is still unsent is counted as
        dropped (and logged)."""
        if not self._started or self._stopping:
            return
        self.feed.remove_hook(self._on_read)
        self._on_read()
        self._stopping = True
        end = time.monotonic() + timeout
        while (self._queue or self._inflight) and time.monotonic() < end:
            if self._task is None or self._task.done():
                break
            await asyncio.sleep(0.01)
        left = len(self._queue) + len(self._inflight)
        if left:
            rows = sum(q[2] for q in self._queue) + sum(v[2] for v in self._inflight.values())
            self.counters["dropped_batches"] += left
            self.counters["dropped_rows"] += rows
            self.counters["dropped_rows_at_close"] += rows
            log.warning("bus publisher closed with %d batches (%d rows) unsent/unacked", left, rows)
            self._queue.clear()
            self._inflight.clear()
        if self._task is not None:
            await cancel_and_wait([self._task])
        if self._nc is not None:
            try:
                await asyncio.wait_for(self._nc.close(), 2.0)
            except Exception:  # a broken connection is closed either way
                pass

    # ------------------------------------------------------------------ the feed's side

    def _on_read(self) -> None:
        """The feed's hook: each ring's new rows become batches in the queue (never waits)."""
        now = time.time_ns()
        ev = self.feed.events.written
        for st in self._rings:
            if st.ring.written == st.cursor:
                continue
            rows, st.cursor, lost = st.ring.read(st.cursor)
            if lost:
                st.lost += lost
                self.counters["source_lost"] += lost
                log.warning(
                    "bus publisher: %d %s rows overwritten before it read them", lost, st.name
                )
            source = st.cursor - len(rows)
            if not st.by_symbol:
                self._batch(st, 0, rows, source, ev, now)
                continue
            syms = rows["symbol"]
            s0 = syms[0]
            if len(syms) == 1 or bool((syms == s0).all()):
                self._batch(st, int(s0), rows, source, ev, now)
                continue
            # A read with several symbols: one message per symbol, in the order they first
            # appear; rows keep their order within a symbol.  Selected through a void view,
            # so each row's bytes (padding included) are the ring's: a structured fancy index
            # would leave uninitialised heap bytes in the padding, and send them.
            raw = rows.view(np.dtype((np.void, rows.itemsize)))
            if len(syms) <= 256:  # a dict of row indices: fewer numpy calls on small reads
                groups: dict[int, list[int]] = {}
                for i, sym in enumerate(syms.tolist()):
                    g = groups.get(sym)
                    if g is None:
                        groups[sym] = [i]
                    else:
                        g.append(i)
                for sym, idx in groups.items():
                    self._batch(st, sym, raw[idx], source, ev, now)
            else:
                uniq, first = np.unique(syms, return_index=True)
                for u in uniq[np.argsort(first)]:
                    self._batch(st, int(u), raw[syms == u], source, ev, now)
        self._kick()

    def _kick(self) -> None:
        """Wakes the sender task if it is idle (on the next loop turn: no task or timer is
        made, where an ``asyncio.Event`` wait with a timeout costs a task and a timer)."""
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _idle(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = w = loop.create_future()
        timer = loop.call_later(timeout, self._kick)
        try:
            await w
        finally:
            timer.cancel()
            self._waiter = None

    def _batch(self, st: _RingState, sym: int, rows: Any, source: int, ev: int, now: int) -> None:
        k = len(rows)
        first = st.seqs.get(sym, 0)
        st.seqs[sym] = first + k  # dropped rows count too: subscribers see them as a gap
        subj = st.subjects.get(sym)
        if subj is None:
            if st.by_symbol:
                name = self.feed.decoder.symbol(sym)
                subj = (wire.subject(self.prefix, self.market, st.name, name), name.encode())
            else:
                subj = (wire.subject(self.prefix, self.market, st.name), b"")
            st.subjects[sym] = subj
        size = k * rows.itemsize + wire.HEADER.size + len(subj[1])
        if len(self._queue) >= self.queue_batches or self._queued_bytes + size > self.queue_bytes:
            self.counters["dropped_batches"] += 1
            self.counters["dropped_rows"] += k
            self._drop_log(
                1,
                "bus publisher queue full (%d batches, %d bytes): dropped a batch of %d %s rows "
                "(%d batches, %d rows dropped in all)",
                len(self._queue),
                self._queued_bytes,
                k,
                st.name,
                self.counters["dropped_batches"],
                self.counters["dropped_rows"],
            )
            return
        payload = wire.pack(
            st.id,
            wire.FLAG_BY_SYMBOL if st.by_symbol else 0,
            st.crc,
            st.ring.itemsize,
            self.run_id,
            first,
            k,
            sym,
            source,
            st.lost,
            ev,
            now,
            subj[1],
            rows.tobytes(),
        )
        self._queue.append((subj[0], payload, k))
        self._queued_bytes += len(payload)

    # ------------------------------------------------------------------ the sender task

    async def _connect(self) -> None:
        import nats

        async def disconnected() -> None:
            assert self._connected is not None
            self._connected.clear()
            # Before the reconnect: what is in flight goes again before anything new, or the
            # stream could store new rows before older ones (a subscriber would count those
            # as lost).
            self._resend = True
            self._stream_ok = False
            if self._inbox:
                self.counters["unsent_dropped"] += drop_unsent_publishes(self._nc, self._inbox)
            if self._stopping:
                return
            self.counters["disconnects"] += 1
            log.warning("bus publisher: disconnected from NATS (%s)", self.url)

        async def reconnected() -> None:
            self.counters["reconnects"] += 1
            self._resend = True  # what was in flight may not have reached the stream
            self._stream_ok = False
            log.warning("bus publisher: reconnected to NATS (%s)", self._nc.connected_url.netloc)
            self._kick()

        async def error(e: Exception) -> None:
            self.counters["client_errors"] += 1
            self._client_log(1, "bus publisher: NATS client error: %s", e)

        backoff = Backoff(self.reconnect_wait, max(self.reconnect_wait, 5.0))
        while True:
            try:
                self._nc = await nats.connect(
                    self.servers,
                    name=self.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self.reconnect_wait,
                    connect_timeout=2,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                    # our subjects are built from checked tokens (wire.token): not re-parsed
                    # on every publish
                    skip_subject_validation=True,
                )
                break
            except Exception as e:
                self.counters["connect_failures"] += 1
                delay = backoff.next()
                log.warning(
                    "bus publisher: cannot connect to NATS %s (%s); retry in %.2f s",
                    self.url,
                    e or type(e).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
        coalesce_writes(self._nc)
        self._inbox = self._nc.new_inbox()
        await self._nc.subscribe(self._inbox + ".*", cb=self._on_ack)
        log.info("bus publisher: connected to NATS %s", self.url)

    async def _ensure_stream(self) -> None:
        """Creates the stream, or updates it to our bounds; retried until it works."""
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig

        cfg = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.{wire.token(self.market)}.>"],
            max_bytes=self.max_bytes,
            max_age=self.max_age,
            num_replicas=self.replicas,
            storage=StorageType.FILE if self.storage == "file" else StorageType.MEMORY,
            discard=DiscardPolicy.OLD,
            duplicate_window=120.0,
        )
        js = self._nc.jetstream()
        backoff = Backoff(self.reconnect_wait, max(self.reconnect_wait, 5.0))
        while not self._stream_ok:
            try:
                try:
                    await js.add_stream(cfg)
                except Exception as e:
                    if "already in use" not in str(e):
                        raise
                    await js.update_stream(cfg)
                self._stream_ok = True
            except Exception as e:
                self.counters["stream_errors"] += 1
                delay = backoff.next()
                log.warning(
                    "bus publisher: stream %s not ready (%s); retry in %.2f s",
                    self.stream,
                    e or type(e).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    def _on_ack_sync(self, subject: str, headers: Any, data: bytes) -> None:
        try:
            n = int(subject.rsplit(".", 1)[1])
        except ValueError:
            return
        if headers and headers.get("Status") == "503":
            # no stream took the message (deleted, or a server without it): make it again
            self.counters["no_stream"] += 1
            self._stream_ok = False
            return
        if b'"error"' in data:
            self.counters["ack_errors"] += 1
            self._ack_log(
                1,
                "bus publisher: JetStream refused a message: %s",
                data[:200].decode("utf-8", "replace"),
            )
            return  # resent after ack_timeout
        item = self._inflight.pop(n, None)
        if item is not None:
            self.counters["acked_batches"] += 1
            if len(self._inflight) == self.max_inflight - 1:
                self._kick()

    async def _on_ack(self, msg: Any) -> None:
        self._on_ack_sync(msg.subject, msg.headers, msg.data)

    async def _send(self, n: int, item: list[Any]) -> None:
        item[3] = time.monotonic()
        await self._nc.publish(
            item[0],
            item[1],
            reply=f"{self._inbox}.{n}",
            headers={"Nats-Msg-Id": f"{self.run_id:x}.{n}"},
        )

    async def _run(self) -> None:
        assert self._connected is not None
        await self._connect()
        while True:
            try:
                if not self._nc.is_connected:
                    self._connected.clear()
                    self._resend = True
                    self._stream_ok = False
                    await self._idle(0.1)
                    continue
                if not self._stream_ok:
                    await self._ensure_stream()
                    self._resend = True
                self._connected.set()
                now = time.monotonic()
                if self._inflight and not self._resend:
                    oldest = next(iter(self._inflight.values()))
                    if now - oldest[3] > self.ack_timeout:
                        self._resend = True
                        self.counters["ack_timeouts"] += 1
                if self._resend:
                    self._resend = False
                    if self._inflight:
                        self.counters["resent_batches"] += len(self._inflight)
                        log.info(
                            "bus publisher: sending %d unacked batches again", len(self._inflight)
                        )
                        for n, item in list(self._inflight.items()):
                            await self._send(n, item)
                while self._queue and len(self._inflight) < self.max_inflight:
                    if not self._nc.is_connected or not self._stream_ok or self._resend:
                        break  # the older in-flight batches go first
                    subj, payload, k = self._queue.popleft()
                    self._queued_bytes -= len(payload)
                    n = self._next_n
                    self._next_n += 1
                    item = [subj, payload, k, 0.0]
                    self._inflight[n] = item
                    await self._send(n, item)
                    self.counters["sent_batches"] += 1
                    self.counters["sent_rows"] += k
                if not self._queue or len(self._inflight) >= self.max_inflight:
                    await self._idle(0.05)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # a publish on a connection that just broke; the batch is in flight and goes
                # again after the reconnect
                self.counters["send_errors"] += 1
                self._send_log(1, "bus publisher: send failed: %r", e)
                self._resend = True
                await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ numbers

    @property
    def positions(self) -> dict[str, int]:
        """Each ring's position up to which rows were taken (queued, sent or dropped): the rows
        published are those from :attr:`start_positions` to these (after ``close()``, for good)."""
        return {st.name: st.cursor for st in self._rings}

    @property
    def server(self) -> str | None:
        """``host:port`` of the server the publisher is connected to (None when not)."""
        if self._nc is None or not self._nc.is_connected or self._nc.connected_url is None:
            return None
        return str(self._nc.connected_url.netloc)

    @property
    def connected(self) -> bool:
        return self._connected is not None and self._connected.is_set()

    def stats(self) -> dict[str, Any]:
        """Counters: ``sent_batches``/``sent_rows``, ``acked_batches``, ``dropped_batches``/
        ``dropped_rows`` (queue full, or unsent at close; ``dropped_rows_at_close`` the
        latter), ``resent_batches``, ``unsent_dropped`` (publishes taken back from the
        client's buffer at a disconnect, to go again in order), ``ack_timeouts``,
        ``disconnects``, ``reconnects``, ``connect_failures``,
        ``source_lost`` (rows overwritten before the hook read them); and the current
        ``queued``, ``queued_bytes``, ``inflight``, ``connected``."""
        out: dict[str, Any] = {
            k: self.counters[k]
            for k in (
                "sent_batches",
                "sent_rows",
                "acked_batches",
                "dropped_batches",
                "dropped_rows",
                "dropped_rows_at_close",
                "resent_batches",
                "unsent_dropped",
                "ack_timeouts",
                "ack_errors",
                "no_stream",
                "disconnects",
                "reconnects",
                "connect_failures",
                "send_errors",
                "stream_errors",
                "source_lost",
            )
        }
        out.update(
            queued=len(self._queue),
            queued_bytes=self._queued_bytes,
            inflight=len(self._inflight),
            connected=self.connected,
            stream=self.stream,
        )
        return out
