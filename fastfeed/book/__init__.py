"""Order books: the Cython book core (sorted sides, sequence checks), REST snapshots with a
shared weight budget, and :class:`OrderBook`, which keeps books on a running feed."""

from fastfeed.book._book import BOOK_EVENT_DTYPE, TOP_DTYPE, BookSet
from fastfeed.book.orderbook import BookConfig, OrderBook
from fastfeed.book.snapshots import WeightBudget

__all__ = ["BOOK_EVENT_DTYPE", "TOP_DTYPE", "BookConfig", "BookSet", "OrderBook", "WeightBudget"]
