#!/usr/bin/env bash
# compare.sh: one scenario against plugd and the reference servers, side by side: alternating
# rounds, a fresh server for every run, each measured by plugd-bench with --server-pid (so
# CPU per request and RSS per connection come from /proc the same way for every server;
# RSS from after one warm-up request, so a server's one-time costs are not per connection).
#
# Usage: bench/compare.sh SCENARIO [BUILD_DIR]   (default: the build tree next to bench/;
#        builds nothing: `cmake --build build -j2` after configuring with -DPLUGD_BUILD_BENCH=ON)
#
# Scenarios (the line ones answer "Hello, <message>" per line):
#   keepalive  256 keep-alive connections, one request in flight each
#   pipelined  64 connections, 16 requests in flight each
#   held       10,000 connections, each request held 1 s on a timer (greeting's delay_ms)
#   idle       8,000 idle keep-alive connections (connected, nothing sent) beside 1 busy one
#   churn      64 clients opening a connection per request
#   reload     plugd alone: 256 connections, with and without a reload every 2 s
#   reload-vs-nginx
#              HTTP/1.1 keep-alive, 256 connections: plugd with and without a reload (a
#              new instance of greeting) every second, and nginx with and without
#              `nginx -s reload` every second (nginx with its master process, which
#              reloads need). A connection a server closes between requests is opened
#              again and the request sent again, as HTTP clients do (plugd-bench
#              --reopen-closed): failed requests, reopened connections, p99 and p99.9
#              latency, and req/s against the same server without reloads
#   admin      plugd alone: 256 connections, without an admin endpoint and with one
#              (metrics kept) scraped every second
#   http       HTTP/1.1 keep-alive, 256 connections: plugd's http framing, nginx and Node's
#              `http`; through wrk too when it is installed
#   chain      plugd alone, HTTP/1.1 keep-alive, 256 connections: greeting as the listener's
#              plugin, and the same request through 100 routes (bench/lib.sh's chain_routes:
#              the 100th takes it) and 3 filters that pass it on (bench/pass_through.cpp)
#   tls        HTTPS, plugd's http listener and nginx with one ECDSA P-256 certificate made
#              for the run, TLS 1.3: new connections per second (full handshakes) and resumed
#              ones (session tickets), 2 client threads each a connection at a time
#              (bench/tls_client.cpp); keep-alive req/s through wrk, 256 connections; the
#              memory of 4,000 idle TLS connections that each made one request. On 2 cores
#              the clients bound the handshake rates (a client's side of a handshake costs
#              more than the server's): the server's CPU per handshake compares the servers
#   fanout     WebSocket room chat, plugd (examples/chat) and Node's `ws` library
#              (bench/reference/node_ws_chat.js): 10,000 subscribers and 1 publisher in one
#              room, through plugd-bench --websocket. The publisher keeps 1, then 8,
#              messages under way (sends the next once the oldest reached every
#              subscriber): with 1 each message is a fan-out of its own, one write per
#              subscriber, the cost of a delivery; with 8, a busy room, a server may put
#              several messages in one write. Nothing queues up beyond that window.
#              Delivered messages/s (over all subscribers), delivery latency p50/p99 (send
#              to read: the place in the fan-out and the window included), server CPU per
#              delivered message, and the server's resident memory per idle session (from
#              after one warm-up session until every upgrade, before the first message).
#              Builds: chat.so in lib/plugd/bench when examples/chat is in the tree, else
#              plugd is skipped
#   resp       examples/resp (a plugin speaking Redis's protocol on a raw listener) and a
#              real redis-server, each loaded by redis-benchmark (Debian's redis-tools):
#              PING (inline and RESP), SET and GET, 50 connections, one command in flight
#              each, then 16 pipelined (-P 16), then one in flight again while a busy
#              process (a shell loop) competes for the cores. req/s and p99 latency as
#              redis-benchmark reports them (its --csv), and the server's CPU per command
#              from /proc. redis-server runs as Debian ships it (one thread, no
#              persistence for the run). Builds: resp.so in lib/plugd/bench when
#              examples/resp is in the tree, else plugd is skipped
#
# Servers: plugd (greeting), asio (bench/baseline_line_server.cpp: a minimal Boost.Asio
# coroutine server), asyncio and uvloop (bench/reference/asyncio_server.py on Debian's
# python3, and python3-uvloop), node (bench/reference/node_server.js), nginx; for fanout,
# plugd (chat) and node (node_ws_chat.js on Debian's node-ws). A server whose runtime is
# missing is skipped with a note. Every server gets one thread: on a 2-core machine the load
# generator needs the other core.
#
# Environment: BENCH_ROUNDS (3), BENCH_SECONDS (per run; default by scenario), BENCH_SERVERS
# (a space-separated subset, e.g. "plugd asio"); for fanout BENCH_SUBSCRIBERS (10000) and
# BENCH_IN_FLIGHT (the windows, "1 8"); for resp BENCH_REQUESTS (per test, one in flight:
# 200000; pipelined: 10 times that).
# Prints every run, then a markdown table: medians, and plugd's ratio to each server.
set -euo pipefail
script=compare.sh

