#!/usr/bin/env python3
"""Hostile traffic for the namespace injection test (cli/tests/netns.rs).

Joins the data group, captures real packets for a moment, then sends to the
data group, at a fixed rate for a bounded time, a mix of: random datagrams,
truncated copies of real packets, bit-flipped copies (CRC left stale, or
recomputed so that the packet passes the checksum), and replays of real
packets under a different session id (CRC recomputed).

usage: inject.py IFACE DATA_GROUP PORT PER_SECOND SECONDS
Prints the number of datagrams sent.
"""
import os
import random
import socket
import struct
import sys
import time
import zlib

iface, group, port, per_second, seconds = sys.argv[1:6]
port, per_second, seconds = int(port), int(per_second), float(seconds)
ifindex = socket.if_nametoindex(iface)
rng = random.Random(7)

rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
rx.bind((group, port, 0, ifindex))
mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", ifindex)
rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
rx.settimeout(20)
real = []
while len(real) < 300:
    pkt, _ = rx.recvfrom(65535)
    if pkt[0:2] == b"GC":
        real.append(pkt)
rx.close()


def reseal(p):
    return p[:-4] + struct.pack(">I", zlib.crc32(p[:-4]) & 0xFFFFFFFF)


def hostile():
    kind = rng.randrange(5)
    p = bytearray(rng.choice(real))
    if kind == 0:
        return os.urandom(rng.randrange(0, 1400))
    if kind == 1:
        return bytes(p[: rng.randrange(0, len(p))])
    if kind == 2:
        for _ in range(rng.randrange(1, 4)):
            p[rng.randrange(len(p))] ^= 1 << rng.randrange(8)
        return bytes(p)
    if kind == 3:
        # Past the header: a corrupted field or symbol that passes the CRC.
        p[rng.randrange(16, len(p) - 4)] ^= 1 << rng.randrange(8)
        return reseal(bytes(p))
    p[8:16] = struct.pack(">Q", 0xDEAD_BEEF_0000_0000 + rng.randrange(4))
    return reseal(bytes(p))


tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
dest = (group, port, 0, ifindex)
sent = 0
start = time.monotonic()
end = start + seconds
while time.monotonic() < end:
    due = start + sent / per_second
    now = time.monotonic()
    if now < due:
        time.sleep(due - now)
    tx.sendto(hostile(), dest)
    sent += 1
print(sent)
