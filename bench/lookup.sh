#!/usr/bin/env bash
# lookup.sh: the tutorial's "await a database query" served by plugd: examples/redis-lookup
# asking a real redis-server, next to greeting (no query), under the same load, in one run.
#
# Usage: bench/lookup.sh [BUILD_DIR]   (default: the build tree next to bench/; builds nothing)
# Needs, in BUILD_DIR: bin/plugd, lib/plugd/greeting.so, bin/plugd-bench and
# tests/examples/redis-lookup/redis_lookup.so (./dev test builds them), and redis-server.
# Tunable through the environment: BENCH_SECONDS (per run, default 3), BENCH_ROUNDS (3),
# BENCH_CONNECTIONS (256), BENCH_SERVER_THREADS (1), BENCH_LOAD_THREADS (1), BENCH_MAX_IDLE
# (the lookup instance's /outbound/max_idle; default: BENCH_CONNECTIONS).
set -euo pipefail

build=$(cd "${1:-$(dirname "$0")/../build}" && pwd)
seconds=${BENCH_SECONDS:-3}
rounds=${BENCH_ROUNDS:-3}
connections=${BENCH_CONNECTIONS:-256}
server_threads=${BENCH_SERVER_THREADS:-1}
load_threads=${BENCH_LOAD_THREADS:-1}
# Idle connections kept per worker thread: at least one per concurrent request, or every
# request beyond it opens (and closes) its own connection to Redis.
max_idle=${BENCH_MAX_IDLE:-$connections}

for f in bin/plugd lib/plugd/greeting.so bin/plugd-bench \
    tests/examples/redis-lookup/redis_lookup.so; do
    if [[ ! -f $build/$f ]]; then
        echo "lookup.sh: $build/$f is missing; run ./dev test first" >&2
        exit 1
    fi
done
redis=$(command -v redis-server || true)
if [[ -z $redis ]]; then
    echo "lookup.sh: redis-server is missing: apt-get install redis-server" >&2
    exit 1
fi

script=lookup.sh
source "$(dirname "$0")/lib.sh"

# Redis on a free port: ask the kernel for one, then hand it to redis-server.
redis_port=$(free_port)
"${orphan_guard[@]}" "$redis" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    --logfile "$tmp/redis.log" &
pids+=($!)
for _ in $(seq 100); do
    if { exec 3<>"/dev/tcp/127.0.0.1/$redis_port"; } 2>/dev/null; then break; fi
    sleep 0.05
done
printf 'SET world "Hello, world"\r\nQUIT\r\n' >&3
cat <&3 >/dev/null
exec 3>&-

cat >"$tmp/server.json" <<JSON
{
  "threads": $server_threads,
  "plugin_dir": "$build",
  "plugins": {
    "greeting": { "file": "lib/plugd/greeting" },
    "lookup": { "file": "tests/examples/redis-lookup/redis_lookup",
                "config": { "port": $redis_port },
                "outbound": { "max_idle": $max_idle } }
  },
  "listeners": [
    { "name": "greeting", "address": "127.0.0.1", "port": 0, "plugin": "greeting" },
    { "name": "lookup", "address": "127.0.0.1", "port": 0, "plugin": "lookup" }
  ]
}
JSON
"${orphan_guard[@]}" "$build/bin/plugd" -c "$tmp/server.json" >"$tmp/plugd.log" 2>&1 &
pids+=($!)
port_of() { sed -n "s/.*listener $1: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p" "$tmp/plugd.log"; }
for _ in $(seq 200); do
    [[ -n $(port_of lookup) ]] && break
    sleep 0.05
done
greeting_port=$(port_of greeting)
lookup_port=$(port_of lookup)
if [[ -z $lookup_port ]]; then
    echo "lookup.sh: plugd did not start; its log:" >&2
    cat "$tmp/plugd.log" >&2
    exit 1
fi

echo "greeting vs redis-lookup (a Redis GET per request over pooled connections, max_idle" \
    "$max_idle): $server_threads server thread(s), $load_threads load thread(s)," \
    "$connections connections, $rounds rounds of $seconds s, $(nproc) cores"
for ((round = 1; round <= rounds; round++)); do
    for name in greeting lookup; do
        port=${name}_port
        out=$("$build/bin/plugd-bench" --port "${!port}" --connections "$connections" \
            --duration "$seconds" --warmup 0 --threads "$load_threads" --expect 'Hello, world' 2>&1) || {
            echo "lookup.sh: the load run against $name failed: $out" >&2
            exit 1
        }
        printf '  %-9s %s\n' "$name" "$out"
        field "$out" requests/s >>"$tmp/$name"
    done
done
g=$(median "$tmp/greeting")
l=$(median "$tmp/lookup")
echo
echo "median req/s: greeting $g, redis-lookup $l (lookup/greeting $(awk -v a="$l" -v b="$g" 'BEGIN { printf "%.2f", a / b }'))"
