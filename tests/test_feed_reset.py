"""A dead connection is noticed within a second, on uvloop, every time.

uvloop is what ``fastfeed.run`` picks.  On it, picows's transport was seen to stay on a reset
connection until the next client ping (18 s with the defaults).  The feed notices a dead
connection itself, whatever the transport reports: the kernel socket's state, and a probe ping
with a short deadline when a connection that normally ticks goes silent
(docs/decisions/0212-feed-dead-connection.md).
"""

import asyncio
import time

import pytest
from feed_fixtures import make_feed, until

from fastfeed import EventReason
from fastfeed.sim import ExchangeSimulator

uvloop = pytest.importorskip("uvloop")

STREAMS = ["btcusdt@aggTrade", "btcusdt@depth@100ms", "ethusdt@aggTrade", "ethusdt@depth@100ms"]
SIM = dict(seed=5, rate=200, interval_scale=0.2)


def on_uvloop(coro, timeout=300):
    async def guarded():
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        return await asyncio.wait_for(coro, timeout)

    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(guarded())
    finally:
        loop.close()


async def time_to_disconnect(sim, feed, fault) -> float:
    """Apply ``fault`` to the one live connection while data flows; seconds until the feed's
    DISCONNECT marker."""
    await until(
        lambda: feed._routes[0].conn is not None and len(sim.connections) == 1,
        10,
        "one live connection",
        feed,
    )
    n = feed.trades.written
    await until(lambda: feed.trades.written > n + 20, 10, "data", feed)
    events = feed.events.written

    def disconnects():
        ev = feed.events.tail(feed.events.written - events)
        return ev["recv_ns"][ev["reason"] == EventReason.DISCONNECT]

    t0 = time.time_ns()
    fault(sim.connections[0])
    await until(lambda: len(disconnects()) > 0, 40, "the DISCONNECT", feed)
    return (int(disconnects()[0]) - t0) / 1e9


def test_every_reset_noticed_within_a_second_on_uvloop():
    resets = 24

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            # keepalive far away: only the feed's own detection can notice within 1 s
            async with make_feed(sim, STREAMS, ping_interval=20, pong_timeout=10) as feed:
                late = [
                    await time_to_disconnect(sim, feed, lambda c: sim.faults.reset(conn=c))
                    for _ in range(resets)
                ]
                st = feed.stats()["reconnects"]
                assert st == {"connection lost": resets}, st
                assert max(late) < 1.0, [round(x, 3) for x in late]

    on_uvloop(body())


def test_silent_dead_connection_noticed_within_a_second_on_uvloop():
    """The connection goes silent and stops answering pings, with no RST and no FIN (what a
    reset the transport never reports looks like from the client): noticed by the probe ping,
    not 20 + 10 s later by the keepalive or 60 s later by the stream watchdog."""
    rounds = 5

    def blackhole(sim, c):
        sim.faults.ignore_pings(True, conn=c)
        sim.faults.mute(True, conn=c)

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with make_feed(sim, STREAMS, ping_interval=20, pong_timeout=10) as feed:
                late = [
                    await time_to_disconnect(sim, feed, lambda c: blackhole(sim, c))
                    for _ in range(rounds)
                ]
                st = feed.stats()["reconnects"]
                assert st == {"connection lost": rounds}, st
                assert max(late) < 1.0, [round(x, 3) for x in late]

    on_uvloop(body())
