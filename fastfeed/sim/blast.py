"""Blast and paced modes for benchmarks.

Both send a combined ``<sym>@aggTrade`` + ``<sym>@depth@100ms`` feed whose content comes from
the simulated market (a cycle of real events), re-stamped with fresh ids so that every message is
a normal, in-sequence aggTrade or depthUpdate: aggregate ids ``a`` and trade ids ``f..l`` increase,
and depth events chain (spot ``U = previous u + 1``; USD-M ``pu = previous u``).

* **Blast**: every frame is encoded before the clock starts (WebSocket header + payload, joined
  into ~1 MiB chunks), then the chunks are written straight to the TLS transport as fast as it
  accepts them, honouring only pause/resume flow control.
* **Paced**: frames are formatted just before they are written, at a fixed rate; each carries its
  send time twice: ``E`` (in the connection's time unit: use ``timeUnit=MICROSECOND``) and an
  extra key ``"sendNs"`` (``time.time_ns()``, integer nanoseconds) appended as the object's last
  key.  Decoders skip unknown keys, so the message still decodes as a normal aggTrade/depthUpdate.
  Every message is its own ``send`` (one TLS record, one socket write).  The default timing
  sleeps on the event loop, whose timers tick in milliseconds: at 5,000/s and more, messages
  leave in bursts of several per loop turn.  ``fine=True`` sends each message at its own
  scheduled time, one per loop turn (kernel sleeps to within ``FINE_SPIN_NS`` of it, then a
  spin that yields to the loop), the way an exchange's messages arrive one per TCP segment;
  it keeps a core busy at high rates.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .market import AggTrade, DepthUpdate, Event, Market

if TYPE_CHECKING:  # pragma: no cover
    from picows import WSTransport

    from .wsserver import SimConnection

# One compiled event: (kind, %-template of its payload, its original ids and times by key).
Compiled = tuple[str, bytes, dict[str, int]]

_S = {  # sentinels, replaced by %-placeholders after rendering
    "E": 7_111_111_111_111_111_000,
    "T": 7_222_222_222_222_222_000,
    "a": 7_333_333_333_333_333_331,
    "f": 7_444_444_444_444_444_441,
    "l": 7_555_555_555_555_555_551,
    "U": 7_666_666_666_666_666_661,
    "u": 7_777_777_777_777_777_771,
    "pu": 7_888_888_888_888_888_881,
}


def frame_header(n: int) -> bytes:
    """Header of an unmasked FIN TEXT frame with an ``n``-byte payload (server to client)."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big")
    return b"\x81\x7f" + n.to_bytes(8, "big")


def _template(ev: Event, us: bool, combined: bool, stamp: bool) -> Compiled:
    orig = {k: getattr(ev, k) for k in ("E", "T", "a", "f", "l", "U", "u", "pu") if hasattr(ev, k)}
    cache = ev._cache
    ev._cache = {}
    for k in orig:
        setattr(ev, k, _S[k])
    body = ev.render(us)
    for k, v in orig.items():
        setattr(ev, k, v)
    ev._cache = cache
    for k in orig:
        s = _S[k] // 1000 if (k in ("E", "T") and not us) else _S[k]
        body = body.replace(b":%d" % s, b":%%(%s)d" % k.encode())
    if stamp:
        body = body[:-1] + b',"sendNs":%(S)d}'
    if combined:
        body = b'{"stream":"%s","data":%s}' % (ev.stream.encode(), body)
    return ev.kind, body, orig


@dataclass
class BlastResult:
    """Outcome of one blast: messages and bytes written, seconds from first write until the
    transport's buffer drained, and the resulting rates."""

    messages: int
    bytes: int
    seconds: float

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else float("inf")

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else float("inf")


@dataclass
class PacedResult:
    """Outcome of a paced run: achieved vs requested rate, how late sends were against their
    schedule (seconds; the stamps carry the actual send time either way), whether it ran in
    fine mode, and the most messages sent in one event-loop turn (``max_burst``; 1 in fine
    mode: each message left on its own)."""

    messages: int
    seconds: float
    rate: float
    lag_p50: float
    lag_p99: float
    lag_max: float
    fine: bool = False
    max_burst: int = 0

    @property
    def achieved_rate(self) -> float:
        """Messages per second between the first and the last send."""
        return (self.messages - 1) / self.seconds if self.seconds else float("inf")


