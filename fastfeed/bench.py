"""``fastfeed bench``: runs the benchmark suite (``benchmarks/suite.py``) of a source checkout.

The benchmarks are not part of the installed package (they compare fastfeed with other
libraries and need the ``bench`` extra), so the suite is looked up next to the package (an
editable or in-place install) and then in the current directory.  ``python -m fastfeed.bench``
works the same way.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def find_suite() -> Path | None:
    for base in (Path(__file__).resolve().parent.parent, Path.cwd()):
        p = base / "benchmarks" / "suite.py"
        if p.is_file():
            return p
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``benchmarks/suite.py`` with ``argv``; returns its exit status."""
    suite = find_suite()
    if suite is None:
        print(
            "fastfeed bench: benchmarks/suite.py not found: run it from a fastfeed source "
            "checkout (pip install -e '.[bench]' there)",
            file=sys.stderr,
        )
        return 2
    root = suite.parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env.setdefault("FASTFEED_BENCH_PROG", "fastfeed bench")  # how the report names its command
    args = list(sys.argv[1:] if argv is None else argv)
    return subprocess.call([sys.executable, str(suite), *args], cwd=root, env=env)


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers ``fastfeed bench [suite options]`` on the CLI's subparsers."""
    p = sub.add_parser(
        "bench",
        help="run the benchmark suite (benchmarks/suite.py; --help lists its options)",
        add_help=False,
        # every argument, options included, goes to the suite untouched: this parser knows
        # no option prefix, so "--quick" is just a word to it
        prefix_chars="+",
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda a: main(a.args))


add_parsers = add_bench_parser  # the CLI's registration name (fastfeed.cli.COMMAND_MODULES)


if __name__ == "__main__":
    sys.exit(main())
