"""CoAP over DTLS 1.2 with pre-shared keys (``coaps://``) for every aiocoap context of the lab.

This module owns the DTLS transport: one UDP socket per context, on which a peer can be met
in either role -- as DTLS *server* (a device registering to the LwM2M server, libcoap's
``coap-client-openssl`` reading a resource) or as DTLS *client* (a device opening its session
to the server, the repository, a bootstrap server). The server of an LwM2M session sends its
own requests (Read, Write, Execute) back over the session the device opened, as LwM2M needs.

Choice of DTLS implementation (issue 15): tinydtls through ``DTLSSocket`` (the binding aiocoap
itself uses), driven here by an own aiocoap ``MessageInterface`` rather than aiocoap's
``tinydtls``/``tinydtls_server`` transports. Reasons: aiocoap's server transport is marked
"highly experimental", cannot send the first request of a session (the LwM2M server must),
binds through ``simplesocketserver`` (with ``SO_REUSEPORT`` semantics the lab avoids, see
:mod:`labkit.coap`), and reports a failed handshake nowhere. tinydtls is what constrained
devices (Zephyr/RIOT/Contiki LwM2M clients) ship, so the lab speaks the same stack. Python's
``ssl`` module has no DTLS; the OpenSSL bindings (pyOpenSSL) have no PSK callbacks on DTLS.

Limits (tinydtls): DTLS 1.2 only; cipher suites ``TLS_PSK_WITH_AES_128_CCM_8`` (the RFC 7252
/ RFC 7925 mandatory one, the only one with PSK) and ``TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8``
(not used: no raw public keys or certificates here); no connection ID; a peer whose Finished
does not decrypt is silently dropped by tinydtls, so this module recognises that case itself
(a handshake record of epoch 1 that does not complete the handshake after the PSK was looked
up) and answers it with a fatal ``decrypt_error`` alert. Handshake retransmissions are polled
every 100 ms while a handshake is open, and every handshake is bounded by a deadline.

Security events: each handshake, successful or failed, is reported to ``on_security`` as a
:class:`HandshakeReport` (role, peer, identity, outcome, reason). Keys never appear in any
report, log line, ``repr`` or event: only identities do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap import error as coap_error
from aiocoap import interfaces
from aiocoap.message import Message
from aiocoap.util import hostportjoin, hostportsplit

__all__ = [
    "ALERTS",
    "COAPS_PORT",
    "DtlsTransport",
    "HandshakeError",
    "HandshakeReport",
    "PskEntry",
    "PskStore",
    "add_dtls_transport",
    "dtls_available",
    "dtls_port",
    "open_context",
    "parse_hex_key",
    "security_event_fields",
]

log = logging.getLogger(__name__)

COAPS_PORT = 5684

#: TLS alert descriptions (RFC 5246 7.2, RFC 4279 for unknown_psk_identity) by code.
ALERTS: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    47: "illegal_parameter",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    90: "user_canceled",
    110: "unsupported_extension",
    115: "unknown_psk_identity",
}

_EVENT_CONNECT = 0x01DC
_EVENT_CONNECTED = 0x01DE
_LEVEL_WARNING = 1
_LEVEL_FATAL = 2
_CT_ALERT = 21
_CT_HANDSHAKE = 22
_POLL_S = 0.1
_MAX_PEERS = 4096


def dtls_available() -> bool:
    """True when the ``DTLSSocket`` binding (tinydtls) can be imported."""
    try:
        from DTLSSocket import dtls  # noqa: F401
    except ImportError:
        return False
    return True


# -- keys ----------------------------------------------------------------------------------
def parse_hex_key(text: str) -> bytes:
    """A PSK given as hex (``0x`` prefix and ``:`` separators allowed); 1..64 bytes."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        key = bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError("PSK key must be hex digits (e.g. 00112233...)") from None
    if not 1 <= len(key) <= 64:
        raise ValueError(f"PSK key must be 1..64 bytes, got {len(key)}")
    return key


