#!/usr/bin/env bash
# Signaling server load: `netplay serve` with 10,000 clients in lobbies (memory per idle client,
# time to connect and join them all), then OFFER relay latency at 10,000 messages per second.
# See docs/BENCHMARKS.md, section "Signaling server load".
#
#   bench/signal.sh [--clients N] [--lobby-size N] [--rate R] [--seconds T] [--idle-seconds T]
#                   [--ping-interval-ms MS] [--repeat N] [--nodes 1|2] [--no-rt] [--no-build]
#
# Defaults: 10,000 clients in lobbies of 2, 12 s idle (one server heartbeat), 10,000 OFFERs/s
# for 10 s after 1 s of warm-up, 3 repetitions against a fresh server each. The server keeps its
# default heartbeat, a ping every 10,000 ms (0 turns it off). It runs on CPU 0, the load
# generator (bench/src/bin/signal-load.rs) on CPU 1, both with SCHED_FIFO priority 1 when
# allowed (--no-rt: ordinary priority). Only loopback addresses are used.
# --nodes 2 runs two `netplay serve --redis` nodes sharing lobbies through a redis-server started
# here: both nodes on CPU 0, Redis on CPU 1 beside the load generator; each lobby has its host on
# one node and its guest on the other, so every relayed OFFER crosses Redis.
# Prints Markdown tables on stdout; progress and the raw SIGNAL lines go to stderr.
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/lib.sh"
ROOT="$(cd "$HERE/.." && pwd)"
CLIENTS=10000
LOBBY_SIZE=2
RATE=10000
SECONDS_PER_RUN=10
IDLE_SECONDS=12
REPEAT=3
NODES=1
PING_MS=10000
USE_RT=1
BUILD=1

while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS="$2"; shift ;;
        --lobby-size) LOBBY_SIZE="$2"; shift ;;
        --rate) RATE="$2"; shift ;;
        --seconds) SECONDS_PER_RUN="$2"; shift ;;
        --idle-seconds) IDLE_SECONDS="$2"; shift ;;
        --repeat) REPEAT="$2"; shift ;;
        --nodes) NODES="$2"; shift ;;
        --ping-interval-ms) PING_MS="$2"; shift ;;
        --no-rt) USE_RT=0 ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "[signal] $*" >&2; }

if [ "$(nproc)" -lt 2 ]; then
    echo "needs at least 2 CPUs (server on CPU 0, load on CPU 1)" >&2
    exit 1
fi

if [ "$BUILD" = 1 ]; then
    log "building the server (release)"
    cargo build --release --manifest-path "$ROOT/Cargo.toml" -p netplay-cli >&2 || exit 1
    log "building the load generator (release)"
    cargo build --release --manifest-path "$HERE/Cargo.toml" --bin signal-load >&2 || exit 1
fi
SERVER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/netplay"
LOAD_BIN="${CARGO_TARGET_DIR:-$HERE/target}/release/signal-load"
for b in "$SERVER_BIN" "$LOAD_BIN"; do
    [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }
done

pick_priority "$USE_RT"
log "priority: ${PRIO[*]:-default}"

# One descriptor per client in the server and in the load generator. `netplay serve` keeps the
# limit it inherits, so raise the soft limit here (and the hard one where allowed).
ulimit -Hn $((CLIENTS + 1024)) 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CLIENTS + 64)) ]; then
    echo "open-file limit $(ulimit -n) is too low for $CLIENTS clients" >&2
    exit 1
fi

case "$NODES" in 1|2) ;; *) echo "--nodes must be 1 or 2" >&2; exit 2 ;; esac
if [ "$NODES" = 2 ]; then
    command -v redis-server >/dev/null || { echo "--nodes 2 needs redis-server" >&2; exit 1; }
fi

