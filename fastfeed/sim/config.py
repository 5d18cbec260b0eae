"""Simulator configuration and its command-line form (reusable by other subcommands)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields

from fastfeed.feed.endpoint import Market as MarketName

from .market import SPOT, USDM


@dataclass
class SimConfig:
    """Every knob of the simulator.  ``None`` means "the exchange's value for this market".

    Exchange rules: ``ping_interval`` (spot 20 s, USD-M 180 s), ``pong_timeout`` (60 s / 600 s),
    ``control_limit`` incoming control frames per ``control_window`` seconds (5 / 10),
    ``max_streams`` per connection (1024 / 200), ``max_url`` characters of a request target
    (8004), ``attempt_limit`` connection attempts per
    ``attempt_window`` seconds (300 per 300 s), ``lifetime`` of a connection (24 h) with a
    ``serverShutdown`` event ``shutdown_notice`` seconds before it, REST ``weight_limit`` per
    ``weight_window`` (6000 / 2400 per 60 s), 418 after ``ban_after`` requests made while
    limited, for ``ban_seconds``.

    Market: ``rate`` actions per second per symbol (on average: ``activity`` > 0 spreads
    them over the symbols by a Zipf law of that exponent, a few busy books and many quiet
    ones), ``levels`` per side, ``interval_scale``
    multiplies the depth push intervals, ``clock="manual"`` stops the market from running on
    its own (tests call :meth:`ExchangeSimulator.advance`).
    """

    host: str = "127.0.0.1"
    port: int = 0
    rest_port: int = 0
    symbols: tuple = ("BTCUSDT", "ETHUSDT")
    market: MarketName = SPOT
    seed: int = 0
    rate: float = 50.0
    activity: float = 0.0
    levels: int = 200
    history: int = 200_000
    interval_scale: float = 1.0
    clock: str = "wall"
    tick: float = 0.005
    ping_interval: float | None = None
    pong_timeout: float | None = None
    control_limit: int | None = None
    control_window: float = 1.0
    max_streams: int | None = None
    max_url: int = 8004
    attempt_limit: int = 300
    attempt_window: float = 300.0
    lifetime: float = 86400.0
    shutdown_notice: float = 10.0
    lifetime_close_code: int = 1001
    error_shape: str = "flat"
    record: int = 0
    max_frame_size: int = 1 << 20
    weight_limit: int | None = None
    weight_window: float = 60.0
    ban_after: int = 5
    ban_seconds: float = 120.0
    blast: int = 0
    paced: float = 0.0
    paced_count: int = 0
    paced_fine: bool = False
    faults: list = field(default_factory=list)

    def resolved(self) -> ResolvedConfig:
        """A copy with every ``None`` replaced by the market's exchange value."""
        spot = self.market == SPOT
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(
            symbols=tuple(s.upper() for s in self.symbols),
            ping_interval=self.ping_interval
            if self.ping_interval is not None
            else (20.0 if spot else 180.0),
            pong_timeout=self.pong_timeout
            if self.pong_timeout is not None
            else (60.0 if spot else 600.0),
            control_limit=self.control_limit
            if self.control_limit is not None
            else (5 if spot else 10),
            max_streams=self.max_streams
            if self.max_streams is not None
            else (1024 if spot else 200),
            weight_limit=self.weight_limit
            if self.weight_limit is not None
            else (6000 if spot else 2400),
        )
        return ResolvedConfig(**values)


@dataclass
class ResolvedConfig(SimConfig):
    """A :class:`SimConfig` whose exchange rules are all set: what a running simulator uses.

    Made by :meth:`SimConfig.resolved` (the zeros below are never used).
    """

    ping_interval: float = 0.0
    pong_timeout: float = 0.0
    control_limit: int = 0
    max_streams: int = 0
    weight_limit: int = 0


