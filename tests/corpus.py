"""Locate the shared Binance corpus for tests.

``FASTFEED_CORPUS`` wins; otherwise ``<repo root>/../shared/corpus/binance`` (CI clones the
repo with a copy of ``shared/`` beside it).  Missing corpus: the test is skipped, except
under ``CI=true`` where it fails, so CI can never pass by silently skipping.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def corpus_dir() -> Path:
    """Path of the corpus directory (``.../corpus/binance``), or skip / fail the test."""
    env = os.environ.get("FASTFEED_CORPUS")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "corpus" / "binance"
    if path.is_dir():
        return path
    reason = (
        f"Binance corpus not found at {path} "
        "(set FASTFEED_CORPUS or put shared/corpus/binance beside the repo)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)
