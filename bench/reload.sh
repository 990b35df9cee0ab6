#!/usr/bin/env bash
# reload.sh: how long a plugin reload takes to reach clients, and what it costs the requests
# in flight: plugd serves greeting under plugd-bench while plugd_bench_reload_probe
# changes greeting's prefix and sends SIGHUP, again and again. The same load first runs
# without reloads: on a shared machine the scheduler alone makes a tail of several ms, and
# only the difference is the reloads' cost.
#
# Usage: bench/reload.sh [BUILD_DIR]    (default: the build tree next to bench/; builds nothing)
# Needs, in BUILD_DIR: bin/plugd, lib/plugd/greeting.so, bin/plugd-bench and
# bin/plugd_bench_reload_probe. Tunable through the environment: BENCH_RELOADS (default 20),
# BENCH_RELOAD_INTERVAL_MS (between reloads, 100), BENCH_RELOAD_TIMEOUT_MS (for one reload to
# answer, 5000), BENCH_CONNECTIONS (load connections, 50), BENCH_PIPELINE (1), BENCH_SECONDS
# (each load run; by default the reloads' span plus 2.5 s).
# Two latencies per reload: the probe's, from SIGHUP until a request on a connection opened
# before it gets the new prefix (what a client sees), and plugd's own from its log (config
# read to commit, whole milliseconds). Exits 1 if a request failed, a reply was wrong, or a
# reload did not take effect.
set -euo pipefail

build=$(cd "${1:-$(dirname "$0")/../build}" && pwd)
reloads=${BENCH_RELOADS:-20}
interval_ms=${BENCH_RELOAD_INTERVAL_MS:-100}
timeout_ms=${BENCH_RELOAD_TIMEOUT_MS:-5000}
connections=${BENCH_CONNECTIONS:-50}
pipeline=${BENCH_PIPELINE:-1}
# The load starts this long before the first reload, so the reloads meet a server at its
# steady state rather than one still accepting the load's connections.
warmup_s=0.5

for f in bin/plugd lib/plugd/greeting.so bin/plugd-bench bin/plugd_bench_reload_probe; do
    if [[ ! -f $build/$f ]]; then
        echo "reload.sh: $build/$f is missing; build it first:" >&2
        echo "  cmake --build $build -j2 --target plugd greeting plugd-bench" \
            "plugd_bench_reload_probe   (configured with -DPLUGD_BUILD_BENCH=ON)" >&2
        exit 1
    fi
done

script=reload.sh
source "$(dirname "$0")/lib.sh"

# wait_for_log PATTERN WHAT: polls plugd's log until a line matches the extended regex
# PATTERN; gives up, with the log, when plugd dies or 10 s pass.
wait_for_log() {
    local deadline=$((SECONDS + 10))
    until grep -Eq "$1" "$tmp/plugd.log"; do
        if ! kill -0 "$plugd" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "reload.sh: plugd did not log $2; its log:" >&2
            cat "$tmp/plugd.log" >&2
            exit 1
        fi
        sleep 0.05
    done
}

# stats FILE: "median X, max Y" of the numbers in FILE, one a line.
stats() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "median %.2f ms, max %.2f ms", m, v[NR] }'
}

# The probe fills in @PREFIX@ for every reload; the first generation answers "Hello, world".
# threads 1: plugd, the load and the probe share the machine's cores (see compare.sh).
cat >"$tmp/server.json.in" <<EOF
{
  "threads": 1,
  "plugin_dir": "$build/lib/plugd",
  "plugins": { "greeting": { "file": "greeting", "config": { "prefix": "@PREFIX@" } } },
  "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "greeting" } ]
}
EOF
sed 's/@PREFIX@/Hello, /' "$tmp/server.json.in" >"$tmp/server.json"

: >"$tmp/plugd.log"  # exists before wait_for_log's first look, however plugd is scheduled
"${orphan_guard[@]}" "$build/bin/plugd" -c "$tmp/server.json" >"$tmp/plugd.log" 2>&1 &
plugd=$!
pids+=("$plugd")
wait_for_log 'listener main: listening on 127\.0\.0\.1:[0-9]+ \(' "its port"
port=$(sed -n 's/.*listener main: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' \
    "$tmp/plugd.log" | head -n 1)
# Before this line plugd may not handle SIGHUP yet, and a signal would end it.
wait_for_log 'serving generation 1' "that it is serving"

# Long enough to outlast the reloads (each one's wait for the new reply comes on top of the
# interval); checked below, since a reload after the load ended would measure nothing.
load_seconds=${BENCH_SECONDS:-$(awk -v n="$reloads" -v i="$interval_ms" -v w="$warmup_s" \
    'BEGIN { printf "%.1f", w + n * i / 1000 + 2 }')}
# load OUT ARGS...: starts a load run in the background, its output to OUT; sets $load.
load() {
    local out=$1
    shift
    "$build/bin/plugd-bench" --port "$port" --connections "$connections" \
        --duration "$load_seconds" --warmup 0 --pipeline "$pipeline" "$@" >"$out" 2>&1 &
    load=$!
    pids+=("$load")
}

echo "plugd reload: $reloads reloads ${interval_ms} ms apart, under load of $connections" \
    "connections (pipeline $pipeline) for ${load_seconds} s; 1 server thread, $(nproc) cores"
