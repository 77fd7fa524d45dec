"""Registration life cycle of the simulated device against a bare aiocoap RD peer."""

from __future__ import annotations

import asyncio

from aiocoap.numbers.codes import Code

from labkit.client import SimulatedDevice
from labkit.events import Event
from labkit.lwm2m.formats import parse_links
from tests.client.peer import RdPeer, run, started, until


def test_register_query_and_payload() -> None:
    events: list[Event] = []

    async def main() -> None:
        async with RdPeer() as server:
            device = SimulatedDevice("sim-1", server.uri, lifetime=120, on_event=events.append)
            await device.start(timeout=5)
            reg = await server.next("register")
            assert device.registered
            assert device.location == ("rd", reg.rid)
            assert reg.query == ["lwm2m=1.1", "ep=sim-1", "lt=120", "b=U"]
            assert reg.payload.decode() == (
                "</1>;ver=1.2,</1/0>,</3>;ver=1.2,</3/0>,</4>;ver=1.3,</4/0>,</5>;ver=1.1,</5/0>"
            )
            links = {link.target for link in parse_links(reg.payload)}
            assert not any(t.startswith("/0") for t in links)  # /0 never announced
            assert reg.port == device.port
            await device.stop()
            assert not device.registered

    run(main())
    kinds = [e.kind for e in events]
    assert kinds[0] == "registered" and "deregistered" in kinds
    assert all(e.source == "device" and e.device == "sim-1" for e in events)


def test_queue_mode_and_lwm2m_1_0() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            d1 = await started(server, endpoint="q", queue_mode=True)
            d2 = await started(server, endpoint="old", lwm2m_version="1.0", fw_object_version="1.0")
            assert server.by_ep["q"].query[-1] == "Q"
            assert server.by_ep["q"].params["b"] == "U"
            assert server.by_ep["old"].params["b"] == "U"
            assert "</5>" not in server.by_ep["old"].payload.decode()  # obj 1.0: no ver
            resp = await server.request("q", Code.GET, "/1/0/7")
            assert resp.payload == b"UQ"
            await d1.stop()
            await d2.stop()

    run(main())


def test_update_sent_before_expiry() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, lifetime=2)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            reg = await server.next("update", timeout=3)
            elapsed = loop.time() - t0
            assert 0.8 <= elapsed <= 1.9  # lt - min(93, lt/2) = 1 s, before the 2 s expiry
            assert reg.updates[-1] == []  # nothing changed: no lt=, no payload
            await server.next("update", timeout=3)  # and again
            await device.stop()
            assert (await server.next("delete")).ep == "sim-1"

    run(main())


def test_update_answered_404_registers_again() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            first = device.location
            server.regs.clear()
            await asyncio.wait_for(device.send_update(), 5)
            await server.next("register")
            assert device.registered and device.location != first
            await device.stop()

    run(main())


def test_registration_update_trigger_and_lifetime_write() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            resp = await server.request("sim-1", Code.POST, "/1/0/8")
            assert resp.code == Code.CHANGED
            await server.next("update")
            resp = await server.request(
                "sim-1", Code.PUT, "/1/0/1", payload=b"60", content_format=0
            )
            assert resp.code == Code.CHANGED
            reg = await server.next("update")
            assert reg.updates[-1] == ["lt=60"]
            assert device.lifetime == 60
            await device.stop()

    run(main())


def test_start_fails_bounded_without_server() -> None:
    async def main() -> None:
        # A port nobody listens on: ICMP unreachable or silence; start() must give up in time.
        device = SimulatedDevice("lost", "coap://127.0.0.1:9", request_timeout=0.3)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            await device.start(timeout=1.5)
        except TimeoutError:
            pass
        else:  # pragma: no cover
            raise AssertionError("start() should have failed")
        assert loop.time() - t0 < 3
        await device.stop(deregister=False)
        assert device.port is None

    run(main())


def test_reboot_registers_from_new_port() -> None:
    events: list[Event] = []

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, on_event=events.append)
            old_port = device.port
            await device.reboot(timeout=5)
            reg = await server.next("register")
            assert reg.port == device.port != old_port
            await device.stop()

    run(main())
    assert [e.kind for e in events].count("registered") == 2
    assert any(e.kind == "reboot" for e in events)


def test_hundred_devices_register_concurrently() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            devices = [SimulatedDevice(f"fleet-{i:03d}", server.uri, seed=i) for i in range(100)]
            await asyncio.gather(*(d.start(timeout=30) for d in devices))
            assert all(d.registered for d in devices)
            assert len(server.by_ep) == 100
            assert len({d.port for d in devices}) == 100
            # role reversal works for every one of them
            answers = await asyncio.gather(
                *(server.request(d.endpoint, Code.GET, "/3/0/2", timeout=20) for d in devices)
            )
            assert [a.payload.decode() for a in answers] == [d.endpoint for d in devices]
            await asyncio.gather(*(d.stop(timeout=20) for d in devices))
            assert not server.regs

    run(main(), timeout=100)


def test_server_outage_then_fresh_register() -> None:
    events: list[Event] = []

    async def main() -> None:
        async with RdPeer() as first:
            port = first.port
            device = await started(first, lifetime=2, request_timeout=0.3, on_event=events.append)
        # the server is gone: Updates time out; after the lifetime the device Registers again
        await until(lambda: not device.registered, 6)
        async with RdPeer(port=port) as second:
            reg = await second.next("register", timeout=8)
            assert reg.ep == "sim-1"
            await until(lambda: device.registered, 2)  # the 2.01 is on its way back
            assert device.location == ("rd", reg.rid)
            await device.stop()

    run(main())
    assert any(e.kind == "error" and "Update failed" in (e.detail or "") for e in events)
