"""End-to-end client benchmark: TLS loopback, simulator blast in a separate process.

    PYTHONPATH=. python3 benchmarks/bench_e2e.py [--n 1000000] [--paced 5000 --paced-n 20000]

For each client: connect to a fresh ``fastfeed sim --blast N`` subprocess (combined
aggTrade+depthUpdate), receive N messages, report client CPU per message (process_time) and
msgs/s.  Then paced latency (recv - sendNs) percentiles for fastfeed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import time

STREAMS = "btcusdt@aggTrade/btcusdt@depth@100ms"


def start_sim(extra):
    p = subprocess.Popen([sys.executable, "-m", "fastfeed.cli", "sim", "--symbols", "BTCUSDT",
                          "--rate", "1"] + extra, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()))
    info = json.loads(p.stdout.readline())
    return p, info


def ctx(info):
    c = ssl.create_default_context(cafile=info["ca"])
    return c


async def c_fastfeed(url, info, n):
    from fastfeed.feed import BinanceFeed
    async with BinanceFeed(STREAMS.split("/"), url=info["ws"], ssl=ctx(info), stream_timeout=None,
                           start_timeout=30) as feed:
        t0, c0 = time.perf_counter(), time.process_time()
        while True:
            c = feed.sink.counters()
            if c["accepted"]["aggTrade"] + c["accepted"]["depth"] >= n:
                break
            await feed.wait()
        return time.perf_counter() - t0, time.process_time() - c0


async def _picows(url, info, n, factory):
    from picows import ws_connect
    done = asyncio.get_running_loop().create_future()
    tr, lis = await ws_connect(lambda: factory(n, done), url, ssl_context=ctx(info), max_frame_size=1 << 20)
    t0, c0 = time.perf_counter(), time.process_time()
    await done
    r = time.perf_counter() - t0, time.process_time() - c0
    tr.disconnect()
    return r


def counting_factory(n, done):
    from fastfeed._listener import CountingListener
    lis = CountingListener()
    lis.target = n
    lis.done = lambda: done.set_result(None)
    return lis


def py_factory(parse):
    from picows import WSListener, WSMsgType

    class L(WSListener):
        def __init__(self, n, done):
            super().__init__()
            self.n, self.done, self.k = n, done, 0

        def on_ws_frame(self, tr, frame):
            if frame.msg_type == WSMsgType.TEXT:
                parse(frame.get_payload_as_bytes())
                self.k += 1
                if self.k == self.n:
                    self.done.set_result(None)
    return L


async def c_aiohttp(url, info, n):
    import aiohttp
    import orjson
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url, ssl=ctx(info), max_msg_size=1 << 20) as ws:
            t0, c0 = time.perf_counter(), time.process_time()
            k = 0
            async for m in ws:
                orjson.loads(m.data)
                k += 1
                if k == n:
                    break
            return time.perf_counter() - t0, time.process_time() - c0


async def c_websockets(url, info, n):
    import websockets
    async with websockets.connect(url, ssl=ctx(info), max_size=1 << 20) as ws:
        t0, c0 = time.perf_counter(), time.process_time()
        k = 0
        async for m in ws:
            json.loads(m)
            k += 1
            if k == n:
                break
        return time.perf_counter() - t0, time.process_time() - c0


def clients():
    out = [("fastfeed", c_fastfeed),
           ("cython counting listener", lambda u, i, n: _picows(u, i, n, counting_factory))]
    try:
        import orjson
        out.append(("picows + orjson", lambda u, i, n: _picows(u, i, n, py_factory(orjson.loads))))
    except ImportError:
        print("orjson missing: skipped")
    try:
        import msgspec
        dec = msgspec.json.Decoder()
        out.append(("picows + msgspec", lambda u, i, n: _picows(u, i, n, py_factory(dec.decode))))
    except ImportError:
        print("msgspec missing: skipped")
    try:
        import aiohttp, orjson  # noqa: F401,E401
        out.append(("aiohttp + orjson", c_aiohttp))
    except ImportError:
        print("aiohttp missing: skipped")
    try:
        import websockets  # noqa: F401
        out.append(("websockets + json", c_websockets))
    except ImportError:
        print("websockets missing: skipped")
    return out


async def paced_latency(rate, n):
    from fastfeed.feed import BinanceFeed
    p, info = start_sim(["--paced", str(rate), "--paced-count", str(n)])
    try:
        async with BinanceFeed(STREAMS.split("/"), url=info["ws"], ssl=ctx(info), time_unit="us",
                               stream_timeout=None) as feed:
            while sum(feed.sink.counters()["accepted"].values()) < n:
                await feed.wait()
            return feed.latency_percentiles((50, 99, 99.9))
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--paced", type=float, default=5000)
    ap.add_argument("--paced-n", type=int, default=20000)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    from fastfeed.feed import run
    rows = []
    for name, fn in clients():
        if a.only and a.only not in name:
            continue
        p, info = start_sim(["--blast", str(a.n)])
        try:
            url = info["ws"] + "/stream?streams=" + STREAMS
            wall, cpu = run(fn(url, info, a.n))
            rows.append((name, cpu / a.n * 1e9, a.n / wall))
            print(f"{name:28s} {cpu / a.n * 1e9:9.0f} ns/msg CPU  {a.n / wall:12.0f} msgs/s", flush=True)
        finally:
            p.terminate()
            p.wait()
    base = {r[0]: r[1] for r in rows}
    print("\n| client | CPU ns/msg | msgs/s | CPU vs fastfeed |\n|---|---|---|---|")
    ff = base.get("fastfeed")
    for name, ns, rate in rows:
        print(f"| {name} | {ns:.0f} | {rate:.0f} | {ns / ff:.2f}x |" if ff else f"| {name} | {ns:.0f} | {rate:.0f} | |")
    if ff and "picows + orjson" in base:
        print(f"bar 1: fastfeed <= 1/8 picows+orjson: {ff:.0f} vs {base['picows + orjson'] / 8:.0f} -> {'PASS' if ff <= base['picows + orjson'] / 8 else 'FAIL'}")
    if ff and "cython counting listener" in base:
        c = base["cython counting listener"]
        print(f"bar 2: fastfeed <= 1.5x counting: {ff / c:.2f}x -> {'PASS' if ff <= 1.5 * c else 'FAIL'}")
    if a.paced:
        print("paced latency us (recv - E, E in us):", run(paced_latency(a.paced, a.paced_n)))


if __name__ == "__main__":
    main()
