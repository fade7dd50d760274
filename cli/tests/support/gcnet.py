"""Shared by the hostile-traffic generators of the namespace tests: joining
the data group to listen, a multicast sender on an interface, the CRC trailer,
and sending at a fixed rate for a bounded time."""
import socket
import struct
import time
import zlib


def listen(group, port, ifindex):
    """A socket joined to `group` on the interface, with a 20 s timeout."""
    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rx.bind((group, port, 0, ifindex))
    mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", ifindex)
    rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    rx.settimeout(20)
    return rx


def sender(ifindex):
    """A socket that sends multicast out of the interface, one hop."""
    tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
    return tx


def seal(body):
    """`body` followed by its CRC-32 (IEEE), big-endian."""
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def send_at_rate(tx, dest, per_second, seconds, make):
    """Sends make(i) for i = 0, 1, ... on schedule; returns how many were sent."""
    sent = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        due = start + sent / per_second
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        tx.sendto(make(sent), dest)
        sent += 1
    return sent