scenario=${1:-}
build=$(cd "${2:-$(dirname "$0")/../build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
rounds=${BENCH_ROUNDS:-3}

# What every scenario but fanout needs built (fanout: plugd-bench, and plugd's part skips).
needs=(bin/plugd lib/plugd/greeting.so lib/plugd/bench/pass_through.so
    bin/plugd_bench_baseline bin/plugd-bench bin/plugd_bench_tls)
[[ $scenario == fanout ]] && needs=(bin/plugd-bench)
[[ $scenario == resp ]] && needs=(bin/plugd)
for f in "${needs[@]}"; do
    if [[ ! -f $build/$f ]]; then
        echo "$script: $build/$f is missing; build it first:" >&2
        echo "  ./dev test   (or: cmake -S . -B build -DPLUGD_BUILD_BENCH=ON && cmake --build build -j2)" >&2
        exit 1
    fi
done

source "$here/lib.sh"

delay=0
warmup=1
reload_every=2   # seconds between the reloads of plugd+reloads and nginx+reloads
nginx_master=off # on: nginx with a master process (reloads need one)
seconds=${BENCH_SECONDS:-3}
mode=line
servers="plugd asio asyncio uvloop node"
case $scenario in
    keepalive) load=(--connections 256) what="256 keep-alive connections, one request in flight each" ;;
    pipelined) load=(--connections 64 --pipeline 16) what="64 connections x 16 pipelined requests" ;;
    held)
        delay=1000 warmup=3 seconds=${BENCH_SECONDS:-5}
        load=(--connections 10000 --timeout 30)
        what="10,000 connections, each request held 1 s"
        ;;
    idle)
        warmup=2 seconds=${BENCH_SECONDS:-2}
        load=(--connections 1 --idle 8000)
        what="8,000 idle keep-alive connections beside 1 busy one"
        ;;
    churn) load=(--connections 64 --churn) what="64 clients, a new connection per request" ;;
    reload-vs-nginx)
        mode=http seconds=${BENCH_SECONDS:-10} reload_every=1 nginx_master=on
        servers="plugd plugd+reloads nginx nginx+reloads"
        load=(--mode http --connections 256 --reopen-closed)
        what="HTTP/1.1 keep-alive, 256 connections, each server with and without a reload every second"
        ;;
    reload)
        seconds=${BENCH_SECONDS:-10}
        load=(--connections 256) servers="plugd plugd+reloads"
        what="256 keep-alive connections, plugd with and without a reload every 2 s"
        ;;
    admin)
        load=(--connections 256) servers="plugd plugd+admin"
        what="256 keep-alive connections, plugd without and with the admin endpoint scraped every 1 s"
        ;;
    http)
        mode=http servers="plugd nginx node-http"
        load=(--mode http --connections 256) what="HTTP/1.1 keep-alive, 256 connections"
        ;;
    chain)
        mode=http servers="plugd plugd+chain"
        load=(--mode http --connections 256)
        what="HTTP/1.1 keep-alive, 256 connections, plugd without and with 100 routes and a chain of 3 filters"
        ;;
    tls)
        mode=http servers="plugd nginx" pki=$tmp/pki idle_connections=4000
        # plugd's default TLS 1.2 ciphers, named for both servers (TLS 1.3, what is
        # measured, uses OpenSSL's default suites in both).
        tls12_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
        what="HTTPS, TLS 1.3, one ECDSA P-256 certificate: full and resumed handshakes (2 client threads), keep-alive through wrk (256 connections), 4,000 idle connections"
        ;;
    fanout)
        servers="plugd node" warmup=2 seconds=${BENCH_SECONDS:-5}
        subscribers=${BENCH_SUBSCRIBERS:-10000} windows=${BENCH_IN_FLIGHT:-1 8}
        # Debian's node-ws lives outside Node's default module path.
        export NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}
        what="WebSocket room chat, $subscribers subscribers and 1 publisher in one room, messages in flight: ${windows// / then }"
        ;;
    resp)
        servers="plugd redis" requests=${BENCH_REQUESTS:-200000}
        variants="one pipelined busy"
        what="redis-benchmark, PING/SET/GET, 50 connections: one command in flight, 16 pipelined, one in flight beside a busy process"
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
servers=${BENCH_SERVERS:-$servers}

