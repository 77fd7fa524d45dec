"""Small helpers for the notebook course (``notebooks/``): everything a lesson shows but the
lab itself does not need.

The notebooks stay thin -- a few calls per cell -- so whatever a lesson computes or formats
lives here, tested: the fast mode of ``make test`` (:func:`fast_mode`), lab firmware packages
(:func:`package`), the seed's State and Update Result tables (:func:`state_table`,
:func:`result_table`), bytes on the wire (:func:`wire`, :func:`tlv_fields`,
:func:`read_formats`), a registration explained (:func:`registration_table`,
:func:`objects_table`), the story of an update from the event table (:func:`story`), the /5
machine driven by hand (:func:`walk`), Mermaid diagrams in notebook output
(:func:`mermaid`), what a device can download with (:func:`delivery_table`), deliveries
compared (:func:`compare`) and ``labkit`` commands run in the background with a bound
(:func:`labkit_command`, :func:`run_in_background`, :func:`free_port`, :func:`shell`).

Lessons 04 and 07 also need a stage: a lab in scaled time (:func:`scaled_lab`); signal
traces and policies asked by hand (:func:`link_traces`, :func:`trace_summary`,
:func:`policy_examples`, :func:`policy_walk`); one small campaign per policy over calm links
with weak devices (:func:`policy_run`, :func:`compare_runs`, re-run from a slider by
:class:`ThresholdExplorer`); a fleet kept for several campaigns (:func:`fleet`,
:func:`pause_and_resume`, :func:`bad_package`). They set up and run what
:mod:`labkit.sim` and :mod:`labkit.fota` provide; every decision stays there.

This module decides nothing about LwM2M and never changes the lab: it reads what the lab,
the core (:mod:`labkit.lwm2m`) and the event table already know and puts it in front of a
student. Tables are tidy DataFrames with a RangeIndex; objects that a cell shows render
themselves (``_repr_html_``) and print as plain text.
"""

from __future__ import annotations

import html
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.lwm2m.errors import FotaError
from labkit.lwm2m.formats import ContentFormat
from labkit.lwm2m.objects import OBJECTS, State, UpdateResult, resource_def
from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    import pandas as pd

    from labkit.lwm2m.fota import Event as FotaEvent
    from labkit.lwm2m.fota import FirmwareUpdateMachine

__all__ = [
    "EXAMPLE_POLICIES",
    "EXAMPLE_SNAPSHOTS",
    "FAILURE_CASES",
    "FAST_ENV",
    "Background",
    "CommandResult",
    "FailureCase",
    "FormatComparison",
    "LabFleet",
    "PolicyRun",
    "ThresholdExplorer",
    "Wire",
    "add_devices_for",
    "bad_package",
    "compare",
    "compare_runs",
    "delivery_table",
    "failure_matrix",
    "fast_mode",
    "flash_table",
    "fleet",
    "flip_byte",
    "free_port",
    "lab_key",
    "labkit_command",
    "link_traces",
    "links_table",
    "log",
    "mermaid",
    "objects_table",
    "operator_guide",
    "package",
    "pause_and_resume",
    "policy_examples",
    "policy_run",
    "policy_walk",
    "read_formats",
    "registration_table",
    "result_table",
    "rules",
    "run_in_background",
    "scaled_lab",
    "shell",
    "state_table",
    "story",
    "tlv_fields",
    "trace_summary",
    "values_table",
    "verify_table",
    "wait_campaign",
    "walk",
    "weak_links",
    "wire",
]

#: The environment variable of the fast mode (``make test`` sets it to 1).
FAST_ENV = "LABKIT_FAST"
_TRUE = frozenset({"1", "true", "yes", "on"})

#: First line of a lab package (see :mod:`labkit.client.firmware`): installs ``<version>``.
PACKAGE_MAGIC = b"LABKIT-FW "


# ---------------------------------------------------------------------------------------------
# Fast mode and packages
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# The seed's tables
# ---------------------------------------------------------------------------------------------


def state_table() -> pd.DataFrame:
    """The lesson's State table (/5/0/3).

    Returns
    -------
    DataFrame
        Columns ``state`` (0..3), ``name`` (IDLE ...) and ``description`` (the lesson's
        wording); one row per State.
    """
    import pandas as pd

    rows = [{"state": int(s), "name": s.name, "description": s.description} for s in State]
    return pd.DataFrame(rows, columns=["state", "name", "description"])


def result_table() -> pd.DataFrame:
    """The lesson's Update Result table (/5/0/5).

    Returns
    -------
    DataFrame
        Columns ``result`` (0..11), ``name`` (INITIAL ...) and ``description`` (the lesson's
        wording); one row per code.
    """
    import pandas as pd

    rows = [{"result": int(r), "name": r.name, "description": r.description} for r in UpdateResult]
    return pd.DataFrame(rows, columns=["result", "name", "description"])


def values_table(values: Mapping[Any, Any]) -> pd.DataFrame:
    """A Read's ``{Path: value}`` answer as a table, with each resource's name and units.

    Returns
    -------
    DataFrame
        Columns ``path``, ``name`` (registry name, "" if unknown), ``value`` and ``units``;
        one row per resource (instance), in path order.
    """
    import pandas as pd

    rows = []
    for key, value in sorted(values.items(), key=lambda kv: Path.parse(kv[0])):
        path = Path.parse(key)
        rdef = (
            resource_def(path.object_id, path.resource_id)
            if path.object_id is not None and path.resource_id is not None
            else None
        )
        rows.append(
            {
                "path": str(path),
                "name": "" if rdef is None else rdef.name,
                "value": value,
                "units": "" if rdef is None else rdef.units,
            }
        )
    return pd.DataFrame(rows, columns=["path", "name", "value", "units"])


def rules(event: str | None = None, state: str | None = None) -> pd.DataFrame:
    """Rows of the /5 transition table (:func:`labkit.lwm2m.fota.transition_rows`), optionally
    only those of one trigger (``"ExecuteUpdate"``) and/or one State (``"IDLE"``).

    Returns
    -------
    DataFrame
        Columns ``id``, ``state``, ``event``, ``guard``, ``to``, ``via``, ``result``,
        ``actions``, ``reply`` and ``note``, in table order.
    """
    import pandas as pd

    from labkit.lwm2m.fota import transition_rows

    frame = pd.DataFrame(transition_rows())
    if event is not None:
        frame = frame[frame["event"] == event]
    if state is not None:
        frame = frame[frame["state"] == state.upper()]
    return frame.reset_index(drop=True)


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


# ---------------------------------------------------------------------------------------------
# Bytes on the wire
# ---------------------------------------------------------------------------------------------


def _hexdump(data: bytes, width: int) -> str:
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
        return _hexdump(self.payload, self.width)

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


_TLV_KINDS = ("object instance", "resource instance", "multiple resource", "resource")


def _resource_name(path: Path) -> str:
    if path.object_id is None:
        return ""
    if path.resource_id is None:
        obj = OBJECTS.get(path.object_id)
        return f"{obj.name} instance" if obj is not None and path.level == 2 else ""
    rdef = resource_def(path.object_id, path.resource_id)
    return "" if rdef is None else rdef.name


