"""A small asyncio HTTP/1.1 client for PULL downloads, with Range + If-Match resumption.

The simulated device downloads ``http://`` Package URIs with it, the way Anjay's HTTP
downloader does (digest 7.3):

* the first request is a plain ``GET``; a resumed one (after a dropped connection, or after a
  power cut with the offset and ETag persisted) sends ``Range: bytes=<offset>-`` and
  ``If-Match: <etag>``;
* ``206 Partial Content`` continues at the ``Content-Range`` start (a server may start earlier:
  the overlap is skipped; later is an error); ``200 OK`` restarts from byte 0 (the server
  ignored the Range); ``412 Precondition Failed`` means the image changed: restart from 0
  without If-Match; an ETag that differs from the stored one also restarts from 0;
* ``404`` -> Result 7 (Invalid URI), any other status -> Result 4 (Connection lost); a host
  that cannot be resolved, or a first connection refused (nothing listens there) -> 7;
* a connection that drops mid-body is resumed up to ``retries`` times (after ``retry_delay``
  seconds); then -> 4.

Every network wait is bounded by ``timeout`` (connect, each read, each write), the whole
download by ``deadline``. ``http://`` and ``https://`` (TLS through :mod:`ssl` with the
caller's ``ssl_context``: the lab's certificate, or the system's trust store; a certificate
that does not verify -> Result 4 and no retry), ``Content-Length`` or read-to-close bodies; no
redirects, no proxies.
The caller receives the body through a :class:`DownloadSink` in blocks of at most
``block_size`` bytes and decides what to keep (flash, RAM and fault checks live there).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

from labkit.lwm2m.objects import UpdateResult

__all__ = ["DownloadError", "DownloadSink", "http_download"]

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_MAX_HEAD = 16 * 1024


class DownloadError(Exception):
    """A PULL download failed; ``result`` is the Update Result to report."""

    def __init__(self, message: str, result: UpdateResult) -> None:
        super().__init__(message)
        self.result = result


class DownloadSink(Protocol):
    """Where a downloader delivers data (the device's firmware agent)."""

    @property
    def offset(self) -> int:
        """Bytes stored so far: where a resumed download continues."""

    etag: bytes | None  # validator of the stored bytes

    def begin(self, total: int | None, etag: bytes | None, offset: int) -> None:
        """A response starts delivering at ``offset`` (0 = from scratch); may raise."""

    def block(self, num: int, offset: int, data: bytes) -> None:
        """``data`` belongs at ``offset``; may raise :class:`DownloadError`."""


class _Dropped(Exception):
    """The connection ended before the body did (resumable)."""


async def http_download(
    uri: str,
    sink: DownloadSink,
    *,
    timeout: float = 10.0,
    block_size: int = 1024,
    retries: int = 3,
    retry_delay: float = 0.5,
    on_retry: Callable[[str], None] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    deadline: float | None = None,
) -> None:
    """Download ``uri`` into ``sink``, resuming from ``sink.offset`` (see the module docstring).

    ``deadline`` bounds the whole download (all attempts) in seconds: a server that drips a
    byte just inside each read timeout cannot keep the device in State 1 forever (Result 4).

    Raises
    ------
    DownloadError
        With Result 7 or 4 as described above (or whatever the sink raises).
    """
    parts = urlsplit(uri)
    secure = parts.scheme.lower() == "https"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        raise DownloadError(f"bad port in {uri!r}", UpdateResult.INVALID_URI) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"not an http URI: {uri!r}", UpdateResult.UNSUPPORTED_PROTOCOL)
    if secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    tls = ssl_context if secure else None
    host = parts.hostname
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if deadline is None:
        await _attempts(host, port, target, sink, timeout, block_size, retries, retry_delay,
                        on_retry, tls)
        return
    try:
        async with asyncio.timeout(deadline):
            await _attempts(host, port, target, sink, timeout, block_size, retries,
                            retry_delay, on_retry, tls)
    except TimeoutError:
        raise DownloadError(
            f"download not done within its deadline of {deadline:g} s (at byte {sink.offset})",
            UpdateResult.CONNECTION_LOST,
        ) from None


async def _attempts(
    host: str,
    port: int,
    target: str,
    sink: DownloadSink,
    timeout: float,
    block_size: int,
    retries: int,
    retry_delay: float,
    on_retry: Callable[[str], None] | None,
    tls: ssl.SSLContext | None,
) -> None:
    attempts = 0
    connected_once = False
    while True:
        try:
            await _one_request(host, port, target, sink, timeout, block_size, connected_once, tls)
            return
        except _Dropped as exc:
            connected_once = True
            attempts += 1
            if attempts > retries:
                raise DownloadError(
                    f"connection lost {attempts} times: {exc}", UpdateResult.CONNECTION_LOST
                ) from None
            if on_retry is not None:
                on_retry(f"resuming at byte {sink.offset}: {exc}")
            await asyncio.sleep(retry_delay)


