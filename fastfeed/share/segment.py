"""The writer's side of a shared segment: create it under a name, move the rings into it, keep
it alive, close it.

A segment is a file in ``/dev/shm`` (``fastfeed.NAME``), mapped by the writer and by every
reader.  The writer holds an exclusive ``flock`` on it for as long as it serves: the kernel
drops the lock when the writer exits, even on SIGKILL, so a new writer can tell a crashed
writer's segment (take it over: mark it replaced, a new generation under the name) from a
live one (:class:`~fastfeed.share.SegmentBusy`).  docs/decisions/0601-shared-memory-rings.md.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import mmap
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fastfeed.core._decoder import SymbolTable
from fastfeed.core._ring import Ring
from fastfeed.share import _shm
from fastfeed.share.errors import SegmentBusy

log = logging.getLogger("fastfeed.share")

SHM_DIR = "/dev/shm"
PREFIX = "fastfeed."
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")
#: Bytes of symbol names the segment holds per symbol of the decoder's table (names are
#: copied as the table grows; what does not fit is counted in ``sym_dropped`` and logged).
SYMBOL_BYTES_EACH = 24
HEARTBEAT_INTERVAL = 0.25


def check_name(name: str) -> str:
    """``name`` if it can name a segment; ValueError naming the rule otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"segment name must be 1-101 characters of letters, digits, '_', '.', '-' "
            f"starting with a letter or digit, got {name!r}"
        )
    return name


def segment_path(name: str) -> str:
    if not os.path.isdir(SHM_DIR):
        raise OSError(f"shared segments need {SHM_DIR} (POSIX shared memory on Linux)")
    return os.path.join(SHM_DIR, PREFIX + check_name(name))


def dtype_descr(dt: np.dtype) -> dict[str, Any]:
    """A structured dtype as JSON: names, field formats, offsets and item size (padding
    kept, so rows have the writer's exact bytes)."""
    fields: Mapping[str, Any] = dt.fields or {}
    return {
        "names": list(dt.names or ()),
        "formats": [fields[n][0].str for n in dt.names or ()],
        "offsets": [fields[n][1] for n in dt.names or ()],
        "itemsize": dt.itemsize,
    }


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _take_over(path: str) -> None:
    """If ``path`` exists: refuse when its writer is alive, else mark it replaced so its
    readers stop.  The caller then renames its new segment over it."""
    import fcntl  # POSIX only: imported when a segment is made, not with fastfeed

    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = "?"
            with contextlib.suppress(Exception):
                with mmap.mmap(fd, 0) as mm:
                    pid = _shm.header_fields(mm)["writer_pid"]
            raise SegmentBusy(
                f"shared segment {path} is served by a live writer (pid {pid}); choose another "
                f"name or stop that writer"
            ) from None
        size = os.fstat(fd).st_size
        if size >= _shm.HEADER_SIZE:
            with mmap.mmap(fd, 0) as mm:
                old = _shm.header_fields(mm)
                _shm.mark_replaced(mm)
            log.warning(
                "shared segment %s: took over from writer pid %s (generation %#x), which is gone",
                path,
                old["writer_pid"],
                old["generation"],
            )
    finally:
        os.close(fd)


