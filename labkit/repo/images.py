"""Firmware images: MCUboot images signed with imgtool, lab keys, verification and inspection.

This module owns what a firmware *file* is in the lab. It builds real MCUboot images with
``imgtool`` (the tool Zephyr and MCUboot devices use): a 32-byte header (magic ``0x96f3b83d``,
header size, image size, flags, version ``major.minor.revision+build``), padded to
``header_size``, then the payload, then the TLV area (SHA-256 of header + payload, the hash of
the signing key, and an Ed25519 or ECDSA-P256 signature over the hash). A simulated bootloader
calls :func:`verify_image` exactly as MCUboot would check an image before booting it.

What it never does: draw global randomness for payloads (they are a deterministic stream of
the seed and the version, so two lab runs serve byte-identical firmware; only ECDSA signatures
differ between builds, as ECDSA is randomised), talk to the network, or decide anything about
updates. Any other file can still be served and delivered as opaque bytes: nothing in the lab
forces a package to be an image; the device's bootloader is what judges it.

Keys
----
Lab keys live in ``data/keys/`` under the current directory (:func:`default_keys_dir`), so
``labkit image build`` and ``labkit device`` started in the same folder trust each other. They
are generated on first use (PEM, PKCS#8, file mode 0600) and reused afterwards; no private key
is ever committed (``.gitignore`` lists ``data/keys/``).

Broken images (for failure experiments)
---------------------------------------
``build_image(broken=...)`` makes images that a bootloader must refuse, each for one reason:

==================  ==================================================  ======================
``broken``          what is wrong                                       :func:`verify_image`
==================  ==================================================  ======================
``corrupt``         one payload byte flipped after signing              ``bad hash``
``wrong-key``       signed with another, freshly generated key          ``bad signature``
``unsigned``        hash TLV but no signature TLV                       ``no signature``
``truncated``       cut in the middle                                   ``truncated``
``not-an-image``    random-looking bytes without the MCUboot magic      ``bad magic``
``too-large``       correctly signed, but larger than the slot          ``too large``
==================  ==================================================  ======================

``too-large`` is the one a signature check cannot catch: its payload is max(size, slot_size + 1)
bytes (the slot defaults to ``size``), and only a bootloader that knows its slot size refuses it
(``verify_image(data, slot_size=...)``), as MCUboot does.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
from cryptography.exceptions import InvalidSignature
from imgtool import image as _img
from imgtool import keys as _keys
from imgtool.version import decode_version

#: Key kinds the lab can generate and sign with.
KEY_KINDS = ("ed25519", "ecdsa-p256")

#: Values of ``build_image(broken=...)``.
BROKEN = ("corrupt", "wrong-key", "unsigned", "truncated", "not-an-image", "too-large")

# Reasons reported by verify_image (Verification.reason).
OK = "ok"
BAD_MAGIC = "bad magic"
TRUNCATED = "truncated"
BAD_HEADER = "bad header"
BAD_TLV = "bad tlv"
BAD_HASH = "bad hash"
BAD_SIGNATURE = "bad signature"
NO_SIGNATURE = "no signature"
TOO_LARGE = "too large"
UNKNOWN_KEY = "unknown key"
#: Every value :attr:`Verification.reason` can take.
REASONS = (
    OK,
    BAD_MAGIC,
    TRUNCATED,
    BAD_HEADER,
    BAD_TLV,
    BAD_HASH,
    BAD_SIGNATURE,
    NO_SIGNATURE,
    TOO_LARGE,
    UNKNOWN_KEY,
)

IMAGE_MAGIC = _img.IMAGE_MAGIC
IMAGE_HEADER_SIZE = _img.IMAGE_HEADER_SIZE  # 32 bytes of header fields; header_size pads it
DEFAULT_HEADER_SIZE = 0x200  # what Zephyr's MCUboot builds use (CONFIG_ROM_START_OFFSET)

_HEADER = struct.Struct("<IIHHIIBBHII")  # magic, load_addr, hdr_size, ptlv_size, img_size,
#                                        flags, major, minor, revision, build, pad
_TLV_INFO = struct.Struct("<HH")  # magic, total length (info header included)
_TLV = struct.Struct("<HH")  # type (low byte for standard TLVs, reserved byte 0), length
_TLV_NAMES = {value: name for name, value in _img.TLV_VALUES.items()}
_HASH_TLVS = {0x10: "SHA256", 0x11: "SHA384", 0x12: "SHA512"}
_SIGNATURE_TLVS = {0x20: "RSA2048", 0x22: "ECDSASIG", 0x23: "RSA3072", 0x24: "ED25519"}
_SIG_TLV_TO_KIND = {"ED25519": "ed25519", "ECDSASIG": "ecdsa-p256"}


class ImageFormatError(ValueError):
    """The bytes are not a well-formed MCUboot image; :attr:`reason` is a :data:`REASONS` value."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# keys


