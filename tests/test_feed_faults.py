"""The feed against every simulator fault: it recovers, nothing is duplicated, and every
missing message sits behind a gap marker."""

import logging

import pytest
from feed_fixtures import check_depth, check_trades, make_feed, pump, until
from sim_fixtures import run

from fastfeed import EventReason
from fastfeed.errors import SubscriptionError
from fastfeed.sim import ExchangeSimulator

STREAMS = ["btcusdt@aggTrade", "btcusdt@depth@100ms", "ethusdt@aggTrade", "ethusdt@depth@100ms"]
SIM = dict(seed=3, rate=200, interval_scale=0.2)


def scenario(fault, *, sim_kw=None, feed_kw=None, settle=0.4, after=0.6, expect=None, undo=None):
    """Apply ``fault`` to the feed's one live connection, wait for ``expect`` (recovery),
    then ``undo`` the fault: undone on recovery, not on a timer, so a slow machine cannot
    lift it before it has done its work."""

    async def body():
        async with ExchangeSimulator(**dict(SIM, **(sim_kw or {}))) as sim:
            async with make_feed(sim, STREAMS, **(feed_kw or {})) as feed:
                await pump(feed, settle)
                # a stall during the settle may have replaced the connection: the fault is
                # for the one that is live now
                await until(
                    lambda: feed._routes[0].conn is not None and len(sim.connections) == 1,
                    10,
                    "one live connection",
                    feed,
                )
                before = dict(feed.stats()["reconnects"])
                fault(sim)
                await pump(feed, after)
                if expect:
                    await until(lambda: expect(feed, before), 10, "recovery", feed)
                if undo:
                    undo(sim)
                rows_before = feed.trades.written
                await until(
                    lambda: feed.trades.written > rows_before + 5, 5, "data after fault", feed
                )
                check_trades(feed)
                check_depth(feed)
                ev = feed.events.tail(feed.events.written)
                st = feed.stats()
                st["protocol_events"] = int((ev["reason"] == EventReason.PROTOCOL).sum())
                return st, sim

    return run(body(), 60)


def reasons(reconnects, prefix=""):
    return sum(v for k, v in reconnects.items() if k.startswith(prefix))


def reconnected_for(prefix):
    """``expect`` for scenario(): a reconnect for this reason since the fault, and connected."""
    return lambda feed, before: (
        reasons(feed.stats()["reconnects"], prefix) > reasons(before, prefix)
        and feed._routes[0].conn is not None
    )


reconnected = reconnected_for("")  # for any reason


def test_reset():
    st, _ = scenario(lambda s: s.faults.reset(), expect=reconnected)
    assert st["reconnects"].get("connection lost", 0) >= 1


def test_close_frame_answered_and_reconnect():
    st, _ = scenario(lambda s: s.faults.close(1001, "bye"), expect=reconnected)
    assert st["reconnects"].get("closed by server 1001", 0) >= 1, st["reconnects"]


def test_fragmented_messages_reassembled():
    st, _ = scenario(lambda s: s.faults.fragment(count=20, parts=3))
    assert sum(c["fragments"] for c in st["connections"]) >= 20 * 3
    assert st["reconnects"] == {}


def test_malformed_counted_not_fatal():
    st, _ = scenario(lambda s: s.faults.malformed())
    assert sum(st["rejected"].values()) >= 1 and st["reconnects"] == {}


def test_oversize_is_protocol_error_and_recovers(caplog):
    """picows's frame parser rejects the frame before the listener sees it: the reconnect is
    still counted and logged as the protocol error it is, with its PROTOCOL event row, and
    picows's WSProtocolError does not end up as an unretrieved future exception."""
    import gc

    with caplog.at_level(logging.WARNING):
        st, _ = scenario(
            lambda s: s.faults.oversize(4096),
            feed_kw=dict(max_frame_size=2048),
            expect=reconnected_for("protocol error"),
        )
        gc.collect()
    assert set(st["reconnects"]) == {"protocol error"}, st["reconnects"]
    assert "4096 > 2048" in caplog.text  # the log line has the details
    assert "never retrieved" not in caplog.text
    assert st["protocol_events"] == 1


def test_depth_gap_marked():
    st, _ = scenario(lambda s: s.faults.depth_gap(count=2))
    assert st["gaps"]["depth"] >= 1


def test_depth_duplicate_and_stale_dropped():
    st, _ = scenario(lambda s: (s.faults.depth_duplicate(count=3), s.faults.depth_stale(count=3)))
    assert st["duplicates"]["depth"] >= 3


