from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, final

from typing_extensions import Self

from fastfeed.core._codes import Kind as Kind
from fastfeed.core._codes import Reject as Reject
from fastfeed.core._ring import Ring
from fastfeed.core._rows import DEPTH_DTYPE as DEPTH_DTYPE
from fastfeed.core._rows import PARTIAL_DTYPE as PARTIAL_DTYPE
from fastfeed.core._rows import TICKER_DTYPE as TICKER_DTYPE
from fastfeed.core._rows import TRADE_DTYPE as TRADE_DTYPE

SIMD: str  # "sse2" or "portable": the digit kernels this build uses

def parse_decimal(s: str | bytes) -> tuple[float, int]: ...

@final  # a final cdef class: runtime refuses subclasses
class SymbolTable:
    # The constructor is Cython's __cinit__ (tp_new), so the stub names __new__.
    def __new__(cls, max_symbols: int = 16384) -> Self: ...
    def name(self, i: int) -> str: ...
    def find(self, name: str | bytes) -> int | None: ...
    def id(self, name: str | bytes) -> int: ...
    def names(self) -> list[str]: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> str: ...
    def __iter__(self) -> Iterator[str]: ...
    def __contains__(self, name: object) -> bool: ...

# what decode() reads; private so stubtest does not look for it at runtime
_Buffer = bytes | bytearray | memoryview

@final  # a final cdef class: runtime refuses subclasses
class BinanceDecoder:
    trades: Ring
    depth: Ring
    tickers: Ring
    partial: Ring
    symbols: SymbolTable
    default_symbol: int
    on_control: Callable[[Any], None] | None
    on_shutdown: Callable[[int], None] | None
    control_messages: deque[Any]
    shutdown_count: int
    last_shutdown_time: int
    control_dropped: int
    slow_count: int
    # The constructor is Cython's __cinit__ (tp_new), so the stub names __new__.
    def __new__(
        cls,
        trades: int = 65536,
        depth: int = 131072,
        tickers: int = 65536,
        partial: int = 16384,
        max_levels: int = 5000,
        max_symbols: int = 16384,
        control_maxlen: int = 256,
        default_symbol: str | None = None,
        share: BinanceDecoder | None = None,
    ) -> Self: ...
    def decode(self, payload: _Buffer, recv_ns: int = 0) -> Kind: ...
    def decode_lines(self, buffer: _Buffer, recv_ns: int = 0) -> int: ...
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
