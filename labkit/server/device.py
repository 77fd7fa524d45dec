"""Operations towards one registered device: Read, Discover, Write, Execute, Observe, ...

This module owns the translation of LwM2M Device Management operations into CoAP requests
(digest 5.1) and of the answers into :class:`~labkit.server.response.Response` values, plus
the block-wise push of a large Write (digest 7.2). It never decides *what* to do with a
device (the FOTA orchestrator does) and never parses registrations (the server does).

Rules it follows (digest 8.4, 7.5, pitfalls 3, 4, 9, 10):

* Every request leaves through the server's socket and goes to ``remote`` of the device's
  latest Register/Update, as a CON.
* Reads always carry an Accept: text/plain (0) for a single-instance resource (opaque (42) for
  opaque ones), otherwise SenML CBOR (112) for LwM2M 1.1+ and TLV (11542) for 1.0, adjusted to
  the ``ct=`` list of the registration when it has one.
* One outstanding request per device (NSTART = 1): requests to one registration are
  serialised; notifications do not count.
* Queue mode: a request to a sleeping device waits until the device next talks to the server.
* Block1 Writes are clocked here (``handle_blockwise=False``), so that the timeout follows
  progress (it bounds each block, not the whole transfer), the device may lower the block size
  (late negotiation, or 4.13 with a Block1 option), and progress is reported per block.

A :class:`DeviceProxy` is bound to an endpoint name, not to one registration: after the device
re-registers (a reboot), the same proxy reaches it at its new address.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import aiocoap
from aiocoap import error as aioerror
from aiocoap.optiontypes import BlockOption

from labkit.coap_abandon import response_within
from labkit.lwm2m.formats import ContentFormat, encode
from labkit.lwm2m.objects import ResourceType, resource_def
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import Value
from labkit.server.observe import Observation
from labkit.server.response import (
    DeviceNotRegistered,
    DeviceUnreachable,
    RequestFailed,
    RequestTimeout,
    Response,
    code_text,
)

if TYPE_CHECKING:
    from aiocoap.numbers.constants import TransportTuning

    from labkit.server.registry import Registration


def _rtt_now() -> float:
    """The running loop's clock, for round-trip times (simulated on a virtual-time loop,
    monotonic wall time otherwise)."""
    return asyncio.get_running_loop().time()


__all__ = ["DEFAULT_BLOCK_SIZE", "DeviceProxy", "ProxyHost"]

#: Block size of pushed Writes (SZX 6, the largest regular CoAP block; digest 7.2).
DEFAULT_BLOCK_SIZE = 1024
_BLOCK_SIZES = {16: 0, 32: 1, 64: 2, 128: 3, 256: 4, 512: 5, 1024: 6}

_METHOD_NAMES = {
    aiocoap.GET: "GET",
    aiocoap.PUT: "PUT",
    aiocoap.POST: "POST",
    aiocoap.DELETE: "DELETE",
}


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (1, 0)


def multi_value_format(reg: Registration) -> int:
    """Content format for multi-value payloads to and from ``reg`` (Read Accept, Write, Create).

    SenML CBOR for LwM2M 1.1+ and TLV for 1.0 (digest 4.3, pitfall 3); when the registration
    lists its formats (``ct=`` on the root link), the first of 112, 110, TLV it lists wins.
    """
    listed = set(reg.content_formats)
    if _version(reg.lwm2m_version) < (1, 1):
        preferred = [ContentFormat.TLV, 1542, ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON]
    else:
        preferred = [ContentFormat.SENML_CBOR, ContentFormat.SENML_JSON, ContentFormat.TLV, 1542]
    if listed:
        for fmt in preferred:
            if int(fmt) in listed:
                return ContentFormat.TLV if int(fmt) == 1542 else int(fmt)
    return int(preferred[0])


def single_value_format(path: Path) -> int | None:
    """text/plain (or opaque) for a path that holds exactly one value, else None."""
    if path.is_resource_instance:
        rtype = _rtype(path)
        return ContentFormat.OPAQUE if rtype == ResourceType.OPAQUE else ContentFormat.TEXT
    if path.is_resource:
        assert path.object_id is not None and path.resource_id is not None
        rdef = resource_def(path.object_id, path.resource_id)
        if rdef is not None and rdef.multiple:
            return None
        if rdef is not None and rdef.type == ResourceType.OPAQUE:
            return ContentFormat.OPAQUE
        return ContentFormat.TEXT
    return None


def _rtype(path: Path) -> ResourceType | None:
    if path.object_id is None or path.resource_id is None:
        return None
    rdef = resource_def(path.object_id, path.resource_id)
    return None if rdef is None else rdef.type


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a late answer's exception as retrieved (nobody waits for it any more)."""
    if not future.cancelled():
        future.exception()