python=/usr/bin/python3 # Debian's, whose python3-uvloop the uvloop server needs
nginx=$(command -v nginx || echo /usr/sbin/nginx)
# missing SERVER: why SERVER cannot run here, or nothing.
missing() {
    if [[ $scenario == fanout ]]; then
        case $1 in
            plugd) [[ -f $build/lib/plugd/bench/chat.so ]] ||
                echo "no $build/lib/plugd/bench/chat.so: the chat example (examples/chat/chat.cpp) is not in this tree, or not built (cmake --build $build -j2)" ;;
            node) if ! command -v node >/dev/null; then
                echo "no node (apt-get install nodejs)"
            elif ! node -e "require('ws')" 2>/dev/null; then
                echo "no ws module for node in $NODE_PATH (apt-get install node-ws)"
            fi ;;
        esac
        return 0
    fi
    if [[ $scenario == resp ]]; then
        command -v redis-benchmark >/dev/null || { echo "no redis-benchmark (apt-get install redis-tools)"; return 0; }
        case $1 in
            plugd) [[ -f $build/lib/plugd/bench/resp.so ]] ||
                echo "no $build/lib/plugd/bench/resp.so: the resp example (examples/resp/resp.cpp) is not in this tree, or not built (cmake --build $build -j2)" ;;
            redis) command -v redis-server >/dev/null || echo "no redis-server (apt-get install redis-server)" ;;
        esac
        return 0
    fi
    case $1 in
        asyncio) [[ -x $python ]] || echo "no $python (apt-get install python3)" ;;
        uvloop) "$python" -c 'import uvloop' 2>/dev/null || echo "no uvloop (apt-get install python3-uvloop)" ;;
        node | node-http) command -v node >/dev/null || echo "no node (apt-get install nodejs)" ;;
        nginx | nginx+reloads) [[ -x $nginx ]] || echo "no nginx (apt-get install nginx)" ;;
    esac
}

plugd_config() { # GENERATION [admin|chain]: greeting with the scenario's delay; a new
    # generation each reload; admin adds an admin endpoint on an ephemeral port, chain puts
    # the routes and filters of bench/lib.sh's chain_routes in front of greeting
    local admin='' filters='' to='"plugin": "greeting"' tls=''
    [[ $scenario == tls ]] && tls=", \"tls\": { \"certificate\": \"$pki/server.pem\",
    \"private_key\": \"$pki/server.key\", \"ciphers\": \"$tls12_ciphers\" }"
    case ${2:-} in
        admin) admin='"admin": { "port": 0 },' ;;
        chain) filters="$chain_filters," to="\"routes\": $(chain_routes)" ;;
    esac
    cat >"$tmp/server.json" <<JSON
{
  "threads": 1, $admin
  "plugin_dir": "$build/lib/plugd",
  "plugins": { $filters
    "greeting": { "file": "greeting", "config": { "delay_ms": $delay, "generation": $1 } } },
  "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "framing": "$mode", $to $tls } ],
  "limits": { "max_connections": 20000 }
}
JSON
}

chat_config() { # the fanout scenario's plugd: the chat on /room/ of an http listener. A
    # subscriber has at most the publisher's window of messages queued, far below
    # max_queued_messages.
    cat >"$tmp/server.json" <<JSON
{
  "threads": 1,
  "plugin_dir": "$build/lib/plugd",
  "plugins": { "chat": { "file": "bench/chat" } },
  "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "framing": "http",
    "routes": [ { "path": "/room/", "plugin": "chat" } ] } ],
  "limits": { "max_connections": 20000, "max_queued_messages": 1024 }
}
JSON
}

resp_config() { # the resp scenario's plugd: examples/resp on a raw listener
    cat >"$tmp/server.json" <<JSON
{
  "threads": 1,
  "plugin_dir": "$build/lib/plugd",
  "plugins": { "resp": { "file": "bench/resp" } },
  "listeners": [ { "name": "main", "address": "127.0.0.1", "port": 0, "framing": "raw",
    "plugin": "resp" } ]
}
JSON
}

