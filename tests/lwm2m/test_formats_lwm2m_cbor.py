"""LwM2M CBOR (11544, digest 6.5) and plain CBOR (60)."""

from __future__ import annotations

import pytest

from labkit.lwm2m.errors import DecodeError, EncodeError
from labkit.lwm2m.formats import ContentFormat, decode, encode
from labkit.lwm2m.objects import ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, Value

LC, C60 = ContentFormat.LWM2M_CBOR, ContentFormat.CBOR
P = Path.of


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_digest_example_both_directions() -> None:
    wire = h("A1 05 A1 00 A2 03 01 05 00")
    values = {P(5, 0, 3): 1, P(5, 0, 5): 0}
    assert decode(LC, wire, P(5)) == values
    assert decode(LC, wire, P(5, 0)) == values
    assert encode(LC, P(5), values) == wire


def test_base_path_is_packed_as_an_array_key() -> None:
    values = {P(5, 0, 3): 1, P(5, 0, 5): 0}
    assert encode(LC, P(5, 0), values) == h("A1 82 05 00 A2 03 01 05 00")
    assert encode(LC, P(5, 0, 3), {P(5, 0, 3): 0}) == h("A1 83 05 00 03 00")
    assert encode(LC, P(5, 0, 8), {P(5, 0, 8, 0): 0, P(5, 0, 8, 1): 1}) == h(
        "A1 83 05 00 08 A2 00 00 01 01"
    )
    assert encode(LC, P(), values) == h("A1 05 A1 00 A2 03 01 05 00")
    assert encode(LC, P(5, 0), {}) == h("A1 82 05 00 A0")
    assert decode(LC, h("A1 82 05 00 A0"), P(5, 0)) == {}


def test_anjay_indefinite_maps_and_packed_keys() -> None:
    # Anjay 3.14 answers /5/0/3 and /5/0 like this (vectors/anjay-3.14-lwm2m-1.2.json)
    assert decode(LC, h("bf8305000300ff"), P(5, 0, 3)) == {P(5, 0, 3): 0}
    wire = h("bf820500bf01600300050008bf000001010202030304040505ff0902ffff")
    assert decode(LC, wire, P(5, 0)) == {
        P(5, 0, 1): "",
        P(5, 0, 3): 0,
        P(5, 0, 5): 0,
        **{P(5, 0, 8, i): i for i in range(6)},
        P(5, 0, 9): 2,
    }
    # packed keys at inner levels too
    assert decode(LC, h("A1 05 A1 82 00 03 01"), P()) == {P(5, 0, 3): 1}


def test_all_value_types() -> None:
    values: dict[Path, Value] = {
        P(1, 0, 6): True,
        P(1, 0, 10): ObjLink(3, 0),
        P(3, 0, 0): "x",
        P(3, 0, 13): -5,
        P(5, 0, 0): b"\x01",
    }
    wire = encode(LC, P(), values)
    assert decode(LC, wire, P()) == values


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "01",  # not a map
        "A1 05 01",  # value at an object path
        "A1 20 01",  # negative key
        "A1 61 35 01",  # text key
        "A1 80 01",  # empty array key
        "A1 82 05 61 30 01",  # text inside an array key
        "A1 85 01 02 03 04 05 01",  # five segments
        "A1 83 05 00 03 F6",  # null value
        "A1 83 05 00 03 80",  # array value
        "A1 83 05 00 03 61 78",  # text for an Integer resource
        "A2 83 05 00 03 01 05 A1 00 A1 03 02",  # the same path twice
        "A1 83 05 00 19 FF FF 01",  # id 65535
        "A1 83 05 00 03 FB 3F F8 00 00 00 00 00 00",  # 1.5 for an Integer
    ],
)
def test_lwm2m_cbor_rejects(wire: str) -> None:
    with pytest.raises(DecodeError):
        decode(LC, h(wire), P(5, 0))


@pytest.mark.parametrize(
    ("base", "values"),
    [
        (P(5, 0), {P(4, 0, 3): 1}),
        (P(5, 0), {P(5, 0): 1}),
        (P(5, 0, 3), {P(5, 0, 3): "x"}),
        (P(5, 0), {P(5, 0, 8): 1, P(5, 0, 8, 0): 1}),
        (P(5, 0, 8), {P(5, 0, 8): 1, P(5, 0, 8, 0): 1}),
    ],
)
def test_lwm2m_cbor_encode_errors(base: Path, values: dict[Path, Value]) -> None:
    with pytest.raises(EncodeError):
        encode(LC, base, values)


@pytest.mark.parametrize(
    ("path", "value", "wire", "rtype"),
    [
        (P(5, 0, 3), 2, "02", None),
        (P(4, 0, 2), -77, "38 4C", None),
        (P(3, 0, 0), "vectors", "67 766563746f7273", None),
        (P(5, 0, 0), b"\x01\x02", "42 01 02", None),
        (P(1, 0, 6), True, "F5", None),
        (P(1, 0, 10), ObjLink(3, 0), "63 333a30", None),
        (P(9, 0, 1), 22.5, "F9 4DA0", ResourceType.FLOAT),
        (P(9, 0, 1), 2.0, "F9 4000", ResourceType.FLOAT),
        (P(5, 0, 8, 1), 1, "01", None),
    ],
)
def test_plain_cbor_single_values(
    path: Path, value: Value, wire: str, rtype: ResourceType | None
) -> None:
    kw = {} if rtype is None else {"types": lambda p: rtype}
    assert encode(C60, path, {path: value}, **kw) == h(wire)
    assert decode(C60, h(wire), path, **kw) == {path: value}


def test_plain_cbor_tolerates_integral_floats_and_ints_for_floats() -> None:
    assert decode(C60, h("F9 4000"), P(5, 0, 3)) == {P(5, 0, 3): 2}
    assert decode(C60, h("02"), P(9, 0, 1), lambda p: ResourceType.FLOAT) == {P(9, 0, 1): 2.0}


@pytest.mark.parametrize(
    ("wire", "path"),
    [
        ("", P(5, 0, 3)),
        ("F6", P(5, 0, 3)),
        ("80", P(5, 0, 3)),
        ("A0", P(5, 0, 3)),
        ("61 78", P(5, 0, 3)),
        ("02 02", P(5, 0, 3)),
        ("02", P(5, 0)),
        ("63 333a78", P(1, 0, 10)),
    ],
)
def test_plain_cbor_rejects(wire: str, path: Path) -> None:
    with pytest.raises(DecodeError):
        decode(C60, h(wire), path)


def test_plain_cbor_encode_errors() -> None:
    with pytest.raises(EncodeError):
        encode(C60, P(5, 0), {P(5, 0, 3): 1})
    with pytest.raises(EncodeError):
        encode(C60, P(5, 0, 3), {P(5, 0, 3): 1, P(5, 0, 5): 0})
    with pytest.raises(EncodeError):
        encode(C60, P(5, 0, 3), {})
