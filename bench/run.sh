#!/usr/bin/env bash
# Echo benchmark: netplay's tokio driver against tokio-tungstenite, fastwebsockets and a raw TCP
# echo (the ceiling), plus resident memory per idle connection. See docs/BENCHMARKS.md.
#
#   bench/run.sh [--quick] [--seconds T] [--repeat N] [--idle N] [--no-rt] [--no-build]
#                [--skip-throughput] [--skip-memory]
#
# --quick: 2 s per measurement, 1 repetition. Defaults: 5 s, 3 repetitions (the median is shown),
# 10,000 idle connections. Servers run pinned to CPU 0, the load generator to CPU 1, both with
# SCHED_FIFO priority 1 when allowed (--no-rt: ordinary priority). Only 127.0.0.1 is used.
# Prints Markdown tables on stdout; progress and raw result lines go to stderr.
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/lib.sh"
SECONDS_PER_RUN=5
WARMUP=1
REPEAT=3
IDLE_CONNS=10000
USE_RT=1
BUILD=1
DO_THROUGHPUT=1
DO_MEMORY=1

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) SECONDS_PER_RUN=2; REPEAT=1 ;;
        --seconds) SECONDS_PER_RUN="$2"; shift ;;
        --repeat) REPEAT="$2"; shift ;;
        --idle) IDLE_CONNS="$2"; shift ;;
        --no-rt) USE_RT=0 ;;
        --no-build) BUILD=0 ;;
        --skip-throughput) DO_THROUGHPUT=0 ;;
        --skip-memory) DO_MEMORY=0 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "[bench] $*" >&2; }

if [ "$(nproc)" -lt 2 ]; then
    echo "needs at least 2 CPUs (server on CPU 0, load on CPU 1)" >&2
    exit 1
fi

if [ "$BUILD" = 1 ]; then
    log "building (release)"
    cargo build --release --manifest-path "$HERE/Cargo.toml" >&2 || exit 1
fi
BIN="${CARGO_TARGET_DIR:-$HERE/target}/release"
for b in bench-server bench-load; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b" >&2; exit 1; }
done

pick_priority "$USE_RT"
log "priority: ${PRIO[*]:-default}"

# 10,000 connections need as many descriptors in the server and in the load generator; the
# binaries raise their soft limit to the hard one, this raises the hard one where allowed.
ulimit -Hn $((IDLE_CONNS + 1024)) 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SERVER_PID=""
SERVER_OUT=""
LOAD_PID=""
cleanup() {
    if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null; fi
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 40); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=""
    fi
    if [ -n "$SERVER_OUT" ]; then rm -f "$SERVER_OUT"; SERVER_OUT=""; fi
}

# Ports below the ephemeral range, a new one for every server (no TIME_WAIT left-overs).
NEXT_PORT=$((24000 + RANDOM % 4000))
PORT=""
start_server() { # impl
    local tries
    for tries in 1 2 3 4 5; do
        PORT=$NEXT_PORT
        NEXT_PORT=$((NEXT_PORT + 1))
        SERVER_OUT="$(mktemp)"
        "${PRIO[@]}" taskset -c 0 "$BIN/bench-server" --impl "$1" --listen "127.0.0.1:$PORT" \
            >"$SERVER_OUT" 2>&1 &
        SERVER_PID=$!
        for _ in $(seq 100); do
            grep -q '^listening' "$SERVER_OUT" && return 0
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        log "server $1 did not start on port $PORT: $(head -c 300 "$SERVER_OUT")"
        stop_server
    done
    return 1
}

run_load() { # args...; prints the load generator's last line
    local out
    out="$(mktemp)"
    "${PRIO[@]}" taskset -c 1 timeout 300 "$BIN/bench-load" "$@" >"$out" 2>&1 &
    LOAD_PID=$!
    wait "$LOAD_PID"
    LOAD_PID=""
    tail -n 1 "$out"
    rm -f "$out"
}

ratio() { # a b
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "-" && a != "nan") printf "%.2f×", a / b; else print "-" }'
}

IMPLS=(raw netplay tungstenite fastwebsockets)
ROW_NAMES=("1 conn × 32 B, 64 in flight" "64 conns × 1 KiB, 1 in flight each" "1 conn × 1 MiB, 1 in flight")
ROW_ARGS=("--conns 1 --size 32 --inflight 64" "--conns 64 --size 1024 --inflight 1" "--conns 1 --size 1048576 --inflight 1")
declare -A RATE SCPU CCPU

