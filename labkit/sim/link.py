"""Seeded signal traces and per-datagram link impairment: the time-varying side of the link model.

This module owns how a simulated device's link changes over *simulated* time: a
:class:`SignalTrace` turns a :class:`~labkit.sim.profiles.LinkProfile` and a seed into the
values a device reports in /4 (Radio Signal Strength /4/0/2, Link Quality /4/0/3) together with
the loss probability and mean delay that go with them; a :class:`LinkImpairment` turns a trace
into one verdict per datagram (drop it, or deliver it after some delay) for the CoAP adapters.
Scripted :class:`Dip` s and :func:`outage` s let an experiment cut the link at chosen times.

It never reads a clock (time is the ``t`` argument, in simulated seconds), never opens a socket
and never uses global randomness: every random number comes from a stream derived from an
explicit seed with :func:`~labkit.sim.profiles.derive_seed`. Same seed and same calls give the
same values, byte for byte.

The signal model
----------------
At grid steps ``t_k = start + k * step_s`` the shadowing ``X_k`` is an Ornstein-Uhlenbeck
process discretised exactly: ``X_k = a * X_{k-1} + b * z_k`` with ``a = exp(-step_s / tau)``,
``b = sigma * sqrt(1 - a**2)`` and standard normal ``z_k``, started in its stationary
distribution ``N(0, sigma**2)``, so the statistics hold from the first sample (``tau`` is the
profile's ``correlation_time_s``, ``sigma`` its ``rssi_sigma_db``). The reported signal at time
``t`` is ``rssi_mean_dbm + X_k - dips(t)``, clamped to the profile's range and rounded half up
to an integer, where ``k`` is the last grid step at or before ``t``: the shadowing and the Link
Quality noise are *held* between steps, while dips (random and scripted) are evaluated at the
exact ``t``, so an outage from 30 s to 40 s cuts the link at exactly those times.

Determinism and memory
----------------------
The grid is cut into chunks of :data:`CHUNK_STEPS` steps. Chunk ``c`` draws its normals and its
random dips from its own stream ``derive_seed(seed, "trace", c)``, and starts from the shadowing
value at the end of chunk ``c - 1``, which the trace keeps as a checkpoint (8 bytes per chunk).
A chunk is computed in order the first time it is needed and can be recomputed exactly from its
checkpoint later, so ``sample(t)`` depends only on ``(profile, seed, dips, start, step_s, t)``,
never on the order of calls. A trace keeps at most :data:`CACHED_CHUNKS` computed chunks
(2 KiB each), the checkpoints and the random dips drawn so far (24 bytes each, 1 ... 4 per hour
in the lab's profiles): about 4.5 KiB of numbers per device after a simulated hour and about
11 KiB after a day at ``step_s=1`` (:meth:`SignalTrace.memory_bytes`); with Python's object
overhead a trace plus its impairment measured about 6 KB after an hour (tracemalloc, 1,000
``"mixed"`` devices), so 10,000 devices need about 60 MB for an hour-long campaign.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labkit.lwm2m.objects import NetworkBearer
from labkit.sim.profiles import LinkProfile, derive_seed, profile_for

__all__ = [
    "CACHED_CHUNKS",
    "CHUNK_STEPS",
    "Dip",
    "LinkImpairment",
    "LinkSample",
    "SignalTrace",
    "Verdict",
    "device_link",
    "link_trouble",
    "outage",
]

#: Grid steps per chunk (one stream of random numbers and one checkpoint per chunk).
CHUNK_STEPS = 128

#: Computed chunks a trace keeps; the rest are recomputed from checkpoints when asked for.
CACHED_CHUNKS = 2

#: Tolerance when mapping a time to a grid step, so that ``start + k * step_s`` maps to step
#: ``k`` despite floating-point rounding.
_STEP_EPS = 1e-9

#: Per profile (by identity): integer signal strength -> ``(loss, mean delay, mean jitter,
#: data rate)`` as the profile computes them (:meth:`SignalTrace._terms_at`). The values are
#: pure functions of ``(profile, rssi)``, so remembering them changes no number; a fleet asks
#: them for every datagram, and one table per profile (not per trace) costs no memory per
#: device.
_TERMS: dict[int, tuple[LinkProfile, dict[int, tuple[float, float, float, float]]]] = {}


def _terms_table(profile: LinkProfile) -> dict[int, tuple[float, float, float, float]]:
    entry = _TERMS.get(id(profile))
    if entry is None or entry[0] is not profile:  # (the profile is kept: its id stays its own)
        entry = _TERMS[id(profile)] = (profile, {})
    return entry[1]


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dip:
    """A scripted drop of the signal by ``depth_db`` during ``[start_s, start_s + duration_s)``.

    Times are trace times in simulated seconds. A dip of infinite depth is an *outage*: while
    it lasts the signal sits at the bottom of the profile's range and every datagram is lost
    (see :func:`outage`). Overlapping dips add up.
    """

    start_s: float
    duration_s: float
    depth_db: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.start_s):
            raise ValueError("dip start_s must be finite")
        if not self.duration_s > 0:  # also rejects NaN; math.inf: it never ends
            raise ValueError("dip duration_s must be > 0")
        if math.isnan(self.depth_db) or self.depth_db < 0:
            raise ValueError("dip depth_db must be >= 0 (math.inf for an outage)")

    @property
    def end_s(self) -> float:
        """First time after the dip."""
        return self.start_s + self.duration_s

    @property
    def is_outage(self) -> bool:
        """True for an infinitely deep dip: no coverage, total loss."""
        return math.isinf(self.depth_db)

    def active(self, t: float) -> bool:
        """True when ``t`` lies inside the dip."""
        return self.start_s <= t < self.end_s


def outage(start_s: float, duration_s: float) -> Dip:
    """A scripted total outage: no coverage during ``[start_s, start_s + duration_s)``.

    ``duration_s=math.inf`` makes a device vanish for good.

    During an outage every sample has the profile's lowest signal strength and loss 1.0, so a
    :class:`LinkImpairment` drops every datagram.
    """
    return Dip(start_s, duration_s, math.inf)


@dataclass(frozen=True, slots=True)
class LinkSample:
    """What the link looks like at simulated time ``t``.

    Attributes
    ----------
    t:
        The time asked for, simulated seconds.
    rssi_dbm:
        Radio Signal Strength as the device reports it in /4/0/2 (dBm, integer).
    link_quality:
        Link Quality as reported in /4/0/3, in the bearer's unit (RSRQ dB for LTE-M and
        NB-IoT, a 0..100 quality for Wi-Fi), integer.
    loss:
        Probability that one datagram is lost, 0 ... 1 (1.0 during an outage).
    delay_s:
        Mean one-way delay at this signal level, seconds, without per-datagram jitter and
        transmission time (:class:`LinkImpairment` adds those).
    bearer:
        The Network Bearer the device reports in /4/0/0.
    """

    t: float
    rssi_dbm: int
    link_quality: int
    loss: float
    delay_s: float
    bearer: NetworkBearer

    def as_dict(self) -> dict[str, Any]:
        """The sample as a plain dict (``pandas.DataFrame(map(LinkSample.as_dict, samples))``)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The link's verdict on one datagram: drop it, or deliver it ``delay_s`` seconds later."""

    drop: bool
    delay_s: float