@dataclass(frozen=True)
class PskEntry:
    """One device's pre-shared key: its endpoint name, PSK identity and key (never printed)."""

    endpoint: str
    identity: bytes
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.identity or b"\x00" in self.identity:
            raise ValueError("PSK identity must be non-empty and contain no NUL byte")
        if not 1 <= len(self.key) <= 64:
            raise ValueError(f"PSK key must be 1..64 bytes, got {len(self.key)}")

    @classmethod
    def parse(cls, text: str) -> PskEntry:
        """``ENDPOINT:IDENTITY:HEXKEY`` (the form of ``--psk`` and of a ``--psk-file`` line)."""
        parts = text.strip().split(":")
        if len(parts) < 3 or not parts[0] or not parts[1]:
            raise ValueError("a PSK entry is ENDPOINT:IDENTITY:HEXKEY")
        endpoint, identity, hexkey = parts[0], parts[1], ":".join(parts[2:])
        return cls(endpoint, identity.encode(), parse_hex_key(hexkey))


class PskStore(Mapping[str, PskEntry]):
    """Endpoint -> (identity, key): the keys a DTLS server accepts, also looked up by identity."""

    def __init__(self, entries: Iterable[PskEntry] = ()) -> None:
        self._by_endpoint: dict[str, PskEntry] = {}
        self._by_identity: dict[bytes, PskEntry] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: PskEntry) -> None:
        """Add or replace the key of ``entry.endpoint``; an identity may belong to one only."""
        owner = self._by_identity.get(entry.identity)
        if owner is not None and owner.endpoint != entry.endpoint:
            raise ValueError(
                f"PSK identity {entry.identity!r} already belongs to endpoint {owner.endpoint!r}"
            )
        old = self._by_endpoint.get(entry.endpoint)
        if old is not None:
            self._by_identity.pop(old.identity, None)
        self._by_endpoint[entry.endpoint] = entry
        self._by_identity[entry.identity] = entry

    def by_identity(self, identity: bytes) -> PskEntry | None:
        return self._by_identity.get(identity)

    @classmethod
    def parse(cls, specs: Iterable[str] = (), files: Iterable[str | Path] = ()) -> PskStore:
        """From ``EP:IDENTITY:HEXKEY`` strings and files of such lines (``#`` comments)."""
        store = cls()
        for spec in specs:
            store.add(PskEntry.parse(spec))
        for name in files:
            for n, line in enumerate(Path(name).read_text().splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    store.add(PskEntry.parse(line))
                except ValueError as exc:
                    raise ValueError(f"{name}:{n}: {exc}") from None
        return store

    def __getitem__(self, endpoint: str) -> PskEntry:
        return self._by_endpoint[endpoint]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_endpoint)

    def __len__(self) -> int:
        return len(self._by_endpoint)

    def __repr__(self) -> str:
        return f"PskStore({len(self)} endpoints)"


# -- reports -------------------------------------------------------------------------------
@dataclass(frozen=True)
class HandshakeReport:
    """The outcome of one DTLS handshake, as seen by one side. No key material."""

    role: str  # "server" (we accepted) or "client" (we connected)
    peer: tuple[str, int]
    identity: str | None
    ok: bool
    reason: str  # "ok", "unknown_identity", "bad_key", "alert_<name>", "timeout", ...
    detail: str
    endpoint: str | None = None  # the endpoint the identity belongs to (server role)


class HandshakeError(coap_error.NetworkError):  # type: ignore[misc]
    """A DTLS handshake failed; ``reason`` as in :class:`HandshakeReport`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


SecuritySink = Callable[[HandshakeReport], None]


def security_event_fields(report: HandshakeReport) -> dict[str, Any]:
    """The fields of the ``security`` event row of a handshake (never a key)."""
    who = f"identity {report.identity!r}" if report.identity is not None else "no identity"
    role = "accepted from" if report.role == "server" else "opened to"
    return {
        "kind": "security",
        "device": report.endpoint,
        "method": "DTLS",
        "protocol": "coaps",
        "reason": report.reason,
        "code": "ok" if report.ok else "failed",
        "detail": (
            f"DTLS-PSK handshake {role} {report.peer[0]}:{report.peer[1]} ({who}): {report.detail}"
        ),
    }


def _records(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(content type, epoch, fragment) of each DTLS record of a datagram."""
    pos = 0
    while pos + 13 <= len(data):
        ctype = data[pos]
        epoch = int.from_bytes(data[pos + 3 : pos + 5], "big")
        length = int.from_bytes(data[pos + 11 : pos + 13], "big")
        yield ctype, epoch, data[pos + 13 : pos + 13 + length]
        pos += 13 + length


def _is_client_hello(data: bytes) -> bool:
    return any(
        ct == _CT_HANDSHAKE and ep == 0 and frag[:1] == b"\x01" for ct, ep, frag in _records(data)
    )


