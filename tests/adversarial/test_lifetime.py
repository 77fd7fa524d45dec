"""Case 1: a lifetime the device could never register with is refused where it is written, and
a registration task that fails for any reason is restarted (never dies silently)."""

from __future__ import annotations

import asyncio
import logging

import aiocoap
import pytest

from labkit.client import SimulatedDevice
from labkit.coap import local_port
from labkit.events import Event
from labkit.server import LwM2MServer
from tests.adversarial.helpers import Peer, run


@pytest.mark.parametrize(
    ("fmt", "payload"),
    [
        (0, b"4294967296"),
        (11542, bytes([0xC8, 1]) + (2**63 - 1).to_bytes(8, "big")),
        (0, b"0"),
        (0, b"-5"),
    ],
)
def test_unusable_lifetime_write_is_refused(fmt: int, payload: bytes) -> None:
    async def main() -> None:
        events: list[Event] = []
        server = LwM2MServer(on_event=events.append)
        await server.start()
        dev = SimulatedDevice("victim", server.uri, lifetime=60, on_event=events.append)
        try:
            await dev.start(timeout=10)
            peer = Peer(local_port(dev._ctx) or 0)
            msg = aiocoap.Message(
                code=aiocoap.PUT, uri_path=("1", "0", "1"), content_format=fmt, payload=payload
            )
            resp = await peer.request(msg)
            peer.close()
            assert str(resp.code.dotted) == "4.00", resp
            assert dev.lifetime == 60
            before = server.registrations["victim"].updated_at
            await dev.send_update()
            assert server.registrations["victim"].updated_at >= before
            assert dev.registered
        finally:
            await dev.stop(deregister=False)
            await server.stop()

    run(main)


def test_failing_registration_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    """Whatever breaks a Register (here: a lifetime the core refuses, set behind the device's
    back), the device logs it at WARNING, records it, and tries again until it works."""

    async def main() -> None:
        events: list[Event] = []
        server = LwM2MServer(on_event=events.append)
        await server.start()
        dev = SimulatedDevice(
            "victim", server.uri, lifetime=60, time_scale=50, on_event=events.append
        )
        try:
            await dev.start(timeout=10)
            dev.registered = False
            dev.lifetime = 2**32
            await dev.send_update()  # must not raise
            assert any("lifetime" in (e.detail or "") for e in events if e.kind == "error")
            assert dev._update_handle is not None  # a retry is scheduled
            dev.lifetime = 60
            first = server.registrations["victim"].registered_at
            async with asyncio.timeout(20):
                while server.registrations["victim"].registered_at == first:
                    await asyncio.sleep(0.02)
        finally:
            await dev.stop(deregister=False)
            await server.stop()

    with caplog.at_level(logging.WARNING):
        run(main)
    assert any(r.levelno == logging.WARNING and "victim" in r.getMessage() for r in caplog.records)
