"""Capture import: hand-built CoAP/LwM2M captures, damaged ones, the CLI, and a real tcpdump one.

The hand-built conversation is one PUSH update of ``dev-1``: Register, Read of /3/0/3 and
/5/0/3 (text), /5/0 (TLV), Observe of /5/0/3, a Block1 ``PUT /5/0/0`` with notifications of
State 1 and 2, Execute ``/5/0/2`` answered by a separate response, State 3, then a Register
from a new port (the reboot), Reads of /5/0/5 (text) and /5/0 (SenML CBOR), an Update and a
De-register. It is written in several link layers, IP versions and file formats, which must all
import to the same rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.events import Event
from labkit.record import read_run, state_intervals
from labkit.record.capture import (
    CaptureError,
    CoapError,
    decode_coap,
    import_capture,
    import_pcap,
)
from labkit.record.capture_cli import add_import_pcap_parser, run_import_pcap
from labkit.record.schema import validate
from tests.record import pcapbuild as pb
from tests.record.pcapbuild import ACK, CON, NON, RST

T0 = 1_764_230_400.0
Addr = tuple[str, int]

TLV_5_0 = bytes.fromhex("C10300 C10500 C2066677".replace(" ", ""))  # State 0, Result 0, "fw"
SENML_CBOR_5_0 = bytes.fromhex("82A321652F352F302F0061330200A20061350201")  # State 0, Result 1
REG_LINKS = b'</>;rt="oma.lwm2m";ct=112,</1/0>,</3/0>,</4/0>,</5/0>'


class Conv:
    """A list of (time, src, dst, CoAP bytes), built message by message."""

    def __init__(self) -> None:
        self.msgs: list[tuple[float, Addr, Addr, bytes]] = []

    def add(self, dt: float, src: Addr, dst: Addr, data: bytes) -> None:
        self.msgs.append((T0 + dt, src, dst, data))

    def frames(self, wrap: object = pb.ethernet) -> list[tuple[float, bytes]]:
        assert callable(wrap)
        return [(ts, wrap(pb.ip_udp(s, d, data))) for ts, s, d, data in self.msgs]


def conversation(server: Addr, dev: Addr, dev2: Addr) -> Conv:
    c = Conv()
    S = server
    reg = pb.path("rd") + pb.query("ep=dev-1", "lt=60", "lwm2m=1.1", "b=U") + [pb.cf(40)]
    c.add(0.00, dev, S, pb.coap(CON, "0.02", 1, b"\xa1", reg, REG_LINKS))
    c.add(0.01, S, dev, pb.coap(ACK, "2.01", 1, b"\xa1", pb.location("rd/5a3f")))
    # Read /3/0/3 and /5/0/3 in text/plain, /5/0 in TLV.
    c.add(1.00, S, dev, pb.coap(CON, "0.01", 100, b"b1", [*pb.path("3/0/3"), pb.accept(0)]))
    c.add(1.02, dev, S, pb.coap(ACK, "2.05", 100, b"b1", [pb.cf(0)], b"1.0.0"))
    c.add(2.00, S, dev, pb.coap(CON, "0.01", 101, b"b2", [*pb.path("5/0/3"), pb.accept(0)]))
    c.add(2.01, dev, S, pb.coap(ACK, "2.05", 101, b"b2", [pb.cf(0)], b"0"))
    c.add(3.00, S, dev, pb.coap(CON, "0.01", 102, b"b3", [*pb.path("5/0"), pb.accept(11542)]))
    c.add(3.01, dev, S, pb.coap(ACK, "2.05", 102, b"b3", [pb.cf(11542)], TLV_5_0))
    # Observe /5/0/3.
    obs = [*pb.path("5/0/3"), pb.accept(0), pb.observe(0)]
    c.add(4.00, S, dev, pb.coap(CON, "0.01", 103, b"ob", obs))
    c.add(4.01, dev, S, pb.coap(ACK, "2.05", 103, b"ob", [pb.cf(0), pb.observe(1)], b"0"))
    # PUSH /5/0/0 in 64-byte blocks (SZX 2), 150 bytes.
    package = bytes(range(150))
    put = [*pb.path("5/0/0"), pb.cf(42)]
    b0 = pb.coap(
        CON, "0.03", 104, b"p0", [*put, pb.block(27, 0, True, 2), (60, pb.uint(150))], package[:64]
    )
    c.add(5.00, S, dev, b0)
    c.add(5.01, dev, S, pb.coap(ACK, "2.31", 104, b"p0", [pb.block(27, 0, True, 2)]))
    c.add(5.10, dev, S, pb.coap(CON, "2.05", 700, b"ob", [pb.cf(0), pb.observe(2)], b"1"))
    c.add(5.11, S, dev, pb.coap(ACK, "0.00", 700))
    b1 = pb.coap(CON, "0.03", 105, b"p1", [*put, pb.block(27, 1, True, 2)], package[64:128])
    c.add(5.20, S, dev, b1)
    c.add(5.25, S, dev, b1)  # a retransmission: counted once
    c.add(5.26, dev, S, pb.coap(ACK, "2.31", 105, b"p1", [pb.block(27, 1, True, 2)]))
    b2 = pb.coap(CON, "0.03", 106, b"p2", [*put, pb.block(27, 2, False, 2)], package[128:])
    c.add(5.30, S, dev, b2)
    c.add(5.31, dev, S, pb.coap(ACK, "2.04", 106, b"p2", [pb.block(27, 2, False, 2)]))
    c.add(5.40, dev, S, pb.coap(NON, "2.05", 701, b"ob", [pb.cf(0), pb.observe(3)], b"2"))
    # Execute Update, answered by an empty ACK and a separate response.
    c.add(7.00, S, dev, pb.coap(CON, "0.02", 107, b"ex", pb.path("5/0/2")))
    c.add(7.01, dev, S, pb.coap(ACK, "0.00", 107))
    c.add(7.30, dev, S, pb.coap(CON, "2.04", 702, b"ex"))
    c.add(7.31, S, dev, pb.coap(ACK, "0.00", 702))
    c.add(7.40, dev, S, pb.coap(CON, "2.05", 703, b"ob", [pb.cf(0), pb.observe(4)], b"3"))
    c.add(7.41, S, dev, pb.coap(ACK, "0.00", 703))
    # The reboot: a Register from a new port.
    c.add(9.00, dev2, S, pb.coap(CON, "0.02", 9000, b"\xa2", reg, REG_LINKS))
    c.add(9.01, S, dev2, pb.coap(ACK, "2.01", 9000, b"\xa2", pb.location("rd/77")))
    c.add(10.0, S, dev2, pb.coap(CON, "0.01", 108, b"c1", [*pb.path("5/0/5"), pb.accept(0)]))
    c.add(10.01, dev2, S, pb.coap(ACK, "2.05", 108, b"c1", [pb.cf(0)], b"1"))
    c.add(10.5, S, dev2, pb.coap(CON, "0.01", 109, b"c2", [*pb.path("5/0"), pb.accept(112)]))
    c.add(10.51, dev2, S, pb.coap(ACK, "2.05", 109, b"c2", [pb.cf(112)], SENML_CBOR_5_0))
    upd = pb.path("rd/77") + pb.query("lt=120")
    c.add(11.0, dev2, S, pb.coap(CON, "0.02", 9001, b"\xa3", upd))
    c.add(11.01, S, dev2, pb.coap(ACK, "2.04", 9001, b"\xa3"))
    c.add(12.0, dev2, S, pb.coap(CON, "0.04", 9002, b"\xa4", pb.path("rd/77")))
    c.add(12.01, S, dev2, pb.coap(ACK, "2.02", 9002, b"\xa4"))
    return c


V4 = (("192.0.2.1", 5683), ("192.0.2.20", 40001), ("192.0.2.20", 40002))
V6 = (("2001:db8::1", 5683), ("2001:db8::20", 40001), ("2001:db8::20", 40002))


def project(events: list[Event]) -> list[tuple[object, ...]]:
    """What must not depend on the encapsulation (addresses appear only in ``detail``)."""
    return [
        (
            round(e.ts - T0, 6),
            e.kind,
            e.device,
            e.path,
            e.method,
            e.code,
            e.state,
            e.result,
            e.block,
            e.bytes,
            e.fw_version,
            None if e.rtt_ms is None else round(e.rtt_ms, 3),
        )
        for e in events
    ]


def write(tmp_path: Path, data: bytes, name: str = "cap.pcap") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def of(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    return write(tmp_path, pb.pcap_file(conversation(*V4).frames(), 1), "clean.pcap")


def test_the_conversation_becomes_the_lab_rows(clean: Path) -> None:
    result = import_capture(clean)
    ev = result.events
    assert result.run_id == "clean"
    assert not result.skipped and result.duplicates == 1 and result.unanswered == 0
    assert result.devices == {"dev-1": ["192.0.2.20:40001", "192.0.2.20:40002"]}
    assert result.packets == result.datagrams == result.coap_messages == 36
    assert {e.source for e in ev} == {"import"} and {e.device for e in ev} == {"dev-1"}
    assert [e.ts for e in ev] == sorted(e.ts for e in ev)

    reg = of(ev, "registered")
    assert [(e.path, e.code) for e in reg] == [("/rd/5a3f", "2.01"), ("/rd/77", "2.01")]
    assert reg[0].detail == "lt=60 lwm2m=1.1 b=U from 192.0.2.20:40001 objects /1,/3,/4,/5"
    assert [(e.path, e.code, e.detail) for e in of(ev, "deregistered")] == [
        ("/rd/5a3f", None, "replaced by a new Register (/rd/77)"),
        ("/rd/77", "2.02", "De-register"),
    ]
    (upd,) = of(ev, "reg_updated")
    assert (upd.path, upd.code, upd.detail) == ("/rd/77", "2.04", "lt=120 from 192.0.2.20:40002")

    assert [e.state for e in of(ev, "fw_state")] == [0, 0, 0, 1, 2, 3, 0]
    assert [e.result for e in of(ev, "fw_result")] == [0, 1, 1]
    assert [e.fw_version for e in of(ev, "fw_version")] == ["1.0.0"]

    requests = [(e.method, e.path, e.bytes, e.detail) for e in of(ev, "request")]
    assert requests == [
        ("GET", "/3/0/3", 0, "read"),
        ("GET", "/5/0/3", 0, "read"),
        ("GET", "/5/0", 0, "read"),
        ("GET", "/5/0/3", 0, "observe"),
        ("PUT", "/5/0/0", 150, "write block-wise, 64 B blocks"),
        ("POST", "/5/0/2", 0, "execute update"),
        ("GET", "/5/0/5", 0, "read"),
        ("GET", "/5/0", 0, "read"),
    ]
    responses = [(e.path, e.code, e.detail, round(e.rtt_ms or 0, 3)) for e in of(ev, "response")]
    assert responses == [
        ("/3/0/3", "2.05", "read", 20.0),
        ("/5/0/3", "2.05", "read", 10.0),
        ("/5/0", "2.05", "read", 10.0),
        ("/5/0/3", "2.05", "observe", 10.0),
        ("/5/0/0", "2.04", "write, 150/150 B", 310.0),
        ("/5/0/2", "2.04", "execute update", 300.0),  # the separate response
        ("/5/0/5", "2.05", "read", 10.0),
        ("/5/0", "2.05", "read", 10.0),
    ]
    blocks = [(e.block, e.bytes, e.code, e.detail) for e in of(ev, "block")]
    assert blocks == [
        (0, 64, "2.31", "offset 0, 64 B blocks"),
        (1, 64, "2.31", "offset 64, 64 B blocks"),
        (2, 22, "2.04", "offset 128, 64 B blocks, last"),
    ]
    notes = [(e.path, e.detail, round(e.rtt_ms or 0, 3)) for e in of(ev, "notify")]
    assert notes == [
        ("/5/0/3", "observe=2", 1100.0),
        ("/5/0/3", "observe=3", 1400.0),
        ("/5/0/3", "observe=4", 3400.0),
    ]


def test_the_frame_is_a_valid_event_table_that_analysis_accepts(clean: Path) -> None:
    result = import_capture(clean, run_id="imported")
    frame = result.frame
    validate(frame)
    assert len(frame) == len(result.events) and set(frame["run_id"]) == {"imported"}
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["ts"].iloc[0].timestamp() == pytest.approx(T0 + 0.01)
    intervals = state_intervals(frame)
    assert list(intervals["state"].astype(str)) == [
        "IDLE",
        "DOWNLOADING",
        "DOWNLOADED",
        "UPDATING",
        "IDLE",
    ]


ENCAPSULATIONS = {
    "pcap-le-us-ethernet-ipv4": (V4, lambda recs: pb.pcap_file(recs(pb.ethernet), 1)),
    "pcap-be-ns-sll-ipv6": (
        V6,
        lambda recs: pb.pcap_file(recs(pb.sll), 113, order=">", nano=True),
    ),
    "pcap-null-ipv4": (V4, lambda recs: pb.pcap_file(recs(pb.null), 0)),
    "pcap-null-be-ipv6": (
        V6,
        lambda recs: pb.pcap_file(recs(lambda ip: pb.null(ip, ">")), 0, order=">"),
    ),
    "pcap-loop-ipv6": (V6, lambda recs: pb.pcap_file(recs(pb.loop), 108)),
    "pcap-raw-ipv4": (V4, lambda recs: pb.pcap_file(recs(lambda ip: ip), 101)),
    "pcapng-be-ns-ethernet-ipv6": (
        V6,
        lambda recs: pb.pcapng_file(recs(pb.ethernet), 1, order=">", tsresol=9),
    ),
    "pcapng-le-sll2-ipv4": (V4, lambda recs: pb.pcapng_file(recs(pb.sll2), 276)),
    "pcapng-vlan-ipv4-binary-resolution": (
        V4,
        lambda recs: pb.pcapng_file(recs(pb.ethernet_vlan), 1, tsresol=0x80 | 30),
    ),
}


@pytest.mark.parametrize("name", sorted(ENCAPSULATIONS))
def test_every_encapsulation_imports_to_the_same_rows(
    tmp_path: Path, clean: Path, name: str
) -> None:
    addrs, build = ENCAPSULATIONS[name]
    conv = conversation(*addrs)
    path = write(tmp_path, build(conv.frames), name)
    result = import_capture(path)
    assert not result.skipped and result.duplicates == 1
    assert project(result.events) == project(import_capture(clean).events)
    assert result.devices["dev-1"][0].startswith("[2001:db8::20]" if addrs is V6 else "192.0.2.20")


def junk_frames() -> list[tuple[str, bytes]]:
    """(expected skip reason, Ethernet frame) for everything a capture may hold besides CoAP."""
    a, b = ("192.0.2.99", 53001), ("192.0.2.98", 40000)
    dns = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")

    def udp(payload: bytes, src: Addr = a, dst: Addr = b) -> bytes:
        return pb.ethernet(pb.ip_udp(src, dst, payload))

    return [
        ("not CoAP (DNS, UDP port 53)", udp(dns, a, ("192.0.2.53", 53))),
        ("not CoAP (version is not 1)", udp(dns)),  # DNS-like on another port
        ("not CoAP (version is not 1)", udp(b"\x80\x01\x00\x01")),
        ("CoAP: token length > 8", udp(b"\x49\x01\x00\x01" + b"t" * 9)),
        ("CoAP: option delta 15", udp(b"\x40\x01\x00\x01\xf1x")),
        ("CoAP: option length 15", udp(b"\x40\x01\x00\x01\xbf")),
        ("CoAP: truncated option", udp(b"\x40\x01\x00\x01\xb5ab")),
        ("CoAP: payload marker without payload", udp(b"\x40\x01\x00\x01\xff")),
        ("CoAP: reserved code class", udp(b"\x40\x20\x00\x01")),
        ("CoAP: shorter than its 4-byte header", udp(b"\x40\x01")),
        ("CoAP: empty message with content", udp(b"\x60\x00\x00\x01\xff\x00")),
        ("CoAP: truncated token", udp(b"\x44\x01\x00\x01ab")),
        ("DTLS record (encrypted, not decoded)", udp(bytes.fromhex("16fefd") + bytes(20))),
        ("not UDP", pb.ethernet(pb.ipv4(a[0], b[0], bytes(20), proto=6))),
        ("IPv4 fragment", pb.ethernet(pb.ipv4(a[0], b[0], pb.udp(1, 2, b"x"), frag=0x2000))),
        ("not IP", b"\xff" * 12 + b"\x08\x06" + bytes(28)),
    ]


def test_malformed_traffic_is_skipped_counted_and_the_rest_imported(
    tmp_path: Path, clean: Path
) -> None:
    junk = junk_frames()
    frames = conversation(*V4).frames()
    mixed: list[tuple[float, bytes]] = []
    for i, (ts, frame) in enumerate(frames):
        mixed.append((ts, frame))
        if i < len(junk):
            mixed.append((ts, junk[i][1]))
    data = pb.pcap_file(mixed, 1) + pb.pcap_file([(T0 + 20, junk[0][1])], 1)[24:-10]
    result = import_capture(write(tmp_path, data, "mixed.pcap"))
    expected: dict[str, int] = {}
    for reason, _ in junk:
        expected[reason] = expected.get(reason, 0) + 1
    expected["truncated file"] = 1
    assert dict(result.skipped) == expected
    assert project(result.events) == project(import_capture(clean).events)
    assert "truncated file" in result.summary() and "CoAP: token length > 8" in result.summary()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x01\x00\x01", "not CoAP (version is not 1)"),
        (b"\x49\x01\x00\x01" + b"t" * 9, "CoAP: token length > 8"),
        (b"\x40\x01\x00\x01\xd1", "CoAP: truncated option"),
        (b"\x40\x01\x00\x01\xe1\x00", "CoAP: truncated option"),
        (b"\x40\x01\x00\x01\xf0", "CoAP: option delta 15"),
    ],
)
def test_decode_coap_errors(data: bytes, reason: str) -> None:
    with pytest.raises(CoapError) as info:
        decode_coap(data)
    assert info.value.reason == reason


def test_decode_coap_extended_options() -> None:
    opts = [(11, b"x" * 20), (11, b"y" * 300), (60, pb.uint(70000)), (2000, b"")]
    msg = decode_coap(pb.coap(CON, "0.03", 0xBEEF, b"12345678", opts, b"body"))
    assert msg.options == tuple(opts)
    assert (msg.mid, msg.token, msg.payload, msg.method) == (0xBEEF, b"12345678", b"body", "PUT")
    assert msg.uint(60) == 70000 and msg.strings(11)[0] == "x" * 20


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decode_coap_never_raises_anything_else(data: bytes) -> None:
    with contextlib.suppress(CoapError):
        decode_coap(data)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 35), st.integers(0, 200), st.integers(0, 255)), max_size=8
    )
)
def test_mangled_coap_never_crashes_the_import(
    tmp_path: Path, edits: list[tuple[int, int, int]]
) -> None:
    conv = conversation(*V4)
    msgs = [bytearray(m[3]) for m in conv.msgs]
    for which, pos, value in edits:
        msg = msgs[which]
        msg[pos % len(msg)] = value
    conv.msgs = [(ts, s, d, bytes(m)) for (ts, s, d, _), m in zip(conv.msgs, msgs, strict=True)]
    result = import_capture(write(tmp_path, pb.pcap_file(conv.frames(), 1), "fuzz.pcap"))
    validate(result.frame)
    assert not [r for r in result.skipped if r.startswith("internal error")]


def test_requests_before_the_register_get_the_endpoint_once_it_registers(tmp_path: Path) -> None:
    S, D = ("10.1.0.1", 5683), ("10.1.0.9", 5000)
    c = Conv()
    c.add(0.0, S, D, pb.coap(CON, "0.01", 1, b"r", pb.path("5/0/3")))
    c.add(0.1, D, S, pb.coap(ACK, "2.05", 1, b"r", [pb.cf(0)], b"2"))
    reg = pb.path("rd") + pb.query("ep=late-1")
    c.add(1.0, D, S, pb.coap(CON, "0.02", 2, b"g", reg, b"</5/0>"))
    c.add(1.1, S, D, pb.coap(ACK, "2.01", 2, b"g", pb.location("rd/1")))
    result = import_capture(write(tmp_path, pb.pcap_file(c.frames(), 1)))
    assert {e.device for e in result.events} == {"late-1"}
    assert [e.state for e in of(result.events, "fw_state")] == [2]


def test_unknown_peer_keeps_an_address_placeholder(tmp_path: Path) -> None:
    S, D = ("2001:db8::1", 5683), ("2001:db8::9", 5000)
    c = Conv()
    c.add(0.0, S, D, pb.coap(CON, "0.01", 1, b"r", pb.path("5/0/5")))
    c.add(0.1, D, S, pb.coap(ACK, "2.05", 1, b"r", [], b"8"))  # no Content-Format: text
    result = import_capture(write(tmp_path, pb.pcap_file(c.frames(), 1)))
    assert {e.device for e in result.events} == {"[2001:db8::9]:5000"}
    assert [e.result for e in of(result.events, "fw_result")] == [8]


def test_capture_started_mid_observation(tmp_path: Path) -> None:
    S, D = ("10.1.0.1", 5683), ("10.1.0.9", 5000)
    senml = json.dumps([{"bn": "/5/0/", "n": "3", "v": 1}, {"n": "5", "v": 0}]).encode()
    c = Conv()
    c.add(0.0, D, S, pb.coap(NON, "2.05", 1, b"o", [pb.cf(110), pb.observe(9)], senml))
    c.add(0.1, D, S, pb.coap(NON, "2.05", 2, b"o", [pb.cf(0), pb.observe(10)], b"2"))
    c.add(0.2, D, S, pb.coap(ACK, "2.05", 3, b"q", [pb.cf(0)], b"2"))
    result = import_capture(write(tmp_path, pb.pcap_file(c.frames(), 1)))
    assert [(e.kind, e.state, e.result) for e in result.events] == [
        ("notify", None, None),
        ("fw_state", 1, None),
        ("fw_result", None, 0),
    ]
    assert result.events[0].device == "10.1.0.9:5000"
    assert result.skipped == {"answer without its request in the capture": 2}


@pytest.mark.parametrize(
    ("options", "payload"),
    [
        ([pb.cf(0)], b"coap://[2001:db8::1]:5683/fw/2.0.0.bin"),
        ([], b"coap://[2001:db8::1]:5683/fw/2.0.0.bin"),
        ([pb.cf(11542)], bytes.fromhex("C80126") + b"coap://[2001:db8::1]:5683/fw/2.0.0.bin"),
    ],
    ids=["text", "no-format", "tlv"],
)
def test_write_of_the_package_uri_has_the_uri_as_detail(
    tmp_path: Path, options: list[tuple[int, bytes]], payload: bytes
) -> None:
    S, D = ("10.1.0.1", 5683), ("10.1.0.9", 5000)
    c = Conv()
    c.add(0.0, S, D, pb.coap(CON, "0.03", 1, b"u", pb.path("5/0/1") + options, payload))
    c.add(0.1, D, S, pb.coap(ACK, "2.04", 1, b"u"))
    c.add(0.2, S, D, pb.coap(CON, "0.03", 2, b"v", [*pb.path("5/0/1"), pb.cf(0)]))
    c.add(0.3, D, S, pb.coap(ACK, "2.04", 2, b"v"))
    result = import_capture(write(tmp_path, pb.pcap_file(c.frames(), 1)))
    details = [e.detail for e in of(result.events, "request")]
    assert details == ["coap://[2001:db8::1]:5683/fw/2.0.0.bin", "(empty URI: cancel)"]


def test_bad_payloads_and_values_are_reported_not_fatal(tmp_path: Path) -> None:
    S, D = ("10.1.0.1", 5683), ("10.1.0.9", 5000)
    c = Conv()
    c.add(0.0, S, D, pb.coap(CON, "0.01", 1, b"a", pb.path("5/0")))
    c.add(0.1, D, S, pb.coap(ACK, "2.05", 1, b"a", [pb.cf(11542)], b"\xc8\x03\xff"))  # cut TLV
    c.add(1.0, S, D, pb.coap(CON, "0.01", 2, b"b", pb.path("5/0/3")))
    c.add(1.1, D, S, pb.coap(ACK, "2.05", 2, b"b", [pb.cf(0)], b"7"))  # State 7 does not exist
    c.add(2.0, S, D, pb.coap(CON, "0.01", 3, b"c", pb.path("5/0/3")))
    c.add(2.1, D, S, pb.coap(ACK, "2.05", 3, b"c", [pb.cf(0)], b"1"))
    c.add(3.0, S, D, pb.coap(CON, "0.01", 4, b"d", pb.path("5/0/3")))  # never answered
    c.add(3.5, D, S, pb.coap(RST, "0.00", 4))
    result = import_capture(write(tmp_path, pb.pcap_file(c.frames(), 1)))
    assert result.skipped == {
        "undecodable LwM2M payload": 1,
        "/5/0/3 State value out of range": 1,
    }
    assert [e.state for e in of(result.events, "fw_state")] == [1]
    (err,) = of(result.events, "error")
    assert err.path == "/5/0" and err.code == "2.05" and "DecodeError" in (err.detail or "")
    assert result.unanswered == 1
    validate(result.frame)


def test_register_refused_is_an_error_row(tmp_path: Path) -> None:
    S, D = ("10.1.0.1", 5683), ("10.1.0.9", 5000)
    c = Conv()
    reg = pb.path("rd") + pb.query("ep=x", "lwm2m=9.9")
    c.add(0.0, D, S, pb.coap(CON, "0.02", 1, b"r", reg, b"</5/0>"))
    c.add(0.1, S, D, pb.coap(ACK, "4.12", 1, b"r"))
    result = import_capture(write(tmp_path, pb.pcap_file(c.frames(), 1)))
    (err,) = result.events
    assert (err.kind, err.device, err.code) == ("error", "x", "4.12")
    assert err.detail is not None and err.detail.startswith("Register refused")


def test_pull_download_with_block2_and_a_send(tmp_path: Path) -> None:
    S, D, R = ("10.1.0.1", 5683), ("10.1.0.9", 5000), ("10.1.0.2", 5783)
    c = Conv()
    reg = [*pb.path("rd"), *pb.query("ep=puller", "lwm2m=1.1")]
    c.add(0.0, D, S, pb.coap(CON, "0.02", 1, b"r", reg, b"</5/0>"))
    c.add(0.1, S, D, pb.coap(ACK, "2.01", 1, b"r", pb.location("rd/p")))
    image = bytes(range(256)) * 2 + b"tail"  # 516 bytes in 256-byte blocks
    for num in range(3):
        opts = [*pb.path("fw/pkg.bin"), pb.block(23, num, False, 4)]
        chunk = image[num * 256 : (num + 1) * 256]
        more = (num + 1) * 256 < len(image)
        tok = bytes([0x10 + num])
        c.add(1.0 + num, D, R, pb.coap(CON, "0.01", 10 + num, tok, opts))
        answer = [pb.cf(42), pb.block(23, num, more, 4)]
        c.add(1.1 + num, R, D, pb.coap(ACK, "2.05", 10 + num, tok, answer, chunk))
    senml = json.dumps([{"bn": "/5/0/", "n": "3", "v": 2}, {"n": "5", "v": 0}]).encode()
    c.add(5.0, D, S, pb.coap(CON, "0.02", 2, b"s", [*pb.path("dp"), pb.cf(110)], senml))
    c.add(5.1, S, D, pb.coap(ACK, "2.04", 2, b"s"))
    result = import_capture(write(tmp_path, pb.pcap_file(c.frames(), 1)))
    assert not result.skipped and {e.device for e in result.events} == {"puller"}
    ev = result.events
    assert [(e.path, e.method, e.detail) for e in of(ev, "request")] == [
        ("/fw/pkg.bin", "GET", "get")
    ]
    assert [(e.block, e.bytes) for e in of(ev, "block")] == [(0, 256), (1, 256), (2, 4)]
    (resp,) = of(ev, "response")
    assert (resp.code, resp.bytes, round(resp.rtt_ms or 0)) == ("2.05", 516, 2100)
    (send,) = of(ev, "send")
    assert send.path == "/dp" and send.code == "2.04"
    assert [(e.kind, e.state, e.result) for e in ev if e.kind.startswith("fw_")] == [
        ("fw_state", 2, None),
        ("fw_result", None, 0),
    ]


def test_block1_push_restarted_in_smaller_blocks_after_4_13(tmp_path: Path) -> None:
    S, D = ("10.1.0.1", 5683), ("10.1.0.9", 5000)
    c = Conv()
    put = [*pb.path("5/0/0"), pb.cf(42)]
    first = [*put, pb.block(27, 0, True, 6), (60, pb.uint(1500))]
    c.add(0.0, S, D, pb.coap(CON, "0.03", 1, b"a", first, bytes(1024)))
    c.add(0.1, D, S, pb.coap(ACK, "4.13", 1, b"a", [pb.block(27, 0, True, 5)]))
    for num in range(3):
        more = num < 2
        size = 512 if more else 1500 - 1024
        tok = bytes([num])
        c.add(
            1 + num,
            S,
            D,
            pb.coap(CON, "0.03", 2 + num, tok, [*put, pb.block(27, num, more, 5)], bytes(size)),
        )
        code = "2.31" if more else "2.04"
        c.add(1.1 + num, D, S, pb.coap(ACK, code, 2 + num, tok, [pb.block(27, num, more, 5)]))
    result = import_capture(write(tmp_path, pb.pcap_file(c.frames(), 1)))
    ev = result.events
    assert [(e.bytes, e.detail) for e in of(ev, "request")] == [
        (1500, "write block-wise, 1024 B blocks")
    ]
    assert [(e.block, e.code, e.bytes) for e in of(ev, "block")] == [
        (0, "4.13", 1024),
        (0, "2.31", 512),
        (1, "2.31", 512),
        (2, "2.04", 476),
    ]
    assert [(e.code, e.detail) for e in of(ev, "response")] == [("2.04", "write, 1500/1500 B")]
    assert result.unanswered == 0


def test_alternate_root_path_is_stripped(tmp_path: Path) -> None:
    S, D = ("10.1.0.1", 5683), ("10.1.0.9", 5000)
    c = Conv()
    reg = [*pb.path("rd"), *pb.query("ep=rooted")]
    c.add(0.0, D, S, pb.coap(CON, "0.02", 1, b"r", reg, b'</lwm2m>;rt="oma.lwm2m",</lwm2m/5/0>'))
    c.add(0.1, S, D, pb.coap(ACK, "2.01", 1, b"r", pb.location("rd/q")))
    c.add(1.0, S, D, pb.coap(CON, "0.01", 2, b"g", [*pb.path("lwm2m/5/0/3"), pb.accept(0)]))
    c.add(1.1, D, S, pb.coap(ACK, "2.05", 2, b"g", [pb.cf(0)], b"3"))
    result = import_capture(write(tmp_path, pb.pcap_file(c.frames(), 1)))
    assert [(e.kind, e.path, e.state) for e in result.events][1:] == [
        ("request", "/5/0/3", None),
        ("response", "/5/0/3", None),
        ("fw_state", "/5/0/3", 3),
    ]


def test_not_a_capture_raises(tmp_path: Path) -> None:
    with pytest.raises(CaptureError):
        import_capture(write(tmp_path, b"definitely not a capture", "x.pcap"))


# -- the run directory and the command ----------------------------------------------------


def test_import_pcap_writes_a_run_that_reads_back(tmp_path: Path, clean: Path) -> None:
    out = tmp_path / "runs" / "capture-1"
    result = import_pcap(clean, out)
    run = read_run(out)
    assert run.complete and run.run_id == "capture-1" == result.run_id
    assert run.manifest["params"]["source"] == "import-pcap"
    assert run.manifest["params"]["capture"] == str(clean)
    assert run.manifest["params"]["devices"] == ["dev-1"]
    assert len(run.events) == len(result.events)
    assert list(run.events["kind"].astype(str)) == [e.kind for e in result.events]
    assert list(run.events["state"].dropna().astype(str))[:3] == ["IDLE"] * 3


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="labkit")
    add_import_pcap_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_prints_a_summary_and_exits_0(
    tmp_path: Path, clean: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = parse(["import-pcap", str(clean), "--out", str(out)])
    assert args._run(args) == 0
    text = capsys.readouterr().out
    assert "packets      36" in text and "devices      1: dev-1" in text
    assert "CoAP         36 messages (1 retransmissions)" in text
    assert f"run          {out}" in text
    assert read_run(out).complete


def test_cli_exit_codes(tmp_path: Path, clean: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = write(tmp_path, b"garbage bytes, not pcap", "g.pcap")
    assert run_import_pcap(parse(["import-pcap", str(garbage), "--out", str(tmp_path / "a")])) == 1
    assert "not a pcap or pcapng file" in capsys.readouterr().err
    missing = tmp_path / "missing.pcap"
    assert run_import_pcap(parse(["import-pcap", str(missing), "--out", str(tmp_path / "b")])) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    used = tmp_path / "used"
    assert run_import_pcap(parse(["import-pcap", str(clean), "--out", str(used)])) == 0
    assert run_import_pcap(parse(["import-pcap", str(clean), "--out", str(used)])) == 1
    assert "cannot write the run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        parse(["import-pcap", str(clean)])  # --out is required
    assert info.value.code == 2


# -- a real capture: tcpdump on loopback during a lab PUSH update --------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tcpdump:
    """What tcpdump said on stderr (its closing statistics among it)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def count(self, what: str) -> int | None:
        """The number before ``what`` in tcpdump's statistics ("packets captured", ...)."""
        for line in self.lines:
            if what in line:
                return int(line.split()[0])
        return None


