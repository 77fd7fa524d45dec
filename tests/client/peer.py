"""A bare aiocoap LwM2M-server peer for the device tests (not the labkit server).

It keeps registrations from ``POST /rd``, answers Update/De-register on ``/rd/<id>``, records
every registration message in a queue, and sends requests to a device through its own socket
(role reversal, digest 8.4). Every await in here is bounded.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from labkit.client import SimulatedDevice
from labkit.coap import open_udp_context


@dataclass
class Reg:
    rid: str
    query: list[str]
    payload: bytes
    remote: Any
    updates: list[list[str]] = field(default_factory=list)

    @property
    def params(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for item in self.query:
            k, sep, v = item.partition("=")
            out[k] = v if sep else None
        return out

    @property
    def ep(self) -> str:
        return str(self.params["ep"])

    @property
    def port(self) -> int:
        return int(self.remote.hostinfo.rsplit(":", 1)[1])


class _Register(resource.Resource):
    def __init__(self, peer: RdPeer) -> None:
        super().__init__()
        self.peer = peer

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        return self.peer._register(request)


class _Entry(resource.Resource, resource.PathCapable):
    def __init__(self, peer: RdPeer) -> None:
        super().__init__()
        self.peer = peer

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        return self.peer._update(request)

    async def render_delete(self, request: aiocoap.Message) -> aiocoap.Message:
        return self.peer._delete(request)


class RdPeer:
    """The test's LwM2M server: ``async with RdPeer() as server: ...``."""

    def __init__(self, port: int = 0) -> None:
        self.want_port = port
        self.regs: dict[str, Reg] = {}
        self.by_ep: dict[str, Reg] = {}
        self.log: asyncio.Queue[tuple[str, Reg]] = asyncio.Queue()
        self.ctx: aiocoap.Context | None = None
        self.refuse_updates = False
        self._ids = itertools.count(1)

    async def __aenter__(self) -> RdPeer:
        site = resource.Site()
        site.add_resource(["rd"], _Register(self))
        site.add_resource(["rd"], _Entry(self))
        self.ctx = await asyncio.wait_for(
            open_udp_context(site, port=self.want_port, loggername="rd-peer"), 5
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ctx is not None:
            await asyncio.wait_for(self.ctx.shutdown(), 5)

    @property
    def port(self) -> int:
        assert self.ctx is not None
        mi = self.ctx.request_interfaces[0].token_interface.message_interface
        return int(mi._local_port())

    @property
    def uri(self) -> str:
        return f"coap://127.0.0.1:{self.port}"

    # -- the RD ------------------------------------------------------------------------------
    def _register(self, request: aiocoap.Message) -> aiocoap.Message:
        rid = str(next(self._ids))
        reg = Reg(rid, list(request.opt.uri_query), request.payload, request.remote)
        self.regs[rid] = reg
        self.by_ep[reg.ep] = reg
        self.log.put_nowait(("register", reg))
        return aiocoap.Message(code=Code.CREATED, location_path=["rd", rid])

    def _update(self, request: aiocoap.Message) -> aiocoap.Message:
        rid = request.opt.uri_path[0] if request.opt.uri_path else ""
        reg = self.regs.get(rid)
        if reg is None or self.refuse_updates:
            return aiocoap.Message(code=Code.NOT_FOUND)
        reg.remote = request.remote
        reg.updates.append(list(request.opt.uri_query))
        if request.payload:
            reg.payload = request.payload
        self.log.put_nowait(("update", reg))
        return aiocoap.Message(code=Code.CHANGED)

    def _delete(self, request: aiocoap.Message) -> aiocoap.Message:
        rid = request.opt.uri_path[0] if request.opt.uri_path else ""
        reg = self.regs.pop(rid, None)
        if reg is None:
            return aiocoap.Message(code=Code.NOT_FOUND)
        self.log.put_nowait(("delete", reg))
        return aiocoap.Message(code=Code.DELETED)

    async def next(self, kind: str | None = None, timeout: float = 5.0) -> Reg:
        """The next registration message (of ``kind``), skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got, reg = await asyncio.wait_for(self.log.get(), max(0.01, deadline - loop.time()))
            if kind is None or got == kind:
                return reg

    # -- requests to a device ------------------------------------------------------------------
    def message(self, ep: str, code: Code, path: str, **options: Any) -> aiocoap.Message:
        msg = aiocoap.Message(code=code, **options)
        msg.opt.uri_path = [s for s in path.strip("/").split("/") if s]
        msg.remote = self.by_ep[ep].remote
        return msg

    async def request(
        self, ep: str, code: Code, path: str, *, timeout: float = 5.0, **options: Any
    ) -> aiocoap.Message:
        assert self.ctx is not None
        msg = self.message(ep, code, path, **options)
        return await asyncio.wait_for(self.ctx.request(msg).response, timeout)


class Watch:
    """An observation opened by the test server; notifications land in a queue with times."""

    def __init__(self, server: RdPeer, ep: str, path: str, **opts: Any) -> None:
        assert server.ctx is not None
        msg = server.message(ep, Code.GET, path, observe=0, **opts)
        self.request = server.ctx.request(msg)
        self.queue: asyncio.Queue[tuple[float, aiocoap.Message]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def first(self) -> aiocoap.Message:
        resp = await asyncio.wait_for(self.request.response, 5)
        assert resp.opt.observe is not None, resp
        self.task = asyncio.get_running_loop().create_task(self._collect())
        return resp

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        async for notification in self.request.observation:
            self.queue.put_nowait((loop.time(), notification))

    async def next(self, timeout: float = 5.0) -> tuple[float, aiocoap.Message]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def nothing_for(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.queue.get(), seconds)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.request.observation.cancel()
        if self.task is not None:
            self.task.cancel()


async def started(server: RdPeer, **kwargs: Any) -> SimulatedDevice:
    """A device registered to ``server`` (endpoint ``kwargs.get("endpoint", "sim-1")``)."""
    endpoint = kwargs.pop("endpoint", "sim-1")
    device = SimulatedDevice(endpoint, server.uri, **kwargs)
    await device.start(timeout=5)
    await server.next("register")
    return device


async def until(cond: Any, timeout: float) -> None:
    """Poll ``cond()`` until true, at most ``timeout`` seconds (TimeoutError otherwise)."""

    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def run(coro: Any, timeout: float = 60.0) -> Any:
    """asyncio.run with an overall bound."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())
