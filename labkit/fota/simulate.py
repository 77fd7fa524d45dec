"""A whole simulated campaign in one call: ``labkit simulate`` and :func:`simulate`.

:func:`simulate` builds a :class:`~labkit.runtime.Lab` that records to ``out``, starts N
:class:`~labkit.client.SimulatedDevice` s, each behind its own link relay
(:class:`~labkit.linkem.LinkRelay`) with the link of its profile and seed
(:func:`~labkit.sim.link.device_link`), keeps their /4 values on their traces
(:class:`~labkit.linkem.LinkFeeder`), builds a real signed MCUboot image of ``image_size``
bytes (:func:`labkit.repo.images.build_image`), runs a :class:`~labkit.fota.campaign.Campaign`
with the chosen policy, and saves the run: the event table, the manifest (all parameters, the
policy's thresholds, the event loop's lag and a ``distorted`` flag) and the campaign's
summary tables (``campaign_devices.parquet``, ``campaign_waves.parquet``).

Scaled time (:mod:`labkit.timebase`): one :class:`ScaledClock` drives the whole run. The
lab's clock, the link traces, the server's CoAP timers, every campaign duration and every
device's own timers (its Updates, back-off, install delay, request timeouts, pmin/pmax, fault
durations and the CoAP retransmissions of what it sends: ``SimulatedDevice(time_scale=,
clock=)``) run ``time_scale`` times faster than the wall clock, and every event is stamped in
simulated time. Devices register with a lifetime of one simulated day (``lifetime``), typical
of NB-IoT devices: a run of a few simulated hours sees no registration Update.

Faults: ``faults`` (``"link-drop:0.05,boot-fail:0.05"``) are assigned with
:func:`labkit.sim.faults.assign_faults` and each device gets its set (``faults=``); it makes
them strike itself, each a ``fault`` event.

Reproducibility: devices' links, profiles and faults depend only on the seed. On virtual time
(``clock="virtual"``, the default: :mod:`labkit.virtual`) the whole event table -- rows, order,
simulated timestamps -- is the same for the same parameters and seed, in any process, under any
load; the run starts at a fixed simulated epoch and its id is ``<epoch>-v<seed>``. On scaled
time (``clock="scaled"``) only robust outcomes repeat: wall-clock scheduling moves every event
a little (see :mod:`labkit.linkem`), and a busy CPU distorts the timings (``distorted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from labkit.events import EventSink, discard
from labkit.linkem import LinkFeeder, LinkRelay
from labkit.sim.link import LinkImpairment, device_link
from labkit.timebase import LagSummary, LoopLagMonitor, ScaledClock
from labkit.virtual.heap import freeze_survivors

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SimFleet", "SimulationResult", "run_campaign", "simulate"]

log = logging.getLogger(__name__)

#: Registration lifetime of the fleet's devices: one simulated day, typical of NB-IoT devices.
FLEET_LIFETIME = 86_400

#: Bound of each request a fleet device sends (simulated seconds): CoAP's MAX_TRANSMIT_WAIT,
#: so the device waits as long as CoAP retransmits. A Register of ~150 bytes over a weak
#: NB-IoT link (a few hundred bit/s) plus its 2.01 easily takes more than the device's default
#: 10 s; with 10 s such devices would never register.
FLEET_REQUEST_TIMEOUT_S = 93.0

#: How often (simulated seconds) a virtual run offers its campaign tables to the thread that
#: writes them (at most once per VIRTUAL_TABLES_WALL_S); a scaled run writes them every wall
#: second.
VIRTUAL_SNAPSHOT_S = 10.0

#: Least wall time between two writes of a virtual run's campaign tables (a large fleet: one
#: more second per 100 devices). Only a killed run keeps them (the last write, at the end, is
#: the result): building them costs the loop about 40 us per device and writing them as much,
#: so at this pace they take under 1 % of the CPU at any fleet size.
VIRTUAL_TABLES_WALL_S = 5.0


# ---------------------------------------------------------------------------------------------
# A fleet behind link relays
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class SimMember:
    """One simulated device of a :class:`SimFleet`."""

    index: int
    endpoint: str
    link: LinkImpairment
    relay: LinkRelay
    faults: frozenset[str]
    device: Any = None
    repo_relay: LinkRelay | None = None

    @property
    def profile(self) -> str:
        return self.link.trace.profile.name


class _RepoView:
    """A repository as one device sees it: PULL URIs point at the device's relay."""

    def __init__(self, repository: Any, relay: LinkRelay) -> None:
        self._repo = repository
        self._relay = relay

    def coap_uri(self, name: str) -> str:
        return f"coap://{self._relay.host}:{self._relay.device_port}{self._repo.path(name)}"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    def __contains__(self, name: object) -> bool:
        return name in self._repo


