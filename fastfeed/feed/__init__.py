"""The live feed: the picows listener (transport), the id filter, the stream grammar, the endpoint (URLs and
TLS) and the session (connect, subscribe, keepalive, reconnect, rotation)."""

from fastfeed._aio import run
from fastfeed.feed._filter import EVENT_DTYPE
from fastfeed.feed.config import FeedConfig
from fastfeed.feed.endpoint import Endpoint, default_ssl_context
from fastfeed.feed.session import BinanceFeed, EventReason
from fastfeed.feed.streams import stream_slot, usdm_route

__all__ = [
    "EVENT_DTYPE",
    "BinanceFeed",
    "Endpoint",
    "EventReason",
    "FeedConfig",
    "default_ssl_context",
    "run",
    "stream_slot",
    "usdm_route",
]
