"""What a request to a device gives back: :class:`Response`, the server's errors, typed rows.

This module owns the server-side view of one answer from a device: the CoAP code as text
(``"2.05"``), the payload, and the payload decoded into LwM2M values (or links for a
Discover). Decoding is the codecs' work (:mod:`labkit.lwm2m.formats`); this module only calls
them and keeps their error. It also turns values of the resources the lab analyses (/5/0/3,
/5/0/5, /3/0/3, /4/0/2, /4/0/3, /3/0/9) into typed :class:`~labkit.events.Event` rows.
It never sends anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.events import Event
from labkit.lwm2m.errors import Lwm2mError
from labkit.lwm2m.formats import ContentFormat, decode, normalize_format
from labkit.lwm2m.formats.linkformat import Link, parse_links
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import Value

__all__ = [
    "DeviceNotRegistered",
    "DeviceUnreachable",
    "RequestFailed",
    "RequestTimeout",
    "Response",
    "ServerError",
    "code_text",
    "typed_events",
]


class ServerError(Exception):
    """Base class of the errors :mod:`labkit.server` raises to its callers."""


class DeviceNotRegistered(ServerError, KeyError):
    """No current registration for this endpoint name."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.endpoint = endpoint

    def __str__(self) -> str:
        return f"device {self.endpoint!r} is not registered"


class RequestFailed(ServerError):
    """A device answered with a code other than 2.xx (or broke the block-wise protocol)."""

    def __init__(
        self, code: str, path: str | Path | None = None, *, detail: str | None = None
    ) -> None:
        self.code = code
        self.path = str(path) if path is not None else None
        self.detail = detail
        text = f"{code} for {self.path}" if self.path else code
        super().__init__(f"{text}: {detail}" if detail else text)


class RequestTimeout(ServerError, TimeoutError):
    """No answer (or no block-wise progress) within the request timeout.

    A subclass of :class:`TimeoutError`, which is :class:`asyncio.TimeoutError` on 3.11.
    """


class DeviceUnreachable(ServerError, ConnectionError):
    """The transport reported the device unreachable (e.g. ICMP port unreachable)."""


def code_text(code: Any) -> str:
    """CoAP code as ``"c.dd"`` (aiocoap ``Code``, an int, or text already)."""
    if isinstance(code, str):
        return code
    n = int(code)
    return f"{n >> 5}.{n & 0x1F:02d}"


@dataclass
class Response:
    """One answer of a device.

    Attributes
    ----------
    code:
        CoAP code as text, ``"2.05"``.
    path:
        The LwM2M path the request went to.
    content_format:
        Content-Format of the payload (None when absent).
    payload:
        The raw payload (reassembled when it came block-wise).
    values:
        Decoded values, full resource (instance) path -> value; empty when the payload is
        empty, not decodable, or links.
    links:
        The links of a link-format (40) payload (Discover).
    rtt_ms:
        Wall-clock milliseconds from sending the request to this answer (for a notification:
        since the Observe request was sent).
    error:
        Why decoding failed (None when it did not fail).
    location:
        Location-Path of a 2.01 (Create), as a path string, else None.
    observe:
        The Observe option value of a notification (None otherwise).
    """

    code: str
    path: Path
    content_format: int | None = None
    payload: bytes = b""
    values: dict[Path, Value] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    rtt_ms: float = 0.0
    error: str | None = None
    location: str | None = None
    observe: int | None = None

    @property
    def ok(self) -> bool:
        """True for a 2.xx code."""
        return self.code.startswith("2.")

    @property
    def value(self) -> Value | None:
        """The single value of a one-resource answer (None when there is not exactly one)."""
        if len(self.values) == 1:
            return next(iter(self.values.values()))
        return self.values.get(self.path) if self.path.level >= 3 else None

    def raise_for_status(self) -> Response:
        """Raise :class:`RequestFailed` unless the code is 2.xx; return self otherwise."""
        if not self.ok:
            raise RequestFailed(self.code, self.path)
        return self

    @classmethod
    def from_message(cls, msg: Any, path: Path, rtt_ms: float) -> Response:
        """Build a response from an aiocoap message and decode its payload."""
        cf = msg.opt.content_format
        resp = cls(
            code=code_text(msg.code),
            path=path,
            content_format=int(cf) if cf is not None else None,
            payload=bytes(msg.payload),
            rtt_ms=rtt_ms,
            observe=msg.opt.observe,
        )
        if msg.opt.location_path:
            resp.location = "/" + "/".join(msg.opt.location_path)
        resp._decode()
        return resp

    def _decode(self) -> None:
        if not self.payload or not self.ok:
            return
        fmt = self.content_format
        if fmt is None:
            # No Content-Format: a single resource answered in text/plain is the usual case.
            if self.path.level < 3:
                return
            fmt = ContentFormat.TEXT
        try:
            if fmt == ContentFormat.LINK_FORMAT:
                self.links = parse_links(self.payload)
                return
            self.values = dict(decode(normalize_format(fmt), self.payload, self.path))
        except (Lwm2mError, ValueError) as exc:
            self.values = {}
            self.error = f"{type(exc).__name__}: {exc}"

    def __repr__(self) -> str:
        extra = f", values={self.values!r}" if self.values else ""
        if self.links:
            extra = f", links={len(self.links)}"
        if self.error:
            extra += f", error={self.error!r}"
        return f"Response({self.code} {self.path}, {len(self.payload)} B{extra})"


