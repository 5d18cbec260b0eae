"""Recording, replay and research exports.

* :class:`Recorder` (``BinanceFeed(..., record=dir)``, ``fastfeed record``): raw frames with
  receive time and connection, the feed's events and the order book's REST snapshots, in
  zstandard chunks (format: docs/recording-format.md).
* :class:`Replay` (``fastfeed replay``): a recording through the live message path, with the
  feed's interface (rings, ``async for``, events, stats); ``OrderBook(replay)`` takes its
  snapshots from the recording.
* :mod:`fastfeed.record.export`: rows to pyarrow, Parquet, pandas and polars.

zstandard is the ``record`` extra; pyarrow / pandas / polars the ``export`` extra.  Nothing
here is imported by ``import fastfeed`` beyond this module and the C-level tap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ChunkError", "Recorder", "Recording", "RecordingError", "Replay", "attach", "detach"]


def attach(feed: Any, record: Any) -> Any:
    """``BinanceFeed(record=...)``: a directory or a :class:`Recorder` (or None).  The
    recorder gets the feed's description (market, streams, ring sizes) for its META record,
    is started, and its tap is set on the feed's sink.  Returns it (or None)."""
    if record is None:
        return None
    from fastfeed.record.writer import Recorder

    owned = not isinstance(record, Recorder)
    rec = Recorder(record) if owned else record
    if feed.max_frame_size > rec.max_record:
        raise ValueError(
            f"max_frame_size {feed.max_frame_size} > the recorder's max_record {rec.max_record}"
        )
    d = feed.decoder
    # Symbol ids are handed out on first use; fix the streams' ids now, in stream order, so a
    # replay (which registers the recorded table first) gives every row the same ids.
    from fastfeed.feed.streams import stream_slot

    for s in feed.streams:
        ss = stream_slot(s)
        if ss is not None:
            d.symbols.id(ss[0])
    rec.symbols = d.symbols
    rec.meta.update(
        market=feed.market,
        streams=list(feed.streams),
        time_unit=feed.time_unit,
        url=feed.url.split("?")[0],
        max_frame_size=feed.max_frame_size,
        rings={n: getattr(d, n).capacity for n in ("trades", "depth", "tickers", "partial")},
        events=feed.sink.events.capacity,
    )
    rec.start()
    feed.sink.recorder = rec.tap
    feed._recorder_owned = owned
    return rec


def detach(feed: Any) -> None:
    """Stop recording ``feed``; closes the recorder if ``attach`` created it."""
    rec = getattr(feed, "recorder", None)
    if rec is None:
        return
    feed.sink.recorder = None
    if getattr(feed, "_recorder_owned", False):
        rec.close()


def __getattr__(name: str) -> Any:
    # lazy: zstandard and the replay machinery load only when used
    if name == "Recorder":
        from fastfeed.record.writer import Recorder

        return Recorder
    if name in ("Recording", "RecordingError", "ChunkError"):
        from fastfeed.record import reader

        return getattr(reader, name)
    if name == "Replay":
        from fastfeed.record.replay import Replay

        return Replay
    raise AttributeError(name)
