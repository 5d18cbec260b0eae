"""Order books at scale: 300 books within the REST weight budget, urgent symbols first, a
cheaper depth for thin books, an ETA, and a resync storm that stays inside the budget.

The simulator counts weight per 1 s window (the exchange: per minute), so a run that takes
seconds here would take minutes against Binance; the ratios are the same."""

from __future__ import annotations

import asyncio
import time

from feed_fixtures import FAST, until
from sim_fixtures import run
from test_shard import assert_within_limits

from fastfeed import BinanceFeed, OrderBook
from fastfeed.book.snapshots import WeightBudget, depth_weight, thin_limit
from fastfeed.sim import ExchangeSimulator

SYMBOLS = tuple(f"B{i:03d}USDT" for i in range(300))
URGENT = ("B150USDT", "B299USDT", "B007USDT")


def test_thin_limit_and_time_to_spend():
    assert thin_limit("spot", 25, 1000) == 100
    assert thin_limit("spot", 300, 1000) == 500
    assert thin_limit("spot", 900, 1000) == 1000
    assert thin_limit("spot", 25, 50) == 50
    assert thin_limit("usdm", 25, 1000) == 50
    assert thin_limit("usdm", 900, 500) == 500
    now = [0.0]
    b = WeightBudget(100, 1.0, 1.0, clock=lambda: now[0])
    assert b.time_to_spend([50, 50]) == 0.0
    assert b.time_to_spend([50, 50, 50]) == 1.0
    b.spend(100)
    now[0] = 0.5
    assert b.time_to_spend([10]) == 0.5  # the first spending leaves at 1.0
    assert b.time_to_spend([60, 60, 60]) == 2.5


def test_300_books_within_the_budget_urgent_first_then_a_resync_storm():
    async def body():
        async with ExchangeSimulator(
            symbols=SYMBOLS, seed=12, rate=2.0, levels=20, weight_limit=6000, weight_window=1.0
        ) as sim:
            streams = [f"{s.lower()}@depth@100ms" for s in SYMBOLS]
            async with BinanceFeed(streams, endpoint=sim.endpoint(), **FAST) as feed:
                # half the exchange's limit, per 1 s: 3000; a 1000-level snapshot weighs 50
                ob = OrderBook(
                    feed,
                    weight_fraction=0.5,
                    weight_limit=6000,
                    weight_window=1.0,
                    workers=4,
                    urgent=URGENT,
                )
                cap = ob.budget.cap
                lower = WeightBudget(6000, 0.5, 1.0).time_to_spend(
                    [depth_weight("spot", 1000)] * len(SYMBOLS)
                )
                assert lower == 4.0  # 15,000 weight at 3,000 per window
                t0 = time.monotonic()
                async with ob:
                    await asyncio.sleep(0.05)
                    eta = ob.eta()
                    assert eta >= 0.9 * lower, eta
                    await ob.wait_synced(timeout=40)
                    took = time.monotonic() - t0
                    assert ob.eta() == 0.0
                    # served in the documented order: the urgent symbols first
                    first = [ob.symbol_name(e[1]) for e in ob.driver.recent]
                    assert set(first[:4]) >= set(URGENT), first[:8]
                    assert took >= lower  # the budget held: no faster than its bound
                    # thin books (about 25 levels a side) learned a cheaper depth
                    assert {ob.snapshot_limit(s) for s in SYMBOLS} == {100}
                    assert_within_limits(sim)  # no 429, no 418, peak weight <= 6000
                    spent = ob.budget.spent_total
                    assert spent == 50 * len(SYMBOLS) + 50 * ob.driver.counters.get(
                        "snapshot_too_old", 0
                    )

                    # every connection drops and stays down 1.5 s while the market moves on:
                    # (nearly) every book resyncs at once
                    n = len(ob.driver.recent)
                    sim.faults.handshake(503)
                    sim.faults.reset()
                    await asyncio.sleep(1.5)
                    sim.faults.handshake(None)
                    await until(lambda: feed._routes[0].conn is not None, 10, "reconnect", feed)
                    await asyncio.sleep(0.5)
                    await ob.wait_synced(timeout=40)
                    storm = list(ob.driver.recent)[n:]
                    assert len(storm) >= 250, len(storm)
                    # urgent first: once an urgent symbol's request was queued, no other
                    # fetch started before it (those already started may finish)
                    for _r, sym, prio, _l, queued, started in storm:
                        if ob.symbol_name(sym) in URGENT:
                            assert prio == 0
                            jumped = [
                                ob.symbol_name(s2)
                                for _r2, s2, _p2, _l2, _q2, st2 in storm
                                if queued < st2 < started
                            ]
                            assert jumped == [], (ob.symbol_name(sym), jumped)
                    assert {e[3] for e in storm} == {100}  # weight 5, not 50
                    assert {e[2] for e in storm if ob.symbol_name(e[1]) not in URGENT} == {1}
                    assert_within_limits(sim)
                    assert ob.stats()["snapshots"]["failures"] == {}
                    assert cap == 3000

    run(body(), 120)