def default_keys_dir() -> Path:
    """Where lab keys live: ``data/keys`` under the current directory."""
    return Path.cwd() / "data" / "keys"


def key_path(kind: str = "ed25519", keys_dir: Path | None = None) -> Path:
    """The path of the lab's private key of ``kind`` (it may not exist yet)."""
    _check_kind(kind)
    return Path(keys_dir or default_keys_dir()) / f"lab-{kind}.pem"


def ensure_key(kind: str = "ed25519", keys_dir: Path | None = None) -> Path:
    """Return the lab's private key of ``kind``, generating it with imgtool on first use.

    The key is a PEM (PKCS#8) file with mode 0600 in ``keys_dir`` (default
    :func:`default_keys_dir`). Two processes racing to create it end up with the same key: the
    file is written under a temporary name and linked into place only if no key exists yet.
    """
    path = key_path(kind, keys_dir)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _generate(kind)
    fd, tmp = tempfile.mkstemp(prefix=".keygen-", suffix=".pem", dir=path.parent)  # mode 0600
    os.close(fd)
    try:
        key.export_private(tmp)
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):  # someone else won the race: use theirs
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path


def public_key(kind: str = "ed25519", keys_dir: Path | None = None) -> Path:
    """Return a PEM file with the public part of the lab key (``lab-KIND.pub.pem``).

    This is what a device (its bootloader) needs to trust images; it is created next to the
    private key, which is generated first if needed.
    """
    private = ensure_key(kind, keys_dir)
    path = private.with_name(f"lab-{kind}.pub.pem")
    if not path.exists():
        key = _keys.load(str(private))
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(key.get_public_pem())
        os.replace(tmp, path)
    return path


def _check_kind(kind: str) -> None:
    if kind not in KEY_KINDS:
        raise ValueError(f"unknown key kind {kind!r}; one of {KEY_KINDS}")


def _generate(kind: str) -> Any:
    _check_kind(kind)
    return _keys.Ed25519.generate() if kind == "ed25519" else _keys.ECDSA256P1.generate()


def _load_key(path: Path) -> Any:
    try:
        key = _keys.load(str(path))
    except FileNotFoundError:
        raise ValueError(f"key file {path} does not exist") from None
    except Exception as exc:  # imgtool raises bare Exception for unsupported keys
        raise ValueError(f"{path} is not a usable key: {exc}") from None
    if key is None:
        raise ValueError(f"key {path} is password protected; lab keys have no password")
    return key


def _kind_of(key: Any) -> str:
    if isinstance(key, _keys.Ed25519Public):
        return "ed25519"
    if isinstance(key, _keys.ECDSA256P1Public):
        return "ecdsa-p256"
    raise ValueError(f"unsupported key type {type(key).__name__}; the lab uses {KEY_KINDS}")


# --------------------------------------------------------------------------------------------
# building


