"""What every source of rows shares: a live :class:`~fastfeed.BinanceFeed` and a
:class:`~fastfeed.Replay` both expose one decoder's rings, one sink's event markers and hooks,
and an ``on_data`` callback run after each wake."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastfeed.core._decoder import BinanceDecoder
from fastfeed.core._ring import Ring
from fastfeed.feed._filter import FeedSink

log = logging.getLogger("fastfeed.feed")


class FeedRings:
    """Mixin: ``trades``, ``depth``, ``tickers``, ``partial`` (the decoder's rings),
    ``events`` (the sink's markers), ``add_hook`` / ``remove_hook``, and the ``on_data`` loop.
    The class that mixes it in sets ``decoder``, ``sink`` and ``on_data`` and defines
    ``wait()``."""

    decoder: BinanceDecoder
    sink: FeedSink
    on_data: Callable[[Any], object] | None

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
