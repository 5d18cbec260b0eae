"""Soak: a feed against the simulator (in a child process) for many messages and many
reconnects and rotations, sampling the client's resources once a second; fails if any grows.

    python benchmarks/soak.py                                   # the short soak: 10,000,000
                                                                # messages, 1,000 reconnects/rotations
    python benchmarks/soak.py --messages 2000000 --events 200   # proportionally shorter
    python benchmarks/soak.py --hours 4                         # hours long: runs the cycle until then

The simulator runs in a child process (``fastfeed.sim.remote.RemoteSimulator``), so this
process's memory is the client's alone.  The run is a sequence of chunks: the child encodes
``messages / events`` new messages (the id sequences continue, so every chunk is new data for
the id filter), blasts them over TLS to the feed, and the feed must receive them all; after each
chunk one minor fault (a malformed frame, a fragmented message, a dropped or a repeated depth
event) and one connection event from the script: a TCP reset, a close 1001, a close 1011, or a
``serverShutdown`` that makes the feed rotate (make-before-break) to a new connection.  The
feed must recover from each before the next chunk.

Once a second it samples: RSS, open file descriptors, asyncio tasks, Python's allocated blocks
(``sys.getallocatedblocks``), the rings' write positions, messages received and reconnects;
written to ``soak.csv``, summarised in ``soak.json``, drawn in ``soak.png`` (``--out``).

The check ("fails if any grows"): after the warm-up (the first ``--warmup`` fraction of the
chunks: picows's read buffer reaches its steady size, caches fill), a settled reading is taken
(``gc.collect`` and ``malloc_trim``, lowest of three, each time at an idle moment with one open
connection) and compared with a settled reading at the end:

* RSS may grow by less than ``--rss-limit-mb`` (2 MB);
* open file descriptors and asyncio tasks may not grow at all;
* Python blocks may grow by less than ``--blocks-limit`` (5,000: the feed's bounded
  histories fill after the warm-up, ~300 connection-attempt times among them; a leak of
  one object per reconnect and its attributes would be ~10 per event).

Ring positions rise with the messages by design (the rings' memory is fixed): they are
sampled to show progress, not checked.  Exit status 1 names every check that failed.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import csv
import ctypes
import gc
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    # Run as a script from a checkout: use its package.  Imported (the tests, the suite), the
    # caller's fastfeed stands: putting the checkout first would make the simulator's spawned
    # child import an unbuilt source tree in place of the installed package.
    sys.path.insert(0, str(ROOT))

from fastfeed import BinanceFeed  # noqa: E402
from fastfeed.sim.remote import RemoteSimulator  # noqa: E402

MB = 1024 * 1024
STREAMS = ["btcusdt@aggTrade", "btcusdt@depth@100ms"]
# The feed's retry timings shortened (as in the feed tests): a soak measures resources, not
# the backoff policy, and 1,000 reconnects at the default 0.5 s start would be mostly sleep.
# The exchange's 300 connection attempts per 5 minutes is lifted on both sides: a short soak
# makes about one a second, and the feed would (rightly) wait out the window.  The feed keeps
# its 300-slot history (a window of 1 ms never waits); only the simulator's limit is raised.
ATTEMPTS = 1_000_000
FAST = dict(
    attempt_window=0.001,
    backoff_initial=0.02,
    backoff_max=0.2,
    start_timeout=30.0,
    connect_timeout=5.0,
    rotation_timeout=5.0,
    ack_timeout=5.0,
)
EVENTS = ("reset", "close1001", "close1011", "rotate")
MINOR = ("malformed", "fragment", "gap", "duplicate")
FIELDS = (
    "t",
    "rss_mb",
    "fds",
    "tasks",
    "blocks",
    "received",
    "reconnects",
    "trades_pos",
    "depth_pos",
    "phase",
)


PHASES = ("start", "warm-up", "measured", "end")


class Samples:
    """The 1 s samples as one ``array('d')`` per column: appending allocates no Python
    object (a list of dicts would add ~7 blocks a second, the soak's own growth)."""

    def __init__(self):
        self.cols = {k: array.array("d") for k in FIELDS}

    def append(self, row: dict) -> None:
        for k, col in self.cols.items():
            col.append(PHASES.index(row[k]) if k == "phase" else row[k])

    def __len__(self) -> int:
        return len(self.cols["t"])

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, i: int) -> dict:
        row = {k: col[i] if k in ("t", "rss_mb") else int(col[i]) for k, col in self.cols.items()}
        row["phase"] = PHASES[row["phase"]]
        return row

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


