"""Books on the C path (issue 13, item 3).

* ``best()`` / ``best_fp()`` / ``best_into()`` / ``top()`` / ``top_fp()`` read the book in C:
  compared after every event of the real BTCUSDT sequences with a plain-Python book.
* ``best_into()`` allocates nothing: no traced allocation at all (tracemalloc's peak) and a
  flat ``sys.getallocatedblocks()`` over 100,000 calls, with ``best()`` as the control that
  shows the measurement sees a call that does allocate.
* REST snapshot bodies are read by fastfeed's C decoder (``SnapshotParser``: PARTIAL rows)
  and loaded from those rows at C level.  Every body below goes through that path and
  through an independent reference (stdlib ``json`` + ``Decimal``, the load rules written
  out in plain Python) and through the old path (``json.loads`` + ``apply_snapshot`` of the
  string lists): same book, same bounds, or the same kind of refusal.
"""

import gc
import itertools
import json
import random
import sys
import tracemalloc
from decimal import Decimal, InvalidOperation

import numpy as np
import pytest
from book_rows import RefBook, event_rows, fp, load_sequence
from corpus import corpus_dir
from feed_fixtures import make_feed
from sim_fixtures import run

from fastfeed import OrderBook
from fastfeed.book._book import TOP_DTYPE, BookSet, SnapshotResult, State
from fastfeed.book.snapshots import SnapshotError, SnapshotParser
from fastfeed.core._rows import PARTIAL_DTYPE
from fastfeed.sim import ExchangeSimulator

SYM = 1
INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------- reads


def check_reads(bs, ref, out, where):
    want = ref.best()
    assert bs.best_fp(SYM) == want, where
    assert bs.best(SYM) == tuple(x / 1e8 for x in want), where
    assert bs.best_into(SYM, out) == (bs.state(SYM) == State.VALID)
    row = out[0]
    got = tuple(int(row[k]) for k in ("bid_price_fp", "bid_qty_fp", "ask_price_fp", "ask_qty_fp"))
    assert got == want, where
    assert (row["bid_price"], row["ask_qty"]) == (want[0] / 1e8, want[3] / 1e8)
    assert int(row["update_id"]) == bs.last_update_id(SYM) and row["symbol"] == SYM
    for side, (p, q) in enumerate(zip(*[iter(bs.top_fp(SYM, 5))] * 2)):
        rp, rq = ref.levels(side)
        assert np.array_equal(p, rp[:5]) and np.array_equal(q, rq[:5]), where
    t = bs.top(SYM, 5)
    assert np.array_equal(t.bid_price, ref.levels(0)[0][:5] / 1e8), where


@pytest.mark.parametrize("market", ["spot", "futures"])
def test_reads_match_a_plain_python_book_after_every_event(market):
    snap, lines = load_sequence(corpus_dir(), market)
    usdm = market == "futures"
    bs = BookSet("usdm" if usdm else "spot")
    ref = RefBook(usdm, snap)
    res = bs.apply_snapshot(SYM, snap["lastUpdateId"], snap["bids"], snap["asks"], limit=1000)
    assert res == SnapshotResult.WAITING
    out = np.zeros(1, TOP_DTYPE)
    check_reads(bs, ref, out, "after the snapshot")
    assert out[0]["recv_ns"] == -1 and out[0]["first_id"] == -1  # no event since it
    applied = 0
    for i, line in enumerate(lines):
        e = json.loads(line)
        if not ref.apply(e):
            continue
        bs.apply_depth_rows(event_rows(e, SYM, recv_ns=1000 + i))
        assert bs.state(SYM) == State.VALID
        check_reads(bs, ref, out, f"after event u={e['u']}")
        # the row is the last tops row's (this symbol's latest applied event)
        last = bs.tops.tail(1)[0]
        for k in ("recv_ns", "event_time", "first_id", "update_id", "bid_price_fp", "ask_qty_fp"):
            assert out[0][k] == last[k], k
        assert out[0]["recv_ns"] == 1000 + i
        applied += 1
    assert applied > 500


