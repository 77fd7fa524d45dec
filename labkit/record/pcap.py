"""Reading UDP datagrams out of packet captures (pcap and pcapng), with nothing but :mod:`struct`.

This module owns the bottom half of the capture import: it opens a capture written by tcpdump,
Wireshark/dumpcap or any libpcap program, walks its records, strips the link layer, IPv4/IPv6
and UDP, and yields one :class:`Datagram` (timestamp, addresses, ports, UDP payload) per UDP
packet. It never interprets the payload (:mod:`labkit.record.capture` decodes CoAP) and never
raises on bad data inside a file: whatever cannot be used is counted by reason in
:class:`ReadStats` and reading goes on. Only a file that is not a capture at all (or cannot be
opened) raises :class:`CaptureError`.

File formats
    * classic pcap: both byte orders, microsecond (``a1b2c3d4``) and nanosecond (``a1b23c4d``)
      timestamps; a record cut short by the end of the file ends the reading (reason
      ``"truncated file"``).
    * pcapng: Section Header Blocks in either byte order (a file may hold several sections),
      Interface Description Blocks with ``if_tsresol`` (decimal or binary) and
      ``if_tsoffset``, Enhanced, Simple and (obsolete) Packet Blocks. Other blocks (name
      resolution, interface statistics, custom, ...) are passed over and counted in
      :attr:`ReadStats.blocks_ignored`.

Link layers (LINKTYPE numbers of tcpdump.org)
    0 NULL and 108 LOOP (BSD loopback: a 4-byte address family, host order resp. network
    order), 1 ETHERNET (with 802.1Q/802.1ad VLAN tags), 101 RAW (and the DLT_RAW values 12 and
    14 some systems write), 228 IPV4, 229 IPV6, 113 LINUX_SLL and 276 LINUX_SLL2 (what
    ``tcpdump -i any`` writes). Linux's ``lo`` is captured as ETHERNET with zero addresses.

Network and transport
    IPv4 with options; fragments are not reassembled (reason ``"IPv4 fragment"``). IPv6 with
    Hop-by-Hop, Routing, Destination Options and AH extension headers skipped; fragments and
    ESP are reported. UDP length is checked against the IP length; a datagram cut by the
    capture's snap length is reported (``"snapped (datagram cut by snaplen)"``), as its CoAP
    message cannot be decoded in full.
"""

from __future__ import annotations

import os
import socket
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

__all__ = [
    "LINKTYPES",
    "CaptureError",
    "Datagram",
    "ReadStats",
    "read_packets",
]

#: Link types this reader understands, by LINKTYPE number.
LINKTYPES: dict[int, str] = {
    0: "NULL",
    1: "ETHERNET",
    12: "RAW",
    14: "RAW",
    101: "RAW",
    108: "LOOP",
    113: "LINUX_SLL",
    228: "IPV4",
    229: "IPV6",
    276: "LINUX_SLL2",
}

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D

_BLOCK_IDB = 1
_BLOCK_PB = 2  # obsolete Packet Block
_BLOCK_SPB = 3
_BLOCK_EPB = 6

#: Largest record or block accepted; anything bigger means the file is corrupt.
MAX_RECORD = 16 * 1024 * 1024

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = (0x8100, 0x88A8, 0x9100)

# BSD address families that mean IPv6 (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30, Linux 10).
_AF_INET6 = frozenset({10, 24, 28, 30})
_AF_INET = 2

_IPPROTO_UDP = 17
# IPv6 extension headers skipped by length: Hop-by-Hop, Routing, Destination Options.
_IPV6_EXT = frozenset({0, 43, 60})
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
_IPV6_ESP = 50
_IPV6_NONE = 59


