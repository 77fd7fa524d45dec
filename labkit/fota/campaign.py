"""Fleet campaigns: update many devices in waves, with link-aware PUSH decisions and brakes.

A :class:`Campaign` updates a fleet through the lab's :class:`~labkit.server.LwM2MServer`:

* **Target** -- every registered device, those carrying a tag, or those a predicate accepts
  (:func:`select_targets`).
* **Waves** -- a canary group first, then cumulative percentages of the target
  (:func:`plan_waves`); a wave starts when the previous one has finished.
* **Per device** -- read the link (/4/0: Radio Signal Strength /4/0/2, Link Quality /4/0/3,
  Network Bearer /4/0/0; optionally Battery /3/0/9), ask the policy
  (:mod:`labkit.policy`), record the decision as a ``decision`` row carrying the sample, then
  push now / wait ``retry_after_s`` and ask again / pull instead / give up. An update is one
  :func:`labkit.fota.update` call and ends in an :class:`~labkit.fota.Outcome`.
* **Brakes** -- a concurrency cap (updates in flight), pacing (minimum simulated time between
  two update starts), a failure threshold (fraction of failed devices among the finished
  ones, checked after every device and after every wave) and a canary rule (more than
  ``canary_max_failures`` failures in the canary wave stops the campaign), pause / resume /
  cancel (callable from any thread), and retries with exponential back-off for chosen Update
  Result codes only.
* **Summary** -- :meth:`Campaign.devices` (one row per device) and :meth:`Campaign.waves`
  (one row per wave), as DataFrames.

Result codes
------------
A device's ``result`` is the /5/0/5 Update Result it ended with (digest 1.3): 1 SUCCESS, or the
failure code the device reported (2 flash, 3 RAM, 4 connection lost, 5 integrity, 8 update
failed ...), read from the device before the verdict, never taken from notifications alone
(``result_source`` in :meth:`Campaign.devices` says where it came from). When the device
reported none because the *link* died in the middle of the download (the push stalled, the
device stopped answering), the campaign records 4
CONNECTION_LOST and marks it ``result_inferred=True``: that is what the download's failure
was, as seen from the server. A device that never answered before the download started, or
disappeared after Execute, has no result (``None``) and status ``failed``.

Device statuses: ``pending`` (its wave has not started), ``waiting`` (the policy said wait),
``updating``, ``backoff`` (before a retry), and the final ``success``, ``failed``, ``gave_up``
(the policy gave up, or it waited ``max_wait_s`` in vain), ``skipped`` (never started: the
campaign was stopped) and ``cancelled``.

Time
----
Every duration a campaign takes (waits, back-offs, pacing, timeouts) is in *simulated* seconds
of its :class:`~labkit.timebase.ScaledClock` and is divided by the clock's scale before it
reaches the event loop; timestamps in events and tables are simulated. The simulated devices
and the server scale their own timers with the same clock, so no bound needs more wall time
than its simulated length. One floor stays: ``min_wall_timeout_s`` (default 0.5 s) under every
timeout, because a wall bound of a few milliseconds (60 s of read timeout at 1000x) measures
the event loop's lag under load, not the link. ``reboot_min_wall_s`` (default 0) is for a peer
whose own timers do not follow the lab's clock (a device outside the lab at a scale > 1).

``fota/`` decides; the server translates. The campaign never touches a socket itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from labkit.events import Event, EventSink
from labkit.fota.outcome import Outcome
from labkit.fota.update import update
from labkit.lwm2m.objects import State, UpdateResult
from labkit.lwm2m.paths import Path
from labkit.policy import (
    DEFAULT_RETRY_S,
    Decision,
    LinkSnapshot,
    Policy,
    PolicyContext,
    decision_event_fields,
    evaluate,
    make_policy,
    policy_name,
    policy_thresholds,
)
from labkit.server import (
    DeviceNotRegistered,
    DeviceUnreachable,
    LwM2MServer,
    RequestFailed,
    RequestTimeout,
    ServerError,
)
from labkit.timebase import ScaledClock

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FINAL_STATUSES",
    "Campaign",
    "DeviceRun",
    "WaveRun",
    "classify",
    "plan_waves",
    "select_targets",
]

log = logging.getLogger(__name__)

#: Statuses a device ends in.
FINAL_STATUSES = ("success", "failed", "gave_up", "skipped", "cancelled")

_LINK = Path.of(4, 0)
_BEARER = Path.of(4, 0, 0)
_RSSI = Path.of(4, 0, 2)
_LQ = Path.of(4, 0, 3)
_BATTERY = Path.of(3, 0, 9)
_READ_ERRORS = (RequestTimeout, DeviceUnreachable, DeviceNotRegistered, RequestFailed,
                ServerError)

Target = str | Callable[[str, frozenset[str]], bool]
Fleet = Mapping[str, Collection[str]] | Sequence[str]


# ---------------------------------------------------------------------------------------------
# Pure planning
# ---------------------------------------------------------------------------------------------


def _fleet_tags(fleet: Fleet) -> dict[str, frozenset[str]]:
    if isinstance(fleet, Mapping):
        return {str(ep): frozenset(tags) for ep, tags in fleet.items()}
    return {str(ep): frozenset() for ep in fleet}


def select_targets(fleet: Fleet, target: Target = "all") -> list[str]:
    """The endpoints a campaign targets, in fleet order.

    Parameters
    ----------
    fleet:
        Endpoint names, or a mapping endpoint -> tags.
    target:
        ``"all"``; ``"tag:NAME"`` (or just ``"NAME"``) for the devices tagged ``NAME``; or a
        predicate ``fn(endpoint, tags) -> bool``.
    """
    tags = _fleet_tags(fleet)
    if callable(target):
        return [ep for ep, t in tags.items() if target(ep, t)]
    if target == "all":
        return list(tags)
    name = target.removeprefix("tag:")
    return [ep for ep, t in tags.items() if name in t]


def plan_waves(endpoints: Sequence[str], canary: int = 0,
               percents: Sequence[float] = (100.0,)) -> list[list[str]]:
    """Split ``endpoints`` into waves: ``canary`` devices first, then cumulative percentages.

    ``percents`` are cumulative shares of the whole target (canary included): ``(10, 50,
    100)`` after a canary of 2 out of 100 devices gives waves of 2, 8, 40 and 50 devices.
    The last wave always reaches 100 %; empty waves are dropped. Pure and deterministic:
    the order of ``endpoints`` is kept.

    Raises
    ------
    ValueError
        For a negative canary, or percentages outside 0..100 or not increasing.
    """
    if canary < 0:
        raise ValueError(f"canary must be >= 0, got {canary}")
    previous = 0.0
    for p in percents:
        if not (0 < p <= 100) or p < previous:
            raise ValueError(f"wave percentages must increase within (0, 100], got {percents}")
        previous = p
    n = len(endpoints)
    waves: list[list[str]] = []
    done = min(canary, n)
    if done:
        waves.append(list(endpoints[:done]))
    for p in (*percents, 100.0):
        upto = max(done, min(n, math.ceil(n * p / 100.0 - 1e-9)))
        if upto > done:
            waves.append(list(endpoints[done:upto]))
            done = upto
    return waves


def classify(outcome: Outcome, last_stage: str | None = None) -> tuple[int | None, bool]:
    """The Update Result code a campaign records for one attempt, and whether it is inferred.

    SUCCESS (1) for a successful update; the device's own failure code when it reported one;
    4 CONNECTION_LOST, *inferred*, when the attempt stalled or timed out during the download
    (the link died mid-transfer and the device never got to report a result); else ``None``.
    """
    if outcome.success:
        return int(UpdateResult.SUCCESS), False
    effective = outcome.effective_result
    if effective is not None and effective not in (UpdateResult.INITIAL, UpdateResult.SUCCESS):
        return int(effective), False
    broke = outcome.timed_out or outcome.stuck_in is not None
    in_download = last_stage == "download" or outcome.stuck_in is State.DOWNLOADING or (
        outcome.final_state is State.DOWNLOADING and outcome.download_s is None
    )
    if broke and in_download:
        return int(UpdateResult.CONNECTION_LOST), True
    return None, False


def _result_name(code: int | None) -> str | None:
    if code is None:
        return None
    try:
        return UpdateResult(code).name
    except ValueError:
        return str(code)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class DeviceRun:
    """What the campaign knows about one device (a row of :meth:`Campaign.devices`)."""

    endpoint: str
    wave: int
    status: str = "pending"
    result: int | None = None
    result_inferred: bool = False
    attempts: int = 0
    decisions: int = 0
    waits: int = 0
    waited_s: float = 0.0
    method: str | None = None
    first_rssi_dbm: int | None = None
    last_rssi_dbm: int | None = None
    last_link_quality: int | None = None
    started_s: float | None = None
    finished_s: float | None = None
    fw_before: str | None = None
    fw_after: str | None = None
    reason: str = ""
    stage: str | None = None
    result_source: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def row(self) -> dict[str, Any]:
        return {
            "device": self.endpoint,
            "wave": self.wave,
            "status": self.status,
            "result": self.result,
            "result_name": _result_name(self.result),
            "result_inferred": self.result_inferred,
            "attempts": self.attempts,
            "decisions": self.decisions,
            "waits": self.waits,
            "waited_s": self.waited_s,
            "method": self.method,
            "first_rssi_dbm": self.first_rssi_dbm,
            "last_rssi_dbm": self.last_rssi_dbm,
            "last_link_quality": self.last_link_quality,
            "started_s": self.started_s,
            "finished_s": self.finished_s,
            "duration_s": (
                None if self.started_s is None or self.finished_s is None
                else self.finished_s - self.started_s
            ),
            "fw_before": self.fw_before,
            "fw_after": self.fw_after,
            "reason": self.reason,
            "result_source": self.result_source,
        }


@dataclass(slots=True)
class WaveRun:
    """One wave (a row of :meth:`Campaign.waves`)."""

    wave: int
    kind: str
    devices: list[str]
    started_s: float | None = None
    finished_s: float | None = None
    stopped_campaign: bool = False


# ---------------------------------------------------------------------------------------------
# The campaign
# ---------------------------------------------------------------------------------------------


class Campaign:
    """Update a fleet in waves with a PUSH-decision policy (see the module docstring).

    Parameters
    ----------
    server:
        A started :class:`~labkit.server.LwM2MServer`.
    package:
        The firmware image (bytes or a file path).
    fleet:
        Endpoints (or endpoint -> tags); default: the devices registered when :meth:`run`
        starts, sorted by name.
    target:
        ``"all"``, ``"tag:NAME"`` or a predicate ``fn(endpoint, tags) -> bool``.
    policy:
        A policy name (:data:`labkit.policy.POLICIES`) or any ``fn(snapshot, context) ->
        Decision``.
    method, protocol, block_size:
        Delivery (``"push"`` or ``"pull"``; a policy's ``pull`` decision switches one device
        to PULL), as for :func:`labkit.fota.update`.
    canary, waves:
        Canary size, then cumulative percentages of the target (:func:`plan_waves`).
    max_concurrent:
        Updates in flight at most (policy waits do not hold a slot).
    pacing_s:
        Minimum simulated seconds between two update starts (a device that must wait for
        its start keeps its update slot and starts on the decision it already made).
    failure_threshold:
        Stop when failed / (succeeded + failed) exceeds this fraction (``None``: never),
        once at least ``min_finished`` devices have finished; checked after each device and
        each wave.
    canary_max_failures:
        More failed canaries than this stops the campaign after the canary wave.
    retry_on:
        Update Result codes that are retried (e.g. ``{4}``); others are final.
    max_attempts:
        Attempts per device at most (first one included).
    backoff_s, backoff_factor, backoff_max_s:
        Back-off before retry ``k`` (k = 1, 2 ...): ``min(backoff_max_s, backoff_s *
        backoff_factor ** (k - 1))`` simulated seconds.
    max_wait_s:
        Give up on a device after the policy made it wait this long in total.
    timeout_s, reboot_timeout_s, read_timeout_s, attempt_timeout_s:
        Simulated seconds: the no-progress timeout of an update, the bound while it reboots,
        the bound of the link reads, and of a whole attempt.
    clock:
        The run's clock (default: the server's clock when it is a
        :class:`~labkit.timebase.ScaledClock`, else real time).
    min_wall_timeout_s, reboot_min_wall_s:
        Floors (wall seconds) under the scaled timeouts, and under the reboot bound (see the
        module docstring: only the first is needed for the lab's own devices).
    repository:
        For PULL: a repository, or ``fn(endpoint) -> repository`` (a per-device view, e.g. one
        whose URIs go through that device's link relay).
    read_battery:
        Also read /3/0/9 for the policy (default: only when the policy's name mentions it).
    on_event:
        Sink for the campaign's rows (default: the server's sink).
    on_progress:
        ``on_progress(finished, total)`` after every device that reached a final status.
    name:
        Campaign name for events.
    """

    def __init__(
        self,
        server: LwM2MServer,
        package: bytes | bytearray | memoryview | str | os.PathLike[str],
        *,
        fleet: Fleet | None = None,
        target: Target = "all",
        policy: str | Policy | Callable[..., Decision] = "always",
        method: str = "push",
        protocol: str = "coap",
        block_size: int = 1024,
        canary: int = 0,
        waves: Sequence[float] = (100.0,),
        max_concurrent: int = 10,
        pacing_s: float = 0.0,
        failure_threshold: float | None = None,
        min_finished: int = 1,
        canary_max_failures: int = 0,
        retry_on: Iterable[int] = (),
        max_attempts: int = 3,
        backoff_s: float = 60.0,
        backoff_factor: float = 2.0,
        backoff_max_s: float = 3600.0,
        max_wait_s: float = 3600.0,
        timeout_s: float = 120.0,
        reboot_timeout_s: float = 300.0,
        read_timeout_s: float = 60.0,
        attempt_timeout_s: float = 3600.0,
        clock: ScaledClock | None = None,
        min_wall_timeout_s: float = 0.5,
        reboot_min_wall_s: float = 0.0,
        repository: Any = None,
        read_battery: bool | None = None,
        on_event: EventSink | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        name: str = "campaign",
    ) -> None:
        if method not in ("push", "pull"):
            raise ValueError(f"method must be 'push' or 'pull', not {method!r}")
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if failure_threshold is not None and not 0 <= failure_threshold <= 1:
            raise ValueError("failure_threshold must be a fraction in 0..1")
        for label, value in (("pacing_s", pacing_s), ("backoff_s", backoff_s),
                             ("max_wait_s", max_wait_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{label} must be a finite number >= 0, got {value!r}")
        plan_waves([], canary, waves)  # validates
        self.server = server
        self.package = (bytes(package) if isinstance(package, bytes | bytearray | memoryview)
                        else _read(package))
        self.fleet = fleet
        self.target = target
        self.policy: Any = make_policy(policy) if isinstance(policy, str) else policy
        self.method = method
        self.protocol = protocol
        self.block_size = block_size
        self.canary = canary
        self.wave_percents = tuple(waves)
        self.max_concurrent = max_concurrent
        self.pacing_s = float(pacing_s)
        self.failure_threshold = failure_threshold
        self.min_finished = max(1, int(min_finished))
        self.canary_max_failures = int(canary_max_failures)
        self.retry_on = frozenset(int(c) for c in retry_on)
        self.max_attempts = int(max_attempts)
        self.backoff_s = float(backoff_s)
        self.backoff_factor = float(backoff_factor)
        self.backoff_max_s = float(backoff_max_s)
        self.max_wait_s = float(max_wait_s)
        self.timeout_s = float(timeout_s)
        self.reboot_timeout_s = float(reboot_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.attempt_timeout_s = float(attempt_timeout_s)
        server_clock = getattr(server, "clock", None)
        if clock is None:
            clock = server_clock if isinstance(server_clock, ScaledClock) else ScaledClock(1.0)
        self.clock = clock
        self.min_wall_timeout_s = float(min_wall_timeout_s)
        self.reboot_min_wall_s = float(reboot_min_wall_s)
        self.repository = repository
        pname = policy_name(self.policy)
        self.read_battery = "battery" in pname if read_battery is None else read_battery
        self._sink: EventSink = on_event if on_event is not None else server.on_event
        self.on_progress = on_progress
        self.name = name
        # run state
        self.status = "created"
        self.stop_reason: str | None = None
        self.runs: dict[str, DeviceRun] = {}
        self.wave_runs: list[WaveRun] = []
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused = False
        self._halted: str | None = None  # "stopped" or "cancelled"
        self._abort = False
        self._resume: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._pace_lock: asyncio.Lock | None = None
        self._next_start = 0.0  # loop time
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished_count = 0

    # -- control (any thread) ----------------------------------------------------------------
    def _on_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            fn()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    def pause(self) -> None:
        """Start no new update (nor a new decision) until :meth:`resume`; running updates
        finish. Thread-safe."""
        self._on_loop(self._do_pause)

    def resume(self) -> None:
        """Resume after :meth:`pause`. Thread-safe."""
        self._on_loop(self._do_resume)

    def cancel(self, *, abort: bool = False) -> None:
        """Stop the campaign: no device starts any more; waiting devices end ``cancelled``.
        Running updates finish, unless ``abort=True`` (they are interrupted, which may leave
        a device in DOWNLOADING). Thread-safe."""
        self._on_loop(lambda: self._halt("cancelled", "cancelled by the user", abort=abort))

    def _do_pause(self) -> None:
        if self._halted or self._paused:
            return
        self._paused = True
        if self._resume is not None:
            self._resume.clear()
        if self.status == "running":
            self.status = "paused"
        self._emit("campaign paused")

    def _do_resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._resume is not None:
            self._resume.set()
        if self.status == "paused":
            self.status = "running"
        self._emit("campaign resumed")

    def _halt(self, how: str, reason: str, *, abort: bool = False) -> None:
        if self._halted:
            return
        self._halted = how
        self.stop_reason = reason
        self.status = how
        self._abort = abort
        self._emit(f"campaign {how}: {reason}")
        if self._wake is not None:
            self._wake.set()
        if self._resume is not None:
            self._resume.set()
        if abort:
            for task in list(self._tasks):
                task.cancel()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def progress(self) -> tuple[int, int]:
        """(devices in a final status, devices targeted)."""
        return self._finished_count, len(self.runs)

    # -- helpers -----------------------------------------------------------------------------
    def _wall(self, sim_seconds: float, floor: float = 0.0) -> float:
        return max(floor, self.clock.to_wall(sim_seconds))

    def _elapsed(self) -> float:
        start = self.started_at if self.started_at is not None else self.clock()
        return self.clock() - start

    def _emit(self, detail: str, *, source: str = "campaign", kind: str = "campaign",
              **fields: Any) -> None:
        try:
            self._sink(Event(ts=self.clock(), source=source, kind=kind, detail=detail, **fields))
        except Exception:
            log.exception("campaign event sink failed")

    async def _sleep(self, sim_seconds: float) -> None:
        """Sleep simulated time; a halt wakes the sleeper early."""
        wake = self._wake
        assert wake is not None
        if self._halted or sim_seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), self.clock.to_wall(sim_seconds))

    async def _gate(self) -> bool:
        """Wait while paused; False when the campaign was halted."""
        resume = self._resume
        assert resume is not None
        while self._paused and not self._halted:
            await resume.wait()
        return not self._halted

    async def _pace(self) -> None:
        if self.pacing_s <= 0:
            return
        lock = self._pace_lock
        assert lock is not None
        async with lock:
            loop = asyncio.get_running_loop()
            delay = self._next_start - loop.time()
            if delay > 0:
                await self._sleep(self.clock.to_sim(delay))
            self._next_start = loop.time() + self.clock.to_wall(self.pacing_s)

    async def snapshot(self, endpoint: str) -> LinkSnapshot:
        """Read the device's link (/4/0, and /3/0/9 when asked) into a
        :class:`~labkit.policy.LinkSnapshot`; unknown values are ``None``."""
        t = self._elapsed()
        values: dict[Path, Any] = {}
        timeout = self._wall(self.read_timeout_s, self.min_wall_timeout_s)
        try:
            proxy = self.server.device(endpoint)
            resp = await proxy.read(_LINK, timeout=timeout)
            if resp.ok:
                values.update(resp.values)
            if self.read_battery:
                resp = await proxy.read(_BATTERY, timeout=timeout)
                if resp.ok:
                    values.update(resp.values)
        except _READ_ERRORS as exc:
            log.debug("%s: link read failed: %r", endpoint, exc)

        def integer(path: Path) -> int | None:
            v = values.get(path)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        return LinkSnapshot(
            rssi_dbm=integer(_RSSI),
            link_quality=integer(_LQ),
            battery=integer(_BATTERY),
            t=t,
            bearer=integer(_BEARER),
        )

    # -- the run -------------------------------------------------------------------------------
    async def run_until(self, deadline_s: float, *, grace_s: float = 30.0) -> Campaign:
        """Run the campaign, cancelling it (transfers aborted) if it is still going after
        ``deadline_s`` wall seconds; waits at most ``grace_s`` more for the cancel to settle.

        Re-raises what :meth:`run` raised.
        """
        task = asyncio.get_running_loop().create_task(self.run())
        done, _ = await asyncio.wait({task}, timeout=deadline_s)
        if not done:
            self.cancel(abort=True)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, grace_s)
        elif (error := task.exception()) is not None:
            raise error
        return self

    async def run(self) -> Campaign:
        """Run the campaign to its end (finished, stopped or cancelled) and return it.

        Bounded: every device ends after at most ``max_wait_s`` of waiting plus
        ``max_attempts`` attempts of at most ``attempt_timeout_s`` and their back-offs (and
        the time spent paused).
        """
        if self.status != "created":
            raise RuntimeError("a campaign runs once; create a new one")
        self._loop = asyncio.get_running_loop()
        self._resume = asyncio.Event()
        if not self._paused:
            self._resume.set()
        self._wake = asyncio.Event()
        if self._halted:
            self._wake.set()
            self._resume.set()
        self._slots = asyncio.Semaphore(self.max_concurrent)
        self._pace_lock = asyncio.Lock()
        self.status = "paused" if self._paused else "running"
        if self._halted:
            self.status = self._halted
        self.started_at = self.clock()
        fleet = self.fleet
        if fleet is None:
            fleet = sorted(self.server.registrations)
        targets = select_targets(fleet, self.target)
        waves = plan_waves(targets, self.canary, self.wave_percents)
        for w, members in enumerate(waves):
            kind = "canary" if w == 0 and self.canary else "wave"
            self.wave_runs.append(WaveRun(wave=w, kind=kind, devices=list(members)))
            for ep in members:
                self.runs[ep] = DeviceRun(endpoint=ep, wave=w)
        self._emit(
            f"campaign {self.name} started: {len(targets)} devices in {len(waves)} waves "
            f"({', '.join(str(len(m)) for m in waves)}), policy {policy_name(self.policy)} "
            f"{policy_thresholds(self.policy)}, method {self.method}"
        )
        try:
            for wave in self.wave_runs:
                if self._halted:
                    for ep in wave.devices:
                        self._finish(self.runs[ep], _halt_status(self._halted),
                                     f"campaign {self._halted} before wave {wave.wave}")
                    continue
                await self._run_wave(wave)
                self._after_wave(wave)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=10.0)
        self.finished_at = self.clock()
        if not self._halted:
            self.status = "finished"
        counts = self._counts(self.runs.values())
        self._emit(
            f"campaign {self.name} {self.status}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            + f" in {self.finished_at - self.started_at:.1f} s"
        )
        return self

    async def _run_wave(self, wave: WaveRun) -> None:
        if not await self._gate():
            for ep in wave.devices:
                self._finish(self.runs[ep], _halt_status(self._halted), "campaign halted")
            return
        wave.started_s = self._elapsed()
        self._emit(f"{wave.kind} {wave.wave} started: {len(wave.devices)} devices",
                   wave=wave.wave)
        tasks = []
        for ep in wave.devices:
            task = asyncio.get_running_loop().create_task(
                self._device(self.runs[ep]), name=f"campaign-{ep}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            tasks.append(task)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for ep, res in zip(wave.devices, results, strict=True):
            run = self.runs[ep]
            if isinstance(res, BaseException) and not run.final:
                status = "cancelled" if isinstance(res, asyncio.CancelledError) else "failed"
                self._finish(run, status, f"{type(res).__name__}: {res}")
        wave.finished_s = self._elapsed()

    def _after_wave(self, wave: WaveRun) -> None:
        runs = [self.runs[ep] for ep in wave.devices]
        counts = self._counts(runs)
        self._emit(
            f"{wave.kind} {wave.wave} finished: "
            + ", ".join(f"{k} {v}" for k, v in counts.items() if v),
            wave=wave.wave,
        )
        if self._halted:
            return
        if wave.kind == "canary" and counts["failed"] > self.canary_max_failures:
            wave.stopped_campaign = True
            self._halt("stopped", f"{counts['failed']} of {len(runs)} canaries failed "
                       f"(at most {self.canary_max_failures} allowed)")
            return
        if self._threshold_exceeded():
            wave.stopped_campaign = True

    def _threshold_exceeded(self) -> bool:
        if self.failure_threshold is None or self._halted:
            return False
        ok = sum(r.status == "success" for r in self.runs.values())
        bad = sum(r.status == "failed" for r in self.runs.values())
        done = ok + bad
        if done >= self.min_finished and bad / done > self.failure_threshold:
            self._halt("stopped", f"failure rate {bad}/{done} = {bad / done:.0%} above the "
                       f"threshold {self.failure_threshold:.0%}")
            return True
        return False

    @staticmethod
    def _counts(runs: Iterable[DeviceRun]) -> dict[str, int]:
        counts = dict.fromkeys(FINAL_STATUSES, 0)
        for r in runs:
            if r.status in counts:
                counts[r.status] += 1
        return counts

    def _finish(self, run: DeviceRun, status: str, reason: str) -> None:
        if run.final:
            return
        run.status = status
        run.reason = reason
        run.finished_s = self._elapsed()
        self._finished_count += 1
        self._emit(
            f"device {status}: {reason}",
            device=run.endpoint,
            wave=run.wave,
            result=run.result,
            method=run.method,
        )
        if status in ("success", "failed"):
            self._threshold_exceeded()
        if self.on_progress is not None:
            try:
                self.on_progress(*self.progress)
            except Exception:
                log.exception("campaign progress callback failed")

    async def _device(self, run: DeviceRun) -> None:
        try:
            await self._device_loop(run)
        except asyncio.CancelledError:
            if not run.final:
                self._finish(run, "cancelled", "aborted while " + run.status)
            if not self._abort:
                raise
        except Exception as exc:  # a bug or a broken user policy: this device fails, not all
            log.exception("campaign: device %s failed", run.endpoint)
            self._finish(run, "failed", f"campaign error: {exc!r}")

    async def _device_loop(self, run: DeviceRun) -> None:
        slots = self._slots
        assert slots is not None
        previous: Decision | None = None
        run.status = "waiting"
        ep = run.endpoint
        while True:
            if not await self._gate():
                self._end_halted(run)
                return
            outcome: Outcome | None = None
            async with slots:
                if not await self._gate():
                    self._end_halted(run)
                    return
                snapshot = await self.snapshot(ep)
                context = PolicyContext(
                    waited_s=run.waited_s,
                    attempts=run.attempts,
                    previous=previous,
                    image_size=len(self.package),
                )
                decision = evaluate(self.policy, snapshot, context)
                self._record_decision(run, decision, snapshot)
                if decision.action in ("push", "pull") and not self._halted:
                    await self._pace()  # the decision's sample may be up to pacing_s old
                    if not self._halted:
                        method = self.method if decision.action == "push" else "pull"
                        outcome = await self._attempt(run, method)
            if self._halted and outcome is None:
                self._end_halted(run)
                return
            if outcome is None:
                if decision.action == "give_up":
                    self._finish(run, "gave_up", f"policy gave up: {decision.reason}")
                    return
                # wait
                if run.waited_s >= self.max_wait_s:
                    self._finish(run, "gave_up", f"waited {run.waited_s:.0f} s (max "
                                 f"{self.max_wait_s:.0f} s) for a better link; last: "
                                 f"{decision.reason}")
                    return
                delay = decision.retry_after_s if decision.retry_after_s is not None \
                    else DEFAULT_RETRY_S
                delay = min(max(delay, 1e-3), self.max_wait_s - run.waited_s)
                run.status = "waiting"
                run.waits += 1
                previous = decision
                await self._sleep(delay)
                run.waited_s += delay
                continue
            # an attempt was made
            code, inferred = classify(outcome, run.stage)
            run.result, run.result_inferred = code, inferred
            # where the device's Result came from (labkit.fota.update.SOURCES), or "inferred"
            run.result_source = "inferred" if inferred else outcome.result_source
            run.fw_before = run.fw_before or outcome.fw_before
            run.fw_after = outcome.fw_after
            if outcome.success:
                self._finish(run, "success", outcome.reason)
                return
            why = f"{_result_name(code) or 'no result'}" + (" (inferred)" if inferred else "")
            if code in self.retry_on and run.attempts < self.max_attempts and not self._halted:
                wait = min(self.backoff_max_s,
                           self.backoff_s * self.backoff_factor ** (run.attempts - 1))
                run.status = "backoff"
                self._emit(
                    f"retry {run.attempts + 1} of {self.max_attempts} in {wait:g} s after "
                    f"{why}: {outcome.reason}",
                    device=ep, wave=run.wave, result=code,
                )
                previous = None
                await self._sleep(wait)
                if self._halted:
                    self._finish(run, "failed", f"{why} and the campaign was {self._halted} "
                                 f"before the retry: {outcome.reason}")
                    return
                continue
            self._finish(run, "failed", f"{why}: {outcome.reason}")
            return

    def _end_halted(self, run: DeviceRun) -> None:
        if run.attempts:
            last = run.outcomes[-1].reason if run.outcomes else ""
            self._finish(run, "failed", f"campaign {self._halted} after a failed attempt: {last}")
        else:
            self._finish(run, _halt_status(self._halted), f"campaign {self._halted}")

    def _record_decision(self, run: DeviceRun, decision: Decision, snapshot: LinkSnapshot) -> None:
        run.decisions += 1
        if run.first_rssi_dbm is None:
            run.first_rssi_dbm = snapshot.rssi_dbm
        run.last_rssi_dbm = snapshot.rssi_dbm
        run.last_link_quality = snapshot.link_quality
        fields = decision_event_fields(decision, snapshot)
        if decision.retry_after_s is not None:
            fields["detail"] = f"retry after {decision.retry_after_s:g} s"
        try:
            self._sink(Event(ts=self.clock(), source="policy", kind="decision", device=run.endpoint,
                             wave=run.wave, method=self.method, **fields))
        except Exception:
            log.exception("campaign event sink failed")

    def _repository_for(self, endpoint: str) -> Any:
        repo = self.repository
        if callable(repo) and not hasattr(repo, "coap_uri"):
            return repo(endpoint)
        return repo

    async def _attempt(self, run: DeviceRun, method: str) -> Outcome:
        run.status = "updating"
        run.method = method
        run.attempts += 1
        run.stage = None
        if run.started_s is None:
            run.started_s = self._elapsed()
        wave = run.wave

        def stage(name: str, detail: str) -> None:
            if name != "done":
                run.stage = name

        def sink(event: Event) -> None:
            self._sink(dataclasses.replace(event, wave=wave) if event.wave is None else event)

        timeout = self._wall(self.timeout_s, self.min_wall_timeout_s)
        outcome = await update(
            self.server,
            run.endpoint,
            self.package,
            method=method,
            protocol=self.protocol,
            block_size=self.block_size,
            repository=self._repository_for(run.endpoint) if method == "pull" else None,
            timeout=timeout,
            register_timeout=timeout,
            reboot_timeout=self._wall(self.reboot_timeout_s,
                                      max(self.min_wall_timeout_s, self.reboot_min_wall_s)),
            overall_timeout=self._wall(self.attempt_timeout_s, self.min_wall_timeout_s),
            poll_interval=max(0.05, timeout / 4),
            on_stage=stage,
            on_event=sink,
            clock=self.clock,
        )
        run.outcomes.append(outcome)
        return outcome

    # -- summaries -------------------------------------------------------------------------------
    def devices(self) -> pd.DataFrame:
        """One row per targeted device.

        Returns
        -------
        pandas.DataFrame
            ``device``, ``wave`` (int), ``status`` (category), ``result`` (Int64 Update Result
            code, NA when none), ``result_name``, ``result_inferred`` (bool), ``attempts``,
            ``decisions``, ``waits`` (int), ``waited_s`` (float, simulated), ``method``,
            ``first_rssi_dbm``, ``last_rssi_dbm``, ``last_link_quality`` (Int64),
            ``started_s``, ``finished_s``, ``duration_s`` (simulated seconds since the
            campaign started; NA when not reached), ``fw_before``, ``fw_after``, ``reason``.
            Sorted by wave, then fleet order; RangeIndex.
        """
        import pandas as pd

        rows = [r.row() for r in self.runs.values()]
        columns = list(DeviceRun(endpoint="", wave=0).row())
        frame = pd.DataFrame(rows, columns=columns)
        for col in ("result", "first_rssi_dbm", "last_rssi_dbm", "last_link_quality"):
            frame[col] = frame[col].astype("Int64")
        for col in ("wave", "attempts", "decisions", "waits"):
            frame[col] = frame[col].astype("int64")
        for col in ("waited_s", "started_s", "finished_s", "duration_s"):
            frame[col] = frame[col].astype("Float64")
        frame["result_inferred"] = frame["result_inferred"].astype(bool)
        frame["status"] = pd.Categorical(
            frame["status"], categories=["pending", "waiting", "updating", "backoff",
                                         *FINAL_STATUSES])
        return frame.reset_index(drop=True)

    def waves(self) -> pd.DataFrame:
        """One row per wave.

        Returns
        -------
        pandas.DataFrame
            ``wave``, ``kind`` (canary/wave), ``devices``, one count column per final status
            (``success``, ``failed``, ``gave_up``, ``skipped``, ``cancelled``),
            ``result_4`` (devices that ended with Update Result 4), ``failure_rate``
            (failed / (success + failed), NA when none finished), ``started_s``,
            ``finished_s`` (simulated seconds since the campaign started), ``stopped_campaign``.
        """
        import pandas as pd

        rows = []
        for w in self.wave_runs:
            runs = [self.runs[ep] for ep in w.devices]
            counts = self._counts(runs)
            done = counts["success"] + counts["failed"]
            rows.append({
                "wave": w.wave,
                "kind": w.kind,
                "devices": len(runs),
                **counts,
                "result_4": sum(r.result == int(UpdateResult.CONNECTION_LOST) for r in runs),
                "failure_rate": counts["failed"] / done if done else None,
                "started_s": w.started_s,
                "finished_s": w.finished_s,
                "stopped_campaign": w.stopped_campaign,
            })
        columns = ["wave", "kind", "devices", *FINAL_STATUSES, "result_4", "failure_rate",
                   "started_s", "finished_s", "stopped_campaign"]
        frame = pd.DataFrame(rows, columns=columns)
        for col in ("failure_rate", "started_s", "finished_s"):
            frame[col] = frame[col].astype("Float64")
        return frame

    def summary(self) -> dict[str, Any]:
        """Campaign totals: status, counts per final status, result codes, durations."""
        runs = list(self.runs.values())
        counts = self._counts(runs)
        codes: dict[str, int] = {}
        for r in runs:
            name = _result_name(r.result) or "none"
            codes[name] = codes.get(name, 0) + 1
        finished = [r.finished_s for r in runs if r.finished_s is not None]
        return {
            "name": self.name,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "devices": len(runs),
            **counts,
            "result_counts": codes,
            "result_4": sum(r.result == int(UpdateResult.CONNECTION_LOST) for r in runs),
            "attempts": sum(r.attempts for r in runs),
            "time_to_complete_s": max(finished) if finished else None,
            "policy": policy_name(self.policy),
            "thresholds": policy_thresholds(self.policy),
        }

    def __repr__(self) -> str:
        done, total = self.progress
        return f"<Campaign {self.name} {self.status} {done}/{total} finished>"

    def _repr_html_(self) -> str:
        s = self.summary()
        cells = "".join(
            f"<tr><th style='text-align:left'>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
            for k, v in s.items()
        )
        return f"<table><caption>Campaign {escape(self.name)}</caption>{cells}</table>"


def _halt_status(how: str | None) -> str:
    return "cancelled" if how == "cancelled" else "skipped"


def _read(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()
