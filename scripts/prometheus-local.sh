#!/usr/bin/env bash
# Starts or stops a Prometheus server on loopback, for tests and local demos.
#
#   scripts/prometheus-local.sh start CONFIG DATA_DIR PORT
#       Starts `prometheus` (Debian package "prometheus") in the background,
#       listening on 127.0.0.1:PORT only, with its TSDB in DATA_DIR; writes
#       DATA_DIR/prometheus.pid and DATA_DIR/prometheus.log; waits up to
#       PROMETHEUS_WAIT_S (default 30) seconds for /-/ready and prints the base
#       URL (http://127.0.0.1:PORT).  Exits 1 if it does not come up (the log's
#       tail is printed).
#   scripts/prometheus-local.sh stop DATA_DIR
#       Stops the server started with that DATA_DIR (SIGTERM, then SIGKILL
#       after 10 s).  Succeeds if it was not running.
#
# Nothing here listens on anything but 127.0.0.1.
set -euo pipefail

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

ready() { # port -> 0 when GET /-/ready answers 200
    local port=$1 line
    { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
    printf 'GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    IFS= read -r -t 2 line <&3 || line=""
    exec 3<&- 3>&-
    [[ $line == *" 200"* ]]
}

cmd=${1:-}
case "$cmd" in
start)
    [[ $# -eq 4 ]] || usage
    config=$2 data=$3 port=$4
    [[ -f $config ]] || { echo "prometheus-local: no config file $config" >&2; exit 1; }
    [[ $port =~ ^[0-9]+$ ]] || { echo "prometheus-local: bad port $port" >&2; exit 2; }
    command -v prometheus >/dev/null || {
        echo "prometheus-local: prometheus not installed (apt-get install prometheus)" >&2
        exit 1
    }
    mkdir -p "$data"
    if [[ -f $data/prometheus.pid ]] && kill -0 "$(cat "$data/prometheus.pid")" 2>/dev/null; then
        echo "prometheus-local: already running (pid $(cat "$data/prometheus.pid"))" >&2
        exit 1
    fi
    prometheus --config.file="$config" --storage.tsdb.path="$data/tsdb" \
        --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=1d \
        --web.enable-lifecycle >"$data/prometheus.log" 2>&1 &
    pid=$!
    echo "$pid" >"$data/prometheus.pid"
    deadline=$((SECONDS + ${PROMETHEUS_WAIT_S:-30}))
    while ! ready "$port"; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "prometheus-local: prometheus did not become ready on 127.0.0.1:$port" >&2
            tail -n 20 "$data/prometheus.log" >&2 || true
            kill "$pid" 2>/dev/null || true
            rm -f "$data/prometheus.pid"
            exit 1
        fi
        sleep 0.2
    done
    echo "http://127.0.0.1:$port"
    ;;
stop)
    [[ $# -eq 2 ]] || usage
    data=$2
    [[ -f $data/prometheus.pid ]] || exit 0
    pid=$(cat "$data/prometheus.pid")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$data/prometheus.pid"
    ;;
*)
    usage
    ;;
esac
