#!/usr/bin/env bash
# A private test host for WebRTC tests: a network namespace with one veth pair.
#
#   netns.sh run NAME -- COMMAND [ARG]...
#       Creates a namespace named NAME-<pid> (unique per run), with lo up and a
#       veth pair v0/v1 inside it (10.77.0.1/24 on v0, both up, default route
#       dev v0, IPv6 off, name lookups to 127.0.0.1), runs COMMAND inside it with `ip netns exec`, and
#       deletes the namespace afterwards, also on failure or a signal. Exits
#       with COMMAND's exit code (125 if the namespace cannot be made).
#       COMMAND gets NETPLAY_NETNS (the namespace's name) and NETPLAY_NETNS_IP
#       (10.77.0.1) in its environment; every process it starts is inside the
#       namespace too.
#
#   netns.sh check
#       Exits 0 iff namespaces can be made here (root, iproute2, veth), by
#       making and deleting one; says why not on stderr otherwise.
#
#   netns.sh up NAME      (for a harness that cannot run inside `run`)
#       Creates the namespace like `run` and prints its unique name on stdout;
#       start processes in it with `ip netns exec <name> ...`.
#   netns.sh down NAME    Deletes a namespace made by `up` (NAME as printed).
#
# Chromium gathers no loopback ICE candidates, so browser tests run inside
# such a namespace, where 10.77.0.1 is the only address besides loopback: the
# other peers gather on it (`--host-ip 10.77.0.1`) and no traffic leaves the
# namespace. IPv6 is switched off inside it so that no stack gathers a
# link-local (fe80::) candidate on the veth.
set -euo pipefail

ADDR=10.77.0.1
PREFIX=24

die() {
    printf 'netns.sh: %s\n' "$*" >&2
    exit 125
}

usage() {
    printf 'usage: netns.sh run NAME -- COMMAND [ARG]... | check | up NAME | down NAME\n' >&2
    exit 2
}

# unique_name NAME: NAME-<pid>[-n], not yet in use.
unique_name() {
    local base="$1-$$" name n=0
    name="$base"
    while [[ -e "/run/netns/$name" ]]; do
        n=$((n + 1))
        name="$base-$n"
    done
    printf '%s\n' "$name"
}

valid_name() {
    [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$ ]] || die "bad namespace name: '$1'"
}

# create NAME: the namespace with its veth pair; deletes it again on failure.
create() {
    local ns="$1"
    ip netns add "$ns" || die "cannot create network namespace $ns (root and iproute2 needed)"
    # Name lookups inside go to 127.0.0.1 (nothing answers), not to the
    # machine's resolver (`ip netns exec` mounts these files over /etc).
    mkdir -p "/etc/netns/$ns" 2>/dev/null &&
        printf 'nameserver 127.0.0.1\n' >"/etc/netns/$ns/resolv.conf" 2>/dev/null || true
    if ! {
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
        ip netns exec "$ns" ip link set lo up &&
            ip netns exec "$ns" ip link add v0 type veth peer name v1 &&
            ip netns exec "$ns" ip addr add "$ADDR/$PREFIX" dev v0 &&
            ip netns exec "$ns" ip link set v0 up &&
            ip netns exec "$ns" ip link set v1 up &&
            ip netns exec "$ns" ip route add default dev v0
    }; then
        destroy "$ns"
        die "cannot set up the veth pair in $ns"
    fi
}

destroy() {
    ip netns del "$1" 2>/dev/null || true
    rm -rf "/etc/netns/$1" 2>/dev/null || true
}

need_tools() {
    [[ "$(id -u)" == 0 ]] || die "network namespaces need root"
    command -v ip >/dev/null || die "no 'ip' (iproute2) on PATH"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
check)
    [[ $# -eq 0 ]] || usage
    need_tools
    ns="$(unique_name netplay-check)"
    create "$ns"
    ok=0
    ip netns exec "$ns" ip -4 addr show dev v0 | grep -q "inet $ADDR/" || ok=1
    destroy "$ns"
    [[ $ok == 0 ]] || die "the namespace has no $ADDR"
    exit 0
    ;;
up)
    [[ $# -eq 1 ]] || usage
    valid_name "$1"
    need_tools
    ns="$(unique_name "$1")"
    create "$ns"
    printf '%s\n' "$ns"
    exit 0
    ;;
down)
    [[ $# -eq 1 ]] || usage
    valid_name "$1"
    need_tools
    destroy "$1"
    exit 0
    ;;
run)
    [[ $# -ge 3 && "$2" == "--" ]] || usage
    valid_name "$1"
    need_tools
    ns="$(unique_name "$1")"
    shift 2
    child=""
    cleanup() {
        if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
            kill -TERM "$child" 2>/dev/null || true
            wait "$child" 2>/dev/null || true
        fi
        destroy "$ns"
    }
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    create "$ns"
    # In the background so that a signal to this script runs the trap at
    # once (bash defers traps while a foreground child runs); stdin passed
    # on explicitly (a background command would get /dev/null).
    exec 3<&0
    NETPLAY_NETNS="$ns" NETPLAY_NETNS_IP="$ADDR" ip netns exec "$ns" "$@" <&3 3<&- &
    child=$!
    set +e
    wait "$child"
    rc=$?
    set -e
    child=""
    exit "$rc"
    ;;
*)
    usage
    ;;
esac
