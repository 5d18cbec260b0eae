"""``fastfeed sim``: the exchange simulator on its own."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, TextIO

from fastfeed.cli import EXIT_INTERRUPTED, require

if TYPE_CHECKING:
    from fastfeed.cli import Parser
    from fastfeed.sim.config import SimConfig


def add_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    """``sim``."""
    from fastfeed.sim.config import add_arguments

    p = sub.add_parser(
        "sim",
        help="run the local Binance-compatible exchange simulator",
        description="Run fastfeed's exchange simulator on 127.0.0.1 until Ctrl-C or SIGTERM. "
        'The first line of stdout is {"ws": ..., "rest": ..., "ca": ...}.',
    )
    add_arguments(p)
    p.set_defaults(func=cmd_sim)


async def run_sim(
    config: SimConfig, stop: asyncio.Event | None = None, out: TextIO | None = None
) -> int:
    """Start a simulator from ``config``, print the JSON line, run until ``stop`` is set or
    SIGINT/SIGTERM arrives, then shut down cleanly."""
    from fastfeed.cli.feed import Stop
    from fastfeed.sim import ExchangeSimulator

    out = out or sys.stdout
    signals = Stop()
    try:
        async with ExchangeSimulator(config) as sim:
            out.write(
                json.dumps({"ws": sim.ws_url, "rest": sim.rest_url, "ca": sim.ca_file}) + "\n"
            )
            out.flush()
            signals.live = True
            waits = [asyncio.ensure_future(signals.event.wait())]
            if stop is not None:
                waits.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
    except asyncio.CancelledError:
        if not signals.cancelled_by_us():
            raise
        return EXIT_INTERRUPTED
    finally:
        signals.close()
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from fastfeed import run
    from fastfeed.sim.config import config_from_args

    require("trustme", "sim", "fastfeed sim (the simulator's certificates)")
    return run(run_sim(config_from_args(args)))
