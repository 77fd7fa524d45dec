"""Waiting for an aiocoap response with a bound, and giving the request up cleanly.

aiocoap (0.4.17, its issue #210) completes a request's ``response`` future from the event
that carries the answer. A caller that bounds the wait with ``asyncio.wait_for(request.response,
t)`` cancels that future on timeout; aiocoap learns of the cancellation only in a done-callback,
which the loop runs *later* (``call_soon``). An answer processed in between (a device or a
repository that answers just too late) makes aiocoap call ``set_result`` on the cancelled
future: ``InvalidStateError`` in the loop's exception handler. A shielded wait avoids that but
leaves the request alive, retransmitting and waiting for an answer nobody reads.

:func:`abandon` closes both paths for a plain request (``handle_blockwise=False``, what the
lab uses wherever a message fits one datagram): it first detaches the request from its pipe
(no event can reach it any more), then cancels the future. A block-wise request cannot be
cancelled safely from outside (its runner's inner request has the same race), so it is left
to end by itself, its outcome retrieved.
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
    own cancellation handler has nothing left to do). A block-wise request is not cancelled
    (see the module docstring): it ends by itself and its outcome is retrieved. Harmless on a
    request that has already been answered.
    """
    response = getattr(request, "response", None)
    runner = getattr(request, "_runner", None)
    if isinstance(runner, asyncio.Task):
        # aiocoap's BlockwiseRequest: cancelling its runner cancels the inner request's future
        # the same unsafe way (aiocoap's own handler runs later). Leave it to end by itself
        # (answer or aiocoap's exchange timeout) and make sure its outcome is retrieved.
        if response is not None:
            response.add_done_callback(_retrieve)
        return
    stop = getattr(request, "_stop_interest", None)
    if runner is not None and callable(stop):
        request._runner = None  # aiocoap's handler then skips its own _stop_interest
        stop()
    if response is not None and not response.done():
        response.cancel()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


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
