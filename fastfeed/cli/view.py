"""What ``fastfeed demo`` and ``fastfeed run`` show: a live view while the feed runs and a
summary at the end.

:class:`Monitor` turns a feed (and its order book, if any) into plain numbers; the displays
only format them.  :class:`RichDisplay` is used when ``rich`` is installed and stdout is a
terminal; :class:`PlainDisplay` writes lines otherwise (a pipe, a log file, a CI job).

Latency is the feed's receive-latency histogram: local receive time minus the exchange's event
time ``E``.  Its buckets are a quarter-octave wide, so a percentile is known only to lie in a
bucket; we show the bucket's upper bound ("p99 <= 5.1 ms") and put both bounds in the JSON.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastfeed.feed._filter import latency_bucket_bounds
from fastfeed.feed.streams import stream_slot

if TYPE_CHECKING:
    import numpy as np
    from rich.live import Live
    from rich.status import Status

    from fastfeed import BinanceFeed, OrderBook
    from fastfeed.core._ring import Ring

PERCENTILES = (50, 99, 99.9)

#: What the latency figure measures, for every view and the JSON.
LATENCY_MEANS = (
    "latency = local receive time - exchange event time E (E has 1 ms resolution): network, "
    "kernel, TLS, decoding, and any clock offset to the exchange"
)
#: Added by ``fastfeed demo``: the simulator's share of it.
SIM_LATENCY_NOTE = (
    "on the simulator it also includes up to one 5 ms market tick: events are stamped when "
    "they happen and sent at the end of the tick"
)


def latency_ranges(feed: BinanceFeed, ps: Sequence[float] = PERCENTILES) -> dict:
    """``{p: (low_us, high_us)}``: the histogram bucket that holds the feed's ``p``-th
    percentile (``high_us`` None for the open last bucket; ``{p: None}`` with no samples).
    The feed reports the bucket's lower bound; the upper one is the next bucket's."""
    bounds = latency_bucket_bounds()
    out: dict = {}
    for p, low in feed.latency_percentiles(ps).items():
        i = bisect.bisect_right(bounds, low) if low is not None else len(bounds)
        out[p] = None if low is None else (low, bounds[i] if i < len(bounds) else None)
    return out


def fmt_us(us: float | None) -> str:
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f} us"
    if us < 1_000_000:
        return f"{us / 1000:.1f} ms"
    return f"{us / 1e6:.2f} s"


def fmt_latency(pct: dict) -> str:
    """``p50 <= 2.0 ms  p99 <= 5.1 ms ...`` (bucket upper bounds)."""
    parts = []
    for p, r in pct.items():
        if r is None:
            parts.append(f"p{p:g} -")
        elif r[1] is None:
            parts.append(f"p{p:g} >= {fmt_us(r[0])}")
        else:
            parts.append(f"p{p:g} <= {fmt_us(r[1])}")
    return "  ".join(parts)


def fmt_price(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "-"
    s = f"{v:,.8f}".rstrip("0")
    return s + "0" * max(0, 2 - len(s.partition(".")[2]))  # at least cents: 2,680.10


def _by_reason(d: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(d.items()) if v) or "0"


class Monitor:
    """Reads a running feed and order book into plain numbers (one :meth:`sample` per view
    refresh, :meth:`summary` at the end)."""

    def __init__(
        self, feed: BinanceFeed, book: OrderBook | None = None, notes: tuple[str, ...] = ()
    ):
        self.feed, self.book = feed, book
        self.notes = (LATENCY_MEANS, *notes)
        self.symbols: list[str] = []
        for s in feed.streams:
            ss = stream_slot(s)
            if ss is not None and ss[0] not in self.symbols:
                self.symbols.append(ss[0])
        self.started = time.monotonic()
        self._prev = (self.started, 0)

    def _symbol(self, name: str) -> dict:
        dec = self.feed.decoder
        sid = dec.symbol_id(name)
        row: dict = {"symbol": name, "source": None, "state": None}
        row.update(bid=None, bid_qty=None, ask=None, ask_qty=None, last_trade=None)
        if self.book is not None and name in self.book.symbols:
            row["source"] = "book"
            row["state"] = self.book.state(name).name.lower()
            if self.book.is_valid(name):
                bid, bq, ask, aq = self.book.best(name)
                row.update(bid=bid, bid_qty=bq, ask=ask, ask_qty=aq)
        else:
            t = _last_of(self.feed.tickers, sid)
            if t is not None:
                row["source"] = "bookTicker"
                row.update(
                    bid=float(t["bid_price"]),
                    bid_qty=float(t["bid_qty"]),
                    ask=float(t["ask_price"]),
                    ask_qty=float(t["ask_qty"]),
                )
        t = _last_of(self.feed.trades, sid)
        if t is not None:
            row["last_trade"] = float(t["price"])
        return row

    def sample(self) -> dict:
        """Numbers for one refresh of the live view (rates since the previous sample)."""
        st = self.feed.stats()
        now = time.monotonic()
        total = sum(st["messages"].values())
        t0, n0 = self._prev
        self._prev = (now, total)
        book = self.book.stats()["books"] if self.book is not None else {}
        return {
            "elapsed": now - self.started,
            "messages": total,
            "rate": (total - n0) / (now - t0) if now > t0 else 0.0,
            "latency": latency_ranges(self.feed),
            "reconnects": sum(st["reconnects"].values()),
            "gaps": sum(st["gaps"].values()) + book.get("gaps", 0),
            "duplicates": sum(st["duplicates"].values()),
            "rejected": sum(st["rejected"].values()),
            "rss": st["rss_bytes"],
            "symbols": [self._symbol(s) for s in self.symbols],
        }

    def summary(self) -> dict:
        """Everything worth keeping from the run, JSON-ready."""
        st = self.feed.stats()
        hist, neg = self.feed.sink.latency_histogram()
        elapsed = time.monotonic() - self.started
        total = sum(st["messages"].values())
        out = {
            "seconds": round(elapsed, 3),
            "streams": list(self.feed.streams),
            "messages": total,
            "messages_per_s": round(total / elapsed, 1) if elapsed > 0 else 0.0,
            "messages_by_kind": st["messages"],
            "rows": st["rows"],
            "latency_us": {
                f"p{p:g}": None if r is None else {"low": r[0], "high": r[1]}
                for p, r in latency_ranges(self.feed).items()
            },
            "latency_samples": sum(hist),
            "latency_negative": neg,
            "latency_means": "; ".join(self.notes),
            "reconnects": st["reconnects"],
            "connect_failures": st["connect_failures"],
            "gaps": st["gaps"],
            "duplicates": st["duplicates"],
            "rejected": st["rejected"],
            "unroutable": st["unroutable"],
            "overwritten": st["overwritten"],
            "rss_bytes": st["rss_bytes"],
            "symbols": {},
        }
        book_stats = self.book.stats() if self.book is not None else None
        for s in self.symbols:
            row = self._symbol(s)
            name = row.pop("symbol")
            if book_stats is not None and name in book_stats["symbols"]:
                bs = book_stats["symbols"][name]
                row["book"] = {k: bs[k] for k in ("events", "gaps", "resyncs", "snapshots")}
            out["symbols"][name] = row
        if book_stats is not None:
            out["book_gaps"] = book_stats["books"]["gaps"]
            out["book_resyncs"] = book_stats["books"]["resyncs"]
            out["snapshots"] = book_stats["snapshots"]
        return out


def _last_of(ring: Ring, sid: int) -> np.void | None:
    """The newest row of symbol ``sid`` among the ring's last 1024 rows, or None."""
    n = min(ring.written, ring.capacity, 1024)
    if not n:
        return None
    rows = ring.tail(n)
    rows = rows[rows["symbol"] == sid]
    return rows[-1] if len(rows) else None


