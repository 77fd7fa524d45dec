"""text/plain (0), opaque (42), and the package API (numbers, legacy numbers, dispatch)."""

from __future__ import annotations

import pytest

from labkit.lwm2m.errors import DecodeError, EncodeError, UnsupportedContentFormat
from labkit.lwm2m.formats import (
    DECODABLE_FORMATS,
    ENCODABLE_FORMATS,
    LEGACY_FORMATS,
    ContentFormat,
    decode,
    encode,
    normalize_format,
)
from labkit.lwm2m.objects import ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, Value

TEXT, OPAQUE = ContentFormat.TEXT, ContentFormat.OPAQUE
P = Path.of
RT = ResourceType


@pytest.mark.parametrize(
    ("rtype", "value", "text"),
    [
        (RT.INTEGER, -42, "-42"),
        (RT.INTEGER, 0, "0"),
        (RT.TIME, 1700000000, "1700000000"),
        (RT.UNSIGNED_INTEGER, 2**64 - 1, "18446744073709551615"),
        (RT.FLOAT, 22.5, "22.5"),
        (RT.FLOAT, -0.1, "-0.1"),
        (RT.FLOAT, 1e100, "1e+100"),
        (RT.BOOLEAN, True, "1"),
        (RT.BOOLEAN, False, "0"),
        (RT.OBJLNK, ObjLink(3, 0), "3:0"),
        (RT.OBJLNK, ObjLink(65535, 65535), "65535:65535"),
        (RT.STRING, "Open Mobile Alliance", "Open Mobile Alliance"),
        (RT.STRING, "", ""),
        (RT.STRING, "héllo ✓", "héllo ✓"),
        (RT.CORELNK, "</3/0>", "</3/0>"),
        (RT.OPAQUE, b"\x01\x02", "AQI="),  # LwM2M 1.0 only
        (None, "anything", "anything"),
    ],
)
def test_text_both_directions(rtype: ResourceType | None, value: Value, text: str) -> None:
    path = P(9, 0, 1)
    assert encode(TEXT, path, {path: value}, lambda p: rtype) == text.encode()
    assert decode(TEXT, text.encode(), path, lambda p: rtype) == {path: value}
    assert decode(1541, text.encode(), path, lambda p: rtype) == {path: value}


def test_text_with_the_default_resolver() -> None:
    assert decode(TEXT, b"0", P(5, 0, 3)) == {P(5, 0, 3): 0}
    assert decode(TEXT, b"vectors", P(3, 0, 0)) == {P(3, 0, 0): "vectors"}
    assert decode(TEXT, b" 3\r\n", P(5, 0, 8, 1)) == {P(5, 0, 8, 1): 3}
    assert decode(TEXT, b"+7", P(5, 0, 3)) == {P(5, 0, 3): 7}
    assert decode(TEXT, b"1", P(9999, 0, 0)) == {P(9999, 0, 0): "1"}


@pytest.mark.parametrize(
    ("rtype", "text"),
    [
        (RT.INTEGER, "abc"),
        (RT.INTEGER, ""),
        (RT.INTEGER, "1.5"),
        (RT.INTEGER, "1_000"),
        (RT.INTEGER, "٣"),  # a non-ASCII digit
        (RT.INTEGER, "9223372036854775808"),
        (RT.INTEGER, "1" * 5000),
        (RT.UNSIGNED_INTEGER, "-1"),
        (RT.UNSIGNED_INTEGER, "18446744073709551616"),
        (RT.FLOAT, "nan"),
        (RT.FLOAT, "inf"),
        (RT.FLOAT, "1,5"),
        (RT.FLOAT, ""),
        (RT.BOOLEAN, "2"),
        (RT.BOOLEAN, "true"),
        (RT.OBJLNK, "3"),
        (RT.OBJLNK, "3:0:1"),
        (RT.OBJLNK, "65536:0"),
        (RT.OBJLNK, "²:0"),
        (RT.OPAQUE, "!!"),
    ],
)
def test_text_rejects(rtype: ResourceType, text: str) -> None:
    with pytest.raises(DecodeError):
        decode(TEXT, text.encode(), P(9, 0, 1), lambda p: rtype)


def test_text_rejects_bad_utf8_and_non_resource_paths() -> None:
    with pytest.raises(DecodeError):
        decode(TEXT, b"\xff", P(3, 0, 0))
    with pytest.raises(DecodeError):
        decode(TEXT, b"1", P(5, 0))


