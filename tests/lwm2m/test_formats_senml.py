"""SenML JSON (110), SenML CBOR (112) and old LwM2M JSON (11543): digest 6.4 and 6.5."""

from __future__ import annotations

import pytest

from labkit.lwm2m.errors import DecodeError, EncodeError
from labkit.lwm2m.formats import ContentFormat, decode, encode
from labkit.lwm2m.objects import ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, Value

JSON, CBOR = ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR
P = Path.of


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


FW = {
    P(5, 0, 3): 2,
    P(5, 0, 5): 0,
    P(5, 0, 7): "2.0.1",
    P(5, 0, 8, 0): 0,
    P(5, 0, 8, 1): 1,
}
FW_JSON = (
    b'[{"bn":"/5/0/","n":"3","v":2},{"n":"5","v":0},{"n":"7","vs":"2.0.1"},'
    b'{"n":"8/0","v":0},{"n":"8/1","v":1}]'
)


def test_digest_json_example_both_directions() -> None:
    assert decode(JSON, FW_JSON, P(5, 0)) == FW
    assert encode(JSON, P(5, 0), FW) == FW_JSON


@pytest.mark.parametrize(
    ("values", "wire"),
    [
        ({P(5, 0, 3): 1}, "81 A3 21 65 2F 35 2F 30 2F 00 61 33 02 01"),
        (
            {P(5, 0, 3): 2, P(5, 0, 5): 0},
            "82 A3 21 65 2F 35 2F 30 2F 00 61 33 02 02 A2 00 61 35 02 00",
        ),
        ({P(5, 0, 0): b"\x01\x02"}, "81 A3 21 65 2F 35 2F 30 2F 00 61 30 08 42 01 02"),
    ],
)
def test_digest_cbor_examples_both_directions(values: dict[Path, Value], wire: str) -> None:
    assert decode(CBOR, h(wire), P(5, 0, 3)) == values
    assert encode(CBOR, P(5, 0), values) == h(wire)


def test_single_resource_uses_the_full_path_as_bn() -> None:
    # what Anjay writes: [{"bn":"/5/0/3","v":0}] and 81 a2 21 66 "/5/0/3" 02 00
    assert encode(JSON, P(5, 0, 3), {P(5, 0, 3): 0}) == b'[{"bn":"/5/0/3","v":0}]'
    assert encode(CBOR, P(5, 0, 3), {P(5, 0, 3): 0}) == h("81a221662f352f302f330200")
    assert encode(JSON, P(5, 0, 8, 1), {P(5, 0, 8, 1): 1}) == b'[{"bn":"/5/0/8/1","v":1}]'
    assert encode(JSON, P(5, 0, 8), {P(5, 0, 8, 0): 1}) == b'[{"bn":"/5/0/8/","n":"0","v":1}]'
    assert encode(JSON, P(), {P(5, 0, 3): 1}) == b'[{"bn":"/","n":"5/0/3","v":1}]'
    assert encode(JSON, P(5, 0), {}) == b"[]"
    assert decode(JSON, b"[]", P(5, 0)) == {}


def test_value_fields_by_type() -> None:
    values: dict[Path, Value] = {
        P(1, 0, 6): True,
        P(1, 0, 10): ObjLink(3, 0),
        P(3, 0, 0): "Open Mobile Alliance",
        P(5, 0, 0): b"\xfb\xff",
    }
    wire = encode(JSON, P(), values)
    assert wire == (
        b'[{"bn":"/","n":"1/0/6","vb":true},{"n":"1/0/10","vlo":"3:0"},'
        b'{"n":"3/0/0","vs":"Open Mobile Alliance"},{"n":"5/0/0","vd":"-_8"}]'
    )
    assert decode(JSON, wire, P()) == values
    assert decode(CBOR, encode(CBOR, P(), values), P()) == values