class CaptureError(Exception):
    """The file cannot be read as a capture at all (missing, unreadable, not pcap/pcapng)."""


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram of a capture.

    Attributes
    ----------
    ts:
        Capture time, seconds since the Unix epoch (UTC).
    frame:
        1-based number of the packet record in the file (as Wireshark numbers frames).
    src, dst:
        ``(address, port)``; IPv4 dotted quad or compressed IPv6 text.
    payload:
        The UDP payload.
    """

    ts: float
    frame: int
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


@dataclass
class ReadStats:
    """What reading a capture found.

    Attributes
    ----------
    format:
        ``"pcap"`` or ``"pcapng"`` (None before the header was read).
    frames:
        Packet records read (whatever they contain).
    datagrams:
        UDP datagrams yielded.
    skipped:
        Reason -> number of packets (or the file's tail) that could not be used.
    blocks_ignored:
        pcapng block type name -> count of blocks passed over (statistics, name resolution...).
    linktypes:
        LINKTYPE name -> number of frames of that link type.
    """

    format: str | None = None
    frames: int = 0
    datagrams: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    blocks_ignored: Counter[str] = field(default_factory=Counter)
    linktypes: Counter[str] = field(default_factory=Counter)


# ---------------------------------------------------------------------------------------------
# Network layers: bytes of one frame -> Datagram or a reason to skip it
# ---------------------------------------------------------------------------------------------


class _Skip(Exception):
    """Internal: this frame cannot be used; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _ip_from_link(linktype: int, data: bytes) -> bytes:
    """Strip the link layer; return the IP packet."""
    if linktype == 1:
        if len(data) < 14:
            raise _Skip("truncated link header")
        ethertype = struct.unpack_from("!H", data, 12)[0]
        offset = 14
        while ethertype in _ETH_VLAN:
            if len(data) < offset + 4:
                raise _Skip("truncated link header")
            ethertype = struct.unpack_from("!H", data, offset + 2)[0]
            offset += 4
        if ethertype in (_ETH_IPV4, _ETH_IPV6):
            return data[offset:]
        raise _Skip("not IP")
    if linktype in (0, 108):
        if len(data) < 4:
            raise _Skip("truncated link header")
        # NULL: host byte order of the capturing machine (unknown); LOOP: network order.
        orders = ("!I",) if linktype == 108 else ("<I", ">I")
        families = {struct.unpack_from(o, data, 0)[0] for o in orders}
        if families & ({_AF_INET} | _AF_INET6):
            return data[4:]
        raise _Skip("not IP")
    if linktype in (12, 14, 101, 228, 229):
        return data
    if linktype == 113:
        if len(data) < 16:
            raise _Skip("truncated link header")
        proto = struct.unpack_from("!H", data, 14)[0]
        if proto in (_ETH_IPV4, _ETH_IPV6):
            return data[16:]
        raise _Skip("not IP")
    if linktype == 276:
        if len(data) < 20:
            raise _Skip("truncated link header")
        proto = struct.unpack_from("!H", data, 0)[0]
        if proto in (_ETH_IPV4, _ETH_IPV6):
            return data[20:]
        raise _Skip("not IP")
    raise _Skip(f"unsupported link type {linktype}")


def _udp_from_ip(packet: bytes) -> tuple[str, str, bytes, bool]:
    """Strip IPv4/IPv6; return (src, dst, UDP segment, cut) where cut = IP says more bytes."""
    if not packet:
        raise _Skip("truncated IP header")
    version = packet[0] >> 4
    if version == 4:
        if len(packet) < 20:
            raise _Skip("truncated IP header")
        ihl = (packet[0] & 0x0F) * 4
        total, frag, proto = (
            struct.unpack_from("!H", packet, 2)[0],
            struct.unpack_from("!H", packet, 6)[0],
            packet[9],
        )
        if ihl < 20 or total < ihl:
            raise _Skip("bad IPv4 header")
        if len(packet) < ihl:
            raise _Skip("truncated IP header")
        if frag & 0x3FFF:  # MF flag or a fragment offset
            raise _Skip("IPv4 fragment")
        if proto != _IPPROTO_UDP:
            raise _Skip("not UDP")
        src = socket.inet_ntop(socket.AF_INET, packet[12:16])
        dst = socket.inet_ntop(socket.AF_INET, packet[16:20])
        return src, dst, packet[ihl:total], len(packet) < total
    if version == 6:
        if len(packet) < 40:
            raise _Skip("truncated IP header")
        plen = struct.unpack_from("!H", packet, 4)[0]
        nxt = packet[6]
        src = socket.inet_ntop(socket.AF_INET6, packet[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, packet[24:40])
        end = 40 + plen
        offset = 40
        while nxt != _IPPROTO_UDP:
            if nxt in _IPV6_EXT or nxt == _IPV6_AH:
                if len(packet) < offset + 2:
                    raise _Skip("truncated IPv6 extension header")
                size = (
                    (packet[offset + 1] + 2) * 4
                    if nxt == _IPV6_AH
                    else (packet[offset + 1] + 1) * 8
                )
                nxt = packet[offset]
                offset += size
            elif nxt == _IPV6_FRAGMENT:
                if len(packet) < offset + 8:
                    raise _Skip("truncated IPv6 extension header")
                frag = struct.unpack_from("!H", packet, offset + 2)[0]
                if frag & 0xFFF9:  # offset or M flag: a real fragment
                    raise _Skip("IPv6 fragment")
                nxt = packet[offset]  # an atomic fragment (RFC 6946) is a whole packet
                offset += 8
            elif nxt == _IPV6_ESP:
                raise _Skip("IPv6 ESP (encrypted)")
            elif nxt in (_IPV6_NONE, 6, 58):  # no next header, TCP, ICMPv6
                raise _Skip("not UDP")
            else:
                raise _Skip(f"IPv6 next header {nxt}")
            if offset > end:
                raise _Skip("bad IPv6 extension header")
        return src, dst, packet[offset:end], len(packet) < end
    raise _Skip("not IP")


def _decode_frame(linktype: int, data: bytes, snapped: bool) -> tuple[str, int, str, int, bytes]:
    ip = _ip_from_link(linktype, data)
    src, dst, udp, cut = _udp_from_ip(ip)
    if len(udp) < 8:
        raise _Skip("snapped (datagram cut by snaplen)" if cut else "truncated UDP header")
    sport, dport, ulen = struct.unpack_from("!HHH", udp, 0)
    if ulen < 8:
        raise _Skip("bad UDP length")
    if ulen > len(udp):
        if cut or snapped:
            raise _Skip("snapped (datagram cut by snaplen)")
        raise _Skip("bad UDP length")
    return src, sport, dst, dport, udp[8:ulen]


# ---------------------------------------------------------------------------------------------
# File formats
# ---------------------------------------------------------------------------------------------


@dataclass
class _Interface:
    linktype: int
    snaplen: int
    units_per_second: int = 1_000_000
    offset: int = 0


def _frame(
    stats: ReadStats, linktype: int, ts: float, data: bytes, orig_len: int
) -> Datagram | None:
    stats.frames += 1
    stats.linktypes[LINKTYPES.get(linktype, str(linktype))] += 1
    try:
        src, sport, dst, dport, payload = _decode_frame(linktype, data, len(data) < orig_len)
    except _Skip as skip:
        stats.skipped[skip.reason] += 1
        return None
    stats.datagrams += 1
    return Datagram(ts=ts, frame=stats.frames, src=(src, sport), dst=(dst, dport), payload=payload)


def _read_pcap(fh: BinaryIO, stats: ReadStats) -> Iterator[Datagram]:
    header = fh.read(24)
    for order in ("<", ">"):
        magic = struct.unpack_from(order + "I", header, 0)[0]
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            break
    units = 1_000_000_000 if magic == PCAP_MAGIC_NS else 1_000_000
    _major, _minor, _zone, _sig, _snaplen, network = struct.unpack_from(order + "HHiIII", header, 4)
    linktype = network & 0x0FFFFFFF  # upper bits may carry FCS information
    record = struct.Struct(order + "IIII")
    while True:
        rh = fh.read(16)
        if not rh:
            return
        if len(rh) < 16:
            stats.skipped["truncated file"] += 1
            return
        sec, frac, incl, orig = record.unpack(rh)
        if incl > MAX_RECORD or frac >= units:
            stats.skipped["corrupt record header (rest of file)"] += 1
            return
        data = fh.read(incl)
        if len(data) < incl:
            stats.skipped["truncated file"] += 1
            return
        dgram = _frame(stats, linktype, sec + frac / units, data, orig)
        if dgram is not None:
            yield dgram


def _options(body: bytes, order: str) -> Iterator[tuple[int, bytes]]:
    """pcapng options: (code, value) until opt_endofopt or the end of the body."""
    offset = 0
    while offset + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, offset)
        offset += 4
        if code == 0:
            return
        yield code, body[offset : offset + length]
        offset += (length + 3) & ~3


def _interface(body: bytes, order: str, stats: ReadStats) -> _Interface:
    """An interface of an IDB; a damaged one still takes its id (later ids must not shift)."""
    if len(body) < 8:
        stats.skipped["bad pcapng interface block"] += 1
        return _Interface(linktype=-1, snaplen=0)  # its packets: "unsupported link type -1"
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body, 0)
    iface = _Interface(linktype=linktype, snaplen=snaplen)
    for code, value in _options(body[8:], order):
        if code == 9 and len(value) >= 1:  # if_tsresol
            v = value[0]
            exponent = v & 0x7F
            if exponent > 30:
                stats.skipped["bad pcapng if_tsresol (microseconds assumed)"] += 1
                continue
            iface.units_per_second = 2**exponent if v & 0x80 else 10**exponent
        elif code == 14 and len(value) >= 8:  # if_tsoffset, seconds
            iface.offset = struct.unpack_from(order + "q", value, 0)[0]
    return iface


