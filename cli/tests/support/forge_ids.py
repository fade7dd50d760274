"""Poses as many receivers from many addresses of one /64: it
watches the data group for the newest sender's PROBEs, to learn its session
and its address, and every 100 ms reports COMPLETE (a window past every
object) under IDS made-up receiver ids from each source address given, so
that the sender would count them all complete. Runs for SECONDS, then prints
how many STATUS datagrams it sent.

usage: forge_ids.py IFACE PORT DATA_GROUP IDS SECONDS ADDRESS...
"""
import os
import random
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gcnet  # noqa: E402

iface, port, data_group, ids, seconds = sys.argv[1:6]
addresses = sys.argv[6:]
port, ids, seconds = int(port), int(ids), float(seconds)
ifindex = socket.if_nametoindex(iface)
rng = random.Random(33)

PROBE, STATUS, COMPLETE = 3, 5, 0x01


def status(session, rid):
    # protocol.md §13.3: id, echo, hold, loss, rate, window (object, SBN),
    # flags, loss span; then the CRC.
    body = b"GC" + bytes([1, STATUS, 0, 0, 0, 0]) + struct.pack(">Q", session)
    body += struct.pack(">QQIIQIBBH", rid, 0, 0, 0, 0, 1 << 20, 0, COMPLETE, 0)
    return gcnet.seal(body)


rx = gcnet.listen(data_group, port, ifindex)
rx.setblocking(False)
# One socket per forged address, and the ids reported from it.
socks = []
for a in addresses:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((a, 0, 0, 0))
    socks.append((s, [rng.getrandbits(64) for _ in range(ids)]))

session = None
sender = None
sent = 0
start = time.monotonic()
end = start + seconds
next_round = start
while time.monotonic() < end:
    r, _, _ = select.select([rx], [], [], 0.01)
    while r:
        try:
            pkt, addr = rx.recvfrom(65535)
        except BlockingIOError:
            break
        # The newest sender heard: a PROBE names its session; STATUS goes to
        # the address (and port) it came from.
        if pkt[:2] == b"GC" and len(pkt) >= 20 and pkt[3] == PROBE:
            session, sender = struct.unpack(">Q", pkt[8:16])[0], addr
    now = time.monotonic()
    if session is None or now < next_round:
        continue
    next_round = max(next_round, now - 0.1) + 0.1
    for s, rids in socks:
        for rid in rids:
            try:
                s.sendto(status(session, rid), sender)
                sent += 1
            except OSError:
                pass
print(sent)
