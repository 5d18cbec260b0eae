"""Helpers for the recording tests: a live run of the simulator with faults, recorded."""

from __future__ import annotations

import numpy as np
from feed_fixtures import make_feed, pump, until

from fastfeed import OrderBook
from fastfeed.sim import ExchangeSimulator

STREAMS = [
    "btcusdt@aggTrade",
    "btcusdt@depth@100ms",
    "ethusdt@aggTrade",
    "ethusdt@depth@100ms",
    "btcusdt@bookTicker",
]
SIM = dict(seed=5, rate=200, interval_scale=0.2)


def ring_rows(ring) -> np.ndarray:
    """Every row a ring ever held (the tests keep rings from wrapping)."""
    assert ring.written <= ring.capacity, "ring wrapped: the test needs a bigger ring"
    return ring.tail(ring.written)


def assert_rows_equal(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Field by field (a row's padding bytes are not part of it); NaN equals NaN."""
    assert got.dtype == want.dtype and len(got) == len(want), what
    for f in want.dtype.names:
        a, b = got[f], want[f]
        eq = (a == b) | ((a != a) & (b != b)) if a.dtype.kind == "f" else a == b
        bad = np.nonzero(~eq)[0]
        assert len(bad) == 0, f"{what}.{f} differs at row {bad[0]}: {a[bad[0]]} != {b[bad[0]]}"


async def live_run(out, *, book: bool = True, chunk_interval: float = 0.2) -> dict:
    """Record a feed (and an OrderBook on it) from the simulator through a reset, a depth
    gap and a rotation; returns what the live run saw."""
    from fastfeed.record import Recorder

    async with ExchangeSimulator(**SIM) as sim:
        rec = Recorder(out, chunk_interval=chunk_interval, rotate_bytes=8 << 10)
        feed = make_feed(sim, STREAMS, record=rec, stream_timeout=None)
        async with feed:
            ob = None
            if book:
                ob = OrderBook(
                    feed,
                    rest_url=sim.rest_url,
                    ssl=sim.client_ssl_context(),
                    workers=1,
                    retry_initial=0.02,
                    first_event_wait=0.1,
                    weight_limit=2000,
                )
                await ob.start()
                await ob.wait_synced(timeout=15)
            await pump(feed, 0.4)
            # a reconnect
            n0 = sum(feed.stats()["reconnects"].values())
            sim.faults.reset()
            await until(
                lambda: (
                    sum(feed.stats()["reconnects"].values()) > n0
                    and feed._routes[0].conn is not None
                ),
                10,
                "reconnect",
                feed,
            )
            await pump(feed, 0.4)
            # a gap
            g0 = sum(feed.stats()["gaps"].values())
            sim.faults.depth_gap(count=2)
            await until(lambda: sum(feed.stats()["gaps"].values()) > g0, 10, "gap", feed)
            await pump(feed, 0.3)
            # a rotation (serverShutdown, then the old connection closes)
            sim.faults.lifetime(3.0, notice=2.6)
            await until(lambda: feed.stats()["reconnects"].get("rotation", 0) >= 1, 15, "rotation")
            sim.faults.lifetime(3600)
            await pump(feed, 0.4)
            if ob is not None:
                await ob.wait_synced(timeout=15)
        # after the feed closed: nothing arrives between these numbers and the recording's end
        if ob is not None:
            await ob.close()
        rec.close()
        live = {
            "stats": feed.stats(),
            "trades": ring_rows(feed.trades),
            "depth": ring_rows(feed.depth),
            "tickers": ring_rows(feed.tickers),
            "events": ring_rows(feed.events),
            "tops": ring_rows(ob.tops) if ob else None,
            "book_events": ring_rows(ob.events) if ob else None,
        }
        live["recorder"] = rec.stats()
        return live
