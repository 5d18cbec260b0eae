"""Order book benchmark: fastfeed's Cython BookSet vs a plain-Python book on sortedcontainers
vs cryptofeed's ``order_book`` C extension, in one run; then the readers and the snapshot path.

Workloads (after a snapshot is loaded; update cost only):
  * the real BTCUSDT sequences of the corpus (spot @100ms, USD-M @0ms), and
  * a long simulated stream (random walk, deterministic seed) on a 2000-level book.

Every contender applies every level, checks the sequence (U/u or pu) per event and reads the
best bid and ask after every event (fastfeed writes them to its tops ring); one extra line
shows order_book without the per-event read, its best case.  The peers get
their input as ready-made Python lists of ints, so JSON and number parsing are excluded
for everybody; fastfeed reads the same levels as DEPTH_DTYPE rows.

Readers (``--part reads``): ns per call from Python of ``OrderBook.best()``, ``BookSet.best()``,
``best_fp()``, ``best_into()`` and ``top_fp(10)`` on the real spot book, each also as a
ratio to a plain dict lookup measured in the same run (the yardstick: how many dict
lookups a call costs, whatever the machine's speed).

Snapshots (``--part snapshot``): a real 2x1000-level REST body (spot and USD-M) from bytes
to a loaded book, through fastfeed's C decoder (``SnapshotParser``: PARTIAL rows loaded at
C level) and through the old path (``json.loads`` + ``to_fp`` per level) in the same run.

    python benchmarks/bench_book.py [--part all|updates|reads|snapshot] [--events 200000]
                                    [--repeat 5] [--corpus PATH] [--json OUT]

``--json OUT`` also writes every figure (ns per level and per event, by workload and
contender; ns per read; us per snapshot) to OUT, for ``benchmarks/suite.py``.  Run against
an older build (``PYTHONPATH``), the parts it lacks are skipped with a printed reason.
"""

import argparse
import json
import os
import platform
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a checkout: its package (see soak.py)

from fastfeed.book._book import TOP_DTYPE, BookSet, State  # noqa: E402
from fastfeed.book.orderbook import OrderBook as FastfeedOrderBook  # noqa: E402
from fastfeed.core._rows import DEPTH_DTYPE  # noqa: E402

try:
    from fastfeed.book.snapshots import SnapshotParser
except ImportError:  # a build before the C snapshot path: only the old path is measured
    SnapshotParser = None

try:
    from sortedcontainers import SortedDict
except ImportError:  # pragma: no cover
    SortedDict = None
try:
    from order_book import OrderBook
except ImportError:
    OrderBook = None

FP = 10**8


# ------------------------------------------------------------------------------- inputs


class Workload:
    """Snapshot + events, as numpy rows (fastfeed) and Python lists (peers)."""

    def __init__(self, name, usdm, lid, bids, asks, events):
        # bids/asks: [(price_fp, qty_fp)]; events: [(U, u, pu, [(side, price_fp, qty_fp)])]
        self.name, self.usdm, self.lid = name, usdm, lid
        self.bids, self.asks, self.events = bids, asks, events
        self.levels = sum(len(e[3]) for e in events)
        n = sum(max(len(e[3]), 1) for e in events)
        rows = np.zeros(n, dtype=DEPTH_DTYPE)
        i = 0
        cols = {
            k: np.empty(n, dtype=rows.dtype[k])
            for k in ("first_id", "last_id", "prev_last_id", "price_fp", "qty_fp", "side", "flags")
        }
        self.bounds = []
        for U, u, pu, lv in events:
            k = max(len(lv), 1)
            self.bounds.append((i, i + k))
            cols["first_id"][i : i + k] = U
            cols["last_id"][i : i + k] = u
            cols["prev_last_id"][i : i + k] = pu
            cols["flags"][i : i + k] = 0
            cols["flags"][i + k - 1] = 1
            if lv:
                cols["side"][i : i + k] = [x[0] for x in lv]
                cols["price_fp"][i : i + k] = [x[1] for x in lv]
                cols["qty_fp"][i : i + k] = [x[2] for x in lv]
            else:
                cols["side"][i] = -1
                cols["price_fp"][i] = cols["qty_fp"][i] = 0
            i += k
        for k, v in cols.items():
            rows[k] = v
        rows["symbol"] = 1
        rows["price"] = rows["price_fp"] / 1e8
        rows["qty"] = rows["qty_fp"] / 1e8
        self.rows = rows


