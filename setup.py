"""Declares fastfeed's Cython extensions; metadata lives in pyproject.toml.

Every ``fastfeed/**/*.pyx`` becomes an extension of the same dotted name, so adding a
module needs no edit here.  ``FASTFEED_ANNOTATE=1`` writes ``cython -a`` HTML next to
each source; ``FASTFEED_DEBUG=1`` builds without optimisation; ``FASTFEED_NO_SIMD=1`` builds
the portable decoder (no SSE2: what non-x86 wheels run), which ``scripts/check_portable.sh``
tests on x86-64.  ``FASTFEED_WERROR=1`` turns every ``-Wall -Wextra`` warning into an error (gcc
and clang only); ``scripts/lint.sh`` builds that way (``docs/decisions/0401-lint-types-c-style.md``).
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
    if os.environ.get("FASTFEED_WERROR") == "1":
        sys.exit("FASTFEED_WERROR=1 is for gcc and clang builds; MSVC's warnings are not vetted")
    compile_args = ["/O2"] if not DEBUG else ["/Od"]
else:
    compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
    compile_args += ["-fno-strict-aliasing"]
    if os.environ.get("FASTFEED_WERROR") == "1":
        # -Wall is in CPython's default CFLAGS on most builds, not all: say it here.  Cython
        # 3.1 and 3.3 generate code that is clean under -Wall -Wextra on gcc 12: nothing exempted.
        compile_args += ["-Wall", "-Wextra", "-Werror"]


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
