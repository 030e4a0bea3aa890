#!/usr/bin/env bash
# The main job on built-in defaults: installs what it needs, builds driftpilot
# and runs a short live experiment (`driftpilot experiment`, settings in
# configs/experiment/default.toml): on first use it pretrains the built-in
# model and trains the PPO policy on the simulator (both cached in
# $DRIFTPILOT_HOME, else ~/.cache/driftpilot), then runs the adaptive and the
# static-15m pipeline side by side, live, for four scenario hours at 60x (four
# wall minutes), prints the table on stdout and the path of the HTML report.
# Progress goes to stderr.  Extra arguments are passed to `driftpilot
# experiment` (e.g. --config configs/experiment/study-4h.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >&2
exec ./build/driftpilot experiment "$@"