def _plain_alert(code: int) -> bytes:
    """A fatal alert record in epoch 0 (unencrypted), for a peer whose handshake we abort."""
    return (
        bytes([_CT_ALERT, 0xFE, 0xFD, 0, 0])
        + (0xFFFF).to_bytes(6, "big")
        + b"\x00\x02"
        + bytes([_LEVEL_FATAL, code])
    )


class _ServerKeys:
    """The dict-like PSK lookup tinydtls calls during a handshake we accept; notes the identity."""

    def __init__(self, peer: DtlsPeer) -> None:
        self._peer = weakref.ref(peer)

    def keys(self) -> _ServerKeys:
        return self

    def _entry(self, identity: bytes) -> PskEntry | None:
        peer = self._peer()
        if peer is None or peer.transport.psk_store is None:
            return None
        entry = peer.transport.psk_store.by_identity(bytes(identity))
        peer.offered_identity = bytes(identity)
        peer.entry = entry
        return entry

    def __contains__(self, identity: bytes) -> bool:
        return self._entry(identity) is not None

    def __getitem__(self, identity: bytes) -> bytes:
        entry = self._entry(identity)
        if entry is None:
            raise KeyError("unknown identity")
        return entry.key


# -- one peer ------------------------------------------------------------------------------
class DtlsPeer(interfaces.EndpointAddress):  # type: ignore[misc]
    """One DTLS session with one UDP peer, and the aiocoap remote of its messages."""

    scheme = "coaps"
    is_multicast = False
    is_multicast_locally = False

    def __init__(
        self,
        transport: DtlsTransport,
        sockaddr: tuple[Any, ...],
        role: str,
        identity: bytes | None = None,
        key: bytes | None = None,
    ) -> None:
        from DTLSSocket import dtls

        self.transport = transport
        self.sockaddr = sockaddr
        self.role = role
        self.state = "handshaking"
        self.offered_identity: bytes | None = identity
        self.entry: PskEntry | None = None
        self._queue: list[bytes] = []
        self._keep: tuple[bytes, ...] = (identity or b"-",)  # char* of DTLSSocket needs a ref
        weak = weakref.ref(self)

        def cb(name: str, dead: int) -> Callable[..., int]:
            def call(*args: Any) -> int:
                me = weak()
                return dead if me is None else int(getattr(me, name)(*args))

            return call

        store: Any = {identity: key} if role == "client" else _ServerKeys(self)
        self._dtls = dtls.DTLS(
            read=cb("_on_read", 0),
            write=cb("_on_write", 0),
            event=cb("_on_event", 0),
            pskId=self._keep[0],
            pskStore=store,
        )
        self._conn: Any = None
        if role == "client":
            self._session: Any = None
        else:
            self._session = dtls.Session(sockaddr[0], sockaddr[1])
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + transport.handshake_timeout
        self.last_seen = loop.time()
        self._poller = loop.create_task(self._poll(), name="dtls-handshake")

    def start_client(self) -> None:
        self._conn = self._dtls.connect(self.sockaddr[0], self.sockaddr[1])
        self._session = self._conn
        if self._conn is None:
            self._fail("internal", "tinydtls could not start the handshake")

    # EndpointAddress ---------------------------------------------------------------------
    @property
    def hostinfo(self) -> str:
        return hostportjoin(str(self.sockaddr[0]).removeprefix("::ffff:"), self.sockaddr[1])

    @property
    def hostinfo_local(self) -> str:
        host, port = self.transport.local_address
        return hostportjoin(host, port)

    @property
    def uri_base(self) -> str:
        return "coaps://" + self.hostinfo

    @property
    def uri_base_local(self) -> str:
        return "coaps://" + self.hostinfo_local

    @property
    def blockwise_key(self) -> Any:
        return (self.sockaddr, self.identity)

    @property
    def authenticated_claims(self) -> Any:
        return [self.identity] if self.state == "connected" and self.identity else []

    @property
    def identity(self) -> bytes | None:
        """The PSK identity of the session (offered by the peer, or our own as client)."""
        return self.offered_identity

    @property
    def endpoint(self) -> str | None:
        """The endpoint the peer's identity belongs to in the server's store (server role)."""
        return self.entry.endpoint if self.entry is not None and self.state == "connected" else None

    @property
    def address(self) -> tuple[str, int]:
        return str(self.sockaddr[0]).removeprefix("::ffff:"), int(self.sockaddr[1])

    def __repr__(self) -> str:
        ident = self.identity.decode(errors="replace") if self.identity else "?"
        return f"<DtlsPeer {self.role} {self.hostinfo} identity={ident!r} {self.state}>"

    # sending / receiving -----------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.state == "connected":
            self._dtls.write(self._session, data)
        elif self.state == "handshaking" and self.role == "client":
            self._queue.append(data)
        else:
            self.transport._dispatch_error(
                HandshakeError("closed", f"DTLS session with {self.hostinfo} is {self.state}"),
                self,
            )

    def datagram(self, data: bytes) -> None:
        self.last_seen = asyncio.get_running_loop().time()
        was_handshaking = self.state == "handshaking"
        epoch1_handshake = was_handshaking and any(
            ct == _CT_HANDSHAKE and ep == 1 for ct, ep, _ in _records(data)
        )
        self._dtls.handleMessage(self._session, data)
        if not was_handshaking or self.state != "handshaking" or self.role != "server":
            return
        if self.offered_identity is not None and self.entry is None:
            ident = self.offered_identity.decode(errors="replace")
            self._fail("unknown_identity", f"unknown PSK identity {ident!r}", alert=115)
        elif epoch1_handshake and self.entry is not None:
            self._fail(
                "bad_key",
                f"the Finished of identity {self.entry.identity.decode(errors='replace')!r} "
                "did not decrypt: the peer holds a different key",
                alert=51,
            )

    def _on_read(self, _addr: Any, data: bytes) -> int:
        try:
            message = Message.decode(data, self)
        except coap_error.UnparsableMessage:
            log.warning("ignoring an unparsable CoAP message over DTLS from %s", self.hostinfo)
            return len(data)
        self.transport._dispatch_message(message)
        return len(data)

    def _on_write(self, _addr: Any, data: bytes) -> int:
        unknown = self.role == "server" and self.offered_identity is not None and not self.entry
        if unknown and self.state == "handshaking" and data[:1] == bytes([_CT_ALERT]):
            return len(data)  # tinydtls says internal_error; we send unknown_psk_identity
        self.transport._sendto(data, self.sockaddr)
        return len(data)

    def _on_event(self, level: int, code: int) -> int:
        if level == 0 and code == _EVENT_CONNECT:
            return 0
        if level == 0 and code == _EVENT_CONNECTED:
            if self.state == "handshaking":
                self.state = "connected"
                self._poller.cancel()
                self.transport._report(self, True, "ok", "DTLS-PSK session established")
                queue, self._queue = self._queue, []
                for data in queue:
                    self._dtls.write(self._session, data)
            return 0
        name = ALERTS.get(code, f"alert_{code}")
        if code == 0:
            self._close(HandshakeError("close_notify", f"{self.hostinfo} closed the session"))
        elif level == _LEVEL_FATAL:
            reason = {51: "bad_key", 20: "bad_key", 115: "unknown_identity"}.get(code, name)
            self._fail(reason, f"peer sent fatal alert {name} ({code})")
        return 0

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while self.state == "handshaking":
            await asyncio.sleep(_POLL_S)
            if self.state != "handshaking":
                return
            if loop.time() > self._deadline:
                self._fail(
                    "timeout",
                    f"handshake not complete after {self.transport.handshake_timeout:g} s",
                )
                return
            self._dtls.checkRetransmit()

    # ending ------------------------------------------------------------------------------
    def _fail(self, reason: str, detail: str, *, alert: int | None = None) -> None:
        if self.state in ("failed", "closed"):
            return
        was_handshaking = self.state == "handshaking"
        if alert is not None:
            self.transport._sendto(_plain_alert(alert), self.sockaddr)
        self.state = "failed"
        if was_handshaking:
            self.transport._report(self, False, reason, detail)
        self._close(HandshakeError(reason, f"DTLS with {self.hostinfo}: {detail}"))

    def _close(self, exc: Exception) -> None:
        if self.state not in ("failed",):
            self.state = "closed"
        self._poller.cancel()
        self._queue.clear()
        self.transport._forget(self)
        self.transport._dispatch_error(exc, self)

    def shutdown(self) -> None:
        """Send close_notify if connected and forget the session."""
        if self.state == "connected":
            with contextlib.suppress(Exception):
                self._dtls.close(self._session)
        self.state = "closed"
        self._poller.cancel()
        self.transport._forget(self)


