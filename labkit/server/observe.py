"""One server-side observation of a device resource (RFC 7641 on top of aiocoap).

This module owns the life of an observation after the device accepted it: every notification
becomes a :class:`~labkit.server.response.Response`, an ``notify`` event (plus typed rows for
the analysed resources), a call of the user's callback and an item of the async iterator.
It does not decide what to observe or when to re-observe (the orchestrator does), and it
does not send the Observe request itself (:class:`labkit.server.device.DeviceProxy` does).

Cancelling is **reactive** in aiocoap 0.4.17 (issue chrysn/aiocoap #13, digest 8.3 and pitfall
17): :meth:`Observation.cancel` stops local delivery at once and forgets the token, and the
next notification the device sends is answered with a CoAP Reset, which ends the observation
on the device (RFC 7641 section 3.6). No GET with Observe=1 is sent, so the device keeps its
observation until it notifies again.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from labkit.server.response import Response

if TYPE_CHECKING:
    from labkit.lwm2m.paths import Path

def _rtt_now() -> float:
    """The running loop's clock, for round-trip times (simulated on a virtual-time loop,
    monotonic wall time otherwise)."""
    return asyncio.get_running_loop().time()


__all__ = ["Observation"]

log = logging.getLogger("labkit.server")

_END = object()


class Observation:
    """An active (or ended) observation of one path of one registered device.

    Attributes
    ----------
    endpoint, path:
        Who and what is observed.
    first:
        The answer to the Observe request (2.05 with an Observe option when accepted).
    latest:
        The newest response seen (``first`` until a notification arrives).
    count:
        Number of notifications received after ``first``.
    active:
        True until cancelled, ended by the device, or dropped with its registration.
    end_reason:
        Why it ended (None while active).
    """

    def __init__(
        self,
        *,
        endpoint: str,
        path: Path,
        first: Response,
        request: Any,
        sent_at: float,
        on_notification: Callable[[Observation, Response], None],
        on_end: Callable[[Observation, BaseException | None], None],
        callback: Callable[[Response], None] | None = None,
        on_callback_error: Callable[[Observation, BaseException], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.path = path
        self.first = first
        self.latest = first
        self.count = 0
        self.end_reason: str | None = None
        self._request = request  # keeps the aiocoap request (and its observation) alive
        self._sent_at = sent_at
        self._callback = callback
        self._on_notification = on_notification
        self._on_end = on_end
        self._on_callback_error = on_callback_error
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._active = False
        aio_obs = getattr(request, "observation", None)
        if first.ok and first.observe is not None and aio_obs is not None:
            self._active = True
            self._aio_obs = aio_obs
            # register_callback/errback are deprecated in favour of async iteration, but
            # aiocoap's iterator is lossy (it keeps only the newest notification) and the lab
            # must see every /5 state change; callbacks see each one.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                aio_obs.register_callback(self._notified)
                aio_obs.register_errback(self._failed)
        else:
            self.end_reason = f"not accepted ({first.code})"
            self._queue.put_nowait(_END)

    @property
    def active(self) -> bool:
        return self._active

    def cancel(self) -> None:
        """Stop the observation locally; the device's next notification is answered with RST."""
        if not self._active:
            return
        self._finish("cancelled")
        self._aio_obs.cancel()
        # aiocoap 0.4.17 only drops the token when the *next* notification reaches the
        # cancelled observation (it ACKs that one), so the device would need two more
        # notifications to learn. Ending the request's interest now frees the token at once,
        # and the very next notification is answered with RST.
        stop_interest = getattr(self._request, "_stop_interest", None)
        if callable(stop_interest):
            stop_interest()

    def _finish(self, reason: str) -> None:
        self._active = False
        self.end_reason = reason
        self._queue.put_nowait(_END)

    def _notified(self, msg: Any) -> None:
        if not self._active:
            return
        rtt = (_rtt_now() - self._sent_at) * 1000.0
        resp = Response.from_message(msg, self.path, rtt)
        self.count += 1
        self.latest = resp
        self._queue.put_nowait(resp)
        try:
            self._on_notification(self, resp)
        except Exception:  # an event sink must not break the observation
            log.exception("event sink failed on a notification")
        if self._callback is not None:
            try:
                self._callback(resp)
            except Exception as exc:  # the user's callback must not break the observation
                log.exception("observation callback failed")
                if self._on_callback_error is not None:
                    self._on_callback_error(self, exc)

    def _failed(self, exc: BaseException) -> None:
        if not self._active:
            return
        self._finish(f"ended: {type(exc).__name__}")
        try:
            self._on_end(self, exc)
        except Exception:
            log.exception("event sink failed at the end of an observation")

    async def next(self, timeout: float) -> Response:
        """The next notification, waiting at most ``timeout`` seconds.

        Raises
        ------
        TimeoutError
            When none arrives in time.
        StopAsyncIteration
            When the observation has ended and no notification is pending.
        """
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is _END:
            self._queue.put_nowait(_END)
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    async def wait_for(self, predicate: Callable[[Response], bool], *, timeout: float) -> Response:
        """The first response (``latest`` included) for which ``predicate`` is true.

        Notifications that do not match are consumed. Raises :class:`TimeoutError` when none
        matches in time and :class:`StopAsyncIteration` when the observation ends first.
        """
        if predicate(self.latest):
            return self.latest
        async with asyncio.timeout(timeout):
            while True:
                item = await self._queue.get()
                if item is _END:
                    self._queue.put_nowait(_END)
                    raise StopAsyncIteration
                if predicate(item):
                    return item  # type: ignore[no-any-return]

    def __aiter__(self) -> AsyncIterator[Response]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Response]:
        while True:
            item = await self._queue.get()
            if item is _END:
                self._queue.put_nowait(_END)
                return
            yield item

    def __repr__(self) -> str:
        state = "active" if self._active else (self.end_reason or "ended")
        return (
            f"Observation({self.endpoint!r} {self.path}, {state}, {self.count} notifications, "
            f"latest={self.latest.values or self.latest.code})"
        )