# start NAME: starts one server for one run; sets $pid and $port.
start() {
    local listening='s/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p'
    case $1 in
        plugd | plugd+reloads | plugd+admin | plugd+chain)
            case $scenario in
                fanout) chat_config ;;
                resp) resp_config ;;
                *) plugd_config 1 "${1#plugd+}" ;;
            esac
            start_server "$1" 's/.*listener main: listening on 127\.0\.0\.1:\([0-9]*\) (.*/\1/p' \
                "$build/bin/plugd" -c "$tmp/server.json"
            ;;
        asio) start_server asio "$listening" "$build/bin/plugd_bench_baseline" --delay-ms "$delay" ;;
        asyncio) start_server asyncio "$listening" "$python" "$here/reference/asyncio_server.py" \
            --delay-ms "$delay" ;;
        uvloop) start_server uvloop "$listening" "$python" "$here/reference/asyncio_server.py" \
            --uvloop --delay-ms "$delay" ;;
        node)
            if [[ $scenario == fanout ]]; then
                start_server node "$listening" node "$here/reference/node_ws_chat.js"
            else
                start_server node "$listening" node "$here/reference/node_server.js" --delay-ms "$delay"
            fi
            ;;
        redis)
            local p
            p=$(free_port)
            start_quiet_server redis "$p" redis-server --bind 127.0.0.1 --port "$p" --save '' \
                --appendonly no --protected-mode no
            ;;
        node-http) start_server node-http "$listening" node "$here/reference/node_server.js" --http ;;
        nginx | nginx+reloads)
            local p listen ssl=''
            p=$(free_port)
            listen="127.0.0.1:$p"
            if [[ $scenario == tls ]]; then
                # As plugd serves: TLS 1.2 and 1.3 (nginx 1.22 offers no 1.3 unless told),
                # the same TLS 1.2 ciphers in the server's order, session tickets. Common
                # to both without saying: OpenSSL's TLS 1.3 suites and groups, and
                # SSL_MODE_RELEASE_BUFFERS (nginx sets it, and frees the buffers of a
                # keep-alive connection between requests).
                listen+=" ssl"
                ssl="ssl_certificate $pki/server.pem; ssl_certificate_key $pki/server.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers $tls12_ciphers; ssl_prefer_server_ciphers on;
    ssl_session_tickets on;"
            fi
            cat >"$tmp/nginx.conf" <<CONF
daemon off;
master_process $nginx_master;
worker_processes 1;
pid $tmp/nginx.pid;
error_log stderr error;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp;
  uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server {
    listen $listen backlog=4096;
    $ssl
    location ~ ^/(.*)\$ { default_type text/plain; return 200 "Hello, \$1"; }
  }
}
CONF
            # nginx itself, not a shell around it: its pid is the one measured and stopped.
            start_quiet_server nginx "$p" "$nginx" -e stderr -c "$tmp/nginx.conf" -p "$tmp"
            ;;
    esac
}

# reloads PID: rewrites server.json with a new generation and sends SIGHUP every
# $reload_every seconds.
reloads() {
    local generation=1
    while sleep "$reload_every"; do
        generation=$((generation + 1))
        plugd_config "$generation"
        kill -HUP "$1" || return 0
    done
}

# nginx_reloads: `nginx -s reload` every $reload_every seconds (its master re-reads the
# configuration, starts new workers, and the old ones close their keep-alive connections).
nginx_reloads() {
    while sleep "$reload_every"; do
        "$nginx" -e stderr -c "$tmp/nginx.conf" -p "$tmp" -s reload 2>>"$tmp/nginx-reloads.log" ||
            return 0
    done
}

# scrapes PORT: GET /metrics every second, as Prometheus would (more often than it usually does).
scrapes() {
    while sleep 1; do
        curl -sf -o /dev/null "http://127.0.0.1:$1/metrics" || return 0
    done
}

# run NAME: one run against a fresh server; appends its figures to $tmp/NAME.*.
run() {
    local name=$1 out reloader=
    start "$name"
    local server_pid=$pid
    [[ $name == plugd+reloads ]] && { reloads "$server_pid" & reloader=$!; }
    if [[ $name == plugd+admin ]]; then
        local admin_port
        admin_port=$(sed -n 's/.*admin endpoint: listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' \
            "$tmp/$name.log")
        scrapes "$admin_port" &
        reloader=$!
    fi
    if ! out=$("$build/bin/plugd-bench" --port "$port" --mode "$mode" --server-pid "$server_pid" \
        --duration "$seconds" --warmup "$warmup" "${load[@]}" 2>&1); then
        echo "$script: the run against $name failed:" >&2
        echo "$out" >&2
        exit 1
    fi
    [[ -n $reloader ]] && { kill "$reloader" 2>/dev/null || true; wait "$reloader" 2>/dev/null || true; }
    printf '  %-14s %s\n' "$name" "$out"
    if [[ $name == plugd+reloads ]]; then
        local ok failed
        ok=$(grep -c "reload: generation" "$tmp/$name.log" || true)
        failed=$(grep -c "reload failed" "$tmp/$name.log" || true)
        echo "                 $ok reloads done, $failed failed"
        if ((ok < 1 || failed > 0)); then
            echo "$script: plugd did not reload as asked; its log:" >&2
            cat "$tmp/$name.log" >&2
            exit 1
        fi
    fi
    stop_server "$pid"
    field "$out" requests/s >>"$tmp/$name.rate"
    field "$out" server_cpu_us_per_request >>"$tmp/$name.cpu"
    field "$out" server_rss_per_connection_bytes >>"$tmp/$name.rss"
}

