"""Lesson 01's bytes on the wire: an OMA TLV payload taken apart (:func:`tlv_fields`) and one
path read in several content formats side by side (:func:`read_formats`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.course.common import hexdump, resource_name
from labkit.lwm2m.formats import ContentFormat
from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    import pandas as pd

    from labkit.runtime import DeviceHandle


__all__ = [
    "WIRE_FORMATS",
    "FormatComparison",
    "read_formats",
    "tlv_fields",
]


_TLV_KINDS = ("object instance", "resource instance", "multiple resource", "resource")


def tlv_fields(payload: bytes, base: str | Path = "/") -> pd.DataFrame:
    """Take an OMA TLV payload apart, one row per element (nested elements included).

    Each TLV element is a type byte (bits 7-6: what it is; bit 5: 16-bit id; bits 4-3: size of
    the length field; bits 2-0: a length up to 7), the id, an optional length, then the value.
    ``base`` is the path that was read (``/5/0``); it gives each element its full path.

    Returns
    -------
    DataFrame
        Columns ``offset`` (of the type byte), ``header`` (type byte, id and length as hex),
        ``kind`` ("resource", "multiple resource", "resource instance", "object instance"),
        ``path``, ``name`` (resource name, if the lab knows it), ``length`` and ``value`` (hex).
        A payload that is not valid TLV ends with a row whose ``kind`` is ``"error"``.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    start = Path.parse(base)

    def child(parent: Path, kind: int, ident: int) -> Path:
        if kind == 0:  # object instance below /O
            return Path((*parent.ids[:1], ident))
        if kind in (2, 3):  # resource below /O/I
            return Path((*parent.ids[:2], ident))
        return Path((*parent.ids[:3], ident))  # resource instance below /O/I/R

    def walk_level(data: bytes, offset: int, parent: Path) -> None:
        pos = 0
        while pos < len(data):
            head = data[pos]
            kind = head >> 6
            id_len = 2 if head & 0x20 else 1
            len_len = (head >> 3) & 0x03
            value_at = pos + 1 + id_len + len_len
            if value_at > len(data):
                rows.append(_tlv_error(offset + pos, data[pos:], "truncated header"))
                return
            ident = int.from_bytes(data[pos + 1 : pos + 1 + id_len], "big")
            length = (
                head & 0x07
                if len_len == 0
                else int.from_bytes(data[pos + 1 + id_len : value_at], "big")
            )
            if value_at + length > len(data):
                rows.append(_tlv_error(offset + pos, data[pos:], "value runs past the end"))
                return
            value = data[value_at : value_at + length]
            try:
                path = child(parent, kind, ident)
            except ValueError:
                path = parent
            rows.append(
                {
                    "offset": offset + pos,
                    "header": data[pos:value_at].hex(" "),
                    "kind": _TLV_KINDS[kind],
                    "path": str(path),
                    "name": resource_name(path),
                    "length": length,
                    "value": value.hex(" ") if kind in (1, 3) else "(nested below)",
                }
            )
            if kind in (0, 2):
                walk_level(value, offset + value_at, path)
            pos = value_at + length

    walk_level(bytes(payload), 0, start)
    columns = ["offset", "header", "kind", "path", "name", "length", "value"]
    return pd.DataFrame(rows, columns=columns)


def _tlv_error(offset: int, rest: bytes, why: str) -> dict[str, Any]:
    return {
        "offset": offset,
        "header": rest[:4].hex(" "),
        "kind": "error",
        "path": "",
        "name": why,
        "length": len(rest),
        "value": "",
    }


#: The three formats lesson 01 compares.
WIRE_FORMATS: tuple[ContentFormat, ...] = (
    ContentFormat.TLV,
    ContentFormat.SENML_JSON,
    ContentFormat.SENML_CBOR,
)


@dataclass(frozen=True, slots=True)
class _FormatRead:
    content_format: ContentFormat
    code: str
    payload: bytes
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FormatComparison:
    """One path read in several content formats: payloads and decoded values side by side."""

    path: str
    reads: tuple[_FormatRead, ...] = field(default_factory=tuple)

    def frame(self) -> pd.DataFrame:
        """Sizes per format.

        Returns
        -------
        DataFrame
            Columns ``format`` (name), ``content_format`` (number), ``media_type``, ``code``
            (the device's answer) and ``bytes`` (payload size); one row per format, in the
            order read.
        """
        import pandas as pd

        rows = [
            {
                "format": r.content_format.name,
                "content_format": int(r.content_format),
                "media_type": r.content_format.media_type,
                "code": r.code,
                "bytes": len(r.payload),
            }
            for r in self.reads
        ]
        return pd.DataFrame(
            rows, columns=["format", "content_format", "media_type", "code", "bytes"]
        )

    def values(self) -> pd.DataFrame:
        """Decoded values, one row per resource path and one column per format."""
        import pandas as pd

        paths: list[str] = []
        for r in self.reads:
            paths += [p for p in r.values if p not in paths]
        data = {r.content_format.name: [r.values.get(p) for p in paths] for r in self.reads}
        return pd.DataFrame({"path": paths, **data})

    def payload(self, content_format: int) -> bytes:
        """The raw payload read in ``content_format``."""
        for r in self.reads:
            if int(r.content_format) == int(content_format):
                return r.payload
        raise KeyError(f"{content_format} was not read")

    def __repr__(self) -> str:
        sizes = ", ".join(f"{r.content_format.name} {len(r.payload)} B" for r in self.reads)
        return f"<FormatComparison {self.path}: {sizes}>"

    def __str__(self) -> str:
        parts = []
        for r in self.reads:
            fmt = r.content_format
            parts.append(f"{fmt.name} ({int(fmt)}), {len(r.payload)} bytes, {r.code}")
            parts.append(hexdump(r.payload, 16))
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        esc = html.escape
        heads, dumps, decoded = [], [], []
        for r in self.reads:
            fmt = r.content_format
            heads.append(
                f"<th style='text-align:left'>{esc(fmt.name)} ({int(fmt)})<br>"
                f"<small>{esc(fmt.media_type)} — {len(r.payload)} bytes, {esc(r.code)}"
                "</small></th>"
            )
            dumps.append(
                "<td style='vertical-align:top;text-align:left'><pre style='font-size:11px'>"
                f"{esc(hexdump(r.payload, 8))}</pre></td>"
            )
            lines = "\n".join(f"{p} = {v!r}" for p, v in r.values.items())
            decoded.append(
                "<td style='vertical-align:top;text-align:left'><pre style='font-size:11px'>"
                f"{esc(lines)}</pre></td>"
            )
        return (
            f"<table><caption>Read {esc(self.path)} in {len(self.reads)} formats</caption>"
            f"<tr>{''.join(heads)}</tr><tr>{''.join(dumps)}</tr>"
            f"<tr>{''.join(decoded)}</tr></table>"
        )


def read_formats(
    device: DeviceHandle, path: str, formats: Iterable[int] = WIRE_FORMATS
) -> FormatComparison:
    """Read ``path`` of ``device`` (a :class:`~labkit.runtime.DeviceHandle`) once per format.

    Each read asks for one Content-Format with the CoAP Accept option; the answer keeps the
    raw payload and the values the server decoded from it.
    """
    reads = []
    for fmt in formats:
        response = device.read(path, accept=int(fmt), raw=True)
        reads.append(
            _FormatRead(
                content_format=ContentFormat(int(response.content_format or fmt)),
                code=str(response.code),
                payload=bytes(response.payload),
                values={str(p): v for p, v in response.values.items()},
            )
        )
    return FormatComparison(path=str(Path.parse(path)), reads=tuple(reads))