def tlv_fields(payload: bytes, base: str | Path = "/") -> pd.DataFrame:
    """Take an OMA TLV payload apart, one row per element (nested elements included).

    Each TLV element is a type byte (bits 7-6: what it is; bit 5: 16-bit id; bits 4-3: size of
    the length field; bits 2-0: a length up to 7), the id, an optional length, then the value.
    ``base`` is the path that was read (``/5/0``); it gives each element its full path.

    Returns
    -------
    DataFrame
        Columns ``offset`` (of the type byte), ``header`` (type byte, id and length as hex),
        ``kind`` ("resource", "multiple resource", "resource instance", "object instance"),
        ``path``, ``name`` (resource name, if the lab knows it), ``length`` and ``value`` (hex).
        A payload that is not valid TLV ends with a row whose ``kind`` is ``"error"``.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    start = Path.parse(base)

    def child(parent: Path, kind: int, ident: int) -> Path:
        if kind == 0:  # object instance below /O
            return Path((*parent.ids[:1], ident))
        if kind in (2, 3):  # resource below /O/I
            return Path((*parent.ids[:2], ident))
        return Path((*parent.ids[:3], ident))  # resource instance below /O/I/R

    def walk_level(data: bytes, offset: int, parent: Path) -> None:
        pos = 0
        while pos < len(data):
            head = data[pos]
            kind = head >> 6
            id_len = 2 if head & 0x20 else 1
            len_len = (head >> 3) & 0x03
            value_at = pos + 1 + id_len + len_len
            if value_at > len(data):
                rows.append(_tlv_error(offset + pos, data[pos:], "truncated header"))
                return
            ident = int.from_bytes(data[pos + 1 : pos + 1 + id_len], "big")
            length = (
                head & 0x07
                if len_len == 0
                else int.from_bytes(data[pos + 1 + id_len : value_at], "big")
            )
            if value_at + length > len(data):
                rows.append(_tlv_error(offset + pos, data[pos:], "value runs past the end"))
                return
            value = data[value_at : value_at + length]
            try:
                path = child(parent, kind, ident)
            except ValueError:
                path = parent
            rows.append(
                {
                    "offset": offset + pos,
                    "header": data[pos:value_at].hex(" "),
                    "kind": _TLV_KINDS[kind],
                    "path": str(path),
                    "name": _resource_name(path),
                    "length": length,
                    "value": value.hex(" ") if kind in (1, 3) else "(nested below)",
                }
            )
            if kind in (0, 2):
                walk_level(value, offset + value_at, path)
            pos = value_at + length

    walk_level(bytes(payload), 0, start)
    columns = ["offset", "header", "kind", "path", "name", "length", "value"]
    return pd.DataFrame(rows, columns=columns)


def _tlv_error(offset: int, rest: bytes, why: str) -> dict[str, Any]:
    return {
        "offset": offset,
        "header": rest[:4].hex(" "),
        "kind": "error",
        "path": "",
        "name": why,
        "length": len(rest),
        "value": "",
    }


#: The three formats lesson 01 compares.
WIRE_FORMATS: tuple[ContentFormat, ...] = (
    ContentFormat.TLV,
    ContentFormat.SENML_JSON,
    ContentFormat.SENML_CBOR,
)


@dataclass(frozen=True, slots=True)
class _FormatRead:
    content_format: ContentFormat
    code: str
    payload: bytes
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FormatComparison:
    """One path read in several content formats: payloads and decoded values side by side."""

    path: str
    reads: tuple[_FormatRead, ...] = field(default_factory=tuple)

    def frame(self) -> pd.DataFrame:
        """Sizes per format.

        Returns
        -------
        DataFrame
            Columns ``format`` (name), ``content_format`` (number), ``media_type``, ``code``
            (the device's answer) and ``bytes`` (payload size); one row per format, in the
            order read.
        """
        import pandas as pd

        rows = [
            {
                "format": r.content_format.name,
                "content_format": int(r.content_format),
                "media_type": r.content_format.media_type,
                "code": r.code,
                "bytes": len(r.payload),
            }
            for r in self.reads
        ]
        return pd.DataFrame(
            rows, columns=["format", "content_format", "media_type", "code", "bytes"]
        )

    def values(self) -> pd.DataFrame:
        """Decoded values, one row per resource path and one column per format."""
        import pandas as pd

        paths: list[str] = []
        for r in self.reads:
            paths += [p for p in r.values if p not in paths]
        data = {r.content_format.name: [r.values.get(p) for p in paths] for r in self.reads}
        return pd.DataFrame({"path": paths, **data})

    def payload(self, content_format: int) -> bytes:
        """The raw payload read in ``content_format``."""
        for r in self.reads:
            if int(r.content_format) == int(content_format):
                return r.payload
        raise KeyError(f"{content_format} was not read")

    def __repr__(self) -> str:
        sizes = ", ".join(f"{r.content_format.name} {len(r.payload)} B" for r in self.reads)
        return f"<FormatComparison {self.path}: {sizes}>"

    def __str__(self) -> str:
        parts = []
        for r in self.reads:
            fmt = r.content_format
            parts.append(f"{fmt.name} ({int(fmt)}), {len(r.payload)} bytes, {r.code}")
            parts.append(_hexdump(r.payload, 16))
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        esc = html.escape
        heads, dumps, decoded = [], [], []
        for r in self.reads:
            fmt = r.content_format
            heads.append(
                f"<th style='text-align:left'>{esc(fmt.name)} ({int(fmt)})<br>"
                f"<small>{esc(fmt.media_type)} — {len(r.payload)} bytes, {esc(r.code)}"
                "</small></th>"
            )
            dumps.append(
                "<td style='vertical-align:top;text-align:left'><pre style='font-size:11px'>"
                f"{esc(_hexdump(r.payload, 8))}</pre></td>"
            )
            lines = "\n".join(f"{p} = {v!r}" for p, v in r.values.items())
            decoded.append(
                "<td style='vertical-align:top;text-align:left'><pre style='font-size:11px'>"
                f"{esc(lines)}</pre></td>"
            )
        return (
            f"<table><caption>Read {esc(self.path)} in {len(self.reads)} formats</caption>"
            f"<tr>{''.join(heads)}</tr><tr>{''.join(dumps)}</tr>"
            f"<tr>{''.join(decoded)}</tr></table>"
        )


def read_formats(device: Any, path: str, formats: Iterable[int] = WIRE_FORMATS) -> FormatComparison:
    """Read ``path`` of ``device`` (a :class:`~labkit.runtime.DeviceHandle`) once per format.

    Each read asks for one Content-Format with the CoAP Accept option; the answer keeps the
    raw payload and the values the server decoded from it.
    """
    reads = []
    for fmt in formats:
        response = device.read(path, accept=int(fmt), raw=True)
        reads.append(
            _FormatRead(
                content_format=ContentFormat(int(response.content_format or fmt)),
                code=str(response.code),
                payload=bytes(response.payload),
                values={str(p): v for p, v in response.values.items()},
            )
        )
    return FormatComparison(path=str(Path.parse(path)), reads=tuple(reads))


def links_table(links: Iterable[Any]) -> pd.DataFrame:
    """A Discover answer (CoRE link format) as a table.

    Returns
    -------
    DataFrame
        Columns ``link`` (as written on the wire, ``</5/0/8>;dim=1``), ``path``, ``name``
        (resource name, "" for an object or instance) and ``attributes`` (``dim=1``...).
    """
    import pandas as pd

    from labkit.lwm2m.formats import format_links

    rows = []
    for link in links:
        path = link.path
        rows.append(
            {
                "link": format_links([link]),
                "path": str(path) if path is not None else link.target,
                "name": "" if path is None else _resource_name(path),
                "attributes": ";".join(
                    k if v is None else f"{k}={v}" for k, v in link.params.items()
                ),
            }
        )
    return pd.DataFrame(rows, columns=["link", "path", "name", "attributes"])


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------

_QUERY_MEANINGS = {
    "ep": "Endpoint Client Name: the device's unique name at this server",
    "lt": "Lifetime in seconds: without an Update within it, the server drops the registration",
    "lwm2m": "LwM2M enabler version the client speaks",
    "b": "Binding: the transport (U = UDP)",
    "Q": "Queue mode: the device sleeps and is reachable only shortly after it sends",
}


def registration_table(registration: Any) -> pd.DataFrame:
    """The query parameters of a Register request, with what each means.

    ``registration`` is the server's record (``lab.device(ep).registration``).

    Returns
    -------
    DataFrame
        Columns ``parameter`` (ep, lt, lwm2m, b, Q), ``value`` (as text) and ``meaning``.
    """
    import pandas as pd

    values = {
        "ep": registration.endpoint,
        "lt": str(registration.lifetime),
        "lwm2m": str(registration.lwm2m_version),
        "b": str(registration.binding),
        "Q": "present" if registration.queue_mode else "absent",
    }
    rows = [{"parameter": k, "value": v, "meaning": _QUERY_MEANINGS[k]} for k, v in values.items()]
    return pd.DataFrame(rows, columns=["parameter", "value", "meaning"])


def objects_table(registration: Any) -> pd.DataFrame:
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


# ---------------------------------------------------------------------------------------------
# The story of an update
# ---------------------------------------------------------------------------------------------


def _name_of(value: Any, enum: type[State] | type[UpdateResult]) -> str:
    try:
        member = enum[str(value)]
    except KeyError:
        return str(value)
    return f"{int(member)} {member.name}"


def story(events: pd.DataFrame, device: str | None = None) -> pd.DataFrame:
    """The story of one device's firmware, in order: its registrations and reboots, and every
    change of State, Update Result and firmware version that anyone saw (repeats dropped).

    The device reports its own changes (``source`` "device"); the server sees them through
    its reads and notifications ("server"). A change is listed once, where it was seen first.

    Returns
    -------
    DataFrame
        Columns ``t_ms`` (milliseconds since the device's first row, float), ``source``
        ("device" or "server"), ``what`` ("State", "Update Result", "firmware",
        "registered", "reboot", "deregistered") and ``value`` (``"1 DOWNLOADING"``,
        ``"2.0.0"``, a registration's port...).
    """
    import pandas as pd

    columns = ["t_ms", "source", "what", "value"]
    if events.empty:
        return pd.DataFrame(columns=columns)
    rows = events[events["device"].notna()]
    if device is None:
        names = sorted(rows["device"].astype(str).unique().tolist())
        device = names[0] if names else None
    rows = rows[(rows["device"].astype("string") == device).fillna(False)]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    t0 = rows["ts"].iloc[0]
    source = rows["source"].astype("string")
    kind = rows["kind"].astype("string")
    own = (source == "device") & kind.isin(["registered", "deregistered", "reboot"])
    values = kind.isin(["fw_state", "fw_result", "fw_version"])
    rows = rows[(own | values).fillna(False)].sort_values("seq")
    out: list[dict[str, Any]] = []
    last: dict[str, str] = {}
    for row in rows.itertuples(index=False):
        k = str(row.kind)
        if k == "fw_state":
            what, value = "State", _name_of(row.state, State)
        elif k == "fw_result":
            what, value = "Update Result", _name_of(row.result, UpdateResult)
        elif k == "fw_version":
            what, value = "firmware", "" if pd.isna(row.fw_version) else str(row.fw_version)
        else:
            what, value = k, "" if pd.isna(row.detail) else str(row.detail)
        if what in ("State", "Update Result", "firmware"):
            if last.get(what) == value:
                continue
            last[what] = value
        t_ms = round((row.ts - t0).total_seconds() * 1000.0, 1)
        out.append({"t_ms": t_ms, "source": str(row.source), "what": what, "value": value})
    return pd.DataFrame(out, columns=columns)


# ---------------------------------------------------------------------------------------------
# The /5 machine by hand
# ---------------------------------------------------------------------------------------------


def _trigger_text(event: Any) -> str:
    """``WriteUri(uri='coap://...')``, with long byte strings shortened and enums by name."""
    args = []
    for key in getattr(event, "__dataclass_fields__", {}):
        value = getattr(event, key)
        if isinstance(value, bytes) and len(value) > 8:
            text = f"<{len(value)} bytes>"
        elif isinstance(value, State | UpdateResult):
            text = value.name
        else:
            text = repr(value)
        args.append(f"{key}={text}")
    return f"{type(event).__name__}({', '.join(args)})"


def walk(
    machine: FirmwareUpdateMachine,
    triggers: Sequence[FotaEvent],
    *,
    start: float = 0.0,
    step: float = 1.0,
) -> pd.DataFrame:
    """Feed ``triggers`` to ``machine`` one by one (at ``now = start, start + step, ...``) and
    tabulate what each did. A refused trigger is a row too (the machine stays as it was).

    Returns
    -------
    DataFrame
        Columns ``trigger`` (the event, written out), ``rule`` (the table's rule id, T1..T20
        and friends), ``reply`` (what the device answers: ``"2.04"`` or the refusal code),
        ``state`` and ``result`` after the trigger (``"2 DOWNLOADED"``) and ``actions`` (what
        the device must do, in order).
    """
    import pandas as pd

    rows = []
    for i, event in enumerate(triggers):
        rule = machine.rule_for(event)
        try:
            actions = machine.handle(event, now=start + i * step)
            reply = rule.reply or "(internal)"
            done = ", ".join(_action_text(a) for a in actions)
        except FotaError as err:
            reply, done = f"{err.coap_code} refused", ""
        rows.append(
            {
                "trigger": _trigger_text(event),
                "rule": rule.id,
                "reply": reply,
                "state": f"{int(machine.state)} {machine.state.name}",
                "result": f"{int(machine.result)} {machine.result.name}",
                "actions": done,
            }
        )
    return pd.DataFrame(rows, columns=["trigger", "rule", "reply", "state", "result", "actions"])


def _action_text(action: Any) -> str:
    name = type(action).__name__
    if name == "StateChanged":
        return f"State {int(action.previous)} -> {int(action.state)}"
    if name == "ResultChanged":
        return f"Result {int(action.previous)} -> {int(action.result)}"
    if name == "StoreBlock":
        return f"StoreBlock({action.block_number})"
    return name


# ---------------------------------------------------------------------------------------------
# Diagrams
# ---------------------------------------------------------------------------------------------


def mermaid(text: str) -> Any:
    """Show Mermaid diagram ``text`` in a notebook (JupyterLab 4 draws ```mermaid blocks).

    Returns an :class:`IPython.display.Markdown` object: the last line of a cell displays it;
    where Markdown is not rendered, the Mermaid source shows as text.
    """
    from IPython.display import Markdown

    return Markdown(f"```mermaid\n{text.rstrip()}\n```")  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------------------------------
# PUSH and PULL
# ---------------------------------------------------------------------------------------------

_DELIVERY_MEANINGS = {
    0: "the server may only write a Package URI (/5/0/1): PULL",
    1: "the server may only write the image to /5/0/0: PUSH",
    2: "PUSH (/5/0/0) or PULL (/5/0/1): the server picks",
}


def delivery_table(values: Mapping[Any, Any]) -> pd.DataFrame:
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
        row["name"] = _resource_name(Path.parse(row["path"]))
    return pd.DataFrame(rows, columns=["path", "name", "value", "meaning"])


def _pull_block_size(nbytes: int, blocks: int) -> int | None:
    """The CoAP block size a PULL used: bytes per block, rounded up to a power of two."""
    if blocks <= 0 or nbytes <= 0:
        return None
    size = 16
    while size < nbytes / blocks and size < 1024:
        size *= 2
    return size


def compare(outcomes: Iterable[Any]) -> pd.DataFrame:
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


# ---------------------------------------------------------------------------------------------
# Commands in the background (notebook 09: a real device's stand-in)
# ---------------------------------------------------------------------------------------------

#: Seconds a stopped command gets to shut down cleanly before it is killed.
STOP_GRACE = 5.0


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


def labkit_command(*args: Any) -> list[str]:
    """``labkit ARGS...`` as an argument list, run by this Python (the notebook's venv).

    Either one argument per item (``labkit_command("fota", "--listen", address)``) or the
    whole command line as one string, split as a shell would
    (``labkit_command(f"fota --listen {address} --method push")``). :func:`shell` shows it
    to a person as ``labkit ARGS...``.
    """
    import shlex
    import sys

    if len(args) == 1 and isinstance(args[0], str):
        words = shlex.split(args[0])
    else:
        words = [str(a) for a in args]
    return [sys.executable, "-m", "labkit", *words]


def shell(argv: Sequence[Any]) -> str:
    """A command as a person types it in a terminal: ``labkit fota --listen ...`` for a
    :func:`labkit_command`, else the arguments quoted as a shell needs them."""
    import shlex
    import sys

    words = [str(a) for a in argv]
    if words[:3] == [sys.executable, "-m", "labkit"]:
        return shlex.join(["labkit", *words[3:]])
    return shlex.join(words)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How a command run by :func:`run_in_background` ended.

    Attributes
    ----------
    command:
        The command as a person types it (``labkit fota --listen ...``).
    lines:
        Everything it printed (stdout and stderr, in order), one line per item.
    exit_code:
        Its exit code (negative: killed by that signal).
    seconds:
        From start to end.
    stopped:
        True when it was stopped from outside (:meth:`Background.stop`) rather than ending
        on its own.
    timed_out:
        True when it was stopped because its time bound ran out.
    """

    command: str
    lines: tuple[str, ...]
    exit_code: int | None
    seconds: float
    stopped: bool = False
    timed_out: bool = False

    @property
    def result_line(self) -> str | None:
        """The last ``RESULT ...`` line (``labkit fota``), or None."""
        return next((line for line in reversed(self.lines) if line.startswith("RESULT ")), None)

    def _status(self) -> str:
        how = _exit_text(self.exit_code)
        if self.timed_out:
            how += ", stopped: its time bound ran out"
        elif self.stopped:
            how += ", stopped"
        return f"{how} after {self.seconds:.1f} s"

    def __str__(self) -> str:
        return "\n".join([f"$ {self.command}", *self.lines, f"({self._status()})"])

    def __repr__(self) -> str:
        return f"<CommandResult {self.command!r}: {self._status()}, {len(self.lines)} lines>"

    def _repr_html_(self) -> str:
        esc = html.escape
        ok = self.exit_code == 0
        colour = "#00734d" if ok else "#a3370f"
        body = "\n".join(esc(line) for line in self.lines)
        return (
            f"<div><pre style='font-size:11px;white-space:pre-wrap'><b>$ {esc(self.command)}"
            f"</b>\n{body}</pre><b style='color:{colour}'>{esc(self._status())}</b></div>"
        )


def _kill(proc: Any) -> None:
    """SIGKILL a background command and whatever it started (its own process group: the
    ``timeout`` wrapper and the command under it); also its finalizer, so that it never
    outlives its notebook."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (AttributeError, OSError):  # no process groups (Windows), or already gone
            proc.kill()
        proc.wait()


class Background:
    """A command running in the background, its output collected line by line.

    Made by :func:`run_in_background`. It never runs longer than ``timeout`` seconds: a timer
    stops it then (and where coreutils' ``timeout`` exists, the command is wrapped in it, so
    the bound holds even if the notebook's kernel dies). Use it as a context manager so that
    it is stopped however the block ends::

        with course.run_in_background(course.labkit_command("device", ...)) as device:
            ...
        device.result  # what it printed, and its exit code
    """

    def __init__(
        self,
        argv: Sequence[Any],
        *,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        import shutil
        import subprocess
        import threading
        import time
        import weakref

        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        self.argv = [str(a) for a in argv]
        self.command = shell(self.argv)
        self.timeout = float(timeout)
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._timed_out = False
        self._ended: float | None = None
        wrapper = shutil.which("timeout")
        bound = (
            [wrapper, "--kill-after", f"{STOP_GRACE:g}", f"{self.timeout + 1:g}"] if wrapper else []
        )
        environment = dict(os.environ if env is None else env)
        environment.setdefault("PYTHONUNBUFFERED", "1")
        self._started = time.monotonic()
        self._proc = subprocess.Popen(
            [*bound, *self.argv],
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,  # its own process group: Ctrl-C in the notebook spares it
        )
        self._finalizer = weakref.finalize(self, _kill, self._proc)
        self._reader = threading.Thread(target=self._read, name="labkit-course-output")
        self._reader.daemon = True
        self._reader.start()
        self._timer = threading.Timer(self.timeout, self._time_is_up)
        self._timer.daemon = True
        self._timer.start()

    # -- output ----------------------------------------------------------------------------
    def _read(self) -> None:
        import time

        assert self._proc.stdout is not None
        with self._proc.stdout:
            for line in self._proc.stdout:
                with self._cond:
                    self._lines.append(line.rstrip("\r\n"))
                    self._cond.notify_all()
        self._proc.wait()
        with self._cond:
            self._ended = time.monotonic()
            self._cond.notify_all()

    def _time_is_up(self) -> None:
        if self._proc.poll() is None:
            self._timed_out = True
            self.stop()

    @property
    def lines(self) -> list[str]:
        """What the command printed so far."""
        with self._cond:
            return list(self._lines)

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def wait_for_line(self, text: str, timeout: float = 10.0) -> str:
        """Block until the command prints a line containing ``text``; return that line.

        Raises
        ------
        TimeoutError
            When no such line came within ``timeout`` seconds (the output so far is in the
            message).
        RuntimeError
            When the command ended without printing it.
        """
        import time

        deadline = time.monotonic() + timeout
        with self._cond:
            checked = 0
            while True:
                for line in self._lines[checked:]:
                    if text in line:
                        return line
                checked = len(self._lines)
                if self._ended is not None:
                    raise RuntimeError(
                        f"{self.command!r} ended ({_exit_text(self._proc.returncode)}) without "
                        f"printing {text!r}; it printed: {self._lines[-5:]}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self.command!r} printed no line with {text!r} within {timeout:g} s; "
                        f"so far: {self._lines[-5:]}"
                    )
                self._cond.wait(left)

    # -- ending ----------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> CommandResult:
        """Wait until the command ends by itself (at most ``timeout`` seconds, default: the
        rest of its time bound), then return its :class:`CommandResult`. A command still
        running then is stopped (``timed_out``)."""
        import time

        left = self.timeout - (time.monotonic() - self._started)
        limit = max(0.0, left if timeout is None else min(timeout, left))
        with self._cond:
            self._cond.wait_for(lambda: self._ended is not None, timeout=limit)
        if self._ended is None:
            self._timed_out = True
        return self.stop()

    def stop(self, grace: float = STOP_GRACE) -> CommandResult:
        """Stop the command if it still runs: SIGTERM (the ``labkit`` commands then shut down
        cleanly, a device de-registers), SIGKILL after ``grace`` seconds. Returns its
        :class:`CommandResult`; calling it again returns the same."""
        import subprocess

        self._timer.cancel()
        if self._proc.poll() is None:
            self._stopped = True
            self._proc.terminate()
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                _kill(self._proc)
        self._reader.join(grace)
        result = self.result
        assert result is not None
        return result

    @property
    def result(self) -> CommandResult | None:
        """The :class:`CommandResult` once the command has ended, else None."""
        import time

        code = self._proc.poll()
        if code is None:
            return None
        with self._cond:
            ended = self._ended if self._ended is not None else time.monotonic()
            lines = tuple(self._lines)
        return CommandResult(
            command=self.command,
            lines=lines,
            exit_code=code,
            seconds=ended - self._started,
            stopped=self._stopped,
            timed_out=self._timed_out,
        )

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else _exit_text(self._proc.returncode)
        return f"<Background {self.command!r}: {state}, {len(self.lines)} lines>"

    def _repr_html_(self) -> str:
        result = self.result
        if result is not None:
            return result._repr_html_()
        body = "\n".join(html.escape(line) for line in self.lines)
        return (
            f"<div><pre style='font-size:11px;white-space:pre-wrap'><b>$ "
            f"{html.escape(self.command)}</b>\n{body}</pre><i>running</i></div>"
        )


def run_in_background(
    argv: Sequence[Any],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> Background:
    """Start ``argv`` (e.g. :func:`labkit_command`) in the background and return at once.

    The command runs at most ``timeout`` seconds; its output (stdout and stderr together) is
    collected line by line and never reaches the notebook's own stderr. See
    :class:`Background` for waiting on a line, waiting for the end and stopping it.
    """
    return Background(argv, cwd=cwd, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Failure modes (notebook 05): every Update Result on purpose
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailureCase:
    """One row of the failure matrix: one device, one thing that goes wrong, one expected code.

    Attributes
    ----------
    endpoint:
        The device's name (``r05-wrong-key``: the expected code first, so names sort by code).
    expected:
        The Update Result (/5/0/5) this case must produce.
    label:
        What goes wrong, in a few words.
    fault:
        A device fault of :mod:`labkit.sim.faults` (None: a healthy device).
    package:
        ``"image"`` (a signed MCUboot image), ``"wrong-key"`` or ``"not-an-image"`` (the
        :func:`labkit.repo.images.build_image` variants), or None when nothing is published.
    delivery:
        ``"push"``, ``"pull coap"``, ``"pull http"``, ``"uri nowhere"`` (a coap:// URI the
        repository does not have) or ``"uri ftp"`` (a scheme no device speaks).
    cancel:
        Execute Cancel (/5/0/10) once DOWNLOADED instead of Update (/5/0/2).
    """

    endpoint: str
    expected: int
    label: str
    fault: str | None = None
    package: str | None = "image"
    delivery: str = "push"
    cancel: bool = False


#: The cases of :func:`failure_matrix`: a success and every failure code 2..11 (two for 5 and
#: two for 9), one device each.
FAILURE_CASES: tuple[FailureCase, ...] = (
    FailureCase("r01-success", 1, "nothing goes wrong"),
    FailureCase("r02-no-flash", 2, "no room in the download slot", fault="no-flash"),
    FailureCase("r03-no-ram", 3, "no RAM buffer for a block", "no-ram", delivery="pull coap"),
    FailureCase("r04-link-drop", 4, "the link goes down", "link-drop", delivery="pull coap"),
    FailureCase("r05-corrupt-in-flash", 5, "a bit flips in flash", fault="corrupt-in-flash"),
    FailureCase("r05-wrong-key", 5, "image signed with another key", package="wrong-key"),
    FailureCase(
        "r06-not-an-image", 6, "the file is not an image", None, "not-an-image", "pull http"
    ),
    FailureCase("r07-uri-nowhere", 7, "the URI points nowhere", None, None, "uri nowhere"),
    FailureCase("r08-boot-fail", 8, "the new image fails its self-test", fault="boot-fail"),
    FailureCase("r09-ftp", 9, "a scheme no device speaks (ftp://)", None, None, "uri ftp"),
    FailureCase("r09-no-http", 9, "http URI, CoAP-only device", "no-http", "image", "pull http"),
    FailureCase("r10-cancel", 10, "the server cancels", cancel=True),
    FailureCase("r11-defer", 11, "the user postpones, then accepts", fault="defer"),
)

#: Firmware version the matrix devices start with, and the one the images carry.
OLD_VERSION = "1.0.0"
NEW_VERSION = "2.0.0"

_scratch_keys: Any = None


def lab_key(keys_dir: str | os.PathLike[str] | None = None) -> Any:
    """The private key the course signs images with (Ed25519 PEM, made on first use).

    Default: a scratch folder of this process (removed when it ends), so a notebook never
    leaves keys behind. The public part, which devices trust, is
    ``labkit.repo.images.public_key(keys_dir=key.parent)``.
    """
    import tempfile
    from pathlib import Path as FsPath

    from labkit.repo.images import ensure_key

    global _scratch_keys
    if keys_dir is None:
        if _scratch_keys is None:
            _scratch_keys = tempfile.TemporaryDirectory(prefix="labkit-course-keys-")
        keys_dir = _scratch_keys.name
    return ensure_key("ed25519", FsPath(keys_dir))


def _fast_fault_timing() -> Any:
    from labkit.client.model import FaultTiming

    # Short faults: a lesson waits seconds, not the 20 s of a realistic link drop.
    return FaultTiming(power_off_s=0.15, link_drop_s=2.5, defer_s=0.5)


def _device_options(key: Any) -> dict[str, Any]:
    """What every device of notebooks 05 and 06 gets: the lab key's public part to trust,
    short fault timings and short retries (every wait stays a few seconds)."""
    from labkit.repo.images import public_key

    return {
        "firmware_version": OLD_VERSION,
        "trusted_key": public_key("ed25519", key.parent),
        "fault_timing": _fast_fault_timing(),
        "request_timeout": 2.0,
        "download_retries": 2,
        "retry_delay": 0.2,
        "push_idle_timeout": 10.0,
    }


def add_devices_for(lab: Any, cases: Iterable[FailureCase], *, key: Any = None) -> list[Any]:
    """Add one simulated device per case to ``lab`` (its fault, trusting the lab key's public
    part); returns their handles. A device of that name already in the lab is reused."""
    options = _device_options(key if key is not None else lab_key())
    present = {handle.endpoint for handle in lab.devices}
    handles = []
    for case in cases:
        if case.endpoint in present:
            handles.append(lab.device(case.endpoint))
        else:
            faults = [case.fault] if case.fault else []
            handles.append(lab.add_device(case.endpoint, faults=faults, **options))
    return handles


def _case_target(lab: Any, case: FailureCase, images: Mapping[str, bytes]) -> tuple[str, Any]:
    """(``"push"``, bytes) or (``"uri"``, the Package URI) for a case."""
    if case.delivery == "push":
        return "push", images[case.package or "image"]
    if case.delivery == "uri nowhere":
        return "uri", lab.repository.coap_uri(f"{case.endpoint}-missing.bin")
    if case.delivery == "uri ftp":
        return "uri", f"ftp://127.0.0.1/fw/{case.endpoint}.bin"
    name = f"{case.endpoint}.bin"
    uris = lab.publish(name, images[case.package or "image"])
    scheme = case.delivery.removeprefix("pull ")
    return "uri", uris[scheme]


async def _until(predicate: Any, timeout: float) -> bool:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _drive(
    lab: Any, case: FailureCase, how: str, what: Any, *, timeout: float
) -> dict[str, Any]:
    """One attempt through the lab's server: deliver, Execute Update (or Cancel), wait for the
    reboot, read State, Result and /3/0/3. Every wait is bounded by ``timeout``."""
    import asyncio
    import contextlib

    from labkit.server import ServerError

    server = lab.server
    sim = lab.device(case.endpoint).simulated
    proxy = server.device(case.endpoint)
    quiet = (ServerError, TimeoutError)

    def settled() -> bool:
        return bool(sim.registered) and sim.fw.state not in (State.DOWNLOADING, State.UPDATING)

    async def read(path: str) -> Any:
        for _attempt in range(5):
            with contextlib.suppress(*quiet):
                response = await proxy.read(path, timeout=2)
                if response.ok:
                    return response.value
            await asyncio.sleep(0.2)
        return None

    started = asyncio.get_running_loop().time()
    before = await read("/3/0/3")
    with contextlib.suppress(*quiet):
        if how == "push":
            await proxy.write("/5/0/0", what, block_size=1024)
        else:
            await proxy.write("/5/0/1", what)
    await _until(settled, timeout)
    if sim.fw.state is State.DOWNLOADED:
        if case.cancel:
            with contextlib.suppress(*quiet):
                await proxy.execute("/5/0/10")
        else:
            registered_at = proxy.registration.registered_at
            for _attempt in range(3):  # a lost Execute is sent again
                with contextlib.suppress(*quiet):
                    await proxy.execute("/5/0/2")
                    break
            await _until(
                lambda: (
                    sim.fw.state is not State.DOWNLOADED
                    or sim.fw.result is not UpdateResult.DEFERRED
                ),
                timeout,
            )
            with contextlib.suppress(TimeoutError):
                await server.wait_for_registration(
                    case.endpoint, timeout=timeout, after=registered_at
                )
    await _until(settled, timeout)
    state, result, after = await read("/5/0/3"), await read("/5/0/5"), await read("/3/0/3")
    return {
        "final_state": None if state is None else int(state),
        "final_result": None if result is None else int(result),
        "fw_before": None if before is None else str(before),
        "fw_after": None if after is None else str(after),
        "seconds": asyncio.get_running_loop().time() - started,
    }


def _reported_results(events: pd.DataFrame, device: str) -> list[int]:
    """The Update Results a device reported itself, in order, zeros and repeats dropped."""
    rows = events[
        (events["device"].astype("string") == device).fillna(False)
        & (events["kind"].astype("string") == "fw_result").fillna(False)
        & (events["source"].astype("string") == "device").fillna(False)
    ]
    codes: list[int] = []
    for value in rows.sort_values("seq")["result"]:
        text = str(value)
        code = int(text) if text.isdigit() else int(UpdateResult[text])
        if code and (not codes or codes[-1] != code):
            codes.append(code)
    return codes


_MATRIX_COLUMNS = [
    "device",
    "case",
    "fault",
    "package",
    "delivery",
    "expected",
    "observed",
    "reported",
    "result",
    "final_state",
    "final_result",
    "fw_before",
    "fw_after",
    "match",
    "seconds",
]


def failure_matrix(
    lab: Any,
    cases: Iterable[FailureCase] = FAILURE_CASES,
    *,
    fast: bool | None = None,
    size: int | None = None,
    key: Any = None,
    timeout: float = 30.0,
) -> pd.DataFrame:
    """Produce every Update Result on purpose: one device per case, all at once.

    Adds one simulated device per case to ``lab`` (firmware 1.0.0, its fault, trusting the
    public part of :func:`lab_key`), builds the images (a signed MCUboot 2.0.0 image of
    ``size`` payload bytes, and the ``wrong-key`` and ``not-an-image`` variants), publishes
    what is pulled, then runs every attempt concurrently through the lab's server: PUSH to
    /5/0/0 or a Package URI to /5/0/1, Execute /5/0/2 (or Cancel /5/0/10) once DOWNLOADED,
    wait for the reboot, read /5/0/3, /5/0/5 and /3/0/3. Each wait is bounded by ``timeout``.

    Parameters
    ----------
    fast:
        Small images (8 KiB instead of 64 KiB); default :func:`fast_mode`.

    Returns
    -------
    DataFrame
        One row per case, in the order given: ``device``, ``case`` (what goes wrong),
        ``fault`` (or ""), ``package`` (or ""), ``delivery``, ``expected`` (int64),
        ``observed`` (Int64: the first non-zero Update Result the device reported -- 11 for
        a deferral that was accepted later), ``reported`` (every code it reported, "11 → 1"),
        ``result`` (category of Update Result names, of ``observed``: what
        :func:`labkit.plots.plot_result_counts` counts), ``final_state`` and
        ``final_result`` (Int64, read by the server at the end), ``fw_before`` and
        ``fw_after`` (/3/0/3 read before and after), ``match`` (observed == expected) and
        ``seconds`` (the attempt's duration); RangeIndex.
    """
    import asyncio

    import pandas as pd

    from labkit.record.schema import RESULT_DTYPE
    from labkit.repo.images import build_image

    cases = list(cases)
    if fast is None:
        fast = fast_mode()
    if size is None:
        size = 8 * 1024 if fast else 64 * 1024
    key = key if key is not None else lab_key()
    images = {
        variant: build_image(
            version=NEW_VERSION,
            size=size,
            key=key,
            broken=None if variant == "image" else variant,
            seed=5,
        )
        for variant in {c.package or "image" for c in cases}
    }
    add_devices_for(lab, cases, key=key)
    targets = [_case_target(lab, case, images) for case in cases]

    async def run_all() -> list[Any]:
        finals: list[Any] = await asyncio.gather(
            *(
                asyncio.wait_for(_drive(lab, case, how, what, timeout=timeout), 4 * timeout)
                for case, (how, what) in zip(cases, targets, strict=True)
            ),
            return_exceptions=True,
        )
        return finals

    finals = lab.call(run_all(), timeout=4 * timeout + 10)
    events = lab.events()
    rows = []
    for case, final in zip(cases, finals, strict=True):
        if isinstance(final, BaseException):
            final = {"error": repr(final)}
        reported = _reported_results(events, case.endpoint)
        observed = reported[0] if reported else None
        rows.append(
            {
                "device": case.endpoint,
                "case": case.label,
                "fault": case.fault or "",
                "package": case.package or "",
                "delivery": case.delivery,
                "expected": case.expected,
                "observed": observed,
                "reported": " → ".join(str(c) for c in reported),
                "result": None if observed is None else UpdateResult(observed).name,
                "final_state": final.get("final_state"),
                "final_result": final.get("final_result"),
                "fw_before": final.get("fw_before"),
                "fw_after": final.get("fw_after"),
                "match": observed == case.expected,
                "seconds": final.get("seconds"),
            }
        )
    frame = pd.DataFrame(rows, columns=_MATRIX_COLUMNS)
    for column in ("observed", "final_state", "final_result"):
        frame[column] = frame[column].astype("Int64")
    frame["expected"] = frame["expected"].astype("int64")
    frame["result"] = frame["result"].astype(RESULT_DTYPE)
    frame["match"] = frame["match"].astype(bool)
    frame["seconds"] = frame["seconds"].astype("float64").round(2)
    return frame


#: Per Update Result: the likely cause in the field, and what an operator does next.
_OPERATOR_ADVICE: dict[int, tuple[str, str]] = {
    0: (
        "no attempt has ended yet, or the state machine was reset",
        "nothing to judge yet: wait for the attempt, or start one",
    ),
    1: (
        "the new image booted, passed its self-test and confirmed itself",
        "check /3/0/3 names the new version, then move on to the next wave",
    ),
    2: (
        "the package is larger than the download slot, or the slot is full (logs, data)",
        "ship a smaller image (a delta, fewer features) or free storage first; retrying the "
        "same package fails the same way",
    ),
    3: (
        "no RAM buffer for a download block: too large blocks or a busy application",
        "retry with smaller blocks (256 B), at a quieter moment, or after a reboot",
    ),
    4: (
        "the radio link dropped during the download (coverage, sleep, a timeout)",
        "retry later, when /4/0/2 and /4/0/3 show a good link; a PULL can resume",
    ),
    5: (
        "the image failed its integrity check: corrupted on the way or in flash, tampered "
        "with, or signed with a key the device does not trust",
        "rebuild or re-sign with the right key, check the repository copy's hash, then "
        "retry; never push the same file again unchecked",
    ),
    6: (
        "the file is not a firmware image for this device (wrong build, wrong file)",
        "publish the image built for this device type (MCUboot magic in its header)",
    ),
    7: (
        "the Package URI cannot be resolved or the repository answers 4.04 / 404",
        "fix the URI, publish the file, and check the device can reach the repository",
    ),
    8: (
        "the new image was installed but failed at boot (self-test, crash); the "
        "bootloader rolled back to the old image",
        "stop the campaign: the image itself is bad; debug it on a bench device first",
    ),
    9: (
        "the URI's scheme is one the device cannot download with (see /5/0/8)",
        "read /5/0/8 and use a scheme it lists (coap:// for a CoAP-only device), or PUSH",
    ),
    10: (
        "the update was cancelled (Execute /5/0/10) before the install started",
        "nothing is broken; start a new attempt when you want the update",
    ),
    11: (
        "the user postponed the update, within Maximum Defer Period (/5/0/13)",
        "wait: the device installs when the user accepts or the period ends",
    ),
}


def operator_guide() -> pd.DataFrame:
    """What each Update Result means and what an operator does about it.

    Returns
    -------
    DataFrame
        Columns ``code`` (0..11), ``name`` (SUCCESS ...), ``description`` (the lesson's
        wording), ``likely_cause`` and ``next_step``; one row per code, RangeIndex.
    """
    import pandas as pd

    rows = [
        {
            "code": int(r),
            "name": r.name,
            "description": r.description,
            "likely_cause": _OPERATOR_ADVICE[int(r)][0],
            "next_step": _OPERATOR_ADVICE[int(r)][1],
        }
        for r in UpdateResult
    ]
    columns = ["code", "name", "description", "likely_cause", "next_step"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------------------------
# Secure boot and rollback (notebook 06)
# ---------------------------------------------------------------------------------------------


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


def verify_table(images: Mapping[str, bytes], key: Any = None) -> pd.DataFrame:
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


def flash_table(lab: Any, endpoints: Iterable[str]) -> pd.DataFrame:
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


# ---------------------------------------------------------------------------------------------
# 04 link quality versus PUSH decisions, 07 fleet campaigns: a lab in scaled time
# ---------------------------------------------------------------------------------------------

#: The scaled clock of each lab made by :func:`scaled_lab` (a Lab keeps its clock private).
_LAB_CLOCKS: Any = None
#: The run labels each lab has used (:func:`policy_run` names devices after them).
_LAB_RUN_LABELS: Any = None


def _clocks() -> Any:
    global _LAB_CLOCKS
    if _LAB_CLOCKS is None:
        import weakref

        _LAB_CLOCKS = weakref.WeakKeyDictionary()
    return _LAB_CLOCKS


def _run_labels() -> Any:
    global _LAB_RUN_LABELS
    if _LAB_RUN_LABELS is None:
        import weakref

        _LAB_RUN_LABELS = weakref.WeakKeyDictionary()
    return _LAB_RUN_LABELS


def scaled_lab(time_scale: float = 100.0, *, seed: int = 0) -> Any:
    """A started :class:`~labkit.runtime.Lab` whose clock runs ``time_scale`` times faster
    than the wall clock (:class:`~labkit.timebase.ScaledClock`), server CoAP timers included.

    At 100x a ten-minute NB-IoT update lasts six seconds; every timestamp in ``lab.events()``
    is simulated time. Campaigns of :func:`policy_run` and :func:`fleet` use this clock.
    """
    from labkit.runtime import Lab
    from labkit.timebase import ScaledClock

    clock = ScaledClock(time_scale)
    lab = Lab(clock=clock, seed=seed, request_timeout=30.0).start()

    def scale_server() -> None:
        lab.server.time_scale = clock.scale

    lab.call(scale_server, timeout=10)
    _clocks()[lab] = clock
    return lab


def _lab_clock(lab: Any) -> Any:
    clock = _clocks().get(lab)
    if clock is None:
        raise ValueError("this lab has no scaled clock: make it with course.scaled_lab(...)")
    return clock


# -- 04: signal traces ------------------------------------------------------------------------

_TRACE_COLUMNS = ["trace", "profile", "device", "t_min", "rssi_dbm", "link_quality", "loss", "band"]


def link_traces(
    profiles: Iterable[str] = ("nb-iot", "lte-m", "wifi", "mixed"),
    *,
    devices: int = 2,
    minutes: float = 60.0,
    step_s: float = 30.0,
    seed: int = 0,
) -> pd.DataFrame:
    """What /4 reports over time for ``devices`` devices of each link profile (tidy).

    Each trace is the link of one device of a fleet seeded ``seed``
    (:func:`labkit.sim.device_link`; every trace another device); for ``"mixed"`` each
    device draws its own profile.

    Returns
    -------
    DataFrame
        ``trace`` (``"lte-m #1"``, for mixed ``"mixed #1 (nb-iot)"``), ``profile`` (the name
        asked for), ``device`` (1, 2 ...), ``t_min`` (simulated minutes), ``rssi_dbm``
        (/4/0/2), ``link_quality`` (/4/0/3, the bearer's unit), ``loss`` (probability a
        datagram is lost), ``band`` (good/fair/poor); one row per sample, RangeIndex.
    """
    import pandas as pd

    from labkit.sim import device_link

    rows = []
    for k, name in enumerate(profiles):
        for i in range(devices):
            # Device numbers differ between profiles: "mixed" shows other devices' links.
            trace = device_link(name, k * devices + i, seed).trace
            label = f"{name} #{i + 1}"
            if name == "mixed":
                label += f" ({trace.profile.name})"
            for s in trace.samples(0.0, minutes * 60.0, step_s):
                rows.append(
                    {
                        "trace": label,
                        "profile": name,
                        "device": i + 1,
                        "t_min": s.t / 60.0,
                        "rssi_dbm": s.rssi_dbm,
                        "link_quality": s.link_quality,
                        "loss": s.loss,
                        "band": trace.profile.band(s.rssi_dbm),
                    }
                )
    return pd.DataFrame(rows, columns=_TRACE_COLUMNS)


def trace_summary(traces: pd.DataFrame, threshold_dbm: float = -105.0) -> pd.DataFrame:
    """Per trace of :func:`link_traces`: the signal's range and how much of the time a
    threshold policy at ``threshold_dbm`` would have said *wait*.

    Returns
    -------
    DataFrame
        ``trace``, ``rssi_mean``, ``rssi_min``, ``rssi_max`` (dBm), ``below_pct`` (percent
        of the samples below ``threshold_dbm``), ``max_loss`` (worst datagram loss).
    """
    grouped = traces.groupby("trace", sort=False)
    out = grouped["rssi_dbm"].agg(rssi_mean="mean", rssi_min="min", rssi_max="max")
    out["rssi_mean"] = out["rssi_mean"].round(1)
    below = traces["rssi_dbm"] < threshold_dbm
    out["below_pct"] = (100.0 * below.groupby(traces["trace"], sort=False).mean()).round(1)
    out["max_loss"] = grouped["loss"].max().round(3)
    return out.reset_index()


# -- 04: policies on single snapshots -----------------------------------------------------------

#: Link samples that tell the policies apart: (label, RSSI dBm, Link Quality dB, battery %).
EXAMPLE_SNAPSHOTS: tuple[tuple[str, int | None, int | None, int | None], ...] = (
    ("good", -85, -8, 80),
    ("fair", -98, -10, 80),
    ("poor", -112, -14, 80),
    ("no /4 answer", None, None, None),
    ("good, battery 12 %", -85, -8, 12),
)

#: The registered policies with their default parameters, as the lesson compares them.
EXAMPLE_POLICIES: tuple[str, ...] = (
    "always",
    "threshold",
    "hysteresis",
    "best-window",
    "battery-floor",
)


def policy_examples(
    policies: Iterable[Any] = EXAMPLE_POLICIES,
    snapshots: Iterable[tuple[str, int | None, int | None, int | None]] = EXAMPLE_SNAPSHOTS,
) -> pd.DataFrame:
    """Every policy asked once about every snapshot (a fresh context: nothing waited yet).

    ``policies`` are registry names (:data:`labkit.policy.POLICIES`, default parameters) or
    policy objects; ``snapshots`` are ``(label, rssi_dbm, link_quality, battery)``.

    Returns
    -------
    DataFrame
        ``link`` (the snapshot's label), ``rssi_dbm``, ``battery``, ``policy``, ``action``
        (push/wait/pull/give_up), ``retry_after_s`` and ``reason``; policies vary fastest.
    """
    import pandas as pd

    from labkit.policy import LinkSnapshot, evaluate, make_policy, policy_name

    built = [make_policy(p) if isinstance(p, str) else p for p in policies]
    rows = []
    for label, rssi, lq, battery in snapshots:
        snapshot = LinkSnapshot(rssi_dbm=rssi, link_quality=lq, battery=battery, t=0.0)
        for policy in built:
            decision = evaluate(policy, snapshot)
            rows.append(
                {
                    "link": label,
                    "rssi_dbm": rssi,
                    "battery": battery,
                    "policy": policy_name(policy),
                    "action": decision.action,
                    "retry_after_s": decision.retry_after_s,
                    "reason": decision.reason,
                }
            )
    frame = pd.DataFrame(rows)
    frame["rssi_dbm"] = frame["rssi_dbm"].astype("Int64")
    frame["battery"] = frame["battery"].astype("Int64")
    return frame


def policy_walk(
    policy: Any, rssi_dbm: Iterable[int | None], *, step_s: float = 60.0, **params: Any
) -> pd.DataFrame:
    """Ask ``policy`` once per sample of a signal, as a campaign does: it remembers its
    previous decision and how long the device has waited so far.

    ``policy`` is a registry name (built with ``params``) or a policy object; the samples
    are ``step_s`` seconds apart.

    Returns
    -------
    DataFrame
        ``t_s``, ``rssi_dbm``, ``waited_s`` (before the decision), ``action``, ``reason``.
    """
    import pandas as pd

    from labkit.policy import LinkSnapshot, PolicyContext, evaluate, make_policy

    built = make_policy(policy, **params) if isinstance(policy, str) else policy
    previous = None
    waited = 0.0
    rows = []
    for k, rssi in enumerate(rssi_dbm):
        snapshot = LinkSnapshot(rssi_dbm=rssi, link_quality=None, battery=None, t=k * step_s)
        decision = evaluate(built, snapshot, PolicyContext(waited_s=waited, previous=previous))
        rows.append(
            {
                "t_s": k * step_s,
                "rssi_dbm": rssi,
                "waited_s": waited,
                "action": decision.action,
                "reason": decision.reason,
            }
        )
        if decision.action == "wait":
            waited += step_s
        previous = decision
    frame = pd.DataFrame(rows)
    frame["rssi_dbm"] = frame["rssi_dbm"].astype("Int64")
    return frame


# -- 04: one small campaign per policy, on calm links with weak devices ---------------------------

#: Simulated seconds of the weak devices' scripted trouble, from the campaign's start: the
#: signal is 25 dB down (about -115 dBm, below the threshold policy's -105) until
#: ``WEAK_UNTIL_S``, and the link is gone entirely from ``OUTAGE_FROM_S`` to ``OUTAGE_UNTIL_S``.
WEAK_UNTIL_S = 260.0
OUTAGE_FROM_S = 30.0
OUTAGE_UNTIL_S = 200.0
WEAK_DEPTH_DB = 25.0


def weak_links(
    devices: int, weak: Iterable[int], *, profile: str = "lte-m", seed: int = 0
) -> list[Any]:
    """Links for a fleet of ``devices`` in which devices ``weak`` (0-based) have trouble.

    Every link uses the numbers of ``profile`` (loss, delay and data rate against the
    signal) but *calm*: no fading and no random dips, the signal at -90 dBm, so that only
    the scripted trouble matters and a run gives the same outcome every time. A weak device
    starts 25 dB down (:data:`WEAK_UNTIL_S`) and loses its link for minutes in between
    (:data:`OUTAGE_FROM_S` .. :data:`OUTAGE_UNTIL_S`): a van parked in front of the meter.
    """
    import dataclasses

    from labkit.sim import PROFILES, Dip, LinkImpairment, SignalTrace, derive_seed, outage
    from labkit.sim.profiles import DipModel

    calm = dataclasses.replace(
        PROFILES[profile],
        rssi_mean_dbm=-90.0,
        rssi_sigma_db=0.0,
        dips=DipModel(rate_per_hour=0.0, depth_db=0.0, duration_s=1.0),
    )
    trouble = [
        Dip(0.0, WEAK_UNTIL_S, WEAK_DEPTH_DB),
        outage(OUTAGE_FROM_S, OUTAGE_UNTIL_S - OUTAGE_FROM_S),
    ]
    weak_set = set(weak)
    links = []
    for i in range(devices):
        s = derive_seed(seed, "course-link", i)
        trace = SignalTrace(calm, s, dips=trouble if i in weak_set else ())
        links.append(LinkImpairment(trace, s))
    return links


#: Campaign options of the lesson's small runs: waits and timeouts in simulated seconds (the
#: server, the link relays and the devices all scale their timers with the lab's clock), with
#: 0.5 s of wall time at least under a timeout.
_RUN_OPTIONS: dict[str, Any] = {
    "max_concurrent": 50,
    "max_wait_s": 900.0,
    "min_wall_timeout_s": 0.5,
}


@dataclass
class PolicyRun:
    """One small campaign of :func:`policy_run`: its campaign, its devices, its events."""

    label: str
    campaign: Any
    devices: list[str]
    weak: list[str]
    events: pd.DataFrame
    wall_s: float

    @property
    def policy(self) -> Any:
        return self.campaign.policy

    @property
    def thresholds(self) -> dict[str, float]:
        from labkit.policy import policy_thresholds

        return policy_thresholds(self.campaign.policy)

    def summary(self) -> dict[str, Any]:
        """One row of :func:`compare_runs`."""
        from labkit.policy import policy_name

        s = self.campaign.summary()
        d = self.campaign.devices()
        return {
            "run": self.label,
            "policy": policy_name(self.campaign.policy),
            "thresholds": ", ".join(f"{k} {v:g}" for k, v in self.thresholds.items()) or "-",
            "devices": s["devices"],
            "success": s["success"],
            "failed": s["failed"],
            "result_4": s["result_4"],
            "waits": int(d["waits"].sum()),
            "time_to_complete_s": round(float(s["time_to_complete_s"] or 0.0), 1),
        }

    def table(self) -> pd.DataFrame:
        """Per device: weak or not, status, Update Result, decisions, waits, RSSI at the first
        and the last decision, when it finished (simulated seconds)."""
        d = self.campaign.devices()
        out = d[
            [
                "device",
                "status",
                "result",
                "result_name",
                "decisions",
                "waits",
                "first_rssi_dbm",
                "last_rssi_dbm",
                "finished_s",
            ]
        ].copy()
        out.insert(1, "weak", out["device"].isin(self.weak))
        out["finished_s"] = out["finished_s"].round(1)
        return out

    def decisions(self, device: str | None = None) -> pd.DataFrame:
        """The policy's decisions (of one device, or all), each with the link sample it saw:
        ``t_s`` (simulated seconds since the run started), ``device``, ``decision``,
        ``rssi_dbm``, ``link_quality``, ``reason``."""
        from labkit.record import decisions

        d = decisions(self.events)
        if device is not None:
            d = d[d["device"].astype("string") == device]
        start = self.events["ts"].min()
        out = d[["device", "decision", "rssi_dbm", "link_quality", "reason"]].copy()
        out.insert(0, "t_s", ((d["ts"] - start).dt.total_seconds()).round(1))
        out["device"] = out["device"].astype("string")
        out["decision"] = out["decision"].astype("string")
        return out.reset_index(drop=True)

    def _repr_html_(self) -> str:
        return self.table().to_html(index=False)

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"<PolicyRun {self.label}: {s['success']} success, {s['failed']} failed "
            f"({s['result_4']} with Result 4) in {s['time_to_complete_s']} s>"
        )


def _unique_label(lab: Any, wanted: str) -> str:
    taken = _run_labels().setdefault(lab, set())
    label, k = wanted, 1
    while label in taken:
        k += 1
        label = f"{wanted}{k}"
    taken.add(label)
    return label


def policy_run(
    lab: Any,
    policy: str | Any = "always",
    *,
    devices: int = 6,
    weak: Iterable[int] | None = None,
    image_size: int = 128 * 1024,
    seed: int = 0,
    label: str | None = None,
    timeout: float = 120.0,
    **policy_params: Any,
) -> PolicyRun:
    """Run one PUSH campaign with ``policy`` over a small fresh fleet and wait for its end.

    The fleet has ``devices`` simulated devices behind link relays (:func:`weak_links`:
    calm LTE-M links; ``weak``, default every second device, are weak and lose their link
    for minutes soon after the start), all pushed at once with ``policy`` (a registry name
    built with ``policy_params``, or a policy object). The devices are named
    ``<label>-0001`` ... (``label`` defaults to the policy's name, made unique in the lab),
    so that several runs share one event table. ``lab`` is a :func:`scaled_lab`; ``timeout``
    bounds the campaign in wall seconds (it is cancelled then).
    """
    import time

    from labkit.policy import make_policy, policy_name

    clock = _lab_clock(lab)
    built = make_policy(policy, **policy_params) if isinstance(policy, str) else policy
    name = _unique_label(lab, label or policy_name(built).replace("(", "-").replace(")", ""))
    weak_idx = list(range(1, devices, 2)) if weak is None else sorted(set(weak))
    links = weak_links(devices, weak_idx, seed=seed)
    image = package("2.0.0", image_size, seed=seed)
    started = time.monotonic()
    t0 = clock()

    async def run() -> tuple[Any, Any]:

        # Register in calm conditions (trace time far past the trouble); the fleet's start
        # then makes "now" time 0 of the traces, so the trouble starts with the campaign.
        sim = await _start_fleet(
            lab,
            clock,
            devices,
            links=links,
            prefix=f"{name}-",
            feed_interval_s=15.0,
            origin=clock.elapsed() - 10 * WEAK_UNTIL_S,
        )
        try:
            campaign = LabFleet(lab, sim, clock).campaign(image, policy=built)
            await campaign.run_until(timeout)
        finally:
            await sim.stop()
        return campaign, sim

    campaign, sim = lab.call(run(), timeout=timeout + 90.0)
    endpoints = list(sim.endpoints)
    events = _events_between(lab, t0, clock(), endpoints)
    return PolicyRun(
        label=name,
        campaign=campaign,
        devices=endpoints,
        weak=[endpoints[i] for i in weak_idx if i < len(endpoints)],
        events=events,
        wall_s=time.monotonic() - started,
    )


def _events_between(lab: Any, t0: float, t1: float, devices: Iterable[str]) -> pd.DataFrame:
    """The lab's events of ``devices`` (and device-less rows) between two clock readings."""
    import pandas as pd

    events = lab.events()
    lo = pd.Timestamp(t0, unit="s", tz="UTC")
    hi = pd.Timestamp(t1, unit="s", tz="UTC")
    names = set(devices)
    device = events["device"].astype("string")
    mine = device.isin(names).fillna(False) | device.isna()
    when = (events["ts"] >= lo) & (events["ts"] <= hi)
    return events.loc[(mine & when).to_numpy(dtype=bool)].reset_index(drop=True)


def compare_runs(runs: Iterable[PolicyRun]) -> pd.DataFrame:
    """Runs side by side, one row each: ``run``, ``policy``, ``thresholds``, ``devices``,
    ``success``, ``failed``, ``result_4`` (failed with Update Result 4, connection lost),
    ``waits`` (how often the policy said wait, in all), ``time_to_complete_s`` (simulated
    seconds until the last device finished)."""
    import pandas as pd

    return pd.DataFrame([run.summary() for run in runs])


class ThresholdExplorer:
    """A slider for the threshold policy's ``min_rssi_dbm`` and a *re-run* button.

    Each press runs :func:`policy_run` with the slider's threshold in a background thread
    (the notebook stays free) and shows every run so far side by side. :meth:`run` does
    the same from code and waits for it.

    Parameters
    ----------
    lab:
        A :func:`scaled_lab`.
    runs:
        Earlier runs to compare with (e.g. the always and threshold runs).
    **run_options:
        More keyword arguments of :func:`policy_run` (``devices``, ``seed`` ...).
    """

    def __init__(self, lab: Any, runs: Iterable[PolicyRun] = (), **run_options: Any) -> None:
        import threading

        import ipywidgets as w

        self.lab = lab
        self.runs: list[PolicyRun] = list(runs)
        self.run_options = run_options
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.slider = w.FloatSlider(
            value=-105.0,
            min=-130.0,
            max=-80.0,
            step=1.0,
            description="min_rssi_dbm",
            continuous_update=False,
            style={"description_width": "110px"},
            layout=w.Layout(width="460px"),
        )
        self.button = w.Button(description="re-run", icon="play", button_style="success")
        self.button.on_click(lambda _b: self.start())
        self.status = w.HTML()
        self.table = w.HTML()
        self.widget = w.VBox([w.HBox([self.slider, self.button]), self.status, self.table])
        self._show("move the threshold, then press re-run")

    def _show(self, text: str) -> None:
        self.status.value = f"<i>{html.escape(text)}</i>"
        if self.runs:
            self.table.value = compare_runs(self.runs).to_html(index=False)

    def run(self, min_rssi_dbm: float | None = None) -> PolicyRun:
        """Run the threshold policy at ``min_rssi_dbm`` (default: the slider's value) and
        wait for the end; the run joins :attr:`runs`."""
        threshold = float(self.slider.value if min_rssi_dbm is None else min_rssi_dbm)
        self._show(f"running threshold {threshold:g} dBm ...")
        run = policy_run(self.lab, "threshold", min_rssi_dbm=threshold, **self.run_options)
        with self._lock:
            self.runs.append(run)
        self._show(
            f"threshold {threshold:g} dBm: {run.summary()['success']} of "
            f"{len(run.devices)} updated, {run.summary()['result_4']} with Result 4"
        )
        return run

    def start(self) -> None:
        """What the button does: :meth:`run` in a background thread (one at a time)."""
        import threading

        if self._thread is not None and self._thread.is_alive():
            self._show("a run is still going: wait for it")
            return

        def work() -> None:
            try:
                self.run()
            except Exception as exc:  # shown in the widget: a thread has no cell to raise in
                self._show(f"the run failed: {exc!r}")
            finally:
                self.button.disabled = False

        self.button.disabled = True
        self._thread = threading.Thread(target=work, name="labkit-threshold-explorer", daemon=True)
        self._thread.start()

    def comparison(self) -> pd.DataFrame:
        """:func:`compare_runs` of every run so far."""
        return compare_runs(self.runs)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


# -- 07: a fleet that stays, and campaigns over it ------------------------------------------------


def bad_package(size: int = 4096, *, seed: int = 0) -> bytes:
    """``size`` bytes that are no firmware image (neither MCUboot nor a lab package): every
    device takes the download and refuses it at its end, Update Result 6."""
    return b"NOT-FIRMWARE\n" + random.Random(f"labkit-bad|{seed}").randbytes(max(0, size - 13))


async def _start_fleet(
    lab: Any, clock: Any, devices: int, *, origin: float | None = None, **options: Any
) -> Any:
    """A started :class:`~labkit.fota.simulate.SimFleet` on the lab's server (stopped again
    if it does not come up). ``origin``: trace time 0 while the devices register."""
    from labkit.fota.simulate import SimFleet

    sim = SimFleet(lab.server, devices, clock=clock, on_event=lab.server.on_event, **options)
    if origin is not None:
        sim.set_link_origin(origin)
    try:
        await sim.start(timeout=30.0)
    except BaseException:
        await sim.stop()
        raise
    return sim


class LabFleet:
    """Simulated devices behind link relays on a :func:`scaled_lab`, kept for several
    campaigns (made by :func:`fleet`). Close it before the lab (:meth:`close`)."""

    def __init__(self, lab: Any, sim_fleet: Any, clock: Any) -> None:
        self.lab = lab
        self.sim = sim_fleet
        self.clock = clock

    @property
    def endpoints(self) -> list[str]:
        return list(self.sim.endpoints)

    def table(self) -> pd.DataFrame:
        """Per device: ``device``, link ``profile`` and ``faults`` (comma-separated)."""
        import pandas as pd

        rows = [
            {"device": m.endpoint, "profile": m.profile, "faults": ",".join(sorted(m.faults))}
            for m in self.sim.members
        ]
        return pd.DataFrame(rows, columns=["device", "profile", "faults"])

    def campaign(self, package: bytes, **options: Any) -> Any:
        """A :class:`~labkit.fota.campaign.Campaign` over this fleet (not started yet); the
        options are the campaign's (``canary``, ``waves``, ``max_concurrent`` ...)."""
        from labkit.fota.campaign import Campaign

        kwargs = dict(_RUN_OPTIONS)
        kwargs.update(fleet=self.sim.tags(), clock=self.clock)
        kwargs.update(options)
        return Campaign(self.lab.server, package, **kwargs)

    def start(self, campaign: Any) -> Any:
        """Start ``campaign`` on the lab loop and return at once (a Future of its end)."""
        return self.lab.submit(campaign.run())

    def run(self, campaign: Any, timeout: float = 120.0) -> Any:
        """Run ``campaign`` to its end (at most ``timeout`` wall seconds) and return it."""
        future = self.start(campaign)
        return wait_campaign(campaign, future, timeout=timeout)

    def events(self, campaign: Any) -> pd.DataFrame:
        """The lab's events of this fleet while ``campaign`` ran."""
        end = campaign.finished_at if campaign.finished_at is not None else self.clock()
        return _events_between(self.lab, campaign.started_at or 0.0, end, self.endpoints)

    def close(self) -> None:
        """Stop the devices and their relays (bounded)."""
        self.lab.call(self.sim.stop(), timeout=30.0)

    def __repr__(self) -> str:
        return f"<LabFleet {len(self.sim.members)} devices>"

    def _repr_html_(self) -> str:
        return self.table().to_html(index=False)


def fleet(
    lab: Any,
    devices: int,
    *,
    profile: str = "mixed",
    faults: str = "",
    seed: int = 0,
    clean: int = 0,
) -> LabFleet:
    """``devices`` simulated devices (``sim-0001`` ...) behind link relays with the links of
    ``profile`` (``"mixed"``: NB-IoT, LTE-M and Wi-Fi) and the faults of the spec ``faults``
    (``"boot-fail:0.1"``, :func:`labkit.sim.faults.assign_faults`), registered to ``lab`` (a
    :func:`scaled_lab`). The first ``clean`` devices get no fault (a canary you trust).
    """
    from labkit.sim.faults import assign_faults

    clock = _lab_clock(lab)
    sets = assign_faults(faults, devices, seed) if faults else [set() for _ in range(devices)]
    for i in range(min(clean, devices)):
        sets[i] = set()

    work = _start_fleet(
        lab,
        clock,
        devices,
        profile=profile,
        seed=seed,
        faults=sets,
        feed_interval_s=120.0,
    )
    return LabFleet(lab, lab.call(work, timeout=60.0), clock)


def wait_campaign(campaign: Any, future: Any, *, timeout: float = 120.0) -> Any:
    """Wait for a started campaign's end (``future`` from :meth:`LabFleet.start`); after
    ``timeout`` wall seconds cancel it, interrupting transfers, and wait for that."""
    import concurrent.futures

    try:
        future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        campaign.cancel(abort=True)
        future.result(timeout=30.0)
    return campaign


def _status_counts(campaign: Any) -> dict[str, int]:
    statuses = [run.status for run in list(campaign.runs.values())]
    return {s: statuses.count(s) for s in ("pending", "waiting", "updating", "success", "failed")}


def pause_and_resume(
    campaign: Any, future: Any, *, after: int = 2, hold_s: float = 1.5, timeout: float = 120.0
) -> pd.DataFrame:
    """Pause a running campaign once ``after`` devices have finished, hold it ``hold_s``
    wall seconds, resume it and wait for its end; a snapshot of the devices' statuses at
    each of those moments.

    Returns
    -------
    DataFrame
        ``moment``, ``campaign`` (its status), ``started`` (devices whose update began),
        ``pending``, ``waiting``, ``updating``, ``success``, ``failed``.
    """
    import time

    import pandas as pd

    rows = []

    def snap(moment: str) -> None:
        started = sum(r.attempts > 0 for r in list(campaign.runs.values()))
        rows.append(
            {
                "moment": moment,
                "campaign": campaign.status,
                "started": started,
                **_status_counts(campaign),
            }
        )

    deadline = time.monotonic() + timeout
    while campaign.progress[0] < after and not future.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    campaign.pause()
    time.sleep(0.05)
    snap("paused")
    time.sleep(hold_s)
    snap(f"still paused, {hold_s:g} s later")
    campaign.resume()
    time.sleep(0.05)
    snap("resumed")
    wait_campaign(campaign, future, timeout=max(1.0, deadline - time.monotonic()))
    snap("finished")
    return pd.DataFrame(rows)
