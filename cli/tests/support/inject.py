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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gcnet  # noqa: E402

iface, group, port, per_second, seconds = sys.argv[1:6]
port, per_second, seconds = int(port), int(per_second), float(seconds)
ifindex = socket.if_nametoindex(iface)
rng = random.Random(7)

rx = gcnet.listen(group, port, ifindex)
real = []
while len(real) < 300:
    pkt, _ = rx.recvfrom(65535)
    if pkt[0:2] == b"GC":
        real.append(pkt)
rx.close()


def reseal(p):
    return gcnet.seal(p[:-4])


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


dest = (group, port, 0, ifindex)
print(gcnet.send_at_rate(gcnet.sender(ifindex), dest, per_second, seconds, lambda _: hostile()))