async def _one_request(
    host: str,
    port: int,
    target: str,
    sink: DownloadSink,
    timeout: float,
    block_size: int,
    connected_once: bool,
    tls: ssl.SSLContext | None = None,
) -> None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls, ssl_handshake_timeout=timeout)
            if tls is not None
            else asyncio.open_connection(host, port),
            timeout,
        )
    except ssl.SSLError as exc:
        raise DownloadError(
            f"TLS with {host}:{port} failed: {exc}", UpdateResult.CONNECTION_LOST
        ) from None
    except TimeoutError:
        raise _Dropped("connect timed out") from None
    except ConnectionRefusedError:
        if connected_once:
            raise _Dropped("connection refused") from None
        raise DownloadError(f"nothing listens at {host}:{port}", UpdateResult.INVALID_URI) from None
    except socket.gaierror as exc:
        raise DownloadError(f"cannot resolve {host}: {exc}", UpdateResult.INVALID_URI) from None
    except OSError as exc:
        raise _Dropped(f"connect failed: {exc}") from None
    try:
        await _exchange(reader, writer, host, port, target, sink, timeout, block_size)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    port: int,
    target: str,
    sink: DownloadSink,
    timeout: float,
    block_size: int,
) -> None:
    offset = sink.offset
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines.append("User-Agent: labkit-sim")
    if offset > 0:
        lines.append(f"Range: bytes={offset}-")
        if sink.etag is not None:
            lines.append(f'If-Match: "{sink.etag.hex()}"')
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        await asyncio.wait_for(writer.drain(), timeout)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
        raise _Dropped(f"no response head ({type(exc).__name__})") from None
    except asyncio.LimitOverrunError:
        raise DownloadError("response head too large", UpdateResult.CONNECTION_LOST) from None
    status, headers = _parse_head(head)
    etag = _parse_etag(headers.get("etag"))
    length_text = headers.get("content-length")
    length = int(length_text) if length_text and length_text.isdigit() else None
    if status == 404:
        raise DownloadError("repository answered 404", UpdateResult.INVALID_URI)
    if status == 412:
        sink.etag = None  # the image changed: start over without If-Match
        sink.begin(None, None, 0)
        raise _Dropped("412 Precondition Failed: the image changed, restarting from 0")
    if status == 200:
        start, total = 0, length
    elif status == 206:
        match = _CONTENT_RANGE.fullmatch((headers.get("content-range") or "").strip())
        if match is None:
            raise DownloadError("206 without a usable Content-Range", UpdateResult.CONNECTION_LOST)
        start = int(match.group(1))
        total = None if match.group(3) == "*" else int(match.group(3))
        if start > offset:
            raise DownloadError(
                f"206 starts at {start}, after byte {offset}", UpdateResult.CONNECTION_LOST
            )
    else:
        raise DownloadError(f"repository answered {status}", UpdateResult.CONNECTION_LOST)
    if status == 206 and sink.etag is not None and etag is not None and etag != sink.etag:
        # a server that ignored If-Match but names another ETag: the stored bytes are stale
        sink.begin(None, None, 0)
        raise _Dropped("the ETag changed: restarting from 0")
    keep_from = offset if status == 206 else 0
    sink.begin(total, etag, keep_from)
    remaining = length
    pos = start
    num = keep_from // block_size if block_size else 0
    buffered = bytearray()
    while remaining is None or remaining > 0:
        want = block_size if remaining is None else min(block_size, remaining)
        try:
            chunk = await asyncio.wait_for(reader.read(want), timeout)
        except (TimeoutError, ConnectionError) as exc:
            chunk, problem = b"", f"{type(exc).__name__} at byte {pos}"
        else:
            problem = f"connection closed at byte {pos}"
        if not chunk:
            if remaining is None and problem.startswith("connection closed"):
                break
            if buffered:  # keep what arrived: the resumed request starts right after it
                sink.block(num, sink.offset, bytes(buffered))
            raise _Dropped(problem)
        if remaining is not None:
            remaining -= len(chunk)
        # the overlap before the stored offset is skipped (Anjay does the same)
        if pos + len(chunk) <= keep_from:
            pos += len(chunk)
            continue
        if pos < keep_from:
            chunk = chunk[keep_from - pos :]
            pos = keep_from
        buffered += chunk
        pos += len(chunk)
        while len(buffered) >= block_size or (buffered and remaining == 0):
            piece = bytes(buffered[:block_size])
            del buffered[:block_size]
            sink.block(num, sink.offset, piece)
            num += 1
    if buffered:
        sink.block(num, sink.offset, bytes(buffered))


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        raise DownloadError("undecodable response head", UpdateResult.CONNECTION_LOST) from None
    status_line, *rest = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise DownloadError(f"bad status line {status_line!r}", UpdateResult.CONNECTION_LOST)
    headers: dict[str, str] = {}
    for line in rest:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _parse_etag(value: str | None) -> bytes | None:
    if not value:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    try:
        return bytes.fromhex(text)
    except ValueError:
        return text.encode("utf-8")
