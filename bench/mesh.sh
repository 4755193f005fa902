#!/usr/bin/env bash
# Lobby mesh: N peers in one WebRTC mesh, each broadcasting 60 updates/s of 100 B on the
# unreliable channel plus a chat line per second on the reliable one, for netplay (mesh-bench,
# signaling through `netplay serve`) and matchbox_socket (mesh-matchbox, signaling through
# matchbox_server), in the same run, in the same private network namespace.
# See docs/BENCHMARKS.md, section "Lobby mesh".
#
#   bench/mesh.sh [--peers LIST] [--seconds T] [--repeat N] [--runtime multi|current]
#                 [--flush] [--max-load L] [--load-wait S] [--no-rt] [--no-build]
#
# Defaults: 4 and 8 peers, 10 s per run, 3 repetitions (median), the order of the two stacks
# alternating between repetitions; mesh-matchbox runs its sockets' message loops on a
# multi-thread tokio runtime (--runtime current: a current-thread one). --flush makes mesh-bench
# poll each netplay peer again right after its sends (see mesh-bench.rs). Needs root: webrtc-rs
# (under matchbox_socket) gathers no loopback candidates, so everything runs in a network
# namespace made here, with one veth address (10.78.0.1/24), no default route (a multicast
# route only, for the mDNS socket webrtc-rs opens) and no IPv6; both signaling servers listen on
# the namespace's 127.0.0.1, and netplay gathers with PeerConfig::default() there. The servers
# run at ordinary priority, the peers' processes with SCHED_FIFO priority 1 when allowed
# (--no-rt: ordinary priority). matchbox_server is installed with `cargo install` into
# bench/target/tools when it is missing. Before measuring, waits up to --load-wait seconds
# (default 600) for the 1-minute load average to drop below --max-load (default 1.5).
# Prints a Markdown table on stdout; progress and the raw MESH lines go to stderr.
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/lib.sh"
ROOT="$(cd "$HERE/.." && pwd)"
MATCHBOX_SERVER_VERSION=0.15.0
PEERS_ARG="4,8"
SECONDS_PER_RUN=10
REPEAT=3
RUNTIME=multi
FLUSH=()
MAX_LOAD=1.5
LOAD_WAIT=600
USE_RT=1
BUILD=1

while [ $# -gt 0 ]; do
    case "$1" in
        --peers) PEERS_ARG="$2"; shift ;;
        --seconds) SECONDS_PER_RUN="$2"; shift ;;
        --repeat) REPEAT="$2"; shift ;;
        --runtime) RUNTIME="$2"; shift ;;
        --flush) FLUSH=(--flush) ;;
        --max-load) MAX_LOAD="$2"; shift ;;
        --load-wait) LOAD_WAIT="$2"; shift ;;
        --no-rt) USE_RT=0 ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
IFS=, read -r -a PEERS <<<"$PEERS_ARG"
case "$RUNTIME" in multi|current) ;; *) echo "--runtime multi|current" >&2; exit 2 ;; esac
IMPLS=(netplay matchbox)