class SimFleet:
    """``count`` simulated devices, each behind its own link relay to ``server``.

    Parameters
    ----------
    server:
        A started :class:`~labkit.server.LwM2MServer`.
    count:
        Number of devices.
    profile:
        Link profile name (``"mixed"`` draws one per device).
    seed:
        The run's seed (links, profiles, faults and device seeds derive from it).
    clock:
        The run's :class:`~labkit.timebase.ScaledClock`.
    links:
        Explicit links instead of ``device_link(profile, i, seed)`` (experiments, tests).
    faults:
        One set of fault names per device (:func:`labkit.sim.faults.assign_faults`).
    repository:
        The lab repository; with it every device also gets a relay for PULL downloads.
    on_event:
        The run's event sink (devices, relays and feeders stamp with ``clock``).
    feed_interval_s:
        Simulated seconds between periodic /4 updates (:class:`~labkit.linkem.LinkFeeder`);
        besides, each device's /4 is refreshed whenever a datagram reaches it.
    lifetime:
        Registration lifetime of the devices, simulated seconds.
    device_kwargs:
        More keyword arguments for every device.
    """

    def __init__(
        self,
        server: Any,
        count: int,
        *,
        profile: str = "mixed",
        seed: int = 0,
        clock: ScaledClock,
        links: Sequence[LinkImpairment] | None = None,
        faults: Sequence[set[str] | frozenset[str]] | None = None,
        repository: Any = None,
        on_event: EventSink = discard,
        feed_interval_s: float = 600.0,
        lifetime: int = FLEET_LIFETIME,
        prefix: str = "sim-",
        host: str = "127.0.0.1",
        device_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if links is not None and len(links) != count:
            raise ValueError(f"{len(links)} links for {count} devices")
        if faults is not None and len(faults) != count:
            raise ValueError(f"{len(faults)} fault sets for {count} devices")
        self.server = server
        self.clock = clock
        self.repository = repository
        self.host = host
        self._sink = on_event
        self.lifetime = int(lifetime)
        self.device_kwargs = dict(device_kwargs or {})
        target = (host, int(server.port))
        self.members: list[SimMember] = []
        for i in range(count):
            link = links[i] if links is not None else device_link(profile, i, seed)
            endpoint = f"{prefix}{i + 1:04d}"
            relay = LinkRelay(link, target, clock=clock, host=host, device=endpoint,
                              on_event=on_event)
            self.members.append(SimMember(
                index=i, endpoint=endpoint, link=link, relay=relay,
                faults=frozenset(faults[i]) if faults is not None else frozenset(),
            ))
        self.seed = seed
        self.feeder = LinkFeeder([], clock=clock, interval_s=feed_interval_s)
        self.link_origin = 0.0

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def tags(self) -> dict[str, set[str]]:
        """Endpoint -> tags: the profile name and ``fault:<name>`` for each fault."""
        return {m.endpoint: {m.profile, *(f"fault:{f}" for f in m.faults)} for m in self.members}

    def member(self, endpoint: str) -> SimMember:
        for m in self.members:
            if m.endpoint == endpoint:
                return m
        raise KeyError(endpoint)

    def repository_for(self, endpoint: str) -> Any:
        """The repository as ``endpoint`` sees it (PULL through its link), or the plain one."""
        member = self.member(endpoint)
        if member.repo_relay is None:
            return self.repository
        return _RepoView(self.repository, member.repo_relay)

    def _make_device(self, member: SimMember) -> Any:
        from labkit.client import SimulatedDevice
        from labkit.sim.profiles import derive_seed

        kwargs: dict[str, Any] = {
            "lifetime": self.lifetime,
            "host": self.host,
            "on_event": self._sink,
            "seed": derive_seed(self.seed, "sim-device", member.index) & 0x7FFF_FFFF,
            "request_timeout": FLEET_REQUEST_TIMEOUT_S,
            "time_scale": self.clock.scale,
            "clock": self.clock,
            "faults": set(member.faults),
            **self.device_kwargs,
        }
        return SimulatedDevice(member.endpoint, member.relay.uri, **kwargs)

    async def start(self, *, timeout: float = 30.0, concurrency: int = 32) -> None:
        """Start the relays, create and register the devices, start feeding /4.

        Raises
        ------
        RuntimeError
            Naming the devices that did not register within ``timeout`` (wall seconds).
        """
        from labkit.runtime import start_devices

        for m in self.members:
            await m.relay.start()
            if self.repository is not None:
                m.repo_relay = LinkRelay(
                    m.link, (self.host, int(self.repository.coap_port)), clock=self.clock,
                    host=self.host, device=m.endpoint, on_event=self._sink,
                )
                await m.repo_relay.start()
        for m in self.members:
            m.device = self._make_device(m)
            refresh = self.feeder.refresher(m.device, m.link)
            m.relay.before_delivery = refresh
            if m.repo_relay is not None:
                m.repo_relay.before_delivery = refresh
            self.feeder.add(m.device, m.link)
        self.feeder.tick()  # the first samples, before anyone reads /4
        errors = await start_devices([m.device for m in self.members], timeout=timeout,
                                     concurrency=concurrency)
        failed = [m.endpoint for m, e in zip(self.members, errors, strict=True) if e]
        self.set_link_origin()
        self.feeder.start()
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(self.members)} devices did not register "
                               f"(first: {failed[0]}: {errors[self.endpoints.index(failed[0])]!r})")

    def set_link_origin(self, elapsed: float | None = None) -> None:
        """Make ``elapsed`` (default: now) time 0 of every device's trace, for relays and /4.

        :meth:`start` calls it once the fleet is registered, so scripted dips count from the
        moment the fleet is up (the campaign's start), not from the registration burst.
        """
        t0 = self.clock.elapsed() if elapsed is None else float(elapsed)
        self.feeder.t0 = t0
        for m in self.members:
            m.relay.t0 = t0
            if m.repo_relay is not None:
                m.repo_relay.t0 = t0
        self.link_origin = t0

    async def stop(self) -> None:
        """Stop feeding, stop the devices (no De-register), close the relays. Bounded."""
        await self.feeder.stop()
        devices = [m.device for m in self.members if m.device is not None]
        if devices:
            await asyncio.gather(
                *(asyncio.wait_for(d.stop(deregister=False, timeout=2.0), 5.0) for d in devices),
                return_exceptions=True,
            )
        for m in self.members:
            await m.relay.stop()
            if m.repo_relay is not None:
                await m.repo_relay.stop()

    def link_table(self) -> list[dict[str, Any]]:
        """Per device: profile, faults, and the relay's datagram counters."""
        rows = []
        for m in self.members:
            stats = m.relay.stats.as_dict()
            if m.repo_relay is not None:
                for k, v in m.repo_relay.stats.as_dict().items():
                    stats[k] += v
            rows.append({
                "device": m.endpoint,
                "profile": m.profile,
                "faults": ",".join(sorted(m.faults)),
                **stats,
            })
        return rows

    def typical_rtt_s(self) -> float:
        """Median simulated round trip of the fleet at each profile's mean signal."""
        rtts = [2 * m.link.trace.profile.delay_at(m.link.trace.profile.rssi_mean_dbm)
                for m in self.members]
        return statistics.median(rtts) if rtts else 0.0