SERVER_PIDS=()
SERVER_OUTS=()
REDIS_PID=""
LOAD_PID=""
LOAD_OUT=""
stop_pid() { # pid
    kill "$1" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
stop_server() {
    local p
    for p in "${SERVER_PIDS[@]}"; do stop_pid "$p"; done
    SERVER_PIDS=()
    for p in "${SERVER_OUTS[@]}"; do rm -f "$p"; done
    SERVER_OUTS=()
    if [ -n "$REDIS_PID" ]; then stop_pid "$REDIS_PID"; REDIS_PID=""; fi
}
cleanup() {
    if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; fi
    if [ -n "$LOAD_OUT" ]; then rm -f "$LOAD_OUT"; fi
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports below the ephemeral range, a new one for every server.
NEXT_PORT=$((28000 + RANDOM % 4000))
PORTS=()
start_redis() {
    local port=$NEXT_PORT out
    NEXT_PORT=$((NEXT_PORT + 1))
    out="$(mktemp)"
    SERVER_OUTS+=("$out")
    "${PRIO[@]}" taskset -c 1 redis-server --bind 127.0.0.1 --port "$port" --save "" \
        --appendonly no >"$out" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        if grep -q 'Ready to accept' "$out"; then
            REDIS_URL="redis://127.0.0.1:$port"
            return 0
        fi
        sleep 0.05
    done
    log "redis-server did not start: $(head -c 300 "$out")"
    return 1
}
start_node() { # extra args...
    local tries port out pid
    for tries in 1 2 3 4 5; do
        port=$NEXT_PORT
        NEXT_PORT=$((NEXT_PORT + 1))
        out="$(mktemp)"
        # A rate limit far above what any client sends (1 message per second each), so it runs
        # as in production but never interferes.
        "${PRIO[@]}" taskset -c 0 "$SERVER_BIN" serve --listen "127.0.0.1:$port" \
            --max-peers $((CLIENTS + 100)) --max-lobbies "$CLIENTS" \
            --join-timeout-ms 600000 --seal-close-timeout-ms 10000 \
            --max-messages-per-second 1000 --ping-interval-ms "$PING_MS" --seed 1 "$@" \
            >"$out" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            if grep -q '^listening' "$out"; then
                SERVER_PIDS+=("$pid")
                SERVER_OUTS+=("$out")
                PORTS+=("$port")
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        log "server did not start on port $port: $(head -c 300 "$out")"
        stop_pid "$pid"
        rm -f "$out"
    done
    return 1
}
start_server() {
    PORTS=()
    if [ "$NODES" = 1 ]; then
        start_node
    else
        start_redis || return 1
        start_node --redis "$REDIS_URL" && start_node --redis "$REDIS_URL"
    fi
}

ms() { # microseconds -> milliseconds, 2 decimals
    awk -v v="$1" 'BEGIN { printf "%.2f ms", v / 1000 }'
}

KEYS=(setup_secs idle_bytes_per_client joined_bytes_per_client after_relay_bytes_per_client
      recv_rate p50_us p99_us p999_us max_us server_cpu client_cpu server_wait lost
      redis_bytes_per_client)
declare -A V
ROWS=()
for rep in $(seq "$REPEAT"); do
    start_server || exit 1
    LOAD_OUT="$(mktemp)"
    URL_ARGS=()
    for p in "${PORTS[@]}"; do URL_ARGS+=(--url "ws://127.0.0.1:$p/"); done
    EXTRA_ARGS=()
    [ -n "$REDIS_PID" ] && EXTRA_ARGS=(--redis-pid "$REDIS_PID")
    "${PRIO[@]}" taskset -c 1 timeout 300 "$LOAD_BIN" "${URL_ARGS[@]}" "${EXTRA_ARGS[@]}" \
        --server-pid "$(IFS=,; echo "${SERVER_PIDS[*]}")" --clients "$CLIENTS" --lobby-size "$LOBBY_SIZE" \
        --rate "$RATE" --seconds "$SECONDS_PER_RUN" --warmup 1 --idle-seconds "$IDLE_SECONDS" \
        --max-seconds 280 >"$LOAD_OUT" 2>&1 &
    LOAD_PID=$!
    wait "$LOAD_PID"
    LOAD_PID=""
    line="$(grep '^SIGNAL' "$LOAD_OUT" | tail -n 1)"
    if [ -z "$line" ]; then
        echo "load generator failed: $(tail -n 5 "$LOAD_OUT")" >&2
        exit 1
    fi
    rm -f "$LOAD_OUT"
    LOAD_OUT=""
    stop_server
    log "run $rep: $line"
    for k in "${KEYS[@]}"; do
        V[$rep,$k]="$(field "$line" "$k")"
        V[all,$k]+="${V[$rep,$k]} "
    done
    ROWS+=("$rep")
done

row() { # label key-prefix(run number or "med")
    local r="$1"
    g() { if [ "$r" = med ]; then median ${V[all,$1]}; else echo "${V[$r,$1]}"; fi; }
    local label="run $r"
    [ "$r" = med ] && label="**median**"
    echo "| $label | $(printf '%.2f' "$(g setup_secs)") s | $(commas "$(g idle_bytes_per_client)") B | $(commas "$(g recv_rate)")/s | $(ms "$(g p50_us)") | $(ms "$(g p99_us)") | $(ms "$(g p999_us)") | $(ms "$(g max_us)") | $(g lost) | $(printf '%.2f' "$(g server_cpu)") / $(printf '%.2f' "$(g client_cpu)") |"
}

# --- report ---
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)); kernel $(uname -r)."
if rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"; then
    if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- crates 2>/dev/null)" ]; then
        rev="$rev with uncommitted changes in crates/"
    fi
    echo "netplay at commit $rev."
fi
if [ "$NODES" = 1 ]; then
    echo "Server (\`netplay serve\`, one thread, heartbeat every ${PING_MS} ms) on CPU 0, load generator on CPU 1, priority: ${PRIO[*]:-default}."
else
    echo "Two nodes (\`netplay serve --redis\`, one thread each, heartbeat every ${PING_MS} ms) on CPU 0, redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') and the load generator on CPU 1, priority: ${PRIO[*]:-default}. Every lobby has its host on one node and its guest on the other; memory is the sum of both nodes."
fi
echo "$(commas "$CLIENTS") clients in lobbies of $LOBBY_SIZE; ${IDLE_SECONDS} s idle; OFFERs at $(commas "$RATE")/s for ${SECONDS_PER_RUN} s after 1 s of warm-up; ${REPEAT} runs, a fresh server each."
echo
echo "| Run | connect + join all | server RSS per idle client | relayed (received) | p50 | p99 | p99.9 | max | lost | CPU share server / load |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do row "$r"; done
[ "${#ROWS[@]}" -gt 1 ] && row med
echo
echo "Server RSS per client (median): $(commas "$(median ${V[all,joined_bytes_per_client]})") B just after joining, $(commas "$(median ${V[all,idle_bytes_per_client]})") B after ${IDLE_SECONDS} s idle, $(commas "$(median ${V[all,after_relay_bytes_per_client]})") B after the relay phase (2 s later)."
if [ "$NODES" = 2 ]; then
    echo "Redis RSS growth per client (median, end of run): $(commas "$(median ${V[all,redis_bytes_per_client]})") B."
fi
