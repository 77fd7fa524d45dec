"""A virtual-time asyncio event loop: simulated time that jumps from timer to timer.

:class:`VirtualEventLoop` is asyncio's selector event loop with one change: :meth:`time`
returns *simulated* seconds, and whenever nothing is runnable the loop does not sleep until
its next timer is due -- it moves simulated time straight to it (:class:`_VirtualSelector`
wraps the real selector: a ``select(timeout > 0)`` becomes a real ``select(0)`` plus an
advance of simulated time by ``timeout``). Every ``call_later``, ``asyncio.sleep``,
``asyncio.wait_for`` and aiocoap retransmission timer therefore runs on simulated time, a
simulated hour costs only the CPU its events need, and how busy the machine is changes the
wall time of a run, never its results.

Timers due at the same simulated instant are released **one per loop iteration**, in their
heap order (asyncio's own loop moves all of them to the ready queue at once): what a timer
starts -- the callbacks it schedules, the datagram it sends on the in-process network, the
answer to that -- runs interleaved with the next timers of that instant instead of after all
of them, as a discrete-event simulator handles one event at a time. Ready callbacks keep their
FIFO order, timers their order among themselves, and an instant still ends only when nothing
is left to do at it; nothing moves in simulated time. What it changes is memory: 10,000
devices whose registration Updates fall on one instant hold a handful of exchanges in flight
at once instead of 10,000 (about 13 KiB each in aiocoap's request, pipe, task and message
objects), so the allocator does not grow to that peak and keep it (the ``virtual-idle``
benchmark). The order of same-instant events differs from asyncio's breadth-first order, and
so may a run's event table: deterministically, as before.

The real selector stays underneath so that other threads can still hand work to the loop
(``call_soon_threadsafe`` wakes it through its self-pipe); real sockets and executor threads
would make a run depend on wall-clock timing again, so virtual runs use the in-process network
of :mod:`labkit.virtual.network` instead.

The *horizon* bounds how far simulated time may go: :attr:`VirtualEventLoop.horizon`
(``math.inf`` by default, i.e. free running). A :class:`~labkit.runtime.Lab` driven from a
notebook keeps the horizon at "now" between calls (time stands still while the student reads)
and lifts it while a call such as ``lab.update()`` or ``lab.run_for(60)`` waits. Idle hooks
(:meth:`VirtualEventLoop.add_idle_hook`) run whenever the loop has nothing left to do at the
current instant, before time moves: ``lab.run_until(predicate)`` uses them to stop at the
first simulated instant at which the predicate holds.

:class:`VirtualClock` is the lab clock of a virtual run: the same interface as
:class:`~labkit.timebase.ScaledClock` with a scale of 1, reading the loop's time from a fixed
simulated epoch (:data:`DEFAULT_EPOCH`, 2025-01-01 00:00:00 UTC, overridable).

aiocoap reads ``time.time()`` in one place (the Observe reordering check of client
observations); :func:`install_aiocoap_time` points that module's ``time`` at a shim that
answers with the running virtual loop's clock inside a virtual run and with the real clock
everywhere else. aiocoap's files are not changed.

This module owns simulated time; it decides nothing about LwM2M and opens no socket.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import math
import selectors
import threading
import types
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVarTuple, Unpack

from labkit.timebase import ScaledClock

__all__ = [
    "DEFAULT_EPOCH",
    "VirtualClock",
    "VirtualEventLoop",
    "current_clock",
    "install_aiocoap_time",
    "running_virtual_loop",
]

#: Simulated Unix time at which every virtual run starts unless told otherwise:
#: 2025-01-01T00:00:00Z.
DEFAULT_EPOCH = 1_735_689_600.0

#: Longest real wait (wall seconds) of a loop that is held at its horizon; it wakes earlier
#: whenever another thread hands it work.
_HELD_WAIT_S = 1.0

#: asyncio's bound on one select() timeout (a simulated jump never goes further in one step).
_MAX_STEP_S = 24 * 3600.0
_Ts = TypeVarTuple("_Ts")

#: Timer heaps with more entries than this are compacted once most of them are cancelled.
_COMPACT_MIN = 100
_COMPACT_FRACTION = 0.5


class _VirtualSelector:
    """A selector wrapper: polls the real selector without blocking, then advances time."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualEventLoop) -> None:
        self._real = real
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return self._loop.virtual_select(self._real, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on simulated time (see the module docstring).

    Parameters
    ----------
    epoch:
        Simulated Unix time of the loop's time 0 (:attr:`epoch`; :class:`VirtualClock` adds
        it). Default :data:`DEFAULT_EPOCH`.
    seed:
        Seed of the loop's in-process network (:attr:`network`): port numbers and every
        CoAP context's message IDs, tokens and retransmission jitter derive from it.

    Attributes
    ----------
    horizon:
        Loop time beyond which simulated time does not advance (``math.inf``: free running).
    advances:
        How many times simulated time jumped (a measure of how much waiting was skipped).
    network:
        The :class:`~labkit.virtual.network.VirtualNetwork` of this loop: CoAP contexts the
        lab opens on this loop (:func:`labkit.coap.open_udp_context`) and datagram endpoints
        (:meth:`create_datagram_endpoint` without a socket) live there.
    """

    def __init__(self, *, epoch: float = DEFAULT_EPOCH, seed: int = 0) -> None:
        from labkit.virtual.network import VirtualNetwork

        self._vtime = 0.0
        self.horizon = math.inf
        self.advances = 0
        self._idle_hooks: list[Callable[[], object]] = []
        self._clock: VirtualClock | None = None
        self._selector_real = selectors.DefaultSelector()
        super().__init__(_VirtualSelector(self._selector_real, self))  # type: ignore[arg-type]
        self.epoch = float(epoch)
        self.seed = int(seed)
        self.network = VirtualNetwork(self, seed=seed)
        self.thread: threading.Thread | None = None  # set by run_forever / run_until_complete
        install_aiocoap_time()

    def time(self) -> float:
        """Simulated seconds since the loop's start (add :attr:`epoch` for Unix time)."""
        return self._vtime

    # -- timers and one iteration ---------------------------------------------------------------
    # A fleet run schedules hundreds of thousands of timers (every CON's retransmission timer,
    # every datagram's link delay). asyncio keeps its timer heap ordered with
    # ``TimerHandle.__lt__``, a Python method called for every comparison; this loop keeps
    # ``(when, handle)`` pairs instead, which the heap compares in C. The order is the same:
    # a pair is "less" exactly when its ``when`` is (on equal ``when`` both orders say "not
    # less"), so the same pushes and pops give the same sequence of timers as asyncio's heap.
    def call_at(self, when: float, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        if self._debug:  # type: ignore[attr-defined]
            return self._debug_call_at(when, callback, args, context)
        if self._closed:  # type: ignore[attr-defined]  # (asyncio's _check_closed, inline)
            raise RuntimeError("Event loop is closed")
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._scheduled, (when, timer))  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object],
                   *args: *_Ts, context: contextvars.Context | None = None,
                   ) -> asyncio.TimerHandle:
        if delay is None:
            raise TypeError("delay must not be None")
        when = self._vtime + delay
        if self._debug:  # type: ignore[attr-defined]
            return self._debug_call_at(when, callback, args, context)
        if self._closed:  # type: ignore[attr-defined]  # (call_at, inline: one call per timer)
            raise RuntimeError("Event loop is closed")
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._scheduled, (when, timer))  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
                  context: contextvars.Context | None = None) -> asyncio.Handle:
        """asyncio's ``call_soon`` without its two inner calls (every future callback, task
        step and in-process datagram goes through here); the same handle in the same place
        of the ready queue."""
        if self._debug:  # type: ignore[attr-defined]
            return super().call_soon(callback, *args, context=context)
        if self._closed:  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)  # type: ignore[attr-defined]
        return handle

    def _debug_call_at(self, when: float, callback: Callable[..., object], args: tuple[Any, ...],
                       context: contextvars.Context | None) -> asyncio.TimerHandle:
        self._check_closed()  # type: ignore[attr-defined]
        self._check_thread()  # type: ignore[attr-defined]
        self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._scheduled, (when, timer))  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def _run_once(self) -> None:
        """One iteration on the ``(when, handle)`` heap (see :meth:`call_at`): drop cancelled
        timers, ask :meth:`virtual_select` (which moves simulated time when nothing is
        ready), move the first due timer to the ready queue (one per iteration: see the module
        docstring) and run what was ready."""
        # (Written for few bytecodes per iteration: a fleet run makes hundreds of thousands of
        # them, most with one handle to run. Same steps and order as described above.)
        heap: list[tuple[float, asyncio.TimerHandle]] = self._scheduled  # type: ignore[has-type]
        ready = self._ready  # type: ignore[attr-defined]
        cancelled: int = self._timer_cancelled_count  # type: ignore[has-type]
        if cancelled:  # (none counted: no cancelled timer is in the heap)
            if len(heap) > _COMPACT_MIN and cancelled / len(heap) > _COMPACT_FRACTION:
                kept = []
                for entry in heap:
                    if entry[1]._cancelled:  # type: ignore[attr-defined]
                        entry[1]._scheduled = False  # type: ignore[attr-defined]
                    else:
                        kept.append(entry)
                heapq.heapify(kept)
                self._scheduled = heap = kept
                self._timer_cancelled_count = 0
            else:
                while heap and heap[0][1]._cancelled:  # type: ignore[attr-defined]
                    self._timer_cancelled_count -= 1
                    heapq.heappop(heap)[1]._scheduled = False  # type: ignore[attr-defined]

        # Nothing ready: poll and let simulated time move to the first timer (a timer already
        # due, or work ready: no poll -- see virtual_select).
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            if heap:
                wait = heap[0][0] - self._vtime
                events = (
                    self.virtual_select(self._selector_real, min(wait, _MAX_STEP_S))
                    if wait > 0 else None
                )
            else:
                events = self.virtual_select(self._selector_real, None)
            if events:
                self._process_events(events)  # type: ignore[attr-defined]

        if heap:
            first = heap[0]
            if first[0] < self._vtime + self._clock_resolution:  # type: ignore[attr-defined]
                heapq.heappop(heap)
                timer = first[1]
                timer._scheduled = False  # type: ignore[attr-defined]
                ready.append(timer)

        if self._debug:  # type: ignore[attr-defined]
            popleft = ready.popleft
            for _ in range(len(ready)):
                handle = popleft()
                if not handle._cancelled:
                    self._current_handle = handle
                    try:
                        handle._run()
                    finally:
                        self._current_handle = None
            return
        todo = len(ready)
        if todo == 1:
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()
        elif todo:
            popleft = ready.popleft
            for _ in range(todo):
                handle = popleft()
                if not handle._cancelled:
                    handle._run()
        handle = None  # break the cycle an exception's traceback would hold

    def now(self) -> float:
        """Simulated Unix time (``epoch + time()``)."""
        return self.epoch + self._vtime

    def virtual_select(
        self, real: selectors.BaseSelector, timeout: float | None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        """What the loop's selector does: poll the real selector without blocking, run the
        idle hooks, then move simulated time to the next timer (within the horizon)."""
        if timeout is not None and timeout <= 0:
            # Work is ready at this instant: run it without a system call. Work handed over
            # by other threads is already in the ready queue (call_soon_threadsafe); only its
            # wake-up byte waits in the self-pipe, read when the loop is next idle.
            return []
        if len(real.get_map()) > 1:  # real file descriptors besides the self-pipe
            events = real.select(0)
            if events:
                return events
        elif self._ready:  # type: ignore[attr-defined]  # handed over by another thread
            return []
        # Nothing to do at this instant: let the idle hooks look at the settled state.
        if self._idle_hooks:
            self._run_idle_hooks()
            if self._ready:  # type: ignore[attr-defined]  # a hook woke somebody up
                return []
        now = self._vtime
        target = math.inf if timeout is None else now + timeout
        if target <= self.horizon:
            if math.isinf(target):  # free running but nothing scheduled: wait for threads
                return real.select(None)
            scheduled = self._scheduled  # type: ignore[attr-defined]  # (when, handle) heap
            if scheduled and abs(scheduled[0][0] - target) < 1e-6:
                target = scheduled[0][0]  # land exactly on the timer's instant
            self._vtime = max(now, target)
            self.advances += 1
            return []
        if self.horizon > now:
            self._vtime = self.horizon  # go as far as allowed, then wait to be allowed more
        return real.select(_HELD_WAIT_S)

    @property
    def virtual_clock(self) -> VirtualClock:
        """The loop's :class:`VirtualClock` (made on first use)."""
        if self._clock is None:
            self._clock = VirtualClock(self)
        return self._clock

    def run_forever(self) -> None:
        self.thread = threading.current_thread()
        super().run_forever()

    # -- idle hooks --------------------------------------------------------------------------
    def add_idle_hook(self, hook: Callable[[], object]) -> Callable[[], None]:
        """Call ``hook()`` (on the loop) whenever the loop is idle at the current instant,
        before simulated time moves on; returns a function removing the hook."""
        self._idle_hooks.append(hook)

        def remove() -> None:
            if hook in self._idle_hooks:
                self._idle_hooks.remove(hook)

        return remove

    async def settled(self) -> None:
        """Return once everything due at the current simulated instant has run (the next time
        the loop is idle, before time moves on)."""
        done = self.create_future()

        def hook() -> None:
            if not done.done():
                done.set_result(None)

        remove = self.add_idle_hook(hook)
        try:
            await done
        finally:
            remove()

    def _run_idle_hooks(self) -> None:
        for hook in list(self._idle_hooks):
            try:
                hook()
            except Exception as exc:  # a broken predicate must not stop the loop
                self.call_exception_handler(
                    {"message": "virtual loop idle hook failed", "exception": exc}
                )

    # -- in-process datagrams ------------------------------------------------------------------
    async def create_datagram_endpoint(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.DatagramProtocol], local_addr: Any = None,
        remote_addr: Any = None, **kwargs: Any,
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        """Datagram endpoints live on :attr:`network` (an explicit ``sock=`` is refused: a real
        socket would put wall-clock timing back into the run)."""
        if kwargs.get("sock") is not None or remote_addr is not None:
            raise ValueError("a virtual loop has no real datagram sockets; bind with local_addr")
        host, port = local_addr if local_addr is not None else ("127.0.0.1", 0)
        protocol = protocol_factory()
        transport = self.network.bind_datagram(protocol, str(host), int(port))
        protocol.connection_made(transport)
        return transport, protocol


    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.Protocol], host: Any = None,
        port: Any = None, **kwargs: Any,
    ) -> asyncio.AbstractServer:
        """Stream servers live on :attr:`network` (in-memory connections, no socket)."""
        if kwargs.get("sock") is not None:
            raise ValueError("a virtual loop has no real sockets; give host and port")
        return self.network.listen(protocol_factory, str(host or "127.0.0.1"), int(port or 0))

    async def create_connection(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.Protocol], host: Any = None,
        port: Any = None, **kwargs: Any,
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        """Connect to a stream server on :attr:`network` (``ConnectionRefusedError`` when
        none listens there)."""
        if kwargs.get("sock") is not None or kwargs.get("ssl") is not None:
            raise ValueError("a virtual loop has no real sockets and no TLS")
        return self.network.connect(protocol_factory, str(host), int(port))


