"""The fuzz harnesses (fuzz/) run in the ordinary test suite, without atheris: each one's
``one_input`` over the seeds built from the corpus and over fixed inputs, so a harness that
rots (an API change, a wrong invariant) fails here and not first under scripts/fuzz.sh.
Inputs a fuzzer once flagged are kept in fuzz/regressions/<harness>-<what it found> (files)
and in REGRESSIONS (short ones, inline)."""

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

seeds = importlib.import_module("seeds")
common = importlib.import_module("_common")

CORPUS = common.corpus_dir()
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")

# harness -> inputs that once failed it, each with what it found
REGRESSIONS = {
    # the harness reset a symbol it had never tracked: a KeyError by design (fail fast), so
    # the harness resets tracked symbols only
    "book": [bytes.fromhex("80006428000000") + b"\x02" + b"\x82"],
    "decoder": [b"", b"\x00", b"\x01\n\r\n\r", b"\x02\x00{}", b"\x03{"],
    "listener": [b"\x08\x01{", b"\x02\x00", b"\x00\x7f" + b"x" * 127],
}


def harness(name):
    return importlib.import_module(f"fuzz_{name}")


@pytest.mark.parametrize("name", ["decoder", "book", "listener"])
def test_regression_inputs(name):
    h = harness(name)
    for data in REGRESSIONS[name]:
        h.one_input(data)
    # book-int64-ids: ids added up past int64 in the harness's own arithmetic (an
    # OverflowError filling the rows); the harness clamps them now
    for f in sorted((ROOT / "fuzz" / "regressions").glob(f"{name}-*")):
        h.one_input(f.read_bytes())


@needs_corpus
@pytest.mark.parametrize(
    "name, gen, limit",
    [
        ("decoder", seeds.decoder_seeds, 300),
        ("book", seeds.book_seeds, None),
        ("listener", seeds.listener_seeds, None),
    ],
)
def test_seeds_pass(name, gen, limit):
    h = harness(name)
    blobs = list(gen(CORPUS, 4))
    assert blobs, "no seeds built"
    for data in blobs[:limit]:
        h.one_input(data)


def test_decoder_harness_catches_a_wrong_kind(monkeypatch):
    """The harness is an oracle, not a smoke test: a decoder that misclassifies fails it."""
    h = harness("decoder")
    monkeypatch.setattr(h, "reference_decode", lambda raw: ("UNKNOWN", None, []))
    with pytest.raises(AssertionError, match="kind"):
        h.one_input(
            b'\x00{"e":"aggTrade","E":1,"s":"X","a":1,"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}'
        )


def test_listener_harness_catches_a_duplicate():
    """Feeding the same trade on both connections delivers it once; the harness's id check
    is what would see it twice."""
    h = harness("listener")
    msg = b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}}'
    frame = common.varint(len(msg)) + msg
    h.one_input(b"\x00" + frame + b"\x04" + frame)
    seen = h.Delivered(h.BinanceDecoder(**h.CAPS))
    seen.last[("trades", 1, 1)] = 5
    seen.dec.decode(msg)
    with pytest.raises(AssertionError, match="delivered after"):
        seen.check()
