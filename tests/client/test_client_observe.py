"""Observe on the simulated device: notifications on change, pmin, pmax, gt/lt/st, Accept."""

from __future__ import annotations

import asyncio

from aiocoap.numbers.codes import Code

from labkit.events import Event
from labkit.lwm2m.formats import decode
from labkit.lwm2m.paths import Path
from tests.client.peer import RdPeer, Watch, run, started


def test_observe_state_during_push_and_per_observation_accept() -> None:
    events: list[Event] = []

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, on_event=events.append)
            state = Watch(server, "sim-1", "/5/0/3")
            assert (await state.first()).payload == b"0"
            whole = Watch(server, "sim-1", "/5/0", accept=110)
            first = await whole.first()
            assert int(first.opt.content_format) == 110
            resp = await server.request(
                "sim-1",
                Code.PUT,
                "/5/0/0",
                payload=b"LABKIT-FW 1.1\n" + b"abc" * 10,
                content_format=42,
            )
            assert resp.code == Code.CHANGED
            # 0 -> 1 -> 2 in one request: the observer sees the latest value (observe is lossy)
            _, note = await state.next()
            assert note.payload in (b"1", b"2")
            if note.payload == b"1":
                _, note = await state.next()
            assert note.payload == b"2"
            _, note = await whole.next()
            values = decode(110, note.payload, Path.parse("/5/0"))
            assert values[Path.parse("/5/0/3")] == 2
            state.close()
            whole.close()
            await device.stop()

    run(main())
    notes = [e for e in events if e.kind == "notify" and e.path == "/5/0/3"]
    assert notes and notes[-1].state == 2


def test_pmax_sends_without_change() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            resp = await server.request("sim-1", Code.PUT, "/3/0/9", uri_query=["pmax=1"])
            assert resp.code == Code.CHANGED
            watch = Watch(server, "sim-1", "/3/0/9")
            await watch.first()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            t1, _ = await watch.next(timeout=3)
            t2, _ = await watch.next(timeout=3)
            assert 0.8 <= t1 - t0 <= 2.0
            assert 0.8 <= t2 - t1 <= 2.0
            watch.close()
            await device.stop()

    run(main())


def test_pmin_rate_limits_changes() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            await server.request("sim-1", Code.PUT, "/4/0", uri_query=["pmin=1"])
            watch = Watch(server, "sim-1", "/4/0/2")
            await watch.first()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            device.set_value("/4/0/2", -90)
            device.set_value("/4/0/2", -95)  # both inside pmin: one notification, latest value
            t1, note = await watch.next(timeout=3)
            assert t1 - t0 >= 0.8
            assert note.payload == b"-95"
            device.set_value("/4/0/2", -99)
            t2, note = await watch.next(timeout=3)
            assert t2 - t1 >= 0.8 and note.payload == b"-99"
            watch.close()
            await device.stop()

    run(main())


def test_numeric_conditions_st_lt_gt() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            device.set_value("/3/0/9", 50)
            await server.request("sim-1", Code.PUT, "/3/0/9", uri_query=["st=10", "lt=20"])
            watch = Watch(server, "sim-1", "/3/0/9")
            await watch.first()
            device.set_value("/3/0/9", 55)  # moved 5 < st
            assert await watch.nothing_for(0.3)
            device.set_value("/3/0/9", 61)  # moved 11 >= st
            _, note = await watch.next()
            assert note.payload == b"61"
            device.set_value("/3/0/9", 60)
            assert await watch.nothing_for(0.3)
            await server.request("sim-1", Code.PUT, "/3/0/9", uri_query=["st", "lt=59.5"])
            device.set_value("/3/0/9", 59)  # crossed lt=59.5 (61 -> 59)
            _, note = await watch.next()
            assert note.payload == b"59"
            watch.close()
            await device.stop()

    run(main())


def test_observation_of_unknown_path_fails_and_stops_on_reboot() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            resp = await server.request("sim-1", Code.GET, "/3/7", observe=0)
            assert resp.code == Code.NOT_FOUND and resp.opt.observe is None
            watch = Watch(server, "sim-1", "/3/0/9")
            await watch.first()
            await device.reboot(timeout=5)
            await server.next("register")
            assert device._observations is None  # observations die with the registration
            device.set_value("/3/0/9", 1)
            assert await watch.nothing_for(0.3)
            watch.close()
            await device.stop()

    run(main())


def test_declined_observations_answer_once() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            resp = await server.request("sim-1", Code.GET, "/3/0", observe=0, accept=40)
            assert resp.code == Code.CONTENT and resp.opt.observe is None  # Discover
            resp = await server.request(
                "sim-1", Code.PUT, "/1/0/1", observe=0, payload=b"90", content_format=0
            )
            assert resp.code == Code.CHANGED and resp.opt.observe is None
            resp = await server.request("sim-1", Code.GET, "/5/0/0", observe=0)
            assert resp.code == Code.METHOD_NOT_ALLOWED
            assert device._observations is None
            await device.stop()

    run(main())
