"""A server, a fleet of simulated devices behind link relays, and a campaign factory."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from labkit.events import Event
from labkit.fota.campaign import Campaign
from labkit.fota.simulate import SimFleet
from labkit.server import LwM2MServer
from labkit.sim.link import LinkImpairment
from labkit.timebase import ScaledClock
from tests.linkem.links import steady_link

T = TypeVar("T")
KIB = 1024


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 100.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await scenario()

    return asyncio.run(main())


def lab_package(version: str = "2.0.0", size: int = 4 * KIB, seed: int = 1) -> bytes:
    head = f"LABKIT-FW {version}\n".encode()
    return head + random.Random(seed).randbytes(size - len(head))


class SimLab:
    def __init__(self, server: LwM2MServer, fleet: SimFleet, events: list[Event],
                 clock: ScaledClock) -> None:
        self.server = server
        self.fleet = fleet
        self.events = events
        self.clock = clock

    def campaign(self, package: bytes | None = None, **kwargs: Any) -> Campaign:
        kwargs.setdefault("fleet", self.fleet.tags())
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("on_event", self.events.append)
        return Campaign(self.server, package or lab_package(), **kwargs)

    def decisions(self, device: str | None = None) -> list[Event]:
        return [e for e in self.events if e.kind == "decision"
                and (device is None or e.device == device)]


@contextlib.asynccontextmanager
async def sim_lab(
    n: int,
    *,
    scale: float = 100.0,
    links: Sequence[LinkImpairment] | None = None,
    faults: Sequence[set[str]] | None = None,
    **fleet_kwargs: Any,
) -> AsyncIterator[SimLab]:
    clock = ScaledClock(scale)
    events: list[Event] = []
    server = LwM2MServer(on_event=events.append, clock=clock, time_scale=scale)
    await server.start()
    fleet = SimFleet(
        server, n, clock=clock,
        links=list(links) if links is not None else [steady_link(i) for i in range(n)],
        faults=faults, on_event=events.append, **fleet_kwargs,
    )
    try:
        await fleet.start(timeout=30)
        yield SimLab(server, fleet, events, clock)
    finally:
        await fleet.stop()
        await server.stop()
