"""Shared-memory rings on one machine: one writer process serves its feed's rings, events and
order-book tops in POSIX shared memory; any number of reader processes attach and read them
with the :class:`~fastfeed.Ring` API and the same ``lost`` accounting.

Writer: ``feed.share(name)`` (or ``fastfeed serve STREAM... --name NAME``).  Reader:
``fastfeed.attach(name)``.  Design: docs/decisions/0601-shared-memory-rings.md.
"""

from fastfeed.share._shm import SharedRing, SharedRingReader
from fastfeed.share.attach import SharedFeed, attach
from fastfeed.share.errors import SegmentBusy, SegmentError, SegmentNotFound, StaleSegment
from fastfeed.share.segment import SegmentWriter, share_decoder, share_feed

__all__ = [
    "SegmentBusy",
    "SegmentError",
    "SegmentNotFound",
    "SegmentWriter",
    "SharedFeed",
    "SharedRing",
    "SharedRingReader",
    "StaleSegment",
    "attach",
    "share_decoder",
    "share_feed",
]
