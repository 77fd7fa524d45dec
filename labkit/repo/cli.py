"""``labkit image build|verify|inspect``: MCUboot images signed with imgtool, from the shell.

::

    labkit image build --version 2.0.0 --size 65536 --out fw.bin [--key FILE]
                       [--broken corrupt|wrong-key|unsigned|truncated|not-an-image|too-large]
    labkit image verify fw.bin [--key FILE] [--slot-size BYTES]
    labkit image inspect fw.bin [--json]

Keys default to the lab key in ``data/keys/`` of the current directory (generated on first
use), so ``labkit image build`` and ``labkit device`` started in the same folder trust each
other (DESIGN.md section 5). Exit codes: 0 success (``verify``: the image would boot), 1
failure (``verify``: it would not; ``inspect``: not an image), 2 usage errors.

This module parses arguments and prints; :mod:`labkit.repo.images` does the work.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from labkit.repo.images import (
    BROKEN,
    KEY_KINDS,
    ImageFormatError,
    build_image,
    default_keys_dir,
    inspect_image,
    key_path,
    verify_image,
)

__all__ = ["configure_image", "run_image"]


def _size(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size in bytes, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a size must be >= 0, got {text!r}")
    return value


def configure_image(p: argparse.ArgumentParser) -> None:
    """Add the ``build``, ``verify`` and ``inspect`` subcommands to ``p``."""
    sub = p.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="build a signed MCUboot image")
    build.add_argument("--version", required=True, help="image version, e.g. 2.0.0 or 2.0.0+3")
    build.add_argument("--size", type=_size, required=True, help="payload bytes")
    build.add_argument("--out", type=Path, required=True, metavar="FILE", help="output file")
    build.add_argument(
        "--key", type=Path, metavar="FILE", help="private key PEM (default: lab key)"
    )
    build.add_argument(
        "--key-kind", choices=KEY_KINDS, default="ed25519", help="lab key kind (ed25519)"
    )
    build.add_argument("--broken", choices=BROKEN, help="make an image a bootloader must refuse")
    build.add_argument("--slot-size", type=_size, help="flash slot size the image must fit")
    build.add_argument("--seed", type=int, default=0, help="payload seed (default 0)")

    verify = sub.add_parser("verify", help="check hash and signature as MCUboot would")
    verify.add_argument("file", type=Path)
    verify.add_argument("--key", type=Path, metavar="FILE", help="trusted key (default: lab key)")
    verify.add_argument("--slot-size", type=_size, help="refuse images larger than this")

    inspect = sub.add_parser("inspect", help="print an image's header and TLVs")
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--json", action="store_true", help="one JSON object")


def _fail(text: str) -> None:
    print(f"labkit image: {text}", file=sys.stderr, flush=True)


def run_image(args: argparse.Namespace) -> int:
    """Run one ``labkit image`` action; returns the exit code."""
    action = args.image_command
    if action == "build":
        return _build(args)
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        _fail(f"cannot read {args.file}: {exc.strerror or exc}")
        return 1
    if action == "verify":
        return _verify(args, data)
    return _inspect(args, data)


def _build(args: argparse.Namespace) -> int:
    try:
        data = build_image(
            version=args.version,
            size=args.size,
            out=args.out,
            key=args.key,
            key_kind=args.key_kind,
            slot_size=args.slot_size,
            seed=args.seed,
            broken=args.broken,
        )
    except (ValueError, OSError) as exc:
        _fail(str(exc))
        return 1
    key = args.key if args.key is not None else key_path(args.key_kind, default_keys_dir())
    what = f"broken={args.broken}" if args.broken else f"signed with {key}"
    print(f"built {args.out} version {args.version}, {len(data)} bytes, {what}", flush=True)
    return 0


def _verify(args: argparse.Namespace, data: bytes) -> int:
    try:
        check = verify_image(data, key=args.key, slot_size=args.slot_size)
    except ValueError as exc:  # an unusable key file
        _fail(str(exc))
        return 1
    if check.ok:
        print(f"OK {args.file} version {check.version} sha256 {check.hash_hex}", flush=True)
        return 0
    detail = f": {check.detail}" if check.detail else ""
    print(f"FAIL {args.file} {check.reason}{detail}", flush=True)
    return 1


def _inspect(args: argparse.Namespace, data: bytes) -> int:
    try:
        info = inspect_image(data)
    except ImageFormatError as exc:
        print(f"FAIL {args.file} {exc.reason}: {exc}", flush=True)
        return 1
    fields = info.as_dict()
    if args.json:
        print(json.dumps(fields, sort_keys=True), flush=True)
        return 0
    for name, value in fields.items():
        if isinstance(value, tuple):
            value = ", ".join(value) or "-"
        elif isinstance(value, int) and name in ("magic", "flags", "load_addr"):
            value = f"0x{value:08x}"
        print(f"{name}: {value}", flush=True)
    return 0
