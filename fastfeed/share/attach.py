"""The reader's side: :func:`attach` maps a served segment and gives its rings with the
:class:`~fastfeed.Ring` reading API (:class:`~fastfeed.share.SharedRing`)."""

from __future__ import annotations

import atexit
import contextlib
import json
import mmap
import os
import time
from typing import Any

import numpy as np

from fastfeed.share import _shm
from fastfeed.share._shm import SharedRing
from fastfeed.share.errors import SegmentError, SegmentNotFound, StaleSegment
from fastfeed.share.segment import segment_path


def _open(path: str) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR)  # readers write their slot and the waiter count
    try:
        return mmap.mmap(fd, 0)
    finally:
        os.close(fd)


class SharedFeed:
    """A served feed, attached: its rings as :class:`~fastfeed.share.SharedRing` attributes
    (``trades``, ``depth``, ``tickers``, ``partial``, ``events``; ``tops`` and ``book_events``
    when a book is served), the symbol names, and the writer's identity (``generation``,
    ``writer_pid``).  One writer, any number of readers; a reader never slows or stops the
    writer."""

    def __init__(self, name: str, mm: mmap.mmap):
        self.name = name
        self._mm = mm
        h = _shm.header_fields(mm)
        if h["magic"] != _shm.MAGIC or h["layout"] != _shm.LAYOUT:
            raise SegmentError(
                f"{segment_path(name)} is not a fastfeed segment of layout {_shm.LAYOUT} "
                f"(magic {h['magic']:#x}, layout {h['layout']})"
            )
        desc = json.loads(mm[h["desc_offset"] : h["desc_offset"] + h["desc_len"]])
        self.generation: int = h["generation"]
        self.writer_pid: int = h["writer_pid"]
        self.meta: dict[str, Any] = desc.get("meta", {})
        self._sym = desc["symbols"]
        self._names: list[str] = []
        self._pid = os.getpid()
        self._slot = _shm.claim_slot(mm, self._pid)
        atexit.register(self.close)
        self.rings: dict[str, SharedRing] = {}
        for r in desc["rings"]:
            dt = np.dtype(r["dtype"])
            self.rings[r["name"]] = SharedRing(
                mm, r["name"], dt, r["capacity"], r["offset"], r["pub"], self._slot
            )
        self._any = next(iter(self.rings.values()))
        self._seen = self._any.notify_word

    def __getattr__(self, name: str) -> SharedRing:
        rings = self.__dict__.get("rings", {})
        if name in rings:
            return rings[name]
        raise AttributeError(
            f"{type(self).__name__} {self.__dict__.get('name')!r} has no ring {name!r} "
            f"(it serves {', '.join(rings)})"
        )

    # -------------------------------------------------------------- symbols

    def symbol(self, i: int) -> str:
        """Name of symbol id ``i`` (ids as in the rows' ``symbol`` field).  A row of a
        brand-new symbol can arrive before its name (names are published once per socket
        read): KeyError only if the writer never published it."""
        if i >= len(self._names):
            self._refresh_symbols()
            if i >= len(self._names):
                raise KeyError(f"symbol id {i} is not published (names 0..{len(self._names) - 1})")
        return self._names[i]

    def symbol_id(self, name: str) -> int | None:
        """Id of ``name`` (ASCII case folded), or None if the writer has not seen it."""
        self._refresh_symbols()
        up = name.upper()
        for i, n in enumerate(self._names):
            if n.upper() == up:
                return i
        return None

    @property
    def symbols(self) -> list[str]:
        """Names by id (id 0 is the empty name)."""
        self._refresh_symbols()
        return list(self._names)

    def _refresh_symbols(self) -> None:
        self._names += _shm.read_symbols(
            self._mm, self._sym["offsets"], self._sym["area"], len(self._names)
        )

    # -------------------------------------------------------------- waiting and liveness

    def wait(self, timeout: float | None = None, spin: float = 0.0, poll: float = 0.0) -> bool:
        """Block until the writer committed something since the last call (it notifies once
        per socket read); False after ``timeout`` seconds.  ``spin`` seconds of busy-waiting
        first, then sleep on the segment's futex (the writer pays a wake-up syscall), or with
        ``poll`` > 0 nap ``poll`` seconds between looks (the writer pays nothing; see
        :meth:`SharedRing.wait`).  Raises :class:`StaleSegment` when the writer closed the
        segment, a restarted writer replaced it, or the writer died."""
        got = self._any.wait_word(self._seen, timeout, spin, poll)
        if got is None:
            return False
        self._seen = got
        return True

    @property
    def state(self) -> str:
        """``live``, ``closed`` or ``replaced`` (see :class:`SharedRing.state`)."""
        return self._any.state

    @property
    def heartbeat_age(self) -> float:
        """Seconds since the writer's last notify or heartbeat (it beats 4 times a second
        while an event loop runs it)."""
        return max(0.0, (time.time_ns() - _shm.header_fields(self._mm)["heartbeat_ns"]) / 1e9)

    def writer_alive(self) -> bool:
        """The writer process exists and the segment is live."""
        if self.state != "live":
            return False
        try:
            os.kill(self.writer_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def check(self) -> None:
        """Raise :class:`StaleSegment` if the segment under this name is no longer the one
        attached (a restarted writer), or the writer is gone."""
        if not self.writer_alive():
            raise StaleSegment(
                f"shared segment {self.name!r} generation {self.generation:#x}: "
                f"state {self.state}, writer pid {self.writer_pid} "
                f"{'alive' if _pid_alive(self.writer_pid) else 'gone'}; attach again"
            )

    def reattach(self, timeout: float = 0.0) -> SharedFeed:
        """A new :class:`SharedFeed` on the segment now under this name (the restarted
        writer's generation); this one is closed.  Cursors do not carry over: the new
        generation's sequences start again at 0."""
        new = attach(self.name, timeout=timeout)
        self.close()
        return new

    def stats(self) -> dict[str, Any]:
        h = _shm.header_fields(self._mm)
        return {
            "name": self.name,
            "generation": self.generation,
            "writer_pid": self.writer_pid,
            "state": self.state,
            "heartbeat_age": self.heartbeat_age,
            "readers": h["readers"],
            "written": {n: r.written for n, r in self.rings.items()},
        }

    def close(self) -> None:
        """Give the reader slot back.  The mapping goes when the last ring and view go."""
        if self._slot >= 0:
            _shm.release_slot(self._mm, self._slot, self._pid)
            self._slot = -1
            atexit.unregister(self.close)

    def __enter__(self) -> SharedFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<SharedFeed {self.name} generation={self.generation:#x} "
            f"writer={self.writer_pid} rings={list(self.rings)}>"
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def attach(name: str, timeout: float = 0.0) -> SharedFeed:
    """Attach to the feed served as ``name`` (``feed.share(name)`` or ``fastfeed serve
    --name NAME``) from any process on this machine.  ``timeout``: seconds to wait for the
    segment to appear (0: raise :class:`SegmentNotFound` at once)."""
    path = segment_path(name)
    deadline = time.monotonic() + timeout
    while True:
        try:
            mm = _open(path)
        except FileNotFoundError:
            if time.monotonic() >= deadline:
                raise SegmentNotFound(
                    f"no shared segment {name!r} ({path}): is `fastfeed serve ... --name "
                    f"{name}` (or feed.share({name!r})) running on this machine?"
                ) from None
            time.sleep(0.01)
            continue
        if len(mm) < _shm.HEADER_SIZE:
            mm.close()
            raise SegmentError(f"{path} is too small to be a fastfeed segment")
        st = _shm.header_fields(mm)["state"]
        if st == _shm.STATE_LIVE:
            return SharedFeed(name, mm)
        with contextlib.suppress(BufferError):
            mm.close()
        if time.monotonic() >= deadline:
            raise StaleSegment(
                f"shared segment {name!r} ({path}) is {_shm.STATE_NAMES.get(st, st)}, not live"
            )
        time.sleep(0.01)
