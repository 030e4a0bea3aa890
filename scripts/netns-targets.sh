#!/bin/sh
# netns-targets.sh: "multi-cloud on one machine" with real network distance.
#
# Creates one Linux network namespace per target (dp-aws, dp-azure, ...),
# each joined to the host by a veth pair, with netem delay on both ends so
# that a round trip between the host and the namespace takes the target's
# network distance.  Services then run inside a namespace:
#
#   sudo scripts/netns-targets.sh up aws:40 azure:25
#   sudo ip netns exec dp-aws driftpilot serve --listen 10.213.1.2:8001 ...
#   driftpilot router --target aws=http://10.213.1.2:8001 --target azure=http://10.213.2.2:8001
#   sudo scripts/netns-targets.sh down
#
# Addresses: target i (1-based) gets 10.213.i.0/30, host side .1, namespace
# side .2.  These addresses exist only on this machine, between the host and
# namespaces this script made.  Needs root and iproute2 (ip, tc) with the
# sch_netem qdisc.
#
#   up [NAME:RTT_MS ...]   create (default: aws:40 azure:25); replaces existing ones
#   down [NAME ...]        remove (default: every dp-* namespace this script made)
#   status                 list the namespaces, addresses and qdiscs
set -eu

PREFIX=dp-
NET=10.213

die() { echo "netns-targets: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (it creates network namespaces)"
    command -v ip >/dev/null 2>&1 || die "ip (iproute2) not found"
    command -v tc >/dev/null 2>&1 || die "tc (iproute2) not found"
}

remove_one() {
    name=$1
    ip netns del "$PREFIX$name" 2>/dev/null || true
    ip link del "vh-$name" 2>/dev/null || true
}

up() {
    need_root
    [ $# -gt 0 ] || set -- aws:40 azure:25
    i=0
    for spec in "$@"; do
        i=$((i + 1))
        name=${spec%%:*}
        rtt=${spec#*:}
        [ "$name" != "$spec" ] || die "expected NAME:RTT_MS, got '$spec'"
        case $name in *[!a-z0-9]* | '') die "name must be [a-z0-9]+, got '$name'" ;; esac
        case $rtt in *[!0-9.]* | '') die "RTT must be a number of ms, got '$rtt'" ;; esac
        [ ${#name} -le 10 ] || die "name '$name' too long (interface names are limited)"
        [ $i -le 250 ] || die "too many targets"
        remove_one "$name"
        ns=$PREFIX$name
        half=$(awk "BEGIN { printf \"%.3f\", $rtt / 2 }")
        ip netns add "$ns"
        ip link add "vh-$name" type veth peer name "vn-$name"
        ip link set "vn-$name" netns "$ns"
        ip addr add "$NET.$i.1/30" dev "vh-$name"
        ip link set "vh-$name" up
        ip -n "$ns" addr add "$NET.$i.2/30" dev "vn-$name"
        ip -n "$ns" link set "vn-$name" up
        ip -n "$ns" link set lo up
        ip -n "$ns" route add default via "$NET.$i.1"
        # Half the round trip each way: host->namespace and namespace->host.
        if tc qdisc add dev "vh-$name" root netem delay "${half}ms" 2>/dev/null &&
            ip netns exec "$ns" tc qdisc add dev "vn-$name" root netem delay "${half}ms"; then
            echo "$ns: host $NET.$i.1 <-> $NET.$i.2 (namespace), round trip +${rtt} ms"
        else
            # Some kernels (minimal VM kernels) are built without sch_netem.
            echo "$ns: host $NET.$i.1 <-> $NET.$i.2 (namespace), NO delay: this kernel has" \
                "no netem qdisc; use the router's --emulate-distance instead" >&2
        fi
    done
}

down() {
    need_root
    if [ $# -eq 0 ]; then
        for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX" || true); do
            remove_one "${ns#$PREFIX}"
            echo "removed $ns"
        done
    else
        for name in "$@"; do
            remove_one "$name"
            echo "removed $PREFIX$name"
        done
    fi
}

status() {
    for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX" || true); do
        name=${ns#$PREFIX}
        echo "$ns:"
        ip -n "$ns" -brief addr show dev "vn-$name" 2>/dev/null | sed 's/^/  /'
        ip netns exec "$ns" tc qdisc show dev "vn-$name" 2>/dev/null | sed 's/^/  /'
        tc qdisc show dev "vh-$name" 2>/dev/null | sed 's/^/  host side: /'
    done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
up) up "$@" ;;
down) down "$@" ;;
status) status ;;
*) echo "usage: $0 up [NAME:RTT_MS ...] | down [NAME ...] | status" >&2; exit 2 ;;
esac
