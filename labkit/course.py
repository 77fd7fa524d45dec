"""Small helpers for the notebook course (``notebooks/``): everything a lesson shows but the
lab itself does not need.

The notebooks stay thin -- a few calls per cell -- so whatever a lesson computes or formats
lives here, tested: the fast mode of ``make test`` (:func:`fast_mode`), lab firmware packages
(:func:`package`), the seed's State and Update Result tables (:func:`state_table`,
:func:`result_table`), bytes on the wire (:func:`wire`, :func:`tlv_fields`,
:func:`read_formats`), a registration explained (:func:`registration_table`,
:func:`objects_table`), the story of an update from the event table (:func:`story`), the /5
machine driven by hand (:func:`walk`) and Mermaid diagrams in notebook output
(:func:`mermaid`).

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
    "FAST_ENV",
    "FormatComparison",
    "Wire",
    "fast_mode",
    "links_table",
    "log",
    "mermaid",
    "objects_table",
    "package",
    "read_formats",
    "registration_table",
    "result_table",
    "rules",
    "state_table",
    "story",
    "tlv_fields",
    "values_table",
    "walk",
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
