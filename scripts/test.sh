#!/usr/bin/env bash
# Runs every check and test of the workspace, on a fresh machine too:
#   1. installs the system packages the tests start (scripts/setup-system.sh:
#      coturn, redis-server, chromium, iproute2) and the interop tools
#      (scripts/setup-interop.sh: Python venv with kosoku, websockets, trustme
#      and aiortc; Node `ws`, node-datachannel, playwright-core); quick when
#      already there;
#   2. self-tests the external peers against each other (WebSocket: py <-> node,
#      ws and wss; WebRTC: aiortc, libdatachannel and headless Chromium, the
#      browser inside network namespaces) so that an interop failure later
#      points at netplay, not at a peer;
#   3. cargo fmt --check and cargo clippy -D warnings;
#   4. portability: builds the library for wasm32-unknown-unknown exactly as a
#      browser game would (default features), checks it and the server crate
#      with no default features and with each feature alone, checks the whole
#      workspace with the declared minimum Rust (rust-version in Cargo.toml),
#      installing the wasm32 target and that toolchain with rustup if missing;
#      then builds the browser side of the tests (scripts/build-web.sh: the
#      crate netplay-web-test for wasm32 and its JavaScript glue, with the
#      wasm-bindgen command line of Cargo.lock's version, installed once into
#      a cache outside the checkout) and rebuilds the demo page of `netplay
#      serve` (crates/netplay-demo) to check that the committed web/ is what
#      its source builds to;
#   5. builds the release `netplay` binary and checks that it stays under 30 MB;
#   6. builds every target (examples included: the Autobahn client test runs
#      the `autobahn_client` example) and runs the doc tests, then all tests
#      with cargo-nextest (or `cargo test` when nextest is not installed).
# Every cargo call is --locked: the committed Cargo.lock is what is tested.
# The integration tests use the debug build of `netplay` (CARGO_BIN_EXE_netplay;
# the dev profile is optimised enough); the release build only has its size checked.
# Exits non-zero if anything failed.
#
# Usage: bash scripts/test.sh   (from any directory; CI: bash .ci/run)
# Env:   NETPLAY_SKIP_PEER_SELFTEST=1 skips step 2.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
# Nothing here reads the terminal: a tool that probes its stdin (cargo asking rustc for target
# information does) must not see whatever the caller left there.
exec </dev/null

export NETPLAY_VENV="${NETPLAY_VENV:-$ROOT/.venv}"
export NETPLAY_NODE_DIR="${NETPLAY_NODE_DIR:-$ROOT/tests/interop/node}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One build from scratch: incremental caches would only double the space the build takes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

failed=()
step() { printf '\n==== %s\n' "$*" >&2; }

step "setup: system packages"
bash scripts/setup-system.sh

step "setup: interop tools"
bash scripts/setup-interop.sh

if [[ "${NETPLAY_SKIP_PEER_SELFTEST:-0}" != 1 ]]; then
    step "self-test of the external WebSocket peers (python websockets <-> node ws)"
    "$NETPLAY_VENV/bin/python" tests/interop/peer_selftest.py || failed+=("peer self-test")
    step "self-test of the external WebRTC peers (aiortc, libdatachannel, Chromium)"
    "$NETPLAY_VENV/bin/python" tests/interop/rtc_selftest.py || failed+=("WebRTC peer self-test")
fi

step "setup: Rust targets and the minimum supported toolchain"
MSRV="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)"
bash scripts/setup-rust.sh "$MSRV"

# Optional integrations that the workspace's default features leave out, linted and tested
# with the rest (GGRS sessions over multiplayer peers).
EXTRA=(--features netplay/ggrs)

step "cargo fmt --all -- --check"
cargo fmt --all -- --check || failed+=("cargo fmt (run: cargo fmt --all)")

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --locked --workspace --all-targets "${EXTRA[@]}" -- -D warnings || failed+=("cargo clippy")

step "cargo doc (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p netplay -p netplay-server "${EXTRA[@]}" ||
    failed+=("cargo doc")

step "portability: cargo build -p netplay --target wasm32-unknown-unknown"
cargo build --locked -p netplay --target wasm32-unknown-unknown || failed+=("wasm32 build of netplay")
cargo clippy --locked -p netplay -p netplay-web-test --target wasm32-unknown-unknown -- -D warnings ||
    failed+=("clippy of the wasm32 build")
cargo clippy --locked -p netplay-demo --target wasm32-unknown-unknown --lib --examples -- -D warnings ||
    failed+=("clippy of the demo page and the simple example (wasm32)")

step "web: the browser side of the tests, and the demo page checked against its source (scripts/build-web.sh --check)"
bash scripts/build-web.sh --check || failed+=("build of the browser pages (or web/ is not what crates/netplay-demo builds to)")

step "portability: feature subsets"
for features in "" tls deflate webrtc fuzzing ggrs; do
    cargo check --locked -p netplay --no-default-features ${features:+--features "$features"} ||
        failed+=("netplay with features [${features}] alone")
done
for features in "" tls deflate; do
    cargo check --locked -p netplay-server --no-default-features ${features:+--features "$features"} ||
        failed+=("netplay-server with features [${features}] alone")
done

step "portability: the minimum supported Rust, $MSRV"
cargo "+$MSRV" check --locked --workspace --all-targets "${EXTRA[@]}" || failed+=("check with Rust $MSRV")

step "release: the netplay binary is built and stays under 30 MB"
if cargo build --locked --release -p netplay-cli; then
    size=$(stat -c %s target/release/netplay)
    printf 'target/release/netplay: %s bytes\n' "$size" >&2
    ((size <= 30 * 1024 * 1024)) || failed+=("release binary of $size bytes, over 30 MB")
else
    failed+=("release build")
fi

step "cargo build --workspace --all-targets"
if ! cargo build --locked --workspace --all-targets "${EXTRA[@]}"; then
    printf '\nFAILED: cargo build; %s\n' "${failed[*]:-}" >&2
    exit 1
fi

step "cargo test --workspace --doc"
cargo test --locked --workspace --doc "${EXTRA[@]}" || failed+=("doc tests")

if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace --no-fail-fast"
    cargo nextest run --locked --workspace --no-fail-fast "${EXTRA[@]}" || failed+=("cargo nextest")
else
    step "cargo test --workspace --no-fail-fast (cargo-nextest is not installed)"
    cargo test --locked --workspace --no-fail-fast "${EXTRA[@]}" || failed+=("cargo test")
fi

if ((${#failed[@]})); then
    printf '\nFAILED steps:\n' >&2
    printf '  - %s\n' "${failed[@]}" >&2
    exit 1
fi
