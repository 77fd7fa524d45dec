"""The firmware repository: images served over CoAP (Block2) and HTTP (Range), with every block
or range logged as an event, and faults injected on request.

A device told to PULL (``PUT /5/0/1`` with a URI) downloads from here. :class:`FirmwareRepository`
owns two real servers on loopback: an aiocoap server context (UDP, bound without
``SO_REUSEPORT`` by :func:`labkit.coap.open_udp_context`, so its port is its own) and a small
asyncio HTTP/1.1 server. Both serve only what was added to the repository, by name, from
memory: a request's path is matched against the names in the store and is never used to open
a file (no path traversal; DESIGN.md section 8).

CoAP (RFC 7252, RFC 7959; spec section 7.2)
    ``GET /fw/<name>``. The resource does the Block2 slicing itself
    (``needs_blockwise_assembly()`` returns False) instead of aiocoap's ``Block2Cache``, because the
    lab needs per-block control: every block served is one ``block`` event and is counted, a
    block can be dropped for a fault, and a client may start at any block number (resumption
    after an interruption, as Anjay does) — aiocoap's cache answers 4.08 for a first request with
    NUM > 0. The block size is the one the client asks for (SZX 0..6 = 16..1024 bytes); a
    request without Block2 gets the whole image if it fits 1024 bytes, else block 0 at 1024.
    Every block carries ETag (first 8 bytes of the image's SHA-256) and Size2 (image size).
    Unknown name -> 4.04, a block past the end or SZX 7 (BERT, not for UDP) -> 4.00, any method
    but GET -> 4.05; each also an ``error`` event.

HTTP/1.1 (RFC 9110, RFC 9112; spec section 7.3)
    ``GET``/``HEAD /fw/<name>`` with a quoted ``ETag``, ``Content-Length`` and
    ``Accept-Ranges: bytes``. ``Range: bytes=a-b``, ``a-`` or ``-n`` -> 206 with ``Content-Range``;
    an unsatisfiable range -> 416 (``Content-Range: bytes */size``); ``If-Match`` naming no current
    ETag -> 412; ``If-Range`` with a stale ETag -> the whole image (200). A Range header that
    cannot be parsed, or asks for several ranges, is ignored (200), as RFC 9110 section 14.2
    allows. Unknown -> 404, other methods -> 405, a malformed request -> 400, a header block over
    ``max_header_bytes`` -> 431; 400/405/431 close the connection. Connections are kept alive;
    each read waits at most ``read_timeout`` seconds, each write at most ``write_timeout``.

Faults for resumption experiments (:meth:`FirmwareRepository.drop_after`)
    After N CoAP blocks (or N body bytes) have been served for an image, the next CoAP request
    for it gets no answer: aiocoap acknowledges a CON request with an empty ACK (RFC 7252
    section 5.2.2) and the response never follows, so the client's exchange times out, exactly
    as when the repository's uplink dies. On HTTP the connection is closed after exactly N body
    bytes. Each interruption is a ``fault`` event; after ``times`` interruptions the image is
    served normally again, so a resumed download completes.

Secure downloads (issue 15)
    With ``coaps_port`` the same CoAP resource is also served over DTLS-PSK (:mod:`labkit.dtls`,
    the keys of ``psk_store``: the server's table), a ``security`` event per handshake; with
    ``https_port`` the same HTTP server also listens with TLS (:mod:`ssl`, the lab certificate
    of :mod:`labkit.tls`, made in ``data/keys`` on first use). :meth:`coaps_uri` and
    :meth:`https_uri` give the Package URIs.

Events (``source="repo"``): ``block`` (``protocol="coap"``, ``path``, ``block``, ``bytes``,
``code``); ``request`` and ``response`` for HTTP (``method``, ``path``, ``code``, ``bytes`` = body
bytes actually sent, ``detail`` = Range / Content-Range); ``error`` for bad requests (every 4.xx
and 4xx except 412); ``fault`` for injected interruptions. ``detail`` names the client address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from labkit.coap import local_port, open_udp_context
from labkit.events import Event, EventSink, discard

log = logging.getLogger(__name__)

#: Allowed image names: they are the last URI path segment, nothing else.
NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
PREFIX = "fw"  # images live under /fw/<name> on both protocols
MAX_SZX = 6  # 1024-byte blocks; SZX 7 is BERT (CoAP over TCP only, RFC 8323)
CONTENT_FORMAT_OCTET_STREAM = 42

_REASONS = {
    200: "OK",
    206: "Partial Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
}
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION_RE = re.compile(r"HTTP/1\.[01]")
_RANGE_RE = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")
_CHUNK = 64 * 1024


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"invalid image name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    data: bytes
    etag: bytes  # first 8 bytes of SHA-256

    @property
    def etag_http(self) -> str:
        return f'"{self.etag.hex()}"'


@dataclass(slots=True)
class _Drop:
    """One armed interruption rule (see :meth:`FirmwareRepository.drop_after`)."""

    name: str | None
    blocks: int | None
    nbytes: int | None
    times: int
    coap_blocks: int = 0
    coap_bytes: int = 0
    http_bytes: int = 0

    def matches(self, name: str) -> bool:
        return self.name is None or self.name == name


class _HttpError(Exception):
    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


class FirmwareRepository:
    """Serves firmware images over CoAP and HTTP on loopback and records what it served.

    Parameters
    ----------
    host
        Address both servers bind to (loopback by default; DESIGN.md section 6).
    coap_port, http_port
        UDP and TCP ports; 0 picks an ephemeral port (see :attr:`coap_port`, :attr:`http_port`
        after :meth:`start`).
    on_event
        Where events go (an :data:`~labkit.events.EventSink`).
    clock
        The lab's clock for event timestamps.
    read_timeout, write_timeout
        Bounds (seconds) on each HTTP read of a request head and each write of a response.
    max_header_bytes
        Largest HTTP request head accepted (431 above it).

    Examples
    --------
    >>> repo = FirmwareRepository()                        # doctest: +SKIP
    >>> await repo.start()                                 # doctest: +SKIP
    >>> repo.add("app-1.2.3.bin", build_image(version="1.2.3", size=200_000))  # doctest: +SKIP
    '/fw/app-1.2.3.bin'
    >>> repo.coap_uri("app-1.2.3.bin")                     # doctest: +SKIP
    'coap://127.0.0.1:40123/fw/app-1.2.3.bin'
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        coap_port: int = 0,
        http_port: int = 0,
        on_event: EventSink = discard,
        clock: Callable[[], float] = time.time,
        read_timeout: float = 10.0,
        write_timeout: float = 30.0,
        max_header_bytes: int = 8192,
        psk_store: Any = None,
        coaps_port: int | None = None,
        https_port: int | None = None,
        tls_keys_dir: str | Path | None = None,
    ) -> None:
        self.host = host
        self.psk_store = psk_store
        self._want_coaps_port = coaps_port
        self._want_https_port = https_port
        self.tls_keys_dir = tls_keys_dir
        self._coaps_port: int | None = None
        self._https_server: asyncio.Server | None = None
        self._https_port: int | None = None
        self._want_coap_port = coap_port
        self._want_http_port = http_port
        self._on_event = on_event
        self._clock = clock
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.max_header_bytes = max_header_bytes
        self._store: dict[str, _Entry] = {}
        self._drops: list[_Drop] = []
        self._blocks: Counter[str] = Counter()
        self._bytes: Counter[tuple[str, str]] = Counter()
        self._coap_ctx: Any = None
        self._http_server: asyncio.Server | None = None
        self._http_tasks: set[asyncio.Task[Any]] = set()
        self._held: set[asyncio.Future[Any]] = set()
        self._coap_port: int | None = None
        self._http_port: int | None = None

    # ----------------------------------------------------------------------------------------
    # life cycle

    async def start(self) -> None:
        """Bind and start both servers (bounded: 10 s)."""
        if self._coap_ctx is not None:
            raise RuntimeError("the repository is already started")
        self._coap_ctx = await asyncio.wait_for(
            open_udp_context(
                _CoapRoot(self), self.host, self._want_coap_port, loggername="coap-repository"
            ),
            10,
        )
        self._coap_port = local_port(self._coap_ctx)
        if self._coap_port is None:  # pragma: no cover - a fresh context always has its socket
            raise RuntimeError("could not find the CoAP server's UDP port")
        try:
            self._http_server = await asyncio.wait_for(
                asyncio.start_server(
                    self._http_connection,
                    self.host,
                    self._want_http_port,
                    limit=self.max_header_bytes,
                ),
                10,
            )
        except BaseException:
            await self._shutdown_coap()
            raise
        self._http_port = self._http_server.sockets[0].getsockname()[1]
        try:
            await self._start_secure()
        except BaseException:
            await self.stop()
            raise
        log.debug("repository on coap %s and http %s", self._coap_port, self._http_port)

    async def _start_secure(self) -> None:
        if self._want_coaps_port is not None:
            from labkit.dtls import PskStore, add_dtls_transport, security_event_fields

            def on_security(report: Any) -> None:
                self._emit(**security_event_fields(report))

            dtls = await asyncio.wait_for(
                add_dtls_transport(
                    self._coap_ctx,
                    self.host,
                    self._want_coaps_port,
                    psk_store=self.psk_store if self.psk_store is not None else PskStore(),
                    on_security=on_security,
                ),
                10,
            )
            self._coaps_port = dtls.local_address[1]
        if self._want_https_port is not None:
            from labkit.tls import server_context

            self._https_server = await asyncio.wait_for(
                asyncio.start_server(
                    self._http_connection,
                    self.host,
                    self._want_https_port,
                    limit=self.max_header_bytes,
                    ssl=server_context(self.tls_keys_dir),
                    ssl_handshake_timeout=self.read_timeout,
                ),
                10,
            )
            self._https_port = self._https_server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close both servers and every open HTTP connection (bounded)."""
        if self._https_server is not None:
            self._https_server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._https_server.wait_closed(), 5)
            self._https_server = None
        if self._http_server is not None:
            self._http_server.close()
            for task in list(self._http_tasks):
                task.cancel()
            if self._http_tasks:
                await asyncio.wait(self._http_tasks, timeout=5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._http_server.wait_closed(), 5)
            self._http_server = None
        await self._shutdown_coap()

    async def _shutdown_coap(self) -> None:
        for future in list(self._held):
            future.cancel()
        await asyncio.sleep(0)  # let the held render tasks unwind
        if self._coap_ctx is not None:
            ctx, self._coap_ctx = self._coap_ctx, None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.shutdown(), 5)

    async def __aenter__(self) -> FirmwareRepository:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def coap_port(self) -> int:
        if self._coap_port is None:
            raise RuntimeError("the repository is not started")
        return self._coap_port

    @property
    def http_port(self) -> int:
        if self._http_port is None:
            raise RuntimeError("the repository is not started")
        return self._http_port

    # ----------------------------------------------------------------------------------------
    # the store

    def add(self, name: str, data: bytes) -> str:
        """Serve ``data`` as ``name``; return its path (``/fw/<name>``).

        Raises ValueError for a name outside ``[A-Za-z0-9._-]+`` or one already added (use
        :meth:`replace` to change an image).
        """
        _check_name(name)
        if name in self._store:
            raise ValueError(f"{name!r} is already in the repository; use replace()")
        self._store[name] = _entry(name, data)
        return self.path(name)

    def add_file(self, path: Path | str, name: str | None = None) -> str:
        """Read a file now and serve its bytes as ``name`` (default: the file's name)."""
        path = Path(path)
        return self.add(name if name is not None else path.name, path.read_bytes())

    def replace(self, name: str, data: bytes) -> str:
        """Swap the bytes served as ``name`` (a new ETag: downloads in progress notice)."""
        if name not in self._store:
            raise KeyError(name)
        self._store[name] = _entry(name, data)
        return self.path(name)

    def remove(self, name: str) -> None:
        """Stop serving ``name`` (KeyError if it is not served)."""
        del self._store[name]

    def names(self) -> list[str]:
        """The names served, sorted."""
        return sorted(self._store)

    def __contains__(self, name: object) -> bool:
        return name in self._store

    def data(self, name: str) -> bytes:
        return self._store[name].data

    def etag(self, name: str) -> bytes:
        """The image's ETag: the first 8 bytes of its SHA-256 (HTTP sends it as quoted hex)."""
        return self._store[name].etag

    @staticmethod
    def path(name: str) -> str:
        return f"/{PREFIX}/{_check_name(name)}"

    def coap_uri(self, name: str) -> str:
        return f"coap://{_uri_host(self.host)}:{self.coap_port}{self.path(name)}"

    def http_uri(self, name: str) -> str:
        return f"http://{_uri_host(self.host)}:{self.http_port}{self.path(name)}"

    @property
    def coaps_port(self) -> int | None:
        """The DTLS port (None unless started with ``coaps_port``)."""
        return self._coaps_port

    @property
    def https_port(self) -> int | None:
        """The HTTPS port (None unless started with ``https_port``)."""
        return self._https_port

    def coaps_uri(self, name: str) -> str:
        if self._coaps_port is None:
            raise RuntimeError("the repository does not serve coaps://")
        return f"coaps://{_uri_host(self.host)}:{self._coaps_port}{self.path(name)}"

    def https_uri(self, name: str) -> str:
        if self._https_port is None:
            raise RuntimeError("the repository does not serve https://")
        return f"https://{_uri_host(self.host)}:{self._https_port}{self.path(name)}"

    def __repr__(self) -> str:
        where = (
            f"coap={self._coap_port} http={self._http_port}"
            if self._coap_port is not None
            else "not started"
        )
        return f"<FirmwareRepository {self.host} {where}, {len(self._store)} image(s)>"

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{escape(str(cell))}</td>"
                for cell in (
                    name,
                    len(entry.data),
                    entry.etag.hex(),
                    self._blocks[name],
                    self._bytes[(name, "coap")],
                    self._bytes[(name, "http")],
                )
            )
            + "</tr>"
            for name, entry in sorted(self._store.items())
        )
        head = "".join(
            f"<th>{h}</th>"
            for h in ("image", "bytes", "ETag", "CoAP blocks", "CoAP bytes", "HTTP bytes")
        )
        return f"<p>{escape(repr(self))}</p><table><tr>{head}</tr>{rows}</table>"

    # ----------------------------------------------------------------------------------------
    # faults and counters

    def drop_after(
        self,
        name: str | None = None,
        *,
        blocks: int | None = None,
        bytes: int | None = None,  # the event table's word; shadows the builtin here only
        times: int = 1,
    ) -> None:
        """Interrupt downloads of ``name`` (None: any image) after ``blocks`` CoAP blocks or
        ``bytes`` body bytes, ``times`` times; then serve normally.

        ``blocks`` counts CoAP blocks: the request after the N-th block gets no answer.
        ``bytes`` counts body bytes on both protocols separately: CoAP stops answering once N
        bytes were served, HTTP closes the connection after exactly N body bytes. Counting
        restarts after each interruption.
        """
        if name is not None:
            _check_name(name)
        if blocks is None and bytes is None:
            raise ValueError("drop_after needs blocks= or bytes=")
        if (blocks is not None and blocks < 0) or (bytes is not None and bytes < 0):
            raise ValueError("blocks and bytes must be >= 0")
        if times < 1:
            raise ValueError("times must be >= 1")
        self._drops.append(_Drop(name, blocks, bytes, times))

    def clear_faults(self) -> None:
        """Forget every armed :meth:`drop_after` rule."""
        self._drops.clear()

    def served_blocks(self, name: str) -> int:
        """CoAP blocks served for ``name`` since the repository was created."""
        return self._blocks[name]

    def served_bytes(self, name: str, protocol: str | None = None) -> int:
        """Body bytes served for ``name`` over ``protocol`` ("coap", "http", or None: both)."""
        if protocol is None:
            return self._bytes[(name, "coap")] + self._bytes[(name, "http")]
        if protocol not in ("coap", "http"):
            raise ValueError(f"protocol must be 'coap' or 'http', not {protocol!r}")
        return self._bytes[(name, protocol)]

    def _coap_should_drop(self, name: str) -> _Drop | None:
        for rule in self._drops:
            if not rule.matches(name):
                continue
            hit = (rule.blocks is not None and rule.coap_blocks >= rule.blocks) or (
                rule.nbytes is not None and rule.coap_bytes >= rule.nbytes
            )
            if hit:
                self._spend(rule)
                return rule
        return None

    def _coap_count(self, name: str, size: int) -> None:
        self._blocks[name] += 1
        self._bytes[(name, "coap")] += size
        for rule in self._drops:
            if rule.matches(name):
                rule.coap_blocks += 1
                rule.coap_bytes += size

    def _http_allowance(self, name: str, length: int) -> int | None:
        """How many of ``length`` body bytes may go out before a cut (None: no cut)."""
        for rule in self._drops:
            if rule.matches(name) and rule.nbytes is not None:
                left = rule.nbytes - rule.http_bytes
                if length > left:
                    self._spend(rule)
                    return max(left, 0)
        for rule in self._drops:
            if rule.matches(name) and rule.nbytes is not None:
                rule.http_bytes += length
        return None

    def _spend(self, rule: _Drop) -> None:
        rule.times -= 1
        rule.coap_blocks = rule.coap_bytes = rule.http_bytes = 0
        if rule.times <= 0:
            self._drops.remove(rule)

    async def _hold(self) -> Any:
        """Wait until :meth:`stop`: a request that is never answered.

        (A response carrying No-Response, RFC 7967, would do the same on the wire, but aiocoap
        0.4.17 turns it into an empty ACK through a deprecated code path.)
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._held.add(future)
        try:
            return await future
        finally:
            self._held.discard(future)

    def _emit(self, kind: str, **fields: Any) -> None:
        try:
            self._on_event(Event(ts=self._clock(), source="repo", kind=kind, **fields))
        except Exception:  # a broken sink must not take the repository down
            log.exception("event sink failed")

    # ----------------------------------------------------------------------------------------
    # CoAP

    async def _coap_render(self, request: Any) -> aiocoap.Message:
        segments = list(request.opt.uri_path)
        path = "/" + "/".join(segments)
        peer = _coap_peer(request)
        if request.code != Code.GET:
            return self._coap_error(
                Code.METHOD_NOT_ALLOWED,
                path,
                peer,
                f"{request.code} not allowed; use GET",
                method=str(request.code.name),
            )
        entry = None
        if len(segments) == 2 and segments[0] == PREFIX:
            entry = self._store.get(segments[1])
        if entry is None:
            return self._coap_error(Code.NOT_FOUND, path, peer, "no such image")

        data = entry.data
        total = len(data)
        block2 = request.opt.block2
        if block2 is None:
            szx = min(MAX_SZX, request.remote.maximum_block_size_exp)
            num = 0
            whole = total <= 1 << (MAX_SZX + 4)
        else:
            num, szx, whole = block2.block_number, block2.size_exponent, False
            if szx > MAX_SZX:
                return self._coap_error(
                    Code.BAD_REQUEST, path, peer, "SZX 7 (BERT) is not for CoAP over UDP"
                )
        size = 1 << (szx + 4)
        start = num * size
        if not whole and start >= total and not (total == 0 and num == 0):
            return self._coap_error(
                Code.BAD_REQUEST, path, peer, f"block {num} of {size} bytes is past the end"
            )

        if self._coap_should_drop(entry.name) is not None:
            self._emit(
                "fault",
                protocol="coap",
                path=path,
                block=num,
                detail=f"drop_after: request for block {num} from {peer} left unanswered",
            )
            await self._hold()  # never answered; cancelled by stop()

        if whole:
            chunk, option = data, None
        else:
            chunk = data[start : start + size]
            option = (num, start + size < total, szx)
        response = aiocoap.Message(
            code=Code.CONTENT,
            payload=chunk,
            etag=entry.etag,
            size2=total,
            content_format=CONTENT_FORMAT_OCTET_STREAM,
        )
        if option is not None:
            response.opt.block2 = BlockOption.BlockwiseTuple(*option)
        self._coap_count(entry.name, len(chunk))
        self._emit(
            "block",
            protocol="coap",
            method="GET",
            path=path,
            code=Code.CONTENT.dotted,
            block=num,
            bytes=len(chunk),
            detail=f"size={size if option else total} more={bool(option and option[1])} "
            f"from {peer}",
        )
        return response

    def _coap_error(
        self, code: Code, path: str, peer: str, message: str, *, method: str = "GET"
    ) -> aiocoap.Message:
        self._emit(
            "error",
            protocol="coap",
            method=method,
            path=path[:200],
            code=code.dotted,
            detail=f"{message} (from {peer})",
        )
        return aiocoap.Message(code=code, payload=message.encode(), content_format=0)

    # ----------------------------------------------------------------------------------------
    # HTTP

    async def _http_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._http_tasks.add(task)
        peer = _http_peer(writer)
        try:
            while await self._http_exchange(reader, writer, peer):
                pass
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception:  # a bug must cost one connection, never the server
            log.exception("HTTP connection from %s failed", peer)
        finally:
            self._http_tasks.discard(task)
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1)
            except Exception:
                writer.transport.abort()

    async def _http_exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        """Serve one request; return whether the connection stays open."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                await self._http_fail(writer, peer, "?", _HttpError(400, "incomplete request"))
            return False
        except asyncio.LimitOverrunError:
            await self._http_fail(writer, peer, "?", _HttpError(431, "request head too large"))
            await _discard_input(reader)
            return False
        except TimeoutError:
            return False  # idle keep-alive connection, or a client that stopped mid-head

        method, target = "?", "?"
        try:
            method, target, version, headers = _parse_head(head)
            self._emit(
                "request",
                protocol="http",
                method=method,
                path=target[:200],
                detail=_join_detail(headers.get("range"), f"from {peer}"),
            )
            if method not in ("GET", "HEAD"):
                raise _HttpError(405, f"{method} not allowed; use GET or HEAD", close=True)
            if headers.get("content-length", "0").strip() != "0" or "transfer-encoding" in headers:
                raise _HttpError(400, "a GET carries no body", close=True)
            keep_alive = _keep_alive(version, headers)
            entry = self._http_lookup(target)
            return await self._http_serve(writer, peer, method, target, headers, entry, keep_alive)
        except _HttpError as exc:
            await self._http_fail(writer, peer, target, exc, method=method)
            keep = not exc.close and exc.status != 400
            if not keep:
                await _discard_input(reader)
            return keep

    def _http_lookup(self, target: str) -> _Entry:
        if target.startswith(("http://", "https://")):
            target = urlsplit(target).path or "/"
        path = target.split("?", 1)[0].split("#", 1)[0]
        prefix = f"/{PREFIX}/"
        if not path.startswith(prefix):
            raise _HttpError(404, "no such image")
        name = path[len(prefix) :]
        if "%" in name:
            try:
                name = unquote(name, errors="strict")
            except UnicodeDecodeError:
                raise _HttpError(404, "no such image") from None
        # only names that were added are served; the path never reaches the file system
        entry = self._store.get(name) if NAME_RE.fullmatch(name) else None
        if entry is None:
            raise _HttpError(404, "no such image")
        return entry

    async def _http_serve(
        self,
        writer: asyncio.StreamWriter,
        peer: str,
        method: str,
        target: str,
        headers: dict[str, str],
        entry: _Entry,
        keep_alive: bool,
    ) -> bool:
        data = entry.data
        total = len(data)
        if_match = headers.get("if-match")
        if if_match is not None and not _etag_matches(if_match, entry.etag_http):
            raise _HttpError(412, f"If-Match {if_match.strip()} is not {entry.etag_http}")

        status, start, end = 200, 0, total  # end exclusive
        range_header = headers.get("range")
        if_range = headers.get("if-range")
        if range_header is not None and (if_range is None or if_range.strip() == entry.etag_http):
            wanted = _parse_range(range_header, total)
            if isinstance(wanted, str):
                raise _HttpError(416, f"range {range_header.strip()} outside 0..{total - 1}")
            if wanted is not None:
                status, start, end = 206, wanted[0], wanted[1]

        out = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(end - start),
            "ETag": entry.etag_http,
            "Accept-Ranges": "bytes",
        }
        if status == 206:
            out["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
        body = data[start:end] if method == "GET" else b""
        allowed = self._http_allowance(entry.name, len(body)) if body else None
        # a cut is not announced (no "Connection: close"): the link just dies mid-body
        await self._http_write_head(writer, status, out, keep_alive)
        sent = await self._http_write_body(writer, body if allowed is None else body[:allowed])
        self._bytes[(entry.name, "http")] += sent
        self._emit(
            "response",
            protocol="http",
            method=method,
            path=target[:200],
            code=str(status),
            bytes=sent,
            detail=_join_detail(out.get("Content-Range"), f"to {peer}"),
        )
        if allowed is not None:
            self._emit(
                "fault",
                protocol="http",
                path=target[:200],
                bytes=sent,
                detail=f"drop_after: connection to {peer} closed after {sent} body bytes",
            )
            return False
        return keep_alive

    async def _http_fail(
        self,
        writer: asyncio.StreamWriter,
        peer: str,
        target: str,
        exc: _HttpError,
        *,
        method: str | None = None,
    ) -> None:
        status = exc.status
        body = f"{status} {_REASONS[status]}: {exc}\n".encode()
        extra = {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))}
        if status == 405:
            extra["Allow"] = "GET, HEAD"
        if status == 416:
            with contextlib.suppress(Exception):
                extra["Content-Range"] = f"bytes */{len(self._http_lookup(target).data)}"
        close = exc.close or status in (400, 431)
        if status != 412:
            self._emit(
                "error",
                protocol="http",
                method=method if method != "?" else None,
                path=target[:200],
                code=str(status),
                detail=f"{exc} (from {peer})",
            )
        with contextlib.suppress(ConnectionError, TimeoutError):
            await self._http_write_head(writer, status, extra, not close)
            sent = await self._http_write_body(writer, b"" if method == "HEAD" else body)
            self._emit(
                "response",
                protocol="http",
                method=method if method != "?" else None,
                path=target[:200],
                code=str(status),
                bytes=sent,
                detail=f"to {peer}",
            )

    async def _http_write_head(
        self, writer: asyncio.StreamWriter, status: int, headers: dict[str, str], keep: bool
    ) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS[status]}"]
        lines.append(f"Date: {formatdate(self._clock(), usegmt=True)}")
        lines.append("Server: labkit-repo")
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        lines.append("Connection: keep-alive" if keep else "Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await asyncio.wait_for(writer.drain(), self.write_timeout)

    async def _http_write_body(self, writer: asyncio.StreamWriter, body: bytes) -> int:
        sent = 0
        view = memoryview(body)
        while sent < len(body):
            piece = view[sent : sent + _CHUNK]
            writer.write(piece)
            await asyncio.wait_for(writer.drain(), self.write_timeout)
            sent += len(piece)
        return sent


class _CoapRoot(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    """The whole CoAP site: one path-capable resource, so every request (also to unknown
    paths) reaches the repository and is answered and logged by it."""

    def __init__(self, repo: FirmwareRepository) -> None:
        super().__init__()
        self._repo = repo

    async def needs_blockwise_assembly(self, request: Any) -> bool:
        return False  # we slice Block2 ourselves (module docstring)

    async def render(self, request: Any) -> aiocoap.Message:
        response = await self._repo._coap_render(request)  # noqa: SLF001 - the repository's own resource
        if response.opt.no_response is None:
            response.opt.no_response = request.opt.no_response
        return response


# --------------------------------------------------------------------------------------------
# helpers


def _entry(name: str, data: bytes) -> _Entry:
    data = bytes(data)
    return _Entry(name, data, hashlib.sha256(data).digest()[:8])


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _coap_peer(request: Any) -> str:
    try:
        return str(request.remote.hostinfo)
    except Exception:
        return "?"


def _http_peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "?"


async def _discard_input(reader: asyncio.StreamReader, limit: int = 1 << 20) -> None:
    """Read and drop what the client already sent (at most ``limit`` bytes, ~0.2 s).

    Closing a TCP socket with unread input makes the kernel send a reset, which can destroy
    the error response before the client reads it.
    """
    seen = 0
    with contextlib.suppress(Exception):
        while seen < limit:
            chunk = await asyncio.wait_for(reader.read(65536), 0.2)
            if not chunk:
                break
            seen += len(chunk)


def _join_detail(*parts: str | None) -> str:
    return " ".join(p.strip() for p in parts if p)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Request line and headers of an HTTP/1.x request head (``_HttpError`` 400 if malformed)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise _HttpError(400, "request head is not ASCII") from None
    lines = text.split("\r\n")
    while lines and lines[0] == "":  # RFC 9112 section 2.2: ignore leading empty lines
        lines.pop(0)
    if not lines:
        raise _HttpError(400, "empty request")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN_RE.fullmatch(parts[0]) or not parts[1]:
        raise _HttpError(400, "malformed request line")
    method, target, version = parts
    if not _VERSION_RE.fullmatch(version):
        raise _HttpError(400, f"unsupported protocol version {version[:20]!r}")
    if not (target.startswith("/") or target.startswith(("http://", "https://"))):
        raise _HttpError(400, "malformed request target")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN_RE.fullmatch(name):
            raise _HttpError(400, "malformed header line")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if len(lines) > 100:
        raise _HttpError(431, "too many header lines", close=True)
    return method, target, version, headers


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def _etag_matches(if_match: str, etag: str) -> bool:
    """RFC 9110 section 13.1.1: ``*`` or a strong match against one of the listed tags."""
    tags = [t.strip() for t in if_match.split(",")]
    return "*" in tags or etag in tags


def _parse_range(header: str, total: int) -> tuple[int, int] | str | None:
    """``(start, end_exclusive)``, ``"unsatisfiable"``, or None to ignore the header.

    Single ``bytes=`` ranges only; several ranges, other units or bad syntax are ignored
    (RFC 9110 section 14.2 lets a server ignore Range). ``a-b`` with ``b < a`` is reported
    unsatisfiable rather than ignored, which makes a client's bug visible in the event log.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE_RE.fullmatch(spec)
    if match is None or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = _position(first)
        end = _position(last) + 1 if last else total
        if start >= total or end <= start:
            return "unsatisfiable"
        return start, min(end, total)
    suffix = _position(last)
    if suffix == 0 or total == 0:
        return "unsatisfiable"
    return max(total - suffix, 0), total


_MAX_POSITION = 10**18


def _position(digits: str) -> int:
    """A byte position of a Range; any number past 10**18 (thousands of digits: Python's
    ``int()`` refuses more than 4,300 of them) counts as 10**18, beyond every image."""
    significant = digits.lstrip("0")
    if len(significant) > 18:
        return _MAX_POSITION
    return int(significant or "0")
