"""Shared pytest setup.

The helper modules beside the tests (``corpus``, ``reference``, ``sim_fixtures``, ...) are
imported by name.  Under ``--import-mode=importlib`` (cibuildwheel runs the suite against the
installed wheel that way) pytest does not put this folder on ``sys.path``, so it is added here,
once, instead of in every test file.
"""

import logging
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def _root_logger_restored():
    """The CLI's ``main`` configures the root logger (handlers and level) as a program
    should; a test that runs it must not change what later tests' ``caplog`` sees."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    for h in handlers:
        if h not in root.handlers:
            root.addHandler(h)
