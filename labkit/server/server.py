"""The LwM2M server role over CoAP/UDP, as an aiocoap adapter.

``server/`` never decides; it translates. This module owns the CoAP endpoint of the lab's
LwM2M server: it serves the Client Registration Interface (``POST /rd``, ``POST /rd/{id}``,
``DELETE /rd/{id}``; digest section 4) and LwM2M Send (``POST /dp``), keeps the registration
store (:mod:`labkit.server.registry`) up to date, drops registrations whose lifetime ran out,
and hands out :class:`~labkit.server.device.DeviceProxy` objects that send requests to a
device through the very socket the device registered to (role reversal, digest 8.4). Parsing
and validation belong to :mod:`labkit.lwm2m.registration` and the codecs; what to do with a
device belongs to the FOTA orchestrator.

Everything observable becomes an :class:`~labkit.events.Event` with ``source="server"``:
registrations (``registered``, ``reg_updated``, ``deregistered``, ``reg_expired``), requests,
responses, blocks, notifications, Sends, typed rows for the values the lab analyses, and an
``error`` row for every bad input, which is answered with its 4.xx while the server keeps
serving.

Time: lifetimes, expiry and the queue-mode awake window use the injected ``clock`` (the lab's
clock, simulated when time-scaled); round-trip times are wall-clock (``time.perf_counter``).
With ``time_scale=X`` (simulated seconds per wall second, see :mod:`labkit.timebase`) the CoAP
message-layer timers of the requests it sends are divided by ``X`` (:func:`scaled_tuning`):
ACK_TIMEOUT 2 s (digest 7.5) becomes 20 ms at 100x, so retransmissions happen at the same
*simulated* times as on a real link. ``request_timeout`` stays a wall-clock bound: the caller
scales it. (:func:`scaled_tuning` lives in :mod:`labkit.coap` and is re-exported here.)

The socket is bound with :func:`labkit.coap.open_udp_context` (no ``SO_REUSEPORT``): a busy
``port`` raises :class:`OSError` instead of sharing the port with another server.

Security: with ``coaps_port`` (and a :class:`~labkit.dtls.PskStore` ``psk_store``) the server
also listens on ``coaps://`` (DTLS 1.2, PSK; :mod:`labkit.dtls`), beside ``coap://`` or alone
(``coap=False``). Every handshake is a ``security`` event (``reason`` ok, unknown_identity,
bad_key, ...; never a key); a device whose handshake fails never reaches ``/rd``. A Register
over DTLS must name the endpoint its PSK identity belongs to (else 4.03).

Logging policy (as aiocoap's): DEBUG for normal traffic, WARNING for a misbehaving peer,
EXCEPTION when a callback of the lab itself fails.
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
from aiocoap import error as aioerror
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning

from labkit.coap import local_port, open_udp_context, scaled_tuning
from labkit.dtls import HandshakeReport, PskStore, security_event_fields
from labkit.events import Event, EventSink, discard
from labkit.guard import BoundedBlock1Spool, RateLimitedLog, server_body_limit
from labkit.lwm2m.errors import Lwm2mError
from labkit.lwm2m.formats import ContentFormat, decode, normalize_format
from labkit.lwm2m.paths import Path
from labkit.lwm2m.registration import parse_register, parse_update
from labkit.server.device import DeviceProxy
from labkit.server.observe import Observation
from labkit.server.registry import Registration, Registry, UnknownRegistration
from labkit.server.response import (
    DeviceNotRegistered,
    RequestTimeout,
    Response,
    ServerError,
    typed_events,
)

__all__ = ["QUEUE_AWAKE_WINDOW", "LwM2MServer", "scaled_tuning"]

log = logging.getLogger("labkit.server")

#: How long a queue-mode device stays reachable after it last sent something: CoAP
#: MAX_TRANSMIT_WAIT, Zephyr's CONFIG_LWM2M_QUEUE_MODE_UPTIME default (digest 4.2).
QUEUE_AWAKE_WINDOW = 93.0

#: Formats accepted on /dp (LwM2M 1.1 Send: SenML JSON/CBOR; 1.2 adds LwM2M CBOR).
SEND_FORMATS = frozenset(
    {ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR}
)

Listener = Callable[[str, Registration], None]


#: registrations a server holds at most by default (about 5.5 kB each)
DEFAULT_MAX_REGISTRATIONS = 20_000
#: the longest lifetime a server accepts by default: 31 days (LwM2M allows 2**32-1 s, 136 years)
DEFAULT_MAX_LIFETIME = 31 * 86_400


class _Reply(Exception):
    """Internal: answer the current request with ``code`` and record an ``error`` event."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _code(text: str) -> Code:
    cls, _, detail = text.partition(".")
    return Code(int(cls) * 32 + int(detail))


