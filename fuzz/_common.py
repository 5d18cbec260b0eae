"""Shared pieces of the fuzz harnesses: a byte reader, the corpus location and the atheris
entry point.

Each harness is a module with a pure ``one_input(data: bytes)`` that raises on any broken
invariant, so the same function runs under atheris (``scripts/fuzz.sh``), on a crash input
by hand (``python fuzz/fuzz_decoder.py crash-...``) and in ``tests/test_fuzz_regressions.py``
without atheris installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The book and the feed log every gap and resync they count; at thousands of inputs a second
# that is noise and time, and the harnesses check the counters instead.
logging.disable(logging.CRITICAL)


def corpus_dir() -> Path:
    """The recorded Binance corpus (``FASTFEED_CORPUS`` or ``../shared/corpus/binance``)."""
    env = os.environ.get("FASTFEED_CORPUS")
    return Path(env) if env else ROOT.parent / "shared" / "corpus" / "binance"


class Reader:
    """Consumes a fuzz input front to back; reads past the end return zeros / empty bytes,
    so every input is a valid program (libFuzzer's mutations stay meaningful)."""

    __slots__ = ("data", "i")

    def __init__(self, data: bytes):
        self.data, self.i = data, 0

    def left(self) -> int:
        return len(self.data) - self.i

    def u8(self) -> int:
        if self.i >= len(self.data):
            return 0
        self.i += 1
        return self.data[self.i - 1]

    def u16(self) -> int:
        return self.u8() | self.u8() << 8

    def varint(self) -> int:
        """LEB128, at most 9 bytes (63 bits)."""
        v = shift = 0
        for _ in range(9):
            b = self.u8()
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return v

    def take(self, n: int) -> bytes:
        out = self.data[self.i : self.i + n]
        self.i += len(out)
        return out

    def rest(self) -> bytes:
        return self.take(self.left())


def varint(v: int) -> bytes:
    """Encodes what :meth:`Reader.varint` reads (seed construction); ``v >= 0``."""
    if v < 0:
        raise ValueError(f"varint of a negative number: {v}")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def instrumented():
    """atheris's Python coverage for the imports inside the block (the C code gets its
    coverage from the sanitized build); a plain block without atheris or with
    ``FUZZ_REPLAY=1``."""
    if os.environ.get("FUZZ_REPLAY") == "1":
        return contextlib.nullcontext()
    try:
        import atheris
    except ImportError:
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=["fastfeed"])


def run(one_input, argv=None) -> None:
    """atheris entry point: ``python fuzz/fuzz_X.py [libFuzzer flags] [corpus dirs]``.

    Without atheris (or with only files as arguments and ``FUZZ_REPLAY=1``) each argument
    is an input file, run once: the way to reproduce a crash without the fuzzer."""
    argv = list(sys.argv if argv is None else argv)
    if os.environ.get("FUZZ_REPLAY") == "1":
        for name in argv[1:]:
            p = Path(name)
            for f in sorted(p.iterdir()) if p.is_dir() else [p]:
                one_input(f.read_bytes())
        print(f"replayed {len(argv) - 1} path(s): no failure")
        return
    import atheris

    atheris.Setup(argv, one_input)
    atheris.Fuzz()