def _block_szx(block_size: int) -> int:
    try:
        return _BLOCK_SIZES[block_size]
    except KeyError:
        raise ValueError(
            f"block_size must be one of {sorted(_BLOCK_SIZES)} bytes, got {block_size}"
        ) from None


class ProxyHost(Protocol):
    """What a :class:`DeviceProxy` uses of its server (implemented by
    :class:`~labkit.server.server.LwM2MServer`): the registrations, the CoAP context and its
    timings, one lock per registration, the wake-up of queue-mode devices, the event sink and
    the bookkeeping of answers and observations."""

    request_timeout: float

    @property
    def registrations(self) -> Mapping[str, Registration]: ...
    @property
    def coap_context(self) -> aiocoap.Context: ...
    @property
    def transport_tuning(self) -> TransportTuning: ...

    def emit(self, kind: str, **fields: Any) -> None: ...
    def lock_for(self, reg: Registration) -> asyncio.Lock: ...
    async def wait_awake(self, endpoint: str, timeout: float) -> Registration: ...
    def record_response(
        self, endpoint: str, resp: Response, *, method: str, detail: str
    ) -> None: ...
    def track_observation(self, reg: Registration, obs: Observation) -> None: ...
    def observation_notified(self, obs: Observation, resp: Response) -> None: ...
    def observation_ended(self, obs: Observation, exc: BaseException | None) -> None: ...
    def observation_callback_failed(self, obs: Observation, exc: BaseException) -> None: ...


