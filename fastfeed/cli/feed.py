"""``fastfeed demo`` and ``fastfeed run``: a feed (and order books) with a live view.

Both share :func:`watch`: connect with progress, show the live view until ``--seconds`` or
Ctrl-C, then the summary.  Ctrl-C or the deadline while connecting stops the attempt and says
how far it got; after that they end the view and still print the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from fastfeed._aio import wait_event
from fastfeed.cli import EXIT_INTERRUPTED, CommandError, require
from fastfeed.cli.view import SIM_LATENCY_NOTE, Monitor, PlainDisplay, make_display
from fastfeed.feed.streams import S_DEPTH, stream_slot

if TYPE_CHECKING:
    from fastfeed import BinanceFeed, OrderBook
    from fastfeed.cli import Parser

#: The feed's ``on_state`` callback: ``(what, info)``.
OnState = Callable[[str, dict[str, Any]], None]


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    """``demo`` and ``run``."""
    from fastfeed.sim.config import parse_fault

    p = sub.add_parser(
        "demo",
        help="simulator + feed + order books over TLS on 127.0.0.1, live view",
        description="Start fastfeed's exchange simulator and a feed with order books over TLS "
        "on 127.0.0.1 (no network needed); show a live view, then a summary.",
    )
    p.add_argument(
        "--symbols", type=_symbols, default="BTCUSDT,ETHUSDT", help="comma-separated symbols"
    )
    p.add_argument(
        "--rate", type=_positive, default=500.0, help="market actions per second per symbol"
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        type=parse_fault,
        metavar="AT:NAME[=VALUE]",
        help="simulator fault, e.g. 3:reset or 5:lifetime=2 (repeatable; see fastfeed sim -h)",
    )
    _add_view_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "run",
        help="feed from the exchange (or any --url), live view",
        description="Connect to Binance (or --url) for STREAM... and show a live view, then a "
        "summary.  Diff-depth streams get order books (snapshots from the exchange's REST API, "
        "or --rest-url).",
    )
    p.add_argument(
        "streams",
        nargs="+",
        type=_stream,
        metavar="STREAM",
        help="e.g. btcusdt@aggTrade btcusdt@depth@100ms btcusdt@bookTicker",
    )
    p.add_argument("--market", choices=("spot", "usdm"), default="spot")
    p.add_argument("--url", default=None, help="base wss:// URL (default: the exchange's)")
    p.add_argument(
        "--rest-url",
        default=None,
        help="base https:// URL for order book snapshots (default: the exchange's; with --url "
        "and no --rest-url, no order books)",
    )
    p.add_argument(
        "--ca",
        default=None,
        metavar="FILE",
        help="PEM file of the CA to trust instead of the default ones (the simulator's: the "
        '"ca" of fastfeed sim\'s first line)',
    )
    p.add_argument("--subscribe", choices=("url", "live"), default="url")
    p.add_argument(
        "--start-timeout",
        type=_non_negative,
        default=30.0,
        help="give up connecting after this many seconds (0: keep trying)",
    )
    _add_view_options(p)
    p.set_defaults(func=cmd_run)


def _add_view_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seconds",
        type=_non_negative,
        default=0.0,
        help="stop after this many seconds, connecting included (0: at Ctrl-C)",
    )
    p.add_argument("--interval", type=_positive, default=1.0, help="seconds between refreshes")
    p.add_argument("--json", action="store_true", help="no live view; the summary as JSON")
    p.add_argument("--plain", action="store_true", help="plain text even on a terminal")


# ----------------------------------------------------------------------------- argument types


def _number(s: str, ok: Callable[[float], bool], what: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"{s!r}: must be {what}")
    return v


def _positive(s: str) -> float:
    return _number(s, lambda v: v > 0 and v != float("inf"), "> 0")


def _non_negative(s: str) -> float:
    return _number(s, lambda v: v >= 0 and v != float("inf"), ">= 0")


def _symbols(s: str) -> list[str]:
    out = [x.strip().upper() for x in s.split(",") if x.strip()]
    bad = [x for x in out if not re.fullmatch(r"[A-Z0-9]{2,20}", x)]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"{s!r}: expected symbols like BTCUSDT,ETHUSDT")
    return out


def _stream(s: str) -> str:
    sym, at, kind = s.partition("@")
    if not at or not kind or not sym:
        raise argparse.ArgumentTypeError(
            f"{s!r} is not a stream name: expected <symbol>@<kind>, e.g. btcusdt@aggTrade"
        )
    return s


def _streams(streams: Sequence[str]) -> str:
    return f"{len(streams)} stream" + ("s" if len(streams) != 1 else "")


def ca_context(path: str | None) -> ssl.SSLContext | None:
    """A verifying client context that trusts the CA in ``path`` (None: the feed's default)."""
    if path is None:
        return None
    from fastfeed import default_ssl_context

    try:
        return default_ssl_context(cafile=path)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise CommandError(f"--ca {path}: {e}") from None


# ----------------------------------------------------------------------------- the run


class Stop:
    """Ends a command on SIGINT/SIGTERM or after ``seconds``.

    Until :attr:`live` is set (connecting), it cancels the command's task: the connect
    attempt stops at once.  Afterwards it only sets :attr:`event`, so the command can stop
    its view and print the summary.  A second signal while stopping is ignored.
    """

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds
        self.why: str | None = None  # "interrupted" | "deadline"
        self.live = False
        self.event = asyncio.Event()
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self._signals = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not main thread
                loop.add_signal_handler(sig, self.end, "interrupted")
                self._signals.append(sig)
        self._timer = loop.call_later(seconds, self.end, "deadline") if seconds else None

    def end(self, why: str) -> None:
        if self.why is not None:
            return
        self.why = why
        self.event.set()
        if not self.live and self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        if self._timer is not None:
            self._timer.cancel()

    def cancelled_by_us(self) -> bool:
        """After a CancelledError: was it our doing (then it is handled, not propagated)?"""
        if self.why is None or self.live:
            return False
        if self._task is not None and hasattr(self._task, "uncancel"):
            self._task.uncancel()
        return True


class Connecting:
    """The feed's ``on_state`` while connecting: counts attempts and keeps the last error for
    the progress line and the final message."""

    def __init__(self, display: PlainDisplay, target: str):
        self.display, self.target = display, target
        self.started = time.monotonic()
        self.failures = 0
        self.last_error = ""

    def on_state(self, what: str, info: dict[str, Any]) -> None:
        if what == "connect_failed":
            self.failures += 1
            self.last_error = info.get("error", "")
            # Why it failed is in the feed's own warning, logged beside this line.
            self.display.connect_progress(
                f"connecting to {self.target}: attempt {self.failures} failed; retrying  "
                "[Ctrl-C to stop]"
            )

    def outcome(self, said: str = "") -> str:
        """How long and how many attempts; the last error unless ``said`` already holds it."""
        took = time.monotonic() - self.started
        s = f"after {took:.1f} s, {self.failures} failed attempt(s)"
        if self.last_error and self.last_error not in said:
            s += f"; last error: {self.last_error}"
        return s


async def watch(
    display: PlainDisplay,
    stop: Stop,
    interval: float,
    open_feed: Callable[[OnState], AbstractAsyncContextManager[BinanceFeed]],
    open_book: Callable[[BinanceFeed], AbstractAsyncContextManager[OrderBook]] | None = None,
    notes: tuple[str, ...] = (),
    target: str = "",
) -> int:
    """Connect (``open_feed(on_state)`` and ``open_book(feed)`` give async context managers),
    then refresh the live view every ``interval`` until ``stop``; print the summary."""
    progress = Connecting(display, target)
    display.connecting(f"connecting to {target}  [Ctrl-C to stop]")
    try:
        async with open_feed(progress.on_state) as feed:
            async with open_book(feed) if open_book else contextlib.nullcontext() as book:
                stop.live = True
                display.message(
                    f"connected to {target} in {time.monotonic() - progress.started:.1f} s"
                )
                monitor = Monitor(feed, book, notes)
                display.start_live(monitor)
                display.update(monitor.sample())
                try:
                    while not stop.event.is_set():
                        await wait_event(stop.event, interval)
                        display.update(monitor.sample())
                finally:
                    display.stop_live()
                summary = monitor.summary()
    except asyncio.CancelledError:
        if not stop.cancelled_by_us():
            raise
        display.stop_live()
        if stop.why == "deadline":
            raise CommandError(
                f"not connected to {target} within --seconds {stop.seconds:g} "
                f"({progress.outcome()})"
            ) from None
        display.message(f"interrupted while connecting to {target} ({progress.outcome()})")
        return EXIT_INTERRUPTED
    except Exception as e:
        display.stop_live()
        from fastfeed.errors import FeedError, TLSVerificationError

        if not isinstance(e, FeedError):
            raise
        hint = " (use --ca FILE to trust another CA)" if isinstance(e, TLSVerificationError) else ""
        raise CommandError(
            f"could not connect to {target}: {type(e).__name__}: {e}{hint} "
            f"({progress.outcome(str(e))})"
        ) from None
    display.summary(summary)
    return 0


def _run(args: argparse.Namespace, coro_fn: Callable[[PlainDisplay, Stop], Awaitable[int]]) -> int:
    """Run ``coro_fn(display, stop)`` on uvloop with the command's display and stop rules."""
    from fastfeed import run
    from fastfeed.cli import setup_logging

    display = make_display(json_output=args.json, plain=args.plain)
    handler = display.log_handler()
    if handler is not None:
        setup_logging(args.log_level, handler)

    async def main() -> int:
        stop = Stop(args.seconds)
        try:
            return await coro_fn(display, stop)
        finally:
            stop.close()

    try:
        return run(main())
    finally:
        display.close()


# ----------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    require("trustme", "sim", "fastfeed demo (the simulator's certificates)")
    return _run(args, lambda display, stop: run_demo(args, display, stop))


async def run_demo(args: argparse.Namespace, display: PlainDisplay, stop: Stop) -> int:
    from fastfeed import BinanceFeed, OrderBook
    from fastfeed.sim import ExchangeSimulator

    symbols = args.symbols
    streams = [
        f"{s.lower()}@{k}" for s in symbols for k in ("aggTrade", "depth@100ms", "bookTicker")
    ]
    try:
        sim_cm = ExchangeSimulator(symbols=tuple(symbols), rate=args.rate, faults=args.fault)
        async with sim_cm as sim:
            endpoint = sim.endpoint()
            display.message(f"simulator: ws {sim.ws_url}  rest {sim.rest_url}")
            return await watch(
                display,
                stop,
                args.interval,
                lambda on_state: BinanceFeed(
                    streams,
                    endpoint=endpoint,
                    backoff_initial=0.2,
                    backoff_max=2.0,
                    on_state=on_state,
                ),
                lambda feed: OrderBook(feed),
                notes=(SIM_LATENCY_NOTE,),
                target=f"the simulator ({_streams(streams)})",
            )
    except asyncio.CancelledError:
        if not stop.cancelled_by_us():
            raise
        display.message("interrupted while starting the simulator")
        return EXIT_INTERRUPTED


# ----------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args, lambda display, stop: run_feed(args, display, stop))


async def run_feed(args: argparse.Namespace, display: PlainDisplay, stop: Stop) -> int:
    from fastfeed import BinanceFeed, Endpoint, OrderBook

    try:
        endpoint = Endpoint(
            args.market, ws_url=args.url, rest_url=args.rest_url, ssl=ca_context(args.ca)
        )
    except (TypeError, ValueError) as e:
        raise CommandError(str(e)) from None
    url = endpoint.ws_url
    depth = [s for s in args.streams if (stream_slot(s) or ("", -1))[1] == S_DEPTH]
    # With --url alone the snapshots would come from the real exchange's REST API: a test
    # against the simulator must never do that, so books need --rest-url there.
    books = bool(depth) and (args.url is None or args.rest_url is not None)
    if depth and not books:
        display.message("no order books: --url without --rest-url (best bid/ask from tickers)")
    return await watch(
        display,
        stop,
        args.interval,
        lambda on_state: BinanceFeed(
            args.streams,
            endpoint=endpoint,
            subscribe=args.subscribe,
            start_timeout=args.start_timeout or None,
            on_state=on_state,
        ),
        (lambda feed: OrderBook(feed)) if books else None,
        target=f"{url} ({_streams(args.streams)})",
    )
