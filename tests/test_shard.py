"""Sharding: many streams over several connections, under the exchange's limits.

Every test runs the real feed over TLS against the simulator, which enforces the stream cap,
the control-message rate, the connection-attempt rate and the URL length, and keeps the peak
of each and every violation (``sim.limits()``): an empty violation list with peaks within the
limits is the proof that the feed kept them.  "Nothing lost" is the simulator's own count of
the messages it sent, compared with what the feed's filter accepted.
"""

from __future__ import annotations

import asyncio

import pytest
from feed_fixtures import check_depth, check_trades, make_feed, until
from sim_fixtures import run

from fastfeed.errors import FeedError, SubscriptionError
from fastfeed.sim import ExchangeSimulator

SYMBOLS = tuple(f"S{i:03d}USDT" for i in range(600))
KINDS = ("aggTrade", "depth@100ms")


def streams_of(symbols) -> list[str]:
    return [f"{s.lower()}@{k}" for s in symbols for k in KINDS]


def sent_data(sim) -> int:
    """Market messages the simulator sent over every connection."""
    return sum(c.sent["aggTrade"] + c.sent["depthUpdate"] for c in sim.all_connections)


def accepted(feed) -> int:
    a = feed.stats()["accepted"]
    return a["aggTrade"] + a["depth"]


def assert_within_limits(sim) -> dict:
    lim = sim.limits()
    assert lim["violations"] == [], lim
    for rule, peak in lim["peaks"].items():
        assert peak <= lim["limits"][rule], (rule, lim)
    return lim


def placement(sim) -> dict[str, int]:
    """stream -> the open simulator connection that carries it (each exactly once)."""
    out: dict[str, int] = {}
    for c in sim.connections:
        for s in c.subscriptions():
            assert s not in out, f"{s} subscribed on connections {out[s]} and {c.id}"
            out[s] = c.id
    return out


async def drive(sim, feed, seconds: float, step: float = 0.05) -> None:
    """Run the (manual-clock) market ``seconds`` in steps, then wait until the feed has
    accepted every market message the simulator sent meanwhile."""
    sent0, acc0 = sent_data(sim), accepted(feed)
    for _ in range(round(seconds / step)):
        sim.advance(step)
        await asyncio.sleep(0.01)
    await until(lambda: accepted(feed) - acc0 >= sent_data(sim) - sent0, 20, "every message", feed)


def test_1200_streams_on_two_connections_nothing_lost_nothing_duplicated():
    async def body():
        async with ExchangeSimulator(
            symbols=SYMBOLS, seed=5, clock="manual", rate=2.0, activity=1.0, levels=20
        ) as sim:
            streams = streams_of(SYMBOLS)
            async with make_feed(sim, streams) as feed:
                shards = feed.stats()["shards"]
                assert [s["streams"] for s in shards] == [600, 600]
                where = placement(sim)
                assert sorted(where) == sorted(streams)
                assert len(set(where.values())) == 2
                # a symbol's two streams stay on one connection (chunks in the user's order)
                for s in SYMBOLS:
                    a, d = (f"{s.lower()}@{k}" for k in KINDS)
                    assert where[a] == where[d]
                await drive(sim, feed, 3.0)
                st = feed.stats()
                assert accepted(feed) == sent_data(sim) > 2000
                assert sum(st["duplicates"].values()) == 0, st["duplicates"]
                assert sum(st["gaps"].values()) == 0, st["gaps"]
                assert check_trades(feed) == st["accepted"]["aggTrade"]
                check_depth(feed)
                # both connections carried data, and the mixed rates are visible per symbol
                per_conn = [c["wins"] for c in st["connections"]]
                assert len(per_conn) == 2 and min(per_conn) > 0, per_conn
                lim = assert_within_limits(sim)
                assert lim["peaks"]["streams"] == 600
                # the URL carried what fits in 8000 characters, SUBSCRIBE the rest
                assert 7000 < lim["peaks"]["url"] <= 8004

    run(body(), 60)


def test_live_subscribes_fill_the_least_loaded_connection_then_open_a_new_one():
    async def body():
        async with ExchangeSimulator(
            symbols=SYMBOLS[:40], seed=6, clock="manual", rate=5.0, levels=20
        ) as sim:
            first = streams_of(SYMBOLS[:4])  # 8 streams
            async with make_feed(sim, first, max_streams_per_connection=10) as feed:
                assert [s["streams"] for s in feed.stats()["shards"]] == [8]
                more = streams_of(SYMBOLS[4:7])  # 6: 2 fit, 4 need a new connection
                await feed.subscribe(more)
                assert [s["streams"] for s in feed.stats()["shards"]] == [10, 4]
                assert len(sim.connections) == 2
                await feed.subscribe(streams_of(SYMBOLS[7:8]))  # to the least loaded
                assert [s["streams"] for s in feed.stats()["shards"]] == [10, 6]
                await feed.unsubscribe(first[:6])
                assert [s["streams"] for s in feed.stats()["shards"]] == [4, 6]
                await feed.subscribe(streams_of(SYMBOLS[8:9]))
                assert [s["streams"] for s in feed.stats()["shards"]] == [6, 6]
                where = placement(sim)
                assert sorted(where) == sorted(feed.streams)
                assert sorted(feed.streams) == sorted(first[6:] + streams_of(SYMBOLS[4:9]))
                await drive(sim, feed, 2.0)
                # every subscribed symbol's depth arrived, on whichever connection
                rows = feed.depth.tail(feed.depth.written)
                syms = {feed.decoder.symbol(int(i)) for i in set(rows["symbol"])}
                assert {f"S{i:03d}USDT" for i in range(4, 9)} <= syms
                st = feed.stats()
                assert sum(st["duplicates"].values()) == 0
                assert sum(st["gaps"].values()) == 0
                assert_within_limits(sim)

    run(body(), 60)


