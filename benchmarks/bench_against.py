"""Blast CPU per message of this tree's fastfeed against another checkout's, interleaved.

Each round runs ``bench_e2e.py --only fastfeed --repeat 1 --paced 0`` once in each tree (every
tree with its own simulator, client and fastfeed, built in place), alternating which goes first:
on a shared VM whichever client runs first in a pair can be several percent slower or faster, so
an order that never changes biases the ratio.  Prints each round, the medians, the per-round
ratio (this tree / the other) and that ratio split by which tree ran first.

    python benchmarks/bench_against.py ../old                 # 20 rounds of 600,000 messages
    python benchmarks/bench_against.py ../old --rounds 40 --n 300000

The other checkout must be built in place (``python setup.py build_ext --inplace`` there); this
tree runs its build in place, or the installed fastfeed when it has none (as ``bench_e2e`` does).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def blast_cpu(tree: str, n: int, timeout: float) -> int:
    """One blast run of ``tree``'s own bench_e2e: the fastfeed client's CPU ns per message."""
    out = subprocess.run(
        [sys.executable, os.path.join("benchmarks", "bench_e2e.py"), "--only", "fastfeed",
         "--n", str(n), "--repeat", "1", "--paced", "0"],
        # each tree's bench_e2e picks its own fastfeed (its build in place)
        cwd=tree, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    m = re.search(r"round 1 fastfeed\s+(\d+) ns/msg", out.stdout)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"bench_e2e failed in {tree}: {out.stdout[-1000:]}{out.stderr[-2000:]}")
    return int(m.group(1))


def median_interval(xs: list[float], resamples: int = 2000, seed: int = 1) -> tuple[float, float]:
    """A bootstrap 95% interval of the median of ``xs``: how far the printed median could be
    from the machine's typical ratio, given the rounds' spread (0.6-1.7 on a shared VM)."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    return meds[int(0.025 * resamples)], meds[int(0.975 * resamples) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other", help="another checkout of fastfeed, built in place")
    ap.add_argument("--rounds", type=int, default=20, help="pairs of runs (default 20)")
    ap.add_argument("--n", type=int, default=600_000, help="messages per run")
    ap.add_argument("--timeout", type=float, default=600, help="per run, seconds")
    a = ap.parse_args()
    other = os.path.abspath(a.other)
    if not os.path.isfile(os.path.join(other, "benchmarks", "bench_e2e.py")):
        sys.exit(f"{other} has no benchmarks/bench_e2e.py: not a fastfeed checkout")
    here_ns: list[int] = []
    other_ns: list[int] = []
    here_first: list[bool] = []
    for r in range(a.rounds):
        first = r % 2 == 0  # this tree first in even rounds
        if first:
            h = blast_cpu(ROOT, a.n, a.timeout)
            o = blast_cpu(other, a.n, a.timeout)
        else:
            o = blast_cpu(other, a.n, a.timeout)
            h = blast_cpu(ROOT, a.n, a.timeout)
        here_ns.append(h)
        other_ns.append(o)
        here_first.append(first)
        print(f"round {r + 1:>3} ({'this' if first else 'other'} first): "
              f"this {h} ns/msg, other {o} ns/msg, ratio {h / o:.3f}", flush=True)  # fmt: skip
    ratios = [h / o for h, o in zip(here_ns, other_ns)]
    print()
    print(f"{a.rounds} rounds of {a.n:,} messages; CPU = the client process's time per message")
    print(f"this tree  {ROOT}: median {statistics.median(here_ns)} ns/msg")
    print(f"other tree {other}: median {statistics.median(other_ns)} ns/msg")
    lo, hi = median_interval(ratios)
    print(f"per-round ratio this/other: median {statistics.median(ratios):.3f} "
          f"(bootstrap 95% interval {lo:.3f}-{hi:.3f})")  # fmt: skip
    for label, want in (("this tree first", True), ("other tree first", False)):
        sel = [x for x, f in zip(ratios, here_first) if f == want]
        if sel:
            print(f"  rounds with {label}: median ratio {statistics.median(sel):.3f} ({len(sel)})")


if __name__ == "__main__":
    main()
