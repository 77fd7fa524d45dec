"""SenML JSON (110) and SenML CBOR (112) as LwM2M 1.1+ uses them, and old LwM2M JSON (11543).

This module owns SenML records (RFC 8428; digest 6.4): resolving names (``bn`` + ``n``),
picking the value field by type, and writing the records LwM2M clients write.

Decoding
    Every record's full name ``bn + n`` is parsed as a path; it must be a resource or a
    resource-instance path. Names are **not** required to lie below the requested path (a
    Send or composite payload names any path), so any full path is accepted. Both name styles
    seen on the wire work: Wakaama ``"bn":"/3/0/","n":"0"`` and Anjay ``"bn":"/3/0","n":"/0"``.
    Records without a value (Read-Composite requests) are skipped; when a name repeats (a time
    series), the last record wins. ``bv`` is added to ``v`` (RFC 8428 section 4.5.1); ``bt``,
    ``t``, ``u``, ``bu``, ``s``, ``bs``, ``ut`` and ``bver`` are ignored; a field whose name
    ends in ``_`` (must-understand) is rejected. ``vd`` in JSON is accepted as base64url
    without padding (RFC 8428, Leshan) and as standard base64 with padding (Wakaama, digest
    pitfall 14). The value field must fit the resource type from the resolver.

Encoding
    The first record carries ``bn``: the requested path itself when the payload is that one
    resource (``[{"bn":"/5/0/3","v":0}]``, as Anjay writes), else the requested path with a
    trailing ``/`` and each record a relative ``n`` (``[{"bn":"/5/0/","n":"3","v":2}, ...]``,
    digest 6.4). Numbers go in ``v``, strings in ``vs``, booleans in ``vb``, opaque in ``vd``
    (base64url without padding in JSON, a byte string in CBOR), object links in ``vlo``.
    Records are sorted by path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from labkit.lwm2m.errors import DecodeError, EncodeError
from labkit.lwm2m.formats import _values, cbor
from labkit.lwm2m.objects import ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, TypeResolver, Value

__all__ = [
    "decode_cbor",
    "decode_json",
    "decode_lwm2m_json",
    "encode_cbor",
    "encode_json",
]

# RFC 8428 section 6 (digest 6.4): CBOR labels of the SenML fields; "vlo" keeps a text key.
CBOR_LABELS: Mapping[int, str] = {
    -1: "bver",
    -2: "bn",
    -3: "bt",
    -4: "bu",
    -5: "bv",
    -6: "bs",
    0: "n",
    1: "u",
    2: "v",
    3: "vs",
    4: "vb",
    5: "s",
    6: "t",
    7: "ut",
    8: "vd",
}
_LABEL_OF = {name: label for label, name in CBOR_LABELS.items()}
_VALUE_FIELDS = ("v", "vs", "vb", "vd", "vlo")


def _is_number(item: object) -> bool:
    return isinstance(item, int | float) and not isinstance(item, bool)


def _records(
    records: object, types: TypeResolver, what: str, *, vd_text: bool
) -> dict[Path, Value]:
    """Resolve SenML records (already with text field names) to a flat path -> value dict."""
    if not isinstance(records, list):
        raise DecodeError(f"{what}: the payload must be an array of records")
    out: dict[Path, Value] = {}
    base_name = ""
    base_value: int | float | None = None
    for record in records:
        if not isinstance(record, dict):
            raise DecodeError(f"{what}: a record must be a map")
        for key in record:
            if key.endswith("_"):
                raise DecodeError(f"{what}: must-understand field {key[:20]!r} not supported")
        if "bn" in record:
            if not isinstance(record["bn"], str):
                raise DecodeError(f"{what}: bn must be a string")
            base_name = record["bn"]
        if "bv" in record:
            if not _is_number(record["bv"]):
                raise DecodeError(f"{what}: bv must be a number")
            base_value = record["bv"]
        name = record.get("n", "")
        if not isinstance(name, str):
            raise DecodeError(f"{what}: n must be a string")
        present = [f for f in _VALUE_FIELDS if f in record]
        if not present:
            continue  # a name-only record (Read-Composite request): no value to report
        if len(present) > 1:
            raise DecodeError(f"{what}: a record has several values: {present}")
        field = present[0]
        item = record[field]
        full = base_name + name
        if not full:
            raise DecodeError(f"{what}: a record has no name")
        path = _values.value_path(_values.parse_path(full, what), what)
        wire: object
        if field == "v":
            if not _is_number(item):
                raise DecodeError(f"{what}: {path}: v must be a number")
            try:
                wire = item if base_value is None else base_value + item
            except OverflowError:
                raise DecodeError(f"{what}: {path}: bv + v is out of range") from None
        elif field == "vs":
            if not isinstance(item, str):
                raise DecodeError(f"{what}: {path}: vs must be a string")
            wire = item
        elif field == "vb":
            if not isinstance(item, bool):
                raise DecodeError(f"{what}: {path}: vb must be a boolean")
            wire = item
        elif field == "vd":
            if vd_text and isinstance(item, str):
                wire = _values.b64decode(item, what)
            elif not vd_text and isinstance(item, bytes):
                wire = item
            else:
                raise DecodeError(f"{what}: {path}: bad vd")
        else:  # vlo
            if not isinstance(item, str):
                raise DecodeError(f"{what}: {path}: vlo must be a string")
            wire = _values.parse_objlnk(item, what)
        out[path] = _values.coerce(path, wire, _values.resolve(types, path), what)
    return out


def _reject_constant(name: str) -> object:
    raise DecodeError(f"JSON: {name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DecodeError(f"JSON: duplicate key {key[:20]!r}")
        result[key] = value
    return result


def _load_json(payload: bytes, what: str) -> object:
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{what}: payload is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"{what}: not JSON: {str(exc)[:80]}") from None


def decode_json(payload: bytes, base: Path, types: TypeResolver) -> dict[Path, Value]:
    """Decode SenML JSON (110). ``base`` is not needed: names are absolute."""
    del base
    return _records(_load_json(payload, "SenML JSON"), types, "SenML JSON", vd_text=True)


def decode_cbor(payload: bytes, base: Path, types: TypeResolver) -> dict[Path, Value]:
    """Decode SenML CBOR (112). ``base`` is not needed: names are absolute."""
    del base
    what = "SenML CBOR"
    doc = cbor.loads(payload)
    if not isinstance(doc, list):
        raise DecodeError(f"{what}: the payload must be an array of records")
    records: list[object] = []
    for record in doc:
        if not isinstance(record, dict):
            raise DecodeError(f"{what}: a record must be a map")
        named: dict[str, object] = {}
        for key, value in record.items():
            if isinstance(key, int) and not isinstance(key, bool):
                name = CBOR_LABELS.get(key)
                if name is None:
                    continue  # an unknown label is ignored (RFC 8428 section 4.4)
            elif isinstance(key, str):
                name = key  # "vlo" and tolerated text labels
            else:
                raise DecodeError(f"{what}: a record key must be an integer or a string")
            if name in named:
                raise DecodeError(f"{what}: field {name[:20]!r} given twice")
            named[name] = value
        records.append(named)
    return _records(records, types, what, vd_text=False)


def decode_lwm2m_json(payload: bytes, base: Path, types: TypeResolver) -> dict[Path, Value]:
    """Decode old LwM2M JSON (11543, LwM2M 1.0; digest 6.5).

    ``{"bn":"/5/0/","e":[{"n":"3","v":2},{"n":"6","sv":"fw"},{"n":"x","bv":true}]}``:
    ``sv`` string (base64 for Opaque resources), ``v`` number, ``bv`` boolean, ``ov`` object
    link. Without ``bn``, names are relative to the requested path.
    """
    what = "LwM2M JSON"
    doc = _load_json(payload, what)
    if not isinstance(doc, dict) or not isinstance(doc.get("e"), list):
        raise DecodeError(f'{what}: expected an object with an "e" array')
    base_name = doc.get("bn", str(base).rstrip("/") + "/")
    if not isinstance(base_name, str):
        raise DecodeError(f"{what}: bn must be a string")
    out: dict[Path, Value] = {}
    for entry in doc["e"]:
        if not isinstance(entry, dict):
            raise DecodeError(f"{what}: an entry must be an object")
        name = entry.get("n", "")
        if not isinstance(name, str):
            raise DecodeError(f"{what}: n must be a string")
        present = [f for f in ("v", "sv", "bv", "ov") if f in entry]
        if len(present) != 1:
            raise DecodeError(f"{what}: an entry needs exactly one value, got {present}")
        path = _values.value_path(_values.parse_path(base_name + name, what), what)
        rtype = _values.resolve(types, path)
        item = entry[present[0]]
        wire: object
        if present[0] == "v" and _is_number(item):
            wire = item
        elif present[0] == "sv" and isinstance(item, str):
            opaque = rtype is ResourceType.OPAQUE
            wire = _values.b64decode(item, what) if opaque else item
        elif present[0] == "bv" and isinstance(item, bool):
            wire = item
        elif present[0] == "ov" and isinstance(item, str):
            wire = _values.parse_objlnk(item, what)
        else:
            raise DecodeError(f"{what}: {path}: bad {present[0]} value")
        out[path] = _values.coerce(path, wire, rtype, what)
    return out


# -- encoding --------------------------------------------------------------------------------


def _build(
    base: Path, values: Mapping[Path, Value], types: TypeResolver, what: str, *, vd_text: bool
) -> list[dict[str, object]]:
    for path in values:
        if not path.startswith(base) or path.level < 3:
            raise EncodeError(f"{what}: {path} is not a resource path at or below {base}")
    single = list(values) == [base]
    records: list[dict[str, object]] = []
    for path in sorted(values):
        record: dict[str, object] = {}
        if not records:
            record["bn"] = str(base) if single else str(base).rstrip("/") + "/"
        if not single:
            record["n"] = "/".join(str(i) for i in path.relative_to(base))
        value = _values.check(path, values[path], _values.resolve(types, path), what)
        if isinstance(value, bool):
            record["vb"] = value
        elif isinstance(value, int | float):
            if vd_text and isinstance(value, float) and not math.isfinite(value):
                raise EncodeError(f"{what}: {path}: {value} is not a JSON number")
            record["v"] = value
        elif isinstance(value, str):
            record["vs"] = value
        elif isinstance(value, bytes):
            record["vd"] = _values.b64url(value) if vd_text else value
        else:
            assert isinstance(value, ObjLink)
            record["vlo"] = str(value)
        records.append(record)
    return records


def encode_json(base: Path, values: Mapping[Path, Value], types: TypeResolver) -> bytes:
    """Encode SenML JSON (110), compact, UTF-8."""
    what = "SenML JSON"
    records = _build(base, values, types, what, vd_text=True)
    try:
        text = json.dumps(records, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise EncodeError(f"{what}: {exc}") from None


def encode_cbor(base: Path, values: Mapping[Path, Value], types: TypeResolver) -> bytes:
    """Encode SenML CBOR (112) with the integer labels of RFC 8428 (``vlo`` as text)."""
    records = _build(base, values, types, "SenML CBOR", vd_text=False)
    return cbor.dumps([{_LABEL_OF.get(k, k): v for k, v in r.items()} for r in records])
