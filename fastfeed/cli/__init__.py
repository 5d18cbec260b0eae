"""The ``fastfeed`` command.

Subcommands live in modules of their own, each with an ``add_parsers(sub)`` function that adds
its parsers to ``sub`` (the ``add_subparsers`` action) and sets ``func`` (called with the parsed
arguments; returns the exit code).  To add one, append its module to :data:`COMMAND_MODULES`.

What every subcommand gets from here, so that none has to repeat it:

* usage errors exit 2 with a usage line, never a traceback: argparse's own errors, and a
  :class:`UsageError` raised by a command;
* defaults shown in ``--help`` (also for options without help text);
* ``--log-level`` (validated) on the top level and on every subcommand;
* a named one-line error and exit 1 for :class:`CommandError`, fastfeed's
  :class:`~fastfeed.FeedError` and a missing optional dependency;
* Ctrl-C outside a command's own handling: "interrupted", exit 130.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

#: Modules whose ``add_parsers(sub)`` builds the subcommands, in ``--help`` order.
COMMAND_MODULES: list[str] = [
    "fastfeed.cli.feed",
    "fastfeed.cli.sim",
    "fastfeed.cli.serve",
    "fastfeed.record.cli",
    "fastfeed.cli.subscribe",
    "fastfeed.bench",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a process stopped by Ctrl-C


class UsageError(Exception):
    """A command found its arguments unusable: reported like argparse's own errors (usage
    line, exit 2)."""


class CommandError(Exception):
    """A command failed for a reason the user can act on: one line, exit 1."""


class MissingExtra(CommandError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str, what: str):
        super().__init__(
            f"{what} needs {module!r}, which is not installed: pip install 'fastfeed[{extra}]'"
        )


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name != module.split(".")[0]:
            raise  # the module is there but broken: that traceback is the useful report
        raise MissingExtra(module, extra, what) from None


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` for options without help text too, and not for flags or
    empty lists, where it says nothing."""

    def _get_help_string(self, action):
        if action.default in (False, [], None):
            return action.help
        return super()._get_help_string(action)

    def add_argument(self, action):
        if (
            action.help is None
            and action.option_strings
            and action.default not in (None, False, argparse.SUPPRESS)
        ):
            action = copy.copy(action)
            action.help = "default: %(default)s"
        super().add_argument(action)


class Parser(argparse.ArgumentParser):
    """The parser class of the command and of every subcommand."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        # A subcommand that defines an option we add (``--log-level``) replaces ours.
        kwargs.setdefault("conflict_handler", "resolve")
        super().__init__(*args, **kwargs)


def _log_level(s: str) -> str:
    s = s.upper()
    if s not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{s!r} is not one of {', '.join(LOG_LEVELS)}")
    return s


def _add_log_level(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--log-level",
        type=_log_level,
        default=default,
        metavar="LEVEL",
        help=f"log level of fastfeed's loggers on stderr: {', '.join(LOG_LEVELS)}",
    )


def _version() -> str:
    import platform

    import fastfeed

    try:
        from fastfeed.core._decoder import SIMD

        simd = f", decoder {SIMD}"
    except ImportError:  # pragma: no cover - an older build
        simd = ""
    return f"fastfeed {fastfeed.__version__} (Python {platform.python_version()}{simd})"


def build_parser() -> argparse.ArgumentParser:
    """The ``fastfeed`` parser with every module of :data:`COMMAND_MODULES` registered."""
    parser = Parser(
        prog="fastfeed",
        description="Binance market data into numpy rings: a live feed, an order book, and a "
        "local exchange simulator to run them against.",
    )
    parser.add_argument("--version", action="version", version=_version())
    _add_log_level(parser, "WARNING")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        before = set(sub.choices)
        importlib.import_module(name).add_parsers(sub)
        for cmd in set(sub.choices) - before:
            if "-" not in sub.choices[cmd].prefix_chars:
                continue  # a pass-through command (bench): every word goes to it untouched
            # SUPPRESS: the top-level value (or its default) stands unless given here.
            _add_log_level(sub.choices[cmd], argparse.SUPPRESS)
    return parser


def setup_logging(level: str, handler: logging.Handler | None = None) -> None:
    """fastfeed's log records on stderr (or ``handler``), short format."""
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)


def _subparser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    for a in parser._subparsers._group_actions if parser._subparsers else ():
        if isinstance(a, argparse._SubParsersAction) and args.command in a.choices:
            return a.choices[args.command]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastfeed`` script; returns the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        setup_logging(args.log_level)
        try:
            return args.func(args) or 0
        except UsageError as e:
            _subparser(parser, args).error(str(e))  # exits 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CommandError as e:
        print(f"fastfeed: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        from fastfeed.errors import FeedError

        if not isinstance(e, FeedError):
            raise
        print(f"fastfeed: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0  # pragma: no cover - parser.error() exits