# each_server RUN ARGS...: `RUN NAME ARGS...` for every server that runs, in order.
each_server() {
    local name
    for name in "${ran[@]}"; do "$1" "$name" "${@:2}"; done
}

# in_rounds STEP ARGS...: $rounds rounds of `STEP ARGS...`, each announced. Alternating the
# servers within a round spreads slow drifts (thermal, other processes) over all alike.
in_rounds() {
    local round
    for ((round = 1; round <= rounds; round++)); do
        echo "round $round:"
        "$@"
    done
}

# make_pki: the tls scenario's certificates in $pki (removed with $tmp): an ECDSA P-256 CA
# and a server certificate it signed for 127.0.0.1, the one plugd and nginx both serve.
make_pki() {
    mkdir -p "$pki"
    (
        cd "$pki"
        key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
        key ca.key
        openssl req -x509 -new -key ca.key -out ca.pem -days 30 -subj "/CN=plugd bench CA"
        key server.key
        openssl req -new -key server.key -out server.csr -subj "/CN=localhost"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 30 \
            -extfile san.cnf -out server.pem
    ) >"$tmp/pki.log" 2>&1 || {
        echo "$script: could not make the certificates with openssl:" >&2
        cat "$tmp/pki.log" >&2
        exit 1
    }
}

# tls_run NAME KIND: one run of bench/tls_client.cpp against a fresh server: KIND full or
# resumed handshakes, or idle connections; appends its figures to $tmp/NAME.KIND-*.
tls_run() {
    local name=$1 kind=$2 out args
    start "$name"
    args=(--port "$port" --mode "$kind" --server-pid "$pid")
    if [[ $kind == idle ]]; then
        args+=(--connections "$idle_connections")
    else
        args+=(--duration "$seconds" --warmup "$warmup")
    fi
    if ! out=$("$build/bin/plugd_bench_tls" "${args[@]}" 2>&1); then
        echo "$script: the $kind run against $name failed:" >&2
        echo "$out" >&2
        exit 1
    fi
    stop_server "$pid"
    printf '  %-10s %-7s %s\n' "$name" "$kind" "$out"
    if [[ $kind == idle ]]; then
        field "$out" server_rss_per_connection_bytes >>"$tmp/$name.idle-rss"
    else
        field "$out" handshakes/s >>"$tmp/$name.$kind-rate"
        field "$out" server_cpu_us_per_handshake >>"$tmp/$name.$kind-cpu"
    fi
}

# measure_row LABEL FILE GOAL: a row of a table by measure (tls, fanout): each server's
# median of $tmp/NAME.FILE (min-max), the first server's median over each other's, and the
# goal for that ratio.
measure_row() {
    local row="| $1 |" name
    for name in "${ran[@]}"; do row+=" $(median "$tmp/$name.$2") ($(spread "$tmp/$name.$2")) |"; done
    for name in "${ran[@]:1}"; do
        row+=" $(ratio "$(median "$tmp/$first.$2")" "$(median "$tmp/$name.$2")") |"
    done
    echo "$row $3 |"
}

# measure_header: the head of such a table: a column per server, one per ratio, the goal.
measure_header() {
    local header="| measure |" rule="|---|" name
    for name in "${ran[@]}"; do header+=" $name (min-max) |" rule+="---|"; done
    for name in "${ran[@]:1}"; do header+=" $first ÷ $name |" rule+="---|"; done
    echo "$header goal for the ratio |"
    echo "$rule---|"
}

# tls_round: one round of the tls scenario (`with_wrk`: tls_scenario's).
tls_round() {
    local kind
    for kind in full resumed; do each_server tls_run "$kind"; done
    [[ -n $with_wrk ]] && each_server wrk_run https
    each_server tls_run idle
}

