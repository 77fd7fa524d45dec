"""Seeded random datagrams to a live server and a live device: both keep serving, nothing
reaches the event loop's error handler, and RSS and open descriptors stay within bounds."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from typing import Any

import aiocoap
import pytest

from benchmarks.bench_soak import garbage
from labkit.client import SimulatedDevice
from labkit.coap import local_port
from labkit.events import Event
from labkit.server import LwM2MServer
from tests.adversarial.helpers import Peer, encode, open_fds, register, rss_bytes, run

DATAGRAMS = 3000
#: RSS may grow by the de-duplication caches (2,048 entries each), the Block1 spools and
#: allocator slack; 40 MiB is far below what 6,000 unbounded exchanges plus their tracebacks
#: cost (issue 17: ~2.4 kB per request held for 247 s)
RSS_BOUND = 40 << 20
FD_BOUND = 4


def mutated(rng: random.Random) -> bytes:
    """A valid request with a few random bytes changed, cut or appended."""
    msg = rng.choice(
        [
            register(f"fz-{rng.randrange(50)}"),
            aiocoap.Message(code=aiocoap.GET, uri_path=("3", "0", "3")),
            aiocoap.Message(
                code=aiocoap.PUT, uri_path=("1", "0", "1"), payload=b"60", content_format=0
            ),
        ]
    )
    data = bytearray(encode(msg, rng.randrange(65536)))
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(3)
        if op == 0:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:
            if len(data) > 1:
                del data[rng.randrange(1, len(data)) :]
        else:
            data += rng.randbytes(rng.randrange(1, 8))
    return bytes(data)


@pytest.fixture
def errors() -> Any:
    seen: list[logging.LogRecord] = []

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                seen.append(record)

    handler = H()
    logging.getLogger().addHandler(handler)
    yield seen
    logging.getLogger().removeHandler(handler)


def test_seeded_fuzz_server_and_device_keep_serving(errors: list[logging.LogRecord]) -> None:
    rng = random.Random(17)
    loop_errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _l, c: loop_errors.append(c))
        events: list[Event] = []
        server = LwM2MServer(on_event=events.append)
        await server.start()
        dev = SimulatedDevice("victim", server.uri, on_event=events.append)
        try:
            await dev.start(timeout=10)
            targets = [server.port, local_port(dev._ctx) or 0]
            peers = [Peer(p) for p in targets]
            gc.collect()
            rss0, fds0 = rss_bytes(), open_fds()
            for i in range(DATAGRAMS):
                for peer in peers:
                    peer.send(garbage(rng) if i % 2 else mutated(rng))
                if i % 25 == 0:
                    await asyncio.sleep(0.005)
                    for peer in peers:
                        peer.drain()
            await asyncio.sleep(0.5)
            for peer in peers:
                peer.drain()
            # still serving: a Register to the server, a Read of the device
            for peer in peers:
                peer.close()
            peers = [Peer(p) for p in targets]  # fresh sockets: no MID the fuzz used
            answer = await peers[0].request(register("after-fuzz"), mid=0xBEEF)
            assert str(answer.code.dotted) == "2.01"
            read = await peers[1].request(
                aiocoap.Message(code=aiocoap.GET, uri_path=("3", "0", "3")), mid=0xBEF0
            )
            assert str(read.code.dotted) == "2.05" and read.payload == b"1.0.0"
            assert "victim" in server.registrations
            gc.collect()
            assert rss_bytes() - rss0 < RSS_BOUND
            assert open_fds() - fds0 <= FD_BOUND
            for peer in peers:
                peer.close()
            assert any(e.kind == "error" for e in events)  # refusals were recorded
        finally:
            await dev.stop(deregister=False)
            await server.stop()

    run(main, 120)
    assert not loop_errors, loop_errors[:3]
    assert not errors, [r.getMessage() for r in errors[:5]]