# ---------------------------------------------------------------------------------------------
# The signal trace
# ---------------------------------------------------------------------------------------------


class SignalTrace:
    """A seeded, lazily generated signal trace for one device (see the module docstring).

    Parameters
    ----------
    profile:
        The link profile.
    seed:
        Seed of the trace. Give each device its own, e.g. ``derive_seed(run_seed, index)``.
    dips:
        Scripted dips and outages, in trace time.
    start:
        Time of the first grid step; ``sample(t)`` needs ``t >= start``.
    step_s:
        Grid step of the shadowing and Link Quality noise, seconds.

    Examples
    --------
    >>> from labkit.sim import PROFILES, SignalTrace, outage
    >>> trace = SignalTrace(PROFILES["lte-m"], seed=1, dips=[outage(30, 10)])
    >>> trace.sample(35.0).loss
    1.0
    """

    __slots__ = (
        "_a",
        "_b",
        "_boundary",
        "_cache",
        "_dip_depths",
        "_dip_ends",
        "_dip_lambda",
        "_dip_starts",
        "_dips",
        "_hi",
        "_lo",
        "_mean",
        "_mru",
        "_profile",
        "_seed",
        "_start",
        "_step_s",
        "_terms",
    )

    def __init__(
        self,
        profile: LinkProfile,
        seed: int,
        *,
        dips: Sequence[Dip] = (),
        start: float = 0.0,
        step_s: float = 1.0,
    ) -> None:
        if not (math.isfinite(step_s) and step_s > 0):
            raise ValueError(f"step_s must be finite and > 0, got {step_s!r}")
        if not math.isfinite(start):
            raise ValueError(f"start must be finite, got {start!r}")
        self._profile = profile
        self._seed = seed
        self._dips = tuple(sorted(dips, key=lambda d: (d.start_s, d.end_s)))
        self._start = float(start)
        self._step_s = float(step_s)
        self._mean = profile.rssi_mean_dbm
        # Integer reporting range: the profile's range, rounded inwards.
        self._lo = math.ceil(profile.rssi_min_dbm)
        self._hi = math.floor(profile.rssi_max_dbm)
        a = math.exp(-self._step_s / profile.correlation_time_s)
        self._a = a
        self._b = profile.rssi_sigma_db * math.sqrt(1.0 - a * a)
        # Expected random dips per chunk (Poisson mean).
        self._dip_lambda = profile.dips.rate_per_hour / 3600.0 * CHUNK_STEPS * self._step_s
        # _boundary[c]: shadowing value just before chunk c (X_{c*L - 1}); [0] is stationary.
        init = np.random.Generator(np.random.PCG64(derive_seed(seed, "trace", "init")))
        self._boundary = array("d", [profile.rssi_sigma_db * float(init.standard_normal())])
        self._cache: dict[int, tuple[array[float], array[float]]] = {}
        # (chunk, shadowing, noise) of the most recently used chunk, the last in _cache
        self._mru: tuple[int, array[float], array[float]] | None = None
        self._terms = _terms_table(profile)
        # Random dips of all chunks computed so far, in start order, as compact columns.
        self._dip_starts = array("d")
        self._dip_ends = array("d")
        self._dip_depths = array("d")

    def __repr__(self) -> str:
        return (
            f"SignalTrace({self.profile.name!r}, seed={self.seed}, dips={len(self.dips)}, "
            f"start={self.start:g}, step_s={self.step_s:g})"
        )

    # -- public API ----------------------------------------------------------------------------

    # Read-only: changing any of these after the first sample would break determinism.

    @property
    def profile(self) -> LinkProfile:
        """The link profile."""
        return self._profile

    @property
    def seed(self) -> int:
        """The trace's seed."""
        return self._seed

    @property
    def dips(self) -> tuple[Dip, ...]:
        """The scripted dips, sorted by start."""
        return self._dips

    @property
    def start(self) -> float:
        """Time of the first grid step."""
        return self._start

    @property
    def step_s(self) -> float:
        """Grid step, seconds."""
        return self._step_s

    def sample(self, t: float) -> LinkSample:
        """The link at simulated time ``t`` (any ``t >= start``, in any order).

        Raises
        ------
        ValueError
            If ``t`` is before ``start`` or not finite.
        """
        rssi, loss, noise = self._point(t)
        p = self._profile
        return LinkSample(
            t=t,
            rssi_dbm=rssi,
            link_quality=p.link_quality.report(rssi, noise),
            loss=loss,
            delay_s=p.delay_at(rssi),
            bearer=p.bearer,
        )

    def signal(self, t: float) -> tuple[int, int]:
        """``(rssi_dbm, link_quality)`` of :meth:`sample` at ``t``, without the rest of the
        sample (what a device's /4/0/2 and /4/0/3 hold; asked before every request that can
        read /4 reaches a device)."""
        rssi, _, noise = self._point(t)
        return rssi, self._profile.link_quality.report(rssi, noise)

    def samples(self, t0: float, t1: float, step: float) -> list[LinkSample]:
        """Samples at ``t0, t0 + step, ...`` strictly before ``t1`` (like :func:`range`).

        Returns
        -------
        list of LinkSample
            Build a frame with ``pandas.DataFrame([s.as_dict() for s in samples])``.
        """
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"step must be finite and > 0, got {step!r}")
        n = max(0, math.ceil((t1 - t0) / step - _STEP_EPS))
        return [self.sample(t0 + j * step) for j in range(n)]

    def random_dips(self, t0: float, t1: float) -> list[Dip]:
        """The random (profile-drawn) dips starting in ``[t0, t1)``, for plots and tests."""
        if t1 > self._start:
            self._chunk(self._chunk_of(max(t1, self._start)))
        lo = bisect_right(self._dip_starts, t0 - 1e-12)
        hi = bisect_right(self._dip_starts, t1 - 1e-12)
        return [
            Dip(self._dip_starts[j], self._dip_ends[j] - self._dip_starts[j], self._dip_depths[j])
            for j in range(lo, hi)
            if t0 <= self._dip_starts[j] < t1
        ]

    def memory_bytes(self) -> int:
        """Approximate memory held by this trace's numbers now, in bytes (excluding the object
        headers): cached chunks, checkpoints and random dips."""
        cached = sum(a.itemsize * len(a) + b.itemsize * len(b) for a, b in self._cache.values())
        checkpoints = self._boundary.itemsize * len(self._boundary)
        dips = 3 * self._dip_starts.itemsize * len(self._dip_starts)
        return cached + checkpoints + dips

    # -- internals -----------------------------------------------------------------------------

    def _point(self, t: float) -> tuple[int, float, float]:
        """Reported signal strength, loss probability and Link Quality noise draw at ``t``."""
        if not math.isfinite(t) or t < self._start:
            raise ValueError(f"t must be finite and >= start ({self._start:g}), got {t!r}")
        k = math.floor((t - self._start) / self._step_s + _STEP_EPS)
        chunk, i = divmod(k, CHUNK_STEPS)
        mru = self._mru
        if mru is not None and mru[0] == chunk:  # nearly always: the LRU order stays as is
            shadowing, lq_noise = mru[1], mru[2]
        else:
            shadowing, lq_noise = self._chunk(chunk)
        depth = self._dip_depth(t)
        if depth == math.inf:  # an outage: no coverage
            return self._lo, 1.0, lq_noise[i]
        raw = self._mean - depth + shadowing[i]
        rssi = min(max(math.floor(raw + 0.5), self._lo), self._hi)  # round half up
        terms = self._terms.get(rssi)
        if terms is None:
            terms = self._terms_at(rssi)
        return rssi, terms[0], lq_noise[i]

    def _terms_at(self, rssi: int) -> tuple[float, float, float, float]:
        """``(loss, mean delay, mean jitter, data rate)`` at integer ``rssi``, remembered for
        the profile (:data:`_TERMS`)."""
        terms = self._terms.get(rssi)
        if terms is None:
            p = self._profile
            terms = self._terms[rssi] = (p.loss(rssi), *p.link_terms(rssi))
        return terms

    def _chunk_of(self, t: float) -> int:
        k = math.floor((t - self._start) / self._step_s + _STEP_EPS)
        return k // CHUNK_STEPS

    def _chunk(self, c: int) -> tuple[array[float], array[float]]:
        """Shadowing values and Link Quality noise of chunk ``c`` (cached, LRU)."""
        hit = self._cache.pop(c, None)
        if hit is None:
            while len(self._boundary) <= c:  # first visit: walk forward, keeping checkpoints
                self._compute(len(self._boundary) - 1)
            hit = self._compute(c)
            while len(self._cache) >= CACHED_CHUNKS:
                del self._cache[next(iter(self._cache))]
        self._cache[c] = hit
        self._mru = (c, hit[0], hit[1])
        return hit

    def _compute(self, c: int) -> tuple[array[float], array[float]]:
        """Compute chunk ``c`` from its checkpoint; record its checkpoint and dips if new."""
        rng = np.random.Generator(np.random.PCG64(derive_seed(self._seed, "trace", c)))
        z = rng.standard_normal(CHUNK_STEPS).tolist()
        lq_noise = array("d", rng.standard_normal(CHUNK_STEPS).tobytes())  # the same doubles
        n_dips = int(rng.poisson(self._dip_lambda))
        offsets = rng.random(n_dips).tolist()
        depths = rng.random(n_dips).tolist()
        durations = rng.exponential(1.0, n_dips).tolist()

        a, b = self._a, self._b
        x = self._boundary[c]
        values: list[float] = []
        append = values.append
        for zi in z:
            x = a * x + b * zi
            append(x)
        shadowing = array("d", values)

        if c == len(self._boundary) - 1:  # first computation of this chunk
            self._boundary.append(x)
            model = self._profile.dips
            chunk_start = self._start + c * CHUNK_STEPS * self._step_s
            chunk_len = CHUNK_STEPS * self._step_s
            new = sorted(
                (
                    Dip(
                        chunk_start + off * chunk_len,
                        min(model.duration_s * dur, model.max_duration_s),
                        model.depth_db * (0.5 + dep),
                    )
                    for off, dep, dur in zip(offsets, depths, durations, strict=True)
                    if dur > 0.0
                ),
                key=lambda d: d.start_s,
            )
            for dip in new:
                self._dip_starts.append(dip.start_s)
                self._dip_ends.append(dip.end_s)
                self._dip_depths.append(dip.depth_db)
        return shadowing, lq_noise

    def _dip_depth(self, t: float) -> float:
        """Total depth of the dips (scripted and random) active at ``t``; inf in an outage."""
        depth = 0.0
        for dip in self._dips:
            if dip.start_s > t:
                break
            if t < dip.end_s:
                depth += dip.depth_db
        # Random dips: those started at or before t and at most max_duration_s ago.
        earliest = t - self._profile.dips.max_duration_s
        starts, ends = self._dip_starts, self._dip_ends
        j = bisect_right(starts, t)
        while j > 0:
            j -= 1
            if starts[j] < earliest:
                break
            if t < ends[j]:
                depth += self._dip_depths[j]
        return depth


