"""Device Management operations from the server to a device peer over real UDP (digest 5, 7)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from typing import Any

import aiocoap
import pytest
from aiocoap import resource

from labkit.lwm2m.formats import ContentFormat, encode
from labkit.lwm2m.paths import Path
from labkit.server import (
    DeviceNotRegistered,
    DeviceUnreachable,
    RequestFailed,
    RequestTimeout,
)
from tests.server.fixture_device import FixtureDevice
from tests.server.labhelpers import eventually, kinds, run, run_virtual, running_server

P = Path.of


def test_read_defaults_and_explicit_formats() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("r") as dev:
            await dev.register(server.uri, lwm2m="1.1")
            d = server.device("r")

            resp = await d.read("/3/0/3")
            assert resp.ok and resp.code == "2.05"
            assert resp.content_format == ContentFormat.TEXT
            assert resp.values == {P(3, 0, 3): "1.0.0"} and resp.value == "1.0.0"
            assert resp.rtt_ms > 0

            resp = await d.read("/3/0")  # multi-value, LwM2M 1.1 -> SenML CBOR
            assert resp.content_format == ContentFormat.SENML_CBOR
            assert resp.values[P(3, 0, 9)] == 87 and resp.values[P(3, 0, 0)] == "labkit"

            resp = await d.read("/5/0", accept=ContentFormat.TLV)
            assert resp.content_format == ContentFormat.TLV
            assert resp.values[P(5, 0, 3)] == 0 and resp.values[P(5, 0, 8, 1)] == 2

            resp = await d.read("/5/0/8")  # multi-instance resource: not text/plain
            assert resp.content_format == ContentFormat.SENML_CBOR
            assert resp.values == {P(5, 0, 8, 0): 0, P(5, 0, 8, 1): 2}

            resp = await d.read("/4/0", accept=ContentFormat.SENML_JSON)
            assert resp.values[P(4, 0, 2)] == -95

            # every read carried an Accept
            assert [a for (m, _, a, _) in dev.log if m == "GET"] == [0, 112, 11542, 112, 110]

            # events: request/response pairs and typed rows
            assert len(kinds(events, "request")) == 5 and len(kinds(events, "response")) == 5
            # /3/0/3 was read alone and within /3/0; /5/0/3 within /5/0
            versions = kinds(events, "fw_version")
            assert [(e.fw_version, e.device, e.path) for e in versions] == [
                ("1.0.0", "r", "/3/0/3")
            ] * 2
            assert [e.state for e in kinds(events, "fw_state")] == [0]
            assert [e.result for e in kinds(events, "fw_result")] == [0]
            links = kinds(events, "link")
            assert any(e.battery == 87 for e in links)
            assert any(e.rssi_dbm == -95 and e.link_quality == 12 for e in links)
            resp_ev = kinds(events, "response")[0]
            assert resp_ev.code == "2.05" and resp_ev.rtt_ms is not None and resp_ev.bytes == 5

    run(scenario)


def test_read_from_a_1_0_client_defaults_to_tlv() -> None:
    async def scenario() -> None:
        async with running_server() as (server, _), FixtureDevice("old") as dev:
            await dev.register(server.uri, lwm2m="1.0")
            resp = await server.device("old").read("/3/0")
            assert resp.content_format == ContentFormat.TLV
            assert resp.values[P(3, 0, 3)] == "1.0.0"

    run(scenario)


def test_read_errors_and_undecodable_answers() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("e") as dev:
            await dev.register(server.uri)
            d = server.device("e")
            resp = await d.read("/3/0/77")
            assert resp.code == "4.04" and not resp.ok
            with pytest.raises(RequestFailed) as info:
                resp.raise_for_status()
            assert info.value.code == "4.04" and info.value.path == "/3/0/77"
            # TLV for a string answered, but claimed to be SenML CBOR: decode error kept
            dev.site.add_resource(["3", "0", "15"], _Liar())
            resp = await d.read("/3/0/15")
            assert resp.ok and resp.values == {} and resp.error
            assert any(e.kind == "error" and e.path == "/3/0/15" for e in events)

    run(scenario)


class _Liar(resource.Resource):
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=b"\xff\x00garbage", content_format=112)


class _Slow(resource.Resource):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.active = 0
        self.max_active = 0

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await asyncio.sleep(self.delay)
        self.active -= 1
        return aiocoap.Message(payload=b"x", content_format=0)


def test_discover_and_not_registered() -> None:
    async def scenario() -> None:
        async with running_server() as (server, _), FixtureDevice("disc") as dev:
            with pytest.raises(DeviceNotRegistered):
                server.device("disc")
            await dev.register(server.uri)
            resp = await server.device("disc").discover("/5/0")
            assert resp.content_format == 40
            targets = [link.target for link in resp.links]
            assert "/5/0" in targets and "/5/0/3" in targets
            assert dev.log[-1][2] == 40

    run(scenario)


def test_timeout_and_one_request_at_a_time() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("slow") as dev:
            slow = _Slow(0.3)
            dev.site.add_resource(["3", "0", "14"], slow)
            await dev.register(server.uri)
            d = server.device("slow")
            with pytest.raises(RequestTimeout):
                await d.read("/3/0/14", timeout=0.1)
            assert isinstance(RequestTimeout("x"), TimeoutError)
            assert any(e.kind == "error" and "no answer" in (e.detail or "") for e in events)
            await asyncio.sleep(0.4)
            slow.max_active = 0
            # NSTART = 1: two concurrent reads reach the device one after the other
            results = await asyncio.gather(d.read("/3/0/14"), d.read("/3/0/14"))
            assert all(r.ok for r in results)
            assert slow.max_active == 1

    run_virtual(scenario)


def test_write_execute_attributes_create_delete() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("w") as dev:
            await dev.register(server.uri)
            d = server.device("w")

            uri = "coap://127.0.0.1:5683/fw.bin"
            resp = await d.write("/5/0/1", uri)
            assert resp.code == "2.04"
            assert dev.values[P(5, 0, 1)] == uri
            assert dev.log[-1] == ("PUT", "/5/0/1", 0, None)

            resp = await d.write("/3/0", {"/3/0/1": "model-x"}, partial=True)
            assert resp.code == "2.04" and dev.values[P(3, 0, 1)] == "model-x"
            assert dev.log[-1] == ("POST", "/3/0", 112, None)

            resp = await d.write("/5/0/1", "coap://x/y", content_format=ContentFormat.TLV)
            assert resp.ok and dev.values[P(5, 0, 1)] == "coap://x/y"

            resp = await d.execute("/5/0/2")
            assert resp.code == "2.04" and dev.executed == [("/5/0/2", "")]
            resp = await d.execute("/5/0/2", "0,1='x'")
            assert dev.executed[-1] == ("/5/0/2", "0,1='x'")

            resp = await d.write_attributes("/5/0/3", pmin=1, pmax=30, st=0.5)
            assert resp.code == "2.04"
            assert dev.attributes["/5/0/3"] == ["pmin=1", "pmax=30", "st=0.5"]

            resp = await d.create("/9", {"/9/0/0": "hello"})
            assert resp.code == "2.01" and resp.location == "/9/0"
            assert dev.values[P(9, 0, 0)] == "hello"
            resp = await d.delete("/9/0")
            assert resp.code == "2.02" and P(9, 0, 0) not in dev.values

            assert {e.detail for e in kinds(events, "request")} >= {
                "write",
                "write-partial",
                "execute",
                "write-attributes",
                "create",
                "delete",
            }

    run(scenario)


def _image(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def test_block1_push_of_one_mib_with_progress() -> None:
    image = _image(1 << 20)

    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("push") as dev:
            await dev.register(server.uri)
            progress: list[tuple[int, int]] = []
            resp = await server.device("push").write(
                "/5/0/0", image, progress=lambda done, total: progress.append((done, total))
            )
            assert resp.code == "2.04"
            assert dev.package_sha256 == hashlib.sha256(image).hexdigest()
            assert dev.package_format == ContentFormat.OPAQUE
            assert len(progress) == 1024
            assert progress[0] == (1024, 1 << 20) and progress[-1] == (1 << 20, 1 << 20)
            assert all(a[0] < b[0] for a, b in itertools.pairwise(progress))
            blocks = kinds(events, "block")
            assert len(blocks) == 1024
            assert [b.block for b in blocks[:3]] == [0, 1, 2]
            assert blocks[0].code == "2.31" and blocks[-1].code == "2.04"
            assert sum(b.bytes or 0 for b in blocks) == 1 << 20
            # the device reports Downloaded once the package is complete
            assert dev.values[P(5, 0, 3)] == 2

    run(scenario)


def test_block1_late_negotiation_to_smaller_blocks() -> None:
    image = _image(10_000)

    async def scenario() -> None:
        async with (
            running_server() as (server, events),
            FixtureDevice("tiny", small_blocks=256) as dev,
        ):
            await dev.register(server.uri)
            progress: list[int] = []
            resp = await server.device("tiny").write(
                "/5/0/0", image, progress=lambda done, total: progress.append(done)
            )
            assert resp.code == "2.04"
            assert dev.package == image
            # first block at 1024, then the 256 the device asked for
            assert dev.block_sizes[0] == 1024 and set(dev.block_sizes[1:-1]) == {256}
            assert progress[-1] == len(image)
            assert [b.block for b in kinds(events, "block")][:3] == [0, 4, 5]

    run(scenario)


def test_block1_with_a_chosen_block_size() -> None:
    image = _image(3000)

    async def scenario() -> None:
        async with running_server() as (server, _), FixtureDevice("bs", small_blocks=1024) as dev:
            await dev.register(server.uri)
            resp = await server.device("bs").write("/5/0/0", image, block_size=512)
            assert resp.ok and dev.package == image
            assert dev.block_sizes == [512] * 5 + [3000 - 5 * 512]
            with pytest.raises(ValueError, match="block_size"):
                await server.device("bs").write("/5/0/0", image, block_size=1000)

    run(scenario)


def test_block1_refused_with_413() -> None:
    async def scenario() -> None:
        async with (
            running_server() as (server, events),
            FixtureDevice("full", too_large=2048) as dev,
        ):
            await dev.register(server.uri)
            resp = await server.device("full").write("/5/0/0", _image(5000))
            assert resp.code == "4.13" and not resp.ok
            with pytest.raises(RequestFailed):
                resp.raise_for_status()
            assert kinds(events, "response")[-1].code == "4.13"
            assert dev.package is None

    run(scenario)


def test_observe_three_notifications_then_cancel() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("obs") as dev:
            await dev.register(server.uri)
            got: list[object] = []
            obs = await server.device("obs").observe(
                "/5/0/3", lambda resp: got.append(resp.value), timeout=5
            )
            assert obs.active and obs.first.code == "2.05" and obs.first.value == 0
            assert dev.observer_counts["/5/0/3"] == 1
            for state in (1, 2, 0):
                dev.set_values({P(5, 0, 3): state})
                latest = await obs.next(timeout=5)
                assert latest.value == state
            assert got == [1, 2, 0] and obs.count == 3 and obs.latest.value == 0
            assert len(kinds(events, "notify")) == 3
            # fw_state rows: the initial 0 from the Observe answer, then 1, 2, 0
            assert [e.state for e in kinds(events, "fw_state")] == [0, 1, 2, 0]

            obs.cancel()
            assert not obs.active
            # reactive cancel: the next notification is answered with RST, which ends the
            # observation on the device
            dev.set_values({P(5, 0, 3): 1})
            await eventually(lambda: dev.observer_counts["/5/0/3"] == 0, timeout=10)
            assert got == [1, 2, 0]
            with pytest.raises(StopAsyncIteration):
                await obs.next(timeout=1)

    run(scenario)


def test_observe_as_async_iterator_and_refused_observe() -> None:
    async def scenario() -> None:
        async with running_server() as (server, _), FixtureDevice("it") as dev:
            await dev.register(server.uri)
            d = server.device("it")
            obs = await d.observe("/5/0/5")
            seen: list[object] = []

            async def consume() -> None:
                async for resp in obs:
                    seen.append(resp.value)
                    if len(seen) == 2:
                        obs.cancel()

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.05)
            dev.set_values({P(5, 0, 5): 1})
            await eventually(lambda: len(seen) == 1)
            dev.set_values({P(5, 0, 5): 8})
            await asyncio.wait_for(task, 5)
            assert seen == [1, 8]

            bad = await d.observe("/3/0/77")
            assert not bad.active and bad.first.code == "4.04"

    run(scenario)


def test_queue_mode_request_waits_for_the_next_update() -> None:
    async def scenario() -> None:
        async with (
            running_server(queue_awake_window=0.2) as (server, events),
            FixtureDevice("sleepy") as dev,
        ):
            await dev.register(server.uri, extra=["Q"])
            reg = server.registrations["sleepy"]
            assert reg.queue_mode and server.is_awake("sleepy")
            d = server.device("sleepy")
            assert (await d.read("/3/0/3")).ok  # awake right after registering
            await asyncio.sleep(0.3)
            assert not server.is_awake("sleepy")

            reads_before = len([x for x in dev.log if x[0] == "GET"])
            task = asyncio.create_task(d.read("/3/0/3", timeout=5))
            await asyncio.sleep(0.3)
            assert not task.done()
            assert len([x for x in dev.log if x[0] == "GET"]) == reads_before
            await dev.update(server.uri)
            resp = await asyncio.wait_for(task, 5)
            assert resp.ok and resp.value == "1.0.0"
            assert any("queue mode" in (e.detail or "") for e in kinds(events, "note"))

            await asyncio.sleep(0.3)
            with pytest.raises(RequestTimeout):
                await d.read("/3/0/3", timeout=0.2)

    run_virtual(scenario)


def test_send_is_accepted_and_recorded() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("snd") as dev:
            await dev.register(server.uri)
            payload = encode(
                ContentFormat.SENML_JSON,
                Path(()),
                {P(5, 0, 3): 2, P(3, 0, 3): "2.0.0", P(4, 0, 2): -101},
            )
            resp = await dev.send_request(
                aiocoap.POST, server.uri + "/dp", payload=payload, content_format=110
            )
            assert resp.code == aiocoap.CHANGED
            (snd,) = kinds(events, "send")
            assert snd.device == "snd" and snd.bytes == len(payload)
            assert kinds(events, "fw_state")[0].state == 2
            assert kinds(events, "fw_version")[0].fw_version == "2.0.0"
            assert kinds(events, "link")[0].rssi_dbm == -101

            cbor = encode(ContentFormat.SENML_CBOR, Path(()), {P(5, 0, 5): 1})
            resp = await dev.send_request(
                aiocoap.POST, server.uri + "/dp", payload=cbor, content_format=112
            )
            assert resp.code == aiocoap.CHANGED
            assert kinds(events, "fw_result")[0].result == 1

    run(scenario)


@pytest.mark.parametrize(
    ("payload", "cf", "registered", "code"),
    [
        pytest.param(b'[{"n": "/5/0/3", "v": ', 110, True, "4.00", id="broken-senml-json"),
        pytest.param(b"\xff\xff\xff", 112, True, "4.00", id="broken-senml-cbor"),
        pytest.param(b"2", 0, True, "4.15", id="text-plain"),
        pytest.param(b"2", 9999, True, "4.15", id="unknown-format"),
        pytest.param(b"[]", None, True, "4.00", id="no-format"),
        pytest.param(b'[{"n": "/5/0/3", "v": 2}]', 110, False, "4.00", id="not-registered"),
    ],
)
def test_bad_send_is_refused(payload: bytes, cf: int | None, registered: bool, code: str) -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("bad") as dev:
            if registered:
                await dev.register(server.uri)
            resp = await dev.send_request(
                aiocoap.POST, server.uri + "/dp", payload=payload, content_format=cf
            )
            assert str(resp.code).startswith(code)
            err = kinds(events, "error")[-1]
            assert err.code == code and err.path == "/dp"
            assert not kinds(events, "send")
            # the server still answers a valid Register afterwards
            dev.endpoint = "bad-2"
            assert (await dev.register(server.uri)).code == aiocoap.CREATED

    run(scenario)


class _IncompleteAt(resource.Resource):
    """A /5/0/0 that clocks Block1 itself and answers 4.08 at block ``fail_at``."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.seen: list[int] = []

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        b1 = request.opt.block1
        self.seen.append(b1.block_number)
        if b1.block_number == self.fail_at:
            return aiocoap.Message(code=aiocoap.REQUEST_ENTITY_INCOMPLETE)
        resp = aiocoap.Message(code=aiocoap.CONTINUE)
        resp.opt.block1 = (b1.block_number, True, b1.size_exponent)
        return resp


