"""TLV (11542) against the worked byte examples A-J of the digest (section 6.3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labkit.lwm2m.errors import DecodeError, EncodeError
from labkit.lwm2m.formats import ContentFormat, decode, encode
from labkit.lwm2m.objects import ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, Value

TLV = ContentFormat.TLV
P = Path.of


def typed(rtype: ResourceType | None) -> Callable[[Path], ResourceType | None]:
    """A resolver that gives every path the same type."""
    return lambda path: rtype


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# (name, base, values, resolver or None for the default, exact bytes) -- digest 6.3
EXAMPLES: list[tuple[str, Path, dict[Path, Value], object, bytes]] = [
    ("A", P(5, 0, 3), {P(5, 0, 3): 2}, None, h("C1 03 02")),
    (
        "B",
        P(5, 0),
        {P(5, 0, 3): 1, P(5, 0, 5): 0, P(5, 0, 6): "fw", P(5, 0, 9): 2},
        None,
        h("C1 03 01  C1 05 00  C2 06 66 77  C1 09 02"),
    ),
    (
        "B-object",
        P(5),
        {P(5, 0, 3): 1, P(5, 0, 5): 0, P(5, 0, 6): "fw", P(5, 0, 9): 2},
        None,
        h("08 00 0D  C1 03 01 C1 05 00 C2 06 66 77 C1 09 02"),
    ),
    ("C", P(5, 0, 8), {P(5, 0, 8, 0): 0, P(5, 0, 8, 1): 1}, None, h("86 08 41 00 00 41 01 01")),
    ("D", P(3, 0, 10), {P(3, 0, 10): 3000}, None, h("C2 0A 0B B8")),
    (
        "E",
        P(3303, 0, 5700),
        {P(3303, 0, 5700): 22.5},
        typed(ResourceType.FLOAT),
        h("E4 16 44 41 B4 00 00"),
    ),
    ("F", P(5, 0, 1), {P(5, 0, 1): "u" * 36}, None, h("C8 01 24") + b"u" * 36),
    ("G", P(5, 0, 0), {P(5, 0, 0): b"\xab" * 300}, None, h("D0 00 01 2C") + b"\xab" * 300),
    ("H", P(5, 0, 0), {P(5, 0, 0): b"\x5a" * 70000}, None, h("D8 00 01 11 70") + b"\x5a" * 70000),
    (
        "I",
        P(1, 0, 10),
        {P(1, 0, 10): ObjLink(3, 0)},
        typed(ResourceType.OBJLNK),
        h("C4 0A 00 03 00 00"),
    ),
    ("J", P(1, 0, 6), {P(1, 0, 6): True}, typed(ResourceType.BOOLEAN), h("C1 06 01")),
]


def _kw(types: object) -> dict[str, object]:
    return {} if types is None else {"types": types}


@pytest.mark.parametrize(("name", "base", "values", "types", "wire"), EXAMPLES)
def test_tlv_digest_examples_encode(
    name: str, base: Path, values: dict[Path, Value], types: object, wire: bytes
) -> None:
    assert encode(TLV, base, values, **_kw(types)) == wire


@pytest.mark.parametrize(("name", "base", "values", "types", "wire"), EXAMPLES)
def test_tlv_digest_examples_decode(
    name: str, base: Path, values: dict[Path, Value], types: object, wire: bytes
) -> None:
    assert decode(TLV, wire, base, **_kw(types)) == values


def test_tlv_legacy_number_1542_is_tlv() -> None:
    assert decode(1542, h("C1 03 02"), P(5, 0, 3)) == {P(5, 0, 3): 2}


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, "C1 03 00"),
        (127, "C1 03 7F"),
        (-128, "C1 03 80"),
        (128, "C2 03 00 80"),
        (-129, "C2 03 FF 7F"),
        (32767, "C2 03 7F FF"),
        (32768, "C4 03 00 00 80 00"),
        (2**31 - 1, "C4 03 7F FF FF FF"),
        (2**31, "C8 03 08 00 00 00 00 80 00 00 00"),
        (-(2**63), "C8 03 08 80 00 00 00 00 00 00 00"),
    ],
)
def test_tlv_integers_use_the_shortest_width(value: int, wire: str) -> None:
    assert encode(TLV, P(5, 0, 3), {P(5, 0, 3): value}) == h(wire)
    assert decode(TLV, h(wire), P(5, 0, 3)) == {P(5, 0, 3): value}


def test_tlv_unsigned_integers_are_unsigned() -> None:
    uint = typed(ResourceType.UNSIGNED_INTEGER)
    assert encode(TLV, P(5, 0, 13), {P(5, 0, 13): 200}, uint) == h("C1 0D C8")
    assert decode(TLV, h("C1 0D C8"), P(5, 0, 13), uint) == {P(5, 0, 13): 200}
    big = 2**64 - 1
    wire = encode(TLV, P(5, 0, 13), {P(5, 0, 13): big}, uint)
    assert wire == h("C8 0D 08") + b"\xff" * 8
    assert decode(TLV, wire, P(5, 0, 13), uint) == {P(5, 0, 13): big}


def test_tlv_decoder_tolerances() -> None:
    # 16-bit identifier below 256, 2/4/8-byte integers sign-extended, 8-byte float.
    assert decode(TLV, h("E1 00 03 02"), P(5, 0, 3)) == {P(5, 0, 3): 2}
    assert decode(TLV, h("C2 03 FF FE"), P(5, 0, 3)) == {P(5, 0, 3): -2}
    assert decode(TLV, h("C8 03 08 FF FF FF FF FF FF FF FF"), P(5, 0, 3)) == {P(5, 0, 3): -1}
    fl = typed(ResourceType.FLOAT)
    assert decode(TLV, h("C8 00 08 40 36 80 00 00 00 00 00"), P(9, 0, 0), fl) == {P(9, 0, 0): 22.5}
    # an Object-Instance wrapper around a /O/I answer, bare resource instances for /O/I/R
    assert decode(TLV, h("08 00 03 C1 03 01"), P(5, 0)) == {P(5, 0, 3): 1}
    assert decode(TLV, h("41 00 00 41 01 01"), P(5, 0, 8)) == {P(5, 0, 8, 0): 0, P(5, 0, 8, 1): 1}
    # a length-field TLV whose bits 2-0 are not zero still reads its length field
    assert decode(TLV, h("C9 03 01 05"), P(5, 0, 3)) == {P(5, 0, 3): 5}


def test_tlv_unknown_types_stay_bytes() -> None:
    assert decode(TLV, h("C2 07 66 77"), P(9999, 0)) == {P(9999, 0, 7): b"fw"}


def test_tlv_resource_instance_and_object_levels() -> None:
    assert encode(TLV, P(5, 0, 8, 1), {P(5, 0, 8, 1): 1}) == h("41 01 01")
    assert decode(TLV, h("41 01 01"), P(5, 0, 8, 1)) == {P(5, 0, 8, 1): 1}
    values = {P(5, 0, 3): 1, P(5, 0, 8, 0): 0, P(5, 1, 3): 2}
    wire = encode(TLV, P(5), values)
    assert wire == h("08 00 08 C1 03 01 83 08 41 00 00  03 01 C1 03 02")
    assert decode(TLV, wire, P(5)) == values
    # an empty multiple resource
    assert encode(TLV, P(5, 0, 8), {}) == h("80 08")
    assert decode(TLV, h("80 08"), P(5, 0, 8)) == {}
    assert decode(TLV, b"", P(5, 0)) == {}


def test_tlv_ids_above_255_use_16_bits() -> None:
    values = {P(3303, 300, 5700): 1}
    wire = encode(TLV, P(3303), values)
    assert wire == h("24 01 2C E1 16 44 01")
    assert decode(TLV, wire, P(3303), typed(ResourceType.INTEGER)) == values


@pytest.mark.parametrize(
    ("wire", "base"),
    [
        ("C1", P(5, 0, 3)),  # truncated header
        ("C1 03", P(5, 0, 3)),  # value missing
        ("C8 03 05 01", P(5, 0, 3)),  # declared length beyond the end
        ("D8 03 FF FF FF", P(5, 0, 3)),  # 16 MB declared, nothing there
        ("E1 03", P(5, 0, 3)),  # 16-bit id truncated
        ("C3 03 01 02 03", P(5, 0, 3)),  # integer of 3 bytes
        ("C1 04 02", P(5, 0, 3)),  # id does not match the requested resource
        ("C1 03 01 C1 05 00", P(5, 0, 3)),  # two resources for one
        ("C1 03 01", P(5)),  # resource where an object instance belongs
        ("08 00 03 41 00 00", P(5)),  # resource instance directly in an instance
        ("86 08 C1 00 00 41 01 01", P(5, 0, 8)),  # a resource inside a multiple resource
        ("C1 03 01 C1 03 01", P(5, 0)),  # the same resource twice
        ("42 00 00", P(5, 0, 8, 0)),  # wrong resource instance id
        ("C1 00 00", P(5, 0, 8, 0)),  # a resource where a resource instance belongs
        ("C1 06 02", P(1, 0, 6)),  # boolean 2
        ("C2 00 FF FE", P(3, 0, 0)),  # string that is not UTF-8
        ("C3 0A 00 03 00", P(1, 0, 10)),  # objlnk of 3 bytes
        ("C2 01 00 00", P(9, 0, 1)),  # (unknown type: fine) -> see below
        ("E1 FF FF 01", P(5, 0)),  # id 65535 is not a valid id
        ("C1 03 01", P()),  # the root
    ],
)
def test_tlv_malformed_payloads_raise_decode_error(wire: str, base: Path) -> None:
    if wire == "C2 01 00 00":
        assert decode(TLV, h(wire), base) == {P(9, 0, 1): b"\x00\x00"}
        return
    with pytest.raises(DecodeError):
        decode(TLV, h(wire), base)


def test_tlv_float_type_needs_4_or_8_bytes() -> None:
    with pytest.raises(DecodeError):
        decode(TLV, h("C2 00 41 B4"), P(9, 0, 0), typed(ResourceType.FLOAT))


@pytest.mark.parametrize(
    ("base", "values"),
    [
        (P(5, 0), {P(4, 0, 3): 1}),  # not below base
        (P(5, 0), {P(5, 0): 1}),  # not a resource path
        (P(), {P(5, 0, 3): 1}),  # root
        (P(5, 0, 3), {P(5, 0, 3): "two"}),  # wrong type
        (P(5, 0, 3), {P(5, 0, 3): True}),  # a bool is not an Integer
        (P(5, 0, 3), {P(5, 0, 3): 2**63}),  # out of int64
        (P(5, 0, 2), {P(5, 0, 2): b""}),  # executable
        (P(5, 0, 8), {P(5, 0, 8): 1, P(5, 0, 8, 0): 1}),  # both value and instances
        (P(5, 0), {P(5, 0, 8): 1, P(5, 0, 8, 0): 1}),
        (P(5, 0, 8, 1), {P(5, 0, 8, 0): 1}),  # not the requested instance
        (P(5, 0, 1), {P(5, 0, 1): "\ud800"}),  # not encodable as UTF-8
    ],
)
def test_tlv_encode_errors(base: Path, values: dict[Path, Value]) -> None:
    with pytest.raises(EncodeError):
        encode(TLV, base, values)


def test_tlv_refuses_values_beyond_24_bit_lengths() -> None:
    with pytest.raises(EncodeError):
        encode(TLV, P(5, 0, 0), {P(5, 0, 0): bytes(2**24)})


def test_tlv_float_width() -> None:
    fl = typed(ResourceType.FLOAT)
    assert encode(TLV, P(9, 0, 1), {P(9, 0, 1): 0.1}, fl) == h("C8 01 08 3F B9 99 99 99 99 99 9A")
    assert encode(TLV, P(9, 0, 1), {P(9, 0, 1): 1}, fl) == h("C4 01 3F 80 00 00")
    assert decode(TLV, h("C4 01 3F 80 00 00"), P(9, 0, 1), fl) == {P(9, 0, 1): 1.0}