def _read_pcapng(fh: BinaryIO, stats: ReadStats) -> Iterator[Datagram]:
    order = "<"
    interfaces: list[_Interface] = []
    while True:
        bh = fh.read(8)
        if not bh:
            return
        if len(bh) < 8:
            stats.skipped["truncated file"] += 1
            return
        prefix = b""
        if bh[:4] == b"\x0a\x0d\x0d\x0a":  # Section Header Block (a palindrome)
            # The byte-order magic follows the length; it decides how to read the length.
            prefix = fh.read(4)
            if len(prefix) < 4:
                stats.skipped["truncated file"] += 1
                return
            if struct.unpack("<I", prefix)[0] == PCAPNG_BOM:
                order = "<"
            elif struct.unpack(">I", prefix)[0] == PCAPNG_BOM:
                order = ">"
            else:
                stats.skipped["corrupt pcapng block (rest of file)"] += 1
                return
            interfaces = []  # interface ids are per section
        btype, total = struct.unpack_from(order + "II", bh, 0)
        if total < 12 + len(prefix) or total % 4 or total > MAX_RECORD:
            stats.skipped["corrupt pcapng block (rest of file)"] += 1
            return
        rest = fh.read(total - 8 - len(prefix))
        if len(rest) < total - 8 - len(prefix):
            stats.skipped["truncated file"] += 1
            return
        body = (prefix + rest)[: total - 12]
        try:
            dgram = _pcapng_block(btype, body, order, interfaces, stats)
        except _Skip as skip:
            stats.skipped[skip.reason] += 1
            continue
        if dgram is not None:
            yield dgram