_FAULT_HELP = (
    "scheduled fault AT:NAME[=VALUE] (repeatable), AT seconds after start. NAME is one of: "
    "reset, close=CODE, ignore_pings, mute, unmute, gap, duplicate, stale, stale_snapshot, "
    "malformed, fragment=COUNT, oversize=BYTES, handshake=STATUS, untrusted_cert, trusted_cert, "
    "slow=SECONDS, lifetime=SECONDS. Example: --fault 5:reset --fault 0:slow=0.05"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``p`` (used by ``fastfeed sim``; reusable by others)."""
    d = SimConfig()
    g = p.add_argument_group("simulator")
    g.add_argument("--host", default=d.host)
    g.add_argument("--port", type=int, default=d.port, help="WebSocket port (0: a free port)")
    g.add_argument("--rest-port", type=int, default=d.rest_port, help="REST port (0: a free port)")
    g.add_argument(
        "--symbols", default=",".join(d.symbols), help="comma-separated, e.g. BTCUSDT,ETHUSDT"
    )
    g.add_argument("--market", choices=(SPOT, USDM), default=d.market)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument(
        "--rate", type=float, default=d.rate, help="market actions per second per symbol"
    )
    g.add_argument(
        "--activity",
        type=float,
        default=d.activity,
        help="Zipf exponent of the symbols' activity (0: every symbol at --rate)",
    )
    g.add_argument("--levels", type=int, default=d.levels, help="book levels per side")
    g.add_argument(
        "--interval-scale",
        type=float,
        default=d.interval_scale,
        help="multiply depth push intervals (0.1: @depth@100ms every 10 ms)",
    )
    g.add_argument("--ping-interval", type=float, default=None, help="server ping period, s")
    g.add_argument("--pong-timeout", type=float, default=None, help="drop after no pong for, s")
    g.add_argument(
        "--control-limit", type=int, default=None, help="incoming control frames per second"
    )
    g.add_argument("--max-streams", type=int, default=None)
    g.add_argument("--max-url", type=int, default=d.max_url, help="longest request target")
    g.add_argument("--attempt-limit", type=int, default=d.attempt_limit)
    g.add_argument("--attempt-window", type=float, default=d.attempt_window)
    g.add_argument("--lifetime", type=float, default=d.lifetime, help="connection lifetime, s")
    g.add_argument("--shutdown-notice", type=float, default=d.shutdown_notice)
    g.add_argument("--weight-limit", type=int, default=None, help="REST weight per window")
    g.add_argument("--weight-window", type=float, default=d.weight_window)
    g.add_argument("--error-shape", choices=("flat", "nested"), default=d.error_shape)
    g.add_argument(
        "--blast",
        type=int,
        default=0,
        metavar="N",
        help="send N pre-encoded aggTrade+depthUpdate frames to each new connection",
    )
    g.add_argument(
        "--paced",
        type=float,
        default=0.0,
        metavar="RATE",
        help="send stamped messages at RATE/s to each new connection",
    )
    g.add_argument("--paced-count", type=int, default=0, help="messages per paced run (0: forever)")
    g.add_argument(
        "--paced-fine",
        action="store_true",
        help="paced: each message at its own time, one per loop turn (spins a core at high rates)",
    )
    g.add_argument(
        "--fault",
        action="append",
        default=[],
        type=parse_fault,
        metavar="AT:NAME[=VALUE]",
        help=_FAULT_HELP,
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Build a :class:`SimConfig` from options added by :func:`add_arguments`."""
    names = {f.name for f in fields(SimConfig)}
    kw = {k: v for k, v in vars(args).items() if k in names}
    kw["symbols"] = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    kw["faults"] = [f if isinstance(f, tuple) else parse_fault(f) for f in args.fault]
    return SimConfig(**kw)


def parse_fault(spec: str) -> tuple[float, str, str | None]:
    """``"5:close=1011"`` -> ``(5.0, "close", "1011")``."""
    at, sep, rest = spec.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"fault {spec!r}: expected AT:NAME[=VALUE]")
    name, _, value = rest.partition("=")
    from .faults import Faults

    if name.strip() not in Faults.NAMES:
        raise argparse.ArgumentTypeError(
            f"fault {spec!r}: unknown name; known: {', '.join(Faults.NAMES)}"
        )
    return float(at), name.strip(), (value or None)
