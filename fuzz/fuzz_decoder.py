"""Fuzz harness: the decoder against the stdlib reference (tests/reference.py).

The first byte picks a mode, the rest is the input:

  0  ``decode(payload)``: the kind and every row written must equal the reference's
  1  ``decode_lines(buffer)``: count, kinds, rejections and rows must equal one ``decode()``
     per line on a second decoder (the C loop runs plans across line ends; this pins it to
     the per-payload contract)
  2  a combined envelope ``{"stream":<name>,"data":<rest>}``: the name is the bytes before
     the first NUL (a fixed depth stream if none), checked against the reference like mode 0
  3  ``decode(memoryview(bytearray(payload)))``: the buffer protocol path, same checks

Any mismatch raises AssertionError (a finding); a crash, ASan or UBSan report aborts.

    python fuzz/fuzz_decoder.py -max_total_time=60 SEED_DIR     # under scripts/fuzz.sh
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import instrumented, run

with instrumented():
    from fastfeed import BinanceDecoder, Kind

from reference import reference_decode, rows_match

RINGS = ("trades", "depth", "tickers", "partial")
# Small rings and tables (a decoder per input must be cheap), yet larger than any count a
# 4096-byte input reaches (about 400 levels, 80 symbols): tail() sees every row and no
# TOO_MANY_LEVELS / TOO_MANY_SYMBOLS rejection appears that the reference would not make.
CAPS = dict(trades=1024, depth=1024, tickers=1024, partial=1024, max_symbols=256, max_levels=1024)
RECV_NS = 7


def new_decoder() -> BinanceDecoder:
    return BinanceDecoder(**CAPS)


def check_payload(payload) -> None:
    """One decode() on a fresh decoder, compared with the reference."""
    raw = bytes(payload)
    kind, ring_name, expected = reference_decode(raw)
    dec = new_decoder()
    got = dec.decode(payload, RECV_NS)
    assert got == Kind[kind], f"kind {got!r} != reference {kind}: {raw!r}"
    for name in RINGS:
        ring = getattr(dec, name)
        n = ring.written
        if name == ring_name:
            assert n == len(expected), f"{name}: {n} rows != {len(expected)}: {raw!r}"
            bad = rows_match(dec, ring.tail(n), expected)
            assert not bad, f"{bad}: {raw!r}"
        else:
            assert n == 0, f"{name}: {n} rows for a {kind}: {raw!r}"


def check_lines(buf: bytes) -> None:
    a, b = new_decoder(), new_decoder()
    count = a.decode_lines(buf, RECV_NS)
    lines = [line for line in buf.split(b"\n") if line not in (b"", b"\r")]
    for line in lines:
        b.decode(line, RECV_NS)
    assert count == len(lines), f"count {count} != {len(lines)} lines: {buf!r}"
    assert a.counts == b.counts, f"{a.counts} != {b.counts}: {buf!r}"
    assert a.errors == b.errors, f"{a.errors} != {b.errors}: {buf!r}"
    for name in RINGS:
        ra, rb = getattr(a, name), getattr(b, name)
        assert ra.written == rb.written, f"{name}: {ra.written} != {rb.written}: {buf!r}"
        if ra.written:
            x, y = ra.tail(ra.written), rb.tail(rb.written)
            # symbols are ids in each decoder's own table: compare names
            sx = [a.symbol(int(s)) for s in x["symbol"]]
            sy = [b.symbol(int(s)) for s in y["symbol"]]
            assert sx == sy, f"{name} symbols differ: {buf!r}"
            for f in x.dtype.names:
                if f != "symbol":
                    assert x[f].tobytes() == y[f].tobytes(), f"{name}.{f} differs: {buf!r}"


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] & 3, data[1:]
    if mode == 0:
        check_payload(body)
    elif mode == 1:
        check_lines(body)
    elif mode == 2:
        name, sep, rest = body.partition(b"\0")
        if not sep:
            name, rest = b"btcusdt@depth@100ms", body
        check_payload(b'{"stream":"' + name + b'","data":' + rest + b"}")
    else:
        check_payload(memoryview(bytearray(body)))


if __name__ == "__main__":
    run(one_input)