class _StallAt(_IncompleteAt):
    """Stops answering (for longer than the test's timeout) at block ``fail_at``."""

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        if request.opt.block1.block_number == self.fail_at:
            await asyncio.sleep(3)
        return await super().render_put(request)


def test_block1_stops_on_408_and_times_out_on_a_stalled_block() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("b") as dev:
            await dev.register(server.uri)
            failing = _IncompleteAt(fail_at=3)
            dev.site.add_resource(["5", "0", "0"], failing)
            progress: list[int] = []
            resp = await server.device("b").write(
                "/5/0/0", _image(8000), progress=lambda n, _: progress.append(n)
            )
            assert resp.code == "4.08" and failing.seen == [0, 1, 2, 3]
            assert progress == [1024, 2048, 3072]
            assert kinds(events, "block")[-1].code == "4.08"

            stalling = _StallAt(fail_at=2)
            dev.site.add_resource(["5", "0", "0"], stalling)
            with pytest.raises(RequestTimeout):
                await server.device("b").write("/5/0/0", _image(8000), timeout=0.3)
            assert stalling.seen == [0, 1]

    run_virtual(scenario)


class _PacedBlocks(resource.Resource):
    """/5/0/0 taking ``pace`` seconds over each 64-byte block (``stall`` over block ``stall_at``)
    before handing it to :class:`FixtureDevice`'s own Block1 assembly."""

    def __init__(self, inner: Any, pace: float, stall_at: int = -1, stall: float = 0.0):
        super().__init__()
        self.inner = inner  # the fixture's own /5/0/0 resource
        self.pace, self.stall_at, self.stall = pace, stall_at, stall
        self.seen: list[int] = []

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        number = request.opt.block1.block_number
        self.seen.append(number)
        await asyncio.sleep(self.stall if number == self.stall_at else self.pace)
        return await self.inner.render_put(request)


