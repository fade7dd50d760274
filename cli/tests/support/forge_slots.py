#!/usr/bin/env python3
"""Made-up publishers that keep a subscriber's slots (docs/protocol.md
§14.3: 16 publishers at once, a slot given up after 60 s unheard), for the
namespace test of full slots (cli/tests/netns.rs). Under SESSIONS made-up
sessions, every 200 ms each sends a PROBE and its next object: a MESSAGES
frame of one message, with its real BLAKE3 hash, so that it completes and
its session takes a slot and stays heard. Runs for SECONDS, then prints how
many datagrams it sent.

usage: forge_slots.py IFACE PORT DATA_GROUP SESSIONS SECONDS
"""
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gcnet  # noqa: E402
import feedwire as fw  # noqa: E402

iface, port, data_group, sessions, seconds = sys.argv[1:6]
port, sessions, seconds = int(port), int(sessions), float(seconds)
ifindex = socket.if_nametoindex(iface)
rng = random.Random(35)
tx = gcnet.sender(ifindex)
dest = (data_group, port, 0, ifindex)
ids = [rng.getrandbits(64) for _ in range(sessions)]

sent = 0
start = time.monotonic()
end = start + seconds
k = 0
while time.monotonic() < end and k < 1000:
    for s in ids:
        frame = fw.messages_frame(k, [b"a forged publisher's message %d" % k])
        packets = [fw.probe(s, 1 + k, k, k + 1, k)] + fw.small_object(s, k, frame)
        for p in packets:
            try:
                tx.sendto(p, dest)
                sent += 1
            except OSError:
                pass
    k += 1
    time.sleep(max(0.0, start + k * 0.2 - time.monotonic()))
print(sent)
