"""Sharding, redundant legs and book budgets, measured against the simulator.

Three measurements, each a ratio against a reference taken in the same run:

1. **CPU per message, several connections vs one.**  600 symbols x (aggTrade +
   depth@100ms) = 1,200 streams at a steady market rate; the feed either spreads them over
   connections of at most ``--cap`` streams or carries them all on one (the simulator's
   stream cap raised for it).  The client's own CPU time (``process_time``; the simulator
   runs in a child process) per accepted message, rounds interleaved, medians.
2. **Latency with a slow leg.**  ``recv - E`` percentiles (``timeUnit=MICROSECOND``) of the
   rows that reached the rings, for one undelayed connection (the best single leg), one
   connection delayed by a random 0-5 ms per message, and ``redundancy=2`` with one of its
   two legs so delayed: three feeds at once in one process, on the same messages, so the
   machine's noise is common to the three.  The first copy wins, so the pair should match
   the best leg.  The ratio is the median over rounds of each round's p99 ratio.
3. **300 books vs the weight budget.**  The time until 300 books are valid, against the
   budget's lower bound (the time the budget needs to send 300 snapshots of weight 50 at
   its cap), and the ETA the order book reported at the start.  The simulator counts weight
   per 1 s window (the exchange per minute), so seconds here are minutes there.

    python benchmarks/bench_shard.py                  # all three, about 3 minutes
    python benchmarks/bench_shard.py --only cpu --rounds 5 --messages 60000

The machine is shared: trust the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

SYMBOLS = tuple(f"S{i:03d}USDT" for i in range(600))


def streams(symbols=SYMBOLS) -> list[str]:
    return [f"{s.lower()}@{k}" for s in symbols for k in ("aggTrade", "depth@100ms")]


def endpoint(sim):
    from fastfeed import Endpoint

    return Endpoint("spot", sim.ws_url, sim.rest_url, sim.client_ssl_context())


# ---------------------------------------------------------------------------- 1. CPU


async def cpu_round(sim, cap: int, n: int) -> dict:
    from fastfeed import BinanceFeed

    async with BinanceFeed(
        streams(),
        endpoint=endpoint(sim),
        max_streams_per_connection=cap,
        stream_timeout=None,
        start_timeout=60,
        ack_timeout=30,
    ) as feed:
        sink = feed.sink
        # settle: every connection subscribed and delivering
        start = sink.accepted_total
        while sink.accepted_total < start + 2000:
            await feed.wait()
        a0, t0, c0 = sink.accepted_total, time.perf_counter(), time.process_time()
        while sink.accepted_total < a0 + n:
            await feed.wait()
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        got = sink.accepted_total - a0
        st = feed.stats()
        return {
            "connections": len(st["connections"]),
            "cpu_ns_per_msg": cpu / got * 1e9,
            "rate": got / wall,
            "gaps": sum(st["gaps"].values()),
            "dups": sum(st["duplicates"].values()),
        }


async def bench_cpu(args) -> dict:
    from fastfeed.sim.remote import RemoteSimulator

    async with RemoteSimulator(
        symbols=SYMBOLS, seed=1, rate=args.rate, levels=20, max_streams=2048, activity=1.0
    ) as sim:
        out: dict[str, list] = {"several": [], "one": []}
        for r in range(args.rounds):
            order = ["several", "one"] if r % 2 == 0 else ["one", "several"]
            for name in order:
                cap = args.cap if name == "several" else 2048
                res = await cpu_round(sim, cap, args.messages)
                out[name].append(res)
                print(f"  round {r + 1} {name:8s} {json.dumps(res)}", flush=True)
        med = {k: statistics.median(x["cpu_ns_per_msg"] for x in v) for k, v in out.items()}
        return {
            "streams": len(streams()),
            "cap": args.cap,
            "messages_per_round": args.messages,
            "rounds": out,
            "median_cpu_ns_per_msg": med,
            "ratio_several_vs_one": med["several"] / med["one"],
        }


# ---------------------------------------------------------------------------- 2. latency


def _latencies(feed, t0: int, d0: int):
    """recv - E in microseconds of every message that reached the rings since (t0, d0)."""
    import numpy as np

    tr = feed.trades.tail(feed.trades.written - t0)
    de = feed.depth.tail(feed.depth.written - d0)
    first = np.ones(len(de), bool)  # one row per depth message
    first[1:] = de["last_id"][1:] != de["last_id"][:-1]
    return (
        np.concatenate(
            [
                tr["recv_ns"] - tr["event_time"] * 1000,
                de["recv_ns"][first] - de["event_time"][first] * 1000,
            ]
        )
        / 1e3
    )


CASES = {  # name: (redundancy, legs delayed by 0-5 ms per message)
    "best_single": (1, []),
    "delayed_single": (1, [0]),
    "redundant_one_delayed": (2, [1]),
}


async def latency_round(sim, n: int) -> dict:
    """The three cases at once, in one process, on the same messages: what the machine does
    to one it does to all (a shared machine's noise is common to the three)."""
    import contextlib

    import numpy as np

    from fastfeed import BinanceFeed

    async with contextlib.AsyncExitStack() as stack:
        feeds = {}
        for name, (red, _delayed) in CASES.items():
            feeds[name] = await stack.enter_async_context(
                BinanceFeed(
                    streams(SYMBOLS[:20]),
                    endpoint=endpoint(sim),
                    redundancy=red,
                    time_unit="us",
                    stream_timeout=None,
                    depth=1 << 20,
                    trades=1 << 18,
                )
            )
        peers = dict((port, cid) for cid, port in await sim.call("peers"))
        for name, (_red, delayed) in CASES.items():
            for leg in delayed:
                port = feeds[name]._routes[leg].conn._socket().getsockname()[1]
                await sim.call("faults.slow", 0.0, peers[port], 0.005)
        await asyncio.sleep(0.2)  # frames written before the delay are out of the way
        marks = {k: (f.trades.written, f.depth.written) for k, f in feeds.items()}
        a0 = {k: f.sink.accepted_total for k, f in feeds.items()}
        while any(f.sink.accepted_total - a0[k] < n for k, f in feeds.items()):
            await asyncio.sleep(0.05)
        out = {}
        for name, f in feeds.items():
            lat = _latencies(f, *marks[name])
            conns = f.stats()["connections"]
            out[name] = {
                "n": len(lat),
                **{f"p{p}": float(np.percentile(lat, p)) for p in (50, 99, 99.9)},
                "wins": [c["wins"] for c in conns],
                "behind_ms": [c["behind_ms"] for c in conns],
                "gaps": sum(f.stats()["gaps"].values()),
            }
        return out


async def bench_latency(args) -> dict:
    from fastfeed.sim.remote import RemoteSimulator

    # a 1 ms market tick: recv - E measures the path, not the simulator's batching
    async with RemoteSimulator(
        symbols=SYMBOLS[:20], seed=2, rate=args.latency_rate, levels=20, tick=0.001
    ) as sim:
        out: dict[str, list] = {k: [] for k in CASES}
        for r in range(args.rounds):
            res = await latency_round(sim, args.latency_n)
            for name, v in res.items():
                out[name].append(v)
                print(f"  round {r + 1} {name:22s} {json.dumps(v)}", flush=True)
        med = {
            k: {p: statistics.median(x[p] for x in v) for p in ("p50", "p99", "p99.9")}
            for k, v in out.items()
        }
        ratios = [
            x["p99"] / y["p99"]
            for x, y in zip(out["redundant_one_delayed"], out["best_single"], strict=True)
        ]
        return {
            "rounds": out,
            "median_us": med,
            "p99_redundant_vs_best_single": statistics.median(ratios),
            "p99_redundant_vs_best_single_per_round": ratios,
            "p99_delayed_vs_best_single": statistics.median(
                x["p99"] / y["p99"]
                for x, y in zip(out["delayed_single"], out["best_single"], strict=True)
            ),
        }


# ---------------------------------------------------------------------------- 3. books


async def bench_books(args) -> dict:
    from fastfeed import BinanceFeed, OrderBook
    from fastfeed.book.snapshots import WeightBudget, depth_weight
    from fastfeed.sim.remote import RemoteSimulator

    syms = tuple(f"B{i:03d}USDT" for i in range(args.books))
    async with RemoteSimulator(
        symbols=syms, seed=3, rate=2.0, levels=20, weight_limit=6000, weight_window=1.0
    ) as sim:
        out = []
        for r in range(args.rounds):
            async with BinanceFeed(
                [f"{s.lower()}@depth@100ms" for s in syms],
                endpoint=endpoint(sim),
                start_timeout=60,
            ) as feed:
                ob = OrderBook(
                    feed, weight_limit=6000, weight_window=1.0, workers=4, limit=args.limit
                )
                lower = WeightBudget(6000, 0.5, 1.0).time_to_spend(
                    [depth_weight("spot", args.limit)] * len(syms)
                )
                t0 = time.monotonic()
                async with ob:
                    await asyncio.sleep(0.05)
                    eta = ob.eta()
                    await ob.wait_synced(timeout=300)
                    took = time.monotonic() - t0
                    st = ob.stats()
                res = {
                    "seconds": took,
                    "lower_bound_s": lower,
                    "eta_at_start_s": eta,
                    "ratio_vs_lower_bound": took / lower if lower else None,
                    "fetches": st["snapshots"].get("fetches", 0),
                    "rate_limited": st["snapshots"].get("rate_limited", 0),
                }
                out.append(res)
                print(f"  round {r + 1} books {json.dumps(res)}", flush=True)
            await asyncio.sleep(1.1)  # a fresh weight window for the next round
        lim = await sim.call("limits")
        return {
            "books": len(syms),
            "limit": args.limit,
            "rounds": out,
            "median_seconds": statistics.median(x["seconds"] for x in out),
            "median_ratio_vs_lower_bound": statistics.median(
                x["ratio_vs_lower_bound"] for x in out
            ),
            "simulator_violations": lim["violations"],
            "simulator_peak_weight": lim["peaks"]["weight"],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="cpu,latency,books")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=30000, help="per CPU round")
    ap.add_argument("--rate", type=float, default=5.0, help="market actions/s per symbol")
    ap.add_argument("--cap", type=int, default=300, help="streams per connection (several)")
    ap.add_argument("--latency-n", type=int, default=10000)
    ap.add_argument("--latency-rate", type=float, default=20.0)
    ap.add_argument("--books", type=int, default=300)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    from fastfeed import run

    only = set(args.only.split(","))
    res: dict = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC")}
    if "cpu" in only:
        print("1. CPU per message: 1,200 streams on several connections vs one", flush=True)
        res["cpu"] = run(bench_cpu(args))
        print(json.dumps(res["cpu"]["median_cpu_ns_per_msg"]), flush=True)
    if "latency" in only:
        print("2. recv - E with one leg delayed by 0-5 ms per message", flush=True)
        res["latency"] = run(bench_latency(args))
        print(json.dumps(res["latency"]["median_us"]), flush=True)
    if "books" in only:
        print(f"3. time until {args.books} books are valid vs the budget's bound", flush=True)
        res["books"] = run(bench_books(args))
    summary = {
        k: v
        for k, v in {
            "cpu_several_vs_one": res.get("cpu", {}).get("ratio_several_vs_one"),
            "p99_redundant_vs_best_single": res.get("latency", {}).get(
                "p99_redundant_vs_best_single"
            ),
            "p99_delayed_vs_best_single": res.get("latency", {}).get("p99_delayed_vs_best_single"),
            "books_time_vs_lower_bound": res.get("books", {}).get("median_ratio_vs_lower_bound"),
        }.items()
        if v is not None
    }
    res["summary"] = summary
    print("summary:", json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
