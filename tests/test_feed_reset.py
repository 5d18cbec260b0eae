"""A dead connection is noticed within a second, on uvloop, every time.

uvloop is what ``fastfeed.run`` picks.  On it, picows's transport was seen to stay on a reset
connection until the next client ping (18 s with the defaults).  The feed notices a dead
connection itself, whatever the transport reports: the kernel socket's state, and a probe ping
with a short deadline when a connection that normally ticks goes silent
(docs/decisions/0212-feed-dead-connection.md).
"""

import asyncio
import logging
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


def each_noticed_within_a_second(fault, rounds):
    """``fault(sim, feed, c)`` applied ``rounds`` times on uvloop, each time to the one live
    connection ``c`` while data flows: every one is a ``connection lost`` reconnect, each
    DISCONNECT marker within 1 s of the fault.  The keepalive is far away (20 + 10 s): only the
    feed's own detection can be that quick."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with make_feed(sim, STREAMS, ping_interval=20, pong_timeout=10) as feed:
                late = [
                    await time_to_disconnect(sim, feed, lambda c: fault(sim, feed, c))
                    for _ in range(rounds)
                ]
                st = feed.stats()["reconnects"]
                assert st == {"connection lost": rounds}, st
                assert max(late) < 1.0, [round(x, 3) for x in late]

    on_uvloop(body())


def test_every_reset_noticed_within_a_second_on_uvloop():
    each_noticed_within_a_second(lambda sim, feed, c: sim.faults.reset(conn=c), 24)


def test_reset_the_transport_never_sees_noticed_within_a_second_on_uvloop():
    """The failure reported on uvloop: the connection is reset and the transport never reports
    it.  Here the client transport's reading is paused first (a real transport, really paused),
    so it cannot see the RST; only the feed's own check of the kernel socket can.  c831924 stays
    on such a connection until its next keepalive ping (19.9 s each)."""

    def unseen_reset(sim, feed, c):
        feed._routes[0].conn.transport.underlying_transport.pause_reading()
        sim.faults.reset(conn=c)

    each_noticed_within_a_second(unseen_reset, 20)


def test_stalled_server_is_not_taken_for_dead():
    """The server stops sending and answering for 1.5 s (busy), while its host still
    acknowledges: the feed probes the silent connection but keeps it."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with make_feed(sim, STREAMS, ping_interval=20, pong_timeout=10) as feed:
                await until(lambda: feed.trades.written > 20, 10, "data", feed)
                c = sim.connections[0]
                sim.faults.ignore_pings(True, conn=c)
                sim.faults.mute(True, conn=c)
                await asyncio.sleep(1.5)
                sim.faults.mute(False, conn=c)
                sim.faults.ignore_pings(False, conn=c)
                n = feed.trades.written
                await until(lambda: feed.trades.written > n + 20, 10, "data again", feed)
                st = feed.stats()
                assert st["reconnects"] == {}, st["reconnects"]
                assert st["probes"] >= 1

    on_uvloop(body())


def test_probe_alone_on_a_platform_without_tcp_info(monkeypatch, caplog):
    """Where the kernel does not report TCP state (not Linux), the probe ping alone decides: a
    connection that stops sending and answering is dropped within a second, and nothing is left
    as an unretrieved future exception."""
    import gc

    import fastfeed.feed.session as session

    monkeypatch.setattr(session, "_tcp_info", lambda sock: None)

    def blackhole(sim, feed, c):
        sim.faults.ignore_pings(True, conn=c)
        sim.faults.mute(True, conn=c)

    with caplog.at_level(logging.ERROR, "asyncio"):
        each_noticed_within_a_second(blackhole, 3)
        gc.collect()
    assert "never retrieved" not in caplog.text


def test_quiet_connection_is_kept_by_its_probe_pong():
    """A connection that goes quiet but still answers pings: each probe ends on its pong (the
    listener wakes the probe at the read's end; nothing polls), and the connection stays."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with make_feed(sim, STREAMS, ping_interval=20, pong_timeout=10) as feed:
                await until(lambda: feed.trades.written > 20, 10, "data", feed)
                conn = feed._routes[0].conn
                sim.faults.mute(True, conn=sim.connections[0])
                await until(lambda: conn.quiet_probes >= 2, 10, "two answered probes", feed)
                st = feed.stats()
                assert st["reconnects"] == {}, st["reconnects"]
                assert st["probes"] >= 2
                assert conn.probe_ok_ns > 0
                sim.faults.mute(False, conn=sim.connections[0])
                n = feed.trades.written
                await until(lambda: feed.trades.written > n + 20, 10, "data again", feed)
                assert feed._routes[0].conn is conn  # the same connection throughout

    on_uvloop(body())
