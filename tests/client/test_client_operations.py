"""Device-management operations over real CoAP: reads in every format, writes, codes."""

from __future__ import annotations

from aiocoap.numbers.codes import Code

from labkit.events import Event
from labkit.lwm2m.formats import ContentFormat, decode, parse_links
from labkit.lwm2m.paths import Path
from tests.client.peer import RdPeer, run, started

P = Path.parse


def _expected_device_values(endpoint: str) -> dict[Path, object]:
    return {
        P("/3/0/0"): "labkit",
        P("/3/0/1"): "sim",
        P("/3/0/2"): endpoint,
        P("/3/0/3"): "1.0.0",
        P("/3/0/11/0"): 0,
        P("/3/0/16"): "U",
    }


def test_read_device_object_in_every_format() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, clock=lambda: 1_700_000_000.0)
            for fmt in (
                ContentFormat.TLV,
                ContentFormat.SENML_JSON,
                ContentFormat.SENML_CBOR,
                ContentFormat.LWM2M_CBOR,
            ):
                resp = await server.request("sim-1", Code.GET, "/3/0", accept=int(fmt))
                assert resp.code == Code.CONTENT, fmt
                assert int(resp.opt.content_format) == fmt
                values = decode(fmt, resp.payload, P("/3/0"))
                for path, value in _expected_device_values("sim-1").items():
                    assert values[path] == value, (fmt, path)
                assert values[P("/3/0/13")] == 1_700_000_000
                assert P("/3/0/4") not in values  # executables are not read
            # object level in TLV
            resp = await server.request("sim-1", Code.GET, "/3", accept=11542)
            assert decode(11542, resp.payload, P("/3"))[P("/3/0/2")] == "sim-1"
            # no Accept: TEXT for a single resource, TLV for an instance
            resp = await server.request("sim-1", Code.GET, "/3/0/3")
            assert (int(resp.opt.content_format), resp.payload) == (0, b"1.0.0")
            resp = await server.request("sim-1", Code.GET, "/4/0")
            assert int(resp.opt.content_format) == ContentFormat.TLV
            values = decode(11542, resp.payload, P("/4/0"))
            assert values[P("/4/0/2")] == -85 and values[P("/4/0/4/0")] == "127.0.0.1"
            # resource instance, CBOR 60
            resp = await server.request("sim-1", Code.GET, "/3/0/6/1", accept=60)
            assert decode(60, resp.payload, P("/3/0/6/1")) == {P("/3/0/6/1"): 5}
            # /5 tells the truth about protocols and delivery
            resp = await server.request("sim-1", Code.GET, "/5/0", accept=110)
            values = decode(110, resp.payload, P("/5/0"))
            assert values[P("/5/0/8/0")] == 0 and values[P("/5/0/9")] == 2
            assert values[P("/5/0/3")] == 0 and values[P("/5/0/5")] == 0
            await device.stop()

    run(main())


def test_error_codes_and_error_events() -> None:
    events: list[Event] = []

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, on_event=events.append)

            async def code(method: Code, path: str, **opts: object) -> str:
                resp = await server.request("sim-1", method, path, **opts)
                return str(resp.code.dotted)

            assert await code(Code.GET, "/0") == "4.01"
            assert await code(Code.GET, "/0/0/0") == "4.01"
            assert await code(Code.GET, "/0", accept=40) == "4.01"
            assert await code(Code.GET, "/9") == "4.04"
            assert await code(Code.GET, "/3/1") == "4.04"
            assert await code(Code.GET, "/3/0/99") == "4.04"
            assert await code(Code.GET, "/rd/x") == "4.04"
            assert await code(Code.GET, "/5/0/0") == "4.05"  # Package is write-only
            assert await code(Code.DELETE, "/3/0") == "4.05"
            assert await code(Code.PUT, "/3/0/0", payload=b"x", content_format=0) == "4.05"
            assert await code(Code.POST, "/3/0/0", payload=b"x", content_format=0) == "4.05"
            assert await code(Code.POST, "/3") == "4.05"  # no Create in /3
            assert await code(Code.FETCH, "/3/0") == "4.05"
            assert await code(Code.GET, "/3/0", accept=0) == "4.06"  # text: single only
            assert await code(Code.GET, "/3/0/0", accept=50) == "4.06"
            assert await code(Code.GET, "/3/0/0", accept=11543) == "4.06"  # decode-only
            assert await code(Code.PUT, "/1/0/1", payload=b"abc", content_format=0) == "4.00"
            assert await code(Code.PUT, "/1/0/1", payload=b"0", content_format=0) == "4.00"
            assert await code(Code.PUT, "/1/0", payload=b"\xff\xff", content_format=11542) == "4.00"
            assert await code(Code.PUT, "/1/0/1", payload=b"60", content_format=50) == "4.15"
            assert await code(Code.PUT, "/1/0/1", payload=b"60", content_format=40) == "4.15"
            assert await code(Code.PUT, "/5/0/0", payload=b"x", content_format=0) == "4.15"
            assert await code(Code.POST, "/3/0/4", payload=b"x") == "4.00"  # bad args
            assert await code(Code.POST, "/5/0/2") == "4.05"  # Update while Idle
            assert await code(Code.PUT, "/3/0", uri_query=["pmin=x"]) == "4.00"
            assert await code(Code.PUT, "/3/0/0", uri_query=["gt=1"]) == "4.00"
            assert device.registered  # nothing crashed
            resp = await server.request("sim-1", Code.GET, "/3/0/3")
            assert resp.payload == b"1.0.0"
            await device.stop()

    run(main())
    errors = [e for e in events if e.kind == "error"]
    requests = [e for e in events if e.kind == "request"]
    assert {e.code for e in errors} >= {"4.00", "4.01", "4.04", "4.05", "4.06", "4.15"}
    assert any(r.method == "GET" and r.path == "/0" and r.code == "4.01" for r in requests)


