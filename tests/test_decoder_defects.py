"""Decoder defects of issue 17 (items 3-6): each test failed before its fix."""

import logging

import numpy as np
import pytest

import fastfeed
from fastfeed import FP_NONE, Kind, Reject

AGG_INEXACT = (
    b'{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,"p":"0.000000001","q":"1",'
    b'"f":1,"l":1,"T":1,"m":true}'
)
TRADE = b'{"e":"trade","E":1,"s":"X","t":1,"p":"1","q":"1","T":1,"m":true}'


def fp_none_fields(dec):
    """Decimals in the written rows whose *_fp field is FP_NONE (level-less rows aside)."""
    n = 0
    for ring in (dec.trades, dec.depth, dec.tickers, dec.partial):
        rows = ring.tail(ring.written)
        if "side" in rows.dtype.names:
            rows = rows[rows["side"] >= 0]
        for name in rows.dtype.names:
            if name.endswith("_fp"):
                n += int((rows[name] == FP_NONE).sum())
    return n


# ---- item 3: inexact_fixed_point counts FP_NONE fields of written rows, once each


@pytest.mark.parametrize(
    "payload,kind,expected",
    [
        (AGG_INEXACT, Kind.TRADE, 1),
        # an extra key sends the payload off the plans: the decimal must not count twice
        (AGG_INEXACT[:-1] + b',"x":1}', Kind.TRADE, 1),
        # a repeated "p": the last one wins, and it is exact
        (
            b'{"e":"trade","E":1,"s":"X","t":1,"p":"0.000000001","p":"1","q":"1","T":1,"m":true}',
            Kind.TRADE,
            0,
        ),
        (b'{"e":"kline","p":"0.000000001"}', Kind.UNKNOWN, 0),
        (AGG_INEXACT.replace(b'"E":1', b'"E":"x"'), Kind.ERROR, 0),
        (
            b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,'
            b'"b":[["0.000000001","1"],["1","1e-9"]],"a":[["2","0.1"]]}',
            Kind.DEPTH,
            2,
        ),
        (
            b'{"u":1,"s":"X","b":"1e-12","B":"1","a":"2","A":"0.0000000001"}',
            Kind.TICKER,
            2,
        ),
        (
            b'{"lastUpdateId":5,"bids":[["1.000000001","1"]],"asks":[]}',
            Kind.PARTIAL,
            1,
        ),
    ],
)
def test_inexact_fixed_point_counts_fp_none_fields_of_rows(payload, kind, expected):
    for lines in (False, True):
        dec = fastfeed.BinanceDecoder()
        if lines:
            assert dec.decode_lines(payload + b"\n" + payload, 1) == 2
            want = 2 * expected
        else:
            assert dec.decode(payload, 1) == kind
            want = expected
        assert dec.inexact_fixed_point == want, (lines, dec.stats())
        assert fp_none_fields(dec) == want


def test_inexact_fixed_point_decode_and_decode_lines_agree():
    payloads = [AGG_INEXACT, AGG_INEXACT[:-1] + b',"x":1}', TRADE, b'{"e":"kline","p":"1e-9"}']
    a, b = fastfeed.BinanceDecoder(), fastfeed.BinanceDecoder()
    for p in payloads:
        a.decode(p, 1)
    b.decode_lines(b"\n".join(payloads), 1)
    assert a.inexact_fixed_point == b.inexact_fixed_point == fp_none_fields(a) == 2


# ---- item 4: an escaped stream name too long to unescape is a counted rejection


def test_overlong_escaped_stream_name_is_rejected_not_unknown():
    data = b'"data":{"e":"trade","E":1,"s":"X","t":1,"p":"1","q":"1","T":1,"m":true}}'
    plain = b'{"stream":"' + b"a" * 4100 + b'n",' + data
    escaped = b'{"stream":"' + b"a" * 4100 + b'\\n",' + data
    dec = fastfeed.BinanceDecoder()
    assert dec.decode(plain, 1) == Kind.TRADE
    assert dec.decode(escaped, 1) == Kind.ERROR
    assert dec.errors[Reject.TOO_LONG] == 1
    assert dec.recent_rejected()[-1][0] == Reject.TOO_LONG
    assert dec.counts[Kind.UNKNOWN] == 0


def test_escaped_stream_name_within_the_limit_still_decodes():
    payload = (
        b'{"stream":"btc\\u0075sdt@depth5","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
        b'"U":1,"u":2,"b":[["1","1"]],"a":[]}}'
    )
    dec = fastfeed.BinanceDecoder()
    assert dec.decode(payload, 1) == Kind.PARTIAL


# ---- item 5: stream symbols are upper-cased at any length


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200, 5000])
def test_stream_symbol_is_upper_cased_at_any_length(n):
    sym = (b"ab1_" * n)[:n]
    payload = (
        b'{"stream":"' + sym + b'@depth5","data":{"lastUpdateId":7,"bids":[["1","2"]],"asks":[]}}'
    )
    dec = fastfeed.BinanceDecoder()
    assert dec.decode(payload, 1) == Kind.PARTIAL
    row = dec.partial.tail(1)[0]
    assert dec.symbol(int(row["symbol"])) == sym.decode().upper()


