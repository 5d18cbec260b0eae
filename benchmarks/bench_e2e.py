"""End-to-end client benchmark: TLS on loopback, the simulator's blast in a separate process.

    PYTHONPATH=. python3 benchmarks/bench_e2e.py                 # 1,000,000 messages, 3 rounds
    PYTHONPATH=. python3 benchmarks/bench_e2e.py --n 300000 --repeat 1 --only fastfeed,counting

The stream is the simulator's blast: a combined ``btcusdt@aggTrade`` + ``btcusdt@depth@100ms``
feed, alternating the two kinds (depthUpdates carry 3-43 levels, 7.4 on average; payloads are
~174 B and ~352 B), pre-encoded before the clock starts.

Fairness: every client gets the same bytes over the same TLS (the simulator's self-signed CA,
verification on), from a fresh ``fastfeed sim --blast N`` process, and runs in a process of its
own, so ``process_time`` counts that client alone (not the simulator, not an earlier client's
garbage).  The clock starts once the WebSocket handshake is done and stops at the N-th message.
Clients run in a rotated order each round and the table shows the median of the rounds: the
machine is shared, so compare the ratios, which come from the same run.

Then receive latency at a fixed paced rate: the simulator stamps ``E`` (in microseconds) when
it writes each frame; latency is ``recv - E`` per message (client and simulator share the host
clock), for fastfeed taken exactly from the rings' rows (``recv_ns`` is the time of the socket
read), and for picows + orjson as a reference on the same stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import time

STREAMS = "btcusdt@aggTrade/btcusdt@depth@100ms"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def start_sim(extra):
    p = subprocess.Popen(
        [sys.executable, "-m", "fastfeed.cli", "sim", "--symbols", "BTCUSDT", "--rate", "1"]
        + extra,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    info = json.loads(p.stdout.readline())
    return p, info


def ctx(info):
    return ssl.create_default_context(cafile=info["ca"])


# ---------------------------------------------------------------------------- clients
# Each returns (wall seconds, CPU seconds, extra dict) for n messages.


async def c_fastfeed(url, info, n):
    from fastfeed import BinanceFeed

    async with BinanceFeed(
        STREAMS.split("/"), url=info["ws"], ssl=ctx(info), stream_timeout=None, start_timeout=30
    ) as feed:
        sink = feed.sink
        t0, c0 = time.perf_counter(), time.process_time()
        # A consumer woken once per socket read; accepted_total is a plain C counter.
        if hasattr(sink, "accepted_total"):
            while sink.accepted_total < n:
                await feed.wait()
        else:  # older builds (before/after comparisons)
            while sum(sink.counters()["accepted"].values()) < n:
                await feed.wait()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        st = feed.stats()
        return (
            wall,
            cpu,
            {
                "reads": st["reads"],
                "dups": sum(st["duplicates"].values()),
                "gaps": sum(st["gaps"].values()),
            },
        )


async def _picows(url, info, n, factory):
    from picows import ws_connect

    done = asyncio.get_running_loop().create_future()
    tr, _ = await ws_connect(
        lambda: factory(n, done), url, ssl_context=ctx(info), max_frame_size=1 << 20
    )
    t0, c0 = time.perf_counter(), time.process_time()
    await done
    r = time.perf_counter() - t0, time.process_time() - c0, {}
    tr.disconnect()
    return r


def counting_factory(n, done):
    from _native import build_listeners

    lis = build_listeners().CountingListener()
    lis.target = n
    lis.done = lambda: done.set_result(None)
    return lis


def decode_factory(n, done):
    from _native import build_listeners

    lis = build_listeners().DecodeListener()
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
            return time.perf_counter() - t0, time.process_time() - c0, {}


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
        return time.perf_counter() - t0, time.process_time() - c0, {}


def _orjson(u, i, n):
    import orjson

    return _picows(u, i, n, py_factory(orjson.loads))


def _msgspec(u, i, n):
    import msgspec

    return _picows(u, i, n, py_factory(msgspec.json.Decoder().decode))


CLIENTS = {  # name -> (factory, modules it needs)
    "fastfeed": (c_fastfeed, ()),
    "cython counting listener": (lambda u, i, n: _picows(u, i, n, counting_factory), ()),
    # fastfeed's floor: its decoder on the counting listener, without the feed around it
    "cython decode-only listener": (lambda u, i, n: _picows(u, i, n, decode_factory), ()),
    "picows + orjson": (_orjson, ("orjson",)),
    "picows + msgspec": (_msgspec, ("msgspec",)),
    "aiohttp + orjson": (c_aiohttp, ("aiohttp", "orjson")),
    "websockets + json": (c_websockets, ("websockets",)),
}


def importlib_util_find(m):
    import importlib.util

    return importlib.util.find_spec(m)


def available(names):
    import importlib.util

    out = []
    for name in names:
        missing = [m for m in CLIENTS[name][1] if importlib.util.find_spec(m) is None]
        if missing:
            print(f"{name}: {', '.join(missing)} missing, skipped")
        else:
            out.append(name)
    return out


def child(name, info, n):
    """Runs in the client's own process: one client, one connection, n messages."""
    from fastfeed import run

    url = info["ws"] + "/stream?streams=" + STREAMS
    wall, cpu, extra = run(CLIENTS[name][0](url, info, n))
    print(json.dumps(dict(extra, wall=wall, cpu=cpu)), flush=True)


