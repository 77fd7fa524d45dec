"""The lab as the fault tests run it: LwM2M server, firmware repository and simulated devices on
loopback, plus a small driver that takes one device through the four FOTA steps.

The driver talks to the device only through the lab's :class:`~labkit.server.LwM2MServer`
(write /5/0/0 or /5/0/1, Execute /5/0/2 or /5/0/10, read the final /5/0/3, /5/0/5, /3/0/3 from
the registration after the reboot); it watches the simulated device object only to know when
to take the next step. Every await is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from labkit.client import SimulatedDevice
from labkit.client.model import FaultTiming
from labkit.events import Event
from labkit.lwm2m.objects import State
from labkit.repo import FirmwareRepository, build_image, ensure_key
from labkit.server import LwM2MServer, ServerError

KIB = 1024
OLD = "1.0.0"
NEW = "2.0.0"

#: Fast fault timing for tests (seconds).
TIMING = FaultTiming(power_off_s=0.15, link_drop_s=2.5, defer_s=0.5)


@cache
def lab_key(directory: str) -> Path:
    return ensure_key("ed25519", Path(directory))


@cache
def image(key: Path, version: str = NEW, size: int = 12 * KIB, broken: str | None = None) -> bytes:
    return build_image(version=version, size=size, key=key, broken=broken, seed=3)


@dataclass
class Final:
    """What the server reads from the device once it has settled."""

    state: int | None
    result: int | None
    version: str | None
    registrations: int

    def as_tuple(self) -> tuple[int | None, int | None, str | None]:
        return (self.state, self.result, self.version)


class Lab:
    """Server + repository + devices; ``async with Lab(key) as lab:``."""

    def __init__(self, key: Path, *, server_timeout: float = 2.0) -> None:
        self.key = key
        self.events: list[Event] = []
        self.server = LwM2MServer(request_timeout=server_timeout, on_event=self.events.append)
        self.repo = FirmwareRepository(on_event=self._repo_event)
        self.devices: list[SimulatedDevice] = []
        #: Called with every repository event (after it is recorded).
        self.on_repo_event: Callable[[Event], None] | None = None

    def _repo_event(self, event: Event) -> None:
        self.events.append(event)
        if self.on_repo_event is not None:
            self.on_repo_event(event)

    async def __aenter__(self) -> Lab:
        await self.server.start()
        await self.repo.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(
            *(asyncio.wait_for(d.stop(timeout=2), 10) for d in self.devices),
            return_exceptions=True,
        )
        await self.repo.stop()
        await self.server.stop()

    async def device(self, endpoint: str, **kwargs: Any) -> SimulatedDevice:
        options: dict[str, Any] = {
            "firmware_version": OLD,
            "lifetime": 60,
            "request_timeout": 1.0,
            "trusted_key": self.key,
            "fault_timing": TIMING,
            "on_event": self.events.append,
            "retry_delay": 0.2,
            "download_retries": 2,
            "push_idle_timeout": 5.0,
        }
        options.update(kwargs)
        dev = SimulatedDevice(endpoint, self.server.uri, **options)
        self.devices.append(dev)
        await dev.start(timeout=10)
        await self.server.wait_for_registration(endpoint, timeout=10)
        return dev

    def registrations(self, endpoint: str) -> int:
        return sum(
            1
            for e in self.events
            if e.source == "server" and e.kind == "registered" and e.device == endpoint
        )


async def until(predicate: Callable[[], bool], timeout: float, what: str = "") -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what}") from None


def settled(dev: SimulatedDevice) -> bool:
    """Registered, and not in the middle of a download or an install."""
    return dev.registered and dev.fw.state not in (State.DOWNLOADING, State.UPDATING)


async def deliver(
    lab: Lab, dev: SimulatedDevice, *, push: bytes | None = None, uri: str | None = None
) -> str | None:
    """PUSH ``push`` or PULL ``uri``; returns the server's answer code (None: no answer)."""
    if push is None and uri is None:
        return None  # already delivered
    proxy = lab.server.device(dev.endpoint)
    try:
        if push is not None:
            resp = await proxy.write("/5/0/0", push, block_size=1024)
        else:
            resp = await proxy.write("/5/0/1", uri)
    except (ServerError, TimeoutError):
        return None
    return resp.code


async def execute(lab: Lab, dev: SimulatedDevice, path: str = "/5/0/2") -> str | None:
    with contextlib.suppress(ServerError, TimeoutError):
        return (await lab.server.device(dev.endpoint).execute(path)).code
    return None


async def read_final(lab: Lab, dev: SimulatedDevice) -> Final:
    """/5/0/3, /5/0/5 and /3/0/3 as the server reads them from the current registration."""
    await until(lambda: settled(dev), 30, f"{dev.endpoint} settles")
    await lab.server.wait_for_registration(dev.endpoint, timeout=10)
    proxy = lab.server.device(dev.endpoint)
    values: list[Any] = []
    for path in ("/5/0/3", "/5/0/5", "/3/0/3"):
        for _attempt in range(5):
            try:
                resp = await proxy.read(path, timeout=2)
            except (ServerError, TimeoutError):
                await asyncio.sleep(0.3)
                continue
            values.append(resp.value)
            break
        else:
            values.append(None)
    state, result, version = values
    return Final(
        state=None if state is None else int(state),
        result=None if result is None else int(result),
        version=None if version is None else str(version),
        registrations=lab.registrations(dev.endpoint),
    )


async def update(
    lab: Lab,
    dev: SimulatedDevice,
    *,
    push: bytes | None = None,
    uri: str | None = None,
    before: Callable[[], Any] | None = None,
    cancel: bool = False,
) -> Final:
    """One FOTA attempt: deliver, wait, Execute (or Cancel), wait for the reboot, read."""
    if before is not None:
        await before()
    await deliver(lab, dev, push=push, uri=uri)
    await until(lambda: settled(dev), 30, f"{dev.endpoint} download ends")
    if dev.fw.state == State.DOWNLOADED:
        if cancel:
            await execute(lab, dev, "/5/0/10")
        else:
            reg = lab.server.registrations[dev.endpoint]
            for _attempt in range(3):  # a lost Execute is sent again (a busy loaded lab)
                if await execute(lab, dev) is not None or dev.fw.state != State.DOWNLOADED:
                    break
            await until(
                lambda: dev.fw.state != State.DOWNLOADED or dev.fw.result != 11,
                30,
                f"{dev.endpoint} deferral ends",
            )
            with contextlib.suppress(TimeoutError):
                await lab.server.wait_for_registration(
                    dev.endpoint, timeout=20, after=reg.registered_at
                )
    return await read_final(lab, dev)


@contextlib.asynccontextmanager
async def lab_for(key: Path) -> AsyncIterator[Lab]:
    async with Lab(key) as lab:
        yield lab
