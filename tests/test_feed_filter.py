"""The feed's id filter, sans-IO: decode, filter, commit (FeedSink.decode runs a payload the way a
connection does).  A rejected message never touches a ring; a gap marker sits before the rows it
precedes; a message that wraps the ring's end lands whole and in order; every accepted message
writes exactly the rows the standalone decoder writes for it."""

import json
import logging

import numpy as np
import pytest
from corpus import corpus_dir

from fastfeed import BinanceDecoder, EventReason
from fastfeed.feed._filter import FeedSink


def depth(sym, U, u, nb, na, pu=None):
    d = {
        "e": "depthUpdate",
        "E": 1700000000000 + u,
        "s": sym,
        "U": U,
        "u": u,
        "b": [[f"{100 - i}.5", f"{i + 1}"] for i in range(nb)],
        "a": [[f"{101 + i}.5", f"{i + 1}"] for i in range(na)],
    }
    if pu is not None:
        d["pu"] = pu
    return json.dumps(d).encode()


def agg(sym, a):
    return json.dumps(
        {
            "e": "aggTrade",
            "E": 1700000000000 + a,
            "s": sym,
            "a": a,
            "p": "1.5",
            "q": "2",
            "f": a * 10,
            "l": a * 10 + 1,
            "T": 1700000000000 + a,
            "m": True,
        }
    ).encode()


def feed_pair(**caps):
    main = BinanceDecoder(**caps)
    sink = FeedSink(main, 64)
    return sink, BinanceDecoder(max_levels=100, share=main)


def test_share_requires_the_sinks_rings():
    sink, _ = feed_pair()
    with pytest.raises(ValueError):
        sink.decode(BinanceDecoder(), agg("X", 1))


def test_rejected_message_never_touches_a_ring():
    """Duplicates and stale events in a ring that keeps wrapping: the ring's bytes after a
    rejected message are the bytes before it, byte for byte (nothing staged into a slot that
    a reader may still read), and ``written`` does not move."""
    sink, dec = feed_pair(depth=32)
    ring = sink.decoder.depth
    u = 0
    rejected = 0
    for i in range(200):
        nb, na = i % 5, (i * 3) % 7
        assert sink.decode(dec, depth("BTCUSDT", u + 1, u + 3, nb, na)) == "accepted"
        u += 3
        if i % 3 == 0:
            before, w = ring.array.tobytes(), ring.written
            for U, uu in ((u - 2, u), (u - 5, u - 3), (1, 2)):  # repeat, stale, very old
                assert sink.decode(dec, depth("BTCUSDT", U, uu, 6, 6)) == "duplicate"
                rejected += 1
            assert ring.written == w and ring.array.tobytes() == before
    assert ring.written > 4 * ring.capacity
    assert sink.counters()["duplicates"]["depth"] == rejected
    # every readable row chains: the oldest rows are real rows, never a rejected message's
    rows = ring.tail(len(ring))
    assert len(rows) == ring.capacity
    ids = rows["last_id"]
    assert np.all(np.diff(ids) >= 0)


def test_reader_sees_every_accepted_row_and_no_rejected_one():
    """A reader that reads after every message, in a small wrapping ring: the rows it sees are
    exactly the accepted messages' rows, in order, with nothing lost."""
    sink, dec = feed_pair(depth=16)
    ring = sink.decoder.depth
    ref = BinanceDecoder(depth=1024)  # independent: the standalone decoder on accepted ones
    reader = ring.reader("oldest")
    seen = []
    u = 0
    for i in range(120):
        msg = depth("ETHUSDT", u + 1, u + 2, i % 7, (i + 3) % 9)
        u += 2
        assert sink.decode(dec, msg) == "accepted"
        ref.decode(msg)
        seen.append(reader.read().copy())
        assert sink.decode(dec, msg) == "duplicate"
        assert len(reader.read()) == 0
    got = np.concatenate(seen)
    want = ref.depth.tail(ref.depth.written)
    assert reader.lost == 0
    for f in ("last_id", "first_id", "side", "price", "qty", "flags"):
        np.testing.assert_array_equal(got[f], want[f])


def test_message_larger_than_the_distance_to_the_ring_end_wraps_whole():
    sink, dec = feed_pair(depth=16)
    ring = sink.decoder.depth
    assert sink.decode(dec, depth("X", 1, 1, 3, 2)) == "accepted"  # 5 rows: next slot is 5
    assert sink.decode(dec, depth("X", 2, 2, 7, 6)) == "accepted"  # 13 rows: slots 5..17 wrap
    rows = ring.tail(13)
    assert list(rows["side"]) == [0] * 7 + [1] * 6
    assert list(rows["price"]) == [100.5 - i for i in range(7)] + [101.5 + i for i in range(6)]
    assert list(rows["flags"] & 1) == [0] * 12 + [1]
    # more rows than the ring holds: rejected by the decoder, counted, nothing written
    w = ring.written
    assert sink.decode(dec, depth("X", 3, 3, 9, 9)) == "none"
    assert ring.written == w and dec.stats()["rejected"] == {"too_many_levels": 1}


