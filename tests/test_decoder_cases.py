"""Targeted decoder behaviour: control replies, rejections by reason, numbers, symbols."""

import numpy as np
import pytest

import fastfeed
from fastfeed import FP_NONE, Kind, Reject

AGG = (
    b'{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.00100000",'
    b'"q":"100.00000000","f":100,"l":105,"T":1672515782136,"m":true,"M":true}'
)


def decode_one(payload, **kw):
    dec = fastfeed.BinanceDecoder(**kw)
    return dec, dec.decode(payload, 1)


def test_aggtrade_fields():
    dec, kind = decode_one(AGG)
    assert kind == Kind.TRADE
    r = dec.trades.tail(1)[0]
    assert (r["event_time"], r["trade_id"], r["first_id"], r["last_id"]) == (
        1672515782136,
        12345,
        100,
        105,
    )
    assert r["price"] == 0.001 and r["qty"] == 100.0
    assert r["price_fp"] == 100_000 and r["qty_fp"] == 100 * 10**8
    assert r["buyer_maker"] and r["is_agg"] and np.isnan(r["normal_qty"])
    assert dec.symbol(int(r["symbol"])) == "BNBBTC"


@pytest.mark.parametrize("m_value", [b"false", b"true", b"null", b"1", b'"x"', b"[]"])
def test_plan_reads_m_as_a_bool_and_leaves_other_values_to_the_next_pass(m_value):
    # The plans read "M" as true/false; any other JSON value there is still a valid
    # aggTrade, decoded off the plan with the same row.
    dec, kind = decode_one(AGG.replace(b'"M":true', b'"M":' + m_value))
    assert kind == Kind.TRADE
    r = dec.trades.tail(1)[0]
    assert (r["trade_id"], r["first_id"], r["last_id"], r["trade_time"]) == (
        12345,
        100,
        105,
        1672515782136,
    )
    assert r["buyer_maker"] and r["price_fp"] == 100_000
    assert dec.stats()["off_plan"] == (0 if m_value in (b"true", b"false") else 1)


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b"", Reject.TRUNCATED),
        (AGG[:-1], Reject.TRUNCATED),
        (AGG[:50], Reject.TRUNCATED),
        (AGG + b"x", Reject.SYNTAX),
        (AGG.replace(b'"p":"0.00100000"', b'"p":"0.001x"'), Reject.BAD_NUMBER),
        (AGG.replace(b'"p":"0.00100000"', b'"p":0.001'), Reject.WRONG_TYPE),
        (AGG.replace(b'"E":1672515782136,', b""), Reject.MISSING_FIELD),
        (AGG.replace(b'"E":1672515782136', b'"E":99999999999999999999'), Reject.BAD_NUMBER),
        (AGG.replace(b'"E":1672515782136', b'"E":1.5'), Reject.WRONG_TYPE),
        (AGG.replace(b'"m":true', b'"m":1'), Reject.WRONG_TYPE),
        (AGG.replace(b'"a":12345', b'"a":"12345"'), Reject.WRONG_TYPE),
        (AGG.replace(b"BNBBTC", b"BNB\xffBTC"), Reject.BAD_UTF8),
        (AGG.replace(b'"E":1672515782136', b'"E":01'), Reject.SYNTAX),
        (b'{"x":' + b"[" * 100 + b"]" * 100 + b"}", Reject.TOO_DEEP),
        (b'{"e":5}', Reject.WRONG_TYPE),
    ],
)
def test_rejections_are_counted_by_reason(payload, reason):
    dec, kind = decode_one(payload)
    assert kind == Kind.ERROR
    assert dec.errors[reason] == 1
    assert sum(dec.errors.values()) == 1
    assert dec.trades.written == 0
    assert dec.recent_rejected()[-1][0] == reason
    assert dec.recent_rejected()[-1][1] == payload[:512]


def test_rejected_payloads_are_bounded():
    dec = fastfeed.BinanceDecoder()
    for i in range(100):
        dec.decode(b'{"e":"aggTrade",' + str(i).encode())
    kept = dec.recent_rejected()
    assert len(kept) == 8
    assert kept[-1][1].endswith(b"99")
    assert dec.counts[Kind.ERROR] == 100


