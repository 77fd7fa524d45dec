"""HTTP cases: a huge Range header (case 11) gets an answer; clients that never read release
the repository's descriptors after the write timeout (case 8); a server that drips bytes
cannot keep a device in State 1 (case 3)."""

from __future__ import annotations

import asyncio
import os

import aiocoap
import pytest

from labkit.client import SimulatedDevice, firmware
from labkit.coap import local_port
from labkit.events import Event
from labkit.lwm2m.objects import State, UpdateResult
from labkit.repo.repository import FirmwareRepository
from tests.adversarial.helpers import Peer, open_fds, run


async def http_get(port: int, head: str, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode())
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), timeout)
    finally:
        writer.close()


def test_huge_range_header_is_answered() -> None:
    async def main() -> None:
        events: list[Event] = []
        repo = FirmwareRepository(on_event=events.append)
        await repo.start()
        try:
            repo.add("a.bin", b"x" * 1000)
            for rng in (
                "bytes=" + "9" * 4400 + "-",
                "bytes=0-" + "9" * 4400,
                "bytes=-" + "9" * 5000,
            ):
                answer = await http_get(
                    repo.http_port, f"GET /fw/a.bin HTTP/1.1\r\nHost: x\r\nRange: {rng}\r\n\r\n"
                )
                status = answer.split(b" ", 2)[1]
                assert status in (b"416", b"400", b"206"), answer[:80]
            # the repository still serves
            ok = await http_get(repo.http_port, "GET /fw/a.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert ok.startswith(b"HTTP/1.1 200")
        finally:
            await repo.stop()

    run(main)


def test_clients_that_never_read_release_descriptors() -> None:
    async def main() -> None:
        repo = FirmwareRepository(write_timeout=1.0)
        await repo.start()
        socks = []
        try:
            repo.add("big.bin", os.urandom(4 << 20))
            base = open_fds()
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", repo.http_port)
                sock = writer.get_extra_info("socket")
                writer.write(b"GET /fw/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                socks.append(writer)
            # 20 client sockets stay ours; the server's 20 must go once the write times out
            async with asyncio.timeout(30):
                while open_fds() > base + 20:
                    await asyncio.sleep(0.1)
            assert open_fds() <= base + 20
            del sock, reader
        finally:
            for w in socks:
                w.transport.abort()
            await repo.stop()

    run(main, 60)


def test_dripping_http_server_ends_in_result_4(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firmware, "HTTP_DOWNLOAD_DEADLINE_S", 2.0)

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            for _ in range(1000):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.2)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main() -> None:
        events: list[Event] = []
        server = await asyncio.start_server(drip, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        from labkit.server import LwM2MServer

        lwm2m = LwM2MServer(on_event=events.append)
        await lwm2m.start()
        dev = SimulatedDevice("victim", lwm2m.uri, on_event=events.append)
        try:
            await dev.start(timeout=10)
            peer = Peer(local_port(dev._ctx) or 0)
            uri = f"http://127.0.0.1:{port}/fw/a.bin".encode()
            resp = await peer.request(
                aiocoap.Message(
                    code=aiocoap.PUT, uri_path=("5", "0", "1"), content_format=0, payload=uri
                )
            )
            peer.close()
            assert str(resp.code.dotted) == "2.04"
            async with asyncio.timeout(20):
                while dev.fw.state is not State.DOWNLOADING:
                    await asyncio.sleep(0.02)
                while dev.fw.state is State.DOWNLOADING:
                    await asyncio.sleep(0.05)
            assert dev.fw.state is State.IDLE
            assert dev.fw.result is UpdateResult.CONNECTION_LOST
            assert any("deadline" in (e.detail or "") for e in events)
        finally:
            await dev.stop(deregister=False)
            await lwm2m.stop()
            server.close()

    run(main, 60)
