"""Paced-latency clients for the three consumer paths (docs/decisions/0213-consumer-paths.md),
for ``bench_e2e.py``'s paced run:

    lat_us = await paced_clevel(info, n)     # C-level consumer (consumer.pxd), no Python
    lat_us = await paced_hook(info, n)       # synchronous hook (feed.add_hook)
    lat_us = await paced_async_for(info, n)  # async for _ in feed

``info`` is the simulator's first line (``start_sim`` in bench_e2e.py) with a paced run started
(it begins sending when the client connects).  Each connects a ``BinanceFeed`` with
``time_unit="us"``, takes the first ``n`` trades and depth *messages* (one per message, not
per level, as ``paced_latency`` counts them) and returns ``now - E`` in microseconds (float64,
length ``n``), ``now`` read when the strategy's code runs for that row: once per call of the
C consumer or the hook, once per wake of ``async for``.  The consumer is in place before the
connection opens, so no row arrives before it.

The C consumer (``_consumer_clients.pyx``) is compiled on first use against this tree's
fastfeed, into the same cache as ``_native.build_listeners``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _native import build_module  # noqa: E402
from bench_e2e import STREAMS, ctx  # noqa: E402  (bench_e2e owns these)


def build(cache_dir: str | os.PathLike | None = None) -> Any:
    """Import (compiling if needed) ``_consumer_clients.pyx``; returns the module."""
    import fastfeed

    return build_module(
        "_consumer_clients.pyx", "_ff_consumer_clients", [fastfeed.get_include()], b"", cache_dir
    )


def _feed(info: dict) -> Any:
    from fastfeed import BinanceFeed

    return BinanceFeed(
        STREAMS.split("/"), url=info["ws"], ssl=ctx(info), time_unit="us", stream_timeout=None
    )


async def _run(feed: Any, done: Any) -> None:
    """Start ``feed`` and wake until ``done()``; the feed's own start() runs as a task so a
    consumer waiting in ``wait()`` is in place before the first row."""
    start = asyncio.create_task(feed.start())
    try:
        await asyncio.sleep(0)  # start() has begun: wait() may be called
        while not done():
            if start.done() and start.exception() is not None:
                raise start.exception()  # type: ignore[misc]
            await feed.wait()
    finally:
        if not start.done():
            start.cancel()
        await feed.close()


async def paced_clevel(info: dict, n: int) -> np.ndarray:
    """Latency (us) at a C-level consumer: ``fastfeed/feed/consumer.pxd``.  The consumer also
    reads the process's CPU time itself when it has taken ``info["warmup"]`` and ``n``
    latencies (``info["own_cpu"]`` reports that window to bench_e2e); this coroutine only polls
    for the end, 20 times a second, so no Python runs per read."""
    mod = build()
    feed = _feed(info)
    c = mod.LatencyConsumer(feed, n, 1000, info.get("warmup", 0))
    start = asyncio.create_task(feed.start())
    try:
        while c.count < n:
            if start.done() and start.exception() is not None:
                raise start.exception()  # type: ignore[misc]
            await asyncio.sleep(0.05)
        window = c.cpu_window()
        if window is not None and "own_cpu" in info:
            info["own_cpu"](*window)
        return c.latencies_us()
    finally:
        c.close()
        if not start.done():
            start.cancel()
        await feed.close()


class _Rows:
    """The Python paths' strategy: the latency of every new trade and depth message, read by
    cursor from the rings, ``now`` taken once per call."""

    def __init__(self, feed: Any, n: int):
        self.trades, self.depth = feed.trades.reader("oldest"), feed.depth.reader("oldest")
        self.lat = np.empty(n, np.float64)
        self.n = 0

    def __call__(self) -> None:
        now = time.time_ns()
        t = self.trades.read()
        d = self.depth.read()
        d = d[(d["flags"] & 1) != 0]  # the last row of each depth message
        for e in (t["event_time"], d["event_time"]):
            k = min(len(e), len(self.lat) - self.n)
            self.lat[self.n : self.n + k] = (now - e[:k] * 1000) / 1e3
            self.n += k


async def paced_hook(info: dict, n: int) -> np.ndarray:
    """Latency (us) at a synchronous hook (``feed.add_hook``): no event-loop hop."""
    feed = _feed(info)
    rows = _Rows(feed, n)
    feed.add_hook(rows)
    await _run(feed, lambda: rows.n >= n)
    return rows.lat


async def paced_async_for(info: dict, n: int) -> np.ndarray:
    """Latency (us) at an ``async for`` / ``feed.wait()`` consumer: one hop."""
    feed = _feed(info)
    rows = _Rows(feed, n)

    def done() -> bool:
        rows()  # the strategy's code, run once per wake
        return rows.n >= n

    await _run(feed, done)
    return rows.lat


async def paced_all(
    info: dict, n: int, paths: tuple[str, ...] = ("c-level", "hook", "async for")
) -> dict[str, np.ndarray]:
    """Several paths on one feed at once (the same messages, the same moment of the machine):
    ``{"c-level": ..., "hook": ..., "async for": ...}`` in microseconds.  They run in that
    order after each read, so each includes the work of the ones before it: compare a pair
    (``paths=("c-level", "async for")``) to see one path's own cost."""
    mod = build()
    feed = _feed(info)
    c = mod.LatencyConsumer(feed, n, 1000) if "c-level" in paths else None
    hook = _Rows(feed, n)
    if "hook" in paths:
        feed.add_hook(hook)
    aio = _Rows(feed, n)
    use_aio = "async for" in paths

    def done() -> bool:
        if use_aio:
            aio()
        return all(
            x >= n
            for x in (
                c.count if c is not None else n,
                hook.n if "hook" in paths else n,
                aio.n if use_aio else n,
            )
        )

    try:
        await _run(feed, done)
        out = {"hook": hook.lat, "async for": aio.lat}
        if c is not None:
            out["c-level"] = c.latencies_us()
        return {k: out[k] for k in paths}
    finally:
        if c is not None:
            c.close()


async def _main() -> None:  # pragma: no cover - a manual check: python consumer_clients.py
    import argparse

    from bench_e2e import start_sim

    ap = argparse.ArgumentParser(description="paced latency of the three consumer paths")
    ap.add_argument("--rate", type=float, default=20000)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument(
        "--together", action="store_true", help="C + hook, then C + async for, on one feed each"
    )
    a = ap.parse_args()

    def show(name: str, lat: np.ndarray) -> None:
        pct = {q: float(np.percentile(lat, q)) for q in (50, 99, 99.9)}
        print(
            f"{name:10s} n={len(lat)} p50 {pct[50]:.1f} us  p99 {pct[99]:.1f} us  "
            f"p99.9 {pct[99.9]:.1f} us"
        )

    runs: list[tuple[str, Any]] = [
        ("c-level", paced_clevel),
        ("hook", paced_hook),
        ("async for", paced_async_for),
    ]
    if a.together:
        runs = [
            (f"{x} + {y}", lambda i, n, p=(x, y): paced_all(i, n, p))
            for x, y in (("c-level", "hook"), ("c-level", "async for"))
        ]
    for name, fn in runs:
        p, info = start_sim(["--paced", str(a.rate), "--paced-count", str(a.n)])
        try:
            res = await fn(info, a.n)
        finally:
            p.terminate()
            p.wait()
        print(name)
        for k, lat in res.items() if isinstance(res, dict) else [(name, res)]:
            show(k, lat)


if __name__ == "__main__":
    from fastfeed import run

    run(_main())
