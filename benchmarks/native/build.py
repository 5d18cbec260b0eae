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


def build(verbose: bool = True) -> Path | None:
    """Path of the built client, or None (reason printed) when it cannot be built here."""
    why = _why_not()
    if why:
        if verbose:
            print(f"native C++ client skipped: {why}")
        return None
    import simdjson

    sj = Path(simdjson.__file__).resolve().parent
    cxx = os.environ.get("CXX", "g++")
    inc = [f"-I{sj}"]
    if os.environ.get("BOOST_ROOT"):
        inc.append(f"-I{os.environ['BOOST_ROOT']}/include")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(
        SRC.read_bytes()
        + (sj / "simdjson.h").read_bytes()[:4096]
        + " ".join(FLAGS).encode()
        + version.encode()
    ).hexdigest()[:16]
    out = Path(os.environ.get("FASTFEED_BENCH_CACHE", Path.home() / ".cache" / "fastfeed-bench"))
    out = out / f"beast-{key}"
    exe = out / "beast_client"
    if exe.exists():
        return exe
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        cxx,
        *FLAGS,
        *inc,
        str(SRC),
        str(sj / "simdjson.cpp"),
        "-o",
        str(exe),
        "-lssl",
        "-lcrypto",
        "-lpthread",
    ]
    if verbose:
        print("building the native C++ client (about a minute) ...", flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        if verbose:
            print(f"native C++ client skipped: build failed:\n{r.stderr[-3000:]}")
        return None
    return exe


if __name__ == "__main__":
    p = build()
    print(p if p else "not built")
    sys.exit(0 if p else 1)
