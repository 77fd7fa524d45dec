"""LwM2M paths: ``/O``, ``/O/I``, ``/O/I/R`` and ``/O/I/R/RI``.

A :class:`Path` is an immutable value; the root ``/`` is the path with no segments. Ids are
16-bit unsigned integers (0..65535); LwM2M reserves 65535 as "no id", which we refuse.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from labkit.lwm2m.errors import PathError

MAX_ID = 65534


@dataclass(frozen=True, order=True, slots=True)
class Path:
    """An LwM2M path as a tuple of up to four ids (object, instance, resource, res. instance)."""

    ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.ids) > 4:
            raise PathError(f"a path has at most 4 segments, got {len(self.ids)}")
        for i in self.ids:
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i <= MAX_ID:
                raise PathError(f"path ids are integers 0..{MAX_ID}, got {i!r}")

    @classmethod
    def of(cls, *ids: int) -> Path:
        """``Path.of(5, 0, 3)`` is ``/5/0/3``."""
        return cls(tuple(ids))

    @classmethod
    def parse(cls, text: str | Path) -> Path:
        """Parse ``"/5/0/3"`` (a leading ``/`` is optional; a trailing one is tolerated)."""
        if isinstance(text, Path):
            return text
        if not isinstance(text, str):
            raise PathError(f"not a path: {text!r}")
        return _parse_text(text)

    @classmethod
    def _from_text(cls, text: str) -> Path:
        body = text.strip()
        if body in ("", "/"):
            return cls(())
        body = body.removeprefix("/").removesuffix("/")
        parts = body.split("/")
        ids: list[int] = []
        for part in parts:
            if not part.isdigit() or not part.isascii():
                raise PathError(f"not an LwM2M path: {text!r}")
            ids.append(int(part))
        return cls(tuple(ids))

    @classmethod
    def from_segments(cls, segments: list[str] | tuple[str, ...]) -> Path:
        """Build a path from CoAP Uri-Path segments (``["5", "0", "3"]``)."""
        return cls.parse("/" + "/".join(segments))

    # -- accessors -------------------------------------------------------------------
    @property
    def object_id(self) -> int | None:
        return self.ids[0] if len(self.ids) > 0 else None

    @property
    def instance_id(self) -> int | None:
        return self.ids[1] if len(self.ids) > 1 else None

    @property
    def resource_id(self) -> int | None:
        return self.ids[2] if len(self.ids) > 2 else None

    @property
    def resource_instance_id(self) -> int | None:
        return self.ids[3] if len(self.ids) > 3 else None

    @property
    def level(self) -> int:
        """0 root, 1 object, 2 instance, 3 resource, 4 resource instance."""
        return len(self.ids)

    @property
    def is_root(self) -> bool:
        return not self.ids

    @property
    def is_object(self) -> bool:
        return len(self.ids) == 1

    @property
    def is_instance(self) -> bool:
        return len(self.ids) == 2

    @property
    def is_resource(self) -> bool:
        return len(self.ids) == 3

    @property
    def is_resource_instance(self) -> bool:
        return len(self.ids) == 4

    def child(self, i: int) -> Path:
        return Path((*self.ids, i))

    @property
    def parent(self) -> Path:
        if not self.ids:
            raise PathError("the root path has no parent")
        return Path(self.ids[:-1])

    def startswith(self, prefix: Path) -> bool:
        """True when ``prefix`` is this path or one of its ancestors."""
        return self.ids[: len(prefix.ids)] == prefix.ids

    def relative_to(self, prefix: Path) -> tuple[int, ...]:
        if not self.startswith(prefix):
            raise PathError(f"{self} is not below {prefix}")
        return self.ids[len(prefix.ids) :]

    @property
    def segments(self) -> list[str]:
        """CoAP Uri-Path segments."""
        return [str(i) for i in self.ids]

    def __str__(self) -> str:
        return "/" + "/".join(str(i) for i in self.ids)

    def __repr__(self) -> str:
        return f"Path('{self}')"


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Path:
    """:meth:`Path.parse` of a string, cached: the same few paths ("/4/0/2", "/5/0/3") are
    parsed hundreds of thousands of times in a fleet run, and a Path is immutable."""
    return Path._from_text(text)  # noqa: SLF001 - the class's own parser