def test_reads_of_empty_and_untracked_books():
    bs = BookSet("spot", max_symbols=4)
    bs.track(2)
    out = np.zeros(3, TOP_DTYPE)
    assert bs.best_fp(2) == (None, None, None, None)
    bid, bq, ask, aq = bs.best(2)
    assert all(x != x for x in (bid, bq, ask, aq))  # NaN
    assert bs.best_into(2, out) is False
    assert out[0]["bid_price_fp"] == 0 and np.isnan(out[0]["ask_price"])
    assert out[0]["state"] == State.SYNCING and out[0]["update_id"] == -1
    assert [len(a) for a in bs.top_fp(2, 10)] == [0, 0, 0, 0]
    bs.apply_snapshot(2, 7, [["1.5", "2"]], [], limit=10)
    assert bs.best_fp(2) == (150000000, 200000000, None, None)
    assert bs.best(2)[:2] == (1.5, 2.0)
    # a dtype equal to TOP_DTYPE but another object will do
    other = np.zeros(1, TOP_DTYPE.newbyteorder("="))
    assert bs.best_into(2, other) is False  # BRIDGING
    assert other[0]["bid_price_fp"] == 150000000 and other[0]["update_id"] == 7
    for bad in (3, 4, -1, 2**40):
        with pytest.raises((KeyError, OverflowError)):
            bs.best(bad)
        with pytest.raises((KeyError, OverflowError)):
            bs.best_into(bad, out)
    with pytest.raises(TypeError):
        bs.best_into(2, np.zeros(1, PARTIAL_DTYPE))
    with pytest.raises(TypeError):
        bs.best_into(2, None)
    with pytest.raises(ValueError):
        bs.best_into(2, np.zeros(0, TOP_DTYPE))
    ro = np.zeros(1, TOP_DTYPE)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        bs.best_into(2, ro)
    with pytest.raises(ValueError):
        bs.best_into(2, np.zeros(4, TOP_DTYPE)[::2])


# --------------------------------------------------------------------------- allocations


def _traced(call, n):
    call()  # warm-up: lazily created objects are not the call's
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        blocks = sys.getallocatedblocks()
        for _ in itertools.repeat(None, n):
            call()
        blocks = sys.getallocatedblocks() - blocks
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    return peak - start, blocks


def traced_allocations(call, n=100_000):
    """(bytes traced at the peak beyond a loop of no-op calls, blocks gained) over ``n``
    calls of ``call()``.  Any allocation, even one freed within the call, raises the peak;
    the no-op loop measures what the loop itself costs."""
    base, _ = _traced(lambda: None, n)
    peak, blocks = _traced(call, n)
    return peak - base, blocks


def loaded_book():
    snap, _ = load_sequence(corpus_dir(), "spot")
    bs = BookSet("spot")
    bs.apply_snapshot(SYM, snap["lastUpdateId"], snap["bids"], snap["asks"], limit=1000)
    return bs


def test_best_into_allocates_nothing():
    bs = loaded_book()
    out = np.zeros(1, TOP_DTYPE)
    into, best = bs.best_into, bs.best
    peak, blocks = traced_allocations(lambda: into(SYM, out))
    assert peak == 0 and abs(blocks) < 5, (peak, blocks)
    assert out[0]["bid_price_fp"] == 6183763000000
    # control: best() builds a tuple of floats per call, and the measurement sees it
    peak, _ = traced_allocations(lambda: best(SYM))
    assert peak > 0


# --------------------------------------------------------------------------- snapshots


class BadBody(Exception):
    pass


def dec_fp(s):
    """Exact fixed point (1e8) of a decimal string, or ValueError (inexact, too large, not a
    number): what the book accepts, written with Decimal."""
    try:
        d = Decimal(s.strip()) * 10**8
    except (InvalidOperation, AttributeError) as e:
        raise ValueError(s) from e
    if not d.is_finite() or d != d.to_integral_value() or abs(d) > INT64_MAX:
        raise ValueError(s)
    return int(d)


