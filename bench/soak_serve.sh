#!/bin/bash
# Soak of the inference service in its own process: `driftpilot serve` on a
# free loopback port, `driftpilot loadgen` at RATE for DURATION as another
# process, the service's resident memory read from /proc every 20 s.  Prints
# one JSON object: the load generator's summary, the RSS samples, and the
# median RSS of each 5-minute block (flat memory: the medians do not climb).
#
#   bench/soak_serve.sh MODEL_DIR [RATE=300] [DURATION=30m] [BUILD_DIR=build]
set -euo pipefail
MODEL=${1:?usage: bench/soak_serve.sh MODEL_DIR [RATE] [DURATION] [BUILD_DIR]}
RATE=${2:-300}
DUR=${3:-30m}
BIN=${4:-build}/driftpilot
[ -x "$BIN" ] || { echo "soak_serve: $BIN not built" >&2; exit 2; }
D=$(mktemp -d /tmp/dp-soak-XXXXXX)
SP=
cleanup() {
    [ -n "$SP" ] && kill "$SP" 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT
"$BIN" serve --model "$MODEL" --listen 127.0.0.1:0 --port-file "$D/port" \
    --feedback-log "$D/feedback.jsonl" >"$D/serve.out" 2>"$D/serve.err" &
SP=$!
for _ in $(seq 100); do [ -s "$D/port" ] && break; sleep 0.1; done
[ -s "$D/port" ] || { echo "soak_serve: the service did not start:" >&2; cat "$D/serve.err" >&2; exit 1; }
PORT=$(cat "$D/port")
(
    while kill -0 "$SP" 2>/dev/null; do
        r=$(awk '/^VmRSS/{print $2}' "/proc/$SP/status" 2>/dev/null) || break
        [ -n "$r" ] && echo "$(date +%s) $r"
        sleep 20
    done
) >"$D/rss.txt" &
RP=$!
echo "soak_serve: $RATE req/s for $DUR against pid $SP on port $PORT" >&2
"$BIN" loadgen --target "http://127.0.0.1:$PORT" --rate "$RATE" --duration "$DUR" \
    --feedback-fraction 0.2 --json --quiet >"$D/loadgen.json"
kill -TERM "$SP"
wait "$SP" || { echo "soak_serve: the service exited badly" >&2; exit 1; }
SP=
kill "$RP" 2>/dev/null || true
python3 - "$D/loadgen.json" "$D/rss.txt" <<'PY'
import json, statistics, sys
lg = json.load(open(sys.argv[1]))
rows = [l.split() for l in open(sys.argv[2]) if len(l.split()) == 2]
t0 = int(rows[0][0]) if rows else 0
samples = [{"t_s": int(t) - t0, "rss_kb": int(r)} for t, r in rows]
blocks = {}
for s in samples:
    blocks.setdefault(s["t_s"] // 300, []).append(s["rss_kb"] / 1024)
medians = [round(statistics.median(v), 2) for _, v in sorted(blocks.items())]
print(json.dumps({"loadgen": lg, "rss_samples": samples,
                  "rss_median_mb_per_5min": medians}, indent=1))
PY