# ---------------------------------------------------------------------------------------------
# One campaign over a fleet (async), and the whole run (sync)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SimulationResult:
    """What :func:`run_campaign` returns (and :func:`simulate` saves)."""

    campaign: Any
    fleet: SimFleet
    lag: Any
    wall_s: float
    typical_rtt_s: float

    @property
    def distorted(self) -> bool:
        return bool(self.lag.distorts(self.typical_rtt_s))


async def run_campaign(
    server: Any,
    package: bytes,
    *,
    devices: int,
    profile: str = "mixed",
    policy: Any = "threshold",
    method: str = "push",
    seed: int = 0,
    clock: ScaledClock,
    faults: Sequence[set[str] | frozenset[str]] | None = None,
    links: Sequence[LinkImpairment] | None = None,
    repository: Any = None,
    block_size: int = 1024,
    on_event: EventSink | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    deadline_s: float = 600.0,
    start_timeout: float = 60.0,
    fleet_kwargs: Mapping[str, Any] | None = None,
    on_snapshot: Callable[[Any, SimFleet], Awaitable[None]] | None = None,
    snapshot_interval: float = 1.0,
    **campaign_kwargs: Any,
) -> SimulationResult:
    """Start a :class:`SimFleet` on ``server``, run a campaign over it, stop the fleet.

    ``deadline_s`` (wall seconds) bounds the campaign; when it runs out the campaign is
    cancelled (its devices end ``cancelled``) and the result is returned all the same.
    ``campaign_kwargs`` go to :class:`~labkit.fota.campaign.Campaign`. ``on_snapshot(campaign,
    fleet)`` is awaited when the campaign starts and every ``snapshot_interval`` wall seconds
    while it runs (``simulate`` writes the campaign tables with it, so a killed run keeps them).
    """
    from labkit.fota.campaign import Campaign

    sink = on_event if on_event is not None else server.on_event
    virtual = bool(getattr(clock, "virtual", False))
    # A virtual run reads no wall clock on its loop (simulate() measures the wall time from
    # its own thread) and has no lag to measure: its timers fire at their simulated instants.
    started = 0.0 if virtual else time.monotonic()
    fleet = SimFleet(server, devices, profile=profile, seed=seed, clock=clock, links=links,
                     faults=faults, repository=repository, on_event=sink,
                     **dict(fleet_kwargs or {}))
    monitor = _NoLag() if virtual else LoopLagMonitor(interval=0.01, scale=clock.scale)
    try:
        await fleet.start(timeout=start_timeout)
        monitor.start()  # the campaign's timings are what the lag distorts
        options: dict[str, Any] = {"max_concurrent": 50, **campaign_kwargs}
        campaign = Campaign(
            server, package, fleet=fleet.tags(), policy=policy, method=method,
            block_size=block_size, clock=clock,
            repository=fleet.repository_for if repository is not None else None,
            on_event=sink, on_progress=on_progress, **options,
        )
        snapshots = None
        if on_snapshot is not None:
            snapshots = asyncio.get_running_loop().create_task(
                _snapshots(on_snapshot, campaign, fleet, snapshot_interval), name="snapshots"
            )
        try:
            await campaign.run_until(deadline_s)
        finally:
            if snapshots is not None:
                snapshots.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await snapshots
    finally:
        lag = await monitor.stop()
        await fleet.stop()
    return SimulationResult(campaign=campaign, fleet=fleet, lag=lag,
                            wall_s=0.0 if virtual else time.monotonic() - started,
                            typical_rtt_s=fleet.typical_rtt_s())


