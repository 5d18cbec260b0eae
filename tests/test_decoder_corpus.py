"""Every line of the real Binance corpus decodes exactly as the json/float reference says."""

import numpy as np
import pytest
from corpus import corpus_dir
from reference import reference_decode, rows_match

import fastfeed
from fastfeed import Kind

RECV_NS = 1_700_000_000_000_000_000


def corpus_files():
    d = corpus_dir()
    files = sorted(d.glob("*.jsonl")) + sorted((d / "sequences").glob("*.jsonl"))
    assert files, f"no .jsonl files in {d}"
    return files


def check_payloads(dec, payloads):
    ring_of = {
        "trades": dec.trades,
        "depth": dec.depth,
        "tickers": dec.tickers,
        "partial": dec.partial,
    }
    kinds = {}
    for n, payload in enumerate(payloads, 1):
        kind, ring_name, expected = reference_decode(payload)
        before = {name: r.written for name, r in ring_of.items()}
        got = dec.decode(payload, RECV_NS)
        assert got == Kind[kind], f"payload {n}: {got!r} != {kind}: {payload[:200]!r}"
        kinds[kind] = kinds.get(kind, 0) + 1
        for name, r in ring_of.items():
            grew = r.written - before[name]
            if name == ring_name:
                assert grew == len(expected), f"payload {n}: {grew} rows, expected {len(expected)}"
                rows = r.tail(grew)
                assert (rows["recv_ns"] == RECV_NS).all()
                problems = rows_match(dec, rows, expected)
                assert not problems, f"payload {n}: {problems[:5]}: {payload[:200]!r}"
            else:
                assert grew == 0, f"payload {n} wrote {grew} rows into {name}"
    return kinds


@pytest.mark.slow  # ~10 s: every corpus line against the reference
def test_every_corpus_line_matches_the_reference():
    total = 0
    for path in corpus_files():
        dec = fastfeed.BinanceDecoder(depth=1 << 14, partial=1 << 14)
        lines = [l for l in path.read_bytes().splitlines() if l.strip()]
        kinds = check_payloads(dec, lines)
        assert "ERROR" not in kinds, f"{path.name}: {kinds}"
        assert "UNKNOWN" not in kinds, f"{path.name}: {kinds}"
        total += len(lines)
    assert total > 20000


def test_rest_snapshots_decode_as_partial_rows():
    for path in sorted(corpus_dir().glob("*_depth_snapshot.jsonl")):
        dec = fastfeed.BinanceDecoder(partial=1 << 14, default_symbol="SNAP")
        for line in path.read_bytes().splitlines():
            kind, _, expected = reference_decode(line, default_symbol="SNAP")
            assert kind == "PARTIAL"
            assert dec.decode(line, RECV_NS) == Kind.PARTIAL
            rows = dec.partial.tail(len(expected))
            assert not rows_match(dec, rows, expected)


def test_decode_lines_equals_decode_one_by_one():
    path = corpus_dir() / "spot_depthUpdate_combined.jsonl"
    data = path.read_bytes()
    one = fastfeed.BinanceDecoder()
    batch = fastfeed.BinanceDecoder()
    for line in data.splitlines():
        one.decode(line, RECV_NS)
    assert batch.decode_lines(data, RECV_NS) == len(data.splitlines())
    n = one.depth.written
    assert batch.depth.written == n
    a, b = one.depth.tail(n), batch.depth.tail(n)
    # Field by field: padding bytes between fields are unspecified in C (the compiler may
    # merge a field store with the padding next to it), so they are not compared.
    for name in a.dtype.names:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_payload_types(kind):
    line = (corpus_dir() / "spot_aggTrade.jsonl").read_bytes().splitlines()[0]
    dec = fastfeed.BinanceDecoder()
    assert dec.decode(kind(line)) == Kind.TRADE
    assert dec.trades.written == 1


def test_plain_trade_ids():
    dec = fastfeed.BinanceDecoder()
    line = (corpus_dir() / "spot_trade.jsonl").read_bytes().splitlines()[0]
    dec.decode(line)
    row = dec.trades.tail(1)[0]
    assert row["first_id"] == row["last_id"] == row["trade_id"]
    assert not row["is_agg"]
