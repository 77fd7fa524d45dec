"""Firmware images and the firmware repository.

- :mod:`labkit.repo.images` builds, verifies and inspects MCUboot images signed with imgtool,
  and manages the lab keys (``data/keys/``), including deliberately broken images.
- :mod:`labkit.repo.repository` serves images over CoAP (Block2, ETag, Size2) and HTTP (Range,
  ETag, If-Match), logs every block and range it serves, and injects download interruptions.

The repository serves any bytes; whether they are a valid image is the device's bootloader's
question (:func:`verify_image`), not the repository's.
"""

from __future__ import annotations

from labkit.repo.images import (
    BROKEN,
    KEY_KINDS,
    REASONS,
    ImageFormatError,
    ImageInfo,
    Verification,
    build_image,
    default_keys_dir,
    ensure_key,
    firmware_payload,
    inspect_image,
    public_key,
    verify_image,
)
from labkit.repo.repository import FirmwareRepository

__all__ = [
    "BROKEN",
    "KEY_KINDS",
    "REASONS",
    "FirmwareRepository",
    "ImageFormatError",
    "ImageInfo",
    "Verification",
    "build_image",
    "default_keys_dir",
    "ensure_key",
    "firmware_payload",
    "inspect_image",
    "public_key",
    "verify_image",
]
