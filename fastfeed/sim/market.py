"""Simulated order books and the Binance events they drive (sans-IO).

Nothing here touches a socket or a clock: :class:`Market` is advanced explicitly with
``advance_to(t_us)`` and returns :class:`Event` objects that render themselves into the exact
bytes Binance sends.  The same seed and the same sequence of ``advance_to`` calls always give
the same events, which is what makes the simulator's tests deterministic.

Prices and quantities are integers in units of ``10**-decimals`` (``decimals`` is the number of
digits Binance prints: 8 on spot, the tick/step precision on USD-M), so books are exact and the
formatting is a cached integer split, never a float round trip.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, TypeVar

# Final: literal types, so they fit where a market name (fastfeed.feed.endpoint.Market) goes.
SPOT: Final = "spot"
USDM: Final = "usdm"
MARKETS = (SPOT, USDM)


# --------------------------------------------------------------------------- symbols


@dataclass(frozen=True)
class SymbolSpec:
    """Trading rules of one symbol.

    ``tick_size``/``step_size`` are decimal strings (``"0.01"``); ``price`` is the starting mid.
    ``price_decimals``/``qty_decimals`` are how many digits the stream prints: 8 on spot
    (``"61837.63000000"``), the tick/step precision on USD-M (``"61800.30"``, ``"0.006"``).
    """

    symbol: str
    base: str
    quote: str
    tick_size: str
    step_size: str
    price: str
    price_decimals: int
    qty_decimals: int
    typical_qty: str = "1"  # typical order size, sets the scale of book quantities

    @property
    def tick_units(self) -> int:
        return int(Decimal(self.tick_size).scaleb(self.price_decimals))

    @property
    def lot_units(self) -> int:
        return int(Decimal(self.step_size).scaleb(self.qty_decimals))


_KNOWN = {
    # symbol: (spot tick, spot step, usdm tick, usdm step, start price, typical qty)
    "BTCUSDT": ("0.01", "0.00001", "0.10", "0.001", "61800.00", "0.05"),
    "ETHUSDT": ("0.01", "0.0001", "0.01", "0.001", "2680.00", "1"),
    "BNBUSDT": ("0.01", "0.001", "0.010", "0.01", "560.00", "5"),
    "SOLUSDT": ("0.01", "0.001", "0.0100", "1", "150.00", "20"),
    "XRPUSDT": ("0.0001", "0.1", "0.0001", "0.1", "0.5500", "500"),
}


def _decimals(s: str) -> int:
    # Digits as written: USD-M BTCUSDT tick "0.10" prints prices with 2 decimals ("61800.30").
    exponent = Decimal(s).as_tuple().exponent
    assert isinstance(exponent, int), s  # not NaN or infinity: a tick or step size
    return max(0, -exponent)


def default_spec(symbol: str, market: str = SPOT) -> SymbolSpec:
    """Spec for ``symbol`` (known majors get real-looking rules; others a generic 0.01/0.001)."""
    symbol = symbol.upper()
    st, ss, ft, fs, price, typ = _KNOWN.get(
        symbol, ("0.01", "0.001", "0.01", "0.001", "100.00", "10")
    )
    quote = next(
        (
            q
            for q in ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB")
            if symbol.endswith(q) and symbol != q
        ),
        "USDT",
    )
    base = symbol[: -len(quote)] if symbol.endswith(quote) else symbol
    if market == SPOT:
        return SymbolSpec(symbol, base, quote, st, ss, price, 8, 8, typ)
    # USD-M prints as many digits as the exchangeInfo pricePrecision/quantityPrecision.
    return SymbolSpec(symbol, base, quote, ft, fs, price, _decimals(ft), _decimals(fs), typ)


def fmt_units(v: int, d: int) -> str:
    """Integer ``v`` in units of 10**-d as Binance prints it (``12345, 2 -> "123.45"``)."""
    if d == 0:
        return str(v)
    s = str(v).rjust(d + 1, "0")
    return s[:-d] + "." + s[-d:]


# --------------------------------------------------------------------------- events


class Event:
    """One message of one stream.  ``render(us)`` gives the payload bytes (cached).

    ``stream`` is the full stream name (``btcusdt@aggTrade``), ``kind`` the message kind used
    in the per-connection counters (``aggTrade``, ``trade``, ``depthUpdate``, ``bookTicker``,
    ``partialDepth``).
    """

    __slots__ = ("E", "_cache", "stream", "symbol")

    def __init__(self, stream: str, symbol: str, E: int):
        self.stream = stream
        self.symbol = symbol
        self.E = E  # microseconds
        # render(): by time unit; connections add (time unit, envelope) keys of their own.
        self._cache: dict[bool | tuple[bool, bool], bytes] = {}

    @property
    def kind(self) -> str:
        raise NotImplementedError  # a class attribute (or property) in every subclass

    def render(self, us: bool = False) -> bytes:
        b = self._cache.get(us)
        if b is None:
            b = self._cache[us] = self._render(us).encode()
        return b

    def _render(self, us: bool) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


def _t(v: int, us: bool) -> int:
    return v if us else v // 1000


Levels = list[tuple[str, str]]  # (price, qty) as printed


def _levels(levels: Levels) -> str:
    return "[" + ",".join(f'["{p}","{q}"]' for p, q in levels) + "]"


class AggTrade(Event):
    __slots__ = ("T", "a", "f", "l", "m", "p", "q", "usdm")
    kind = "aggTrade"
    T: int
    a: int
    f: int
    l: int
    m: bool
    p: str
    q: str
    usdm: bool

    def _render(self, us: bool) -> str:
        if self.usdm:  # USD-M: no "M", an "nq" (RPI-free quantity; equal here, no RPI simulated)
            return (
                f'{{"e":"aggTrade","E":{_t(self.E, us)},"s":"{self.symbol}","a":{self.a},'
                f'"p":"{self.p}","q":"{self.q}","nq":"{self.q}","f":{self.f},"l":{self.l},'
                f'"T":{_t(self.T, us)},"m":{"true" if self.m else "false"}}}'
            )
        return (
            f'{{"e":"aggTrade","E":{_t(self.E, us)},"s":"{self.symbol}","a":{self.a},'
            f'"p":"{self.p}","q":"{self.q}","f":{self.f},"l":{self.l},"T":{_t(self.T, us)},'
            f'"m":{"true" if self.m else "false"},"M":true}}'
        )


class Trade(Event):
    __slots__ = ("T", "m", "p", "q", "t", "usdm")
    kind = "trade"
    T: int
    m: bool
    p: str
    q: str
    t: int
    usdm: bool

    def _render(self, us: bool) -> str:
        if self.usdm:  # field order as recorded from fstream
            return (
                f'{{"e":"trade","E":{_t(self.E, us)},"T":{_t(self.T, us)},"s":"{self.symbol}",'
                f'"t":{self.t},"p":"{self.p}","q":"{self.q}","X":"MARKET",'
                f'"m":{"true" if self.m else "false"}}}'
            )
        return (
            f'{{"e":"trade","E":{_t(self.E, us)},"s":"{self.symbol}","t":{self.t},'
            f'"p":"{self.p}","q":"{self.q}","T":{_t(self.T, us)},'
            f'"m":{"true" if self.m else "false"},"M":true}}'
        )


class BookTicker(Event):
    __slots__ = ("A", "B", "T", "a", "b", "u", "usdm")
    kind = "bookTicker"
    A: str
    B: str
    T: int
    a: str
    b: str
    u: int
    usdm: bool

    def _render(self, us: bool) -> str:
        if self.usdm:
            return (
                f'{{"e":"bookTicker","u":{self.u},"s":"{self.symbol}","b":"{self.b}",'
                f'"B":"{self.B}","a":"{self.a}","A":"{self.A}","T":{_t(self.T, us)},'
                f'"E":{_t(self.E, us)}}}'
            )
        # Spot bookTicker has no e/E (Binance spot WebSocket streams docs, "Individual Symbol
        # Book Ticker Streams").
        return (
            f'{{"u":{self.u},"s":"{self.symbol}","b":"{self.b}","B":"{self.B}",'
            f'"a":"{self.a}","A":"{self.A}"}}'
        )


class DepthUpdate(Event):
    """Diff depth event; also the USD-M partial depth shape (``kind`` then ``partialDepth``)."""

    __slots__ = ("T", "U", "asks", "bids", "partial", "pu", "u", "usdm")
    T: int
    U: int
    asks: Levels
    bids: Levels
    partial: bool
    pu: int
    u: int
    usdm: bool

    @property
    def kind(self) -> str:
        return "partialDepth" if self.partial else "depthUpdate"

    def _render(self, us: bool) -> str:
        if self.usdm:
            return (
                f'{{"e":"depthUpdate","E":{_t(self.E, us)},"T":{_t(self.T, us)},'
                f'"s":"{self.symbol}","U":{self.U},"u":{self.u},"pu":{self.pu},'
                f'"b":{_levels(self.bids)},"a":{_levels(self.asks)}}}'
            )
        return (
            f'{{"e":"depthUpdate","E":{_t(self.E, us)},"s":"{self.symbol}","U":{self.U},'
            f'"u":{self.u},"b":{_levels(self.bids)},"a":{_levels(self.asks)}}}'
        )


class PartialDepth(Event):
    """Spot partial book depth: ``{lastUpdateId,bids,asks}`` with no symbol or time."""

    __slots__ = ("asks", "bids", "lastUpdateId")
    kind = "partialDepth"
    asks: Levels
    bids: Levels
    lastUpdateId: int

    def _render(self, us: bool) -> str:
        return (
            f'{{"lastUpdateId":{self.lastUpdateId},"bids":{_levels(self.bids)},'
            f'"asks":{_levels(self.asks)}}}'
        )


_E = TypeVar("_E", bound=Event)


def _mk(cls: type[_E], stream: str, symbol: str, E: int, **kw: object) -> _E:
    ev = cls(stream, symbol, E)
    for k, v in kw.items():
        setattr(ev, k, v)
    return ev


# --------------------------------------------------------------------------- streams


def stream_intervals(market: str) -> tuple[dict, dict]:
    """(diff depth suffix -> seconds, partial suffix template -> seconds) for ``market``."""
    if market == SPOT:
        return ({"depth": 1.0, "depth@100ms": 0.1}, {"depth{n}": 1.0, "depth{n}@100ms": 0.1})
    return (
        {"depth": 0.25, "depth@500ms": 0.5, "depth@100ms": 0.1},
        {"depth{n}": 0.25, "depth{n}@500ms": 0.5, "depth{n}@100ms": 0.1},
    )


PARTIAL_SIZES = (5, 10, 20)
REALTIME = ("aggTrade", "trade", "bookTicker")
# USD-M routing: which path serves a stream suffix.  Binance's USD-M futures docs split the
# streams over /public (depth, bookTicker) and /market (aggTrade, trade, ...); an unrouted path
# gets /public's.
MARKET_ROUTED = {"aggTrade", "trade"}


def stream_suffixes(market: str) -> list[str]:
    diff, part = stream_intervals(market)
    out = list(REALTIME) + list(diff)
    for tmpl in part:
        out += [tmpl.format(n=n) for n in PARTIAL_SIZES]
    return out


def usdm_route(suffix: str) -> str:
    """``"market"`` or ``"public"``: the USD-M path a stream suffix lives on."""
    return "market" if suffix in MARKET_ROUTED else "public"


# --------------------------------------------------------------------------- book


class _Side:
    """One side of a book: ``qty`` by integer price plus a sorted price list."""

    __slots__ = ("is_bid", "prices", "qty")

    def __init__(self, is_bid: bool):
        self.qty: dict[int, int] = {}
        self.prices: list[int] = []  # ascending
        self.is_bid = is_bid

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def best_price(self) -> int:
        """The best price of a side that has one (IndexError if empty)."""
        return self.prices[-1] if self.is_bid else self.prices[0]

    def set(self, price: int, qty: int) -> int:
        old = self.qty.get(price, 0)
        if qty > 0:
            if old == 0:
                bisect.insort(self.prices, price)
            self.qty[price] = qty
        elif old:
            del self.qty[price]
            i = bisect.bisect_left(self.prices, price)
            del self.prices[i]
        return old

    def top(self, n: int | None = None) -> list[int]:
        """Prices best first (all, or the best ``n``)."""
        if self.is_bid:
            src = self.prices if n is None else (self.prices[-n:] if n > 0 else [])
            return src[::-1]
        return list(self.prices) if n is None else self.prices[:n]

    def nth_from_best(self, k: int) -> int:
        return self.prices[-1 - k] if self.is_bid else self.prices[k]

    def __len__(self) -> int:
        return len(self.prices)


@dataclass
class _DiffBatch:
    changes: dict[tuple[bool, int], int] = field(default_factory=dict)  # (is_bid, price) -> qty
    first: int = 0
    last: int = 0
    prev_u: int = 0


class SymbolBook:
    """A simulated book for one symbol plus its change history (for :meth:`book_at`)."""

    def __init__(
        self,
        spec: SymbolSpec,
        market: str,
        rng: random.Random,
        levels: int,
        history: int,
        start_id: int,
    ):
        self.spec = spec
        self.market = market
        self.usdm = market == USDM
        self.rng = rng
        self.levels = levels
        self.lower = spec.symbol.lower()
        self.tick = spec.tick_units
        self.lot = spec.lot_units
        self.pd, self.qd = spec.price_decimals, spec.qty_decimals
        self.typ_lots = max(1, int(Decimal(spec.typical_qty).scaleb(self.qd)) // self.lot)
        self.bids, self.asks = _Side(True), _Side(False)
        self.last_id = start_id
        self.agg_id = rng.randrange(10**8, 10**9)
        self.trade_id = rng.randrange(10**9, 2 * 10**9)
        self.history: deque[tuple[int, bool, int, int, int]] = deque(
            maxlen=history
        )  # (id, is_bid, price, old, new)
        self.initial_id = start_id
        self._pcache: dict[int, str] = {}
        self.diff: dict[str, _DiffBatch] = {}
        self.partial_prev: dict[str, int] = {}
        self.partial_first: dict[str, int] = {}
        mid = int(Decimal(spec.price).scaleb(self.pd)) // self.tick * self.tick
        self.start_mid = mid
        self._up = 0.5
        for i in range(levels):
            self.bids.set(mid - (i + 1) * self.tick, self._rand_qty())
            self.asks.set(mid + i * self.tick + self.tick, self._rand_qty())
        self._ticker = self._top()

    # ---- formatting
    def p(self, v: int) -> str:
        s = self._pcache.get(v)
        if s is None:
            if len(self._pcache) > 100_000:
                self._pcache.clear()
            s = self._pcache[v] = fmt_units(v, self.pd)
        return s

    def q(self, v: int) -> str:
        return fmt_units(v, self.qd)

    def _rand_qty(self) -> int:
        lots = max(1, int(self.rng.expovariate(1.0 / self.typ_lots)) + 1)
        return lots * self.lot

    def _top(self) -> tuple[int | None, int, int | None, int]:
        b, a = self.bids.best(), self.asks.best()
        return (
            b,
            0 if b is None else self.bids.qty[b],
            a,
            0 if a is None else self.asks.qty[a],
        )

    # ---- changes
    def _next_id(self) -> int:
        if self.usdm and self.rng.random() < 0.6:
            # USD-M ids advance by more than one per change, so a stream's next U is
            # generally not previous u + 1; only pu chains (Binance USD-M "How to manage a
            # local order book correctly": each event's pu must equal the previous u).
            self.last_id += self.rng.randint(2, 5)
        else:
            self.last_id += 1
        return self.last_id

    def _change(self, side: _Side, price: int, qty: int) -> None:
        uid = self._next_id()
        old = side.set(price, qty)
        self.history.append((uid, side.is_bid, price, old, qty))
        key = (side.is_bid, price)
        for batch in self.diff.values():
            if not batch.changes:
                batch.first = uid
            batch.changes[key] = qty
            batch.last = uid

    # ---- market actions
    def _lean(self) -> float:
        # A random walk left alone drifts to zero and below on long runs: once the price
        # has halved or doubled, every action leans back toward the start.
        bb, ba = self.bids.best(), self.asks.best()
        if bb is None or ba is None:
            return 0.5
        mid = (bb + ba) // 2
        return 0.75 if mid < self.start_mid // 2 else 0.25 if mid > 2 * self.start_mid else 0.5

    def act(self, E: int, out: list[Event]) -> None:
        """One random market action at time ``E`` (µs); appends real-time events to ``out``."""
        self._up = self._lean()  # chance that an action pushes the price up
        r = self.rng.random()
        if r < 0.45:
            self._add()
        elif r < 0.80:
            self._cancel()
        else:
            self._trade(E, out)
        self._maintain()
        top = self._top()
        if top != self._ticker and top[0] is not None and top[2] is not None:
            self._ticker = top
            out.append(
                _mk(
                    BookTicker,
                    f"{self.lower}@bookTicker",
                    self.spec.symbol,
                    E,
                    u=self.last_id,
                    b=self.p(top[0]),
                    B=self.q(top[1]),
                    a=self.p(top[2]),
                    A=self.q(top[3]),
                    T=E - 1000,
                    usdm=self.usdm,
                )
            )

    def _add(self) -> None:
        rng = self.rng
        is_bid = rng.random() < self._up
        side = self.bids if is_bid else self.asks
        bb, ba = self.bids.best_price(), self.asks.best_price()
        spread = (ba - bb) // self.tick
        if spread > 1 and rng.random() < 0.3:
            # Improve inside the spread: this is what moves the price.
            k = rng.randint(1, spread - 1)
            price = bb + k * self.tick if is_bid else ba - k * self.tick
        else:
            d = min(int(rng.expovariate(1 / 6.0)), self.levels)
            best = bb if is_bid else ba
            price = best - d * self.tick if is_bid else best + d * self.tick
        if price < self.tick:
            return  # prices stay positive
        self._change(side, price, side.qty.get(price, 0) + self._rand_qty())

    def _cancel(self) -> None:
        rng = self.rng
        side = self.bids if rng.random() < 1.0 - self._up else self.asks
        if len(side) < 2:
            return
        k = min(int(rng.expovariate(1 / 8.0)), len(side) - 1)
        price = side.nth_from_best(k)
        qty = side.qty[price]
        new = 0 if rng.random() < 0.5 else (qty * rng.randint(0, 3) // 4) // self.lot * self.lot
        self._change(side, price, new)

    def _trade(self, E: int, out: list[Event]) -> None:
        rng = self.rng
        taker_buy = rng.random() < self._up
        book = self.asks if taker_buy else self.bids
        want = self._rand_qty() * rng.randint(1, 3)
        T = E - 1000
        while want > 0 and len(book) > 1:
            price = book.best_price()
            avail = book.qty[price]
            take = min(avail, want)
            want -= take
            # Split the fill among 1-3 makers: one aggTrade, several trades.
            nfills = min(rng.randint(1, 3), take // self.lot)
            fills = []
            rest = take
            for i in range(nfills - 1):
                f = max(self.lot, rest // (nfills - i) // self.lot * self.lot)
                fills.append(f)
                rest -= f
            fills.append(rest)
            first = self.trade_id + 1
            ps = self.p(price)
            for fq in fills:
                self.trade_id += 1
                out.append(
                    _mk(
                        Trade,
                        f"{self.lower}@trade",
                        self.spec.symbol,
                        E,
                        t=self.trade_id,
                        p=ps,
                        q=self.q(fq),
                        T=T,
                        m=not taker_buy,
                        usdm=self.usdm,
                    )
                )
            self.agg_id += 1
            out.append(
                _mk(
                    AggTrade,
                    f"{self.lower}@aggTrade",
                    self.spec.symbol,
                    E,
                    a=self.agg_id,
                    p=ps,
                    q=self.q(take),
                    f=first,
                    l=self.trade_id,
                    T=T,
                    m=not taker_buy,
                    usdm=self.usdm,
                )
            )
            self._change(book, price, avail - take)

    def _maintain(self) -> None:
        # Keep a realistic, bounded number of levels: refill the far end, trim beyond it.
        for side in (self.bids, self.asks):
            if not side.prices:
                other = self.asks if side.is_bid else self.bids
                ref = other.best_price()
                if side.is_bid and ref - self.tick < self.tick:
                    continue  # no bid at zero
                self._change(
                    side, ref - self.tick if side.is_bid else ref + self.tick, self._rand_qty()
                )
            while len(side) < self.levels:
                far = side.prices[0] - self.tick if side.is_bid else side.prices[-1] + self.tick
                gap = self.rng.randint(0, 2) * self.tick
                if side.is_bid and far - gap < self.tick:
                    break  # no bids at zero or below
                self._change(side, far - gap if side.is_bid else far + gap, self._rand_qty())
            while len(side) > self.levels + self.levels // 4:
                far = side.prices[0] if side.is_bid else side.prices[-1]
                self._change(side, far, 0)

    # ---- depth streams
    def flush_diff(self, suffix: str, E: int) -> DepthUpdate | None:
        batch = self.diff[suffix]
        if not batch.changes:
            return None
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        for (is_bid, price), qty in batch.changes.items():
            (bids if is_bid else asks).append((price, qty))
        # Recorded spot data lists bids best first; fstream lists both sides ascending.
        bids.sort(reverse=not self.usdm)
        asks.sort()
        ev = _mk(
            DepthUpdate,
            f"{self.lower}@{suffix}",
            self.spec.symbol,
            E,
            U=batch.first,
            u=batch.last,
            pu=batch.prev_u,
            T=E - 1000,
            usdm=self.usdm,
            partial=False,
            bids=[(self.p(p), self.q(q)) for p, q in bids],
            asks=[(self.p(p), self.q(q)) for p, q in asks],
        )
        batch.prev_u = batch.last
        batch.changes = {}
        return ev

    def partial(self, suffix: str, n: int, E: int) -> Event:
        bids = [(self.p(p), self.q(self.bids.qty[p])) for p in self.bids.top(n)]
        asks = [(self.p(p), self.q(self.asks.qty[p])) for p in self.asks.top(n)]
        stream = f"{self.lower}@{suffix}"
        if not self.usdm:
            return _mk(
                PartialDepth,
                stream,
                self.spec.symbol,
                E,
                lastUpdateId=self.last_id,
                bids=bids,
                asks=asks,
            )
        prev = self.partial_prev.get(suffix, self.last_id)
        first = self.partial_first.get(suffix, self.last_id)
        self.partial_prev[suffix] = self.last_id
        self.partial_first[suffix] = self.last_id + 1
        return _mk(
            DepthUpdate,
            stream,
            self.spec.symbol,
            E,
            U=min(first, self.last_id),
            u=self.last_id,
            pu=prev,
            T=E - 1000,
            usdm=True,
            partial=True,
            bids=bids,
            asks=asks,
        )

    # ---- ground truth
    def snapshot(self, limit: int | None = None) -> tuple[int, Levels, Levels]:
        """``(last_id, bids, asks)`` of the current book, best first, as strings."""
        bids = [(self.p(p), self.q(self.bids.qty[p])) for p in self.bids.top(limit)]
        asks = [(self.p(p), self.q(self.asks.qty[p])) for p in self.asks.top(limit)]
        return self.last_id, bids, asks

    def oldest_id(self) -> int:
        """The oldest update id :meth:`book_at` can still reconstruct."""
        if len(self.history) == self.history.maxlen:
            return self.history[0][0]
        return self.initial_id

    def book_at(self, update_id: int, limit: int | None = None) -> tuple[Levels, Levels]:
        """Book after every change with id <= ``update_id`` (bids, asks), best first."""
        if update_id < self.oldest_id():
            raise ValueError(
                f"update id {update_id} is older than the kept history (oldest {self.oldest_id()})"
            )
        if update_id > self.last_id:
            raise ValueError(f"update id {update_id} is in the future (last {self.last_id})")
        bids, asks = dict(self.bids.qty), dict(self.asks.qty)
        for uid, is_bid, price, old, _new in reversed(self.history):
            if uid <= update_id:
                break
            d = bids if is_bid else asks
            if old:
                d[price] = old
            else:
                d.pop(price, None)
        b = sorted(bids, reverse=True)[:limit]
        a = sorted(asks)[:limit]
        return (
            [(self.p(p), self.q(bids[p])) for p in b],
            [(self.p(p), self.q(asks[p])) for p in a],
        )


# --------------------------------------------------------------------------- market


class Market:
    """All simulated books of one exchange, advanced on an explicit clock.

    ``rate`` is market actions per second per symbol (an action is an order add, a cancel or a
    taker trade; each changes one or more levels).  ``activity`` > 0 makes the rates mixed,
    as on an exchange: symbol ``k`` (in a seeded random order) gets a share proportional to
    ``1 / k**activity`` of the ``rate * len(symbols)`` actions per second.  ``interval_scale`` multiplies every depth
    push interval (``0.1`` makes ``@depth@100ms`` push every 10 ms of simulated time).
    """

    def __init__(
        self,
        symbols: Iterable[str] = ("BTCUSDT",),
        market: str = SPOT,
        *,
        seed: int = 0,
        rate: float = 50.0,
        levels: int = 200,
        history: int = 200_000,
        interval_scale: float = 1.0,
        start_us: int = 0,
        specs: dict[str, SymbolSpec] | None = None,
        activity: float = 0.0,
    ):
        if market not in MARKETS:
            raise ValueError(f"market must be one of {MARKETS}")
        self.market = market
        self.rng = random.Random(seed)
        self.rate = float(rate)
        self.books: dict[str, SymbolBook] = {}
        specs = specs or {}
        for sym in symbols:
            sym = sym.upper()
            spec = specs.get(sym) or default_spec(sym, market)
            start = (
                self.rng.randrange(10**9, 10**10)
                if market == SPOT
                else self.rng.randrange(10**12, 10**13)
            )
            self.books[sym] = SymbolBook(
                spec, market, random.Random(f"{seed}:{sym}"), levels, history, start
            )
        diff, part = stream_intervals(market)
        self.diff_intervals = {k: v * interval_scale for k, v in diff.items()}
        self.partial_intervals = {}
        for tmpl, v in part.items():
            for n in PARTIAL_SIZES:
                self.partial_intervals[tmpl.format(n=n)] = (n, v * interval_scale)
        for b in self.books.values():
            for suffix in self.diff_intervals:
                b.diff[suffix] = _DiffBatch(first=b.last_id + 1, last=b.last_id, prev_u=b.last_id)
        self.now_us = self.start_us = start_us
        self.actions = 0
        self._reset_clock()
        self._order = list(self.books.values())
        # Mixed rates: cumulative shares of the actions, drawn per action (None: round robin).
        self._cum: list[float] | None = None
        if activity > 0 and len(self._order) > 1:
            ranks = list(range(1, len(self._order) + 1))
            random.Random(f"{seed}:activity").shuffle(ranks)
            shares = [1.0 / k**activity for k in ranks]
            total, acc, self._cum = sum(shares), 0.0, []
            for w in shares:
                acc += w / total
                self._cum.append(acc)

    def activity_share(self, symbol: str) -> float:
        """The share of all market actions that ``symbol`` gets."""
        i = self._order.index(self.book(symbol))
        if self._cum is None:
            return 1.0 / len(self._order)
        return self._cum[i] - (self._cum[i - 1] if i else 0.0)

    def _reset_clock(self) -> None:
        """Schedule the next action and pushes from ``now_us`` (used when the server starts)."""
        t = self.now_us
        self._next_action = t
        self._next_flush = {k: t + int(v * 1e6) for k, v in self.diff_intervals.items()}
        self._next_partial = {k: t + int(v * 1e6) for k, (_n, v) in self.partial_intervals.items()}

    @property
    def symbols(self) -> list[str]:
        return list(self.books)

    def valid_stream(self, name: str) -> bool:
        sym, _, suffix = name.partition("@")
        return (
            sym.upper() in self.books
            and sym == sym.lower()
            and suffix in stream_suffixes(self.market)
        )

    def advance_to(self, t_us: int, wanted: Callable[[str], bool] | None = None) -> list[Event]:
        """Run the market up to time ``t_us``; return the events in send order.

        ``wanted(stream)`` filters the partial-depth snapshots (they cost a sort per push);
        diff-depth batches are always kept so their ids stay contiguous.
        """
        out: list[Event] = []
        if t_us <= self.now_us:
            return out
        step = int(1e6 / (self.rate * max(1, len(self.books)))) if self.rate > 0 else 0
        while True:
            t_flush = min(self._next_flush.values(), default=t_us + 1)
            t_part = min(self._next_partial.values(), default=t_us + 1)
            t_act = self._next_action if step else t_us + 1
            t = min(t_flush, t_part, t_act)
            if t > t_us:
                break
            if t == t_act:
                if self._cum is None:
                    book = self._order[self.actions % len(self._order)]
                else:
                    i = bisect.bisect_left(self._cum, self.rng.random())
                    book = self._order[min(i, len(self._order) - 1)]
                self.actions += 1
                book.act(t, out)
                self._next_action += step
            elif t == t_flush:
                for suffix, when in self._next_flush.items():
                    if when == t:
                        for b in self.books.values():
                            ev = b.flush_diff(suffix, t)
                            if ev is not None:
                                out.append(ev)
                        self._next_flush[suffix] += int(self.diff_intervals[suffix] * 1e6)
            else:
                for suffix, when in self._next_partial.items():
                    if when == t:
                        n, iv = self.partial_intervals[suffix]
                        for b in self.books.values():
                            if wanted is None or wanted(f"{b.lower}@{suffix}"):
                                out.append(b.partial(suffix, n, t))
                        self._next_partial[suffix] += int(iv * 1e6)
        self.now_us = t_us
        return out

    def book(self, symbol: str) -> SymbolBook:
        return self.books[symbol.upper()]
