"""The simulated device's bootloader: what a package is, and whether an image may be booted.

Two checks, at two points, as MCUboot-based devices do them (digest 1.3 and 1.7: Zephyr checks
a package's integrity "at download end or install"; Anjay lets the application decide):

1. **At download end** (:func:`classify_package`): the package *type*. An MCUboot image starts
   with the magic ``0x96f3b83d``; a lab package starts with ``LABKIT-FW <version>\\n`` (the
   lab's unsigned teaching packages, accepted unless the device is built with
   ``accept_lab_packages=False``). Anything else -> Result 6 (Unsupported package type) and
   the device returns to IDLE (T8). Size was checked during the download (Result 2).
2. **At the reboot after Execute Update** (:meth:`Bootloader.verify`): MCUboot's own checks
   with imgtool -- header and TLV structure, slot size, SHA-256 of header and payload, and
   the signature against the key the device trusts. A failure means the image is never
   booted: the old slot keeps running and the device reports Result 5 (T18: IDLE, image
   discarded). A lab package passes this check (it carries no signature to check).

After a successful check the bootloader swaps the slots and boots the new image in *test*
mode; the image runs its self-test (the ``boot-fail`` fault makes it fail) and confirms
itself. An unconfirmed image is reverted at the next boot (MCUboot's test swap): the old slot
runs again and the device reports Result 8.

Keys: the device trusts ``key`` (a PEM file, public or private); None means the lab key in
``data/keys/`` of the current directory (:func:`labkit.repo.images.default_keys_dir`), so
``labkit image build`` and ``labkit device`` started in the same folder trust each other.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from labkit.repo.images import IMAGE_MAGIC, Verification, verify_image

__all__ = [
    "LAB",
    "MCUBOOT",
    "PACKAGE_MAGIC",
    "Bootloader",
    "PackageKind",
    "classify_package",
    "package_version",
]

MCUBOOT = "mcuboot"
LAB = "lab"
_MAGIC = struct.pack("<I", IMAGE_MAGIC)

#: First-line marker of a lab package: ``LABKIT-FW 2.0.0\n`` then anything.
PACKAGE_MAGIC = b"LABKIT-FW "


def package_version(package: bytes) -> str | None:
    """The version announced by a lab package's first line, or None."""
    if not package.startswith(PACKAGE_MAGIC):
        return None
    end = package.find(b"\n", 0, 256)
    if end < 0:
        return None
    try:
        text = package[len(PACKAGE_MAGIC) : end].decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return text or None


@dataclass(frozen=True, slots=True)
class PackageKind:
    """What the download-end check found: ``kind`` is ``"mcuboot"`` or ``"lab"``."""

    kind: str
    version: str | None


def classify_package(data: bytes, *, accept_lab_packages: bool = True) -> PackageKind | None:
    """The package's type from its first bytes, or None (-> Result 6)."""
    head = bytes(data[:256])
    if head.startswith(_MAGIC) and len(data) >= 32:
        version = None
        if len(head) >= 24:
            major, minor, rev = struct.unpack_from("<BBH", head, 20)
            build = struct.unpack_from("<I", head, 24)[0] if len(head) >= 28 else 0
            version = f"{major}.{minor}.{rev}" + (f"+{build}" if build else "")
        return PackageKind(MCUBOOT, version)
    if accept_lab_packages and head.startswith(PACKAGE_MAGIC):
        return PackageKind(LAB, package_version(head))
    return None


class Bootloader:
    """Verifies images before booting them (see the module docstring).

    Parameters
    ----------
    key:
        The PEM key the device trusts (None: the lab key of ``data/keys/``).
    slot_size:
        Flash slot size; a larger image is refused ("too large").
    accept_lab_packages:
        Boot ``LABKIT-FW`` lab packages (unsigned) too.
    """

    __slots__ = ("accept_lab_packages", "key", "slot_size")

    def __init__(
        self, *, key: Path | str | None, slot_size: int, accept_lab_packages: bool = True
    ) -> None:
        self.key = None if key is None else Path(key)
        self.slot_size = int(slot_size)
        self.accept_lab_packages = accept_lab_packages

    def verify(self, data: bytes, *, sha256: str | None = None) -> Verification:
        """MCUboot's boot-time check of an image (imgtool), or the lab-package check.

        A lab package has no hash of its own; ``sha256`` (the digest the device computed while
        receiving it) stands in, so a bit flipped in flash is caught for both kinds.
        """
        if self.accept_lab_packages and data.startswith(PACKAGE_MAGIC):
            version = package_version(data[:256])
            if len(data) > self.slot_size:
                return Verification(ok=False, version=version, reason="too large")
            if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
                return Verification(
                    ok=False, version=version, reason="bad hash", detail="flash content changed"
                )
            return Verification(ok=True, version=version, reason="ok")
        try:
            return verify_image(data, key=self.key, slot_size=self.slot_size)
        except ValueError as exc:  # the trusted key file is missing or unusable
            return Verification(ok=False, version=None, reason="unknown key", detail=str(exc))

    def __repr__(self) -> str:
        return f"<Bootloader key={self.key or 'lab key'} slot={self.slot_size} B>"
