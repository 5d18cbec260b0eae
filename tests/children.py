"""Child interpreters started by tests import the fastfeed this test run imported: the
checkout's in-place build when the suite runs in the checkout, else the installed package
(``.ci/run`` tests an installed fastfeed from a fresh clone that has no in-place build;
cibuildwheel tests the wheel)."""

from __future__ import annotations

import os

import fastfeed

HERE = os.path.dirname(os.path.abspath(__file__))
# The folder to start ``python -m ...`` / ``python -c ...`` children in: such a child puts its
# working folder first on sys.path, and from the checkout's root the source tree (with no
# built extensions under CI) would shadow the installed package.  tests/ holds no fastfeed.
CHILD_CWD = HERE


def child_env(**extra: str) -> dict[str, str]:
    """``os.environ`` plus ``extra``, with PYTHONPATH leading to this run's fastfeed (and to
    the test helpers beside this file)."""
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastfeed.__file__)))
    path = os.pathsep.join(x for x in (pkg_parent, HERE, os.environ.get("PYTHONPATH")) if x)
    return dict(os.environ, **extra, PYTHONPATH=path)