@contextlib.contextmanager
def tcpdump(path: Path, port: int) -> Iterator[Tcpdump]:
    """Capture ``udp port PORT`` on ``lo`` into ``path`` while the block runs.

    Not ``--immediate-mode``: waking tcpdump per packet makes the kernel drop packets under a
    block-wise push on a busy machine. Packets then reach tcpdump when a ring block fills or
    its timeout (libpcap's 1000 ms) expires, so the block waits past that before stopping it.
    """
    exe = shutil.which("tcpdump")
    if exe is None:
        pytest.skip("tcpdump is not installed (.ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("capturing on lo needs root")
    argv = [exe, "-i", "lo", "-n", "-U", "-B", "8192", "-Z", "root", "-w", str(path)]
    proc = subprocess.Popen(
        [*argv, f"udp port {port}"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    said = Tcpdump()
    lines = said.lines
    ready = threading.Event()

    def follow() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        if not ready.wait(10) or proc.poll() is not None:
            pytest.skip(f"tcpdump did not start: {''.join(lines).strip()}")
        yield said
        time.sleep(1.5)  # past the ring block timeout: the last packets reach the file
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        reader.join(5)
        proc.stderr.close()


def dedupe(values: list[int]) -> list[int]:
    """Drop consecutive repeats: a Read that confirms the last notified value adds nothing."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def per_device(events: list[Event], kind: str, column: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for e in events:
        if e.kind == kind and e.device is not None:
            out.setdefault(e.device, []).append(getattr(e, column))
    return {device: dedupe(values) for device, values in out.items()}


def test_tcpdump_capture_of_a_lab_push_update_gives_the_labs_own_sequence(
    tmp_path: Path,
) -> None:
    """A lab PUSH update captured by tcpdump imports to the server's /5 story, per device.

    Both sides are compared after dropping consecutive repeats (the server and the capture see
    the same answers, but a Read that returns the value last notified repeats it).
    """
    client = pytest.importorskip("labkit.client")
    from labkit.server import LwM2MServer
    from tests.server.labhelpers import eventually, run

    port = _free_udp_port()
    cap = tmp_path / "lab.pcap"
    lab: list[Event] = []
    package = b"LABKIT-FW 2.0.0\n" + random.Random(5).randbytes(24 * 1024)

    async def update(server: LwM2MServer, endpoint: str) -> None:
        reg = await server.wait_for_registration(endpoint, timeout=10)
        d = server.device(endpoint)
        (await d.read("/3/0/3")).raise_for_status()
        obs = await d.observe("/5/0/3", timeout=10)
        (await d.write("/5/0/0", package, block_size=512)).raise_for_status()
        await eventually(lambda: obs.latest.value == 2, timeout=10)
        (await d.execute("/5/0/2")).raise_for_status()
        await server.wait_for_registration(endpoint, timeout=15, after=reg.registered_at)
        (await d.read("/5/0/5")).raise_for_status()
        (await d.read("/5/0")).raise_for_status()

    async def scenario() -> None:
        server = LwM2MServer(port=port, on_event=lab.append)
        await server.start()
        devices = [
            client.SimulatedDevice(f"cap-{i}", server.uri, lifetime=60, seed=i) for i in range(2)
        ]
        try:
            for dev in devices:
                await dev.start(timeout=10)
            import asyncio

            await asyncio.gather(*(update(server, dev.endpoint) for dev in devices))
        finally:
            for dev in devices:
                await dev.stop(timeout=5)
            await server.stop()

    with tcpdump(cap, port) as said:
        run(scenario, timeout=90)

    assert said.count("dropped by kernel") == 0, "".join(said.lines)
    result = import_capture(cap)
    assert result.read_stats.format == "pcap"
    assert result.packets == said.count("packets captured") > 0
    assert not result.skipped, result.summary()
    assert sorted(result.devices) == ["cap-0", "cap-1"]
    assert all(len(addrs) == 2 for addrs in result.devices.values())  # a new port after reboot
    server_rows = [e for e in lab if e.source == "server"]
    for kind, column in (("fw_state", "state"), ("fw_result", "result")):
        imported = per_device(result.events, kind, column)
        assert imported == per_device(server_rows, kind, column), kind
    states = per_device(result.events, "fw_state", "state")
    assert states == {"cap-0": [0, 1, 2, 3, 0], "cap-1": [0, 1, 2, 3, 0]}
    assert per_device(result.events, "fw_result", "result") == {"cap-0": [1], "cap-1": [1]}
    blocks = [e for e in result.events if e.kind == "block"]
    lab_blocks = [e for e in server_rows if e.kind == "block"]
    assert sorted((e.device, e.block) for e in blocks) == sorted(
        (e.device, e.block) for e in lab_blocks
    )
    validate(result.frame)
