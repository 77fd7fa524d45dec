"""Python representations of LwM2M resource values.

=================  ======================
LwM2M type         Python value
=================  ======================
String, Corelnk    ``str``
Integer, Time      ``int``
Unsigned Integer   ``int`` (>= 0)
Float              ``float``
Boolean            ``bool``
Opaque             ``bytes``
Objlnk             :class:`ObjLink`
=================  ======================

Decoded payloads are flat mappings from full resource (or resource-instance) paths to values:
``{Path.of(5, 0, 3): 1, Path.of(5, 0, 8, 0): 0, Path.of(5, 0, 8, 1): 2}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    from labkit.lwm2m.objects import ResourceType


@dataclass(frozen=True, order=True, slots=True)
class ObjLink:
    """An object link ``object_id:instance_id`` (Objlnk type); ``65535:65535`` is the null link."""

    object_id: int
    instance_id: int

    def __str__(self) -> str:
        return f"{self.object_id}:{self.instance_id}"

    @classmethod
    def parse(cls, text: str) -> ObjLink:
        from labkit.lwm2m.errors import DecodeError

        left, sep, right = text.partition(":")
        ascii_digits = left.isascii() and left.isdigit() and right.isascii() and right.isdigit()
        if not sep or not ascii_digits:
            raise DecodeError(f"not an object link: {text!r}")
        o, i = int(left), int(right)
        if o > 65535 or i > 65535:
            raise DecodeError(f"object link ids are 16-bit: {text!r}")
        return cls(o, i)


Value: TypeAlias = str | int | float | bool | bytes | ObjLink

#: Flat content of a payload: full resource or resource-instance path -> value.
Content: TypeAlias = Mapping[Path, Value]

#: Tells a decoder which LwM2M type a resource has (``None`` when unknown).
TypeResolver: TypeAlias = Callable[[Path], "ResourceType | None"]