def _pcapng_block(
    btype: int, body: bytes, order: str, interfaces: list[_Interface], stats: ReadStats
) -> Datagram | None:
    if btype == PCAPNG_SHB:
        return None
    if btype == _BLOCK_IDB:
        interfaces.append(_interface(body, order, stats))
        return None
    if btype in (_BLOCK_EPB, _BLOCK_PB):
        if len(body) < 20:
            raise _Skip("bad pcapng packet block")
        if btype == _BLOCK_EPB:
            if_id, hi, lo, caplen, orig = struct.unpack_from(order + "IIIII", body, 0)
        else:
            if_id, _drops, hi, lo, caplen, orig = struct.unpack_from(order + "HHIIII", body, 0)
        if if_id >= len(interfaces):
            stats.frames += 1
            raise _Skip("pcapng packet of an undeclared interface")
        if caplen > len(body) - 20:
            stats.frames += 1
            raise _Skip("bad pcapng packet block")
        iface = interfaces[if_id]
        raw = (hi << 32) | lo
        ts = iface.offset + raw / iface.units_per_second
        return _frame(stats, iface.linktype, ts, body[20 : 20 + caplen], orig)
    if btype == _BLOCK_SPB:
        if len(body) < 4 or not interfaces:
            stats.frames += 1
            raise _Skip("bad pcapng packet block")
        orig = struct.unpack_from(order + "I", body, 0)[0]
        iface = interfaces[0]
        caplen = min(orig, len(body) - 4)
        if iface.snaplen:
            caplen = min(caplen, iface.snaplen)
        # A Simple Packet Block has no timestamp.
        return _frame(stats, iface.linktype, float("nan"), body[4 : 4 + caplen], orig)
    names = {4: "name resolution", 5: "interface statistics", 10: "decryption secrets"}
    stats.blocks_ignored[names.get(btype, f"type 0x{btype:08x}")] += 1
    return None


