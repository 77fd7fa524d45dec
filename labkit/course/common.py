"""What several lessons of the course use: the fast mode of ``make test``, lab firmware
packages, the event log cut down for reading, payloads as hex dumps, a registration's objects,
a free port, and the key the course signs images with.

Nothing here decides anything about LwM2M; each lesson module (``labkit.course.lNN_*``)
re-exports what its notebook uses from here.
"""

from __future__ import annotations

import html
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from labkit.lwm2m.objects import OBJECTS, resource_def
from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    import pandas as pd

    from labkit.server.registry import Registration


__all__ = [
    "FAST_ENV",
    "NEW_VERSION",
    "OLD_VERSION",
    "PACKAGE_MAGIC",
    "Wire",
    "fast_mode",
    "free_port",
    "hexdump",
    "lab_key",
    "log",
    "objects_table",
    "package",
    "resource_name",
    "wire",
]


#: The environment variable of the fast mode (``make test`` sets it to 1).
FAST_ENV = "LABKIT_FAST"


_TRUE = frozenset({"1", "true", "yes", "on"})


#: First line of a lab package (see :mod:`labkit.client.firmware`): installs ``<version>``.
PACKAGE_MAGIC = b"LABKIT-FW "


def fast_mode(environ: Mapping[str, str] | None = None) -> bool:
    """True when the notebooks should run small and quick (``LABKIT_FAST=1``).

    ``make test`` executes every notebook with ``LABKIT_FAST=1``: fewer devices, smaller
    packages, a higher time scale. Values ``1``, ``true``, ``yes``, ``on`` (any case) count as
    on; anything else, or no variable, as off.
    """
    env = os.environ if environ is None else environ
    return env.get(FAST_ENV, "").strip().lower() in _TRUE


def package(version: str, size: int = 4096, *, seed: int = 0) -> bytes:
    """A lab firmware package of exactly ``size`` bytes that installs ``version``.

    The first line is ``LABKIT-FW <version>``: a simulated device that installs the package
    reports ``version`` in /3/0/3 afterwards. The rest is filler from ``random.Random(seed)``,
    so the same arguments always give the same bytes.

    Raises
    ------
    ValueError
        When ``version`` is empty or has a line break, or ``size`` is too small for the
        first line.
    """
    if not version or "\n" in version or "\r" in version:
        raise ValueError(f"version must be one non-empty line, not {version!r}")
    head = PACKAGE_MAGIC + version.encode("utf-8") + b"\n"
    if size < len(head):
        raise ValueError(f"size must be at least {len(head)} bytes for version {version!r}")
    return head + random.Random(seed).randbytes(size - len(head))


_LOG_COLUMNS = [
    "source",
    "kind",
    "method",
    "path",
    "code",
    "state",
    "result",
    "fw_version",
    "detail",
]


def log(
    events: pd.DataFrame,
    device: str | None = None,
    *,
    kinds: Iterable[str] | None = None,
    last: int | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """The event table cut down to what a person reads: who, what, where, which answer.

    Parameters
    ----------
    events:
        The lab's event table (``lab.events()``).
    device:
        Only this endpoint's rows (default: all rows).
    kinds:
        Only these kinds (``["request", "response"]``...).
    last:
        Only the last ``last`` rows.
    source:
        Only rows written by this side (``"server"``, ``"device"``, ``"repo"``...): a request
        appears once as sent by the server and once as answered by the device.

    Returns
    -------
    DataFrame
        Columns ``t_ms`` (milliseconds since the run's first event) then ``source``,
        ``kind``, ``method``, ``path``, ``code``, ``state``, ``result``, ``fw_version`` and
        ``detail``;
        RangeIndex.
    """
    import pandas as pd

    columns = ["t_ms", *_LOG_COLUMNS]
    if events.empty:
        return pd.DataFrame(columns=columns)
    t0 = events["ts"].min()
    rows = events
    if device is not None:
        rows = rows[(rows["device"].astype("string") == device).fillna(False)]
    if kinds is not None:
        rows = rows[rows["kind"].astype("string").isin(list(kinds))]
    if source is not None:
        rows = rows[(rows["source"].astype("string") == source).fillna(False)]
    if last is not None:
        rows = rows.tail(last)
    out = rows[[c for c in _LOG_COLUMNS if c in rows.columns]].copy()
    out.insert(0, "t_ms", ((rows["ts"] - t0).dt.total_seconds() * 1000.0).round(1))
    return out.reset_index(drop=True)


def hexdump(data: bytes, width: int) -> str:
    if not data:
        return "(empty payload)"
    lines = []
    for offset in range(0, len(data), width):
        chunk = data[offset : offset + width]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:04x}  {hexes:<{width * 3 - 1}}  |{text}|")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Wire:
    """A payload as bytes on the wire: offset, hex and printable characters per line."""

    payload: bytes
    width: int = 16

    def __len__(self) -> int:
        return len(self.payload)

    def __str__(self) -> str:
        return hexdump(self.payload, self.width)

    def __repr__(self) -> str:
        return f"<Wire {len(self.payload)} bytes>\n{self}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return f"<pre style='line-height:1.25'>{html.escape(str(self))}</pre>"


def wire(payload: bytes, width: int = 16) -> Wire:
    """Show ``payload`` as a hex dump (``0000  c1 03 00 ...  |...|``), ``width`` bytes a line."""
    if width < 1:
        raise ValueError("width must be >= 1")
    return Wire(bytes(payload), width)


def resource_name(path: Path) -> str:
    if path.object_id is None:
        return ""
    if path.resource_id is None:
        obj = OBJECTS.get(path.object_id)
        return f"{obj.name} instance" if obj is not None and path.level == 2 else ""
    rdef = resource_def(path.object_id, path.resource_id)
    return "" if rdef is None else rdef.name


def objects_table(registration: Registration) -> pd.DataFrame:
    """The objects a device announced in its Register payload (``</5>;ver=1.1,</5/0>``).

    Returns
    -------
    DataFrame
        Columns ``object`` (id), ``name`` (registry name, if the lab knows it), ``version``
        (announced ``ver=``, "" when none) and ``instances`` (comma-separated ids).
    """
    import pandas as pd

    rows = []
    for oid, ann in sorted(registration.objects.items()):
        obj = OBJECTS.get(oid)
        rows.append(
            {
                "object": int(oid),
                "name": obj.name if obj is not None else "",
                "version": ann.version or "",
                "instances": ", ".join(str(i) for i in ann.instances),
            }
        )
    return pd.DataFrame(rows, columns=["object", "name", "version", "instances"])


def free_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that is free right now (the OS picks it).

    Another process could take it before you use it; on a lab machine that is rare, and the
    command that binds it then fails at once instead of hanging.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: Firmware version the matrix devices start with, and the one the images carry.
OLD_VERSION = "1.0.0"


NEW_VERSION = "2.0.0"


_scratch_keys: Any = None


def lab_key(keys_dir: str | os.PathLike[str] | None = None) -> FsPath:
    """The private key the course signs images with (Ed25519 PEM, made on first use).

    Default: a scratch folder of this process (removed when it ends), so a notebook never
    leaves keys behind. The public part, which devices trust, is
    ``labkit.repo.images.public_key(keys_dir=key.parent)``.
    """
    import tempfile

    from labkit.repo.images import ensure_key

    global _scratch_keys
    if keys_dir is None:
        if _scratch_keys is None:
            _scratch_keys = tempfile.TemporaryDirectory(prefix="labkit-course-keys-")
        keys_dir = _scratch_keys.name
    return ensure_key("ed25519", FsPath(keys_dir))
