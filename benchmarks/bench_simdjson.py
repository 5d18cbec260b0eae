"""External reference floor: simdjson On-Demand (C++) versus fastfeed's C-level decoder.

    python benchmarks/bench_simdjson.py [--blast FILE] [--corpus DIR] [--rounds 5] [--min-seconds 0.2]

What a state-of-the-art SIMD JSON parser costs per message on the payloads fastfeed decodes.
bench_simdjson.cpp (next to this file) is compiled against the simdjson amalgamation that the
installed pysimdjson wheel ships (simdjson.cpp / simdjson.h), twice:
  base    g++ -O3 -std=c++17                 (x86-64 baseline ISA for the benchmark code;
                                             simdjson still picks its SIMD kernel at runtime)
  native  g++ -O3 -std=c++17 -march=native
Binaries are cached under --cache-dir keyed by a hash of the sources, flags and compiler.

Inputs (each written once to a temp file, so both sides see byte-identical buffers):
  blast aggTrade / blast depthUpdate / blast mix   the end-to-end benchmark's stream (the
                                                   simulator's blast: 20,000 combined-stream
                                                   messages), or newline-separated --blast FILE
  spot_aggTrade / spot_depthUpdate                 raw event objects from --corpus

simdjson variants (see bench_simdjson.cpp): V1 reads every field fastfeed extracts as
string_view / integers, V2 also converts each decimal string to double (std::from_chars) and to
int64 fixed point at 1e-8; each in three access styles (find_field_unordered "u", ordered
find_field "o", one loop over the fields "l"); the tables show the fastest style.  "many" is V1
through iterate_many (simdjson's own newline-delimited stream API).  "memchr" only walks the
newlines.  Line offsets are precomputed for the simdjson variants, so their times exclude line
splitting; fastfeed's decode_lines includes it (the memchr column is roughly that cost).

Timing: every measurement loops over all messages of one input until >= --min-seconds, best
of --rounds.  The C++ side times itself (std::chrono::steady_clock inside the binary, wall
clock); fastfeed is timed here with time.perf_counter (wall clock).  Runs are interleaved: one
C++ measurement, one fastfeed measurement, the next C++ measurement, ... so a slow phase of a
shared machine hits both sides alike.
"""

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPP = HERE / "bench_simdjson.cpp"
BUILDS = {"base": [], "native": ["-march=native"]}
CXXFLAGS = ["-O3", "-std=c++17", "-DNDEBUG"]
V1 = ("v1u", "v1o", "v1l")
V2 = ("v2u", "v2o", "v2l")
VARIANTS = ("memchr",) + V1 + V2 + ("v1m",)


def simdjson_sources():
    try:
        import simdjson
    except ImportError:
        sys.exit(
            "pysimdjson is not installed (pip install pysimdjson): it ships the simdjson sources"
        )
    d = Path(simdjson.__file__).resolve().parent
    cpp, h = d / "simdjson.cpp", d / "simdjson.h"
    if not (cpp.exists() and h.exists()):
        sys.exit(f"simdjson.cpp / simdjson.h not found in {d}")
    return d, cpp, h


def digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def build(cache, cxx, sj_dir, sj_cpp, sj_h):
    """Compile the simdjson object and the benchmark for each build flavour (in parallel);
    returns {flavour: binary path}."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    sj_src = sj_cpp.read_bytes() + sj_h.read_bytes()
    cache.mkdir(parents=True, exist_ok=True)
    jobs, out = [], {}
    for flavour, extra in BUILDS.items():
        flags = CXXFLAGS + extra
        obj = cache / f"simdjson-{digest(sj_src, flags, version)}.o"
        exe = cache / f"bench_simdjson-{flavour}-{digest(sj_src, CPP.read_bytes(), flags, version)}"
        out[flavour] = exe
        if exe.exists():
            continue
        steps = []
        if not obj.exists():
            steps.append([cxx, *flags, f"-I{sj_dir}", "-c", str(sj_cpp), "-o", f"{obj}.tmp"])
            steps.append(["mv", f"{obj}.tmp", str(obj)])
        steps.append([cxx, *flags, f"-I{sj_dir}", str(CPP), str(obj), "-o", f"{exe}.tmp"])
        steps.append(["mv", f"{exe}.tmp", str(exe)])
        script = " && ".join(shlex.join(s) for s in steps)
        print(f"compiling {flavour} build (simdjson amalgamation takes ~15 s) ...", file=sys.stderr)
        jobs.append(
            (flavour, subprocess.Popen(["sh", "-c", script], stderr=subprocess.PIPE, text=True))
        )
    for flavour, p in jobs:
        _, err = p.communicate()
        if p.returncode:
            sys.exit(f"compilation of the {flavour} build failed:\n{err}")
    return out


def blast_lines(n):
    """The payloads of the simulator's blast (bench_e2e's stream)."""
    from fastfeed.sim import ExchangeSimulator
    from fastfeed.sim.blast import blast_payloads

    return list(blast_payloads(ExchangeSimulator().templates(), n))


def prepare_inputs(blast, corpus, tmp):
    """[(label, path, bytes, n)]: each input normalised to non-empty lines joined by '\\n'."""
    cases = []

    def add(label, lines):
        lines = [l for l in lines if l.strip()]
        if not lines:
            print(f"skip {label}: no messages", file=sys.stderr)
            return
        buf = b"\n".join(lines)
        path = tmp / f"{len(cases)}.jsonl"
        path.write_bytes(buf)
        cases.append((label, path, buf, len(lines)))

    lines = blast.read_bytes().splitlines() if blast else blast_lines(20000)
    if lines:
        add("blast aggTrade", [l for l in lines if b"@aggTrade" in l[:64]])
        add("blast depthUpdate", [l for l in lines if b"@depth" in l[:64]])
        add("blast mix", lines)
    else:
        print(f"skip blast: {blast} missing", file=sys.stderr)
    for name in ("spot_aggTrade", "spot_depthUpdate"):
        p = corpus / f"{name}.jsonl"
        if p.exists():
            add(name, p.read_bytes().splitlines())
        else:
            print(f"skip {name}: {p} missing", file=sys.stderr)
    return cases


class Floor:
    """One benchmark binary, kept running; inputs are loaded (and self-checked) at start."""

    def __init__(self, exe, paths):
        self.p = subprocess.Popen(
            [str(exe), *map(str, paths)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.impl = self._line().split()[1]
        for _ in paths:
            f = self._line().split()
            if f[4] != "ok":
                sys.exit(f"{exe}: self-check failed on input {f[1]}")

    def _line(self):
        line = self.p.stdout.readline()
        if not line:
            sys.exit("benchmark binary exited unexpectedly")
        return line

    def run(self, idx, variant, min_seconds):
        self.p.stdin.write(f"run {idx} {variant} {min_seconds} 1\n")
        f = self._line().split()
        if f[0] != "result":
            sys.exit(" ".join(f))
        if int(f[5]) != 0:
            sys.exit(f"simdjson reported {f[5]} errors on input {idx} ({variant})")
        return float(f[3]), f[4]

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait()


def fastfeed_timer(buf, n):
    import fastfeed

    dec = fastfeed.BinanceDecoder(depth=1 << 20)
    got = dec.decode_lines(buf)  # warm-up and sanity check
    if got != n or dec.counts[fastfeed.Kind.ERROR]:
        sys.exit(f"fastfeed decoded {got}/{n} messages, errors {dec.errors}")
    decode = dec.decode_lines
    clock = time.perf_counter

    def once(min_seconds):
        passes = 0
        t0 = clock()
        while True:
            decode(buf)
            passes += 1
            el = clock() - t0
            if el >= min_seconds:
                return el * 1e9 / (passes * n)

    return once


def measure(cases, floors, rounds, min_seconds):
    """Interleaved measurements, best of rounds, in ns/msg:
    best[(case, flavour, variant)] simdjson; ff[case] fastfeed over all its measurements;
    ffp[(case, flavour, variant)] fastfeed over only the measurements taken right after that
    variant's (the ratios use these, so both sides are a best of the same number of samples)."""
    best, ff, ffp, sums = {}, {}, {}, {}
    timers = [fastfeed_timer(buf, n) for _, _, buf, n in cases]
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
        for i in range(len(cases)):
            for flavour, fl in floors.items():
                for v in VARIANTS:
                    ns, chk = fl.run(i, v, min_seconds)
                    key = (i, flavour, v)
                    best[key] = min(best.get(key, float("inf")), ns)
                    sums.setdefault((i, v), set()).add(chk)
                    t = timers[i](min_seconds)
                    ff[i] = min(ff.get(i, float("inf")), t)
                    ffp[key] = min(ffp.get(key, float("inf")), t)
    # the two builds must have read exactly the same values
    for (i, v), s in sums.items():
        if len(s) != 1:
            sys.exit(f"checksum mismatch between builds on {cases[i][0]} / {v}: {s}")
    return best, ff, ffp


