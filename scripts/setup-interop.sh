#!/usr/bin/env bash
# Installs the external tools of the interop tests, idempotently:
#   - <repo>/.venv: a Python venv with tests/interop/requirements.txt (kosoku,
#     the Autobahn runner; websockets, the Python peer; trustme, test certs;
#     aiortc, the Python WebRTC peer);
#   - tests/interop/node/node_modules: the Node peers' `ws`,
#     `node-datachannel` and `playwright-core` (drives the system's Chromium;
#     it downloads no browser), pinned in tests/interop/node/package.json (no
#     lock file: see its .npmrc).
# Each install records a hash of what it installed from; a re-run with the
# same inputs only checks the hash and returns in well under a second.
#
# Usage: bash scripts/setup-interop.sh        (from any directory)
# Then:  export NETPLAY_VENV=<repo>/.venv NETPLAY_NODE_DIR=<repo>/tests/interop/node
# (scripts/test.sh does both.)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

VENV="${NETPLAY_VENV:-$ROOT/.venv}"
NODE_DIR="${NETPLAY_NODE_DIR:-$ROOT/tests/interop/node}"
REQS="$ROOT/tests/interop/requirements.txt"
PYTHON="${PYTHON:-python3}"

log() { printf 'setup-interop: %s\n' "$*" >&2; }

hash_of() {
    # A stable hash of the given strings and files.
    {
        for x in "$@"; do
            if [[ -f "$x" ]]; then cat "$x"; else printf '%s\n' "$x"; fi
        done
    } | sha256sum | cut -d' ' -f1
}

# ---------------------------------------------------------------- python venv
command -v "$PYTHON" >/dev/null || { log "no $PYTHON on PATH"; exit 1; }
py_version="$("$PYTHON" -c 'import sys; print(sys.version)')"
want="$(hash_of "$REQS" "$py_version")"
marker="$VENV/.netplay-setup.sha256"
# (aiortc is only looked up here: importing it takes half a second.)
if [[ -x "$VENV/bin/python" && -f "$marker" && "$(cat "$marker")" == "$want" ]] \
    && "$VENV/bin/python" -c 'import kosoku, websockets, trustme, importlib.util as u; assert u.find_spec("aiortc")' \
        2>/dev/null; then
    log "python venv up to date ($VENV)"
else
    log "creating python venv $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install \
        --quiet --no-input -r "$REQS"
    "$VENV/bin/python" -c 'import kosoku, websockets, trustme, aiortc'
    "$VENV/bin/kosoku" --help >/dev/null
    printf '%s\n' "$want" >"$marker"
    log "python venv ready: $("$VENV/bin/python" -m pip freeze | tr '\n' ' ')"
fi

# ------------------------------------------------------------------ node deps
command -v node >/dev/null || { log "no node on PATH"; exit 1; }
command -v npm >/dev/null || { log "no npm on PATH"; exit 1; }
want="$(hash_of "$NODE_DIR/package.json" "$NODE_DIR/.npmrc" "$(node --version)")"
marker="$NODE_DIR/node_modules/.netplay-setup.sha256"
if [[ -f "$marker" && "$(cat "$marker")" == "$want" && -f "$NODE_DIR/node_modules/ws/package.json" \
    && -f "$NODE_DIR/node_modules/node-datachannel/package.json" \
    && -f "$NODE_DIR/node_modules/playwright-core/package.json" ]]; then
    log "node deps up to date ($NODE_DIR/node_modules)"
else
    log "installing node deps in $NODE_DIR"
    rm -rf "$NODE_DIR/node_modules"
    (cd "$NODE_DIR" && npm install --no-package-lock --no-audit --no-fund \
        --loglevel=error </dev/null >&2)
    (cd "$NODE_DIR" && node -e 'require("ws"); require("node-datachannel"); require("playwright-core")')
    printf '%s\n' "$want" >"$marker"
    log "node deps ready: $(cd "$NODE_DIR" && node -p '["ws", "node-datachannel", "playwright-core"].map((m) =>
        m + " " + JSON.parse(require("fs").readFileSync(`node_modules/${m}/package.json`)).version).join(", ")')"
fi
