#!/usr/bin/env bash
# Runs every atheris harness in fuzz/ for a bounded time under AddressSanitizer and UBSan, on
# a sanitized build of a scratch copy (FASTFEED_SANITIZE=1; the worktree's own build is never
# touched), seeded from ../shared/corpus at run time.  Fails on any finding: a crash, a
# sanitizer report or a broken invariant.  Crash inputs are kept in $FUZZ_OUT (default
# build/fuzz/ in the repository); replay one with
#     FUZZ_REPLAY=1 python fuzz/fuzz_<harness>.py build/fuzz/<harness>-crash-...
# and, once fixed, keep it as fuzz/regressions/<harness>-<what it found>: every file there is
# replayed by tests/test_fuzz_harnesses.py (and seeds the fuzzer here).
#
#   FUZZ_SECONDS=60 (per harness)  FUZZ_HARNESSES="decoder book listener"  PYTHON=python
#   FUZZ_SEED=N: libFuzzer's seed (default: a new one each run).  CI sets one, so a red run
#   is replayed exactly by running this with the same seed, and a green run on this machine
#   with that seed for as long says CI will be green too; explore with other seeds locally.
#   FUZZ_COMPILER=clang|gcc (default: clang when installed)
#
# With clang the C code carries libFuzzer coverage (-fsanitize=fuzzer-no-link) and runs with
# atheris's ASan+libFuzzer runtime preloaded (it holds UBSan's handlers too), plus atheris's
# Python coverage.  Without clang it falls back to gcc's ASan+UBSan with libasan preloaded:
# the sanitizers still check every input, but the fuzzer gets no coverage feedback (said in
# the output): install clang for real fuzzing.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python}"
secs="${FUZZ_SECONDS:-60}"
seed_arg=()
[ -n "${FUZZ_SEED:-}" ] && seed_arg=(-seed="$FUZZ_SEED")
harnesses="${FUZZ_HARNESSES:-decoder book listener}"
out="${FUZZ_OUT:-$repo/build/fuzz}"
work="$(mktemp -d /tmp/fastfeed-fuzz.XXXXXX)"
trap 'rm -rf "$work"' EXIT

"$py" -c "import atheris" 2>/dev/null || { echo "fuzz: atheris missing (pip install '.[fuzz]')" >&2; exit 1; }
atheris_dir="$("$py" -c "import atheris; print(atheris.path())")"

cp -r "$repo/fastfeed" "$repo/fuzz" "$repo/tests" "$repo/setup.py" "$repo/pyproject.toml" "$repo/README.md" "$work/"
find "$work/fastfeed" \( -name '*.so' -o -name '*.pyd' -o -name '*.c' -o -name '*.html' \) -delete
compiler="${FUZZ_COMPILER:-$(command -v clang >/dev/null && echo clang || echo gcc)}"
if [ "$compiler" = clang ]; then
    coverage="C (libFuzzer, clang) + Python"
    preload="$atheris_dir/asan_with_fuzzer.so"
    (cd "$work" && CC=clang LDSHARED="clang -shared" FASTFEED_SANITIZE=1 "$py" setup.py -q build_ext --inplace >"$work/build.log" 2>&1) \
        || { tail -40 "$work/build.log"; exit 1; }
else
    # libasan, preloaded, shadows the coverage hooks atheris's built-in libFuzzer registers:
    # the inputs are mutations of the seeds without feedback, each checked by ASan and UBSan.
    coverage="none (gcc: ASan+UBSan check every input; no coverage feedback, seeds mutated blind)"
    preload="$(gcc -print-file-name=libasan.so)"
    (cd "$work" && FASTFEED_SANITIZE=1 "$py" setup.py -q build_ext --inplace >"$work/build.log" 2>&1) \
        || { tail -40 "$work/build.log"; exit 1; }
fi
echo "fuzz: sanitized build in $work; coverage: $coverage; $secs s per harness; seed ${FUZZ_SEED:-random}"

export FASTFEED_CORPUS="${FASTFEED_CORPUS:-$repo/../shared/corpus/binance}"
"$py" "$work/fuzz/seeds.py" "$work/seeds"

for f in "$work"/fuzz/regressions/*; do  # past findings seed their harness
    [ -e "$f" ] || continue
    h="$(basename "$f")"; h="${h%%-*}"
    mkdir -p "$work/seeds/$h" && cp "$f" "$work/seeds/$h/"
done

mkdir -p "$out"
failed=0
summary=""
for h in $harnesses; do
    mkdir -p "$work/corpus/$h"
    log="$work/$h.log"
    set +e
    (cd "$work" && LD_PRELOAD="$preload" PYTHONPATH="$work" PYTHONMALLOC=malloc \
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:symbolize=1" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
        "$py" "fuzz/fuzz_$h.py" "${seed_arg[@]}" -max_total_time="$secs" -max_len=4096 -timeout=30 \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$out/$h-" \
        "$work/corpus/$h" "$work/seeds/$h") >"$log" 2>&1
    rc=$?
    set -e
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)"
    line="fuzz $h: ${execs:-?} inputs executed, ${cov:-cov: ?}, corpus $(ls "$work/corpus/$h" | wc -l) files"
    if [ "$rc" -ne 0 ]; then
        failed=$((failed + 1))
        line="$line: FINDING (exit $rc), input kept in $out/"
        echo "---- $h log (tail) ----"
        tail -60 "$log"
    else
        line="$line: no findings"
    fi
    echo "$line"
    summary="$summary$line"$'\n'
done
echo "fuzz summary (ASan+UBSan, $secs s each):"
printf '%s' "$summary"
if [ "$failed" -ne 0 ]; then
    echo "fuzz: $failed harness(es) found a problem" >&2
    exit 1
fi
