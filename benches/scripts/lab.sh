# Namespace helpers for the bench scripts (sourced, not run). Everything they
# make lives in namespaces the caller names; lab_teardown deletes them.

# lab_ns NAME...: a namespace each, loopback up, no duplicate address detection.
lab_ns() {
    local n k
    for n in "$@"; do
        ip netns add "$n"
        ip -n "$n" link set lo up
        for k in all default; do ip netns exec "$n" sysctl -qw "net.ipv6.conf.$k.accept_dad=0"; done
    done
}

# lab_veth A B: a veth pair e0 (in A) to e0 (in B), gso_max_segs 1, up.
lab_veth() {
    ip link add e0 netns "$1" type veth peer name e0 netns "$2"
    ip -n "$1" link set e0 gso_max_segs 1 up
    ip -n "$2" link set e0 gso_max_segs 1 up
}

# lab_drop NS PERCENT: nftables drops PERCENT% of UDP to port 4242 arriving in NS.
lab_drop() {
    [ "$2" = 0 ] && return 0
    ip netns exec "$1" nft add table ip6 gcloss
    ip netns exec "$1" nft "add chain ip6 gcloss input { type filter hook input priority 0; }"
    ip netns exec "$1" nft "add rule ip6 gcloss input udp dport 4242 numgen random mod 100 < $2 drop"
}

# lab_teardown NAME...: kills what runs in each namespace and deletes it.
lab_teardown() {
    local n
    for n in "$@"; do
        ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$n" 2>/dev/null || true
    done
}
