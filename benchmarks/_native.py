"""Builds the benchmark-only Cython listeners (``_listeners.pyx``) on first use.

They live outside the package (users never need them), so they are compiled here against the
installed fastfeed's ``.pxd`` files and headers, into a cache folder keyed by the sources.
Needs Cython and a C compiler (the bench extras install Cython).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_listeners(cache_dir: str | os.PathLike | None = None):
    """Import (compiling if needed) ``benchmarks/_listeners.pyx``; returns the module."""
    import numpy
    import picows

    import fastfeed

    core = Path(fastfeed.__file__).resolve().parent / "core"
    return build_module(
        "_listeners.pyx",
        "_ff_bench_listeners",
        [numpy.get_include(), str(core)],
        picows.__version__.encode(),
        cache_dir,
    )


def build_module(
    source: str,
    name: str,
    include_dirs: list[str],
    key_extra: bytes = b"",
    cache_dir: str | os.PathLike | None = None,
):
    """Import (compiling if needed) ``benchmarks/<source>`` as module ``name``, built against
    the imported fastfeed's ``.pxd`` files and headers into a cache folder keyed by the
    sources (``FASTFEED_BENCH_CACHE``, default ``~/.cache/fastfeed-bench``)."""
    import fastfeed

    src = HERE / source
    pkg = Path(fastfeed.__file__).resolve().parent
    key = hashlib.sha256(
        src.read_bytes()
        + b"".join(p.read_bytes() for p in sorted(pkg.rglob("*.pxd")))
        + b"".join(p.read_bytes() for p in sorted(pkg.rglob("*.h")))
        + sys.version.encode()
        + key_extra
    ).hexdigest()[:16]
    out = Path(
        cache_dir
        or os.environ.get("FASTFEED_BENCH_CACHE", Path.home() / ".cache" / "fastfeed-bench")
    )
    out = out / key
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    so = out / f"{name}{suffix}"
    if not so.exists():
        from Cython.Build import cythonize
        from setuptools import Distribution, Extension

        out.mkdir(parents=True, exist_ok=True)
        pyx = out / f"{name}.pyx"
        pyx.write_bytes(src.read_bytes())
        ext = Extension(
            name,
            [str(pyx)],
            include_dirs=include_dirs,
            extra_compile_args=["-O3", "-Wno-unused-function"],
        )
        dist = Distribution(
            {
                "ext_modules": cythonize(
                    [ext], language_level=3, quiet=True, include_path=[str(pkg.parent)]
                )
            }
        )
        cmd = dist.get_command_obj("build_ext")
        cmd.build_lib = str(out)
        cmd.build_temp = str(out / "tmp")
        cmd.inplace = False
        dist.run_command("build_ext")
    spec = importlib.util.spec_from_file_location(name, so)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