def firmware_payload(version: str, size: int, seed: int = 0) -> bytes:
    """The deterministic payload of a lab image: ``size`` bytes from the seed and the version.

    It starts with a readable tag (``labkit-fw <version> seed=<seed>``) and continues with a
    SHAKE-256 stream of the same text, so it looks like (incompressible) code, and the same
    seed and version always give the same bytes.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    tag = f"labkit-fw {version} seed={seed}\n".encode()
    stream = hashlib.shake_256(b"labkit-payload|" + tag).digest(max(size - len(tag), 0))
    return (tag + stream)[:size]


def build_image(
    *,
    version: str,
    size: int,
    out: Path | str | None = None,
    key: Path | str | None = None,
    key_kind: str = "ed25519",
    header_size: int = DEFAULT_HEADER_SIZE,
    slot_size: int | None = None,
    seed: int = 0,
    broken: str | None = None,
) -> bytes:
    """Build a signed MCUboot image with a ``size``-byte payload and return its bytes.

    Parameters
    ----------
    version
        Semantic version, as imgtool takes it: ``"1.2.3"`` or ``"1.2.3+4"`` (build number).
    size
        Payload size in bytes (the image adds ``header_size`` and about 100 bytes of TLVs).
    out
        Also write the image there (atomically).
    key
        Private key PEM to sign with; default: the lab key of ``key_kind`` (generated on first
        use in :func:`default_keys_dir`).
    key_kind
        ``"ed25519"`` or ``"ecdsa-p256"`` (ignored when ``key`` is given).
    header_size
        Header size with padding (>= 32; MCUboot/Zephyr default 0x200).
    slot_size
        Flash slot size: a normal build is refused (ValueError) if image plus MCUboot trailer
        does not fit; for ``broken="too-large"`` the image is made larger than this slot
        (default: a slot of ``size`` bytes, so the image is one byte of payload over it).
    seed
        Payload seed (see :func:`firmware_payload`).
    broken
        ``None`` or one of :data:`BROKEN` (see the module docstring).
    """
    if broken is not None and broken not in BROKEN:
        raise ValueError(f"unknown broken variant {broken!r}; one of {BROKEN}")
    if size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    if header_size < IMAGE_HEADER_SIZE or header_size > 0xFFFF:
        raise ValueError(f"header_size must be in {IMAGE_HEADER_SIZE}..65535, not {header_size}")
    semver = _decode_version(version)

    if broken == "not-an-image":
        return _maybe_write(_noise(version, size, seed), out)

    if broken == "too-large":
        slot = slot_size if slot_size is not None else size
        payload = firmware_payload(version, max(size, slot + 1), seed)
    else:
        payload = firmware_payload(version, size, seed)

    if broken == "unsigned":
        signing_key = None
    else:
        trusted = _load_key(Path(key)) if key is not None else _load_key(ensure_key(key_kind))
        signing_key = _generate(_kind_of(trusted)) if broken == "wrong-key" else trusted
        if not isinstance(signing_key, (_keys.PayloadSigner, _keys.DigestSigner)):
            raise ValueError(f"{key} holds a public key only; signing needs the private key")

    checked_slot = slot_size if broken != "too-large" else None
    data = bytearray(_sign(payload, semver, header_size, signing_key, checked_slot))

    if broken == "corrupt":
        if not payload:
            raise ValueError("a corrupt image needs a payload (size >= 1)")
        data[header_size + len(payload) // 2] ^= 0x01
    elif broken == "truncated":
        del data[len(data) // 2 :]
    return _maybe_write(bytes(data), out)


def _decode_version(version: str) -> Any:
    try:
        return decode_version(version)
    except ValueError:
        raise ValueError(
            f"invalid image version {version!r}: use major.minor.revision[+build], e.g. 1.2.3"
        ) from None


def _noise(version: str, size: int, seed: int) -> bytes:
    data = bytearray(hashlib.shake_256(f"labkit-noise|{version}|{seed}".encode()).digest(size))
    if data[:4] == struct.pack("<I", IMAGE_MAGIC):  # astronomically unlikely; be certain
        data[0] ^= 0xFF
    return bytes(data)


def _sign(payload: bytes, semver: Any, header_size: int, key: Any, slot_size: int | None) -> bytes:
    img = _img.Image(
        version=semver, header_size=header_size, pad_header=True, slot_size=slot_size or 0
    )
    with tempfile.TemporaryDirectory(prefix="labkit-img-") as tmp:
        src = Path(tmp) / "payload.bin"
        src.write_bytes(payload)
        img.load(str(src))
    try:
        # imgtool prints "sign the digest" to stdout; keep the lab's output clean
        with contextlib.redirect_stdout(io.StringIO()):
            img.create(key, "hash", None)
    except click.UsageError as exc:  # the only one expected: image too large for slot_size
        raise ValueError(f"cannot build image: {exc.message}") from None
    return bytes(img.payload)


def _maybe_write(data: bytes, out: Path | str | None) -> bytes:
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
    return data


# --------------------------------------------------------------------------------------------
# inspection


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageInfo:
    """What the header and TLV area of an MCUboot image say (no cryptography checked)."""

    magic: int
    header_size: int
    image_size: int  # payload bytes after the header
    protected_tlv_size: int
    load_addr: int
    flags: int
    flag_names: tuple[str, ...]
    version: str  # "1.2.3", or "1.2.3+4" when the build number is not 0
    imgtool_version: str  # always "major.minor.revision+build"
    tlvs: tuple[str, ...]  # TLV type names in image order (protected first)
    hash_alg: str | None
    hash_hex: str | None
    signed: bool
    signature_type: str | None  # "ED25519", "ECDSASIG", ...
    key_hash_hex: str | None
    total_size: int  # header + payload + TLV area
    file_size: int  # bytes given (may exceed total_size with slot padding)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
            for k, v in self.as_dict().items()
        )
        return f"<table>{rows}</table>"


def inspect_image(data: bytes) -> ImageInfo:
    """Parse an MCUboot image's header and TLVs.

    Raises
    ------
    ImageFormatError
        With ``reason`` ``"bad magic"`` (not an image), ``"truncated"`` (the header or TLV area
        runs past the end of ``data``), ``"bad header"`` or ``"bad tlv"``.
    """
    data = bytes(data)
    magic_bytes = struct.pack("<I", IMAGE_MAGIC)
    if data[:4] != magic_bytes[: len(data[:4])] or not data:
        raise ImageFormatError(BAD_MAGIC, "no MCUboot magic at the start: not an image")
    if len(data) < _HEADER.size:
        raise ImageFormatError(TRUNCATED, f"{len(data)} bytes: shorter than the image header")
    (magic, load_addr, hdr_size, ptlv_size, img_size, flags, major, minor, rev, build, _pad) = (
        _HEADER.unpack_from(data)
    )
    if hdr_size < _HEADER.size:
        raise ImageFormatError(BAD_HEADER, f"header size {hdr_size} < {_HEADER.size}")

    entries: list[tuple[int, bytes]] = []
    off = hdr_size + img_size
    if ptlv_size:
        off = _read_tlv_area(data, off, _img.TLV_PROT_INFO_MAGIC, entries, "protected TLV")
    end = _read_tlv_area(data, off, _img.TLV_INFO_MAGIC, entries, "TLV")

    names = tuple(_TLV_NAMES.get(t, f"0x{t:04x}") for t, _ in entries)
    hash_alg = hash_hex = sig_type = key_hash = None
    for t, value in entries:
        if t in _HASH_TLVS and hash_alg is None:
            hash_alg, hash_hex = _HASH_TLVS[t], value.hex()
        elif t in _SIGNATURE_TLVS and sig_type is None:
            sig_type = _SIGNATURE_TLVS[t]
        elif t == _img.TLV_VALUES["KEYHASH"]:
            key_hash = value.hex()
    flag_names = tuple(name for name, bit in _img.IMAGE_F.items() if flags & bit)
    short = f"{major}.{minor}.{rev}"
    return ImageInfo(
        magic=magic,
        header_size=hdr_size,
        image_size=img_size,
        protected_tlv_size=ptlv_size,
        load_addr=load_addr,
        flags=flags,
        flag_names=flag_names,
        version=short if build == 0 else f"{short}+{build}",
        imgtool_version=f"{short}+{build}",
        tlvs=names,
        hash_alg=hash_alg,
        hash_hex=hash_hex,
        signed=sig_type is not None,
        signature_type=sig_type,
        key_hash_hex=key_hash,
        total_size=end,
        file_size=len(data),
    )


def _read_tlv_area(
    data: bytes, off: int, magic: int, entries: list[tuple[int, bytes]], what: str
) -> int:
    if off + _TLV_INFO.size > len(data):
        raise ImageFormatError(TRUNCATED, f"image ends before its {what} area (offset {off})")
    found, total = _TLV_INFO.unpack_from(data, off)
    if found != magic:
        raise ImageFormatError(BAD_TLV, f"bad {what} info magic 0x{found:04x} at offset {off}")
    end = off + total
    if end > len(data):
        raise ImageFormatError(TRUNCATED, f"{what} area runs past the end ({end} > {len(data)})")
    pos = off + _TLV_INFO.size
    while pos < end:
        if pos + _TLV.size > end:
            raise ImageFormatError(BAD_TLV, f"{what} entry header crosses the area end")
        kind, length = _TLV.unpack_from(data, pos)
        pos += _TLV.size
        if pos + length > end:
            raise ImageFormatError(BAD_TLV, f"{what} entry 0x{kind:x} crosses the area end")
        entries.append((kind, data[pos : pos + length]))
        pos += length
    return int(end)


# --------------------------------------------------------------------------------------------
# verification


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """The outcome of checking an image the way MCUboot does before booting it."""

    ok: bool
    version: str | None  # from the header, when the image could be parsed
    reason: str  # one of REASONS; "ok" when ok
    detail: str = ""
    hash_hex: str | None = None

    def _repr_html_(self) -> str:
        from html import escape

        colour = "green" if self.ok else "crimson"
        text = f"{self.reason} (version {self.version})"
        if self.detail:
            text += f": {self.detail}"
        return f"<span style='color:{colour}'>{escape(text)}</span>"


def verify_image(
    data: bytes, *, key: Path | str | None = None, slot_size: int | None = None
) -> Verification:
    """Check an image's structure, hash and signature with imgtool, as a bootloader would.

    Parameters
    ----------
    data
        The image bytes (as downloaded or as stored in a slot).
    key
        PEM key (private or public) the bootloader trusts. Default: the lab key of the kind
        the image was signed with, in :func:`default_keys_dir` (never generated here: if it does
        not exist the image cannot be trusted and the reason is ``"unknown key"``).
    slot_size
        When given, an image larger than this is refused with ``"too large"``.

    Returns
    -------
    Verification
        ``ok`` is True only for an intact image signed by ``key``; otherwise ``reason`` says
        the first problem found, in the order MCUboot meets them: magic, header/TLV structure,
        size, hash, signature.
    """
    data = bytes(data)
    try:
        info = inspect_image(data)
    except ImageFormatError as exc:
        return Verification(ok=False, version=None, reason=exc.reason, detail=str(exc))
    version = info.version
    if slot_size is not None and len(data) > slot_size:
        return Verification(
            ok=False,
            version=version,
            reason=TOO_LARGE,
            detail=f"{len(data)} bytes do not fit a slot of {slot_size} bytes",
        )
    if info.hash_alg is None:
        return Verification(ok=False, version=version, reason=BAD_TLV, detail="no hash TLV")

    if not info.signed:
        result = _imgtool_verify(data, None)
        if result is _img.VerifyResult.INVALID_HASH:
            return Verification(ok=False, version=version, reason=BAD_HASH, detail="hash differs")
        return Verification(
            ok=False,
            version=version,
            reason=NO_SIGNATURE,
            detail="the image carries no signature TLV",
            hash_hex=info.hash_hex,
        )

    if key is None:
        kind = _SIG_TLV_TO_KIND.get(info.signature_type or "")
        candidate = key_path(kind) if kind else None
        if candidate is None or not candidate.exists():
            return Verification(
                ok=False,
                version=version,
                reason=UNKNOWN_KEY,
                detail=f"no lab key for a {info.signature_type} signature in {default_keys_dir()}",
            )
        key = candidate
    trusted = _load_key(Path(key))
    result = _imgtool_verify(data, trusted)
    if result is _img.VerifyResult.OK:
        if info.key_hash_hex is not None and info.hash_alg == "SHA256":
            # MCUboot picks the key by this hash; one that names another key is refused
            expected = hashlib.sha256(trusted.get_public_bytes()).hexdigest()
            if info.key_hash_hex != expected:
                return Verification(
                    ok=False,
                    version=version,
                    reason=BAD_SIGNATURE,
                    detail="the KEYHASH TLV names another key",
                )
        return Verification(ok=True, version=version, reason=OK, hash_hex=info.hash_hex)
    if result is _img.VerifyResult.INVALID_HASH:
        reason, detail = BAD_HASH, "the SHA TLV does not match header + payload"
    elif result is _img.VerifyResult.INVALID_MAGIC:
        reason, detail = BAD_MAGIC, "imgtool: invalid magic"
    elif result is _img.VerifyResult.INVALID_TLV_INFO_MAGIC:
        reason, detail = BAD_TLV, "imgtool: invalid TLV info magic"
    elif result is _img.VerifyResult.KEY_MISMATCH:
        reason, detail = BAD_SIGNATURE, "the image's hash algorithm does not fit the trusted key"
    else:
        reason = BAD_SIGNATURE
        detail = f"the {info.signature_type} signature does not verify with {Path(key).name}"
        if _kind_of(trusted) != _SIG_TLV_TO_KIND.get(info.signature_type or ""):
            detail += f" (a {_kind_of(trusted)} key)"
    return Verification(ok=False, version=version, reason=reason, detail=detail)


def _imgtool_verify(data: bytes, key: Any) -> Any:
    """Run ``imgtool.image.Image.verify`` (it reads a file) on ``data``.

    The file is an anonymous in-memory one where the system has them (Linux ``memfd``, read
    through ``/proc/self/fd``): every device of a fleet verifies its image at install, and a
    temporary directory per verification costs more than the check. Elsewhere it is a file in
    a temporary directory.
    """
    fd = _memfd_with(data)
    if fd is None:
        with tempfile.TemporaryDirectory(prefix="labkit-verify-") as tmp:
            path = Path(tmp) / "image.bin"
            path.write_bytes(data)
            return _run_imgtool_verify(str(path), key)
    try:
        return _run_imgtool_verify(f"/proc/self/fd/{fd}", key)
    finally:
        os.close(fd)


def _run_imgtool_verify(path: str, key: Any) -> Any:
    try:
        result, *_ = _img.Image.verify(path, key)
    except (struct.error, InvalidSignature, ValueError, IndexError):
        return _img.VerifyResult.INVALID_SIGNATURE
    return result


def _memfd_with(data: bytes) -> int | None:
    """A descriptor of an in-memory file holding ``data`` (None where there is no memfd)."""
    create = getattr(os, "memfd_create", None)
    if create is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        fd: int = create("labkit-verify", getattr(os, "MFD_CLOEXEC", 0))
    except OSError:
        return None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        os.close(fd)
        return None
    return fd
