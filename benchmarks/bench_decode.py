"""Decode benchmark on the real Binance corpus: fastfeed versus the JSON parsers a user
would pick instead, all measured in one run, printed as ns per message and ratios.

    python benchmarks/bench_decode.py [--corpus DIR] [--repeat 7] [--min-seconds 0.2]
                                      [--level-sweep] [--keep-results] [--json OUT]

Rows:
  fastfeed C-level   BinanceDecoder.decode_lines(buffer): the C loop the listener and
                     replay use (one Python call per buffer, not per message)
  fastfeed decode()  one Python call per message
  json / orjson      .loads(bytes) into dicts (no field conversion), each dropped before
                     the next, as a feed loop does
  msgspec            msgspec.json.Decoder(Struct) with typed fields
  pysimdjson         Parser.parse(bytes) and reading the fields the row needs

--level-sweep adds depthUpdates of 0 to 60 levels against orjson: fixed and per-level costs.
--keep-results makes the peers keep every result of a pass (docs/decisions/0005: flattering).
--json OUT also writes every figure to OUT (for benchmarks/suite.py).

Times are CPU time (process_time), best of --repeat rounds in which the contenders take turns
(so a slow phase of a shared machine hits them alike); the ratio columns divide the peer's
time by fastfeed's.  Machines are noisy: compare ratios, not absolute ns.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import fastfeed

try:
    import orjson
except ImportError:
    orjson = None
try:
    import msgspec
except ImportError:
    msgspec = None
try:
    import simdjson
except ImportError:
    simdjson = None

CASES = [
    ("aggTrade", "spot_aggTrade.jsonl"),
    ("trade", "futures_trade.jsonl"),
    ("depthUpdate", "spot_depthUpdate.jsonl"),
    ("bookTicker", "spot_bookTicker.jsonl"),
    ("aggTrade combined", "spot_aggTrade_combined.jsonl"),
    ("depthUpdate combined", "futures_depthUpdate_combined.jsonl"),
]


def default_corpus():
    here = Path(__file__).resolve().parent.parent
    return Path(os.environ.get("FASTFEED_CORPUS", here.parent / "shared" / "corpus" / "binance"))


def msgspec_decoders():
    if msgspec is None:
        return {}

    class AggTrade(msgspec.Struct):
        e: str
        E: int
        s: str
        a: int
        p: str
        q: str
        f: int
        l: int
        T: int
        m: bool

    class Trade(msgspec.Struct):
        e: str
        E: int
        s: str
        t: int
        p: str
        q: str
        T: int
        m: bool

    class Depth(msgspec.Struct):
        e: str
        E: int
        s: str
        U: int
        u: int
        b: list[tuple[str, str]]
        a: list[tuple[str, str]]

    class Ticker(msgspec.Struct):
        u: int
        s: str
        b: str
        B: str
        a: str
        A: str

    def env(t):
        class Envelope(msgspec.Struct):
            stream: str
            data: t

        return Envelope

    # Prices stay strings in the Struct; float() of each is part of the work a user does.
    return {
        "aggTrade": (msgspec.json.Decoder(AggTrade), lambda m: (float(m.p), float(m.q))),
        "trade": (msgspec.json.Decoder(Trade), lambda m: (float(m.p), float(m.q))),
        "depthUpdate": (
            msgspec.json.Decoder(Depth),
            lambda m: [(float(p), float(q)) for p, q in m.b + m.a],
        ),
        "bookTicker": (
            msgspec.json.Decoder(Ticker),
            lambda m: (float(m.b), float(m.B), float(m.a), float(m.A)),
        ),
        "aggTrade combined": (
            msgspec.json.Decoder(env(AggTrade)),
            lambda m: (float(m.data.p), float(m.data.q)),
        ),
        "depthUpdate combined": (
            msgspec.json.Decoder(env(Depth)),
            lambda m: [(float(p), float(q)) for p, q in m.data.b + m.data.a],
        ),
    }


def drop_each(parse, lines, keep=False):
    """One pass of parse over lines, each result dropped before the next parse (or, with
    keep, all kept in a list until the pass ends: the form used before decision 0005)."""
    if keep:
        return lambda: [parse(l) for l in lines]

    def run():
        for l in lines:
            parse(l)

    return run


def calibrate(fn, min_seconds):
    """Loops of fn that take at least min_seconds of CPU (after one warm-up call)."""
    fn()
    loops = 1
    while True:
        t = time.process_time()
        for _ in range(loops):
            fn()
        if time.process_time() - t >= min_seconds:
            return loops
        loops *= 2


def best_cpu_interleaved(contenders, n, repeat, min_seconds):
    """Best CPU ns per message of each contender.  The contenders take turns, one timed run
    each per round, for `repeat` rounds: a slow phase of a shared machine then hits them
    all alike instead of whichever happened to be running."""
    loops = {name: calibrate(fn, min_seconds) for name, fn in contenders.items()}
    best = {name: float("inf") for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            k = loops[name]
            t = time.process_time()
            for _ in range(k):
                fn()
            best[name] = min(best[name], (time.process_time() - t) / k)
    return {name: b / n * 1e9 for name, b in best.items()}


def run(corpus, repeat, min_seconds, keep=False):
    ms = msgspec_decoders()
    results = []
    for label, fname in CASES:
        path = corpus / fname
        if not path.exists():
            print(f"skip {label}: {path} missing", file=sys.stderr)
            continue
        lines = [l for l in path.read_bytes().splitlines() if l.strip()]
        buf = b"\n".join(lines)
        n = len(lines)
        dec = fastfeed.BinanceDecoder()
        # Closures bind this iteration's values (default arguments), not the loop variables.
        c = {
            "fastfeed C-level": lambda dec=dec, buf=buf: dec.decode_lines(buf),
            "fastfeed decode()": drop_each(dec.decode, lines),
        }
        # Peers parse and drop one message at a time, as a feed loop does (decision 0005):
        # keeping every result alive costs them fresh memory and GC passes a loop never pays.
        c["json.loads"] = drop_each(json.loads, lines, keep)
        if orjson:
            c["orjson.loads"] = drop_each(orjson.loads, lines, keep)
        if label in ms:
            d, fields = ms[label]
            c["msgspec Struct"] = drop_each(
                lambda l, d=d, fields=fields: fields(d.decode(l)), lines, keep
            )
        if simdjson:
            parser = simdjson.Parser()
            keys = {
                "aggTrade": ("E", "p", "q", "T", "m"),
                "trade": ("E", "p", "q", "T", "m"),
                "bookTicker": ("u", "b", "B", "a", "A"),
            }.get(label.split()[0], ("E", "U", "u"))

            combined = label.endswith("combined")

            def sj(lines=lines, parser=parser, combined=combined, keys=keys):
                for l in lines:
                    doc = parser.parse(l)
                    body = doc["data"] if combined else doc
                    for k in keys:
                        body[k]
                    del body, doc  # the parser refuses to reuse its buffer while proxies live

            c["pysimdjson"] = sj
        row = {"case": label, "n": n}
        row.update(best_cpu_interleaved(c, n, repeat, min_seconds))
        assert dec.counts[fastfeed.Kind.ERROR] == 0
        results.append(row)
    return results


def print_table(results):
    cols = [
        "fastfeed C-level",
        "fastfeed decode()",
        "json.loads",
        "orjson.loads",
        "msgspec Struct",
        "pysimdjson",
    ]
    print(
        f"\nns per message (CPU, best of runs) and peer/fastfeed ratios; python {sys.version.split()[0]}"
    )
    head = f"{'case':22s}" + "".join(f"{c:>19s}" for c in cols)
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r['case']:22s}" + "".join(f"{r[c]:19.0f}" if c in r else f"{'-':>19s}" for c in cols)
        )
    print("\nratios (peer time / fastfeed time; higher is better for fastfeed)")
    print(
        f"{'case':22s}{'orjson/C':>12s}{'msgspec/C':>12s}{'orjson/decode()':>17s}{'json/C':>10s}{'simdjson/C':>12s}"
    )

    def ratio(r, k, base):
        return f"{r[k] / base:.1f}x" if k in r else "-"

    for r in results:
        c, p = r["fastfeed C-level"], r["fastfeed decode()"]
        print(
            f"{r['case']:22s}{ratio(r, 'orjson.loads', c):>12s}{ratio(r, 'msgspec Struct', c):>12s}"
            f"{ratio(r, 'orjson.loads', p):>17s}{ratio(r, 'json.loads', c):>10s}"
            f"{ratio(r, 'pysimdjson', c):>12s}"
        )


def depth_with_levels(template, k, rng):
    """The corpus depthUpdate ``template`` (a dict) with k levels in Binance's decimal shapes."""

    def level(base):
        return [f"{base + rng.random() * 100:.2f}000000", f"{rng.random() * 5:.8f}"]

    d = dict(template)
    d["b"] = [level(16500) for _ in range(k // 2)]
    d["a"] = [level(16600) for _ in range(k - k // 2)]
    return json.dumps(d, separators=(",", ":")).encode()


def level_sweep(corpus, repeat, min_seconds, counts=(0, 2, 6, 20, 60)):
    """fastfeed against orjson on depthUpdates with k levels each: the fixed cost per message
    and the cost per level, for each side."""
    import random

    path = corpus / "spot_depthUpdate.jsonl"
    template = json.loads(path.read_bytes().split(b"\n", 1)[0])
    rng = random.Random(1)
    print(
        "\ndepthUpdate by level count (2,000 synthetic messages each; ns per message, CPU, best of rounds)"
    )
    print(f"{'levels':>6s}{'fastfeed C-level':>18s}{'orjson.loads':>14s}{'orjson/C':>10s}")
    rows = []
    out = []
    for k in counts:
        lines = [depth_with_levels(template, k, rng) for _ in range(2000)]
        buf = b"\n".join(lines)
        dec = fastfeed.BinanceDecoder()
        c = {"ff": lambda dec=dec, buf=buf: dec.decode_lines(buf)}
        if orjson:
            c["orjson"] = drop_each(orjson.loads, lines)
        r = best_cpu_interleaved(c, len(lines), repeat, min_seconds)
        assert dec.counts[fastfeed.Kind.ERROR] == 0 and dec.stats()["off_plan"] == 0
        rows.append((k, r))
        out.append({"levels": k, "fastfeed C-level": r["ff"], "orjson.loads": r.get("orjson")})
        oj = r.get("orjson")
        print(f"{k:6d}{r['ff']:18.0f}" + (f"{oj:14.0f}{oj / r['ff']:9.1f}x" if oj else ""))
    (k0, r0), (k1, r1) = rows[-2], rows[-1]
    per_ff = (r1["ff"] - r0["ff"]) / (k1 - k0)
    line = f"per level ({k0} -> {k1} levels): fastfeed {per_ff:.1f} ns"
    if orjson:
        per_oj = (r1["orjson"] - r0["orjson"]) / (k1 - k0)
        line += (
            f", orjson {per_oj:.1f} ns: the ratio tends to {per_oj / per_ff:.1f}x as levels grow"
        )
    print(line)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=default_corpus())
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--min-seconds", type=float, default=0.2)
    ap.add_argument(
        "--keep-results",
        action="store_true",
        help="peers keep every result of a pass alive in a list (the flattering form "
        "used before docs/decisions/0005; for comparison only)",
    )
    ap.add_argument(
        "--level-sweep",
        action="store_true",
        help="also time depthUpdates with 0, 2, 6, 20 and 60 levels against orjson",
    )
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()
    if not args.corpus.is_dir():
        sys.exit(f"corpus not found: {args.corpus} (set FASTFEED_CORPUS)")
    results = run(args.corpus, args.repeat, args.min_seconds, args.keep_results)
    print_table(results)
    report = {"unit": "ns per message (CPU)", "repeat": args.repeat, "cases": results}
    if args.level_sweep:
        report["level_sweep"] = level_sweep(args.corpus, args.repeat, args.min_seconds)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
