"""Redundant legs: ``redundancy=2`` opens two connections per shard carrying the same
streams; the feed's id filter keeps the first copy of every message and drops (and counts)
the second.  A message is lost only when both legs miss it."""

from __future__ import annotations

import asyncio

from feed_fixtures import check_depth, check_trades, make_feed, until
from sim_fixtures import run
from test_shard import accepted, assert_within_limits, streams_of

from fastfeed.sim import ExchangeSimulator

SYMBOLS = tuple(f"L{i:02d}USDT" for i in range(20))


def sim_conn_of(sim, feed_conn):
    """The simulator's side of one of the feed's connections (matched by the client port)."""
    port = feed_conn._socket().getsockname()[1]
    return next(c for c in sim.connections if c.peer and c.peer[1] == port)


def legs_up(feed, n):
    return lambda: sum(1 for r in feed._routes if r.conn is not None) == n


def test_reset_either_leg_loses_nothing():
    async def body():
        async with ExchangeSimulator(
            symbols=SYMBOLS, seed=9, clock="manual", rate=20.0, levels=20
        ) as sim:
            books = [sim.market.book(s) for s in SYMBOLS]
            first_agg = {b.spec.symbol: b.agg_id + 1 for b in books}
            async with make_feed(sim, streams_of(SYMBOLS), redundancy=2) as feed:
                assert len(feed._routes) == 2 and len(sim.connections) == 2
                assert sorted(sim.connections[0].subscriptions()) == sorted(
                    sim.connections[1].subscriptions()
                )
                for leg in (0, 1, 0):
                    for _ in range(10):
                        sim.advance(0.02)
                        await asyncio.sleep(0.005)
                    victim = sim_conn_of(sim, feed._routes[leg].conn)
                    n = sum(feed.stats()["reconnects"].values())
                    sim.faults.reset(victim)
                    # the market runs on while that leg is down and comes back
                    for _ in range(10):
                        sim.advance(0.02)
                        await asyncio.sleep(0.005)
                    await until(
                        lambda n=n: (
                            sum(feed.stats()["reconnects"].values()) > n and legs_up(feed, 2)()
                        ),
                        10,
                        "the leg back",
                        feed,
                    )
                for _ in range(10):
                    sim.advance(0.02)
                    await asyncio.sleep(0.005)
                # both legs are up: every message arrives twice; wait for the last ones
                last_agg = {b.spec.symbol: b.agg_id for b in books}

                def complete():
                    rows = feed.trades.tail(feed.trades.written)
                    got = {
                        feed.decoder.symbol(int(s)): int(t)
                        for s, t in zip(rows["symbol"], rows["trade_id"])
                    }
                    return all(
                        got.get(s, first - 1) == last_agg[s] for s, first in first_agg.items()
                    )

                await until(complete, 10, "the last trades", feed)
                st = feed.stats()
                assert sum(st["gaps"].values()) == 0, st["gaps"]  # nothing lost
                rows = feed.trades.tail(feed.trades.written)
                assert check_trades(feed) == sum(last_agg[s] - first_agg[s] + 1 for s in first_agg)
                for s in SYMBOLS:
                    ids = rows["trade_id"][rows["symbol"] == feed.decoder.symbols.id(s)]
                    assert len(ids) == 0 or int(ids[0]) == first_agg[s]
                check_depth(feed)
                assert sum(st["duplicates"].values()) > 0  # the second copies, counted
                assert_within_limits(sim)

    run(body(), 60)


def test_a_delayed_leg_loses_every_race_and_latency_follows_the_other():
    """One leg 5 ms late: the other leg's copy wins (almost) every message, the late leg's
    duplicates say by how much, and what reaches the rings arrived at the fast leg's time."""

    async def body():
        async with ExchangeSimulator(
            symbols=SYMBOLS, seed=10, rate=10.0, levels=20, tick=0.002
        ) as sim:
            async with make_feed(sim, streams_of(SYMBOLS), redundancy=2) as feed:
                slow_leg, fast_leg = feed._routes[1].conn, feed._routes[0].conn
                sim.faults.slow(0.005, conn=sim_conn_of(sim, slow_leg))
                base = {c["conn"]: c for c in feed.stats()["connections"]}
                await until(lambda: accepted(feed) > 3000, 30, "3000 messages", feed)
                now = {c["conn"]: c for c in feed.stats()["connections"]}
                fast, slow = now[fast_leg.id], now[slow_leg.id]
                fast_wins = fast["wins"] - base[fast_leg.id]["wins"]
                slow_wins = slow["wins"] - base[slow_leg.id]["wins"]
                assert fast_wins > 0.98 * (fast_wins + slow_wins), (fast, slow)
                assert slow["behind_ms"] is not None and slow["behind_ms"] >= 4.0, slow
                st = feed.stats()
                assert sum(st["gaps"].values()) == 0
                check_trades(feed)
                check_depth(feed)

    run(body(), 60)


def test_a_silent_leg_is_replaced_while_the_other_carries_the_feed():
    """A leg that stops receiving data (muted by the server, pings still answered) while
    its sibling receives is reconnected by the watchdog; no message is lost meanwhile."""

    async def body():
        async with ExchangeSimulator(symbols=SYMBOLS[:5], seed=11, rate=40.0, levels=20) as sim:
            async with make_feed(
                sim, streams_of(SYMBOLS[:5]), redundancy=2, stream_timeout=0.5
            ) as feed:
                sim.faults.mute(True, conn=sim_conn_of(sim, feed._routes[1].conn))
                await until(
                    lambda: (
                        feed.stats()["reconnects"].get("watchdog", 0) >= 1 and legs_up(feed, 2)()
                    ),
                    10,
                    "the silent leg replaced",
                    feed,
                )
                st = feed.stats()
                assert sum(st["gaps"].values()) == 0
                check_trades(feed)

    run(body(), 60)
