"""Hostile datagrams to a live LwM2M server and a live simulated device (issue 17, cases 2, 6,
7, 11, 12): each gets the answer RFC 7252/7959 asks for, an ``error`` event is recorded, no
traceback reaches the event loop, and a Register right after is still answered 2.01."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiocoap
import pytest
from aiocoap.optiontypes import BlockOption

from labkit.client import SimulatedDevice
from labkit.coap import local_port
from labkit.events import Event
from labkit.server import LwM2MServer
from tests.adversarial.helpers import Peer, code_of, encode, mtype_of, option, raw, register, run

Block = BlockOption.BlockwiseTuple


@contextlib.asynccontextmanager
async def live(device: bool = False) -> AsyncIterator[tuple[LwM2MServer, list[Event], Peer, Any]]:
    events: list[Event] = []
    server = LwM2MServer(on_event=events.append)
    await server.start()
    dev = None
    try:
        if device:
            dev = SimulatedDevice("victim", server.uri, on_event=events.append)
            await dev.start(timeout=10)
            await server.wait_for_registration("victim", timeout=10)
        port = local_port(dev._ctx) if dev is not None else server.port
        peer = Peer(port)
        try:
            yield server, events, peer, dev
        finally:
            peer.close()
    finally:
        if dev is not None:
            await dev.stop(deregister=False)
        await server.stop()


@pytest.fixture
def loop_errors() -> Any:
    """Everything that reaches asyncio's default exception handler or aiocoap's ERROR log."""
    seen: list[logging.LogRecord] = []

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                seen.append(record)

    h = H()
    logging.getLogger().addHandler(h)
    yield seen
    logging.getLogger().removeHandler(h)


async def still_serving(server: LwM2MServer, name: str = "after") -> None:
    peer = Peer(server.port)
    try:
        resp = await peer.request(register(name), mid=0x7777)
        assert str(resp.code.dotted) == "2.01"
    finally:
        peer.close()


# -- case 2: datagrams over the receive buffer --------------------------------------------------
def test_oversized_register_is_refused_413_not_truncated(loop_errors: list[Any]) -> None:
    links = ",".join(f"</{3300 + i}/0>" for i in range(800))

    async def main() -> None:
        async with live() as (server, events, peer, _):
            data = encode(register("big", links))
            assert len(data) > 4096
            answer = await peer.exchange(data)
            assert answer is not None and code_of(answer) == "4.13"
            msg = aiocoap.Message.decode(answer)
            assert msg.opt.size1 == 4096
            assert "big" not in server.registrations
            assert any(e.kind == "error" and e.code == "4.13" for e in events)
            await still_serving(server)

    run(main)
    assert not loop_errors


# -- case 11: invalid UTF-8 in Uri-Path / Uri-Query ---------------------------------------------
@pytest.mark.parametrize("device", [False, True])
def test_invalid_utf8_in_uri_is_400_without_traceback(device: bool, loop_errors: list[Any]) -> None:
    async def main() -> None:
        async with live(device) as (server, events, peer, _):
            for mid, opts in enumerate(
                [option(11, b"rd") + option(4, b"ep=\xff\xfe"), option(11, b"\xc3\x28")]
            ):
                answer = await peer.exchange(raw(0, 2, 100 + mid, b"\x07", opts, b"</1/0>"))
                assert answer is not None and code_of(answer) == "4.00"
                assert mtype_of(answer) == 2  # piggybacked ACK
            # a NON with the same fault gets a NON 4.00
            answer = await peer.exchange(raw(1, 1, 300, b"\x08", option(11, b"\xff")))
            assert answer is not None and code_of(answer) == "4.00" and mtype_of(answer) == 1
            assert sum(e.kind == "error" and e.code == "4.00" for e in events) >= 3
            await still_serving(server)

    run(main)
    assert not loop_errors


# -- case 12: what RFC 7252 calls a message format error, unknown critical options -------------
@pytest.mark.parametrize("device", [False, True])
def test_format_errors_and_unknown_critical_options(device: bool, loop_errors: list[Any]) -> None:
    async def main() -> None:
        async with live(device) as (server, events, peer, _):
            rd = option(11, b"rd")
            for tkl in range(9, 16):  # token length 9-15: format error, CON -> RST
                answer = await peer.exchange(raw(0, 2, 400 + tkl, b"\x01" * tkl, rd, b"x", tkl=tkl))
                assert answer is not None and mtype_of(answer) == 3 and answer[1] == 0
                assert answer[2:4] == (400 + tkl).to_bytes(2, "big")
            # payload marker with an empty payload
            answer = await peer.exchange(raw(0, 2, 500, b"\x01", rd, b""))
            assert answer is not None and mtype_of(answer) == 3
            # the same as NON: silently ignored
            assert await peer.exchange(raw(1, 2, 501, b"\x01", rd, b""), timeout=0.3) is None
            # unknown critical option 2049 in a CON request: 4.02 Bad Option
            crit = rd + bytes([0xE0]) + (2049 - 11 - 269).to_bytes(2, "big")
            answer = await peer.exchange(raw(0, 1, 502, b"\x02", crit))
            assert answer is not None and code_of(answer) == "4.02" and mtype_of(answer) == 2
            # unknown elective option (2048) is ignored as RFC 7252 says: processed normally
            elective = option(11, b"rd") + bytes([0xE0]) + (2048 - 11 - 269).to_bytes(2, "big")
            answer = await peer.exchange(raw(0, 1, 503, b"\x03", elective))
            assert answer is not None and code_of(answer) in ("4.04", "4.05", "2.05")
            # reserved option nibble 15, an option running past the end, an Empty with a token
            for mid, data in enumerate(
                [
                    raw(0, 1, 0, b"\x04", bytes([0xF1, 0])),
                    raw(0, 1, 0, b"\x04", bytes([0x1D])),
                    raw(0, 0, 0, b"\x04"),
                ]
            ):
                data = data[:2] + (600 + mid).to_bytes(2, "big") + data[4:]
                answer = await peer.exchange(data)
                assert answer is not None and mtype_of(answer) == 3
            assert any(e.kind == "error" and e.code == "RESET" for e in events)
            await still_serving(server)

    run(main)
    assert not loop_errors


# -- case 6: Block1 reassembly bounded; case 12: a gap after a size change is 4.08 -------------
def test_block1_register_bounded_and_gap_is_408(loop_errors: list[Any]) -> None:
    async def main() -> None:
        async with live() as (server, events, peer, _):
            body = b"</3/0>," * 20000  # 140 kB of links
            num, size = 0, 1024
            last = None
            while True:
                chunk = body[num * size : (num + 1) * size]
                msg = register("blocky", "")
                msg.payload = chunk
                msg.opt.block1 = Block(num, True, 6)
                answer = await peer.exchange(encode(msg, 1000 + num))
                assert answer is not None
                last = code_of(answer)
                if last != "2.31":
                    break
                num += 1
                assert num < 200
            assert last == "4.13" and num * size <= 64 * 1024
            assert aiocoap.Message.decode(answer).opt.size1 == 64 * 1024
            assert any(e.kind == "error" and e.code == "4.13" for e in events)
            # gap after a size change: block 0 of 1024, then block 1 of 256 (offset 256): 4.08
            first = register("gappy", "")
            first.payload, first.opt.block1 = b"x" * 1024, Block(0, True, 6)
            assert code_of(await peer.exchange(encode(first, 3000)) or b"\0\0") == "2.31"
            gap = register("gappy", "")
            gap.payload, gap.opt.block1 = b"y" * 256, Block(1, True, 4)
            answer = await peer.exchange(encode(gap, 3001))
            assert answer is not None and code_of(answer) == "4.08"
            await still_serving(server)

    run(main)
    assert not loop_errors


def test_block1_to_device_paths_bounded(loop_errors: list[Any]) -> None:
    async def main() -> None:
        async with live(device=True) as (server, events, peer, dev):
            # 8 MiB meant for /3/0/14 stops at the limit with 4.13
            num = 0
            while True:
                msg = aiocoap.Message(
                    code=aiocoap.PUT,
                    uri_path=("3", "0", "14"),
                    content_format=0,
                    payload=b"1" * 1024,
                    block1=Block(num, True, 6),
                )
                answer = await peer.exchange(encode(msg, 2000 + num))
                assert answer is not None
                if code_of(answer) != "2.31":
                    break
                num += 1
                assert num < 100
            assert code_of(answer) == "4.13" and num * 1024 <= 64 * 1024
            # a /5/0/1 URI larger than 255 bytes is refused at the first block
            msg = aiocoap.Message(
                code=aiocoap.PUT,
                uri_path=("5", "0", "1"),
                content_format=0,
                payload=b"h" * 512,
                block1=Block(0, True, 5),
            )
            answer = await peer.exchange(encode(msg, 2500))
            assert answer is not None and code_of(answer) == "4.13"
            assert aiocoap.Message.decode(answer).opt.size1 == 255
            assert any(
                e.kind == "error" and e.code == "4.13" and e.device == "victim" for e in events
            )
            assert dev.fw.state.value == 0
            await still_serving(server)

    run(main)
    assert not loop_errors


# -- case 7: the de-duplication cache is bounded ---------------------------------------------------
def test_exchange_cache_is_bounded() -> None:
    async def main() -> None:
        async with live() as (server, events, peer, _dev):
            ctx = server._context
            mman = ctx.request_interfaces[0].token_interface
            mman = getattr(mman, "token_interface", mman)
            recent = None
            for obj in (mman, getattr(mman, "message_interface", None)):
                if obj is not None and hasattr(obj, "_recent_messages"):
                    recent = obj._recent_messages
            assert recent is not None
            seen = lambda: sum(e.code == "4.04" for e in events)  # noqa: E731
            mid = 0
            for _ in range(400):  # paced so the socket buffer never drops: 3,000 seen
                for _ in range(50):
                    peer.send(raw(1, 1, mid, b"\x01", option(11, b"nope")))
                    mid += 1
                while seen() < mid - 100:
                    await asyncio.sleep(0.005)
                if seen() >= 3000:
                    break
            assert seen() >= 3000
            assert 0 < len(recent) <= 2048
            await still_serving(server)

    run(main)
