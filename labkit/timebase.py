"""Scaled time for simulated runs, and a monitor that says when scaled time stops being honest.

A simulated NB-IoT update that takes ten minutes in the field should run in seconds in the lab.
:class:`ScaledClock` makes simulated time run ``scale`` times faster than the wall clock: the
lab's clock (event timestamps, lifetimes, Outcome durations, the link traces) reads simulated
time, and every wait the lab schedules on the event loop is a simulated duration divided by the
scale (:meth:`ScaledClock.to_wall`). ``scale=1.0`` is real time.

Scaled time is only honest while the CPU keeps up: a timer due in 2 ms of wall time that fires
10 ms late is, at 100x, a simulated second late -- a CoAP retransmission or a link delay
lengthened by a second that the model never asked for. :class:`LoopLagMonitor` measures that
lateness (it sleeps a fixed interval and records the overshoot), and
:meth:`LoopLagMonitor.summary` reports it in wall and in simulated milliseconds so a run can
record it in its manifest and warn when it distorts the simulated timings.

This module reads clocks (that is its job) but never opens a socket and never decides anything
about LwM2M.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LagSummary", "LoopLagMonitor", "ScaledClock"]


class ScaledClock:
    """Simulated time that runs ``scale`` times faster than the wall clock.

    Simulated time starts at the wall-clock time of creation (seconds since the Unix epoch),
    so timestamps look like real dates, and then advances ``scale`` simulated seconds per wall
    second, measured with a monotonic clock (a wall-clock jump does not move it).

    Parameters
    ----------
    scale:
        Simulated seconds per wall second (> 0); 1.0 is real time, 100.0 makes a ten-minute
        NB-IoT update last six seconds.
    wall:
        The wall clock used once, to anchor simulated time (default :func:`time.time`).
    monotonic:
        The monotonic clock simulated time advances with (default :func:`time.monotonic`;
        the asyncio event loop uses the same clock on Linux).

    The instance is callable: ``clock()`` is :meth:`sim_now`, so it can be handed to the
    server, the recorder and :func:`labkit.fota.update` as their ``clock=``.

    Examples
    --------
    >>> clock = ScaledClock(100.0)
    >>> clock.to_wall(2.0)        # CoAP ACK_TIMEOUT of 2 s lasts 20 ms of wall time
    0.02
    >>> clock.to_sim(0.5)         # half a wall second is 50 simulated seconds
    50.0
    """

    __slots__ = ("_mono", "_mono0", "_wall0", "scale")

    def __init__(
        self,
        scale: float = 1.0,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(scale, bool) or not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"time scale must be a finite number > 0, got {scale!r}")
        self.scale = float(scale)
        self._mono = monotonic
        self._mono0 = monotonic()
        self._wall0 = float(wall())

    def __repr__(self) -> str:
        return f"ScaledClock(scale={self.scale:g}, elapsed={self.elapsed():.3f} sim s)"

    def __call__(self) -> float:
        return self.sim_now()

    @property
    def origin(self) -> float:
        """Simulated (and wall) time of creation, seconds since the epoch."""
        return self._wall0

    def sim_now(self) -> float:
        """Simulated time now, seconds since the epoch."""
        return self._wall0 + (self._mono() - self._mono0) * self.scale

    def elapsed(self) -> float:
        """Simulated seconds since the clock was created (the ``t`` of the link traces)."""
        return (self._mono() - self._mono0) * self.scale

    def to_wall(self, sim_seconds: float) -> float:
        """The wall duration of ``sim_seconds`` simulated seconds (what to sleep)."""
        return sim_seconds / self.scale

    def to_sim(self, wall_seconds: float) -> float:
        """The simulated duration of ``wall_seconds`` wall seconds."""
        return wall_seconds * self.scale

    async def sleep(self, sim_seconds: float) -> None:
        """Sleep ``sim_seconds`` of simulated time."""
        await asyncio.sleep(max(0.0, self.to_wall(sim_seconds)))


@dataclass(frozen=True, slots=True)
class LagSummary:
    """Event-loop lag measured during a run (wall milliseconds, and simulated equivalents).

    Attributes
    ----------
    samples:
        Number of measurements.
    interval_ms:
        The monitor's sleep interval (wall ms).
    p50_ms, p95_ms, max_ms, mean_ms:
        Overshoot of the sleeps beyond ``interval_ms``: median, 95th percentile, worst, mean
        (wall ms; 0 when the loop kept up).
    scale:
        The time scale of the run.
    p95_sim_ms, max_sim_ms:
        ``p95_ms`` and ``max_ms`` times the scale: how late, in simulated time, a timer may
        fire.
    """

    samples: int
    interval_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float
    scale: float
    p95_sim_ms: float
    max_sim_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def distorts(self, typical_rtt_s: float, tolerance: float = 0.1) -> bool:
        """True when the loop's p95 lag, in simulated time, exceeds ``tolerance`` of a typical
        simulated round trip: the run's timings are then distorted by the CPU, not the model."""
        return self.p95_sim_ms / 1000.0 > tolerance * typical_rtt_s


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty list)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class LoopLagMonitor:
    """Measure how late the running event loop wakes up a task (its *lag*).

    A task sleeps ``interval`` wall seconds again and again and records by how much each
    sleep overran; with a busy CPU (hundreds of devices, two cores) the overruns grow. Use as
    an async context manager or with :meth:`start` / :meth:`stop`::

        async with LoopLagMonitor(interval=0.01, scale=100) as lag:
            ...                                    # the run
        lag.summary().p95_sim_ms                   # how late timers fired, simulated ms

    Parameters
    ----------
    interval:
        Wall seconds between measurements (default 10 ms).
    scale:
        The run's time scale, to express the lag in simulated time.
    max_samples:
        Samples kept (the oldest are dropped beyond that; a ring buffer).
    """

    def __init__(
        self, *, interval: float = 0.01, scale: float = 1.0, max_samples: int = 100_000
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval!r}")
        self.interval = float(interval)
        self.scale = float(scale)
        self.max_samples = int(max_samples)
        self._lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring (on the running loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._measure(), name="labkit-loop-lag"
            )

    async def stop(self) -> LagSummary:
        """Stop measuring and return the summary."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5.0)
        return self.summary()

    async def __aenter__(self) -> LoopLagMonitor:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - before - self.interval)
            self._lags.append(lag)
            if len(self._lags) > self.max_samples:
                del self._lags[: len(self._lags) - self.max_samples]

    @property
    def lags(self) -> list[float]:
        """The measured lags, wall seconds, oldest first (a copy)."""
        return list(self._lags)

    def summary(self) -> LagSummary:
        """Lag statistics so far (all zero before the first measurement)."""
        values = sorted(self._lags)
        ms = [v * 1000.0 for v in values]
        p95 = _percentile(ms, 95)
        worst = ms[-1] if ms else 0.0
        return LagSummary(
            samples=len(ms),
            interval_ms=self.interval * 1000.0,
            p50_ms=_percentile(ms, 50),
            p95_ms=p95,
            max_ms=worst,
            mean_ms=sum(ms) / len(ms) if ms else 0.0,
            scale=self.scale,
            p95_sim_ms=p95 * self.scale,
            max_sim_ms=worst * self.scale,
        )
