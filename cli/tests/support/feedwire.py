"""Feed packets in python, for the forgers of the namespace tests of streams
and subscribers (cli/tests/netns.rs): the packets of docs/protocol.md §5,
§6 and §13.1, the feed frames of §14.1, and BLAKE3 of inputs of one chunk
(at most 1024 bytes), so that forged objects verify as a receiver checks
them (§8.2) and reach the feed layer. Written from the documents, as an
attacker on the link would.
"""
import struct

import gcnet

DATA, INFO, PROBE, STATUS = 1, 2, 3, 5
RAPTORQ, NO_CODE = 6, 0
HYBRID = 3

_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
       0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
_PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
_CHUNK_START, _CHUNK_END, _ROOT = 1, 2, 8
_M32 = 0xFFFFFFFF


def _g(v, a, b, c, d, x, y):
    v[a] = (v[a] + v[b] + x) & _M32
    v[d] ^= v[a]
    v[d] = ((v[d] >> 16) | (v[d] << 16)) & _M32
    v[c] = (v[c] + v[d]) & _M32
    v[b] ^= v[c]
    v[b] = ((v[b] >> 12) | (v[b] << 20)) & _M32
    v[a] = (v[a] + v[b] + y) & _M32
    v[d] ^= v[a]
    v[d] = ((v[d] >> 8) | (v[d] << 24)) & _M32
    v[c] = (v[c] + v[d]) & _M32
    v[b] ^= v[c]
    v[b] = ((v[b] >> 7) | (v[b] << 25)) & _M32


def _compress(cv, words, counter, block_len, flags):
    v = list(cv) + list(_IV[:4]) + [counter & _M32, counter >> 32, block_len, flags]
    m = list(words)
    for r in range(7):
        _g(v, 0, 4, 8, 12, m[0], m[1])
        _g(v, 1, 5, 9, 13, m[2], m[3])
        _g(v, 2, 6, 10, 14, m[4], m[5])
        _g(v, 3, 7, 11, 15, m[6], m[7])
        _g(v, 0, 5, 10, 15, m[8], m[9])
        _g(v, 1, 6, 11, 12, m[10], m[11])
        _g(v, 2, 7, 8, 13, m[12], m[13])
        _g(v, 3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = [m[i] for i in _PERMUTATION]
    return [v[i] ^ v[i + 8] for i in range(8)]


def blake3(data):
    """BLAKE3 of `data`, which must fit one chunk (1024 bytes): the root is
    the chunk's last block compressed with ROOT."""
    assert len(data) <= 1024, "one chunk only"
    blocks = [data[i:i + 64] for i in range(0, len(data), 64)] or [b""]
    cv = _IV
    for i, block in enumerate(blocks):
        flags = _CHUNK_START if i == 0 else 0
        if i == len(blocks) - 1:
            flags |= _CHUNK_END | _ROOT
        words = struct.unpack("<16I", block.ljust(64, b"\0"))
        cv = _compress(cv, words, 0, len(block), flags)
    return struct.pack("<8I", *cv)


assert blake3(b"").hex() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
assert blake3(b"abc").hex() == "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"


def header(kind, session):
    """The common header (§4.1): magic, version, type, no flags."""
    return b"GC" + bytes([1, kind, 0, 0, 0, 0]) + struct.pack(">Q", session)


def oti(f, t, z, al=4):
    """RFC 6330's OTI (§5.1): F (40 bits), 0, T, Z, N = 1, Al."""
    return f.to_bytes(5, "big") + b"\0" + struct.pack(">HBHB", t, z, 1, al)


def data(session, obj, f, t, z, sbn, esi, symbol, fec=RAPTORQ):
    body = header(DATA, session) + struct.pack(">IB3x", obj, fec) + oti(f, t, z)
    body += bytes([sbn]) + esi.to_bytes(3, "big") + symbol
    return gcnet.seal(body)


def info(session, obj, f, t, z, digest, name=b"", fec=RAPTORQ):
    body = header(INFO, session) + struct.pack(">IBxH", obj, fec, len(name)) + oti(f, t, z)
    return gcnet.seal(body + digest + name)


def probe(session, ts, sent, objects, progress, retained=0, grtt=1000, flags=0):
    """A PROBE (§13.1) in hybrid mode, one hop, Group 0, Sample 0, no Limit."""
    body = header(PROBE, session) + struct.pack(
        ">QQIIIBBBBBB2xIIBxH", ts, sent, grtt, objects, progress, 0, HYBRID, flags, 0, 1, 0, retained, 0, 0, 0
    )
    return gcnet.seal(body)


def small_object(session, obj, content):
    """OBJECT_INFO and the one DATA packet of an object of at most 1024
    bytes, with its real hash: one RaptorQ source symbol (K = 1)."""
    f = len(content)
    t = max(4, (f + 3) // 4 * 4)
    out = [info(session, obj, f, t, 1 if f else 0, blake3(content))]
    if f:
        out.append(data(session, obj, f, t, 1, 0, 0, content.ljust(t, b"\0")))
    return out


def messages_frame(first, messages):
    out = b"\x01" + struct.pack(">QI", first, len(messages))
    for m in messages:
        out += struct.pack(">I", len(m)) + m
    return out


def stream_frame(offset, piece):
    return b"\x02" + struct.pack(">Q", offset) + piece


def end_frame(stream_len, messages):
    return b"\x03" + struct.pack(">QQ", stream_len, messages)
