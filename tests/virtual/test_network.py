"""The in-process network: aiocoap over it unchanged, seeded contexts, lost datagrams."""

from __future__ import annotations

import asyncio

import aiocoap
from aiocoap import resource

from labkit.coap import local_port, open_udp_context
from labkit.virtual import VirtualEventLoop


class Big(resource.Resource):
    def __init__(self) -> None:
        super().__init__()
        self.body = bytes(range(256)) * 40  # 10 KiB: Block2 on the way out

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=self.body)

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.body = request.payload  # Block1 reassembled by aiocoap
        return aiocoap.Message(code=aiocoap.CHANGED)


async def exchange(loop: VirtualEventLoop) -> tuple[bytes, int, list[int]]:
    site = resource.Site()
    big = Big()
    site.add_resource(["big"], big)
    server = await open_udp_context(site, "127.0.0.1", 5683)
    client = await open_udp_context(resource.Site(), "127.0.0.1", 0)
    assert local_port(server) == 5683 and local_port(client) == 49152
    got = await client.request(aiocoap.Message(code=aiocoap.GET, uri="coap://127.0.0.1/big")).response
    put = aiocoap.Message(code=aiocoap.PUT, uri="coap://127.0.0.1/big", payload=b"x" * 5000)
    changed = await client.request(put).response
    mids = [client.request_interfaces[0].token_interface.message_id,
            server.request_interfaces[0].token_interface.message_id]
    await client.shutdown()
    await server.shutdown()
    assert big.body == b"x" * 5000
    return got.payload, int(changed.code), mids


def test_blockwise_both_ways_over_the_virtual_network_and_seeded_message_ids() -> None:
    results = []
    for _ in range(2):
        loop = VirtualEventLoop(seed=11)
        try:
            results.append(loop.run_until_complete(exchange(loop)))
            assert loop.network.stats.delivered > 20
        finally:
            loop.close()
    payload, code, _mids = results[0]
    assert payload == bytes(range(256)) * 40 and code == int(aiocoap.CHANGED)
    assert results[0] == results[1]  # same seed, same message IDs


def test_a_con_to_nowhere_is_retransmitted_on_simulated_time_then_given_up() -> None:
    async def main(loop: VirtualEventLoop) -> tuple[float, int]:
        client = await open_udp_context(resource.Site(), "127.0.0.1", 0)
        request = client.request(aiocoap.Message(code=aiocoap.GET, uri="coap://127.0.0.1:9/x"))
        try:
            await request.response
        except aiocoap.error.ConstructionRenderableError:
            pass
        except Exception:
            pass
        t = loop.time()
        await client.shutdown()
        return t, loop.network.stats.unreachable

    loop = VirtualEventLoop(seed=3)
    try:
        t, unreachable = loop.run_until_complete(main(loop))
    finally:
        loop.close()
    # RFC 7252: 4 retransmissions, given up after MAX_TRANSMIT_WAIT (ACK_TIMEOUT 2 s, factor
    # 1.5: between 2 x 31 = 62 s and 93 s after the first transmission)
    assert unreachable == 5
    assert 62.0 <= t <= 93.0


def test_a_garbage_datagram_is_ignored_and_the_server_keeps_serving() -> None:
    async def main(loop: VirtualEventLoop) -> bytes:
        site = resource.Site()
        site.add_resource(["big"], Big())
        server = await open_udp_context(site, "127.0.0.1", 5683)
        loop.network.send(("127.0.0.1", 40000), ("127.0.0.1", 5683), b"\xff\x00garbage")
        await asyncio.sleep(1.0)
        client = await open_udp_context(resource.Site(), "127.0.0.1", 0)
        msg = aiocoap.Message(code=aiocoap.GET, uri="coap://127.0.0.1/big")
        got = await asyncio.wait_for(client.request(msg).response, 10)
        await client.shutdown()
        await server.shutdown()
        return bytes(got.payload[:4])

    loop = VirtualEventLoop()
    try:
        assert loop.run_until_complete(main(loop)) == bytes(range(4))
    finally:
        loop.close()


def test_streams_carry_bytes_in_order_and_a_closed_port_refuses() -> None:
    async def main(loop: VirtualEventLoop) -> tuple[bytes, float]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read(100)
            writer.write(data.upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello ")
        writer.write(b"world")
        await writer.drain()
        got = await reader.read()  # until the server closes
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            pass
        else:
            raise AssertionError("a closed port accepted a connection")
        return got, loop.time()

    loop = VirtualEventLoop()
    try:
        got, t = loop.run_until_complete(main(loop))
    finally:
        loop.close()
    assert got == b"HELLO WORLD" and t == 0.0
