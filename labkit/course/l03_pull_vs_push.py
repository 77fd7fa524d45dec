"""Lesson 03, PULL versus PUSH (``notebooks/03_pull_vs_push``): what a device's /5 says about
delivery (:func:`delivery_table`), deliveries compared stage by stage (:func:`compare`), and
the lesson's exercises ``delivery.*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from labkit.course.common import fast_mode, log, package, resource_name
from labkit.course.exercises import (
    as_count,
    as_path,
    check,
    hint,
    path_name,
    question,
    register,
    words_of,
)
from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    import pandas as pd

    from labkit.fota.outcome import Outcome


__all__ = [
    "check",
    "compare",
    "delivery_table",
    "fast_mode",
    "hint",
    "log",
    "package",
    "question",
]


_DELIVERY_MEANINGS = {
    0: "the server may only write a Package URI (/5/0/1): PULL",
    1: "the server may only write the image to /5/0/0: PUSH",
    2: "PUSH (/5/0/0) or PULL (/5/0/1): the server picks",
}


def delivery_table(values: Mapping[str | Path, Any]) -> pd.DataFrame:
    """What a device's /5 says about delivery: every Protocol Support entry (/5/0/8/i) and the
    Delivery Method (/5/0/9), each with its meaning.

    ``values`` is a Read answer (``device.read("/5/0")``, ``{Path: value}``); other resources
    in it are ignored. A missing /5/0/8 is a row too: the device lists nothing, and a server
    may assume CoAP only (the object's default).

    Returns
    -------
    DataFrame
        Columns ``path``, ``name`` (registry name), ``value`` and ``meaning`` (URI scheme and
        protocol, or what the Delivery Method allows); Protocol Support rows first.
    """
    import pandas as pd

    from labkit.lwm2m.objects import DeliveryMethod, ProtocolSupport

    parsed = sorted((Path.parse(p), v) for p, v in values.items())
    protocols = [(p, v) for p, v in parsed if p.ids[:3] == (5, 0, 8)]
    delivery = [(p, v) for p, v in parsed if p.ids == (5, 0, 9)]
    rows: list[dict[str, Any]] = []
    for path, value in protocols:
        try:
            proto = ProtocolSupport(int(value))
            meaning = f"{proto.scheme}:// — {proto.description}"
        except (TypeError, ValueError):
            meaning = "a value the lab does not know: a server ignores it"
        rows.append({"path": str(path), "value": value, "meaning": meaning})
    if not protocols:
        rows.append(
            {"path": "/5/0/8", "value": "(absent)", "meaning": "nothing listed: CoAP is assumed"}
        )
    for path, value in delivery:
        try:
            method = DeliveryMethod(int(value))
            meaning = f"{method.description}: {_DELIVERY_MEANINGS[int(method)]}"
        except (TypeError, ValueError):
            meaning = "not a Delivery Method (0 pull, 1 push, 2 both)"
        rows.append({"path": str(path), "value": value, "meaning": meaning})
    if not delivery:
        rows.append({"path": "/5/0/9", "value": "(absent)", "meaning": "not read"})
    for row in rows:
        row["name"] = resource_name(Path.parse(row["path"]))
    return pd.DataFrame(rows, columns=["path", "name", "value", "meaning"])


def _pull_block_size(nbytes: int, blocks: int) -> int | None:
    """The CoAP block size a PULL used: bytes per block, rounded up to a power of two."""
    if blocks <= 0 or nbytes <= 0:
        return None
    size = 16
    while size < nbytes / blocks and size < 1024:
        size *= 2
    return size


def compare(outcomes: Iterable[Outcome]) -> pd.DataFrame:
    """Deliveries side by side: one row per :class:`~labkit.fota.Outcome`, with what was sent
    how, and how long each stage took.

    The block size of a PUSH is the Block1 size the server used; that of a PULL over CoAP is
    the Block2 size the device asked for (bytes served per block, rounded up to a power of
    two). HTTP has no blocks: it streams the image over one TCP connection, so ``block_size``,
    ``blocks`` and ``ms_per_block`` are missing (NA).

    Returns
    -------
    DataFrame
        Columns ``endpoint``, ``delivery`` (a label such as ``"PUSH CoAP 256 B"``),
        ``method``, ``protocol``, ``block_size`` and ``blocks`` (Int64), ``bytes``,
        ``download_s`` (until DOWNLOADED), ``ms_per_block`` (download time per block),
        ``check_s``, ``update_s``, ``reboot_s``, ``total_s`` (float seconds, NaN for a stage
        not reached) and ``result`` (``"1 SUCCESS"``, ``"- REFUSED"``...); RangeIndex, in
        the order given.
    """
    import pandas as pd

    columns = [
        "endpoint",
        "delivery",
        "method",
        "protocol",
        "block_size",
        "blocks",
        "bytes",
        "download_s",
        "ms_per_block",
        "check_s",
        "update_s",
        "reboot_s",
        "total_s",
        "result",
    ]
    rows = []
    for o in outcomes:
        http = o.protocol == "http"
        if o.method == "push":
            block_size = o.block_size
        else:
            block_size = None if http else _pull_block_size(o.bytes_sent, o.blocks)
        blocks = None if http or (o.refused and not o.blocks) else o.blocks
        label = f"{o.method.upper()} {'HTTP' if http else 'CoAP'}"
        if block_size:
            label += f" {block_size} B"
        per_block = o.download_s * 1000.0 / blocks if blocks and o.download_s is not None else None
        rows.append(
            {
                "endpoint": o.endpoint,
                "delivery": label,
                "method": o.method,
                "protocol": o.protocol,
                "block_size": block_size,
                "blocks": blocks,
                "bytes": int(o.bytes_sent),
                "download_s": o.download_s,
                "ms_per_block": per_block,
                "check_s": o.check_s,
                "update_s": o.update_s,
                "reboot_s": o.reboot_s,
                "total_s": o.duration_s,
                "result": o.result_line.removeprefix("RESULT "),
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("block_size", "blocks"):
        frame[column] = frame[column].astype("Int64")
    frame["bytes"] = frame["bytes"].astype("int64")
    seconds = ["download_s", "ms_per_block", "check_s", "update_s", "reboot_s", "total_s"]
    frame[seconds] = frame[seconds].astype("float64")
    return frame


_PACKAGE_URI = Path.of(5, 0, 1)


@register(
    "delivery.pull_resource",
    notebook="03_pull_vs_push",
    question=(
        "To start a PULL, the server writes one resource of the Firmware Update Object. Which "
        "one? Answer its path like '/5/0/3'."
    ),
    hint="Look at the request log of the PULL: which PUT did the server send before the download?",
    solution="/5/0/1",
)
def _delivery_pull_resource(answer: Any) -> tuple[bool, str]:
    path = as_path(answer)
    if path is None:
        return False, "a path looks like '/5/0/3': object, instance, resource"
    if path == _PACKAGE_URI:
        return True, (
            "/5/0/1 is the Package URI: the server writes where the image is (a coap:// or "
            "http:// address in the repository) and the device fetches it itself, at its "
            "earliest opportunity (the lesson's PULL)."
        )
    if path.ids[:1] == (5,) and path.ids[2:] == (1,):
        return False, "the device has only instance 0 of /5, so the path is /5/0/1"
    reasons: dict[tuple[int, ...], str] = {
        (5, 0, 0): "/5/0/0 is the Package itself: writing the image there *is* the PUSH",
        (5, 0, 2): "/5/0/2 is Update, an Execute that comes after the download in both methods",
        (5, 0, 3): "/5/0/3 is the State; the device sets it, the server only reads it",
        (5, 0, 8): "/5/0/8 (Protocol Support) is read before a PULL, to pick a scheme",
        (5, 0, 9): "/5/0/9 (Delivery Method) is read before choosing PUSH or PULL",
    }
    return False, reasons.get(path.ids) or path_name(path)


@register(
    "delivery.who_decides",
    notebook="03_pull_vs_push",
    question=(
        "In which of the two methods does the LwM2M Server pick the moment the download "
        "starts? Answer 'push' or 'pull'."
    ),
    hint="Read the lesson's two paragraphs again: who starts the transfer of the bytes?",
    solution="push",
)
def _delivery_who_decides(answer: Any) -> tuple[bool, str]:
    words = words_of(answer)
    if not words:
        return False, "answer with one word, 'push' or 'pull'"
    push, pull = "push" in words, "pull" in words
    if push and pull:
        return False, "the moment is picked by one side only: answer one of the two"
    if push:
        return True, (
            "PUSH: the server sends the image (Block1 writes to /5/0/0) when it decides, "
            "ideally when Radio Signal Strength and Link Quality (/4) are good."
        )
    if pull:
        return False, (
            "in PULL the server only writes the Package URI; the device downloads "
            "“at the earliest available opportunity”, so the device picks the moment"
        )
    if "server" in words or "device" in words or "client" in words:
        return False, "the question asks for the method, 'push' or 'pull', not the side"
    return False, "the lesson's two methods are PUSH and PULL"


_IMAGE_BYTES = 64 * 1024


_BLOCK = 512


@register(
    "delivery.blocks",
    notebook="03_pull_vs_push",
    question=(
        "How many CoAP blocks does a 64 KiB image (65,536 bytes) need at 512-byte blocks? "
        "Answer a number."
    ),
    hint="Divide the image size by the block size; the comparison table has blocks and bytes.",
    solution=128,
)
def _delivery_blocks(answer: Any) -> tuple[bool, str]:
    count = as_count(answer)
    expected = -(-_IMAGE_BYTES // _BLOCK)
    if count is None:
        return False, "the answer is a whole number of blocks"
    if count == expected:
        return True, (
            f"{_IMAGE_BYTES:,} / {_BLOCK} = {expected} blocks, each one request answered "
            "before the next (2.31 Continue, the last one 2.04). At 256 bytes (Zephyr's "
            "default) it takes 256 round trips, at 1024 only 64: that is why small blocks "
            "are slower, and slower still on a radio link with a long round trip."
        )
    if count == expected - 1:
        return False, (
            f"block numbers run from 0 to {expected - 1}, so there are {expected} of them"
        )
    for size in (16, 32, 64, 128, 256, 1024):
        if count == _IMAGE_BYTES // size:
            return False, f"{count} blocks is the count at {size}-byte blocks, not at {_BLOCK}"
    if count == expected + 1:
        return False, f"{_IMAGE_BYTES:,} is a multiple of {_BLOCK}: no partial last block"
    return False, f"divide the image size ({_IMAGE_BYTES:,} bytes) by the block size ({_BLOCK})"
