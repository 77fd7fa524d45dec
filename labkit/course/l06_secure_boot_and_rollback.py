"""Lesson 06, secure boot and rollback (``notebooks/06_secure_boot_and_rollback``): a
tampered image (:func:`flip_byte`), images checked as a bootloader does
(:func:`verify_table`), what each device holds in its two flash slots (:func:`flash_table`),
and the lesson's exercises ``secureboot.*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from labkit.course.common import fast_mode, lab_key, wire
from labkit.course.exercises import check, hint, plain_words, question, register

if TYPE_CHECKING:
    from pathlib import Path as FsPath

    import pandas as pd

    from labkit.runtime import Lab


__all__ = [
    "check",
    "fast_mode",
    "flash_table",
    "flip_byte",
    "hint",
    "lab_key",
    "question",
    "verify_table",
    "wire",
]


def flip_byte(image: bytes, offset: int | None = None) -> bytes:
    """A copy of ``image`` with one bit of one byte flipped (a tampered or damaged image).

    ``offset`` defaults to the middle of an MCUboot image's payload (past the header), so the
    header and the TLVs -- version, hash, signature -- stay exactly as they were signed.

    Raises
    ------
    ValueError
        For an empty image or an offset outside it.
    """
    data = bytearray(image)
    if not data:
        raise ValueError("an empty image has no byte to flip")
    if offset is None:
        from labkit.repo.images import ImageFormatError, inspect_image

        try:
            info = inspect_image(bytes(data))
            offset = info.header_size + info.image_size // 2
        except ImageFormatError:
            offset = len(data) // 2
    if not 0 <= offset < len(data):
        raise ValueError(f"offset {offset} is outside the {len(data)}-byte image")
    data[offset] ^= 0x01
    return bytes(data)


def verify_table(images: Mapping[str, bytes], key: FsPath | None = None) -> pd.DataFrame:
    """Check each image as the device's bootloader does (:func:`labkit.repo.images.verify_image`
    with the trusted ``key``, default the public part of :func:`lab_key`).

    Returns
    -------
    DataFrame
        One row per image, in the order given: ``image`` (its name), ``bytes``, ``version``
        (from the header), ``ok`` (bool), ``reason`` ("ok", "bad hash", "bad signature",
        "bad magic" ...), ``detail``, ``hash_tlv`` (the SHA-256 the image carries, first 16
        hex digits) and ``hash_now`` (SHA-256 of its header and payload as they are now);
        RangeIndex.
    """
    import hashlib

    import pandas as pd

    from labkit.repo.images import ImageFormatError, inspect_image, public_key, verify_image

    if key is None:
        key = public_key("ed25519", lab_key().parent)
    rows = []
    for name, data in images.items():
        check = verify_image(data, key=key)
        try:
            info = inspect_image(data)
        except ImageFormatError:
            carried = now = None
        else:
            carried = (info.hash_hex or "")[:16] or None
            signed_part = data[: info.header_size + info.image_size + info.protected_tlv_size]
            now = hashlib.sha256(signed_part).hexdigest()[:16]
        rows.append(
            {
                "image": name,
                "bytes": len(data),
                "version": check.version,
                "ok": check.ok,
                "reason": check.reason,
                "detail": check.detail,
                "hash_tlv": carried,
                "hash_now": now,
            }
        )
    columns = ["image", "bytes", "version", "ok", "reason", "detail", "hash_tlv", "hash_now"]
    return pd.DataFrame(rows, columns=columns)


def _slot_text(data: bytes) -> str:
    from labkit.client.bootloader import classify_package

    if not data:
        return "(empty)"
    kind = classify_package(data)
    if kind is None:
        return f"{len(data)} bytes, not an image"
    name = "MCUboot image" if kind.kind == "mcuboot" else "lab package"
    return f"{name} {kind.version or '?'}"


def flash_table(lab: Lab, endpoints: Iterable[str]) -> pd.DataFrame:
    """What each simulated device has in its two flash slots, and which one it runs.

    Returns
    -------
    DataFrame
        One row per device: ``device``, ``running`` (the active slot, "a" or "b"),
        ``slot_a`` and ``slot_b`` (what the slot file holds: "MCUboot image 2.0.0", "lab
        package 1.0.0", "(empty)"), ``fw_version`` (/3/0/3), ``state`` and ``result``
        (/5/0/3 and /5/0/5); RangeIndex.
    """
    import pandas as pd

    def snapshot() -> list[dict[str, Any]]:
        rows = []
        for endpoint in endpoints:
            sim = lab.device(endpoint).simulated
            if sim is None:
                raise LookupError(f"{endpoint} is not a simulated device of this lab")
            slots = {}
            for slot in ("a", "b"):
                data = sim.storage.read_slot(slot) if sim.storage.materialised else b""
                if slot == sim.active_slot and not data:
                    data = sim.active_image()
                slots[slot] = _slot_text(data)
            rows.append(
                {
                    "device": endpoint,
                    "running": sim.active_slot,
                    "slot_a": slots["a"],
                    "slot_b": slots["b"],
                    "fw_version": sim.firmware_version,
                    "state": f"{int(sim.fw.state)} {sim.fw.state.name}",
                    "result": f"{int(sim.fw.result)} {sim.fw.result.name}",
                }
            )
        return rows

    columns = ["device", "running", "slot_a", "slot_b", "fw_version", "state", "result"]
    return pd.DataFrame(lab.call(snapshot, timeout=10), columns=columns)


_CHECK_WORDS = (
    "hash",
    "sha",
    "signature",
    "signed",
    "verif",
    "integrity",
    "checksum",
    "digest",
    "mismatch",
)


@register(
    "secureboot.never_booted",
    notebook="06_secure_boot_and_rollback",
    question="Why is a tampered image never booted? Answer in a few words.",
    hint="Compare hash_tlv and hash_now of the tampered copy in the verify table.",
    solution="its SHA-256 no longer matches the hash in its TLVs, so the bootloader refuses it",
)
def _secureboot_never_booted(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or not plain_words(answer):
        return False, "answer in a few words, as text"
    words = plain_words(answer)
    if any(w in words for w in _CHECK_WORDS):
        return True, (
            "before it boots anything, the bootloader recomputes the SHA-256 of header and "
            "payload and compares it with the hash TLV, then checks the signature over that "
            "hash with the key it trusts. One changed byte changes the hash: the check fails, "
            "the image is not booted, the old slot keeps running and the device reports 5."
        )
    if "roll" in words or "revert" in words:
        return False, (
            "a rollback happens to an image that *was* booted (Result 8); a tampered one "
            "never gets that far"
        )
    if "download" in words or "transfer" in words:
        return False, "the tampered image downloads fine (State 2); it is stopped later"
    return False, "what does the bootloader compute and compare before it boots an image?"


@register(
    "secureboot.slot_after_rollback",
    notebook="06_secure_boot_and_rollback",
    question=(
        "The devices run from slot a and download into slot b. Which slot runs after a "
        "rollback? Answer 'a' or 'b'."
    ),
    hint="The flash table shows the running slot of each device.",
    solution="a",
)
def _secureboot_slot_after_rollback(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str):
        return False, "answer with one letter, 'a' or 'b'"
    words = set(plain_words(answer).split())
    old = bool(words & {"a", "old", "previous", "primary", "original"})
    new = bool(words & {"b", "new", "secondary"})
    if old and not new:
        return True, (
            "slot a, the old one: the new image ran from slot b in test mode, never "
            "confirmed itself, and the bootloader swapped back, so /3/0/3 names the old "
            "version again (MCUboot's test swap and revert)."
        )
    if new and not old:
        return False, (
            "slot b held the new image, which failed; a rollback goes back to where the "
            "device came from"
        )
    return False, "answer with one slot, 'a' or 'b'"


@register(
    "secureboot.verifying_key",
    notebook="06_secure_boot_and_rollback",
    question=(
        "Which key does the device's bootloader use to verify an image's signature: the "
        "lab key's private part or its public part?"
    ),
    hint="Which of the two files did the devices get as trusted_key?",
    solution="the public part of the lab key",
)
def _secureboot_verifying_key(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str):
        return False, "answer in words: the private part or the public part"
    words = set(plain_words(answer).split())
    public, private = "public" in words, bool(words & {"private", "secret"})
    if public and not private:
        return True, (
            "the public part: whoever builds images signs them with the private key, which "
            "never leaves the build machine; devices hold only the public key, which can "
            "check a signature but cannot make one."
        )
    if private and not public:
        return False, (
            "the private key makes signatures; a device holding it could be read out and "
            "used to sign anything, so devices get the other part"
        )
    return False, "answer with one part: the private part or the public part"
