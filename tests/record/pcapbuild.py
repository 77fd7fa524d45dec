"""Builders of capture files for the pcap tests: CoAP messages, UDP/IP, link layers, pcap/pcapng.

Everything is written by hand with :mod:`struct`, so the tests check the reader against the
file formats themselves rather than against another library's writer.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Sequence

Addr = tuple[str, int]

CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST, PUT, DELETE = 1, 2, 3, 4


def code(text: str) -> int:
    """``"2.05"`` -> 69."""
    cls, _, detail = text.partition(".")
    return int(cls) * 32 + int(detail)


# -- CoAP ------------------------------------------------------------------------------------


def _nibble(n: int) -> tuple[int, bytes]:
    if n < 13:
        return n, b""
    if n < 269:
        return 13, bytes([n - 13])
    return 14, struct.pack("!H", n - 269)


def uint(n: int) -> bytes:
    """A CoAP uint option value (shortest big-endian, empty for 0)."""
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def coap(
    mtype: int,
    c: int | str,
    mid: int,
    token: bytes = b"",
    options: Iterable[tuple[int, bytes]] = (),
    payload: bytes = b"",
) -> bytes:
    """Encode a CoAP message (options sorted by number, as RFC 7252 requires)."""
    cval = code(c) if isinstance(c, str) else c
    out = bytearray([0x40 | mtype << 4 | len(token), cval, *struct.pack("!H", mid)])
    out += token
    last = 0
    for num, value in sorted(options, key=lambda o: o[0]):
        dn, dext = _nibble(num - last)
        ln, lext = _nibble(len(value))
        out.append(dn << 4 | ln)
        out += dext + lext + value
        last = num
    if payload:
        out += b"\xff" + payload
    return bytes(out)


def path(text: str) -> list[tuple[int, bytes]]:
    return [(11, seg.encode()) for seg in text.strip("/").split("/") if seg]


def query(*items: str) -> list[tuple[int, bytes]]:
    return [(15, q.encode()) for q in items]


def location(text: str) -> list[tuple[int, bytes]]:
    return [(8, seg.encode()) for seg in text.strip("/").split("/") if seg]


def cf(n: int) -> tuple[int, bytes]:
    return (12, uint(n))


def accept(n: int) -> tuple[int, bytes]:
    return (17, uint(n))


def observe(n: int) -> tuple[int, bytes]:
    return (6, uint(n))


def block(opt: int, num: int, more: bool, szx: int) -> tuple[int, bytes]:
    return (opt, uint(num << 4 | int(more) << 3 | szx))


# -- UDP / IP --------------------------------------------------------------------------------


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(
    src: str, dst: str, data: bytes, *, proto: int = 17, options: bytes = b"", frag: int = 0
) -> bytes:
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(data)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        total,
        1,
        frag,
        64,
        proto,
        0,
        socket.inet_pton(socket.AF_INET, src),
        socket.inet_pton(socket.AF_INET, dst),
    )
    return header + options + data


def ipv6(
    src: str, dst: str, data: bytes, *, nxt: int = 17, ext: Sequence[tuple[int, bytes]] = ()
) -> bytes:
    """IPv6 with extension headers ``ext`` = [(their type, body without the 2 first bytes)]."""
    chain = b""
    types = [t for t, _ in ext] + [nxt]
    for i, (_t, body) in enumerate(ext):
        raw = bytes([types[i + 1], 0]) + body
        assert len(raw) % 8 == 0
        chain += bytes([types[i + 1], len(raw) // 8 - 1]) + body
    first = types[0]
    payload = chain + data
    return (
        struct.pack("!IHBB", 0x60000000, len(payload), first, 64)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + payload
    )


def ip_udp(src: Addr, dst: Addr, payload: bytes) -> bytes:
    """IPv4 or IPv6 (by the address) carrying UDP."""
    seg = udp(src[1], dst[1], payload)
    if ":" in src[0]:
        return ipv6(src[0], dst[0], seg)
    return ipv4(src[0], dst[0], seg)


# -- link layers -----------------------------------------------------------------------------


def ethernet(ip: bytes) -> bytes:
    ethertype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return b"\x00" * 12 + struct.pack("!H", ethertype) + ip


def ethernet_vlan(ip: bytes) -> bytes:
    ethertype = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return b"\x00" * 12 + struct.pack("!HHH", 0x8100, 7, ethertype) + ip


def sll(ip: bytes) -> bytes:
    proto = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHH8sH", 0, 772, 6, b"\x00" * 8, proto) + ip


def sll2(ip: bytes) -> bytes:
    proto = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHIHBB8s", proto, 0, 1, 772, 0, 6, b"\x00" * 8) + ip


def null(ip: bytes, order: str = "<") -> bytes:
    family = 30 if ip[0] >> 4 == 6 else 2  # macOS AF_INET6 / AF_INET
    return struct.pack(order + "I", family) + ip


def loop(ip: bytes) -> bytes:
    family = 24 if ip[0] >> 4 == 6 else 2
    return struct.pack("!I", family) + ip


# -- files -----------------------------------------------------------------------------------

Record = tuple[float, bytes]


def pcap_file(
    records: Iterable[Record],
    linktype: int,
    *,
    order: str = "<",
    nano: bool = False,
    snaplen: int = 65535,
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    units = 10**9 if nano else 10**6
    out = bytearray(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    for ts, frame in records:
        sec = int(ts)
        frac = round((ts - sec) * units)
        data = frame[:snaplen]
        out += struct.pack(order + "IIII", sec, frac, len(data), len(frame)) + data
    return bytes(out)


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def _option(order: str, code_: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code_, len(value)) + value + b"\x00" * (-len(value) % 4)


def shb(order: str = "<") -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    body += _option(order, 4, b"labkit tests") + _option(order, 0, b"")
    return _block(order, 0x0A0D0D0A, body)


def idb(linktype: int, *, order: str = "<", tsresol: int | None = None, offset: int = 0) -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, 0)
    if tsresol is not None:
        body += _option(order, 9, bytes([tsresol]))
    if offset:
        body += _option(order, 14, struct.pack(order + "q", offset))
    if tsresol is not None or offset:
        body += _option(order, 0, b"")
    return _block(order, 1, body)


def epb(frame: bytes, ts: float, *, order: str = "<", iface: int = 0, units: int = 10**6) -> bytes:
    raw = round(ts * units)
    body = struct.pack(order + "IIIII", iface, raw >> 32, raw & 0xFFFFFFFF, len(frame), len(frame))
    body += frame + b"\x00" * (-len(frame) % 4)
    return _block(order, 6, body)


def spb(frame: bytes, *, order: str = "<") -> bytes:
    return _block(order, 3, struct.pack(order + "I", len(frame)) + frame)


def isb(order: str = "<") -> bytes:
    return _block(order, 5, struct.pack(order + "III", 0, 0, 0))


def pcapng_file(
    records: Iterable[Record],
    linktype: int,
    *,
    order: str = "<",
    tsresol: int | None = None,
    offset: int = 0,
) -> bytes:
    """One section, one interface, an EPB per record (plus an ignored statistics block)."""
    if tsresol is None:
        units = 10**6
    elif tsresol & 0x80:
        units = 2 ** (tsresol & 0x7F)
    else:
        units = 10**tsresol
    out = shb(order) + idb(linktype, order=order, tsresol=tsresol, offset=offset)
    for ts, frame in records:
        out += epb(frame, ts - offset, order=order, units=units)
    return out + isb(order)
