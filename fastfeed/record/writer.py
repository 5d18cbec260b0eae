"""``Recorder``: raw frames, feed events and REST snapshots into rotating, compressed files.

The hot path is :class:`~fastfeed.core._tap.FrameTap` (a C-level copy into a preallocated
buffer).  A background thread takes the buffer when it is full or at least every
``chunk_interval`` seconds, compresses it with zstandard (which releases the GIL) and appends
it as one chunk with one ``write`` call, so a process killed at any moment loses at most the
chunk being written (and what was buffered).  Files rotate by size and age; ``retain_bytes``
bounds the directory's disk use by deleting the oldest files.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from fastfeed.core._tap import FrameTap
from fastfeed.record import format as fmt

log = logging.getLogger("fastfeed.record")

FILE_SUFFIX = ".ffr"
INDEX_NAME = "index.jsonl"


def _zstd():
    try:
        import zstandard
    except ImportError as e:  # pragma: no cover - the extra is missing
        raise ImportError("recording needs zstandard: pip install 'fastfeed[record]'") from e
    return zstandard


def recording_files(path: str | os.PathLike) -> list[Path]:
    """The recording files of ``path`` (a directory, or one file), oldest first."""
    p = Path(path)
    if p.is_dir():
        return sorted(p.glob("ff-*" + FILE_SUFFIX))
    if p.exists():
        return [p]
    raise FileNotFoundError(f"no recording at {p}")


class Recorder:
    """Writes a recording into directory ``out``.

    ``BinanceFeed(..., record=Recorder(out))`` (or ``record="dir"``) attaches it: every data
    message is recorded with its receive time and connection id, every row of ``feed.events``,
    and every REST snapshot an :class:`~fastfeed.OrderBook` on that feed fetches.

    ``chunk_bytes``: a chunk is handed to the writer once it holds this much (before
    compression).  ``max_record``: the largest frame recorded as is (a feed's
    ``max_frame_size`` must not exceed it); the hot-path buffer is ``chunk_bytes +
    max_record``, preallocated.
    ``chunk_interval``: a chunk is closed at least this often (seconds).  ``rotate_bytes`` /
    ``rotate_seconds``: start a new file past this size / age.  ``retain_bytes``: delete the
    oldest files while the directory holds more (None: keep everything).  ``level``: zstd
    level (None: chunks stored uncompressed).  ``meta``: extra JSON-able fields for the META
    record of every file.  ``max_pending_bytes``: how much (uncompressed) may wait for the
    disk; a chunk handed over past that is dropped, counted (``lost_chunks``,
    ``lost_records``, ``queue_full``) and logged, so a slow disk costs records, never memory
    or feed time.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        chunk_bytes: int = 1 << 20,
        max_record: int = 1 << 20,
        chunk_interval: float = 1.0,
        rotate_bytes: int = 256 << 20,
        rotate_seconds: float = 3600.0,
        retain_bytes: int | None = None,
        level: int | None = 1,
        meta: dict | None = None,
        max_pending_bytes: int = 64 << 20,
    ):
        if chunk_interval <= 0:
            raise ValueError("chunk_interval must be > 0")
        if retain_bytes is not None and retain_bytes < rotate_bytes:
            raise ValueError("retain_bytes must be >= rotate_bytes (one full file)")
        self.out = Path(out)
        self.chunk_interval = chunk_interval
        self.rotate_bytes, self.rotate_seconds = rotate_bytes, rotate_seconds
        self.retain_bytes = retain_bytes
        self.level = level
        self.meta: dict[str, Any] = dict(meta or {})
        self.max_record = max_record
        self.symbols = None  # the feed's SymbolTable: its names go into every META record
        self.tap = FrameTap(chunk_bytes + max_record + fmt.RECORD_HEADER.size, chunk_bytes)
        self.tap.on_full = self._on_full
        self._zstd = _zstd()
        # at most max_pending_bytes wait for the disk; past that, chunks are dropped and
        # counted (_enqueue_locked): memory stays bounded and the feed never waits
        self._q: queue.Queue = queue.Queue()
        if max_pending_bytes < chunk_bytes:
            raise ValueError("max_pending_bytes must be >= chunk_bytes (one chunk)")
        self.max_pending_bytes = max_pending_bytes
        # Buffers handed back are kept for reuse up to what may be in flight at once (the
        # pending bytes' worth, the one being written and the one being filled): a writer
        # behind the feed then never makes the read path allocate and fault in a new one.
        self._spares = max_pending_bytes // chunk_bytes + 2
        self._pending_bytes = 0  # raw bytes in _q, under _lock
        self._lock = threading.Lock()  # keeps chunks in order: a take and its enqueue are one
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._fd: int | None = None
        self.file: Path | None = None
        self._file_opened = 0.0
        self._file_size = 0
        self._file_chunks = 0
        self._file_records = 0
        self._file_first = self._file_last = 0
        self._seq = 0
        self.counters = {
            "chunks": 0,
            "files": 0,
            "raw_bytes": 0,
            "written_bytes": 0,
            "deleted_files": 0,
            "deleted_bytes": 0,
            "queue_full": 0,
            "write_errors": 0,
            "lost_chunks": 0,
            "lost_records": 0,
        }
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Recorder:
        """Create the directory and start the writer thread (idempotent)."""
        if self._thread is not None:
            return self
        self.out.mkdir(parents=True, exist_ok=True)
        existing = recording_files(self.out)
        self._file_seq = 1 + max((self._file_number(p) for p in existing), default=0)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fastfeed-recorder", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Write what is buffered, close the file and stop the thread (idempotent)."""
        if self._thread is None:
            return
        self._stop.set()
        self._q.put(None)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ records
    def snapshot(self, symbol: str, limit: int, body: bytes, recv_ns: int | None = None) -> None:
        """Record a REST depth snapshot body as received."""
        payload = fmt.snapshot_payload(symbol, limit, body)
        self._put_cold(fmt.SNAPSHOT, 0, time.time_ns() if recv_ns is None else recv_ns, payload)

    def _put_cold(self, kind: int, conn: int, recv_ns: int, payload: bytes) -> None:
        if not self.tap.put_record(kind, conn, recv_ns, payload):
            # larger than the buffer: a chunk of its own, after what is buffered
            rec = fmt.record_bytes(kind, conn, recv_ns, payload)
            with self._lock:
                self._enqueue_locked(self.tap.take())
                self._enqueue_locked((rec, len(rec), 1, recv_ns, recv_ns))

    def _on_full(self) -> None:
        # hot path, once per full buffer
        with self._lock:
            self._enqueue_locked(self.tap.take())

    def _enqueue_locked(self, item: tuple[Any, ...] | None) -> None:
        if item is None:
            return
        if self._thread is None or self.error is not None:
            # closed, or the writer failed (disk full, ...): count what is lost, keep memory flat
            self.counters["lost_records"] += item[2]
            if not self.counters["lost_chunks"]:
                log.error("recorder: not writing (%s); records are counted as lost", self.error)
            self.counters["lost_chunks"] += 1
            if isinstance(item[0], bytearray):
                self.tap.give_back(item[0], self._spares)
            return
        if self._pending_bytes + item[1] > self.max_pending_bytes:
            # bounded: a disk slower than the feed loses whole chunks (counted, logged), it
            # never stalls the feed or grows memory past max_pending_bytes
            self.counters["queue_full"] += 1
            self.counters["lost_chunks"] += 1
            self.counters["lost_records"] += item[2]
            log.warning(
                "recorder: %d bytes already wait for the disk; a chunk of %d records dropped"
                " (%d chunks lost so far)",
                self._pending_bytes,
                item[2],
                self.counters["lost_chunks"],
            )
            if isinstance(item[0], bytearray):
                self.tap.give_back(item[0], self._spares)
            return
        self._pending_bytes += item[1]
        self._q.put_nowait(item)

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        comp = None if self.level is None else self._zstd.ZstdCompressor(level=self.level)
        next_tick = time.monotonic() + self.chunk_interval
        try:
            while True:
                timeout = max(0.0, next_tick - time.monotonic())
                try:
                    item = self._q.get(timeout=timeout)
                except queue.Empty:
                    item = ()
                if item:
                    with self._lock:
                        self._pending_bytes -= item[1]
                stop = item is None  # close(): drain everything, then stop
                if item:
                    self._write(comp, item)
                if stop or time.monotonic() >= next_tick:
                    # the timer: older full buffers first, then the partial one.  close()'s
                    # None may be among them (it raced this tick): stop after writing them.
                    with self._lock:
                        items, stopped = self._drain_locked()
                        items.append(self.tap.take())
                    for it in items:
                        self._write(comp, it)
                    if stop or stopped:
                        break
                    next_tick = time.monotonic() + self.chunk_interval
        except BaseException as e:  # pragma: no cover - disk errors
            self.error = e
            self.counters["write_errors"] += 1
            log.exception("recorder: writer thread failed; recording stopped")
        finally:
            self._close_file()

    def _drain_locked(self) -> tuple[list[Any], bool]:
        """Everything queued, in order, and whether close()'s None was among it."""
        out: list[Any] = []
        stop = False
        while True:
            try:
                it = self._q.get_nowait()
            except queue.Empty:
                return out, stop
            if it is None:
                stop = True
            else:
                self._pending_bytes -= it[1]
                out.append(it)

    def _write(self, comp: Any, item: tuple[Any, ...] | None) -> None:
        if item is None:
            return
        buf, n, count, first, last = item
        if self._fd is None or self._should_rotate():
            self._rotate()
        raw = memoryview(buf)[:n]
        try:
            if comp is None:
                self._append(fmt.CODEC_NONE, raw, n, count, first, last)
            else:
                self._append(fmt.CODEC_ZSTD, comp.compress(raw), n, count, first, last)
        finally:
            raw.release()
        if isinstance(buf, bytearray):
            self.tap.give_back(buf, self._spares)

    def _append(
        self, codec: int, data: Any, raw_len: int, count: int, first: int, last: int
    ) -> None:
        head = fmt.chunk_header(codec, data, raw_len, count, first, last, self._seq)
        self._seq += 1
        assert self._fd is not None, "_write() opens the file first"
        os.writev(self._fd, (head, data))  # one call: a chunk is never interleaved
        n = len(head) + len(data)
        self._file_size += n
        self._file_chunks += 1
        self._file_records += count
        if not self._file_first:
            self._file_first = first
        self._file_last = last
        self.counters["chunks"] += 1
        self.counters["raw_bytes"] += raw_len
        self.counters["written_bytes"] += n

    def _should_rotate(self) -> bool:
        return (
            self._file_size >= self.rotate_bytes
            or time.monotonic() - self._file_opened >= self.rotate_seconds
        )

    @staticmethod
    def _file_number(p: Path) -> int:
        try:
            return int(p.name.split("-")[1])
        except (IndexError, ValueError):
            return 0

    def _rotate(self) -> None:
        self._close_file()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        self.file = self.out / f"ff-{self._file_seq:06d}-{stamp}Z{FILE_SUFFIX}"
        self._file_seq += 1
        self._fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(self._fd, fmt.file_header())
        self._file_opened = time.monotonic()
        self._file_size = fmt.FILE_HEADER.size
        self._file_chunks = self._file_records = 0
        self._file_first = self._file_last = 0
        self.counters["files"] += 1
        # every file describes the run on its own
        meta = dict(self.meta, format_version=fmt.VERSION, file=self.file.name)
        if self.symbols is not None:
            meta["symbols"] = self.symbols.names()[1:]  # ids 1.. at this file's start
        rec = fmt.record_bytes(fmt.META, 0, time.time_ns(), json.dumps(meta).encode())
        self._append(fmt.CODEC_NONE, rec, len(rec), 1, 0, 0)
        self._retain()

    def _close_file(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        assert self.file is not None, "set with _fd"
        entry = {
            "file": self.file.name,
            "bytes": self._file_size,
            "chunks": self._file_chunks,
            "records": self._file_records,
            "first_ns": self._file_first,
            "last_ns": self._file_last,
        }
        with open(self.out / INDEX_NAME, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def _retain(self) -> None:
        if self.retain_bytes is None:
            return
        files = recording_files(self.out)
        sizes = {p: p.stat().st_size for p in files}
        total = sum(sizes.values())
        for p in files:
            if total <= self.retain_bytes or p == self.file:
                break
            p.unlink()
            total -= sizes[p]
            self.counters["deleted_files"] += 1
            self.counters["deleted_bytes"] += sizes[p]
            log.info("recorder: retention deleted %s (%d bytes)", p.name, sizes[p])

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict:
        """Writer counters plus the tap's (records, frames, drops)."""
        return {**self.counters, **self.tap.stats(), "file": str(self.file) if self.file else None}
