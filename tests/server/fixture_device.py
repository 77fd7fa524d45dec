"""A tiny LwM2M device peer for the server tests: a bare aiocoap context with a few resources.

The server is what is under test, so its peer is kept minimal and obvious: a handful of
resources (/3/0, /4/0, /5/0 and some of their resources, an object /9 for Create/Delete), the
codecs of :mod:`labkit.lwm2m.formats` to answer in the requested format, and helpers that send
Register/Update/De-register/Send *from the same context* (so the server's requests come back
to it, as with a real client).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from labkit.lwm2m.errors import Lwm2mError
from labkit.lwm2m.formats import ContentFormat, decode, encode, normalize_format
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import Value

TIMEOUT = 10.0

DEFAULT_LINKS = b"</1/0>,</3/0>,</4/0>,</5>;ver=1.1,</5/0>,</9>"


def _code(text: str) -> Code:
    c, _, d = text.partition(".")
    return Code(int(c) * 32 + int(d))


class _Node(resource.ObservableResource):
    """GET/PUT/POST on one path of the device's value store; observable."""

    def __init__(self, device: FixtureDevice, path: Path) -> None:
        super().__init__()
        self.device = device
        self.path = path
        self.observers = 0

    def update_observation_count(self, newcount: int) -> None:
        self.observers = newcount
        self.device.observer_counts[str(self.path)] = newcount

    def _below(self) -> dict[Path, Value]:
        return {p: v for p, v in self.device.values.items() if p.startswith(self.path)}

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        self.device.log.append(("GET", str(self.path), request.opt.accept, request.opt.observe))
        values = self._below()
        if not values:
            return aiocoap.Message(code=aiocoap.NOT_FOUND)
        accept = request.opt.accept
        fmt = int(accept) if accept is not None else int(ContentFormat.TLV)
        if fmt == ContentFormat.LINK_FORMAT:
            links = ",".join(f"<{p}>" for p in [self.path, *sorted(values)])
            return aiocoap.Message(payload=links.encode(), content_format=40)
        try:
            payload = encode(fmt, self.path, values)
        except Lwm2mError:
            return aiocoap.Message(code=aiocoap.NOT_ACCEPTABLE)
        return aiocoap.Message(payload=payload, content_format=fmt)

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.device.log.append(("PUT", str(self.path), request.opt.content_format, None))
        if not request.payload:  # Write-Attributes
            self.device.attributes[str(self.path)] = list(request.opt.uri_query)
            return aiocoap.Message(code=aiocoap.CHANGED)
        return self._write(request)

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        self.device.log.append(("POST", str(self.path), request.opt.content_format, None))
        if self.path.is_resource and self.device.executable(self.path):
            self.device.executed.append((str(self.path), request.payload.decode()))
            return aiocoap.Message(code=aiocoap.CHANGED)
        if self.path.is_object:  # Create
            new = self.path.child(len({p.ids[1] for p in self._below()}))
            values = decode(int(request.opt.content_format), request.payload, self.path)
            values = {
                Path((*new.ids, *p.ids[2:])) if p.level >= 3 else p: v for p, v in values.items()
            }
            self.device.values.update(values)
            self.device.add_node(new)
            return aiocoap.Message(code=aiocoap.CREATED, location_path=new.segments)
        return self._write(request)

    async def render_delete(self, request: aiocoap.Message) -> aiocoap.Message:
        for p in [p for p in self.device.values if p.startswith(self.path)]:
            del self.device.values[p]
        return aiocoap.Message(code=aiocoap.DELETED)

    def _write(self, request: aiocoap.Message) -> aiocoap.Message:
        cf = request.opt.content_format
        try:
            values = decode(normalize_format(int(cf)), request.payload, self.path)
        except Lwm2mError as exc:
            return aiocoap.Message(code=_code(exc.coap_code))
        self.device.set_values(values)
        return aiocoap.Message(code=aiocoap.CHANGED)


class _Package(resource.Resource):
    """/5/0/0: takes a whole package (aiocoap reassembles Block1 for it)."""

    def __init__(self, device: FixtureDevice) -> None:
        super().__init__()
        self.device = device

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.device.package = bytes(request.payload)
        self.device.package_format = request.opt.content_format
        self.device.set_values({Path.of(5, 0, 3): 2})
        return aiocoap.Message(code=aiocoap.CHANGED)


class _SmallBlocks(resource.Resource):
    """/5/0/0 variant that clocks Block1 itself and insists on ``size`` byte blocks.

    It answers block 0 with a smaller SZX (late negotiation, RFC 7959 2.5) and later blocks
    with 2.31 at that size; out-of-order blocks get 4.08.
    """

    def __init__(self, device: FixtureDevice, size: int = 256, too_large: int | None = None):
        super().__init__()
        self.device = device
        self.szx = size.bit_length() - 5
        self.buf = bytearray()
        self.too_large = too_large

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return False

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        b1 = request.opt.block1
        if b1 is None:
            self.device.package = bytes(request.payload)
            return aiocoap.Message(code=aiocoap.CHANGED)
        if self.too_large is not None and request.opt.size1 and request.opt.size1 > self.too_large:
            resp = aiocoap.Message(code=aiocoap.REQUEST_ENTITY_TOO_LARGE)
            resp.opt.size1 = self.too_large
            return resp
        offset = b1.block_number * (2 ** (b1.size_exponent + 4))
        if b1.block_number == 0:
            self.buf = bytearray()
        if offset != len(self.buf):
            return aiocoap.Message(code=aiocoap.REQUEST_ENTITY_INCOMPLETE)
        self.buf += request.payload
        self.device.block_sizes.append(len(request.payload))
        szx = min(self.szx, b1.size_exponent)
        if b1.more:
            resp = aiocoap.Message(code=aiocoap.CONTINUE)
            resp.opt.block1 = (b1.block_number, True, szx)
            return resp
        self.device.package = bytes(self.buf)
        resp = aiocoap.Message(code=aiocoap.CHANGED)
        resp.opt.block1 = (b1.block_number, False, szx)
        return resp