def print_tables(cases, floors, best, ff, ffp):
    for flavour, fl in floors.items():
        flags = " ".join(CXXFLAGS + BUILDS[flavour])
        print(f"\n### simdjson {flavour} build (`{flags}`), active implementation: {fl.impl}\n")
        print(
            "| input | msgs | bytes/msg | fastfeed decode_lines | simdjson V1 | simdjson V2 "
            "| V1 iterate_many | memchr | V1/ff | V2/ff |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for i, (label, _, buf, n) in enumerate(cases):
            v1 = min(V1, key=lambda v: best[(i, flavour, v)])
            v2 = min(V2, key=lambda v: best[(i, flavour, v)])
            b1, b2 = best[(i, flavour, v1)], best[(i, flavour, v2)]
            print(
                f"| {label} | {n} | {len(buf) / n:.0f} | {ff[i]:.0f} | {b1:.0f} ({v1[-1]}) "
                f"| {b2:.0f} ({v2[-1]}) | {best[(i, flavour, 'v1m')]:.0f} "
                f"| {best[(i, flavour, 'memchr')]:.1f} | {b1 / ffp[(i, flavour, v1)]:.2f}x "
                f"| {b2 / ffp[(i, flavour, v2)]:.2f}x |"
            )
    print(
        "\n### all simdjson variants, ns/msg (u = find_field_unordered, o = ordered find_field, "
        "l = loop over fields, m = iterate_many)\n"
    )
    print("| input | build | " + " | ".join(VARIANTS) + " |")
    print("|---|---|" + "---:|" * len(VARIANTS))
    for i, (label, *_rest) in enumerate(cases):
        for flavour in floors:
            print(
                f"| {label} | {flavour} | "
                + " | ".join(f"{best[(i, flavour, v)]:.0f}" for v in VARIANTS)
                + " |"
            )
    print(
        "\nns per message, best of rounds; fastfeed: time.perf_counter in Python around "
        "decode_lines(buffer); simdjson: the binary's own std::chrono::steady_clock. "
        "Both wall clock, measurements interleaved. simdjson times exclude line splitting "
        "(precomputed offsets); fastfeed's include it. Ratios divide by the best of the fastfeed "
        "measurements interleaved with that simdjson variant (same sample count)."
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument(
        "--blast",
        type=Path,
        default=None,
        help="newline-separated payloads (default: generated by the simulator's blast)",
    )
    ap.add_argument("--corpus", type=Path, default=None, help="default: as bench_decode.py")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=0.2)
    ap.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "fastfeed_bench_simdjson"
    )
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--cxx", default=os.environ.get("CXX", "g++"))
    args = ap.parse_args()

    if shutil.which(args.cxx) is None:
        sys.exit(
            f"C++ compiler '{args.cxx}' not found: install g++ (e.g. apt-get install g++) "
            "or pass --cxx"
        )
    try:
        import fastfeed  # noqa: F401
    except ImportError:
        sys.exit("cannot import fastfeed: run with PYTHONPATH=<repo root> (built in place)")
    if args.corpus is None:
        from bench_decode import default_corpus  # a sibling script: same corpus lookup

        args.corpus = default_corpus()
    sj_dir, sj_cpp, sj_h = simdjson_sources()
    exes = build(args.cache_dir, args.cxx, sj_dir, sj_cpp, sj_h)

    with tempfile.TemporaryDirectory(prefix="bench_simdjson_") as tmp:
        cases = prepare_inputs(args.blast, args.corpus, Path(tmp))
        if not cases:
            sys.exit("no inputs found (see --blast / --corpus)")
        floors = {f: Floor(exe, [c[1] for c in cases]) for f, exe in exes.items()}
        try:
            best, ff, ffp = measure(cases, floors, args.rounds, args.min_seconds)
        finally:
            for fl in floors.values():
                fl.close()
    print_tables(cases, floors, best, ff, ffp)
    if args.json:
        rows = [
            {
                "input": c[0],
                "messages": c[3],
                "bytes": len(c[2]),
                "fastfeed_ns": ff[i],
                "simdjson": {
                    f: {
                        v: {"ns": best[(i, f, v)], "fastfeed_paired_ns": ffp[(i, f, v)]}
                        for v in VARIANTS
                    }
                    for f in floors
                },
                "impl": {f: fl.impl for f, fl in floors.items()},
            }
            for i, c in enumerate(cases)
        ]
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
