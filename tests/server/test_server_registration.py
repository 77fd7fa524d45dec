"""Client Registration Interface of the server over real UDP on loopback (digest section 4)."""

from __future__ import annotations

import asyncio

import aiocoap
import pytest

from labkit.server import DeviceNotRegistered, LwM2MServer, ServerError
from tests.server.fixture_device import FixtureDevice
from tests.server.labhelpers import eventually, kinds, run, run_virtual, running_server


def test_register_update_deregister() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("ep-1") as dev:
            seen: list[tuple[str, str]] = []
            server.add_listener(lambda kind, reg: seen.append((kind, reg.endpoint)))
            assert server.uri == f"coap://127.0.0.1:{server.port}" and server.port > 0

            resp = await dev.register(server.uri, lt=120, lwm2m="1.1")
            assert resp.code == aiocoap.CREATED
            assert dev.location is not None and dev.location[0] == "rd"
            reg = server.registrations["ep-1"]
            assert reg.location == "/" + "/".join(dev.location)
            assert reg.lifetime == 120 and reg.lwm2m_version == "1.1" and reg.binding == "U"
            assert not reg.queue_mode
            assert set(reg.objects) == {1, 3, 4, 5, 9}
            assert reg.objects[5].version == "1.1"
            assert reg.expires_at == pytest.approx(reg.registered_at + 120)
            dev_port = dev.ctx.request_interfaces[0].token_interface.message_interface._local_port()
            assert reg.address == ("127.0.0.1", dev_port)
            (ev,) = kinds(events, "registered")
            assert ev.device == "ep-1" and ev.code == "2.01" and ev.source == "server"

            before = reg.expires_at
            await asyncio.sleep(0.01)
            resp = await dev.update(server.uri, query=["lt=200"])
            assert resp.code == aiocoap.CHANGED
            assert reg.lifetime == 200 and reg.expires_at > before
            assert len(kinds(events, "reg_updated")) == 1

            # an Update with a new object list replaces the announced objects
            resp = await dev.update(server.uri, payload=b"</3/0>,</5/0>")
            assert resp.code == aiocoap.CHANGED
            assert set(server.registrations["ep-1"].objects) == {3, 5}

            resp = await dev.deregister(server.uri)
            assert resp.code == aiocoap.DELETED
            assert "ep-1" not in server.registrations
            assert len(kinds(events, "deregistered")) == 1
            with pytest.raises(DeviceNotRegistered):
                server.device("ep-1")
            # De-register again: the id is gone
            resp = await dev.deregister(server.uri)
            assert resp.code == aiocoap.NOT_FOUND
            assert seen == [
                ("registered", "ep-1"),
                ("updated", "ep-1"),
                ("updated", "ep-1"),
                ("deregistered", "ep-1"),
            ]

    run(scenario)


def test_update_of_unknown_id_is_404_and_recorded() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice() as dev:
            resp = await dev.send_request(aiocoap.POST, server.uri + "/rd/nope")
            assert resp.code == aiocoap.NOT_FOUND
            (err,) = kinds(events, "error")
            assert err.code == "4.04" and err.path == "/rd/nope"
            # still serving
            assert (await dev.register(server.uri)).code == aiocoap.CREATED

    run(scenario)


BAD_REGISTERS = [
    pytest.param(["lt=60", "lwm2m=1.1"], b"</3/0>", 40, "4.00", id="missing-ep"),
    pytest.param(["ep=x", "lt=abc"], b"</3/0>", 40, "4.00", id="lt-not-a-number"),
    pytest.param(["ep=x", "lwm2m=1.1", "Q=1"], b"</3/0>", 40, "4.00", id="Q-with-value"),
    pytest.param(["ep=x", "lwm2m=9.9"], b"</3/0>", 40, "4.12", id="unsupported-lwm2m"),
    pytest.param(["ep=x", "lwm2m=1.1"], b"</3/0>,garbage<<", 40, "4.00", id="garbage-links"),
    pytest.param(["ep=x", "lwm2m=1.1"], b"\xff\xfe\x00", 40, "4.00", id="not-utf8"),
    pytest.param(["ep=x", "lwm2m=1.1"], b"</3/0>", 0, "4.15", id="text-payload"),
]


