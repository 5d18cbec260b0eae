"""Fuzz harness: the order book (BookSet) fed row streams with holes, duplicates, stale,
crossed and malformed updates, snapshots at any moment and resets.

Input format (every byte string is a valid program; reads past the end give zeros):

  header   1 byte: bit 7 USD-M (``pu`` chaining) else spot; bits 0-1 max_levels
           (4, 20, 200, 5000); bit 2 resync_on_stale; bit 3 events applied one row array
           per op, else several ops' rows batched into one ``apply_depth_rows`` call
  op       1 byte: bit 7 symbol (1 or 2); low 3 bits the operation:
    0      snapshot: varint lastUpdateId, 1 byte level count, levels
    1, 5   depth event: varint (U - previous u + 1000), varint (u - U), 1 byte ``pu`` mode
           (bit 0: pu = previous u, else previous u + byte/2 - 64), 1 byte level count, levels
    2      reset(symbol) (if tracked)
    3      take_snapshot_requests()
    4      untrack then track(symbol)
    6      an event whose rows are out of shape: levels with qty/price <= 0, side 7, or
           no last-row flag
    7      flush the batch
  level    5 bytes: side (bit 0), price offset in ticks (int16 from a base), qty (u16, in
           0.001 units; 0 deletes)

After every op, for each symbol: a VALID book is not crossed (unless its event is still
open: an event without its last-row flag is part-applied until the next row closes it); each side is strictly ordered
best first with positive quantities and at most ``max_levels`` levels; ``best_fp`` agrees
with ``levels``; the tops ring's last row for the symbol is consistent; counters are >= 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Reader, instrumented, run

with instrumented():
    from fastfeed import DEPTH_DTYPE, BookSet, BookState

BASE = 5_000_000_000_000  # 50,000.00 at 1e8
TICK = 1_000_000  # 0.01
LOT = 100_000  # 0.001
CAPS = (4, 20, 200, 5000)
ID_MAX = 2**62


LEVEL = np.dtype([("side", "u1"), ("off", "<i2"), ("qty", "<u2")])


def _levels(r: Reader, n: int) -> np.ndarray:
    """n levels as an int64 array of (side, price_fp, qty_fp) rows."""
    raw = r.take(5 * n).ljust(5 * n, b"\0")
    lv = np.frombuffer(raw, dtype=LEVEL)
    out = np.empty((n, 3), dtype=np.int64)
    out[:, 0] = lv["side"] & 1
    out[:, 1] = BASE + lv["off"].astype(np.int64) * TICK
    out[:, 2] = lv["qty"].astype(np.int64) * LOT
    return out


def _rows(sym, U, u, pu, levels, bad=0):
    n = max(len(levels), 1)
    rows = np.zeros(n, dtype=DEPTH_DTYPE)
    rows["symbol"] = sym
    rows["first_id"], rows["last_id"], rows["prev_last_id"] = U, u, pu
    rows["event_time"] = rows["transact_time"] = 1
    if len(levels):
        lv = levels
        rows["side"] = lv[:, 0]
        rows["price_fp"], rows["qty_fp"] = lv[:, 1], lv[:, 2]
        rows["price"], rows["qty"] = lv[:, 1] / 1e8, lv[:, 2] / 1e8
    else:
        rows["side"] = -1
    rows["flags"][-1] = 1
    if bad == 1:
        rows["qty_fp"][0] = -rows["qty_fp"][0] - 1
    elif bad == 2:
        rows["price_fp"][0] = -rows["price_fp"][0]
    elif bad == 3:
        rows["side"][0] = 7
    elif bad == 4:
        rows["flags"][-1] = 0
    return rows


def check(book: BookSet, sym: int, cap: int) -> None:
    bid_p, bid_q = book.levels(sym, 0)
    ask_p, ask_q = book.levels(sym, 1)
    for name, p, q, sign in (("bids", bid_p, bid_q, -1), ("asks", ask_p, ask_q, 1)):
        assert len(p) <= cap, f"{name}: {len(p)} levels over max_levels {cap}"
        assert (q > 0).all(), f"{name}: a held level with qty <= 0: {q}"
        assert (np.diff(p) * sign > 0).all(), f"{name} not strictly ordered best first: {p}"
    bb, bq, ba, aq = book.best_fp(sym)
    assert (bb, bq) == ((int(bid_p[0]), int(bid_q[0])) if len(bid_p) else (None, None))
    assert (ba, aq) == ((int(ask_p[0]), int(ask_q[0])) if len(ask_p) else (None, None))
    # an event part-applied (its last row still to come) is checked when it ends
    if (
        book.state(sym) == BookState.VALID
        and len(bid_p)
        and len(ask_p)
        and book.open_event() != sym
    ):
        assert bid_p[0] < ask_p[0], f"VALID book crossed: bid {bid_p[0]} >= ask {ask_p[0]}"
    for k, v in book.stats(sym).items():
        assert not isinstance(v, int) or v >= 0, f"counter {k} = {v}"


def one_input(data: bytes) -> None:
    r = Reader(data)
    h = r.u8()
    cap = CAPS[h & 3]
    book = BookSet(
        "usdm" if h & 0x80 else "spot",
        max_levels=cap,
        buffer_rows=256,
        max_symbols=4,
        tops_capacity=64,
        events_capacity=64,
        resync_on_stale=bool(h & 4),
    )
    per_op = bool(h & 8)
    last_u = {1: 100, 2: 100}
    batch = []

    def flush():
        if batch:
            rows = np.concatenate(batch) if len(batch) > 1 else batch[0]
            batch.clear()
            book.apply_depth_rows(rows)

    ops = 0
    while r.left() and ops < 400:
        ops += 1
        op = r.u8()
        sym = 2 if op & 0x80 else 1
        kind = op & 7
        if kind == 0:
            flush()
            lid = min(r.varint(), ID_MAX)
            lv = _levels(r, r.u8() & 0x3F)
            bids = np.ascontiguousarray(lv[lv[:, 0] == 0, 1:])
            asks = np.ascontiguousarray(lv[lv[:, 0] == 1, 1:])
            try:
                book.apply_snapshot(sym, lid, bids, asks)
            except ValueError:
                pass  # a malformed snapshot (qty 0, duplicate prices) is refused by name
        elif kind in (1, 5, 6):
            # ids stay inside int64 (the rows' type) however the varints add up
            U = min(max(0, last_u[sym] + r.varint() - 1000), ID_MAX)
            u = min(U + (r.varint() & 0xFFFF), ID_MAX)
            m = r.u8()
            pu = last_u[sym] if m & 1 else last_u[sym] + (m >> 1) - 64
            lv = _levels(r, r.u8() & 0x3F)
            bad = 1 + (r.u8() & 3) if kind == 6 and len(lv) else 0
            batch.append(_rows(sym, U, u, pu, lv, bad))
            last_u[sym] = u
            if per_op:
                flush()
        elif kind == 2:
            flush()
            if sym in book.symbols():  # an untracked symbol is a KeyError by design
                book.reset(sym)
        elif kind == 3:
            flush()
            book.take_snapshot_requests()
        elif kind == 4:
            flush()
            if sym in book.symbols():
                book.untrack(sym)
            book.track(sym)
        else:
            flush()
        if not batch:
            for s in book.symbols():
                check(book, s, cap)
    flush()
    for s in book.symbols():
        check(book, s, cap)
    # the rings stay readable to the end
    book.tops.tail(min(book.tops.written, 64))
    book.events.tail(min(book.events.written, 64))


if __name__ == "__main__":
    run(one_input)
