"""The stage of lessons 04 and 07: a lab on virtual time (:func:`course_lab`, the default) or
scaled time (:func:`scaled_lab`) and a fleet of simulated devices behind link relays kept on it
for several campaigns (:func:`fleet`, :class:`LabFleet`, :func:`wait_campaign`). They set up
and run what :mod:`labkit.sim` and :mod:`labkit.fota` provide; every decision stays there.

On virtual time (:mod:`labkit.virtual`) every student sees the same numbers from the same
seed, whatever the laptop. Simulated time then runs only while the lesson waits for
something (a campaign's end, a pause); the lessons' bounds, given in wall seconds for scaled
time, become :data:`VIRTUAL_BUDGET` simulated seconds per wall second (what they were worth
at the lessons' 100x).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import weakref
    from concurrent.futures import Future

    import pandas as pd

    from labkit.fota.campaign import Campaign
    from labkit.fota.simulate import SimFleet
    from labkit.runtime import Lab
    from labkit.timebase import ScaledClock


__all__ = [
    "RUN_OPTIONS",
    "VIRTUAL_BUDGET",
    "LabFleet",
    "VirtualRun",
    "course_lab",
    "events_between",
    "fleet",
    "lab_clock",
    "scaled_lab",
    "sim_budget",
    "start_fleet",
    "wait_campaign",
]


#: The scaled clock of each lab made by :func:`scaled_lab` (a Lab keeps its clock private).
_LAB_CLOCKS: Any = None


def _clocks() -> weakref.WeakKeyDictionary[Lab, ScaledClock]:
    global _LAB_CLOCKS
    if _LAB_CLOCKS is None:
        import weakref

        _LAB_CLOCKS = weakref.WeakKeyDictionary()
    return _LAB_CLOCKS


def scaled_lab(time_scale: float = 100.0, *, seed: int = 0) -> Lab:
    """A started :class:`~labkit.runtime.Lab` whose clock runs ``time_scale`` times faster
    than the wall clock (:class:`~labkit.timebase.ScaledClock`), server CoAP timers included.

    At 100x a ten-minute NB-IoT update lasts six seconds; every timestamp in ``lab.events()``
    is simulated time. Campaigns of :func:`policy_run` and :func:`fleet` use this clock.
    """
    from labkit.runtime import Lab
    from labkit.timebase import ScaledClock

    clock = ScaledClock(time_scale)
    lab = Lab(clock=clock, seed=seed, request_timeout=30.0).start()

    def scale_server() -> None:
        lab.server.time_scale = clock.scale

    lab.call(scale_server, timeout=10)
    _clocks()[lab] = clock
    return lab


#: Simulated seconds per wall second of a lesson's bound on a virtual lab (the lessons ran at
#: 100x before virtual time).
VIRTUAL_BUDGET = 100.0


def course_lab(*, seed: int = 0, clock: str = "virtual", time_scale: float = 100.0) -> Lab:
    """The lab of lessons 04 and 07: on virtual time (default; the same numbers for every
    student from the same seed) or, with ``clock="scaled"``, :func:`scaled_lab` at
    ``time_scale`` (to watch the fleet live)."""
    if clock == "scaled":
        return scaled_lab(time_scale, seed=seed)
    if clock != "virtual":
        raise ValueError(f"clock must be 'virtual' or 'scaled', got {clock!r}")
    from labkit.runtime import Lab

    return Lab(clock="virtual", seed=seed, request_timeout=30.0).start()


def sim_budget(lab: Lab, wall_s: float) -> float:
    """A lesson's bound for ``lab``: ``wall_s`` on scaled time, ``wall_s`` x
    :data:`VIRTUAL_BUDGET` simulated seconds on virtual time."""
    return wall_s * VIRTUAL_BUDGET if lab.virtual else wall_s


class VirtualRun:
    """A campaign running on a virtual lab (what :meth:`LabFleet.start` returns there): the
    lesson's waits (:meth:`result`, :func:`wait_campaign`) let simulated time run."""

    def __init__(self, lab: Lab, task: Any) -> None:
        self.lab = lab
        self.task = task

    def done(self) -> bool:
        return bool(self.task.done())

    def result(self, timeout: float | None = None) -> Any:
        """Let simulated time run until the campaign ends (at most ``sim_budget(timeout)``
        simulated seconds: :class:`concurrent.futures.TimeoutError` then)."""
        import concurrent.futures

        if not self.task.done():
            budget = sim_budget(self.lab, 3600.0 if timeout is None else timeout)
            try:
                self.lab.run_until(self.task.done, timeout=budget)
            except TimeoutError:
                raise concurrent.futures.TimeoutError() from None
        return self.lab.call(self.task.result)


def lab_clock(lab: Lab) -> ScaledClock:
    if lab.virtual:
        return lab.clock  # type: ignore[return-value]  # a VirtualClock is a ScaledClock
    clock = _clocks().get(lab)
    if clock is None:
        raise ValueError(
            "this lab has no scaled clock: make it with labkit.course.staging.scaled_lab(...)"
        )
    return clock


#: Campaign options of the lesson's small runs: waits and timeouts in simulated seconds (the
#: server, the link relays and the devices all scale their timers with the lab's clock), with
#: 0.5 s of wall time at least under a timeout.
RUN_OPTIONS: dict[str, Any] = {
    "max_concurrent": 50,
    "max_wait_s": 900.0,
    "min_wall_timeout_s": 0.5,
}


