#!/bin/bash
# A 2 GiB stream (`send --stream` from /dev/urandom)
# to one `recv --stream` dropping 10%, printing both SHA-256 sums and both
# ends' peak RSS (each should stay under 128 MiB).
#
#   benches/scripts/stream-2gib.sh [BYTES] [DROP%]
#
# Root; iproute2, nftables. Builds namespaces gcs-a and gcs-b joined by a
# veth pair (gso_max_segs 1), deletes them on exit, sends nowhere else.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/scripts/lab.sh
BYTES=${1:-2147483648} DROP=${2:-10}
BIN=$PWD/target/release/groupcast
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
DIR=$(mktemp -d)
teardown() { lab_teardown gcs-a gcs-b; rm -rf "$DIR"; }
trap teardown EXIT
lab_teardown gcs-a gcs-b
lab_ns gcs-a gcs-b
lab_veth gcs-a gcs-b
lab_drop gcs-b "$DROP"
sleep 2
(timeout 600 ip netns exec gcs-b "$BIN" recv --stream --channel big --interface e0 -q \
    --stats-json "$DIR/r.json" | sha256sum > "$DIR/r.sum") &
sleep 0.5
start=$(date +%s.%N)
head -c "$BYTES" /dev/urandom | tee >(sha256sum > "$DIR/s.sum") |
    timeout 600 ip netns exec gcs-a "$BIN" send --stream --channel big --interface e0 --rate 1G -q \
        --stats-json "$DIR/s.json"
wait
end=$(date +%s.%N)
sleep 1
echo "sent     $(cut -d' ' -f1 "$DIR/s.sum")"
echo "received $(cut -d' ' -f1 "$DIR/r.sum")"
python3 - "$DIR" "$BYTES" "$start" "$end" <<'PY'
import json, sys
d, size, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
for side in ("s", "r"):
    st = json.load(open(f"{d}/{side}.json"))
    name = "sender" if side == "s" else "receiver"
    print(f"{name}: peak RSS {st['peak_rss_bytes'] / 2**20:.1f} MiB, {st.get('cpu_s', 0):.1f} CPU s")
print(f"{size} bytes in {end - start:.1f} s ({size / (end - start) / 1e6:.1f} MB/s)")
PY
