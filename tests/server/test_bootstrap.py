"""The LwM2M Bootstrap server (labkit.server.bootstrap) with simulated devices, on loopback.

A device that holds only a Bootstrap-Server account (URI + PSK) bootstraps over DTLS-PSK or
plain CoAP, registers to the management server over DTLS with the key it was given, and is
updated; every Bootstrap exchange is an event on both sides. A bootstrap that writes a wrong
key ends in a recorded handshake failure (bad_key), not a hang.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from labkit.dtls import PskEntry, PskStore, dtls_available
from labkit.events import Event
from labkit.server import LwM2MServer
from labkit.server.bootstrap import BootstrapConfig, BootstrapServer
from tests.server.labhelpers import eventually, run

client = pytest.importorskip("labkit.client")
pytestmark = pytest.mark.skipif(not dtls_available(), reason="DTLSSocket is not installed")

BS_KEY = b"bootstrap-key-01"
DM_KEY = b"management-key-1"
OPS = ["Bootstrap-Request", "Bootstrap-Discover", "Bootstrap-Delete", "Bootstrap-Delete",
       "Bootstrap-Write",
       "Bootstrap-Write", "Bootstrap-Finish", "Bootstrap"]  # fmt: skip


def _ops(events: list[Event], source: str) -> list[str | None]:
    return [e.method for e in events if e.kind == "bootstrap" and e.source == source]


@pytest.mark.parametrize("bs_scheme", ["coaps", "coap"])
def test_device_bootstraps_registers_over_dtls_and_is_updated(bs_scheme: str) -> None:
    package = b"LABKIT-FW 2.0.0\n" + random.Random(6).randbytes(8 * 1024)

    async def scenario() -> list[Event]:
        events: list[Event] = []
        dm = LwM2MServer(
            on_event=events.append, psk_store=PskStore([PskEntry("bs-1", b"bs-1-dm", DM_KEY)]),
            coaps_port=0, coap=False,
        )  # fmt: skip
        async with dm:
            assert dm.coaps_uri is not None
            config = BootstrapConfig(dm.coaps_uri, b"bs-1-dm", DM_KEY, lifetime=120)
            bss = BootstrapServer(
                on_event=events.append, psk_store=PskStore([PskEntry("bs-1", b"bs-1-bs", BS_KEY)]),
                coaps_port=0 if bs_scheme == "coaps" else None, configs={"bs-1": config},
            )  # fmt: skip
            async with bss:
                uri = bss.coaps_uri if bs_scheme == "coaps" else bss.uri
                assert uri is not None
                kwargs = (
                    {"psk_identity": "bs-1-bs", "psk_key": BS_KEY} if bs_scheme == "coaps" else {}
                )
                dev = client.SimulatedDevice(
                    "bs-1", None, bootstrap_uri=uri, on_event=events.append, **kwargs
                )
                await dev.start(timeout=15)
                try:
                    assert await bss.wait_finished("bs-1", 5) == "finished"
                    reg = await dm.wait_for_registration("bs-1", timeout=10)
                    assert reg.remote.scheme == "coaps" and reg.lifetime == 120
                    assert dev.server_uri == dm.coaps_uri
                    d = dm.device("bs-1")
                    (await d.write("/5/0/0", package, block_size=512)).raise_for_status()
                    await eventually(lambda: dev.value("/5/0/3") == 2, timeout=10)
                    (await d.execute("/5/0/2")).raise_for_status()
                    await dm.wait_for_registration("bs-1", timeout=15, after=reg.registered_at)
                    assert (await d.read("/3/0/3")).value == "2.0.0"
                finally:
                    await asyncio.wait_for(dev.stop(), 10)
        return events

    events = run(scenario)
    assert _ops(events, "bootstrap") == OPS
    assert [e.code for e in events if e.kind == "bootstrap" and e.source == "bootstrap"][:7] == [
        "2.04", "2.05", "2.02", "2.02", "2.04", "2.04", "2.04"
    ]  # fmt: skip
    assert _ops(events, "device") == OPS[:-1]
    assert not any(DM_KEY.decode() in repr(e) or BS_KEY.decode() in repr(e) for e in events)
    assert any(e.kind == "registered" and e.source == "server" for e in events)


def test_bootstrap_with_a_wrong_key_ends_in_a_recorded_handshake_failure() -> None:
    async def scenario() -> list[Event]:
        events: list[Event] = []
        dm = LwM2MServer(
            on_event=events.append, psk_store=PskStore([PskEntry("bs-2", b"bs-2-dm", DM_KEY)]),
            coaps_port=0, coap=False,
        )  # fmt: skip
        async with dm:
            assert dm.coaps_uri is not None
            wrong = BootstrapConfig(dm.coaps_uri, b"bs-2-dm", b"not-the-dm-key-1")
            async with BootstrapServer(on_event=events.append, default=wrong) as bss:
                assert bss.uri is not None
                dev = client.SimulatedDevice(
                    "bs-2", None, bootstrap_uri=bss.uri, on_event=events.append,
                    request_timeout=3,
                )  # fmt: skip
                try:
                    with pytest.raises(TimeoutError):
                        await dev.start(timeout=6)
                finally:
                    await asyncio.wait_for(dev.stop(), 10)
                assert "bs-2" not in dm.registrations
        return events

    events = run(scenario)
    assert _ops(events, "bootstrap")[-1] == "Bootstrap"
    failures = [e for e in events if e.kind == "security" and e.source == "server"]
    assert failures and all(e.reason == "bad_key" and e.code == "failed" for e in failures)
    assert any(e.kind == "security" and e.source == "device" and e.reason == "bad_key"
               for e in events)  # fmt: skip
    assert not any(e.kind == "registered" for e in events)


def test_a_wrong_bootstrap_key_is_refused_by_the_bootstrap_server() -> None:
    async def scenario() -> list[Event]:
        events: list[Event] = []
        bss = BootstrapServer(
            on_event=events.append, psk_store=PskStore([PskEntry("bs-3", b"bs-3-bs", BS_KEY)]),
            coaps_port=0, coap=False, default=BootstrapConfig("coap://127.0.0.1:9"),
        )  # fmt: skip
        async with bss:
            assert bss.coaps_uri is not None and bss.uri is None
            dev = client.SimulatedDevice(
                "bs-3", None, bootstrap_uri=bss.coaps_uri, psk_identity="bs-3-bs",
                psk_key=b"wrong-bs-key-001", on_event=events.append, request_timeout=2,
            )  # fmt: skip
            try:
                with pytest.raises(TimeoutError):
                    await dev.start(timeout=4)
            finally:
                await asyncio.wait_for(dev.stop(), 10)
            assert "bs-3" not in bss.status
        return events

    events = run(scenario)
    refused = [e for e in events if e.kind == "security" and e.source == "bootstrap"]
    assert refused and {e.reason for e in refused} == {"bad_key"}
    assert not [e for e in events if e.kind == "bootstrap" and e.source == "bootstrap"]
