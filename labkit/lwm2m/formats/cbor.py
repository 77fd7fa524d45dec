"""A small, strict CBOR (RFC 8949) codec for the LwM2M content formats that use CBOR.

This module owns CBOR items and nothing above them: SenML CBOR (112), LwM2M CBOR (11544) and
plain CBOR (60) build their records on :func:`loads` and :func:`dumps`. It covers the data
model those formats need:

* unsigned and negative integers (64-bit), byte and text strings, arrays, maps;
* floats in half, single and double precision (the encoder writes the shortest width that
  keeps the value, RFC 8949 section 4.2.2);
* ``true``, ``false`` and ``null``.

Decoding is defensive: indefinite-length strings, arrays and maps are accepted on input
(Anjay writes LwM2M CBOR with indefinite maps), tags are skipped (their content is decoded,
except the bignum tags 2 and 3, which are rejected), the nesting depth is bounded, and every
declared length is checked against the bytes that remain *before* anything is allocated.
Map keys that are arrays decode as tuples (LwM2M CBOR packs path segments that way).
``undefined``, other simple values, duplicate map keys, reserved additional-information
values and trailing bytes are errors. The only exception :func:`loads` raises is
:class:`~labkit.lwm2m.errors.DecodeError`; :func:`dumps` raises
:class:`~labkit.lwm2m.errors.EncodeError`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from labkit.lwm2m.errors import DecodeError, EncodeError

__all__ = ["MAX_DEPTH", "CborKey", "CborValue", "dumps", "loads"]

#: Deepest nesting of arrays, maps and tags that :func:`loads` accepts.
MAX_DEPTH = 32

CborKey: TypeAlias = "int | float | str | bytes | bool | tuple[CborKey, ...] | None"
CborValue: TypeAlias = (
    "int | float | str | bytes | bool | list[CborValue] | dict[CborKey, CborValue] | None"
)

# RFC 8949 section 3: major types.
_UINT, _NINT, _BYTES, _TEXT, _ARRAY, _MAP, _TAG, _SIMPLE = range(8)
_INDEFINITE = 31
_BREAK = 0xFF
_UINT64_MAX = 2**64 - 1


class _Break:
    """The "break" stop code (0xFF) that ends an indefinite-length item."""


_BREAK_ITEM = _Break()


class _Decoder:
    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth

    def error(self, what: str) -> DecodeError:
        return DecodeError(f"CBOR: {what} at offset {self.pos}")

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.remaining():
            raise self.error(f"needs {n} bytes, only {self.remaining()} left")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def argument(self, info: int) -> int:
        """The argument of a head whose additional information is ``info`` (section 3)."""
        if info < 24:
            return info
        if info == 24:
            return self.take(1)[0]
        if info == 25:
            return int.from_bytes(self.take(2), "big")
        if info == 26:
            return int.from_bytes(self.take(4), "big")
        if info == 27:
            return int.from_bytes(self.take(8), "big")
        raise self.error(f"reserved additional information {info}")

    def item(self, depth: int, *, allow_break: bool = False) -> CborValue | _Break:
        if depth > self.max_depth:
            raise self.error(f"nesting deeper than {self.max_depth}")
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == _SIMPLE:
            return self.simple(info, allow_break)
        if info == _INDEFINITE:
            return self.indefinite(major, depth)
        arg = self.argument(info)
        if major == _UINT:
            return arg
        if major == _NINT:
            return -1 - arg
        if major == _BYTES:
            return self.take(arg)
        if major == _TEXT:
            return self.text(self.take(arg))
        if major == _ARRAY:
            # Every item takes at least one byte: refuse impossible lengths before looping.
            if arg > self.remaining():
                raise self.error(f"array of {arg} items in {self.remaining()} bytes")
            return [self.value(depth + 1) for _ in range(arg)]
        if major == _MAP:
            if arg > self.remaining() // 2:
                raise self.error(f"map of {arg} pairs in {self.remaining()} bytes")
            result: dict[CborKey, CborValue] = {}
            for _ in range(arg):
                self.pair(result, depth)
            return result
        # major == _TAG: skip the tag, keep its content (section 3.4).
        if arg in (2, 3):
            raise self.error("bignums (tags 2 and 3) are not supported")
        return self.value(depth + 1)

    def value(self, depth: int) -> CborValue:
        item = self.item(depth)
        assert not isinstance(item, _Break)  # allow_break=False never returns a break
        return item

    def pair(self, result: dict[CborKey, CborValue], depth: int) -> None:
        key = _as_key(self.value(depth + 1), self)
        value = self.value(depth + 1)
        if key in result:
            raise self.error(f"duplicate map key {key!r}")
        result[key] = value

    def text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("text string is not UTF-8") from None

    def simple(self, info: int, allow_break: bool) -> CborValue | _Break:
        # Section 3.3: simple values and floats.
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 25:
            return float(struct.unpack(">e", self.take(2))[0])
        if info == 26:
            return float(struct.unpack(">f", self.take(4))[0])
        if info == 27:
            return float(struct.unpack(">d", self.take(8))[0])
        if info == _INDEFINITE:
            if allow_break:
                return _BREAK_ITEM
            raise self.error("unexpected break")
        raise self.error(f"unsupported simple value (additional information {info})")

    def indefinite(self, major: int, depth: int) -> CborValue:
        # Section 3.2: indefinite-length items, ended by the break code.
        if major in (_BYTES, _TEXT):
            chunks: list[bytes] = []
            while True:
                if self.remaining() == 0:
                    raise self.error("unterminated indefinite-length string")
                head = self.data[self.pos]
                if head == _BREAK:
                    self.pos += 1
                    break
                if head >> 5 != major or head & 0x1F == _INDEFINITE:
                    raise self.error("bad chunk in an indefinite-length string")
                self.pos += 1
                chunk = self.take(self.argument(head & 0x1F))
                if major == _TEXT:
                    self.text(chunk)  # each chunk must be valid UTF-8 on its own
                chunks.append(chunk)
            joined = b"".join(chunks)
            return joined if major == _BYTES else self.text(joined)
        if major == _ARRAY:
            items: list[CborValue] = []
            while True:
                item = self.item(depth + 1, allow_break=True)
                if isinstance(item, _Break):
                    return items
                items.append(item)
        if major == _MAP:
            result: dict[CborKey, CborValue] = {}
            while True:
                if self.remaining() and self.data[self.pos] == _BREAK:
                    self.pos += 1
                    return result
                self.pair(result, depth)
        raise self.error(f"major type {major} cannot have indefinite length")


def _as_key(value: CborValue, dec: _Decoder) -> CborKey:
    if isinstance(value, list):
        return tuple(_as_key(v, dec) for v in value)
    if isinstance(value, dict):
        raise dec.error("a map cannot be a map key")
    return value


def loads(data: bytes, *, max_depth: int = MAX_DEPTH) -> CborValue:
    """Decode exactly one CBOR item from ``data``.

    Raises
    ------
    DecodeError
        On truncated or malformed input, unsupported items, too deep nesting or trailing
        bytes after the item.
    """
    dec = _Decoder(bytes(data), max_depth)
    value = dec.value(0)
    if dec.remaining():
        raise dec.error(f"{dec.remaining()} trailing bytes")
    return value


# -- encoder ------------------------------------------------------------------------------


def _head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes([major << 5 | arg])
    if arg < 0x100:
        return bytes([major << 5 | 24, arg])
    if arg < 0x10000:
        return bytes([major << 5 | 25]) + arg.to_bytes(2, "big")
    if arg < 0x100000000:
        return bytes([major << 5 | 26]) + arg.to_bytes(4, "big")
    return bytes([major << 5 | 27]) + arg.to_bytes(8, "big")


def _float(value: float) -> bytes:
    # Shortest width that keeps the value (RFC 8949 section 4.2.2); NaN as f9 7e00.
    if math.isnan(value):
        return b"\xf9\x7e\x00"
    for fmt, initial in ((">e", 0xF9), (">f", 0xFA)):
        try:
            packed = struct.pack(fmt, value)
        except (OverflowError, struct.error):
            continue
        if struct.unpack(fmt, packed)[0] == value:
            return bytes([initial]) + packed
    return b"\xfb" + struct.pack(">d", value)


def _encode(value: object, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EncodeError(f"CBOR: nesting deeper than {MAX_DEPTH}")
    if value is None:
        out.append(b"\xf6")
    elif value is True:
        out.append(b"\xf5")
    elif value is False:
        out.append(b"\xf4")
    elif isinstance(value, int):
        if 0 <= value <= _UINT64_MAX:
            out.append(_head(_UINT, value))
        elif -(2**64) <= value < 0:
            out.append(_head(_NINT, -1 - value))
        else:
            raise EncodeError(f"CBOR: integer out of 64-bit range: {value}")
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out.append(_head(_BYTES, len(raw)) + raw)
    elif isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            raise EncodeError("CBOR: text is not encodable as UTF-8") from None
        out.append(_head(_TEXT, len(raw)) + raw)
    elif isinstance(value, Mapping):
        out.append(_head(_MAP, len(value)))
        for k, v in value.items():
            _encode(k, out, depth + 1)
            _encode(v, out, depth + 1)
    elif isinstance(value, Sequence):
        out.append(_head(_ARRAY, len(value)))
        for v in value:
            _encode(v, out, depth + 1)
    else:
        raise EncodeError(f"CBOR: cannot encode {type(value).__name__}")


def dumps(value: object) -> bytes:
    """Encode ``value`` as one CBOR item (definite lengths, shortest heads and floats).

    ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, mappings, and sequences
    (lists and tuples: arrays) are supported.

    Raises
    ------
    EncodeError
        For other types, integers beyond 64 bits, or text that is not valid Unicode.
    """
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)