# -- the transport -------------------------------------------------------------------------
class DtlsTransport(interfaces.MessageInterface, asyncio.DatagramProtocol):  # type: ignore[misc]
    """An aiocoap message interface speaking CoAP over DTLS-PSK on one UDP socket.

    ``psk_store``: identities accepted when a peer opens a session to us (None: accept none);
    ``client_psk``: (identity, key) used when we open a session (a request to ``coaps://``);
    ``client_keys``: per ``host:port`` overrides of ``client_psk``.
    """

    def __init__(
        self,
        mman: Any,
        *,
        psk_store: PskStore | None,
        client_psk: tuple[bytes, bytes] | None,
        on_security: SecuritySink | None,
        handshake_timeout: float,
    ) -> None:
        self._mman = mman
        self.psk_store = psk_store
        self.client_psk = client_psk
        self.client_keys: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        self.on_security = on_security
        self.handshake_timeout = handshake_timeout
        self._peers: dict[tuple[Any, ...], DtlsPeer] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self.local_address: tuple[str, int] = ("::", 0)
        self.reports: list[HandshakeReport] = []

    # asyncio protocol --------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        sock = transport.get_extra_info("socket")
        host, port = sock.getsockname()[:2]
        self.local_address = (str(host).removeprefix("::ffff:"), int(port))

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        key = tuple(addr[:2])
        peer = self._peers.get(key)
        try:
            restarted = peer is not None and peer.role == "server" and peer.state == "connected"
            if peer is not None and restarted and _is_client_hello(data):
                peer.shutdown()  # the peer restarted its session
                peer = None
            if peer is None:
                if self.psk_store is None or not _is_client_hello(data):
                    return  # no session and not a ClientHello: nothing to talk about
                if len(self._peers) >= _MAX_PEERS:
                    self._purge()
                peer = DtlsPeer(self, key, "server")
                self._peers[key] = peer
            peer.datagram(data)
        except Exception:
            log.exception("DTLS: datagram from %s not handled", addr[:2])

    def error_received(self, exc: Exception) -> None:
        log.debug("DTLS socket error: %r", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    # MessageInterface --------------------------------------------------------------------
    def send(self, message: Message) -> None:
        message.remote.send(message.encode())

    async def recognize_remote(self, remote: Any) -> bool:
        return isinstance(remote, DtlsPeer) and remote.transport is self

    async def determine_remote(self, request: Message) -> DtlsPeer | None:
        if request.requested_scheme != "coaps":
            return None
        if request.unresolved_remote is not None:
            host, port = hostportsplit(request.unresolved_remote)
        elif request.opt.uri_host:
            host, port = request.opt.uri_host, request.opt.uri_port
        else:
            raise ValueError("no host to send the coaps:// request to")
        host = host.strip("[]")
        port = port or COAPS_PORT
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, family=socket.AF_INET6, type=socket.SOCK_DGRAM, flags=socket.AI_V4MAPPED
        )
        key = tuple(infos[0][4][:2])
        peer = self._peers.get(key)
        if peer is not None and peer.state in ("handshaking", "connected"):
            return peer
        creds = self.client_keys.get((host, int(port)), self.client_psk)
        if creds is None:
            raise HandshakeError("no_credentials", f"no PSK configured for coaps://{host}:{port}")
        peer = DtlsPeer(self, key, "client", creds[0], creds[1])
        self._peers[key] = peer
        peer.start_client()
        return peer

    def reset_client_sessions(self) -> int:
        """Close the sessions this side opened, so the next request handshakes afresh (what
        a device does after a request over a session went unanswered: the server may have
        restarted and forgotten it). Returns how many were closed."""
        peers = [p for p in self._peers.values() if p.role == "client"]
        for peer in peers:
            peer.shutdown()
        return len(peers)

    async def shutdown(self) -> None:
        for peer in list(self._peers.values()):
            peer.shutdown()
        self._peers.clear()
        if self._transport is not None:
            self._transport.close()

    # helpers for peers -------------------------------------------------------------------
    def _sendto(self, data: bytes, sockaddr: tuple[Any, ...]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, sockaddr)

    def _dispatch_message(self, message: Message) -> None:
        try:
            self._mman.dispatch_message(message)
        except Exception:
            log.exception("DTLS: dispatching a message failed")

    def _dispatch_error(self, exc: Exception, peer: DtlsPeer) -> None:
        try:
            self._mman.dispatch_error(exc, peer)
        except Exception:
            log.debug("DTLS: dispatching an error failed", exc_info=True)

    def _forget(self, peer: DtlsPeer) -> None:
        if self._peers.get(peer.sockaddr) is peer:
            del self._peers[peer.sockaddr]

    def _purge(self) -> None:
        """Make room: drop the 64 peers heard from longest ago (a handshake in progress is
        reported as failed; an established session is closed with close_notify)."""
        oldest = sorted(self._peers.values(), key=lambda p: p.last_seen)[:64]
        for peer in oldest:
            if peer.state == "handshaking":
                peer._fail("evicted", "too many DTLS peers; the oldest were dropped")
            else:
                peer.shutdown()

    def _report(self, peer: DtlsPeer, ok: bool, reason: str, detail: str) -> None:
        ident = peer.identity.decode(errors="replace") if peer.identity else None
        endpoint = peer.entry.endpoint if peer.entry is not None else None
        report = HandshakeReport(
            role=peer.role,
            peer=peer.address,
            identity=ident,
            ok=ok,
            reason=reason,
            detail=detail,
            endpoint=endpoint,
        )
        self.reports.append(report)
        del self.reports[:-256]
        if ok:
            log.info("DTLS %s handshake with %s ok (identity %r)", peer.role, peer.hostinfo, ident)
        else:
            log.info(  # an event row already; a notebook shows no log noise for it
                "DTLS %s handshake with %s failed: %s (identity %r)",
                peer.role,
                peer.hostinfo,
                detail,
                ident,
            )
        if self.on_security is not None:
            try:
                self.on_security(report)
            except Exception:
                log.exception("DTLS: security sink failed")