def test_dropped_duplicates_never_readable_in_a_wrapped_ring():
    """Rows are decoded in place and a duplicate's rows are taken back; the slots they
    overwrote held the ring's oldest rows, which must then count as gone, not be read back
    with the duplicate's content.  Checked after every step of a manual clock (each step
    sends a depth event per symbol), while the ring wraps."""
    import numpy as np

    async def body():
        async with ExchangeSimulator(**SIM, clock="manual") as sim:
            async with make_feed(sim, STREAMS, depth=256) as feed:

                def caught_up():  # every message the server sent has been decoded
                    m = feed.stats()["messages"]
                    return m["trade"] + m["depth"] >= sim.sent["aggTrade"] + sim.sent["depthUpdate"]

                async def step(seconds):
                    sim.advance(seconds)
                    await until(caught_up, 10, "the step's messages", feed)

                while feed.depth.written <= 4 * 256:
                    await step(0.1)
                sim.faults.depth_duplicate(count=40)
                sim.faults.depth_stale(count=40)
                bad, checks, seen = [], 0, set()
                while feed.stats()["duplicates"]["depth"] < 60:
                    await step(0.02)
                    rows = feed.depth.tail(len(feed.depth))
                    checks += 1
                    seen.add(feed.stats()["duplicates"]["depth"])
                    for sym in np.unique(rows["symbol"]):
                        u = rows["last_id"][rows["symbol"] == sym]
                        if np.any(np.diff(u) < 0):  # an older event after a newer one
                            bad.append((int(sym), u.tolist()))
                    assert checks < 1000, feed.stats()
                assert not bad, bad[:2]
                # checked between duplicates, not only once after all of them
                assert feed.depth.written > feed.depth.capacity and len(seen) >= 20, (checks, seen)

    run(body(), 60)


def test_mute_trips_watchdog():
    scenario(
        lambda s: s.faults.mute(True),
        feed_kw=dict(stream_timeout=0.5),
        expect=reconnected_for("watchdog"),
        undo=lambda s: s.faults.mute(False),
    )


def test_ignore_pings_pong_timeout():
    def fault(s):
        s.faults.mute(True)
        s.faults.ignore_pings(True)

    # named for what happened (the server echoing the keepalive's close is not the reason)
    scenario(
        fault,
        feed_kw=dict(ping_interval=0.3, pong_timeout=0.3, stream_timeout=None),
        expect=reconnected_for("pong timeout"),
        undo=lambda s: s.faults.clear(),
    )


def test_slow_server_no_loss():
    scenario(lambda s: s.faults.slow(0.05))


def test_handshake_503_then_recovers():
    def fault(s):
        s.faults.handshake(503, count=2)
        s.faults.reset()

    scenario(fault, expect=reconnected)


def test_rotation_lifetime_no_dup_no_gap():
    async def body():
        async with ExchangeSimulator(**SIM) as sim, make_feed(sim, STREAMS) as feed:
            await pump(feed, 0.3)
            # each connection gets its notice 0.4 s after it opens and is closed 2.6 s
            # later: its replacement has ample time to subscribe, even on a slow machine
            sim.faults.lifetime(3.0, notice=2.6)
            await until(
                lambda: feed.stats()["reconnects"].get("rotation", 0) >= 2,
                15,
                "2 rotations",
                feed,
            )
            await pump(feed, 0.3)
            st = feed.stats()
            assert st["gaps"]["aggTrade"] == 0 and st["gaps"]["depth"] == 0, st
            assert st["duplicates"]["aggTrade"] + st["duplicates"]["depth"] > 0  # overlap happened
            check_trades(feed)
            check_depth(feed)
            ev = feed.events.tail(feed.events.written)
            assert (ev["reason"] == EventReason.ROTATE).sum() >= 2
            assert (ev["reason"] == EventReason.GAP).sum() == 0

    run(body(), 60)


def test_untrusted_cert_after_start_retried_with_backoff():
    """Once the feed has run, a certificate that stops verifying is retried with backoff (not
    a hot loop) until it verifies again.  At the first start it raises at once instead
    (tests/test_first_contact.py)."""

    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with make_feed(sim, STREAMS, backoff_initial=0.05, backoff_max=0.4) as feed:
                await pump(feed, 0.2)
                sim.faults.untrusted_cert(True)
                sim.faults.reset()
                await pump(feed, 1.5)
                n = feed.failures["TLSVerificationError"]
                assert 2 <= n <= 25, n  # retried, not a hot loop
                sim.faults.untrusted_cert(False)
                rows = feed.trades.written
                await until(lambda: feed.trades.written > rows + 5, 10, "data again", feed)
                check_trades(feed)

    run(body(), 30)


def test_live_subscribe_and_error_reply():
    async def body():
        async with ExchangeSimulator(**SIM) as sim:
            async with make_feed(sim, STREAMS[:2], subscribe="live") as feed:
                await until(lambda: feed.trades.written > 5, 5, "data")
                await feed.subscribe(["ethusdt@aggTrade"])
                eth = feed.decoder.symbols.id("ETHUSDT")
                await until(
                    lambda: (feed.trades.tail(feed.trades.written)["symbol"] == eth).any(), 5, "eth"
                )
                with pytest.raises(SubscriptionError) as ei:
                    await feed.subscribe(["nosuch@@bad"])
                assert ei.value.code is not None

    run(body(), 30)


def test_usdm_two_routes():
    async def body():
        async with ExchangeSimulator(market="usdm", **SIM) as sim:
            async with make_feed(sim, ["btcusdt@aggTrade", "btcusdt@depth@100ms"]) as feed:
                await until(
                    lambda: feed.trades.written > 5 and feed.depth.written > 5,
                    10,
                    "both routes",
                    feed,
                )
                routes = sorted(c["route"] for c in feed.stats()["connections"])
                assert routes == ["market", "public"]
                sim.faults.reset()
                await until(
                    lambda: sum(feed.stats()["reconnects"].values()) >= 2,
                    10,
                    "both reconnect",
                    feed,
                )
                n = feed.trades.written
                await until(lambda: feed.trades.written > n + 5, 10, "data again", feed)
                check_trades(feed)
                check_depth(feed)

    run(body(), 30)