class FeedTemplates:
    """A cycle of real market events turned into %-templates, and the id state to continue it."""

    def __init__(self, market: str, symbol: str, seed: int, cycle: int = 512, levels: int = 200):
        # Depth pushed every 5 ms of simulated time: ~10 level changes per depthUpdate.
        m = Market(
            [symbol],
            market,
            seed=seed,
            rate=1000.0,
            levels=levels,
            history=1024,
            interval_scale=0.05,
            start_us=time.time_ns() // 1000,
        )
        agg: list[AggTrade] = []
        depth: list[DepthUpdate] = []
        t = m.now_us
        while len(agg) < cycle or len(depth) < cycle:
            t += 10_000
            for ev in m.advance_to(t, wanted=lambda s: False):
                if isinstance(ev, AggTrade) and len(agg) < cycle:
                    agg.append(ev)
                elif (
                    isinstance(ev, DepthUpdate)
                    and not ev.partial
                    and ev.stream.endswith("@100ms")
                    and len(depth) < cycle
                ):
                    depth.append(ev)
        # Alternate the two kinds, as a combined subscription would deliver them.
        self.events: list[Event] = [e for pair in zip(agg, depth) for e in pair]
        self.usdm = market != "spot"
        self.a = agg[0].a - 1
        self.trade = agg[0].f - 1
        self.u = depth[0].U - 1

    def compile(self, us: bool, combined: bool, stamp: bool) -> list[Compiled]:
        return [_template(e, us, combined, stamp) for e in self.events]

    def payloads(
        self, compiled: list[Compiled], n: int, start: int
    ) -> Iterator[tuple[bytes, dict[bytes, int], dict[str, int]]]:
        """Yield ``n`` payload factories ``(tmpl, values)`` continuing the id sequences."""
        k = len(compiled)
        for i in range(start, start + n):
            kind, tmpl, orig = compiled[i % k]
            if kind == "aggTrade":
                self.a += 1
                f = self.trade + 1
                self.trade = f + (orig["l"] - orig["f"])
                vals = {b"a": self.a, b"f": f, b"l": self.trade}
            else:
                pu = self.u
                U = self.u + 1 if not self.usdm else self.u + 1 + (orig["U"] - orig["pu"] - 1)
                self.u = U + (orig["u"] - orig["U"])
                vals = {b"U": U, b"u": self.u, b"pu": pu}
            yield tmpl, vals, orig


def blast_payloads(
    templates: FeedTemplates, n: int, us: bool = False, combined: bool = True
) -> Iterator[bytes]:
    """Yield the ``n`` payloads of a blast (no frame headers), stamped with the current time."""
    compiled = templates.compile(us, combined, stamp=False)
    now_us = time.time_ns() // 1000
    E = now_us if us else now_us // 1000
    T = E - (1000 if us else 1)
    for tmpl, vals, _orig in templates.payloads(compiled, n, 0):
        vals[b"E"] = E
        vals[b"T"] = T
        yield tmpl % vals


def build_blast(
    templates: FeedTemplates,
    n: int,
    us: bool = False,
    combined: bool = True,
    chunk_size: int = 1 << 20,
) -> tuple[list[bytes], int]:
    """Pre-encode ``n`` frames into chunks of about ``chunk_size`` bytes -> (chunks, bytes)."""
    chunks: list[bytes] = []
    cur: list[bytes] = []
    size = total = 0
    for p in blast_payloads(templates, n, us, combined):
        fr = frame_header(len(p)) + p
        cur.append(fr)
        size += len(fr)
        if size >= chunk_size:
            chunks.append(b"".join(cur))
            total += size
            cur, size = [], 0
    if cur:
        chunks.append(b"".join(cur))
        total += size
    return chunks, total


def _open_transport(conn: SimConnection) -> WSTransport:
    # Held locally: the connection drops its transport when it disconnects mid-send.
    if conn.transport is None:
        raise RuntimeError(f"connection {conn.id} is closed")
    return conn.transport