def test_write_replace_partial_and_discover() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            # SenML JSON write of the Current Time and the UTC offset (partial update)
            body = b'[{"bn":"/3/0/","n":"13","v":1000},{"n":"14","vs":"+02:00"}]'
            resp = await server.request(
                "sim-1", Code.POST, "/3/0", payload=body, content_format=110
            )
            assert resp.code == Code.CHANGED
            assert device.value("/3/0/14") == "+02:00"
            assert abs(device.value("/3/0/13") - 1000) <= 2
            # Write-Attributes, then Discover shows them with dim=
            resp = await server.request(
                "sim-1", Code.PUT, "/3/0/9", uri_query=["pmin=10", "pmax=60", "lt=20"]
            )
            assert resp.code == Code.CHANGED
            resp = await server.request("sim-1", Code.GET, "/3/0", accept=40)
            assert int(resp.opt.content_format) == 40
            links = {link.target: dict(link.params) for link in parse_links(resp.payload)}
            assert links["/3/0/9"] == {"pmin": "10", "pmax": "60", "lt": "20"}
            assert links["/3/0/6"] == {"dim": "2"}
            assert "/3/0/4" in links
            resp = await server.request("sim-1", Code.GET, "/5", accept=40)
            first = parse_links(resp.payload)[0]
            assert first.target == "/5" and first.params["ver"] == "1.1"
            # removing an attribute
            await server.request("sim-1", Code.PUT, "/3/0/9", uri_query=["lt"])
            assert device.store.attributes("/3/0/9").lt is None
            await device.stop()

    run(main())


def test_create_and_delete() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server)
            body = b'[{"bn":"/1/1/","n":"0","v":2},{"n":"1","v":600},{"n":"7","vs":"U"}]'
            resp = await server.request("sim-1", Code.POST, "/1", payload=body, content_format=110)
            assert resp.code == Code.CREATED
            assert tuple(resp.opt.location_path) == ("1", "1")
            reg = await server.next("update")  # the device tells the server its new links
            assert b"</1/1>" in reg.payload
            resp = await server.request("sim-1", Code.GET, "/1/1/1")
            assert resp.payload == b"600"
            resp = await server.request("sim-1", Code.DELETE, "/1/1")
            assert resp.code == Code.DELETED
            await server.next("update")
            resp = await server.request("sim-1", Code.DELETE, "/1/0")
            assert resp.code == Code.METHOD_NOT_ALLOWED  # the account we are registered with
            resp = await server.request("sim-1", Code.DELETE, "/1/7")
            assert resp.code == Code.NOT_FOUND
            assert not device.store.exists("/1/1")
            await device.stop()

    run(main())


def test_set_value_and_reboot_execute() -> None:
    events: list[Event] = []

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, on_event=events.append)
            device.set_value("/4/0/2", -101)
            resp = await server.request("sim-1", Code.GET, "/4/0/2")
            assert resp.payload == b"-101"
            old_port = device.port
            resp = await server.request("sim-1", Code.POST, "/3/0/4")
            assert resp.code == Code.CHANGED
            reg = await server.next("register")
            assert reg.port == device.port != old_port
            await device.stop()

    run(main())
    link = [e for e in events if e.kind == "link"]
    assert link and link[0].rssi_dbm == -101 and link[0].link_quality == -10
