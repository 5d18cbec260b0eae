"""Errors of :mod:`fastfeed.share`."""

from __future__ import annotations

from fastfeed.errors import FeedError


class SegmentError(FeedError):
    """Base class of the shared-memory segment errors."""


class StaleSegment(SegmentError):
    """The segment a reader is attached to no longer has a live writer: closed by it, replaced
    by a restarted writer (a new generation under the same name), or its writer died.  Attach
    again (``fastfeed.attach(name)``) to follow a restarted writer."""


class SegmentNotFound(SegmentError):
    """No segment of that name exists (no writer serves it)."""


class SegmentBusy(SegmentError):
    """Another live writer serves that name."""