# tls_scenario: compare.sh tls: alternating rounds of each measure, then one table.
tls_scenario() {
    command -v openssl >/dev/null || {
        echo "$script: tls needs the openssl command (apt-get install openssl)" >&2
        exit 1
    }
    make_pki
    local with_wrk=1
    command -v wrk >/dev/null || { with_wrk=; echo "skipping keep-alive through wrk: no wrk (apt-get install wrk)"; }
    echo "$scenario: $what; $rounds rounds, handshakes and wrk ${seconds} s (after ${warmup} s of" \
        "warm-up), 1 server thread, $(nproc) cores"
    in_rounds tls_round

    echo
    measure_header
    measure_row "full handshakes/s (new connection, GET, close)" full-rate "≥ 1"
    measure_row "server CPU µs per full handshake" full-cpu "lower is better"
    measure_row "resumed handshakes/s (TLS 1.3 ticket)" resumed-rate "≥ 1"
    measure_row "server CPU µs per resumed handshake" resumed-cpu "lower is better"
    if [[ -n $with_wrk ]]; then
        measure_row "HTTPS keep-alive req/s (wrk, 256 connections)" wrk-rate "≥ 1"
        measure_row "server CPU µs per keep-alive request" wrk-cpu "lower is better"
    fi
    measure_row "RSS bytes per idle TLS connection ($idle_connections)" idle-rss "≤ 1"
}

# fanout_run NAME WINDOW: one plugd-bench --websocket run against a fresh server, WINDOW
# messages in flight; appends its figures to $tmp/NAME.WINDOW-*, and memory to
# $tmp/NAME.fanout-rss.
fanout_run() {
    local name=$1 window=$2 out
    start "$name"
    if ! out=$("$build/bin/plugd-bench" --port "$port" --websocket /room/bench \
        --connections "$subscribers" --in-flight "$window" --server-pid "$pid" \
        --duration "$seconds" --warmup "$warmup" --timeout 30 2>&1); then
        echo "$script: the run against $name failed:" >&2
        echo "$out" >&2
        echo "$name's log:" >&2
        tail -n 20 "$tmp/$name.log" >&2
        exit 1
    fi
    stop_server "$pid"
    printf '  %-6s %-12s %s\n' "$name" "$window in flight" "$out"
    field "$out" messages/s >>"$tmp/$name.$window-rate"
    field "$out" p50_us >>"$tmp/$name.$window-p50"
    field "$out" p99_us >>"$tmp/$name.$window-p99"
    field "$out" server_cpu_us_per_message | awk '{ printf "%.2f\n", $1 }' >>"$tmp/$name.$window-cpu"
    field "$out" server_rss_per_session_bytes >>"$tmp/$name.fanout-rss"
}

# reload_run NAME: one run of the reload-vs-nginx scenario against a fresh server (with its
# reloads for NAME+reloads); appends its figures to $tmp/NAME.*. Failed requests are what
# is measured here: a run with some does not stop the scenario.
reload_run() {
    local name=$1 out reloader= status=0
    start "$name"
    local server_pid=$pid
    case $name in
        plugd+reloads) { reloads "$server_pid" & reloader=$!; } ;;
        nginx+reloads) { nginx_reloads & reloader=$!; } ;;
    esac
    out=$("$build/bin/plugd-bench" --port "$port" --duration "$seconds" --warmup "$warmup" \
        "${load[@]}" 2>&1) || status=$?
    [[ -n $reloader ]] && { kill "$reloader" 2>/dev/null || true; wait "$reloader" 2>/dev/null || true; }
    if [[ -z $(field "$out" requests/s) ]]; then
        echo "$script: the run against $name failed (status $status):" >&2
        echo "$out" >&2
        exit 1
    fi
    local reloaded=-
    [[ $name == plugd+reloads ]] && reloaded=$(grep -c "reload: generation" "$tmp/$name.log" || true)
    stop_server "$server_pid"
    printf '  %-14s %s\n' "$name" "$(head -n 1 <<<"$out")"
    [[ $reloaded != - ]] && echo "                 $reloaded reloads done"
    field "$out" requests/s >>"$tmp/$name.rate"
    field "$out" errors >>"$tmp/$name.errors"
    field "$out" reopened >>"$tmp/$name.reopened"
    field "$out" p99_us >>"$tmp/$name.p99"
    field "$out" p999_us >>"$tmp/$name.p999"
}

