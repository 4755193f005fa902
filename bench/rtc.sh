#!/usr/bin/env bash
# WebRTC data channels: reliable ordered throughput with 1 KiB and 64 KiB messages and
# offer-to-open time, two peer connections on 127.0.0.1, for netplay, node-datachannel
# (libdatachannel) and webrtc-rs, in the same run; plus Chromium's in-page offer-to-open time.
# See docs/BENCHMARKS.md, section "WebRTC data channels".
#
#   bench/rtc.sh [--seconds T] [--warmup T] [--repeat N] [--open-runs N] [--impls LIST]
#                [--max-load L] [--load-wait S] [--no-rt] [--no-build] [--no-chromium]
#
# Defaults: every implementation (netplay,node-datachannel,webrtc-rs) x {1 KiB, 64 KiB} x 3
# repetitions, the order of the implementations rotating between repetitions; each invocation
# measures 10 offer-to-open runs, then throughput for 5 s after 1 s of warm-up. The sending
# peer runs on CPU 0, the receiving peer on CPU 1 (threads pinned by rtc-bench itself; one
# process per peer under `taskset` for node-datachannel), with SCHED_FIFO priority 1 when
# allowed (--no-rt: ordinary priority). Chromium (optional; needs root for a network
# namespace, `chromium` on the PATH and playwright-core) runs 30 in-page offer-to-open runs once.
# Before measuring, waits up to --load-wait seconds (default 600) for the 1-minute load
# average to drop below --max-load (default 1.5) and warns if it does not.
# Prints Markdown tables on stdout; progress and the raw RTC lines go to stderr.
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/lib.sh"
SECONDS_PER_RUN=5
WARMUP=1
REPEAT=3
OPEN_RUNS=10
IMPLS_ARG="netplay,node-datachannel,webrtc-rs"
MAX_LOAD=1.5
LOAD_WAIT=600
USE_RT=1
BUILD=1
CHROMIUM=1
CHROMIUM_RUNS=30

while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_PER_RUN="$2"; shift ;;
        --warmup) WARMUP="$2"; shift ;;
        --repeat) REPEAT="$2"; shift ;;
        --open-runs) OPEN_RUNS="$2"; shift ;;
        --impls) IMPLS_ARG="$2"; shift ;;
        --max-load) MAX_LOAD="$2"; shift ;;
        --load-wait) LOAD_WAIT="$2"; shift ;;
        --no-rt) USE_RT=0 ;;
        --no-build) BUILD=0 ;;
        --no-chromium) CHROMIUM=0 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
IFS=, read -r -a IMPLS <<<"$IMPLS_ARG"
for impl in "${IMPLS[@]}"; do
    case "$impl" in netplay|node-datachannel|webrtc-rs) ;; *) echo "unknown implementation: $impl" >&2; exit 2 ;; esac
done
SIZES=(1024 65536)

log() { echo "[rtc] $*" >&2; }

if [ "$(nproc)" -lt 2 ]; then
    echo "needs at least 2 CPUs (sender on CPU 0, receiver on CPU 1)" >&2
    exit 1
fi

has_impl() { [[ ",$IMPLS_ARG," == *",$1,"* ]]; }

if [ "$BUILD" = 1 ]; then
    log "building rtc-bench (release)"
    cargo build --release --manifest-path "$HERE/Cargo.toml" --bin rtc-bench >&2 || exit 1
    if { has_impl node-datachannel || [ "$CHROMIUM" = 1 ]; } && [ ! -d "$HERE/rtc/node_modules/node-datachannel" ]; then
        log "installing node-datachannel and playwright-core"
        (cd "$HERE/rtc" && npm install --no-package-lock --no-audit --no-fund >&2) || exit 1
    fi
fi
BIN="${CARGO_TARGET_DIR:-$HERE/target}/release/rtc-bench"
[ -x "$BIN" ] || { echo "missing $BIN" >&2; exit 1; }

pick_priority "$USE_RT"
log "priority: ${PRIO[*]:-default}"

NS=""
cleanup() {
    if [ -n "$NS" ]; then ip netns del "$NS" 2>/dev/null; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

ratio() { # a b
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "-"; else printf "%.2f×", a / b }'
}

fmt() { # number decimals
    awk -v v="$1" -v d="$2" 'BEGIN { if (v == "nan" || v == "") print "-"; else printf "%.*f", d, v }'
}

