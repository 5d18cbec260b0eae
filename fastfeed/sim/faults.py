"""Scriptable faults.  ``sim.faults.<name>(...)`` from tests; ``--fault AT:NAME[=VALUE]`` from
the command line (see :meth:`Faults.apply`).

``conn`` arguments accept a :class:`~fastfeed.sim.wsserver.SimConnection`, a connection id, or
``None`` for every open connection (and, where it makes sense, connections opened later).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # pragma: no cover
    from .rest import RestServer
    from .tls import SimTLS
    from .wsserver import SimConnection, WSServer

ConnRef = Union["SimConnection", int, None]


class Faults:
    """Fault injection for one simulator: acts on its WebSocket server, REST server and TLS
    certificates, which are handed in (the parts never reach back into the whole)."""

    def __init__(self, ws: WSServer, rest: RestServer, tls: SimTLS):
        self._ws = ws
        self._rest = rest
        self._tls = tls

    def _conns(self, conn: ConnRef) -> list:
        ws = self._ws
        if conn is None:
            return list(ws.connections.values())
        if isinstance(conn, int):
            c = ws.connections.get(conn)
            return [c] if c is not None else []
        return [conn]

    # ------------------------------------------------------------------ connection level
    def reset(self, conn: ConnRef = None) -> None:
        """Abort the TCP connection with a RST (no close frame)."""
        for c in self._conns(conn):
            c.reset()

    def close(self, code: int = 1000, reason: str = "", conn: ConnRef = None) -> None:
        """Send a close frame with ``code`` and ``reason``, then disconnect."""
        for c in self._conns(conn):
            c.close(code, reason)

    def ignore_pings(self, on: bool = True, conn: ConnRef = None) -> None:
        """Stop (or resume) answering the client's pings."""
        if conn is None:
            self._ws.ignore_pings = on
        for c in self._conns(conn):
            c.ignore_pings = on

    def mute(self, on: bool = True, conn: ConnRef = None) -> None:
        """Stop (or resume) sending market data; pings and control replies still work."""
        for c in self._conns(conn):
            c.muted = on

    def slow(self, delay: float, conn: ConnRef = None, jitter: float = 0.0) -> None:
        """Delay every data write by ``delay`` seconds plus a random ``0..jitter`` seconds per
        message (order kept, as on one TCP stream); ``slow(0)`` switches both off.  With
        ``conn``, one connection only: one leg of a redundant client."""
        if conn is None:
            self._ws.delay, self._ws.jitter = delay, jitter
        for c in self._conns(conn):
            c.delay, c.jitter = delay, jitter

    def fragment(self, count: int = 1, parts: int = 3, conn: ConnRef = None) -> None:
        """Split the next ``count`` data messages into ``parts`` frames (TEXT + CONTINUATION)."""
        for c in self._conns(conn):
            c.fragment_left, c.fragment_parts = count, max(2, parts)

    def malformed(self, payload: bytes | None = None, conn: ConnRef = None) -> None:
        """Send one text frame that is not valid JSON (default: a truncated aggTrade)."""
        data = (
            payload
            if payload is not None
            else b'{"e":"aggTrade","E":1700000000000,"s":"BTCUSDT","a":'
        )
        for c in self._conns(conn):
            c.send_data(data, "malformed")

    def oversize(self, size: int, conn: ConnRef = None) -> None:
        """Send one valid JSON text frame of exactly ``size`` bytes (an unknown event type)."""
        head = b'{"e":"oversize","E":0,"pad":"'
        pad = max(0, size - len(head) - 2)
        data = head + b"x" * pad + b'"}'
        for c in self._conns(conn):
            c.send_data(data, "oversize")

    # ------------------------------------------------------------------ depth stream
    def depth_gap(self, stream: str | None = None, count: int = 1) -> None:
        """Drop the next ``count`` diff-depth events of ``stream`` (any depth stream if None)."""
        self._ws.depth_faults.append(["gap", stream, count])

    def depth_duplicate(self, stream: str | None = None, count: int = 1) -> None:
        """Send the next ``count`` diff-depth events twice."""
        self._ws.depth_faults.append(["duplicate", stream, count])

    def depth_stale(self, stream: str | None = None, count: int = 1) -> None:
        """After each of the next ``count`` events, resend an older one (``u`` < book id)."""
        self._ws.depth_faults.append(["stale", stream, count])

    def stale_snapshot(self, count: int = 1, updates_back: int | None = None) -> None:
        """The next ``count`` REST depth snapshots are old: the book ``updates_back`` ids ago,
        or the oldest book in the kept history (older than anything a new subscriber buffered)."""
        rest = self._rest
        rest.stale_snapshots, rest.stale_back = count, updates_back

    def rest_delay(self, seconds: float) -> None:
        """Delay REST depth answers by ``seconds``."""
        self._rest.delay = seconds

    # ------------------------------------------------------------------ handshake, TLS, lifetime
    def handshake(self, status: int | None, count: int | None = None) -> None:
        """Answer the next ``count`` upgrade requests (all if None) with HTTP ``status``
        (404, 429 and 503 carry the usual meaning; 429/503 add ``Retry-After: 1``).
        ``handshake(None)`` restores normal upgrades."""
        ws = self._ws
        ws.handshake_status, ws.handshake_count = status, count

    def untrusted_cert(self, on: bool = True) -> None:
        """New TLS handshakes (WS and REST) present a certificate from an unknown CA."""
        self._tls.use_rogue_cert(on)

    def lifetime(self, seconds: float, notice: float | None = None) -> None:
        """Shorten the connection lifetime (existing connections are re-armed from their
        connect time); ``serverShutdown`` comes ``notice`` seconds before the close."""
        ws = self._ws
        ws.lifetime = seconds
        if notice is not None:
            ws.shutdown_notice = notice
        for c in self._conns(None):
            c.schedule_lifetime(ws.lifetime, ws.shutdown_notice)

    def clear(self) -> None:
        """Undo every persistent fault (pings, mute, slow, handshake, cert, depth, snapshot)."""
        self.ignore_pings(False)
        self.mute(False)
        self.slow(0.0)
        self.handshake(None)
        if self._tls.rogue:
            self.untrusted_cert(False)
        self._ws.depth_faults.clear()
        self._rest.stale_snapshots = 0

    # ------------------------------------------------------------------ command line
    def apply(self, name: str, value: str | None = None) -> None:
        """Apply a fault by its command-line name (``close``, ``slow``, ...) and string value."""
        v = value
        table = {
            "reset": lambda: self.reset(),
            "close": lambda: self.close(int(v or 1000)),
            "ignore_pings": lambda: self.ignore_pings(True),
            "answer_pings": lambda: self.ignore_pings(False),
            "mute": lambda: self.mute(True),
            "unmute": lambda: self.mute(False),
            "gap": lambda: self.depth_gap(count=int(v or 1)),
            "duplicate": lambda: self.depth_duplicate(count=int(v or 1)),
            "stale": lambda: self.depth_stale(count=int(v or 1)),
            "stale_snapshot": lambda: self.stale_snapshot(int(v or 1)),
            "malformed": lambda: self.malformed(),
            "fragment": lambda: self.fragment(int(v or 1)),
            "oversize": lambda: self.oversize(int(v or (2 << 20))),
            "handshake": lambda: self.handshake(int(v or 503)),
            "untrusted_cert": lambda: self.untrusted_cert(True),
            "trusted_cert": lambda: self.untrusted_cert(False),
            "slow": lambda: self.slow(float(v or 0.05)),
            "lifetime": lambda: self.lifetime(float(v or 5)),
            "clear": lambda: self.clear(),
        }
        if name not in table:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(table))}")
        table[name]()

    NAMES = (
        "reset",
        "close",
        "ignore_pings",
        "answer_pings",
        "mute",
        "unmute",
        "gap",
        "duplicate",
        "stale",
        "stale_snapshot",
        "malformed",
        "fragment",
        "oversize",
        "handshake",
        "untrusted_cert",
        "trusted_cert",
        "slow",
        "lifetime",
        "clear",
    )
