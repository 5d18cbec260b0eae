"""The recording tap allocates no Python object per message: the live message path (replayed
here through the same listener code) with a recorder attached keeps the allocated block count
flat over thousands of messages."""

import sys

from test_record_files import corpus_frames, write_recording

from fastfeed.core._tap import FrameTap
from fastfeed.record import Recording, Replay


def test_tap_on_the_message_path_allocates_nothing_per_message(tmp_path):
    frames = [p for p in corpus_frames() if b"aggTrade" in p or b"depthUpdate" in p]
    write_recording(tmp_path / "rec", frames, chunk_bytes=4 << 20)
    chunks = [c.raw for c in Recording(tmp_path / "rec").chunks()]
    big = max(chunks, key=len)
    rp = Replay(tmp_path / "rec")
    tap = FrameTap(64 << 20)  # room for everything: no hand-off during the measurement
    rp.sink.recorder = tap
    rp.play_chunk(big)  # warm-up: listeners, symbols, caches
    n0, r0 = sys.getallocatedblocks(), tap.frames
    for _ in range(3):
        rp.play_chunk(big)
    grown = sys.getallocatedblocks() - n0
    recorded = tap.frames - r0
    assert recorded >= 3 * 1000
    assert grown < 50, f"{grown} blocks over {recorded} recorded messages"
    assert tap.dropped == 0
