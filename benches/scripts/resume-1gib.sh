#!/bin/bash
# A receiver killed (SIGKILL) at 55% of a 1 GiB transfer, then
# started again with the same --output beside a new sender, resumes from the parts it
# verified; prints the share of the file's symbols its second run accepted. Needs root,
# iproute2 and a release build; creates two namespaces and a veth pair, and deletes them.
set -u
A=rsa; B=rsb
ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null
trap 'ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; rm -rf "${D:-}" "${OUT:-}"' EXIT
for n in $A $B; do ip netns add $n; ip -n $n link set lo up; ip netns exec $n sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0; done
ip link add e0 netns $A type veth peer name e0 netns $B
for n in $A $B; do ip -n $n link set e0 gso_max_segs 1 up; done
sleep 1
G=${GROUPCAST:-$(dirname "$0")/../../target/release/groupcast}
D=$(mktemp -d); F=$D/g1.bin; head -c $((1<<30)) /dev/urandom > $F
OUT=/dev/shm/resume-out; rm -rf $OUT; mkdir -p $OUT
ip netns exec $B $G recv --channel rs --interface e0 --output $OUT --timeout 120 --stats-json $D/r1.json 2>$D/r1.log & R=$!
sleep 0.3
ip netns exec $A $G send $F --channel rs --interface e0 --rate 1G 2>$D/s1.log & S=$!
half=$(( (1<<30) * 55 / 100 ))
for i in $(seq 1 3000); do
  w=$(for f in $OUT/.groupcast-tmp-*; do [ -e "$f" ] && echo $(( $(stat -c %b "$f") * 512 )); done | sort -n | tail -1)
  [ "${w:-0}" -ge $half ] && break; sleep 0.01
done
kill -9 $R $S; wait 2>/dev/null
echo "killed at ${w:-0} bytes written"
ip netns exec $B $G recv --channel rs --interface e0 --output $OUT --timeout 120 --stats-json $D/r2.json 2>$D/r2.log & R=$!
sleep 0.3
ip netns exec $A $G send $F --channel rs --interface e0 --rate 1G 2>$D/s2.log
wait $R; echo "rx2 exit $?"
cmp $F $OUT/g1.bin && echo identical
python3 -c "
import json; r=json.load(open('$D/r2.json')); n=-(-(1<<30)//1188)
print('parts_resumed', r['parts_resumed'], 'bytes_resumed', r['bytes_resumed'], 'symbols_accepted', r['symbols_accepted'], 'of', n, '=', round(r['symbols_accepted']/n,3))"
rm -rf $OUT $D
