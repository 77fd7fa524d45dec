"""The CBOR item codec against RFC 8949 Appendix A, and its defences against bad input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.lwm2m.errors import DecodeError, EncodeError
from labkit.lwm2m.formats.cbor import dumps, loads


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# RFC 8949 Appendix A: (value, encoding) -- both directions.
APPENDIX_A = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (0.0, "f90000"),
    (-0.0, "f98000"),
    (1.0, "f93c00"),
    (1.1, "fb3ff199999999999a"),
    (1.5, "f93e00"),
    (65504.0, "f97bff"),
    (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"),
    (1.0e300, "fb7e37e43c8800759c"),
    (5.960464477539063e-8, "f90001"),
    (0.00006103515625, "f90400"),
    (-4.0, "f9c400"),
    (-4.1, "fbc010666666666666"),
    (math.inf, "f97c00"),
    (-math.inf, "f9fc00"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
]


@pytest.mark.parametrize(("value", "wire"), APPENDIX_A)
def test_rfc8949_appendix_a(value: object, wire: str) -> None:
    assert dumps(value) == h(wire)
    decoded = loads(h(wire))
    assert decoded == value and type(decoded) is type(value)
    if isinstance(value, float) and value == 0:
        assert math.copysign(1, decoded) == math.copysign(1, value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        ("f97e00", math.nan),
        ("fa7fc00000", math.nan),
        ("f93c00", 1.0),
        ("fa3f800000", 1.0),
        ("fb3ff0000000000000", 1.0),
        ("5f42010243030405ff", b"\x01\x02\x03\x04\x05"),
        ("7f657374726561646d696e67ff", "streaming"),
        ("9fff", []),
        ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]),
        ("83018202039f0405ff", [1, [2, 3], [4, 5]]),
        ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}),
        ("bf6346756ef563416d7421ff", {"Fun": True, "Amt": -2}),
        ("c11a514b67b0", 1363896240),  # tag 1 (epoch time) skipped
        ("d82076687474703a2f2f7777772e6578616d706c652e636f6d", "http://www.example.com"),
        ("a1820500a10301", {(5, 0): {3: 1}}),  # array keys become tuples
        ("1800", 0),  # non-shortest heads are accepted
    ],
)
def test_decoder_accepts(wire: str, value: object) -> None:
    decoded = loads(h(wire))
    if isinstance(value, float) and math.isnan(value):
        assert isinstance(decoded, float) and math.isnan(decoded)
    else:
        assert decoded == value


@pytest.mark.parametrize(
    "wire",
    [
        "",  # nothing
        "18",  # truncated argument
        "1b0000",
        "62c3",  # text shorter than declared
        "5bffffffffffffffff",  # 2^64-1 byte string in 9 bytes
        "9bffffffffffffffff",  # 2^64-1 items
        "bbffffffffffffffff",  # 2^64-1 pairs
        "9a7fffffff00",
        "1c",  # reserved additional information 28..30
        "3d",
        "5e",
        "ff",  # a break outside an indefinite item
        "8201ff",
        "f7",  # undefined
        "f820",  # one-byte simple value
        "f0",  # simple value 16
        "fc",
        "0001",  # trailing bytes
        "a20102 01 03",  # duplicate map key
        "a1a0 01",  # map as a map key
        "62c328",  # invalid UTF-8
        "7f 61c3 61a9 ff",  # UTF-8 split across chunks: each chunk must be valid
        "5f 6161 ff",  # text chunk in a byte string
        "5f 5f ff ff",  # nested indefinite chunk
        "5f 41",  # unterminated indefinite string
        "9f 01",  # unterminated indefinite array
        "bf 01",  # unterminated indefinite map
        "bf 01 ff",  # key without value
        "1f",  # indefinite integer
        "df 00",  # indefinite tag
        "c2 41 01",  # bignum
        "c3 41 01",
        "c1",  # tag without content
    ],
)
def test_decoder_rejects(wire: str) -> None:
    with pytest.raises(DecodeError):
        loads(h(wire))


@pytest.mark.parametrize(
    "wire",
    [
        b"\x81" * 10_000 + b"\x00",
        b"\x9f" * 10_000,
        b"\xa1\x00" * 10_000 + b"\x00",
        b"\xc1" * 10_000 + b"\x00",
        b"\xbf\x00" * 10_000,
    ],
)
def test_deep_nesting_is_a_decode_error(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        loads(wire)


def test_nesting_up_to_the_limit_is_fine() -> None:
    assert loads(b"\x81" * 32 + b"\x00") is not None


@pytest.mark.parametrize("value", [2**64, -(2**64) - 1, object(), "\ud800", {1, 2}])
def test_encoder_rejects(value: object) -> None:
    with pytest.raises(EncodeError):
        dumps(value)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
_keys = st.one_of(st.integers(-(2**64), 2**64 - 1), st.text(max_size=8))
_items = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_items)
def test_dumps_then_loads_round_trips(item: object) -> None:
    assert loads(dumps(item)) == item
