#!/usr/bin/env python3
"""A hostile host on the group, for the namespace test of hostile peers
(cli/tests/netns.rs). It has no key and knows only what anyone can: the
channel's groups, the transfer id (public, like a magnet link), and what it
sees on the wire. It runs groupcast's own packet formats, CRC included, and
for a bounded time at a bounded rate tries every class of attack:

- write and overwrite files: forged sessions whose manifests list `.bashrc`
  (which exists in --output) and `evil/pwned` (`evil` is a planted link), and
  objects under the real session id that its manifest does not list, or that
  it lists with another hash;
- fake completion: empty and hash-of-nothing manifests;
- kill a receiver: manifests with names the file system refuses;
- inject over the feedback group: the sender's packets, replayed and forged,
  sent where only NACKs belong (against a --source receiver);
- stall the sender: STATUS under fresh receiver ids whose window never moves
  (or stays just behind the sender's progress), under one id that feigns
  progress (its window moves one block every 9 s, just inside the test's
  --stall-timeout of 10 s), echoes of 0 and of nothing; PROBEs with
  impossible counters and GRTTs; a NACK flood;
- exhaust objects and sessions: candidate manifests that carry the real
  transfer id under made-up sessions, PROBEs of made-up sessions, claims of
  the largest blocks the format allows.

usage: hostile.py IFACE PORT DATA_GROUP FEEDBACK_GROUP TRANSFER_ID SECONDS FORGERIES
FORGERIES is a JSON file of forged transfers (BLAKE3 is computed by the test,
so that forged manifests verify as objects and reach the file layer): a list
of transfers, each a list of {"object", "name", "content" (hex), "hash" (hex)}.
Prints the number of datagrams sent.
"""
import hashlib
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

iface, port, data_group, fb_group, transfer_id, seconds, forgeries = sys.argv[1:8]
port, seconds = int(port), float(seconds)
expected = bytes.fromhex(transfer_id)
ifindex = socket.if_nametoindex(iface)
rng = random.Random(11)

T = 1188  # symbol size that fits the default 1232-byte datagram
DATA, INFO, PROBE, NACK, STATUS = 1, 2, 3, 4, 5


def header(kind, session):
    return b"GC" + bytes([1, kind, 0, 0, 0, 0]) + struct.pack(">Q", session)


def oti(f, t, z, al=4):
    return f.to_bytes(5, "big") + b"\0" + struct.pack(">HBHB", t, z, 1, al)


def data(session, obj, f, t, z, sbn, esi, symbol):
    body = header(DATA, session) + struct.pack(">IB3x", obj, 6) + oti(f, t, z)
    body += bytes([sbn]) + esi.to_bytes(3, "big") + symbol
    return gcnet.seal(body)


def info(session, obj, f, t, z, digest, name):
    n = name.encode()
    body = header(INFO, session) + struct.pack(">IBxH", obj, 6, len(n)) + oti(f, t, z)
    return gcnet.seal(body + digest + n)


def small_object(session, obj, content, digest, name):
    """OBJECT_INFO and the one DATA packet of an object of at most T bytes."""
    f = len(content)
    out = [info(session, obj, f, T, 1 if f else 0, digest, name)]
    if f:
        out.append(data(session, obj, f, T, 1, 0, 0, content.ljust(T, b"\0")))
    return out


def probe(session, ts, sent, grtt, objects, pobj, psbn, flags=0, group=3, retained=0):
    body = header(PROBE, session) + struct.pack(
        ">QQIIIBBBBBB2xIIBxH", ts, sent, grtt, objects, pobj, psbn, 3, flags, group, 1, 0, retained, 0, 0, 0
    )
    return gcnet.seal(body)


def status(session, rid, window, echo=0, flags=0):
    body = header(STATUS, session) + struct.pack(
        ">QQIIQIBBH", rid, echo, 0, 0, 0, window[0], window[1], flags, 0
    )
    return gcnet.seal(body)


def nack(session, rid, entries):
    body = header(NACK, session) + struct.pack(">QHH", rid, len(entries), 0)
    for obj, sbn, flags, need in entries:
        body += struct.pack(">IBBHI", obj, sbn, flags, 0, need)
    return gcnet.seal(body)


def fake_hash(content):
    # Any 32 bytes that are not the content's BLAKE3 hash serve a forger as
    # well as the real one: the receiver hashes what it decodes.
    return hashlib.sha256(content).digest()


with open(forgeries) as f:
    transfers = [
        [(o["object"], o["name"], bytes.fromhex(o["content"]), bytes.fromhex(o["hash"])) for o in t]
        for t in json.load(f)
    ]
owned = b"owned by the attacker\n"

rx = gcnet.listen(data_group, port, ifindex)
rx.setblocking(False)
# The feedback group shows the real receivers' ids (in their NACKs).
frx = gcnet.listen(fb_group, port, ifindex)
frx.setblocking(False)
receiver_ids = set()
tx = gcnet.sender(ifindex)
# Never hear ourselves: our own forged PROBEs would pass for the real session's.
tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
# STATUS goes to the sender by unicast, from a socket of our own.
utx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)

data_dest = (data_group, port, 0, ifindex)
fb_dest = (fb_group, port, 0, ifindex)
sent = 0