# reload_vs_nginx_scenario: compare.sh reload-vs-nginx: alternating rounds, then a table by
# server: each with reloads against itself without.
reload_vs_nginx_scenario() {
    local name base
    echo "$scenario: $what; $rounds rounds of ${seconds} s (after ${warmup} s of warm-up)," \
        "1 server thread (nginx: 1 worker), 1 load thread, $(nproc) cores"
    in_rounds each_server reload_run
    echo
    echo "| server | req/s (min-max) | req/s ÷ the same without reloads | failed requests (all runs) | reopened connections (all runs) | p99 µs | p99.9 µs |"
    echo "|---|---|---|---|---|---|---|"
    total() { awk '{ n += $1 } END { print n + 0 }' "$1"; }
    for name in "${ran[@]}"; do
        base=${name%+reloads}
        echo "| $name | $(median "$tmp/$name.rate") ($(spread "$tmp/$name.rate")) |" \
            "$(ratio "$(median "$tmp/$name.rate")" "$(median "$tmp/$base.rate")") |" \
            "$(total "$tmp/$name.errors") | $(total "$tmp/$name.reopened") |" \
            "$(median "$tmp/$name.p99") | $(median "$tmp/$name.p999") |"
    done
}

# fanout_round: one round of the fanout scenario, each window in turn.
fanout_round() {
    local window
    for window in $windows; do each_server fanout_run "$window"; done
}

# fanout_scenario: compare.sh fanout: alternating rounds, then one table by measure.
fanout_scenario() {
    local window
    echo "$scenario: $what; $rounds rounds of ${seconds} s (after ${warmup} s of warm-up)," \
        "1 server thread, 1 load thread, $(nproc) cores"
    in_rounds fanout_round

    echo
    measure_header
    for window in $windows; do
        measure_row "delivered messages/s, $window in flight" "$window-rate" "≥ 2"
        measure_row "delivery latency p50 µs, $window in flight" "$window-p50" "lower is better"
        measure_row "delivery latency p99 µs, $window in flight" "$window-p99" "< 1"
        measure_row "server CPU µs per delivered message, $window in flight" "$window-cpu" \
            "lower is better"
    done
    measure_row "RSS bytes per idle session ($subscribers, every run)" fanout-rss \
        "plugd ≤ 2048 bytes"
}

