"""Instructions per message of the feed's blast path, counted by valgrind (callgrind).

CPU time on a shared 2-vCPU VM drifts by 10-40% between runs of the same build, so a change of
a few percent in the blast path cannot be seen in ``bench_e2e``'s CPU figures without dozens of
interleaved rounds.  An instruction count is exact and repeatable: this script runs one blast
client under callgrind with instrumentation on only while the client consumes the blast (the
same window ``bench_e2e`` times), and prints user-space instructions per message, for this tree
and for every ``--against`` checkout (built in place), one after the other on the same simulator
traffic.  Instructions are not time (cache misses and the kernel's share are not counted), so
read them beside ``bench_e2e``'s interleaved CPU figures, not instead of them.

    python benchmarks/bench_instr.py                          # this tree
    python benchmarks/bench_instr.py --against ../old         # and a checkout built in place

Needs ``valgrind`` (``apt-get install valgrind``); without it the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
STREAMS = ["btcusdt@aggTrade", "btcusdt@depth@100ms"]

# The client, run under callgrind in a process of its own: connect, switch instrumentation on,
# consume n messages, switch it off.  It imports whichever fastfeed PYTHONPATH names, so older
# trees (BinanceFeed in fastfeed.feed) work too.
CLIENT = r"""
import asyncio, json, os, ssl, subprocess, sys
info, n = json.loads(sys.argv[1]), int(sys.argv[2])
try:
    from fastfeed import BinanceFeed
except ImportError:
    from fastfeed.feed import BinanceFeed

def instrument(on):
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                   check=True, capture_output=True)

async def main():
    ctx = ssl.create_default_context(cafile=info["ca"])
    async with BinanceFeed(STREAMS, url=info["ws"], ssl=ctx, stream_timeout=None,
                           start_timeout=60) as feed:
        sink = feed.sink
        first = sink.accepted_total
        instrument(True)
        while sink.accepted_total < n:
            await feed.wait()
        instrument(False)
        print(json.dumps({"messages": n - first, "reads": feed.stats()["reads"]}))

import uvloop
uvloop.run(main())
""".replace("STREAMS", repr(STREAMS))


def real_python() -> str:
    """The interpreter valgrind starts.  ``sys.executable`` as it is when it is a binary or a
    symlink to one: a venv's ``python`` is such a symlink, and resolving it would lose the venv
    (its site-packages, where CI installs fastfeed).  Only a wrapper script is resolved, since
    valgrind cannot start one."""
    with open(sys.executable, "rb") as f:
        elf = f.read(4) == b"\x7fELF"
    return sys.executable if elf else os.path.realpath(sys.executable)


def tree_env(tree: str) -> dict:
    """The environment that runs ``tree``'s fastfeed: its build in place, or the installed
    package when it has none (CI installs a wheel and leaves the source tree unbuilt)."""
    built = any(
        f.startswith("_ring.") and f.endswith(".so")
        for _, _, files in os.walk(os.path.join(tree, "fastfeed"))
        for f in files
    )
    return dict(os.environ, PYTHONPATH=tree) if built else dict(os.environ)


def start_sim(tree: str, n: int) -> tuple[subprocess.Popen, dict]:
    p = subprocess.Popen(
        [sys.executable, "-m", "fastfeed.cli", "sim", "--symbols", "BTCUSDT", "--rate", "1",
         "--blast", str(n)],
        stdout=subprocess.PIPE, text=True, cwd=HERE, env=tree_env(tree),
    )  # fmt: skip
    return p, json.loads(p.stdout.readline())


def count(tree: str, n: int, timeout: float) -> dict:
    """Instructions of one client's window over ``tree``'s simulator and fastfeed."""
    sim, info = start_sim(tree, n)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        try:
            r = subprocess.run(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                 f"--callgrind-out-file={out}", real_python(), "-c", CLIENT, json.dumps(info),
                 str(n)],
                cwd=tmp, env=tree_env(tree), capture_output=True, text=True,
                timeout=timeout,
            )  # fmt: skip
        finally:
            sim.terminate()
            sim.wait()
        if r.returncode != 0:
            raise RuntimeError(f"client under callgrind failed ({tree}): {r.stderr[-2000:]}")
        got = json.loads(r.stdout.strip().splitlines()[-1])
        with open(out) as f:
            # "totals:" closes the file (its "summary:" header line is written first, as 0)
            m = re.search(r"^totals:\s*(\d+)", f.read(), re.M)
        if m is None:
            raise RuntimeError(f"no instruction total in {out}")
        got["instructions"] = int(m.group(1))
        return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="messages per client run")
    ap.add_argument("--against", action="append", default=[],
                    help="another checkout, built in place (repeatable)")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind (callgrind) is not installed: nothing measured (apt-get install valgrind)")
        return
    trees = [ROOT] + [os.path.abspath(t) for t in a.against]
    rows = []
    for tree in trees:
        r = count(tree, a.n, a.timeout)
        per = r["instructions"] / r["messages"]
        rows.append((tree, per, r))
        print(f"{tree}: {r['instructions']:,} instructions, {r['messages']:,} messages, "
              f"{r['reads']} reads: {per:,.0f} per message", flush=True)  # fmt: skip
    print()
    print("| tree | instructions per message | vs this tree |")
    print("|---|---|---|")
    for tree, per, _ in rows:
        print(f"| {tree} | {per:,.0f} | x{per / rows[0][1]:.3f} |")


if __name__ == "__main__":
    main()
