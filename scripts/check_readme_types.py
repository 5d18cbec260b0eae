#!/usr/bin/env python3
"""Type-check README.md's Python examples with ``mypy --strict``.

Each ```python block of the README is written to a file of its own and checked against the
fastfeed package in this checkout (its annotations and .pyi stubs).  Only errors in the
examples count (``--follow-imports=silent``; fastfeed's own modules and stubs are checked
elsewhere): this checks what a user's code sees, so an unannotated public function shows up
as an error in the example that calls it.  Errors mypy reports inside fastfeed's stubs are
printed as notes.

A canary checks that the types hold: code with known mistakes (an attribute the order book
does not have, a string where a ring cursor goes) must be refused, line by line.  Were
``async with`` to give ``Any`` again, the canary would pass mypy, and this script fails.

Usage: python3 scripts/check_readme_types.py [README.md]   (exit status 1 on any error)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the first code line, code)`` of every ```python block."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


# Each line marked "# error" must draw a mypy error.
CANARY = """\
import fastfeed


async def canary() -> None:
    async with fastfeed.BinanceFeed(["btcusdt@depth@100ms"]) as feed:
        feed.no_such_attribute  # error
        feed.trades.reader().read("10")  # error
        async with fastfeed.OrderBook(feed) as ob:
            ob.bset("BTCUSDT")  # error
            x: str = ob.best("BTCUSDT")  # error
"""


def main(argv: list[str]) -> int:
    readme = argv[1] if len(argv) > 1 else os.path.join(ROOT, "README.md")
    with open(readme, encoding="utf-8") as f:
        found = blocks(f.read())
    if not found:
        print(f"{readme}: no python blocks", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="readme-types-") as tmp:
        files = {}
        canary = os.path.join(tmp, "canary.py")
        with open(canary, "w", encoding="utf-8") as out:
            out.write(CANARY)
        for line, code in found:
            path = os.path.join(tmp, f"readme_line_{line}.py")
            with open(path, "w", encoding="utf-8") as out:
                out.write(code)
            files[path] = line
        cmd = [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            *files,
            canary,
        ]
        env = dict(os.environ, MYPYPATH=ROOT)
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    # Point each message at README.md's own line numbers; count only the examples' errors.
    errors = 0
    hit: set[int] = set()
    for msg in res.stdout.splitlines():
        if msg.startswith(canary + ":"):
            n = msg[len(canary) + 1 :].partition(":")[0]
            if n.isdigit() and ": error:" in msg:
                hit.add(int(n))
            continue
        for path, line in files.items():
            if msg.startswith(path + ":"):
                n, _, tail = msg[len(path) + 1 :].partition(":")
                if n.isdigit():
                    errors += ": error:" in msg
                    msg = f"{readme}:{line + int(n) - 1}:{tail}"
                break
        else:
            if msg.startswith("Found ") or msg.startswith("Success"):
                continue
            msg = "note (outside the README, not counted): " + msg
        print(msg)
    sys.stderr.write(res.stderr)
    want = {i + 1 for i, text in enumerate(CANARY.splitlines()) if text.endswith("# error")}
    for n in sorted(want - hit):
        errors += 1
        print(
            f"canary:{n}: mypy accepted a mistake, the types do not hold: "
            f"{CANARY.splitlines()[n - 1].strip()}"
        )
    print(f"{len(found)} README python blocks checked with mypy --strict: {errors} error(s)")
    return 1 if errors or res.returncode not in (0, 1) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
