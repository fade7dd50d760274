#!/usr/bin/env python3
"""A forger's half transfer, for the namespace test of follow mode
(cli/tests/netns.rs): under one made-up session, the objects of a forged
transfer (its manifest and some of the files it lists, never all), each an
OBJECT_INFO and one DATA packet (docs/protocol.md §5, §6), sent over and over
for a bounded time. BLAKE3 is computed by the test, so that the objects
verify and the manifest binds an unpinned receiver.

usage: forge_half.py IFACE PORT DATA_GROUP SESSION SECONDS OBJECTS
OBJECTS is a JSON file: a list of {"object", "name", "content" (hex),
"hash" (hex)}, each at most 1188 bytes.
Prints the number of datagrams sent.
"""
import json
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gcnet  # noqa: E402

iface, port, data_group, session, seconds, objects = sys.argv[1:7]
port, session, seconds = int(port), int(session), float(seconds)
ifindex = socket.if_nametoindex(iface)

T = 1188  # symbol size that fits the default 1232-byte datagram
DATA, INFO = 1, 2


def header(kind):
    return b"GC" + bytes([1, kind, 0, 0, 0, 0]) + struct.pack(">Q", session)


def oti(f, z):
    return f.to_bytes(5, "big") + b"\0" + struct.pack(">HBHB", T, z, 1, 4)


def small_object(obj, content, digest, name):
    """OBJECT_INFO and the one DATA packet of an object of at most T bytes."""
    f = len(content)
    z = 1 if f else 0
    n = name.encode()
    body = header(INFO) + struct.pack(">IBxH", obj, 6, len(n)) + oti(f, z)
    out = [gcnet.seal(body + digest + n)]
    if f:
        body = header(DATA) + struct.pack(">IB3x", obj, 6) + oti(f, 1)
        body += bytes([0]) + (0).to_bytes(3, "big") + content.ljust(T, b"\0")
        out.append(gcnet.seal(body))
    return out


with open(objects) as f:
    packets = [
        p
        for o in json.load(f)
        for p in small_object(
            o["object"], bytes.fromhex(o["content"]), bytes.fromhex(o["hash"]), o["name"]
        )
    ]
tx = gcnet.sender(ifindex)
dest = (data_group, port, 0, ifindex)
print(gcnet.send_at_rate(tx, dest, 200, seconds, lambda i: packets[i % len(packets)]))
