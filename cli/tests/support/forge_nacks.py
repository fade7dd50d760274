#!/usr/bin/env python3
"""Forges groupcast NACKs for the namespace flood test (cli/tests/netns.rs).

Joins the data group, learns the session id from a real DATA packet (as any
eavesdropper could), then sends well-formed NACKs, each asking for a whole
block, to the feedback group at a fixed rate for a bounded time.

usage: forge_nacks.py IFACE DATA_GROUP FEEDBACK_GROUP PORT PER_SECOND SECONDS
Prints the number of NACKs sent.
"""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gcnet  # noqa: E402

iface, data_group, fb_group, port, per_second, seconds = sys.argv[1:7]
port, per_second, seconds = int(port), int(per_second), float(seconds)
ifindex = socket.if_nametoindex(iface)

rx = gcnet.listen(data_group, port, ifindex)
while True:
    pkt, _ = rx.recvfrom(65535)
    # Magic "GC", version 1, type 1 (DATA).
    if len(pkt) > 44 and pkt[0:2] == b"GC" and pkt[2] == 1 and pkt[3] == 1:
        session = pkt[8:16]
        obj = pkt[16:20]
        break


def nack(i):
    header = b"GC" + bytes([1, 4, 0, 0, 0, 0]) + session
    body = struct.pack(">QHH", 0xF0F0_0000 + i, 1, 0)
    # One entry: this object, block i % 16, no flags, no ranges, need 1000.
    body += obj + struct.pack(">BBHI", i % 16, 0, 0, 1000)
    return gcnet.seal(header + body)


dest = (fb_group, port, 0, ifindex)
print(gcnet.send_at_rate(gcnet.sender(ifindex), dest, per_second, seconds, nack))
