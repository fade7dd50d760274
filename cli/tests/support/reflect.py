#!/usr/bin/env python3
"""A forger that aims receivers' STATUS at a victim, for the namespace test
of reflection (cli/tests/netns.rs): it sends to the data group from the
victim's address and port (IPV6_TRANSPARENT: the kernel lets a socket send
from an address the host does not have, and the victim alone answers for
it on the link), under made-up sessions. Receivers send STATUS to the
source address and port of a session's DATA (docs/protocol.md §13), so
every STATUS they send for these sessions arrives at the victim.

Phase 1: PROBEs alone, every 2 ms one of 4 sessions heard again and again
and one fresh session. Phase 2: every 5 ms, one of 4 sessions in turn sends
a PROBE and its next object, OBJECT_INFO and one DATA (a MESSAGES frame,
with its real hash, so that it completes). Runs for SECONDS, then prints a
JSON summary: datagrams and UDP payload bytes sent, and of which kind.

usage: reflect.py IFACE PORT DATA_GROUP VICTIM VICTIM_PORT PHASE SECONDS
"""
import json
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gcnet  # noqa: E402
import feedwire as fw  # noqa: E402

iface, port, data_group, victim, victim_port, phase, seconds = sys.argv[1:8]
port, victim_port, phase, seconds = int(port), int(victim_port), int(phase), float(seconds)
ifindex = socket.if_nametoindex(iface)
rng = random.Random(36 + phase)

IPV6_TRANSPARENT = 75
tx = gcnet.sender(ifindex)
tx.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
tx.bind((victim, victim_port, 0, 0))
dest = (data_group, port, 0, ifindex)

counts = {"probe": 0, "info": 0, "data": 0}
sent = {"datagrams": 0, "bytes": 0}


def send(pkt):
    try:
        tx.sendto(pkt, dest)
    except OSError:
        return
    sent["datagrams"] += 1
    sent["bytes"] += len(pkt)
    counts[{fw.PROBE: "probe", fw.INFO: "info", fw.DATA: "data"}[pkt[3]]] += 1


sessions = [rng.getrandbits(64) for _ in range(4)]
start = time.monotonic()
end = start + seconds
tick = 0
step = 0.002 if phase == 1 else 0.005
while time.monotonic() < end and tick < 5000:
    if phase == 1:
        send(fw.probe(sessions[tick % 4], 1 + tick, 0, 1, 0))
        send(fw.probe(rng.getrandbits(64), 1, 0, 1, 0))
    else:
        s, k = sessions[tick % 4], tick // 4
        send(fw.probe(s, 1 + k, k, k + 1, k))
        frame = fw.messages_frame(k, [b"reflected %d" % k])
        for p in fw.small_object(s, k, frame):
            send(p)
    tick += 1
    time.sleep(max(0.0, start + tick * step - time.monotonic()))
print(json.dumps(dict(sent, **counts, sessions=4 if phase == 2 else 4 + tick)))