class DeviceProxy:
    """Operations towards the device registered as ``endpoint``.

    Every operation takes ``timeout`` (seconds; default: the server's ``request_timeout``)
    and returns a :class:`Response`, whatever its code; call ``raise_for_status()`` to turn a
    4.xx/5.xx into :class:`RequestFailed`. ``timeout`` bounds the wait for the device's turn
    (a queue-mode device waking up, then its previous request finishing: one budget for
    both), and then, separately, each answer (each block of a block-wise Write).

    Raises
    ------
    DeviceNotRegistered
        When the endpoint has no current registration.
    RequestTimeout
        When a wait runs out (a subclass of :class:`TimeoutError`).
    DeviceUnreachable
        When the transport reports the device unreachable.
    """

    def __init__(self, server: ProxyHost, endpoint: str) -> None:
        self._server = server
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return f"DeviceProxy({self.endpoint!r})"

    @property
    def registration(self) -> Registration:
        """The device's current registration."""
        reg = self._server.registrations.get(self.endpoint)
        if reg is None:
            raise DeviceNotRegistered(self.endpoint)
        return reg

    # -- operations ------------------------------------------------------------------------
    async def read(
        self, path: str | Path, *, accept: int | None = None, timeout: float | None = None
    ) -> Response:
        """Read (GET with an Accept; digest 5.1)."""
        p = Path.parse(path)
        if accept is None:
            accept = single_value_format(p)
            if accept is None:
                accept = multi_value_format(self.registration)
        return await self._request("read", aiocoap.GET, p, accept=accept, timeout=timeout)

    async def discover(self, path: str | Path, *, timeout: float | None = None) -> Response:
        """Discover (GET with Accept 40); the answer's links are in ``Response.links``."""
        return await self._request(
            "discover",
            aiocoap.GET,
            Path.parse(path),
            accept=ContentFormat.LINK_FORMAT,
            timeout=timeout,
        )

    async def write(
        self,
        path: str | Path,
        value_or_values: Value | Mapping[Path | str, Value],
        *,
        content_format: int | None = None,
        partial: bool = False,
        block_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Write: PUT (Replace) or, with ``partial=True``, POST (Partial Update).

        A single value goes as text/plain, or opaque (42) for bytes (the /5/0/0 push); a
        mapping goes as SenML CBOR (1.1+) or TLV (1.0). A payload longer than ``block_size``
        (16..1024, default 1024) is sent block-wise (Block1), with ``progress(bytes_acked,
        total)`` called after every acknowledged block and a ``block`` event per block.
        """
        p = Path.parse(path)
        fmt, payload = self._encode(p, value_or_values, content_format)
        code = aiocoap.POST if partial else aiocoap.PUT
        size = DEFAULT_BLOCK_SIZE if block_size is None else block_size
        szx = _block_szx(size)
        op = "write-partial" if partial else "write"
        if len(payload) <= size:
            resp = await self._request(
                op, code, p, payload=payload, content_format=fmt, timeout=timeout
            )
            if progress is not None and resp.ok:
                progress(len(payload), len(payload))
            return resp
        return await self._block1(op, code, p, payload, fmt, szx, progress, timeout)

    async def execute(
        self, path: str | Path, args: str | None = None, *, timeout: float | None = None
    ) -> Response:
        """Execute (POST, optional text/plain arguments such as ``0,1='x'``)."""
        payload = args.encode("utf-8") if args else b""
        return await self._request(
            "execute",
            aiocoap.POST,
            Path.parse(path),
            payload=payload,
            content_format=ContentFormat.TEXT if payload else None,
            timeout=timeout,
        )

    async def write_attributes(
        self,
        path: str | Path,
        *,
        pmin: int | None = None,
        pmax: int | None = None,
        gt: float | None = None,
        lt: float | None = None,
        st: float | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Write-Attributes (PUT with Uri-Query only, no payload; digest 5.2)."""
        query = [
            f"{name}={value}"
            for name, value in (("pmin", pmin), ("pmax", pmax), ("gt", gt), ("lt", lt), ("st", st))
            if value is not None
        ]
        return await self._request(
            "write-attributes", aiocoap.PUT, Path.parse(path), query=query, timeout=timeout
        )

    async def create(
        self,
        path: str | Path,
        values: Mapping[Path | str, Value],
        *,
        content_format: int | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Create (POST on /O; ``values`` keyed by full paths below it). 2.01 + ``location``."""
        p = Path.parse(path)
        fmt, payload = self._encode(p, values, content_format)
        return await self._request(
            "create", aiocoap.POST, p, payload=payload, content_format=fmt, timeout=timeout
        )

    async def delete(self, path: str | Path, *, timeout: float | None = None) -> Response:
        """Delete (DELETE /O/I)."""
        return await self._request("delete", aiocoap.DELETE, Path.parse(path), timeout=timeout)

    async def observe(
        self,
        path: str | Path,
        callback: Callable[[Response], None] | None = None,
        *,
        accept: int | None = None,
        timeout: float | None = None,
    ) -> Observation:
        """Observe (GET with Observe=0). The first answer is ``Observation.first``.

        ``callback`` is called with every later notification. Check ``Observation.active``:
        a device that does not accept the observation answers without an Observe option (or
        with an error code) and the observation is inactive from the start. Cancelling is
        reactive (see :mod:`labkit.server.observe`).
        """
        p = Path.parse(path)
        if accept is None:
            accept = single_value_format(p)
            if accept is None:
                accept = multi_value_format(self.registration)
        holder: dict[str, Any] = {}
        first = await self._request(
            "observe", aiocoap.GET, p, accept=accept, observe=True, timeout=timeout, holder=holder
        )
        server = self._server
        obs = Observation(
            endpoint=self.endpoint,
            path=p,
            first=first,
            request=holder.get("request"),
            sent_at=holder.get("sent_at", _rtt_now()),
            on_notification=server.observation_notified,
            on_end=server.observation_ended,
            on_callback_error=server.observation_callback_failed,
            callback=callback,
        )
        if obs.active:
            server.track_observation(holder["registration"], obs)
        return obs

    # -- machinery -------------------------------------------------------------------------
    def _encode(
        self,
        path: Path,
        value_or_values: Value | Mapping[Path | str, Value],
        content_format: int | None,
    ) -> tuple[int, bytes]:
        if isinstance(value_or_values, Mapping):
            values: dict[Path, Value] = {Path.parse(k): v for k, v in value_or_values.items()}
            fmt = content_format
            if fmt is None:
                fmt = multi_value_format(self.registration)
            return fmt, encode(fmt, path, values)
        value = value_or_values
        if content_format is None:
            if isinstance(value, bytes | bytearray | memoryview):
                # Opaque pushes (/5/0/0) go as application/octet-stream (pitfall 4).
                return ContentFormat.OPAQUE, bytes(value)
            single = single_value_format(path)
            content_format = single if single is not None else multi_value_format(self.registration)
        if content_format == ContentFormat.OPAQUE and isinstance(value, bytes | bytearray):
            return content_format, bytes(value)
        return content_format, encode(content_format, path, {path: value})

    def _segments(self, reg: Registration, path: Path) -> list[str]:
        root = str(reg.root_path or "/").strip("/")
        prefix = root.split("/") if root else []
        return prefix + path.segments

    @contextlib.asynccontextmanager
    async def _turn(self, timeout: float) -> AsyncIterator[Registration]:
        """Wait until the device may be sent a request, and hold its NSTART slot.

        Yields the current registration; if the device registers anew while we wait, the
        wait starts over on the new registration (whose lock is a fresh one).
        """
        server = self._server
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reg = self.registration
            if reg.queue_mode:
                reg = await server.wait_awake(self.endpoint, max(0.0, deadline - loop.time()))
            lock = server.lock_for(reg)
            try:
                await asyncio.wait_for(lock.acquire(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                server.emit(
                    "error",
                    device=self.endpoint,
                    detail=f"still busy with a previous request after {timeout} s",
                )
                raise RequestTimeout(
                    f"{self.endpoint}: still busy with a previous request after {timeout} s"
                ) from None
            if server.registrations.get(self.endpoint) is reg:
                break
            lock.release()  # replaced or gone while we waited: start over
        try:
            yield reg
        finally:
            lock.release()

    async def _request(
        self,
        op: str,
        code: Any,
        path: Path,
        *,
        payload: bytes = b"",
        content_format: int | None = None,
        accept: int | None = None,
        query: list[str] | None = None,
        observe: bool = False,
        timeout: float | None = None,
        holder: dict[str, Any] | None = None,
    ) -> Response:
        server = self._server
        timeout = server.request_timeout if timeout is None else timeout
        method = _METHOD_NAMES.get(code, str(code))
        async with self._turn(timeout) as reg:
            msg = aiocoap.Message(
                code=code,
                uri_path=self._segments(reg, path),
                payload=payload,
                transport_tuning=server.transport_tuning,
            )
            if content_format is not None:
                msg.opt.content_format = int(content_format)
            if accept is not None:
                msg.opt.accept = int(accept)
            if query:
                msg.opt.uri_query = query
            if observe:
                msg.opt.observe = 0
            msg.remote = reg.remote
            server.emit(
                "request",
                device=self.endpoint,
                path=str(path),
                method=method,
                bytes=len(payload),
                detail=op,
            )
            sent = _rtt_now()
            # Observations are clocked without aiocoap's block-wise layer: it holds the
            # observation only weakly, and LwM2M notifications are small.
            pr = server.coap_context.request(msg, handle_blockwise=not observe)
            if holder is not None:
                holder.update(request=pr, sent_at=sent, registration=reg)
            answer = await self._await(pr, timeout, op, path, method)
            resp = Response.from_message(answer, path, (_rtt_now() - sent) * 1000.0)
            server.record_response(self.endpoint, resp, method=method, detail=op)
            return resp

    async def _await(self, pr: Any, timeout: float, op: str, path: Path, method: str) -> Any:
        server = self._server
        # A request given up on is abandoned (labkit.coap_abandon): detached from aiocoap's
        # pipe before its future is cancelled, so a late answer never reaches it (aiocoap
        # #210: InvalidStateError) and it does not keep retransmitting.
        response = pr.response
        response.add_done_callback(_retrieve)
        try:
            return await response_within(pr, timeout)
        except (TimeoutError, aioerror.TimeoutError) as exc:
            server.emit(
                "error",
                device=self.endpoint,
                path=str(path),
                method=method,
                detail=f"{op}: no answer within {timeout} s ({type(exc).__name__})",
            )
            raise RequestTimeout(
                f"{self.endpoint}: {op} {path}: no answer within {timeout} s"
            ) from None
        except aioerror.Error as exc:  # ICMP unreachable, library shut down, ...
            server.emit(
                "error",
                device=self.endpoint,
                path=str(path),
                method=method,
                detail=f"{op}: {type(exc).__name__}: {exc}",
            )
            raise DeviceUnreachable(f"{self.endpoint}: {op} {path}: {exc}") from exc

    async def _block1(
        self,
        op: str,
        code: Any,
        path: Path,
        payload: bytes,
        fmt: int,
        szx: int,
        progress: Callable[[int, int], None] | None,
        timeout: float | None,
    ) -> Response:
        """Push ``payload`` with Block1 (RFC 7959 section 2.3), one CON per block.

        The device may lower the block size on any answer (late negotiation: the next block
        number is recomputed from the bytes it acknowledged), or answer 4.13 with a Block1
        option naming a smaller size (the same bytes are then sent again in smaller blocks).
        Any other non-2.31 answer before the last block ends the transfer and is returned.
        """
        server = self._server
        timeout = server.request_timeout if timeout is None else timeout
        total = len(payload)
        method = _METHOD_NAMES.get(code, str(code))
        clock = asyncio.get_running_loop().time  # (what _rtt_now reads, bound once)
        path_text = str(path)
        async with self._turn(timeout) as reg:
            server.emit(
                "request",
                device=self.endpoint,
                path=path_text,
                method=method,
                bytes=total,
                detail=f"{op} block-wise, {2 ** (szx + 4)} B blocks",
            )
            started = clock()
            offset = 0
            while True:
                size = 2 ** (szx + 4)
                num = offset // size
                chunk = payload[offset : offset + size]
                more = offset + len(chunk) < total
                msg = aiocoap.Message(
                    code=code,
                    uri_path=self._segments(reg, path),
                    payload=chunk,
                    content_format=int(fmt),
                    transport_tuning=server.transport_tuning,
                )
                msg.opt.block1 = BlockOption.BlockwiseTuple(num, more, szx)
                if num == 0:
                    msg.opt.size1 = total
                msg.remote = reg.remote
                sent = clock()
                pr = server.coap_context.request(msg, handle_blockwise=False)
                answer = await self._await(pr, timeout, op, path, method)
                rtt = (clock() - sent) * 1000.0
                acode = code_text(answer.code)
                ablock = answer.opt.block1
                server.emit(
                    "block",
                    device=self.endpoint,
                    path=path_text,
                    method=method,
                    code=acode,
                    block=num,
                    bytes=len(chunk),
                    rtt_ms=rtt,
                    detail=f"offset {offset}, {size} B blocks" + ("" if more else ", last"),
                )
                if acode == "4.13" and ablock is not None and ablock.size_exponent < szx:
                    # RFC 7959 2.9.3: the device wants smaller blocks; resend from here.
                    szx = ablock.size_exponent
                    continue
                if ablock is not None and ablock.block_number != num and acode == "2.31":
                    detail = f"block {ablock.block_number} acknowledged for {num}"
                    raise self._violation(path, acode, detail)
                if acode == "2.31" and more:
                    offset += len(chunk)
                    if ablock is not None and ablock.size_exponent < szx:
                        szx = ablock.size_exponent  # late negotiation (RFC 7959 2.5)
                    if progress is not None:
                        progress(offset, total)
                    continue
                if acode == "2.31":
                    raise self._violation(path, acode, "device asked for more after the last block")
                resp = Response.from_message(answer, path, (clock() - started) * 1000.0)
                if resp.ok:
                    offset += len(chunk)
                    if progress is not None:
                        progress(offset, total)
                    if more:
                        # A 2.xx without Block1 before the end: the device ignored Block1
                        # (aiocoap assumes it knows what it does; so do we, but record it).
                        server.emit(
                            "error",
                            device=self.endpoint,
                            path=path_text,
                            code=acode,
                            detail=f"device ended the Block1 transfer early at {offset}/{total}",
                        )
                server.record_response(
                    self.endpoint, resp, method=method, detail=f"{op}, {offset}/{total} B"
                )
                return resp

    def _violation(self, path: Path, code: str, detail: str) -> RequestFailed:
        self._server.emit("error", device=self.endpoint, path=str(path), code=code, detail=detail)
        return RequestFailed(code, path, detail=detail)
