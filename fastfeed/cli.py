"""``fastfeed`` command line.  Subcommands register themselves in :func:`build_parser`;
each lives in its own ``cmd_<name>`` function so that others (``demo``, ``run``) can be added
without touching the existing ones."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

# ---------------------------------------------------------------------------- sim


def add_sim_parser(sub) -> None:
    from fastfeed.sim.config import add_arguments

    p = sub.add_parser(
        "sim",
        help="run the local Binance-compatible exchange simulator",
        description="Run fastfeed's exchange simulator. The first line of stdout "
        'is {"ws": ..., "rest": ..., "ca": ...}.',
    )
    add_arguments(p)
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=cmd_sim)


async def run_sim(config, stop: asyncio.Event | None = None, out=None) -> None:
    """Start a simulator from ``config``, print the JSON line, run until ``stop`` is set or
    SIGINT/SIGTERM arrives, then shut down cleanly."""
    from fastfeed.sim import ExchangeSimulator

    out = out or sys.stdout
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
            pass
    async with ExchangeSimulator(config) as sim:
        out.write(json.dumps({"ws": sim.ws_url, "rest": sim.rest_url, "ca": sim.ca_file}) + "\n")
        out.flush()
        await stop.wait()


def cmd_sim(args: argparse.Namespace) -> int:
    from fastfeed.sim.config import config_from_args

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    config = config_from_args(args)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    runner(run_sim(config))
    return 0


# ---------------------------------------------------------------------------- demo / run


def _add_feed_options(p) -> None:
    p.add_argument("--seconds", type=float, default=0.0, help="run this long (0: until Ctrl-C)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between status lines")
    p.add_argument("--log-level", default="WARNING")


def _status_line(feed, prev, dt) -> tuple[str, int]:
    st = feed.stats()
    total = sum(st["accepted"].values())
    lat = st["latency_us"]
    bid = ask = float("nan")
    if feed.depth.written:
        rows = feed.depth.tail(min(feed.depth.written, 512))
        b = rows[(rows["side"] == 0) & (rows["qty"] > 0)]
        a = rows[(rows["side"] == 1) & (rows["qty"] > 0)]
        bid = float(b["price"].max()) if len(b) else bid
        ask = float(a["price"].min()) if len(a) else ask
    if feed.tickers.written:
        t = feed.tickers.tail(1)[0]
        bid, ask = float(t["bid_price"]), float(t["ask_price"])
    line = (
        f"msgs/s {((total - prev) / dt if dt else 0):9.0f}  total {total:9d}  "
        f"lat p50/p99/p99.9 us {lat.get(50)}/{lat.get(99)}/{lat.get(99.9)}  "
        f"bid/ask {bid:.2f}/{ask:.2f}  reconnects {sum(st['reconnects'].values())}  "
        f"gaps {sum(st['gaps'].values())}  dups {sum(st['duplicates'].values())}"
    )
    return line, total


async def _watch(feed, seconds: float, interval: float, out) -> None:
    import time as _t

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    start = last = _t.monotonic()
    prev = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass
        now = _t.monotonic()
        line, prev = _status_line(feed, prev, now - last)
        last = now
        out.write(line + "\n")
        out.flush()
        if seconds and now - start >= seconds:
            break
    st = feed.stats()
    summary = {
        k: st[k]
        for k in (
            "messages",
            "rows",
            "accepted",
            "duplicates",
            "gaps",
            "rejected",
            "reconnects",
            "connect_failures",
            "latency_us",
            "overwritten",
            "rss_bytes",
            "uptime_s",
        )
    }
    out.write("summary: " + json.dumps(summary, default=str) + "\n")


def add_demo_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="simulator + feed over TLS on 127.0.0.1, live stats",
        description="Start the exchange simulator and a fastfeed feed over TLS "
        "on 127.0.0.1 (no network needed) and print live stats.",
    )
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    p.add_argument("--rate", type=float, default=500.0, help="market actions per second per symbol")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="AT:NAME[=VALUE]",
        help="simulator fault, e.g. 3:reset or 5:lifetime=2 (see fastfeed sim -h)",
    )
    _add_feed_options(p)
    p.set_defaults(func=cmd_demo)


async def run_demo(args, out=None) -> None:
    from fastfeed import BinanceFeed
    from fastfeed.sim import ExchangeSimulator
    from fastfeed.sim.config import parse_fault

    out = out or sys.stdout
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    streams = [
        f"{s.lower()}@{k}" for s in symbols for k in ("aggTrade", "depth@100ms", "bookTicker")
    ]
    faults = [parse_fault(f) for f in args.fault]
    async with ExchangeSimulator(symbols=tuple(symbols), rate=args.rate, faults=faults) as sim:
        out.write(f"simulator {sim.ws_url}; streams {', '.join(streams)}\n")
        async with BinanceFeed(
            streams,
            url=sim.ws_url,
            ssl=sim.client_ssl_context(),
            backoff_initial=0.2,
            backoff_max=2.0,
        ) as feed:
            await _watch(feed, args.seconds, args.interval, out)


def cmd_demo(args) -> int:
    from fastfeed import run

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    run(run_demo(args))
    return 0


def add_run_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="feed from the real exchange, live stats",
        description="Connect to Binance and print live stats for STREAM...",
    )
    p.add_argument(
        "streams", nargs="+", metavar="STREAM", help="e.g. btcusdt@aggTrade btcusdt@depth@100ms"
    )
    p.add_argument("--market", choices=("spot", "usdm"), default="spot")
    p.add_argument("--url", default=None, help="override the base wss:// URL")
    p.add_argument("--subscribe", choices=("url", "live"), default="url")
    _add_feed_options(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from fastfeed import BinanceFeed, run

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    async def go():
        async with BinanceFeed(
            args.streams, market=args.market, url=args.url, subscribe=args.subscribe
        ) as feed:
            await _watch(feed, args.seconds, args.interval, sys.stdout)

    run(go())
    return 0


# ---------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastfeed", description="fastfeed command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_sim_parser(sub)
    add_demo_parser(sub)
    add_run_parser(sub)
    from fastfeed.record.cli import add_parsers as add_record_parsers

    add_record_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
