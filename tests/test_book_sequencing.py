"""Sequencing rules of the book core (Binance's local order book procedure: spot ``U``/``u``,
USD-M ``pu`` chain; see fastfeed/book/_book.pyx) on synthetic events."""

import numpy as np
import pytest
from book_rows import concat, ev, event_rows

from fastfeed.book._book import TOP_DTYPE, BookSet, Event, SnapshotResult, State, to_fp

A, B = 1, 2  # symbol ids
SNAP_BIDS = [["100.0", "1"], ["99.0", "2"], ["98.0", "3"]]
SNAP_ASKS = [["101.0", "1"], ["102.0", "2"], ["103.0", "3"]]


def feed(bs, *events, symbol=A):
    bs.apply_depth_rows(concat(event_rows(e, symbol) for e in events))


def codes(bs, symbol=None):
    e = bs.events.tail(bs.events.written)
    if symbol is not None:
        e = e[e["symbol"] == symbol]
    return [Event(c).name for c in e["code"]]


def synced_spot(symbol=A, **kw):
    """A valid spot book at update id 100."""
    bs = BookSet("spot", **kw)
    feed(bs, ev(95, 101, bids=[(100, 1.5)]), symbol=symbol)
    assert bs.apply_snapshot(symbol, 100, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED
    assert bs.state(symbol) == State.VALID and bs.last_update_id(symbol) == 101
    return bs


def test_spot_buffer_drop_bridge_and_continue():
    bs = BookSet("spot")
    feed(
        bs,
        ev(90, 95),
        ev(96, 100, bids=[(99, 9)]),
        ev(101, 104, asks=[(101, 5)]),
        ev(105, 105, bids=[(100, 0)]),
    )
    assert bs.state(A) == State.SYNCING
    assert bs.first_buffered_id(A) == 90 and bs.buffered_events(A) == 4
    assert bs.take_snapshot_requests() == [A]
    assert bs.take_snapshot_requests() == []  # one request per syncing period
    assert bs.needs_snapshot() == [A]
    # u <= 100 dropped; first applied has U <= 101 <= u
    assert bs.apply_snapshot(A, 100, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED
    assert bs.stats(A)["covered"] == 2 and bs.stats(A)["events"] == 2
    assert bs.best(A) == (99.0, 2.0, 101.0, 5.0)
    feed(bs, ev(106, 110, bids=[(99.5, 1)]))
    assert bs.best(A) == (99.5, 1.0, 101.0, 5.0) and bs.last_update_id(A) == 110
    assert bs.needs_snapshot() == []
    assert codes(bs) == ["RESYNC", "SNAPSHOT", "SYNCED"]


def test_spot_bridge_at_lid_plus_one_and_overlap():
    bs = BookSet("spot")
    feed(bs, ev(101, 103))  # U == lid + 1: bridges
    assert bs.apply_snapshot(A, 100, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED
    bs = BookSet("spot")
    feed(bs, ev(102, 103))  # U == lid + 2: snapshot too old
    assert bs.apply_snapshot(A, 100, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.TOO_OLD


def test_snapshot_older_than_first_buffered_event_is_fetched_again():
    bs = BookSet("spot")
    feed(bs, ev(200, 210), ev(211, 220, asks=[(101, 7)]))
    assert bs.take_snapshot_requests() == [A]
    assert bs.apply_snapshot(A, 150, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.TOO_OLD
    assert bs.state(A) == State.SYNCING and bs.buffered_events(A) == 2
    assert bs.take_snapshot_requests() == [A]  # requested again
    assert bs.stats(A)["snapshots_stale"] == 1
    assert bs.apply_snapshot(A, 215, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED
    assert bs.best(A)[2:] == (101.0, 7.0)
    assert codes(bs) == ["RESYNC", "SNAPSHOT_STALE", "SNAPSHOT", "SYNCED"]


def test_snapshot_newer_than_buffer_waits_for_bridging_event():
    bs = BookSet("spot")
    feed(bs, ev(90, 95))
    assert bs.apply_snapshot(A, 100, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.WAITING
    assert bs.state(A) == State.BRIDGING and bs.last_update_id(A) == 100
    feed(bs, ev(96, 100))  # still covered
    assert bs.state(A) == State.BRIDGING
    feed(bs, ev(101, 102, bids=[(100, 4)]))
    assert bs.state(A) == State.VALID and bs.best(A)[:2] == (100.0, 4.0)
    # no buffered event at all: same
    bs = BookSet("spot")
    bs.track(A)
    assert bs.apply_snapshot(A, 100, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.WAITING


def test_bridging_event_after_snapshot_that_does_not_reach_it():
    bs = BookSet("spot")
    bs.track(A)
    assert bs.apply_snapshot(A, 100, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.WAITING
    feed(bs, ev(105, 106))  # 101..104 never seen: snapshot useless
    assert bs.state(A) == State.SYNCING
    assert bs.first_buffered_id(A) == 105
    assert bs.take_snapshot_requests() == [A]
    assert codes(bs)[-2:] == ["SNAPSHOT_STALE", "RESYNC"]


def test_gap_resyncs_and_buffers_the_gapped_event():
    bs = synced_spot()
    bs.take_snapshot_requests()
    feed(bs, ev(102, 103, bids=[(100, 8)]), ev(110, 111, asks=[(101, 0)]))
    assert bs.state(A) == State.SYNCING
    st = bs.stats(A)
    assert st["gaps"] == 1 and st["resyncs"] == 1
    assert bs.first_buffered_id(A) == 110 and bs.buffered_events(A) == 1
    assert bs.take_snapshot_requests() == [A]
    assert bs.last_reason(A) == Event.GAP
    assert codes(bs)[-2:] == ["GAP", "RESYNC"]
    gap = bs.events.tail(2)[0]
    assert (gap["book_id"], gap["first_id"], gap["last_id"]) == (103, 110, 111)
    # the book is cleared while syncing
    assert bs.best(A) != bs.best(A)  # all NaN
    assert bs.apply_snapshot(A, 109, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED
    assert bs.best(A)[2:] == (102.0, 2.0)


def test_events_in_order_with_tops_rows():
    bs = synced_spot()
    feed(bs, ev(102, 102, bids=[(100, 8)]), ev(104, 104), ev(105, 105))
    tops = bs.tops.tail(bs.tops.written)
    names = [Event(c).name for c in tops["code"]]
    assert names == ["RESYNC", "SNAPSHOT", "SYNCED", "UPDATE", "GAP", "RESYNC"]
    # each event row points at its tops row
    e = bs.events.tail(bs.events.written)
    assert [names[s] for s in e["top_seq"]] == [Event(c).name for c in e["code"]]
    upd = tops[3]
    assert (upd["update_id"], upd["first_id"], upd["bid_price"], upd["bid_qty"]) == (
        102,
        102,
        100.0,
        8.0,
    )
    assert upd["state"] == State.VALID and upd["levels"] == 1
    assert np.isnan(tops[-1]["bid_price"]) and tops[-1]["state"] == State.SYNCING


@pytest.mark.parametrize("strict", [False, True])
def test_duplicate_and_stale_events(strict):
    bs = synced_spot(resync_on_stale=strict)
    feed(bs, ev(102, 105, bids=[(100, 8)]))
    before = [a.copy() for a in bs.levels(A, 0)]
    feed(bs, ev(102, 105, bids=[(100, 8)]))  # duplicate
    if strict:
        assert bs.stats(A)["stale"] == 1
        assert bs.state(A) == State.SYNCING and bs.last_reason(A) == Event.STALE
        assert codes(bs)[-2:] == ["STALE", "RESYNC"]
    else:
        feed(bs, ev(96, 99, bids=[(100, 1)]))  # stale
        assert bs.stats(A)["stale"] == 2
        assert codes(bs).count("STALE") == 2
        assert bs.state(A) == State.VALID and bs.last_update_id(A) == 105
        assert all(np.array_equal(x, y) for x, y in zip(before, bs.levels(A, 0)))
        feed(bs, ev(106, 106))
        assert bs.state(A) == State.VALID


def test_crossed_book_resyncs():
    bs = synced_spot()
    feed(bs, ev(102, 102, bids=[(101.5, 1)]))  # bid above the best ask 101
    assert bs.state(A) == State.SYNCING
    assert bs.stats(A)["crossed"] == 1
    assert codes(bs)[-2:] == ["CROSSED", "RESYNC"]
    assert bs.buffered_events(A) == 0  # the crossing event was applied, not buffered
    feed(bs, ev(103, 104))
    assert bs.first_buffered_id(A) == 103


def test_usdm_rules():
    bs = BookSet("usdm")
    # futures ids jump; continuity is pu == previous u
    feed(
        bs, ev(10, 20, pu=5), ev(25, 40, pu=20, bids=[(99, 9)]), ev(45, 60, pu=40, asks=[(101, 2)])
    )
    # u < lid dropped; u == lid is NOT dropped (U <= lid <= u)
    assert bs.apply_snapshot(A, 40, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED
    assert bs.stats(A)["covered"] == 1 and bs.stats(A)["events"] == 2
    assert bs.best(A) == (100.0, 1.0, 101.0, 2.0)
    feed(bs, ev(70, 80, pu=60))
    assert bs.state(A) == State.VALID and bs.last_update_id(A) == 80
    feed(bs, ev(90, 95, pu=85))  # pu != 80
    assert bs.state(A) == State.SYNCING and bs.stats(A)["gaps"] == 1
    assert bs.first_buffered_id(A) == 90


def test_usdm_snapshot_too_old():
    bs = BookSet("usdm")
    feed(bs, ev(30, 40, pu=20))
    assert bs.apply_snapshot(A, 29, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.TOO_OLD
    assert bs.apply_snapshot(A, 30, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED


def test_gap_inside_the_buffer_restarts_it():
    bs = BookSet("spot")
    feed(bs, ev(10, 20), ev(21, 30), ev(40, 50), ev(51, 60))
    assert bs.first_buffered_id(A) == 40 and bs.buffered_events(A) == 2
    assert bs.stats(A)["buffer_gaps"] == 1
    assert bs.apply_snapshot(A, 25, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.TOO_OLD
    assert bs.apply_snapshot(A, 45, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED


def test_buffer_overflow_drops_oldest_events():
    bs = BookSet("spot", buffer_rows=8)
    evs = [ev(i * 10 + 1, i * 10 + 10, bids=[(90 + i, 1), (80 + i, 1)]) for i in range(10)]
    feed(bs, *evs)  # 20 rows into 8
    st = bs.stats(A)
    assert st["buffer_dropped"] > 0
    assert bs.buffered_events(A) + st["buffer_dropped"] == 10
    assert bs.buffered_events(A) * 2 <= 8
    assert codes(bs).count("BUFFER_OVERFLOW") == 1  # reported once per syncing period
    first = bs.first_buffered_id(A)
    assert first == 101 - 10 * bs.buffered_events(A)
    # a snapshot that only the dropped events could bridge is too old now
    assert bs.apply_snapshot(A, first - 5, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.TOO_OLD
    assert bs.apply_snapshot(A, first - 1, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED
    assert bs.last_update_id(A) == 100


def test_event_larger_than_the_buffer():
    bs = BookSet("spot", buffer_rows=4)
    feed(bs, ev(1, 5, bids=[(1, 1)]), ev(6, 10, bids=[(p, 1) for p in range(1, 7)]), ev(11, 12))
    assert bs.stats(A)["buffer_dropped"] >= 2
    assert bs.first_buffered_id(A) == 11 and bs.buffered_events(A) == 1
    assert bs.apply_snapshot(A, 10, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED


def test_per_symbol_isolation():
    bs = BookSet("spot")
    for s in (A, B):
        feed(bs, ev(100, 101), symbol=s)
        bs.apply_snapshot(s, 100, SNAP_BIDS, SNAP_ASKS)
    assert bs.stats()["valid"] == 2
    bs.take_snapshot_requests()
    rows = concat(
        [
            event_rows(ev(102, 102, bids=[(100, 5)]), A),
            event_rows(ev(150, 151), B),  # gap on B
            event_rows(ev(103, 103, bids=[(100, 6)]), A),
            event_rows(ev(152, 152), B),
            event_rows(ev(104, 104, asks=[(101, 9)]), A),
        ]
    )
    bs.apply_depth_rows(rows)
    assert bs.state(A) == State.VALID and bs.last_update_id(A) == 104
    assert bs.best(A) == (100.0, 6.0, 101.0, 9.0)
    assert bs.state(B) == State.SYNCING and bs.buffered_events(B) == 2
    assert bs.take_snapshot_requests() == [B]
    assert bs.stats(A)["gaps"] == 0 and bs.stats(B)["gaps"] == 1
    tops = bs.tops.tail(bs.tops.written)
    tops_a = tops[(tops["symbol"] == A) & (tops["code"] == Event.UPDATE)]
    assert tops_a["update_id"].tolist() == [102, 103, 104]


def test_depth_cap():
    bs = BookSet("spot", max_levels=3)
    bs.track(A)
    bids = [["100", "1"], ["99", "1"], ["98", "1"], ["97", "1"], ["96", "1"]]
    assert bs.apply_snapshot(A, 10, bids, SNAP_ASKS, limit=5000) == SnapshotResult.WAITING
    assert bs.levels(A, 0)[0].tolist() == [to_fp(p) for p in ("100", "99", "98")]
    assert bs.bounds(A) == (98.0, None)  # cut by the cap; asks complete
    feed(bs, ev(11, 11, bids=[(95, 1)]))  # worse than every held level: dropped
    assert bs.state(A) == State.VALID
    assert bs.levels(A, 0)[0].tolist()[-1] == to_fp("98")
    assert bs.stats(A)["cap_dropped"] == 1
    feed(bs, ev(12, 12, bids=[(99.5, 2)]))  # better: evicts 98
    assert bs.levels(A, 0)[0].tolist() == [to_fp(p) for p in ("100", "99.5", "99")]
    assert bs.bounds(A) == (98.00000001, None)
    feed(bs, ev(13, 13, bids=[(97, 0)]))  # delete of an unknown level beyond the cap
    assert bs.stats(A)["missing_deletes"] == 1 and bs.state(A) == State.VALID
    feed(bs, ev(14, 14, bids=[(100, 0), (99.5, 0)]))
    assert bs.levels(A, 0)[0].tolist() == [to_fp("99")]
    feed(bs, ev(15, 15, bids=[(97.5, 3)]))  # below the bound: held, region not exact
    assert bs.levels(A, 0)[0].tolist() == [to_fp("99"), to_fp("97.5")]
    assert bs.bounds(A) == (98.00000001, None)


def test_event_split_across_batches_and_one_row_at_a_time():
    events = [
        ev(
            101 + i,
            101 + i,
            bids=[(99 - i * 0.5, i + 1), (100, i + 1)],
            asks=[(101 + i, 1), (102 + i, 0)],
        )
        for i in range(6)
    ]
    rows = concat(event_rows(e) for e in events)
    whole = synced_spot()
    whole.apply_depth_rows(rows[1:])  # drop the 101 event already applied
    split = synced_spot()
    for i in range(1, len(rows)):
        split.apply_depth_rows(rows[i : i + 1])
    for side in (0, 1):
        assert all(
            np.array_equal(x, y) for x, y in zip(whole.levels(A, side), split.levels(A, side))
        )
    assert split.stats(A)["events"] == whole.stats(A)["events"] == 6
    assert split.stats()["malformed_events"] == 0


def test_crossing_event_split_across_batches_is_checked_when_it_ends():
    bs = synced_spot()
    rows = event_rows(ev(102, 102, bids=[(101.5, 1), (100, 2)]))  # its first row crosses
    assert bs.open_event() is None
    bs.apply_depth_rows(rows[:1])
    # part-applied: the crossing is visible but not yet judged, and the book says so
    assert bs.open_event() == A and bs.state(A) == State.VALID
    bs.apply_depth_rows(rows[1:])
    assert bs.open_event() is None
    assert bs.state(A) == State.SYNCING and bs.stats(A)["crossed"] == 1


def test_snapshot_while_another_symbols_event_is_in_progress():
    bs = BookSet("spot")
    feed(bs, ev(100, 101), symbol=B)
    bs.apply_snapshot(B, 100, SNAP_BIDS, SNAP_ASKS)
    feed(bs, ev(100, 101), symbol=A)
    rows = event_rows(ev(102, 102, bids=[(100, 5), (99, 6)]), B)
    bs.apply_depth_rows(rows[:1])  # B's event half-read
    assert bs.apply_snapshot(A, 100, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED
    bs.apply_depth_rows(rows[1:])
    assert bs.best(B)[:2] == (100.0, 5.0) and bs.levels(B, 0)[1].tolist()[1] == to_fp("6")
    assert bs.stats()["malformed_events"] == 0 and bs.stats()["valid"] == 2


def test_missing_last_flag_closes_the_event():
    bs = synced_spot()
    rows = concat([event_rows(ev(102, 102, bids=[(99, 5)])), event_rows(ev(103, 103))])
    rows["flags"][0] = 0  # writer bug: no last-row flag
    bs.apply_depth_rows(rows)
    assert bs.stats()["malformed_events"] == 1
    assert bs.last_update_id(A) == 103 and bs.state(A) == State.VALID


def test_lost_rows_resync_every_book():
    decoder = pytest.importorskip("fastfeed.core._decoder", reason="decoder not built")
    dec = decoder.BinanceDecoder(depth=16)
    bs = BookSet("spot")
    msg = b'{"e":"depthUpdate","E":1,"s":"AB","U":%d,"u":%d,"b":[["1.0","1"]],"a":[["2.0","1"]]}'
    dec.decode(msg % (100, 101))
    cur = bs.apply_depth_ring(dec.depth, 0)
    sym = int(dec.depth.tail(1)["symbol"][0])
    assert bs.apply_snapshot(sym, 100, [], []) == SnapshotResult.SYNCED
    for i in range(20):  # 40 rows into a 16-row ring
        dec.decode(msg % (102 + i, 102 + i))
    cur = bs.apply_depth_ring(dec.depth, cur)
    assert cur == dec.depth.written
    assert bs.stats()["lost_rows"] == 40 - 16
    assert bs.state(sym) == State.SYNCING and bs.last_reason(sym) == Event.LOST
    assert codes(bs)[-2:] == ["LOST", "RESYNC"]
    # the oldest row held may be in the middle of an event, so the book skips to the end of
    # the first event it sees: 7 of the 8 whole events held are buffered
    assert bs.buffered_events(sym) == 7
    assert bs.first_buffered_id(sym) == 115


def test_scale_ticks_and_lots():
    bs = BookSet("spot")
    bs.set_scale(A, tick_fp=to_fp("0.01"), lot_fp=to_fp("0.001"))
    feed(bs, ev(100, 101, bids=[("100.01", "0.005")]))
    assert bs.apply_snapshot(A, 100, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.SYNCED
    assert bs.best_fp(A) == (to_fp("100.01"), to_fp("0.005"), to_fp("101"), to_fp("1"))
    assert bs.best(A) == (100.01, 0.005, 101.0, 1.0)
    feed(bs, ev(102, 102, bids=[("100.015", "1")]))  # off tick
    assert bs.state(A) == State.SYNCING and bs.stats(A)["bad_values"] == 1
    assert bs.last_reason(A) == Event.BAD_VALUE
    with pytest.raises(ValueError):
        bs.apply_snapshot(A, 200, [["1.001", "1"]], [])


def test_not_representable_value_is_a_bad_value():
    bs = synced_spot()
    rows = event_rows(ev(102, 102, bids=[(99, 1)]))
    rows["price_fp"] = np.iinfo(np.int64).min  # FP_NONE: decimal not exact at 1e-8
    bs.apply_depth_rows(rows)
    assert bs.state(A) == State.SYNCING and bs.stats(A)["bad_values"] == 1


def test_snapshot_inputs_and_ignored_when_valid():
    bs = synced_spot()
    assert bs.apply_snapshot(A, 500, SNAP_BIDS, SNAP_ASKS) == SnapshotResult.IGNORED
    assert bs.stats(A)["snapshots_ignored"] == 1
    arr = np.array([[to_fp(p), to_fp(q)] for p, q in SNAP_BIDS], dtype=np.int64)
    bs2 = BookSet("spot")
    bs2.track(A)
    bs2.apply_snapshot(
        A, 100, arr[::-1], [("101", "1"), ("100.5", "0")]
    )  # any order, qty 0 skipped
    assert bs2.levels(A, 0)[0].tolist() == arr[:, 0].tolist()
    assert bs2.levels(A, 1)[0].tolist() == [to_fp("101")]
    with pytest.raises(ValueError):
        bs2.apply_snapshot(A, 100, [("1", "1"), ("1", "2")], [])


def test_top_views_and_reset():
    bs = synced_spot()
    t = bs.top(A, 2)
    assert t.bid_price.tolist() == [100.0, 99.0] and t.ask_qty.tolist() == [1.0, 2.0]
    assert bs.top(A, 10).bid_price.dtype == np.float64 and len(bs.top(A, 10).bid_price) == 3
    tf = bs.top_fp(A, 1)
    assert tf.bid_price.tolist() == [to_fp("100")]
    bs.take_snapshot_requests()
    bs.reset()  # e.g. after a reconnect
    assert bs.state(A) == State.SYNCING and bs.take_snapshot_requests() == [A]
    assert bs.last_reason(A) == Event.RESET
    with pytest.raises(KeyError):
        bs.state(7)


def test_rejects_wrong_rows():
    bs = BookSet("spot")
    with pytest.raises(TypeError):
        bs.apply_depth_rows(np.zeros(3, dtype=TOP_DTYPE))
    with pytest.raises(ValueError):
        BookSet("coin")
    assert to_fp("61837.63000000") == 6183763000000 and to_fp("0.00000001") == 1
    with pytest.raises(ValueError):
        to_fp("0.000000001")


def test_untracked_symbols_without_auto_track():
    bs = BookSet("spot", auto_track=False)
    bs.track(A)
    feed(bs, ev(1, 2), symbol=B)
    assert bs.symbols() == [A] and bs.stats()["untracked_events"] == 1


def test_book_log_lines_name_the_symbol(caplog):
    """A gap is logged with the symbol's name when the owner gave a name table (OrderBook
    gives the feed's), and with its id otherwise."""
    named = synced_spot()
    named.name_of = {A: "BTCUSDT"}.__getitem__
    plain = synced_spot()
    with caplog.at_level("INFO", logger="fastfeed.book"):
        feed(named, ev(105, 110))  # skips 102..104: a gap
        feed(plain, ev(105, 110))
    gaps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("book GAP")]
    assert len(gaps) == 2, gaps
    assert "BTCUSDT" in gaps[0] and f"id {A}" not in gaps[0]
    assert f"id {A}" in gaps[1]
