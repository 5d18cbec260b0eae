"""Names: the decoder's C twin of the stream-name grammar against the grammar itself
(fastfeed.feed.streams), symbol tables by name, and the one decimal parser."""

import json
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fastfeed
from fastfeed import FP_NONE, Kind
from fastfeed.book._book import to_fp
from fastfeed.core._decoder import parse_decimal
from fastfeed.feed.streams import S_PARTIAL, stream_slot

# ---- one stream-name grammar

KINDS = ["aggTrade", "trade", "depth", "bookTicker", "kline_1m", "depth5", "depth10", "depth20"]
PART = st.one_of(
    st.sampled_from(KINDS),
    st.text(alphabet="depth0123456789@!xX_", max_size=9),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8),
)
STREAM = st.builds(
    lambda sym, parts: sym + "".join("@" + p for p in parts),
    st.one_of(
        st.sampled_from(["btcusdt", "ethbtc", "!bookticker", "", "Btc_1-x", "a@"]),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10),
    ),
    st.lists(PART, max_size=3),
)

DEPTH_EVENT = {"e": "depthUpdate", "E": 1, "s": "S", "U": 1, "u": 2, "b": [["1", "1"]], "a": []}
SNAPSHOT = {"lastUpdateId": 5, "bids": [["1", "2"]], "asks": []}


def depth_kind(stream):
    """The kind a depthUpdate on ``stream`` decodes as, by the grammar: partial or diff."""
    slot = stream_slot(stream)
    return Kind.PARTIAL if slot is not None and slot[1] == S_PARTIAL else Kind.DEPTH


def envelope(stream, data, compact=False):
    seps = (",", ":") if compact else None  # compact: the straight-line plans read it
    return json.dumps({"stream": stream, "data": data}, separators=seps).encode()


@settings(max_examples=3000, deadline=None)
@given(STREAM)
@example("btcusdt@depth5x")
@example("runeusd_perp@depth5e=")
@example("btcusdt@depth\uff15")  # a fullwidth digit: not an ASCII digit
@example("\u00dftc@depth5")  # only ASCII letters are upper-cased
@example("btcusdt@depth5@100ms")
@example("!all@depth5")
@example("a" * 70 + "@depth20")
def test_c_twin_of_the_stream_grammar_agrees_with_streams_py(stream):
    slot = stream_slot(stream)
    dec = fastfeed.BinanceDecoder(trades=16, depth=16, tickers=16, partial=16, max_levels=4)
    # a depthUpdate is partial depth exactly when the grammar says the stream is
    want = depth_kind(stream)
    assert dec.decode(envelope(stream, DEPTH_EVENT), 1) == want
    assert dec.decode(envelope(stream, DEPTH_EVENT, compact=True), 1) == want
    # a snapshot's symbol comes from the stream name, upper-cased as the grammar does
    assert dec.decode(envelope(stream, SNAPSHOT), 1) == Kind.PARTIAL
    if slot is not None:
        row = dec.partial.tail(1)[0]
        assert dec.symbol(int(row["symbol"])) == slot[0]


@pytest.mark.parametrize(
    "stream",
    ["btcusdt@depth", "btcusdt@depth@100ms", "btcusdt@depth5", "btcusdt@depth20@100ms",
     "abcdefghijklmnopqrstuvw@depth10", "x@depth", "x@depth1", "!x@depth5", "btcusdt"],
)  # fmt: skip
def test_the_plans_path_stages_depth_by_the_same_grammar(stream):
    # compact envelopes take the plans' path (no slow-path fallback), which skips _classify
    dec = fastfeed.BinanceDecoder(trades=16, depth=16, tickers=16, partial=16, max_levels=4)
    assert dec.decode(envelope(stream, DEPTH_EVENT, compact=True), 1) == depth_kind(stream)
    assert dec.slow_count == 0


# ---- symbols by name


def test_symbol_lookups_are_case_insensitive_and_find_never_adds():
    dec = fastfeed.BinanceDecoder()
    syms = dec.symbols
    assert syms.find("BTCUSDT") is None and "BTCUSDT" not in syms and len(syms) == 1
    i = dec.symbol_id("btcusdt")
    assert dec.symbol_id("BTCUSDT") == i == syms.id(b"BtcUsdt") == syms.find("btcUSDT")
    assert syms[i] == dec.symbol(i) == "BTCUSDT"
    assert "btcusdt" in syms and b"BTCUSDT" in syms and 5 not in syms
    assert len(syms) == 2 and list(syms) == ["", "BTCUSDT"] == syms.names()
    assert syms.find("ETHUSDT") is None and len(syms) == 2
    with pytest.raises(IndexError):
        syms[2]


def test_stream_symbol_and_payload_symbol_are_one_id():
    dec = fastfeed.BinanceDecoder()
    trade = b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":true}'
    assert dec.decode(envelope("btcusdt@depth5", SNAPSHOT), 1) == Kind.PARTIAL
    assert dec.decode(trade, 1) == Kind.TRADE
    assert dec.partial.tail(1)[0]["symbol"] == dec.trades.tail(1)[0]["symbol"]
    assert dec.symbols.find("btcusdt") == dec.trades.tail(1)[0]["symbol"]
    assert len(dec.symbols) == 2


def test_full_table_and_overlong_names_raise_named_errors():
    dec = fastfeed.BinanceDecoder(max_symbols=1)
    dec.symbol_id("A")
    with pytest.raises(OverflowError):
        dec.symbol_id("B")
    with pytest.raises(ValueError):
        fastfeed.BinanceDecoder().symbol_id("X" * 65536)


# ---- one decimal parser


@pytest.mark.parametrize(
    "s",
    ["16843.55000000", "0.00000001", "-1.5", "+2", "1.", ".5", "1e3", "1.000000000", "0", "-0.0"],
)
def test_parse_decimal_is_float_and_exact_fixed_point(s):
    f, fp = parse_decimal(s)
    assert f == float(s) and str(f) == str(float(s))
    assert fp == int(Decimal(s) * 10**8)
    assert parse_decimal(s.encode()) == (f, fp)
    assert to_fp(s) == fp


@pytest.mark.parametrize("s", ["0.000000001", "1e-9", "92233720368.54775808", "1e400"])
def test_parse_decimal_without_exact_fixed_point(s):
    f, fp = parse_decimal(s)
    assert f == float(s) and fp == FP_NONE
    with pytest.raises(ValueError):
        to_fp(s)


@pytest.mark.parametrize("s", ["", ".", "abc", "1.2.3", "1e", "--1", "nan", "inf", "0x10", " 1"])
def test_parse_decimal_rejects_what_is_not_a_decimal(s):
    with pytest.raises(ValueError):
        parse_decimal(s)


@settings(max_examples=500, deadline=None)
@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=8, max_value=10**10, min_value=-(10**10)
    )
)
def test_to_fp_matches_decimal(d):
    s = format(d, "f")
    assert to_fp(s) == int(d * 10**8)
    assert to_fp(" " + s + "\n") == int(d * 10**8)
