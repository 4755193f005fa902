#!/usr/bin/env bash
# Builds netplay's browser pages with wasm-bindgen:
#   - the browser side of the tests: the crates/netplay-web-test harness for wasm32 beside its page,
#     and the demo crate's example `simple`, in target/web-test (or $NETPLAY_WEB_TEST_DIR);
#   - the demo page of `netplay serve` (crates/netplay-demo), whose output is committed in
#     web/ (netplay_demo.js, netplay_demo_bg.wasm) so that `cargo run -p netplay-cli -- serve`
#     needs no wasm tools. `--check` builds it aside and fails if web/ differs (run this script
#     without it, then commit web/). The demo is built reproducibly: with the Rust toolchain
#     named below, and with the builder's paths mapped out of the binary.
#
# wasm-bindgen's command line must be the version of the `wasm-bindgen` crate in Cargo.lock;
# it is installed with cargo once per version, into a cache outside the checkout
# ($NETPLAY_TOOLS_DIR, default ~/.cache/netplay-tools), and reused afterwards.
#
# Usage: bash scripts/build-web.sh [--check]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
log() { printf 'build-web: %s\n' "$*" >&2; }
check=0
[[ "${1:-}" == "--check" ]] && check=1

# The toolchain the committed demo is built with (its output depends on it).
DEMO_TOOLCHAIN=1.95.0

version="$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p;}' Cargo.lock)"
[[ -n "$version" ]] || { log "no wasm-bindgen in Cargo.lock"; exit 1; }
tools="${NETPLAY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/netplay-tools}"
bindgen="$tools/wasm-bindgen-$version/bin/wasm-bindgen"
if [[ "$("$bindgen" --version 2>/dev/null)" != "wasm-bindgen $version" ]]; then
    log "installing wasm-bindgen-cli $version into $tools"
    # Without the default features: the tool's own downloads (HTTPS) are not used here.
    cargo install --quiet --no-default-features --version "=$version" \
        --root "$tools/wasm-bindgen-$version" wasm-bindgen-cli
fi
for toolchain in "" "$DEMO_TOOLCHAIN"; do
    if ! rustup target list ${toolchain:+--toolchain "$toolchain"} --installed 2>/dev/null |
        grep -qx wasm32-unknown-unknown; then
        if [[ -n "$toolchain" ]] && ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
            rustup toolchain install "$toolchain" --profile minimal
        fi
        rustup target add ${toolchain:+--toolchain "$toolchain"} wasm32-unknown-unknown
    fi
done

# The test harness.
test_out="${NETPLAY_WEB_TEST_DIR:-target/web-test}"
cargo build --locked --release -p netplay-web-test --target wasm32-unknown-unknown
mkdir -p "$test_out"
"$bindgen" --target web --no-typescript --out-dir "$test_out" --out-name netplay_web_test \
    target/wasm32-unknown-unknown/release/netplay_web_test.wasm
# The demo crate's example `simple`, which a test opens through www/simple.html.
cargo build --locked --release -p netplay-demo --example simple --target wasm32-unknown-unknown
"$bindgen" --target web --no-typescript --out-dir "$test_out" --out-name simple \
    target/wasm32-unknown-unknown/release/examples/simple.wasm
cp crates/netplay-web-test/www/* "$test_out/"
log "built $test_out"

# The demo page, reproducibly: its own target folder, small code, the paths of this machine
# (the checkout and the cargo home) mapped to fixed names.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
remap="--remap-path-prefix=$ROOT=/netplay --remap-path-prefix=$cargo_home=/cargo"
# The sources of dependencies: under a folder named after their registry (the last remapping
# that matches wins).
for source in "$cargo_home"/registry/src/*/; do
    remap+=" --remap-path-prefix=${source%/}=/deps"
done
RUSTFLAGS="$remap" \
CARGO_TARGET_DIR=target/web-demo \
    cargo "+$DEMO_TOOLCHAIN" build --locked --release -p netplay-demo \
    --target wasm32-unknown-unknown \
    --config 'profile.release.opt-level="s"' --config 'profile.release.lto=true' \
    --config 'profile.release.codegen-units=1'
demo_out="web"
((check)) && demo_out="target/web-demo/out"
mkdir -p "$demo_out"
"$bindgen" --target web --no-typescript --out-dir "$demo_out" --out-name netplay_demo \
    target/web-demo/wasm32-unknown-unknown/release/netplay_demo.wasm
if ((check)); then
    for f in netplay_demo.js netplay_demo_bg.wasm; do
        if ! cmp -s "$demo_out/$f" "web/$f"; then
            log "web/$f is not what crates/netplay-demo builds to: run scripts/build-web.sh and commit web/"
            exit 1
        fi
    done
    log "web/ matches crates/netplay-demo"
else
    log "built web/netplay_demo.js and web/netplay_demo_bg.wasm"
fi
