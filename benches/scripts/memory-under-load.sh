#!/bin/bash
# The bounded-memory namespace test (512 MiB, receivers dropping 0% and 10%,
# cap 128 MiB) run N times with a busy loop on one core alongside, as on a
# loaded CI machine, printing each end's peak RSS and the receivers'
# peak_buffered_bytes.
#
#   benches/scripts/memory-under-load.sh N
#
# Root; iproute2, nftables (the test builds and deletes its own namespaces).
# The busy loop is bounded to 60 s per run.
set -u
cd "$(dirname "$0")/../.."
for _ in $(seq "${1:-3}"); do
    (timeout 60 sh -c 'while :; do :; done') &
    hog=$!
    GC_DEBUG=1 GROUPCAST_REQUIRE_NETNS=1 cargo test -q --release -p groupcast-cli --test netns -- \
        --nocapture a_file_larger_than_the_memory_cap 2>&1 |
        grep -oE 'peak RSS.*|test result: [a-z]+|panicked.*|peak_buffered_bytes":[0-9]+'
    kill "$hog" 2>/dev/null
    wait "$hog" 2>/dev/null
done
