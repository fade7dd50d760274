#!/usr/bin/env python3
"""A host on the group beside an encrypted, signed transfer, for the namespace
test of sealed channels (cli/tests/netns.rs). It captures every datagram on
the data group for a bounded time and searches each for MARKER, a string the
file sent holds many times: a capture of an encrypted channel must hold none
of the plaintext. Meanwhile, of the sealed DATA it sees, it sends back a
modified copy (one byte of the ciphertext changed, the CRC made right again)
and a verbatim replay, at most LIMIT in all.

usage: sealed_tap.py IFACE PORT DATA_GROUP SECONDS MARKER
Prints a JSON summary: datagrams captured, how many were sealed, unsealed
ones other than AUTH, whether the marker was found, and what was sent.
"""
import json
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gcnet  # noqa: E402

LIMIT = 4000
DATA, AUTH = 1, 6
ENCRYPTED = 0x02

iface, port, data_group, seconds, marker = sys.argv[1:6]
port, seconds, marker = int(port), float(seconds), marker.encode()
ifindex = socket.if_nametoindex(iface)
rx = gcnet.listen(data_group, port, ifindex)
rx.setblocking(False)
tx = gcnet.sender(ifindex)
tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
dest = (data_group, port, 0, ifindex)

summary = {
    "captured": 0,
    "sealed": 0,
    "unsealed": 0,
    "marker_found": 0,
    "modified": 0,
    "replayed": 0,
}
end = time.monotonic() + seconds
while time.monotonic() < end:
    ready, _, _ = select.select([rx], [], [], 0.05)
    if not ready:
        continue
    while True:
        try:
            d = rx.recv(65536)
        except BlockingIOError:
            break
        if len(d) < 20 or d[:2] != b"GC":
            continue
        summary["captured"] += 1
        if marker in d:
            summary["marker_found"] += 1
        if d[4] == ENCRYPTED:
            summary["sealed"] += 1
        elif d[3] != AUTH:
            summary["unsealed"] += 1
        sent = summary["modified"] + summary["replayed"]
        if d[3] != DATA or d[4] != ENCRYPTED or sent >= LIMIT:
            continue
        body = bytearray(d[:-4])
        body[44] ^= 0x5A
        try:
            tx.sendto(gcnet.seal(bytes(body)), dest)
            summary["modified"] += 1
            tx.sendto(d, dest)
            summary["replayed"] += 1
        except OSError:
            pass

print(json.dumps(summary))
