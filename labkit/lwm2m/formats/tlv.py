"""OMA LwM2M TLV (content format 11542): byte-exact encoder and defensive decoder.

This module owns the TLV wire format of digest section 6.3: the type byte (kind, id width,
length width), the nesting rule that depends on the requested path, and the value bytes of
each resource type (digest 6.2). It never guesses a resource's type: the caller's
:data:`~labkit.lwm2m.values.TypeResolver` says it, and a resource of unknown type decodes to
its raw ``bytes``.

Nesting by requested path (digest 6.3):

* ``/O``: Object-Instance TLVs, each wrapping resource TLVs;
* ``/O/I``: resource and multiple-resource TLVs at top level (a single Object-Instance
  wrapper with the same instance id is tolerated on input);
* ``/O/I/R``: one Resource TLV, or one Multiple-Resource TLV wrapping Resource-Instance TLVs
  (bare Resource-Instance TLVs are tolerated on input);
* ``/O/I/R/RI``: one Resource-Instance TLV.

The encoder writes 8-bit ids below 256, the shortest length field, the shortest integer width
(1, 2, 4 or 8 bytes) and 4-byte floats when they keep the value exactly. The decoder accepts
16-bit ids below 256, any of the four integer widths and both float widths, and raises only
:class:`~labkit.lwm2m.errors.DecodeError`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from labkit.lwm2m.errors import DecodeError, EncodeError
from labkit.lwm2m.formats import _values
from labkit.lwm2m.objects import ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, TypeResolver, Value

__all__ = ["decode", "encode"]

# Digest 6.3, type byte bits 7-6.
OBJECT_INSTANCE, RESOURCE_INSTANCE, MULTIPLE_RESOURCE, RESOURCE = 0, 1, 2, 3
MAX_LENGTH = 0xFFFFFF  # 24-bit length field: 16.7 MB
_WHAT = "TLV"


@dataclass(frozen=True, slots=True)
class _Element:
    kind: int
    id: int
    value: bytes


# -- decoding --------------------------------------------------------------------------------


def _elements(data: bytes) -> list[_Element]:
    """Split ``data`` into consecutive TLV elements (one nesting level)."""
    out: list[_Element] = []
    pos, end = 0, len(data)
    while pos < end:
        head = data[pos]
        pos += 1
        kind = head >> 6
        id_len = 2 if head & 0x20 else 1
        len_len = (head >> 3) & 0x03
        if pos + id_len + len_len > end:
            raise DecodeError(f"TLV: truncated header at offset {pos - 1}")
        ident = int.from_bytes(data[pos : pos + id_len], "big")
        pos += id_len
        if len_len == 0:
            length = head & 0x07
        else:
            length = int.from_bytes(data[pos : pos + len_len], "big")
            pos += len_len
        if pos + length > end:
            raise DecodeError(
                f"TLV: element {ident} declares {length} bytes, only {end - pos} left"
            )
        out.append(_Element(kind, ident, data[pos : pos + length]))
        pos += length
    return out


def _int(raw: bytes, path: Path, signed: bool) -> int:
    if len(raw) not in (1, 2, 4, 8):
        raise DecodeError(f"TLV: {path}: an integer has 1, 2, 4 or 8 bytes, got {len(raw)}")
    return int.from_bytes(raw, "big", signed=signed)


def _decode_value(path: Path, raw: bytes, rtype: ResourceType | None) -> Value:
    """Value bytes of one resource (instance) by type (digest 6.2)."""
    if rtype in (ResourceType.STRING, ResourceType.CORELNK):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"TLV: {path}: string is not UTF-8") from None
    if rtype in (ResourceType.INTEGER, ResourceType.TIME):
        return _int(raw, path, signed=True)
    if rtype is ResourceType.UNSIGNED_INTEGER:
        return _int(raw, path, signed=False)
    if rtype is ResourceType.FLOAT:
        if len(raw) == 4:
            return float(struct.unpack(">f", raw)[0])
        if len(raw) == 8:
            return float(struct.unpack(">d", raw)[0])
        raise DecodeError(f"TLV: {path}: a float has 4 or 8 bytes, got {len(raw)}")
    if rtype is ResourceType.BOOLEAN:
        if raw not in (b"\x00", b"\x01"):
            raise DecodeError(f"TLV: {path}: a boolean is one byte 00 or 01, got {raw.hex()}")
        return raw == b"\x01"
    if rtype is ResourceType.OBJLNK:
        if len(raw) != 4:
            raise DecodeError(f"TLV: {path}: an object link has 4 bytes, got {len(raw)}")
        return ObjLink(int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big"))
    # Opaque, executable (NONE) and unknown resources: the raw bytes.
    return bytes(raw)


def _put(out: dict[Path, Value], path: Path, raw: bytes, types: TypeResolver) -> None:
    if path in out:
        raise DecodeError(f"TLV: {path} appears twice")
    out[path] = _decode_value(path, raw, _values.resolve(types, path))


def _child(path: Path, ident: int) -> Path:
    return _values.make_path((*path.ids, ident), _WHAT)


def _instances(
    elements: list[_Element], resource: Path, out: dict[Path, Value], types: TypeResolver
) -> None:
    for el in elements:
        if el.kind != RESOURCE_INSTANCE:
            raise DecodeError(f"TLV: {resource} holds a non resource-instance element")
        _put(out, _child(resource, el.id), el.value, types)


def _resources(
    elements: list[_Element], instance: Path, out: dict[Path, Value], types: TypeResolver
) -> None:
    for el in elements:
        path = _child(instance, el.id)
        if el.kind == RESOURCE:
            _put(out, path, el.value, types)
        elif el.kind == MULTIPLE_RESOURCE:
            _instances(_elements(el.value), path, out, types)
        else:
            raise DecodeError(f"TLV: {instance} holds a non resource element (kind {el.kind})")


def decode(payload: bytes, base: Path, types: TypeResolver) -> dict[Path, Value]:
    """Decode a TLV payload that answered a request on ``base``.

    Returns
    -------
    dict[Path, Value]
        Full resource (``/O/I/R``) or resource-instance (``/O/I/R/RI``) paths to values.
    """
    elements = _elements(bytes(payload))
    out: dict[Path, Value] = {}
    level = base.level
    if level == 1:
        for el in elements:
            if el.kind != OBJECT_INSTANCE:
                raise DecodeError(f"TLV: reading {base} expects object-instance elements")
            _resources(_elements(el.value), _child(base, el.id), out, types)
    elif level == 2:
        only = elements[0] if len(elements) == 1 else None
        if only is not None and only.kind == OBJECT_INSTANCE and only.id == base.ids[1]:
            elements = _elements(only.value)  # tolerated: the instance wrapped once more
        _resources(elements, base, out, types)
    elif level == 3:
        if all(el.kind == RESOURCE_INSTANCE for el in elements):
            _instances(elements, base, out, types)  # tolerated: bare resource instances
        elif len(elements) == 1 and elements[0].id == base.ids[2]:
            _resources(elements, base.parent, out, types)
        else:
            raise DecodeError(f"TLV: reading {base} expects one element with id {base.ids[2]}")
    elif level == 4:
        if len(elements) != 1 or elements[0].kind != RESOURCE_INSTANCE:
            raise DecodeError(f"TLV: reading {base} expects one resource-instance element")
        if elements[0].id != base.ids[3]:
            raise DecodeError(f"TLV: reading {base} got resource instance {elements[0].id}")
        _put(out, base, elements[0].value, types)
    else:
        raise DecodeError("TLV: the root path has no TLV representation")
    return out


# -- encoding --------------------------------------------------------------------------------


def element(kind: int, ident: int, value: bytes) -> bytes:
    """One TLV element: type byte, identifier, length, value (digest 6.3)."""
    if not 0 <= ident <= 0xFFFF:
        raise EncodeError(f"TLV: identifier {ident} is not 16-bit")
    length = len(value)
    if length > MAX_LENGTH:
        raise EncodeError(f"TLV: {length} bytes exceed the 24-bit length (use opaque, 42)")
    head = kind << 6
    ident_bytes = ident.to_bytes(1 if ident < 0x100 else 2, "big")
    if ident >= 0x100:
        head |= 0x20
    if length < 8:
        head |= length
        length_bytes = b""
    else:
        width = 1 if length < 0x100 else 2 if length < 0x10000 else 3
        head |= width << 3
        length_bytes = length.to_bytes(width, "big")
    return bytes([head]) + ident_bytes + length_bytes + value


def _shortest_int(value: int, signed: bool) -> bytes:
    for width in (1, 2, 4, 8):
        try:
            return value.to_bytes(width, "big", signed=signed)
        except OverflowError:
            continue
    raise EncodeError(f"TLV: integer {value} does not fit in 8 bytes")


def encode_value(path: Path, value: object, rtype: ResourceType | None) -> bytes:
    """The value bytes of one resource (instance) of type ``rtype`` (digest 6.2)."""
    checked = _values.check(path, value, rtype, _WHAT)
    if isinstance(checked, bool):
        return b"\x01" if checked else b"\x00"
    if isinstance(checked, int):
        unsigned = rtype is ResourceType.UNSIGNED_INTEGER or checked > _values.INT64_MAX
        return _shortest_int(checked, signed=not unsigned)
    if isinstance(checked, float):
        try:
            single = struct.pack(">f", checked)
        except OverflowError:
            return struct.pack(">d", checked)
        if struct.unpack(">f", single)[0] == checked or checked != checked:
            return single
        return struct.pack(">d", checked)
    if isinstance(checked, str):
        try:
            return checked.encode("utf-8")
        except UnicodeEncodeError:
            raise EncodeError(f"TLV: {path}: text is not encodable as UTF-8") from None
    if isinstance(checked, ObjLink):
        return checked.object_id.to_bytes(2, "big") + checked.instance_id.to_bytes(2, "big")
    return checked


def _resource_elements(instance: Path, values: Mapping[Path, Value], types: TypeResolver) -> bytes:
    by_resource: dict[int, list[Path]] = {}
    for path in values:
        by_resource.setdefault(path.ids[2], []).append(path)
    out: list[bytes] = []
    for rid in sorted(by_resource):
        paths = sorted(by_resource[rid])
        resource = instance.child(rid)
        if paths == [resource]:
            raw = encode_value(resource, values[resource], _values.resolve(types, resource))
            out.append(element(RESOURCE, rid, raw))
        elif resource in paths:
            raise EncodeError(f"TLV: {resource} has both a value and resource instances")
        else:
            out.append(element(MULTIPLE_RESOURCE, rid, _instance_elements(paths, values, types)))
    return b"".join(out)


def _instance_elements(
    paths: list[Path], values: Mapping[Path, Value], types: TypeResolver
) -> bytes:
    return b"".join(
        element(RESOURCE_INSTANCE, p.ids[3], encode_value(p, values[p], _values.resolve(types, p)))
        for p in sorted(paths)
    )


def encode(base: Path, values: Mapping[Path, Value], types: TypeResolver) -> bytes:
    """Encode ``values`` (full resource or resource-instance paths at or below ``base``) as the
    TLV answer to a request on ``base``.

    Raises
    ------
    EncodeError
        When a path is not at or below ``base``, is not a resource path, a value does not fit
        its type, or a value is longer than 2^24-1 bytes.
    """
    for path in values:
        if not path.startswith(base) or path.level < 3:
            raise EncodeError(f"TLV: {path} is not a resource path at or below {base}")
    level = base.level
    if level == 1:
        by_instance: dict[int, dict[Path, Value]] = {}
        for path, value in values.items():
            by_instance.setdefault(path.ids[1], {})[path] = value
        return b"".join(
            element(OBJECT_INSTANCE, iid, _resource_elements(base.child(iid), items, types))
            for iid, items in sorted(by_instance.items())
        )
    if level == 2:
        return _resource_elements(base, values, types)
    if level == 3:
        if list(values) == [base]:
            raw = encode_value(base, values[base], _values.resolve(types, base))
            return element(RESOURCE, base.ids[2], raw)
        if base in values:
            raise EncodeError(f"TLV: {base} has both a value and resource instances")
        return element(
            MULTIPLE_RESOURCE, base.ids[2], _instance_elements(list(values), values, types)
        )
    if level == 4:
        if list(values) != [base]:
            raise EncodeError(f"TLV: a resource instance {base} takes exactly one value")
        raw = encode_value(base, values[base], _values.resolve(types, base))
        return element(RESOURCE_INSTANCE, base.ids[3], raw)
    raise EncodeError("TLV: the root path has no TLV representation")