async def settled() -> dict:
    """Resources at an idle moment, after freed heap pages went back to the OS: memory the
    allocator merely keeps cached is not growth.  Lowest of three readings."""
    rss = []
    for _ in range(3):
        trim()
        rss.append(rss_bytes())
        await asyncio.sleep(0.05)
    return {
        "rss_mb": min(rss) / MB,
        "fds": open_fds(),
        "tasks": len(asyncio.all_tasks()),
        "blocks": sys.getallocatedblocks(),
    }


class Soak:
    def __init__(self, args):
        self.a = args
        self.samples = Samples()
        self.phase = "start"
        self.t0 = time.monotonic()
        self.feed: BinanceFeed | None = None
        self.script = args.script.split(",")
        unknown = set(self.script) - set(EVENTS)
        if unknown:
            raise SystemExit(f"soak: unknown event(s) {sorted(unknown)}; known: {EVENTS}")
        self.minor_script = [m for m in args.minor.split(",") if m]
        unknown = set(self.minor_script) - set(MINOR)
        if unknown:
            raise SystemExit(f"soak: unknown minor fault(s) {sorted(unknown)}; known: {MINOR}")
        self.counts = {k: 0 for k in EVENTS + MINOR}
        self.event_seconds = array.array("d")

    # ---------------------------------------------------------------- observation
    def received(self) -> int:
        c = self.feed.sink.counters()
        return sum(c["accepted"].values()) + sum(c["duplicates"].values())

    def reconnects(self) -> int:
        return sum(self.feed.stats()["reconnects"].values())

    def sample(self) -> dict:
        f = self.feed
        row = {
            "t": round(time.monotonic() - self.t0, 3),
            "rss_mb": rss_bytes() / MB,
            "fds": open_fds(),
            "tasks": len(asyncio.all_tasks()),
            "blocks": sys.getallocatedblocks(),
            "received": self.received() if f else 0,
            "reconnects": sum(f.reconnects.values()) if f else 0,
            "trades_pos": f.trades.written if f else 0,
            "depth_pos": f.depth.written if f else 0,
            "phase": self.phase,
        }
        self.samples.append(row)
        return row

    async def sampler(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.a.interval)

    async def until(self, pred, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                raise RuntimeError(f"timed out waiting for {what}: {self.feed.stats()}")
            await asyncio.sleep(0.005)

    # ---------------------------------------------------------------- script
    async def one_connection(self, sim) -> None:
        """The feed serves from one connection and the simulator sees only that one (a blast
        goes to the simulator's first open connection)."""
        route = self.feed._routes[0]
        end = time.monotonic() + 30
        while True:
            if route.conn is not None and await sim.call("connections") == 1:
                return
            if time.monotonic() > end:
                raise RuntimeError(f"no single connection after an event: {self.feed.stats()}")
            await asyncio.sleep(0.01)

    async def event(self, sim, k: int) -> None:
        kind = self.script[k % len(self.script)]
        self.counts[kind] += 1
        t = time.monotonic()
        await self._event(sim, k, kind)
        took = time.monotonic() - t
        self.event_seconds.append(took)
        if took > 5:
            print(f"  event {k} ({kind}) took {took:.1f} s to recover", flush=True)

    async def _event(self, sim, k: int, kind: str) -> None:
        if kind == "rotate":
            before = self.feed.reconnects["rotation"]
            # The exchange's notice that it will close this connection: the feed opens the
            # replacement, bridges it by ids and closes the old one itself.
            await sim.call(
                "faults.malformed", b'{"e":"serverShutdown","E":%d}' % (time.time_ns() // 10**6)
            )
            await self.until(lambda: self.feed.reconnects["rotation"] > before, 60, f"rotation {k}")
        else:
            before = self.reconnects()
            if kind == "reset":
                await sim.call("faults.reset")
            else:
                await sim.call("faults.close", int(kind[5:]))
            await self.until(lambda: self.reconnects() > before, 60, f"{kind} {k}")
        await self.one_connection(sim)

    async def minor(self, sim, k: int) -> None:
        if not self.minor_script:
            return
        kind = self.minor_script[k % len(self.minor_script)]
        self.counts[kind] += 1
        if kind == "malformed":
            await sim.call("faults.malformed")
        elif kind == "fragment":
            await sim.call("faults.fragment", 3, 3)
        elif kind == "gap":
            await sim.call("faults.depth_gap", None, 1)
        else:
            await sim.call("faults.depth_duplicate", None, 1)

    async def chunk(self, sim, m: int) -> None:
        await sim.prepare_blast(m)
        base = self.received()
        await sim.blast(m)
        await self.until(lambda: self.received() >= base + m, 120 + m / 20_000, "a chunk")

    async def run(self) -> dict:
        a = self.a
        chunks = max(1, a.events)
        per = max(1, a.messages // chunks)
        warm = max(1, int(chunks * a.warmup))
        deadline = self.t0 + a.hours * 3600 if a.hours else None
        checkpoints = []
        sampler = None
        async with RemoteSimulator(
            symbols=["BTCUSDT"], seed=1, rate=a.rate, attempt_limit=ATTEMPTS
        ) as sim:
            self.feed = BinanceFeed(
                STREAMS,
                market=sim.config.market,
                url=sim.ws_url,
                ssl=sim.client_ssl_context(),
                stream_timeout=None,
                trades=1 << 16,
                depth=1 << 17,
                **FAST,
            )
            async with self.feed:
                sampler = asyncio.create_task(self.sampler())
                await self.one_connection(sim)
                self.phase = "warm-up"
                i = 0
                while True:
                    await self.chunk(sim, per)
                    await self.minor(sim, i)
                    await self.event(sim, i)
                    i += 1
                    if i == warm:
                        await asyncio.sleep(0.5)
                        checkpoints.append(dict(await settled(), chunk=i, t=self.elapsed()))
                        self.phase = "measured"
                    elif i > warm and i % max(1, chunks // 10) == 0:
                        checkpoints.append(dict(await settled(), chunk=i, t=self.elapsed()))
                    done = i >= chunks if deadline is None else time.monotonic() >= deadline
                    if done:
                        break
                    if i % max(1, chunks // 20) == 0:
                        s = self.samples[-1] if self.samples else {}
                        print(
                            f"  {self.elapsed():7.0f} s  chunk {i}/{chunks if deadline is None else '-'}"
                            f"  {self.received():,} received  rss {s.get('rss_mb', 0):.1f} MB"
                            f"  fds {s.get('fds')}  tasks {s.get('tasks')}",
                            flush=True,
                        )
                await asyncio.sleep(0.5)
                end = dict(await settled(), chunk=i, t=self.elapsed())
                if not checkpoints or checkpoints[-1]["chunk"] != i:
                    checkpoints.append(end)
                stats = self.feed.stats()
                self.phase = "end"
                self.sample()
                sampler.cancel()
        base = checkpoints[0]
        return {
            "chunks": i,
            "messages_per_chunk": per,
            "messages": i * per,
            "received": stats["accepted"] | {"duplicates": stats["duplicates"]},
            "reconnects": dict(stats["reconnects"]),
            "events": self.counts,
            "event_recovery_s": {
                "median": sorted(self.event_seconds)[len(self.event_seconds) // 2],
                "max": max(self.event_seconds),
            },
            "warmup_chunks": warm,
            "seconds": self.elapsed(),
            "base": base,
            "end": end,
            "checkpoints": checkpoints,
        }

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 3)


def check(summary: dict, rss_limit_mb: float, blocks_limit: int) -> list[str]:
    b, e = summary["base"], summary["end"]
    fails = []
    if e["rss_mb"] - b["rss_mb"] >= rss_limit_mb:
        fails.append(f"RSS grew {e['rss_mb'] - b['rss_mb']:.2f} MB (limit {rss_limit_mb} MB)")
    if e["fds"] > b["fds"]:
        fails.append(f"open file descriptors grew {b['fds']} -> {e['fds']}")
    if e["tasks"] > b["tasks"]:
        fails.append(f"asyncio tasks grew {b['tasks']} -> {e['tasks']}")
    if e["blocks"] - b["blocks"] >= blocks_limit:
        fails.append(f"Python blocks grew {e['blocks'] - b['blocks']} (limit {blocks_limit})")
    return fails


def write_csv(path: Path, samples) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for s in samples:
            w.writerow({k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()})


def chart(path: Path, samples, summary: dict) -> None:
    """Four panels over time (RSS, fds, tasks, Python blocks), the warm-up shaded, the
    settled checkpoints marked."""
    b, e = summary["base"], summary["end"]
    title = (
        f"soak: {summary['messages']:,} messages, {sum(summary['reconnects'].values())} "
        f"reconnects + rotations in {summary['seconds'] / 60:.0f} min ({summary['date']})\n"
        f"after warm-up (settled): RSS {b['rss_mb']:.2f} -> {e['rss_mb']:.2f} MB, "
        f"fds {b['fds']} -> {e['fds']}, tasks {b['tasks']} -> {e['tasks']}, "
        f"blocks {e['blocks'] - b['blocks']:+,}"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in samples]
    warm_end = summary["base"]["t"]
    fig, axes = plt.subplots(4, 1, figsize=(9, 8.5), sharex=True)
    panels = (
        ("rss_mb", "RSS (MB)"),
        ("fds", "open fds"),
        ("tasks", "asyncio tasks"),
        ("blocks", "Python blocks"),
    )
    for ax, (key, label) in zip(axes, panels):
        ax.plot(t, [s[key] for s in samples], lw=0.8, color="tab:blue", label="1 s samples")
        cps = summary["checkpoints"]
        ax.plot(
            [c["t"] for c in cps],
            [c[key] for c in cps],
            "o",
            ms=4,
            color="tab:red",
            label="settled (checked)",
        )
        ax.axvspan(0, warm_end, color="0.9", lw=0)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8, bbox_to_anchor=(0.0, -0.02), ncol=2)
    axes[0].text(warm_end / 2, axes[0].get_ylim()[1], "warm-up", ha="center", va="top", fontsize=8)
    ax2 = axes[0].twinx()
    ax2.plot(t, [s["received"] / 1e6 for s in samples], lw=0.8, color="tab:green")
    ax2.set_ylabel("messages (M)", color="tab:green")
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000_000, help="messages in total")
    ap.add_argument("--events", type=int, default=1000, help="reconnects and rotations")
    ap.add_argument("--hours", type=float, default=0, help="run this long instead (cycle repeats)")
    ap.add_argument(
        "--warmup", type=float, default=0.1, help="fraction of chunks before the baseline"
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help="simulator live market actions/s (live data lets a rotation's new connection catch up)",
    )
    ap.add_argument(
        "--script",
        default="reset,close1001,reset,rotate,close1011",
        help=f"connection events, in a cycle (of: {', '.join(EVENTS)})",
    )
    ap.add_argument(
        "--minor",
        default=",".join(MINOR),
        help=f"minor faults, one per chunk in a cycle (of: {', '.join(MINOR)}; empty: none)",
    )
    ap.add_argument("--interval", type=float, default=1.0, help="sampling interval, seconds")
    ap.add_argument("--rss-limit-mb", type=float, default=2.0)
    ap.add_argument("--blocks-limit", type=int, default=5_000)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "soak")
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--redraw", action="store_true", help="only redraw --out's soak.png")
    a = ap.parse_args(argv)
    if a.redraw:
        with open(a.out / "soak.csv") as f:
            rows = [
                {k: v if k == "phase" else float(v) for k, v in r.items()}
                for r in csv.DictReader(f)
            ]
        chart(a.out / "soak.png", rows, json.loads((a.out / "soak.json").read_text()))
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    # Every scripted fault is logged by the feed as a warning; 1,000 of them are noise here
    # (the counters are in the summary).
    logging.getLogger("fastfeed").setLevel(logging.ERROR)
    logging.getLogger("picows").setLevel(logging.ERROR)
    cmd = "python benchmarks/soak.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"soak: {a.messages:,} messages, {a.events} reconnects/rotations -> {a.out}", flush=True)
    soak = Soak(a)
    from fastfeed import run

    summary = run(soak.run())
    fails = check(summary, a.rss_limit_mb, a.blocks_limit)
    summary.update(
        command=cmd,
        planned={"messages": a.messages, "events": a.events, "hours": a.hours},
        limits={"rss_mb": a.rss_limit_mb, "blocks": a.blocks_limit, "fds": 0, "tasks": 0},
        failures=fails,
        passed=not fails,
        python=platform.python_version(),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    write_csv(a.out / "soak.csv", soak.samples)
    (a.out / "soak.json").write_text(json.dumps(summary, indent=1, default=str))
    if not a.no_chart:
        chart(a.out / "soak.png", soak.samples, summary)
    b, e = summary["base"], summary["end"]
    print(
        f"soak: {summary['messages']:,} messages in {summary['chunks']} chunks, reconnects "
        f"{summary['reconnects']}, {summary['seconds']:.0f} s\n"
        f"  after warm-up -> end: RSS {b['rss_mb']:.2f} -> {e['rss_mb']:.2f} MB "
        f"({e['rss_mb'] - b['rss_mb']:+.2f}), fds {b['fds']} -> {e['fds']}, "
        f"tasks {b['tasks']} -> {e['tasks']}, blocks {b['blocks']} -> {e['blocks']} "
        f"({e['blocks'] - b['blocks']:+d})"
    )
    for f in fails:
        print(f"soak: FAIL: {f}")
    print("soak: " + ("PASS" if not fails else "FAIL"))
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())
