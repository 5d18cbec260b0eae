"""Randomised streams (deterministic seeds) against ground truth: exercises the sorted sides
(inserts and deletes at both ends, re-centring, the depth cap) on interleaved symbols."""

import random

import numpy as np
import pytest
from book_rows import concat, event_rows

from fastfeed.book._book import BookSet, Event, SnapshotResult, State


def fmt(levels):
    return [[f"{p / 100:.2f}", f"{q / 1000:.3f}"] for p, q in levels.items()]


def random_events(rng, n_events, start_id, truth, mid=10_000, spread=400):
    """Spot-style events from a tiny matching engine: a drifting mid, levels mostly near the
    top, some far away.  An order through the other side removes the levels it crosses, so
    the stream never crosses.  ``truth`` ([bids, asks] dicts, price in 0.01 ticks, qty in
    0.001 lots) is the ground truth; each event carries a sorted copy of it."""
    events, u = [], start_id
    for _ in range(n_events):
        mid += rng.choice((-1, 0, 1))
        changes = [{}, {}]
        for _ in range(rng.randint(0, 12)):
            side = int(rng.random() < 0.5)
            d = rng.randint(1, spread if rng.random() < 0.2 else 15)
            p = mid + d if side else mid - d
            qty = 0 if rng.random() < 0.35 else rng.randint(1, 10**6)
            if qty:
                other = truth[1 - side]
                for op in [x for x in other if (x >= p if side else x <= p)]:
                    del other[op]
                    changes[1 - side][op] = 0
                truth[side][p] = qty
            else:
                truth[side].pop(p, None)
            changes[side][p] = qty
        U, u = u + 1, u + rng.randint(1, 5)
        events.append(
            {
                "U": U,
                "u": u,
                "E": U,
                "b": fmt(changes[0]),
                "a": fmt(changes[1]),
                "truth": [sorted(truth[0].items(), reverse=True), sorted(truth[1].items())],
            }
        )
    return events


def levels_ticks(bs, sym, side):
    p, q = bs.levels(sym, side)
    return list(zip((p // 10**6).tolist(), (q // 10**5).tolist()))


def assert_side_matches(bs, sym, side, ref, max_levels, need_exact=True):
    """The held levels equal the truth: all of them, or, on a side cut by the depth cap,
    the exact region in full and the rest level by level."""
    got = levels_ticks(bs, sym, side)
    bound = bs.bounds_fp(sym)[side]
    assert len(got) <= max_levels
    if bound is None:
        assert got == ref
        return
    exact = [x for x in ref if (x[0] * 10**6 >= bound if side == 0 else x[0] * 10**6 <= bound)]
    assert (exact or not need_exact) and got[: len(exact)] == exact
    refd = dict(ref)
    assert all(refd.get(p) == q for p, q in got[len(exact) :])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_levels", [4, 64, 5000])
def test_random_streams_three_symbols(seed, max_levels):
    rng = random.Random(seed * 1000 + max_levels)
    bs = BookSet("spot", max_levels=max_levels)
    syms = (1, 2, 3)
    state = {}
    for s in syms:
        mid = 10_000
        bids = {mid - i: rng.randint(1, 10**6) for i in range(1, 200)}
        asks = {mid + i: rng.randint(1, 10**6) for i in range(1, 200)}
        bs.track(s)
        res = bs.apply_snapshot(s, 1000, fmt(bids), fmt(asks), limit=5000)
        assert res == SnapshotResult.WAITING
        events = random_events(rng, 300, 1000, [dict(bids), dict(asks)])
        state[s] = {"events": events, "i": 0, "depleted": 0}
    checked = 0
    while any(st["i"] < len(st["events"]) for st in state.values()):
        # one batch interleaves a few events of each symbol
        parts, last = [], {}
        for s in syms:
            st = state[s]
            k = rng.randint(0, 3)
            for e in st["events"][st["i"] : st["i"] + k]:
                parts.append(event_rows(e, s))
                last[s] = e
            st["i"] += k
        if not parts:
            continue
        bs.apply_depth_rows(concat(parts))
        for s, e in last.items():
            if bs.state(s) == State.SYNCING:
                # only a capped side that ran out of exact levels may resync here; serve it a
                # snapshot at the batch's last event, which covers everything it buffered
                assert max_levels < 5000 and bs.last_reason(s) == Event.DEPLETED
                state[s]["depleted"] += 1
                assert s in bs.needs_snapshot()
                res = bs.apply_snapshot(
                    s, e["u"], fmt(dict(e["truth"][0])), fmt(dict(e["truth"][1])), limit=5000
                )
                assert res == SnapshotResult.WAITING
            assert bs.state(s) in (State.VALID, State.BRIDGING)
            assert bs.last_update_id(s) == e["u"]
            for side in (0, 1):
                assert_side_matches(bs, s, side, e["truth"][side], max_levels)
            checked += 1
    assert checked > 100
    assert bs.stats()["crossed"] == 0
    assert bs.stats()["depleted"] == sum(st["depleted"] for st in state.values())
    if max_levels == 4:
        assert bs.stats()["depleted"] > 0  # the resync path was exercised
    if max_levels == 5000:
        assert bs.stats()["depleted"] == 0 and bs.stats()["cap_dropped"] == 0
    tops = bs.tops.tail(bs.tops.written)
    for s in syms:
        t = tops[(tops["symbol"] == s) & (tops["code"] <= Event.SYNCED)]
        assert len(t) == bs.stats(s)["events"]
        assert (np.diff(t["update_id"]) > 0).all()


@pytest.mark.parametrize("max_levels", [300, 5000])
def test_deep_book_churn_matches_truth(max_levels):
    # A deep book (1200 levels a side) changed all over, as Binance spot depth does: deletes
    # in the middle leave tombstones, inserts take them over, compaction runs; the held
    # levels must equal the truth after every event (within the exact region when capped).
    rng = random.Random(77 + max_levels)
    bs = BookSet("spot", max_levels=max_levels)
    bs.track(1)
    mid = 100_000
    bids = {mid - i: rng.randint(1, 10**6) for i in range(1, 1200)}
    asks = {mid + i: rng.randint(1, 10**6) for i in range(1, 1200)}
    assert bs.apply_snapshot(1, 1000, fmt(bids), fmt(asks), limit=5000) == SnapshotResult.WAITING
    events = random_events(rng, 1500, 1000, [dict(bids), dict(asks)], mid=mid, spread=1100)
    for k, e in enumerate(events):
        bs.apply_depth_rows(event_rows(e, 1))
        if bs.state(1) == State.SYNCING:  # a capped side ran out of exact levels
            assert max_levels < 5000 and bs.last_reason(1) == Event.DEPLETED
            bs.apply_snapshot(
                1, e["u"], fmt(dict(e["truth"][0])), fmt(dict(e["truth"][1])), limit=5000
            )
        assert bs.last_update_id(1) == e["u"]
        if k % 3:
            continue
        for side in (0, 1):
            assert_side_matches(bs, 1, side, e["truth"][side], max_levels, need_exact=False)
        st = bs.stats(1)
        assert st["bid_levels"] == len(levels_ticks(bs, 1, 0))
    assert bs.stats()["crossed"] == 0