# ----------------------------------------------------------------------------- summary text


def summary_rows(s: dict) -> list[tuple[str, str]]:
    """The summary as (label, value) pairs, for both displays."""
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(s["messages_by_kind"].items()) if v)
    rows = [
        ("duration", f"{s['seconds']:.1f} s"),
        ("messages", f"{s['messages']:,} ({s['messages_per_s']:,.0f}/s)"),
        ("by kind", kinds or "none"),
        (
            "latency (recv - E)",
            fmt_latency({float(k[1:]): _pair(v) for k, v in s["latency_us"].items()})
            + f"  ({s['latency_samples']:,} samples)",
        ),
        ("reconnects", _by_reason(s["reconnects"])),
        ("connect failures", _by_reason(s["connect_failures"])),
        (
            "gaps",
            f"feed {_by_reason(s['gaps'])}"
            + (f"; books {s['book_gaps']:,}" if "book_gaps" in s else ""),
        ),
        ("duplicates dropped", _by_reason(s["duplicates"])),
        ("rejected", _by_reason(s["rejected"])),
        ("ring overwrites", _by_reason(s["overwritten"])),
        ("memory (RSS)", f"{s['rss_bytes'] / 1e6:.1f} MB"),
    ]
    for name, r in s["symbols"].items():
        rows.append((name, _symbol_text(r)))
    return rows


def _pair(v):
    return None if v is None else (v["low"], v["high"])


def _symbol_text(r: dict) -> str:
    parts = []
    if r["source"] == "book":
        parts.append(f"book {r['state']}")
    elif r["source"]:
        parts.append(r["source"])
    if r["bid"] is not None:
        parts.append(f"bid {fmt_price(r['bid'])} / ask {fmt_price(r['ask'])}")
    if r["last_trade"] is not None:
        parts.append(f"last trade {fmt_price(r['last_trade'])}")
    if "book" in r:
        b = r["book"]
        parts.append(f"gaps {b['gaps']}, resyncs {b['resyncs']}, snapshots {b['snapshots']}")
    return "; ".join(parts) or "no data"


# ----------------------------------------------------------------------------- displays


