"""Shared-memory rings (fastfeed.share): writer-to-reader latency, and the writer's CPU per
message with and without readers.

    python benchmarks/bench_shm.py                  # everything, about a minute
    python benchmarks/bench_shm.py --json OUT.json

Latency: this process is the writer.  It decodes one aggTrade at a time at a paced rate; the
decoder stamps the row's ``recv_ns`` (the wall clock, read inside the decoder just before the
row is written and committed) and the segment's ``notify()`` follows, as a feed's hook does.
Readers in other processes wait for the row and copy it in one call (``reader.wait_into``:
spinning with ``spin=inf``, sleeping on the futex with ``spin=0``, polling with naps of
``--poll`` seconds with ``poll=``, which the writer never has to wake) and take
``time.time_ns() - recv_ns``; "2 calls" is the spinning reader written as ``ring.wait`` then
``ring.read_into``.  The
peer measured in the same run is a pipe: the writer writes the same row's bytes to an
``os.pipe`` after stamping it, a reader process blocks in ``os.read``.  For scale (not measured
here): Featuremine's yamal reports 300 ns median and 1 us max between processes.
The run also prints the machine's floor: one cache line's round trip between the writer's and
a reader's CPU, measured in C by two threads (``_pingpong.pyx``; needs Cython and a compiler).

Writer CPU: the writer decodes batches of messages (aggTrade and depthUpdate alternating; a
batch stands for one socket read) and calls ``notify()`` after each batch.  Its process CPU
time per message is measured with the rings private (not shared), shared with no reader, and
shared with 4 reader processes (sleeping on the futex at once: sleep4; spinning 50 us before
sleeping: linger4; polling, ``wait(poll=...)`` naps of ``--poll`` s: poll4; spinning: spin4), in blast
(batches of 8, back to back) and paced (one message per batch, 50 us apart) runs; rounds
rotate the order and the table shows medians.  Readers read every ring in full.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # _native: the benchmark-only Cython modules

import fastfeed  # noqa: E402
from fastfeed.share import share_decoder  # noqa: E402

TRADE = (
    b'{"e":"aggTrade","E":1700000000000,"s":"BTCUSDT","a":%d,"p":"43000.12000000",'
    b'"q":"0.01500000","f":100,"l":100,"T":1700000000000,"m":true,"M":true}'
)
DEPTH = (
    b'{"e":"depthUpdate","E":1700000000000,"s":"BTCUSDT","U":%d,"u":%d,'
    b'"b":[["43000.10","1.5"],["42999.90","0.2"],["42999.00","3.1"]],'
    b'"a":[["43000.20","0.7"],["43001.00","2.0"],["43002.50","0.4"],["43003.00","1.0"]]}'
)

READER = r"""
import os, sys, time, numpy as np, fastfeed
from fastfeed.share import StaleSegment
name, mode, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
poll = float(os.environ.get("FF_POLL", "0"))
if mode == "pipe":
    fd = int(name)
    lat = np.zeros(n, np.int64)
    row = np.zeros(1, fastfeed.TRADE_DTYPE)
    k = 0
    print("ready", flush=True)
    while k < n:
        b = os.read(fd, row.itemsize)
        now = time.time_ns()
        lat[k] = now - int(np.frombuffer(b, fastfeed.TRADE_DTYPE)[0]["recv_ns"])
        k += 1
    np.save(out, lat)
    sys.exit(0)
feed = fastfeed.attach(name, timeout=10)
if mode == "lat-cspin":
    sys.path.insert(0, os.environ["FF_CLEVEL_DIR"])  # built by the parent (clevel_reader_dir)
    import _ff_shm_clevel
    ring = feed.trades
    lat = np.zeros(n, np.int64)
    print("ready", flush=True)
    k = _ff_shm_clevel.spin_latency(ring, lat, ring.written)
    np.save(out, lat[:k])
    sys.exit(0)
