"""What every source of rows shares: a live :class:`~fastfeed.BinanceFeed` and a
:class:`~fastfeed.Replay` both expose one decoder's rings, one sink's event markers and hooks,
and an ``on_data`` callback run after each wake."""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from typing import Any

from fastfeed.core._codes import SLOT_NAMES
from fastfeed.core._decoder import BinanceDecoder
from fastfeed.core._ring import Ring
from fastfeed.feed._filter import FeedSink

log = logging.getLogger("fastfeed.feed")


_SLOTS = {name: i for i, name in enumerate(SLOT_NAMES)}


class FeedRings:
    """Mixin: ``trades``, ``depth``, ``tickers``, ``partial`` (the decoder's rings),
    ``events`` (the sink's markers), ``add_hook`` / ``remove_hook``, the accessors
    ``last_trade`` / ``last_row``, and the ``on_data`` loop.
    The class that mixes it in sets ``decoder``, ``sink`` and ``on_data`` and defines
    ``wait()``."""

    decoder: BinanceDecoder
    sink: FeedSink
    on_data: Callable[[Any], object] | None
    _sym_ids: dict[str, int]  # names already looked up (set on first use)

    @property
    def trades(self) -> Ring:
        return self.decoder.trades

    @property
    def depth(self) -> Ring:
        return self.decoder.depth

    @property
    def tickers(self) -> Ring:
        return self.decoder.tickers

    @property
    def partial(self) -> Ring:
        return self.decoder.partial

    @property
    def events(self) -> Ring:
        return self.sink.events

    def add_hook(self, hook: Callable[[], Any]) -> None:
        """Call ``hook()`` once per socket read (a replay: per played batch) that delivered
        rows or markers, on the event loop, right after the read (before any task runs).
        Keep it short: set an event, or read the rings by cursor.  An exception is logged and
        does not stop the feed."""
        self.sink.add_hook(hook)

    def remove_hook(self, hook: Callable[[], Any]) -> None:
        """Stop calling ``hook`` (no error if it was not added)."""
        self.sink.remove_hook(hook)

    def _symbol_id(self, symbol: str | int) -> int:
        if not isinstance(symbol, str):
            return operator.index(symbol)  # an id (numpy integers too)
        try:
            return self._sym_ids[symbol]  # a dict hit: no allocation per call
        except AttributeError:
            self._sym_ids = {}
        except KeyError:
            pass
        sid = self.decoder.symbols.find(symbol)
        if sid is None:
            raise KeyError(f"unknown symbol {symbol!r}")
        self._sym_ids[symbol] = sid
        return sid

    def last_trade(self, symbol: str | int, out: Any) -> int:
        """Copy the symbol's last trade row (aggTrade or trade, the newer) into ``out[0]``,
        an array you made once: ``np.zeros(1, fastfeed.TRADE_DTYPE)``.  Returns the row's
        sequence number in ``trades``, or -1 (no trade yet, or overwritten since).  Kept by
        the filter at commit: O(1), allocates nothing.  ``symbol``: a name or an id."""
        return self.sink.last_trade(self._symbol_id(symbol), out)

    def last_row(self, symbol: str | int, slot: str | int, out: Any) -> int:
        """:meth:`last_trade` for any stream slot: ``"aggTrade"``, ``"trade"``, ``"depth"``
        (the last level row of the last depth message), ``"bookTicker"``, ``"partial"`` (or
        their codes); ``out`` of that ring's dtype."""
        if isinstance(slot, str):
            try:
                slot = _SLOTS[slot]
            except KeyError:
                raise ValueError(f"slot must be one of {SLOT_NAMES}, got {slot!r}") from None
        return self.sink.last_row(self._symbol_id(symbol), slot, out)

    def share(self, name: str, book: Any = None) -> Any:
        """Serve these rings and events (and ``book``'s tops, an ``OrderBook`` on this feed)
        in shared memory as ``name``, for ``fastfeed.attach(name)`` in other processes.
        Returns a :class:`fastfeed.share.SegmentWriter`; ``close()`` it (or use ``with``) to
        stop serving.  See docs/decisions/0601-shared-memory-rings.md."""
        from fastfeed.share.segment import share_feed  # share is a layer above feed

        return share_feed(self, name, book)

    async def wait(self) -> None:  # pragma: no cover - defined by the class mixing this in
        raise NotImplementedError

    async def _data_loop(self) -> None:
        assert self.on_data is not None, "the on_data loop runs only when on_data is set"
        while True:
            await self.wait()
            try:
                self.on_data(self)
            except Exception:
                log.exception("on_data callback failed")