@pytest.mark.parametrize(("query", "payload", "cf", "code"), BAD_REGISTERS)
def test_bad_register_is_refused_and_server_keeps_serving(
    query: list[str], payload: bytes, cf: int, code: str
) -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("good") as dev:
            resp = await dev.send_request(
                aiocoap.POST, server.uri + "/rd", query=query, payload=payload, content_format=cf
            )
            assert str(resp.code).startswith(code)
            assert not server.registrations
            (err,) = kinds(events, "error")
            assert err.code == code and err.path == "/rd" and err.detail
            assert (await dev.register(server.uri)).code == aiocoap.CREATED
            assert "good" in server.registrations

    run(scenario)


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        (aiocoap.GET, "/rd", "4.05"),
        (aiocoap.PUT, "/rd", "4.05"),
        (aiocoap.GET, "/rd/1", "4.05"),
        (aiocoap.GET, "/dp", "4.05"),
        (aiocoap.GET, "/nothing/here", "4.04"),
        (aiocoap.POST, "/rd/1/extra", "4.04"),
    ],
)
def test_wrong_methods_and_unknown_paths(method: aiocoap.Code, path: str, code: str) -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice() as dev:
            resp = await dev.send_request(method, server.uri + path)
            assert str(resp.code).startswith(code)
            (err,) = kinds(events, "error")
            assert err.code == code
            assert (await dev.register(server.uri)).code == aiocoap.CREATED

    run(scenario)


def test_lifetime_expiry() -> None:
    async def scenario() -> None:
        async with (
            running_server(expiry_check_interval=0.05) as (server, events),
            FixtureDevice("short") as dev,
        ):
            expired: list[str] = []
            server.add_listener(
                lambda kind, reg: expired.append(reg.endpoint) if kind == "expired" else None
            )
            assert (await dev.register(server.uri, lt=1)).code == aiocoap.CREATED
            await eventually(lambda: "short" not in server.registrations, timeout=5.0)
            assert expired == ["short"]
            (ev,) = kinds(events, "reg_expired")
            assert ev.device == "short"
            # the old location is gone: Update -> 4.04 so the client registers again
            assert (await dev.update(server.uri)).code == aiocoap.NOT_FOUND

    run(scenario)


def test_expiry_follows_the_injected_clock() -> None:
    now = [1000.0]

    async def scenario() -> None:
        async with (
            running_server(clock=lambda: now[0], expiry_check_interval=3600) as (
                server,
                events,
            ),
            FixtureDevice("clocked") as dev,
        ):
            await dev.register(server.uri, lt=60)
            assert server.registrations["clocked"].registered_at == 1000.0
            now[0] += 59
            assert server.check_expiry() == []
            await dev.update(server.uri)  # refreshes: expires at 1059 + 60
            now[0] += 60
            assert server.check_expiry() == []
            now[0] += 1.5
            assert [r.endpoint for r in server.check_expiry()] == ["clocked"]
            assert kinds(events, "reg_expired")[0].ts == now[0]

    run(scenario)


def test_reregister_replaces_the_old_registration() -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("again") as dev:
            seen: list[str] = []
            server.add_listener(lambda kind, reg: seen.append(f"{kind}:{reg.location}"))
            await dev.register(server.uri)
            first = server.registrations["again"]
            obs = await server.device("again").observe("/5/0/3", timeout=5)
            assert obs.active
            old_location = dev.location
            await dev.register(server.uri, lt=90)
            second = server.registrations["again"]
            assert second is not first and second.reg_id != first.reg_id
            assert second.lifetime == 90
            assert len(server.registrations) == 1
            assert seen == [
                f"registered:{first.location}",
                f"deregistered:{first.location}",
                f"registered:{second.location}",
            ]
            assert [e.kind for e in events if e.kind in ("registered", "deregistered")] == [
                "registered",
                "deregistered",
                "registered",
            ]
            # observations die with the registration
            assert not obs.active and obs.end_reason == "cancelled"
            # the stale location is unknown now
            dev.location = old_location
            assert (await dev.update(server.uri)).code == aiocoap.NOT_FOUND

    run(scenario)