async def blast_to(conn: SimConnection, chunks: list[bytes], messages: int) -> BlastResult:
    """Write pre-encoded ``chunks`` to ``conn`` as fast as the transport takes them."""
    transport = _open_transport(conn)
    conn.blasting = True  # keep live market data from interleaving with the blast
    tr = transport.underlying_transport
    total = sum(map(len, chunks))
    try:
        t0 = time.perf_counter()
        can_write = conn._can_write
        for ch in chunks:
            if not can_write.is_set():
                await can_write.wait()
            if transport.is_disconnected:
                break
            tr.write(ch)
        while not transport.is_disconnected and tr.get_write_buffer_size() > 0:
            if not can_write.is_set():
                await can_write.wait()
            else:
                await asyncio.sleep(0.0005)
        dt = time.perf_counter() - t0
    finally:
        conn.blasting = False
    conn.sent["blast"] += messages
    conn.server.sim.sent["blast"] += messages
    return BlastResult(messages, total, dt)


# Fine mode: kernel sleeps end this far before a message's time, the rest is a spin.  A sleep
# on a loaded 2-core VM wakes 25-70 us late at p50 and 100-200 us at p99 even with the timer
# slack at 1 ns (measured), so the last 250 us are spun.
FINE_SPIN_NS = 250_000
_PR_SET_TIMERSLACK = 29


def _tight_timer_slack() -> None:
    """Linux: let this thread's sleeps end within a microsecond of their time, not the
    default 50 us slack (best effort: elsewhere fine mode spins a little longer)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
            pass


async def paced_to(
    conn: SimConnection, templates: FeedTemplates, rate: float, n: int, fine: bool = False
) -> PacedResult:
    """Send ``n`` stamped messages to ``conn`` at ``rate`` per second (``n=0``: until closed).

    ``fine``: each message at its own scheduled time, one per event-loop turn (see the module
    docstring); otherwise every message that fell due since the last timer tick is sent in
    that tick."""
    compiled = templates.compile(conn.us, conn.combined, stamp=True)
    us = conn.us
    tr = _open_transport(conn)
    from picows import WSMsgType

    TEXT = WSMsgType.TEXT
    period_ns = 1e9 / rate
    lags: list[float] = []
    sent = 0
    max_burst = 0
    conn.blasting = True
    gen = templates.payloads(compiled, n if n else 1 << 62, 0)
    can_write = conn._can_write
    if fine:
        _tight_timer_slack()
    t0 = t_last = time.perf_counter_ns()

    def send_one() -> None:
        nonlocal sent, t_last
        tmpl, vals, _ = next(gen)
        ns = time.time_ns()
        e = ns // 1000 if us else ns // 1_000_000
        vals[b"E"] = e
        vals[b"T"] = e
        vals[b"S"] = ns
        tr.send(TEXT, tmpl % vals)
        t_last = time.perf_counter_ns()
        if len(lags) < 1_000_000:
            lags.append(t_last - (t0 + sent * period_ns))
        sent += 1

    try:
        while not tr.is_disconnected and (n == 0 or sent < n):
            if fine:
                due_ns = t0 + sent * period_ns
                left = due_ns - time.perf_counter_ns()
                if left > 2_000_000:  # far off: a loop timer (millisecond ticks) is enough
                    await asyncio.sleep((left - 1_500_000) / 1e9)
                    continue
                if left > FINE_SPIN_NS:  # close: a precise kernel sleep; blocks the loop < 2 ms
                    time.sleep((left - FINE_SPIN_NS) / 1e9)
                while time.perf_counter_ns() < due_ns:
                    await asyncio.sleep(0)  # spin, letting the loop run its I/O meanwhile
                send_one()
                max_burst = 1
                await asyncio.sleep(0)  # one message per loop turn, even when behind
            else:
                now = time.perf_counter_ns()
                due = int((now - t0) / period_ns) + 1
                if n:
                    due = min(due, n)
                burst = due - sent
                while sent < due:
                    send_one()
                max_burst = max(max_burst, burst)
                nxt = t0 + sent * period_ns
                await asyncio.sleep(max(0.0, (nxt - time.perf_counter_ns()) / 1e9))
            if not can_write.is_set():
                await can_write.wait()
        dt = (t_last - t0) / 1e9  # first send to last send: (n - 1) periods when on schedule
    finally:
        conn.blasting = False
    conn.sent["paced"] += sent
    conn.server.sim.sent["paced"] += sent
    lags.sort()
    q = lambda f: lags[min(len(lags) - 1, int(f * len(lags)))] / 1e9 if lags else 0.0  # noqa: E731
    return PacedResult(
        sent, dt, rate, q(0.5), q(0.99), lags[-1] / 1e9 if lags else 0.0, fine, max_burst
    )