def test_float_resources() -> None:
    fl = {P(9, 0, 1): 22.5, P(9, 0, 2): 3.0}

    def types(p: Path) -> ResourceType:
        return ResourceType.FLOAT

    assert (
        encode(JSON, P(9, 0), fl, types) == b'[{"bn":"/9/0/","n":"1","v":22.5},{"n":"2","v":3.0}]'
    )
    assert decode(JSON, b'[{"bn":"/9/0/","n":"1","v":22.5},{"n":"2","v":3}]', P(9, 0), types) == fl
    assert decode(CBOR, encode(CBOR, P(9, 0), fl, types), P(9, 0), types) == fl
    with pytest.raises(EncodeError):
        encode(JSON, P(9, 0, 1), {P(9, 0, 1): float("nan")}, types)


@pytest.mark.parametrize(
    "vd",
    ["AQID-_8", "AQID+/8=", "AQID+/8", "AQID-_8="],
)
def test_vd_accepts_base64url_and_padded_standard_base64(vd: str) -> None:
    wire = f'[{{"bn":"/5/0/0","vd":"{vd}"}}]'.encode()
    assert decode(JSON, wire, P(5, 0, 0)) == {P(5, 0, 0): b"\x01\x02\x03\xfb\xff"}


def test_name_styles_of_anjay_and_wakaama() -> None:
    anjay = b'[{"bn":"/3/0","n":"/0","vs":"vectors"},{"n":"/6/0","v":0}]'
    wakaama = b'[{"bn":"/3/0/","n":"0","vs":"vectors"},{"n":"6/0","v":0}]'
    expected = {P(3, 0, 0): "vectors", P(3, 0, 6, 0): 0}
    assert decode(JSON, anjay, P(3, 0)) == expected
    assert decode(JSON, wakaama, P(3, 0)) == expected
    # names outside the requested path are accepted (documented tolerance)
    assert decode(JSON, b'[{"n":"/4/0/2","v":-77}]', P(3, 0)) == {P(4, 0, 2): -77}


def test_decoder_tolerances() -> None:
    # name-only records (Read-Composite) are skipped; a repeated name: the last wins
    wire = b'[{"n":"/3/0/3"},{"n":"/5/0/3","v":1,"t":-5},{"n":"/5/0/3","v":2,"t":0}]'
    assert decode(JSON, wire, P()) == {P(5, 0, 3): 2}
    # bv is added to v; unknown fields are ignored; integral floats fit integers
    wire = b'[{"bn":"/5/0/","bv":10,"n":"3","v":-8,"x":1},{"n":"5","v":1.0,"bt":3,"u":"s"}]'
    assert decode(JSON, wire, P(5, 0)) == {P(5, 0, 3): 2, P(5, 0, 5): 11.0}
    # SenML CBOR with text labels and an unknown integer label
    assert decode(CBOR, h("81 a3 62 626e 66 2f352f302f33 02 01 18 63 00"), P()) == {P(5, 0, 3): 1}
    # an objlnk sent as vs
    assert decode(JSON, b'[{"n":"/1/0/10","vs":"3:0"}]', P()) == {P(1, 0, 10): ObjLink(3, 0)}


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"{}",
        b"[1]",
        b'[{"n":"/5/0/3","v":1,"vs":"x"}]',  # two values
        b'[{"n":"/5/0/3","vs":"x"}]',  # a string for an Integer
        b'[{"n":"/5/0/3","v":1.5}]',  # a fraction for an Integer
        b'[{"n":"/5/0/3","v":true}]',  # a boolean in v
        b'[{"n":"/5/0/3","v":"1"}]',
        b'[{"n":"/5/0/3","v":NaN}]',
        b'[{"n":"/5/0/3","v":1e999}]',
        b'[{"n":"/5/0/3","v":9223372036854775808}]',  # beyond int64
        b'[{"n":"/1/0/6","vb":1}]',
        b'[{"n":"/5/0/0","vd":"***"}]',
        b'[{"n":"/5/0/0","vd":"A"}]',
        b'[{"n":"/5/0/0","vd":1}]',
        b'[{"n":"/1/0/10","vlo":"3"}]',
        b'[{"n":"/1/0/10","vlo":"70000:0"}]',
        b'[{"n":"/1/0/10","vlo":3}]',
        b'[{"n":"/5/0","v":1}]',  # not a resource
        b'[{"n":"/5/0/3/1/2","v":1}]',  # too deep
        b'[{"n":"/5/x/3","v":1}]',
        b'[{"n":"/5/0/99999","v":1}]',
        b'[{"v":1}]',  # no name at all
        b'[{"bn":5,"n":"3","v":1}]',
        b'[{"n":3,"v":1}]',
        b'[{"n":"/5/0/3","n":"/5/0/5","v":1}]',  # duplicate key
        b'[{"n":"/5/0/3","v":1,"x_":2}]',  # must-understand
        b'[{"n":"/5/0/3","v":1,"bv":"x"}]',
        b'[{"bn":"/5/0/","bv":1' + b"0" * 400 + b',"n":"3","v":1.5}]',  # int + float overflow
        b'[{"bn":"/5/0/","bv":1e308,"n":"3","v":1e308}]',  # inf for an Integer
        b"[" * 100_000,
        b'[{"n":"' + b"1" * 5000 + b'","v":1}]',
        b'[{"n":"/5/0/3","v":' + b"1" * 5000 + b"}]",
        b"\xff",
        b'[{"n":"/5/0/3","v":1}]x',
    ],
)
def test_senml_json_rejects(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(JSON, wire, P(5, 0))


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "a0",  # not an array
        "81 01",  # record not a map
        "81 a2 00 66 2f352f302f33 02 62 3132",  # text in v
        "81 a2 00 66 2f352f302f30 08 62 4141",  # text in vd
        "81 a2 00 66 2f352f302f33 02 f4",  # bool in v
        "81 a2 00 66 2f352f302f33 02 f6",  # null in v
        "81 a2 00 66 2f352f302f33 f4 01",  # bool as a key
        "81 a3 00 66 2f352f302f33 02 01 61 6e 61 35",  # n given as 0 and as "n"
        "81 a2 00 01 02 01",  # n not text
    ],
)
def test_senml_cbor_rejects(wire: str) -> None:
    with pytest.raises(DecodeError):
        decode(CBOR, h(wire), P(5, 0))


