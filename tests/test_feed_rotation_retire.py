"""A connection that a rotation brought in, then lost, is closed and retired like any other.

Found by the soak (benchmarks/soak.py): the route loop kept the connection it had opened,
not the one a rotation had put in its place, so when the rotated-in connection dropped, its
listener (an 80 KB filter table, a stage decoder) stayed in the feed for good and the
DISCONNECT marker named the connection that had been rotated away: ~72 KB of RSS per
rotation followed by a drop."""

from feed_fixtures import make_feed, pump, until
from sim_fixtures import run

from fastfeed import EventReason
from fastfeed.sim import ExchangeSimulator

STREAMS = ["btcusdt@aggTrade", "btcusdt@depth@100ms"]
SHUTDOWN = b'{"e":"serverShutdown","E":1}'


def test_rotated_in_connection_is_retired_when_it_drops():
    async def body():
        async with (
            ExchangeSimulator(symbols=["BTCUSDT"], seed=3, rate=200, interval_scale=0.2) as sim,
            make_feed(sim, STREAMS, stream_timeout=None) as feed,
        ):
            await pump(feed, 0.3)
            for i in range(3):
                rotations = feed.reconnects["rotation"]
                sim.faults.malformed(SHUTDOWN)  # the exchange's notice: the feed rotates
                await until(
                    lambda r=rotations: feed.reconnects["rotation"] > r, 15, "rotation", feed
                )
                new_id = feed._routes[0].conn.id
                await until(lambda: len(sim.connections) == 1, 10, "old one closed", feed)
                lost = sum(feed.reconnects.values())
                sim.faults.close(1011)  # ... and the connection it rotated to drops
                await until(
                    lambda n=lost: (
                        sum(feed.reconnects.values()) > n and feed._routes[0].conn is not None
                    ),
                    15,
                    f"reconnect {i}",
                    feed,
                )
                assert len(feed._conns) == 1, [c.id for c in feed._conns]
                ev = feed.events.tail(feed.events.written)
                gone = ev[ev["reason"] == EventReason.DISCONNECT]
                assert int(gone["conn"][-1]) == new_id, (gone["conn"], new_id)

    run(body(), 90)