def ref_load(body, limit, max_levels, tick=1, lot=1):
    """The reference: ``(lid, [bids, asks] best first, bounds)``; BadBody or ValueError."""
    try:
        doc = json.loads(body)
        lid = int(doc["lastUpdateId"])
        sides = doc["bids"], doc["asks"]
        if not all(isinstance(x, list) for x in sides):
            raise TypeError
    except (ValueError, KeyError, TypeError) as e:
        raise BadBody from e
    books, bounds = [], []
    for side, levels in enumerate(sides):
        pairs = [(dec_fp(x[0]), dec_fp(x[1])) for x in levels]
        if any(p <= 0 or q < 0 for p, q in pairs):
            raise ValueError("range")
        if any(p % tick or q % lot for p, q in pairs):
            raise ValueError("grid")
        held = {}
        for p, q in pairs:
            if q:
                if p in held:
                    raise ValueError("twice")
                held[p] = q
        best = sorted(held.items(), reverse=side == 0)
        kept = best[:max_levels]
        cut = len(best) > max_levels or (kept and (limit is None or len(levels) >= limit))
        books.append(kept)
        bounds.append(kept[-1][0] if cut else None)
    return lid, books, bounds


def loaded(bs, lid, bids, asks, limit):
    res = bs.apply_snapshot(SYM, lid, bids, asks, limit)
    assert res == SnapshotResult.WAITING and bs.last_update_id(SYM) == lid
    books = [list(zip(*(a.tolist() for a in bs.levels(SYM, s)))) for s in (0, 1)]
    return lid, books, list(bs.bounds_fp(SYM))


def book(max_levels, tick, lot, market="spot"):
    bs = BookSet(market, max_levels=max_levels)
    if tick != 1 or lot != 1:
        bs.set_scale(SYM, tick, lot)
    return bs


def outcome(fn):
    try:
        return fn()
    except BadBody:
        return "bad body"
    except SnapshotError as e:
        assert e.reason == "bad body", e
        return "bad body"
    except ValueError:
        return "refused"


def compare(body, limit=None, max_levels=5000, tick=1, lot=1, parser=None, fast=None):
    """The body through the C path, the old path and the reference: the same outcome."""
    parser = parser or SnapshotParser()
    before = parser.counters["json_fallbacks"]

    def new():
        return loaded(book(max_levels, tick, lot), *parser.parse(body), limit)

    def old():
        try:
            doc = json.loads(body)
            lid, bids, asks = int(doc["lastUpdateId"]), doc["bids"], doc["asks"]
            if not isinstance(bids, list) or not isinstance(asks, list):
                raise TypeError
        except (ValueError, KeyError, TypeError) as e:
            raise BadBody from e
        return loaded(book(max_levels, tick, lot), lid, bids, asks, limit)

    got = outcome(new)
    assert got == outcome(old) == outcome(lambda: ref_load(body, limit, max_levels, tick, lot)), (
        body[:200]
    )
    if fast is not None:  # read by the C decoder (True) or by the stdlib fallback (False)
        assert (parser.counters["json_fallbacks"] == before) == fast, body[:200]
    return got


def corpus_bodies():
    c = corpus_dir()
    out = []
    for m in ("spot", "futures"):
        out.append((f"{m} sequence", (c / "sequences" / f"{m}_BTCUSDT_20240808_snapshot.json")))
    for m in ("spot", "futures", "coinm"):
        out += [(f"{m} line", c / f"{m}_depth_snapshot.jsonl")]
    bodies = []
    for name, path in out:
        for i, line in enumerate(path.read_bytes().splitlines()):
            if line.strip():
                bodies.append((f"{name} {i}", line))
    return bodies


