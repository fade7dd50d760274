#!/usr/bin/env python3
"""A forger beside a real `send --stream`, for the namespace test of stream
readers under attack (cli/tests/netns.rs). It has no key and knows what
anyone on the link can: the channel's group and what the wire shows. For a
bounded time, and a bounded number of packets, it

(b) sends forged streams of made-up sessions (with their PROBEs, so that
    they start): one that starts at byte 1,000,000, and ENDs alone (of a
    stream of 777 bytes, and of an empty one);
(c) sends PROBEs of 2,000 made-up sessions, each heard once (no DATA: they
    must draw no STATUS);
(a) sends objects of made-up sessions that claim 4 GiB: every source symbol
    (Compact No-Code, T = 32768, Z = 255) of their last block, 514 DATA of
    about 32 KB, to make a receiver allocate for what was claimed. Two
    sessions send no PROBE (their start stays unknown), one sends PROBEs and
    four such objects;
(d) reads the real session and its stream's progress off the wire all
    along (the first source symbol of each object holds its STREAM frame's
    offset, its OTI the frame's length) and, once (a) to (c) are sent, as
    soon as it has seen object k, completes the next ids first: k + 1, a
    STREAM frame at the offset where k ends, and k + 2, an END frame after
    it (the injection attack; last, so that the others are measured
    whatever it does).

usage: forge_feed.py IFACE PORT DATA_GROUP SECONDS
Prints a JSON summary: the real session it saw, what it injected, and the
datagrams and bytes it sent.
"""
import json
import os
import random
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gcnet  # noqa: E402
import feedwire as fw  # noqa: E402

iface, port, data_group, seconds = sys.argv[1:5]
port, seconds = int(port), float(seconds)
ifindex = socket.if_nametoindex(iface)
rng = random.Random(34)

rx = gcnet.listen(data_group, port, ifindex)
rx.setblocking(False)
tx = gcnet.sender(ifindex)
# Never hear ourselves: our own objects would pass for the real session's.
tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
dest = (data_group, port, 0, ifindex)

start = time.monotonic()
end = start + seconds
sent = 0
sent_bytes = 0
own = set()


def made_up():
    s = rng.getrandbits(64)
    own.add(s)
    return s


def send(pkt):
    global sent, sent_bytes
    try:
        tx.sendto(pkt, dest)
        sent += 1
        sent_bytes += len(pkt)
    except OSError:
        pass


real = None
# Object id -> where its STREAM frame ends, from its first source symbol.
ends = {}
highest = -1
real_ended = False
injecting = False
injected = []


def pump():
    """Reads the wire; injects after the newest real object seen."""
    global real, highest, real_ended
    while True:
        r, _, _ = select.select([rx], [], [], 0)
        if not r:
            break
        try:
            pkt, _ = rx.recvfrom(65535)
        except BlockingIOError:
            break
        if pkt[:2] != b"GC" or len(pkt) < 48 or pkt[3] != fw.DATA:
            continue
        session = struct.unpack(">Q", pkt[8:16])[0]
        if session in own:
            continue
        real = session
        obj = struct.unpack(">I", pkt[16:20])[0]
        f = int.from_bytes(pkt[24:29], "big")
        sbn, esi = pkt[36], int.from_bytes(pkt[37:40], "big")
        highest = max(highest, obj)
        symbol = pkt[40:-4]
        if sbn == 0 and esi == 0 and len(symbol) >= 9:
            if symbol[0] == 2:
                ends[obj] = struct.unpack(">Q", symbol[1:9])[0] + f - 9
            elif symbol[0] == 3:
                real_ended = True
    k = highest
    if not injecting or real is None or real_ended or k not in ends or len(injected) >= 200:
        return
    if injected and injected[-1]["after"] == k:
        return
    at = ends[k]
    piece = b"INJECTED BY A FORGER after object %d\n" % k
    packets = fw.small_object(real, k + 1, fw.stream_frame(at, piece))
    packets += fw.small_object(real, k + 2, fw.end_frame(at + len(piece), 0))
    for _ in range(2):
        for p in packets:
            send(p)
    injected.append({"after": k, "offset": at})


def paced(packets, per_second):
    """Sends `packets` at `per_second`, pumping between them; stops at the end time."""
    t0 = time.monotonic()
    for i, p in enumerate(packets):
        while True:
            pump()
            now = time.monotonic()
            if now >= end:
                return
            due = t0 + i / per_second
            if now >= due:
                break
            time.sleep(min(due - now, 0.001))
        send(p)


def forged_streams():
    """(b): a stream that starts at byte 1,000,000, and ENDs alone."""
    out = []
    late, alone, empty = made_up(), made_up(), made_up()
    piece = b"a forged stream that starts past its beginning\n"
    out.append(fw.probe(late, 1, 0, 2, 0))
    out += fw.small_object(late, 0, fw.stream_frame(1_000_000, piece))
    out += fw.small_object(late, 1, fw.end_frame(1_000_000 + len(piece), 0))
    for s, length in ((alone, 777), (empty, 0)):
        out.append(fw.probe(s, 1, 0, 1, 0))
        out += fw.small_object(s, 0, fw.end_frame(length, 0))
    return out


def claims_of_4_gib():
    """(a): the last block of objects that claim 4 GiB, every source symbol."""
    t, f, z = 32768, 4 << 30, 255
    kt = f // t
    ks = kt // z  # the last block is one of the shorter ones (RFC 6330 §4.4.1.2)
    zero = bytes(t)
    out = []
    for started, objects in ((False, 1), (False, 1), (True, 4)):
        s = made_up()
        for o in range(objects):
            if started:
                out.append(fw.probe(s, 1 + o, 0, objects, 0))
            for esi in range(ks):
                out.append(fw.data(s, o, f, t, z, z - 1, esi, zero, fw.NO_CODE))
    return out


streams = forged_streams()
paced(streams, 200)
paced([fw.probe(made_up(), 1, 0, 1, 0) for _ in range(2000)], 2000)
big = claims_of_4_gib()
paced(big, 1500)
injecting = True
while time.monotonic() < end:
    paced(streams, 200)
    time.sleep(0.01)
print(json.dumps({
    "real_session": None if real is None else "%016x" % real,
    "injected": injected,
    "claims_of_4_gib_datagrams": len(big),
    "sent": sent,
    "sent_bytes": sent_bytes,
}))
