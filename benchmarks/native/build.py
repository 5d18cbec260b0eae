"""Builds the native C++ reference client (``beast_client.cpp``): Boost.Beast + OpenSSL +
simdjson On-Demand, the stack fastfeed replaces.

    python benchmarks/native/build.py            # prints the binary's path, or why it cannot build

Needs g++, the Boost headers (Debian: ``apt-get install libboost-dev``), OpenSSL's headers
(``libssl-dev``) and pysimdjson, whose wheel ships the simdjson sources.  The binary is cached
under ``~/.cache/fastfeed-bench`` keyed by the sources and flags.  ``build()`` returns None
with a printed reason when something is missing, so benchmarks skip this client instead of
failing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "beast_client.cpp"
FLOOR_SRC = HERE / "floor_client.c"
FLAGS = ["-O3", "-std=c++17", "-DNDEBUG"]


def _why_not() -> str | None:
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        return "no C++ compiler (g++)"
    if not Path("/usr/include/boost/beast.hpp").exists() and not os.environ.get("BOOST_ROOT"):
        return "Boost headers not found (apt-get install libboost-dev, or set BOOST_ROOT)"
    try:
        import simdjson  # noqa: F401
    except ImportError:
        return "pysimdjson is not installed (it ships the simdjson sources)"
    return None


def _compile(
    what: str, cc: str, flags: list[str], sources: list[Path], libs: list[str], verbose: bool
) -> Path | None:
    """Compile ``sources`` into a binary cached under ``~/.cache/fastfeed-bench`` (keyed by the
    sources, flags and compiler version), or None with the compiler's error printed."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    h = hashlib.sha256(" ".join([cc, *flags, *libs, version]).encode())
    for src in sources:
        h.update(src.read_bytes()[: 1 << 20])
    out = Path(os.environ.get("FASTFEED_BENCH_CACHE", Path.home() / ".cache" / "fastfeed-bench"))
    exe = out / f"{what}-{h.hexdigest()[:16]}" / what
    if exe.exists():
        return exe
    exe.parent.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"building {what} ...", flush=True)
    r = subprocess.run(
        [cc, *flags, *map(str, sources), "-o", str(exe), *libs], capture_output=True, text=True
    )
    if r.returncode != 0:
        if verbose:
            print(f"{what} skipped: build failed:\n{r.stderr[-3000:]}")
        return None
    return exe


def build(verbose: bool = True) -> Path | None:
    """Path of the built C++ client, or None (reason printed) when it cannot be built here."""
    why = _why_not()
    if why:
        if verbose:
            print(f"native C++ client skipped: {why}")
        return None
    import simdjson

    sj = Path(simdjson.__file__).resolve().parent
    inc = [f"-I{sj}"]
    if os.environ.get("BOOST_ROOT"):
        inc.append(f"-I{os.environ['BOOST_ROOT']}/include")
    return _compile(
        "beast_client",
        os.environ.get("CXX", "g++"),
        [*FLAGS, *inc],
        [SRC, sj / "simdjson.cpp"],
        ["-lssl", "-lcrypto", "-lpthread"],
        verbose,
    )


def build_floor(verbose: bool = True) -> Path | None:
    """Path of the built floor client (``floor_client.c``: blocking SSL_read, no parse), or None
    (reason printed) when there is no C compiler or no OpenSSL headers."""
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        why = f"no C compiler ({cc})"
    elif not Path("/usr/include/openssl/ssl.h").exists():
        why = "OpenSSL headers not found (apt-get install libssl-dev)"
    else:
        why = ""
    if why:
        if verbose:
            print(f"floor client skipped: {why}")
        return None
    flags = ["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"]
    return _compile("floor_client", cc, flags, [FLOOR_SRC], ["-lssl", "-lcrypto"], verbose)


if __name__ == "__main__":
    p = build()
    print(p if p else "not built")
    f = build_floor()
    print(f if f else "floor client not built")
    sys.exit(0 if p and f else 1)
