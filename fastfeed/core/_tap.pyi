"""Type stub for the Cython module fastfeed.core._tap."""

import builtins
from collections.abc import Callable
from typing import Any

from typing_extensions import Self, disjoint_base

@disjoint_base  # a cdef class: a C layout of its own
class FrameTap:
    records: int
    frames: int
    bytes: int
    dropped: int
    dropped_bytes: int
    handoff_errors: int
    on_full: Callable[[], Any] | None
    capacity: int
    pending_bytes: int
    # The constructor is Cython's __cinit__ (tp_new), so the stub names __new__.
    def __new__(cls, capacity: int = ..., handoff: int = ...) -> Self: ...
    def put_record(self, kind: int, conn: int, recv_ns: int, data: builtins.bytes) -> bool: ...
    def add_event(
        self, reason: int, conn: int, symbol: int, slot: int, expected: int, got: int, recv_ns: int
    ) -> None: ...
    def add_frame(self, conn: int, data: builtins.bytes, recv_ns: int) -> None: ...
    def take(self) -> tuple[bytearray, int, int, int, int] | None: ...
    def give_back(self, buffer: bytearray, keep: int = 4) -> None: ...
    def stats(self) -> dict[str, Any]: ...
