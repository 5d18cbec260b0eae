"""The NATS JetStream bus: real nats-server processes on 127.0.0.1 (one alone, or a 3-node
cluster), a feed on the simulator publishing to them, subscribers rebuilding its rings."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from feed_fixtures import check_depth, check_trades, make_feed, pump, until
from nats_fixtures import nats_cluster, nats_server, urls  # noqa: F401 - fixtures
from sim_fixtures import run

from fastfeed.bus import Publisher, Subscriber, wire
from fastfeed.sim import ExchangeSimulator

pytest.importorskip("nats")

STREAMS = [
    "btcusdt@aggTrade",
    "btcusdt@depth@100ms",
    "ethusdt@aggTrade",
    "ethusdt@depth@100ms",
    "btcusdt@bookTicker",
]
SIM = dict(seed=7, rate=200, interval_scale=0.2)
DATA = ("trades", "depth", "tickers")


def published(feed, pub, name: str) -> np.ndarray:
    """The rows of the feed's ring ``name`` the publisher took (it is closed)."""
    ring = getattr(feed, name)
    assert ring.written <= ring.capacity, "ring wrapped: the test needs a bigger ring"
    a, b = pub.start_positions[name], pub.positions[name]
    return ring.read(a, limit=b - a).rows  # a view: the ring's bytes (tail's copy drops padding)


def raw(rows: np.ndarray) -> np.ndarray:
    """Rows as whole byte strings, padding included (a structured fancy index would not copy
    the padding)."""
    return rows.view(np.dtype((np.void, rows.itemsize)))


def held(sub, name: str) -> np.ndarray:
    ring = sub.rings[name]
    assert ring.written <= ring.capacity
    return ring.read(0).rows


def assert_identical(want: np.ndarray, got: np.ndarray, what: str) -> None:
    """Each symbol's rows are the same bytes in the same order; across symbols the order is
    the feed's except within one socket read (one ``recv_ns``), where a read's rows come
    grouped by symbol (one message per symbol)."""
    assert len(got) == len(want), f"{what}: {len(got)} rows, the feed has {len(want)}"
    assert np.array_equal(got["recv_ns"], want["recv_ns"]), f"{what}: reads out of order"
    for s in np.unique(want["symbol"]):
        a, b = raw(got)[got["symbol"] == s], raw(want)[want["symbol"] == s]
        assert a.tobytes() == b.tobytes(), f"{what}: symbol {s} rows differ"


async def wait_all(sub, want: dict, timeout: float = 15.0) -> None:
    for name, rows in want.items():
        assert await sub.wait_rows(name, len(rows), timeout), (
            f"{name}: {sub.rings[name].written} of {len(rows)} rows arrived: {sub.stats()}"
        )


# ---------------------------------------------------------------------------- no server


def _msg(first: int, count: int, run: int = 1, sym: int = 1, name: bytes = b"BTCUSDT") -> bytes:
    rows = np.zeros(count, wire.DTYPES["trades"])
    rows["trade_id"] = np.arange(first, first + count)
    rows["symbol"] = sym
    return wire.pack(
        0,
        wire.FLAG_BY_SYMBOL,
        wire.DTYPE_CRCS["trades"],
        rows.itemsize,
        run,
        first,
        count,
        sym,
        0,
        0,
        0,
        0,
        name,
        rows.tobytes(),
    )


def test_wire_gaps_duplicates_and_bad_messages(caplog):
    sub = Subscriber("nats://127.0.0.1:1", "fastfeed.spot.>")  # never started: no server
    subj = "fastfeed.spot.trades.BTCUSDT"
    with caplog.at_level(logging.WARNING, logger="fastfeed.bus"):
        sub.on_message(subj, _msg(100, 3))  # the first message: nothing before it is lost
        sub.on_message(subj, _msg(103, 2))
        sub.on_message(subj, _msg(110, 1))  # 105..109 never came
        sub.on_message(subj, _msg(103, 2))  # a duplicate
        sub.on_message(subj, _msg(109, 3))  # overlaps: 109 was counted lost, 110 is held
        sub.on_message(subj, _msg(105, 2))  # lost rows arriving late: still lost, not appended
        sub.on_message(subj, _msg(0, 2, run=2))  # the publisher restarted
    ids = sub.trades.tail(sub.trades.written)["trade_id"].tolist()
    assert ids == [100, 101, 102, 103, 104, 110, 111, 0, 1]
    st = sub.stats()
    assert st["lost"] == 5 and st["lost_by_ring"] == {"trades": 5}
    assert st["duplicates"] == 1 and st["late_rows"] == 2 and st["publisher_restarts"] == 1
    assert sub.symbol(1) == "BTCUSDT"
    assert "5 rows lost on fastfeed.spot.trades.BTCUSDT" in caplog.text
    assert "came after later rows" in caplog.text

    good = _msg(0, 1)
    for bad, why in [
        (b"junk" + good[4:], "bad magic"),
        (good[:4] + b"\x09\x00" + good[6:], "wire version 9"),
        (good[:8] + b"\x00\x00\x00\x00" + good[12:], "another layout"),
        (good[:-1], "bytes for 1 rows"),
    ]:
        with pytest.raises(wire.WireError, match=why):
            wire.unpack(bad)
        sub.on_message(subj, bad)
    assert sub.stats()["bad_messages"] == 4
    assert wire.subject("fastfeed", "spot", "depth", "BTC.US*") == "fastfeed.spot.depth.BTC_US_"


