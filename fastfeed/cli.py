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
from typing import Optional, Sequence


# ---------------------------------------------------------------------------- sim

def add_sim_parser(sub) -> None:
    from fastfeed.sim.config import add_arguments

    p = sub.add_parser("sim", help="run the local Binance-compatible exchange simulator",
                       description="Run fastfeed's exchange simulator. The first line of stdout "
                                   'is {"ws": ..., "rest": ..., "ca": ...}.')
    add_arguments(p)
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=cmd_sim)


async def run_sim(config, stop: Optional[asyncio.Event] = None, out=None) -> None:
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

    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = config_from_args(args)
    try:
        import uvloop  # noqa: F401
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    runner(run_sim(config))
    return 0


# ---------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastfeed", description="fastfeed command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_sim_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
