"""may_read_object: which datagrams can read an object (hand-built and aiocoap bytes)."""

from __future__ import annotations

import itertools
import random

import aiocoap
import pytest
from aiocoap import Code
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

from labkit.lwm2m.peek import may_read_object

CONNECTIVITY = 4


def encoded(
    code: Code,
    path: tuple[str, ...] = (),
    *,
    mtype: Type = Type.CON,
    token: bytes = b"\x5a\x01\x02\x03",
    payload: bytes = b"",
    observe: int | None = None,
    block1: tuple[int, bool, int] | None = None,
    uri_host: str | None = None,
    etag: bytes | None = None,
) -> bytes:
    """The bytes aiocoap puts on the wire for such a message."""
    msg = aiocoap.Message(code=code, uri_path=path, payload=payload)
    msg.mtype = mtype
    msg.mid = 0x1234
    msg.token = token
    if observe is not None:
        msg.opt.observe = observe
    if block1 is not None:
        msg.opt.block1 = BlockOption.BlockwiseTuple(*block1)
    if uri_host is not None:
        msg.opt.uri_host = uri_host
    if etag is not None:
        msg.opt.etag = etag
    return bytes(msg.encode())


# -- aiocoap-encoded datagrams ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        encoded(Code.GET, ("4", "0")),
        encoded(Code.GET, ("4", "0", "2"), observe=0),  # Observe (6) comes before Uri-Path
        encoded(Code.GET, ("4",), uri_host="device.example"),  # Uri-Host (3) first
        encoded(Code.GET, ("4", "0"), etag=b"\x01\x02"),
        encoded(Code.GET, ()),  # the root (Discover on /)
        encoded(Code.FETCH, (), payload=b"\x81\x63/4/"),  # Read-Composite
        encoded(Code.FETCH, ("5",)),  # any FETCH: unsure
        encoded(Code.iPATCH, ()),  # Write-Composite
        encoded(Code.PUT, ("4", "0", "2"), payload=b"-99"),
        encoded(Code.GET, ("04", "0")),  # the device's path parser reads 4
        encoded(Code.GET, ("", "4")),  # not a plain number: unsure
        encoded(Code.GET, ("4/0",)),  # one segment holding a slash: unsure
        encoded(Code.POST, ("bs",)),  # a name: unsure
        encoded(Code.GET, ("4", "0"), mtype=Type.NON),
        encoded(Code.GET, ("0" * 39 + "4",), token=b""),  # no token, an extended length
    ],
)
def test_requests_that_can_read_4_say_so(data: bytes) -> None:
    assert may_read_object(data, CONNECTIVITY) is True


@pytest.mark.parametrize(
    "data",
    [
        encoded(Code.PUT, ("5", "0", "0"), block1=(0, True, 6), payload=b"\x00" * 1024),
        encoded(Code.PUT, ("5", "0", "0"), block1=(63, False, 6), payload=b"\xff" * 200),
        encoded(Code.PUT, ("5", "0", "1"), payload=b"coap://127.0.0.1:5683/fw"),
        encoded(Code.POST, ("5", "0", "2")),  # Execute Update
        encoded(Code.GET, ("5", "0", "3"), observe=0),
        encoded(Code.GET, ("3", "0")),
        encoded(Code.GET, ("1", "0", "1")),
        encoded(Code.GET, ("40",)),
        encoded(Code.GET, ("4" * 40,), token=b""),  # 4444...: another object
        encoded(Code.GET, ("14", "0")),
        encoded(Code.DELETE, ("5", "0")),
        encoded(Code.EMPTY, mtype=Type.ACK, token=b""),  # empty ACK
        encoded(Code.EMPTY, mtype=Type.RST, token=b""),  # RST
        encoded(Code.EMPTY, mtype=Type.CON, token=b""),  # CoAP ping
        encoded(Code.CHANGED, mtype=Type.ACK),  # a piggy-backed 2.04
        encoded(Code.CONTENT, mtype=Type.CON, payload=b"hello"),  # a separate 2.05
        encoded(Code.CONTINUE, mtype=Type.ACK),  # 2.31 to a Block1
        encoded(Code.NOT_FOUND, mtype=Type.ACK),
        encoded(Code.INTERNAL_SERVER_ERROR, mtype=Type.NON),
    ],
)
def test_datagrams_that_cannot_read_4_say_so(data: bytes) -> None:
    assert may_read_object(data, CONNECTIVITY) is False


def test_aiocoap_decodes_every_encoded_message_the_same_way() -> None:
    """The peek agrees with aiocoap's own decoding on the messages the lab exchanges."""
    cases = [
        (Code.GET, ("4", "0")), (Code.GET, ("5", "0", "3")), (Code.PUT, ("5", "0", "0")),
        (Code.POST, ("1", "0", "8")), (Code.GET, ()), (Code.GET, ("3",)),
    ]
    for code, path in cases:
        data = encoded(code, path, observe=0)
        decoded = aiocoap.Message.decode(data)
        first = decoded.opt.uri_path[0] if decoded.opt.uri_path else None
        assert may_read_object(data, CONNECTIVITY) is (first in (None, "4"))


