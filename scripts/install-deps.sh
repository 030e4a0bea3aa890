#!/usr/bin/env bash
# Installs the Debian packages driftpilot needs to build, test and run.
# Idempotent: when everything is present it returns in well under a second
# without touching apt.  Usage: scripts/install-deps.sh [--test]
#   --test  also installs what the test suite uses (promtool, chromium, ...)
set -euo pipefail

pkgs=(build-essential cmake pkg-config git ca-certificates
      libopenblas-openmp-dev libjansson-dev libmicrohttpd-dev libsqlite3-dev zlib1g-dev)
if [[ "${1:-}" == "--test" ]]; then
    pkgs+=(python3 prometheus chromium)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root or install them" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
