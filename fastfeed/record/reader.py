"""Reading a recording: chunks checked by length and CRC, bad ones reported by file and offset.

:class:`Recording` walks the files of a recording directory (or one file) chunk by chunk.  A
chunk whose header or bytes fail their checks is never decoded: it is reported as a
:class:`ChunkError` naming the file and byte offset (logged and kept in
``Recording.errors``; raised with ``strict=True``), and reading goes on with the next
chunk (the next valid chunk header, if the bad one's own header cannot be trusted).  A
chunk cut short at the end of a file (a killed writer, a full disk) is reported as torn.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import queue
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastfeed.record import format as fmt
from fastfeed.record.writer import _zstd, recording_files

log = logging.getLogger("fastfeed.record")


class RecordingError(Exception):
    """A recording cannot be read as asked."""


class ChunkError(RecordingError):
    """A bad chunk: ``file``, byte ``offset`` of its header, and ``reason``."""

    def __init__(self, file: Path, offset: int, reason: str):
        super().__init__(f"{file}: chunk at offset {offset}: {reason}")
        self.file, self.offset, self.reason = Path(file), offset, reason

    @property
    def torn(self) -> bool:
        return self.reason.startswith("torn")


@dataclass
class Chunk:
    file: Path
    offset: int
    header: fmt.ChunkHeader
    raw: bytes  # the decompressed records


@dataclass
class Record:
    kind: int
    conn: int
    recv_ns: int
    payload: bytes


def iter_records(raw: bytes) -> Iterator[Record]:
    """The records of a decompressed chunk (Python speed: tools and tests)."""
    pos, n, hs = 0, len(raw), fmt.RECORD_HEADER.size
    while pos < n:
        recv_ns, conn, ln, kind, _, _ = fmt.RECORD_HEADER.unpack_from(raw, pos)
        if pos + hs + ln > n:
            raise RecordingError(f"record at {pos} runs past its chunk ({n} bytes)")
        yield Record(kind, conn, recv_ns, raw[pos + hs : pos + hs + ln])
        pos += hs + ln


class Recording:
    """A recording directory (or one ``.ffr`` file), read in order.

    ``chunks()`` yields verified, decompressed :class:`Chunk` objects (``prefetch=True``
    decompresses in a background thread, ahead of the consumer); ``records()`` yields every
    :class:`Record`; ``meta`` is the first file's META object.  Problems go to ``errors``
    (and the log), or raise with ``strict=True``.
    """

    def __init__(self, path: str | os.PathLike, *, strict: bool = False):
        self.path = Path(path)
        self.files = recording_files(self.path)
        if not self.files:
            raise RecordingError(f"no recording files in {self.path}")
        self.strict = strict
        self.errors: list[ChunkError] = []
        self._meta: dict | None = None

    # ------------------------------------------------------------------ chunks
    def _problem(self, file: Path, offset: int, reason: str) -> None:
        err = ChunkError(file, offset, reason)
        if self.strict:
            raise err
        self.errors.append(err)
        log.error("recording: %s", err)

    def _file_chunks(self, file: Path) -> Iterator[Chunk]:
        dec = _zstd().ZstdDecompressor()
        with open(file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                self._problem(file, 0, "empty file")
                return
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        with mm:
            head = fmt.FILE_HEADER.unpack_from(mm, 0) if size >= fmt.FILE_HEADER.size else None
            if head is None or head[0] != fmt.FILE_MAGIC:
                self._problem(file, 0, "not a fastfeed recording (bad file header)")
                off = self._resync(mm, 0, size)
            elif head[1] != fmt.VERSION:
                raise RecordingError(f"{file}: format version {head[1]}, this reader knows 1")
            else:
                off = fmt.FILE_HEADER.size
            hs = fmt.CHUNK_HEADER.size
            while off < size:
                if size - off < hs:
                    self._problem(file, off, f"torn chunk header ({size - off} of {hs} bytes)")
                    return
                h = fmt.ChunkHeader.parse(mm[off : off + hs])
                if h is None:
                    self._problem(file, off, "bad chunk header (magic or header CRC)")
                    off = self._resync(mm, off + 1, size)
                    continue
                end = off + hs + h.comp_len
                if end > size:
                    self._problem(
                        file, off, f"torn chunk ({size - off - hs} of {h.comp_len} bytes)"
                    )
                    return
                data = mm[off + hs : end]
                if zlib.crc32(data) != h.crc:
                    self._problem(file, off, "checksum mismatch (corrupted chunk)")
                    off = end  # the header's own CRC held: its length can be trusted
                    continue
                try:
                    if h.codec == fmt.CODEC_ZSTD:
                        raw = dec.decompress(data, max_output_size=h.raw_len)
                    elif h.codec == fmt.CODEC_NONE:
                        raw = data
                    else:
                        raise ValueError(f"unknown codec {h.codec}")
                    if len(raw) != h.raw_len:
                        raise ValueError(f"{len(raw)} bytes, header says {h.raw_len}")
                except Exception as e:
                    self._problem(file, off, f"cannot decompress: {e}")
                    off = end
                    continue
                yield Chunk(file, off, h, raw)
                off = end

    @staticmethod
    def _resync(mm: mmap.mmap, start: int, size: int) -> int:
        """Offset of the next valid chunk header at or after ``start`` (``size`` if none)."""
        while True:
            i = mm.find(fmt.CHUNK_MAGIC, start)
            if i < 0:
                return size
            if fmt.ChunkHeader.parse(mm[i : i + fmt.CHUNK_HEADER.size]) is not None:
                return i
            start = i + 1

    def chunks(self, *, prefetch: bool = False, depth: int = 4) -> Iterator[Chunk]:
        """Every good chunk of every file, in order."""
        if not prefetch:
            for f in self.files:
                yield from self._file_chunks(f)
            return
        q: queue.Queue = queue.Queue(maxsize=depth)
        stop = threading.Event()
        done = object()

        def work():
            try:
                for f in self.files:
                    for c in self._file_chunks(f):
                        if stop.is_set():
                            return
                        q.put(c)
                q.put(done)
            except BaseException as e:
                q.put(e)

        t = threading.Thread(target=work, name="fastfeed-replay-read", daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while t.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(0.01)

    # ------------------------------------------------------------------ records
    def records(self) -> Iterator[Record]:
        """Every record of every good chunk, in order."""
        for c in self.chunks():
            yield from iter_records(c.raw)

    @property
    def meta(self) -> dict:
        """The META object of the first file (market, streams, ring sizes, ...)."""
        if self._meta is None:
            self._meta = {}
            for c in self._file_chunks(self.files[0]):
                for r in iter_records(c.raw):
                    if r.kind == fmt.META:
                        self._meta = json.loads(r.payload)
                        return self._meta
                break
        return self._meta

    def summary(self) -> dict:
        """Counts by record kind, time span, bytes, and problems (reads everything)."""
        kinds: dict[str, int] = {}
        first = last = 0
        chunks = raw = 0
        for c in self.chunks():
            chunks += 1
            raw += len(c.raw)
            if c.header.first_ns and not first:
                first = c.header.first_ns
            last = max(last, c.header.last_ns)
            for r in iter_records(c.raw):
                name = fmt.KIND_NAMES.get(r.kind, str(r.kind))
                kinds[name] = kinds.get(name, 0) + 1
        return {
            "files": len(self.files),
            "bytes": sum(f.stat().st_size for f in self.files),
            "raw_bytes": raw,
            "chunks": chunks,
            "records": kinds,
            "first_ns": first,
            "last_ns": last,
            "errors": [str(e) for e in self.errors],
        }
