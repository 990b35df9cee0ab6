# lib.sh: what the bench scripts share: a scratch folder, servers started in the background
# and stopped on exit, medians, and the `chain` benchmark's routes and filters. Source it
# after setting `script` (the caller's name).

tmp=$(mktemp -d "${TMPDIR:-/tmp}/plugd-bench.XXXXXX")
pids=()
# Servers die with the script even when nothing of it runs any more (a SIGKILL runs no
# trap): the kernel sends them SIGTERM when it ends (setpriv's parent-death signal; setpriv
# execs the server, so $! stays the server's pid).
orphan_guard=()
command -v setpriv >/dev/null && orphan_guard=(setpriv --pdeathsig TERM)
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
# Turn signals into an exit, so the EXIT trap stops the servers.
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server NAME SED_SCRIPT COMMAND...: starts COMMAND in the background, its output in
# $tmp/NAME.log, and sets $pid and $port once SED_SCRIPT finds the port in that log. Polls
# rather than sleeps: fast when the server is, and it notices one that died on start-up.
start_server() {
    local name=$1 pattern=$2
    shift 2
    "${orphan_guard[@]}" "$@" >"$tmp/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    local deadline=$((SECONDS + 10))
    port=
    while [[ -z $port ]]; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "$script: $name did not start listening; its log:" >&2
            cat "$tmp/$name.log" >&2
            exit 1
        fi
        sleep 0.05
        port=$(sed -n "$pattern" "$tmp/$name.log" | head -n 1)
    done
}

# start_quiet_server NAME PORT COMMAND...: start_server for a server that says nothing when
# it listens (nginx): waits until PORT accepts a connection instead. COMMAND must be the
# server process itself, not a shell around it, so that $pid is what is measured and what
# stop_server and the exit trap stop.
start_quiet_server() {
    local name=$1 at=$2
    shift 2
    "${orphan_guard[@]}" "$@" >"$tmp/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    local deadline=$((SECONDS + 10))
    until { exec 3<>"/dev/tcp/127.0.0.1/$at"; } 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "$script: $name did not start listening on port $at; its log:" >&2
            cat "$tmp/$name.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    exec 3>&-
    port=$at
}

# stop_server PID: stops one server started by start_server and waits for it.
stop_server() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local kept=()
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
    pids=("${kept[@]}")
}

# free_port: a port nothing listens on now, for servers that cannot report the one they got.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# median FILE: the median of the numbers in FILE, one a line ("-" when there are none).
median() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        print m }'
}

# spread FILE: "min-max" of the numbers in FILE: how much the machine disturbed the runs.
spread() {
    sort -g "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s-%s", lo, hi }'
}

# field LINE KEY: the value of KEY=value in one of plugd-bench's result lines.
field() {
    local rest=${1#*"$2"=}
    [[ $rest == "$1" ]] && return 0
    echo "${rest%% *}"
}

# The `chain` benchmark's composition (compare.sh chain, allocations.sh): three filters that
# only pass the request on (bench/pass_through.cpp), as /plugins entries, and the chain
# through them to greeting.
chain_filters='"filter1": { "file": "bench/pass_through" },
    "filter2": { "file": "bench/pass_through" },
    "filter3": { "file": "bench/pass_through" }'
chain_of_greeting='["filter1", "filter2", "filter3", "greeting"]'

# chain_routes: its route table, a JSON array of 100 routes as a gateway might have: exact
# and prefix paths, routes for some methods, for a host and for a wildcard host (so every
# request's Host field is read and looked up). plugd-bench's request, GET /world with
# Host: 127.0.0.1, matches none of the first 99: no host route takes its host; "upload" has
# its path, but for POST only, so the lookup goes on to the prefixes; and "site", the "/"
# prefix through the chain, takes it. Why "/": plugd-bench percent-encodes any '/' of its
# message, and on a listener with routes greeting's message is the path after the route's
# prefix; so greeting answers "Hello, world" here as it does on a listener without routes.
chain_routes() {
    local i routes=
    for ((i = 0; i < 98; i++)); do
        case $((i % 6)) in
            0) routes+="{ \"path\": \"/r$i/\", \"chain\": $chain_of_greeting }," ;;
            1) routes+="{ \"path\": \"/r$i/\", \"plugin\": \"greeting\" }," ;;
            2) routes+="{ \"path\": \"/r$i\", \"methods\": [\"GET\"], \"plugin\": \"greeting\" }," ;;
            3) routes+="{ \"path\": \"/r$i\", \"methods\": [\"POST\", \"PUT\"], \"chain\": $chain_of_greeting }," ;;
            4) routes+="{ \"host\": \"api.example.com\", \"path\": \"/r$i/\", \"plugin\": \"greeting\" }," ;;
            5) routes+="{ \"host\": \"*.example.com\", \"path\": \"/r$i/\", \"chain\": $chain_of_greeting }," ;;
        esac
        routes+=$'\n    '
    done
    echo "[ $routes{ \"name\": \"upload\", \"path\": \"/world\", \"methods\": [\"POST\"], \"plugin\": \"greeting\" },
    { \"name\": \"site\", \"path\": \"/\", \"chain\": $chain_of_greeting } ]"
}
