"""Firmware update on the simulated device: PUSH (Block1), Execute -> reboot, PULL (Block2)."""

from __future__ import annotations

import asyncio
import hashlib

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from labkit.client import InstallOutcome, SimulatedDevice
from labkit.coap import open_udp_context
from labkit.events import Event
from labkit.lwm2m.objects import State, UpdateResult
from tests.client.peer import RdPeer, Watch, run, started, until

KIB = 1024


def _package(version: str, size: int) -> bytes:
    head = f"LABKIT-FW {version}\n".encode()
    body = bytes((i * 7) & 0xFF for i in range(size - len(head)))
    return head + body


async def _push_manual(
    server: RdPeer, ep: str, image: bytes, device: SimulatedDevice, szx: int = 6
) -> list[int]:
    """Block1 PUT /5/0/0 block by block; returns the device State seen after each block."""
    assert server.ctx is not None
    size = 1 << (szx + 4)
    states = []
    num = 0
    while True:
        chunk = image[num * size : (num + 1) * size]
        more = (num + 1) * size < len(image)
        msg = server.message(ep, Code.PUT, "/5/0/0", content_format=42, payload=chunk)
        msg.opt.block1 = BlockOption.BlockwiseTuple(num, more, szx)
        if num == 0:
            msg.opt.size1 = len(image)
        resp = await asyncio.wait_for(server.ctx.request(msg, handle_blockwise=False).response, 5)
        states.append(int(device.fw.state))
        if more:
            assert resp.code == Code.CONTINUE, resp
            assert resp.opt.block1 == (num, True, szx)
        else:
            assert resp.code == Code.CHANGED, resp
            assert resp.opt.block1 == (num, False, szx)
            return states
        num += 1


def test_push_256k_block_by_block() -> None:
    events: list[Event] = []
    image = _package("2.0.0", 256 * KIB)

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, on_event=events.append)
            states = await _push_manual(server, "sim-1", image, device)
            assert states[0] == State.DOWNLOADING
            assert set(states[:-1]) == {State.DOWNLOADING}
            assert states[-1] == State.DOWNLOADED
            assert device.package == image
            resp = await server.request("sim-1", Code.GET, "/5/0/3")
            assert resp.payload == b"2"
            resp = await server.request("sim-1", Code.GET, "/5/0/7")
            assert resp.payload == b"2.0.0"  # PkgVersion from the lab package header
            await device.stop()

    run(main())
    blocks = [e for e in events if e.kind == "block"]
    assert len(blocks) == 256 and sum(e.bytes or 0 for e in blocks) == len(image)
    assert [e.state for e in events if e.kind == "fw_state"] == [1, 2]


def test_push_small_blocks_out_of_order_and_tlv() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            assert server.ctx is not None
            # block 0 (16-byte blocks), then block 2: a gap -> 4.08, state unchanged
            msg = server.message("sim-1", Code.PUT, "/5/0/0", content_format=42, payload=b"a" * 16)
            msg.opt.block1 = BlockOption.BlockwiseTuple(0, True, 0)
            resp = await asyncio.wait_for(
                server.ctx.request(msg, handle_blockwise=False).response, 5
            )
            assert resp.code == Code.CONTINUE
            msg = server.message("sim-1", Code.PUT, "/5/0/0", content_format=42, payload=b"c" * 16)
            msg.opt.block1 = BlockOption.BlockwiseTuple(2, True, 0)
            resp = await asyncio.wait_for(
                server.ctx.request(msg, handle_blockwise=False).response, 5
            )
            assert resp.code == Code.REQUEST_ENTITY_INCOMPLETE
            assert device.fw.state == State.DOWNLOADING
            # Cancel (obj 1.1) -> Idle, result 10
            resp = await server.request("sim-1", Code.POST, "/5/0/10")
            assert resp.code == Code.CHANGED
            assert (device.fw.state, device.fw.result) == (State.IDLE, UpdateResult.CANCELLED)
            # A TLV-wrapped single-message package (Leshan's generic Write)
            pkg = b"LABKIT-FW 3.1\n" + b"z" * 50
            tlv = bytes([0xC8, 0x00, len(pkg)]) + pkg
            resp = await server.request(
                "sim-1", Code.PUT, "/5/0/0", payload=tlv, content_format=11542
            )
            assert resp.code == Code.CHANGED
            assert device.fw.state == State.DOWNLOADED and device.package == pkg
            # reset with a single NUL byte
            resp = await server.request(
                "sim-1", Code.PUT, "/5/0/0", payload=b"\0", content_format=42
            )
            assert resp.code == Code.CHANGED
            assert device.fw.state == State.IDLE and device.package is None
            await device.stop()

    run(main())