def test_arguments_fail_fast():
    class Feed:
        market = "spot"

    with pytest.raises(ValueError, match="nats://"):
        Publisher(Feed(), "http://127.0.0.1:4222")
    with pytest.raises(ValueError, match="queue_batches"):
        Publisher(Feed(), "nats://127.0.0.1:4222", queue_batches=0)
    with pytest.raises(ValueError, match="prefix"):
        Publisher(Feed(), "nats://127.0.0.1:4222", prefix="a..b")
    with pytest.raises(ValueError, match="unknown ring"):
        Publisher(Feed(), "nats://127.0.0.1:4222", rings=("trade",))
    with pytest.raises(ValueError, match="start must be"):
        Subscriber("nats://127.0.0.1:4222", "fastfeed.>", start="latest")


# ---------------------------------------------------------------------------- one server


def test_subscriber_rebuilds_identical_rows(nats_server):  # noqa: F811
    async def main():
        async with ExchangeSimulator(**SIM) as sim:
            feed = make_feed(sim, STREAMS)
            pub = Publisher(feed, nats_server.url, storage="memory")
            await pub.start()  # before the feed: its first rows (and CONNECT marker) go too
            assert await pub.wait_connected(10)
            live = Subscriber(nats_server.url, "fastfeed.spot.>", start="new")
            await live.start()
            async with feed:
                await until(lambda: feed.trades.written > 100 and feed.depth.written > 100)
                await pump(feed, 0.5)
                await pub.close(timeout=10)
            want = {n: published(feed, pub, n) for n in (*DATA, "events")}
            await wait_all(live, want)
            await asyncio.sleep(0.2)  # nothing more may come
            for n, rows in want.items():
                assert_identical(rows, held(live, n), f"live {n}")
            assert live.lost == 0 and live.stats()["duplicates"] == 0
            for i in np.unique(want["trades"]["symbol"]):
                assert live.symbol(i) == feed.decoder.symbol(int(i))
            st = pub.stats()
            assert st["dropped_batches"] == 0 and st["acked_batches"] == st["sent_batches"]
            assert st["sent_rows"] == sum(len(r) for r in want.values())
            await live.close()

            # After the fact, from the stream's history: a subset of the subjects.
            hist = Subscriber(
                nats_server.url,
                ["fastfeed.spot.trades.BTCUSDT", "fastfeed.spot.depth.*"],
                start="history",
            )
            await hist.start()
            btc = feed.decoder.symbols.find("BTCUSDT")
            t = want["trades"]
            trades = raw(t)[t["symbol"] == btc].view(t.dtype)
            await wait_all(hist, {"trades": trades, "depth": want["depth"]})
            await asyncio.sleep(0.2)
            assert_identical(trades, held(hist, "trades"), "history trades")
            assert_identical(want["depth"], held(hist, "depth"), "history depth")
            assert hist.tickers.written == 0 and hist.events.written == 0 and hist.lost == 0
            await hist.close()

    run(main(), 60)


def test_unsent_publishes_are_taken_back_at_a_disconnect(nats_server):  # noqa: F811
    """nats-py keeps the publishes it could not write while it reconnects and writes them
    first once back, before the publisher's in-flight batches go again: the stream would store
    newer batches before older ones.  ``drop_unsent_publishes`` takes the publisher's own back
    (by their reply prefix); the others stay.  On a real client and server: after the
    reconnect the server delivers the foreign publishes and none of ours."""
    import nats

    from fastfeed.bus.publisher import drop_unsent_publishes

    async def main():
        nc = await nats.connect(
            nats_server.url, reconnect_time_wait=0.05, max_reconnect_attempts=-1
        )
        got: list[str] = []

        async def on(msg):
            got.append(msg.subject)

        await nc.subscribe("a.>", cb=on)  # replayed before the buffer is written
        await nc.flush()
        nats_server.stop()
        await until(lambda: nc.is_reconnecting, 10, "the client reconnecting")
        await nc.publish("a.ours", b"1", reply="_INBOX.ours.1", headers={"k": "v"})
        await nc.publish("a.ours2", b"2", reply="_INBOX.ours.2", headers={"k": "v"})
        await nc.publish("a.other", b"3", reply="_INBOX.other.1", headers={"k": "v"})
        await nc.publish("a.plain", b"4")
        assert drop_unsent_publishes(nc, "_INBOX.ours") == 2
        assert drop_unsent_publishes(nc, "_INBOX.ours") == 0
        nats_server.start()
        nats_server.wait_ready()
        await until(lambda: nc.is_connected, 15, "the client reconnected")
        await until(lambda: len(got) >= 2, 10, "the foreign publishes")
        await nc.flush()
        await asyncio.sleep(0.2)
        assert sorted(got) == ["a.other", "a.plain"], got
        await nc.close()

    run(main(), 60)