def _bound_socket(host: str, port: int, infos: Any) -> socket.socket:
    sock = socket.socket(family=socket.AF_INET6, type=socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(infos[0][4])
    except OSError:
        sock.close()
        raise
    return sock


async def add_dtls_transport(
    ctx: aiocoap.Context,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    psk_store: PskStore | None = None,
    client_psk: tuple[bytes, bytes] | None = None,
    on_security: SecuritySink | None = None,
    handshake_timeout: float = 10.0,
) -> DtlsTransport:
    """Add a ``coaps://`` transport on a new UDP socket ``(host, port)`` to ``ctx``.

    Bound like :func:`labkit.coap.open_udp_context` (dual-stack, no ``SO_REUSEPORT``).
    Returns the transport (``local_address``, ``reports``, ``client_keys``).
    """
    if not dtls_available():
        raise RuntimeError("coaps:// needs the DTLSSocket package (pip install DTLSSocket)")
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host, port, family=socket.AF_INET6, type=socket.SOCK_DGRAM, flags=socket.AI_V4MAPPED
    )
    sock = _bound_socket(host, port, infos)
    made: list[DtlsTransport] = []

    async def factory(mman: Any) -> DtlsTransport:
        transport = DtlsTransport(
            mman,
            psk_store=psk_store,
            client_psk=client_psk,
            on_security=on_security,
            handshake_timeout=handshake_timeout,
        )
        await loop.create_datagram_endpoint(lambda: transport, sock=sock)
        made.append(transport)
        return transport

    try:
        await ctx._append_tokenmanaged_messagemanaged_transport(factory)
    except BaseException:
        sock.close()
        raise
    return made[0]