def events_between(lab: Lab, t0: float, t1: float, devices: Iterable[str]) -> pd.DataFrame:
    """The lab's events of ``devices`` (and device-less rows) between two clock readings."""
    import pandas as pd

    events = lab.events()
    lo = pd.Timestamp(t0, unit="s", tz="UTC")
    hi = pd.Timestamp(t1, unit="s", tz="UTC")
    names = set(devices)
    device = events["device"].astype("string")
    mine = device.isin(names).fillna(False) | device.isna()
    when = (events["ts"] >= lo) & (events["ts"] <= hi)
    return events.loc[(mine & when).to_numpy(dtype=bool)].reset_index(drop=True)


async def start_fleet(
    lab: Lab, clock: ScaledClock, devices: int, *, origin: float | None = None, **options: Any
) -> SimFleet:
    """A started :class:`~labkit.fota.simulate.SimFleet` on the lab's server (stopped again
    if it does not come up). ``origin``: trace time 0 while the devices register."""
    from labkit.fota.simulate import SimFleet

    sim = SimFleet(lab.server, devices, clock=clock, on_event=lab.server.on_event, **options)
    if origin is not None:
        sim.set_link_origin(origin)
    try:
        await sim.start(timeout=sim_budget(lab, 30.0))
    except BaseException:
        await sim.stop()
        raise
    return sim


class LabFleet:
    """Simulated devices behind link relays on a :func:`scaled_lab`, kept for several
    campaigns (made by :func:`fleet`). Close it before the lab (:meth:`close`)."""

    def __init__(self, lab: Lab, sim_fleet: SimFleet, clock: ScaledClock) -> None:
        self.lab = lab
        self.sim = sim_fleet
        self.clock = clock

    @property
    def endpoints(self) -> list[str]:
        return list(self.sim.endpoints)

    def table(self) -> pd.DataFrame:
        """Per device: ``device``, link ``profile`` and ``faults`` (comma-separated)."""
        import pandas as pd

        rows = [
            {"device": m.endpoint, "profile": m.profile, "faults": ",".join(sorted(m.faults))}
            for m in self.sim.members
        ]
        return pd.DataFrame(rows, columns=["device", "profile", "faults"])

    def campaign(self, package: bytes, **options: Any) -> Campaign:
        """A :class:`~labkit.fota.campaign.Campaign` over this fleet (not started yet); the
        options are the campaign's (``canary``, ``waves``, ``max_concurrent`` ...)."""
        from labkit.fota.campaign import Campaign

        kwargs = dict(RUN_OPTIONS)
        kwargs.update(fleet=self.sim.tags(), clock=self.clock)
        kwargs.update(options)
        return Campaign(self.lab.server, package, **kwargs)

    def start(self, campaign: Campaign) -> Future[Any] | VirtualRun:
        """Start ``campaign`` on the lab loop and return at once (a Future of its end; on a
        virtual lab a :class:`VirtualRun`: the campaign advances while the lesson waits)."""
        if self.lab.virtual:
            import asyncio

            holder = self.lab.call(lambda: [asyncio.ensure_future(campaign.run())])
            return VirtualRun(self.lab, holder[0])
        return self.lab.submit(campaign.run())

    def run(self, campaign: Campaign, timeout: float = 120.0) -> Campaign:
        """Run ``campaign`` to its end (at most ``timeout`` wall seconds) and return it."""
        future = self.start(campaign)
        return wait_campaign(campaign, future, timeout=timeout)

    def events(self, campaign: Campaign) -> pd.DataFrame:
        """The lab's events of this fleet while ``campaign`` ran."""
        end = campaign.finished_at if campaign.finished_at is not None else self.clock()
        return events_between(self.lab, campaign.started_at or 0.0, end, self.endpoints)

    def close(self) -> None:
        """Stop the devices and their relays (bounded)."""
        self.lab.call(self.sim.stop(), timeout=30.0)

    def __repr__(self) -> str:
        return f"<LabFleet {len(self.sim.members)} devices>"

    def _repr_html_(self) -> str:
        return self.table().to_html(index=False)


def fleet(
    lab: Lab,
    devices: int,
    *,
    profile: str = "mixed",
    faults: str = "",
    seed: int = 0,
    clean: int = 0,
) -> LabFleet:
    """``devices`` simulated devices (``sim-0001`` ...) behind link relays with the links of
    ``profile`` (``"mixed"``: NB-IoT, LTE-M and Wi-Fi) and the faults of the spec ``faults``
    (``"boot-fail:0.1"``, :func:`labkit.sim.faults.assign_faults`), registered to ``lab`` (a
    :func:`scaled_lab`). The first ``clean`` devices get no fault (a canary you trust).
    """
    from labkit.sim.faults import assign_faults

    clock = lab_clock(lab)
    sets = assign_faults(faults, devices, seed) if faults else [set() for _ in range(devices)]
    for i in range(min(clean, devices)):
        sets[i] = set()

    work = start_fleet(
        lab,
        clock,
        devices,
        profile=profile,
        seed=seed,
        faults=sets,
        feed_interval_s=120.0,
    )
    return LabFleet(lab, lab.call(work, timeout=sim_budget(lab, 60.0)), clock)


def wait_campaign(
    campaign: Campaign, future: Future[Any] | VirtualRun, *, timeout: float = 120.0
) -> Campaign:
    """Wait for a started campaign's end (``future`` from :meth:`LabFleet.start`); after
    ``timeout`` wall seconds (on a virtual lab: :func:`sim_budget` simulated seconds) cancel
    it, interrupting transfers, and wait for that."""
    import concurrent.futures

    try:
        future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        if isinstance(future, VirtualRun):
            future.lab.call(lambda: campaign.cancel(abort=True))
        else:
            campaign.cancel(abort=True)
        future.result(timeout=30.0)
    return campaign
