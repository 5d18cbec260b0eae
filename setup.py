"""Declares fastfeed's Cython extensions; metadata lives in pyproject.toml.

Every ``fastfeed/**/*.pyx`` becomes an extension of the same dotted name, so adding a
module needs no edit here.  ``FASTFEED_ANNOTATE=1`` writes ``cython -a`` HTML next to
each source; ``FASTFEED_DEBUG=1`` builds without optimisation; ``FASTFEED_NO_SIMD=1`` builds
the portable decoder (no SSE2: what non-x86 wheels run), which ``scripts/check_portable.sh``
tests on x86-64.  ``FASTFEED_SANITIZE=1`` builds with AddressSanitizer and UBSan (any UB aborts),
plus libFuzzer coverage (``fuzzer-no-link``) when the compiler is clang: the build
``scripts/fuzz.sh`` makes in a scratch copy; never ship it.
"""

import os
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
DEBUG = os.environ.get("FASTFEED_DEBUG") == "1"
MACROS = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if os.environ.get("FASTFEED_NO_SIMD") == "1":
    MACROS.append(("FF_NO_SIMD", "1"))

if sys.platform == "win32":
    compile_args = ["/O2"] if not DEBUG else ["/Od"]
else:
    compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
    compile_args += ["-fno-strict-aliasing", "-Wno-unused-function"]
link_args = []
if os.environ.get("FASTFEED_SANITIZE") == "1":
    # The runtime is not linked in: the process preloads it (atheris's asan_with_fuzzer.so
    # under clang, which also carries UBSan's handlers; libasan under gcc).
    cc = os.environ.get("CC", "")
    san = "address,undefined" + (",fuzzer-no-link" if "clang" in cc else "")
    flags = [f"-fsanitize={san}", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
    compile_args += ["-O1", "-g", *flags]
    link_args += flags


def extensions():
    exts = []
    for pyx in sorted((HERE / "fastfeed").rglob("*.pyx")):
        rel = pyx.relative_to(HERE).with_suffix("")
        exts.append(
            Extension(
                ".".join(rel.parts),
                [str(pyx.relative_to(HERE))],
                include_dirs=[numpy.get_include(), str(HERE / "fastfeed" / "core")],
                define_macros=MACROS,
                extra_compile_args=compile_args,
                extra_link_args=link_args,
            )
        )
    return exts


setup(
    ext_modules=cythonize(
        extensions(),
        language_level=3,
        annotate=os.environ.get("FASTFEED_ANNOTATE") == "1",
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    ),
)
