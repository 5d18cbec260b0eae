import enum
from collections import deque
from collections.abc import Callable
from typing import Any

from fastfeed.core._ring import Ring

SIMD: str  # "sse2" or "portable": the digit kernels this build uses

class Kind(enum.IntEnum):
    TRADE = 0
    DEPTH = 1
    TICKER = 2
    PARTIAL = 3
    CONTROL = 4
    UNKNOWN = 5
    ERROR = 6

class Reject(enum.IntEnum):
    TRUNCATED = 1
    SYNTAX = 2
    BAD_UTF8 = 3
    TOO_DEEP = 4
    BAD_NUMBER = 5
    MISSING_FIELD = 6
    WRONG_TYPE = 7
    TOO_MANY_LEVELS = 8
    TOO_MANY_SYMBOLS = 9
    TOO_LONG = 10

class SymbolTable:
    def __init__(self, max_symbols: int = 16384) -> None: ...
    def name(self, i: int) -> str: ...
    def id(self, name: str | bytes) -> int: ...
    def names(self) -> list[str]: ...
    def __len__(self) -> int: ...

Buffer = bytes | bytearray | memoryview

class BinanceDecoder:
    trades: Ring
    depth: Ring
    tickers: Ring
    partial: Ring
    symbols: SymbolTable
    default_symbol: int
    on_control: Callable[[Any], None] | None
    control_messages: deque
    shutdown_count: int
    last_shutdown_time: int
    control_dropped: int
    slow_count: int
    def __init__(
        self,
        trades: int = 65536,
        depth: int = 131072,
        tickers: int = 65536,
        partial: int = 16384,
        max_levels: int = 5000,
        max_symbols: int = 16384,
        control_maxlen: int = 256,
        default_symbol: str | None = None,
        share: BinanceDecoder | None = None,
    ) -> None: ...
    def decode(self, payload: Buffer, recv_ns: int = 0) -> Kind: ...
    def decode_lines(self, buffer: Buffer, recv_ns: int = 0) -> int: ...
    def set_default_symbol(self, name: str) -> None: ...
    def symbol(self, i: int) -> str: ...
    def symbol_id(self, name: str | bytes) -> int: ...
    @property
    def counts(self) -> dict[Kind, int]: ...
    @property
    def bytes_by_kind(self) -> dict[Kind, int]: ...
    @property
    def errors(self) -> dict[Reject, int]: ...
    @property
    def inexact_fixed_point(self) -> int: ...
    def recent_rejected(self) -> list[tuple[Reject, bytes, int]]: ...
    def recent_unknown(self) -> list[tuple[None, bytes, int]]: ...
    def stats(self) -> dict[str, Any]: ...