def corpus_workload(corpus, market):
    base = corpus / "sequences" / f"{market}_BTCUSDT_20240808"
    snap = json.loads(base.with_name(base.name + "_snapshot.json").read_text())
    lid = snap["lastUpdateId"]
    usdm = market == "futures"

    def fp(s):
        return int(Decimal(s) * FP)

    events = []
    with open(base.with_name(base.name + "_depthUpdate.jsonl"), "rb") as f:
        for line in f:
            e = json.loads(line)
            if (e["u"] < lid) if usdm else (e["u"] <= lid):
                continue  # covered by the snapshot (SOURCES.md)
            lv = [(0, fp(p), fp(q)) for p, q in e["b"]] + [(1, fp(p), fp(q)) for p, q in e["a"]]
            events.append((e["U"], e["u"], e.get("pu", -1), lv))
    return Workload(
        f"{market} BTCUSDT (real)",
        usdm,
        lid,
        [(fp(p), fp(q)) for p, q in snap["bids"]],
        [(fp(p), fp(q)) for p, q in snap["asks"]],
        events,
    )


def simulated_workload(n_events, seed=20240808, depth=2000):
    """Random walk: every bid < mid < every ask, most changes within 20 ticks of the mid,
    one in five up to 1000 ticks away, 30% deletes; tick 0.01, lot 0.001."""
    rng = random.Random(seed)
    tick, lot = 10**6, 10**5
    mid = 5_000_000
    held = [set(range(mid - depth, mid)), set(range(mid + 1, mid + depth + 1))]
    bids = [((mid - i) * tick, rng.randint(1, 10**5) * lot) for i in range(1, depth + 1)]
    asks = [((mid + i) * tick, rng.randint(1, 10**5) * lot) for i in range(1, depth + 1)]
    events, u = [], 1_000_000
    for _ in range(n_events):
        lv = {}
        step = rng.choice((-1, 0, 0, 1))
        if step:
            mid += step
            side = 1 if step > 0 else 0  # the level at the new mid leaves the other side
            if mid in held[side]:
                held[side].discard(mid)
                lv[(side, mid)] = 0
        for _ in range(rng.randint(1, 16)):
            side = rng.random() < 0.5
            d = rng.randint(1, 1000) if rng.random() < 0.2 else rng.randint(1, 20)
            p = mid + d if side else mid - d
            if rng.random() < 0.3:
                held[side].discard(p)
                lv[(side, p)] = 0
            else:
                held[side].add(p)
                lv[(side, p)] = rng.randint(1, 10**5)
        U, u = u + 1, u + rng.randint(1, 10)
        levels = sorted(((s, p * tick, q * lot) for (s, p), q in lv.items()), key=lambda x: x[0])
        events.append((U, u, -1, levels))
    return Workload(f"simulated ({n_events // 1000}k events)", False, 1_000_000, bids, asks, events)


# ------------------------------------------------------------------------------- contenders


def run_fastfeed(w, per_event=False):
    bs = BookSet("usdm" if w.usdm else "spot", max_levels=8192, tops_capacity=1 << 16)
    bs.track(1)
    bs.apply_snapshot(1, w.lid, np.array(w.bids, np.int64), np.array(w.asks, np.int64))
    rows = w.rows
    t0 = time.perf_counter_ns()
    if per_event:
        apply = bs.apply_depth_rows
        for a, b in w.bounds:
            apply(rows[a:b])
    else:
        bs.apply_depth_rows(rows)
    dt = time.perf_counter_ns() - t0
    st = bs.stats(1)
    assert bs.state(1) == State.VALID and st["events"] == len(w.events), st
    assert st["cap_dropped"] == 0
    return dt, bs.best_fp(1)


def checked_events(w):
    """The workload's events, each after the sequence check every contender pays for."""
    last, first = w.lid, True
    for U, u, pu, lv in w.events:
        if not first and ((pu != last) if w.usdm else (last + 1 != U)):
            raise RuntimeError("gap")
        first = False
        last = u
        yield lv


def run_sorted(w):
    bids, asks = SortedDict(), SortedDict()
    for p, q in w.bids:
        bids[-p] = q  # negated so the best bid is first, like the asks
    for p, q in w.asks:
        asks[p] = q
    books = (bids, asks)
    sign = (-1, 1)
    tops = []
    t0 = time.perf_counter_ns()
    for lv in checked_events(w):
        for side, p, q in lv:
            book = books[side]
            if q:
                book[sign[side] * p] = q
            else:
                book.pop(sign[side] * p, None)
        tops.append((bids.peekitem(0), asks.peekitem(0)))
    dt = time.perf_counter_ns() - t0
    (bp, bq), (ap, aq) = tops[-1]
    return dt, (-bp, bq, ap, aq)


