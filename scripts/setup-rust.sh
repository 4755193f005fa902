#!/usr/bin/env bash
# Installs, with rustup and idempotently, what the test command builds with besides the
# default toolchain: the wasm32-unknown-unknown target (the browser build of the library)
# and the minimum supported Rust given as the first argument (a minimal profile: rustc,
# cargo and std only). Returns at once when both are there.
#
# Usage: bash scripts/setup-rust.sh 1.88
set -euo pipefail

log() { printf 'setup-rust: %s\n' "$*" >&2; }
msrv="${1:?usage: setup-rust.sh MSRV}"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    log "installing Rust $msrv (minimal profile)"
    rustup toolchain install "$msrv" --profile minimal
fi
