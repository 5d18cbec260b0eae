"""Recording benchmarks: replay speed, compression ratio, and the recorder's cost end to end.

    PYTHONPATH=. python3 benchmarks/bench_record.py                # all three
    PYTHONPATH=. python3 benchmarks/bench_record.py --only replay,ratio
    PYTHONPATH=. python3 benchmarks/bench_record.py --n 300000 --repeat 3   # e2e size

replay: the corpus mix (every ``*_combined.jsonl`` payload of ../shared/corpus/binance except
REST snapshots: what a feed receives) recorded once, then ``Replay(path).run()`` as fast as
possible, decompression included (in the replaying thread: a reader thread cannot overlap
it while the play loop holds the GIL; decision 0501), beside ``decode_lines`` over the same
payloads (the decoder alone, no filter) and the bare zstd decompression of the same chunks, in
one run.

ratio: recording bytes / raw JSON bytes, on the corpus mix and on a recorded simulator blast.

e2e: bench_e2e's setup (a fresh ``fastfeed sim --blast N`` process per client, TLS on
loopback, each client in its own process, CPU time per message by ``process_time``, which
counts every thread, so the recorder's compression too) for fastfeed without ``record=``,
with it storing chunks uncompressed (the tap and the writes alone), and with zstd level 1;
interleaved, rounds in rotated order; the recorder is closed (last chunk compressed and
written) inside the measured time; "read path" is the event loop thread's CPU alone
(``thread_time``), the part of the cost that sits between the socket and the rings.  Then the same at a paced rate (``--paced``, messages
spread over time as live traffic is, so each costs a socket read and a wake-up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a checkout: its package (see soak.py)


def corpus_dir() -> Path:
    env = os.environ.get("FASTFEED_CORPUS")
    for c in (env, ROOT.parent / "shared" / "corpus" / "binance", "/work/shared/corpus/binance"):
        if c and Path(c).is_dir():
            return Path(c)
    raise SystemExit("corpus not found: set FASTFEED_CORPUS")


def corpus_mix() -> list[bytes]:
    out = []
    for f in sorted(corpus_dir().glob("*_combined.jsonl")):
        if "snapshot" in f.name:
            continue
        out += [ln for ln in f.read_bytes().split(b"\n") if ln]
    return out


def record_payloads(out: Path, payloads: list[bytes]) -> None:
    from fastfeed.record import Recorder

    with Recorder(out) as rec:
        t = time.time_ns()
        for i, p in enumerate(payloads):
            rec.tap.add_frame(1, p, t + i * 1000)


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.glob("*.ffr"))


def play_only(path) -> float:
    """Replay's message path alone: every chunk decompressed before the clock starts."""
    from fastfeed.record import Replay

    rp = Replay(path)
    chunks = [c.raw for c in rp.recording.chunks()]
    t0 = time.perf_counter()
    for raw in chunks:
        rp.play_chunk(raw)
    return rp.player.frames / (time.perf_counter() - t0)