@pytest.mark.parametrize(
    ("base", "values"),
    [
        (P(5, 0), {P(4, 0, 3): 1}),
        (P(5, 0), {P(5, 0): 1}),
        (P(5, 0, 3), {P(5, 0, 3): "x"}),
        (P(5, 0, 2), {P(5, 0, 2): 1}),
        (P(5, 0, 3), {P(5, 0, 3): 2**63}),
        (P(3, 0, 0), {P(3, 0, 0): "\udc00"}),
    ],
)
def test_senml_encode_errors(base: Path, values: dict[Path, Value]) -> None:
    for fmt in (JSON, CBOR):
        with pytest.raises(EncodeError):
            encode(fmt, base, values)


def test_old_lwm2m_json_digest_example() -> None:
    wire = (
        b'{"bn":"/5/0/","e":[{"n":"3","v":2},{"n":"6","sv":"fw"},'
        b'{"n":"14","bv":true},{"n":"8/0","v":1}]}'
    )
    assert decode(ContentFormat.LWM2M_JSON, wire, P(5, 0)) == {
        P(5, 0, 3): 2,
        P(5, 0, 6): "fw",
        P(5, 0, 14): True,
        P(5, 0, 8, 0): 1,
    }
    # legacy number, no bn (relative to the requested path), objlnk and opaque as base64
    assert decode(1543, b'{"e":[{"n":"","ov":"3:0"}]}', P(1, 0, 10)) == {P(1, 0, 10): ObjLink(3, 0)}
    assert decode(1543, b'{"e":[{"sv":"AQI="}]}', P(5, 0, 0)) == {P(5, 0, 0): b"\x01\x02"}


@pytest.mark.parametrize(
    "wire",
    [
        b"[]",
        b'{"e":{}}',
        b'{"bn":1,"e":[]}',
        b'{"e":[1]}',
        b'{"e":[{"n":"3"}]}',
        b'{"e":[{"v":"x"}]}',
    ],
)
def test_old_lwm2m_json_rejects(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(ContentFormat.LWM2M_JSON, wire, P(5, 0, 3))
