"""Type stub for the Cython module fastfeed.feed._filter."""

from collections.abc import Callable
from typing import Any, Literal, final

import numpy as np
from typing_extensions import Self

from fastfeed.core._decoder import BinanceDecoder, _Buffer
from fastfeed.core._ring import Ring
from fastfeed.core._tap import FrameTap

EVENT_DTYPE: np.dtype
SLOT_NAMES: tuple[str, ...]
N_LATENCY_BUCKETS: int

def latency_bucket_bounds() -> list[int]: ...

@final  # a final cdef class: runtime refuses subclasses
class FeedSink:
    decoder: BinanceDecoder
    events: Ring
    event_unit_ns: int
    accepted_total: int
    unroutable: int
    dup_age_ns: int
    recorder: FrameTap | None
    # The constructor is Cython's __cinit__ (tp_new), so the stub names __new__.
    def __new__(cls, decoder: BinanceDecoder, events: int = 1024) -> Self: ...
    def add_hook(self, hook: Callable[[], Any]) -> None: ...
    def remove_hook(self, hook: Callable[[], Any]) -> None: ...
    def decode(
        self, dec: BinanceDecoder, payload: _Buffer, recv_ns: int = 0, conn: int = 0
    ) -> Literal["none", "accepted", "duplicate", "unroutable"]: ...
    def mark(
        self,
        reason: int,
        conn: int = 0,
        symbol: int = 0,
        slot: int = 255,
        expected: int = -1,
        got: int = -1,
    ) -> None: ...
    def flush(self) -> None: ...
    def last_ids(self, symbol: int) -> tuple[int, ...]: ...
    def last_recv_ns(self, symbol: int, slot: int) -> int: ...
    def latency_histogram(self) -> tuple[list[int], int]: ...
    def counters(self) -> dict[str, Any]: ...