if mode.startswith("lat-"):
    ring = feed.trades
    spin = 0.0 if mode in ("lat-sleep", "lat-poll") else float("inf")
    buf = np.zeros(16, ring.dtype)
    lat = np.zeros(n, np.int64)
    k = 0
    print("ready", flush=True)
    try:
        if mode == "lat-spin2":  # two calls: wait, then read_into
            cur = ring.written
            while k < n:
                if not ring.wait(cur, 5.0, spin):
                    break
                got, cur, lost = ring.read_into(buf, cur)
                now = time.time_ns()
                if got:
                    lat[k] = now - int(buf[got - 1]["recv_ns"])
                    k += 1
        else:  # one call: the reader's wait_into
            rd = ring.reader("now")
            while k < n:
                got = rd.wait_into(buf, 5.0, spin, poll if mode == "lat-poll" else 0.0)
                now = time.time_ns()
                if not got:
                    break
                lat[k] = now - int(buf[got - 1]["recv_ns"])
                k += 1
    except StaleSegment:
        pass
    np.save(out, lat[:k])
    sys.exit(0)
readers = [r.reader("now") for r in feed.rings.values()]
print("ready", flush=True)
total = 0
while True:
    try:
        for rd in readers:
            total += len(rd.read())
        if mode == "sleep":
            feed.wait(1.0)
        elif mode == "linger":
            feed.wait(1.0, 0.00005)
        elif mode == "spin":
            feed.wait(1.0, float("inf"))
        else:
            feed.wait(1.0, 0.0, poll)
    except StaleSegment:
        break
with open(out, "w") as f:
    f.write(str(total))