class PlainDisplay:
    """Lines of text: one status block per refresh, then the summary table."""

    def __init__(self, out=None, err=None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def log_handler(self) -> logging.Handler | None:
        return None  # the default stderr handler

    def message(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def connecting(self, text: str) -> None:
        self.message(text)

    def connect_progress(self, text: str) -> None:
        pass  # the feed's own warnings say why each attempt failed

    def start_live(self, monitor: Monitor) -> None:
        self.message(f"{monitor.notes[0]}.")
        for n in monitor.notes[1:]:
            self.message(f"({n}.)")

    def update(self, v: dict) -> None:
        self.out.write(
            f"[{v['elapsed']:6.1f}s] {v['rate']:8,.0f} msg/s  total {v['messages']:,}  "
            f"latency {fmt_latency(v['latency'])}  reconnects {v['reconnects']}  "
            f"gaps {v['gaps']}  dups {v['duplicates']}  rejected {v['rejected']}  "
            f"rss {v['rss'] / 1e6:.0f} MB\n"
        )
        for r in v["symbols"]:
            self.out.write(f"{'':10}{r['symbol']:<10} {_symbol_text(r)}\n")
        self.out.flush()

    def stop_live(self) -> None:
        pass

    def summary(self, s: dict) -> None:
        rows = summary_rows(s)
        w = max(len(k) for k, _ in rows)
        self.out.write("\nsummary\n")
        for k, v in rows:
            self.out.write(f"  {k:<{w}}  {v}\n")
        self.out.write(f"  ({s['latency_means']})\n")
        self.out.flush()

    def close(self) -> None:
        pass


class RichDisplay(PlainDisplay):
    """A rich live table redrawn in place, a spinner while connecting, a summary table."""

    def __init__(self):
        super().__init__()
        from rich.console import Console

        self.console = Console()
        self.status: Status | None = None
        self.live: Live | None = None
        self.notes: tuple[str, ...] = ()

    def log_handler(self) -> logging.Handler:
        from rich.logging import RichHandler

        # Records print above the live view instead of tearing it.
        return RichHandler(console=self.console, show_time=False, show_path=False)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def connecting(self, text: str) -> None:
        self.status = self.console.status(text)
        self.status.start()

    def connect_progress(self, text: str) -> None:
        if self.status is not None:
            self.status.update(text)

    def _end_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def start_live(self, monitor: Monitor) -> None:
        from rich.live import Live

        self._end_status()
        self.notes = monitor.notes
        self.live = Live(console=self.console, auto_refresh=False, transient=True)
        self.live.start()

    def update(self, v: dict) -> None:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        head = Text(
            f"{v['elapsed']:.0f} s   {v['rate']:,.0f} msg/s   total {v['messages']:,}   "
            f"reconnects {v['reconnects']}   gaps {v['gaps']}   dups {v['duplicates']}   "
            f"rejected {v['rejected']}   memory {v['rss'] / 1e6:.0f} MB"
        )
        lat = Text(f"latency {fmt_latency(v['latency'])}")
        t = Table(box=None, header_style="bold", pad_edge=False)
        t.add_column("symbol")
        t.add_column("from")
        for col in ("bid qty", "bid", "ask", "ask qty", "last trade"):
            t.add_column(col, justify="right")
        for r in v["symbols"]:
            src = f"book {r['state']}" if r["source"] == "book" else (r["source"] or "-")
            t.add_row(
                r["symbol"],
                src,
                fmt_price(r["bid_qty"]),
                fmt_price(r["bid"]),
                fmt_price(r["ask"]),
                fmt_price(r["ask_qty"]),
                fmt_price(r["last_trade"]),
            )
        notes = Text("\n".join(self.notes), style="dim")
        assert self.live is not None, "update() is called between start_live() and stop_live()"
        self.live.update(Group(head, lat, t, notes), refresh=True)

    def stop_live(self) -> None:
        self._end_status()
        if self.live is not None:
            self.live.stop()
            self.live = None

    def summary(self, s: dict) -> None:
        from rich.table import Table

        t = Table(title="summary", show_header=False, title_justify="left")
        t.add_column(style="bold")
        t.add_column()
        for k, v in summary_rows(s):
            t.add_row(k, v)
        self.console.print(t)
        self.console.print(s["latency_means"], style="dim", highlight=False)

    def close(self) -> None:
        self.stop_live()


class JsonDisplay(PlainDisplay):
    """``--json``: no live view; progress on stderr; one JSON document on stdout at the end."""

    def update(self, v: dict) -> None:
        pass

    def start_live(self, monitor: Monitor) -> None:
        pass

    def summary(self, s: dict) -> None:
        json.dump(s, self.out, default=str)
        self.out.write("\n")
        self.out.flush()


def make_display(json_output: bool = False, plain: bool = False) -> PlainDisplay:
    """The display for this terminal: JSON, rich (installed, stdout a terminal, not
    ``plain``), or plain lines."""
    if json_output:
        return JsonDisplay()
    if not plain and sys.stdout.isatty():
        try:
            return RichDisplay()
        except ImportError:
            pass
    return PlainDisplay()
