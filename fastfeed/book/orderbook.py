"""``fastfeed.OrderBook``: local order books on a :class:`~fastfeed.BinanceFeed`.

Binds the feed's depth ring to a Cython :class:`~fastfeed.book._book.BookSet` (the sequencing and
the levels), runs the REST snapshot driver (:mod:`fastfeed.book.snapshots`) and, optionally, a
scheduled validation against fresh snapshots.  Symbols are exchange names (``"BTCUSDT"``)
here; the rings carry the decoder's symbol ids (``ob.symbol_id(name)`` / ``ob.symbol_name(i)``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import ssl as _ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fastfeed._aio import Service, cancel_and_wait, wait_event
from fastfeed.book._book import BookSet, State, Top
from fastfeed.book.snapshots import (
    RateLimited,
    SnapshotClient,
    SnapshotDriver,
    SnapshotError,
    WeightBudget,
    check_limit,
    depth_weight,
)
from fastfeed.book.snapshots import weight_limit as _market_weight_limit
from fastfeed.core._codes import Slot
from fastfeed.core._ring import Ring
from fastfeed.feed.config import check_number, with_options
from fastfeed.feed.endpoint import Endpoint

if TYPE_CHECKING:  # pragma: no cover
    from fastfeed.feed.session import BinanceFeed

log = logging.getLogger("fastfeed.book")
_vlog = logging.getLogger("fastfeed.book.validation")

_S_DEPTH = Slot.DEPTH  # the diff-depth stream slot


@dataclass(frozen=True)
class BookConfig:
    """Settings of an :class:`OrderBook` (times in seconds), checked when made.

    Snapshots: ``limit`` (levels per snapshot; 1000 is weight 50 on spot, 20 on USD-M),
    ``weight_fraction`` of the IP's REST weight limit (``weight_limit``, default the
    market's) per ``weight_window``, ``workers`` (concurrent fetches), ``timeout`` (per
    request), ``retry_initial`` .. ``retry_max`` (backoff of failed fetches),
    ``first_event_wait`` (how long a symbol waits for its first depth event before its
    snapshot is fetched), ``resync_on_stale``.  At scale (docs/decisions/0221-book-budgets.md):
    ``urgent`` (symbols served before every other), ``limits`` (symbol -> snapshot limit),
    ``auto_limit`` (resync a thin book with the cheapest limit that covers it).  Validation: ``validate_every`` (None: off),
    ``validate_depth`` levels compared against a snapshot of ``validate_limit`` (default 100
    spot, 50 USD-M) within ``validate_timeout``, ``resync_on_mismatch``.  Memory:
    ``max_levels`` per side, ``buffer_rows`` (depth rows buffered while syncing),
    ``tops_capacity``, ``events_capacity``.  ``autopoll`` (False: call ``ob.poll()``
    yourself) and ``poll_interval``.
    """

    limit: int = 1000
    max_levels: int = 5000
    buffer_rows: int = 65536
    tops_capacity: int = 65536
    events_capacity: int = 4096
    resync_on_stale: bool = False
    weight_fraction: float = 0.5
    weight_limit: int | None = None
    weight_window: float = 60.0
    workers: int = 2
    timeout: float = 10.0
    retry_initial: float = 0.25
    retry_max: float = 30.0
    first_event_wait: float = 1.0
    validate_every: float | None = None
    validate_depth: int = 20
    validate_limit: int | None = None
    validate_timeout: float = 10.0
    resync_on_mismatch: bool = True
    autopoll: bool = True
    poll_interval: float = 0.05
    urgent: tuple[str, ...] = ()
    limits: Mapping[str, int] | None = None
    auto_limit: bool = True

    def __post_init__(self) -> None:
        for name in ("limit", "max_levels", "buffer_rows", "tops_capacity", "events_capacity"):
            check_number(name, getattr(self, name), integer=True)
        for name in ("workers", "validate_depth"):
            check_number(name, getattr(self, name), integer=True)
        check_number("weight_limit", self.weight_limit, integer=True, optional=True)
        check_number("validate_limit", self.validate_limit, integer=True, optional=True)
        check_number("weight_fraction", self.weight_fraction)
        if self.weight_fraction > 1:
            raise ValueError(f"weight_fraction must be in (0, 1], got {self.weight_fraction!r}")
        for name in (
            "weight_window",
            "timeout",
            "retry_initial",
            "validate_timeout",
            "poll_interval",
        ):
            check_number(name, getattr(self, name))
        check_number("retry_max", self.retry_max, low=self.retry_initial, strict=False)
        check_number("first_event_wait", self.first_event_wait, strict=False)
        check_number("validate_every", self.validate_every, optional=True)
        if isinstance(self.urgent, str) or not isinstance(self.urgent, (tuple, list)):
            raise TypeError(f"urgent must be a tuple of symbol names, got {self.urgent!r}")
        object.__setattr__(self, "urgent", tuple(s.upper() for s in self.urgent))
        if self.limits is not None:
            if not isinstance(self.limits, Mapping):
                raise TypeError(f"limits must map symbol names to limits, got {self.limits!r}")
            for sym, lim in self.limits.items():
                check_number(f"limits[{sym!r}]", lim, integer=True)
        for name in ("resync_on_stale", "resync_on_mismatch", "autopoll", "auto_limit"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")


class OrderBook(Service):
    """Local L2 books for the diff-depth symbols of a running feed.

    ::

        async with BinanceFeed(["btcusdt@depth@100ms"]) as feed:
            async with OrderBook(feed) as ob:
                await ob.wait_synced()
                ob.best("BTCUSDT")            # (bid, bid_qty, ask, ask_qty)

    ``symbols``: exchange names to keep (default: every ``<sym>@depth[@100ms]`` stream of the
    feed).  Where snapshots come from: ``endpoint`` (default the feed's, so its REST URL and
    TLS context are the feed's), or its shortcuts ``rest_url`` and ``ssl``, which replace
    those fields.  Settings: ``config`` (:class:`BookConfig`), or its fields as keyword
    arguments (``validate_every=60``), which replace those of ``config``; ``budget``: a
    :class:`~fastfeed.book.snapshots.WeightBudget` shared with other objects (default: one
    of ``weight_fraction`` x ``weight_limit`` per ``weight_window``).

    ``validate_every`` (seconds, default off): compare the top ``validate_depth`` levels of
    every valid book with a fresh snapshot of ``validate_limit`` levels (same budget).  The
    snapshot is brought to the book's update id by replaying the same depth rows through a
    shadow book, and only then compared; see docs/decisions/0302-book-snapshots.md.  A
    difference is counted, logged at error level and, with ``resync_on_mismatch`` (default),
    resyncs that book.

    ``autopoll`` (default True): a task applies the depth ring on every feed read.  With
    False, call :meth:`poll` yourself (e.g. in your own ``feed.wait()`` loop).

    Rings: ``tops`` (one row per applied event and per book event, ``TOP_DTYPE``) and
    ``events`` (book events: gap, resync, synced, ..., ``BOOK_EVENT_DTYPE``).  Book events
    are logged on ``fastfeed.book``; snapshot fetching on ``fastfeed.book.snapshots``.
    """

    endpoint: Endpoint
    config: BookConfig

    def __init__(
        self,
        feed: BinanceFeed,
        symbols: str | Iterable[str] | None = None,
        *,
        endpoint: Endpoint | None = None,
        rest_url: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        config: BookConfig | None = None,
        budget: WeightBudget | None = None,
        **options: Any,
    ) -> None:
        ep = endpoint if endpoint is not None else getattr(feed, "endpoint", None)
        if not isinstance(ep, Endpoint):
            raise TypeError(
                f"OrderBook needs a running fastfeed.BinanceFeed (or endpoint=), got {feed!r}"
            )
        if ep.market != feed.market:
            raise ValueError(
                f"endpoint market {ep.market!r} differs from the feed's {feed.market!r}"
            )
        if rest_url is not None or ssl is not None:
            ep = ep.replace(rest_url=rest_url, ssl=ssl)
        if config is not None and not isinstance(config, BookConfig):
            raise TypeError(f"config must be a fastfeed.BookConfig, got {config!r}")
        cfg = with_options(config or BookConfig(), options, "OrderBook")
        if budget is not None and not isinstance(budget, WeightBudget):
            raise TypeError(f"budget must be a fastfeed.WeightBudget, got {budget!r}")
        self.endpoint, self.config = ep, cfg
        limit = cfg.limit
        self.feed = feed
        self.market = feed.market
        check_limit(self.market, limit)
        if isinstance(symbols, str):
            symbols = [symbols]
        from fastfeed.feed.streams import stream_slot

        on_feed = []
        for s in feed.streams:
            ss = stream_slot(s)
            if ss is not None and ss[1] == _S_DEPTH and ss[0] not in on_feed:
                on_feed.append(ss[0])
        self.symbols = [s.upper() for s in symbols] if symbols is not None else on_feed
        if not self.symbols:
            raise ValueError(
                "no symbols: subscribe the feed to <symbol>@depth streams or pass symbols="
            )
        missing = [s for s in self.symbols if s not in on_feed]
        if missing:
            log.warning(
                "order books for %s: the feed has no <symbol>@depth stream for them (yet); "
                "they stay SYNCING until one is subscribed",
                ", ".join(missing),
            )
        self.limit = limit
        self.validate_every = cfg.validate_every
        self.validate_depth = cfg.validate_depth
        self.validate_limit = cfg.validate_limit or (100 if self.market == "spot" else 50)
        check_limit(self.market, self.validate_limit)
        if self.validate_limit < cfg.validate_depth:
            raise ValueError(
                f"validate_limit ({self.validate_limit}) must be >= validate_depth "
                f"({cfg.validate_depth})"
            )
        self.validate_timeout = cfg.validate_timeout
        self.resync_on_mismatch = cfg.resync_on_mismatch
        self.autopoll, self.poll_interval = cfg.autopoll, cfg.poll_interval
        self.books = BookSet(
            self.market,
            max_levels=cfg.max_levels,
            buffer_rows=cfg.buffer_rows,
            tops_capacity=cfg.tops_capacity,
            events_capacity=cfg.events_capacity,
            auto_track=False,
            resync_on_stale=cfg.resync_on_stale,
        )
        dec = feed.decoder
        self.books.name_of = dec.symbol  # book log lines name symbols
        self._ids = {name: dec.symbols.id(name) for name in self.symbols}
        for i in self._ids.values():
            self.books.track(i)
        if budget is None:
            budget = WeightBudget(
                cfg.weight_limit or _market_weight_limit(self.market),
                cfg.weight_fraction,
                cfg.weight_window,
            )
        limits = {s.upper(): v for s, v in (cfg.limits or {}).items()}
        for sym, lim in limits.items():
            try:
                check_limit(self.market, lim)
            except ValueError as e:
                raise ValueError(f"limits[{sym!r}]: {e}") from None
        # fail now, not in a worker, if a request can never fit the budget
        budget.delay(
            max(
                depth_weight(self.market, limit),
                depth_weight(self.market, self.validate_limit),
                *(depth_weight(self.market, v) for v in limits.values()),
            ),
            0.0,
        )
        self.budget = budget
        self.client = SnapshotClient(
            budget=budget,
            endpoint=ep,
            timeout=cfg.timeout,
            max_connections=cfg.workers + (1 if cfg.validate_every else 0),
        )
        src = getattr(feed, "snapshot_source", None)  # a Replay serves recorded snapshots
        if src is not None:
            self.client = src(budget)
        self.client.recorder = getattr(feed, "recorder", None)
        self.driver = SnapshotDriver(
            self.books,
            self.client,
            dec.symbol,
            limit,
            workers=cfg.workers,
            retry_initial=cfg.retry_initial,
            retry_max=cfg.retry_max,
            first_event_wait=cfg.first_event_wait,
            limits={dec.symbols.id(s): v for s, v in limits.items()},
            urgent=[dec.symbols.id(s) for s in cfg.urgent],
            auto_limit=cfg.auto_limit,
        )
        self.counters: collections.Counter = collections.Counter()
        self._cursor = feed.depth.written  # an event boundary: older rows are not needed
        self._vpending: dict[int, list] = {}  # symbol -> [shadow BookSet, cursor, deadline]
        self._tasks: list[asyncio.Task] = []
        self._wake: asyncio.Event | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the HTTPS session and start the snapshot workers (and poll / validation)."""
        await self.client.start()
        self.driver.start()
        if self.autopoll:
            self._wake = asyncio.Event()
            # Called once per socket read with new rows.
            self.feed.add_hook(self._wake.set)
            self._tasks.append(asyncio.create_task(self._poll_loop(), name="fastfeed-book-poll"))
        if self.validate_every:
            self._tasks.append(
                asyncio.create_task(self._validate_loop(), name="fastfeed-book-validate")
            )
        log.info(
            "order books up: %s %s, snapshot limit %d, budget %d/%d per %gs",
            self.market,
            ",".join(self.symbols),
            self.limit,
            self.budget.cap,
            self.budget.limit,
            self.budget.window,
        )

    async def close(self) -> None:
        """Stop the tasks and close the HTTPS session (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.driver.stop()
        await self.client.close()
        if self._wake is not None:
            self.feed.remove_hook(self._wake.set)

    async def _poll_loop(self) -> None:
        ev = self._wake
        assert ev is not None, "start() creates the wake event before this loop"
        while True:
            await wait_event(ev, self.poll_interval)
            ev.clear()
            try:
                self.poll()
            except Exception:
                self.counters["poll_errors"] += 1
                log.exception("order book poll failed")

    def poll(self) -> int:
        """Apply the depth rows that arrived since the last call; returns how many."""
        before = self._cursor
        self._cursor = self.books.apply_depth_ring(self.feed.depth, self._cursor)
        self.driver.notify()
        if self._vpending:
            self._advance_validations()
        return self._cursor - before

    async def wait_synced(
        self, symbols: str | Iterable[str] | None = None, timeout: float | None = None
    ) -> None:
        """Wait until the books of ``symbols`` (default all) are valid.
        Raises ``asyncio.TimeoutError``."""
        if isinstance(symbols, str):
            symbols = [symbols]
        names = list(symbols) if symbols is not None else self.symbols
        end = None if timeout is None else time.monotonic() + timeout
        while not all(self.is_valid(n) for n in names):
            if end is not None and time.monotonic() > end:
                raise asyncio.TimeoutError(
                    f"books not synced within {timeout}s: "
                    f"{[n for n in names if not self.is_valid(n)]}; snapshot failures by "
                    f"reason: {dict(self.driver.failures)} (each is logged on "
                    "fastfeed.book.snapshots)"
                )
            if not self.autopoll:
                self.poll()
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ queries
    @property
    def tops(self) -> Ring:
        """Ring of ``TOP_DTYPE`` rows: one per applied event (best bid/ask after it) and one
        per book event (``code`` != UPDATE), in stream order."""
        return self.books.tops

    @property
    def events(self) -> Ring:
        """Ring of ``BOOK_EVENT_DTYPE`` rows: every gap, resync, synced, stale, ... event."""
        return self.books.events

    def symbol_id(self, name: str) -> int:
        """Decoder symbol id of ``name`` (the ``symbol`` field of the rings)."""
        try:
            return self._ids[name.upper()]
        except KeyError:
            raise KeyError(f"{name!r} has no order book here") from None

    def symbol_name(self, i: int) -> str:
        return self.feed.decoder.symbol(int(i))

    def state(self, name: str) -> State:
        """``State.VALID``, ``SYNCING`` (waiting for / loading a snapshot) or ``BRIDGING``
        (snapshot loaded, waiting for the event that spans it)."""
        return self.books.state(self.symbol_id(name))

    def is_valid(self, name: str) -> bool:
        return self.books.is_valid(self.symbol_id(name))

    def last_update_id(self, name: str) -> int:
        """The book's update id (-1 while syncing)."""
        return self.books.last_update_id(self.symbol_id(name))

    def best(self, name: str) -> tuple[float, float, float, float]:
        """``(bid, bid_qty, ask, ask_qty)``; NaN for an empty side.  Check :meth:`is_valid`:
        a syncing book is empty.  Read in C, O(1) (about 0.15 us a call)."""
        i = self._ids.get(name)  # the exchange's spelling first: no .upper() per call
        return self.books.best(self.symbol_id(name) if i is None else i)

    def best_fp(self, name: str) -> tuple[int | None, int | None, int | None, int | None]:
        """:meth:`best` as exact int64 fixed point (scale 1e8); None for an empty side."""
        i = self._ids.get(name)
        return self.books.best_fp(self.symbol_id(name) if i is None else i)

    def best_into(self, name: str, out: np.ndarray) -> bool:
        """Write the top of ``name``'s book into ``out[0]`` (a ``TOP_DTYPE`` array made once,
        e.g. ``np.zeros(1, fastfeed.TOP_DTYPE)``) without allocating anything; returns
        :meth:`is_valid`.  See ``BookSet.best_into``."""
        i = self._ids.get(name)
        return self.books.best_into(self.symbol_id(name) if i is None else i, out)

    def top(self, name: str, n: int = 10) -> Top:
        """Top ``n`` levels per side, best first: ``Top(bid_price, bid_qty, ask_price,
        ask_qty)`` float64 arrays."""
        return self.books.top(self.symbol_id(name), n)

    def top_fp(self, name: str, n: int = 10) -> Top:
        """:meth:`top` as exact int64 fixed point (scale 1e8)."""
        return self.books.top_fp(self.symbol_id(name), n)

    def set_urgent(self, names: str | Iterable[str], urgent: bool = True) -> None:
        """Serve these symbols' snapshots before every other (``urgent=False``: no longer);
        requests already queued move at once."""
        if isinstance(names, str):
            names = [names]
        self.driver.set_urgent([self.symbol_id(n) for n in names], urgent)

    def snapshot_limit(self, name: str) -> int:
        """The depth limit of ``name``'s next snapshot (its ``limits`` entry, the cheaper
        limit learned for a thin book, or ``limit``)."""
        return self.driver.limit_of(self.symbol_id(name))

    def eta(self) -> float:
        """Estimated seconds until every book waiting for a snapshot has one: the time the
        weight budget needs to send the queued requests in serving order, or the workers'
        time to fetch them, whichever is longer (0.0 when none waits).  A loaded snapshot
        still needs the depth event that spans it before its book is valid."""
        return self.driver.eta()

    def stats(self) -> dict[str, Any]:
        """Book counters (all symbols summed, plus per symbol), snapshot driver counters,
        REST weight budget, validation counters."""
        per = {n: self.books.stats(i) for n, i in self._ids.items()}
        return {
            "books": self.books.stats(),
            "symbols": per,
            "snapshots": self.driver.stats(),
            "rest": dict(self.client.counters),
            "budget": self.budget.stats(),
            "validation": dict(self.counters),
            "tops": self.tops.written,
            "events": self.events.written,
        }

    # ------------------------------------------------------------------ validation
    async def _validate_loop(self) -> None:
        while True:
            # re-read each round: validate_every may be changed (or set to None) at run time
            await asyncio.sleep(self.validate_every or 1.0)
            if not self.validate_every:
                continue
            for name, sym in self._ids.items():
                if sym in self._vpending or not self.books.is_valid(sym):
                    continue
                try:
                    await self.validate(name)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.counters["errors"] += 1
                    log.exception("validation of %s failed", name)

    async def validate(self, name: str) -> None:
        """Start one validation of ``name`` now: fetch a snapshot and compare when the
        shadow book built from it reaches the book's update id (during a later poll)."""
        sym = self.symbol_id(name)
        if not self.autopoll:
            self.poll()
        cursor = self._cursor  # every row before it is in the book already
        self.counters["fetches"] += 1
        try:
            snap = await self.client.fetch(name, self.validate_limit)
        except RateLimited as e:
            self.counters["rate_limited"] += 1
            (log.error if e.status == 418 else log.warning)("validation of %s: %s", name, e)
            return
        except SnapshotError as e:
            self.counters["fetch_failures"] += 1
            log.warning("validation of %s: snapshot failed (%s)", name, e)
            return
        shadow = BookSet(
            self.market,
            max_levels=max(200, 2 * self.validate_limit),
            buffer_rows=self.books.buffer_rows,
            max_symbols=sym + 1,
            tops_capacity=1024,
            events_capacity=64,
            auto_track=False,
            logger=_vlog,
        )
        shadow.name_of = self.books.name_of
        shadow.track(sym)
        try:
            shadow.apply_snapshot(sym, snap.last_update_id, snap.bids, snap.asks, snap.limit)
        except ValueError as e:
            self.counters["fetch_failures"] += 1
            log.warning("validation of %s: unusable snapshot (%s)", name, e)
            return
        self._vpending[sym] = [shadow, cursor, time.monotonic() + self.validate_timeout]
        self.poll()  # the book first, then the shadow, up to the same row

    def _advance_validations(self) -> None:
        # Called right after the book consumed the ring up to its end (poll), so the shadow
        # books consume exactly the same rows.
        ring = self.feed.depth
        now = time.monotonic()
        for sym, entry in list(self._vpending.items()):
            shadow, cursor, deadline = entry
            # the shadow consumes exactly the rows the book consumed, so both end at one id
            entry[1] = shadow.apply_depth_ring(ring, cursor)
            name = self.symbol_name(sym)
            st = shadow.state(sym)
            if st == State.VALID:
                del self._vpending[sym]
                self._compare(sym, name, shadow)
            elif st == State.SYNCING or now > deadline:
                # the snapshot could not be bridged with the rows we hold (older than them,
                # rows overwritten, a gap) or no event spanned it in time: nothing to compare
                del self._vpending[sym]
                self.counters["skipped"] += 1
                _vlog.info(
                    "validation of %s skipped: %s",
                    name,
                    "timeout" if st != State.SYNCING else shadow.last_reason(sym).name,
                )

    def _compare(self, sym: int, name: str, shadow: BookSet) -> None:
        books = self.books
        if not books.is_valid(sym) or books.last_update_id(sym) != shadow.last_update_id(sym):
            self.counters["skipped"] += 1
            _vlog.info(
                "validation of %s skipped: book %s at %d, snapshot replayed to %d",
                name,
                books.state(sym).name,
                books.last_update_id(sym),
                shadow.last_update_id(sym),
            )
            return
        n = self.validate_depth
        a, b = books.top_fp(sym, n), shadow.top_fp(sym, n)
        # Compare only where both books are exact (a snapshot cut at its limit, or the depth
        # cap, leaves the far levels unknown).
        lo = [x for x in (books.bounds_fp(sym)[0], shadow.bounds_fp(sym)[0]) if x is not None]
        hi = [x for x in (books.bounds_fp(sym)[1], shadow.bounds_fp(sym)[1]) if x is not None]
        bid_lo = max(lo) if lo else -math.inf
        ask_hi = min(hi) if hi else math.inf

        def cut(t):
            kb = t.bid_price >= bid_lo
            ka = t.ask_price <= ask_hi
            return (t.bid_price[kb], t.bid_qty[kb], t.ask_price[ka], t.ask_qty[ka])

        ca, cb = cut(a), cut(b)
        self.counters["compared"] += 1
        if all(np.array_equal(x, y) for x, y in zip(ca, cb)):
            self.counters["matched"] += 1
            return
        self.counters["mismatches"] += 1
        diff = []
        for label, x, y in zip(("bid_price", "bid_qty", "ask_price", "ask_qty"), ca, cb):
            if not np.array_equal(x, y):
                m = min(len(x), len(y))
                idx = next((i for i in range(m) if x[i] != y[i]), m)
                diff.append(
                    f"{label}[{idx}] book={x[idx] if idx < len(x) else None} "
                    f"snapshot={y[idx] if idx < len(y) else None}"
                )
        log.error(
            "book %s differs from a fresh snapshot at update id %d: %s%s",
            name,
            books.last_update_id(sym),
            "; ".join(diff),
            " -> resync" if self.resync_on_mismatch else "",
        )
        if self.resync_on_mismatch:
            books.reset(sym)
            self.driver.notify()

    def __repr__(self) -> str:
        valid = sum(1 for n in self.symbols if self.is_valid(n))
        return f"<OrderBook {self.market} {valid}/{len(self.symbols)} valid>"


__all__ = ["BookConfig", "OrderBook"]