def test_stopped_server_drops_counted_and_recovers(nats_server, caplog):  # noqa: F811
    async def main():
        async with ExchangeSimulator(**SIM) as sim:
            feed = make_feed(sim, STREAMS)
            pub = Publisher(
                feed, nats_server.url, rings=DATA, queue_batches=16, reconnect_wait=0.05
            )
            async with feed:
                await pub.start()
                assert await pub.wait_connected(10)
                await pump(feed, 0.3)
                assert pub.stats()["acked_batches"] > 0
                nats_server.stop()
                before = feed.trades.written
                await until(lambda: pub.stats()["dropped_batches"] >= 20, 15, "drops", feed)
                # The feed went on as if nothing happened.
                assert feed.trades.written > before
                assert sum(feed.stats()["reconnects"].values()) == 0
                nats_server.start()
                nats_server.wait_ready()
                await until(lambda: pub.stats()["reconnects"] >= 1, 15, "publisher reconnect")
                # Recovered: the stream answers and the backlog (resent in-flight batches, the
                # queue) is gone; from here no batch may be dropped.
                await until(
                    lambda: pub.connected and (s := pub.stats())["queued"] + s["inflight"] == 0,
                    15,
                    "backlog sent",
                )
                dropped = pub.stats()["dropped_batches"]
                sent = pub.stats()["sent_rows"]
                await pump(feed, 1.0)
                await until(lambda: pub.stats()["sent_rows"] > sent, 10, "rows after recovery")
                assert pub.stats()["dropped_batches"] == dropped  # recovered: no more drops
                await pub.close(timeout=10)
            check_trades(feed)
            check_depth(feed)
            st = pub.stats()
            assert st["dropped_rows"] > 0 and st["disconnects"] >= 1
            assert st["dropped_rows_at_close"] == 0, st
            assert "dropped a batch" in caplog.text

            sub = Subscriber(nats_server.url, "fastfeed.spot.>", start="history")
            await sub.start()
            want = {n: published(feed, pub, n) for n in DATA}
            total = sum(len(r) for r in want.values())
            await until(lambda: sub.stats()["rows"] + sub.lost >= total, 15, "history")
            await asyncio.sleep(0.2)
            # Exactly the dropped rows are missing, and the subscriber counted each.
            assert sub.lost == st["dropped_rows"], (sub.stats(), st)
            for n, rows in want.items():
                got = held(sub, n)
                assert len(got) + sub.lost_by_ring.get(n, 0) == len(rows), n
                # The rows after the recovery are the feed's last rows.
                k = min(20, len(got))
                tail = got[-k:]
                for s in np.unique(tail["symbol"]):
                    a = raw(got)[got["symbol"] == s][-3:]
                    assert a.tobytes() == raw(rows)[rows["symbol"] == s][-3:].tobytes(), n
            await sub.close()

    with caplog.at_level(logging.WARNING, logger="fastfeed.bus"):
        run(main(), 60)


# ---------------------------------------------------------------------------- a cluster


def test_cluster_node_killed_loses_nothing(nats_cluster):  # noqa: F811
    async def main():
        async with ExchangeSimulator(**SIM) as sim:
            feed = make_feed(sim, STREAMS)
            pub = Publisher(
                feed, urls(nats_cluster), replicas=3, ack_timeout=1.0, reconnect_wait=0.05
            )
            async with feed:
                await pub.start()
                assert await pub.wait_connected(20)
                await until(lambda: pub.stats()["acked_batches"] > 20, 10, "acks")
                # SIGKILL the node the publisher talks to, mid-stream.
                victim = next(n for n in nats_cluster if pub.server == f"127.0.0.1:{n.port}")
                victim.kill()
                await until(lambda: pub.stats()["reconnects"] >= 1, 15, "publisher reconnect")
                sent = pub.stats()["acked_batches"]
                await pump(feed, 1.0)
                await until(lambda: pub.stats()["acked_batches"] > sent + 20, 15, "acks after")
                await pub.close(timeout=10)
            st = pub.stats()
            assert st["dropped_batches"] == 0, st
            survivor = next(n for n in nats_cluster if n is not victim)
            sub = Subscriber(survivor.url, "fastfeed.spot.>", start="history")
            await sub.start()
            want = {n: published(feed, pub, n) for n in (*DATA, "events")}
            await wait_all(sub, want, 20)
            await asyncio.sleep(0.2)
            for n, rows in want.items():
                assert_identical(rows, held(sub, n), f"cluster {n}")
            assert sub.lost == 0 and sub.stats()["duplicates"] == 0
            await sub.close()

    run(main(), 90)