def test_corpus_snapshots_same_through_the_decoder_as_through_json():
    parser = SnapshotParser()
    bodies = corpus_bodies()
    assert len(bodies) >= 50
    for name, body in bodies:
        doc = json.loads(body)
        lid, bids, asks = parser.parse(body)
        # the rows themselves: exact values and float() of each string, best first
        assert lid == doc["lastUpdateId"], name
        for rows, levels, side in ((bids, doc["bids"], 0), (asks, doc["asks"], 1)):
            assert rows.dtype == PARTIAL_DTYPE and len(rows) == len(levels), name
            assert rows["side"].tolist() == [side] * len(levels)
            assert rows["price_fp"].tolist() == [fp(p) for p, _ in levels], name
            assert rows["qty_fp"].tolist() == [fp(q) for _, q in levels], name
            assert rows["price"].tolist() == [float(p) for p, _ in levels], name
        n = max(len(doc["bids"]), len(doc["asks"]))
        for limit in (None, n, n + 1):
            for max_levels in (5000, 100, 1):
                got = compare(body, limit, max_levels, parser=parser, fast=True)
                assert got != "refused" and got != "bad body", name
    assert parser.counters["json_fallbacks"] == 0


def body_of(bids, asks, lid=100, **extra):
    doc = {"lastUpdateId": lid, **extra, "bids": bids, "asks": asks}
    return json.dumps(doc, separators=(",", ":")).encode()


