"""Importing a packet capture of CoAP/LwM2M traffic into the lab's event table.

This module owns the top half of ``labkit import-pcap``: it takes the UDP datagrams that
:mod:`labkit.record.pcap` reads out of a pcap/pcapng file (any port, IPv4 or IPv6), decodes
each as a CoAP message (RFC 7252, own parser), follows the LwM2M exchanges in them and writes
the same :class:`~labkit.events.Event` rows a lab run records, with ``source="import"`` and
``ts`` = capture time (UTC epoch seconds). A capture of a real device's update taken with
tcpdump or Wireshark then goes through the same timelines and statistics as a lab run. It
never sends anything and never raises on what a capture contains: every datagram or payload
it cannot use is counted by reason in :attr:`CaptureImport.skipped`.

How CoAP becomes rows (mirroring :mod:`labkit.server`, whose typed-row mapping
:func:`labkit.server.response.typed_events` is reused as is):

* ``POST /rd?ep=...`` answered 2.01 -> ``registered`` (device = ``ep``, path = the
  Location-Path). The sender's address is from then on that endpoint's; a Register from a new
  port after a reboot maps the new address to the same endpoint. ``POST /rd/{id}`` 2.04 ->
  ``reg_updated``, ``DELETE /rd/{id}`` 2.02 -> ``deregistered`` (device found by the
  location, else by address). A refused one -> ``error``. ``POST /dp`` -> ``send``.
* A request to a registered device's address (a numeric LwM2M path, the registration's
  alternate root stripped) -> ``request`` (method, path, bytes, ``detail`` = the operation:
  read, observe, write, execute...). ``PUT /5/0/1`` has the URI as ``detail``;
  ``POST /5/0/2`` has ``"execute update"``.
* Block1 transfers (the PUSH of ``/5/0/0``): one ``request`` at block 0, one ``block`` row per
  answered block (block number, bytes, answer code, rtt), one ``response`` at the end.
  Block2 answers are ``block`` rows too, reassembled before decoding.
* The answer (matched by endpoint pair and token; piggybacked in the ACK or separate) ->
  ``response`` (code, ``rtt_ms`` from capture timestamps); its payload is decoded with its
  Content-Format (text/plain when absent on a resource path) at the request's path, and the
  values of /5/0/3, /5/0/5, /3/0/3, /4/0/2, /4/0/3, /3/0/9 become ``fw_state``,
  ``fw_result``, ``fw_version`` and ``link`` rows.
* Later answers on the token of an accepted Observe -> ``notify`` plus the typed rows.
* A request to an address no registration in the capture explains is attributed to a
  placeholder device ``"host:port"``; if that address registers later in the capture, the
  placeholder is replaced by the endpoint name.

Retransmissions (the same bytes with the same Message ID from the same peer within
MAX_TRANSMIT_SPAN, and the duplicate frames of a ``tcpdump -i any`` capture) are counted once;
DTLS records are reported, not decoded. Registration rows carry the time of the answer that
accepted them; every other row the time of the message it comes from.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path as FsPath
from typing import Any

import pandas as pd

from labkit.events import Event
from labkit.lwm2m.errors import Lwm2mError
from labkit.lwm2m.formats import ContentFormat, decode, normalize_format
from labkit.lwm2m.paths import Path
from labkit.lwm2m.registration import RegisterRequest, parse_register, parse_update
from labkit.lwm2m.values import Value
from labkit.record.pcap import CaptureError, Datagram, ReadStats, read_packets
from labkit.record.schema import RESULT_NAMES, STATE_NAMES, events_to_frame
from labkit.server.response import typed_events

__all__ = [
    "CaptureError",
    "CaptureImport",
    "CoapError",
    "CoapMessage",
    "decode_coap",
    "import_capture",
    "import_pcap",
]

log = logging.getLogger("labkit.record.capture")

Addr = tuple[str, int]

#: RFC 7252 MAX_TRANSMIT_SPAN: the same message seen again within it is a retransmission. (Not
#: EXCHANGE_LIFETIME: a device rebooting on a fixed port may repeat a Message ID and token.)
MAX_TRANSMIT_SPAN = 45.0

CON, NON, ACK, RST = 0, 1, 2, 3

# CoAP option numbers (RFC 7252, 7641, 7959).
OPT_OBSERVE = 6
OPT_LOCATION_PATH = 8
OPT_URI_PATH = 11
OPT_CONTENT_FORMAT = 12
OPT_URI_QUERY = 15
OPT_ACCEPT = 17
OPT_BLOCK2 = 23
OPT_BLOCK1 = 27
OPT_SIZE1 = 60

_METHODS = {1: "GET", 2: "POST", 3: "PUT", 4: "DELETE", 5: "FETCH", 6: "PATCH", 7: "iPATCH"}

#: UDP ports of well-known protocols that are never CoAP; their datagrams are not decoded.
NON_COAP_PORTS: dict[int, str] = {
    53: "DNS",
    67: "DHCP",
    68: "DHCP",
    123: "NTP",
    137: "NetBIOS",
    138: "NetBIOS",
    161: "SNMP",
    162: "SNMP",
    443: "QUIC",
    514: "syslog",
    546: "DHCPv6",
    547: "DHCPv6",
    1900: "SSDP",
    5353: "mDNS",
    5355: "LLMNR",
}

#: Formats whose payload names its paths, so they decode without the request's path.
_SELF_DESCRIBING = frozenset(
    {
        ContentFormat.SENML_JSON,
        ContentFormat.SENML_CBOR,
        ContentFormat.LWM2M_CBOR,
        ContentFormat.LWM2M_JSON,
    }
)


# ---------------------------------------------------------------------------------------------
# CoAP messages (RFC 7252 section 3)
# ---------------------------------------------------------------------------------------------


class CoapError(ValueError):
    """A datagram is not a well-formed CoAP message; ``reason`` is a short fixed phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CoapMessage:
    """One decoded CoAP message: header, token, options in order, payload."""

    mtype: int
    code: int
    mid: int
    token: bytes
    options: tuple[tuple[int, bytes], ...]
    payload: bytes

    @property
    def code_text(self) -> str:
        """``"c.dd"``, e.g. ``"2.05"``."""
        return f"{self.code >> 5}.{self.code & 0x1F:02d}"

    @property
    def is_empty(self) -> bool:
        return self.code == 0

    @property
    def is_request(self) -> bool:
        return 1 <= self.code <= 31

    @property
    def is_response(self) -> bool:
        return self.code >> 5 in (2, 4, 5)

    @property
    def method(self) -> str:
        return _METHODS.get(self.code, self.code_text)

    def all(self, number: int) -> list[bytes]:
        return [v for n, v in self.options if n == number]

    def strings(self, number: int) -> list[str]:
        return [v.decode("utf-8", "replace") for v in self.all(number)]

    def uint(self, number: int) -> int | None:
        """The first option ``number`` as an unsigned integer (None when absent or > 4 bytes)."""
        for n, v in self.options:
            if n == number:
                return int.from_bytes(v, "big") if len(v) <= 4 else None
        return None

    def block(self, number: int) -> tuple[int, bool, int] | None:
        """Block1/Block2 as (NUM, M, SZX) (RFC 7959 2.2)."""
        v = self.uint(number)
        if v is None:
            return None
        return v >> 4, bool(v & 0x08), v & 0x07


