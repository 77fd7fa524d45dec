"""application/octet-stream (content format 42): one Opaque value as raw bytes.

This module owns the simplest format: the payload *is* the value (digest 6.1; the firmware
Package /5/0/0 travels this way, pitfall 4). The requested path must be a resource or a
resource instance; decoding never fails for such a path, whatever the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

from labkit.lwm2m.errors import EncodeError
from labkit.lwm2m.formats import _values
from labkit.lwm2m.formats.text import single_path
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import TypeResolver, Value

__all__ = ["decode", "encode"]

_WHAT = "opaque"


def decode(payload: bytes, base: Path, types: TypeResolver) -> dict[Path, Value]:
    """The payload as the value of ``base`` (the resolver is not consulted)."""
    del types  # the bytes are the value whatever the resource's declared type
    return {_values.value_path(base, _WHAT): bytes(payload)}


def encode(base: Path, values: Mapping[Path, Value], types: TypeResolver) -> bytes:
    """The single ``bytes`` value of ``base``."""
    del types
    value = single_path(base, values, _WHAT)
    if not isinstance(value, bytes | bytearray | memoryview):
        raise EncodeError(f"{_WHAT}: {base} needs bytes, got {type(value).__name__}")
    return bytes(value)
