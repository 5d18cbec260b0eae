"""Allocations and memory over the real transport (TLS loopback, simulator blast)."""
import asyncio
import gc
import sys

from fastfeed.sim import ExchangeSimulator
from fastfeed.feed import _rss_bytes
from feed_fixtures import make_feed, until
from sim_fixtures import run

N = 1_000_000


def test_alloc_flat_and_rss_over_1m_messages_and_100_reconnects():
    async def body():
        async with ExchangeSimulator(symbols=["BTCUSDT"], seed=1, rate=1) as sim:
            async with make_feed(sim, ["btcusdt@aggTrade", "btcusdt@depth@100ms"],
                                 stream_timeout=None, trades=1 << 16, depth=1 << 17) as feed:
                sink = feed.sink

                def received():
                    c = sink.counters()
                    return c["accepted"]["aggTrade"] + c["accepted"]["depth"] + c["duplicates"]["aggTrade"] + c["duplicates"]["depth"]

                async def reconnects(n):
                    for i in range(n):
                        n_before = sum(feed.stats()["reconnects"].values())
                        sim.faults.reset()
                        await until(lambda: sum(feed.stats()["reconnects"].values()) > n_before
                                    and feed._routes[0].conn is not None, 10, f"reconnect {i}", feed)

                # Warm-up at full size: the simulator shares this process, so its send
                # buffers and picows's read buffer must reach their steady size first.
                prepared = sim.prepare_blast(N)
                base = received()
                await sim.blast(N, prepared=prepared)
                await until(lambda: received() >= base + N, 120, "warm-up", feed)
                await reconnects(10)
                gc.collect()
                gc.disable()
                rss0 = _rss_bytes()
                base = received()
                blocks0 = sys.getallocatedblocks()
                await sim.blast(N, prepared=prepared)
                await until(lambda: received() >= base + N, 120, "1M messages", feed)
                blocks1 = sys.getallocatedblocks()
                gc.enable()
                assert blocks1 - blocks0 < 2000, (blocks0, blocks1)   # flat: not ~N
                rss_mid = _rss_bytes()
                await reconnects(100)
                gc.collect()
                rss1 = _rss_bytes()
                print("blocks", blocks1 - blocks0, "rss delta", rss1 - rss0, "after blast", rss_mid - rss0)
                assert rss1 - rss0 < 2 * 1024 * 1024, (rss0, rss1)
    run(body(), 280)