def test_wait_for_registration_after_a_reboot() -> None:
    async def scenario() -> None:
        async with running_server() as (server, _), FixtureDevice("boot") as dev:
            waiter = asyncio.create_task(server.wait_for_registration("boot", timeout=5))
            await asyncio.sleep(0.05)
            assert not waiter.done()
            await dev.register(server.uri)
            reg = await asyncio.wait_for(waiter, 5)
            assert reg.endpoint == "boot"
            # already registered: returns at once
            assert await server.wait_for_registration("boot", timeout=1) is reg
            # waiting for the *next* registration
            later = asyncio.create_task(
                server.wait_for_registration("boot", timeout=5, after=reg.registered_at)
            )
            await asyncio.sleep(0.05)
            assert not later.done()
            await dev.update(server.uri)  # an Update is not a new registration
            await asyncio.sleep(0.05)
            assert not later.done()
            await asyncio.sleep(0.01)
            await dev.register(server.uri)
            again = await asyncio.wait_for(later, 5)
            assert again is not reg and again.registered_at > reg.registered_at
            with pytest.raises(TimeoutError):
                await server.wait_for_registration("never", timeout=0.1)

    run_virtual(scenario)


def test_start_stop_and_repr() -> None:
    async def scenario() -> None:
        server = LwM2MServer()
        await server.start()
        assert "running" in repr(server)
        with pytest.raises(RuntimeError):
            await server.start()
        await server.stop()
        assert "stopped" in repr(server)
        await server.stop()  # idempotent

    run(scenario)


def test_requests_follow_the_address_of_the_latest_update() -> None:
    """NAT rebinding: the device's address changes; the server must send to the new one."""

    async def scenario() -> None:
        async with (
            running_server() as (server, _),
            FixtureDevice("nat") as first,
            FixtureDevice("nat") as moved,
        ):
            await first.register(server.uri)
            assert (await server.device("nat").read("/3/0/3")).ok
            assert len(first.log) == 1
            moved.location = first.location
            assert (await moved.update(server.uri)).code == aiocoap.CHANGED
            reg = server.registrations["nat"]
            moved_port = moved.ctx.request_interfaces[0].token_interface.message_interface
            assert reg.address == ("127.0.0.1", moved_port._local_port())
            assert (await server.device("nat").read("/3/0/3")).ok
            assert len(first.log) == 1 and len(moved.log) == 1

    run(scenario)


@pytest.mark.parametrize(
    ("query", "payload", "code"),
    [
        (["lt=abc"], b"", "4.00"),
        (["ep=other"], b"", "4.00"),
        (["lwm2m=1.1"], b"", "4.00"),
        ([], b"<</3/0", "4.00"),
    ],
)
def test_bad_update_is_refused_and_changes_nothing(
    query: list[str], payload: bytes, code: str
) -> None:
    async def scenario() -> None:
        async with running_server() as (server, events), FixtureDevice("upd") as dev:
            await dev.register(server.uri, lt=77)
            reg = server.registrations["upd"]
            expires = reg.expires_at
            resp = await dev.update(server.uri, query=query, payload=payload)
            assert str(resp.code).startswith(code)
            assert reg.lifetime == 77 and reg.expires_at == expires and 3 in reg.objects
            (err,) = kinds(events, "error")
            assert err.code == code and err.device == "upd"
            assert (await dev.update(server.uri)).code == aiocoap.CHANGED

    run(scenario)


def test_failing_sink_and_listener_do_not_stop_the_server() -> None:
    calls: list[str] = []

    def bad_sink(event: object) -> None:
        calls.append("sink")
        raise RuntimeError("sink broke")

    def bad_listener(kind: str, reg: object) -> None:
        calls.append(kind)
        raise RuntimeError("listener broke")

    async def scenario() -> None:
        server = LwM2MServer(on_event=bad_sink)
        await server.start()
        try:
            server.add_listener(bad_listener)
            async with FixtureDevice("robust") as dev:
                assert (await dev.register(server.uri)).code == aiocoap.CREATED
                assert (await server.device("robust").read("/3/0/3")).value == "1.0.0"
                assert (await dev.deregister(server.uri)).code == aiocoap.DELETED
        finally:
            await server.stop()
        assert "registered" in calls and "deregistered" in calls and "sink" in calls

    run(scenario)


def test_stop_releases_waiters() -> None:
    async def scenario() -> None:
        server = LwM2MServer()
        await server.start()
        waiter = asyncio.create_task(server.wait_for_registration("x", timeout=5))
        await asyncio.sleep(0.01)
        await server.stop()
        with pytest.raises(ServerError):
            await asyncio.wait_for(waiter, 1)

    run(scenario)
