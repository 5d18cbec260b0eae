"""Type stub for the Cython module fastfeed.feed._listener."""

from collections.abc import Callable
from typing import Any

import numpy as np
from picows import WSListener, WSTransport

from fastfeed.core._decoder import BinanceDecoder
from fastfeed.core._ring import Ring
from fastfeed.record._tap import FrameTap

EVENT_DTYPE: np.dtype
SLOT_NAMES: tuple[str, ...]
N_LATENCY_BUCKETS: int

def latency_bucket_bounds() -> list[int]: ...

class FeedSink:
    decoder: BinanceDecoder
    events: Ring
    event_unit_ns: int
    pending: bool
    wake: Callable[[], Any] | None
    recorder: FrameTap | None
    def __init__(self, decoder: BinanceDecoder, events: int = 1024) -> None: ...
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
    def counters(self) -> dict: ...
    accepted_total: int
    unroutable: int

class FeedListener(WSListener):
    sink: FeedSink
    stage: BinanceDecoder
    conn_id: int
    transport: WSTransport | None
    frames: int
    messages: int
    bytes: int
    fragments: int
    duplicates: int
    last_msg_ns: int
    connected_ns: int
    close_code: int
    close_reason: str | None
    protocol_error: str | None
    on_connected: Callable[[FeedListener], Any] | None
    on_disconnected: Callable[[FeedListener], Any] | None
    active: bool
    def __init__(
        self, sink: FeedSink, stage: BinanceDecoder, conn_id: int = 0, max_message: int = 1 << 20
    ) -> None: ...
    def caught_up(self, symbol: int, slot: int) -> bool: ...
    def stats(self) -> dict: ...
