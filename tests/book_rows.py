"""Depth rows for book tests, built from JSON with the stdlib only (independent of the decoder).

``event_rows`` turns one depthUpdate payload (dict) into ``DEPTH_DTYPE`` rows exactly as the
decoder is specified to write them: one row per level, bids then asks, ``side = -1`` for an
event without levels, the last row flagged.  Values go through ``decimal``: the exact
fixed-point int (scale 1e8) and ``float()`` of the string.
"""

import json
from decimal import Decimal

import numpy as np

from fastfeed.core._rows import DEPTH_DTYPE

FP = 10**8
LAST = 1


def fp(s) -> int:
    """Exact fixed-point value of a decimal string (fails loudly if not exact)."""
    d = Decimal(s) * FP
    if d != d.to_integral_value():
        raise ValueError(f"{s!r} not exact at 1e-8")
    return int(d)


def event_rows(ev: dict, symbol: int = 1, recv_ns: int = 0) -> np.ndarray:
    """Rows of one depthUpdate payload (dict with U, u, optional pu/T/E, b, a)."""
    levels = [(0, p, q) for p, q in ev.get("b", ())] + [(1, p, q) for p, q in ev.get("a", ())]
    n = max(len(levels), 1)
    rows = np.zeros(n, dtype=DEPTH_DTYPE)
    rows["recv_ns"] = recv_ns
    rows["event_time"] = ev.get("E", -1)
    rows["transact_time"] = ev.get("T", -1)
    rows["first_id"] = ev["U"]
    rows["last_id"] = ev["u"]
    rows["prev_last_id"] = ev.get("pu", -1)
    rows["symbol"] = symbol
    if levels:
        rows["side"] = [s for s, _, _ in levels]
        rows["price"] = [float(p) for _, p, _ in levels]
        rows["qty"] = [float(q) for _, _, q in levels]
        rows["price_fp"] = [fp(p) for _, p, _ in levels]
        rows["qty_fp"] = [fp(q) for _, _, q in levels]
    else:
        rows["side"] = -1
    rows["flags"][-1] = LAST
    return rows


def concat(parts) -> np.ndarray:
    """Concatenate row arrays keeping DEPTH_DTYPE (np.concatenate would drop its padding)."""
    parts = list(parts)
    out = np.zeros(sum(len(p) for p in parts), dtype=DEPTH_DTYPE)
    i = 0
    for p in parts:
        out[i : i + len(p)] = p
        i += len(p)
    return out


def ev(U, u, pu=-1, bids=(), asks=(), E=0):
    """A synthetic depthUpdate dict; prices and quantities as strings or numbers."""
    return {
        "E": E,
        "U": U,
        "u": u,
        "pu": pu,
        "b": [[str(p), str(q)] for p, q in bids],
        "a": [[str(p), str(q)] for p, q in asks],
    }


def load_sequence(corpus, market: str):
    """(snapshot dict, list of depthUpdate dicts) of sequences/<market>_BTCUSDT_20240808."""
    base = corpus / "sequences" / f"{market}_BTCUSDT_20240808"
    snap = json.loads(base.with_name(base.name + "_snapshot.json").read_text())
    with open(base.with_name(base.name + "_depthUpdate.jsonl"), "rb") as f:
        lines = [line.rstrip(b"\n") for line in f if line.strip()]
    return snap, lines


class RefBook:
    """Plain-Python L2 book: dicts keyed by exact fixed-point ints (parsed with Decimal),
    sorted on demand; Binance's local order book rules in their textbook form (asserting the corpus chain
    is gapless)."""

    def __init__(self, usdm, snap):
        self.usdm = usdm
        self.lid = snap["lastUpdateId"]
        self.prev_u = None
        self.sides = [{}, {}]
        for side, key in ((0, "bids"), (1, "asks")):
            for p, q in snap[key]:
                if fp(q):
                    self.sides[side][fp(p)] = fp(q)

    def apply(self, ev):
        """Apply one diff; False if the snapshot already covers it."""
        U, u, lid = ev["U"], ev["u"], self.lid
        if self.prev_u is None:
            if self.usdm:
                if u < lid:
                    return False
                assert U <= lid <= u
            else:
                if u <= lid:
                    return False
                assert U <= lid + 1 <= u
        elif self.usdm:
            assert ev["pu"] == self.prev_u
        else:
            assert self.prev_u + 1 == U
        for side, key in ((0, "b"), (1, "a")):
            book = self.sides[side]
            for p, q in ev[key]:
                p, q = fp(p), fp(q)
                if q:
                    book[p] = q
                else:
                    book.pop(p, None)
        self.prev_u = u
        return True

    def levels(self, side):
        items = sorted(self.sides[side].items(), reverse=(side == 0))
        return (
            np.array([p for p, _ in items], dtype=np.int64).reshape(-1),
            np.array([q for _, q in items], dtype=np.int64).reshape(-1),
        )

    def best(self):
        out = []
        for side in (0, 1):
            book = self.sides[side]
            p = max(book) if side == 0 else min(book)
            out += [p, book[p]]
        return tuple(out)
