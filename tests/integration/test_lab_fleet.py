"""A fleet through the lab: 100 simulated devices register concurrently and each answers a read."""

from __future__ import annotations

import asyncio

import pytest

from labkit.runtime import Lab

pytestmark = pytest.mark.slow


def test_hundred_devices_register_concurrently_and_answer() -> None:
    with Lab(request_timeout=10.0, seed=7) as lab:
        handles = lab.add_devices(100, prefix="fleet-", concurrency=50, lifetime=300)
        assert len(handles) == 100
        frame = lab.registrations()
        assert len(frame) == 100
        assert frame["endpoint"].is_unique
        assert frame["address"].is_unique  # one UDP socket (port) per device
        assert frame["endpoint"].iloc[0] == "fleet-0001"

        # Every device answers one read, through the synchronous API ...
        versions = [h.read("/3/0/3") for h in handles]
        assert versions == ["1.0.0"] * 100

        # ... and concurrently on the lab loop.
        async def read_all() -> list[object]:
            server = lab.server
            responses = await asyncio.gather(
                *(server.device(h.endpoint).read("/5/0/3") for h in handles)
            )
            return [r.code for r in responses]

        assert lab.call(read_all(), timeout=60) == ["2.05"] * 100

        events = lab.events()
        registered = events[(events["kind"] == "registered") & (events["source"] == "server")]
        assert registered["device"].nunique() == 100