def test_a_thousand_live_subscribes_are_paced_under_the_control_limit():
    """1,100 streams subscribed at once: 924 fill the first connection in 10 SUBSCRIBE
    messages (spot: at most 5 incoming messages a second, the feed sends 4), 176 open a
    second connection."""

    async def body():
        async with ExchangeSimulator(symbols=SYMBOLS, seed=7, clock="manual", levels=10) as sim:
            streams = streams_of(SYMBOLS)
            async with make_feed(sim, streams[:100], ack_timeout=10.0) as feed:
                await feed.subscribe(streams[100:])
                assert [s["streams"] for s in feed.stats()["shards"]] == [1024, 176]
                assert sorted(placement(sim)) == sorted(streams)
                lim = assert_within_limits(sim)
                assert lim["peaks"]["streams"] == 1024
                assert 3 <= lim["peaks"]["control"] <= 5
                # a stream the exchange refuses names itself; nothing is half-placed
                with pytest.raises(SubscriptionError):
                    await feed.subscribe(["nosuchusdt@aggTrade"])
                assert "nosuchusdt@aggTrade" not in feed.streams

    run(body(), 60)


def test_shards_reconnect_on_their_own():
    """A reset of one connection leaves the other shard untouched; the reset shard comes
    back with all its streams."""

    async def body():
        async with ExchangeSimulator(
            symbols=SYMBOLS[:20], seed=8, clock="manual", rate=5.0, levels=10
        ) as sim:
            streams = streams_of(SYMBOLS[:20])
            async with make_feed(sim, streams, max_streams_per_connection=15) as feed:
                assert [s["streams"] for s in feed.stats()["shards"]] == [13, 13, 14]
                await drive(sim, feed, 0.5)
                victim = sim.connections[1]
                others = {c.id for c in sim.connections} - {victim.id}
                sim.faults.reset(victim)
                await until(
                    lambda: (
                        sum(feed.stats()["reconnects"].values()) == 1
                        and len(sim.connections) == 3
                        and all(r.conn is not None for r in feed._routes)
                    ),
                    10,
                    "reconnect",
                    feed,
                )
                assert others <= {c.id for c in sim.connections}
                assert sorted(placement(sim)) == sorted(streams)
                await drive(sim, feed, 0.5)
                check_trades(feed)
                check_depth(feed)
                assert_within_limits(sim)

    run(body(), 60)


def test_settings_are_checked_at_construction():
    from fastfeed import BinanceFeed

    with pytest.raises(ValueError, match="redundancy"):
        BinanceFeed("btcusdt@aggTrade", redundancy=0)
    with pytest.raises(ValueError, match="redundancy"):
        BinanceFeed("btcusdt@aggTrade", redundancy=5)
    with pytest.raises(TypeError, match="leg_urls"):
        BinanceFeed("btcusdt@aggTrade", leg_urls="wss://stream.binance.com:443")
    with pytest.raises(ValueError, match="leg_urls"):
        BinanceFeed("btcusdt@aggTrade", leg_urls=("https://stream.binance.com",))
    with pytest.raises(ValueError, match="max_streams_per_connection"):
        BinanceFeed("btcusdt@aggTrade", max_streams_per_connection=0)
    feed = BinanceFeed(
        "btcusdt@aggTrade", redundancy=2, leg_urls=["wss://a.example:9443/", "wss://b.example"]
    )
    assert feed.leg_urls == ("wss://a.example:9443", "wss://b.example")
    assert feed.max_streams == 1024
    assert BinanceFeed("btcusdt@aggTrade", market="usdm").max_streams == 200


def test_a_connection_measured_over_max_rate_takes_no_more_streams():
    async def body():
        async with ExchangeSimulator(symbols=SYMBOLS[:4], seed=13, rate=20.0, levels=10) as sim:
            first = streams_of(SYMBOLS[:2])
            async with make_feed(sim, first, max_rate_per_connection=5.0) as feed:
                await until(lambda: feed._routes[0].rate > 5.0, 10, "a measured rate", feed)
                await feed.subscribe(streams_of(SYMBOLS[2:4]))
                shards = feed.stats()["shards"]
                assert [s["streams"] for s in shards] == [4, 4]
                assert sorted(placement(sim)) == sorted(streams_of(SYMBOLS[:4]))
                assert_within_limits(sim)
            with pytest.raises(FeedError, match="running feed"):
                await feed.subscribe(streams_of(SYMBOLS[:1]))

    run(body(), 60)
