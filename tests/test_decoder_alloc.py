"""The hot path allocates no Python object: sys.getallocatedblocks() stays flat across
200,000+ decodes of the real corpus, through decode() and decode_lines()."""

import gc
import sys

from corpus import corpus_dir

import fastfeed
from fastfeed import Kind

FILES = [
    "spot_aggTrade.jsonl",
    "spot_depthUpdate_combined.jsonl",
    "spot_bookTicker.jsonl",
    "futures_aggTrade_combined.jsonl",
    "futures_depthUpdate.jsonl",
    "futures_bookTicker_combined.jsonl",
    "spot_trade.jsonl",
    "futures_partialDepth_combined.jsonl",
    "spot_partialDepth_combined.jsonl",
]


def corpus_lines():
    lines = []
    for name in FILES:
        lines += [l for l in (corpus_dir() / name).read_bytes().splitlines() if l.strip()]
    return lines


def test_decode_per_call_allocates_nothing():
    lines = corpus_lines()
    dec = fastfeed.BinanceDecoder()
    decode = dec.decode
    for line in lines:  # warm-up: symbols interned, rings touched
        decode(line)
    gc.collect()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        n = 0
        while n < 200_000:
            for line in lines:
                decode(line)
            n += len(lines)
        after = sys.getallocatedblocks()
    finally:
        gc.enable()
    assert dec.counts[Kind.ERROR] == 0
    assert after - before < 20, f"{after - before} blocks allocated over {n} decodes"


def test_decode_lines_allocates_nothing():
    data = b"\n".join(corpus_lines())
    dec = fastfeed.BinanceDecoder()
    dec.decode_lines(data)
    gc.collect()
    gc.disable()
    try:
        before = sys.getallocatedblocks()
        n = 0
        while n < 200_000:
            n += dec.decode_lines(data)
        after = sys.getallocatedblocks()
    finally:
        gc.enable()
    assert after - before < 20, f"{after - before} blocks allocated over {n} decodes"