def _extended(nibble: int, data: bytes, offset: int, what: str) -> tuple[int, int]:
    if nibble < 13:
        return nibble, offset
    if nibble == 13:
        if offset + 1 > len(data):
            raise CoapError("CoAP: truncated option")
        return data[offset] + 13, offset + 1
    if nibble == 14:
        if offset + 2 > len(data):
            raise CoapError("CoAP: truncated option")
        return struct.unpack_from("!H", data, offset)[0] + 269, offset + 2
    raise CoapError(f"CoAP: option {what} 15")


def decode_coap(data: bytes) -> CoapMessage:
    """Decode one CoAP-over-UDP message.

    Raises
    ------
    CoapError
        With a fixed ``reason`` phrase (used as the skip reason) when the bytes break RFC 7252
        section 3: version not 1, token length 9..15, a reserved code class (1, 6, 7), a
        truncated token or option, an option delta or length nibble of 15, a payload marker
        with no payload, an empty message (0.00) carrying anything.
    """
    if len(data) < 4:
        raise CoapError("CoAP: shorter than its 4-byte header")
    first, code, mid = data[0], data[1], struct.unpack_from("!H", data, 2)[0]
    if first >> 6 != 1:
        raise CoapError("not CoAP (version is not 1)")
    mtype, tkl = (first >> 4) & 0x03, first & 0x0F
    if tkl > 8:
        raise CoapError("CoAP: token length > 8")
    if code >> 5 in (1, 6, 7):
        raise CoapError("CoAP: reserved code class")
    if len(data) < 4 + tkl:
        raise CoapError("CoAP: truncated token")
    if code == 0 and len(data) != 4:
        raise CoapError("CoAP: empty message with content")
    token = data[4 : 4 + tkl]
    offset = 4 + tkl
    number = 0
    options: list[tuple[int, bytes]] = []
    payload = b""
    while offset < len(data):
        byte = data[offset]
        offset += 1
        if byte == 0xFF:
            payload = data[offset:]
            if not payload:
                raise CoapError("CoAP: payload marker without payload")
            break
        delta, offset = _extended(byte >> 4, data, offset, "delta")
        length, offset = _extended(byte & 0x0F, data, offset, "length")
        if offset + length > len(data):
            raise CoapError("CoAP: truncated option")
        number += delta
        if number > 0xFFFF:
            raise CoapError("CoAP: option number too large")
        options.append((number, data[offset : offset + length]))
        offset += length
    return CoapMessage(
        mtype=mtype, code=code, mid=mid, token=token, options=tuple(options), payload=payload
    )