def test_gap_marker_sits_before_the_rows_it_precedes():
    sink, dec = feed_pair()
    sink.decode(dec, agg("BTCUSDT", 5))
    sink.decode(dec, agg("BTCUSDT", 6))
    w = sink.decoder.trades.written
    assert sink.decode(dec, agg("BTCUSDT", 9)) == "accepted"
    ev = sink.events.tail(1)[0]
    assert ev["reason"] == EventReason.GAP and ev["slot"] == 0
    assert (ev["expected_id"], ev["got_id"], ev["trades_pos"]) == (7, 9, w)
    assert sink.decoder.trades.tail(1)[0]["trade_id"] == 9
    # futures depth chains by pu: a broken chain is a gap at the depth ring's position
    sink.decode(dec, depth("BTCUSDT", 10, 20, 1, 1, pu=9))
    d = sink.decoder.depth.written
    sink.decode(dec, depth("BTCUSDT", 25, 30, 1, 1, pu=22))
    ev = sink.events.tail(1)[0]
    assert (ev["slot"], ev["expected_id"], ev["got_id"], ev["depth_pos"]) == (2, 20, 25, d)
    c = sink.counters()
    assert c["gaps"] == {"aggTrade": 1, "trade": 0, "depth": 1, "bookTicker": 0, "partial": 0}


def test_accepted_messages_write_what_the_decoder_writes():
    """The whole corpus through a fresh sink per file, against the standalone decoder: the
    rings hold exactly the decoder's rows of the accepted messages; any other message leaves
    the rings alone."""
    files = sorted(corpus_dir().glob("*.jsonl"))
    assert files
    names = ("trades", "depth", "tickers", "partial")
    results = {"accepted": 0, "duplicate": 0, "none": 0}
    for path in files:
        sink, dec = feed_pair(partial=1 << 16)
        ref = BinanceDecoder(partial=1 << 16)
        keep = {n: [] for n in names}  # ref row ranges of the accepted messages
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            before = [getattr(ref, n).written for n in names]
            mine = [getattr(sink.decoder, n).written for n in names]
            ref.decode(line, 1)
            r = sink.decode(dec, line, 1)
            results[r] += 1
            for n, b, m in zip(names, before, mine):
                new = getattr(sink.decoder, n).written - m
                if r == "accepted":
                    keep[n].append((b, getattr(ref, n).written))
                    assert new == getattr(ref, n).written - b, (path.name, n)
                else:
                    assert new == 0, (path.name, n, r)
        for n in names:
            rr, mr = getattr(ref, n), getattr(sink.decoder, n)
            assert rr.written <= rr.capacity
            want = rr.tail(rr.written)
            idx = np.concatenate([np.arange(b, e) for b, e in keep[n]] or [np.arange(0)])
            want, got = want[idx.astype(np.int64)], mr.tail(mr.written)
            assert len(want) == len(got)
            for f in want.dtype.names:
                if f != "symbol":
                    np.testing.assert_array_equal(want[f], got[f], err_msg=f"{path.name} {f}")
            assert [ref.symbol(int(s)) for s in np.unique(want["symbol"])] == [
                dec.symbol(int(s)) for s in np.unique(got["symbol"])
            ]
    assert results["accepted"] > 1000, results


def test_hooks_run_once_per_flush_with_new_rows(caplog):
    sink, dec = feed_pair()
    calls = []

    def bad():
        raise RuntimeError("boom")

    sink.add_hook(lambda: calls.append("a"))
    sink.add_hook(bad)
    sink.add_hook(lambda: calls.append("b"))
    sink.flush()
    assert calls == []  # nothing new
    sink.decode(dec, agg("X", 1))
    sink.decode(dec, agg("X", 2))
    with caplog.at_level(logging.ERROR, "fastfeed.filter"):
        sink.flush()
    assert calls == ["a", "b"] and "boom" in caplog.text  # a failing hook stops no other
    sink.decode(dec, agg("X", 2))  # duplicate: nothing committed, no call
    sink.flush()
    assert calls == ["a", "b"]
    sink.remove_hook(bad)
    sink.mark(int(EventReason.CONNECT))
    assert calls == ["a", "b", "a", "b"]