load "$tmp/reference.out" --expect 'Hello, world'
reference_status=0
wait "$load" || reference_status=$?

# The prefix changes with every reload: any "Hello...world" is right.
load "$tmp/load.out" --expect-prefix 'Hello'
load_ends=$(awk -v now="$EPOCHREALTIME" -v s="$load_seconds" 'BEGIN { printf "%.3f", now + s }')
sleep "$warmup_s"
# In the background and waited for, like the loads: bash runs the INT/TERM traps only once
# a foreground command has ended, and a stuck reload would hold it for the whole timeout.
"$build/bin/plugd_bench_reload_probe" --port "$port" --pid "$plugd" \
    --config "$tmp/server.json" --template "$tmp/server.json.in" --reloads "$reloads" \
    --interval-ms "$interval_ms" --timeout-ms "$timeout_ms" >"$tmp/probe.out" \
    2>"$tmp/probe.err" &
probe=$!
pids+=("$probe")
probe_status=0
wait "$probe" || probe_status=$?
# By the clock, not by asking whether the load still runs: a load that has just ended can
# linger as a zombie that kill -0 still finds.
load_outlasted=$(awk -v now="$EPOCHREALTIME" -v end="$load_ends" \
    'BEGIN { print now < end ? "yes" : "no" }')

load_status=0
wait "$load" || load_status=$?
# Stopped here rather than by the trap: its log is complete only once it has exited, and a
# clean exit after many reloads is part of what this checks.
plugd_status=0
kill -TERM "$plugd" 2>/dev/null || true
wait "$plugd" || plugd_status=$?
pids=()

failed=0
if ((probe_status != 0)); then
    echo "reload.sh: the probe failed (status $probe_status):" >&2
    cat "$tmp/probe.err" >&2
    failed=1
fi
if [[ $load_outlasted == no ]]; then
    echo "reload.sh: the load ended before the reloads did, so the last ones ran without" \
        "load; set BENCH_SECONDS above $load_seconds" >&2
    failed=1
fi
if ((reference_status != 0)); then
    echo "reload.sh: the load without reloads failed (status $reference_status):" >&2
    cat "$tmp/reference.out" >&2
    failed=1
fi
if ((load_status != 0)); then
    echo "reload.sh: the load failed (status $load_status):" >&2
    cat "$tmp/load.out" >&2
    failed=1
fi
if ((plugd_status != 0)); then
    echo "reload.sh: plugd exited with status $plugd_status" >&2
    failed=1
fi
# Every SIGHUP must have become its own successful reload that loaded a new greeting: a
# failed reload keeps the old prefix, and two signals that arrive together make one reload.
grep -E 'reload: generation [0-9]+ in [0-9]+ ms; plugins loaded: greeting;' "$tmp/plugd.log" |
    sed -E 's/.*reload: generation ([0-9]+) in ([0-9]+) ms.*/\1 \2/' >"$tmp/plugd.reloads" || true
expected_generations=$(seq 2 $((reloads + 1)) | tr '\n' ' ')
generations=$(cut -d' ' -f1 "$tmp/plugd.reloads" | tr '\n' ' ')
if [[ $generations != "$expected_generations" ]] || grep -q 'reload failed' "$tmp/plugd.log"; then
    echo "reload.sh: expected generations ${expected_generations}with greeting reloaded," \
        "plugd logged: ${generations:-none}; its log:" >&2
    cat "$tmp/plugd.log" >&2
    failed=1
fi

sed -n 's/.* latency_us=\([0-9]*\) .*/\1/p' "$tmp/probe.out" |
    awk '{ printf "%.3f\n", $1 / 1000 }' >"$tmp/probe.ms"
cut -d' ' -f2 "$tmp/plugd.reloads" >"$tmp/plugd.ms"
echo "probe, SIGHUP to new reply (ms): $(paste -sd' ' "$tmp/probe.ms")"
echo "plugd's log, config to commit (ms): $(paste -sd' ' "$tmp/plugd.ms")"
echo "load without reloads: $(cat "$tmp/reference.out")"
echo "load during reloads:  $(cat "$tmp/load.out")"
echo
if [[ -s $tmp/probe.ms && -s $tmp/plugd.ms ]]; then
    printf '%-36s %s\n' "reload latency, client-side:" "$(stats "$tmp/probe.ms")" \
        "reload latency, plugd (1 ms steps):" "$(stats "$tmp/plugd.ms")"
fi
fields='requests/s=([0-9]+) .* errors=([0-9]+) mismatches=([0-9]+) p50_us=([0-9]+)'
fields+=' p99_us=([0-9]+) max_us=([0-9]+)'
for run in "requests without reloads:|reference" "requests during reloads:|load"; do
    if [[ $(cat "$tmp/${run#*|}.out") =~ $fields ]]; then
        printf '%-36s %s req/s, %s errors, %s mismatches; p50 %s us, p99 %s us, max %s us\n' \
            "${run%|*}" "${BASH_REMATCH[@]:1:6}"
    fi
done
if ((failed)); then
    echo "FAILED"
    exit 1
fi
echo "OK: $reloads reloads took effect, every request answered correctly"
