"""``fastfeed serve``: one feed handler for a whole desk.

The feed's rings, events and (with ``--book``) order-book tops are served in shared memory as
``--name NAME``; strategies in other processes read them with ``fastfeed.attach(NAME)``.  With
``--nats URL`` each read's new rows are also published to NATS JetStream for other machines
(``fastfeed.bus.Subscriber``).  Each output is one option of :func:`add_output_options` and one
entry of :func:`open_outputs`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from fastfeed.cli import CommandError, UsageError
from fastfeed.cli.feed import Stop, _non_negative, _positive, _stream, ca_context

if TYPE_CHECKING:
    from fastfeed import BinanceFeed, OrderBook
    from fastfeed.cli import Parser


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    """``serve``."""
    p = sub.add_parser(
        "serve",
        help="serve a feed to other processes (shared memory) and machines (NATS)",
        description="Connect to Binance (or --url, or the built-in --sim) for STREAM... and "
        "serve the feed's rings, events and order-book tops (--book) to other processes on "
        "this machine (--name: fastfeed.attach(NAME) in Python) and to other machines "
        "(--nats URL: fastfeed.bus.Subscriber).  The first line of stdout is a JSON "
        "object naming what is served; then one status line per --interval.",
    )
    p.add_argument(
        "streams",
        nargs="*",
        type=_stream,
        metavar="STREAM",
        help="e.g. btcusdt@aggTrade btcusdt@depth@100ms (with --sim, default: BTCUSDT's "
        "aggTrade, depth and bookTicker)",
    )
    add_output_options(p)
    p.add_argument("--book", action="store_true", help="keep order books and serve their tops")
    p.add_argument("--market", choices=("spot", "usdm"), default="spot")
    p.add_argument("--url", default=None, help="base wss:// URL (default: the exchange's)")
    p.add_argument("--rest-url", default=None, help="base https:// URL for --book snapshots")
    p.add_argument("--ca", default=None, metavar="FILE", help="PEM file of the CA to trust")
    p.add_argument("--sim", action="store_true", help="serve the built-in simulator's feed")
    p.add_argument(
        "--seconds", type=_non_negative, default=0.0, help="stop after this long (0: Ctrl-C)"
    )
    p.add_argument("--interval", type=_positive, default=5.0, help="seconds between status lines")
    p.set_defaults(func=cmd_serve)


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Where the feed goes.  One option per output; :func:`open_outputs` opens them."""
    p.add_argument(
        "--name",
        default=None,
        help="serve in shared memory under this name (fastfeed.attach(NAME) reads it)",
    )
    from fastfeed.bus.cli import add_arguments  # no nats import until --nats is used

    add_arguments(p)


def open_outputs(
    args: argparse.Namespace, feed: BinanceFeed, book: OrderBook | None, stack: Any
) -> dict[str, Any]:
    """Opens every output the options ask for; each is closed by ``stack`` (an ExitStack)."""
    outputs: dict[str, Any] = {}
    if args.name is not None:
        from fastfeed.share import SegmentError

        try:
            outputs["shm"] = stack.enter_context(feed.share(args.name, book=book))
        except (SegmentError, OSError) as e:
            raise CommandError(str(e)) from None
    return outputs


def check_outputs(args: argparse.Namespace) -> None:
    if args.name is None and not args.nats:
        raise UsageError("serve needs an output: --name NAME and/or --nats URL")
    if args.name is None:
        return
    from fastfeed.share.segment import check_name

    try:
        check_name(args.name)
    except ValueError as e:
        raise UsageError(str(e)) from None


async def run_serve(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from fastfeed import BinanceFeed, Endpoint, OrderBook

    out = out or sys.stdout
    stop = Stop(args.seconds)
    try:
        async with contextlib.AsyncExitStack() as astack:
            streams = list(args.streams)
            if args.sim:
                from fastfeed.cli import require

                require("trustme", "sim", "fastfeed serve --sim (the simulator's certificates)")
                from fastfeed.sim import ExchangeSimulator

                syms = sorted({s.split("@")[0].upper() for s in streams}) or ["BTCUSDT"]
                sim = await astack.enter_async_context(
                    ExchangeSimulator(symbols=tuple(syms), market=args.market)
                )
                endpoint = sim.endpoint()
                streams = streams or [
                    "btcusdt@aggTrade",
                    "btcusdt@depth@100ms",
                    "btcusdt@bookTicker",
                ]
            else:
                if not streams:
                    raise UsageError("name at least one STREAM (or use --sim)")
                try:
                    endpoint = Endpoint(
                        args.market,
                        ws_url=args.url,
                        rest_url=args.rest_url,
                        ssl=ca_context(args.ca),
                    )
                except (TypeError, ValueError) as e:
                    raise CommandError(str(e)) from None
            feed = await astack.enter_async_context(BinanceFeed(streams, endpoint=endpoint))
            book = None
            if args.book:
                book = await astack.enter_async_context(OrderBook(feed))
            stop.live = True
            from fastfeed.bus.cli import start_publisher

            pub = await start_publisher(feed, args)
            if pub is not None:
                astack.push_async_callback(pub.close)
            with contextlib.ExitStack() as stack:
                outputs = open_outputs(args, feed, book, stack)
                if pub is not None:
                    outputs["nats"] = pub
                first: dict[str, Any] = {"streams": streams}
                if "shm" in outputs:
                    w = outputs["shm"]
                    first.update(
                        name=w.name, path=w.path, generation=w.generation, rings=list(w.rings)
                    )
                if pub is not None:
                    first.update(nats=args.nats, subjects=f"{args.nats_subject_prefix}.>")
                out.write(json.dumps(first) + "\n")
                out.flush()
                t0 = time.monotonic()
                while not stop.event.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.event.wait(), args.interval)
                    line: dict[str, Any] = {
                        "t": round(time.monotonic() - t0, 1),
                        "messages": feed.sink.accepted_total,
                    }
                    if "shm" in outputs:
                        st = outputs["shm"].stats()
                        line.update(readers=len(st["readers"]), written=st["written"])
                    if pub is not None:
                        bs = pub.stats()
                        line.update({"nats_" + k: bs[k] for k in ("sent_rows", "dropped_batches")})
                    out.write(json.dumps(line) + "\n")
                    out.flush()
    except asyncio.CancelledError:
        if not stop.cancelled_by_us():
            raise
        out.write("interrupted while connecting\n")
        return 130
    finally:
        stop.close()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from fastfeed import run

    check_outputs(args)
    return run(run_serve(args))
