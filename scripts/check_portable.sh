#!/usr/bin/env bash
# The portable decoder (SWAR digit runs, no SSE2 intrinsics: what aarch64 and other non-x86
# wheels run), built on this x86-64 machine with FASTFEED_NO_SIMD=1 in a scratch copy and run
# against the decoder and corpus tests.  Needs Cython, setuptools and numpy in the current
# Python, and the test dependencies.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/fastfeed-portable.XXXXXX)"
trap 'rm -rf "$work"' EXIT
py="${PYTHON:-python}"

cp -r "$repo/fastfeed" "$repo/tests" "$repo/setup.py" "$repo/pyproject.toml" "$repo/README.md" "$work/"
find "$work/fastfeed" \( -name '*.so' -o -name '*.pyd' -o -name '*.c' -o -name '*.html' \) -delete
(cd "$work" && FASTFEED_NO_SIMD=1 "$py" setup.py -q build_ext --inplace)
export FASTFEED_CORPUS="${FASTFEED_CORPUS:-$repo/../shared/corpus/binance}"
cd "$work"
PYTHONPATH="$work" "$py" -c "import fastfeed.core._decoder as d; print('decoder kernels:', d.SIMD, d.__file__); assert d.SIMD == 'portable'"
PYTHONPATH="$work" "$py" -m pytest -q -p no:cacheprovider --rootdir "$work" \
    tests/test_decoder_corpus.py tests/test_decoder_cases.py tests/test_decoder_properties.py \
    tests/test_book_corpus.py
