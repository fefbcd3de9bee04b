#!/usr/bin/env bash
#   The test command: install what is missing, build, run every test.
#   1. gcc, RelWithDebInfo, -Werror: unit + integration tests.
#   2. clang, AddressSanitizer + UndefinedBehaviorSanitizer: the same suite.
#   Usage: tests/run.sh [--quick]   (--quick: the gcc pass only)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)

"$root/deploy/install-deps.sh" --test

build () {
    local dir=$1; shift
    cmake -S "$root" -B "$dir" -DRELAIS_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
}

echo "==> gcc build and tests"
build "$root/build" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo
(cd "$root/build" && ctest --output-on-failure --timeout 900)

if [[ "${1:-}" != "--quick" ]]; then
    echo "==> clang + ASan/UBSan build and tests"
    build "$root/build-asan" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DRELAIS_SANITIZE=ON -DRELAIS_FUZZ=ON
    (cd "$root/build-asan" \
        && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           RELAIS_SANITIZED=1 \
           ctest --output-on-failure --timeout 1800)
fi