# resp_run NAME VARIANT: redis-benchmark against a fresh server: VARIANT one (one command in
# flight per connection), pipelined (-P 16) or busy (one in flight while a shell loop
# competes for the cores); appends each test's req/s and p99 to $tmp/NAME.VARIANT-TEST-*.
resp_run() {
    local name=$1 variant=$2 out busy= n=$requests args=() test rps p99
    start "$name"
    case $variant in
        pipelined) args=(-P 16) n=$((requests * 10)) ;;
        busy)
            "${orphan_guard[@]}" bash -c 'while :; do :; done' &
            busy=$!
            pids+=("$busy")
            ;;
    esac
    # Warm-up: the connections' buffers and the server's first pages, before the clock.
    redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n 20000 -t ping,set,get -q "${args[@]}" \
        >/dev/null 2>&1
    local before after
    before=$(cpu_ticks "$pid")
    if ! out=$(redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$n" -t ping,set,get --csv \
        "${args[@]}" 2>&1); then
        echo "$script: redis-benchmark against $name failed:" >&2
        echo "$out" >&2
        exit 1
    fi
    after=$(cpu_ticks "$pid")
    # Server CPU per command over the four tests: what decides who serves more when the
    # cores are shared.
    local cpu
    cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n=$((n * 4)) \
        'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
    echo "$cpu" >>"$tmp/$name.$variant-cpu"
    [[ -n $busy ]] && stop_server "$busy"
    stop_server "$pid"
    # "TEST","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    local line=
    while IFS=, read -r test rps _ _ _ _ p99 _; do
        test=${test//\"/} rps=${rps//\"/} p99=${p99//\"/}
        [[ $test == test || -z $rps ]] && continue
        echo "$rps" >>"$tmp/$name.$variant-$test-rate"
        echo "$p99" >>"$tmp/$name.$variant-$test-p99"
        line+=" $test=$rps/s,p99=${p99}ms"
    done <<<"$out"
    if [[ -z $line ]]; then
        echo "$script: no figures from redis-benchmark against $name:" >&2
        echo "$out" >&2
        exit 1
    fi
    printf '  %-6s %-10s%s server_cpu_us_per_command=%s\n' "$name" "$variant" "$line" "$cpu"
}

# resp_round: one round of the resp scenario, each variant in turn.
resp_round() {
    local variant
    for variant in $variants; do each_server resp_run "$variant"; done
}

# resp_scenario: compare.sh resp: alternating rounds of each variant, then one table.
resp_scenario() {
    local variant test
    echo "$scenario: $what; $rounds rounds, $requests requests per test (pipelined:" \
        "$((requests * 10))), plugd with 1 server thread, $(nproc) cores"
    in_rounds resp_round
    echo
    measure_header
    for variant in $variants; do
        for test in PING_INLINE PING_MBULK SET GET; do
            measure_row "$test req/s, $variant" "$variant-$test-rate" "≥ 1"
            measure_row "$test p99 ms, $variant" "$variant-$test-p99" "≤ 1"
        done
        measure_row "server CPU µs per command, $variant" "$variant-cpu" "lower is better"
    done
}

# cpu_ticks PID: user + system CPU time the process has used, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# wrk_run NAME SCHEME: wrk, the load generator HTTP servers are usually measured with,
# against a fresh server (http or https), after a second of warm-up: server CPU per request
# from /proc, and a run with any error or non-2xx fails. Appends to $tmp/NAME.wrk-*.
wrk_run() {
    local name=$1 url out before after requests rate cpu
    start "$name"
    url="$2://127.0.0.1:$port/world"
    wrk -t1 -c256 -d1s "$url" >/dev/null # warm-up
    before=$(cpu_ticks "$pid")
    out=$(wrk -t1 -c256 -d"${seconds}s" "$url")
    after=$(cpu_ticks "$pid")
    stop_server "$pid"
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        echo "$script: wrk saw errors against $name:" >&2
        echo "$out" >&2
        exit 1
    fi
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    rate=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
        'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
    printf '  %-10s wrk requests/s=%s server_cpu_us_per_request=%s\n' "$name" "$rate" "$cpu"
    echo "$rate" >>"$tmp/$name.wrk-rate"
    echo "$cpu" >>"$tmp/$name.wrk-cpu"
}

# ratio A B: A / B to two decimals ("-" without both).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

ran=()
for name in $servers; do
    why=$(missing "$name")
    if [[ -n $why ]]; then
        echo "skipping $name: $why"
    else
        ran+=("$name")
    fi
done
if ((${#ran[@]} == 0)); then
    echo "$script: no server to run $scenario against (see the notes above)" >&2
    exit 1
fi
first=${ran[0]}

if [[ $scenario == fanout ]]; then
    fanout_scenario
    exit 0
fi
if [[ $scenario == tls ]]; then
    tls_scenario
    exit 0
fi
if [[ $scenario == resp ]]; then
    resp_scenario
    exit 0
fi
if [[ $scenario == reload-vs-nginx ]]; then
    reload_vs_nginx_scenario
    exit 0
fi

echo "$scenario: $what; $rounds rounds of ${seconds} s (after ${warmup} s of warm-up)," \
    "1 server thread, 1 load thread, $(nproc) cores"
in_rounds each_server run

# The table: medians of the runs; ratios are plugd's (or the first server's) over each.
echo
echo "| server | req/s (min-max) | server CPU µs/request | RSS bytes/connection | $first req/s ÷ this | $first CPU ÷ this |"
echo "|---|---|---|---|---|---|"
for name in "${ran[@]}"; do
    rate=$(median "$tmp/$name.rate") cpu=$(median "$tmp/$name.cpu") rss=$(median "$tmp/$name.rss")
    echo "| $name | $rate ($(spread "$tmp/$name.rate")) | $(awk -v c="$cpu" 'BEGIN { if (c == "-") print c; else printf "%.2f", c }') | $rss |" \
        "$(ratio "$(median "$tmp/$first.rate")" "$rate") | $(ratio "$(median "$tmp/$first.cpu")" "$cpu") |"
done

if [[ $scenario == http ]] && command -v wrk >/dev/null; then
    # The same alternating rounds through wrk.
    echo
    echo "wrk: 1 thread, 256 connections, GET /world; $rounds rounds of ${seconds} s:"
    for ((round = 1; round <= rounds; round++)); do each_server wrk_run http; done
    echo
    echo "| server (wrk) | req/s (min-max) | server CPU µs/request | $first req/s ÷ this | $first CPU ÷ this |"
    echo "|---|---|---|---|---|"
    for name in "${ran[@]}"; do
        rate=$(median "$tmp/$name.wrk-rate") cpu=$(median "$tmp/$name.wrk-cpu")
        echo "| $name | $rate ($(spread "$tmp/$name.wrk-rate")) | $cpu |" \
            "$(ratio "$(median "$tmp/$first.wrk-rate")" "$rate") | $(ratio "$(median "$tmp/$first.wrk-cpu")" "$cpu") |"
    done
fi
