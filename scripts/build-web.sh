#!/usr/bin/env bash
# Builds the browser side of the tests: crates/netplay-web-test for wasm32-unknown-unknown,
# bound to JavaScript by wasm-bindgen, beside its page, in target/web-test (or $1).
#
# wasm-bindgen's command line must be the version of the `wasm-bindgen` crate in Cargo.lock;
# it is installed with cargo once per version, into a cache outside the checkout
# ($NETPLAY_TOOLS_DIR, default ~/.cache/netplay-tools), and reused afterwards.
#
# Usage: bash scripts/build-web.sh [OUT_DIR]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf 'build-web: %s\n' "$*" >&2; }
out="${1:-target/web-test}"

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

rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown
cargo build --locked --release -p netplay-web-test --target wasm32-unknown-unknown
mkdir -p "$out"
"$bindgen" --target web --no-typescript --out-dir "$out" --out-name netplay_web_test \
    target/wasm32-unknown-unknown/release/netplay_web_test.wasm
cp crates/netplay-web-test/www/* "$out/"
log "built $out"
