#!/usr/bin/env bash
# run.sh: plugd's throughput next to the baseline line server's, under the same load.
#
# Usage: bench/run.sh [BUILD_DIR]    (default: the build tree next to bench/; builds nothing)
# Needs, in BUILD_DIR: bin/plugd, lib/plugd/greeting.so, bin/plugd_bench_baseline and
# bin/plugd-bench. Tunable through the environment: BENCH_SECONDS (per run, default 3),
# BENCH_ROUNDS (3), BENCH_CONNECTIONS (50), BENCH_SERVER_THREADS (1), BENCH_LOAD_THREADS (1).
# One thread each by default: server and load share the machine's cores, and two threads
# apiece on two cores would measure the scheduler rather than the servers.
set -euo pipefail

build=$(cd "${1:-$(dirname "$0")/../build}" && pwd)
seconds=${BENCH_SECONDS:-3}
rounds=${BENCH_ROUNDS:-3}
connections=${BENCH_CONNECTIONS:-50}
server_threads=${BENCH_SERVER_THREADS:-1}
load_threads=${BENCH_LOAD_THREADS:-1}

for f in bin/plugd lib/plugd/greeting.so bin/plugd_bench_baseline bin/plugd-bench; do
    if [[ ! -f $build/$f ]]; then
        echo "run.sh: $build/$f is missing; build it first:" >&2
        echo "  cmake --build $build -j2 --target plugd greeting plugd_bench_baseline" \
            "plugd-bench   (configured with -DPLUGD_BUILD_BENCH=ON)" >&2
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/plugd-bench.XXXXXX")
servers=()
cleanup() {
    for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
# Turn signals into an exit, so the EXIT trap stops the servers.
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server NAME SED_SCRIPT COMMAND...: starts a server in the background and sets $port
# from its log, once SED_SCRIPT finds the "listening" line there. Polls rather than sleeps:
# fast when the server is, and it notices a server that died on start-up.
start_server() {
    local name=$1 pattern=$2
    shift 2
    "$@" >"$tmp/$name.log" 2>&1 &
    local pid=$!
    servers+=("$pid")
    local deadline=$((SECONDS + 10))
    port=
    while [[ -z $port ]]; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "run.sh: $name did not start listening; its log:" >&2
            cat "$tmp/$name.log" >&2
            exit 1
        fi
        sleep 0.05
        port=$(sed -n "$pattern" "$tmp/$name.log" | head -n 1)
    done
}

# load NAME PORT PIPELINE: one load run against a server; prints its result line and appends
# its requests/s to $tmp/NAME.PIPELINE.
load() {
    local name=$1 port=$2 pipeline=$3 out
    if ! out=$("$build/bin/plugd-bench" --port "$port" --connections "$connections" \
        --duration "$seconds" --warmup 0 --pipeline "$pipeline" --threads "$load_threads" \
        --expect 'Hello, world' 2>&1); then
        echo "run.sh: the load run against $name failed:" >&2
        echo "$out" >&2
        exit 1
    fi
    printf '  %-8s %s\n' "$name" "$out"
    local rate=${out#*requests/s=}
    echo "${rate%% *}" >>"$tmp/$name.$pipeline"
}

# summary FILE: "median (min-max)" of the req/s in FILE; the spread shows when the machine
# was busy with something else (a median of 3 shrugs off one disturbed run, not two).
summary() {
    sort -n "$1" |
        awk '{ v[NR] = $1 } END { printf "%d (%d-%d)", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

cat >"$tmp/server.json" <<EOF
{
  "threads": $server_threads,
  "plugin_dir": "$build/lib/plugd",
  "plugins": { "greeting": { "file": "greeting" } },
  "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "greeting" } ]
}
EOF
start_server baseline 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' \
    "$build/bin/plugd_bench_baseline" --port 0 --threads "$server_threads"
baseline_port=$port
start_server plugd 's/.*listener main: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' \
    "$build/bin/plugd" -c "$tmp/server.json"
plugd_port=$port

echo "plugd vs baseline: ${server_threads} server thread(s), ${load_threads} load thread(s)," \
    "${connections} connections, ${rounds} rounds of ${seconds} s each, $(nproc) cores"
pipelines=(1 16)
for pipeline in "${pipelines[@]}"; do
    echo "pipeline $pipeline:"
    # Alternating spreads slow drifts (thermal, other processes) over both servers alike.
    for ((round = 1; round <= rounds; round++)); do
        load baseline "$baseline_port" "$pipeline"
        load plugd "$plugd_port" "$pipeline"
    done
done

echo
printf '%-22s %-26s %-26s %s\n' scenario "baseline req/s (min-max)" "plugd req/s (min-max)" \
    "plugd/baseline (medians)"
for pipeline in "${pipelines[@]}"; do
    b=$(summary "$tmp/baseline.$pipeline")
    p=$(summary "$tmp/plugd.$pipeline")
    printf '%-22s %-26s %-26s %s\n' "pipeline $pipeline, $connections conns" "$b" "$p" \
        "$(awk -v p="${p%% *}" -v b="${b%% *}" 'BEGIN { printf "%.2f", p / b }')"
done
