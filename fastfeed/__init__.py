"""fastfeed: Binance market data from a TLS WebSocket into numpy ring buffers.

The hot path (transport listener, decoders, rings, order book) is Cython; the session,
simulator and CLI are plain Python around it.
"""

from fastfeed._aio import run
from fastfeed.book._book import (
    BOOK_EVENT_DTYPE,
    TOP_DTYPE,
    BookSet,
)
from fastfeed.book._book import (
    Event as BookEvent,
)
from fastfeed.book._book import (
    State as BookState,
)
from fastfeed.book.orderbook import BookConfig, OrderBook
from fastfeed.book.snapshots import WeightBudget
from fastfeed.core._decoder import BinanceDecoder, Kind, Reject, SymbolTable
from fastfeed.core._ring import ReadResult, Ring, RingReader
from fastfeed.core._rows import (
    DEPTH_DTYPE,
    FP_SCALE,
    PARTIAL_DTYPE,
    TICKER_DTYPE,
    TRADE_DTYPE,
)
from fastfeed.core._rows import (
    FP_NONE_VALUE as FP_NONE,
)
from fastfeed.errors import (
    ConnectError,
    FeedError,
    HandshakeError,
    ProtocolError,
    StartTimeoutError,
    SubscriptionError,
    TLSVerificationError,
)
from fastfeed.feed.config import FeedConfig
from fastfeed.feed.endpoint import Endpoint, default_ssl_context
from fastfeed.feed.session import EVENT_DTYPE, BinanceFeed, EventReason
from fastfeed.record.replay import Replay
from fastfeed.record.writer import Recorder
from fastfeed.share.attach import SharedFeed, attach

__version__ = "0.1.0"


def get_include() -> str:
    """The directory of fastfeed's C headers, for building a Cython extension that cimports
    fastfeed (a C-level consumer, ``fastfeed/feed/consumer.pxd``): pass it in
    ``include_dirs``.  The ``.pxd`` files are found on ``sys.path`` beside the package."""
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "core")


__all__ = [
    "BOOK_EVENT_DTYPE",
    "DEPTH_DTYPE",
    "EVENT_DTYPE",
    "FP_NONE",
    "FP_SCALE",
    "PARTIAL_DTYPE",
    "TICKER_DTYPE",
    "TOP_DTYPE",
    "TRADE_DTYPE",
    "BinanceDecoder",
    "BinanceFeed",
    "BookConfig",
    "BookEvent",
    "BookSet",
    "BookState",
    "ConnectError",
    "Endpoint",
    "EventReason",
    "FeedConfig",
    "FeedError",
    "HandshakeError",
    "Kind",
    "OrderBook",
    "ProtocolError",
    "ReadResult",
    "Recorder",
    "Reject",
    "Replay",
    "Ring",
    "RingReader",
    "SharedFeed",
    "StartTimeoutError",
    "SubscriptionError",
    "SymbolTable",
    "TLSVerificationError",
    "WeightBudget",
    "attach",
    "default_ssl_context",
    "get_include",
    "run",
]