def test_execute_update_reboots_and_registers_from_new_port() -> None:
    events: list[Event] = []
    image = _package("2.0.0", 20 * KIB)

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, on_event=events.append)
            assert server.ctx is not None
            old_port = device.port
            # aiocoap's own block-wise client, 512-byte blocks
            msg = server.message("sim-1", Code.PUT, "/5/0/0", content_format=42, payload=image)
            msg.remote.maximum_block_size_exp = 5
            resp = await asyncio.wait_for(server.ctx.request(msg).response, 10)
            assert resp.code == Code.CHANGED
            assert device.fw.state == State.DOWNLOADED
            watch = Watch(server, "sim-1", "/5/0/3")
            assert (await watch.first()).payload == b"2"
            resp = await server.request("sim-1", Code.POST, "/5/0/2")
            assert resp.code == Code.CHANGED  # answered before the reboot
            assert device.port == old_port  # the socket is still open when 2.04 arrives
            _, note = await watch.next()
            assert note.payload == b"3"  # the State 3 notification went out before the reboot
            watch.close()
            reg = await server.next("register", timeout=10)
            assert reg.port == device.port != old_port
            resp = await server.request("sim-1", Code.GET, "/3/0/3")
            assert resp.payload == b"2.0.0"
            resp = await server.request("sim-1", Code.GET, "/5/0/5")
            assert resp.payload == b"1"
            resp = await server.request("sim-1", Code.GET, "/5/0/3")
            assert resp.payload == b"0"
            await device.stop()

    run(main())
    kinds = [e.kind for e in events]
    assert kinds.count("registered") == 2 and "reboot" in kinds
    assert [e.state for e in events if e.kind == "fw_state"] == [1, 2, 3, 0]
    assert [e.result for e in events if e.kind == "fw_result"][-1] == 1


def test_install_failure_keeps_image_when_usable() -> None:
    def installer(pkg: bytes) -> InstallOutcome:
        return InstallOutcome(success=False, result=UpdateResult.UPDATE_FAILED, image_usable=True)

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, installer=installer)
            # a lab package that names no version
            package = b"LABKIT-FW \n" + b"x" * 100
            resp = await server.request(
                "sim-1", Code.PUT, "/5/0/0", payload=package, content_format=42
            )
            assert resp.code == Code.CHANGED
            await server.request("sim-1", Code.POST, "/5/0/2")
            await server.next("register", timeout=10)
            assert (device.fw.state, device.fw.result) == (
                State.DOWNLOADED,
                UpdateResult.UPDATE_FAILED,
            )
            assert device.firmware_version == "1.0.0"
            # the bootloader (no custom installer): a lab package without a version
            # installs old version + "+1"
            device.installer = None
            await server.request("sim-1", Code.POST, "/5/0/2")
            await server.next("register", timeout=10)
            assert device.firmware_version == "1.0.0+1"
            assert device.fw.result == UpdateResult.SUCCESS
            await device.stop()

    run(main())


class _Image(resource.Resource):
    def __init__(self, image: bytes) -> None:
        super().__init__()
        self.image = image
        self.hits = 0

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self.hits += 1
        msg = aiocoap.Message(code=Code.CONTENT, payload=self.image)
        msg.opt.etag = hashlib.sha256(self.image).digest()[:8]
        msg.opt.size2 = len(self.image)
        return msg