# /O/I/R of the resources the analysis reads, and the event kind and column they go to.
_FW_STATE = (5, 3)
_FW_RESULT = (5, 5)
_FW_VERSION = (3, 3)
_BATTERY = (3, 9)
_RSSI = (4, 2)
_LINK_QUALITY = (4, 3)


def _int(value: Value) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str | bytes):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _key(path: Path) -> tuple[int, int] | None:
    if path.level < 3 or path.is_resource_instance:
        return None
    return (path.ids[0], path.ids[2])


def typed_events(
    values: Mapping[Path, Value], *, ts: float, device: str | None, source: str = "server"
) -> Iterable[Event]:
    """Typed event rows for the analysed resources found in ``values``.

    /5/0/3 -> ``fw_state``, /5/0/5 -> ``fw_result``, /3/0/3 -> ``fw_version``, /4/0/2 and
    /4/0/3 -> one ``link`` row (with /3/0/9 as ``battery`` when read together; a /3/0/9 seen
    without link values becomes a ``link`` row with only ``battery``, as the event table has
    no kind of its own for it).
    """
    out: list[Event] = []
    link: dict[str, int | None] = {}
    for path, value in values.items():
        key = _key(path)
        if key is None:
            continue
        p = str(path)
        if key == _FW_STATE and (n := _int(value)) is not None:
            out.append(Event(ts=ts, source=source, kind="fw_state", device=device, path=p, state=n))
        elif key == _FW_RESULT and (n := _int(value)) is not None:
            out.append(
                Event(ts=ts, source=source, kind="fw_result", device=device, path=p, result=n)
            )
        elif key == _FW_VERSION:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            out.append(
                Event(
                    ts=ts, source=source, kind="fw_version", device=device, path=p, fw_version=text
                )
            )
        elif key == _RSSI:
            link["rssi_dbm"] = _int(value)
        elif key == _LINK_QUALITY:
            link["link_quality"] = _int(value)
        elif key == _BATTERY:
            link["battery"] = _int(value)
    if any(v is not None for v in link.values()):
        where = "/4/0" if ("rssi_dbm" in link or "link_quality" in link) else "/3/0/9"
        out.append(
            Event(
                ts=ts,
                source=source,
                kind="link",
                device=device,
                path=where,
                rssi_dbm=link.get("rssi_dbm"),
                link_quality=link.get("link_quality"),
                battery=link.get("battery"),
            )
        )
    return out
