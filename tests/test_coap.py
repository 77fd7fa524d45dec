"""One way to bind a UDP socket: :func:`labkit.coap.open_udp_context` never sets SO_REUSEPORT.

With SO_REUSEPORT (aiocoap's default on Linux), two sockets bound to port 0 may be handed the
same port and split its datagrams. The lab's server, devices and repository all bind through
:func:`open_udp_context`, whatever ``AIOCOAP_REUSE_PORT`` says.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiocoap
import pytest
from aiocoap import resource

from labkit.client import SimulatedDevice
from labkit.coap import local_port, open_udp_context, scaled_tuning
from labkit.repo import FirmwareRepository
from labkit.server import LwM2MServer
from labkit.server import scaled_tuning as server_scaled_tuning

CONTEXTS = 500


def _socket(ctx: aiocoap.Context) -> Any:
    mi = ctx.request_interfaces[0].token_interface.message_interface
    return mi.transport.get_extra_info("socket")


def _reuse_port(ctx: aiocoap.Context) -> int:
    return int(_socket(ctx).getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))


def test_500_contexts_on_port_0_never_share_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOCOAP_REUSE_PORT", "1")  # aiocoap's own binder would set the option

    async def main() -> tuple[list[int | None], list[int]]:
        contexts: list[aiocoap.Context] = []
        try:
            async with asyncio.timeout(60):
                for _ in range(CONTEXTS):
                    contexts.append(await open_udp_context(resource.Site()))
                return [local_port(c) for c in contexts], [_reuse_port(c) for c in contexts]
        finally:
            await asyncio.wait_for(
                asyncio.gather(*(c.shutdown() for c in contexts), return_exceptions=True), 60
            )

    ports, reuse = asyncio.run(main())
    assert None not in ports
    assert len(set(ports)) == CONTEXTS
    assert set(reuse) == {0}


def test_server_device_and_repository_bind_without_so_reuseport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIOCOAP_REUSE_PORT", "1")

    async def main() -> None:
        async with asyncio.timeout(30):
            server = LwM2MServer()
            await server.start()
            repo = FirmwareRepository()
            await repo.start()
            device = SimulatedDevice("sim-1", server.uri)
            try:
                await device.start(timeout=5)
                assert device._ctx is not None and server._ctx is not None
                assert repo._coap_ctx is not None
                for ctx in (server._ctx, device._ctx, repo._coap_ctx):
                    assert _reuse_port(ctx) == 0
                # A busy fixed port fails loudly instead of sharing the traffic.
                second = LwM2MServer(port=server.port)
                with pytest.raises(OSError):
                    await second.start()
            finally:
                await device.stop(timeout=2)
                await repo.stop()
                await server.stop()

    asyncio.run(main())


def test_scaled_tuning_is_one_function_re_exported_by_the_server() -> None:
    assert server_scaled_tuning is scaled_tuning
    assert pytest.approx(0.02) == scaled_tuning(100.0).ACK_TIMEOUT
    assert pytest.approx(0.93) == scaled_tuning(100.0).MAX_TRANSMIT_WAIT
    assert scaled_tuning(1.0).reliability is True
    assert scaled_tuning(100.0, reliable=False).reliability is None
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            scaled_tuning(bad)