# ---------------------------------------------------------------------------------------------
# Per-datagram impairment
# ---------------------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_UNIT = 1.0 / (1 << 53)  # a 53-bit integer times this is a float in [0, 1)


class LinkImpairment:
    """Per-datagram verdicts for one device's link, following its :class:`SignalTrace`.

    For a datagram of ``size`` bytes sent at ``t``: it is dropped with the sample's loss
    probability, otherwise delivered after ``delay_s + jitter + size / data_rate``, where
    ``delay_s`` is the sample's mean one-way delay, ``jitter`` is exponential with the
    profile's :meth:`~labkit.sim.profiles.LinkProfile.jitter_at` mean and ``data_rate`` is
    :meth:`~labkit.sim.profiles.LinkProfile.data_rate_at` the sample's signal strength.

    The random numbers come from the impairment's own stream, ``derive_seed(seed,
    "impairment")``, independent of the trace's: the i-th call to :meth:`decide` always uses
    the i-th pair of draws, so the same seed and the same sequence of calls give the same
    verdicts, and asking for verdicts never changes the trace. The generator is SplitMix64
    (one 64-bit integer of state, a few dozen bytes per device, identical on every platform).

    Parameters
    ----------
    trace:
        The device's signal trace.
    seed:
        Seed of the verdict stream (may equal the trace's seed; the streams stay independent).

    Attributes
    ----------
    sent, dropped:
        Datagrams judged so far and how many of them were dropped.
    """

    __slots__ = ("_seed", "_state", "_trace", "dropped", "sent")

    def __init__(self, trace: SignalTrace, seed: int) -> None:
        self._trace = trace
        self._seed = seed
        self._state = derive_seed(seed, "impairment")
        self.sent = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return f"LinkImpairment({self.trace!r}, seed={self.seed}, sent={self.sent})"

    @property
    def trace(self) -> SignalTrace:
        """The signal trace the verdicts follow (also the source of the device's /4 values)."""
        return self._trace

    @property
    def seed(self) -> int:
        """Seed of the verdict stream."""
        return self._seed

    def _uniform(self) -> float:
        """Next SplitMix64 draw as a float in [0, 1) with 53 random bits."""
        self._state = z = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
        return (z >> 11) * _UNIT

    def decide(self, t: float, size: int) -> Verdict:
        """The verdict on a datagram of ``size`` bytes sent at simulated time ``t``.

        Returns
        -------
        Verdict
            ``drop`` and, for delivered datagrams, the one-way ``delay_s`` (also filled in for
            dropped ones, where it means nothing).
        """
        drop, delay = self.judge(t, size)
        return Verdict(drop=drop, delay_s=delay)

    def judge(self, t: float, size: int) -> tuple[bool, float]:
        """:meth:`decide` as a plain ``(drop, delay_s)`` pair (the same draws, the same
        numbers; the link relay asks this for every datagram)."""
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size!r}")
        trace = self._trace
        rssi, loss, _ = trace._point(t)  # noqa: SLF001 - same module: its own trace
        # two SplitMix64 draws (:meth:`_uniform`, inlined): the loss draw, then the jitter
        # draw, taken for every datagram so the stream never shifts
        s1 = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = ((s1 ^ (s1 >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        u_loss = ((z ^ (z >> 31)) >> 11) * _UNIT
        self._state = s2 = (s1 + 0x9E3779B97F4A7C15) & _MASK64
        z = ((s2 ^ (s2 >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        u_jitter = ((z ^ (z >> 31)) >> 11) * _UNIT
        terms = trace._terms.get(rssi)  # noqa: SLF001 - same module: its own trace
        if terms is None:
            terms = trace._terms_at(rssi)  # noqa: SLF001 - same module: its own trace
        _, mean_delay, mean_jitter, rate = terms
        jitter = -mean_jitter * math.log1p(-u_jitter)
        delay = mean_delay + jitter + size / rate
        drop = u_loss < loss
        self.sent += 1
        self.dropped += drop
        return drop, delay


def device_link(
    profile: str,
    device_index: int,
    seed: int,
    *,
    dips: Sequence[Dip] = (),
    start: float = 0.0,
    step_s: float = 1.0,
) -> LinkImpairment:
    """The link of device number ``device_index`` of a run seeded ``seed``: one call, one rule.

    Picks the profile with :func:`~labkit.sim.profiles.profile_for` (so ``"mixed"`` works),
    seeds the trace and the impairment from ``derive_seed(seed, "device", device_index)``, and
    returns the impairment; its ``.trace`` is the signal trace (for /4 values). Device 17 of
    seed 1 gets the same link whatever the fleet size and creation order.

    Parameters
    ----------
    profile:
        A profile name (``labkit device --profile NAME``).
    device_index, seed:
        The device's position in the fleet and the run's seed.
    dips, start, step_s:
        As for :class:`SignalTrace`.

    Returns
    -------
    LinkImpairment
    """
    device_seed = derive_seed(seed, "device", device_index)
    chosen = profile_for(profile, device_index, seed)
    trace = SignalTrace(chosen, device_seed, dips=dips, start=start, step_s=step_s)
    return LinkImpairment(trace, device_seed)


def link_trouble(trace: SignalTrace, start_s: float, end_s: float) -> str | None:
    """Why a transfer over this link between ``start_s`` and ``end_s`` (trace time, widened by
    one second each side) may end in CONNECTION_LOST, or None when the link never got bad.

    Two things the model does can starve a transfer: a second at which the link loses at least
    every other datagram (a deep fade or a scripted outage), and a second at which the signal
    is at or below the profile's ``worst_dbm``, where delay and data rate are at their worst (on
    NB-IoT a 1 KiB block then takes about 5 s to send and a round trip exceeds 10 s, so CoAP's
    2-3 s retransmissions queue up behind each other on the link). The answer names the worst
    moment, e.g. ``"link at its worst (-133 dBm, 33 s at <= -130 dBm, max loss 24 %)"``.
    Checked once per simulated second. Pure: the trace is seeded, no clock is read.
    """
    worst_dbm = trace.profile.worst_dbm
    t = max(trace.start, start_s - 1.0)
    lossy = slow = 0
    max_loss, min_rssi = 0.0, None
    while t <= end_s + 1.0:
        sample = trace.sample(t)
        lossy += sample.loss >= 0.5
        slow += sample.rssi_dbm <= worst_dbm
        max_loss = max(max_loss, sample.loss)
        min_rssi = sample.rssi_dbm if min_rssi is None else min(min_rssi, sample.rssi_dbm)
        t += 1.0
    if lossy:
        return f"deep fade or outage ({lossy} s losing >= 50 %, max loss {max_loss:.0%})"
    if slow:
        return (f"link at its worst ({min_rssi} dBm, {slow} s at <= {worst_dbm:g} dBm, "
                f"max loss {max_loss:.0%})")
    return None
