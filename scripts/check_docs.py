"""Checks that the repository's docs stand alone (docs/decisions/0401-lint-types-c-style.md).

* Every decision record ``docs/decisions/NNNN-*.md`` has the title ``# NNNN ...``, a
  ``Status:`` line first after it (``accepted``, ``proposed`` or ``superseded by NNNN``), and a
  row in ``docs/decisions/README.md`` that links it and starts its status cell the same way.
* No doc, script or source file points at files outside the repository (the notes that lived
  beside the checkout): state the fact where it is used, with its public source.

Prints every problem and exits 1 if there is any.
"""

from __future__ import annotations

import os
import re
import sys
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DECISIONS = ROOT / "docs" / "decisions"
STATUS = re.compile(r"Status: (accepted|proposed|superseded by \d{4})\b")
# Names of the notes outside the repository; the test corpus path is configuration, not one.
OUTSIDE = re.compile(r"shared/docs|binance-protocol\.md|picows-notes\.md|peers\.md")
SCANNED = ("*.md", "*.py", "*.pyx", "*.pxd", "*.pyi", "*.h", "*.c", "*.cpp", "*.sh", "*.toml")
SKIPPED_DIRS = {"build", "dist", "wheelhouse", ".git", "__pycache__", ".mypy_cache", ".ruff_cache"}


def check_records() -> list[str]:
    problems = []
    index = (DECISIONS / "README.md").read_text()
    for path in sorted(DECISIONS.glob("[0-9][0-9][0-9][0-9]-*.md")):
        num = path.name[:4]
        lines = path.read_text().splitlines()
        if not lines or not re.match(rf"# {num}\b", lines[0]):
            problems.append(f"{path.name}: the first line is not '# {num} <title>'")
        after = next((line for line in lines[1:] if line.strip()), "")
        status = STATUS.match(after)
        if status is None:
            problems.append(f"{path.name}: no 'Status: accepted|proposed|superseded by NNNN' line")
        row = next((r for r in index.splitlines() if f"]({path.name})" in r), None)
        if row is None:
            problems.append(f"docs/decisions/README.md: no row for {path.name}")
        elif status is not None and f"| {status.group(1)}" not in row:
            problems.append(f"docs/decisions/README.md: the row of {path.name} lacks its status")
    return problems


def check_outside_references() -> list[str]:
    problems = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".venv"))
        for name in sorted(files):
            path = Path(folder) / name
            rel = path.relative_to(ROOT)
            if not any(fnmatch(name, p) for p in SCANNED) or rel == Path("scripts/check_docs.py"):
                continue
            if rel.suffix == ".c" and rel.parts[0] == "fastfeed":
                continue  # Cython's output, generated from the .pyx
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if OUTSIDE.search(line):
                    problems.append(f"{rel}:{n}: points outside the repository: {line.strip()}")
    return problems


def main() -> int:
    problems = check_records() + check_outside_references()
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
