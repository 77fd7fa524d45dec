"""Waiting for an aiocoap response with a bound, and giving the request up cleanly.

aiocoap (0.4.17, its issue #210) completes a request's ``response`` future from the event
that carries the answer. A caller that bounds the wait with ``asyncio.wait_for(request.response,
t)`` cancels that future on timeout; aiocoap learns of the cancellation only in a done-callback,
which the loop runs *later* (``call_soon``). An answer processed in between (a device or a
repository that answers just too late) makes aiocoap call ``set_result`` on the cancelled
future: ``InvalidStateError`` in the loop's exception handler. A shielded wait avoids that but
leaves the request alive, retransmitting and waiting for an answer nobody reads.

:func:`abandon` closes both paths: it first detaches the request from its pipe (no event can
reach it any more) or cancels its block-wise runner task, then cancels the future.
:func:`response_within` is the bounded wait that abandons on timeout or cancellation. This
module owns no socket; it only touches the request objects aiocoap returns.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["abandon", "response_within"]


def abandon(request: Any) -> None:
    """Give ``request`` (an aiocoap request) up for good: no late answer can complete it.

    A plain request is detached from its pipe before its future is cancelled (so aiocoap's
    own cancellation handler has nothing left to do); a block-wise request's runner task is
    cancelled first (it would otherwise resume with the answer and try to set the result).
    Harmless on a request that has already been answered.
    """
    response = getattr(request, "response", None)
    runner = getattr(request, "_runner", None)
    if isinstance(runner, asyncio.Task):  # aiocoap's BlockwiseRequest
        runner.cancel()
    else:
        stop = getattr(request, "_stop_interest", None)
        if runner is not None and callable(stop):
            request._runner = None  # aiocoap's handler then skips its own _stop_interest
            stop()
    if response is not None and not response.done():
        response.cancel()


async def response_within(request: Any, timeout: float) -> Any:
    """The answer to ``request`` within ``timeout`` seconds.

    Raises :class:`TimeoutError` after ``timeout`` (the request is abandoned first), and the
    errors aiocoap sets on the future; a cancelled caller abandons the request too.
    """
    response = request.response
    try:
        return await asyncio.wait_for(asyncio.shield(response), timeout)
    except BaseException:
        if not response.done():
            abandon(request)
        elif not response.cancelled():
            response.exception()  # retrieved: never "exception was never retrieved"
        raise
