"""fastfeed: Binance market data from a TLS WebSocket into numpy ring buffers.

The hot path (transport listener, decoders, rings, order book) is Cython; the session,
simulator and CLI are plain Python around it.
"""
from fastfeed._decoder import BinanceDecoder, Kind, Reject, SymbolTable
from fastfeed._ring import ReadResult, Ring, RingReader
from fastfeed._rows import (DEPTH_DTYPE, FP_NONE_VALUE as FP_NONE, FP_SCALE, PARTIAL_DTYPE,
                            TICKER_DTYPE, TRADE_DTYPE)
from fastfeed.errors import (ConnectError, FeedError, HandshakeError, ProtocolError,
                             SubscriptionError, TLSVerificationError)
from fastfeed.feed import EVENT_DTYPE, BinanceFeed, EventReason, run
from fastfeed.book import OrderBook
from fastfeed._book import BOOK_EVENT_DTYPE, TOP_DTYPE, BookSet, State as BookState, Event as BookEvent
from fastfeed.snapshots import WeightBudget

__version__ = "0.1.0"

__all__ = [
    "BinanceDecoder", "Kind", "Reject", "SymbolTable",
    "Ring", "RingReader", "ReadResult",
    "TRADE_DTYPE", "DEPTH_DTYPE", "TICKER_DTYPE", "PARTIAL_DTYPE", "FP_SCALE", "FP_NONE",
    "BinanceFeed", "EventReason", "EVENT_DTYPE", "run",
    "OrderBook", "BookSet", "BookState", "BookEvent", "TOP_DTYPE", "BOOK_EVENT_DTYPE", "WeightBudget",
    "FeedError", "ConnectError", "HandshakeError", "TLSVerificationError", "SubscriptionError",
    "ProtocolError",
]
