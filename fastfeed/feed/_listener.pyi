"""Type stub for the Cython module fastfeed.feed._listener."""

import asyncio
from collections.abc import Callable
from typing import Any

from picows import WSListener, WSTransport
from typing_extensions import Self, disjoint_base

from fastfeed.core._decoder import BinanceDecoder
from fastfeed.feed._filter import FeedSink

@disjoint_base  # a cdef class: a C layout of its own
class FeedListener(WSListener):
    sink: FeedSink
    decoder: BinanceDecoder
    conn_id: int
    transport: WSTransport | None
    frames: int
    messages: int
    bytes: int
    fragments: int
    duplicates: int
    late: int
    late_ns: int
    last_msg_ns: int
    connected_ns: int
    close_code: int
    close_reason: str | None
    protocol_error: str | None
    on_connected: Callable[[FeedListener], Any] | None
    on_disconnected: Callable[[FeedListener], Any] | None
    active: bool
    # a future of the session's liveness probe: resolved (None) when a read or control frame
    # ends, then cleared; the probe waits on it instead of polling
    heard: asyncio.Future[None] | None
    @property
    def batch_start(self) -> int: ...  # the clock read of the socket read in progress, or 0
    # The constructor is Cython's __cinit__ (tp_new), so the stub names __new__.
    def __new__(
        cls, sink: FeedSink, decoder: BinanceDecoder, conn_id: int = 0, max_message: int = 1 << 20
    ) -> Self: ...
    last_ctrl_ns: int
    read_gap_ns: int
    def send_probe(self) -> None: ...
    def caught_up(self, symbol: int, slot: int) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
