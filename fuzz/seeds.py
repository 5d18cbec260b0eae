"""Builds the harnesses' seed corpora from the recorded Binance corpus, at run time, into a
scratch directory (the recorded messages are not copied into the repository).

    python fuzz/seeds.py OUT_DIR [--per-file 12]   -> OUT_DIR/{decoder,book,listener}/
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import corpus_dir, varint


def _lines(path: Path, k: int) -> list[bytes]:
    out = []
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if line.strip():
                out.append(line)
                if len(out) == k:
                    break
    return out


def _write(d: Path, blobs) -> int:
    d.mkdir(parents=True, exist_ok=True)
    n = 0
    for b in blobs:
        (d / hashlib.sha1(b).hexdigest()).write_bytes(b)
        n += 1
    return n


def decoder_seeds(corpus: Path, k: int):
    for f in sorted(corpus.glob("*.jsonl")):
        lines = [l for l in _lines(f, k) if len(l) < 4000]
        for l in lines:
            yield b"\0" + l  # mode 0: one payload
            yield b"\3" + l  # mode 3: memoryview
            if "combined" not in f.name:
                yield b"\2" + f.stem.split("_")[1].encode() + b"\0" + l  # mode 2: envelope
        buf = b"\n".join(lines[:6])
        if len(buf) < 4000:
            yield b"\1" + buf  # mode 1: decode_lines
            yield b"\1" + buf.replace(b"\n", b"\r\n") + b"\n\n"


def _fp(s: str) -> int:
    return int(Decimal(s) * 10**8)


def book_seeds(corpus: Path, k: int):
    """Real BTCUSDT sequences as book programs (see fuzz_book.py for the format): the
    snapshot's top levels, then the first events with prices as ticks from the best bid."""
    seq = corpus / "sequences"
    for market in ("spot", "futures"):
        base = seq / f"{market}_BTCUSDT_20240808"
        snap_path = base.with_name(base.name + "_snapshot.json")
        ev_path = base.with_name(base.name + "_depthUpdate.jsonl")
        if not (snap_path.exists() and ev_path.exists()):
            continue
        snap = json.loads(snap_path.read_text())
        tick = 10**6  # 0.01 in fixed point: BTCUSDT's tick
        mid = _fp(snap["bids"][0][0])

        def level(side, p, q, mid=mid, tick=tick):
            off = max(-32768, min(32767, (_fp(p) - mid) // tick))
            qty = min(65535, _fp(q) // 10**5)  # 0.001 units
            return bytes([side]) + (off & 0xFFFF).to_bytes(2, "little") + qty.to_bytes(2, "little")

        lid = snap["lastUpdateId"]
        levels = [level(0, p, q) for p, q in snap["bids"][:20]]
        levels += [level(1, p, q) for p, q in snap["asks"][:20]]
        prog = bytearray([0x80 if market == "futures" else 0])  # header: market
        # ids rebased: the harness starts each symbol's previous u at 100
        prog += bytes([0]) + varint(100) + bytes([len(levels)]) + b"".join(levels)
        last_u = lid
        for line in _lines(ev_path, k * 4):
            e = json.loads(line)
            lv = [level(0, p, q) for p, q in e["b"][:15]] + [level(1, p, q) for p, q in e["a"][:15]]
            dU = e["U"] - last_u  # may be <= 0 (stale, overlapping)
            prog += bytes([1]) + varint(max(0, dU + 1000)) + varint(e["u"] - e["U"])
            prog += bytes([1 if "pu" in e else 0]) + bytes([len(lv)]) + b"".join(lv)
            last_u = e["u"]
            if len(prog) > 3500:
                break
        yield bytes(prog)


def listener_seeds(corpus: Path, k: int):
    """Frame programs (see fuzz_listener.py): combined payloads as whole TEXT frames, and the
    same split into fragments."""
    names = (
        "spot_aggTrade_combined",
        "spot_depthUpdate_combined",
        "futures_trade_combined",
        "spot_bookTicker_combined",
        "futures_partialDepth_combined",
    )
    for name in names:
        path = corpus / f"{name}.jsonl"
        if not path.exists():
            continue
        lines = [l for l in _lines(path, k) if len(l) < 1500]
        whole = bytearray()
        frag = bytearray()
        for i, l in enumerate(lines):
            conn = i & 1  # two connections, as during a rotation
            whole += bytes([conn << 2]) + varint(len(l)) + l  # TEXT, fin
            h = len(l) // 2
            frag += bytes([conn << 2 | 0x08]) + varint(h) + l[:h]  # TEXT, not fin
            frag += bytes([conn << 2 | 0x02]) + varint(len(l) - h) + l[h:]  # CONTINUATION, fin
        yield bytes(whole[:4000])
        yield bytes(frag[:4000])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-file", type=int, default=12)
    a = ap.parse_args()
    corpus = corpus_dir()
    if not corpus.is_dir():
        sys.exit(f"corpus not found: {corpus} (set FASTFEED_CORPUS)")
    for name, gen in (
        ("decoder", decoder_seeds),
        ("book", book_seeds),
        ("listener", listener_seeds),
    ):
        n = _write(a.out / name, gen(corpus, a.per_file))
        print(f"{name}: {n} seeds")


if __name__ == "__main__":
    main()