"""


def build_extra(source: str, name: str, include_dirs: list[str], what: str):
    """Import (building if needed) a benchmark-only Cython module through _native, or None
    (and why, printed) without Cython or a compiler: a benchmark extra, the rest is measured."""
    try:
        from _native import build_module

        return build_module(source, name, include_dirs)
    except Exception as e:
        print(f"  ({what} not measured: {type(e).__name__}: {e})")
        return None


def clevel_reader_dir() -> str | None:
    """The folder of the built C-level reader (``_shm_clevel.pyx``), or None."""
    share = str(Path(fastfeed.__file__).resolve().parent / "share")  # _shm.h
    mod = build_extra(
        "_shm_clevel.pyx", "_ff_shm_clevel", [fastfeed.get_include(), share], "C-level reader"
    )
    return str(Path(mod.__file__).parent) if mod else None


def spawn(name: str, mode: str, out: Path, n: int = 0, pass_fds=()) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), FF_POLL=str(POLL))
    if mode == "lat-cspin":
        env["FF_CLEVEL_DIR"] = CLEVEL_DIR or ""
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(READER), name, mode, str(out), str(n)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        pass_fds=pass_fds,
    )
    pin(p.pid, OTHERS)
    line = p.stdout.readline().strip() if p.stdout else ""
    if line != "ready":
        raise RuntimeError(f"reader {mode} did not start: {line!r}")
    return p


#: the polling readers' nap in seconds (``--poll``)
POLL = 25e-6
#: the built C-level reader's folder (lat-cspin), set by latency_table
CLEVEL_DIR: str | None = None
#: ``--pin``: the writer's CPUs and everyone else's (readers, the simulator); None: no pinning
WRITER_CPUS: set[int] | None = None
OTHERS: set[int] | None = None


def pin(pid: int, cpus: set[int] | None) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, cpus)


def pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


def pace_until(t: int) -> None:
    """Sleep most of the gap, spin the last 100 us (a sleep overshoots by 50-100 us)."""
    left = t - time.perf_counter_ns()
    if left > 200_000:
        time.sleep((left - 100_000) / 1e9)
    while time.perf_counter_ns() < t:
        pass


def latency(mode: str, readers: int, n: int, rate: float, tmp: Path) -> dict:
    """One paced run: ``readers`` processes of ``mode`` (lat-spin, lat-sleep, pipe)."""
    gap = int(1e9 / rate)
    outs = [tmp / f"lat-{mode}-{i}.npy" for i in range(readers)]
    dec = fastfeed.BinanceDecoder(trades=65536)
    if mode == "pipe":
        r, w = os.pipe()
        procs = [spawn(str(r), "pipe", outs[0], n, pass_fds=(r,))]
        os.close(r)
        t = time.perf_counter_ns()
        for i in range(n):
            t += gap
            pace_until(t)
            dec.decode(TRADE % i)
            os.write(w, dec.trades.tail(1).tobytes())
        os.close(w)
    else:
        name = f"bench-shm-{os.getpid()}"
        seg = share_decoder(name, dec)
        procs = [spawn(name, mode, outs[i], n) for i in range(readers)]
        time.sleep(0.2)
        t = time.perf_counter_ns()
        for i in range(n):
            t += gap
            pace_until(t)
            dec.decode(TRADE % i)
            seg.notify()
        time.sleep(0.2)
        seg.close()
    for p in procs:
        p.wait(30)
    lat = np.concatenate([np.load(o) for o in outs]) / 1000.0  # us
    lat = lat[len(lat) // 20 :]  # the first 5%: warm-up
    return {
        "mode": mode,
        "readers": readers,
        "rate": rate,
        "n": len(lat),
        "p50_us": pct(lat, 50),
        "p99_us": pct(lat, 99),
        "p999_us": pct(lat, 99.9),
        "max_us": float(lat.max()) if len(lat) else float("nan"),
    }


def writer_cpu(config: str, n: int, batch: int, paced: bool, tmp: Path) -> float:
    """CPU ns per message of this process writing ``n`` messages (config: private, shared0,
    sleep4, linger4, poll4, spin4)."""
    dec = fastfeed.BinanceDecoder(trades=65536, depth=131072)
    lines = []
    for i in range(batch):
        lines.append(TRADE % i if i % 2 == 0 else DEPTH % (i, i))
    buf = b"\n".join(lines)
    seg = None
    procs = []
    if config != "private":
        name = f"bench-cpu-{os.getpid()}"
        seg = share_decoder(name, dec)
        if config in ("sleep4", "poll4", "linger4", "spin4"):
            mode = config[:-1]
            procs = [spawn(name, mode, tmp / f"cpu-{i}.txt") for i in range(4)]
        time.sleep(0.1)
    notify = seg.notify if seg is not None else (lambda: None)
    rounds = n // batch
    sleep = time.sleep
    c0 = time.process_time_ns()
    if paced:
        for _ in range(rounds):
            dec.decode_lines(buf)
            notify()
            sleep(0.00005)
    else:
        for _ in range(rounds):
            dec.decode_lines(buf)
            notify()
    c1 = time.process_time_ns()
    if seg is not None:
        seg.close()
    for p in procs:
        p.wait(30)
    return (c1 - c0) / (rounds * batch)


async def feed_cpu(config: str, sim_args: list[str], n: int, tmp: Path) -> float:
    """CPU ns per message of this process running a BinanceFeed over TLS from a ``fastfeed
    sim`` process (``sim_args``: a blast, or paced one message per TCP segment), the feed's rings
    private, shared with no reader, or shared with 4 sleeping readers (attached before the
    feed connects)."""
    from bench_e2e import STREAMS, ctx, start_sim

    from fastfeed import BinanceFeed

    p, info = start_sim(sim_args)
    pin(p.pid, OTHERS)
    procs = []
    try:
        feed = BinanceFeed(STREAMS.split("/"), url=info["ws"], ssl=ctx(info), stream_timeout=None)
        w = None
        if config != "private":
            name = f"bench-feed-{os.getpid()}"
            w = feed.share(name)
            if config == "sleep4":
                procs = [spawn(name, "sleep", tmp / f"feed-{i}.txt") for i in range(4)]
        async with feed:
            # From the first message on: the TLS handshake is not the feed's per-message cost
            while feed.sink.accepted_total == 0:
                await feed.wait()
            c0, m0 = time.process_time_ns(), feed.sink.accepted_total
            while feed.sink.accepted_total < n:
                await feed.wait()
            c1, m1 = time.process_time_ns(), feed.sink.accepted_total
        if w is not None:
            w.close()
        for r in procs:
            r.wait(30)
        return (c1 - c0) / (m1 - m0)
    finally:
        p.terminate()
        p.wait()


def main() -> None:
    global POLL
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lat-n", type=int, default=20000, help="messages per latency run")
    ap.add_argument("--rate", type=float, default=2000.0, help="messages per second (latency)")
    ap.add_argument("--cpu-n", type=int, default=400000, help="messages per blast CPU run")
    ap.add_argument("--paced-n", type=int, default=20000, help="messages per paced CPU run")
    ap.add_argument("--repeat", type=int, default=5, help="rounds of the CPU runs")
    ap.add_argument("--feed-n", type=int, default=300000, help="messages per feed blast run")
    ap.add_argument("--feed-rate", type=float, default=5000.0, help="feed paced rate, msgs/s")
    ap.add_argument("--feed-paced-n", type=int, default=15000, help="messages per paced run")
    ap.add_argument("--feed-repeat", type=int, default=3, help="rounds of the feed runs")
    ap.add_argument("--only", default="lat,cpu,feed", help="parts: lat, cpu, feed")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="the writer alone on the first CPU, readers and the simulator on the others",
    )
    ap.add_argument(
        "--poll", type=float, default=POLL, help="polling readers' nap, seconds (wait(poll=...))"
    )
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args()
    POLL = a.poll
    if a.pin:
        global WRITER_CPUS, OTHERS
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            sys.exit("--pin needs 2 CPUs or more")
        WRITER_CPUS, OTHERS = {cpus[0]}, set(cpus[1:])
        pin(0, WRITER_CPUS)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-shm-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    figures: dict = {"latency": [], "cpu": {}}

    parts = set(a.only.split(","))
    if "lat" in parts:
        latency_table(a, tmp, figures)
    if "cpu" in parts:
        cpu_table(a, tmp, figures)
    if "feed" in parts:
        feed_table(a, tmp, figures)
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))


def latency_table(a: argparse.Namespace, tmp: Path, figures: dict) -> None:
    print(f"writer-to-reader latency, {a.lat_n} messages at {a.rate:.0f}/s (us)")
    print(f"  {'reader':<26} {'p50':>8} {'p99':>8} {'p99.9':>8} {'max':>9}")
    global CLEVEL_DIR
    CLEVEL_DIR = clevel_reader_dir()
    modes = [
        ("lat-spin", 1),
        ("lat-spin2", 1),
        ("lat-sleep", 1),
        ("lat-sleep", 4),
        ("lat-poll", 1),
        ("lat-poll", 4),
        ("pipe", 1),
    ]
    if CLEVEL_DIR:
        modes.insert(2, ("lat-cspin", 1))
    for mode, k in modes:
        r = latency(mode, k, a.lat_n, a.rate, tmp)
        figures["latency"].append(r)
        label = {
            "lat-spin": "shm, spinning",
            "lat-spin2": "shm, spinning, 2 calls",
            "lat-cspin": "shm, spinning in C",
            "lat-sleep": "shm, sleeping (futex)",
            "lat-poll": f"shm, polling, {POLL * 1e6:g} us",
        }.get(mode, "os.pipe, blocking read") + f" x{k}"
        print(
            f"  {label:<26} {r['p50_us']:8.2f} {r['p99_us']:8.2f} {r['p999_us']:8.2f} "
            f"{r['max_us']:9.1f}"
        )
    floor = line_round_trip_ns()
    if floor is not None:
        figures["line_round_trip_ns"] = floor
        print(
            f"  this machine's floor: a cache line's round trip between the writer's and a "
            f"reader's CPU {floor:.0f} ns\n  (one way ~{floor / 2:.0f} ns; a reader that sees "
            f"a row takes at least two lines: the counter, then the row)"
        )
    print("  for scale (not measured here): yamal reports 0.30 median, 1.0 max")


def line_round_trip_ns(n: int = 200_000, rounds: int = 5) -> float | None:
    """Median over ``rounds`` of one cache line's round trip between the writer's CPU and a
    reader's, in C (benchmarks/_pingpong.pyx, two threads); None without Cython or a compiler."""
    import threading

    mod = build_extra("_pingpong.pyx", "_ff_pingpong", [], "cache-line floor")
    if mod is None:
        return None
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    a_cpu = min(WRITER_CPUS) if WRITER_CPUS else (cpus[0] if cpus else None)
    b_cpu = min(OTHERS) if OTHERS else (cpus[1] if len(cpus) > 1 else None)

    def side(k: int, cpu: int | None, start: threading.Barrier, spent: list[int]) -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})  # pid 0: the calling thread
        start.wait()
        t = time.perf_counter_ns()
        mod.bounce(k, n)
        spent[k] = time.perf_counter_ns() - t

    got = []
    for _ in range(rounds):
        mod.reset()
        start, spent = threading.Barrier(2), [0, 0]
        t1 = threading.Thread(target=side, args=(1, b_cpu, start, spent))
        t1.start()
        side(0, a_cpu, start, spent)
        t1.join()
        got.append(spent[0] / n)
    if WRITER_CPUS:
        os.sched_setaffinity(0, WRITER_CPUS)
    return statistics.median(got)


