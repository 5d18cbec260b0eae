"""Helpers for the feed tests: run a feed against the simulator and check the rings."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from fastfeed import BinanceFeed, EventReason

FAST = dict(
    backoff_initial=0.02,
    backoff_max=0.2,
    start_timeout=10.0,
    connect_timeout=3.0,
    rotation_timeout=5.0,
    ack_timeout=3.0,
)


def make_feed(sim, streams, **kw) -> BinanceFeed:
    opts = dict(FAST)
    opts.update(kw)
    return BinanceFeed(
        streams, market=sim.config.market, url=sim.ws_url, ssl=sim.client_ssl_context(), **opts
    )


async def pump(feed: BinanceFeed, seconds: float) -> None:
    """Consume wake-ups for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            await asyncio.wait_for(feed.wait(), max(0.001, end - time.monotonic()))
        except asyncio.TimeoutError:
            pass


async def until(pred, timeout=10.0, what="condition", feed=None):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(
                f"timed out waiting for {what}" + (f": {feed.stats()}" if feed else "")
            )
        await asyncio.sleep(0.005)


def gap_positions(feed, slot: int, ring_field: str) -> set:
    ev = feed.events.tail(min(feed.events.written, feed.events.capacity))
    m = (ev["reason"] == EventReason.GAP) & (ev["slot"] == slot)
    return set(int(x) for x in ev[ring_field][m])


def check_trades(feed) -> int:
    """No duplicate trade ids per symbol; every id jump sits exactly at a GAP marker."""
    rows = feed.trades.tail(feed.trades.written)
    assert feed.trades.written <= feed.trades.capacity
    gaps = gap_positions(feed, 0, "trades_pos")
    for sym in np.unique(rows["symbol"]):
        idx = np.nonzero(rows["symbol"] == sym)[0]
        ids = rows["trade_id"][idx]
        assert np.all(np.diff(ids) > 0), "duplicate or out-of-order trade ids"
        for j in np.nonzero(np.diff(ids) != 1)[0]:
            assert int(idx[j + 1]) in gaps, f"unmarked trade gap {ids[j]} -> {ids[j + 1]}"
    return len(rows)


def check_depth(feed) -> int:
    """Depth events per symbol chain (U == previous u + 1) except at GAP markers; no repeats."""
    rows = feed.depth.tail(feed.depth.written)
    assert feed.depth.written <= feed.depth.capacity
    gaps = gap_positions(feed, 2, "depth_pos")
    n = 0
    for sym in np.unique(rows["symbol"]):
        idx = np.nonzero(rows["symbol"] == sym)[0]
        last_u = None
        prev_pos = None
        for k in idx:
            u = int(rows["last_id"][k])
            if prev_pos is not None and u == last_u:
                continue  # another level of the same event
            U = int(rows["first_id"][k])
            if last_u is not None:
                assert u > last_u, "duplicate depth event"
                pu = int(rows["prev_last_id"][k])
                if (pu != last_u) if pu >= 0 else (last_u + 1 != U):
                    assert int(k) in gaps, f"unmarked depth gap {last_u} -> {U}"
            last_u, prev_pos = u, k
            n += 1
    return n
