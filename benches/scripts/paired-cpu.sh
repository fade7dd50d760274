#!/bin/bash
# CPU seconds per GB delivered, at each end, of two groupcast builds run in
# turn on the same link in the same hour, so that two builds compare on a
# shared machine whose speed drifts from day to day.
#
#   benches/scripts/paired-cpu.sh BIN_A BIN_B SIZE_BYTES PAIRS [DROP%] [MODE]
#   e.g. benches/scripts/paired-cpu.sh /tmp/gc-old target/release/groupcast 268435456 3
#
# Root; iproute2, nftables, GNU time. Builds its own namespaces (gcc-snd and
# gcc-rcv on a veth pair with gso_max_segs 1, nftables drop of DROP%, default
# 10, at the receiver), deletes them on exit, and sends nowhere else. Each run
# is `send --rate max` (MODE, default hybrid) to one `recv`; the CPU (user +
# system) and peak RSS of each process come from GNU time, not from the
# builds' own stats, so that builds without `cpu_s` compare too. Prints each
# build's median sender and receiver CPU s/GB, peak RSS and goodput.
set -euo pipefail
. "$(dirname "$0")/lab.sh"
A=$1 B=$2 SIZE=$3 PAIRS=$4 DROP=${5:-10} MODE=${6:-hybrid}
DIR=$(mktemp -d)
teardown() { lab_teardown gcc-snd gcc-rcv; rm -rf "$DIR"; }
trap teardown EXIT
lab_teardown gcc-snd gcc-rcv
lab_ns gcc-snd gcc-rcv
lab_veth gcc-snd gcc-rcv
lab_drop gcc-rcv "$DROP"
sleep 2
head -c "$SIZE" /dev/urandom > "$DIR/payload.bin"
run() {
    local bin=$1
    rm -rf "$DIR/out" && mkdir "$DIR/out"
    sync
    timeout 600 ip netns exec gcc-rcv /usr/bin/time -o "$DIR/rt" -f "%U %S %M" "$bin" recv \
        --channel gcc --interface e0 --output "$DIR/out" --timeout 300 \
        --max-object-size "$SIZE" -q 2>/dev/null &
    local rx=$!
    sleep 0.5
    local start
    start=$(date +%s.%N)
    timeout 600 ip netns exec gcc-snd /usr/bin/time -o "$DIR/st" -f "%U %S %M" "$bin" send \
        --channel gcc --interface e0 --rate max --mode "$MODE" -q "$DIR/payload.bin" 2>/dev/null
    wait "$rx"
    local end
    end=$(date +%s.%N)
    cmp -s "$DIR/payload.bin" "$DIR/out/payload.bin" || { echo "the copy differs" >&2; exit 1; }
    # secs, sender cpu, sender rss KiB, receiver cpu, receiver rss KiB
    python3 -c "
s = open('$DIR/st').read().split(); r = open('$DIR/rt').read().split()
print($end - $start, float(s[0]) + float(s[1]), s[2], float(r[0]) + float(r[1]), r[2])"
}
for _ in $(seq "$PAIRS"); do
    echo "A $(run "$A")"
    echo "B $(run "$B")"
done | python3 -c "
import sys, statistics
gb = $SIZE / 1e9
runs = {'A': [], 'B': []}
for line in sys.stdin:
    k, *v = line.split()
    runs[k].append([float(x) for x in v])
print(f'$SIZE bytes, $MODE, {$DROP}% drop at the receiver, --rate max, {len(runs[\"A\"])} pairs (medians)')
print('| build | goodput MB/s | sender CPU s/GB | receiver CPU s/GB | sender peak RSS MiB | receiver peak RSS MiB |')
print('|---|---|---|---|---|---|')
med = {}
for k, name in (('A', '$A'), ('B', '$B')):
    col = lambda i: statistics.median(r[i] for r in runs[k])
    med[k] = (col(1) / gb, col(3) / gb)
    print(f'| {name} | {$SIZE / col(0) / 1e6:.1f} | {med[k][0]:.2f} | {med[k][1]:.2f} '
          f'| {col(2) / 1024:.1f} | {col(4) / 1024:.1f} |')
print(f'B / A: sender {med[\"B\"][0] / med[\"A\"][0]:.3f}, receiver {med[\"B\"][1] / med[\"A\"][1]:.3f}')
for k in 'AB':
    print(k, 'runs (sender, receiver CPU s/GB):', ' '.join(f'{r[1] / gb:.2f}/{r[3] / gb:.2f}' for r in runs[k]))
"