def _address(remote: Any) -> tuple[str, int] | None:
    sockaddr = getattr(remote, "sockaddr", None)
    if sockaddr is None:
        return None
    host = str(sockaddr[0]).removeprefix("::ffff:")
    return host, int(sockaddr[1])


@dataclass(eq=False)
class _RegState:
    """Per-registration runtime state: the NSTART lock and the live observations."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    observations: list[Observation] = field(default_factory=list)


class _Root(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    """The whole resource tree of the server: /rd, /rd/{id}, /dp; anything else is 4.04."""

    def __init__(self, server: LwM2MServer) -> None:
        super().__init__()
        self._server = server
        # Block1 bodies bounded (4.13), gaps 4.08 (labkit.guard)
        self._block1 = BoundedBlock1Spool(server_body_limit, on_refuse=server._refused_block)  # noqa: SLF001 - this module's server

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return self._server._handle(request)  # noqa: SLF001 - the server's own resource


class LwM2MServer:
    """An LwM2M server on one UDP socket.

    Parameters
    ----------
    host, port:
        Where to bind; loopback and an ephemeral port by default.
    on_event:
        Sink for every :class:`~labkit.events.Event` the server produces.
    clock:
        The lab's clock (seconds); lifetimes and expiry use it.
    request_timeout:
        Default bound (seconds) of every wait of a request to a device.
    expiry_check_interval:
        Seconds between two sweeps for expired registrations (real time).
    queue_awake_window:
        Seconds (lab clock) a queue-mode device stays reachable after it last talked.
    time_scale:
        Simulated seconds per wall second (1.0 = real time); divides the CoAP timers of the
        requests the server sends (:func:`scaled_tuning`). May be changed while running.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_event: EventSink = discard,
        clock: Callable[[], float] = time.time,
        request_timeout: float = 10.0,
        expiry_check_interval: float = 1.0,
        queue_awake_window: float = QUEUE_AWAKE_WINDOW,
        time_scale: float = 1.0,
        psk_store: PskStore | None = None,
        coaps_port: int | None = None,
        coap: bool = True,
        max_registrations: int = DEFAULT_MAX_REGISTRATIONS,
        max_lifetime: int = DEFAULT_MAX_LIFETIME,
    ) -> None:
        self.host = host
        #: at most this many registrations at a time; a Register of a new endpoint beyond it is
        #: answered 5.03 with Max-Age (an operator's bound on memory, issue 17)
        self.max_registrations = int(max_registrations)
        #: the longest ``lt=`` accepted (4.00 above it): a registration must expire some day
        self.max_lifetime = int(max_lifetime)
        self._warn = RateLimitedLog(10.0, log)  # refused requests: one WARNING per 10 s at most
        self.port = port
        self.psk_store = psk_store
        self.coaps_port = coaps_port
        self.coap_enabled = bool(coap)
        if not coap and coaps_port is None:
            raise ValueError("a server needs coap, coaps_port or both")
        self.request_timeout = request_timeout
        self.expiry_check_interval = expiry_check_interval
        self.queue_awake_window = queue_awake_window
        self._on_event = on_event
        self._clock = clock
        self.registry = Registry()
        self._states: dict[str, _RegState] = {}
        self._last_seen: dict[str, float] = {}
        self._wakers: dict[str, asyncio.Future[None]] = {}
        self._listeners: list[Listener] = []
        self._reg_waiters: list[tuple[str, float | None, asyncio.Future[Registration]]] = []
        self._ctx: aiocoap.Context | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        self._tuning: TransportTuning = scaled_tuning(1.0)
        self._time_scale = 1.0
        self.time_scale = time_scale

    @property
    def time_scale(self) -> float:
        """Simulated seconds per wall second of the lab's clock (1.0 = real time)."""
        return self._time_scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        self._tuning = scaled_tuning(float(value))
        self._time_scale = float(value)

    @property
    def transport_tuning(self) -> TransportTuning:
        """The aiocoap transport tuning of the CON requests this server sends."""
        return self._tuning

    @property
    def on_event(self) -> EventSink:
        """The sink the server's events go to (orchestrators record into the same run)."""
        return self._on_event

    @property
    def clock(self) -> Callable[[], float]:
        """The lab's clock the server stamps events with."""
        return self._clock

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the UDP socket and start serving (and the expiry sweep)."""
        if self._ctx is not None:
            raise RuntimeError("server already started")
        if self.coaps_port is None:
            self._ctx = await asyncio.wait_for(
                open_udp_context(
                    _Root(self), self.host, self.port, loggername="coap-server",
                    on_reject=self._rejected_datagram,
                ),
                10.0,
            )
        else:
            from labkit.dtls import open_context

            self._ctx, dtls = await asyncio.wait_for(
                open_context(
                    _Root(self),
                    coap=(self.host, self.port) if self.coap_enabled else None,
                    coaps=(self.host, self.coaps_port),
                    loggername="coap-server",
                    psk_store=self.psk_store if self.psk_store is not None else PskStore(),
                    on_security=self._security,
                ),
                10.0,
            )
            assert dtls is not None
            self.coaps_port = dtls.local_address[1]
        self.port = local_port(self._ctx) or self.port
        self._expiry_task = asyncio.create_task(self._expiry_loop(), name="lwm2m-expiry")
        self._emit("note", detail=f"LwM2M server listening on {' and '.join(self.uris)}")

    async def stop(self) -> None:
        """Cancel observations and pending waits, stop the sweep, close the socket."""
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry_task
            self._expiry_task = None
        for reg_id in list(self._states):
            self._drop_state(reg_id)
        ctx, self._ctx = self._ctx, None
        for _, _, fut in self._reg_waiters:
            if not fut.done():
                fut.set_exception(ServerError("the LwM2M server stopped"))
        for waker in self._wakers.values():
            if not waker.done():
                waker.set_result(None)  # the waiter sees the server stopped
        self._wakers.clear()
        if ctx is not None:
            # aiocoap bounds its own shutdown (SHUTDOWN_TIMEOUT); bound it here as well.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.shutdown(), 10.0)

    async def __aenter__(self) -> LwM2MServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def uri(self) -> str:
        """``coap://HOST:PORT`` of this server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"coap://{host}:{self.port}"

    @property
    def coaps_uri(self) -> str | None:
        """``coaps://HOST:PORT`` of this server (None without DTLS)."""
        if self.coaps_port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"coaps://{host}:{self.coaps_port}"

    @property
    def uris(self) -> list[str]:
        """The URIs the server listens on (``coap://`` and/or ``coaps://``)."""
        found = [self.uri] if self.coap_enabled else []
        return found + ([self.coaps_uri] if self.coaps_uri is not None else [])

    def _security(self, report: HandshakeReport) -> None:
        self._emit(**security_event_fields(report))

    @property
    def _context(self) -> aiocoap.Context:
        if self._ctx is None:
            raise RuntimeError("the server is not started")
        return self._ctx

    # -- what a DeviceProxy uses (labkit.server.device.ProxyHost) -------------------------
    @property
    def coap_context(self) -> aiocoap.Context:
        """The server's CoAP context (requests to devices leave through its socket)."""
        return self._context

    def emit(self, kind: str, **fields: Any) -> None:
        """Record a server event (``source`` "server")."""
        self._emit(kind, **fields)

    def lock_for(self, reg: Registration) -> asyncio.Lock:
        """The lock that serialises requests to one registration."""
        return self._lock_for(reg)

    async def wait_awake(self, endpoint: str, timeout: float) -> Registration:
        """The registration once the (queue-mode) device is reachable."""
        return await self._wait_awake(endpoint, timeout)

    def record_response(self, endpoint: str, resp: Response, *, method: str, detail: str) -> None:
        """Record a device's answer (event, typed values, last-seen time)."""
        self._record_response(endpoint, resp, method=method, detail=detail)

    def track_observation(self, reg: Registration, obs: Observation) -> None:
        """Keep ``obs`` with its registration (it ends when the registration does)."""
        self._track_observation(reg, obs)

    def observation_notified(self, obs: Observation, resp: Response) -> None:
        """An observation's notification arrived."""
        self._notified(obs, resp)

    def observation_ended(self, obs: Observation, exc: BaseException | None) -> None:
        """An observation ended (``exc``: why, if it failed)."""
        self._observation_ended(obs, exc)

    def observation_callback_failed(self, obs: Observation, exc: BaseException) -> None:
        """A notification callback raised."""
        self._observation_callback_failed(obs, exc)

    # -- public queries --------------------------------------------------------------------
    @property
    def registrations(self) -> Mapping[str, Registration]:
        """Current registrations by endpoint name (a read-only live view)."""
        return self.registry.by_endpoint

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(kind, registration)`` on "registered", "updated", "deregistered", "expired"."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    def device(self, endpoint: str) -> DeviceProxy:
        """Operations towards ``endpoint``; raises :class:`DeviceNotRegistered` if unknown."""
        if endpoint not in self.registry:
            raise DeviceNotRegistered(endpoint)
        return DeviceProxy(self, endpoint)

    async def wait_for_registration(
        self, endpoint: str, *, timeout: float, after: float | None = None
    ) -> Registration:
        """Wait until ``endpoint`` is registered with ``registered_at > after``.

        ``after`` (lab clock) lets a caller wait for the re-registration after a reboot.
        Raises :class:`TimeoutError` (``asyncio.TimeoutError``) when ``timeout`` runs out.
        """
        reg = self.registry.get(endpoint)
        if reg is not None and (after is None or reg.registered_at > after):
            return reg
        fut: asyncio.Future[Registration] = asyncio.get_running_loop().create_future()
        entry = (endpoint, after, fut)
        self._reg_waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._reg_waiters.remove(entry)

    def is_awake(self, endpoint: str) -> bool:
        """True when ``endpoint`` talked to the server within the queue-mode awake window."""
        last = self._last_seen.get(endpoint)
        return last is not None and self._clock() - last < self.queue_awake_window

    def check_expiry(self) -> list[Registration]:
        """Drop every registration whose lifetime ran out (the periodic sweep calls this)."""
        gone = self.registry.expire(self._clock())
        for reg in gone:
            self._drop_state(reg.reg_id)
            self._emit(
                "reg_expired",
                device=reg.endpoint,
                path=reg.location,
                detail=f"lifetime {reg.lifetime} s ran out without an Update",
            )
            self._notify_listeners("expired", reg)
        return gone

    # -- the CoAP side ---------------------------------------------------------------------
    def _handle(self, request: aiocoap.Message) -> aiocoap.Message:
        path = tuple(request.opt.uri_path)
        method = str(request.code)
        text_path = "/" + "/".join(path)
        try:
            if path == ("rd",):
                if request.code != aiocoap.POST:
                    raise _Reply("4.05", f"{method} not allowed on /rd")
                return self._register(request)
            if len(path) == 2 and path[0] == "rd":
                if request.code == aiocoap.POST:
                    return self._update(request, path[1])
                if request.code == aiocoap.DELETE:
                    return self._deregister(request, path[1])
                raise _Reply("4.05", f"{method} not allowed on {text_path}")
            if path == ("dp",):
                if request.code != aiocoap.POST:
                    raise _Reply("4.05", f"{method} not allowed on /dp")
                return self._send(request)
            raise _Reply("4.04", f"no resource {text_path}")
        except _Reply as reply:
            self._warn(
                logging.WARNING,
                "%s %s from %s: %s %s",
                method,
                text_path,
                request.remote,
                reply.code,
                reply.detail,
            )
            self._emit(
                "error",
                device=self._endpoint_of(request.remote),
                path=text_path,
                method=method,
                code=reply.code,
                bytes=len(request.payload),
                detail=reply.detail,
            )
            return aiocoap.Message(code=_code(reply.code), payload=reply.detail.encode()[:200])
        except Exception as exc:  # a bug of ours: answer 5.00, record it, keep serving
            log.exception("failed to handle %s %s", method, text_path)
            self._emit("error", path=text_path, method=method, code="5.00", detail=f"{exc!r}")
            return aiocoap.Message(code=aiocoap.INTERNAL_SERVER_ERROR)

    @staticmethod
    def _check_link_format(request: aiocoap.Message) -> None:
        cf = request.opt.content_format
        if request.payload and cf is not None and int(cf) != ContentFormat.LINK_FORMAT:
            raise _Reply("4.15", f"registration payload must be link-format (40), got {int(cf)}")

    def _register(self, request: aiocoap.Message) -> aiocoap.Message:
        self._check_link_format(request)
        try:
            req = parse_register(list(request.opt.uri_query), bytes(request.payload))
        except Lwm2mError as exc:
            raise _Reply(exc.coap_code, f"Register refused: {exc}") from None
        if getattr(request.remote, "scheme", "coap") == "coaps":
            owner = getattr(request.remote, "endpoint", None)
            if owner != req.endpoint:
                raise _Reply(
                    "4.03",
                    f"Register as {req.endpoint!r} over a DTLS session of endpoint {owner!r}",
                )
        if req.lifetime > self.max_lifetime or (req.lifetime == 0 and self.max_lifetime):
            raise _Reply(
                "4.00", f"Register refused: lifetime {req.lifetime} is over {self.max_lifetime} s"
            )
        if len(self.registry) >= self.max_registrations and req.endpoint not in self.registry:
            self._emit("error", device=req.endpoint, path="/rd", method="POST", code="5.03",
                       detail=f"Register refused: {len(self.registry)} registrations (limit)")
            return aiocoap.Message(
                code=aiocoap.SERVICE_UNAVAILABLE, max_age=60, payload=b"too many registrations"
            )
        now = self._clock()
        reg, old = self.registry.register(
            req, now=now, remote=request.remote, address=_address(request.remote)
        )
        if old is not None:
            self._drop_state(old.reg_id)
            self._emit(
                "deregistered",
                device=old.endpoint,
                path=old.location,
                detail=f"replaced by a new Register ({reg.location})",
            )
            self._notify_listeners("deregistered", old)
        self._states[reg.reg_id] = _RegState()
        self._emit(
            "registered",
            device=reg.endpoint,
            path=reg.location,
            method="POST",
            code="2.01",
            bytes=len(request.payload),
            detail=self._describe(reg),
        )
        self._seen(reg.endpoint)
        self._notify_listeners("registered", reg)
        for endpoint, after, fut in list(self._reg_waiters):
            if endpoint == reg.endpoint and (after is None or now > after) and not fut.done():
                fut.set_result(reg)
        return aiocoap.Message(code=aiocoap.CREATED, location_path=["rd", reg.reg_id])

    def _update(self, request: aiocoap.Message, reg_id: str) -> aiocoap.Message:
        reg = self.registry.by_id(reg_id)
        if reg is None:
            raise _Reply("4.04", f"Update of unknown registration /rd/{reg_id}")
        self._check_link_format(request)
        try:
            upd = parse_update(
                list(request.opt.uri_query),
                bytes(request.payload),
                lwm2m_version=reg.lwm2m_version,
            )
        except Lwm2mError as exc:
            raise _Reply(exc.coap_code, f"Update refused: {exc}") from None
        if upd.lifetime is not None and (
            upd.lifetime > self.max_lifetime or (upd.lifetime == 0 and self.max_lifetime)
        ):
            raise _Reply("4.00", f"Update refused: lifetime {upd.lifetime} is over "
                         f"{self.max_lifetime} s")
        try:
            reg = self.registry.update(
                reg_id,
                upd,
                now=self._clock(),
                remote=request.remote,
                address=_address(request.remote),
            )
        except UnknownRegistration:
            raise _Reply("4.04", f"Update of unknown registration /rd/{reg_id}") from None
        self._emit(
            "reg_updated",
            device=reg.endpoint,
            path=reg.location,
            method="POST",
            code="2.04",
            bytes=len(request.payload),
            detail=self._describe(reg),
        )
        self._seen(reg.endpoint)
        self._notify_listeners("updated", reg)
        return aiocoap.Message(code=aiocoap.CHANGED)

    def _deregister(self, request: aiocoap.Message, reg_id: str) -> aiocoap.Message:
        try:
            reg = self.registry.deregister(reg_id)
        except UnknownRegistration:
            raise _Reply("4.04", f"De-register of unknown registration /rd/{reg_id}") from None
        self._drop_state(reg.reg_id)
        self._emit(
            "deregistered",
            device=reg.endpoint,
            path=reg.location,
            method="DELETE",
            code="2.02",
            detail="De-register",
        )
        self._notify_listeners("deregistered", reg)
        return aiocoap.Message(code=aiocoap.DELETED)

    def _send(self, request: aiocoap.Message) -> aiocoap.Message:
        endpoint = self._endpoint_of(request.remote)
        if endpoint is None:
            raise _Reply("4.00", "Send from a peer that is not registered")
        cf = request.opt.content_format
        if cf is None:
            raise _Reply("4.00", "Send without a Content-Format")
        try:
            fmt = normalize_format(int(cf))
        except Lwm2mError:
            raise _Reply("4.15", f"Send in unknown content format {int(cf)}") from None
        if fmt not in SEND_FORMATS:
            raise _Reply("4.15", f"Send must be SenML JSON/CBOR or LwM2M CBOR, got {int(cf)}")
        try:
            values = decode(fmt, bytes(request.payload), Path(()))
        except (Lwm2mError, ValueError) as exc:
            raise _Reply("4.00", f"Send payload not decodable: {exc}") from None
        self._seen(endpoint)
        self._emit(
            "send",
            device=endpoint,
            path="/dp",
            method="POST",
            code="2.04",
            bytes=len(request.payload),
            detail=", ".join(f"{p}={v!r}" for p, v in list(values.items())[:20]),
        )
        self._emit_typed(values, endpoint)
        return aiocoap.Message(code=aiocoap.CHANGED)

    # -- helpers used by DeviceProxy and Observation ---------------------------------------
    def _lock_for(self, reg: Registration) -> asyncio.Lock:
        state = self._states.get(reg.reg_id)
        if state is None:
            raise DeviceNotRegistered(reg.endpoint)
        return state.lock

    async def _wait_awake(self, endpoint: str, timeout: float) -> Registration:
        """Return the registration once the (queue-mode) device is reachable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        announced = False
        while True:
            if self._ctx is None:
                raise ServerError("the LwM2M server is not running")
            reg = self.registry.get(endpoint)
            if reg is None:
                raise DeviceNotRegistered(endpoint)
            if not reg.queue_mode or self.is_awake(endpoint):
                return reg
            if not announced:
                self._emit(
                    "note",
                    device=endpoint,
                    detail="queue mode: request waits for the "
                    "device to wake up (next Register/Update)",
                )
                announced = True
            fut = self._wakers.get(endpoint)
            if fut is None or fut.done():
                fut = self._wakers[endpoint] = loop.create_future()
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(asyncio.shield(fut), remaining)
            except TimeoutError:
                self._emit(
                    "error",
                    device=endpoint,
                    detail=f"queue mode: device did not wake up within {timeout} s",
                )
                raise RequestTimeout(
                    f"{endpoint}: queue-mode device did not wake up within {timeout} s"
                ) from None

    def _seen(self, endpoint: str) -> None:
        self._last_seen[endpoint] = self._clock()
        fut = self._wakers.pop(endpoint, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _track_observation(self, reg: Registration, obs: Observation) -> None:
        state = self._states.get(reg.reg_id)
        if state is None:  # the registration went away while the Observe was answered
            obs.cancel()
            return
        state.observations.append(obs)

    def _record_response(self, endpoint: str, resp: Response, *, method: str, detail: str) -> None:
        self._seen(endpoint)
        self._emit(
            "response",
            device=endpoint,
            path=str(resp.path),
            method=method,
            code=resp.code,
            rtt_ms=resp.rtt_ms,
            bytes=len(resp.payload),
            detail=detail,
        )
        if resp.error:
            self._emit(
                "error", device=endpoint, path=str(resp.path), code=resp.code, detail=resp.error
            )
        self._emit_typed(resp.values, endpoint)

    def _notified(self, obs: Observation, resp: Response) -> None:
        self._seen(obs.endpoint)
        self._emit(
            "notify",
            device=obs.endpoint,
            path=str(obs.path),
            code=resp.code,
            bytes=len(resp.payload),
            rtt_ms=resp.rtt_ms,
            detail=None if resp.observe is None else f"observe={resp.observe}",
        )
        if resp.error:
            self._emit(
                "error",
                device=obs.endpoint,
                path=str(obs.path),
                code=resp.code,
                detail=resp.error,
            )
        self._emit_typed(resp.values, obs.endpoint)

    def _observation_ended(self, obs: Observation, exc: BaseException | None) -> None:
        self._forget_observation(obs)
        normal = isinstance(exc, aioerror.ObservationCancelled | aioerror.NotObservable)
        self._emit(
            "note" if normal else "error",
            device=obs.endpoint,
            path=str(obs.path),
            detail=f"observation ended: {type(exc).__name__ if exc else 'no reason'}",
        )

    def _observation_callback_failed(self, obs: Observation, exc: BaseException) -> None:
        self._emit(
            "error",
            device=obs.endpoint,
            path=str(obs.path),
            detail=f"observation callback failed: {exc!r}",
        )

    def _forget_observation(self, obs: Observation) -> None:
        for state in self._states.values():
            if obs in state.observations:
                state.observations.remove(obs)

    def _drop_state(self, reg_id: str) -> None:
        """A registration ended: its observations die with it (digest 7.4, pitfall 8)."""
        state = self._states.pop(reg_id, None)
        if state is None:
            return
        for obs in list(state.observations):
            obs.cancel()
        state.observations.clear()

    def _endpoint_of(self, remote: Any) -> str | None:
        for reg in self.registry:
            with contextlib.suppress(Exception):
                if reg.remote == remote:
                    return reg.endpoint
        return None

    @staticmethod
    def _describe(reg: Registration) -> str:
        objs = ",".join(f"/{o}" for o in sorted(reg.objects))
        addr = f"{reg.address[0]}:{reg.address[1]}" if reg.address else "?"
        queue = " Q" if reg.queue_mode else ""
        return (
            f"lt={reg.lifetime} lwm2m={reg.lwm2m_version} b={reg.binding}{queue} "
            f"from {addr} objects {objs}"
        )

    def _notify_listeners(self, kind: str, reg: Registration) -> None:
        for fn in list(self._listeners):
            try:
                fn(kind, reg)
            except Exception as exc:
                log.exception("registration listener failed")
                self._emit("error", device=reg.endpoint, detail=f"listener failed: {exc!r}")

    def _rejected_datagram(self, code: str, remote: Any, reason: str) -> None:
        """labkit.guard refused a datagram before aiocoap saw it: an ``error`` event."""
        self._emit("error", code=code, detail=f"datagram from {remote[0]}:{remote[1]}: {reason}")

    def _refused_block(self, code: str, request: aiocoap.Message, detail: str) -> None:
        self._emit(
            "error",
            device=self._endpoint_of(request.remote),
            path="/" + "/".join(request.opt.uri_path),
            method=str(request.code),
            code=code,
            detail=detail,
        )

    def _emit(self, kind: str, **fields: Any) -> None:
        try:
            self._on_event(Event(ts=self._clock(), source="server", kind=kind, **fields))
        except Exception:
            log.exception("event sink failed")

    def _emit_typed(self, values: Mapping[Path, Any], endpoint: str) -> None:
        if not values:
            return
        for event in typed_events(values, ts=self._clock(), device=endpoint):
            try:
                self._on_event(event)
            except Exception:
                log.exception("event sink failed")

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.expiry_check_interval)
            try:
                self.check_expiry()
            except Exception:
                log.exception("expiry sweep failed")

    def _repr_html_(self) -> str:
        from html import escape

        now = self._clock()
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{escape(str(v))}</td>"
                for v in (
                    reg.endpoint,
                    reg.location,
                    f"{reg.address[0]}:{reg.address[1]}" if reg.address else "?",
                    reg.lwm2m_version,
                    reg.binding + (" Q" if reg.queue_mode else ""),
                    f"{reg.remaining(now):.0f} s",
                )
            )
            + "</tr>"
            for reg in self.registry
        )
        head = "".join(
            f"<th>{h}</th>"
            for h in ("endpoint", "location", "address", "LwM2M", "binding", "expires in")
        )
        state = "running" if self._ctx is not None else "stopped"
        return (
            f"<p>LwM2M server {escape(self.uri)} ({state}), {len(self.registry)} registered</p>"
            f"<table><tr>{head}</tr>{rows}</table>"
        )

    def __repr__(self) -> str:
        state = "running" if self._ctx is not None else "stopped"
        return f"LwM2MServer({self.uri}, {state}, {len(self.registry)} registered)"
