"""The recording format, version 1 (byte layout in docs/recording-format.md).

A recording is a directory of files ``ff-<seq>-<utc>.ffr``.  A file is a 16-byte file header,
then chunks.  A chunk is a 48-byte header (its own CRC32 covers it) and a zstandard frame;
decompressed, a chunk is a run of records, each a 20-byte record header and a payload.
Everything is little-endian.
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass

if sys.byteorder != "little":  # pragma: no cover - the C tap writes native integers
    raise ImportError("fastfeed.record needs a little-endian host")

VERSION = 1
FILE_MAGIC = b"FFRECORD"
# magic, version u16, flags u16, reserved u32
FILE_HEADER = struct.Struct("<8sHHI")
CHUNK_MAGIC = b"FFCK"
# magic, codec u8, flags u8, reserved u16, compressed length u32, raw length u32,
# record count u32, crc32 of the compressed bytes u32, first recv_ns i64, last recv_ns i64,
# chunk sequence u32, crc32 of the 44 bytes before it u32
CHUNK_HEADER = struct.Struct("<4sBBHIIIIqqII")
# recv_ns i64, conn u32, payload length u32, kind u8, flags u8, reserved u16
RECORD_HEADER = struct.Struct("<qIIBBH")
# EVENT payload: reason u8, slot u8, reserved u16, symbol u32, expected i64, got i64
EVENT_PAYLOAD = struct.Struct("<BBHIqq")
# SNAPSHOT payload prefix: limit u32, symbol length u16; then the symbol (ASCII), then the body
SNAPSHOT_PREFIX = struct.Struct("<IH")

CODEC_NONE = 0
CODEC_ZSTD = 1

# record kinds
FRAME = 1  # one WebSocket message as received (payload: its bytes)
EVENT = 2  # a row of the feed's events ring (payload: EVENT_PAYLOAD)
SNAPSHOT = 3  # a REST depth snapshot body as received (payload: SNAPSHOT_PREFIX, symbol, body)
META = 4  # JSON object describing the run (market, streams, options); first record of a file
KIND_NAMES = {FRAME: "frame", EVENT: "event", SNAPSHOT: "snapshot", META: "meta"}

assert FILE_HEADER.size == 16 and CHUNK_HEADER.size == 48 and RECORD_HEADER.size == 20
assert EVENT_PAYLOAD.size == 24


def file_header() -> bytes:
    return FILE_HEADER.pack(FILE_MAGIC, VERSION, 0, 0)


def chunk_header(
    codec: int, comp: bytes, raw_len: int, count: int, first_ns: int, last_ns: int, seq: int
) -> bytes:
    """The 48-byte header of a chunk whose compressed bytes are ``comp``."""
    head = CHUNK_HEADER.pack(
        CHUNK_MAGIC,
        codec,
        0,
        0,
        len(comp),
        raw_len,
        count,
        zlib.crc32(comp),
        first_ns,
        last_ns,
        seq & 0xFFFFFFFF,
        0,
    )
    return head[:44] + struct.pack("<I", zlib.crc32(head[:44]))


@dataclass(frozen=True)
class ChunkHeader:
    codec: int
    comp_len: int
    raw_len: int
    count: int
    crc: int
    first_ns: int
    last_ns: int
    seq: int

    @classmethod
    def parse(cls, b: bytes) -> ChunkHeader | None:
        """The header in ``b`` (48 bytes), or None if its magic or its own CRC is wrong."""
        if len(b) < CHUNK_HEADER.size or b[:4] != CHUNK_MAGIC:
            return None
        f = CHUNK_HEADER.unpack(b[: CHUNK_HEADER.size])
        if zlib.crc32(b[:44]) != f[11]:
            return None
        return cls(f[1], f[4], f[5], f[6], f[7], f[8], f[9], f[10])


def snapshot_payload(symbol: str, limit: int, body: bytes) -> bytes:
    s = symbol.encode("ascii")
    return SNAPSHOT_PREFIX.pack(limit, len(s)) + s + bytes(body)


def parse_snapshot_payload(p: bytes) -> tuple[str, int, bytes]:
    """(symbol, limit, body) of a SNAPSHOT record's payload."""
    limit, n = SNAPSHOT_PREFIX.unpack_from(p)
    o = SNAPSHOT_PREFIX.size
    return bytes(p[o : o + n]).decode("ascii"), limit, bytes(p[o + n :])


def record_bytes(kind: int, conn: int, recv_ns: int, payload: bytes) -> bytes:
    """One record (header + payload) built in Python: the cold kinds (META, SNAPSHOT)."""
    return RECORD_HEADER.pack(recv_ns, conn, len(payload), kind, 0, 0) + bytes(payload)