def test_control_replies_take_the_cold_path():
    seen = []
    dec = fastfeed.BinanceDecoder()
    dec.on_control = seen.append
    assert dec.decode(b'{"result":null,"id":1}') == Kind.CONTROL
    assert dec.decode(b'{"code": 2, "msg": "Invalid request: invalid stream"}') == Kind.CONTROL
    assert (
        dec.decode(b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}')
        == Kind.CONTROL
    )
    assert dec.decode(b'{"result":["btcusdt@aggTrade"],"id":"abc"}') == Kind.CONTROL
    assert seen[0] == {"result": None, "id": 1}
    assert seen[2]["error"]["code"] == 2
    assert seen[3]["result"] == ["btcusdt@aggTrade"]
    assert list(dec.control_messages) == seen
    assert dec.shutdown_count == 0


@pytest.mark.parametrize(
    "payload",
    [
        b'{"e":"serverShutdown","E":1770123456789}',
        b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}',
        b'{"data":{"E":1770123456789,"e":"serverShutdown"},"stream":"!serverShutdown"}',
    ],
)
def test_server_shutdown_is_easy_to_act_on(payload):
    dec, kind = decode_one(payload)
    assert kind == Kind.CONTROL
    assert dec.shutdown_count == 1
    assert dec.last_shutdown_time == 1770123456789


def test_unknown_events_are_counted_not_rowed():
    dec = fastfeed.BinanceDecoder()
    kline = (
        b'{"e":"kline","E":1,"s":"BNBBTC","k":{"t":1,"o":"0.0010","x":false,"n":[1,{"a":null}]}}'
    )
    assert dec.decode(kline) == Kind.UNKNOWN
    assert dec.decode(b"[1,2,3]") == Kind.UNKNOWN
    assert (
        dec.decode(b'{"stream":"!miniTicker@arr","data":[{"e":"24hrMiniTicker"}]}') == Kind.UNKNOWN
    )
    assert dec.counts[Kind.UNKNOWN] == 3
    assert dec.recent_unknown()[0][1] == kline
    assert dec.trades.written == dec.depth.written == 0


def test_envelope_keys_in_either_order_and_partial_symbol_from_stream():
    data = b'{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}'
    for payload in (
        b'{"stream":"bnbbtc@depth5@100ms","data":' + data + b"}",
        b'{"data":' + data + b',"stream":"bnbbtc@depth5@100ms"}',
    ):
        dec, kind = decode_one(payload)
        assert kind == Kind.PARTIAL
        rows = dec.partial.tail(2)
        assert [dec.symbol(int(s)) for s in rows["symbol"]] == ["BNBBTC", "BNBBTC"]
        assert list(rows["side"]) == [0, 1] and list(rows["last_id"]) == [160, 160]
        assert list(rows["flags"]) == [0, 1]


def test_futures_partial_depth_routes_by_stream_name():
    body = (
        b'{"e":"depthUpdate","E":5,"T":4,"s":"BTCUSDT","U":10,"u":20,"pu":9,'
        b'"b":[["9523.0","5"]],"a":[["9524.6","2"]]}'
    )
    dec, kind = decode_one(b'{"stream":"btcusdt@depth5@100ms","data":' + body + b"}")
    assert kind == Kind.PARTIAL and dec.depth.written == 0 and dec.partial.written == 2
    dec, kind = decode_one(b'{"stream":"btcusdt@depth@100ms","data":' + body + b"}")
    assert kind == Kind.DEPTH and dec.depth.written == 2
    r = dec.depth.tail(2)
    assert list(r["prev_last_id"]) == [9, 9] and list(r["transact_time"]) == [4, 4]


def test_empty_depth_update_keeps_the_id_chain_visible():
    dec, kind = decode_one(b'{"e":"depthUpdate","E":1,"s":"X","U":5,"u":7,"b":[],"a":[]}')
    assert kind == Kind.DEPTH
    r = dec.depth.tail(1)[0]
    assert r["side"] == -1 and r["first_id"] == 5 and r["last_id"] == 7 and r["flags"] == 1
    assert np.isnan(r["price"]) and r["price_fp"] == FP_NONE


