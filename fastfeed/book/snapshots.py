"""REST depth snapshots for the local order books: weight budget, HTTPS client, driver.

Three layers, each testable alone:

* :class:`WeightBudget` (pure logic, injectable clock): one request-weight budget per IP,
  shared by every symbol.  It tracks the weight this process sent in a rolling window, takes
  the exchange's ``X-MBX-USED-WEIGHT-1M`` header as a floor (other processes on the same IP
  count too), keeps the total under ``fraction`` of the limit, and pauses every request for
  the ``Retry-After`` of a 429 or a 418.
* :class:`SnapshotClient`: one ``aiohttp.ClientSession`` (bounded connector, TLS verified by
  default, timeouts, bounded body) that fetches ``/api/v3/depth`` or ``/fapi/v1/depth``
  through the budget and turns every non-200 answer into a typed exception.  Bodies are read
  by :class:`SnapshotParser` (fastfeed's C decoder: ``PARTIAL_DTYPE`` rows, which
  ``BookSet.apply_snapshot`` loads at C level).
* :class:`SnapshotDriver`: asyncio workers that serve the ``BookSet``'s snapshot requests,
  out-of-sync books first, refetch stale snapshots, and retry every failure with capped,
  jittered backoff for as long as they run (never a hot loop, never giving up).

See docs/decisions/0302-book-snapshots.md.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import re
import ssl as _ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fastfeed._aio import Backoff, Service, cancel_and_wait, wait_event
from fastfeed.core._decoder import BinanceDecoder, Kind
from fastfeed.feed.endpoint import Endpoint, Market

if TYPE_CHECKING:
    import aiohttp

    from fastfeed.book._book import BookSet

log = logging.getLogger("fastfeed.book.snapshots")

# Binance's documented limits (spot REST API docs, "LIMITS" and GET /api/v3/depth; USD-M
# futures REST docs): our own table, the client must not trust the simulator's.
SPOT_WEIGHT_LIMIT = 6000  # REQUEST_WEIGHT per minute per IP
USDM_WEIGHT_LIMIT = 2400
SPOT_MAX_LIMIT = 5000
USDM_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def depth_weight(market: str, limit: int) -> int:
    """Request weight of one depth snapshot of ``limit`` levels on ``market``.

    Spot (since 2023-10-19): 1-100 -> 5, 101-500 -> 25, 501-1000 -> 50, 1001-5000 -> 250.
    USD-M: 5..50 -> 2, 100 -> 5, 500 -> 10, 1000 -> 20 (only those limits are accepted).
    """
    check_limit(market, limit)
    if market == "spot":
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def check_limit(market: str, limit: int) -> None:
    """Raise ValueError for a depth ``limit`` the exchange would refuse (or truncate)."""
    if market == "spot":
        if not 1 <= limit <= SPOT_MAX_LIMIT:
            raise ValueError(f"spot depth limit must be in 1..{SPOT_MAX_LIMIT}, got {limit}")
    elif market == "usdm":
        if limit not in USDM_LIMITS:
            raise ValueError(f"USD-M depth limit must be one of {USDM_LIMITS}, got {limit}")
    else:
        raise ValueError(f"market must be 'spot' or 'usdm', got {market!r}")


def weight_limit(market: str) -> int:
    return SPOT_WEIGHT_LIMIT if market == "spot" else USDM_WEIGHT_LIMIT


# The largest limit of each spot weight tier: within a tier a deeper snapshot costs nothing.
_SPOT_TIER_TOPS = (100, 500, 1000, SPOT_MAX_LIMIT)


def thin_limit(market: str, levels: int, cap: int) -> int:
    """The cheapest depth limit (at most ``cap``) that still covers a book of ``levels``
    levels per side with room to grow (a quarter more, plus 5): the top of its weight tier
    on spot (a book of 40 levels: 100, weight 5, instead of 1000, weight 50), the next
    accepted limit on USD-M."""
    need = levels + levels // 4 + 5
    for top in _SPOT_TIER_TOPS if market == "spot" else USDM_LIMITS:
        if top >= need:
            return min(top, cap)
    return cap


# --------------------------------------------------------------------------- budget


class WeightBudget:
    """Request-weight budget of one IP: stay under ``fraction * limit`` per ``window`` s.

    Pure logic: every method takes ``now`` (seconds, monotonic) or reads ``clock()``, so the
    unit tests drive it with a fake clock.  The estimate of the weight used is the larger of

    * the weight this process sent in the last ``window`` seconds (rolling), and
    * the last ``X-MBX-USED-WEIGHT-1M`` header plus what was sent since the request that
      carried it.  The exchange counts fixed minutes, but we do not know where its minute
      starts, so a header is trusted for a whole window after it was sent: conservative, it
      can only make us wait longer, never get us banned.
    """

    def __init__(
        self,
        limit: int,
        fraction: float = 0.5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if not 0.0 < fraction <= 1.0:
            raise ValueError("fraction must be in (0, 1]")
        if window <= 0:
            raise ValueError("window must be > 0")
        self.limit = limit
        self.fraction = fraction
        self.cap = max(1, int(limit * fraction))
        self.window = window
        self.clock = clock
        # (sent_at, weight); bounded: every entry weighs >= 1 and the sum stays <= cap
        self._sent: collections.deque = collections.deque()
        self._header = 0
        self._header_at = -math.inf
        self.paused_until = -math.inf
        self.spent_total = 0
        self.pauses = 0
        self.waits = 0

    def _prune(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - self.window:
            self._sent.popleft()

    def _used_at(self, t: float) -> int:
        """Estimated weight in use at time ``t`` (>= now), from what is known now."""
        local = sum(w for s, w in self._sent if s > t - self.window)
        if t - self._header_at < self.window:
            since = sum(w for s, w in self._sent if s > self._header_at)
            return max(local, self._header + since)
        return local

    def used(self, now: float | None = None) -> int:
        """Estimated weight in use now."""
        now = self.clock() if now is None else now
        self._prune(now)
        return self._used_at(now)

    def delay(self, weight: int, now: float | None = None) -> float:
        """Seconds until a request of ``weight`` may be sent (0.0: now)."""
        if weight > self.cap:
            raise ValueError(
                f"a request of weight {weight} can never fit a budget of {self.cap} "
                f"({self.fraction:g} x {self.limit}); use a smaller depth limit"
            )
        now = self.clock() if now is None else now
        self._prune(now)
        start = max(now, self.paused_until)
        if self._used_at(start) + weight <= self.cap:
            return start - now
        # The estimate only falls when an entry or the header leaves the window.
        times = sorted(
            {s + self.window for s, _ in self._sent if s + self.window > start}
            | ({self._header_at + self.window} if self._header_at + self.window > start else set())
        )
        for t in times:
            if self._used_at(t) + weight <= self.cap:
                return t - now
        return start + self.window - now  # unreachable in practice: everything expired

    def spend(self, weight: int, now: float | None = None) -> float:
        """Record a request of ``weight`` sent at ``now``; returns ``now``."""
        now = self.clock() if now is None else now
        self._prune(now)
        self._sent.append((now, weight))
        self.spent_total += weight
        return now

    def observe(self, used: int, sent_at: float) -> None:
        """The exchange reported ``used`` weight in the response to a request sent at
        ``sent_at`` (``X-MBX-USED-WEIGHT-1M``)."""
        if sent_at >= self._header_at:
            self._header, self._header_at = used, sent_at

    def pause(self, seconds: float, now: float | None = None) -> None:
        """No request may be sent for ``seconds`` (a 429 / 418 ``Retry-After``)."""
        now = self.clock() if now is None else now
        self.pauses += 1
        self.paused_until = max(self.paused_until, now + seconds)

    def time_to_spend(self, weights: list[int], now: float | None = None) -> float:
        """Seconds until the last of ``weights``, sent in order each as soon as it fits, can
        be sent: the budget's part of an ETA (from this process's own spending and any
        pause; the header floor is left out)."""
        now = self.clock() if now is None else now
        self._prune(now)
        times = [s for s, _ in self._sent]
        ws = [w for _, w in self._sent]
        total, lo = sum(ws), 0
        t = max(now, self.paused_until)
        for w in weights:
            if w > self.cap:
                raise ValueError(f"a request of weight {w} can never fit a budget of {self.cap}")
            while True:
                while lo < len(times) and times[lo] <= t - self.window:
                    total -= ws[lo]
                    lo += 1
                if total + w <= self.cap:
                    break
                t = times[lo] + self.window  # when the oldest spending leaves the window
            times.append(t)
            ws.append(w)
            total += w
        return t - now

    def paused(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        return now < self.paused_until

    async def acquire(self, weight: int) -> float:
        """Wait until ``weight`` fits, record it, return the send time.  Re-checks after
        every sleep, so a pause that arrives meanwhile (another request's 429) is honoured."""
        while True:
            d = self.delay(weight)
            if d <= 0:
                return self.spend(weight)
            self.waits += 1
            await asyncio.sleep(d)

    def stats(self) -> dict:
        now = self.clock()
        return {
            "limit": self.limit,
            "cap": self.cap,
            "used": self.used(now),
            "header": self._header if now - self._header_at < self.window else None,
            "spent_total": self.spent_total,
            "pauses": self.pauses,
            "waits": self.waits,
            "paused_for": max(0.0, self.paused_until - now),
        }


# --------------------------------------------------------------------------- client


class SnapshotError(Exception):
    """A snapshot fetch failed (network, timeout, HTTP error, bad body)."""

    def __init__(self, reason: str, msg: str, status: int | None = None):
        super().__init__(f"{reason}: {msg}")
        self.reason, self.status = reason, status


class RateLimited(SnapshotError):
    """HTTP 429 (``reason="429"``) or 418 (``reason="418"``, IP banned); the budget is paused
    for ``retry_after`` seconds."""

    def __init__(self, status: int, retry_after: float, msg: str):
        super().__init__(str(status), f"retry after {retry_after:g}s: {msg}", status)
        self.retry_after = retry_after


@dataclass
class Snapshot:
    """One REST depth snapshot.  ``bids`` / ``asks``: ``PARTIAL_DTYPE`` rows (best first,
    as :class:`SnapshotParser` reads them) or lists of ``[price, qty]`` decimal strings;
    ``BookSet.apply_snapshot`` takes either."""

    symbol: str
    last_update_id: int
    bids: list | np.ndarray
    asks: list | np.ndarray
    limit: int
    sent_at: float
    received_at: float


# The REST body's shape (its first key); anything else goes to the stdlib reader, which
# refuses what the old path refused (a stream payload or a wrapper holds no lastUpdateId).
_REST_HEAD = re.compile(rb'\s*\{\s*"lastUpdateId"\s*:')


def _copy_rows(array: np.ndarray, start: int, n: int) -> np.ndarray:
    """Rows ``start .. start + n`` (sequence numbers) of a ring's array, copied as bytes:
    numpy copies a padded structured dtype field by field (~9x slower for 2000 rows)."""
    cap, size = len(array), array.itemsize
    i0 = start % cap
    first = min(n, cap - i0)
    raw = np.empty(n * size, np.uint8)
    raw[: first * size] = array[i0 : i0 + first].view(np.uint8)
    raw[first * size :] = array[: n - first].view(np.uint8)
    return raw.view(array.dtype)


class SnapshotParser:
    """Reads REST depth bodies (``{"lastUpdateId":..,["E":..,"T":..,]"bids":[[p,q],..],
    "asks":[..]}``) with fastfeed's C decoder into ``PARTIAL_DTYPE`` rows: no Python per
    level, and the same decimal reader as the stream.

    ``parse(body)`` returns ``(last_update_id, bids, asks)``, the sides as row arrays (a copy
    out of the decoder's ring, so they outlive the next parse).  A body the decoder does not
    take as a snapshot (another key first, a value it refuses, a side of more than
    ``max_levels`` levels) is read again by the stdlib ``json`` module, exactly as before
    the decoder read them (sides as lists of strings; counted as ``"json_fallbacks"`` in
    ``counters``, a ``collections.Counter`` that may be shared), so a body is accepted or
    refused as it always was; :class:`SnapshotError` ``"bad body"`` names what is wrong.
    See docs/decisions/0303-book-c-path.md.
    """

    def __init__(
        self, max_levels: int = SPOT_MAX_LIMIT, counters: collections.Counter | None = None
    ) -> None:
        if max_levels < 1:
            raise ValueError(f"max_levels must be >= 1, got {max_levels!r}")
        rows = 1 << (2 * max_levels).bit_length()  # both sides of one body, a power of two
        # its own rings: nothing else reads them, so a parse cannot disturb a feed
        self.decoder = BinanceDecoder(
            trades=1, depth=1, tickers=1, partial=rows, max_levels=max_levels, max_symbols=1
        )
        self.counters = counters if counters is not None else collections.Counter()

    def parse(self, body: bytes) -> tuple[int, list | np.ndarray, list | np.ndarray]:
        """``(last_update_id, bids, asks)`` of a REST depth body; raises SnapshotError."""
        if _REST_HEAD.match(body):
            ring = self.decoder.partial
            start = ring.written
            if self.decoder.decode(body) == Kind.PARTIAL:
                rows = _copy_rows(ring.array, start, ring.written - start)
                lid = int(rows["last_id"][0])
                side = rows["side"]
                nb = int(np.count_nonzero(side == 0))  # bids first, then asks
                na = int(np.count_nonzero(side == 1))  # (one side -1 row: both empty)
                return lid, rows[:nb], rows[nb : nb + na]
        self.counters["json_fallbacks"] += 1
        log.debug("snapshot body read by the stdlib json module: %r", body[:100])
        try:
            doc = json.loads(body)
            lid = int(doc["lastUpdateId"])
            bids, asks = doc["bids"], doc["asks"]
            if not isinstance(bids, list) or not isinstance(asks, list):
                raise TypeError("bids/asks not lists")
        except (ValueError, KeyError, TypeError) as e:
            raise SnapshotError("bad body", f"{type(e).__name__}: {e}", 200) from e
        return lid, bids, asks


def _retry_after(headers: Mapping[str, str], default: float) -> float:
    raw = headers.get("Retry-After")
    if raw is None:
        return default  # missing: assume the documented worst case
    try:
        v = float(raw)
        return v if v >= 0 and math.isfinite(v) else default
    except ValueError:
        return default  # an HTTP date: assume the documented worst case


class SnapshotClient(Service):
    """HTTPS depth-snapshot client: ``async with SnapshotClient("spot") as c: await c.fetch(...)``.

    Where: ``endpoint`` (:class:`~fastfeed.Endpoint`; its market, ``rest_url`` and TLS
    context), or the shortcuts ``market``, ``base_url`` (``https://host[:port]``) and ``ssl``
    (an ``SSLContext``; default verifying), which replace those fields.  ``budget``: a shared
    :class:`WeightBudget` (default: the market's limit x ``fraction``).  ``max_connections``
    bounds the connector, ``timeout`` each request (seconds, total), ``max_body`` the
    response size in bytes.
    """

    def __init__(
        self,
        market: Market | None = None,
        base_url: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        budget: WeightBudget | None = None,
        *,
        endpoint: Endpoint | None = None,
        fraction: float = 0.5,
        timeout: float = 10.0,
        max_connections: int = 4,
        max_body: int = 4 << 20,
        ban_default: float = 120.0,
    ) -> None:
        if endpoint is None:
            endpoint = Endpoint(
                market if market is not None else "spot", rest_url=base_url, ssl=ssl
            )
        elif market is not None or base_url is not None or ssl is not None:
            endpoint = endpoint.replace(market=market, rest_url=base_url, ssl=ssl)
        self.endpoint = endpoint
        self.market: Market = endpoint.market
        self.base_url = endpoint.rest_url
        self.path = "/api/v3/depth" if self.market == "spot" else "/fapi/v1/depth"
        self.budget = budget or WeightBudget(weight_limit(self.market), fraction)
        self.timeout, self.max_connections, self.max_body = timeout, max_connections, max_body
        self.ban_default = ban_default
        self._session: aiohttp.ClientSession | None = None
        self.counters: collections.Counter = collections.Counter()
        self.parser = SnapshotParser(counters=self.counters)
        self.recorder = None  # fastfeed.record.Recorder: snapshot bodies are recorded

    async def start(self) -> None:
        import aiohttp

        if self._session is not None:
            return
        conn = aiohttp.TCPConnector(
            limit=self.max_connections, ssl=self.endpoint.ssl, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=conn,
            timeout=aiohttp.ClientTimeout(total=self.timeout, connect=self.timeout),
            headers={"Accept": "application/json"},
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            s, self._session = self._session, None
            await s.close()

    async def fetch(self, symbol: str, limit: int) -> Snapshot:
        """One snapshot of ``symbol`` (exchange name, e.g. ``"BTCUSDT"``); waits for the
        budget first.  Raises :class:`RateLimited` or :class:`SnapshotError`."""
        import aiohttp

        if self._session is None:
            raise RuntimeError("SnapshotClient not started")
        weight = depth_weight(self.market, limit)
        sent_at = await self.budget.acquire(weight)
        self.counters["requests"] += 1
        url = f"{self.base_url}{self.path}"
        try:
            async with self._session.get(url, params={"symbol": symbol, "limit": str(limit)}) as r:
                used = r.headers.get("X-MBX-USED-WEIGHT-1M")
                if used is not None and used.isdigit():
                    self.budget.observe(int(used), sent_at)
                if r.status in (429, 418):
                    ra = _retry_after(r.headers, 60.0 if r.status == 429 else self.ban_default)
                    self.budget.pause(ra)
                    text = (await r.content.read(4096)).decode("utf-8", "replace")
                    raise RateLimited(r.status, ra, text)
                body = await self._read(r)
                if self.recorder is not None and r.status == 200:
                    self.recorder.snapshot(symbol, limit, body)
                if r.status != 200:
                    raise SnapshotError(
                        f"http {r.status}", body[:300].decode("utf-8", "replace"), r.status
                    )
        except aiohttp.ClientConnectorCertificateError as e:
            raise SnapshotError(
                "tls", f"certificate of {self.endpoint.host('rest')} did not verify: {e}"
            ) from e
        except aiohttp.ClientError as e:
            raise SnapshotError("network", f"{type(e).__name__}: {e}") from e
        except asyncio.TimeoutError as e:
            raise SnapshotError("timeout", f"no answer within {self.timeout}s") from e
        lid, bids, asks = self.parser.parse(body)
        return Snapshot(symbol, lid, bids, asks, limit, sent_at, self.budget.clock())

    async def _read(self, r: aiohttp.ClientResponse) -> bytes:
        # Bounded: a response larger than max_body is an error, not a memory spike.
        if r.content_length is not None and r.content_length > self.max_body:
            raise SnapshotError(
                "too large", f"{r.content_length} bytes > {self.max_body}", r.status
            )
        chunks, n = [], 0
        async for chunk in r.content.iter_chunked(1 << 16):
            n += len(chunk)
            if n > self.max_body:
                raise SnapshotError("too large", f"more than {self.max_body} bytes", r.status)
            chunks.append(chunk)
        return b"".join(chunks)


# --------------------------------------------------------------------------- driver


class SnapshotDriver:
    """Serves a ``BookSet``'s snapshot requests with ``workers`` concurrent fetches.

    Call :meth:`notify` after feeding the book (it moves the book's requests into the
    pending set and wakes a worker).  Order: symbols in ``urgent`` first, then books that
    were valid before and went out of sync (resyncs), then first-time syncs; within a class,
    the oldest request first (an urgent symbol does not wait ``first_event_wait`` for its
    first depth event: the feed was subscribed before its snapshot is asked for, so at worst
    the snapshot is too old and fetched again).  Depth: ``limits`` (symbol id -> limit) where given, else,
    with ``auto_limit``, the cheapest limit that covers a thin book as its last snapshot
    showed it (:func:`thin_limit`), else ``limit``.  :meth:`eta` estimates the time until
    every pending symbol has its snapshot.  A symbol
    whose stream has not delivered an event yet waits up to ``first_event_wait`` s, so the
    snapshot can bridge a buffered event instead of being fetched blind.  Every failure
    (network, HTTP, 429/418, stale or unusable snapshot) is counted in ``counters`` and
    logged, and the symbol is retried after ``retry_initial * 2**k`` s (capped at
    ``retry_max``, jittered).  A 429 / 418 pauses all requests through the shared budget.
    """

    def __init__(
        self,
        books: BookSet,
        client: SnapshotClient,
        name_of: Callable[[int], str],
        limit: int,
        *,
        workers: int = 2,
        retry_initial: float = 0.25,
        retry_max: float = 30.0,
        first_event_wait: float = 1.0,
        on_synced: Callable[[int], None] | None = None,
        limits: Mapping[int, int] | None = None,
        urgent: Iterable[int] = (),
        auto_limit: bool = True,
    ):
        check_limit(client.market, limit)
        for lim in (limits or {}).values():
            check_limit(client.market, lim)
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.books, self.client, self.name_of, self.limit = books, client, name_of, limit
        self.workers = workers
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.first_event_wait = first_event_wait
        self.on_synced = on_synced
        self.limits: dict[int, int] = dict(limits or {})  # the user's, per symbol
        self.learned: dict[int, int] = {}  # thin books' cheaper limits (auto_limit)
        self.auto_limit = auto_limit
        self.urgent: set[int] = set(urgent)
        self.fetch_s = 0.0  # moving average of one fetch's duration (for eta())
        # (received, symbol, priority, limit, queued, started): recent successful fetches,
        # monotonic times (the order they were served in can be checked from them)
        self.recent: collections.deque = collections.deque(maxlen=4096)
        self._picked: dict[int, tuple[float, float]] = {}  # symbol -> (queued, started)
        # symbol -> [priority, queued_at, not_before]; bounded by the tracked symbols
        self.pending: dict[int, list] = {}
        self._backoff: dict[int, Backoff] = {}  # per symbol, while its fetches keep failing
        self.counters: collections.Counter = collections.Counter()
        self.failures: collections.Counter = collections.Counter()  # by reason
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self.in_flight: set[int] = set()

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"fastfeed-snapshots-{i}")
            for i in range(self.workers)
        ]
        self.notify()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    def notify(self) -> None:
        """Collect the book's new snapshot requests (cheap when there are none)."""
        reqs = self.books.take_snapshot_requests()
        if not reqs:
            if self.pending and self._wake is not None:
                self._wake.set()  # a waiting symbol may have buffered its first event
            return
        now = time.monotonic()
        for sym in reqs:
            if sym in self.pending or sym in self.in_flight:
                continue  # already queued (e.g. re-requested by a too-old snapshot)
            self.pending[sym] = [self._priority(sym), now, now]
        if self._wake is not None:
            self._wake.set()

    URGENT, RESYNC, FIRST = 0, 1, 2  # priority classes, served in this order

    def _priority(self, sym: int) -> int:
        """URGENT for a symbol the user marked; RESYNC for a book that applied events
        before (it was valid and lost sync); FIRST for a first-time sync."""
        if sym in self.urgent:
            return self.URGENT
        # stats() mixes int counters with the state's name; "events" is a counter.
        return self.RESYNC if int(self.books.stats(sym)["events"]) > 0 else self.FIRST

    def set_urgent(self, symbols: Iterable[int], urgent: bool = True) -> None:
        """Mark (or unmark) symbols as urgent; queued requests move at once."""
        for sym in symbols:
            (self.urgent.add if urgent else self.urgent.discard)(sym)
            entry = self.pending.get(sym)
            if entry is not None:
                entry[0] = self._priority(sym)
        if self._wake is not None:
            self._wake.set()

    def limit_of(self, sym: int) -> int:
        """The depth limit the next snapshot of ``sym`` asks for."""
        return self.limits.get(sym) or self.learned.get(sym) or self.limit

    def _learn(self, sym: int, snap: Snapshot) -> None:
        if not self.auto_limit or sym in self.limits:
            return
        levels = max(len(snap.bids), len(snap.asks))
        if levels < snap.limit:  # the whole book came back: it is this thin
            lim = thin_limit(self.client.market, levels, self.limit)
            if lim < self.limit:
                self.learned[sym] = lim
            else:
                self.learned.pop(sym, None)
        elif snap.limit < self.limit:  # it grew past what we learned: back to the default
            self.learned.pop(sym, None)

    def eta(self) -> float:
        """Estimated seconds until every queued or in-flight symbol has its snapshot: the
        weight budget's time to send the queue (in serving order) or the workers' time to
        fetch it, whichever is longer, plus one fetch."""
        n = len(self.pending) + len(self.in_flight)
        if n == 0:
            return 0.0
        order = sorted(self.pending.items(), key=lambda kv: (kv[1][0], kv[1][1]))
        market = self.client.market
        weights = [depth_weight(market, self.limit_of(sym)) for sym, _ in order]
        f = self.fetch_s or 0.05
        return max(self.client.budget.time_to_spend(weights), (n - 1) // self.workers * f) + f

    def _retry(self, sym: int, reason: str) -> None:
        b = self._backoff.get(sym)
        if b is None:
            b = self._backoff[sym] = Backoff(self.retry_initial, self.retry_max)
        d = b.next()
        now = time.monotonic()
        old = self.pending.get(sym)
        prio = old[0] if old else self._priority(sym)
        self.pending[sym] = [prio, old[1] if old else now, now + d]
        log.debug(
            "symbol %s: retry in %.2fs after %s (attempt %d)",
            self.name_of(sym),
            d,
            reason,
            b.failures,
        )

    async def _next(self) -> int:
        while True:
            now = time.monotonic()
            best, best_key, soonest = None, None, math.inf
            for sym, (prio, queued, not_before) in list(self.pending.items()):
                try:
                    if self.books.state(sym) != 0:  # no longer SYNCING: nothing to do
                        del self.pending[sym]
                        continue
                    waiting = self.books.buffered_events(sym) == 0
                except KeyError:  # untracked meanwhile
                    del self.pending[sym]
                    continue
                due = not_before
                if waiting and prio != self.URGENT:  # urgent: no wait for a first event
                    due = max(due, queued + self.first_event_wait)
                if due > now:
                    soonest = min(soonest, due)
                    continue
                key = (prio, queued)
                if best_key is None or key < best_key:
                    best, best_key = sym, key
            if best is not None:
                self._picked[best] = (self.pending.pop(best)[1], now)
                return best
            # The workers that call this are started by start(), which made the event.
            assert self._wake is not None, "SnapshotDriver worker running before start()"
            self._wake.clear()
            # wake on a new request, a first buffered event (poll calls notify) or a due time
            timeout = None if soonest == math.inf else max(0.001, soonest - now)
            if timeout is None and self.pending:
                timeout = 0.05  # symbols waiting for their first event: look again soon
            await wait_event(self._wake, timeout)

    async def _worker(self) -> None:
        while True:
            sym = await self._next()
            self.in_flight.add(sym)
            try:
                await self._sync_one(sym)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.counters["errors"] += 1
                self.failures["internal"] += 1
                log.exception("snapshot of symbol %s failed", self.name_of(sym))
                self._retry(sym, "internal error")
            finally:
                self.in_flight.discard(sym)
            self.notify()

    async def _sync_one(self, sym: int) -> None:
        from fastfeed.book._book import SnapshotResult

        name = self.name_of(sym)
        self.counters["fetches"] += 1
        prio = self._priority(sym)
        try:
            snap = await self.client.fetch(name, self.limit_of(sym))
        except RateLimited as e:
            self.counters["rate_limited"] += 1
            self.failures[e.reason] += 1
            if e.status == 418:
                log.error(
                    "REST IP ban (418) fetching %s snapshot: all requests paused %.0fs",
                    name,
                    e.retry_after,
                )
            else:
                log.warning(
                    "REST 429 fetching %s snapshot: all requests paused %.1fs", name, e.retry_after
                )
            # the budget holds every request back; queue the symbol again (no extra delay:
            # the pause is the delay)
            now = time.monotonic()
            self.pending[sym] = [self._priority(sym), now, now]
            return
        except SnapshotError as e:
            self.counters["fetch_failures"] += 1
            self.failures[e.reason] += 1
            log.warning("snapshot of %s failed (%s)", name, e)
            self._retry(sym, e.reason)
            return
        try:
            res = self.books.apply_snapshot(
                sym, snap.last_update_id, snap.bids, snap.asks, snap.limit
            )
        except KeyError:
            return  # untracked while the request was in flight
        except ValueError as e:
            self.counters["bad_snapshots"] += 1
            self.failures["bad snapshot"] += 1
            log.warning("snapshot of %s unusable: %s", name, e)
            self._retry(sym, "bad snapshot")
            return
        self.counters["snapshot_" + res.name.lower()] += 1
        took = snap.received_at - snap.sent_at
        self.fetch_s = took if self.fetch_s == 0 else self.fetch_s + (took - self.fetch_s) / 8
        queued, started = self._picked.pop(sym, (snap.sent_at, snap.sent_at))
        self.recent.append((snap.received_at, sym, prio, snap.limit, queued, started))
        self._learn(sym, snap)
        if res == SnapshotResult.TOO_OLD:
            # The book re-requested it.  Refetch after a (short, growing) delay: the REST
            # side may lag the stream, and asking again at once would burn weight.
            self.notify()  # takes the book's re-request (this symbol is in flight: skipped)
            log.info(
                "snapshot of %s too old (lastUpdateId %d < first buffered U %d); refetching",
                name,
                snap.last_update_id,
                self.books.first_buffered_id(sym),
            )
            self._retry(sym, "too old")
        elif res == SnapshotResult.FAILED:
            self.failures["snapshot failed"] += 1
            log.warning(
                "snapshot of %s loaded but its buffered events invalidated it (%s)",
                name,
                self.books.last_reason(sym).name,
            )
            self.notify()
            self._retry(sym, "replay failed")
        else:
            self._backoff.pop(sym, None)
            if res == SnapshotResult.SYNCED and self.on_synced is not None:
                self.on_synced(sym)

    def stats(self) -> dict:
        return {
            "pending": len(self.pending),
            "in_flight": len(self.in_flight),
            "eta_s": round(self.eta(), 3),
            "urgent": len(self.urgent),
            "thin_limits": len(self.learned),
            **self.counters,
            "failures": dict(self.failures),
        }
