"""Shared value rules of the codecs: which Python value each LwM2M type takes.

Private to :mod:`labkit.lwm2m.formats`. The table is the one of :mod:`labkit.lwm2m.values`
(digest 6.2): String/Corelnk ``str``, Integer/Time ``int`` (signed 64-bit), Unsigned Integer
``int`` (0..2^64-1), Float ``float``, Boolean ``bool``, Opaque ``bytes``, Objlnk
:class:`~labkit.lwm2m.values.ObjLink`. Decoders call :func:`coerce` on what the wire gave them
(raising :class:`DecodeError`); encoders call :func:`check` (raising :class:`EncodeError`).
"""

from __future__ import annotations

import base64
import binascii
import re

from labkit.lwm2m.errors import DecodeError, EncodeError, Lwm2mError
from labkit.lwm2m.objects import ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, TypeResolver, Value

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1
_SIGNED = (ResourceType.INTEGER, ResourceType.TIME)
_TEXTUAL = (ResourceType.STRING, ResourceType.CORELNK)
_NATIVE = {bytes: ResourceType.OPAQUE, ObjLink: ResourceType.OBJLNK}
_OBJLNK = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")
_B64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


def resolve(types: TypeResolver, path: Path) -> ResourceType | None:
    """The type of ``path`` according to ``types`` (``None``: unknown)."""
    return types(path)


def value_path(path: Path, what: str) -> Path:
    """Check that ``path`` can carry a value (``/O/I/R`` or ``/O/I/R/RI``)."""
    if path.level < 3:
        raise DecodeError(f"{what}: a value needs a resource path, got {path}")
    return path


def make_path(ids: tuple[int, ...] | list[int], what: str) -> Path:
    """Build a :class:`Path` from wire ids, turning a bad id into a DecodeError."""
    try:
        return Path(tuple(ids))
    except Lwm2mError as exc:
        raise DecodeError(f"{what}: {exc}") from None


def parse_path(text: str, what: str) -> Path:
    """Parse a textual path from a payload (SenML names), as a DecodeError on failure."""
    try:
        return Path.parse(text)
    except (Lwm2mError, ValueError) as exc:
        raise DecodeError(f"{what}: bad path {text[:40]!r}: {exc}") from None


def parse_objlnk(text: str, what: str) -> ObjLink:
    """Parse ``"3:0"`` (ids 0..65535)."""
    m = _OBJLNK.fullmatch(text)
    if m is None or int(m.group(1)) > 0xFFFF or int(m.group(2)) > 0xFFFF:
        raise DecodeError(f"{what}: not an object link: {text[:40]!r}")
    return ObjLink(int(m.group(1)), int(m.group(2)))


def b64decode(text: str, what: str) -> bytes:
    """Decode base64url without padding (RFC 8428) or standard base64 with padding (Wakaama).

    Digest 6.4 and pitfall 14: accept both alphabets and optional ``=`` padding.
    """
    if not _B64.fullmatch(text):
        raise DecodeError(f"{what}: not base64: {text[:40]!r}")
    body = text.rstrip("=").translate(str.maketrans("-_", "+/"))
    if len(body) % 4 == 1:
        raise DecodeError(f"{what}: base64 of impossible length {len(body)}")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"{what}: bad base64: {exc}") from None


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 8428 section 4.3, SenML ``vd``)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_in_range(path: Path, value: int, rtype: ResourceType | None, err: type[Exception]) -> int:
    if rtype is None:
        low, high = INT64_MIN, UINT64_MAX
    elif rtype is ResourceType.UNSIGNED_INTEGER:
        low, high = 0, UINT64_MAX
    else:
        low, high = INT64_MIN, INT64_MAX
    if not low <= value <= high:
        raise err(f"{path}: integer {value} out of range for {rtype or 'an integer'}")
    return value


def coerce(path: Path, item: object, rtype: ResourceType | None, what: str) -> Value:
    """Turn a decoded wire item (``int``, ``float``, ``str``, ``bytes``, ``bool``, ObjLink)
    into the Python value of resource type ``rtype``; unknown type keeps the item as is.

    Integral floats are accepted for integer types, integers for Float, and a ``"3:0"`` text
    for Objlnk (SenML ``vs``, CBOR text).
    """
    if isinstance(item, bool):
        if rtype is None or rtype is ResourceType.BOOLEAN:
            return item
    elif isinstance(item, int | float) and (
        rtype in _SIGNED or rtype is ResourceType.UNSIGNED_INTEGER or rtype is None
    ):
        if isinstance(item, float):
            if rtype is None:
                return item
            if not item.is_integer():
                raise DecodeError(f"{what}: {path} is an integer resource, got {item!r}")
            item = int(item)
        return _int_in_range(path, item, rtype, DecodeError)
    elif isinstance(item, int | float) and rtype is ResourceType.FLOAT:
        try:
            return float(item)
        except OverflowError:
            raise DecodeError(f"{what}: {path}: {item} is out of float range") from None
    elif isinstance(item, str) and (rtype is None or rtype in _TEXTUAL):
        return item
    elif isinstance(item, str) and rtype is ResourceType.OBJLNK:
        return parse_objlnk(item, what)
    elif isinstance(item, bytes | ObjLink) and (rtype is None or rtype is _NATIVE.get(type(item))):
        return item
    shown = repr(item)[:40]
    raise DecodeError(f"{what}: {path} has type {rtype or 'unknown'}, got {shown}")


def check(path: Path, value: object, rtype: ResourceType | None, what: str) -> Value:
    """Check that ``value`` fits resource type ``rtype`` (any value when unknown) and return
    it normalised (``int`` for Float becomes ``float``, ``bytearray`` becomes ``bytes``)."""
    if rtype is ResourceType.NONE:
        raise EncodeError(f"{what}: {path} is executable and carries no value")
    if isinstance(value, bool):
        if rtype is None or rtype is ResourceType.BOOLEAN:
            return value
    elif isinstance(value, int):
        if rtype is None or rtype in _SIGNED or rtype is ResourceType.UNSIGNED_INTEGER:
            return _int_in_range(path, value, rtype, EncodeError)
        if rtype is ResourceType.FLOAT:
            try:
                return float(value)
            except OverflowError:
                raise EncodeError(f"{what}: {path}: {value} is out of float range") from None
    elif isinstance(value, float):
        if rtype is None or rtype is ResourceType.FLOAT:
            return value
    elif isinstance(value, str):
        if rtype is None or rtype in _TEXTUAL:
            return value
    elif isinstance(value, bytes | bytearray | memoryview):
        if rtype is None or rtype is ResourceType.OPAQUE:
            return bytes(value)
    elif isinstance(value, ObjLink) and (rtype is None or rtype is ResourceType.OBJLNK):
        if not (0 <= value.object_id <= 0xFFFF and 0 <= value.instance_id <= 0xFFFF):
            raise EncodeError(f"{what}: {path}: object link ids are 16-bit: {value}")
        return value
    shown = repr(value)[:40]
    raise EncodeError(f"{what}: {path} has type {rtype or 'unknown'}, cannot carry {shown}")
