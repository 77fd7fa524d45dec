"""Giving up an aiocoap request cleanly (labkit.coap_abandon): no late answer reaches it.

aiocoap 0.4.17 (its issue #210) completes a request's future from the event that carries the
answer; a future cancelled by ``asyncio.wait_for`` learns of it only in a later callback, so an
answer processed in between raises ``InvalidStateError`` in the loop. The first test injects
the answer at exactly that moment (the worst case, deterministic); the others use real
devices that answer after the server gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiocoap
import pytest
from aiocoap import resource

from labkit.client import SimulatedDevice
from labkit.client.device import _DeviceSite
from labkit.coap import open_udp_context
from labkit.coap_abandon import abandon, response_within
from labkit.server import LwM2MServer, RequestTimeout


class _Late(resource.Resource):  # type: ignore[misc]
    """Answers after ``delay`` seconds; ``answered`` is set once the answer is handed over."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.answered = asyncio.Event()

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        await asyncio.sleep(self.delay)
        self.answered.set()
        return aiocoap.Message(code=aiocoap.CONTENT, payload=b"late")


class _Now(resource.Resource):  # type: ignore[misc]
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=aiocoap.CONTENT, payload=b"now")


@contextlib.asynccontextmanager
async def _server(delay: float) -> Any:
    site = resource.Site()
    late = _Late(delay)
    site.add_resource(["late"], late)
    site.add_resource(["now"], _Now())
    ctx = await open_udp_context(site)
    try:
        yield ctx, late
    finally:
        await ctx.shutdown()


def _record_loop_errors(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


def _answer_for(request: Any) -> aiocoap.Message:
    answer = aiocoap.Message(code=aiocoap.CONTENT, payload=b"late")
    answer.remote = request._pipe.request.remote
    return answer


def test_the_race_of_aiocoap_210_and_how_abandon_closes_it() -> None:
    async def main() -> tuple[BaseException | None, BaseException | None]:
        client = await aiocoap.Context.create_client_context()
        try:
            msg = aiocoap.Message(code=aiocoap.GET, uri="coap://127.0.0.1:9/x")
            # what wait_for does on timeout: cancel the future; the answer is processed
            # before aiocoap's done-callback ran
            naive = client.request(msg, handle_blockwise=False)
            naive.response.cancel()
            raised: BaseException | None = None
            try:
                naive._pipe.add_response(_answer_for(naive), is_last=True)
            except asyncio.InvalidStateError as exc:
                raised = exc
            # the same moment after abandon(): nothing reaches the request any more
            msg2 = aiocoap.Message(code=aiocoap.GET, uri="coap://127.0.0.1:9/y")
            clean = client.request(msg2, handle_blockwise=False)
            abandon(clean)
            raised_after: BaseException | None = None
            try:
                clean._pipe.add_response(_answer_for(clean), is_last=True)
            except asyncio.InvalidStateError as exc:
                raised_after = exc
            assert clean.response.cancelled()
            await asyncio.sleep(0)
            return raised, raised_after
        finally:
            await client.shutdown()

    raised, raised_after = asyncio.run(main())
    assert isinstance(raised, asyncio.InvalidStateError)  # the hazard is real
    assert raised_after is None


@pytest.mark.parametrize("blockwise", [False, True])
def test_a_late_answer_after_response_within_gave_up_raises_nothing(blockwise: bool) -> None:
    async def main() -> list[dict[str, Any]]:
        errors = _record_loop_errors(asyncio.get_running_loop())
        async with _server(0.3) as (server, late):
            port = _port(server)
            client = await open_udp_context(None)
            try:
                req = client.request(
                    aiocoap.Message(code=aiocoap.GET, uri=f"coap://127.0.0.1:{port}/late"),
                    handle_blockwise=blockwise,
                )
                with pytest.raises(TimeoutError):
                    await response_within(req, 0.05)
                # a plain request is detached and cancelled; a block-wise one is left to end
                assert req.response.cancelled() is not blockwise
                async with asyncio.timeout(10):
                    await late.answered.wait()  # the answer is on its way
                if blockwise:  # it ends by itself, with the late answer
                    async with asyncio.timeout(10):
                        assert (await req.response).payload == b"late"
                # a request sent after it is answered after it (loopback keeps the order)
                now = client.request(
                    aiocoap.Message(code=aiocoap.GET, uri=f"coap://127.0.0.1:{port}/now")
                )
                assert (await response_within(now, 10)).payload == b"now"
                await asyncio.sleep(0)
            finally:
                await client.shutdown()
        return errors

    assert asyncio.run(main()) == []


def _port(ctx: aiocoap.Context) -> int:
    from labkit.coap import local_port

    port = local_port(ctx)
    assert port
    return int(port)


class _LateSite(_DeviceSite):
    """The device's site, answering reads of /3/0/3 after ``delay`` seconds."""

    delay = 0.4

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        if tuple(request.opt.uri_path) == ("3", "0", "3"):
            await asyncio.sleep(self.delay)
        return await super().render(request)


class LateDevice(SimulatedDevice):
    """Answers Read /3/0/3 only after the server has given up on it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._site = _LateSite(self)


def test_a_device_that_answers_late_raises_no_invalid_state_error() -> None:
    async def main() -> tuple[list[dict[str, Any]], str]:
        errors = _record_loop_errors(asyncio.get_running_loop())
        server = LwM2MServer()
        await server.start()
        dev = LateDevice("late-1", server.uri, lifetime=60)
        try:
            await dev.start(timeout=10)
            proxy = server.device("late-1")
            for _ in range(3):
                with pytest.raises(RequestTimeout):
                    await proxy.read("/3/0/3", timeout=0.1)
            await asyncio.sleep(_LateSite.delay * 2)  # let the late answers arrive
            # the server is still fine with this device
            serial = (await proxy.read("/3/0/2", timeout=5)).value
        finally:
            await dev.stop(timeout=2)
            await server.stop()
        return errors, str(serial)

    errors, serial = asyncio.run(main())
    assert serial == "late-1"
    assert [e.get("exception") for e in errors] == []