def test_spot_bookticker_without_event_type():
    dec, kind = decode_one(
        b'{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",'
        b'"a":"25.36520000","A":"40.66000000"}'
    )
    assert kind == Kind.TICKER
    r = dec.tickers.tail(1)[0]
    assert r["event_time"] == -1 and r["update_id"] == 400900217
    assert r["ask_qty"] == 40.66 and r["bid_price_fp"] == 2535190000


@pytest.mark.parametrize(
    "text",
    [
        "0.1",
        "123456789012345678901234567890",
        "1.00000000000000011102230246251565404236316680908203125",
        "9007199254740993",
        "0.30000000000000004",
        "1e-7",
        "2.2250738585072011e-308",
        "1e400",
        "4.9406564584124654e-324",
        "-0",
        "00001.50",
        ".5",
        "5.",
        "+3",
        "179769313486231570000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "92233720368.54775807",
        "92233720368.54775808",
        "0.000000001",
        "0.000000010",
        "12345678.123456789012",
    ],
)
def test_decimals_equal_python_float(text):
    from decimal import Decimal

    payload = ('{"e":"trade","E":1,"s":"X","t":1,"p":"%s","q":"1","T":1,"m":false}' % text).encode()
    dec, kind = decode_one(payload)
    assert kind == Kind.TRADE
    r = dec.trades.tail(1)[0]
    want = float(text)
    assert r["price"].tobytes() == np.float64(want).tobytes()
    scaled = Decimal(text) * 10**8
    exact = scaled == scaled.to_integral_value() and -(2**63) < scaled < 2**63
    assert r["price_fp"] == (int(scaled) if exact else FP_NONE)


def test_decimal_shapes_sweep():
    # Every length and point position around the fast paths' 16-byte window, in Binance's
    # own layout (straight-line plan) and with a leading space (general scanner).
    import random
    from decimal import Decimal

    rng = random.Random(7)
    dec = fastfeed.BinanceDecoder()
    texts = []
    for n in range(1, 19):
        for dot in [None] + list(range(0, n + 1)):
            for _ in range(3):
                digits = "".join(rng.choice("0123456789") for _ in range(n))
                texts.append(digits if dot is None else digits[:dot] + "." + digits[dot:])
    for text in texts:
        for pad in ("", " "):
            payload = (
                '{"e":"trade","E":1,"s":"X","t":1,"p":%s"%s","q":"1","T":1,"m":false}' % (pad, text)
            ).encode()
            if text == ".":
                assert dec.decode(payload) == Kind.ERROR
                continue
            assert dec.decode(payload) == Kind.TRADE, text
            r = dec.trades.tail(1)[0]
            assert r["price"].tobytes() == np.float64(float(text)).tobytes(), text
            scaled = Decimal(text) * 10**8
            exact = scaled == scaled.to_integral_value() and -(2**63) < scaled < 2**63
            assert r["price_fp"] == (int(scaled) if exact else FP_NONE), text


def test_unicode_and_escaped_symbols():
    dec = fastfeed.BinanceDecoder()
    sym = "这是测试币456"
    p1 = ('{"e":"trade","E":1,"s":"%s","t":1,"p":"1","q":"1","T":1,"m":false}' % sym).encode()
    esc = "".join("\\u%04x" % ord(c) for c in sym)
    p2 = ('{"e":"trade","E":1,"s":"%s","t":2,"p":"1","q":"1","T":1,"m":false}' % esc).encode()
    assert dec.decode(p1) == Kind.TRADE and dec.decode(p2) == Kind.TRADE
    ids = dec.trades.tail(2)["symbol"]
    assert ids[0] == ids[1] and dec.symbol(int(ids[0])) == sym


def test_too_many_levels_is_rejected_without_rows():
    levels = ",".join('["1.0","2.0"]' for _ in range(11))
    dec = fastfeed.BinanceDecoder(max_levels=10)
    kind = dec.decode(
        ('{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[%s],"a":[]}' % levels).encode()
    )
    assert kind == Kind.ERROR and dec.errors[Reject.TOO_MANY_LEVELS] == 1 and dec.depth.written == 0


def test_symbol_table_limit():
    dec = fastfeed.BinanceDecoder(max_symbols=3)
    kinds = [
        dec.decode(
            ('{"e":"trade","E":1,"s":"S%d","t":1,"p":"1","q":"1","T":1,"m":false}' % i).encode()
        )
        for i in range(5)
    ]
    assert kinds == [Kind.TRADE] * 3 + [Kind.ERROR] * 2
    assert dec.errors[Reject.TOO_MANY_SYMBOLS] == 2