class FixtureDevice:
    """A minimal device peer on 127.0.0.1 with an ephemeral port (on a virtual-time loop: on
    that loop's in-process network)."""

    def __init__(
        self,
        endpoint: str = "dev-1",
        *,
        small_blocks: int | None = None,
        too_large: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.values: dict[Path, Value] = {
            Path.of(3, 0, 0): "labkit",
            Path.of(3, 0, 1): "fixture",
            Path.of(3, 0, 3): "1.0.0",
            Path.of(3, 0, 9): 87,
            Path.of(4, 0, 2): -95,
            Path.of(4, 0, 3): 12,
            Path.of(5, 0, 1): "",
            Path.of(5, 0, 3): 0,
            Path.of(5, 0, 5): 0,
            Path.of(5, 0, 8, 0): 0,
            Path.of(5, 0, 8, 1): 2,
            Path.of(5, 0, 9): 2,
        }
        self.package: bytes | None = None
        self.package_format: int | None = None
        self.executed: list[tuple[str, str]] = []
        self.attributes: dict[str, list[str]] = {}
        self.observer_counts: dict[str, int] = {}
        self.block_sizes: list[int] = []
        self.log: list[tuple[str, str, Any, Any]] = []
        self.location: list[str] | None = None
        self.site = resource.Site()
        self._nodes: dict[Path, _Node] = {}
        for p in (Path.of(3, 0), Path.of(4, 0), Path.of(5, 0), Path.of(9)):
            self.add_node(p)
        for p in self.values:
            if p.level == 3:
                self.add_node(p)
        self.add_node(Path.of(5, 0, 8))
        self.add_node(Path.of(5, 0, 2))
        if small_blocks is not None or too_large is not None:
            self.site.add_resource(
                ["5", "0", "0"], _SmallBlocks(self, small_blocks or 1024, too_large)
            )
        else:
            self.site.add_resource(["5", "0", "0"], _Package(self))
        self.ctx: aiocoap.Context | None = None

    def add_node(self, path: Path) -> None:
        if path not in self._nodes:
            node = _Node(self, path)
            self._nodes[path] = node
            self.site.add_resource(path.segments, node)

    @staticmethod
    def executable(path: Path) -> bool:
        return path in (Path.of(5, 0, 2), Path.of(3, 0, 4))

    def set_values(self, values: Mapping[Path, Value]) -> None:
        """Change values and notify the observers of every node they touch."""
        self.values.update(values)
        for node_path, node in self._nodes.items():
            if any(p.startswith(node_path) for p in values):
                node.updated_state()

    @property
    def package_sha256(self) -> str | None:
        return None if self.package is None else hashlib.sha256(self.package).hexdigest()

    async def start(self) -> FixtureDevice:
        from labkit.virtual.loop import running_virtual_loop

        if running_virtual_loop() is not None:  # virtual time: the loop's in-process network
            from labkit.coap import open_udp_context

            self.ctx = await open_udp_context(self.site, "127.0.0.1", 0)
        else:
            self.ctx = await aiocoap.Context.create_server_context(
                self.site, bind=("127.0.0.1", 0), transports=["udp6"]
            )
        return self

    async def stop(self) -> None:
        if self.ctx is not None:
            await asyncio.wait_for(self.ctx.shutdown(), TIMEOUT)
            self.ctx = None

    async def __aenter__(self) -> FixtureDevice:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- client-initiated messages -------------------------------------------------------
    async def send_request(
        self,
        code: Any,
        uri: str,
        *,
        query: Sequence[str] = (),
        payload: bytes = b"",
        content_format: int | None = None,
    ) -> aiocoap.Message:
        assert self.ctx is not None
        msg = aiocoap.Message(code=code, uri=uri, payload=payload)
        if query:
            msg.opt.uri_query = list(query)
        if content_format is not None:
            msg.opt.content_format = content_format
        return await asyncio.wait_for(self.ctx.request(msg).response, TIMEOUT)

    async def register(
        self,
        server_uri: str,
        *,
        lt: int = 300,
        lwm2m: str = "1.1",
        extra: Sequence[str] = (),
        payload: bytes = DEFAULT_LINKS,
        query: Sequence[str] | None = None,
    ) -> aiocoap.Message:
        if query is None:
            query = [f"ep={self.endpoint}", f"lt={lt}", f"lwm2m={lwm2m}", "b=U", *extra]
        resp = await self.send_request(
            aiocoap.POST, server_uri + "/rd", query=query, payload=payload, content_format=40
        )
        if resp.code == aiocoap.CREATED:
            self.location = list(resp.opt.location_path)
        return resp

    async def update(
        self, server_uri: str, *, query: Sequence[str] = (), payload: bytes = b""
    ) -> aiocoap.Message:
        assert self.location is not None
        return await self.send_request(
            aiocoap.POST,
            server_uri + "/" + "/".join(self.location),
            query=query,
            payload=payload,
            content_format=40 if payload else None,
        )

    async def deregister(self, server_uri: str) -> aiocoap.Message:
        assert self.location is not None
        return await self.send_request(aiocoap.DELETE, server_uri + "/" + "/".join(self.location))
