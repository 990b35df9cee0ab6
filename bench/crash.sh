#!/usr/bin/env bash
# crash.sh: what one plugin crash costs a supervised plugd under load: 64 concurrent
# clients (plugd-bench, keep-alive, then a connection per request) against "workers": 2
# serving the faulty test plugin; after 1 s one extra connection sends "crash". Prints the
# requests answered, the requests that failed (every one that was in flight on, or sent
# next on a connection of, the crashed worker), how long until a new worker served, and
# the idle memory of the master and of each worker.
#
# Usage: bench/crash.sh [BUILD_DIR]   (a tree built with the tests: ./dev test)
set -euo pipefail
script=crash.sh
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
for f in bin/plugd bin/plugd-bench tests/plugins/faulty.so; do
    [[ -f $build/$f ]] || { echo "$script: $build/$f is missing; run ./dev test first" >&2; exit 1; }
done
source "$here/lib.sh"

cat >"$tmp/server.json" <<JSON
{ "threads": 1, "workers": 2, "plugin_dir": "$build/tests/plugins",
  "plugins": { "p": { "file": "faulty" } },
  "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "plugin": "p" } ] }
JSON
start_server plugd 's/.*listener main: listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' \
    "$build/bin/plugd" -c "$tmp/server.json"
master=$pid
until [[ $(grep -c "serving generation" "$tmp/plugd.log") -ge 2 ]]; do sleep 0.05; done

rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
echo "idle: master $(rss "$master") KiB RSS; workers: $(for w in $(pgrep -P "$master"); do
    printf '%s KiB ' "$(rss "$w")"; done)"

crash_after_1s() {
    sleep 1
    python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"crash\n")
s.settimeout(5)
try:
    s.recv(100)
except OSError:
    pass
PY
}

for kind in keep-alive churn; do
    extra=()
    [[ $kind == churn ]] && extra=(--churn)
    before=$(grep -c "died of SIGSEGV" "$tmp/plugd.log" || true)
    crash_after_1s &
    crasher=$!
    out=$("$build/bin/plugd-bench" --port "$port" --connections 64 --duration 3 --warmup 0 \
        --message x --expect faulty:x "${extra[@]}" 2>&1 || true)
    wait "$crasher"
    after=$(grep -c "died of SIGSEGV" "$tmp/plugd.log" || true)
    echo "$kind, 64 clients, 3 s, $((after - before)) crash: $(grep -o 'requests=[0-9]*' <<<"$out" | head -1)" \
        "$(grep -o 'errors=[0-9]*' <<<"$out" | head -1)"
done

# Respawn time: from the master noticing a death to the new worker serving, from the log.
python3 - "$tmp/plugd.log" <<'PY'
import re, sys, datetime
lines = open(sys.argv[1]).read().splitlines()
def t(line):
    return datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f")
deaths = [t(l) for l in lines if "died of SIGSEGV" in l]
serving = [t(l) for l in lines if "serving generation" in l]
for d in deaths:
    later = [s for s in serving if s >= d]
    if later:
        print(f"respawn: a new worker served {(later[0] - d).total_seconds() * 1000:.0f} ms after the death was noticed")
PY
