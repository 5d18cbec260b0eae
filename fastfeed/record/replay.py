"""``fastfeed.Replay``: a recording played back through the live feed's message path.

Every recorded message goes through a :class:`~fastfeed.feed._listener.FeedListener` of its
recorded connection (the same decoder, id filter and gap markers as the live run) at its
recorded receive time, so the rows and the gap events equal the live run's.  The events the
session wrote (connects, disconnects, rotations, watchdog, protocol errors) are written back
from the recording at their place in the stream.  REST snapshots come from the recording
(``OrderBook(replay)`` uses :meth:`Replay.snapshot_source`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fastfeed._aio import Service, cancel_and_wait
from fastfeed.core._decoder import BinanceDecoder
from fastfeed.errors import FeedError
from fastfeed.feed._filter import FeedSink
from fastfeed.feed._listener import FeedListener
from fastfeed.feed.endpoint import Endpoint
from fastfeed.feed.rings import FeedRings
from fastfeed.record import _replay
from fastfeed.record import format as fmt
from fastfeed.record.reader import Recording

if TYPE_CHECKING:
    from fastfeed.book.snapshots import Snapshot

log = logging.getLogger("fastfeed.record")

_GAP = 1  # EventReason.GAP: the message path writes these itself


class RecordedSnapshots:
    """Stands in for :class:`~fastfeed.book.snapshots.SnapshotClient` during a replay:
    ``fetch(symbol, limit)`` returns the next recorded snapshot of that symbol and limit once
    the replay has reached the point where the live run received it."""

    def __init__(self, replay: Replay, budget: Any = None):
        self.replay, self.budget, self.market = replay, budget, replay.market
        self.counters: collections.Counter = collections.Counter()
        self.recorder = None
        self.parser: Any = None  # a SnapshotParser, made on the first fetch

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def fetch(self, symbol: str, limit: int) -> Snapshot:
        from fastfeed.book.snapshots import Snapshot, SnapshotError, SnapshotParser

        key = (symbol, limit)
        r = self.replay
        while True:
            q = r._snapshots.get(key)
            if q:
                recv_ns, body = q.popleft()
                break
            if r.done:
                self.counters["not_recorded"] += 1
                raise SnapshotError("not recorded", f"no recorded snapshot of {symbol} ({limit})")
            r._snapshot_wanted.add(key)
            await r._progress.wait()
        self.counters["requests"] += 1
        if self.parser is None:
            self.parser = SnapshotParser(counters=self.counters)
        # the live path's reader: the same rows the live book was loaded from
        lid, bids, asks = self.parser.parse(body)
        t = recv_ns / 1e9
        return Snapshot(symbol, lid, bids, asks, limit, t, t)


class Replay(Service, FeedRings):
    """A recording with a live feed's interface: ``async with Replay(path) as feed``.

    ``speed``: None (or 0) plays as fast as possible; a number paces on the recorded receive
    times at that many times real time.  Rings (``trades``, ``depth``, ``tickers``,
    ``partial``, ``events``), ``decoder``, ``sink``, ``market``, ``streams``, ``wait()`` /
    ``async for`` (ends when the recording does), ``stats()``.  Ring capacities default to the
    recorded feed's.  ``batch``: messages played between wake-ups.  ``strict``: raise on a
    bad chunk instead of reporting it (``replay.recording.errors``) and going on.

    Without asyncio, :meth:`run` plays everything as fast as possible and returns the stats.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        speed: float | None = None,
        *,
        strict: bool = False,
        batch: int = 1024,
        trades: int | None = None,
        depth: int | None = None,
        tickers: int | None = None,
        partial: int | None = None,
        events: int | None = None,
        on_data: Callable[[Replay], object] | None = None,
    ):
        self.recording = Recording(path, strict=strict)
        meta = self.recording.meta
        self.meta = meta
        self.market = meta.get("market", "spot")
        # What OrderBook(replay) reads its market from; its snapshots come from the recording
        # (snapshot_source), so these URLs are never contacted.
        self.endpoint = Endpoint(self.market)
        self.streams = list(meta.get("streams", []))
        self.time_unit = meta.get("time_unit", "ms")
        self.speed = speed or None
        self.batch = batch
        rings = meta.get("rings", {})
        self.decoder = BinanceDecoder(
            trades=trades or rings.get("trades", 1 << 16),
            depth=depth or rings.get("depth", 1 << 17),
            tickers=tickers or rings.get("tickers", 1 << 16),
            partial=partial or rings.get("partial", 1 << 14),
        )
        for name in meta.get("symbols", []):  # the recorded ids, in order
            self.decoder.symbols.id(name)
        self.sink = FeedSink(self.decoder, events or meta.get("events", 1 << 12))
        self.sink.event_unit_ns = 1000 if self.time_unit == "us" else 1_000_000
        self.player = _replay.Player(self.sink)
        self.max_frame_size = meta.get("max_frame_size", 1 << 20)
        self.on_data = on_data
        self.recorder = None
        self.done = False
        self.counters: collections.Counter = collections.Counter()
        self._listeners: dict[int, FeedListener] = {}
        self._snapshots: dict[tuple[str, int], collections.deque] = {}
        self._snapshot_wanted: set = set()
        self._progress = asyncio.Event()  # set on every step of the replay
        self._event: asyncio.Event | None = None
        self._consumer = False
        self._task: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._elapsed = 0.0

    def snapshot_source(self, budget: Any = None) -> RecordedSnapshots:
        """What ``OrderBook(replay)`` fetches snapshots from."""
        return RecordedSnapshots(self, budget)

    # ------------------------------------------------------------------ playing
    def _listener(self, conn: int) -> FeedListener:
        # the same per-connection decoder the session gives each connection
        stage = BinanceDecoder(max_levels=1000, control_maxlen=16, share=self.decoder)
        lis = FeedListener(self.sink, stage, conn, self.max_frame_size)
        self._listeners[conn] = lis
        self.player.add_listener(lis)
        return lis

    def _other(self, raw: bytes, pos: int) -> tuple[int, Any]:
        """Handle the non-FRAME record at ``pos``; returns the next position and what it was."""
        recv_ns, conn, ln, kind, _, _ = fmt.RECORD_HEADER.unpack_from(raw, pos)
        start = pos + fmt.RECORD_HEADER.size
        payload = raw[start : start + ln]
        what: Any = None
        if kind == fmt.EVENT:
            reason, slot, _, sym, expected, got = fmt.EVENT_PAYLOAD.unpack(payload)
            self.counters["events"] += 1
            if reason != _GAP:
                self.player.mark(reason, conn, sym, slot, expected, got, recv_ns)
        elif kind == fmt.SNAPSHOT:
            symbol, limit, body = fmt.parse_snapshot_payload(payload)
            self._snapshots.setdefault((symbol, limit), collections.deque()).append((recv_ns, body))
            self.counters["snapshots"] += 1
            what = (symbol, limit)
        elif kind == fmt.META:
            self.counters["meta"] += 1
        else:
            self.counters["unknown_records"] += 1
            log.warning("replay: unknown record kind %d skipped", kind)
        return start + ln, what

    def _chunk_steps(
        self,
        raw: bytes,
        max_frames: int = -1,
        clock: Callable[[], int] | None = None,
        where: tuple[Any, int] = ("?", 0),
    ) -> Iterator[tuple[Any, int]]:
        """Generator over one decompressed chunk; yields ``(what, next recv_ns)`` after each
        batch, snapshot or event so a driver can wake consumers, pace, and let snapshots be
        taken.  ``clock()`` gives the latest recorded time that may be played (pacing)."""
        player = self.player
        pos, n = 0, len(raw)
        while pos < n:
            until = clock() if clock is not None else 0
            pos, _played, st = player.play(raw, pos, max_frames, until)
            if st == _replay.END:
                break
            if st == _replay.OTHER:
                pos, what = self._other(raw, pos)
                yield what, 0
            elif st == _replay.UNKNOWN_CONN:
                self._listener(fmt.RECORD_HEADER.unpack_from(raw, pos)[1])
            elif st == _replay.LIMIT:
                yield None, 0
            elif st == _replay.UNTIL:
                yield None, fmt.RECORD_HEADER.unpack_from(raw, pos)[0]
            else:
                self.counters["malformed_chunks"] += 1
                log.error("replay: %s offset %d: a record runs past its chunk", *where)
                break
        yield None, 0

    def _steps(
        self,
        max_frames: int = -1,
        clock: Callable[[], int] | None = None,
        prefetch: bool = True,
    ) -> Iterator[tuple[Any, int]]:
        """:meth:`_chunk_steps` over every chunk of the recording (decompressed ahead by a
        reader thread when ``prefetch``: it keeps a paced replay's loop free of whole-chunk
        pauses; a replay as fast as possible is faster without it, see :meth:`run`)."""
        for c in self.recording.chunks(prefetch=prefetch):
            yield from self._chunk_steps(c.raw, max_frames, clock, (c.file, c.offset))

    def play_chunk(self, raw: bytes) -> None:
        """Play one decompressed chunk to its end (benchmarks, tools)."""
        for _ in self._chunk_steps(raw):
            pass

    def run(self) -> dict:
        """Play the whole recording as fast as possible, without asyncio; returns stats."""
        t0 = time.perf_counter()
        # No reader thread: it cannot decompress while this loop holds the GIL, and handing
        # the GIL over per chunk made the whole replay ~10% slower (decision 0501).
        for _ in self._steps(prefetch=False):
            pass
        self._elapsed = time.perf_counter() - t0
        self.done = True
        return self.stats()

    # ------------------------------------------------------------------ asyncio
    async def start(self) -> None:
        self._event = asyncio.Event()
        self.sink.add_hook(self._event.set)
        self._task = asyncio.create_task(self._run(), name="fastfeed-replay")
        self._tasks.append(self._task)
        if self.on_data is not None:
            self._tasks.append(asyncio.create_task(self._data_loop(), name="fastfeed-on-data"))

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        await cancel_and_wait(self._tasks)
        if self._event is not None:
            self._event.set()

    async def _settle(self) -> None:
        # Lockstep with consumers (the feed's reader, an OrderBook): rows are read before
        # the replay writes more, as a live feed's consumer keeps up between socket reads.
        self.sink.flush()
        self._progress.set()
        self._progress.clear()
        assert self._event is not None, "start() creates the event before _run"
        for _ in range(1000):
            await asyncio.sleep(0)
            if not (self._consumer and self._event.is_set()) and not self._wanted_ready():
                return

    def _wanted_ready(self) -> bool:
        # a snapshot someone waits for has arrived: let the fetch return first
        return any(self._snapshots.get(k) for k in self._snapshot_wanted)

    async def _run(self) -> None:
        t0 = time.perf_counter()
        clock = None
        if self.speed:
            speed = self.speed
            start_ns: list[int] = []
            wall0 = time.monotonic()

            def clock() -> int:
                if not start_ns:
                    return 0
                return start_ns[0] + int((time.monotonic() - wall0) * speed * 1e9)

            first = next(
                (c.header.first_ns for c in self.recording.chunks() if c.header.first_ns), 0
            )
            start_ns.append(first)
        try:
            for what, next_ns in self._steps(self.batch, clock):
                if what is not None:
                    self._snapshot_wanted.discard(what)
                await self._settle()
                if next_ns and clock is not None:
                    await asyncio.sleep(max(0.0, (next_ns - clock()) / 1e9 / speed))
        finally:
            self._elapsed = time.perf_counter() - t0
            self.done = True
            self._progress.set()
            self.sink.flush()
            if self._event is not None:
                self._event.set()

    async def wait(self) -> None:
        """Return when new rows or markers arrived; raises :class:`FeedError` once the
        replay is over and everything was read."""
        self._consumer = True
        if self._closing:
            raise FeedError("replay closed")
        assert self._event is not None, "start() creates the event"
        if self.done and not self._event.is_set():
            raise FeedError("replay finished")
        await self._event.wait()
        self._event.clear()

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            await self.wait()
        except FeedError:
            raise StopAsyncIteration from None
        return self

    async def wait_done(self) -> None:
        """Wait until the whole recording has been played."""
        if self._task is not None:
            await asyncio.shield(self._task)

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict:
        """Messages and rows replayed, filter counters, messages per second, problems."""
        sc = self.sink.counters()
        msgs = self.player.frames
        rings = {n: getattr(self.decoder, n) for n in ("trades", "depth", "tickers", "partial")}
        return {
            "messages": msgs,
            "rows": {n: r.written for n, r in rings.items()},
            "accepted": sc["accepted"],
            "duplicates": sc["duplicates"],
            "gaps": sc["gaps"],
            "events": self.sink.events.written,
            "connections": [lis.stats() for lis in self._listeners.values()],
            "records": dict(self.counters),
            "elapsed_s": self._elapsed,
            "msgs_per_s": msgs / self._elapsed if self._elapsed else None,
            "errors": [str(e) for e in self.recording.errors],
            "done": self.done,
        }