def run_order_book(w, read_top=True):
    ob = OrderBook()
    for p, q in w.bids:
        ob.bids[p] = q
    for p, q in w.asks:
        ob.asks[p] = q
    books = (ob.bids, ob.asks)
    tops = []
    t0 = time.perf_counter_ns()
    for lv in checked_events(w):
        for side, p, q in lv:
            book = books[side]
            if q:
                book[p] = q
            else:
                try:
                    del book[p]
                except KeyError:
                    pass
        if read_top:
            tops.append((ob.bids.index(0), ob.asks.index(0)))
    dt = time.perf_counter_ns() - t0
    (bp, bq), (ap, aq) = tops[-1] if tops else (ob.bids.index(0), ob.asks.index(0))
    return dt, (bp, bq, ap, aq)


def best_of(fn, w, repeat, budget_ns=10 * 10**9):
    """Best of ``repeat`` runs; stops early once a contender has used ``budget_ns``."""
    times, result = [], None
    for _ in range(repeat):
        dt, result = fn(w)
        times.append(dt)
        if sum(times) > budget_ns:
            break
    return min(times), result


# ------------------------------------------------------------------------------- readers


def per_call_ns(fn, n, repeat):
    """Best of ``repeat`` loops of ``n`` calls, ns per call (the loop itself subtracted)."""
    rng = range(n)

    def loop(f):
        t0 = time.perf_counter_ns()
        for _ in rng:
            f()
        return time.perf_counter_ns() - t0

    empty = min(loop(lambda: None) for _ in range(repeat))
    return max(0.0, (min(loop(fn) for _ in range(repeat)) - empty) / n)


def bench_reads(corpus, repeat, n=200_000):
    body = (corpus / "sequences" / "spot_BTCUSDT_20240808_snapshot.json").read_bytes()
    snap = json.loads(body)
    bs = BookSet("spot")
    bs.track(1)
    bs.apply_snapshot(1, snap["lastUpdateId"], snap["bids"], snap["asks"], 1000)
    # OrderBook's readers without a feed: the object needs only its BookSet and name table
    ob = FastfeedOrderBook.__new__(FastfeedOrderBook)
    ob.books, ob._ids = bs, {"BTCUSDT": 1}
    out = np.zeros(1, TOP_DTYPE)
    table = {"BTCUSDT": 1, "ETHUSDT": 2}
    calls = [
        ("OrderBook.best(name)", lambda: ob.best("BTCUSDT")),
        ("BookSet.best(id)", lambda: bs.best(1)),
        ("BookSet.best_fp(id)", lambda: bs.best_fp(1)),
        ("BookSet.top_fp(id, 10)", lambda: bs.top_fp(1, 10)),
    ]
    if hasattr(bs, "best_into"):
        calls.insert(1, ("OrderBook.best_into(name, out)", lambda: ob.best_into("BTCUSDT", out)))
        calls.insert(3, ("BookSet.best_into(id, out)", lambda: bs.best_into(1, out)))
    else:
        print("  (this build has no best_into: skipped)")
    yard = per_call_ns(lambda: table["BTCUSDT"], n, repeat)
    print(f"\nreaders on the spot BTCUSDT book ({n} calls, best of {repeat}):")
    print(f"  {'call':34s} {'ns/call':>9s} {'x dict lookup':>14s}")
    print(f"  {'dict lookup (yardstick)':34s} {yard:9.0f} {1.0:14.1f}")
    out_json = {"dict_lookup_ns": yard}
    for name, fn in calls:
        ns = per_call_ns(fn, n, repeat)
        print(f"  {name:34s} {ns:9.0f} {ns / yard:14.1f}")
        out_json[name] = ns
    return out_json


# ------------------------------------------------------------------------------- snapshots


