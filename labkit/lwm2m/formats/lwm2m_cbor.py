"""LwM2M CBOR (11544, LwM2M 1.2) and plain CBOR (60, one resource value).

This module owns the two LwM2M uses of bare CBOR items (digest 6.1, 6.5); the CBOR item codec
itself is :mod:`labkit.lwm2m.formats.cbor`.

LwM2M CBOR (11544)
    Nested maps keyed by path ids, from the root: ``{5: {0: {3: 1, 5: 0}}}`` is
    ``A1 05 A1 00 A2 03 01 05 00``. A key may be an array packing several segments
    (Anjay answers a read of /5/0/3 with ``{[5, 0, 3]: 0}``); both forms are decoded, at any
    level, with definite or indefinite lengths. The encoder writes the requested path as one
    such key (a bare integer for an object path, nothing for the root) and nests the rest:
    reading /5/0 gives ``{[5, 0]: {3: 1, 5: 0}}``.

Plain CBOR (60)
    One CBOR item holding the value of the requested resource (instance).

Object links are text strings ``"3:0"`` in both. Values are typed with the resolver;
``null``, arrays and maps as values are errors.
"""

from __future__ import annotations

from collections.abc import Mapping

from labkit.lwm2m.errors import DecodeError, EncodeError
from labkit.lwm2m.formats import _values, cbor
from labkit.lwm2m.formats.cbor import CborKey, CborValue
from labkit.lwm2m.formats.text import single_path
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, TypeResolver, Value

__all__ = ["decode", "decode_plain", "encode", "encode_plain"]

_WHAT = "LwM2M CBOR"
_PLAIN = "CBOR"


def _segments(key: CborKey) -> tuple[int, ...]:
    keys = key if isinstance(key, tuple) else (key,)
    if not keys:
        raise DecodeError(f"{_WHAT}: an empty array is not a path key")
    ids: list[int] = []
    for k in keys:
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise DecodeError(f"{_WHAT}: path keys are unsigned integers, got {k!r:.40}")
        ids.append(k)
    return tuple(ids)


def _scalar(path: Path, item: CborValue, types: TypeResolver, what: str) -> Value:
    if item is None or isinstance(item, list | dict):
        raise DecodeError(f"{what}: {path}: a value cannot be {type(item).__name__}")
    return _values.coerce(path, item, _values.resolve(types, path), what)


def _walk(
    node: dict[CborKey, CborValue],
    prefix: tuple[int, ...],
    out: dict[Path, Value],
    types: TypeResolver,
) -> None:
    for key, item in node.items():
        ids = prefix + _segments(key)
        if len(ids) > 4:
            raise DecodeError(f"{_WHAT}: path deeper than 4 segments")
        if isinstance(item, dict):
            _walk(item, ids, out, types)
            continue
        path = _values.value_path(_values.make_path(ids, _WHAT), _WHAT)
        if path in out:
            raise DecodeError(f"{_WHAT}: {path} appears twice")
        out[path] = _scalar(path, item, types, _WHAT)


def decode(payload: bytes, base: Path, types: TypeResolver) -> dict[Path, Value]:
    """Decode LwM2M CBOR. Paths are absolute, so ``base`` is not needed."""
    del base
    doc = cbor.loads(payload)
    if not isinstance(doc, dict):
        raise DecodeError(f"{_WHAT}: the payload must be a map")
    out: dict[Path, Value] = {}
    _walk(doc, (), out, types)
    return out


def _wire(path: Path, value: object, types: TypeResolver, what: str) -> object:
    checked = _values.check(path, value, _values.resolve(types, path), what)
    return str(checked) if isinstance(checked, ObjLink) else checked


def encode(base: Path, values: Mapping[Path, Value], types: TypeResolver) -> bytes:
    """Encode ``values`` (at or below ``base``) as LwM2M CBOR, ``base`` as the outer key."""
    tree: dict[int, object] = {}
    single: object = None
    for path in sorted(values):
        if not path.startswith(base) or path.level < 3:
            raise EncodeError(f"{_WHAT}: {path} is not a resource path at or below {base}")
        wire = _wire(path, values[path], types, _WHAT)
        rel = path.relative_to(base)
        if not rel:
            single = wire
            continue
        node = tree
        for i in rel[:-1]:
            child = node.setdefault(i, {})
            if not isinstance(child, dict):
                raise EncodeError(f"{_WHAT}: {path} lies below a resource that has a value")
            node = child
        if rel[-1] in node:
            raise EncodeError(f"{_WHAT}: {path} has both a value and resource instances")
        node[rel[-1]] = wire
    if single is not None and tree:
        raise EncodeError(f"{_WHAT}: {base} has both a value and resource instances")
    content = single if single is not None else tree
    if base.level == 0:
        doc: object = content
    elif base.level == 1:
        doc = {base.ids[0]: content}
    else:
        doc = {base.ids: content}
    return cbor.dumps(doc)


def decode_plain(payload: bytes, base: Path, types: TypeResolver) -> dict[Path, Value]:
    """Decode content format 60: one CBOR item, the value of ``base``."""
    path = _values.value_path(base, _PLAIN)
    return {path: _scalar(path, cbor.loads(payload), types, _PLAIN)}


def encode_plain(base: Path, values: Mapping[Path, Value], types: TypeResolver) -> bytes:
    """Encode the single value of ``base`` as one CBOR item (content format 60)."""
    value = single_path(base, values, _PLAIN)
    return cbor.dumps(_wire(base, value, types, _PLAIN))
