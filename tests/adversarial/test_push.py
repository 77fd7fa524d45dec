"""Case 4: Block1 blocks of a PUSH to /5/0/0 are placed at NUM x size (RFC 7959 section 2.3):
a block that does not continue the bytes received so far is 4.08, a correct renumbering after
a size change is accepted, and a TLV-wrapped package must be as long as its header says."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiocoap
from aiocoap.optiontypes import BlockOption

from labkit.client import SimulatedDevice
from labkit.coap import local_port
from labkit.course import package
from labkit.events import Event
from labkit.lwm2m.objects import State
from labkit.server import LwM2MServer
from tests.adversarial.helpers import Peer, run

Block = BlockOption.BlockwiseTuple


@contextlib.asynccontextmanager
async def device() -> AsyncIterator[tuple[SimulatedDevice, Peer, list[Event]]]:
    events: list[Event] = []
    server = LwM2MServer(on_event=events.append)
    await server.start()
    dev = SimulatedDevice("victim", server.uri, on_event=events.append)
    try:
        await dev.start(timeout=10)
        peer = Peer(local_port(dev._ctx) or 0)
        try:
            yield dev, peer, events
        finally:
            peer.close()
    finally:
        await dev.stop(deregister=False)
        await server.stop()


async def put(
    peer: Peer, mid: int, data: bytes, num: int, more: bool, szx: int, cf: int = 42
) -> str:
    msg = aiocoap.Message(
        code=aiocoap.PUT,
        uri_path=("5", "0", "0"),
        content_format=cf,
        payload=data,
        block1=Block(num, more, szx),
    )
    return str((await peer.request(msg, mid)).code.dotted)


def test_block_after_a_size_change_is_placed_by_offset() -> None:
    async def main() -> None:
        async with device() as (dev, peer, events):
            assert await put(peer, 1, b"a" * 1024, 0, True, 6) == "2.31"
            # blk(1, SZX 4) means offset 256: inside block 0, not a continuation -> 4.08
            assert await put(peer, 2, b"b" * 256, 1, True, 4) == "4.08"
            # the correct renumbering: offset 1024 with 256-byte blocks is NUM 4
            assert await put(peer, 3, b"c" * 256, 4, True, 4) == "2.31"
            assert await put(peer, 4, b"d" * 256, 5, True, 4) == "2.31"
            # a gap (NUM 7 = offset 1792, expected 1536) -> 4.08
            assert await put(peer, 5, b"e" * 256, 7, True, 4) == "4.08"
            # the last block repeated (a lost 2.31) is answered again, not stored twice
            assert await put(peer, 6, b"d" * 256, 5, True, 4) == "2.31"
            assert dev.fw.state is State.DOWNLOADING
            assert any(e.kind == "error" and e.code == "4.08" for e in events)
            stored = dev._firmware.download or {}
            assert int(stored.get("offset", 1536)) == 1536

    run(main)


def test_tlv_package_length_must_match_its_header() -> None:
    async def main() -> None:
        async with device() as (dev, peer, events):
            for declared in (5, (1 << 24) - 1):
                if declared < 8:
                    header = bytes([0xC0 | declared, 0])
                else:
                    header = bytes([0xD8, 0]) + declared.to_bytes(3, "big")
                body = header + package("2.0.0", 900)
                code = await put(peer, 10 + declared % 50, body, 0, False, 6, 11542)
                assert code == "4.00", code
                assert dev.fw.state is State.IDLE
            assert sum(e.kind == "error" and "TLV" in (e.detail or "") for e in events) >= 2

    run(main)