def bench_replay(repeat: int) -> dict:
    from fastfeed import BinanceDecoder
    from fastfeed.record import Recording, Replay

    payloads = corpus_mix()
    raw = sum(len(p) for p in payloads)
    tmp = Path(tempfile.mkdtemp(prefix="ffbench-"))
    try:
        record_payloads(tmp / "rec", payloads)
        rec_bytes = dir_bytes(tmp / "rec")
        lines = b"\n".join(payloads) + b"\n"
        rates, dec_rates, z_rates, play_rates = [], [], [], []
        for _ in range(repeat):
            play_rates.append(play_only(tmp / "rec"))
            st = Replay(tmp / "rec").run()
            assert st["messages"] == len(payloads), st
            rates.append(st["msgs_per_s"])
            dec = BinanceDecoder()
            t0 = time.perf_counter()
            n = dec.decode_lines(lines)
            dec_rates.append(n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for _c in Recording(tmp / "rec").chunks():
                pass
            z_rates.append(len(payloads) / (time.perf_counter() - t0))
        med = statistics.median
        print(f"replay: corpus mix, {len(payloads)} messages, {raw / len(payloads):.0f} B avg")
        print(f"  Replay.run (read + decompress + message path)  {med(rates) / 1e6:6.2f} M msg/s")
        print(
            f"  decode_lines (decoder alone, no filter)        {med(dec_rates) / 1e6:6.2f} M msg/s"
        )
        print(
            f"  message path alone (chunks decompressed first)  {med(play_rates) / 1e6:6.2f} M msg/s"
        )
        print(f"  read + decompress + CRC alone                  {med(z_rates) / 1e6:6.2f} M msg/s")
        print(f"  replay / decode_lines: {med(rates) / med(dec_rates):.2f}")
        print(f"ratio: corpus mix {rec_bytes} / {raw} raw JSON bytes = 1/{raw / rec_bytes:.1f}")
        return {
            "messages": len(payloads),
            "replay_msgs_per_s": med(rates),
            "decode_lines_msgs_per_s": med(dec_rates),
            "message_path_msgs_per_s": med(play_rates),
            "read_decompress_msgs_per_s": med(z_rates),
            "size_ratio": raw / rec_bytes,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- end to end


async def c_fastfeed(info, n, record=None):
    from bench_e2e import STREAMS, ctx

    from fastfeed import BinanceFeed

    kw = {"record": record} if record else {}
    feed = BinanceFeed(STREAMS.split("/"), url=info["ws"], ssl=ctx(info), stream_timeout=None, **kw)
    await feed.start()
    sink = feed.sink
    t0, c0, r0 = time.perf_counter(), time.process_time(), time.thread_time()
    while sink.accepted_total < n:
        await feed.wait()
    read_path = time.thread_time() - r0  # the event loop's thread alone
    if feed.recorder is not None:
        feed.recorder.close()  # the last chunk's compression and write count too
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    raw = sum(feed.stats()["bytes"].values())
    await feed.close()
    return wall, cpu, raw, read_path


def child(name, info, n):
    from fastfeed import run
    from fastfeed.record import Recorder

    rec = None
    if name != "plain":
        rec = tempfile.mkdtemp(prefix="ffrec-")
    try:
        chunk = int(os.environ.get("FFBENCH_CHUNK_KB", "0")) << 10 or None
        kw = {"chunk_bytes": chunk} if chunk else {}
        target = Recorder(rec, level=None if name == "stored" else 1, **kw) if rec else None
        wall, cpu, raw, loop = run(c_fastfeed(info, n, target))
        size = dir_bytes(Path(rec)) if rec else 0
        lost = target.stats()["lost_records"] if target is not None else 0
        out = {"wall": wall, "cpu": cpu, "loop": loop, "raw": raw, "rec_bytes": size, "lost": lost}
        print(json.dumps(out), flush=True)
    finally:
        if rec:
            shutil.rmtree(rec, ignore_errors=True)


def measure(name, n, sim_args, timeout=600):
    """bench_e2e's measurement, with this script's children (plain, stored, record)."""
    import bench_e2e

    return bench_e2e.measure(name, n, timeout, sim_args, script=__file__)


def bench_e2e(n: int, repeat: int, paced: float, paced_n: int) -> dict:
    names = ["plain", "stored", "record"]
    label = {"plain": "plain", "stored": "record=, stored", "record": "record=, zstd 1"}
    runs = [("blast", n, ["--blast", str(n)])]
    if paced:
        runs.append(
            (f"paced {paced:g}/s", paced_n, ["--paced", str(paced), "--paced-count", str(paced_n)])
        )
    med = statistics.median
    out: dict = {}
    for title, count, sim_args in runs:
        res: dict[str, list] = {k: [] for k in names}
        for r in range(repeat):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                res[name].append(measure(name, count, sim_args))
        cpu = {k: med(x["cpu"] for x in v) / count * 1e9 for k, v in res.items()}
        wall = {k: med(x["wall"] for x in v) / count * 1e9 for k, v in res.items()}
        loop = {k: med(x["loop"] for x in v) / count * 1e9 for k, v in res.items()}
        lost = {k: med(x.get("lost", 0) for x in v) for k, v in res.items()}
        print(f"e2e {title}: {count} messages, TLS loopback, {repeat} rounds, medians")
        for k in names:
            extra = "" if k == "plain" else f"  ({100 * (cpu[k] / cpu['plain'] - 1):+.1f}% CPU)"
            if lost[k]:
                # the disk fell behind (max_pending_bytes full): those records cost no writes
                extra += f"  ({lost[k]:.0f} records dropped: the disk was slower than the feed)"
            print(
                f"  fastfeed {label[k]:16s} CPU {cpu[k]:7.0f} ns/msg (read path {loop[k]:5.0f})"
                f"  wall {wall[k]:7.0f} ns/msg{extra}"
            )
        rb = med(x["rec_bytes"] for x in res["record"])
        raw = med(x["raw"] for x in res["record"])
        print(f"  ratio: {rb:.0f} / {raw:.0f} raw JSON bytes = 1/{raw / rb:.1f}")
        out[title] = {
            "cpu_ns": cpu,
            "read_path_ns": loop,
            "wall_ns": wall,
            "size_ratio": raw / rb,
            "lost_records": lost,
        }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="replay,e2e")
    ap.add_argument("--n", type=int, default=300_000, help="e2e messages per client")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--paced", type=float, default=20000, help="paced rate (0: skip)")
    ap.add_argument("--paced-n", type=int, default=60000)
    ap.add_argument("--child")
    ap.add_argument("--info")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args()
    if a.child:
        child(a.child, json.loads(a.info), a.n)
        return
    only = a.only.split(",")
    figures: dict = {}
    if "replay" in only or "ratio" in only:
        figures["replay"] = bench_replay(max(a.repeat, 9))
    if "e2e" in only:
        figures["e2e"] = bench_e2e(a.n, a.repeat, a.paced, a.paced_n)
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