run_one() { # impl size
    local impl="$1" size="$2" out
    out="$(mktemp)"
    case "$impl" in
        node-datachannel)
            (cd "$HERE/rtc" && "${PRIO[@]}" timeout 300 node bench.js --size "$size" \
                --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP" --open-runs "$OPEN_RUNS" --cpus 0,1) \
                >"$out" 2>/dev/null ;;
        *)
            "${PRIO[@]}" timeout 300 "$BIN" --impl "$impl" --size "$size" --seconds "$SECONDS_PER_RUN" \
                --warmup "$WARMUP" --open-runs "$OPEN_RUNS" --cpus 0,1 >"$out" 2>/dev/null ;;
    esac
    grep '^RTC' "$out" | tail -n 1
    rm -f "$out"
}

declare -A MB MSGS OPEN50 OPEN90 SCPU RCPU
for rep in $(seq "$REPEAT"); do
    # Rotate the order so that no implementation always runs first or last.
    n=${#IMPLS[@]}
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${IMPLS[$(((i + rep - 1) % n))]}"); done
    for size in "${SIZES[@]}"; do
        for impl in "${order[@]}"; do
            line="$(run_one "$impl" "$size")"
            log "rep $rep size $size $impl (load $(load1)): ${line:-FAILED}"
            if [ -z "$line" ]; then
                echo "$impl failed at size $size" >&2
                exit 1
            fi
            MB[$size,$impl]+="$(field "$line" mb_per_sec) "
            MSGS[$size,$impl]+="$(field "$line" msgs_per_sec) "
            SCPU[$size,$impl]+="$(field "$line" send_cpu) "
            RCPU[$size,$impl]+="$(field "$line" recv_cpu) "
            OPEN50[$impl]+="$(field "$line" open_p50_ms) "
            OPEN90[$impl]+="$(field "$line" open_p90_ms) "
        done
    done
done

CHROME_LINE=""
if [ "$CHROMIUM" = 1 ]; then
    CHROMIUM_BIN="$(command -v chromium || true)"
    if [ -z "$CHROMIUM_BIN" ] || [ ! -d "$HERE/rtc/node_modules/playwright-core" ]; then
        log "no Chromium or playwright-core: skipping Chromium"
    elif NS="rtcbench-$$" && ip netns add "$NS" 2>/dev/null; then
        # Chromium gathers no loopback candidates: a private namespace with a veth pair gives it
        # one address (10.77.0.1), and nothing leaves the namespace.
        ip netns exec "$NS" ip link set lo up &&
        ip netns exec "$NS" ip link add v0 type veth peer name v1 &&
        ip netns exec "$NS" ip addr add 10.77.0.1/24 dev v0 &&
        ip netns exec "$NS" ip link set v0 up &&
        ip netns exec "$NS" ip link set v1 up &&
        ip netns exec "$NS" ip route add default dev v0 &&
        ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        CHROME_LINE="$(cd "$HERE/rtc" && "${PRIO[@]}" timeout 300 ip netns exec "$NS" node chromium.js \
            --chromium "$CHROMIUM_BIN" --open-runs "$CHROMIUM_RUNS" 2>/dev/null | grep '^RTC' | tail -n 1)"
        log "chromium: ${CHROME_LINE:-FAILED}"
        ip netns del "$NS"
        NS=""
    else
        NS=""
        log "cannot make a network namespace (needs root): skipping Chromium"
    fi
fi
LOAD_END="$(load1)"

# --- report ---
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)); kernel $(uname -r)."
if rev="$(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null)"; then
    if [ -n "$(git -C "$HERE/.." status --porcelain --untracked-files=no -- crates/netplay 2>/dev/null)" ]; then
        rev="$rev with uncommitted changes in crates/netplay"
    fi
    echo "netplay at commit $rev."
