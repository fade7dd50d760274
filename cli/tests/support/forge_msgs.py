#!/usr/bin/env python3
"""A forger beside a real message `Publisher`, for the namespace test of
subscribers under attack (transport/tests/pubsub.rs). It has no key and
knows what anyone on the link can: the channel's group and what the wire
shows. It waits until it hears the real publisher's DATA, says `attacking`,
and then, between the publisher's messages,

(m) sends the messages of 4 made-up sessions, each started by its PROBEs:
    20 objects of one MESSAGES frame of 5 messages each (with their real
    BLAKE3 hashes, so that they verify), then an END, half before the
    attacks below and half after;
(c) sends PROBEs of 2,000 made-up sessions, each heard once (no DATA: they
    must draw no STATUS);
(a) sends objects of made-up sessions that claim 4 GiB: every source symbol
    (Compact No-Code, T = 32768, Z = 255) of their last block, 514 DATA of
    about 32 KB, to make a receiver allocate for what was claimed. Two
    sessions send no PROBE (their start stays unknown), one sends PROBEs and
    four such objects.

It sends nothing under the real session's id. All along it reads the real
session's object ids off the wire. At the end it says `done`, then prints
one `key value` line per figure: the real session it heard (hex), the
highest real object id heard when it started and when it finished, the
made-up sessions that sent messages (hex, one line each), and the datagrams
and bytes it sent. Bounded: it stops at SECONDS whatever is left.

usage: forge_msgs.py IFACE PORT DATA_GROUP SECONDS
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
import feedwire as fw  # noqa: E402

iface, port, data_group, seconds = sys.argv[1:5]
port, seconds = int(port), float(seconds)
ifindex = socket.if_nametoindex(iface)
rng = random.Random(33)

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
real = None
highest = -1


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


def pump():
    """Reads the wire: the real session and its highest object id."""
    global real, highest
    for _ in range(10000):
        r, _, _ = select.select([rx], [], [], 0)
        if not r:
            return
        try:
            pkt, _ = rx.recvfrom(65535)
        except BlockingIOError:
            return
        if pkt[:2] != b"GC" or len(pkt) < 48 or pkt[3] != fw.DATA:
            continue
        session = struct.unpack(">Q", pkt[8:16])[0]
        if session in own:
            continue
        real = session
        highest = max(highest, struct.unpack(">I", pkt[16:20])[0])


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


OBJECTS, PER_OBJECT = 20, 5
talkers = [made_up() for _ in range(4)]


def messages_of(objects):
    """(m): the made-up sessions' objects in `objects` (an END at OBJECTS),
    each sent twice, with a PROBE of the session before each."""
    out = []
    for o in objects:
        for s in talkers:
            out.append(fw.probe(s, 1 + o, o, OBJECTS + 1, o))
            if o < OBJECTS:
                first = o * PER_OBJECT
                batch = [
                    b"forged by %016x, message %d" % (s, first + i) for i in range(PER_OBJECT)
                ]
                frame = fw.messages_frame(first, batch)
            else:
                frame = fw.end_frame(0, OBJECTS * PER_OBJECT)
            out += fw.small_object(s, o, frame) * 2
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


# The attacks go between the real publisher's messages: wait to hear it.
while real is None and time.monotonic() < end:
    pump()
    time.sleep(0.005)
at_start = highest
print("attacking", flush=True)
paced(messages_of(range(OBJECTS // 2)), 400)
paced([fw.probe(made_up(), 1, 0, 1, 0) for _ in range(2000)], 2000)
big = claims_of_4_gib()
paced(big, 1500)
paced(messages_of(range(OBJECTS // 2, OBJECTS + 1)), 400)
pump()
print("done", flush=True)
print("real_session %s" % ("none" if real is None else "%016x" % real))
print("real_highest_at_start %d" % at_start)
print("real_highest_at_end %d" % highest)
for s in talkers:
    print("talker %016x" % s)
print("claims_of_4_gib_datagrams %d" % len(big))
print("sent %d" % sent)
print("sent_bytes %d" % sent_bytes)
print("seconds %.1f" % (time.monotonic() - start))