async def open_context(
    site: Any,
    *,
    coap: tuple[str, int] | None = ("127.0.0.1", 0),
    coaps: tuple[str, int] | None = None,
    loggername: str = "coap",
    **dtls_options: Any,
) -> tuple[aiocoap.Context, DtlsTransport | None]:
    """A context serving ``site`` on plain CoAP, on DTLS-PSK, or on both (separate sockets)."""
    from labkit.coap import open_udp_context

    if coap is not None:
        ctx = await open_udp_context(site, coap[0], coap[1], loggername=loggername)
    else:
        ctx = aiocoap.Context(
            loop=asyncio.get_running_loop(), serversite=site, loggername=loggername
        )
    dtls_transport = None
    if coaps is not None:
        try:
            dtls_transport = await add_dtls_transport(ctx, coaps[0], coaps[1], **dtls_options)
        except BaseException:
            await ctx.shutdown()
            raise
    return ctx, dtls_transport


def dtls_port(ctx: aiocoap.Context) -> int | None:
    """The local port of the DTLS transport of ``ctx`` (None if it has none)."""
    for interface in ctx.request_interfaces:
        mi = getattr(getattr(interface, "token_interface", None), "message_interface", None)
        if isinstance(mi, DtlsTransport):
            return mi.local_address[1]
    return None
