"""A reader process of tests/test_share.py: attaches to a served feed, reads every ring until
the writer closes the segment, and writes what it got as JSON (per ring: rows received, rows
lost, the final cursor, and a SHA-256 of the received rows' bytes in order).

    python tests/share_reader.py NAME MODE OUT      MODE: sleep | spin | poll | stall | into

``into`` reads with the allocation-free calls: ``wait_into`` on trades (spinning, then
sleeping), ``read_into`` on every other ring.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import numpy as np

import fastfeed
from fastfeed.share import StaleSegment


def main() -> None:
    name, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]
    feed = fastfeed.attach(name, timeout=30)
    readers = {n: r.reader("oldest") for n, r in feed.rings.items()}
    hashes = {n: hashlib.sha256() for n in readers}
    bufs = {n: np.zeros(7, r.dtype) for n, r in feed.rings.items()}  # 7: reads in pieces
    print("attached", flush=True)
    said = False
    done: dict[str, str] = {}
    while len(done) < len(readers):
        for n, rd in readers.items():
            if n in done:
                continue
            try:
                if mode == "into":
                    buf = bufs[n]
                    k = rd.wait_into(buf, 0.05, 0.01) if n == "trades" else rd.read_into(buf)
                    while k:
                        hashes[n].update(buf[:k].tobytes())
                        k = rd.read_into(buf)
                else:
                    rows = rd.read()
                    if len(rows):
                        hashes[n].update(rows.tobytes())
            except StaleSegment as e:  # raised only once nothing is left to read
                done[n] = str(e)
                continue
        if not said and any(rd.received for rd in readers.values()):
            print("reading", flush=True)
            said = True
        try:
            if mode == "sleep":
                feed.wait(timeout=1.0)
            elif mode == "spin":
                feed.wait(timeout=1.0, spin=0.01)
            elif mode == "stall":
                time.sleep(0.2)
            else:  # poll: naps of 0.5 ms, never woken by the writer
                feed.wait(timeout=1.0, poll=0.0005)
        except StaleSegment:
            pass
    result: dict = {
        n: {
            "received": rd.received,
            "lost": rd.lost,
            "cursor": rd.cursor,
            "sha256": hashes[n].hexdigest(),
        }
        for n, rd in readers.items()
    }
    result["_generation"] = feed.generation
    result["_error"] = next(iter(done.values()))
    result["_symbols"] = feed.symbols
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
