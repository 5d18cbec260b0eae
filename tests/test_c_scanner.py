"""The lexer, the Binance scanner and the compact pass are plain C: tests/c/test_scanner.c
builds them with no Python headers under -std=c11 -Wall -Wextra -Werror, for the SSE2 and
the portable kernels, and runs their checks."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "c" / "test_scanner.c"
FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"]


def compiler(tmp_path):
    """$CC, else cc / gcc / clang from PATH.  A $CC that cannot compile is a deliberate
    no-compiler environment (scripts/check_wheel.sh sets CC=false): skip.  No compiler at
    all fails under CI, where one built the extension, and skips elsewhere."""
    cc = os.environ.get("CC")
    if cc:
        probe = tmp_path / "probe.c"
        probe.write_text("int main(void) { return 0; }\n")
        ok = subprocess.run([cc, str(probe), "-o", str(tmp_path / "probe")], capture_output=True)
        if ok.returncode != 0:
            pytest.skip(f"CC={cc} does not compile")
        return cc
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no C compiler")
        pytest.skip("no C compiler")
    return cc


@pytest.mark.parametrize("defines", [[], ["-DFF_NO_SIMD=1"]], ids=["native", "portable"])
def test_scanner_builds_as_plain_c_and_passes(tmp_path, defines):
    exe = tmp_path / "test_scanner"
    build = subprocess.run(
        [
            compiler(tmp_path),
            *FLAGS,
            *defines,
            f"-I{ROOT / 'fastfeed' / 'core'}",
            str(SOURCE),
            "-o",
            str(exe),
            "-lm",
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 failed" in run.stdout


def test_headers_include_no_python():
    for name in ("_codes.h", "_json.h", "_binance.h", "_compact.h", "_prefetch.h", "_clock.h"):
        text = (ROOT / "fastfeed" / "core" / name).read_text()
        assert "Python.h" not in text and "Py_" not in text and "PyMem" not in text, name