def _sniff(path: str | os.PathLike[str]) -> str:
    """``"pcap"`` or ``"pcapng"`` from the first bytes; CaptureError when neither."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise CaptureError(f"cannot open {name}: {exc.strerror or exc}") from exc
    if len(head) >= 4:
        le, be = struct.unpack_from("<I", head)[0], struct.unpack_from(">I", head)[0]
        if {le, be} & {PCAP_MAGIC_US, PCAP_MAGIC_NS}:
            if len(head) < 12:
                raise CaptureError(f"{name}: the pcap file header is truncated")
            return "pcap"
        if le == PCAPNG_SHB:
            if len(head) < 12 or PCAPNG_BOM not in (
                struct.unpack_from("<I", head, 8)[0],
                struct.unpack_from(">I", head, 8)[0],
            ):
                raise CaptureError(f"{name}: pcapng section header without a byte-order magic")
            return "pcapng"
    start = head[:4].hex() or "nothing"
    raise CaptureError(f"{name}: not a pcap or pcapng file (starts with {start})")


def read_packets(
    path: str | os.PathLike[str], stats: ReadStats | None = None
) -> Iterator[Datagram]:
    """Yield the UDP datagrams of a pcap or pcapng capture, in file order.

    Parameters
    ----------
    path:
        The capture file.
    stats:
        Filled in while reading (frames, datagrams, skipped reasons); pass your own to look at
        it afterwards.

    Returns
    -------
    Iterator[Datagram]
        A lazy iterator; the file is open only while it is being iterated.

    Raises
    ------
    CaptureError
        At once (before iterating) when the file cannot be opened or does not start like a pcap
        or pcapng file. Damage inside the file never raises: it is counted in ``stats.skipped``
        and reading goes on, or ends at a truncation.

    Notes
    -----
    Datagrams of Simple Packet Blocks have ``ts = nan`` (that block carries no time).
    """
    st = stats if stats is not None else ReadStats()
    st.format = _sniff(path)
    if st.format == "pcap":
        with open(path, "rb") as fh:
            if len(fh.read(24)) < 24:
                raise CaptureError(f"{os.fspath(path)}: the pcap file header is truncated")
    return _iterate(path, st)


def _iterate(path: str | os.PathLike[str], stats: ReadStats) -> Iterator[Datagram]:
    with open(path, "rb") as fh:
        if stats.format == "pcap":
            yield from _read_pcap(fh, stats)
        else:
            yield from _read_pcapng(fh, stats)