# ---- item 6


def nested(depth, inner=b"1"):
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize(
    "wrap",
    [
        lambda v: b'{"x":' + v + b"}",
        lambda v: b'{"stream":"a@trade","data":{"x":' + v + b"}}",
        lambda v: b'{"E":' + v + b"}",
        lambda v: b'{"e":' + v + b"}",
        lambda v: b'{"b":' + v + b"}",
        lambda v: v,
    ],
)
def test_nesting_is_limited_to_64_levels_in_all(wrap):
    # 64 containers in all are accepted (a top-level value of 64, an object holding 63);
    # one more is TOO_DEEP, wherever the nesting sits
    dec = fastfeed.BinanceDecoder()
    probe = wrap(b"")
    outer = probe.count(b"{")
    ok, deep = wrap(nested(64 - outer)), wrap(nested(65 - outer))
    dec.decode(ok, 1)  # {"e": [...]} is still WRONG_TYPE: not what this test is about
    assert dec.errors[Reject.TOO_DEEP] == 0, ok[:80]
    assert dec.decode(deep, 1) == Kind.ERROR
    assert dec.errors[Reject.TOO_DEEP] == 1


def test_overlong_symbol_is_too_long_not_too_many_symbols():
    dec = fastfeed.BinanceDecoder()
    payload = TRADE.replace(b'"s":"X"', b'"s":"' + b"X" * 65536 + b'"')
    assert dec.decode(payload, 1) == Kind.ERROR
    assert dec.errors[Reject.TOO_LONG] == 1 and dec.errors[Reject.TOO_MANY_SYMBOLS] == 0
    assert dec.decode(TRADE.replace(b'"s":"X"', b'"s":"' + b"X" * 65535 + b'"'), 1) == Kind.TRADE


def test_full_symbol_table_is_too_many_symbols():
    dec = fastfeed.BinanceDecoder(max_symbols=2)
    kinds = [dec.decode(TRADE.replace(b'"X"', b'"%d"' % i), 1) for i in range(3)]
    assert kinds == [Kind.TRADE, Kind.TRADE, Kind.ERROR]
    assert dec.errors[Reject.TOO_MANY_SYMBOLS] == 1


@pytest.mark.parametrize(
    "payload",
    [
        b'{"result":null,"id":18446744073709551616}',
        b'{"result":null,"id":"\\ud800"}',
        b'{"result":null,"id":1e400}',
    ],
)
def test_control_replies_pysimdjson_cannot_parse_are_still_delivered(payload, caplog):
    dec = fastfeed.BinanceDecoder()
    seen = []
    dec.on_control = seen.append
    with caplog.at_level(logging.ERROR, logger="fastfeed.decoder"):
        assert dec.decode(payload, 1) == Kind.CONTROL
    assert dec.control_dropped == 0
    assert len(seen) == 1 and seen[0]["result"] is None
    assert list(dec.control_messages) == seen
    assert not [r for r in caplog.records if r.exc_info]


def test_control_reply_handler_failure_is_counted_and_logged_once(caplog):
    dec = fastfeed.BinanceDecoder()

    def boom(msg):
        raise RuntimeError("handler bug")

    dec.on_control = boom
    with caplog.at_level(logging.ERROR, logger="fastfeed.decoder"):
        assert dec.decode(b'{"result":null,"id":1}', 1) == Kind.CONTROL
    assert dec.control_dropped == 1
    assert len([r for r in caplog.records if r.exc_info]) == 1


def test_wrapped_ring_copy_has_zeroed_padding():
    # TradeRow has 6 bytes of padding after is_agg: a copy must not carry stale heap bytes
    dec = fastfeed.BinanceDecoder(trades=4)
    for i in range(6):
        dec.decode(TRADE.replace(b'"t":1', b'"t":%d' % i), 1)
    arr = dec.trades.array
    expected = arr[3:].tobytes() + arr[:2].tobytes()  # seq 3, 4, 5 at indices 3, 0, 1
    for _ in range(20):
        junk = np.full(3 * arr.dtype.itemsize, 0xAB, dtype=np.uint8)  # freed heap to reuse
        del junk
        rows = dec.trades.read(3).rows  # wraps around the ring's end: a copy
        assert not np.shares_memory(rows, arr)
        assert rows.tobytes() == expected


@pytest.mark.parametrize(
    "payload,E",
    [
        (b'{"e":"serverShutdown","E":1770123456789}', 1770123456789),
        (b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":5}}', 5),
        (b'{"e":"server\\u0053hutdown"}', -1),
    ],
)
def test_server_shutdown_is_recognised_once_by_the_scanner(payload, E):
    # the scanner's classification is the only detection; the session acts on on_shutdown
    dec = fastfeed.BinanceDecoder()
    seen, controls = [], []
    dec.on_shutdown = seen.append
    dec.on_control = controls.append
    assert dec.decode(payload, 1) == Kind.CONTROL
    assert dec.decode(b'{"result":null,"id":1}', 1) == Kind.CONTROL
    assert seen == [E] and dec.shutdown_count == 1 and dec.last_shutdown_time == E
    assert len(controls) == 2
