#!/usr/bin/env python3
"""Forges groupcast NACKs for the namespace flood test (cli/tests/netns.rs).

Joins the data group, learns the session id from a real DATA packet (as any
eavesdropper could), then sends well-formed NACKs, each asking for a whole
block, to the feedback group at a fixed rate for a bounded time.

usage: forge_nacks.py IFACE DATA_GROUP FEEDBACK_GROUP PORT PER_SECOND SECONDS
Prints the number of NACKs sent.
"""
import socket
import struct
import sys
import time
import zlib

iface, data_group, fb_group, port, per_second, seconds = sys.argv[1:7]
port, per_second, seconds = int(port), int(per_second), float(seconds)
ifindex = socket.if_nametoindex(iface)

rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
rx.bind((data_group, port, 0, ifindex))
mreq = socket.inet_pton(socket.AF_INET6, data_group) + struct.pack("@I", ifindex)
rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
rx.settimeout(20)
while True:
    pkt, _ = rx.recvfrom(65535)
    # Magic "GC", version 1, type 1 (DATA).
    if len(pkt) > 44 and pkt[0:2] == b"GC" and pkt[2] == 1 and pkt[3] == 1:
        session = pkt[8:16]
        obj = pkt[16:20]
        break

tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
dest = (fb_group, port, 0, ifindex)
sent = 0
start = time.monotonic()
end = start + seconds
while time.monotonic() < end:
    # Keep to the rate: send when the schedule says so.
    due = start + sent / per_second
    now = time.monotonic()
    if now < due:
        time.sleep(due - now)
    header = b"GC" + bytes([1, 4, 0, 0, 0, 0]) + session
    body = struct.pack(">QHH", 0xF0F0_0000 + sent, 1, 0)
    # One entry: this object, block sent % 16, no flags, no ranges, need 1000.
    body += obj + struct.pack(">BBHI", sent % 16, 0, 0, 1000)
    msg = header + body
    msg += struct.pack(">I", zlib.crc32(msg) & 0xFFFFFFFF)
    tx.sendto(msg, dest)
    sent += 1
print(sent)
