#!/usr/bin/env bash
# A dependent crate's debug build works: examples/dependent (a crate that
# depends on groupcast with Cargo's default profile, so RaptorQ is built
# unoptimised with its debug assertions on) streams 50 MB through 5% loss
# between the two namespaces of examples/lab.sh, and the copy must be
# identical and confirmed. Root; `.ci/run` runs it. The lab is removed on
# exit, even on failure.
#
#   sudo ./examples/debug-dependent.sh [MEGABYTES]
set -euo pipefail
cd "$(dirname "$0")/.."

mb=${1:-50}
export GROUPCAST_LAB=gc-dep
work=$(mktemp -d)
cleanup() {
    bash examples/lab.sh down >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --manifest-path examples/dependent/Cargo.toml --target-dir target/dependent
bin=target/dependent/debug/stream

bash examples/lab.sh up >/dev/null
# The receiving namespace drops 5% of the group's datagrams.
ip netns exec gc-dep-b nft -f - <<'NFT'
table inet loss {
    chain input {
        type filter hook input priority 0; policy accept;
        ip6 daddr ff00::/8 udp dport 4242 numgen random mod 100 < 5 drop
    }
}
NFT

head -c "$((mb * 1000000))" /dev/urandom >"$work/in"
started=$(date +%s.%N)
timeout 600 bash examples/lab.sh run b "$bin" recv debug-dependent veth-b >"$work/out" 2>"$work/recv.err" &
receiver=$!
sleep 1
timeout 600 bash examples/lab.sh run a "$bin" send debug-dependent veth-a <"$work/in" 2>"$work/send.err" || {
    cat "$work/send.err" >&2
    exit 1
}
wait "$receiver" || {
    cat "$work/recv.err" >&2
    exit 1
}
ended=$(date +%s.%N)
cat "$work/send.err"
grep -q "confirmed: true" "$work/send.err" || {
    echo "the publisher did not confirm the stream" >&2
    exit 1
}
cmp "$work/in" "$work/out" || {
    echo "the copy differs" >&2
    exit 1
}
awk -v a="$started" -v b="$ended" -v mb="$mb" \
    'BEGIN { printf "debug build: %d MB through 5%% loss arrived identical in %.1f s\n", mb, b - a }'
