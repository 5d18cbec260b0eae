"""Declares fastfeed's Cython extensions; metadata lives in pyproject.toml.

Every ``fastfeed/**/*.pyx`` becomes an extension of the same dotted name, so adding a
module needs no edit here.  ``FASTFEED_ANNOTATE=1`` writes ``cython -a`` HTML next to
each source; ``FASTFEED_DEBUG=1`` builds without optimisation; ``FASTFEED_NO_SIMD=1`` builds
the portable decoder (no SSE2: what non-x86 wheels run), which ``scripts/check_portable.sh``
tests on x86-64.  On Linux, extensions are linked stripped (``-s``: no debug info, 6x smaller)
unless ``FASTFEED_DEBUG=1`` or ``FASTFEED_STRIP=0``.  A rebuild with the same settings reuses
the generated ``.c`` and the compiled objects (:func:`reusable`).
``FASTFEED_WERROR=1`` turns every ``-Wall -Wextra`` warning into an error (gcc and clang
only); ``scripts/lint.sh`` builds that way (``docs/decisions/0401-lint-types-c-style.md``).
``FASTFEED_SANITIZE=1`` builds with AddressSanitizer and UBSan (any UB aborts), plus
libFuzzer coverage (``fuzzer-no-link``) when the compiler is clang: the build
``scripts/fuzz.sh`` makes in a scratch copy; never ship it (it is never stripped).
"""

import os
import sys
from pathlib import Path

import Cython
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
DEBUG = os.environ.get("FASTFEED_DEBUG") == "1"
ANNOTATE = os.environ.get("FASTFEED_ANNOTATE") == "1"
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
SANITIZE = os.environ.get("FASTFEED_SANITIZE") == "1"
STRIP = (
    sys.platform.startswith("linux")
    and not DEBUG
    and not SANITIZE
    and os.environ.get("FASTFEED_STRIP") != "0"
)
link_args = ["-s"] if STRIP else []
if SANITIZE:
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


def reusable(exts):
    """Splits ``exts`` into those whose generated ``.c`` can be compiled as is and those that
    need Cython.

    pip builds in this tree, but in a fresh build environment each time: Cython then takes its
    newly installed headers for changed ones and regenerates every ``.c``, so `pip install
    ".[demo]"` followed by `pip install ".[test]"` compiled everything twice.  A ``.c`` is
    reused when it is newer than every fastfeed source and setup.py, and the settings (macros,
    flags, numpy and Cython versions) match the previous build's, recorded in ``build/``.
    """
    config = repr((MACROS, compile_args, link_args, numpy.__version__, Cython.__version__))
    stamp = HERE / "build" / "fastfeed-config.txt"
    same = stamp.exists() and stamp.read_text() == config
    stamp.parent.mkdir(exist_ok=True)
    stamp.write_text(config)
    ours = (".pyx", ".pxd", ".pxi", ".h")
    sources = [HERE / "setup.py", *(p for p in HERE.rglob("fastfeed/**/*") if p.suffix in ours)]
    newest = max(p.stat().st_mtime for p in sources)
    keep, todo = [], []
    for ext in exts:
        c = Path(ext.sources[0]).with_suffix(".c")
        if same and not ANNOTATE and c.exists() and c.stat().st_mtime > newest:
            ext.sources = [str(c)]
            keep.append(ext)
        else:
            todo.append(ext)
    return keep, todo


reused, to_cythonize = reusable(extensions())
setup(
    ext_modules=reused
    + cythonize(
        to_cythonize,
        language_level=3,
        annotate=ANNOTATE,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    ),
)
