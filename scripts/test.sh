#!/usr/bin/env bash
# Builds driftpilot with warnings as errors and runs the whole test suite,
# then rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs the
# unit tests again under them.  Installs what it needs (Debian packages only).
#   scripts/test.sh            full suite + sanitizer pass
#   DP_SKIP_SANITIZE=1 scripts/test.sh   skip the sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
jobs=$(nproc 2>/dev/null || echo 2)

echo "== build (Release, -Werror)" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDP_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== tests" >&2
(cd build && ctest --output-on-failure -j"$jobs")

if [[ "${DP_SKIP_SANITIZE:-0}" != "1" ]]; then
    echo "== build (ASan+UBSan)" >&2
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDP_SANITIZE=ON -DDP_WERROR=ON >/dev/null
    cmake --build build-asan -j"$jobs"
    echo "== unit tests under ASan+UBSan" >&2
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --output-on-failure -L unit -j"$jobs")
fi