fi
echo "Sender on CPU 0, receiver on CPU 1, priority: ${PRIO[*]:-default}; ${SECONDS_PER_RUN} s per throughput measurement after ${WARMUP} s of warm-up, ${OPEN_RUNS} offer-to-open runs per invocation, ${REPEAT} repetitions; median of the repetitions."
echo "Load average (1 min): ${LOAD_START} at the start, ${LOAD_END} at the end."
echo
col() { local impl; for impl in netplay node-datachannel webrtc-rs; do has_impl "$impl" && printf '%s\n' "$impl"; done; }
COLS=()
while read -r c; do COLS+=("$c"); done < <(col)
header="| Measure |"
sep="|---|"
for c in "${COLS[@]}"; do header+=" $c |"; sep+="---:|"; done
has_impl netplay && has_impl node-datachannel && { header+=" netplay / node-datachannel |"; sep+="---:|"; }
has_impl netplay && has_impl webrtc-rs && { header+=" netplay / webrtc-rs |"; sep+="---:|"; }
echo "Throughput, reliable ordered channel (MB/s = 10^6 bytes per second; higher is better):"
echo
echo "$header"
echo "$sep"
for size in "${SIZES[@]}"; do
    label="1 KiB messages"
    [ "$size" = 65536 ] && label="64 KiB messages"
    declare -A M=() G=()
    for c in "${COLS[@]}"; do
        # shellcheck disable=SC2086
        M[$c]="$(median ${MB[$size,$c]})"
        # shellcheck disable=SC2086
        G[$c]="$(median ${MSGS[$size,$c]})"
    done
    row="| $label, MB/s |"
    for c in "${COLS[@]}"; do row+=" $(fmt "${M[$c]}" 1) |"; done
    has_impl netplay && has_impl node-datachannel && row+=" $(ratio "${M[netplay]}" "${M[node-datachannel]}") |"
    has_impl netplay && has_impl webrtc-rs && row+=" $(ratio "${M[netplay]}" "${M[webrtc-rs]}") |"
    echo "$row"
    row="| $label, messages/s |"
    for c in "${COLS[@]}"; do row+=" $(commas "${G[$c]}") |"; done
    has_impl netplay && has_impl node-datachannel && row+=" $(ratio "${G[netplay]}" "${G[node-datachannel]}") |"
    has_impl netplay && has_impl webrtc-rs && row+=" $(ratio "${G[netplay]}" "${G[webrtc-rs]}") |"
    echo "$row"
done
echo
# A table with a row per message size and a column per implementation; $1 is the title, $2 the
# function that prints one cell for (size, implementation).
size_table() {
    local title="$1" cell="$2" h="| Messages |" sep="|---|" size label row c
    echo "$title"
    echo
    for c in "${COLS[@]}"; do h+=" $c |"; sep+="---:|"; done
    echo "$h"; echo "$sep"
    for size in "${SIZES[@]}"; do
        label="1 KiB"
        [ "$size" = 65536 ] && label="64 KiB"
        row="| $label |"
        for c in "${COLS[@]}"; do row+=" $("$cell" "$size" "$c") |"; done
        echo "$row"
    done
}
# shellcheck disable=SC2086
cpu_share_cell() { echo "$(fmt "$(median ${SCPU[$1,$2]})" 2) / $(fmt "$(median ${RCPU[$1,$2]})" 2)"; }
cpu_per_mb_cell() { # sender plus receiver CPU time per 10^6 bytes, in ms
    # shellcheck disable=SC2086
    fmt "$(awk -v a="$(median ${SCPU[$1,$2]})" -v b="$(median ${RCPU[$1,$2]})" -v m="$(median ${MB[$1,$2]})" \
        'BEGIN { if (a == "nan" || b == "nan" || m == "nan" || m == 0) print "nan"; else print (a + b) * 1000 / m }')" 2
}
size_table "CPU share during the throughput window, sender / receiver (median; 1.00 = one core busy):" cpu_share_cell
echo
size_table "CPU per MB during the throughput window, sender + receiver (ms of CPU time per 10^6 bytes moved, from the medians above; lower is better):" cpu_per_mb_cell
echo
echo "Offer-to-open, create_offer until the channel is open on both sides (ms; median over the invocations of each invocation's median and 90th percentile of ${OPEN_RUNS} runs; lower is better):"
echo
h="| Statistic |"; s="|---|"
for c in "${COLS[@]}"; do h+=" $c |"; s+="---:|"; done
[ -n "$CHROME_LINE" ] && { h+=" Chromium $(field "$CHROME_LINE" version), in page |"; s+="---:|"; }
echo "$h"; echo "$s"
row="| median |"
# shellcheck disable=SC2086
for c in "${COLS[@]}"; do row+=" $(fmt "$(median ${OPEN50[$c]})" 2) |"; done
[ -n "$CHROME_LINE" ] && row+=" $(fmt "$(field "$CHROME_LINE" open_p50_ms)" 2) |"
echo "$row"
row="| 90th percentile |"
# shellcheck disable=SC2086
for c in "${COLS[@]}"; do row+=" $(fmt "$(median ${OPEN90[$c]})" 2) |"; done
[ -n "$CHROME_LINE" ] && row+=" $(fmt "$(field "$CHROME_LINE" open_p90_ms)" 2) |"
echo "$row"
if [ -n "$CHROME_LINE" ]; then
    echo
    echo "Chromium: $(field "$CHROME_LINE" open_runs) runs in one page, over a veth address in a private network namespace (Chromium gathers no loopback candidates)."
fi
