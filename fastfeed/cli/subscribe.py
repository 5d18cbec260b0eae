"""``fastfeed subscribe``: rings rebuilt from a NATS JetStream bus, with a line per interval."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING

from fastfeed.cli import EXIT_INTERRUPTED, UsageError, require

if TYPE_CHECKING:
    from fastfeed.cli import Parser

RINGS = ("trades", "depth", "tickers", "partial", "events")


def _start(s: str) -> str | int:
    if s in ("new", "history"):
        return s
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not new, history or a sequence") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"a stream sequence starts at 1, got {n}")
    return n


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    """``subscribe``."""
    p = sub.add_parser(
        "subscribe",
        help="rebuild a feed's rings from a NATS JetStream bus",
        description="Take SUBJECT... (wildcards allowed: fastfeed.spot.>) from the NATS server "
        "at URL, rebuild the publisher's rings and print the rows and losses per interval; a "
        "JSON summary at the end.",
    )
    p.add_argument("url", metavar="URL", help="nats://host:4222")
    p.add_argument("subjects", nargs="+", metavar="SUBJECT")
    p.add_argument(
        "--start",
        type=_start,
        default="new",
        help="new, history, or a stream sequence to start from",
    )
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: Ctrl-C)")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--json", action="store_true", help="no lines: one JSON document at the end")
    p.set_defaults(func=cmd_subscribe)


def cmd_subscribe(args: argparse.Namespace) -> int:
    require("nats", "bus", "fastfeed subscribe")
    from fastfeed._aio import run

    if args.interval <= 0:
        raise UsageError("--interval must be > 0")
    try:
        return run(_subscribe(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def _subscribe(args: argparse.Namespace) -> int:
    from fastfeed.bus import Subscriber
    from fastfeed.cli import CommandError
    from fastfeed.cli.feed import Stop

    try:
        sub = Subscriber(args.url, args.subjects, start=args.start)
    except ValueError as e:
        raise UsageError(str(e)) from None
    stop = Stop(args.seconds)
    t0 = time.monotonic()
    try:
        try:
            await sub.start()
        except asyncio.CancelledError:
            if not stop.cancelled_by_us():
                raise
            if stop.why == "interrupted":
                return EXIT_INTERRUPTED
            raise CommandError(f"cannot subscribe at {args.url}: gave up after --seconds") from None
        except Exception as e:
            raise CommandError(f"cannot subscribe at {args.url}: {type(e).__name__}: {e}") from e
        stop.live = True
        last = dict.fromkeys(RINGS, 0)
        while not stop.event.is_set():
            try:
                await asyncio.wait_for(stop.event.wait(), args.interval)
            except asyncio.TimeoutError:
                pass
            if args.json:
                continue
            now = {n: sub.rings[n].written for n in RINGS}
            parts = [f"{n} +{now[n] - last[n]}" for n in RINGS if now[n] != last[n]]
            st = sub.stats()
            print(
                f"{time.monotonic() - t0:7.1f}s  {', '.join(parts) or 'no rows'}  "
                f"lost {st['lost']}",
                flush=True,
            )
            last = now
    finally:
        stop.close()
        await sub.close()
    st = sub.stats()
    if args.json:
        json.dump(st, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(json.dumps(st))
    return 0
