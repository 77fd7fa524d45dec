"""The LwM2M server on coaps:// (DTLS-PSK) with simulated devices and libcoap, on loopback.

A device with the right key registers over DTLS and is updated by PUSH over the same session;
one with a wrong key, or an identity the server does not know, fails the handshake: the
``security`` event says why and the device is never registered. libcoap's DTLS client reads
a resource of a simulated device over its own DTLS-PSK identity.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess

import pytest

from labkit.dtls import DtlsTransport, PskEntry, PskStore, dtls_available
from labkit.events import Event
from labkit.server import LwM2MServer
from tests.server.labhelpers import eventually, run

client = pytest.importorskip("labkit.client")
pytestmark = pytest.mark.skipif(not dtls_available(), reason="DTLSSocket is not installed")

KEY = b"dev-key-0000001"
STORE = PskStore([PskEntry("sec-1", b"sec-1-id", KEY), PskEntry("sec-2", b"sec-2-id", KEY)])


def _security(events: list[Event], source: str) -> list[tuple[str | None, str | None]]:
    return [(e.code, e.reason) for e in events if e.kind == "security" and e.source == source]


def test_device_registers_over_dtls_psk_and_is_updated_by_push() -> None:
    package = b"LABKIT-FW 2.0.0\n" + random.Random(5).randbytes(20 * 1024)

    async def scenario() -> list[Event]:
        events: list[Event] = []
        server = LwM2MServer(on_event=events.append, psk_store=STORE, coaps_port=0, coap=False)
        async with server:
            assert server.coaps_uri is not None and server.uris == [server.coaps_uri]
            dev = client.SimulatedDevice(
                "sec-1", server.coaps_uri, psk_identity="sec-1-id", psk_key=KEY,
                on_event=events.append,
            )  # fmt: skip
            assert dev.value("/0/0/2") == 0 and dev.value("/0/0/3") == b"sec-1-id"
            await dev.start(timeout=10)
            try:
                reg = await server.wait_for_registration("sec-1", timeout=10)
                assert reg.remote.scheme == "coaps"
                d = server.device("sec-1")
                assert (await d.read("/3/0/3")).raise_for_status().value == "1.0.0"
                (await d.write("/5/0/0", package, block_size=1024)).raise_for_status()
                await eventually(lambda: dev.value("/5/0/3") == 2, timeout=10)
                (await d.execute("/5/0/2")).raise_for_status()
                await server.wait_for_registration("sec-1", timeout=15, after=reg.registered_at)
                assert (await d.read("/5/0/5")).value == 1
                assert (await d.read("/3/0/3")).value == "2.0.0"
            finally:
                await asyncio.wait_for(dev.stop(), 10)
        return events

    events = run(scenario)
    assert _security(events, "server")[:2] == [("ok", "ok"), ("ok", "ok")]  # before/after reboot
    assert ("ok", "ok") in _security(events, "device")
    assert not any(KEY.decode() in repr(e) or KEY.hex() in repr(e) for e in events)


@pytest.mark.parametrize(
    ("identity", "key", "reason"),
    [("sec-2-id", b"not-the-key-002", "bad_key"), ("nobody-id", KEY, "unknown_identity")],
)
def test_failed_handshake_is_recorded_and_never_registers(
    identity: str, key: bytes, reason: str
) -> None:
    async def scenario() -> list[Event]:
        events: list[Event] = []
        server = LwM2MServer(on_event=events.append, psk_store=STORE, coaps_port=0)
        async with server:
            assert server.coaps_uri is not None
            dev = client.SimulatedDevice(
                "sec-2", server.coaps_uri, psk_identity=identity, psk_key=key,
                on_event=events.append, request_timeout=3,
            )  # fmt: skip
            try:
                with pytest.raises(TimeoutError):
                    await dev.start(timeout=4)
            finally:
                await asyncio.wait_for(dev.stop(), 10)
            assert "sec-2" not in server.registrations
        return events

    events = run(scenario)
    server_side = _security(events, "server")
    assert server_side and all(s == ("failed", reason) for s in server_side)
    assert ("failed", reason) in _security(events, "device")
    assert not any(e.kind == "registered" for e in events)
    refused = next(e for e in events if e.kind == "security" and e.source == "server")
    assert identity in (refused.detail or "")


def test_register_as_another_endpoint_over_dtls_is_forbidden() -> None:
    async def scenario() -> list[Event]:
        events: list[Event] = []
        server = LwM2MServer(on_event=events.append, psk_store=STORE, coaps_port=0)
        async with server:
            assert server.coaps_uri is not None
            dev = client.SimulatedDevice(
                "sec-2", server.coaps_uri, psk_identity="sec-1-id", psk_key=KEY,
                request_timeout=3,
            )  # fmt: skip
            try:
                with pytest.raises(TimeoutError):
                    await dev.start(timeout=3)
            finally:
                await asyncio.wait_for(dev.stop(), 10)
        return events

    events = run(scenario)
    assert any(e.kind == "error" and e.code == "4.03" for e in events)
    assert not any(e.kind == "registered" for e in events)


TOOL = shutil.which("coap-client-openssl") or shutil.which("coap-client-gnutls")


@pytest.mark.skipif(TOOL is None, reason="libcoap3-bin with DTLS is not installed")
def test_libcoap_reads_a_simulated_device_over_dtls_psk() -> None:
    async def scenario() -> bytes:
        server = LwM2MServer(psk_store=STORE, coaps_port=0)
        async with server:
            assert server.coaps_uri is not None
            dev = client.SimulatedDevice(
                "sec-1", server.coaps_uri, psk_identity="sec-1-id", psk_key=KEY
            )
            await dev.start(timeout=10)
            try:
                assert TOOL is not None and dev.dtls_port is not None
                proc = await asyncio.create_subprocess_exec(
                    TOOL, "-B", "10", "-u", "sec-1-id", "-k", KEY.decode(),
                    f"coaps://127.0.0.1:{dev.dtls_port}/3/0/3",
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                out, _ = await asyncio.wait_for(proc.communicate(), 30)
                assert proc.returncode == 0
                return out
            finally:
                await asyncio.wait_for(dev.stop(), 10)

    assert run(scenario).strip() == b"1.0.0"


def test_device_handshakes_again_when_the_server_lost_the_session() -> None:
    """A server that crashed and came back knows no session: records of the old one are
    dropped (RFC 6347 4.1.2.7). The device's Update goes unanswered, it closes its session,
    and the next Update handshakes afresh."""

    async def scenario() -> list[Event]:
        events: list[Event] = []
        server = LwM2MServer(psk_store=STORE, coaps_port=0, coap=False, on_event=events.append)
        async with server:
            assert server.coaps_uri is not None
            dev = client.SimulatedDevice(
                "sec-1", server.coaps_uri, psk_identity="sec-1-id", psk_key=KEY,
                request_timeout=2, on_event=events.append,
            )  # fmt: skip
            await dev.start(timeout=10)
            try:
                await server.wait_for_registration("sec-1", timeout=10)
                dtls = next(
                    mi
                    for ri in server._context.request_interfaces
                    if isinstance(
                        mi := getattr(
                            getattr(ri, "token_interface", None), "message_interface", None
                        ),
                        DtlsTransport,
                    )
                )
                dtls._peers.clear()  # the server forgets every session, silently
                await dev.send_update()  # unanswered: dropped by the server
                assert not any(e.kind == "reg_updated" and e.source == "device" for e in events)
                await dev.send_update()  # a new handshake, then the Update
            finally:
                await asyncio.wait_for(dev.stop(), 10)
        return events

    events = run(scenario)
    accepted = [e for e in events if e.kind == "security" and e.source == "server"]
    assert [e.reason for e in accepted] == ["ok", "ok"]
    assert any(e.kind == "reg_updated" and e.source == "server" for e in events)
