"""Shared pytest setup.

The helper modules beside the tests (``corpus``, ``reference``, ``sim_fixtures``, ...) are
imported by name.  Under ``--import-mode=importlib`` (cibuildwheel runs the suite against the
installed wheel that way) pytest does not put this folder on ``sys.path``, so it is added here,
once, instead of in every test file.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
