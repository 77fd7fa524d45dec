"""Shared helpers of the server tests: run a scenario bounded in time, a server with a recorder."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from labkit.events import Event
from labkit.server import LwM2MServer

T = TypeVar("T")

SCENARIO_TIMEOUT = 60.0


def run(scenario: Callable[[], Awaitable[T]], timeout: float = SCENARIO_TIMEOUT) -> T:
    """Run ``scenario()`` in a fresh event loop, bounded by ``timeout`` seconds."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await scenario()

    return asyncio.run(main())


@contextlib.asynccontextmanager
async def running_server(**kwargs: Any) -> AsyncIterator[tuple[LwM2MServer, list[Event]]]:
    events: list[Event] = []
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
