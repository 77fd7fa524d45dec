"""CoAP over DTLS-PSK (labkit.dtls) against libcoap's DTLS tools (OpenSSL and GnuTLS builds).

Real peers on loopback: ``coap-client-openssl``/``-gnutls`` read a resource of a labkit
``coaps://`` endpoint (a wrong key and an unknown identity fail the handshake, and the failure
is reported with its reason); labkit's client side fetches from ``coap-server-openssl``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import aiocoap
import pytest
from aiocoap import resource

from labkit.dtls import (
    HandshakeReport,
    PskEntry,
    PskStore,
    add_dtls_transport,
    dtls_available,
    open_context,
    parse_hex_key,
    security_event_fields,
)

pytestmark = pytest.mark.skipif(not dtls_available(), reason="DTLSSocket is not installed")

KEY = b"lab-secret-0001"
TOOLS = [t for t in ("coap-client-openssl", "coap-client-gnutls") if shutil.which(t)]


class _Echo(resource.Resource):  # type: ignore[misc]
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        ident = request.remote.identity or b"?"
        return aiocoap.Message(payload=b"hello " + ident + b" " + bytes(range(256)) * 12)


def _site() -> resource.Site:
    site = resource.Site()
    site.add_resource(["hello"], _Echo())
    return site


async def _client(tool: str, identity: str, key: bytes, uri: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        tool, "-B", "10", "-u", identity, "-k", key.decode(), uri,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return int(proc.returncode or 0), out


@pytest.mark.parametrize("tool", TOOLS)
def test_libcoap_dtls_client_reads_over_psk_and_failures_are_reported(tool: str) -> None:
    async def main() -> list[HandshakeReport]:
        reports: list[HandshakeReport] = []
        store = PskStore([PskEntry("dev-1", b"dev-1-id", KEY)])
        ctx, dtls = await open_context(
            _site(), coap=None, coaps=("127.0.0.1", 0), psk_store=store, on_security=reports.append
        )
        assert dtls is not None
        uri = f"coaps://127.0.0.1:{dtls.local_address[1]}/hello"
        try:
            rc, out = await _client(tool, "dev-1-id", KEY, uri)
            assert rc == 0
            assert out.startswith(b"hello dev-1-id ") and bytes(range(256)) * 12 in out
            await _client(tool, "dev-1-id", b"lab-secret-9999", uri)
            await _client(tool, "stranger", KEY, uri)
        finally:
            await ctx.shutdown()
        return reports

    reports = asyncio.run(main())
    assert [(r.ok, r.reason, r.identity, r.endpoint) for r in reports] == [
        (True, "ok", "dev-1-id", "dev-1"),
        (False, "bad_key", "dev-1-id", "dev-1"),
        (False, "unknown_identity", "stranger", None),
    ]
    for report in reports:
        fields = security_event_fields(report)
        assert "lab-secret" not in repr(fields) and KEY.hex() not in repr(fields)


def test_labkit_client_and_server_and_the_client_side_of_a_bad_key() -> None:
    async def main() -> tuple[list[HandshakeReport], list[HandshakeReport]]:
        server_reports: list[HandshakeReport] = []
        store = PskStore([PskEntry("dev-1", b"dev-1-id", KEY)])
        ctx, dtls = await open_context(
            _site(), coap=None, coaps=("127.0.0.1", 0), psk_store=store,
            on_security=server_reports.append,
        )  # fmt: skip
        assert dtls is not None
        uri = f"coaps://127.0.0.1:{dtls.local_address[1]}/hello"
        client_reports: list[HandshakeReport] = []
        good = aiocoap.Context(loop=asyncio.get_running_loop())
        bad = aiocoap.Context(loop=asyncio.get_running_loop())
        try:
            await add_dtls_transport(good, client_psk=(b"dev-1-id", KEY))
            await add_dtls_transport(
                bad, client_psk=(b"dev-1-id", b"wrong"), on_security=client_reports.append
            )
            resp = await asyncio.wait_for(
                good.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response, 10
            )
            assert resp.code == aiocoap.CONTENT and resp.payload.startswith(b"hello dev-1-id")
            with pytest.raises(aiocoap.error.Error):
                await asyncio.wait_for(
                    bad.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response, 10
                )
        finally:
            for c in (good, bad, ctx):
                await c.shutdown()
        return server_reports, client_reports

    server_reports, client_reports = asyncio.run(main())
    assert [(r.ok, r.reason) for r in server_reports] == [(True, "ok"), (False, "bad_key")]
    assert [(r.role, r.ok, r.reason) for r in client_reports] == [("client", False, "bad_key")]


def test_psk_entries_parse_and_never_show_the_key() -> None:
    entry = PskEntry.parse("dev-7:dev-7-id:00112233445566778899aabbccddeeff")
    assert entry.endpoint == "dev-7" and entry.identity == b"dev-7-id"
    assert entry.key == bytes.fromhex("00112233445566778899aabbccddeeff")
    assert "0011" not in repr(entry) and "0011" not in repr(PskStore([entry]))
    assert parse_hex_key("0x00:11") == b"\x00\x11"
    for bad in ("dev-7:id", "dev:id:zz", ":id:00"):
        with pytest.raises(ValueError):
            PskEntry.parse(bad)
    store = PskStore([entry])
    with pytest.raises(ValueError, match="already belongs"):
        store.add(PskEntry("other", b"dev-7-id", b"k"))


def test_garbage_and_truncated_handshakes_do_not_stop_the_server() -> None:
    import random
    import socket

    async def main() -> tuple[bytes, list[HandshakeReport]]:
        reports: list[HandshakeReport] = []
        store = PskStore([PskEntry("dev-1", b"dev-1-id", KEY)])
        ctx, dtls = await open_context(
            _site(), coap=None, coaps=("127.0.0.1", 0), psk_store=store,
            on_security=reports.append, handshake_timeout=0.5,
        )  # fmt: skip
        assert dtls is not None
        port = dtls.local_address[1]
        rng = random.Random(1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for n in range(300):
                head = bytes([22, 0xFE, 0xFD, 0, 0]) + bytes(6) + rng.randbytes(2) + b"\x01"
                junk = rng.randbytes(rng.randrange(0, 200))
                s.sendto(head + junk if n % 2 else rng.randbytes(rng.randrange(1, 300)),
                         ("127.0.0.1", port))  # fmt: skip
        client = aiocoap.Context(loop=asyncio.get_running_loop())
        try:
            await add_dtls_transport(client, client_psk=(b"dev-1-id", KEY))
            uri = f"coaps://127.0.0.1:{port}/hello"
            resp = await asyncio.wait_for(
                client.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response, 10
            )
        finally:
            await client.shutdown()
            await ctx.shutdown()
        return bytes(resp.payload), reports

    payload, reports = asyncio.run(main())
    assert payload.startswith(b"hello dev-1-id")
    assert [r.identity for r in reports if r.ok] == ["dev-1-id"]