class SegmentWriter:
    """A segment being served: what ``feed.share(name)`` returns.

    ``rings`` maps names (``trades``, ``depth``, ``tickers``, ``partial``, ``events``, ``tops``,
    ``book_events``) to the writer's :class:`~fastfeed.Ring` objects, which live in the
    segment from now on.  Call :meth:`notify` after each batch of commits (a feed's hook does)
    and :meth:`heartbeat` a few times a second (a task does, when an event loop runs);
    :meth:`close` moves the rings back into private memory, marks the segment closed and
    removes its name.
    """

    def __init__(
        self,
        name: str,
        rings: Mapping[str, Ring],
        symbols: SymbolTable,
        meta: Mapping[str, Any] | None = None,
    ):
        self.name = check_name(name)
        self.path = segment_path(name)
        if not rings or len(rings) > _shm.MAX_RINGS:
            raise ValueError(f"a segment holds 1..{_shm.MAX_RINGS} rings, got {len(rings)}")
        self.generation = int.from_bytes(secrets.token_bytes(8), "little") or 1
        sym_max = _shm.table_capacity(symbols)
        sym_area_size = max(4096, SYMBOL_BYTES_EACH * sym_max)
        off = _align(_shm.HEADER_SIZE, 64)
        pubs = off
        off = _align(pubs + _shm.MAX_RINGS * _shm.RING_PUB_SIZE, 64)
        sym_offsets = off
        off = _align(sym_offsets + 4 * (sym_max + 2), 64)
        sym_area = off
        off = _align(sym_area + sym_area_size, 4096)
        table = []
        placed = []
        for i, (rname, ring) in enumerate(rings.items()):
            size = ring.capacity * ring.itemsize
            pub = pubs + i * _shm.RING_PUB_SIZE
            table.append(
                {
                    "name": rname,
                    "dtype": dtype_descr(ring.dtype),
                    "capacity": ring.capacity,
                    "offset": off,
                    "pub": pub,
                }
            )
            placed.append((ring, off, pub))
            off = _align(off + size, 4096)
        desc_offset = off
        desc = json.dumps(
            {
                "name": name,
                "generation": self.generation,
                "rings": table,
                "symbols": {
                    "offsets": sym_offsets,
                    "area": sym_area,
                    "max": sym_max,
                    "area_size": sym_area_size,
                },
                "meta": dict(meta or {}),
            }
        ).encode()
        total = _align(desc_offset + len(desc), 4096)

        import fcntl

        _take_over(self.path)
        tmp = f"{self.path}.{os.getpid()}.{self.generation:x}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, total)
            self._mm = mmap.mmap(fd, total)
            if hasattr(mmap, "MADV_HUGEPAGE"):
                # Huge pages where the system allows them for shared memory (shmem_enabled):
                # the private rings get them from numpy, and the TLB is most of what sharing
                # costs the writer (decision 0601).
                with contextlib.suppress(OSError):
                    self._mm.madvise(mmap.MADV_HUGEPAGE)
            self.rings = dict(rings)
            self.segment = _shm.Segment(
                self._mm,
                self.generation,
                desc,
                desc_offset,
                placed,
                symbols,
                sym_offsets,
                sym_area,
                sym_max,
                sym_area_size,
                os.getpid(),
            )
            os.rename(tmp, self.path)  # atomic: readers see the old segment or this whole one
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fd = fd
        self._ino = os.fstat(fd).st_ino
        self._task: asyncio.Task | None = None
        self._dropped_logged = 0
        self._on_close: list[Callable[[], object]] = []
        self.total_size = total
        atexit.register(self.close)  # the name goes with the process on a normal exit
        log.info(
            "shared segment %s: generation %#x, %d bytes, rings %s",
            self.path,
            self.generation,
            total,
            ", ".join(rings),
        )

    @property
    def closed(self) -> bool:
        return bool(self.segment.closed)

    def notify(self) -> None:
        """After a batch of commits: new symbol names, and a wake-up for sleeping readers."""
        self.segment.notify()
        if self._task is None:
            self._start_heartbeat()

    def heartbeat(self) -> None:
        """Keep the segment's heartbeat fresh while no rows arrive; frees dead readers'
        slots."""
        freed = self.segment.heartbeat()
        if freed:
            log.info("shared segment %s: freed %d slot(s) of reader(s) that died", self.name, freed)
        dropped = _shm.header_fields(self._mm)["sym_dropped"]
        if dropped > self._dropped_logged:
            self._dropped_logged = dropped
            log.error(
                "shared segment %s: %d symbol name(s) did not fit its symbol area; readers "
                "see their ids without names",
                self.name,
                dropped,
            )

    def _start_heartbeat(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._task = False  # type: ignore[assignment]  # no loop: the caller heartbeats
            return
        self._task = loop.create_task(self._heartbeat_loop())

    async def _heartbeat_loop(self) -> None:
        while not self.closed:
            try:
                self.heartbeat()
            except Exception:
                log.exception("shared segment %s: heartbeat failed", self.name)
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    def stats(self) -> dict[str, Any]:
        """Header counters: notifies, waiters, attached reader pids, symbols published."""
        h = _shm.header_fields(self._mm)
        return {
            "name": self.name,
            "generation": self.generation,
            "state": _shm.STATE_NAMES.get(h["state"], "?"),
            "notifies": h["notifies"],
            "wakes": h["wakes"],
            "waiters": h["waiters"],
            "readers": h["readers"],
            "symbols": h["nsym"],
            "symbols_dropped": h["sym_dropped"],
            "written": {n: r.written for n, r in self.rings.items()},
        }

    def close(self) -> None:
        """Stop serving: the rings move back into private memory (their owner keeps working),
        readers see the segment closed, and the name is removed."""
        if self.closed:
            return
        atexit.unregister(self.close)
        for fn in self._on_close:
            fn()
        if self._task:
            self._task.cancel()
        self.segment.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        os.close(self._fd)  # releases the flock
        with contextlib.suppress(BufferError):
            self._mm.close()  # views of the rings taken while shared keep it mapped otherwise
        log.info("shared segment %s: closed (generation %#x)", self.path, self.generation)

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SegmentWriter {self.name} generation={self.generation:#x} closed={self.closed}>"


def share_decoder(
    name: str,
    decoder: Any,
    *,
    events: Ring | None = None,
    book: Any = None,
    meta: Mapping[str, Any] | None = None,
) -> SegmentWriter:
    """Serve a decoder's rings (and ``events``, and a ``BookSet``'s or ``OrderBook``'s
    ``tops`` and ``events`` as ``tops`` / ``book_events``) under ``name``.  The caller calls
    ``notify()`` after its commits."""
    rings: dict[str, Ring] = {
        "trades": decoder.trades,
        "depth": decoder.depth,
        "tickers": decoder.tickers,
        "partial": decoder.partial,
    }
    if events is not None:
        rings["events"] = events
    if book is not None:
        books = getattr(book, "books", book)
        rings["tops"] = books.tops
        rings["book_events"] = books.events
    m = {"created": time.time(), **(meta or {})}
    return SegmentWriter(name, rings, decoder.symbols, m)


def share_feed(feed: Any, name: str, book: Any = None) -> SegmentWriter:
    """``feed.share(name)``: serve a :class:`~fastfeed.BinanceFeed`'s (or
    :class:`~fastfeed.Replay`'s) rings and events, and ``book``'s tops (an
    :class:`~fastfeed.OrderBook` on the feed).  Readers are woken once per socket read (the
    feed's hook); with a book, the hook applies the new depth rows to it first, so the tops of
    a read are published with its rows."""
    meta: dict[str, Any] = {"source": type(feed).__name__}
    streams = getattr(feed, "streams", None)
    if streams is not None:
        meta["streams"] = list(streams)
    writer = share_decoder(name, feed.decoder, events=feed.sink.events, book=book, meta=meta)
    # A C-level hook after the commit (the FeedSink consumer API) would save this Python call
    # per socket read; it is one call, and the wake itself is C (ff_seg_notify).
    if book is not None and hasattr(book, "poll"):

        def hook() -> None:
            book.poll()
            writer.notify()
    else:
        hook = writer.notify
    feed.add_hook(hook)
    writer._on_close.append(lambda: feed.remove_hook(hook))
    return writer