log() { echo "[mesh] $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    echo "needs root (it makes a network namespace)" >&2
    exit 1
fi

if [ "$BUILD" = 1 ]; then
    log "building the signaling server (release)"
    cargo build --release --manifest-path "$ROOT/Cargo.toml" -p netplay-cli >&2 || exit 1
    log "building mesh-bench and mesh-matchbox (release)"
    cargo build --release --manifest-path "$HERE/Cargo.toml" --bin mesh-bench --bin mesh-matchbox >&2 || exit 1
fi
TOOLS="$HERE/target/tools"
MATCHBOX_SERVER_BIN="$TOOLS/bin/matchbox_server"
if [ ! -x "$MATCHBOX_SERVER_BIN" ]; then
    log "installing matchbox_server $MATCHBOX_SERVER_VERSION"
    cargo install matchbox_server --version "=$MATCHBOX_SERVER_VERSION" --locked --root "$TOOLS" >&2 || exit 1
fi
SERVER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/netplay"
NETPLAY_BIN="${CARGO_TARGET_DIR:-$HERE/target}/release/mesh-bench"
MATCHBOX_BIN="${CARGO_TARGET_DIR:-$HERE/target}/release/mesh-matchbox"
for b in "$SERVER_BIN" "$NETPLAY_BIN" "$MATCHBOX_BIN" "$MATCHBOX_SERVER_BIN"; do
    [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }
done

pick_priority "$USE_RT"
log "priority: ${PRIO[*]:-default}"

NS="npmesh-$$"
LOGS="$(mktemp -d)"
SERVER_PIDS=()
cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    rm -rf "$LOGS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the namespace ---
setup_namespace() {
    ip -n "$NS" link set lo up &&
        ip -n "$NS" link add v0 type veth peer name v1 &&
        ip -n "$NS" addr add 10.78.0.1/24 dev v0 &&
        ip -n "$NS" link set v0 up &&
        ip -n "$NS" link set v1 up &&
        ip -n "$NS" route add 224.0.0.0/4 dev v0 &&
        ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
}
ip netns add "$NS" || { echo "cannot make a network namespace" >&2; exit 1; }
setup_namespace || { echo "cannot set up the namespace $NS" >&2; exit 1; }

# --- the signaling servers (no message rate limit: signaling is not what is measured) ---
ip netns exec "$NS" "$SERVER_BIN" serve --listen 127.0.0.1:9080 --log-level warn \
    --max-messages-per-second 0 >"$LOGS/netplay-serve.log" 2>&1 &
SERVER_PIDS+=($!)
RUST_LOG=warn ip netns exec "$NS" "$MATCHBOX_SERVER_BIN" 127.0.0.1:3536 >"$LOGS/matchbox_server.log" 2>&1 &
SERVER_PIDS+=($!)
for port in 9080 3536; do
    up=0
    for _ in $(seq 100); do
        if ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then up=1; break; fi
        sleep 0.1
    done
    [ "$up" = 1 ] || { echo "no signaling server on port $port" >&2; cat "$LOGS"/*.log >&2; exit 1; }
done
log "signaling servers up in namespace $NS"

# --- load check ---
load1() { cut -d' ' -f1 /proc/loadavg; }
LOAD_BEFORE="$(load1)"
waited=0
while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
    if [ "$waited" -ge "$LOAD_WAIT" ]; then
        log "WARNING: load average $(load1) is still at or above $MAX_LOAD after ${waited} s; measuring anyway"
        break
    fi
    [ "$waited" = 0 ] && log "load average $(load1) >= $MAX_LOAD: waiting up to ${LOAD_WAIT} s for the machine to calm down"
    sleep 10
    waited=$((waited + 10))
done
LOAD_START="$(load1)"
log "load average at start: $LOAD_START (was $LOAD_BEFORE; waited ${waited} s)"

run_one() { # impl peers rep
    local impl="$1" n="$2" rep="$3" out limit=$((${SECONDS_PER_RUN%.*} + 90))
    out="$(mktemp)"
    case "$impl" in
        netplay)
            "${PRIO[@]}" timeout "$limit" ip netns exec "$NS" "$NETPLAY_BIN" --peers "$n" \
                --seconds "$SECONDS_PER_RUN" --url ws://127.0.0.1:9080 --gather all "${FLUSH[@]}" \
                >"$out" 2>"$LOGS/run.err" ;;
        matchbox)
            "${PRIO[@]}" timeout "$limit" ip netns exec "$NS" "$MATCHBOX_BIN" --peers "$n" \
                --seconds "$SECONDS_PER_RUN" --url ws://127.0.0.1:3536 --room "mesh-$n-$rep" \
                --runtime "$RUNTIME" >"$out" 2>"$LOGS/run.err" ;;
    esac
    grep '^MESH' "$out" | tail -n 1
    rm -f "$out"
}

ratio() { # a b: a / b
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "-"; else printf "%.2f×", a / b }'
}

fmt() { # number decimals
    awk -v v="$1" -v d="$2" 'BEGIN { if (v == "nan" || v == "") print "-"; else printf "%.*f", d, v }'
}

declare -A DELIVERY CHAT P50 P99 CPU
for rep in $(seq "$REPEAT"); do
    # Alternate the order so that neither stack always runs first.
    order=("${IMPLS[@]}")
    [ $((rep % 2)) = 0 ] && order=("${IMPLS[1]}" "${IMPLS[0]}")
    for n in "${PEERS[@]}"; do
        for impl in "${order[@]}"; do
            line="$(run_one "$impl" "$n" "$rep")"
            log "rep $rep peers $n $impl (load $(load1)): ${line:-FAILED}"
            if [ -z "$line" ]; then
                echo "$impl failed with $n peers:" >&2
                tail -n 20 "$LOGS/run.err" >&2
                exit 1
            fi
            DELIVERY[$n,$impl]+="$(field "$line" delivery) "
            CHAT[$n,$impl]+="$(field "$line" chat_delivery) "
            P50[$n,$impl]+="$(field "$line" p50_ms) "
            P99[$n,$impl]+="$(field "$line" p99_ms) "
            CPU[$n,$impl]+="$(field "$line" cpu_per_peer) "
        done
    done
done
LOAD_END="$(load1)"

# --- report ---
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)); kernel $(uname -r)."
if rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"; then
    if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- crates/netplay 2>/dev/null)" ]; then
        rev="$rev with uncommitted changes in crates/netplay"
    fi
    echo "netplay at commit $rev; matchbox_socket $(sed -n 's/^matchbox_socket = "=\(.*\)"/\1/p' "$HERE/Cargo.toml") (tokio $RUNTIME-thread runtime for its message loops), matchbox_server $MATCHBOX_SERVER_VERSION."
fi
[ ${#FLUSH[@]} -gt 0 ] && echo "mesh-bench with --flush: each netplay peer is polled again right after its sends."
echo "${#PEERS[@]} mesh sizes × 2 stacks × ${REPEAT} repetitions of ${SECONDS_PER_RUN} s; median of the repetitions; peers' priority: ${PRIO[*]:-default}."
echo "Load average (1 min): ${LOAD_START} at the start, ${LOAD_END} at the end."
echo
echo "| Peers | Stack | Updates delivered | Chat delivered | One-way p50 (ms) | One-way p99 (ms) | CPU per peer (share of one core) |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for n in "${PEERS[@]}"; do
    for impl in "${IMPLS[@]}"; do
        # shellcheck disable=SC2086
        echo "| $n | $impl | $(fmt "$(median ${DELIVERY[$n,$impl]})" 4) | $(fmt "$(median ${CHAT[$n,$impl]})" 4) | $(fmt "$(median ${P50[$n,$impl]})" 2) | $(fmt "$(median ${P99[$n,$impl]})" 2) | $(fmt "$(median ${CPU[$n,$impl]})" 4) |"
    done
done
echo
echo "| Peers | p99, matchbox / netplay | CPU per peer, matchbox / netplay |"
echo "|---:|---:|---:|"
for n in "${PEERS[@]}"; do
    # shellcheck disable=SC2086
    echo "| $n | $(ratio "$(median ${P99[$n,matchbox]})" "$(median ${P99[$n,netplay]})") | $(ratio "$(median ${CPU[$n,matchbox]})" "$(median ${CPU[$n,netplay]})") |"
done