class _NoLag:
    """The lag "monitor" of a virtual run: timers fire exactly, nothing to measure."""

    def start(self) -> None:
        pass

    async def stop(self) -> LagSummary:
        return LagSummary(samples=0, interval_ms=0.0, p50_ms=0.0, p95_ms=0.0, max_ms=0.0,
                          mean_ms=0.0, scale=1.0, p95_sim_ms=0.0, max_sim_ms=0.0)


async def _snapshots(
    on_snapshot: Callable[[Any, SimFleet], Awaitable[None]],
    campaign: Any,
    fleet: SimFleet,
    interval: float,
) -> None:
    """Call ``on_snapshot`` now and every ``interval`` s; a failure is logged, never fatal."""
    while True:
        try:
            await on_snapshot(campaign, fleet)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("campaign snapshot failed", exc_info=True)
        await asyncio.sleep(interval)


def _write_tables(run_dir: FsPath, tables: Mapping[str, pd.DataFrame]) -> None:
    """Each table to ``<run_dir>/<name>.parquet`` atomically (hidden temporary, rename)."""
    from labkit.runstart import atomic_write

    for name, frame in tables.items():
        atomic_write(run_dir / f"{name}.parquet", partial(_frame_to_parquet, frame))


def _frame_to_parquet(frame: pd.DataFrame, fh: Any) -> None:
    frame.to_parquet(fh, index=False)


