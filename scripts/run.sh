#!/usr/bin/env bash
# The main job on built-in defaults: installs what it needs, builds driftpilot
# and runs `driftpilot demo` (extra arguments are passed to it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >&2
exec ./build/driftpilot demo "$@"