EDGE = [
    # (what, body, limit, tick, lot, fast path, outcome or None for "loaded")
    ("both sides empty", body_of([], []), 100, 1, 1, True, None),
    ("empty bids", body_of([], [["2.0", "1"]]), 100, 1, 1, True, None),
    ("empty asks, limit reached", body_of([["1.0", "1"]], []), 1, 1, 1, True, None),
    ("qty 0 levels", body_of([["3", "0"], ["2", "1"], ["1", "0"]], [["4", "0"]]), 3, 1, 1, True, None),
    ("all qty 0", body_of([["3", "0"], ["2", "0"]], [["4", "0"]]), 2, 1, 1, True, None),
    ("price twice", body_of([["2", "1"], ["2", "3"]], []), None, 1, 1, True, "refused"),
    ("price twice, once qty 0", body_of([["2", "0"], ["2", "3"], ["1", "1"]], []), None, 1, 1, True, None),
    ("price twice apart", body_of([["3", "1"], ["1", "1"], ["3", "2"]], []), None, 1, 1, True, "refused"),
    ("unsorted", body_of([["1", "1"], ["3", "2"], ["2", "3"]], [["9", "1"], ["5", "1"], ["7", "2"]]), None, 1, 1, True, None),
    ("worst first", body_of([["1", "1"], ["2", "1"], ["3", "1"]], [["9", "1"], ["8", "1"]]), None, 1, 1, True, None),
    ("on the grid", body_of([["1.01", "0.5"]], [["1.02", "1.5"]]), None, 10**6, 10**7, True, None),
    ("price off the tick", body_of([["1.015", "0.5"]], []), None, 10**6, 10**7, True, "refused"),
    ("qty off the lot", body_of([["1.01", "0.55"]], []), None, 10**6, 10**7, True, "refused"),
    ("9 decimals", body_of([["1.000000001", "1"]], []), None, 1, 1, True, "refused"),
    ("9 decimals, exact", body_of([["1.000000000", "1.0000000000000"]], []), None, 1, 1, True, None),
    ("qty 9 decimals", body_of([], [["1", "0.000000001"]]), None, 1, 1, True, "refused"),
    ("too large", body_of([["99999999999.5", "1"]], []), None, 1, 1, True, "refused"),
    ("largest", body_of([["92233720368.54775807", "1"]], []), None, 1, 1, True, None),
    ("price 0", body_of([["0", "1"]], []), None, 1, 1, True, "refused"),
    ("negative price", body_of([], [["-1", "1"]]), None, 1, 1, True, "refused"),
    ("negative qty", body_of([["1", "-1"]], []), None, 1, 1, True, "refused"),
    ("exponent", body_of([["1e2", "5E-1"]], []), None, 1, 1, True, None),
    ("futures E and T", body_of([["2", "1"]], [["3", "1"]], E=1, T=2), None, 1, 1, True, None),
    ("coinm symbol and pair", body_of([["2", "1"]], [], symbol="X", pair="Y"), None, 1, 1, True, None),
    ("escaped digits", b'{"lastUpdateId":1,"bids":[["\\u0032","1"]],"asks":[]}', None, 1, 1, True, None),
    ("spaces", b' { "lastUpdateId" : 1 , "bids" : [ [ "2" , "1" ] ] , "asks" : [ ] }\n', None, 1, 1, True, None),
    # what the decoder does not take goes to the stdlib reader: as accepted as ever
    ("keys in another order", b'{"bids":[["2","1"]],"asks":[],"lastUpdateId":1}', None, 1, 1, False, None),
    ("lastUpdateId a string", b'{"lastUpdateId":"7","bids":[["2","1"]],"asks":[]}', None, 1, 1, False, None),
    ("lastUpdateId a float", b'{"lastUpdateId":7.0,"bids":[["2","1"]],"asks":[]}', None, 1, 1, False, None),
    ("padded decimal", b'{"lastUpdateId":1,"bids":[[" 2.5 ","1"]],"asks":[]}', None, 1, 1, False, None),
    ("third field in a level", b'{"lastUpdateId":1,"bids":[["2","1",[]]],"asks":[]}', None, 1, 1, False, None),
    ("not a number", b'{"lastUpdateId":1,"bids":[["NaN","1"]],"asks":[]}', None, 1, 1, False, "refused"),
    ("empty string", b'{"lastUpdateId":1,"bids":[["","1"]],"asks":[]}', None, 1, 1, False, "refused"),
    # garbage: a clear SnapshotError("bad body")
    ("empty body", b"", None, 1, 1, False, "bad body"),
    ("html", b"<html>502 Bad Gateway</html>", None, 1, 1, False, "bad body"),
    ("truncated", body_of([["2", "1"]], [])[:-5], None, 1, 1, False, "bad body"),
    ("trailing garbage", body_of([["2", "1"]], []) + b"x", None, 1, 1, False, "bad body"),
    ("two objects", body_of([], []) + body_of([], []), None, 1, 1, False, "bad body"),
    ("no asks", b'{"lastUpdateId":1,"bids":[]}', None, 1, 1, False, "bad body"),
    ("bids an object", b'{"lastUpdateId":1,"bids":{},"asks":[]}', None, 1, 1, False, "bad body"),
    ("lastUpdateId null", b'{"lastUpdateId":null,"bids":[],"asks":[]}', None, 1, 1, False, "bad body"),
    ("an array", b"[1,2]", None, 1, 1, False, "bad body"),
    ("error answer", b'{"code":-1121,"msg":"Invalid symbol."}', None, 1, 1, False, "bad body"),
    ("bad utf-8", b'{"lastUpdateId":1,"bids":[["\xff","1"]],"asks":[]}', None, 1, 1, False, "bad body"),
    (
        "a partial-depth stream payload",
        b'{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,'
        b'"b":[["2","1"]],"a":[]}',
        None, 1, 1, False, "bad body",
    ),
    (
        "a combined-stream wrapper",
        b'{"stream":"btcusdt@depth5","data":{"lastUpdateId":1,"bids":[["2","1"]],"asks":[]}}',
        None, 1, 1, False, "bad body",
    ),
]  # fmt: skip


@pytest.mark.parametrize("what,body,limit,tick,lot,fast,want", EDGE, ids=[e[0] for e in EDGE])
def test_snapshot_edge_cases(what, body, limit, tick, lot, fast, want):
    got = compare(body, limit, 5000, tick, lot, fast=fast)
    assert got == want if want is not None else isinstance(got, tuple), (what, got)