def _campaign_tables(campaign: Any, fleet: SimFleet) -> dict[str, pd.DataFrame]:
    import pandas as pd

    return {
        "campaign_devices": campaign.devices(),
        "campaign_waves": campaign.waves(),
        "links": pd.DataFrame(fleet.link_table()),
    }

class _TableWriter:
    """Writes a virtual run's campaign tables from a thread of its own: the loop offers the
    latest tables without waiting (nothing on a virtual loop waits for a disk or reads a wall
    clock), the thread writes them and is ready for more ``min_interval`` wall seconds later.
    What the simulation does never depends on it: offering builds frames, no event, no timer."""

    def __init__(self, run_dir: FsPath, min_interval: float = 1.0) -> None:
        import threading

        self._run_dir = run_dir
        self._min_interval = min_interval
        self._latest: Mapping[str, pd.DataFrame] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()  # ends the pause between two writes at once
        self._closing = False
        #: set while the thread can take tables (the loop skips building them otherwise)
        self.ready = threading.Event()
        self.ready.set()
        self._thread = threading.Thread(target=self._run, name="labkit-campaign-tables",
                                        daemon=True)
        self._thread.start()

    def offer(self, tables: Mapping[str, pd.DataFrame]) -> None:
        with self._lock:
            self._latest = tables
        self.ready.clear()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                tables, self._latest = self._latest, None
            if tables is not None:
                try:
                    _write_tables(self._run_dir, tables)
                except Exception:
                    log.warning("campaign tables not written", exc_info=True)
            if self._closing:
                return
            # this thread's own pace, never the loop's; close() does not wait for it
            self._closed.wait(self._min_interval)
            self.ready.set()

    def close(self) -> None:
        self._closing = True
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=30.0)

    def __enter__(self) -> _TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def simulate(
    devices: int = 10,
    profile: str = "mixed",
    policy: str = "threshold",
    method: str = "push",
    image_size: int = 8192,
    faults: str = "",
    seed: int = 0,
    time_scale: float = 100.0,
    out: str | FsPath = "data/runs",
    *,
    clock: str = "virtual",
    epoch: float | None = None,
    policy_params: Mapping[str, Any] | None = None,
    block_size: int = 1024,
    run_id: str | None = None,
    links: Sequence[LinkImpairment] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    deadline_s: float | None = None,
    start_timeout: float | None = None,
    key: str | FsPath | None = None,
    **campaign_kwargs: Any,
) -> FsPath:
    """Run a whole simulated campaign and save it; returns the run directory.

    Parameters
    ----------
    devices, profile, seed:
        Fleet size, link profile (``nb-iot``, ``lte-m``, ``wifi``, ``mixed``) and seed.
    policy, policy_params:
        A policy name of :data:`labkit.policy.POLICIES` and its parameters.
    method:
        ``"push"`` or ``"pull"`` (PULL over CoAP, through each device's link).
    image_size:
        Payload size of the signed MCUboot image, bytes.
    faults:
        ``NAME:FRACTION,...`` (see :mod:`labkit.sim.faults`).
    time_scale:
        Simulated seconds per wall second (``clock="scaled"`` only).
    clock:
        ``"virtual"`` (default): the run on virtual time (:mod:`labkit.virtual`), an event
        loop whose clock jumps to the next timer and an in-process network; the results
        depend only on the parameters and the seed (same event table, byte for byte, on
        every machine and under any load). ``"scaled"``: wall-clock time times
        ``time_scale`` over loopback sockets (for watching a fleet live, or mixing in real
        devices); the CPU can distort it, and the manifest says when it did.
    epoch:
        Virtual runs: simulated Unix time of the run's start (default 2025-01-01T00:00:00Z).
    out:
        Folder of runs; the run is saved in ``out/<run_id>/``.
    block_size:
        Block size (PUSH Block1).
    links:
        Explicit links instead of the profile's (experiments, tests).
    on_progress:
        ``on_progress(finished, total)``: on the lab's loop thread in scaled runs; in virtual
        runs on the calling thread, on wall-clock ticks (about 5 per second).
    deadline_s:
        Bound of the campaign (it is cancelled after that and saved): simulated seconds in a
        virtual run (default one simulated day), wall seconds in a scaled run (default 1800).
    start_timeout:
        Bound of the fleet's registration (default: 6000 simulated s when virtual, 60 wall s
        when scaled -- the same simulated time at the default scale).
    key:
        Signing key of the image (default: the lab key, created on first use).
    campaign_kwargs:
        More :class:`~labkit.fota.campaign.Campaign` options (waves, retries, thresholds).

    Returns
    -------
    pathlib.Path
        The run directory: ``manifest.json`` (``params``: every parameter above, the policy's
        thresholds, ``loop_lag`` statistics, ``distorted``, the campaign summary),
        ``events.parquet``, ``campaign_devices.parquet``, ``campaign_waves.parquet``,
        ``links.parquet`` (per device datagram counters). The events are streamed to
        ``events.parquet`` while the run goes (``Lab(retain_events=False)``): a large fleet
        never holds its event table in memory; read it back with
        :func:`labkit.record.read_run`.
    """

    from labkit.policy import make_policy, policy_name, policy_thresholds
    from labkit.repo.images import build_image
    from labkit.runtime import Lab
    from labkit.sim.faults import assign_faults, parse_fault_spec

    if clock not in ("virtual", "scaled"):
        raise ValueError(f"clock must be 'virtual' or 'scaled', got {clock!r}")
    virtual = clock == "virtual"
    if deadline_s is None:
        deadline_s = 86_400.0 if virtual else 1800.0
    if start_timeout is None:
        start_timeout = 6000.0 if virtual else 60.0
    fault_fractions = parse_fault_spec(faults) if faults else {}
    fault_sets = assign_faults(fault_fractions, devices, seed)
    policy_obj = make_policy(policy, **dict(policy_params or {}))
    FsPath(out).mkdir(parents=True, exist_ok=True)
    # the run directory and manifest exist before the image is built (a kill keeps them)
    if virtual:
        lab = Lab(record=out, seed=seed, clock="virtual", epoch=epoch, run_id=run_id,
                  request_timeout=30.0, retain_events=False)
        run_clock: ScaledClock = lab.clock  # type: ignore[assignment]
    else:
        if epoch is not None:
            raise ValueError("epoch= is only for clock='virtual'")
        run_clock = ScaledClock(time_scale)
        lab = Lab(record=out, seed=seed, clock=run_clock, run_id=run_id, request_timeout=30.0,
                  retain_events=False)
    wall_started = time.monotonic()
    # a virtual run: full collections walk only what arrived since the last one (heap.py)
    with lab, freeze_survivors() if virtual else contextlib.nullcontext():
        image = build_image(version="2.0.0", size=image_size, seed=seed, key=key)
        server = lab.server
        run_dir = lab.run_dir
        assert run_dir is not None
        # a large fleet's tables cost more to build: offered less often (every devices / 100
        # wall seconds, at least every VIRTUAL_TABLES_WALL_S), so that they stay a small share
        writer_pace = max(VIRTUAL_TABLES_WALL_S, devices / 100.0)
        tables: Any = (_TableWriter(run_dir, min_interval=writer_pace) if virtual
                       else contextlib.nullcontext())
        with tables as writer:  # a virtual run's incremental tables, closed on any exit

            async def snapshot(campaign: Any, fleet: SimFleet) -> None:
                if writer is None:
                    tables_now = _campaign_tables(campaign, fleet)
                    await asyncio.to_thread(_write_tables, run_dir, tables_now)
                elif writer.ready.is_set():
                    writer.offer(_campaign_tables(campaign, fleet))

            if not virtual:

                def scale_server() -> None:
                    server.time_scale = time_scale

                lab.call(scale_server, timeout=10)
            repository = lab.repository if method == "pull" else None
            progress = _WallTickProgress(on_progress) if virtual and on_progress else None
            work = run_campaign(
                server, image, devices=devices, profile=profile, policy=policy_obj,
                method=method, seed=seed, clock=run_clock, faults=fault_sets, links=links,
                repository=repository, block_size=block_size,
                on_progress=progress.record if progress is not None else on_progress,
                deadline_s=deadline_s, start_timeout=start_timeout, on_snapshot=snapshot,
                snapshot_interval=VIRTUAL_SNAPSHOT_S if virtual else 1.0, **campaign_kwargs,
            )
            limit = deadline_s + start_timeout + 120.0
            if progress is not None:
                result: SimulationResult = progress.wait(lab, work, limit)
            else:
                result = lab.call(work, timeout=limit)
            wall_s = time.monotonic() - wall_started if virtual else result.wall_s
            campaign = result.campaign
            lag = result.lag
            distorted = False if virtual else result.distorted
            params = {
                "command": "simulate",
                "devices": devices,
                "profile": profile,
                "policy": policy_name(policy_obj),
                "policy_params": dict(policy_params or {}),
                "thresholds": policy_thresholds(policy_obj),
                "method": method,
                "block_size": block_size,
                "image_size": image_size,
                "image_bytes": len(image),
                "faults": faults,
                "fault_counts": {f: sum(f in s for s in fault_sets) for f in fault_fractions},
                "seed": seed,
                "clock": clock,
                "time_scale": 1.0 if virtual else time_scale,
                "loop_lag": lag.as_dict(),
                "typical_rtt_s": result.typical_rtt_s,
                "distorted": distorted,
                "wall_s": wall_s,
                "campaign": {k: v for k, v in campaign.summary().items()},
                "campaign_options": {k: v for k, v in campaign_kwargs.items()
                                     if isinstance(v, int | float | str | bool | list | tuple)},
                "device_time_scale": 1.0 if virtual else time_scale,
            }
            if virtual:
                params["epoch"] = run_clock.origin
            if distorted:
                params["distortion_warning"] = (
                    f"event loop lag p95 {lag.p95_ms:.1f} ms wall = {lag.p95_sim_ms / 1000:.2f} s "
                    f"simulated at {time_scale:g}x, more than 10 % of the typical simulated round "
                    f"trip ({result.typical_rtt_s:.2f} s): simulated timings are distorted by the "
                    "CPU; lower --time-scale or --devices"
                )
                lab.emit("note", detail=params["distortion_warning"])
                log.warning("%s", params["distortion_warning"])
            lab.recorder.manifest["params"].update(params)
        _write_tables(run_dir, _campaign_tables(campaign, result.fleet))
    return FsPath(run_dir)


class _WallTickProgress:
    """Progress of a virtual run, shown from the caller's thread on wall-clock ticks: the loop
    only records the latest ``(finished, total)`` (no clock read there)."""

    def __init__(self, show: Callable[[int, int], None], interval: float = 0.2) -> None:
        self._show = show
        self._interval = interval
        self._latest: tuple[int, int] | None = None
        self._shown: tuple[int, int] | None = None

    def record(self, finished: int, total: int) -> None:
        self._latest = (finished, total)

    def _tick(self) -> None:
        latest = self._latest
        if latest is not None and latest != self._shown:
            self._shown = latest
            self._show(*latest)

    def wait(self, lab: Any, work: Any, limit: float) -> Any:
        import concurrent.futures

        from labkit.runtime import VIRTUAL_WALL_LIMIT

        future = lab.submit(work, sim_limit=limit)
        wall_deadline = time.monotonic() + max(limit, VIRTUAL_WALL_LIMIT)
        while True:
            try:
                result = future.result(timeout=self._interval)
            except concurrent.futures.TimeoutError:
                self._tick()
                if time.monotonic() > wall_deadline:
                    future.cancel()
                    raise TimeoutError("the virtual run stopped moving") from None
                continue
            self._tick()
            return result

