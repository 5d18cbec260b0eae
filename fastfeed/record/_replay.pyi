"""Type stub for the Cython module fastfeed.record._replay."""

from typing_extensions import Self, disjoint_base

from fastfeed.feed._filter import FeedSink
from fastfeed.feed._listener import FeedListener

END: int
OTHER: int
UNKNOWN_CONN: int
LIMIT: int
UNTIL: int
MALFORMED: int

@disjoint_base  # a cdef class: a C layout of its own
class Player:
    sink: FeedSink
    frames: int
    # The constructor is Cython's __cinit__ (tp_new), so the stub names __new__.
    def __new__(cls, sink: FeedSink) -> Self: ...
    def add_listener(self, lis: FeedListener) -> None: ...
    def listener(self, conn: int) -> FeedListener | None: ...
    def mark(
        self, reason: int, conn: int, symbol: int, slot: int, expected: int, got: int, recv_ns: int
    ) -> None: ...
    def play(
        self, raw: bytes, pos: int, max_frames: int = -1, until_ns: int = 0
    ) -> tuple[int, int, int]: ...