def test_more_levels_than_the_decoder_holds_load_through_json():
    rng = random.Random(3)
    bids = [[f"{100000 - i}.{rng.randint(0, 99):02d}", "1.5"] for i in range(6000)]
    asks = [[f"{100001 + i}.00", f"{rng.randint(1, 9)}"] for i in range(5001)]
    body = body_of(bids, asks)
    for max_levels, limit in ((5000, 5000), (8000, 6000), (8000, 7000)):
        got = compare(body, limit, max_levels, fast=False)
        assert isinstance(got, tuple)
    # and within the decoder's bound, the C path reads it
    got = compare(body_of(bids[:5000], asks[:5000]), 5000, 5000, fast=True)
    assert len(got[1][0]) == 5000 and got[2][0] == got[1][0][-1][0]


def random_body(rng):
    def dec():
        scale = 9 if rng.random() < 0.01 else rng.choice((0, 1, 2, 4, 8))
        v = rng.choice((rng.randint(1, 10**6), rng.randint(0, 50)))
        s = str(Decimal(v).scaleb(-scale)) if scale else str(v)
        return s if "E" not in s else f"{Decimal(v).scaleb(-scale):f}"

    def side():
        n = rng.choice((0, 1, 2, 5, 30))
        lv = [[dec(), dec() if rng.random() < 0.8 else "0"] for _ in range(n)]
        if lv and rng.random() < 0.1:
            lv.append(list(rng.choice(lv)))  # a price twice
        mode = rng.random()
        if mode < 0.6:
            lv.sort(key=lambda x: Decimal(x[0]))
        elif mode < 0.9:
            lv.sort(key=lambda x: -Decimal(x[0]))
        return lv

    return body_of(side(), side(), lid=rng.randint(0, 2**40), E=rng.randint(0, 10))


def test_random_snapshots_same_as_the_references():
    rng = random.Random(20261204)
    parser = SnapshotParser()
    seen = {"loaded": 0, "refused": 0}
    for _ in range(600):
        body = random_body(rng)
        limit = rng.choice((None, 1, 5, 30, 100))
        max_levels = rng.choice((1, 3, 5000))
        tick, lot = rng.choice(((1, 1), (1, 1), (10**6, 10**4), (10**8, 1)))
        got = compare(body, limit, max_levels, tick, lot, parser=parser, fast=True)
        seen["loaded" if isinstance(got, tuple) else got] += 1
    assert seen["loaded"] > 100 and seen["refused"] > 50, seen


def test_apply_snapshot_reads_any_int64_layout_in_place():
    snap, _ = load_sequence(corpus_dir(), "futures")
    parser = SnapshotParser()
    body = json.dumps(snap).encode()
    lid, bids, asks = parser.parse(body)
    want = loaded(BookSet("usdm"), lid, bids, asks, 1000)
    # packed (unaligned int64), other int types, plain (n, 2) arrays, shuffled rows
    packed = np.dtype([("x", "u1"), ("price_fp", "<i8"), ("qty_fp", "<i8")], align=False)
    narrow = np.dtype([("qty_fp", "<i8"), ("price_fp", ">i8")])
    for dt in (packed, narrow):
        sides = []
        for rows in (bids, asks):
            a = np.zeros(len(rows), dt)
            a["price_fp"], a["qty_fp"] = rows["price_fp"], rows["qty_fp"]
            sides.append(a)
        assert loaded(BookSet("usdm"), lid, *sides, 1000) == want, dt
    pairs = [np.stack([r["price_fp"], r["qty_fp"]], 1) for r in (bids, asks)]
    assert loaded(BookSet("usdm"), lid, *pairs, 1000) == want
    rng = np.random.default_rng(1)
    shuffled = [r[rng.permutation(len(r))] for r in (bids, asks)]
    assert loaded(BookSet("usdm"), lid, *shuffled, 1000) == want


