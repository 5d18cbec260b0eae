#!/usr/bin/env bash
# Every habit check, each run to the end so one run lists all failures; exits non-zero if any
# failed.  Tools and their versions: requirements-lint.txt (.ci/run installs them).  The choices
# are docs/decisions/0401-lint-types-c-style.md.
#
#   ruff check / ruff format --check   Python lint and format (config: pyproject.toml)
#   cython-lint                        every .pyx and .pxd
#   mypy                               the package (config: pyproject.toml [tool.mypy])
#   FASTFEED_WERROR=1 build            the extensions built with -Wall -Wextra -Werror, in a
#                                      scratch copy, and the portable decoder (FASTFEED_NO_SIMD=1)
#   stubtest                           every compiled module against its .pyi, on that build
#   clang-format --dry-run --Werror    C headers and C tests (style: .clang-format)
#   scripts/check_docs.py              decision records have a status and an index row; no
#                                      references to files outside the repository
#
# Needs the package's dependencies importable (stubtest imports the built modules) and a C
# compiler.  Fix C style with: clang-format -i fastfeed/*/*.h tests/c/*.c
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
py="${PYTHON:-python}"
failed=()

step() {  # step NAME COMMAND...: run, report, remember a failure
    local name="$1"
    shift
    echo "== $name"
    if "$@"; then
        echo "== $name: ok"
    else
        echo "== $name: FAILED" >&2
        failed+=("$name")
    fi
}

# Source files by name, from the source folders only (not build/ or a venv).
mapfile -t cython_files < <(find fastfeed benchmarks tests \( -name '*.pyx' -o -name '*.pxd' \) | sort)
mapfile -t c_files < <(find fastfeed -name '*.h'; find tests/c -name '*.c' 2>/dev/null)
mapfile -t modules < <(find fastfeed -name '*.pyx' | sort | sed 's/\.pyx$//; s#/#.#g')

step "ruff check" ruff check .
step "ruff format" ruff format --check .
step "cython-lint" cython-lint "${cython_files[@]}"
step "mypy" "$py" -m mypy
step "mypy --strict on the README examples" "$py" scripts/check_readme_types.py
step "clang-format" clang-format --dry-run --Werror "${c_files[@]}"
step "docs" "$py" scripts/check_docs.py

# The extensions, built with warnings as errors in a scratch copy (the checkout's own build,
# if any, is left alone), then the stubs checked against exactly those modules.
work="$(mktemp -d /tmp/fastfeed-lint.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cp -r fastfeed setup.py pyproject.toml README.md scripts "$work/"
find "$work/fastfeed" \( -name '*.so' -o -name '*.pyd' -o -name '*.c' -o -name '*.html' \) -delete
werror_build() { (cd "$work" && FASTFEED_WERROR=1 "$py" setup.py -q build_ext --inplace); }
step "C build -Werror" werror_build
# The portable decoder (what non-x86 wheels run) compiles other code paths: its own copy.
mkdir "$work/portable"
cp -r fastfeed setup.py pyproject.toml README.md "$work/portable/"
find "$work/portable/fastfeed" \( -name '*.so' -o -name '*.pyd' -o -name '*.c' -o -name '*.html' \) -delete
portable_build() {
    (cd "$work/portable" && FASTFEED_WERROR=1 FASTFEED_NO_SIMD=1 "$py" setup.py -q build_ext --inplace)
}
step "C build -Werror, portable" portable_build
stubtest() {
    # Type errors inside the package are the mypy step's to report; stubtest compares stubs with
    # the runtime, and without this it would refuse to run while any module has a type error.
    printf '[mypy]\npython_version = 3.10\n[mypy-fastfeed.*]\nignore_errors = True\n' \
        >"$work/stubtest.ini"
    (cd "$work" && "$py" -m mypy.stubtest --mypy-config-file stubtest.ini \
        --allowlist scripts/stubtest_allowlist.txt "${modules[@]}")
}
if [[ " ${failed[*]} " == *" C build -Werror "* ]]; then
    # -Werror stops at the first extension that warns.  Build again without it, for stubtest and
    # to list every warning of every extension in one run.
    echo "== every warning of a build without -Werror:"
    (cd "$work" && "$py" setup.py -q build_ext --inplace 2>&1) | grep -E "(warning|error):" | sort -u
fi
step "stubtest" stubtest

if ((${#failed[@]})); then
    printf 'lint: %d check(s) failed:' "${#failed[@]}" >&2
    printf ' [%s]' "${failed[@]}" >&2
    echo >&2
    exit 1
fi
echo "lint: all checks passed"
