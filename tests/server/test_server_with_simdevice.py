"""The server against the lab's simulated device (labkit.client), over real UDP on loopback."""

from __future__ import annotations

import asyncio
import random

import pytest

from labkit.lwm2m.paths import Path
from tests.server.labhelpers import eventually, kinds, run, running_server

client = pytest.importorskip("labkit.client")


def test_push_update_with_reboot_and_reregistration() -> None:
    package = b"LABKIT-FW 2.0.0\n" + random.Random(3).randbytes(64 * 1024)

    async def scenario() -> None:
        async with running_server() as (server, events):
            dev = client.SimulatedDevice("sim-1", server.uri, lifetime=60)
            await dev.start(timeout=10)
            try:
                reg = await server.wait_for_registration("sim-1", timeout=10)
                d = server.device("sim-1")
                assert (await d.read("/3/0/3")).raise_for_status().value == "1.0.0"

                states: list[object] = []
                obs = await d.observe("/5/0/3", lambda r: states.append(r.value), timeout=10)
                assert obs.active and obs.first.value == 0

                progress: list[int] = []
                resp = await d.write(
                    "/5/0/0", package, block_size=512, progress=lambda n, _: progress.append(n)
                )
                resp.raise_for_status()
                assert progress[-1] == len(package)
                assert len(kinds(events, "block")) == len(package) // 512 + 1
                await eventually(lambda: obs.latest.value == 2, timeout=10)

                before = reg.registered_at
                (await d.execute("/5/0/2")).raise_for_status()
                new = await server.wait_for_registration("sim-1", timeout=15, after=before)
                assert new is not reg
                assert not obs.active  # observations die with the old registration
                assert (await d.read("/5/0/5")).value == 1
                assert (await d.read("/3/0/3")).value == "2.0.0"
                assert (await d.read("/5/0/3")).value == 0
                versions = [e.fw_version for e in kinds(events, "fw_version", "sim-1")]
                assert versions == ["1.0.0", "2.0.0"]
                assert 1 in [e.result for e in kinds(events, "fw_result", "sim-1")]
                values = (await d.read("/5/0")).values
                assert values[Path.of(5, 0, 3)] == 0
            finally:
                await asyncio.wait_for(dev.stop(), 10)
            await eventually(lambda: "sim-1" not in server.registrations, timeout=5)

    run(scenario)
