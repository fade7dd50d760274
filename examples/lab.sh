#!/usr/bin/env bash
# A two-host multicast lab on one machine, for trying groupcast: two network
# namespaces joined by a veth pair, IPv6 up on both ends.
#
#   sudo ./examples/lab.sh up            make the namespaces gc-a and gc-b, joined by
#                                        veth-a (in gc-a) and veth-b (in gc-b)
#   sudo ./examples/lab.sh run a CMD...  run CMD inside gc-a (b: inside gc-b)
#   sudo ./examples/lab.sh status        say whether the lab is up, with its addresses
#   sudo ./examples/lab.sh down          remove both namespaces (and what still runs in them)
#
# GROUPCAST_LAB=NAME names the namespaces NAME-a and NAME-b instead (letters,
# digits, '_' and '-'; default gc), so that labs can live side by side.
#
# Loopback (`lo`) carries no multicast on Linux, so it cannot stand in for a
# network; a veth pair can. The host's own interfaces are never touched:
# both ends of the pair are made directly inside the namespaces, and `down`
# deletes only the two namespaces. `up` and `down` are idempotent. Each
# veth end has `gso_max_segs 1`, so that every datagram crosses the pair
# (and any nftables rule in a namespace) on its own, as on a real link.

set -euo pipefail

prog=${0##*/}
lab=${GROUPCAST_LAB:-gc}
ns_a=$lab-a
ns_b=$lab-b
if_a=veth-a
if_b=veth-b

die() {
    echo "$prog: $*" >&2
    exit 1
}

usage() {
    cat >&2 <<EOF
usage: $prog up | down | status | run a|b CMD [ARGS...]
  up      make namespaces $ns_a and $ns_b joined by a veth pair ($if_a in $ns_a, $if_b in $ns_b)
  down    remove them
  status  say whether they are up
  run     run CMD inside $ns_a (a) or $ns_b (b)
GROUPCAST_LAB=NAME names the namespaces NAME-a and NAME-b (default gc).
EOF
    exit 2
}

[[ $lab =~ ^[A-Za-z0-9_-]{1,20}$ ]] ||
    die "GROUPCAST_LAB='$lab' must be 1 to 20 letters, digits, '_' or '-'"

need_root() {
    [[ $(id -u) == 0 ]] || die "network namespaces need root: run it with sudo (sudo $0 $*)"
    command -v ip >/dev/null || die "the 'ip' command (iproute2) is missing: install iproute2"
}

ns_exists() {
    [[ -e /var/run/netns/$1 ]]
}

# Whether interface $2 in namespace $1 has a link-local address that passed
# duplicate address detection, carrier, and the kernel's ff00::/8 route.
link_ready() {
    local link addrs routes
    link=$(ip -n "$1" link show dev "$2" 2>/dev/null) || return 1
    addrs=$(ip -n "$1" -6 addr show dev "$2" scope link 2>/dev/null) || return 1
    routes=$(ip -n "$1" -6 route show table local 2>/dev/null) || return 1
    [[ $link == *LOWER_UP* ]] &&
        [[ $addrs == *"inet6 fe80"* && $addrs != *tentative* && $addrs != *dadfailed* ]] &&
        [[ $routes == *"ff00::/8 dev $2 "* ]]
}

link_local() {
    ip -n "$1" -6 addr show dev "$2" scope link | sed -n 's/.*inet6 \([^/]*\).*/\1/p;T;q'
}

lab_up() {
    ns_exists "$ns_a" && ns_exists "$ns_b" &&
        ip -n "$ns_a" link show dev "$if_a" >/dev/null 2>&1 &&
        ip -n "$ns_b" link show dev "$if_b" >/dev/null 2>&1
}

remove() {
    local ns pid
    for ns in "$ns_a" "$ns_b"; do
        ns_exists "$ns" || continue
        # Whatever still runs inside first, then the namespace (and its veth end).
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -9 "$pid" 2>/dev/null || true
        done
        ip netns del "$ns"
    done
}

up() {
    need_root up
    if lab_up && link_ready "$ns_a" "$if_a" && link_ready "$ns_b" "$if_b"; then
        echo "$prog: the lab is already up"
        status
        return
    fi
    # A lab half made (or half removed) is made again from nothing.
    remove
    local ns
    for ns in "$ns_a" "$ns_b"; do
        ip netns add "$ns"
        ip -n "$ns" link set dev lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 \
            net.ipv6.conf.default.disable_ipv6=0
    done
    ip link add "$if_a" netns "$ns_a" type veth peer name "$if_b" netns "$ns_b"
    ip -n "$ns_a" link set dev "$if_a" gso_max_segs 1 multicast on up
    ip -n "$ns_b" link set dev "$if_b" gso_max_segs 1 multicast on up
    # Link-local addresses are tentative until duplicate address detection
    # passes (a second or two); nothing can be sent from them before.
    local tries=0
    until link_ready "$ns_a" "$if_a" && link_ready "$ns_b" "$if_b"; do
        tries=$((tries + 1))
        if ((tries > 100)); then
            remove
            die "the veth pair did not get IPv6 link-local addresses within 10 s; removed the lab"
        fi
        sleep 0.1
    done
    echo "$prog: the lab is up"
    status
}

status() {
    if ! lab_up; then
        echo "$prog: the lab is not up (sudo $0 up makes it)"
        return 1
    fi
    echo "  $ns_a: $if_a $(link_local "$ns_a" "$if_a")"
    echo "  $ns_b: $if_b $(link_local "$ns_b" "$if_b")"
    echo "run commands inside with: sudo $0 run a|b CMD..."
}

down() {
    need_root down
    if ! ns_exists "$ns_a" && ! ns_exists "$ns_b"; then
        echo "$prog: no lab to take down ($ns_a and $ns_b do not exist)"
        return
    fi
    remove
    echo "$prog: the lab is down ($ns_a and $ns_b removed)"
}

run() {
    need_root run
    (($# >= 2)) || usage
    local ns
    case $1 in
    a) ns=$ns_a ;;
    b) ns=$ns_b ;;
    *) die "run takes a or b first, not '$1'" ;;
    esac
    shift
    lab_up || die "the lab is not up: run sudo $0 up first"
    exec ip netns exec "$ns" "$@"
}

case ${1:-} in
up) up ;;
down) down ;;
status)
    need_root status
    status
    ;;
run)
    shift
    run "$@"
    ;;
*) usage ;;
esac
