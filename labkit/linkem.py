"""The link emulator: a device's real UDP datagrams pass through its simulated radio link.

This module is the adapter between the pure link model (:mod:`labkit.sim.link`) and the lab's
sockets. It owns two things:

* :class:`LinkRelay` -- a per-device UDP relay on loopback between the simulated device and the
  LwM2M server. The device is pointed at the relay (``server_uri=relay.uri``); the relay
  forwards every datagram, in both directions, after asking the device's
  :class:`~labkit.sim.link.LinkImpairment` for a verdict: drop it, or deliver it
  ``delay_s`` later. The server sees the relay's server-side socket as the device's address,
  and its requests (role reversal, digest 8.4) come back through the relay to the device's
  current port, also after a reboot (the relay follows the device's latest source port).
* :class:`LinkFeeder` -- one task that writes each device's Connectivity Monitoring values
  (/4/0/0 Network Bearer, /4/0/2 Radio Signal Strength, /4/0/3 Link Quality) from the same
  trace's sample, through ``device.set_values`` (which notifies observers and records one
  ``link`` row per sample that changed anything): every ``interval_s`` simulated seconds, and,
  through the relay's ``before_delivery`` hook, just before a request that can read /4
  reaches the device. What the server reads in /4 is therefore the signal, at the moment of
  the read, that drives the losses it suffers.

Why a relay
-----------
The datagrams stay real: aiocoap on both sides sends, retransmits and deduplicates exactly as
on a network, and a capture on loopback shows every datagram the link let through. Nothing in
aiocoap, the server or the device is patched or wrapped, so the same devices and server work
unchanged with and without a simulated link, and a real LwM2M client could be put behind a
relay too. The price is one extra pair of sockets and two loop callbacks per datagram.

Time
----
Verdicts are asked at the trace time ``clock.elapsed() - t0`` (simulated seconds; ``t0`` lets
a fleet start its traces when it is up, so that scripted dips are relative to the campaign,
not to the registration burst before it; earlier times read the trace's first sample), and
delays are simulated seconds divided by the clock's scale (a 0.6 s NB-IoT one-way delay
lasts 6 ms at 100x). Each datagram is delayed independently (no queue): CoAP's NSTART = 1
keeps about one message in flight per direction, so queueing would rarely change anything.

Determinism
-----------
Verdicts come from the impairment's seeded stream, in the order datagrams arrive: the n-th
datagram of a device always gets the n-th pair of draws. Which datagram is the n-th, and at
which simulated time it is sent, depends on wall-clock scheduling (aiocoap draws its
retransmission timers from the global random generator, and the event loop's lag varies), so
two runs with the same seeds drop statistically equal but not always identical datagrams.
Compare runs by their outcome tables, not by timestamps. On a virtual-time loop
(:mod:`labkit.virtual`) the relay binds on the loop's in-process network and its delays are
loop timers on simulated time: there the n-th datagram and its send time are fixed by the seed,
and so is every verdict.

This module decides nothing about LwM2M and parses no CoAP itself: which downlink datagrams
can read /4 (and so get a ``before_delivery`` call) is :func:`labkit.lwm2m.peek.may_read_object`
on the bytes the relay already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from labkit.events import Event, EventSink, discard
from labkit.lwm2m.paths import Path
from labkit.lwm2m.peek import may_read_object
from labkit.sim.link import LinkImpairment, LinkSample
from labkit.timebase import ScaledClock

__all__ = ["LinkFeeder", "LinkRelay", "RelayStats"]

log = logging.getLogger(__name__)

_UP = "up"  # device -> server
_DOWN = "down"  # server -> device

_CONNECTIVITY = 4  # the Connectivity Monitoring object
_RSSI = Path.of(4, 0, 2)  # Radio Signal Strength
_LQ = Path.of(4, 0, 3)  # Link Quality


@dataclass(slots=True)
class RelayStats:
    """Datagram counters of one relay (``up`` = device to server, ``down`` = server to device).

    ``cut_dropped`` counts datagrams dropped by a scripted cut (:meth:`LinkRelay.cut`), which
    are also in ``up_dropped``/``down_dropped``.
    """

    up_sent: int = 0
    up_dropped: int = 0
    up_bytes: int = 0
    down_sent: int = 0
    down_dropped: int = 0
    down_bytes: int = 0
    cut_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        # (field by field: dataclasses.asdict deep-copies recursively, and a fleet's tables
        # ask every relay for this every few seconds)
        return {name: getattr(self, name) for name in _STATS_FIELDS}

    @property
    def loss(self) -> float:
        """Fraction of all datagrams dropped (0 when none was sent)."""
        total = self.up_sent + self.down_sent
        return (self.up_dropped + self.down_dropped) / total if total else 0.0


_STATS_FIELDS = tuple(f.name for f in fields(RelayStats))


class _Side(asyncio.DatagramProtocol):
    """One socket of the relay; hands every datagram to the relay with its direction."""

    def __init__(self, relay: LinkRelay, direction: str) -> None:
        self._relay = relay
        self._direction = direction
        self.transport: Any = None  # the loop's datagram transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._relay._received(self._direction, data, addr)  # noqa: SLF001 - the relay's own protocol

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while a device reboots: the datagram is lost, as on air.
        log.debug("relay %s side: %r", self._direction, exc)


class LinkRelay:
    """A UDP relay that applies one device's simulated link to its datagrams.

    Parameters
    ----------
    impairment:
        The device's link (its ``.trace`` is the signal).
    server:
        ``(host, port)`` of the LwM2M server.
    clock:
        The run's :class:`~labkit.timebase.ScaledClock` (default: real time from now).
    host:
        Loopback address the relay binds (both sockets, ephemeral ports).
    device:
        The device's endpoint name, for events.
    on_event:
        Sink for the relay's ``fault`` events (scripted cuts); per-datagram verdicts are
        counted in :attr:`stats`, not recorded (there are too many).
    before_delivery:
        Called just before a datagram that can read /4 is delivered to the device (a
        :meth:`LinkFeeder.refresher`, so that the device measures its signal when a request
        for it arrives, as a modem answering AT+CESQ on demand would). Only requests whose
        first Uri-Path segment is 4, requests to the root (Discover, composite operations),
        any FETCH or iPATCH, and datagrams that do not parse get the call
        (:func:`~labkit.lwm2m.peek.may_read_object`); responses, Empty messages (ACK, RST)
        and requests to other objects -- the blocks of a PUSH, /5 and /3 reads -- go through
        without it, so they neither change /4 nor record ``link`` rows.

    Examples
    --------
    ::

        relay = LinkRelay(device_link("nb-iot", 0, seed=1), ("127.0.0.1", server.port))
        await relay.start()
        device = SimulatedDevice("sim-1", relay.uri)   # the device talks to the relay
    """

    def __init__(
        self,
        impairment: LinkImpairment,
        server: tuple[str, int],
        *,
        clock: ScaledClock | None = None,
        host: str = "127.0.0.1",
        device: str | None = None,
        on_event: EventSink = discard,
        before_delivery: Callable[[], None] | None = None,
    ) -> None:
        self.impairment = impairment
        self.before_delivery = before_delivery
        self.server = (str(server[0]), int(server[1]))
        self.clock = clock if clock is not None else ScaledClock(1.0)
        self.host = host
        self.device = device
        self.stats = RelayStats()
        self._on_event = on_event
        self._device_side: _Side | None = None
        self._server_side: _Side | None = None
        self._device_addr: tuple[Any, ...] | None = None
        # deliveries not made yet, by serial number (a TimerHandle hashes with a Python method)
        self._pending: dict[int, asyncio.TimerHandle] = {}
        self._serial = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the relay started on
        self._cut_until: float | None = None  # simulated time (elapsed) the cut ends
        self._cut_armed: tuple[int, float] | None = None  # (downlink bytes left, duration)
        self._cut_min_size = 0
        #: Simulated time (``clock.elapsed()``) that is time 0 of the trace.
        self.t0 = 0.0
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.device_port}->{self.server_port}"
        return f"<LinkRelay {self.device or ''} {state} {self.impairment.trace.profile.name}>"

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind both sockets (loopback, ephemeral ports)."""
        loop = self._loop = asyncio.get_running_loop()
        _, dev = await asyncio.wait_for(
            loop.create_datagram_endpoint(lambda: _Side(self, _UP), local_addr=(self.host, 0)),
            5.0,
        )
        try:
            _, srv = await asyncio.wait_for(
                loop.create_datagram_endpoint(
                    lambda: _Side(self, _DOWN), local_addr=(self.host, 0)
                ),
                5.0,
            )
        except BaseException:
            if dev.transport is not None:
                dev.transport.close()
            raise
        self._device_side, self._server_side = dev, srv

    async def stop(self) -> None:
        """Close both sockets and forget datagrams still in flight."""
        self.closed = True
        for handle in list(self._pending.values()):
            handle.cancel()
        self._pending.clear()
        for side in (self._device_side, self._server_side):
            if side is not None and side.transport is not None:
                side.transport.close()
        await asyncio.sleep(0)  # let the transports close

    async def __aenter__(self) -> LinkRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @staticmethod
    def _port(side: _Side | None) -> int | None:
        if side is None or side.transport is None:
            return None
        return int(side.transport.get_extra_info("sockname")[1])

    @property
    def device_port(self) -> int | None:
        """The port the device sends to."""
        return self._port(self._device_side)

    @property
    def server_port(self) -> int | None:
        """The port the server sees as the device's (the relay's server-side socket)."""
        return self._port(self._server_side)

    @property
    def uri(self) -> str:
        """``coap://HOST:PORT`` to give the device as its server URI."""
        if self.device_port is None:
            raise RuntimeError("the relay is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"coap://{host}:{self.device_port}"

    # -- scripted cuts ---------------------------------------------------------------------
    def cut(self, duration_s: float) -> None:
        """Drop every datagram, both ways, for ``duration_s`` simulated seconds from now."""
        end = self.clock.elapsed() + duration_s
        self._cut_until = end if self._cut_until is None else max(self._cut_until, end)
        self._emit(f"link cut for {duration_s:g} s (scripted)")

    def cut_after(self, downlink_bytes: int, duration_s: float, *, min_size: int = 0) -> None:
        """Cut the link for ``duration_s`` once ``downlink_bytes`` more bytes went to the device
        in datagrams of at least ``min_size`` bytes (a connection lost in the middle of a
        download: count only block-sized datagrams, not the small reads before it)."""
        self._cut_armed = (max(0, int(downlink_bytes)), float(duration_s))
        self._cut_min_size = int(min_size)

    def _cut_active(self, t: float) -> bool:
        return self._cut_until is not None and t < self._cut_until

    # -- forwarding ------------------------------------------------------------------------
    def _received(self, direction: str, data: bytes, addr: tuple[Any, ...]) -> None:
        if self.closed:
            return
        if direction == _UP:
            self._device_addr = addr  # follow the device to its new port after a reboot
        else:
            if int(addr[1]) != self.server[1]:
                return  # not from the server: ignore strays
            if self._device_addr is None:
                return  # nowhere to deliver yet
            armed = self._cut_armed
            if armed is not None and len(data) >= self._cut_min_size:
                left = armed[0] - len(data)
                if left <= 0:
                    self._cut_armed = None
                    self.cut(armed[1])
                else:
                    self._cut_armed = (left, armed[1])
        clock = self.clock
        now = clock.elapsed()
        impairment = self.impairment
        t = now - self.t0
        start = impairment.trace.start
        drop, delay_s = impairment.judge(t if t > start else start, len(data))
        stats = self.stats
        cut = self._cut_until is not None and now < self._cut_until  # (_cut_active, inlined)
        if direction == _UP:
            stats.up_sent += 1
            stats.up_bytes += len(data)
        else:
            stats.down_sent += 1
            stats.down_bytes += len(data)
        if drop or cut:
            if direction == _UP:
                stats.up_dropped += 1
            else:
                stats.down_dropped += 1
            stats.cut_dropped += cut
            return
        refresh = self.before_delivery
        if direction == _UP:
            target, side = self.server, self._server_side
            refresh = None
        else:
            target, side = self._device_addr, self._device_side
            if refresh is not None and not may_read_object(data, _CONNECTIVITY):
                refresh = None  # only a request that can read /4 needs /4 fresh
        assert target is not None
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        key = self._serial
        self._serial = key + 1
        self._pending[key] = loop.call_later(
            clock.to_wall(delay_s), self._deliver, key, side, data, target, refresh
        )

    def _deliver(
        self,
        key: int,
        side: _Side | None,
        data: bytes,
        target: tuple[Any, ...],
        refresh: Callable[[], None] | None,
    ) -> None:
        """Hand one datagram on, ``delay`` after it arrived (a loop timer of :meth:`_received`)."""
        self._pending.pop(key, None)
        if self.closed or side is None or side.transport is None:
            return
        if refresh is not None:
            try:
                refresh()
            except Exception:
                log.exception("relay before_delivery hook failed")
        with contextlib.suppress(OSError):
            side.transport.sendto(data, target)

    def _emit(self, detail: str) -> None:
        try:
            self._on_event(
                Event(ts=self.clock.sim_now(), source="lab", kind="fault", device=self.device,
                      detail=detail)
            )
        except Exception:
            log.exception("relay event sink failed")


class LinkFeeder:
    """Keep /4/0/0, /4/0/2 and /4/0/3 of simulated devices equal to their link traces.

    One task for all devices: every ``interval_s`` simulated seconds it samples each device's
    trace at ``clock.elapsed()`` and writes the values that changed, together, with
    ``device.set_values`` (which notifies observers and records one ``link`` event showing
    both values: one row per sample that changed anything). Network
    Bearer (/4/0/0) is written once, at :meth:`start`. Hand :meth:`refresher` to the device's
    relay as ``before_delivery`` and every request that can read /4 (a request to /4 or to the
    root, a FETCH or iPATCH: :class:`LinkRelay`) finds /4 equal to the trace at the moment it
    arrives, whatever the interval; between such requests and ticks /4 holds the last sample
    written (other datagrams, such as PUSH blocks, do not refresh it).

    Parameters
    ----------
    links:
        ``(device, impairment)`` pairs; ``device`` is a
        :class:`~labkit.client.SimulatedDevice` (anything with ``set_values({path: value})``
        and ``set_value(path, value)``).
    clock:
        The run's clock.
    interval_s:
        Simulated seconds between periodic updates (for observers and plots; the fading of
        the lab's profiles has correlation times of 60 ... 600 s). Every sample that changed
        a value is a ``link`` row, so a short interval with many devices floods the event
        table.
    """

    def __init__(
        self,
        links: Iterable[tuple[Any, LinkImpairment]],
        *,
        clock: ScaledClock,
        interval_s: float = 60.0,
    ) -> None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.links = list(links)
        self.clock = clock
        self.interval_s = float(interval_s)
        self._last: dict[int, tuple[int, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self.updates = 0
        #: Simulated time (``clock.elapsed()``) that is time 0 of the traces.
        self.t0 = 0.0

    def add(self, device: Any, impairment: LinkImpairment) -> None:
        """Feed one more device (written at the next tick)."""
        self.links.append((device, impairment))
        self._write_bearer(device, impairment)

    @staticmethod
    def _write_bearer(device: Any, impairment: LinkImpairment) -> None:
        with contextlib.suppress(Exception):
            device.set_value("/4/0/0", int(impairment.trace.profile.bearer))

    def sample(self, impairment: LinkImpairment) -> LinkSample:
        """The trace's sample now (trace time ``clock.elapsed() - t0``)."""
        trace = impairment.trace
        return trace.sample(max(trace.start, self.clock.elapsed() - self.t0))

    def refresh(self, device: Any, impairment: LinkImpairment) -> bool:
        """Write one device's current sample (only the values that changed); True if any."""
        trace = impairment.trace
        now = trace.signal(max(trace.start, self.clock.elapsed() - self.t0))
        key = id(device)
        last = self._last.get(key)
        if last == now:
            return False
        rssi, lq = now
        values: dict[Path, int] = {}
        if last is None or last[1] != lq:
            values[_LQ] = int(lq)
        if last is None or last[0] != rssi:
            values[_RSSI] = int(rssi)
        try:
            device.set_values(values)  # one sample, one ``link`` row with both values
        except Exception:  # a device that is off or gone: try again next time
            log.debug("could not write /4 of %r", device, exc_info=True)
            return False
        self._last[key] = now
        self.updates += 1
        return True

    def refresher(self, device: Any, impairment: LinkImpairment) -> Callable[[], None]:
        """A zero-argument callable refreshing one device (a relay's ``before_delivery``)."""

        def refresh() -> None:
            self.refresh(device, impairment)

        return refresh

    def tick(self) -> None:
        """Write the current samples of every device (what the task does each interval)."""
        for device, impairment in self.links:
            self.refresh(device, impairment)

    def start(self) -> None:
        """Write the bearers and the first samples, then keep updating on the running loop."""
        for device, impairment in self.links:
            self._write_bearer(device, impairment)
        self.tick()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="link-feeder")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5.0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.clock.to_wall(self.interval_s))
            self.tick()