def _is_dtls(data: bytes) -> bool:
    """A DTLS record (CoAPS): content type 20..25 and version 1.0/1.2 (FE FF / FE FD)."""
    return len(data) >= 13 and 20 <= data[0] <= 25 and data[1] == 0xFE and data[2] in (0xFD, 0xFF)


# ---------------------------------------------------------------------------------------------
# The import result
# ---------------------------------------------------------------------------------------------


@dataclass
class CaptureImport:
    """What importing one capture produced.

    Attributes
    ----------
    path:
        The capture file.
    run_id:
        Run identifier of the rows.
    events:
        The event rows, in time order (``source="import"``).
    frame:
        The same rows as a typed event table (:func:`labkit.record.schema.events_to_frame`).
    skipped:
        Reason -> count of what could not be used: packets (not IP, not UDP, fragments,
        truncated file...), datagrams (not CoAP, broken CoAP, DTLS), and payloads or values
        (undecodable, out of range, answers whose request is not in the capture).
    devices:
        Endpoint name -> the ``host:port`` addresses it was seen at, in order.
    packets:
        Packet records read from the file.
    datagrams:
        UDP datagrams among them.
    coap_messages:
        Datagrams decoded as CoAP (retransmissions included).
    duplicates:
        CoAP retransmissions counted once.
    unanswered:
        Requests whose answer is not in the capture.
    read_stats:
        The reader's own statistics (format, link types, ignored pcapng blocks).
    """

    path: str
    run_id: str
    events: list[Event]
    frame: pd.DataFrame
    skipped: Counter[str]
    devices: dict[str, list[str]]
    packets: int = 0
    datagrams: int = 0
    coap_messages: int = 0
    duplicates: int = 0
    unanswered: int = 0
    read_stats: ReadStats = field(default_factory=ReadStats)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """A few lines for people: counts, devices, events by kind, skipped by reason."""
        kinds = Counter(e.kind for e in self.events)
        lines = [
            f"capture      {self.path} ({self.read_stats.format or '?'})",
            f"packets      {self.packets}",
            f"UDP          {self.datagrams}",
            f"CoAP         {self.coap_messages} messages"
            + (f" ({self.duplicates} retransmissions)" if self.duplicates else ""),
            f"devices      {len(self.devices)}"
            + (f": {', '.join(sorted(self.devices))}" if self.devices else ""),
            f"events       {len(self.events)}"
            + (
                " (" + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")"
                if kinds
                else ""
            ),
        ]
        if self.unanswered:
            lines.append(f"unanswered   {self.unanswered} requests")
        lines.append(f"skipped      {self.n_skipped}")
        for reason, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {n:6d}  {reason}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        return f"<pre>{escape(self.summary())}</pre>"

    def __repr__(self) -> str:
        return (
            f"<CaptureImport {self.path}: {len(self.events)} events, {len(self.devices)} devices,"
            f" {self.n_skipped} skipped>"
        )


# ---------------------------------------------------------------------------------------------
# Following the exchanges
# ---------------------------------------------------------------------------------------------


def _addr_text(addr: Addr) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _norm_addr(addr: Addr) -> Addr:
    return addr[0].removeprefix("::ffff:"), addr[1]


@dataclass(eq=False)
class _Exchange:
    """One request seen, waiting for (or receiving) its answers."""

    ts: float
    requester: Addr
    responder: Addr
    msg: CoapMessage
    role: str  # register, update, deregister, send, lwm2m, other
    device: str | None
    path: str  # LwM2M path text, or the URI path
    lwm2m_path: Path | None
    op: str
    endpoint: str | None = None  # Register: ep=; update/deregister: the registration's
    location: str | None = None
    register: RegisterRequest | None = None
    parse_error: str | None = None
    observing: bool = False
    block1: tuple[int, bool, int] | None = None
    answered: bool = False


@dataclass
class _Transfer:
    """A block-wise transfer in progress (Block1 push or Block2 read)."""

    started: float
    total: int | None = None
    received: int = 0
    data: bytearray | None = None  # kept only for LwM2M answers, which get decoded
    resizing: bool = False  # a 4.13 asked for smaller blocks: the push starts over in them