def test_ring_capacities_must_be_powers_of_two():
    with pytest.raises(ValueError):
        fastfeed.BinanceDecoder(trades=1000)


def test_receive_clock_is_read_when_not_given():
    import time

    dec = fastfeed.BinanceDecoder()
    t0 = time.time_ns()
    dec.decode(AGG)
    t1 = time.time_ns()
    assert t0 - 1_000_000 <= dec.trades.tail(1)[0]["recv_ns"] <= t1 + 1_000_000


@pytest.mark.parametrize("market", ["spot", "futures", "coinm"])
def test_plans_after_rejects_leave_no_stale_state(market):
    # A rejected payload leaves field flags behind in the scanner's state; a plan that ran
    # next and trusted them would reject (or accept) the wrong message.
    from corpus import corpus_dir

    bad = [
        b'{"e":"depthUpdate","E":"x","s":1,"U":"a","u":[],"b":{},"a":3,"T":"q","pu":"z"}',
        b'{"e":"aggTrade","E":"x","s":1,"a":"1","p":2,"q":[],"f":"1","l":"2","T":"q","m":1}',
        b'{"u":"x","s":1,"b":2,"B":[],"a":{},"A":3}',
    ]
    kinds = {
        "aggTrade": Kind.TRADE,
        "trade": Kind.TRADE,
        "depthUpdate": Kind.DEPTH,
        "bookTicker": Kind.TICKER,
    }
    for name, kind in kinds.items():
        for suffix in ("", "_combined"):
            lines = (corpus_dir() / f"{market}_{name}{suffix}.jsonl").read_bytes().splitlines()[:50]
            dec = fastfeed.BinanceDecoder()
            for i, line in enumerate(lines):
                assert dec.decode(bad[i % 3]) == Kind.ERROR
                assert dec.decode(line) == kind, (name, suffix, line[:80])
            assert dec.stats()["off_plan"] == len(lines)  # only the rejects missed the plans


def test_symbol_cache_many_names_prefixes_and_escapes():
    # The plans cache symbols by their payload bytes (8 slots, picked by a hash of the first
    # 8 bytes).  Names that share prefixes, collide in a slot, are too long to cache, or
    # differ only after the quote must still get their own ids, in every order.
    import random

    names = [
        "BTCUSDT",
        "BTCUSD",
        "BTCUSDTX",
        "BTCSTUSDT",
        "ETHBTC",
        "E",
        "ETH",
        "A" * 15,
        "B" * 16,
        "1000SHIBUSDT",
        "BTCUSD_PERP",
        "ETHUSD_260327",
        "这是测试币456",
    ] + ["S%03d" % i for i in range(40)]
    rng = random.Random(7)
    seq = [rng.choice(names) for _ in range(3000)] + ["BTCUSDT"] * 5 + ["BTCUSD"] * 5
    dec = fastfeed.BinanceDecoder(trades=1 << 13)
    for i, name in enumerate(seq):
        # An escaped spelling of a cached name must map to the same id (general path).
        s = "".join("\\u%04x" % ord(c) for c in name) if i % 97 == 0 else name
        p = (
            '{"e":"aggTrade","E":1,"s":"%s","a":%d,"p":"1.5","q":"2","f":1,"l":1,"T":1,"m":true,"M":true}'
            % (s, i)
        ).encode()
        assert dec.decode(p, 1) == Kind.TRADE
    rows = dec.trades.tail(len(seq))
    assert [dec.symbol(int(x)) for x in rows["symbol"]] == seq
    assert list(rows["trade_id"]) == list(range(len(seq)))
    # A quote inside an escaped name never reaches the cache: the same bytes unescaped are
    # not a plain name and the payload spelled raw is not valid JSON.
    assert (
        dec.decode(
            b'{"e":"aggTrade","E":1,"s":"A\\"B","a":1,"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}'
        )
        == Kind.TRADE
    )
    assert (
        dec.decode(
            b'{"e":"aggTrade","E":1,"s":"A"B","a":1,"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}'
        )
        == Kind.ERROR
    )