BLOCK_PACE_S = 0.4  # each block takes 0.4 simulated s: under the 0.5 s no-progress timeout


def test_block1_timeout_follows_progress() -> None:
    """On virtual time: 256 blocks of 0.4 s each (102.4 s) under a 0.5 s timeout succeed,
    because the timeout counts from the last progress; the same transfer with one block taking
    0.6 s times out right there (so the timeout is really applied, per block)."""
    image = _image(16 * 1024)

    async def scenario() -> None:
        async with running_server() as (server, _), FixtureDevice("long", small_blocks=64) as dev:
            await dev.register(server.uri)
            loop = asyncio.get_running_loop()
            assembly = dev.site._resources[("5", "0", "0")]  # the fixture's _SmallBlocks
            paced = _PacedBlocks(assembly, BLOCK_PACE_S)
            dev.site.add_resource(["5", "0", "0"], paced)
            started = loop.time()
            resp = await server.device("long").write("/5/0/0", image, block_size=64, timeout=0.5)
            took = loop.time() - started
            assert resp.ok and dev.package == image
            assert paced.seen == list(range(256))
            # 200 times the timeout, yet not cut: only the device's pace sets the duration
            assert took == pytest.approx(256 * BLOCK_PACE_S, rel=0.01)

            stalled = _PacedBlocks(assembly, BLOCK_PACE_S, stall_at=100, stall=0.6)
            dev.site.add_resource(["5", "0", "0"], stalled)
            started = loop.time()
            with pytest.raises(RequestTimeout):
                await server.device("long").write("/5/0/0", image, block_size=64, timeout=0.5)
            took = loop.time() - started
            assert stalled.seen == list(range(101))
            # cut 0.5 s after block 99 was acknowledged, while block 100 was still pending
            assert took == pytest.approx(100 * BLOCK_PACE_S + 0.5, abs=0.05)

    run_virtual(scenario, timeout=600)