if [ "$DO_THROUGHPUT" = 1 ]; then
    for row in 0 1 2; do
        for rep in $(seq "$REPEAT"); do
            for impl in "${IMPLS[@]}"; do
                scheme=ws
                [ "$impl" = raw ] && scheme=tcp
                start_server "$impl" || exit 1
                # shellcheck disable=SC2086
                line="$(run_load --url "$scheme://127.0.0.1:$PORT/" ${ROW_ARGS[$row]} \
                    --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP" --server-pid "$SERVER_PID")"
                stop_server
                log "row $((row + 1)) rep $rep $impl: $line"
                case "$line" in
                    RESULT*) ;;
                    *) echo "load generator failed: $line" >&2; exit 1 ;;
                esac
                RATE[$row,$impl]+="$(field "$line" msgs_per_sec) "
                SCPU[$row,$impl]+="$(field "$line" server_cpu) "
                CCPU[$row,$impl]+="$(field "$line" client_cpu) "
            done
        done
    done
fi

declare -A IDLE_OPEN IDLE_MSG
if [ "$DO_MEMORY" = 1 ]; then
    for impl in netplay tungstenite fastwebsockets; do
        start_server "$impl" || exit 1
        line="$(run_load --url "ws://127.0.0.1:$PORT/" --idle "$IDLE_CONNS" --server-pid "$SERVER_PID")"
        stop_server
        log "idle $impl: $line"
        case "$line" in
            IDLE*) ;;
            *) echo "idle test failed: $line" >&2; exit 1 ;;
        esac
        IDLE_OPEN[$impl]="$(field "$line" open_bytes_per_conn)"
        IDLE_MSG[$impl]="$(field "$line" after_msg_bytes_per_conn)"
    done
fi

# --- report ---
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)); kernel $(uname -r)."
if rev="$(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null)"; then
    if [ -n "$(git -C "$HERE/.." status --porcelain -- crates/netplay 2>/dev/null)" ]; then
        rev="$rev with uncommitted changes in crates/netplay"
    fi
    echo "netplay at commit $rev."
fi
echo "Server on CPU 0, load on CPU 1, priority: ${PRIO[*]:-default}; ${SECONDS_PER_RUN} s per measurement after ${WARMUP} s of warm-up, median of ${REPEAT}."
echo
if [ "$DO_THROUGHPUT" = 1 ]; then
    echo "Echo round trips per second (higher is better):"
    echo
    echo "| Row | raw TCP (ceiling) | netplay | tokio-tungstenite | fastwebsockets | netplay / fastwebsockets | netplay / tungstenite |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for row in 0 1 2; do
        declare -A M=()
        for impl in "${IMPLS[@]}"; do
            # shellcheck disable=SC2086
            M[$impl]="$(median ${RATE[$row,$impl]})"
        done
        echo "| ${ROW_NAMES[$row]} | $(commas "${M[raw]}") | $(commas "${M[netplay]}") | $(commas "${M[tungstenite]}") | $(commas "${M[fastwebsockets]}") | $(ratio "${M[netplay]}" "${M[fastwebsockets]}") | $(ratio "${M[netplay]}" "${M[tungstenite]}") |"
    done
    echo
    echo "CPU share of the measured window, server / load generator (median; 1.00 = one core busy):"
    echo
    echo "| Row | raw TCP | netplay | tokio-tungstenite | fastwebsockets |"
    echo "|---|---:|---:|---:|---:|"
    for row in 0 1 2; do
        cells=""
        for impl in "${IMPLS[@]}"; do
            # shellcheck disable=SC2086
            cells+=" $(median ${SCPU[$row,$impl]}) / $(median ${CCPU[$row,$impl]}) |"
        done
        echo "| ${ROW_NAMES[$row]} |$cells"
    done
    echo
fi
if [ "$DO_MEMORY" = 1 ]; then
    echo "Server resident memory per idle connection, ${IDLE_CONNS} connections (VmRSS delta / count; lower is better):"
    echo
    echo "| State | netplay | tokio-tungstenite | fastwebsockets |"
    echo "|---|---:|---:|---:|"
    echo "| upgraded, no message yet | $(commas "${IDLE_OPEN[netplay]}") B | $(commas "${IDLE_OPEN[tungstenite]}") B | $(commas "${IDLE_OPEN[fastwebsockets]}") B |"
    echo "| after one 32-byte echo each | $(commas "${IDLE_MSG[netplay]}") B | $(commas "${IDLE_MSG[tungstenite]}") B | $(commas "${IDLE_MSG[fastwebsockets]}") B |"
fi
