"""Garbage from the server: every request gets a 2.xx/4.xx answer, never 5.00, never a crash."""

from __future__ import annotations

import asyncio
import random

from aiocoap.numbers.codes import Code

from labkit.events import Event
from tests.client.peer import RdPeer, run, started

PATHS = [
    "/1/0",
    "/1/0/1",
    "/3/0",
    "/3/0/13",
    "/3/0/11",
    "/4/0/2",
    "/5/0",
    "/5/0/1",
    "/5/0/0",
    "/5/0/11",
    "/5/0/13",
    "/1",
    "/3",
    "/5/0/8/0",
    "/1/0/7",
]
FORMATS = [None, 0, 42, 60, 110, 112, 11542, 11543, 11544, 1541, 1542, 1543, 1544, 40, 50]


def _garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 40))
    if kind == 1:  # TLV-looking
        return bytes([rng.choice([0xC1, 0xC8, 0x08, 0x86, 0xE4, 0xD0])]) + rng.randbytes(5)
    if kind == 2:  # SenML-looking JSON
        return rng.choice(
            [
                b'[{"n":"1","v":"x"}]',
                b'[{"bn":"/1/0/","n":"1","v":-5}]',
                b"[{",
                b'{"e":1}',
                b'[{"n":"/9/9/9","v":1}]',
            ]
        )
    if kind == 3:  # CBOR-looking
        return bytes([rng.choice([0x81, 0xA1, 0x9F, 0xBF, 0x5F])]) + rng.randbytes(6)
    if kind == 4:
        return str(rng.randint(-(2**70), 2**70)).encode()
    return b""


def test_random_requests_never_crash_the_device() -> None:
    events: list[Event] = []
    rng = random.Random(1234)

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, on_event=events.append)
            codes: list[str] = []
            for _ in range(300):
                method = rng.choice([Code.PUT, Code.POST, Code.GET, Code.DELETE])
                opts: dict[str, object] = {}
                fmt = rng.choice(FORMATS)
                if method == Code.GET:
                    if fmt is not None:
                        opts["accept"] = fmt
                else:
                    opts["payload"] = _garbage(rng)
                    if fmt is not None:
                        opts["content_format"] = fmt
                if method == Code.PUT and rng.random() < 0.1:
                    opts = {"uri_query": [rng.choice(["pmin=", "pmax=-1", "gt=x", "st=1e999"])]}
                resp = await server.request("sim-1", method, rng.choice(PATHS), **opts)
                codes.append(str(resp.code.dotted))
            assert not [c for c in codes if c.startswith("5.")], codes
            assert {"2.05", "4.00", "4.05", "4.06", "4.15"} <= set(codes)
            assert device.registered
            resp = await server.request("sim-1", Code.GET, "/3/0/3")
            assert resp.code == Code.CONTENT
            await asyncio.wait_for(device.stop(), 5)

    run(main(), timeout=90)
    assert any(e.kind == "error" for e in events)
