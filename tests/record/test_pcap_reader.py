"""The capture reader: pcap and pcapng, every link layer, IPv4/IPv6, and damaged files."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.record.pcap import CaptureError, Datagram, ReadStats, read_packets
from tests.record import pcapbuild as pb

V4A, V4B = ("192.0.2.1", 5683), ("192.0.2.20", 40001)
V6A, V6B = ("2001:db8::1", 5683), ("2001:db8::20", 40001)
T0 = 1_764_230_400.0  # 2025-11-27 08:00:00 UTC


def write(tmp_path: Path, data: bytes, name: str = "cap") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def read_all(path: Path) -> tuple[list[Datagram], ReadStats]:
    stats = ReadStats()
    return list(read_packets(path, stats)), stats


def three(src: tuple[str, int], dst: tuple[str, int]) -> list[tuple[float, bytes]]:
    """Three IP packets with UDP payloads b"one", b"two", b"three" at T0 + 0, 0.25, 1.5."""
    return [
        (T0, pb.ip_udp(src, dst, b"one")),
        (T0 + 0.25, pb.ip_udp(dst, src, b"two")),
        (T0 + 1.5, pb.ip_udp(src, dst, b"three")),
    ]


def check_three(got: list[Datagram], src: tuple[str, int], dst: tuple[str, int]) -> None:
    assert [d.payload for d in got] == [b"one", b"two", b"three"]
    assert [d.frame for d in got] == [1, 2, 3]
    assert got[0].src == src and got[0].dst == dst
    assert got[1].src == dst and got[1].dst == src
    assert [d.ts - T0 for d in got] == pytest.approx([0.0, 0.25, 1.5], abs=1e-6)


LINKS: dict[str, tuple[int, Callable[[bytes], bytes]]] = {
    "ethernet": (1, pb.ethernet),
    "ethernet-vlan": (1, pb.ethernet_vlan),
    "null-le": (0, lambda ip: pb.null(ip, "<")),
    "null-be": (0, lambda ip: pb.null(ip, ">")),
    "loop": (108, pb.loop),
    "raw": (101, lambda ip: ip),
    "linux-sll": (113, pb.sll),
    "linux-sll2": (276, pb.sll2),
}


@pytest.mark.parametrize("link", sorted(LINKS))
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_every_link_type_both_byte_orders_and_resolutions(
    tmp_path: Path, link: str, family: str, order: str, nano: bool
) -> None:
    linktype, wrap = LINKS[link]
    src, dst = (V4A, V4B) if family == "ipv4" else (V6A, V6B)
    records = [(ts, wrap(ip)) for ts, ip in three(src, dst)]
    path = write(tmp_path, pb.pcap_file(records, linktype, order=order, nano=nano))
    got, stats = read_all(path)
    check_three(got, src, dst)
    assert stats.format == "pcap" and stats.frames == 3 and stats.datagrams == 3
    assert not stats.skipped


def test_pcap_raw_ipv4_and_ipv6_link_types(tmp_path: Path) -> None:
    for linktype, (src, dst) in ((228, (V4A, V4B)), (229, (V6A, V6B))):
        path = write(tmp_path, pb.pcap_file(three(src, dst), linktype), f"raw{linktype}")
        got, stats = read_all(path)
        check_three(got, src, dst)
        assert not stats.skipped


@pytest.mark.parametrize("link", ["ethernet", "linux-sll", "linux-sll2", "null-le", "raw"])
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("tsresol", [None, 9, 3 | 0x80 | 17])
def test_pcapng_link_types_byte_orders_and_if_tsresol(
    tmp_path: Path, link: str, order: str, tsresol: int | None
) -> None:
    linktype, wrap = LINKS[link]
    for src, dst in ((V4A, V4B), (V6A, V6B)):
        records = [(ts, wrap(ip)) for ts, ip in three(src, dst)]
        path = write(tmp_path, pb.pcapng_file(records, linktype, order=order, tsresol=tsresol))
        got, stats = read_all(path)
        check_three(got, src, dst)
        assert stats.format == "pcapng" and not stats.skipped
        assert stats.blocks_ignored == {"interface statistics": 1}


def test_pcapng_if_tsoffset_and_nanosecond_precision(tmp_path: Path) -> None:
    records = [(T0 + 0.000000123, pb.ethernet(pb.ip_udp(V4A, V4B, b"x")))]
    path = write(tmp_path, pb.pcapng_file(records, 1, tsresol=9, offset=1_700_000_000))
    (d,), _ = read_all(path)
    assert d.ts == pytest.approx(T0 + 0.000000123, abs=1e-7)


def test_pcapng_two_sections_in_different_byte_orders_with_spb_and_unknown_blocks(
    tmp_path: Path,
) -> None:
    f1 = pb.ethernet(pb.ip_udp(V4A, V4B, b"first"))
    f2 = pb.sll(pb.ip_udp(V6A, V6B, b"second"))
    f3 = pb.sll(pb.ip_udp(V6B, V6A, b"simple"))
    data = (
        pb.shb("<")
        + pb.idb(1, order="<")
        + pb._block("<", 0x0BAD, b"custom data!")  # an unknown block type
        + pb.epb(f1, T0, order="<")
        + pb.shb(">")
        + pb.idb(113, order=">", tsresol=9)
        + pb.epb(f2, T0 + 2, order=">", units=10**9)
        + pb.spb(f3, order=">")
    )
    got, stats = read_all(write(tmp_path, data))
    assert [d.payload for d in got] == [b"first", b"second", b"simple"]
    assert got[0].ts == pytest.approx(T0) and got[1].ts == pytest.approx(T0 + 2)
    assert got[2].ts != got[2].ts  # an SPB has no timestamp: nan
    assert got[1].src == V6A
    assert stats.blocks_ignored == {"type 0x00000bad": 1}
    assert not stats.skipped


def test_obsolete_packet_block(tmp_path: Path) -> None:
    frame = pb.ethernet(pb.ip_udp(V4A, V4B, b"old"))
    raw = round(T0 * 10**6)
    body = struct.pack("<HHIIII", 0, 0, raw >> 32, raw & 0xFFFFFFFF, len(frame), len(frame))
    data = pb.shb() + pb.idb(1) + pb._block("<", 2, body + frame)
    (d,), _ = read_all(write(tmp_path, data))
    assert d.payload == b"old" and d.ts == pytest.approx(T0)


def test_ip_options_and_ipv6_extension_headers(tmp_path: Path) -> None:
    seg = pb.udp(5683, 40001, b"hello")
    frames = [
        pb.ipv4(V4A[0], V4B[0], seg, options=b"\x94\x04\x00\x00"),  # Router Alert
        pb.ipv6(V6A[0], V6B[0], seg, ext=[(0, b"\x01\x04\x00\x00\x00\x00")]),  # Hop-by-Hop
        pb.ipv6(V6A[0], V6B[0], seg, ext=[(0, bytes(6)), (60, bytes(14))]),  # + Dest. Options
        pb.ipv6(V6A[0], V6B[0], seg, ext=[(44, bytes(6))]),  # an atomic fragment
    ]
    got, stats = read_all(write(tmp_path, pb.pcap_file([(T0, f) for f in frames], 101)))
    assert [d.payload for d in got] == [b"hello"] * 4
    assert [d.dst for d in got] == [V4B, V6B, V6B, V6B]
    assert not stats.skipped


def test_what_is_not_udp_is_skipped_by_reason(tmp_path: Path) -> None:
    seg = pb.udp(5683, 40001, b"ok")
    frames = [
        pb.ethernet(pb.ipv4(V4A[0], V4B[0], seg)),
        pb.ethernet(pb.ipv4(V4A[0], V4B[0], b"\x00" * 20, proto=6)),  # TCP
        pb.ethernet(pb.ipv4(V4A[0], V4B[0], seg, frag=0x2000)),  # first fragment (MF)
        pb.ethernet(pb.ipv4(V4A[0], V4B[0], seg[:4], frag=0x0010)),  # a later fragment
        pb.ethernet(pb.ipv6(V6A[0], V6B[0], seg, ext=[(44, b"\x00\x01\x00\x00\x00\x07")])),
        pb.ethernet(pb.ipv6(V6A[0], V6B[0], b"\x00" * 8, nxt=58)),  # ICMPv6
        pb.ethernet(pb.ipv6(V6A[0], V6B[0], b"\x00" * 16, nxt=50)),  # ESP
        b"\xff" * 12 + b"\x08\x06" + b"\x00" * 28,  # ARP
        pb.ethernet(b"\x45\x00"),  # truncated IPv4 header
        pb.ethernet(pb.ipv4(V4A[0], V4B[0], b"\x16\x33\x9c\x41\x00\x04\x00\x00")),  # UDP len 4
        pb.ethernet(pb.ipv4(V4A[0], V4B[0], seg)),
    ]
    got, stats = read_all(write(tmp_path, pb.pcap_file([(T0, f) for f in frames], 1)))
    assert [d.payload for d in got] == [b"ok", b"ok"]
    assert stats.frames == 11 and stats.datagrams == 2
    assert stats.skipped == {
        "not UDP": 2,
        "IPv4 fragment": 2,
        "IPv6 fragment": 1,
        "IPv6 ESP (encrypted)": 1,
        "not IP": 1,
        "truncated IP header": 1,
        "bad UDP length": 1,
    }


def test_datagram_cut_by_snaplen_is_reported(tmp_path: Path) -> None:
    frames = [
        (T0, pb.ethernet(pb.ip_udp(V4A, V4B, b"x" * 200))),
        (T0 + 1, pb.ethernet(pb.ip_udp(V4A, V4B, b"small"))),
    ]
    got, stats = read_all(write(tmp_path, pb.pcap_file(frames, 1, snaplen=96)))
    assert [d.payload for d in got] == [b"small"]
    assert stats.skipped == {"snapped (datagram cut by snaplen)": 1}


def test_unknown_link_type_is_skipped_per_frame(tmp_path: Path) -> None:
    got, stats = read_all(write(tmp_path, pb.pcap_file([(T0, b"\x00" * 40)], 147)))
    assert got == [] and stats.skipped == {"unsupported link type 147": 1}


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truncated_file_keeps_what_came_before(tmp_path: Path, fmt: str) -> None:
    records = [(ts, pb.ethernet(ip)) for ts, ip in three(V4A, V4B)]
    whole = pb.pcap_file(records, 1) if fmt == "pcap" else pb.pcapng_file(records, 1)[:-28]
    cut = whole[: len(whole) - 10]  # mid-packet of the third record
    got, stats = read_all(write(tmp_path, cut))
    assert [d.payload for d in got] == [b"one", b"two"]
    assert stats.skipped == {"truncated file": 1}


def test_corrupt_record_length_ends_reading(tmp_path: Path) -> None:
    records = [(ts, pb.ethernet(ip)) for ts, ip in three(V4A, V4B)]
    data = bytearray(pb.pcap_file(records, 1))
    second = 24 + 16 + len(records[0][1])
    data[second + 8 : second + 12] = struct.pack("<I", 0x7FFFFFFF)
    got, stats = read_all(write(tmp_path, bytes(data)))
    assert [d.payload for d in got] == [b"one"]
    assert stats.skipped == {"corrupt record header (rest of file)": 1}


def test_pcapng_packet_of_undeclared_interface(tmp_path: Path) -> None:
    frame = pb.ethernet(pb.ip_udp(V4A, V4B, b"z"))
    data = pb.shb() + pb.idb(1) + pb.epb(frame, T0, iface=3) + pb.epb(frame, T0)
    got, stats = read_all(write(tmp_path, data))
    assert len(got) == 1 and stats.skipped == {"pcapng packet of an undeclared interface": 1}


@pytest.mark.parametrize(
    "data",
    [b"", b"\xa1\xb2", b"GET / HTTP/1.1\r\n\r\n", b"\xd4\xc3\xb2\xa1\x02\x00", b"\x0a\x0d\x0d\x0a"],
    ids=["empty", "short", "text", "pcap-header-cut", "pcapng-header-cut"],
)
def test_not_a_capture_raises_capture_error_at_once(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(CaptureError):
        read_packets(write(tmp_path, data))


def test_missing_file_raises_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot open"):
        read_packets(tmp_path / "nope.pcap")


def _valid_capture() -> bytes:
    records = [(ts, pb.ethernet(ip)) for ts, ip in three(V4A, V4B)]
    return pb.pcapng_file(records, 1, tsresol=9) + pb.pcap_file(records, 1)[24:]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fmt=st.sampled_from(["pcap", "pcapng"]),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 400),
)
def test_damaged_captures_never_raise_past_the_header(
    tmp_path: Path, fmt: str, edits: list[tuple[int, int]], cut: int
) -> None:
    records = [(ts, pb.ethernet(ip)) for ts, ip in three(V4A, V4B)]
    data = bytearray(pb.pcap_file(records, 1) if fmt == "pcap" else pb.pcapng_file(records, 1))
    head = 24 if fmt == "pcap" else 28
    for pos, value in edits:
        data[head + pos % (len(data) - head)] = value
    data = data[: head + cut]
    path = write(tmp_path, bytes(data), "fuzz")
    stats = ReadStats()
    got = list(read_packets(path, stats))
    assert stats.datagrams == len(got) <= stats.frames <= 3 + 1


def test_a_damaged_interface_block_keeps_the_ids_of_the_next_ones(tmp_path: Path) -> None:
    frame = pb.ethernet(pb.ip_udp(V4A, V4B, b"ok"))
    data = (
        pb.shb()
        + pb._block("<", 1, b"\x01\x00")  # an IDB too short to hold a link type: interface 0
        + pb.idb(1, tsresol=99)  # interface 1, with an impossible resolution
        + pb.epb(frame, T0, iface=0)
        + pb.epb(frame, T0, iface=1)
    )
    got, stats = read_all(write(tmp_path, data))
    assert [(d.payload, d.ts) for d in got] == [(b"ok", pytest.approx(T0))]
    assert stats.skipped == {
        "bad pcapng interface block": 1,
        "bad pcapng if_tsresol (microseconds assumed)": 1,
        "unsupported link type -1": 1,
    }
