#!/usr/bin/env bash
# allocations.sh: heap allocations per request in plugd's steady state, counted by heaptrack
# (Debian: heaptrack). plugd serves greeting under heaptrack twice, once with a short load
# and once with a long one, the same connections both times: start-up, connection set-up
# and shutdown cost the same in both, so the difference in allocation calls divided by the
# difference in requests is what a request costs once warm. Target: 0.
#
# Loads: line and HTTP, each pipelined and keep-alive (64 connections, then 1,000, whose
# requests interleave: each connection's operations meet the thread's recycled blocks
# after many others used them), to greeting as a listener's plugin;
# then HTTP keep-alive through compare.sh's `chain` composition (100 routes and 3 filters in
# front of greeting, bench/lib.sh's chain_routes): what routing and chaining add, if anything.
#
# Usage: bench/allocations.sh [BUILD_DIR]   (default: the build tree next to bench/)
set -euo pipefail
script=allocations.sh
build=$(cd "${1:-$(dirname "$0")/../build}" && pwd)
for f in bin/plugd lib/plugd/greeting.so lib/plugd/bench/pass_through.so bin/plugd-bench; do
    if [[ ! -f $build/$f ]]; then
        echo "$script: $build/$f is missing; run ./dev bench or ./dev test first" >&2
        exit 1
    fi
done
command -v heaptrack >/dev/null || { echo "$script: apt-get install heaptrack" >&2; exit 1; }
source "$(dirname "$0")/lib.sh"

cat >"$tmp/server.json" <<JSON
{
  "threads": 1,
  "plugin_dir": "$build/lib/plugd",
  "plugins": { $chain_filters, "greeting": { "file": "greeting" } },
  "listeners": [
    { "name": "line", "address": "127.0.0.1", "port": 0, "plugin": "greeting" },
    { "name": "http", "address": "127.0.0.1", "port": 0, "framing": "http", "plugin": "greeting" },
    { "name": "chain", "address": "127.0.0.1", "port": 0, "framing": "http", "routes": $(chain_routes) } ]
}
JSON

# count NAME LISTENER SECONDS LOAD...: allocation calls and requests of one plugd life under
# heaptrack, the load going to LISTENER.
count() {
    local name=$1 listener=$2 seconds=$3 out
    shift 3
    start_server "$name" "s/.*listener $listener: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p" \
        heaptrack -o "$tmp/$name" "$build/bin/plugd" -c "$tmp/server.json"
    local heaptrack_pid=$pid
    out=$("$build/bin/plugd-bench" --port "$port" --duration "$seconds" --warmup 0 "$@")
    # heaptrack's own process is the parent: stop plugd itself, then let heaptrack finish.
    pkill -TERM -P "$heaptrack_pid" -f "$build/bin/plugd" || true
    wait "$heaptrack_pid" 2>/dev/null || true
    requests=$(field "$out" requests)
    calls=$(heaptrack_print -f "$tmp/$name".*zst 2>/dev/null |
        sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p')
}

run=0
for load in "line --connections 64 --pipeline 16" "line --connections 64" "line --connections 1000" \
    "http --mode http --connections 64 --pipeline 16" "http --mode http --connections 64" "http --mode http --connections 1000" \
    "chain --mode http --connections 64"; do
    run=$((run + 1))
    # shellcheck disable=SC2086 # $load is a listener, then a list of arguments
    count "short$run" ${load%% *} 1 ${load#* }
    short_requests=$requests short_calls=$calls
    # shellcheck disable=SC2086
    count "long$run" ${load%% *} 3 ${load#* }
    echo "$load: $((calls - short_calls)) allocation calls for $((requests - short_requests))" \
        "more requests: $(awk -v c=$((calls - short_calls)) -v r=$((requests - short_requests)) \
            'BEGIN { printf "%.4f", c / r }') per request"
done