def test_pull_200k_and_missing_uri() -> None:
    events: list[Event] = []
    image = _package("4.0.0", 200 * KIB)

    async def main() -> None:
        site = resource.Site()
        repo = _Image(image)
        site.add_resource(["fw", "v4.bin"], repo)
        repo_ctx = await asyncio.wait_for(open_udp_context(site, loggername="repo"), 5)
        try:
            mi = repo_ctx.request_interfaces[0].token_interface.message_interface
            base = f"coap://127.0.0.1:{mi._local_port()}"
            async with RdPeer() as server:
                device = await started(server, on_event=events.append)
                resp = await server.request(
                    "sim-1",
                    Code.PUT,
                    "/5/0/1",
                    content_format=0,
                    payload=f"{base}/fw/v4.bin".encode(),
                )
                assert resp.code == Code.CHANGED
                await until(lambda: device.fw.state != State.DOWNLOADING, 20)
                assert device.fw.state == State.DOWNLOADED
                assert device.package == image
                resp = await server.request("sim-1", Code.GET, "/5/0/1")
                assert resp.payload.decode() == f"{base}/fw/v4.bin"
                # reset, then a URI with no resource behind it -> Result 7
                await server.request("sim-1", Code.PUT, "/5/0/1", content_format=0, payload=b"")
                assert device.fw.state == State.IDLE
                resp = await server.request(
                    "sim-1",
                    Code.PUT,
                    "/5/0/1",
                    content_format=0,
                    payload=f"{base}/fw/none.bin".encode(),
                )
                assert resp.code == Code.CHANGED
                await until(lambda: device.fw.state != State.DOWNLOADING, 10)
                assert (device.fw.state, device.fw.result) == (State.IDLE, UpdateResult.INVALID_URI)
                # an unsupported scheme (the device lists CoAP and HTTP) -> Result 9, no
                # download at all
                resp = await server.request(
                    "sim-1",
                    Code.PUT,
                    "/5/0/1",
                    content_format=0,
                    payload=b"coaps://127.0.0.1/fw.bin",
                )
                assert resp.code == Code.CHANGED
                assert device.fw.result == UpdateResult.UNSUPPORTED_PROTOCOL
                await device.stop()
        finally:
            await asyncio.wait_for(repo_ctx.shutdown(), 5)

    run(main())
    pulls = [e for e in events if e.kind == "block" and e.method == "pull"]
    assert len(pulls) == 200 and sum(e.bytes or 0 for e in pulls) == len(image)


def test_pull_timeout_is_connection_lost() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, request_timeout=0.5)
            # a silent peer: a bound UDP socket that never answers
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            )
            try:
                port = transport.get_extra_info("sockname")[1]
                await server.request(
                    "sim-1",
                    Code.PUT,
                    "/5/0/1",
                    content_format=0,
                    payload=f"coap://127.0.0.1:{port}/fw.bin".encode(),
                )
                await until(lambda: device.fw.state != State.DOWNLOADING, 5)
                assert device.fw.result == UpdateResult.CONNECTION_LOST
            finally:
                transport.close()
            await device.stop()

    run(main())


def test_user_defers_then_update_runs_after_max_defer_period() -> None:
    events: list[Event] = []

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, on_event=events.append)
            device.user_defers = True
            resp = await server.request(
                "sim-1", Code.PUT, "/5/0/13", payload=b"1", content_format=0
            )
            assert resp.code == Code.CHANGED
            await server.request(
                "sim-1", Code.PUT, "/5/0/0", payload=_package("5.0", 300), content_format=42
            )
            resp = await server.request("sim-1", Code.POST, "/5/0/2")
            assert resp.code == Code.CHANGED
            assert (device.fw.state, device.fw.result) == (State.DOWNLOADED, UpdateResult.DEFERRED)
            await server.next("register", timeout=10)  # after the 1 s deferral: install, reboot
            assert device.firmware_version == "5.0"
            assert device.fw.result == UpdateResult.SUCCESS
            await device.stop()

    run(main())
    assert 11 in [e.result for e in events if e.kind == "fw_result"]


def test_stop_during_install_reboot_stays_stopped() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            package = b"LABKIT-FW 2.0\n" + b"p" * 64
            await server.request("sim-1", Code.PUT, "/5/0/0", payload=package, content_format=42)
            await server.request("sim-1", Code.POST, "/5/0/2")
            await asyncio.sleep(device.install_delay + 0.01)  # the reboot has begun
            await device.stop(timeout=5)
            await asyncio.sleep(0.5)
            assert device.port is None and not device.registered
            # started again later, the interrupted install is reported as failed (image kept)
            await device.start(timeout=5)
            assert (device.fw.state, device.fw.result) in (
                (State.DOWNLOADED, UpdateResult.UPDATE_FAILED),
                (State.IDLE, UpdateResult.SUCCESS),
            )
            await device.stop()

    run(main())
