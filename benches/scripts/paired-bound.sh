#!/bin/bash
# Paired completion runs of two groupcast builds, for changes smaller than
# the drift between invocations of the bound bench on a shared machine.
#
#   benches/scripts/paired-bound.sh BIN_A BIN_B SIZE_BYTES RATE PAIRS [DROP%]
#   e.g. benches/scripts/paired-bound.sh /tmp/gc-old target/release/groupcast 5000000 50M 6
#
# Root; iproute2, nftables. Builds its own namespaces (gcp-hub with a bridge,
# gcp-snd and gcp-r0..2 on veths with gso_max_segs 1, nftables drop of DROP%,
# default 10, at each receiver), deletes them on exit, and sends nowhere else.
# Each pair runs A then B on the same file; completion is from the sender's
# start to the last receiver's exit. Prints each build's median and runs.
set -euo pipefail
. "$(dirname "$0")/lab.sh"
A=$1 B=$2 SIZE=$3 RATE=$4 PAIRS=$5 DROP=${6:-10}
DIR=$(mktemp -d)
NAMESPACES="gcp-hub gcp-snd gcp-r0 gcp-r1 gcp-r2"
# shellcheck disable=SC2086
teardown() { lab_teardown $NAMESPACES; rm -rf "$DIR"; }
trap teardown EXIT
# shellcheck disable=SC2086
lab_teardown $NAMESPACES
ip netns add gcp-hub
ip -n gcp-hub link set lo up
ip -n gcp-hub link add br0 type bridge mcast_snooping 0
ip -n gcp-hub link set br0 up
i=0
for h in snd r0 r1 r2; do
    lab_ns "gcp-$h"
    ip link add e0 netns "gcp-$h" type veth peer name "p$i" netns gcp-hub
    ip -n "gcp-$h" link set e0 gso_max_segs 1 up
    ip -n gcp-hub link set "p$i" gso_max_segs 1 up
    ip -n gcp-hub link set "p$i" master br0
    i=$((i + 1))
done
for h in r0 r1 r2; do lab_drop "gcp-$h" "$DROP"; done
sleep 2
head -c "$SIZE" /dev/urandom > "$DIR/payload.bin"
run() {
    local bin=$1
    for r in 0 1 2; do
        rm -rf "$DIR/o$r" && mkdir "$DIR/o$r"
        (timeout 120 ip netns exec "gcp-r$r" "$bin" recv --channel gcp --interface e0 \
            --output "$DIR/o$r" --timeout 100 -q 2>/dev/null; date +%s.%N > "$DIR/exit$r") &
    done
    sleep 0.5
    local start
    start=$(date +%s.%N)
    timeout 120 ip netns exec gcp-snd "$bin" send --channel gcp --interface e0 --rate "$RATE" \
        -q "$DIR/payload.bin" 2>/dev/null
    wait
    for r in 0 1 2; do cmp -s "$DIR/payload.bin" "$DIR/o$r/payload.bin" || { echo "copy $r differs" >&2; exit 1; }; done
    python3 -c "import sys; print(max(float(open('$DIR/exit%d' % r).read()) for r in range(3)) - $start)"
}
for _ in $(seq "$PAIRS"); do
    echo "A $(run "$A")"
    echo "B $(run "$B")"
done | python3 -c "
import sys, statistics
runs = {'A': [], 'B': []}
for line in sys.stdin:
    k, t = line.split()
    runs[k].append(float(t))
for k, name in (('A', '$A'), ('B', '$B')):
    v = sorted(runs[k])
    print(f'{name}: median {statistics.median(v):.3f} s, runs', ' '.join(f'{x:.3f}' for x in v))
"
