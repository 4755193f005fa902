#!/usr/bin/env bash
# Installs the Debian packages the tests start by hand, idempotently:
#   - coturn:       `turnserver`, the TURN server of crates/netplay/tests/turn_coturn.rs;
#   - redis-server: `redis-server`;
#   - chromium:     `/usr/bin/chromium`, the browser peer of the WebRTC tests;
#   - iproute2:     `ip`, for the network namespaces of the browser tests.
# The tests start each server themselves on 127.0.0.1 at a free port and stop it
# by PID, so the system services these packages ship are kept from starting:
# a policy-rc.d that answers 101 is in place during the install, and the
# services are disabled afterwards where an init system runs.
# When everything is present the script only checks and returns in well under
# a second, without touching the package lists. Installing needs root; as
# another user with something missing it says what is missing and fails.
#
# Usage: bash scripts/setup-system.sh        (from any directory)
set -euo pipefail

log() { printf 'setup-system: %s\n' "$*" >&2; }

# package:command pairs; the command proves the package is usable.
WANTED=(
    "coturn:turnserver"
    "redis-server:redis-server"
    "chromium:chromium"
    "iproute2:ip"
)
# Packages that ship a system service which must not run.
SERVICES=(coturn redis-server)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for pair in "${WANTED[@]}"; do
    pkg="${pair%%:*}"
    cmd="${pair#*:}"
    if ! installed "$pkg" || ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    log "all present: ${WANTED[*]%%:*}"
    exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
    log "missing Debian packages: ${missing[*]}"
    log "run this script as root, or: apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
fi
command -v apt-get >/dev/null || { log "no apt-get: not a Debian system?"; exit 1; }

# Keep maintainer scripts from starting services during the install. An existing
# policy-rc.d is put back afterwards, whatever it said.
POLICY=/usr/sbin/policy-rc.d
SAVED=""
if [[ -e "$POLICY" ]]; then
    SAVED="$(mktemp)"
    cp -p "$POLICY" "$SAVED"
fi
restore_policy() {
    if [[ -n "$SAVED" ]]; then
        cp -p "$SAVED" "$POLICY"
        rm -f "$SAVED"
    else
        rm -f "$POLICY"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' >"$POLICY"
chmod 0755 "$POLICY"

export DEBIAN_FRONTEND=noninteractive
log "installing: ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null

# Make sure no service of these packages runs or starts at boot.
for svc in "${SERVICES[@]}"; do
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif [[ -x "/etc/init.d/$svc" ]]; then
        "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        update-rc.d -f "$svc" disable >/dev/null 2>&1 || true
    fi
done

for pair in "${WANTED[@]}"; do
    pkg="${pair%%:*}"
    cmd="${pair#*:}"
    if ! installed "$pkg" || ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null; then
        log "$pkg did not install (no $cmd)"
        exit 1
    fi
done
log "installed: ${missing[*]}"
