"""The firmware repository over real UDP (CoAP Block2) and TCP (HTTP Range) on 127.0.0.1.

Every test runs its own event loop with ``asyncio.run`` and bounds every network await.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import http.client
import io
import math
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiocoap
import pytest

from labkit.events import Event
from labkit.repo.images import build_image
from labkit.repo.repository import FirmwareRepository

T = TypeVar("T")
KIB = 1024
IMAGE = bytes(hashlib.shake_256(b"repo-test-image").digest(200 * KIB))
STEP = 5.0  # seconds allowed for one exchange on loopback


def run(scenario: Callable[..., Awaitable[T]], *, timeout: float = 90) -> T:
    """Start a repository, run ``scenario(repo, events)`` and stop it, all bounded."""

    async def main() -> T:
        events: list[Event] = []
        repo = FirmwareRepository(on_event=events.append, read_timeout=2.0)
        await repo.start()
        try:
            return await asyncio.wait_for(scenario(repo, events), timeout)
        finally:
            await repo.stop()

    return asyncio.run(main())


# --------------------------------------------------------------------------------------------
# CoAP helpers


async def coap_block(
    ctx: Any, uri: str, num: int, szx: int, *, timeout: float = STEP
) -> aiocoap.Message:
    request = aiocoap.Message(code=aiocoap.GET, uri=uri, block2=(num, False, szx))
    return await asyncio.wait_for(ctx.request(request, handle_blockwise=False).response, timeout)


async def coap_fetch(ctx: Any, uri: str, szx: int, *, first: int = 0) -> tuple[bytes, list[Any]]:
    """Fetch block by block from block ``first``; return the bytes and every response."""
    parts: list[bytes] = []
    responses: list[Any] = []
    num = first
    while True:
        response = await coap_block(ctx, uri, num, szx)
        assert response.code == aiocoap.CONTENT, (num, response, response.payload)
        assert response.opt.block2.block_number == num
        assert response.opt.block2.size_exponent == szx
        parts.append(response.payload)
        responses.append(response)
        if not response.opt.block2.more:
            return b"".join(parts), responses
        num += 1


async def client_context() -> Any:
    return await asyncio.wait_for(aiocoap.Context.create_client_context(), STEP)


# --------------------------------------------------------------------------------------------
# HTTP helpers


class HttpResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> HttpResponse:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = b"" if head_only else await asyncio.wait_for(reader.readexactly(length), STEP)
    return HttpResponse(status, headers, body)


async def http_exchange(
    port: int, raw: bytes, *, head_only: bool = False
) -> tuple[HttpResponse, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), STEP)
    writer.write(raw)
    await asyncio.wait_for(writer.drain(), STEP)
    return await read_response(reader, head_only=head_only), reader, writer


async def http_once(port: int, raw: bytes, *, head_only: bool = False) -> HttpResponse:
    response, _, writer = await http_exchange(port, raw, head_only=head_only)
    writer.close()
    return response


def get(path: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *extra, "", ""]
    return "\r\n".join(lines).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# the store


def test_names_are_checked_and_paths_returned() -> None:
    repo = FirmwareRepository()
    assert repo.add("app-1.2.3.bin", b"x") == "/fw/app-1.2.3.bin"
    for bad in ("../x", "a/b", "a b", "", "..", "ü.bin", "a%2e"):
        with pytest.raises(ValueError, match="invalid image name"):
            repo.add(bad, b"x")
    with pytest.raises(ValueError, match="already"):
        repo.add("app-1.2.3.bin", b"y")
    old = repo.etag("app-1.2.3.bin")
    repo.replace("app-1.2.3.bin", b"y")
    assert repo.etag("app-1.2.3.bin") == hashlib.sha256(b"y").digest()[:8] != old
    repo.remove("app-1.2.3.bin")
    assert repo.names() == []
    with pytest.raises(KeyError):
        repo.replace("nothing", b"")
    with pytest.raises(RuntimeError, match="not started"):
        repo.coap_uri("x")


def test_add_file_reads_once_and_serves_by_name(tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(b"firmware")
    repo = FirmwareRepository()
    assert repo.add_file(image) == "/fw/fw.bin"
    image.unlink()  # served from memory, not from the file
    assert repo.data("fw.bin") == b"firmware"


def test_uris_name_the_bound_ports() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("a.bin", b"abc")
        assert repo.coap_uri("a.bin") == f"coap://127.0.0.1:{repo.coap_port}/fw/a.bin"
        assert repo.http_uri("a.bin") == f"http://127.0.0.1:{repo.http_port}/fw/a.bin"
        assert repo.coap_port > 0 and repo.http_port > 0
        assert f"coap={repo.coap_port}" in repr(repo)
        assert "a.bin" in repo._repr_html_()

    run(scenario)


def test_coap_port_cannot_be_shared_through_so_reuseport() -> None:
    """The repository binds without SO_REUSEPORT (labkit.coap): its port is its own."""

    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as intruder:
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            intruder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            with pytest.raises(OSError):
                intruder.bind(("::ffff:127.0.0.1", repo.coap_port))

    run(scenario)


# --------------------------------------------------------------------------------------------
# CoAP


@pytest.mark.parametrize("szx", [0, 4, 6], ids=["16B", "256B", "1024B"])
def test_coap_block2_serves_200_kib_at_the_block_size_asked(szx: int) -> None:
    size = 1 << (szx + 4)

    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("img.bin", IMAGE)
        ctx = await client_context()
        try:
            data, responses = await coap_fetch(ctx, repo.coap_uri("img.bin"), szx)
        finally:
            await ctx.shutdown()
        assert sha(data) == sha(IMAGE)
        blocks = math.ceil(len(IMAGE) / size)
        assert len(responses) == blocks
        etag = hashlib.sha256(IMAGE).digest()[:8]
        for response in responses:  # on every block, not only the first
            assert response.opt.etag == etag
            assert response.opt.size2 == len(IMAGE)
            assert response.opt.content_format == 42
        assert all(len(r.payload) == size for r in responses[:-1])
        assert repo.served_blocks("img.bin") == blocks
        assert repo.served_bytes("img.bin", "coap") == len(IMAGE)
        block_events = [e for e in events if e.kind == "block"]
        assert len(block_events) == blocks
        assert [e.block for e in block_events] == list(range(blocks))
        assert sum(e.bytes or 0 for e in block_events) == len(IMAGE)
        assert {(e.source, e.protocol, e.path, e.code) for e in block_events} == {
            ("repo", "coap", "/fw/img.bin", "2.05")
        }

    run(scenario, timeout=110)


def test_coap_aiocoap_managed_blockwise_download() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        image = build_image(version="1.0.0", size=50 * KIB, broken="unsigned")
        repo.add("signed.bin", image)
        ctx = await client_context()
        try:
            request = aiocoap.Message(code=aiocoap.GET, uri=repo.coap_uri("signed.bin"))
            response = await asyncio.wait_for(ctx.request(request).response, 30)
        finally:
            await ctx.shutdown()
        assert response.code == aiocoap.CONTENT
        assert response.payload == image
        assert repo.served_blocks("signed.bin") == math.ceil(len(image) / 1024)

    run(scenario)


def test_coap_small_image_without_block2_comes_whole() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("tiny.bin", b"0123456789")
        ctx = await client_context()
        try:
            request = aiocoap.Message(code=aiocoap.GET, uri=repo.coap_uri("tiny.bin"))
            response = await asyncio.wait_for(
                ctx.request(request, handle_blockwise=False).response, STEP
            )
        finally:
            await ctx.shutdown()
        assert response.payload == b"0123456789"
        assert response.opt.block2 is None
        assert response.opt.size2 == 10
        assert repo.served_blocks("tiny.bin") == 1

    run(scenario)


def test_coap_bad_requests_get_4xx_and_an_event_and_the_server_keeps_serving() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("a.bin", IMAGE[:1000])
        ctx = await client_context()
        base = f"coap://127.0.0.1:{repo.coap_port}"
        try:

            async def send(**kwargs: Any) -> Any:
                request = aiocoap.Message(**kwargs)
                pending = ctx.request(request, handle_blockwise=False)
                return await asyncio.wait_for(pending.response, STEP)

            unknown = await send(code=aiocoap.GET, uri=f"{base}/fw/missing.bin")
            other_path = await send(code=aiocoap.GET, uri=f"{base}/elsewhere")
            traversal = await send(code=aiocoap.GET, uri_path=["fw", "..", "a.bin"], uri=base)
            put = await send(code=aiocoap.PUT, uri=f"{base}/fw/a.bin", payload=b"x")
            past_end = await send(code=aiocoap.GET, uri=f"{base}/fw/a.bin", block2=(5, False, 6))
            bert = await send(code=aiocoap.GET, uri=f"{base}/fw/a.bin", block2=(0, False, 7))
            still = await send(code=aiocoap.GET, uri=f"{base}/fw/a.bin", block2=(0, False, 6))
        finally:
            await ctx.shutdown()
        assert unknown.code == aiocoap.NOT_FOUND
        assert other_path.code == aiocoap.NOT_FOUND
        assert traversal.code == aiocoap.NOT_FOUND
        assert put.code == aiocoap.METHOD_NOT_ALLOWED
        assert past_end.code == aiocoap.BAD_REQUEST
        assert bert.code == aiocoap.BAD_REQUEST
        assert still.code == aiocoap.CONTENT and still.payload == IMAGE[:1000]
        errors = [e for e in events if e.kind == "error"]
        assert [e.code for e in errors] == ["4.04", "4.04", "4.04", "4.05", "4.00", "4.00"]
        assert all(e.protocol == "coap" and e.detail for e in errors)

    run(scenario)


def test_coap_replace_changes_the_etag_between_blocks() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("a.bin", IMAGE[:4096])
        ctx = await client_context()
        uri = repo.coap_uri("a.bin")
        try:
            first = await coap_block(ctx, uri, 0, 6)
            repo.replace("a.bin", IMAGE[4096:8192])
            second = await coap_block(ctx, uri, 1, 6)
        finally:
            await ctx.shutdown()
        assert first.opt.etag != second.opt.etag  # the client can tell the image changed
        assert second.opt.etag == hashlib.sha256(IMAGE[4096:8192]).digest()[:8]

    run(scenario)


def test_coap_drop_after_blocks_then_resume_without_block_zero() -> None:
    szx = 4  # 256-byte blocks
    image = IMAGE[: 20 * 256]

    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("d.bin", image)
        repo.drop_after("d.bin", blocks=5)
        uri = repo.coap_uri("d.bin")
        ctx = await client_context()
        try:
            parts = [(await coap_block(ctx, uri, n, szx)).payload for n in range(5)]
            with pytest.raises(TimeoutError):
                await coap_block(ctx, uri, 5, szx, timeout=1.0)  # never answered
            assert repo.served_blocks("d.bin") == 5
            rest, _ = await coap_fetch(ctx, uri, szx, first=5)  # resume at NUM = 1280 / 256
        finally:
            await ctx.shutdown()
        assert b"".join(parts) + rest == image
        assert repo.served_blocks("d.bin") == 20  # block 0 was not fetched again
        served = [e.block for e in events if e.kind == "block"]
        assert served == list(range(20))
        faults = [e for e in events if e.kind == "fault"]
        assert len(faults) == 1 and faults[0].block == 5 and faults[0].protocol == "coap"

    run(scenario)


def test_coap_drop_after_repeats_times_then_serves_normally() -> None:
    image = IMAGE[: 10 * 64]

    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("d.bin", image)
        repo.drop_after(blocks=3, times=2)  # any image
        uri = repo.coap_uri("d.bin")
        ctx = await client_context()
        got: list[bytes] = []
        timed_out: list[int] = []
        try:
            num = 0
            while True:
                try:
                    response = await coap_block(ctx, uri, num, 2, timeout=1.5)
                except TimeoutError:
                    timed_out.append(num)
                    continue  # retry the same block with a new request
                got.append(response.payload)
                if not response.opt.block2.more:
                    break
                num += 1
        finally:
            await ctx.shutdown()
        assert b"".join(got) == image
        assert timed_out == [3, 6]  # 3 served, 1 dropped, 3 served, 1 dropped, then normal
        assert repo.served_blocks("d.bin") == 10
        assert [e.block for e in events if e.kind == "fault"] == [3, 6]

    run(scenario)


def test_coap_drop_after_bytes() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("d.bin", IMAGE[:4096])
        repo.drop_after("d.bin", bytes=1000)
        uri = repo.coap_uri("d.bin")
        ctx = await client_context()
        try:
            for num in range(4):  # 4 x 256 = 1024 >= 1000 bytes served
                await coap_block(ctx, uri, num, 4)
            with pytest.raises(TimeoutError):
                await coap_block(ctx, uri, 4, 4, timeout=0.5)
            await coap_block(ctx, uri, 4, 4)
        finally:
            await ctx.shutdown()
        assert repo.served_bytes("d.bin", "coap") == 5 * 256

    run(scenario)


# --------------------------------------------------------------------------------------------
# HTTP


def test_http_full_get_with_a_real_client() -> None:
    def fetch(port: int) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=STEP)
        try:
            conn.request("GET", "/fw/img.bin")
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("img.bin", IMAGE)
        status, headers, body = await asyncio.wait_for(
            asyncio.to_thread(fetch, repo.http_port), 2 * STEP
        )
        assert status == 200
        assert sha(body) == sha(IMAGE)
        assert headers["ETag"] == f'"{hashlib.sha256(IMAGE).digest()[:8].hex()}"'
        assert headers["Content-Length"] == str(len(IMAGE))
        assert headers["Accept-Ranges"] == "bytes"
        assert repo.served_bytes("img.bin", "http") == len(IMAGE)
        assert repo.served_bytes("img.bin") == len(IMAGE)
        kinds = [(e.kind, e.code) for e in events]
        assert kinds == [("request", None), ("response", "200")]
        assert events[1].bytes == len(IMAGE) and events[1].protocol == "http"

    run(scenario)


def test_http_ranges() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("img.bin", IMAGE)
        total = len(IMAGE)
        port = repo.http_port
        middle = await http_once(port, get("/fw/img.bin", "Range: bytes=1000-1999"))
        assert middle.status == 206
        assert middle.body == IMAGE[1000:2000]
        assert middle.headers["content-range"] == f"bytes 1000-1999/{total}"
        assert middle.headers["content-length"] == "1000"
        assert "etag" in middle.headers

        open_end = await http_once(port, get("/fw/img.bin", "Range: bytes=200000-"))
        assert open_end.status == 206 and open_end.body == IMAGE[200000:]
        assert open_end.headers["content-range"] == f"bytes 200000-{total - 1}/{total}"

        suffix = await http_once(port, get("/fw/img.bin", "Range: bytes=-100"))
        assert suffix.status == 206 and suffix.body == IMAGE[-100:]
        assert suffix.headers["content-range"] == f"bytes {total - 100}-{total - 1}/{total}"

        past = await http_once(port, get("/fw/img.bin", "Range: bytes=0-99999999"))
        assert past.status == 206 and past.body == IMAGE  # last-pos clipped to the end

        for unsatisfiable in ("bytes=999999-", f"bytes={total}-", "bytes=-0", "bytes=50-10"):
            refused = await http_once(port, get("/fw/img.bin", f"Range: {unsatisfiable}"))
            assert refused.status == 416, unsatisfiable
            assert refused.headers["content-range"] == f"bytes */{total}"

        for ignored in ("items=0-10", "bytes=0-1,5-6", "bytes=abc"):
            whole = await http_once(port, get("/fw/img.bin", f"Range: {ignored}"))
            assert whole.status == 200 and len(whole.body) == total, ignored

        codes = [e.code for e in events if e.kind == "response"]
        assert codes == ["206"] * 4 + ["416"] * 4 + ["200"] * 3
        assert [e.code for e in events if e.kind == "error"] == ["416"] * 4

    run(scenario)


def test_http_if_match_and_if_range() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("img.bin", IMAGE)
        port = repo.http_port
        etag = f'"{repo.etag("img.bin").hex()}"'
        fresh = await http_once(port, get("/fw/img.bin", "Range: bytes=10-", f"If-Match: {etag}"))
        assert fresh.status == 206 and fresh.body == IMAGE[10:]
        listed = await http_once(port, get("/fw/img.bin", f'If-Match: "0000", {etag}'))
        assert listed.status == 200
        star = await http_once(port, get("/fw/img.bin", "If-Match: *"))
        assert star.status == 200

        repo.replace("img.bin", IMAGE[::-1])
        stale = await http_once(port, get("/fw/img.bin", "Range: bytes=10-", f"If-Match: {etag}"))
        assert stale.status == 412  # the download "expired": the client restarts from 0
        weak = await http_once(port, get("/fw/img.bin", f"If-Match: W/{etag}"))
        assert weak.status == 412  # If-Match uses the strong comparison

        stale_range = await http_once(
            port, get("/fw/img.bin", "Range: bytes=10-", f"If-Range: {etag}")
        )
        assert stale_range.status == 200 and stale_range.body == IMAGE[::-1]
        assert [e.kind for e in events].count("error") == 0  # 412 is an answer, not bad input

    run(scenario)


def test_http_head_unknown_and_keep_alive() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("img.bin", IMAGE)
        head_request = b"HEAD /fw/img.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        head, reader, writer = await http_exchange(repo.http_port, head_request, head_only=True)
        try:
            assert head.status == 200
            assert head.headers["content-length"] == str(len(IMAGE))
            assert head.headers["accept-ranges"] == "bytes"
            # same connection: the HEAD sent no body, so the next response starts right here
            writer.write(get("/fw/nothing.bin"))
            missing = await read_response(reader)
            assert missing.status == 404
            writer.write(get("/fw/img.bin", "Range: bytes=0-3"))
            again = await read_response(reader)
            assert again.status == 206 and again.body == IMAGE[:4]
        finally:
            writer.close()
        assert repo.served_bytes("img.bin", "http") == 4
        assert [e.code for e in events if e.kind == "error"] == ["404"]

    run(scenario)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /fw/img.bin\r\n\r\n", 400),
        (b"GET /fw/img.bin HTTP/2.0\r\n\r\n", 400),
        (b"GET fw/img.bin HTTP/1.1\r\n\r\n", 400),
        (b"GET /fw/img.bin HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /fw/img.bin HTTP/1.1\r\nX: \xff\r\n\r\n", 400),
        (b"GET /fw/img.bin HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"POST /fw/img.bin HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"DELETE /fw/img.bin HTTP/1.1\r\n\r\n", 405),
        (b"GET /fw/img.bin HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n", 431),
    ],
)
def test_http_malformed_requests_get_4xx_an_event_and_a_closed_connection(
    raw: bytes, status: int
) -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("img.bin", IMAGE[:100])
        response, reader, writer = await http_exchange(repo.http_port, raw)
        try:
            assert response.status == status
            assert response.headers["connection"] == "close"
            if status == 405:
                assert response.headers["allow"] == "GET, HEAD"
            assert await asyncio.wait_for(reader.read(), STEP) == b""  # closed by the server
        finally:
            writer.close()
        errors = [e for e in events if e.kind == "error"]
        assert len(errors) == 1 and errors[0].code == str(status) and errors[0].detail
        ok = await http_once(repo.http_port, get("/fw/img.bin"))  # still serving
        assert ok.status == 200 and ok.body == IMAGE[:100]

    run(scenario)


def test_http_slow_client_is_cut_off_by_the_read_timeout() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", repo.http_port), STEP
        )
        try:
            writer.write(b"GET /fw/img.bin HTTP/1.1\r\n")  # and never the end of the head
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), STEP) == b""  # read_timeout is 2 s
        finally:
            writer.close()

    run(scenario)


TRAVERSALS = [
    "/fw/../pyproject.toml",
    "/fw/..%2fpyproject.toml",
    "/fw/%2e%2e/pyproject.toml",
    "/fw/%2e%2e%2fpyproject.toml",
    "/fw/%2E%2E",
    "/fw/..",
    "/fw/.",
    "/fw//etc/passwd",
    "/fw/%2fetc%2fpasswd",
    "/fw/pyproject.toml",
    "/../../pyproject.toml",
    "/fw/img.bin/../../pyproject.toml",
    "/fw/%ff%fe",
    "/fw/%zz",
]


def test_http_path_traversal_is_404_and_reads_nothing_from_disk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[object] = []

    def spy(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            opened.append(args[0] if args else kwargs)
            return real(*args, **kwargs)

        return wrapper

    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("img.bin", IMAGE[:100])
        monkeypatch.setattr(builtins, "open", spy(builtins.open))
        monkeypatch.setattr(io, "open", spy(io.open))
        monkeypatch.setattr(os, "open", spy(os.open))
        try:
            for target in TRAVERSALS:
                response = await http_once(repo.http_port, get(target))
                assert response.status == 404, target
                assert b"labkit" not in response.body
        finally:
            monkeypatch.undo()
        assert opened == []
        assert len([e for e in events if e.kind == "error" and e.code == "404"]) == len(TRAVERSALS)

    run(scenario)


def test_http_absolute_form_target_and_query_are_understood() -> None:
    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("img.bin", IMAGE[:100])
        absolute = f"http://127.0.0.1:{repo.http_port}/fw/img.bin?x=1"
        response = await http_once(repo.http_port, get(absolute))
        assert response.status == 200 and response.body == IMAGE[:100]

    run(scenario)


def test_http_drop_after_bytes_then_resume_with_range_and_if_match() -> None:
    cut = 50_000

    async def scenario(repo: FirmwareRepository, events: list[Event]) -> None:
        repo.add("img.bin", IMAGE)
        repo.drop_after("img.bin", bytes=cut)
        port = repo.http_port
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), STEP)
        try:
            writer.write(get("/fw/img.bin"))
            head = await read_response(reader, head_only=True)
            assert head.status == 200
            assert head.headers["content-length"] == str(len(IMAGE))
            partial = await asyncio.wait_for(reader.read(), STEP)  # until the server closes
        finally:
            writer.close()
        assert partial == IMAGE[:cut]

        etag = head.headers["etag"]
        resumed = await http_once(
            port, get("/fw/img.bin", f"Range: bytes={len(partial)}-", f"If-Match: {etag}")
        )
        assert resumed.status == 206
        assert resumed.headers["content-range"] == f"bytes {cut}-{len(IMAGE) - 1}/{len(IMAGE)}"
        assert sha(partial + resumed.body) == sha(IMAGE)
        assert repo.served_bytes("img.bin", "http") == len(IMAGE)  # nothing sent twice
        responses = [e for e in events if e.kind == "response"]
        assert [(e.code, e.bytes) for e in responses] == [("200", cut), ("206", len(IMAGE) - cut)]
        faults = [e for e in events if e.kind == "fault"]
        assert len(faults) == 1 and faults[0].bytes == cut and faults[0].protocol == "http"

    run(scenario)


def test_drop_after_arguments_are_checked() -> None:
    repo = FirmwareRepository()
    with pytest.raises(ValueError, match="blocks= or bytes="):
        repo.drop_after("a.bin")
    with pytest.raises(ValueError, match="times"):
        repo.drop_after("a.bin", blocks=1, times=0)
    with pytest.raises(ValueError, match=">= 0"):
        repo.drop_after("a.bin", bytes=-1)
    with pytest.raises(ValueError, match="invalid image name"):
        repo.drop_after("../a", blocks=1)
    repo.drop_after("a.bin", blocks=1)
    repo.clear_faults()
    with pytest.raises(ValueError, match="protocol"):
        repo.served_bytes("a.bin", "ftp")


def test_a_failing_event_sink_does_not_stop_the_repository() -> None:
    def broken_sink(event: Event) -> None:
        raise RuntimeError("sink down")

    async def main() -> None:
        repo = FirmwareRepository(on_event=broken_sink)
        async with repo:
            repo.add("a.bin", b"abc")
            response = await http_once(repo.http_port, get("/fw/a.bin"))
            assert response.status == 200 and response.body == b"abc"

    asyncio.run(asyncio.wait_for(main(), 30))


def test_events_use_the_given_clock() -> None:
    async def main() -> list[Event]:
        events: list[Event] = []
        async with FirmwareRepository(on_event=events.append, clock=lambda: 1234.5) as repo:
            repo.add("a.bin", b"abc")
            await http_once(repo.http_port, get("/fw/a.bin"))
        return events

    events = asyncio.run(asyncio.wait_for(main(), 30))
    assert events and {e.ts for e in events} == {1234.5}