# -- hand-built bytes -------------------------------------------------------------------------


def header(code: int, *, tkl: int = 0, mtype: int = 0) -> bytes:
    return bytes([0x40 | mtype << 4 | tkl, code, 0xBE, 0xEF]) + b"\x07" * tkl


def test_hand_built_options_with_extended_deltas_and_lengths() -> None:
    get = header(0x01, tkl=2)
    # Uri-Path "5" as delta 11 length 1
    assert may_read_object(get + b"\xb1" + b"5", 4) is False
    assert may_read_object(get + b"\xb1" + b"4", 4) is True
    # If-Match (1), then Uri-Path by delta 10
    assert may_read_object(get + b"\x10" + b"\xa1" + b"3", 4) is False
    # Uri-Path reached by a 13-extended delta from 0: nibble 13, byte 11 - 13 < 0 is not
    # possible, so: Uri-Host (3) with a 13-extended length (20 bytes), then delta 8
    host = b"\x3d" + bytes([20 - 13]) + b"h" * 20
    assert may_read_object(get + host + b"\x81" + b"5", 4) is False
    assert may_read_object(get + host + b"\x81" + b"4", 4) is True
    # A Uri-Path with a 14-extended length (300 digits of "5"): a number, not 4
    long = b"\xbe" + (300 - 269).to_bytes(2, "big") + b"5" * 300
    assert may_read_object(get + long, 4) is False
    # ... and 300 digits "000...04" is 4 as the device reads it
    four = b"\xbe" + (300 - 269).to_bytes(2, "big") + b"0" * 299 + b"4"
    assert may_read_object(get + four, 4) is True
    # Accept (17) by a 13-extended delta: past Uri-Path, so no path -> the root
    assert may_read_object(get + b"\xd1" + bytes([17 - 13]) + b"\x00", 4) is True
    # Options 12 and 14 by a 14-extended delta (no Uri-Path): the root
    assert may_read_object(get + b"\xe0\x00\x00", 4) is True
    # Payload marker right after the token: the root
    assert may_read_object(get + b"\xff" + b"payload", 4) is True
    # No options at all: the root
    assert may_read_object(get, 4) is True
    # Other objects
    assert may_read_object(get + b"\xb1" + b"4", 5) is False
    assert may_read_object(get + b"\xb1" + b"5", 5) is True


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x40",
        b"\x40\x01\x12",  # a header cut short
        b"\x00\x01\x12\x34\xb1\x35",  # version 0
        b"\xc0\x01\x12\x34\xb1\x35",  # version 3
        b"\x49\x01\x12\x34" + b"\x00" * 9 + b"\xb1\x35",  # token length 9 (reserved)
        header(0x01) + b"\xd1",  # 13-extended delta with its byte missing
        header(0x01) + b"\xe1\x00",  # 14-extended delta with one byte missing
        header(0x01) + b"\x1d",  # 13-extended length with its byte missing
        header(0x01) + b"\x1e\x00",  # 14-extended length with one byte missing
        header(0x01) + b"\xf1\x35",  # reserved delta nibble 15
        header(0x01) + b"\x1f\x35",  # reserved length nibble 15
        header(0x01) + b"\xb5\x35",  # Uri-Path running past the end
        header(0x01, tkl=8)[:-3],  # token running past the end
        header(0x20) + b"\xb1\x35",  # reserved class 1
        header(0xE0) + b"\xb1\x35",  # reserved class 7
    ],
)
def test_malformed_or_truncated_bytes_refresh_and_never_raise(data: bytes) -> None:
    assert may_read_object(data, CONNECTIVITY) is True


def test_never_raises_on_random_bytes_and_prefixes() -> None:
    rng = random.Random(12)
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(3000)]
    samples += [encoded(Code.PUT, ("5", "0", "0"), block1=(1, True, 6), payload=b"z" * 64)[:n]
                for n in range(80)]
    for data in samples:
        assert may_read_object(data, CONNECTIVITY) in (True, False)
    # a prefix of a /5 request cut before its first Uri-Path value is complete is unsure
    put = encoded(Code.PUT, ("5", "0", "0"), token=b"\x01")
    first_segment_end = 4 + 1 + 2  # header, token, option byte + "5"
    for n in range(len(put) + 1):
        assert may_read_object(put[:n], CONNECTIVITY) is (n < first_segment_end)


def test_every_request_code_with_path_5_is_no_except_fetch_and_ipatch() -> None:
    for code in range(1, 32):
        data = header(code, tkl=1) + b"\xb1" + b"5"
        assert may_read_object(data, CONNECTIVITY) is (code in (5, 7))
    for klass, detail in itertools.product((2, 4, 5), range(32)):
        data = header(klass << 5 | detail, tkl=1) + b"\xb1" + b"4"
        assert may_read_object(data, CONNECTIVITY) is False
