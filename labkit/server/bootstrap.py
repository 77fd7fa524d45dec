"""An LwM2M Bootstrap server over CoAP and DTLS-PSK (the aiocoap adapter of that role).

Client-Initiated Bootstrap (LwM2M 1.1 TS Core 6.1.3, 8.2): a device sends ``POST /bs?ep=EP``;
the server answers 2.04 and then, through the session the request came on (plain CoAP, or
the DTLS-PSK session of :mod:`labkit.dtls`), configures the device:

1. Bootstrap-Discover ``GET /`` (Accept 40) -- what the device has (recorded);
2. Bootstrap-Delete ``DELETE /0`` and ``DELETE /1`` (as Leshan's default) -- the device keeps
   its bootstrap account;
3. Bootstrap-Write ``PUT /0/1`` -- the management server's account: URI, Bootstrap-Server
   false, Security Mode (0 PSK or 3 NoSec), PSK identity and key, Short Server ID;
4. Bootstrap-Write ``PUT /1/1`` -- the Server object instance: Short Server ID, Lifetime,
   Notification Storing, Binding;
5. Bootstrap-Finish ``POST /bs`` -- the device checks and answers 2.04 (or 4.06).

Each exchange is one ``bootstrap`` event (``source="bootstrap"``; ``method`` = the operation,
``path``, ``code``, ``rtt_ms``), and a failed one an ``error`` event; a sequence ends with a
``bootstrap`` event of ``reason`` ``finished`` or ``failed``. Keys are never in an event: a
Write of /0 lists the identity and which resources it wrote.

What to write comes from :class:`BootstrapConfig` per endpoint (``configs``), else from the
``default`` config; an endpoint with neither is answered 4.04 (unknown endpoint) as Leshan
does. The PSK the device uses *for this server* is ``psk_store`` (the DTLS table of the
bootstrap server itself); the PSK written for the management server is in the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from labkit.dtls import HandshakeReport, PskStore, open_context, security_event_fields
from labkit.events import Event, EventSink, discard
from labkit.lwm2m.formats import ContentFormat, encode
from labkit.lwm2m.paths import Path

__all__ = ["BootstrapConfig", "BootstrapServer"]

log = logging.getLogger("labkit.bootstrap")


@dataclass(frozen=True)
class BootstrapConfig:
    """What the Bootstrap server writes to one device (the management server's account)."""

    server_uri: str
    psk_identity: bytes | None = None
    psk_key: bytes | None = field(default=None, repr=False)
    short_server_id: int = 101
    lifetime: int = 300
    binding: str = "U"

    @property
    def security_mode(self) -> int:
        return 0 if self.psk_identity is not None else 3

    def security_values(self, iid: int) -> dict[Path, Any]:
        base = Path.of(0, iid)
        values: dict[Path, Any] = {
            base.child(0): self.server_uri,
            base.child(1): False,
            base.child(2): self.security_mode,
            base.child(3): self.psk_identity or b"",
            base.child(4): b"",
            base.child(5): self.psk_key or b"",
            base.child(10): self.short_server_id,
        }
        return values

    def server_values(self, iid: int) -> dict[Path, Any]:
        base = Path.of(1, iid)
        return {
            base.child(0): self.short_server_id,
            base.child(1): self.lifetime,
            base.child(6): True,
            base.child(7): self.binding,
        }


class _Root(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    def __init__(self, server: BootstrapServer) -> None:
        super().__init__()
        self._server = server

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return self._server.handle_request(request)


class BootstrapServer:
    """An LwM2M Bootstrap server on ``coap://`` and/or ``coaps://`` (see the module docstring).

    Parameters
    ----------
    host, port:
        Plain CoAP address (``coap=False``: none).
    coaps_port, psk_store:
        DTLS-PSK listener and the keys devices use with this server.
    configs, default:
        Per-endpoint :class:`BootstrapConfig`, and the one for any other endpoint (or None).
    request_timeout:
        Bound of each request to a device (seconds).
    """

    SECURITY_INSTANCE = 1  # /0/0 stays the bootstrap account on the device
    SERVER_INSTANCE = 1

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        coap: bool = True,
        coaps_port: int | None = None,
        psk_store: PskStore | None = None,
        configs: Mapping[str, BootstrapConfig] | None = None,
        default: BootstrapConfig | None = None,
        on_event: EventSink = discard,
        clock: Callable[[], float] = time.time,
        request_timeout: float = 10.0,
    ) -> None:
        if not coap and coaps_port is None:
            raise ValueError("a bootstrap server needs coap, coaps_port or both")
        self.host = host
        self.port = port
        self.coap_enabled = coap
        self.coaps_port = coaps_port
        self.psk_store = psk_store if psk_store is not None else PskStore()
        self.configs: dict[str, BootstrapConfig] = dict(configs or {})
        self.default = default
        self.request_timeout = request_timeout
        self._on_event = on_event
        self._clock = clock
        self._ctx: aiocoap.Context | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: endpoint -> "running" / "finished" / "failed: ..." of the latest sequence.
        self.status: dict[str, str] = {}
        self._waiters: list[tuple[str, asyncio.Future[str]]] = []

    # -- life cycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self._ctx is not None:
            raise RuntimeError("bootstrap server already started")
        ctx, dtls = await asyncio.wait_for(
            open_context(
                _Root(self),
                coap=(self.host, self.port) if self.coap_enabled else None,
                coaps=(self.host, self.coaps_port) if self.coaps_port is not None else None,
                loggername="coap-bootstrap",
                psk_store=self.psk_store,
                on_security=self._security,
            ),
            10.0,
        )
        self._ctx = ctx
        if self.coap_enabled:
            from labkit.coap import local_port

            self.port = local_port(ctx) or self.port
        if dtls is not None:
            self.coaps_port = dtls.local_address[1]
        self._emit("note", detail=f"LwM2M Bootstrap server listening on {' and '.join(self.uris)}")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.shutdown(), 10.0)

    async def __aenter__(self) -> BootstrapServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def uri(self) -> str | None:
        return f"coap://{self._host()}:{self.port}" if self.coap_enabled else None

    @property
    def coaps_uri(self) -> str | None:
        return None if self.coaps_port is None else f"coaps://{self._host()}:{self.coaps_port}"

    @property
    def uris(self) -> list[str]:
        return [u for u in (self.uri, self.coaps_uri) if u is not None]

    async def wait_finished(self, endpoint: str, timeout: float) -> str:
        """Wait until ``endpoint``'s bootstrap sequence ends; its status (bounded)."""
        current = self.status.get(endpoint)
        if current is not None and current != "running":
            return current
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append((endpoint, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters = [(e, f) for e, f in self._waiters if f is not fut]

    # -- the interface -----------------------------------------------------------------------
    def handle_request(self, request: aiocoap.Message) -> aiocoap.Message:
        path = tuple(request.opt.uri_path)
        if path != ("bs",) or request.code != aiocoap.POST:
            self._emit(
                "error",
                path="/" + "/".join(path),
                method=str(request.code),
                code="4.04",
                detail="a Bootstrap server answers POST /bs only",
            )
            return aiocoap.Message(code=aiocoap.NOT_FOUND)
        query = dict(q.partition("=")[::2] for q in request.opt.uri_query)
        endpoint = query.get("ep")
        if not endpoint:
            self._emit("error", path="/bs", method="POST", code="4.00", detail="no ep=")
            return aiocoap.Message(code=aiocoap.BAD_REQUEST, payload=b"ep= is required")
        config = self.configs.get(endpoint, self.default)
        owner = getattr(request.remote, "endpoint", None)
        if getattr(request.remote, "scheme", "coap") == "coaps" and owner != endpoint:
            self._bs_event(
                endpoint,
                "Bootstrap-Request",
                "/bs",
                "4.03",
                reason="refused",
                detail=f"DTLS session belongs to {owner!r}",
            )
            return aiocoap.Message(code=aiocoap.FORBIDDEN)
        if config is None:
            self._bs_event(
                endpoint,
                "Bootstrap-Request",
                "/bs",
                "4.04",
                reason="refused",
                detail="no bootstrap configuration for this endpoint",
            )
            return aiocoap.Message(code=aiocoap.NOT_FOUND)
        if self.status.get(endpoint) == "running":
            self._bs_event(
                endpoint, "Bootstrap-Request", "/bs", "2.04", detail="sequence already running"
            )
            return aiocoap.Message(code=aiocoap.CHANGED)
        self.status[endpoint] = "running"
        self._bs_event(
            endpoint,
            "Bootstrap-Request",
            "/bs",
            "2.04",
            detail=f"over {getattr(request.remote, 'scheme', 'coap')}",
        )
        task = asyncio.create_task(
            self._sequence(endpoint, request.remote, config), name=f"bootstrap-{endpoint}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return aiocoap.Message(code=aiocoap.CHANGED)

    async def _sequence(self, endpoint: str, remote: Any, config: BootstrapConfig) -> None:
        await asyncio.sleep(0)  # let the 2.04 leave first
        sec_iid, srv_iid = self.SECURITY_INSTANCE, self.SERVER_INSTANCE
        try:
            await self._exchange(
                endpoint,
                remote,
                "Bootstrap-Discover",
                aiocoap.GET,
                Path(()),
                accept=int(ContentFormat.LINK_FORMAT),
            )
            for oid in (0, 1):
                await self._exchange(
                    endpoint, remote, "Bootstrap-Delete", aiocoap.DELETE, Path.of(oid)
                )
            sec = config.security_values(sec_iid)
            ident = config.psk_identity.decode(errors="replace") if config.psk_identity else None
            await self._exchange(
                endpoint,
                remote,
                "Bootstrap-Write",
                aiocoap.PUT,
                Path.of(0, sec_iid),
                values=sec,
                detail=f"server {config.server_uri} mode {config.security_mode}"
                + (f" identity {ident!r} key (not shown)" if ident else "")
                + f" ssid {config.short_server_id}",
            )
            await self._exchange(
                endpoint,
                remote,
                "Bootstrap-Write",
                aiocoap.PUT,
                Path.of(1, srv_iid),
                values=config.server_values(srv_iid),
                detail=f"ssid {config.short_server_id} lt {config.lifetime} b {config.binding}",
            )
            await self._exchange(endpoint, remote, "Bootstrap-Finish", aiocoap.POST, None)
        except _Failed as exc:
            self._end(endpoint, f"failed: {exc}")
            return
        except asyncio.CancelledError:
            self._end(endpoint, "failed: bootstrap server stopped")
            raise
        self._end(endpoint, "finished")

    def _end(self, endpoint: str, status: str) -> None:
        self.status[endpoint] = status
        ok = status == "finished"
        self._bs_event(
            endpoint, "Bootstrap", None, None, reason="finished" if ok else "failed", detail=status
        )
        for ep, fut in list(self._waiters):
            if ep == endpoint and not fut.done():
                fut.set_result(status)

    async def _exchange(
        self,
        endpoint: str,
        remote: Any,
        operation: str,
        code: Code,
        path: Path | None,
        *,
        values: Mapping[Path, Any] | None = None,
        accept: int | None = None,
        detail: str | None = None,
    ) -> aiocoap.Message:
        ctx = self._ctx
        if ctx is None:
            raise _Failed("server stopped")
        segments = ["bs"] if path is None else [str(i) for i in path.ids]
        msg = aiocoap.Message(code=code, uri_path=segments)
        if accept is not None:
            msg.opt.accept = accept
        if values is not None and path is not None:
            msg.payload = encode(ContentFormat.TLV, path, values)
            msg.opt.content_format = int(ContentFormat.TLV)
        msg.remote = remote
        text_path = "/" + "/".join(segments)
        started = time.perf_counter()
        try:
            resp = await asyncio.wait_for(ctx.request(msg).response, self.request_timeout)
        except (TimeoutError, aiocoap.error.Error) as exc:
            self._bs_event(
                endpoint, operation, text_path, None, reason="no answer", detail=f"{exc!r}"
            )
            raise _Failed(f"{operation} {text_path}: no answer ({exc!r})") from None
        rtt = (time.perf_counter() - started) * 1000
        extra = detail
        if operation == "Bootstrap-Discover" and resp.code.is_successful():
            extra = resp.payload.decode(errors="replace")[:300]
        self._bs_event(
            endpoint,
            operation,
            text_path,
            resp.code.dotted,
            rtt_ms=rtt,
            detail=extra,
            bytes=len(msg.payload),
        )
        if not resp.code.is_successful():
            self._emit(
                "error",
                device=endpoint,
                path=text_path,
                method=operation,
                code=resp.code.dotted,
                detail=resp.payload.decode(errors="replace"),
            )
            raise _Failed(f"{operation} {text_path} answered {resp.code.dotted}")
        return resp

    # -- events ------------------------------------------------------------------------------
    def _security(self, report: HandshakeReport) -> None:
        self._emit(**security_event_fields(report))

    def _bs_event(
        self, endpoint: str, operation: str, path: str | None, code: str | None, **fields: Any
    ) -> None:
        self._emit("bootstrap", device=endpoint, method=operation, path=path, code=code, **fields)

    def _emit(self, kind: str, **fields: Any) -> None:
        try:
            self._on_event(Event(ts=self._clock(), source="bootstrap", kind=kind, **fields))
        except Exception:
            log.exception("event sink failed")

    def __repr__(self) -> str:
        return f"<BootstrapServer {' '.join(self.uris) or 'not started'}>"


class _Failed(Exception):
    pass