def test_a_refused_or_too_old_snapshot_leaves_the_book_untouched():
    bs = BookSet("spot")
    bs.apply_depth_rows(event_rows({"U": 200, "u": 210, "b": [["5", "1"]], "a": []}, SYM))
    parser = SnapshotParser()
    lid, bids, asks = parser.parse(body_of([["2", "1"], ["1", "1"]], [["3", "1"]], lid=150))
    assert bs.apply_snapshot(SYM, lid, bids, asks, 10) == SnapshotResult.TOO_OLD
    assert bs.state(SYM) == State.SYNCING and bs.best_fp(SYM) == (None,) * 4
    lid, bids, asks = parser.parse(body_of([["2", "1"], ["2", "1"]], [["3", "1"]], lid=205))
    with pytest.raises(ValueError, match="twice"):
        bs.apply_snapshot(SYM, lid, bids, asks, 10)
    assert bs.state(SYM) == State.SYNCING and bs.buffered_events(SYM) == 1
    lid, bids, asks = parser.parse(body_of([["4", "1"]], [["6", "1"]], lid=205))
    assert bs.apply_snapshot(SYM, lid, bids, asks, 10) == SnapshotResult.SYNCED
    assert bs.best_fp(SYM) == (fp("5"), fp("1"), fp("6"), fp("1"))


def test_parsed_rows_outlive_the_next_parse():
    parser = SnapshotParser(max_levels=3)  # an 8-row ring: the rows wrap around it
    got = []
    for i in range(10):
        body = body_of([[str(10 - k), str(i + 1)] for k in range(3)], [[str(11 + i), "1"]])
        got.append(parser.parse(body))
    for i, (_lid, bids, asks) in enumerate(got):
        assert bids["qty_fp"].tolist() == [(i + 1) * 10**8] * 3
        assert bids["price_fp"].tolist() == [fp("10"), fp("9"), fp("8")]
        assert asks["price_fp"].tolist() == [fp(str(11 + i))]
    with pytest.raises(ValueError):
        SnapshotParser(max_levels=0)


# --------------------------------------------------------------------------- OrderBook


def test_orderbook_reads_and_snapshots_through_the_c_path():
    # Against the simulator over TLS: snapshots fetched from its REST API go through the
    # decoder (no stdlib fallback), and OrderBook's readers agree with its book at the same
    # update id; best_into allocates nothing through OrderBook either.
    async def main():
        sim = ExchangeSimulator(
            symbols=["BTCUSDT", "ETHUSDT"], seed=3, clock="manual", rate=200.0, levels=300
        )
        async with sim:
            streams = ["btcusdt@depth@100ms", "ethusdt@depth@100ms"]
            async with make_feed(sim, streams, stream_timeout=None) as feed:
                async with OrderBook(
                    feed,
                    rest_url=sim.rest_url,
                    ssl=sim.client_ssl_context(),
                    retry_initial=0.02,
                    first_event_wait=0.1,
                ) as ob:
                    for _ in range(2000):
                        sim.advance(0.02)
                        await __import__("asyncio").sleep(0.002)
                        if all(ob.is_valid(s) for s in ("BTCUSDT", "ETHUSDT")):
                            break
                    ob.poll()
                    out = np.zeros(1, TOP_DTYPE)
                    for name in ("BTCUSDT", "ethusdt"):
                        assert ob.is_valid(name), ob.stats()
                        bids, asks = sim.book_at(name.upper(), ob.last_update_id(name), 1)
                        want = (fp(bids[0][0]), fp(bids[0][1]), fp(asks[0][0]), fp(asks[0][1]))
                        assert ob.best_fp(name) == want
                        assert ob.best(name) == tuple(x / 1e8 for x in want)
                        assert ob.best_into(name, out) is True
                        assert tuple(out[0][["bid_price_fp", "bid_qty_fp"]].tolist()) == want[:2]
                    into = ob.best_into
                    peak, blocks = traced_allocations(lambda: into("BTCUSDT", out))
                    with pytest.raises(KeyError):
                        ob.best("XRPUSDT")
                    return ob.stats(), peak, blocks

    st, peak, blocks = run(main(), 90)
    assert st["snapshots"]["fetches"] >= 2 and st["books"]["snapshots"] >= 2
    assert st["rest"].get("json_fallbacks", 0) == 0, st["rest"]
    assert peak == 0 and abs(blocks) < 5, (peak, blocks)