def send(pkt, dest=data_dest, sock=tx):
    global sent
    try:
        sock.sendto(pkt, dest)
        sent += 1
    except OSError:
        pass


real_session = None
sender_addr = None
captured = []
progress = (0, 0)
# Every block position the sender's PROBEs named, in order: the feigner's steps.
positions = [(0, 0)]
feign_at = None
own = {rng.getrandbits(64) for _ in range(64)}

start = time.monotonic()
end = start + seconds
tick = 0
while time.monotonic() < end and sent < 400_000:
    # Watch the wire: the real session, the sender's address, its progress.
    r, _, _ = select.select([rx], [], [], 0.002)
    while r:
        try:
            pkt, addr = rx.recvfrom(65535)
        except BlockingIOError:
            break
        if pkt[:2] == b"GC" and len(pkt) >= 20:
            session = struct.unpack(">Q", pkt[8:16])[0]
            if session not in own and pkt[3] in (DATA, PROBE):
                real_session, sender_addr = session, addr
                if len(captured) < 200:
                    captured.append(pkt)
                if pkt[3] == PROBE and len(pkt) == 68:
                    progress = struct.unpack(">IB", pkt[40:45])
                    if progress > positions[-1]:
                        positions.append(progress)
        r, _, _ = select.select([rx], [], [], 0)
    while True:
        try:
            pkt, _ = frx.recvfrom(65535)
        except BlockingIOError:
            break
        if pkt[:2] == b"GC" and pkt[3] == NACK and len(pkt) >= 24:
            rid = struct.unpack(">Q", pkt[16:24])[0]
            if rid != 0xBAD and len(receiver_ids) < 16:
                receiver_ids.add(rid)
    tick += 1
    forged = rng.choice(sorted(own))

    # Forged transfers, each under a session of its own: manifests that would
    # write .bashrc and follow the link, names the file system refuses, an
    # empty manifest (fake completion), and their files.
    for i, t in enumerate(transfers):
        session = sorted(own)[(tick + i) % len(own)]
        for obj, name, content, digest in t:
            for p in small_object(session, obj, content, digest, name):
                send(p)
    # Candidate manifests with the real transfer id under made-up sessions,
    # and PROBEs of made-up sessions: exhaustion.
    send(info(rng.getrandbits(64), 0, 700, T, 1, expected, ".groupcast-manifest"))
    send(probe(rng.getrandbits(64), 0, 1, 5_000_000, 3, 0, 0))
    # The largest blocks the format allows: K'max symbols of T = 1188 (67 MB),
    # and of T = 65480 (3.7 GB) in one oversized datagram now and then.
    big = 56_403 * T
    send(data(forged, rng.randrange(1, 40), big, T, 1, 0, rng.randrange(56_403), os.urandom(T)))
    send(data(rng.getrandbits(64), 0, big, T, 1, 0, rng.randrange(56_403), os.urandom(T)))
    if tick % 50 == 0:
        send(data(forged, 0, 56_403 * 65_480, 65_480, 1, 0, 0, b"\0" * 65_480))

    if real_session is not None:
        s = real_session
        # Objects the manifest does not list, named like files, under the real session.
        for p in small_object(s, 50 + tick % 8, owned, fake_hash(owned), ".bashrc"):
            send(p)
        # A listed object, announced with another hash and name.
        send(info(s, 1, len(owned), T, 1, fake_hash(owned), ".bashrc"))
        send(data(s, 60, big, T, 1, 0, rng.randrange(56_403), os.urandom(T)))
        # PROBEs with impossible counters and a GRTT of hours.
        send(probe(s, rng.getrandbits(40), 1 << 60, 0xFFFF_FFFF, 1 << 20, progress[0], progress[1], 1, 32))
        # Feedback-group injection: the sender's own packets and forged ones,
        # where only NACKs belong.
        if captured:
            send(rng.choice(captured), fb_dest)
        send(info(s, 0, 0, T, 0, hashlib.sha256(b"").digest(), ".groupcast-manifest"), fb_dest)
        for p in small_object(s, 70, owned, fake_hash(owned), ".bashrc"):
            send(p, fb_dest)
        # Stalling: STATUS from a fixed id whose window never moves, from
        # fresh ids just behind the sender's progress, echoes of 0 and of
        # nothing; and a NACK flood from one host.
        if tick % 5 == 0:
            send(status(s, 0xBAD, (0, 0), echo=0, flags=2), sender_addr, utx)
            # Completion faked under the real receivers' own ids.
            for rid in receiver_ids:
                send(status(s, rid, (1 << 20, 0), flags=1), sender_addr, utx)
            behind = (progress[0], max(progress[1] - 1, 0))
            send(status(s, rng.getrandbits(64), behind, echo=rng.getrandbits(30), flags=2), sender_addr, utx)
            # Feigned progress: a block every 9 s, never complete.
            now = time.monotonic()
            if feign_at is None:
                feign_at = now
            step = min(int((now - feign_at) / 9), len(positions) - 1)
            send(status(s, 0xFEED, positions[step]), sender_addr, utx)
        for _ in range(60):
            send(nack(s, 0xBAD, [(progress[0], 0, 0, 5), (1, 0, 1, 0), (rng.randrange(1 << 20), 0, 0, 1)]), fb_dest)
    # Bounded rate: about 40 rounds a second.
    time.sleep(0.02)

print(sent)
