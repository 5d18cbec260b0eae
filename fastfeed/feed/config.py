"""The feed's settings as one object: :class:`FeedConfig`, checked when it is made.

``BinanceFeed(streams, endpoint=..., config=FeedConfig(...))``; the feed's keyword arguments
(``BinanceFeed(streams, ping_interval=5)``) are shortcuts that replace fields of the config.
A wrong value raises ``TypeError`` / ``ValueError`` naming the field and the value, at
construction, not 30 seconds later inside a retry loop.  The checks are also used by the order
book's :class:`~fastfeed.book.orderbook.BookConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

C = TypeVar("C")


def check_number(
    name: str,
    value: object,
    *,
    low: float = 0.0,
    strict: bool = True,
    integer: bool = False,
    optional: bool = False,
) -> None:
    """Raise if ``value`` is not a finite number ``> low`` (``>= low`` when not ``strict``);
    ``integer`` asks for an int, ``optional`` allows None.  The message names ``name``."""
    if value is None and optional:
        return
    kind = "an int" if integer else "a number"
    ok_type = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        none = " or None" if optional else ""
        raise TypeError(f"{name} must be {kind}{none}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or (value <= low if strict else value < low):
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be {rel} {low:g}, got {value!r}")


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def with_options(config: C, options: dict[str, Any], what: str) -> C:
    """``config`` with the keyword shortcuts in ``options`` replacing its fields (checked
    again); an unknown keyword raises ``TypeError`` listing the known ones."""
    if not options:
        return config
    names = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(
            f"{what} got unknown keyword argument(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(names))}"
        )
    return dataclasses.replace(config, **options)  # type: ignore[type-var]


@dataclass(frozen=True)
class FeedConfig:
    """Settings of a :class:`~fastfeed.BinanceFeed` (times in seconds).

    Connection: ``subscribe`` ("url": streams in the URL; "live": SUBSCRIBE after connect),
    ``time_unit`` ("ms" | "us": event times in micro- instead of milliseconds),
    ``connect_timeout`` (TCP + TLS + WebSocket upgrade), ``ack_timeout`` (reply to a
    SUBSCRIBE), ``start_timeout`` (how long entering the feed waits for every connection to
    be up while network errors are retried; None waits for ever; mistakes retrying cannot fix
    raise at once, see the README), ``control_rate`` (control messages per second; default 4
    spot, 8 USD-M), ``attempt_limit`` per ``attempt_window`` (connection attempts, the
    exchange's 300 per 5 min).

    Health: ``ping_interval`` / ``pong_timeout`` (client keepalive; the pong timeout is capped
    at the interval), ``stream_timeout`` (no data on a stream for this long reconnects;
    None: off), ``backoff_initial`` .. ``backoff_max`` (every retry loop's delays),
    ``max_lifetime`` (rotate to a new connection before the exchange's 24 h cut),
    ``rotation_timeout`` (how long a rotation may overlap).

    Memory: ``rcvbuf`` (SO_RCVBUF bytes), ``max_frame_size`` (bytes; larger frames are
    protocol errors), ``read_buffer`` (initial read buffer), ring capacities (rows, powers of
    two): ``trades``, ``depth``, ``tickers``, ``partial``, ``events``.
    """

    subscribe: Literal["url", "live"] = "url"
    time_unit: Literal["ms", "us"] = "ms"
    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    stream_timeout: float | None = 60.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_lifetime: float = 23.5 * 3600
    rotation_timeout: float = 30.0
    ack_timeout: float = 10.0
    start_timeout: float | None = 30.0
    connect_timeout: float = 10.0
    attempt_limit: int = 300
    attempt_window: float = 300.0
    control_rate: int | None = None
    max_streams_per_connection: int | None = None
    max_rate_per_connection: float | None = None
    redundancy: int = 1
    leg_urls: tuple[str, ...] = ()
    rcvbuf: int = 1 << 20
    max_frame_size: int = 1 << 20
    read_buffer: int = 1 << 16
    trades: int = 1 << 16
    depth: int = 1 << 17
    tickers: int = 1 << 16
    partial: int = 1 << 14
    events: int = 1 << 12

    def __post_init__(self) -> None:
        check_choice("subscribe", self.subscribe, ("url", "live"))
        check_choice("time_unit", self.time_unit, ("ms", "us"))
        for name in (
            "ping_interval",
            "pong_timeout",
            "backoff_initial",
            "max_lifetime",
            "rotation_timeout",
            "ack_timeout",
            "connect_timeout",
            "attempt_window",
        ):
            check_number(name, getattr(self, name))
        check_number("stream_timeout", self.stream_timeout, optional=True)
        check_number("start_timeout", self.start_timeout, optional=True)
        check_number("backoff_max", self.backoff_max, low=self.backoff_initial, strict=False)
        check_number("attempt_limit", self.attempt_limit, integer=True)
        check_number("control_rate", self.control_rate, integer=True, optional=True)
        check_number(
            "max_streams_per_connection",
            self.max_streams_per_connection,
            integer=True,
            optional=True,
        )
        check_number("max_rate_per_connection", self.max_rate_per_connection, optional=True)
        check_number("redundancy", self.redundancy, integer=True)
        if self.redundancy > 4:
            raise ValueError(
                f"redundancy must be 1..4 connections per shard, got {self.redundancy}"
            )
        if isinstance(self.leg_urls, str) or not isinstance(self.leg_urls, (tuple, list)):
            raise TypeError(f"leg_urls must be a tuple of wss:// base URLs, got {self.leg_urls!r}")
        object.__setattr__(self, "leg_urls", tuple(self.leg_urls))
        check_number("rcvbuf", self.rcvbuf, low=1024, strict=False, integer=True)
        check_number("max_frame_size", self.max_frame_size, low=1024, strict=False, integer=True)
        check_number("read_buffer", self.read_buffer, integer=True)
        for name in ("trades", "depth", "tickers", "partial", "events"):
            cap = getattr(self, name)
            check_number(name, cap, integer=True)
            if cap & (cap - 1):
                raise ValueError(f"{name} (ring capacity) must be a power of two, got {cap}")


__all__ = ["FeedConfig", "check_choice", "check_number", "with_options"]
