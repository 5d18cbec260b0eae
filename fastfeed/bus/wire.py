"""The bus's wire format, version 1: one NATS message is one header and whole ring rows.

A message carries the rows one socket read added to one ring, for one symbol (the events ring:
all its rows).  Everything is little-endian; the rows are the ring's own numpy bytes
(``rows.tobytes()``), so a subscriber copies them into a ring of the same dtype unchanged.

Header (80 bytes), then the symbol's name (ASCII, ``symbol_len`` bytes), then ``count`` rows:

    magic "FFBS", version u16, ring u8, flags u8, dtype crc32 u32, row size u32,
    run u64          the publisher's run id (random per Publisher): sequences restart with it
    first u64        sequence of the first row on this subject (rows of this ring and symbol
                     the publisher produced before it, dropped ones included)
    count u32, symbol id u32 (the publisher's id; rows carry it too),
    source u64       the source ring's position of the read's first row
    source_lost u64  rows of this ring the publisher lost to overwrite before copying them, in
                     total (only a read larger than the ring does that)
    events u64       the publisher's events ring position when the read was cut: the markers
                     before it precede these rows
    pub_ns i64       wall clock when the publisher cut the read (publish-to-receive latency)
    symbol_len u16, reserved u16, reserved u32

A subscriber finds a gap on a subject when ``first`` is past the rows it has: those rows are
lost, counted and logged, never silent (``docs/decisions/0610-bus-nats-jetstream.md``).  The
dtype's CRC is of its ``descr``: a publisher and a subscriber whose row layouts differ refuse
each other's rows instead of misreading them.
"""

from __future__ import annotations

import re
import struct
import sys
import zlib
from typing import Any, NamedTuple

import numpy as np

from fastfeed.core._rows import DEPTH_DTYPE, PARTIAL_DTYPE, TICKER_DTYPE, TRADE_DTYPE
from fastfeed.feed.session import EVENT_DTYPE

if sys.byteorder != "little":  # pragma: no cover - rows travel as the host's own bytes
    raise ImportError("fastfeed.bus needs a little-endian host")

MAGIC = b"FFBS"
VERSION = 1
HEADER = struct.Struct("<4sHBBIIQQIIQQQqHHI")
assert HEADER.size == 80

FLAG_BY_SYMBOL = 1  # the rows are one symbol's (the data rings); else the whole ring's (events)

#: Ring ids on the wire, and the subject token of each.
RINGS: dict[str, int] = {"trades": 0, "depth": 1, "tickers": 2, "partial": 3, "events": 4}
RING_NAMES = {v: k for k, v in RINGS.items()}
DTYPES: dict[str, np.dtype[Any]] = {
    "trades": TRADE_DTYPE,
    "depth": DEPTH_DTYPE,
    "tickers": TICKER_DTYPE,
    "partial": PARTIAL_DTYPE,
    "events": EVENT_DTYPE,
}


def dtype_crc(dtype: np.dtype[Any]) -> int:
    """CRC32 of a dtype's layout (field names, types and offsets, padding, size)."""
    layout = repr((dtype.descr, dtype.itemsize))  # descr lists padding as void fields
    return zlib.crc32(layout.encode())


DTYPE_CRCS = {name: dtype_crc(dt) for name, dt in DTYPES.items()}


class WireError(ValueError):
    """A message that is not a fastfeed bus message of a layout this version reads."""


class Header(NamedTuple):
    """A message's header fields (a tuple: built once per message received)."""

    ring: int
    flags: int
    dtype_crc: int
    row_size: int
    run: int
    first: int
    row_count: int
    symbol_id: int
    source: int
    source_lost: int
    events: int
    pub_ns: int
    symbol: str
    offset: int  # where the rows start in the message

    @property
    def ring_name(self) -> str:
        return RING_NAMES[self.ring]


def pack(
    ring: int,
    flags: int,
    crc: int,
    row_size: int,
    run: int,
    first: int,
    count: int,
    symbol_id: int,
    source: int,
    source_lost: int,
    events: int,
    pub_ns: int,
    symbol: bytes,
    rows: bytes,
) -> bytes:
    """One message: the header, the symbol's name, the rows' bytes."""
    head = HEADER.pack(
        MAGIC,
        VERSION,
        ring,
        flags,
        crc,
        row_size,
        run,
        first,
        count,
        symbol_id,
        source,
        source_lost,
        events,
        pub_ns,
        len(symbol),
        0,
        0,
    )
    return b"".join((head, symbol, rows))


def unpack(msg: bytes) -> Header:
    """The header of ``msg``; :class:`WireError` naming what is wrong with it."""
    if len(msg) < HEADER.size or msg[:4] != MAGIC:
        raise WireError("not a fastfeed bus message (bad magic or too short)")
    f = HEADER.unpack_from(msg)
    if f[1] != VERSION:
        raise WireError(f"bus wire version {f[1]} (this fastfeed reads version {VERSION})")
    ring, flags, crc, row_size = f[2], f[3], f[4], f[5]
    if ring not in RING_NAMES:
        raise WireError(f"unknown ring id {ring}")
    name = RING_NAMES[ring]
    if crc != DTYPE_CRCS[name] or row_size != DTYPES[name].itemsize:
        raise WireError(
            f"the publisher's {name} rows have another layout (dtype crc {crc:#x}, "
            f"{row_size} bytes; here {DTYPE_CRCS[name]:#x}, {DTYPES[name].itemsize}): "
            "run the same fastfeed version on both ends"
        )
    symlen = f[14]
    off = HEADER.size + symlen
    count = f[8]
    if len(msg) != off + count * row_size:
        raise WireError(f"{len(msg)} bytes for {count} rows of {row_size} bytes")
    symbol = bytes(msg[HEADER.size : off]).decode("ascii", "replace")
    return Header(
        ring, flags, crc, row_size, f[6], f[7], count, f[9], f[10], f[11], f[12], f[13], symbol, off
    )


_SUBJECT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def token(name: str) -> str:
    """``name`` as one subject token: characters NATS gives a meaning to (``.``, ``*``,
    ``>``, white space) and anything else outside ``[A-Za-z0-9_-]`` become ``_``; the header
    carries the exact name."""
    return _SUBJECT_TOKEN.sub("_", name) or "_"


def subject(prefix: str, market: str, ring: str, symbol: str | None = None) -> str:
    """``<prefix>.<market>.<ring>.<SYMBOL>`` for a data ring's rows of one symbol;
    ``<prefix>.<market>.events`` for the event markers."""
    base = f"{prefix}.{token(market)}.{ring}"
    return base if symbol is None else f"{base}.{token(symbol)}"