@pytest.mark.parametrize(
    ("base", "values", "types"),
    [
        (P(5, 0), {P(5, 0, 3): 1}, None),  # not a resource path
        (P(5, 0, 3), {P(5, 0, 3): 1, P(5, 0, 5): 1}, None),  # two values
        (P(5, 0, 3), {}, None),  # no value
        (P(5, 0, 3), {P(5, 0, 5): 1}, None),  # another path
        (P(5, 0, 3), {P(5, 0, 3): "1"}, None),  # wrong type
        (P(5, 0, 3), {P(5, 0, 3): 1.0}, None),
        (P(5, 0, 2), {P(5, 0, 2): ""}, None),  # executable
        (P(9, 0, 1), {P(9, 0, 1): float("inf")}, RT.FLOAT),
        (P(9, 0, 1), {P(9, 0, 1): ObjLink(70000, 0)}, RT.OBJLNK),
        (P(9, 0, 1), {P(9, 0, 1): "\ud800"}, RT.STRING),
    ],
)
def test_text_encode_errors(
    base: Path, values: dict[Path, Value], types: ResourceType | None
) -> None:
    kw = {} if types is None else {"types": lambda p: types}
    with pytest.raises(EncodeError):
        encode(TEXT, base, values, **kw)


def test_opaque() -> None:
    payload = bytes(range(256)) * 4
    assert decode(OPAQUE, payload, P(5, 0, 0)) == {P(5, 0, 0): payload}
    assert decode(1544, b"", P(5, 0, 0)) == {P(5, 0, 0): b""}
    assert encode(OPAQUE, P(5, 0, 0), {P(5, 0, 0): payload}) == payload
    with pytest.raises(DecodeError):
        decode(OPAQUE, b"x", P(5, 0))
    with pytest.raises(EncodeError):
        encode(OPAQUE, P(5, 0, 0), {P(5, 0, 0): "text"})
    with pytest.raises(EncodeError):
        encode(OPAQUE, P(5, 0), {P(5, 0, 0): b""})


def test_content_format_numbers_and_media_types() -> None:
    assert ContentFormat.TLV == 11542
    assert ContentFormat.SENML_CBOR.media_type == "application/senml+cbor"
    assert ContentFormat.TEXT.media_type == "text/plain;charset=utf-8"
    assert all(cf.media_type for cf in ContentFormat)
    assert normalize_format(110) is ContentFormat.SENML_JSON
    assert normalize_format(ContentFormat.TLV) is ContentFormat.TLV
    assert {n: normalize_format(n) for n in LEGACY_FORMATS} == {
        1541: ContentFormat.TEXT,
        1542: ContentFormat.TLV,
        1543: ContentFormat.LWM2M_JSON,
        1544: ContentFormat.OPAQUE,
    }
    for n in (1, 41, 50, 11545, -1):
        with pytest.raises(UnsupportedContentFormat):
            normalize_format(n)


def test_format_sets_and_unsupported_dispatch() -> None:
    assert ContentFormat.LINK_FORMAT not in DECODABLE_FORMATS
    assert ContentFormat.LWM2M_JSON in DECODABLE_FORMATS
    assert ContentFormat.LWM2M_JSON not in ENCODABLE_FORMATS
    assert ENCODABLE_FORMATS < DECODABLE_FORMATS
    with pytest.raises(UnsupportedContentFormat) as info:
        decode(40, b"</5/0>", P(5, 0))
    assert info.value.coap_code == "4.15"
    with pytest.raises(UnsupportedContentFormat) as info:
        encode(ContentFormat.LWM2M_JSON, P(5, 0, 3), {P(5, 0, 3): 1})
    assert info.value.coap_code == "4.06"
    with pytest.raises(UnsupportedContentFormat) as info:
        encode(9999, P(5, 0, 3), {P(5, 0, 3): 1})
    assert info.value.coap_code == "4.06"
    # legacy numbers are accepted on input and mapped on output
    assert encode(1542, P(5, 0, 3), {P(5, 0, 3): 2}) == bytes.fromhex("C10302")


def test_decode_errors_are_remote_protocol_errors_with_4_00() -> None:
    with pytest.raises(DecodeError) as info:
        decode(ContentFormat.TLV, b"\xc1", P(5, 0, 3))
    assert info.value.coap_code == "4.00"
    assert isinstance(info.value, ValueError)
