"""Rows beyond one machine: a feed's rings published to NATS JetStream and rebuilt elsewhere.

``Publisher(feed, url)`` sends each read's new rows, one message per ring and symbol
(:mod:`fastfeed.bus.wire`); ``Subscriber(url, subjects)`` rebuilds the rings.  Needs the
``bus`` extra (nats-py).  ``docs/decisions/0610-bus-nats-jetstream.md``.
"""

from fastfeed.bus.publisher import Publisher
from fastfeed.bus.subscriber import Subscriber

__all__ = ["Publisher", "Subscriber"]
