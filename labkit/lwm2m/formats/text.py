"""text/plain (content format 0): one resource value as UTF-8 text.

This module owns the text representation of single values (digest 6.2): Integer, Unsigned
Integer and Time as decimal ASCII, Float as a decimal number (an exponent is accepted and
written for very large or small values), Boolean as ``0``/``1``, Objlnk as ``3:0``, String and
Corelnk as UTF-8. Opaque is not allowed as text in LwM2M 1.1 (use 42); for 1.0 peers it is
read and written as standard base64. A resource of unknown type decodes to ``str``.

The requested path must be a resource or a resource instance and the payload carries exactly
one value.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping

from labkit.lwm2m.errors import DecodeError, EncodeError
from labkit.lwm2m.formats import _values
from labkit.lwm2m.objects import ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, TypeResolver, Value

__all__ = ["decode", "encode", "single_path"]

_WHAT = "text/plain"
_INT = re.compile(r"[+-]?[0-9]{1,20}")
_FLOAT = re.compile(r"[+-]?([0-9]{1,400}(\.[0-9]{0,400})?|\.[0-9]{1,400})([eE][+-]?[0-9]{1,4})?")
_WS = " \t\r\n"


def single_path(base: Path, values: Mapping[Path, Value], what: str) -> Value:
    """The one value of a single-value payload (text, opaque, CBOR 60) on ``base``."""
    if base.level < 3:
        raise EncodeError(f"{what} carries one resource value; {base} is not a resource path")
    if list(values) != [base]:
        raise EncodeError(f"{what} carries exactly one value, for {base}")
    return values[base]


def _integer(text: str, path: Path, rtype: ResourceType) -> int:
    body = text.strip(_WS)
    if not _INT.fullmatch(body):
        raise DecodeError(f"{_WHAT}: {path} is an integer resource, got {text[:40]!r}")
    if rtype is ResourceType.UNSIGNED_INTEGER and body.startswith("-"):
        raise DecodeError(f"{_WHAT}: {path} is unsigned, got {body}")
    value = _values.coerce(path, int(body), rtype, _WHAT)
    assert isinstance(value, int)
    return value


def decode(payload: bytes, base: Path, types: TypeResolver) -> dict[Path, Value]:
    """Decode a text/plain payload for the resource (instance) ``base``."""
    _values.value_path(base, _WHAT)
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{_WHAT}: payload is not UTF-8") from None
    rtype = _values.resolve(types, base)
    value: Value
    if rtype in (ResourceType.INTEGER, ResourceType.TIME, ResourceType.UNSIGNED_INTEGER):
        assert rtype is not None
        value = _integer(text, base, rtype)
    elif rtype is ResourceType.FLOAT:
        body = text.strip(_WS)
        if not _FLOAT.fullmatch(body):
            raise DecodeError(f"{_WHAT}: {base} is a float resource, got {text[:40]!r}")
        value = float(body)
    elif rtype is ResourceType.BOOLEAN:
        body = text.strip(_WS)
        if body not in ("0", "1"):
            raise DecodeError(f"{_WHAT}: {base} is a boolean resource, got {text[:40]!r}")
        value = body == "1"
    elif rtype is ResourceType.OBJLNK:
        value = _values.parse_objlnk(text.strip(_WS), _WHAT)
    elif rtype is ResourceType.OPAQUE:
        value = _values.b64decode(text.strip(_WS), _WHAT)  # LwM2M 1.0 only
    else:  # String, Corelnk, executable, unknown
        value = text
    return {base: value}


def format_value(path: Path, value: object, rtype: ResourceType | None) -> str:
    """The text form of one value (digest 6.2)."""
    checked = _values.check(path, value, rtype, _WHAT)
    if isinstance(checked, bool):
        return "1" if checked else "0"
    if isinstance(checked, int):
        return str(checked)
    if isinstance(checked, float):
        if not math.isfinite(checked):
            raise EncodeError(f"{_WHAT}: {path}: {checked} has no decimal form")
        return repr(checked)
    if isinstance(checked, ObjLink):
        return f"{checked.object_id}:{checked.instance_id}"
    if isinstance(checked, bytes):
        return base64.b64encode(checked).decode("ascii")
    return checked


def encode(base: Path, values: Mapping[Path, Value], types: TypeResolver) -> bytes:
    """Encode the single value of ``base`` as text/plain."""
    value = single_path(base, values, _WHAT)
    text = format_value(base, value, _values.resolve(types, base))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodeError(f"{_WHAT}: {base}: text is not encodable as UTF-8") from None
