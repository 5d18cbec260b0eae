"""Fuzz harness: the feed listener's frame handling (``FeedListener.on_ws_frame``: fragment
reassembly, decoding in place, the id filter across two connections sharing one sink).

Frames are real picows ``WSFrame`` objects made by picows's own ``_make_test_ws_frame`` and
handed to the listener's ``on_ws_frame`` without a socket, with no transport (the listener
then records a protocol error without sending a close).  CLOSE and PING frames need a
transport and are not generated: their handling is two calls into picows.

Input: a sequence of frames, each ``header (1 byte) | varint length | payload``; header bits
0-1 the type (TEXT, BINARY, CONTINUATION, TEXT), bit 2 the connection (0 or 1: the two
overlapping connections of a rotation), bit 3 set for ``fin = 0``; bit 4 deactivates the
connection before the frame (a connection being retired).

After every frame: per (symbol, kind) the ids the rings received rise strictly (the filter
never delivers a duplicate, a stale id or a rolled-back row); ``accepted_total`` equals the
sum of ``accepted``; every counter is >= 0; a fragmented message over ``max_message`` or a
broken fragment sequence leaves a protocol error named.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Reader, instrumented, run
from picows import WSMsgType
from picows.picows import _make_test_ws_frame

with instrumented():
    from fastfeed import BinanceDecoder, EventReason
    from fastfeed.feed._filter import FeedSink
    from fastfeed.feed._listener import FeedListener

TYPES = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.TEXT)
MAX_MESSAGE = 2048
CAPS = dict(trades=1024, depth=1024, tickers=1024, partial=1024, max_symbols=256, max_levels=1024)


class Delivered:
    """The ids each ring delivered, read back from the rings after every frame."""

    def __init__(self, dec: BinanceDecoder):
        self.dec = dec
        self.cursors = dict.fromkeys(("trades", "depth", "tickers", "partial"), 0)
        self.last: dict = {}

    def check(self) -> None:
        for name, cur in self.cursors.items():
            ring = getattr(self.dec, name)
            rows, self.cursors[name], lost = ring.read(cur)
            assert lost == 0, f"{name}: {lost} rows lost in a ring sized for the input"
            if name == "trades":
                keys = zip(rows["symbol"], rows["is_agg"], rows["trade_id"], rows["trade_id"])
            elif name == "tickers":
                keys = zip(rows["symbol"], [0] * len(rows), rows["update_id"], rows["update_id"])
            else:
                # one message spans several rows: ids repeat within it and rise across them
                keys = zip(rows["symbol"], [0] * len(rows), rows["last_id"], rows["flags"])
            prev_flag_last = True
            for sym, sub, ident, extra in keys:
                k = (name, int(sym), int(sub))
                ident = int(ident)
                if name in ("depth", "partial"):
                    if prev_flag_last:  # first row of a message
                        assert ident > self.last.get(k, -(2**63)), (
                            f"{name} symbol {sym}: id {ident} after {self.last.get(k)}"
                        )
                    else:
                        assert ident == self.last[k], f"{name}: ids differ within a message"
                    prev_flag_last = bool(int(extra) & 1)
                else:
                    assert ident > self.last.get(k, -(2**63)), (
                        f"{name} symbol {sym}: id {ident} delivered after {self.last.get(k)}"
                    )
                self.last[k] = ident


class FragModel:
    """The fragment rules of RFC 6455 as the listener applies them, kept independently:
    predicts which frames are protocol errors."""

    def __init__(self):
        self.open, self.size = False, 0

    def frame(self, kind, n: int, fin: bool) -> bool:
        """Advances the model; True when the frame must be a protocol error."""
        if kind != WSMsgType.CONTINUATION:
            if self.open:
                return True
            if n > MAX_MESSAGE:  # a whole message, or the first fragment, over the bound
                return True
            if not fin:
                self.open, self.size = True, n
            return False
        if not self.open:
            return True
        if self.size + n > MAX_MESSAGE:
            self.open = False
            return True
        self.size += n
        if fin:
            self.open = False
        return False


def protocol_marks(sink, cursor: int):
    rows, cursor, _ = sink.events.read(cursor)
    return int((rows["reason"] == EventReason.PROTOCOL).sum()), cursor


def one_input(data: bytes) -> None:
    r = Reader(data)
    sink = FeedSink(BinanceDecoder(**CAPS), 4096)
    # each connection's decoder shares the sink's rings and symbol table, as in the feed
    listeners = [
        FeedListener(
            sink,
            BinanceDecoder(max_levels=CAPS["max_levels"], share=sink.decoder),
            cid,
            MAX_MESSAGE,
        )
        for cid in (1, 2)
    ]
    models = [FragModel(), FragModel()]
    failed = [False, False]  # a connection names its first protocol error only (the cause)
    seen = Delivered(sink.decoder)
    ev_cursor = 0
    frames = 0
    while r.left() and frames < 200:
        frames += 1
        h = r.u8()
        payload = r.take(r.varint() & 0xFFF)
        i = h >> 2 & 1
        lis = listeners[i]
        if h & 0x10:
            lis.active = False
        kind, fin = TYPES[h & 3], not h & 8
        frame = _make_test_ws_frame(kind, payload, fin, False)
        expect_error = models[i].frame(kind, len(payload), fin) and not failed[i]
        failed[i] = failed[i] or expect_error
        n_before = lis.frames
        lis.on_ws_frame(None, frame)
        assert lis.frames == n_before + 1
        marks, ev_cursor = protocol_marks(sink, ev_cursor)
        assert marks == int(expect_error), (
            f"frame {frames} ({kind.name}, fin={fin}, {len(payload)} B): "
            f"{marks} protocol error(s), expected {int(expect_error)}"
        )
        seen.check()
        c = sink.counters()
        assert sink.accepted_total == sum(c["accepted"].values()), c
        for group in ("accepted", "duplicates", "gaps"):
            assert all(v >= 0 for v in c[group].values()), c


if __name__ == "__main__":
    run(one_input)