def running_virtual_loop() -> VirtualEventLoop | None:
    """The running event loop of this thread if it is a :class:`VirtualEventLoop`."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop if isinstance(loop, VirtualEventLoop) else None


class VirtualClock(ScaledClock):
    """The lab clock of a virtual run: ``loop.epoch + loop.time()``.

    Same interface as :class:`~labkit.timebase.ScaledClock` with ``scale == 1`` (``to_wall``
    and ``to_sim`` are the identity: a wait on the loop *is* a simulated wait), so every
    component that takes a scaled clock runs unchanged on virtual time.
    """

    __slots__ = ("loop",)

    #: Marks a clock whose time is simulated by the loop (no wall clock involved).
    virtual = True

    def __init__(self, loop: VirtualEventLoop) -> None:
        epoch = loop.epoch
        super().__init__(1.0, wall=lambda: epoch + loop.time(), monotonic=loop.time)
        self.loop = loop

    def __repr__(self) -> str:
        return f"VirtualClock(epoch={self.origin_iso}, elapsed={self.elapsed():.3f} s)"

    @property
    def epoch(self) -> float:
        """Simulated Unix time of the loop's time 0."""
        return self.loop.epoch

    @property
    def origin_iso(self) -> str:
        return datetime.fromtimestamp(self.loop.epoch, UTC).isoformat().replace("+00:00", "Z")

    def sim_now(self) -> float:
        loop = self.loop
        return loop.epoch + loop._vtime  # (loop.time(), read directly: every event reads it)

    __call__ = sim_now

    def elapsed(self) -> float:
        return self.loop.time() - self._mono0