def test_device_gone_is_unreachable_or_timeout() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events):
            dev = await FixtureDevice("gone").start()
            await dev.register(server.uri)
            await dev.stop()
            with pytest.raises((DeviceUnreachable, RequestTimeout)):
                await server.device("gone").read("/3/0/3", timeout=1.0)
            assert kinds(events, "error")[-1].device == "gone"

    run_virtual(scenario)


def test_observation_wait_for_and_dropped_on_deregister() -> None:
    async def scenario() -> None:
        async with running_server() as (server, _), FixtureDevice("wf") as dev:
            await dev.register(server.uri)
            obs = await server.device("wf").observe("/5/0/3")
            assert (await obs.wait_for(lambda r: r.value == 0, timeout=1)).value == 0

            async def progress() -> None:
                for state in (1, 2):
                    await asyncio.sleep(0.02)
                    dev.set_values({P(5, 0, 3): state})

            task = asyncio.create_task(progress())
            resp = await obs.wait_for(lambda r: r.value == 2, timeout=5)
            assert resp.value == 2
            await task
            with pytest.raises(TimeoutError):
                await obs.wait_for(lambda r: r.value == 3, timeout=0.1)
            await dev.deregister(server.uri)
            assert not obs.active
            with pytest.raises(StopAsyncIteration):
                await obs.wait_for(lambda r: r.value == 3, timeout=1)

    run_virtual(scenario)