def bench_snapshots(corpus, repeat, n=200):
    report = {}
    parser = SnapshotParser() if SnapshotParser is not None else None
    if parser is None:
        print("  (this build has no SnapshotParser: only the old path is measured)")
    print(f"\nREST snapshot, bytes to a loaded book (us per snapshot, best of {repeat} x {n}):")
    for market, book_market in (("spot", "spot"), ("futures", "usdm")):
        body = (corpus / "sequences" / f"{market}_BTCUSDT_20240808_snapshot.json").read_bytes()
        bs = BookSet(book_market)
        bs.track(1)

        def old(body=body, bs=bs):
            doc = json.loads(body)
            bs.apply_snapshot(1, int(doc["lastUpdateId"]), doc["bids"], doc["asks"], 1000)

        paths = [("json.loads + to_fp per level (old)", old)]
        if parser is not None:
            lid, bids, asks = parser.parse(body)

            def new(body=body, bs=bs):
                bs.apply_snapshot(1, *parser.parse(body), 1000)

            paths = [
                ("C decoder + PARTIAL rows at C level", new),
                ("  of which decode (SnapshotParser.parse)", lambda body=body: parser.parse(body)),
                (
                    "  of which apply_snapshot(rows)",
                    lambda bs=bs, a=(lid, bids, asks): bs.apply_snapshot(1, *a, 1000),
                ),
            ] + paths
        doc = json.loads(body)
        print(
            f"  {market} BTCUSDT, {len(doc['bids'])}+{len(doc['asks'])} levels, {len(body)} bytes:"
        )
        base = None
        entry = report[market] = {}
        for name, fn in paths:
            us = per_call_ns(fn, n, repeat) / 1000
            base = base or us
            print(f"    {name:42s} {us:8.1f} us {us / base:6.1f}x")
            entry[name.strip()] = us
        assert bs.stats(1)["bid_levels"] == len(doc["bids"])
    if parser is not None:
        assert parser.counters["json_fallbacks"] == 0
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="simulated events")
    ap.add_argument("--repeat", type=int, default=5, help="runs per contender (best is kept)")
    ap.add_argument("--only", default="", help="run only contenders whose name contains this")
    ap.add_argument(
        "--part",
        choices=("all", "updates", "reads", "snapshot"),
        default="all",
        help="updates: book updates vs peers; reads: best()/top readers; snapshot: REST bodies",
    )
    ap.add_argument(
        "--corpus",
        default=os.environ.get("FASTFEED_CORPUS")
        or str(ROOT.parent / "shared" / "corpus" / "binance"),
    )
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()

    workloads = []
    corpus = Path(args.corpus)
    have_corpus = (corpus / "sequences").is_dir()
    if not have_corpus:
        print(f"corpus not found at {corpus}: real sequences, readers and snapshots skipped")
    if args.part in ("all", "updates"):
        if have_corpus:
            workloads += [corpus_workload(corpus, "spot"), corpus_workload(corpus, "futures")]
        workloads.append(simulated_workload(args.events))

    contenders = [
        ("fastfeed BookSet (one batch)", run_fastfeed),
        ("fastfeed BookSet (one call per event)", lambda w: run_fastfeed(w, True)),
    ]
    if SortedDict is not None:
        contenders.append(("plain Python + sortedcontainers", run_sorted))
    else:
        print("sortedcontainers not installed: skipped")
    if OrderBook is not None:
        import importlib.metadata as md

        ver = md.version("order_book")
        contenders.append((f"cryptofeed order_book {ver} (C)", run_order_book))
        # its sorted view is rebuilt lazily on read, so also show it without per-event reads
        contenders.append(
            ("  same, best read only at the end", lambda w: run_order_book(w, read_top=False))
        )
    else:
        print("order_book (pip install order-book) did not import: skipped")

    contenders = [c for c in contenders if args.only in c[0]]
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.processor() or platform.machine()}, repeat={args.repeat} (best run)"
    )
    report = {"repeat": args.repeat, "workloads": []}
    for w in workloads:
        entry = {
            "name": w.name,
            "events": len(w.events),
            "levels": w.levels,
            "snapshot_levels": len(w.bids) + len(w.asks),
            "contenders": {},
        }
        report["workloads"].append(entry)
        print(
            f"\n{w.name}: {len(w.events)} events, {w.levels} levels "
            f"({w.levels / len(w.events):.1f}/event), snapshot {len(w.bids)}+{len(w.asks)} levels"
        )
        print(f"  {'contender':42s} {'ns/level':>9s} {'ns/event':>9s} {'vs fastfeed':>12s}")
        base = None
        results = []
        for name, fn in contenders:
            dt, best = best_of(fn, w, args.repeat)
            results.append(best)
            base = base or dt
            print(f"  {name:42s} {dt / w.levels:9.1f} {dt / len(w.events):9.0f} {dt / base:11.1f}x")
            entry["contenders"][name.strip()] = {
                "ns_per_level": dt / w.levels,
                "ns_per_event": dt / len(w.events),
            }
        ref = results[0]
        for r in results[1:]:
            assert tuple(int(x) for x in r) == ref, (r, ref)  # same final best bid/ask
    if have_corpus and args.part in ("all", "reads"):
        report["reads_ns"] = bench_reads(corpus, args.repeat)
    if have_corpus and args.part in ("all", "snapshot"):
        report["snapshot_us"] = bench_snapshots(corpus, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