# ---------------------------------------------------------------------------------------------
# aiocoap's one wall-clock read
# ---------------------------------------------------------------------------------------------


def _loop_aware_time() -> float:
    loop = running_virtual_loop()
    if loop is not None:
        return loop.now()
    return _REAL_TIME()


import time as _time_module  # noqa: E402  (kept apart: the shim below wraps this module)

_REAL_TIME = _time_module.time


class _TimeShim(types.ModuleType):
    """``time`` for aiocoap.protocol: ``time()`` follows a running virtual loop."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_time_module, name)

    @staticmethod
    def time() -> float:
        return _loop_aware_time()


def install_aiocoap_time() -> None:
    """Make ``aiocoap.protocol``'s ``time.time()`` read virtual time inside virtual runs
    (idempotent; outside a virtual loop it is the real clock)."""
    import aiocoap.protocol as protocol

    if not isinstance(getattr(protocol, "time", None), _TimeShim):
        protocol.time = _TimeShim("time")


def epoch_iso(epoch: float) -> str:
    """``"2025-01-01T00:00:00Z"`` for a simulated epoch."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def current_clock() -> Callable[[], float]:
    """The clock to stamp with by default: the running virtual loop's :class:`VirtualClock`
    inside a virtual run, :func:`time.time` otherwise."""
    loop = running_virtual_loop()
    return _REAL_TIME if loop is None else loop.virtual_clock