def measure(name, n, timeout, sim_args=None, script=__file__):
    """One client run in a process of its own (``script --child name``) against a fresh
    simulator (``sim_args``, default a blast of ``n``); returns the child's JSON line."""
    sim, info = start_sim(sim_args or ["--blast", str(n)])
    try:
        out = subprocess.run(
            [
                sys.executable,
                os.path.abspath(script),
                "--child",
                name,
                "--info",
                json.dumps(info),
                "--n",
                str(n),
            ],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{name} failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        sim.terminate()
        sim.wait()


# ---------------------------------------------------------------------------- latency


async def paced_latency(rate, n):
    import numpy as np

    from fastfeed import BinanceFeed

    p, info = start_sim(["--paced", str(rate), "--paced-count", str(n)])
    try:
        async with BinanceFeed(
            STREAMS.split("/"),
            url=info["ws"],
            ssl=ctx(info),
            time_unit="us",
            stream_timeout=None,
            depth=1 << 20,
        ) as feed:
            while feed.sink.accepted_total < n:
                await feed.wait()
            tr = feed.trades.tail(feed.trades.written)
            de = feed.depth.tail(feed.depth.written)
            first = np.ones(len(de), bool)  # one row per depth message
            first[1:] = de["last_id"][1:] != de["last_id"][:-1]
            rows = [
                (tr["recv_ns"] - tr["event_time"] * 1000),
                (de["recv_ns"][first] - de["event_time"][first] * 1000),
            ]
            lat = np.concatenate(rows) / 1e3
            return {p: float(np.percentile(lat, p)) for p in (50, 99, 99.9)}, len(lat)
    finally:
        p.terminate()
        p.wait()


async def paced_latency_peer(rate, n):
    """The same paced stream through picows + orjson (Python listener), for context: the
    tail of both comes mostly from the machine and the simulator, not from the client."""
    import numpy as np
    import orjson
    from picows import WSListener, WSMsgType, ws_connect

    class L(WSListener):
        def __init__(self, done):
            super().__init__()
            self.lat, self.done = [], done

        def on_ws_frame(self, tr, frame):
            if frame.msg_type == WSMsgType.TEXT:
                now = time.time_ns()
                self.lat.append(now / 1e3 - orjson.loads(frame.get_payload_as_bytes())["data"]["E"])
                if len(self.lat) == n:
                    self.done.set_result(None)

    p, info = start_sim(["--paced", str(rate), "--paced-count", str(n)])
    try:
        done = asyncio.get_running_loop().create_future()
        url = info["ws"] + "/stream?streams=" + STREAMS + "&timeUnit=MICROSECOND"
        tr, lis = await ws_connect(lambda: L(done), url, ssl_context=ctx(info))
        await done
        tr.disconnect()
        lat = np.array(lis.lat)
        return {p: float(np.percentile(lat, p)) for p in (50, 99, 99.9)}, len(lat)
    finally:
        p.terminate()
        p.wait()


# ---------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="messages per client run")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (median reported)")
    ap.add_argument("--only", default="", help="comma-separated substrings of client names")
    ap.add_argument("--paced", type=float, default=5000, help="paced rate, msgs/s (0: skip)")
    ap.add_argument("--paced-n", type=int, default=20000)
    ap.add_argument("--timeout", type=float, default=900, help="per client run, seconds")
    ap.add_argument("--json", help="also write every figure to this JSON file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--info", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, json.loads(a.info), a.n)

    names = list(CLIENTS)
    if a.only:
        keys = [k.strip() for k in a.only.split(",") if k.strip()]
        names = [x for x in names if any(k in x for k in keys)]
    names = available(names)
    runs = {x: [] for x in names}
    for r in range(a.repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            res = measure(name, a.n, a.timeout)
            runs[name].append(res)
            extra = {k: v for k, v in res.items() if k not in ("wall", "cpu")}
            print(
                f"round {r + 1} {name:26s} {res['cpu'] / a.n * 1e9:8.0f} ns/msg CPU "
                f"{a.n / res['wall']:10.0f} msgs/s {extra or ''}",
                flush=True,
            )

    if a.repeat < 1:
        names = []  # --repeat 0: latency only
    ns = {x: statistics.median(v["cpu"] for v in runs[x]) / a.n * 1e9 for x in names}
    rate = {x: statistics.median(a.n / v["wall"] for v in runs[x]) for x in names}
    report = {
        "n": a.n,
        "repeat": a.repeat,
        "blast": {
            x: {"cpu_ns_per_msg": ns[x], "msgs_per_s": rate[x], "runs": runs[x]} for x in names
        },
        "paced": {},
    }
    oj, cnt = ns.get("picows + orjson"), ns.get("cython counting listener")
    if names:
        print(
            f"\n{a.n:,} messages per run, median of {a.repeat} round(s); CPU = client process time\n"
        )
        print("| client | CPU ns/msg | msgs/s | CPU vs picows+orjson | CPU vs counting listener |")
        print("|---|---|---|---|---|")
    for x in names:
        r1 = f"{ns[x] / oj:.3f}" if oj else "-"
        r2 = f"{ns[x] / cnt:.2f}" if cnt else "-"
        print(f"| {x} | {ns[x]:.0f} | {rate[x]:.0f} | {r1} | {r2} |")
    ff = ns.get("fastfeed")
    if ff and oj:
        print(
            f"\nbar 1: fastfeed <= 1/8 of picows+orjson: {ff / oj:.3f} -> {'PASS' if ff * 8 <= oj else 'FAIL'}"
        )
    if ff and cnt:
        # per round too: the ratio within one round is the least noisy figure
        per = [
            runs["fastfeed"][i]["cpu"] / runs["cython counting listener"][i]["cpu"]
            for i in range(a.repeat)
        ]
        print(
            f"bar 2: fastfeed <= 1.5x counting listener: {ff / cnt:.2f}x "
            f"(per round {', '.join(f'{x:.2f}' for x in per)}) -> {'PASS' if ff <= 1.5 * cnt else 'FAIL'}"
        )
    if a.paced and a.paced_n:
        from fastfeed import run

        print(
            f"\nreceive latency at {a.paced:.0f} msgs/s paced ({a.paced_n} messages; recv - E, us)\n"
        )
        print("| client | p50 | p99 | p99.9 |\n|---|---|---|---|")
        for name, fn, mods in (
            ("fastfeed", paced_latency, ()),
            ("picows + orjson", paced_latency_peer, ("orjson",)),
        ):
            if any(importlib_util_find(m) is None for m in mods):
                continue
            pct, k = run(fn(a.paced, a.paced_n))
            print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in pct.values()) + " |", flush=True)
            report["paced"][name] = {
                "rate": a.paced,
                "messages": k,
                "p50_us": pct[50],
                "p99_us": pct[99],
                "p99.9_us": pct[99.9],
            }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
