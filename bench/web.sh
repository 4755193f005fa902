#!/usr/bin/env bash
# The browser: data channel throughput and round-trip time between two pages of headless
# Chromium, through netplay's web platform (wasm) against plain JavaScript in the same pages;
# and from a page to a native echo peer, `netplay rtc-echo` against node-datachannel's echo
# (tests/interop/node/rtc_peer.js), with both kinds of page. See docs/BENCHMARKS.md, section
# "In the browser".
#
#   bench/web.sh [--runs N] [--total-mib N] [--pings N] [--no-build] [--no-native]
#
# Defaults: 5 runs, the order of netplay and plain JavaScript rotating between runs; each run
# moves 32 MiB in 1 KiB and in 16 KiB messages and makes 1000 round trips of 32 bytes. Both
# peers run under the same page loop (poll, then go again as soon as the page is free); plain
# JavaScript is also measured with its handlers only (a 4 ms timer hands its lines out). WebRTC
# runs over loopback (Chromium's --allow-loopback-in-peer-connection). Needs /usr/bin/chromium
# (or NETPLAY_CHROMIUM), Node.js, and the wasm-bindgen command line that scripts/build-web.sh
# installs. Prints Markdown tables on stdout (medians over the runs); the raw lines go to stderr.
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
. "$HERE/lib.sh"
RUNS=5
TOTAL_MIB=32
PINGS=1000
BUILD=1
NATIVE=1

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift ;;
        --total-mib) TOTAL_MIB="$2"; shift ;;
        --pings) PINGS="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --no-native) NATIVE=0 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "[web] $*" >&2; }

if [ "$BUILD" = 1 ]; then
    log "building the harness (wasm) and netplay (release)"
    bash "$ROOT/scripts/build-web.sh" >&2 || exit 1
    cargo build --release --manifest-path "$ROOT/Cargo.toml" -p netplay-cli >&2 || exit 1
    if [ ! -d "$HERE/rtc/node_modules/playwright-core" ]; then
        (cd "$HERE/rtc" && npm install --no-package-lock --no-audit --no-fund >&2) || exit 1
    fi
    if [ ! -d "$ROOT/tests/interop/node/node_modules/node-datachannel" ]; then
        bash "$ROOT/scripts/setup-interop.sh" >&2 || exit 1
    fi
fi
WEB_DIR="${NETPLAY_WEB_TEST_DIR:-$ROOT/target/web-test}"
NETPLAY="${CARGO_TARGET_DIR:-$ROOT/target}/release/netplay"

args=(--web "$WEB_DIR" --runs "$RUNS" --total-mib "$TOTAL_MIB" --pings "$PINGS")
if [ "$NATIVE" = 1 ]; then
    args+=(--native "rtc-echo=$NETPLAY rtc-echo --answer --host-ip 127.0.0.1 --log-level warn")
    args+=(--native "node-datachannel=node $ROOT/tests/interop/node/rtc_peer.js echo --answer --host-ip 127.0.0.1")
fi
RAW="$(mktemp)"
trap 'rm -f "$RAW"' EXIT
node "$HERE/web/page_bench.js" "${args[@]}" | tee /dev/stderr >"$RAW" || exit 1

# The median over the runs of field $2 in the lines matching $1.
med() {
    local values=()
    while read -r line; do values+=("$(field "$line" "$2")"); done < <(grep -- "$1" "$RAW")
    median "${values[@]:-nan}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "-"; else printf "%.2f×", a / b }'; }
num() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "nan" || v == "") print "-"; else printf "%.*f", d, v }'; }

echo "Page to page, ${TOTAL_MIB} MiB per transfer, medians of $RUNS runs (ratios: netplay against"
echo "JavaScript in the same loop, as speed: above 1 is netplay ahead):"
echo
echo "| | netplay (wasm) | JavaScript, same loop | JavaScript, handlers only | netplay / JavaScript (same loop) | netplay / JavaScript (handlers only) |"
echo "|---|---:|---:|---:|---:|---:|"
for size in 1024 16384; do
    n="$(med "kind=page impl=netplay size=$size " mbps)"
    j="$(med "kind=page impl=js size=$size " mbps)"
    e="$(med "kind=page impl=js-events size=$size " mbps)"
    echo "| $((size / 1024)) KiB messages, MB/s | $(num "$n" 1) | $(num "$j" 1) | $(num "$e" 1) | $(ratio "$n" "$j") | $(ratio "$n" "$e") |"
done
for key in ping_p50_us ping_p99_us ping_mean_us; do
    n="$(med "kind=page impl=netplay pings" "$key")"
    j="$(med "kind=page impl=js pings" "$key")"
    e="$(med "kind=page impl=js-events pings" "$key")"
    echo "| round trip ${key#ping_} (µs), 32 B | $(num "$n" 0) | $(num "$j" 0) | $(num "$e" 0) | $(ratio "$j" "$n") | $(ratio "$e" "$n") |"
done
if [ "$NATIVE" = 1 ]; then
    echo
    echo "Page to a native echo peer (each byte counted once), medians of $RUNS runs:"
    echo
    echo "| page | echo peer | 1 KiB MB/s | 16 KiB MB/s |"
    echo "|---|---|---:|---:|"
    for impl in netplay js; do
        for peer in rtc-echo node-datachannel; do
            a="$(med "kind=native impl=$impl peer=$peer size=1024 " mbps)"
            b="$(med "kind=native impl=$impl peer=$peer size=16384 " mbps)"
            echo "| $impl | $peer | $(num "$a" 1) | $(num "$b" 1) |"
        done
    done
fi