class _Fixed(resource.Resource):
    def __init__(self, payload: bytes) -> None:
        super().__init__()
        self.payload = payload
        self.hits = 0

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self.hits += 1
        return aiocoap.Message(payload=self.payload, content_format=0)


def test_requests_use_the_alternate_root_path() -> None:
    async def scenario() -> None:
        async with running_server() as (server, _), FixtureDevice("alt") as dev:
            fixed = _Fixed(b"9.9.9")
            dev.site.add_resource(["lwm2m", "3", "0", "3"], fixed)
            links = b'</lwm2m>;rt="oma.lwm2m";ct="110 112",</lwm2m/3/0>,</lwm2m/5/0>'
            await dev.register(server.uri, payload=links)
            reg = server.registrations["alt"]
            assert reg.root_path == "/lwm2m" and reg.content_formats == (110, 112)
            resp = await server.device("alt").read("/3/0/3")
            assert resp.value == "9.9.9" and fixed.hits == 1

    run(scenario)


def test_queued_request_follows_a_re_registration() -> None:
    async def scenario() -> None:
        async with (
            running_server(queue_awake_window=0.1) as (server, _),
            FixtureDevice("q") as before,
            FixtureDevice("q") as after,
        ):
            await before.register(server.uri, extra=["Q"])
            await asyncio.sleep(0.2)
            task = asyncio.create_task(server.device("q").read("/3/0/3", timeout=5))
            await asyncio.sleep(0.1)
            assert not task.done()
            await after.register(server.uri, extra=["Q"])  # rebooted: new port, new location
            assert (await asyncio.wait_for(task, 5)).ok
            assert not [x for x in before.log if x[0] == "GET"]
            assert [x[1] for x in after.log if x[0] == "GET"] == ["/3/0/3"]

    run_virtual(scenario)