def cpu_table(a: argparse.Namespace, tmp: Path, figures: dict) -> None:
    configs = ("private", "shared0", "sleep4", "linger4", "poll4", "spin4")
    for paced in (False, True):
        kind = "paced" if paced else "blast"
        n, batch = (a.paced_n, 1) if paced else (a.cpu_n, 8)
        got: dict[str, list[float]] = {c: [] for c in configs}
        for rnd in range(a.repeat):
            order = configs[rnd % len(configs) :] + configs[: rnd % len(configs)]
            for c in order:
                got[c].append(writer_cpu(c, n, batch, paced, tmp))
        med = {c: statistics.median(v) for c, v in got.items()}
        figures["cpu"][kind] = {"batch": batch, "n": n, "ns_per_message": got, "median": med}
        print(
            f"\nwriter CPU per message, {kind} (batch {batch}, {n} messages, median of {a.repeat})"
        )
        for c in configs:
            print(
                f"  {c:<10} {med[c]:8.1f} ns   x{med[c] / med['shared0']:.3f} of shared0   "
                f"x{med[c] / med['private']:.3f} of private   (runs "
                + ", ".join(f"{v:.0f}" for v in got[c])
                + ")"
            )


def feed_table(a: argparse.Namespace, tmp: Path, figures: dict) -> None:
    fconfigs = ("private", "shared0", "sleep4")
    for kind, sim_args, n in (
        ("feed blast", ["--blast", str(a.feed_n)], a.feed_n),
        (
            "feed paced",
            ["--paced", str(a.feed_rate), "--paced-count", str(a.feed_paced_n)],
            a.feed_paced_n,
        ),
    ):
        got = {c: [] for c in fconfigs}
        for rnd in range(a.feed_repeat):
            order = fconfigs[rnd % len(fconfigs) :] + fconfigs[: rnd % len(fconfigs)]
            for c in order:
                got[c].append(fastfeed.run(feed_cpu(c, sim_args, n, tmp)))
        med = {c: statistics.median(v) for c, v in got.items()}
        figures["cpu"][kind] = {"n": n, "ns_per_message": got, "median": med}
        print(
            f"\n{kind}: the feed process's CPU per message over TLS ({n} messages, median "
            f"of {a.feed_repeat})"
        )
        if kind == "feed paced":
            print(
                "  (compare with care: the simulator shares the readers' CPUs, so its pacing and "
                "the messages per socket read differ between configurations)"
            )
        for c in fconfigs:
            print(
                f"  {c:<10} {med[c]:8.1f} ns   x{med[c] / med['shared0']:.3f} of shared0   "
                f"x{med[c] / med['private']:.3f} of private   (runs "
                + ", ".join(f"{v:.0f}" for v in got[c])
                + ")"
            )


if __name__ == "__main__":
    main()
