import logging
from collections.abc import Sequence
from enum import IntEnum
from typing import Literal, NamedTuple

import numpy as np

from fastfeed.core._ring import Ring

TOP_DTYPE: np.dtype
BOOK_EVENT_DTYPE: np.dtype
COUNTER_NAMES: tuple[str, ...]

class State(IntEnum):
    SYNCING = 0
    BRIDGING = 1
    VALID = 2

class Event(IntEnum):
    UPDATE = 0
    SYNCED = 1
    GAP = 2
    CROSSED = 3
    RESYNC = 4
    STALE = 5
    SNAPSHOT = 6
    SNAPSHOT_STALE = 7
    BUFFER_OVERFLOW = 8
    BAD_VALUE = 9
    LOST = 10
    NEW = 11
    RESET = 12
    DEPLETED = 13

class SnapshotResult(IntEnum):
    SYNCED = 0
    WAITING = 1
    TOO_OLD = 2
    IGNORED = 3
    FAILED = 4

class Top(NamedTuple):
    bid_price: np.ndarray
    bid_qty: np.ndarray
    ask_price: np.ndarray
    ask_qty: np.ndarray

Levels = Sequence[Sequence[str | bytes]] | np.ndarray

def to_fp(s: str | bytes) -> int: ...

class BookSet:
    market: str
    usdm: bool
    max_levels: int
    buffer_rows: int
    auto_track: bool
    resync_on_stale: bool
    tops: Ring
    events: Ring
    untracked_events: int
    malformed_events: int
    lost_rows: int
    def __init__(
        self,
        market: Literal["spot", "usdm", "coinm"] = "spot",
        max_levels: int = 5000,
        buffer_rows: int = 65536,
        max_symbols: int = 16384,
        tops_capacity: int = 65536,
        events_capacity: int = 4096,
        auto_track: bool = True,
        resync_on_stale: bool = False,
        logger: logging.Logger | str | None = None,
    ) -> None: ...
    # feeding
    def apply_depth_rows(self, rows: np.ndarray) -> None: ...
    def apply_depth_ring(self, ring: Ring, cursor: int) -> int: ...
    def apply_snapshot(
        self, symbol: int, last_update_id: int, bids: Levels, asks: Levels, limit: int | None = None
    ) -> SnapshotResult: ...
    # driving the synchronisation
    def take_snapshot_requests(self, limit: int | None = None) -> list[int]: ...
    def request_snapshot(self, symbol: int) -> None: ...
    def needs_snapshot(self) -> list[int]: ...
    def track(self, symbol: int) -> None: ...
    def untrack(self, symbol: int) -> None: ...
    def set_scale(self, symbol: int, tick_fp: int = 1, lot_fp: int = 1) -> None: ...
    def reset(self, symbol: int | None = None) -> None: ...
    # queries
    def symbols(self) -> list[int]: ...
    def state(self, symbol: int) -> State: ...
    def is_valid(self, symbol: int) -> bool: ...
    def last_update_id(self, symbol: int) -> int: ...
    def first_buffered_id(self, symbol: int) -> int: ...
    def buffered_events(self, symbol: int) -> int: ...
    def last_reason(self, symbol: int) -> Event: ...
    def stats(self, symbol: int | None = None) -> dict[str, int | str]: ...
    def best(self, symbol: int) -> tuple[float, float, float, float]: ...
    def best_fp(self, symbol: int) -> tuple[int | None, int | None, int | None, int | None]: ...
    def top(self, symbol: int, n: int = 10) -> Top: ...
    def top_fp(self, symbol: int, n: int = 10) -> Top: ...
    def levels(self, symbol: int, side: Literal[0, 1]) -> tuple[np.ndarray, np.ndarray]: ...
    def bounds(self, symbol: int) -> tuple[float | None, float | None]: ...
    def bounds_fp(self, symbol: int) -> tuple[int | None, int | None]: ...