def _query(query: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in query:
        key, _, value = item.partition("=")
        out.setdefault(key, value)
    return out


class _Importer:
    def __init__(self, skipped: Counter[str]) -> None:
        self.skipped = skipped
        self.events: list[Event] = []
        self.coap_messages = 0
        self.duplicates = 0
        self.ep_by_addr: dict[Addr, str] = {}
        self.first_ep_of_addr: dict[Addr, str] = {}
        self.ep_by_location: dict[tuple[Addr, str], str] = {}
        self.location_of_ep: dict[str, str] = {}
        self.root_of_ep: dict[str, str] = {}
        self.addresses: dict[str, list[str]] = {}
        self.placeholders: dict[str, Addr] = {}
        self.pending: dict[tuple[Addr, Addr, bytes], _Exchange] = {}
        self.by_mid: dict[tuple[Addr, Addr, int], _Exchange] = {}  # notifications sent, by MID
        self.transfers: dict[tuple[Addr, Addr, str, int], _Transfer] = {}
        self.seen: dict[tuple[Addr, Addr, int, int], tuple[float, int]] = {}  # -> (ts, hash)
        self.last_ts = 0.0

    # -- rows ------------------------------------------------------------------------------
    def emit(self, ts: float, kind: str, **fields: Any) -> None:
        self.events.append(Event(ts=ts, source="import", kind=kind, **fields))

    def emit_values(self, ts: float, device: str | None, values: dict[Path, Value]) -> None:
        for event in typed_events(values, ts=ts, device=device, source="import"):
            if event.state is not None and not 0 <= event.state < len(STATE_NAMES):
                self.skipped["/5/0/3 State value out of range"] += 1
                continue
            if event.result is not None and not 0 <= event.result < len(RESULT_NAMES):
                self.skipped["/5/0/5 Update Result value out of range"] += 1
                continue
            self.events.append(event)

    def decode_values(
        self, ts: float, ex: _Exchange | None, msg: CoapMessage, payload: bytes, base: Path | None
    ) -> dict[Path, Value]:
        """Decode an answer's payload as the server does (:class:`labkit.server.Response`)."""
        if not payload or not msg.code_text.startswith("2."):
            return {}
        fmt = msg.uint(OPT_CONTENT_FORMAT)
        if fmt == ContentFormat.LINK_FORMAT:
            return {}
        try:
            if fmt is None:
                if base is None or base.level < 3:
                    return {}
                fmt = ContentFormat.TEXT
            cf = normalize_format(fmt)
            if base is None:
                if cf not in _SELF_DESCRIBING:
                    self.skipped["answer without its request in the capture"] += 1
                    return {}
                base = Path(())
            if cf == ContentFormat.OPAQUE and base.level < 3:
                return {}
            return dict(decode(cf, payload, base))
        except (Lwm2mError, ValueError) as exc:
            self.skipped["undecodable LwM2M payload"] += 1
            if ex is not None:
                self.emit(
                    ts,
                    "error",
                    device=ex.device,
                    path=ex.path,
                    code=msg.code_text,
                    detail=f"{type(exc).__name__}: {exc}",
                )
            return {}

    # -- devices ---------------------------------------------------------------------------
    def bind(self, addr: Addr, endpoint: str) -> None:
        self.ep_by_addr[addr] = endpoint
        self.first_ep_of_addr.setdefault(addr, endpoint)
        seen = self.addresses.setdefault(endpoint, [])
        text = _addr_text(addr)
        if text not in seen:
            seen.append(text)

    def device_at(self, addr: Addr) -> str:
        ep = self.ep_by_addr.get(addr)
        if ep is not None:
            return ep
        name = _addr_text(addr)
        self.placeholders[name] = addr
        return name

    # -- datagrams -------------------------------------------------------------------------
    def datagram(self, dg: Datagram) -> None:
        ts = dg.ts
        if math.isnan(ts):  # a pcapng Simple Packet Block carries no time
            self.skipped["no timestamp (simple packet block; previous time used)"] += 1
            ts = self.last_ts
        self.last_ts = ts
        src, dst = _norm_addr(dg.src), _norm_addr(dg.dst)
        for port in (dg.src[1], dg.dst[1]):
            if port in NON_COAP_PORTS:
                self.skipped[f"not CoAP ({NON_COAP_PORTS[port]}, UDP port {port})"] += 1
                return
        if _is_dtls(dg.payload):
            self.skipped["DTLS record (encrypted, not decoded)"] += 1
            return
        try:
            msg = decode_coap(dg.payload)
        except CoapError as exc:
            self.skipped[exc.reason] += 1
            return
        self.coap_messages += 1
        key = (src, dst, msg.mid, msg.mtype)
        digest = hash(dg.payload)
        prior = self.seen.get(key)
        if prior is not None and prior[1] == digest and ts - prior[0] <= MAX_TRANSMIT_SPAN:
            self.duplicates += 1
            return
        self.seen[key] = (ts, digest)
        if msg.is_request:
            self.request(ts, src, dst, msg)
        elif msg.is_response:
            self.response(ts, src, dst, msg)
        elif msg.mtype == RST:
            self.reset(ts, src, dst, msg)
        # Empty ACKs (of a separate response or a CON notification) and pings carry no rows.

    # -- requests --------------------------------------------------------------------------
    def request(self, ts: float, src: Addr, dst: Addr, msg: CoapMessage) -> None:
        segments = msg.strings(OPT_URI_PATH)
        query = msg.strings(OPT_URI_QUERY)
        uri = "/" + "/".join(segments)
        method = msg.method
        ex: _Exchange
        if segments == ["rd"] and method == "POST":
            ex = self.register_request(ts, src, dst, msg, query)
        elif len(segments) == 2 and segments[0] == "rd" and method in ("POST", "DELETE"):
            loc = uri
            ep = self.ep_by_location.get((dst, loc)) or self.ep_by_addr.get(src)
            role = "update" if method == "POST" else "deregister"
            ex = _Exchange(ts, src, dst, msg, role, ep, loc, None, role, endpoint=ep, location=loc)
        elif segments == ["dp"] and method == "POST":
            ex = _Exchange(ts, src, dst, msg, "send", self.ep_by_addr.get(src), uri, None, "send")
        else:
            ex = self.device_request(ts, src, dst, msg, segments)
        self.pending[(src, dst, msg.token)] = ex

    def register_request(
        self, ts: float, src: Addr, dst: Addr, msg: CoapMessage, query: list[str]
    ) -> _Exchange:
        ep = _query(query).get("ep") or None
        ex = _Exchange(ts, src, dst, msg, "register", ep, "/rd", None, "register", endpoint=ep)
        try:
            ex.register = parse_register(query, msg.payload)
        except (Lwm2mError, ValueError) as exc:
            ex.parse_error = str(exc)
        if ep is not None:
            # Requests to this address go to this endpoint from now on (even before the 2.01).
            self.bind(src, ep)
        return ex

    def device_request(
        self,
        ts: float,
        src: Addr,
        dst: Addr,
        msg: CoapMessage,
        segments: list[str],
    ) -> _Exchange:
        method = msg.method
        target = self.ep_by_addr.get(dst)
        root = self.root_of_ep.get(target, "/") if target else "/"
        segs = list(segments)
        prefix = [s for s in root.split("/") if s]
        if prefix and segs[: len(prefix)] == prefix:
            segs = segs[len(prefix) :]
        lpath: Path | None
        try:
            lpath = Path.from_segments(segs)
        except Lwm2mError:
            lpath = None
        if lpath is not None and (segs or target is not None):
            # An LwM2M operation on the device at dst.
            device = self.device_at(dst)
            ex = _Exchange(
                ts, src, dst, msg, "lwm2m", device, str(lpath), lpath, _operation(msg, lpath)
            )
        else:
            requester = self.ep_by_addr.get(src)
            device = requester if requester is not None else self.device_at(src)
            uri = "/" + "/".join(segments)
            ex = _Exchange(ts, src, dst, msg, "other", device, uri, None, method.lower())
        self.request_rows(ts, ex)
        return ex

    def request_rows(self, ts: float, ex: _Exchange) -> None:
        msg = ex.msg
        block1 = msg.block(OPT_BLOCK1)
        block2 = msg.block(OPT_BLOCK2)
        ex.block1 = block1
        tkey = (ex.requester, ex.responder, ex.path, 1)
        if block1 is not None:
            num, _more, szx = block1
            current = self.transfers.get(tkey)
            if current is not None and current.resizing and num == 0:
                current.resizing = False  # the same push again, in smaller blocks
            elif num == 0 or current is None:
                size1 = msg.uint(OPT_SIZE1)
                self.transfers[tkey] = _Transfer(started=ts, total=size1)
                self.emit(
                    ts,
                    "request",
                    device=ex.device,
                    path=ex.path,
                    method=msg.method,
                    bytes=size1,
                    detail=f"{ex.op} block-wise, {2 ** (szx + 4)} B blocks",
                )
            return
        if block2 is not None and block2[0] > 0:
            return  # a continuation of a block-wise answer: one request row per transfer
        detail = ex.op
        if ex.lwm2m_path == Path.of(5, 0, 1) and msg.method == "PUT":
            detail = _package_uri(msg) or "(empty URI: cancel)"
        self.emit(
            ts,
            "request",
            device=ex.device,
            path=ex.path,
            method=msg.method,
            bytes=len(msg.payload),
            detail=detail,
        )

    # -- answers ---------------------------------------------------------------------------
    def response(self, ts: float, src: Addr, dst: Addr, msg: CoapMessage) -> None:
        ex = self.pending.get((dst, src, msg.token))
        if ex is None:
            self.orphan(ts, src, msg)
            return
        first = not ex.answered
        ex.answered = True
        if msg.mtype in (CON, NON) and ex.observing:
            self.by_mid[(src, dst, msg.mid)] = ex
        if ex.role == "register":
            self.register_answer(ts, ex, msg)
        elif ex.role in ("update", "deregister"):
            self.registration_answer(ts, ex, msg)
        elif ex.role == "send":
            self.send_answer(ts, ex, msg)
        elif ex.observing:
            self.notification(ts, ex, msg)
        elif first or ex.block1 is not None:
            self.answer(ts, ex, msg)
        if not ex.observing:
            self.pending.pop((dst, src, msg.token), None)

    def register_answer(self, ts: float, ex: _Exchange, msg: CoapMessage) -> None:
        ep = ex.endpoint
        code = msg.code_text
        if code != "2.01" or ep is None:
            self.emit(
                ts,
                "error",
                device=ep,
                path="/rd",
                method="POST",
                code=code,
                bytes=len(ex.msg.payload),
                detail=f"Register refused{': ' + ex.parse_error if ex.parse_error else ''}",
            )
            return
        location = "/" + "/".join(msg.strings(OPT_LOCATION_PATH))
        old = self.location_of_ep.get(ep)
        if old is not None:
            self.emit(
                ts,
                "deregistered",
                device=ep,
                path=old,
                detail=f"replaced by a new Register ({location})",
            )
        self.ep_by_location[(ex.responder, location)] = ep
        self.location_of_ep[ep] = location
        reg = ex.register
        if reg is not None:
            self.root_of_ep[ep] = reg.root_path
        self.bind(ex.requester, ep)
        self.emit(
            ts,
            "registered",
            device=ep,
            path=location,
            method="POST",
            code=code,
            bytes=len(ex.msg.payload),
            detail=_describe(reg, ex.requester, ex.parse_error),
        )

    def registration_answer(self, ts: float, ex: _Exchange, msg: CoapMessage) -> None:
        code = msg.code_text
        ep = ex.endpoint
        ok = code == ("2.04" if ex.role == "update" else "2.02")
        if not ok:
            what = "Update" if ex.role == "update" else "De-register"
            self.emit(
                ts,
                "error",
                device=ep,
                path=ex.path,
                method=ex.msg.method,
                code=code,
                detail=f"{what} refused",
            )
            return
        if ex.role == "update":
            detail = "Update"
            try:
                upd = parse_update(ex.msg.strings(OPT_URI_QUERY), ex.msg.payload)
                parts = [f"lt={upd.lifetime}"] if upd.lifetime is not None else []
                if upd.binding is not None:
                    parts.append(f"b={upd.binding}")
                if upd.objects is not None:
                    parts.append("objects " + ",".join(f"/{o}" for o in sorted(upd.objects)))
                detail = " ".join(parts) or "Update"
            except (Lwm2mError, ValueError) as exc:
                detail = f"Update (not parsed: {exc})"
            if ep is not None:
                self.bind(ex.requester, ep)
            self.emit(
                ts,
                "reg_updated",
                device=ep,
                path=ex.path,
                method="POST",
                code=code,
                bytes=len(ex.msg.payload),
                detail=f"{detail} from {_addr_text(ex.requester)}",
            )
        else:
            if ep is not None and self.location_of_ep.get(ep) == ex.path:
                del self.location_of_ep[ep]
            self.emit(
                ts,
                "deregistered",
                device=ep,
                path=ex.path,
                method="DELETE",
                code=code,
                detail="De-register",
            )

    def send_answer(self, ts: float, ex: _Exchange, msg: CoapMessage) -> None:
        req = ex.msg
        values = self.decode_values(ts, ex, _as_answer(req, msg.code), req.payload, Path(()))
        self.emit(
            ts,
            "send",
            device=ex.device,
            path="/dp",
            method="POST",
            code=msg.code_text,
            bytes=len(req.payload),
            detail=", ".join(f"{p}={v!r}" for p, v in list(values.items())[:20]) or None,
        )
        self.emit_values(ts, ex.device, values)

    def answer(self, ts: float, ex: _Exchange, msg: CoapMessage) -> None:
        code = msg.code_text
        rtt = (ts - ex.ts) * 1000.0
        if ex.block1 is not None:
            self.block1_answer(ts, ex, msg, rtt)
            return
        payload = msg.payload
        size = len(payload)
        block2 = msg.block(OPT_BLOCK2)
        tkey = (ex.requester, ex.responder, ex.path, 2)
        if block2 is not None:
            num, more, szx = block2
            transfer = self.transfers.get(tkey)
            if num == 0 or transfer is None:
                transfer = self.transfers[tkey] = _Transfer(started=ex.ts)
                if ex.role == "lwm2m":
                    transfer.data = bytearray()
            if transfer.received != num * 2 ** (szx + 4):
                self.skipped["block-wise answer with a gap (block missing)"] += 1
            transfer.received += len(payload)
            if transfer.data is not None:
                transfer.data += payload
            self.emit(
                ts,
                "block",
                device=ex.device,
                path=ex.path,
                method=ex.msg.method,
                code=code,
                block=num,
                bytes=len(payload),
                rtt_ms=rtt,
                detail=f"Block2 offset {num * 2 ** (szx + 4)}" + ("" if more else ", last"),
            )
            if more and code.startswith("2."):
                return
            self.transfers.pop(tkey, None)
            payload = bytes(transfer.data) if transfer.data is not None else b""
            size = transfer.received
            rtt = (ts - transfer.started) * 1000.0
        elif (
            ex.msg.uint(OPT_OBSERVE) == 0
            and msg.uint(OPT_OBSERVE) is not None
            and code.startswith("2.")
        ):
            ex.observing = True  # the observation is on: later answers are notifications
        self.emit(
            ts,
            "response",
            device=ex.device,
            path=ex.path,
            method=ex.msg.method,
            code=code,
            rtt_ms=rtt,
            bytes=size,
            detail=ex.op,
        )
        if ex.lwm2m_path is not None:
            values = self.decode_values(ts, ex, msg, payload, ex.lwm2m_path)
            self.emit_values(ts, ex.device, values)

    def block1_answer(self, ts: float, ex: _Exchange, msg: CoapMessage, rtt: float) -> None:
        assert ex.block1 is not None
        num, more, szx = ex.block1
        size = 2 ** (szx + 4)
        code = msg.code_text
        tkey = (ex.requester, ex.responder, ex.path, 1)
        transfer = self.transfers.get(tkey) or _Transfer(started=ex.ts)
        chunk = len(ex.msg.payload)
        self.emit(
            ts,
            "block",
            device=ex.device,
            path=ex.path,
            method=ex.msg.method,
            code=code,
            block=num,
            bytes=chunk,
            rtt_ms=rtt,
            detail=f"offset {num * size}, {size} B blocks" + ("" if more else ", last"),
        )
        if code == "2.31" and more:
            return
        answer_block = msg.block(OPT_BLOCK1)
        if code == "4.13" and answer_block is not None and answer_block[2] < szx:
            # RFC 7959 2.9.3: the device wants smaller blocks; the sender starts over in them.
            transfer.resizing = True
            self.transfers[tkey] = transfer
            return
        self.transfers.pop(tkey, None)
        done = num * size + (chunk if code.startswith("2.") else 0)
        total = transfer.total if transfer.total is not None else num * size + chunk
        self.emit(
            ts,
            "response",
            device=ex.device,
            path=ex.path,
            method=ex.msg.method,
            code=code,
            rtt_ms=(ts - transfer.started) * 1000.0,
            bytes=len(msg.payload),
            detail=f"{ex.op}, {done}/{total} B",
        )

    def notification(self, ts: float, ex: _Exchange, msg: CoapMessage) -> None:
        obs = msg.uint(OPT_OBSERVE)
        code = msg.code_text
        self.emit(
            ts,
            "notify",
            device=ex.device,
            path=ex.path,
            code=code,
            bytes=len(msg.payload),
            rtt_ms=(ts - ex.ts) * 1000.0,
            detail=f"observe={obs}" if obs is not None else "observation ended (no Observe)",
        )
        if obs is not None:
            self.emit_values(
                ts, ex.device, self.decode_values(ts, ex, msg, msg.payload, ex.lwm2m_path)
            )
        if obs is None or not code.startswith("2."):
            ex.observing = False

    def reset(self, ts: float, src: Addr, dst: Addr, msg: CoapMessage) -> None:
        ex = self.by_mid.pop((dst, src, msg.mid), None)
        if ex is not None and ex.observing:
            ex.observing = False
            self.pending.pop((ex.requester, ex.responder, ex.msg.token), None)
            self.emit(
                ts,
                "note",
                device=ex.device,
                path=ex.path,
                detail="observation cancelled (RST to a notification)",
            )

    def orphan(self, ts: float, src: Addr, msg: CoapMessage) -> None:
        """An answer whose request is not in the capture (it started mid-exchange)."""
        obs = msg.uint(OPT_OBSERVE)
        if obs is None or not msg.payload:
            self.skipped["answer without its request in the capture"] += 1
            return
        device = self.device_at(src)
        values = self.decode_values(ts, None, msg, msg.payload, None)
        if not values:
            return
        self.emit(
            ts,
            "notify",
            device=device,
            code=msg.code_text,
            bytes=len(msg.payload),
            detail=f"observe={obs}, request not in the capture",
        )
        self.emit_values(ts, device, values)

    # -- the end ---------------------------------------------------------------------------
    def finish(self) -> tuple[list[Event], int]:
        unanswered = sum(1 for ex in self.pending.values() if not ex.answered)
        events = self.events
        late = {
            name: self.first_ep_of_addr[addr]
            for name, addr in self.placeholders.items()
            if addr in self.first_ep_of_addr
        }
        if late:
            events = [replace(e, device=late[e.device]) if e.device in late else e for e in events]
        events.sort(key=lambda e: e.ts)  # stable: file order among equal times
        return events, unanswered


def _as_answer(request: CoapMessage, code: int) -> CoapMessage:
    """The request re-labelled with the answer's code (Send payloads decode like answers)."""
    return replace(request, code=code)


def _operation(msg: CoapMessage, path: Path) -> str:
    """The LwM2M operation a request performs (digest 5.1), as the server's ``detail``."""
    method = msg.method
    if method == "GET":
        if msg.uint(OPT_ACCEPT) == ContentFormat.LINK_FORMAT:
            return "discover"
        observe = msg.uint(OPT_OBSERVE)
        if observe == 0:
            return "observe"
        if observe == 1:
            return "cancel-observe"
        return "read"
    if method == "PUT":
        if not msg.payload and msg.all(OPT_URI_QUERY):
            return "write-attributes"
        return "write"
    if method == "POST":
        if path == Path.of(5, 0, 2):
            return "execute update"
        if path.level == 3:
            return "execute"
        if path.level == 1:
            return "create"
        return "write-partial"
    if method == "DELETE":
        return "delete"
    if method == "FETCH":
        return "read-composite"
    if method == "iPATCH":
        return "write-composite"
    return method.lower()


def _package_uri(msg: CoapMessage) -> str:
    """The Package URI written by a ``PUT /5/0/1`` (text/plain, or any value format)."""
    fmt = msg.uint(OPT_CONTENT_FORMAT)
    if fmt in (None, ContentFormat.TEXT, 1541):
        return msg.payload.decode("utf-8", "replace")
    try:
        values = decode(fmt, msg.payload, Path.of(5, 0, 1))
    except (Lwm2mError, ValueError):
        return msg.payload.decode("utf-8", "replace")
    value = values.get(Path.of(5, 0, 1))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _describe(reg: RegisterRequest | None, addr: Addr, error: str | None) -> str:
    where = _addr_text(addr)
    if reg is None:
        return f"from {where} (Register not parsed: {error})"
    objs = ",".join(f"/{o}" for o in sorted(reg.objects))
    queue = " Q" if reg.queue_mode else ""
    return (
        f"lt={reg.lifetime} lwm2m={reg.lwm2m_version} b={reg.binding}{queue} "
        f"from {where} objects {objs}"
    )


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def import_capture(path: str | os.PathLike[str], *, run_id: str | None = None) -> CaptureImport:
    """Decode the CoAP/LwM2M traffic of a pcap or pcapng file into event rows.

    Parameters
    ----------
    path:
        The capture (tcpdump ``-w``, Wireshark/dumpcap; pcap or pcapng).
    run_id:
        Run identifier of the frame; the file's stem by default.

    Returns
    -------
    CaptureImport
        ``events`` (``source="import"``, time order), ``frame`` (the typed event table: columns
        of :data:`labkit.record.schema.COLUMNS`), ``skipped`` (reason -> count), ``devices``
        and counts.

    Raises
    ------
    CaptureError
        Only when the file cannot be read as a capture at all. Damage inside it is skipped and
        counted.
    """
    stats = ReadStats()
    packets = read_packets(path, stats)  # raises CaptureError for a non-capture
    skipped: Counter[str] = Counter()
    importer = _Importer(skipped)
    for dg in packets:
        try:
            importer.datagram(dg)
        except Exception as exc:  # a bug of ours must not lose the rest of the capture
            log.warning("import of frame %d failed", dg.frame, exc_info=True)
            skipped[f"internal error ({type(exc).__name__})"] += 1
    events, unanswered = importer.finish()
    merged: Counter[str] = Counter(stats.skipped)
    merged.update(skipped)
    rid = run_id if run_id is not None else FsPath(path).stem
    return CaptureImport(
        path=os.fspath(path),
        run_id=rid,
        events=events,
        frame=events_to_frame(events, rid),
        skipped=merged,
        devices={ep: list(addrs) for ep, addrs in importer.addresses.items()},
        packets=stats.frames,
        datagrams=stats.datagrams,
        coap_messages=importer.coap_messages,
        duplicates=importer.duplicates,
        unanswered=unanswered,
        read_stats=stats,
    )


def import_pcap(path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> CaptureImport:
    """Import a capture and write it as a run directory (``manifest.json`` + events).

    The run is written by :class:`labkit.record.Recorder` (so :func:`labkit.record.read_run`
    loads it like a lab run); its manifest ``params`` hold ``source="import-pcap"``, the
    capture's path and the import's counts. ``out_dir`` must not already hold a run.

    Returns
    -------
    CaptureImport
        As :func:`import_capture`, with ``run_id`` = the run directory's name.

    Raises
    ------
    CaptureError
        When the file cannot be read as a capture (nothing is written then).
    labkit.record.RunError
        When ``out_dir`` already holds a recorded run.
    """
    from labkit.record.recorder import Recorder

    out = FsPath(out_dir)
    result = import_capture(path, run_id=out.name)
    manifest = {
        "source": "import-pcap",
        "capture": os.fspath(path),
        "capture_format": result.read_stats.format,
        "packets": result.packets,
        "coap_messages": result.coap_messages,
        "devices": sorted(result.devices),
        "skipped": dict(result.skipped),
    }
    recorder = Recorder(out, manifest=manifest)
    try:
        for event in result.events:
            recorder(event)
    finally:
        recorder.close()
    return result
