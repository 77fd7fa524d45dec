"""The simulated device against the lab's own LwM2M server (labkit.server), over real UDP."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from labkit.client import SimulatedDevice
from labkit.events import Event
from labkit.lwm2m.objects import State
from labkit.lwm2m.paths import Path

server_mod = pytest.importorskip("labkit.server")


async def _eventually(predicate: object, timeout: float) -> None:
    async def poll() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def test_reads_attributes_observe_and_push_with_labkit_server() -> None:
    events: list[Event] = []

    async def main() -> None:
        server = server_mod.LwM2MServer(on_event=events.append)
        await server.start()
        device = SimulatedDevice("lab-1", server.uri, lifetime=60, on_event=events.append)
        try:
            await device.start(timeout=10)
            await server.wait_for_registration("lab-1", timeout=10)
            proxy = server.device("lab-1")
            values = (await proxy.read("/3/0")).raise_for_status().values
            assert values[Path.of(3, 0, 2)] == "lab-1"
            assert values[Path.of(3, 0, 3)] == "1.0.0"
            (await proxy.write_attributes("/4/0/2", pmin=0, pmax=30)).raise_for_status()
            seen: list[object] = []
            obs = await proxy.observe("/4/0/2", lambda r: seen.append(r.value), timeout=10)
            assert obs.active and obs.first.value == -85
            device.set_value("/4/0/2", -110)
            await _eventually(lambda: -110 in seen, 5)
            image = b"LABKIT-FW 9.9\n" + bytes(range(256)) * 40
            (await proxy.write("/5/0/0", image, block_size=256)).raise_for_status()
            assert device.fw.state == State.DOWNLOADED and device.package == image
            assert (await proxy.read("/0")).code == "4.01"
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(device.stop(), 10)
            await server.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert any(e.source == "server" for e in events)
    assert any(e.source == "device" and e.kind == "deregistered" for e in events)
