"""``fastfeed record``, ``fastfeed replay`` and ``fastfeed export`` (registered by
:func:`add_parsers` from ``fastfeed/cli.py``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import TextIO


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the record / replay / export subcommands on an argparse subparsers object."""
    p = sub.add_parser(
        "record",
        help="record streams (raw frames, events, snapshots) to a directory",
        description="Record STREAM... into DIR: every raw message with its receive time and "
        "connection, the feed's events and (with --book) the order book's REST snapshots, in "
        "zstandard chunks (docs/recording-format.md).",
    )
    p.add_argument("streams", nargs="*", metavar="STREAM")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--market", choices=("spot", "usdm"), default="spot")
    p.add_argument("--url", default=None, help="base wss:// URL (default: the exchange)")
    p.add_argument("--rest-url", default=None, help="base https:// URL for --book snapshots")
    p.add_argument("--ca", default=None, help="CA file to trust (e.g. the simulator's)")
    p.add_argument("--sim", action="store_true", help="record the built-in simulator")
    p.add_argument("--book", action="store_true", help="run an OrderBook (records snapshots)")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: Ctrl-C)")
    p.add_argument("--chunk-interval", type=float, default=1.0, help="close a chunk this often")
    p.add_argument("--rotate-mb", type=float, default=256.0, help="new file past this size")
    p.add_argument("--rotate-seconds", type=float, default=3600.0, help="new file past this age")
    p.add_argument("--retain-mb", type=float, default=None, help="delete oldest files past this")
    p.add_argument("--level", type=int, default=1, help="zstd level")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser(
        "replay",
        help="replay a recording through the feed's message path",
        description="Replay PATH (a recording directory or file) through the same decoder and "
        "filter as the live feed; prints stats as JSON (messages per second as fast as "
        "possible, or paced with --speed).",
    )
    p.add_argument("path")
    p.add_argument("--speed", type=float, default=0.0, help="x real time (0: as fast as possible)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad chunk")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "export",
        help="export a recording's rows to Parquet (or CSV)",
        description="Replay PATH and write every ring's rows to OUT/<ring>.parquet.",
    )
    p.add_argument("path")
    p.add_argument("--to", choices=("parquet", "csv"), default="parquet")
    p.add_argument("--out", default=None, help="output directory (default: PATH/export)")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=cmd_export)


async def _record(args: argparse.Namespace, out: TextIO | None = None) -> dict:
    import contextlib

    from fastfeed import BinanceFeed, Endpoint, OrderBook, default_ssl_context
    from fastfeed.record.writer import Recorder

    out = out or sys.stdout
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    rec = Recorder(
        args.out,
        chunk_interval=args.chunk_interval,
        rotate_bytes=int(args.rotate_mb * (1 << 20)),
        rotate_seconds=args.rotate_seconds,
        retain_bytes=None if args.retain_mb is None else int(args.retain_mb * (1 << 20)),
        level=args.level,
    )
    async with contextlib.AsyncExitStack() as stack:
        streams = list(args.streams)
        if args.sim:
            from fastfeed.sim import ExchangeSimulator

            sim = await stack.enter_async_context(ExchangeSimulator(market=args.market))
            endpoint = sim.endpoint()
            streams = streams or ["btcusdt@aggTrade", "btcusdt@depth@100ms", "btcusdt@bookTicker"]
        else:
            ctx = default_ssl_context(cafile=args.ca) if args.ca else None
            endpoint = Endpoint(args.market, ws_url=args.url, rest_url=args.rest_url, ssl=ctx)
        if not streams:
            raise SystemExit("fastfeed record: name at least one STREAM (or use --sim)")
        feed = await stack.enter_async_context(BinanceFeed(streams, endpoint=endpoint, record=rec))
        if args.book:
            await stack.enter_async_context(OrderBook(feed))
        out.write(json.dumps({"recording": str(rec.out), "streams": streams}) + "\n")
        out.flush()
        try:
            await asyncio.wait_for(stop.wait(), args.seconds or None)
        except asyncio.TimeoutError:
            pass
    rec.close()
    st = rec.stats()
    out.write("summary: " + json.dumps(st) + "\n")
    return st


def cmd_record(args: argparse.Namespace) -> int:
    from fastfeed import run

    _logging(args.log_level)
    run(_record(args))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from fastfeed import run
    from fastfeed.record.replay import Replay

    _logging(args.log_level)
    rp = Replay(args.path, speed=args.speed or None, strict=args.strict)
    if not args.speed:
        st = rp.run()
    else:

        async def go():
            async with rp:
                await rp.wait_done()
            return rp.stats()

        st = run(go())
    st.pop("connections", None)
    print(json.dumps(st, default=str))
    return 1 if st["errors"] else 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fastfeed.record.export import export_recording

    _logging(args.log_level)
    out = args.out or str(Path(args.path) / "export")
    res = export_recording(args.path, out, to=args.to)
    print(json.dumps({"out": out, **res}))
    return 1 if res["errors"] else 0
