"""Shared helpers of the server tests: run a scenario bounded in time (wall or virtual), a
server with a recorder."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from labkit.events import Event
from labkit.server import LwM2MServer
from labkit.virtual.loop import VirtualEventLoop, current_clock

T = TypeVar("T")

SCENARIO_TIMEOUT = 60.0


def run(scenario: Callable[[], Awaitable[T]], timeout: float = SCENARIO_TIMEOUT) -> T:
    """Run ``scenario()`` in a fresh event loop, bounded by ``timeout`` seconds."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await scenario()

    return asyncio.run(main())


def run_virtual(scenario: Callable[[], Awaitable[T]], timeout: float = SCENARIO_TIMEOUT) -> T:
    """Run ``scenario()`` on a virtual-time loop (:mod:`labkit.virtual`), bounded by
    ``timeout`` simulated seconds: for scenarios whose outcome a timeout decides, so that no
    load on the machine can change it (servers and fixture devices use the loop's network)."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await scenario()

    loop = VirtualEventLoop(seed=1)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@contextlib.asynccontextmanager
async def running_server(**kwargs: Any) -> AsyncIterator[tuple[LwM2MServer, list[Event]]]:
    events: list[Event] = []
    kwargs.setdefault("clock", current_clock())  # simulated time on a virtual-time loop
    server = LwM2MServer(on_event=events.append, **kwargs)
    await server.start()
    try:
        yield server, events
    finally:
        await server.stop()


def kinds(events: list[Event], kind: str, device: str | None = None) -> list[Event]:
    return [e for e in events if e.kind == kind and (device is None or e.device == device)]


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it is true, at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
