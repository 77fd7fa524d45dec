"""Link profiles: the numbers that make a simulated NB-IoT, LTE-M or Wi-Fi link behave like one.

This module owns the *parameters* of the link model: for each bearer, the statistics of the
reported signal strength (/4/0/2), how the reported Link Quality (/4/0/3) follows it, how often
and how deep the signal dips, and how packet loss, one-way delay and data rate degrade as the
signal weakens. A :class:`LinkProfile` is a frozen value with small pure helper methods
(``loss_at``, ``delay_at`` ...); the time-varying trace built from it lives in
:mod:`labkit.sim.link`. This module never draws random numbers except in :func:`profile_for`,
which picks a member of the ``"mixed"`` fleet deterministically from an explicit seed; it never
reads a clock and never touches a socket.

Where the numbers come from
---------------------------
*Digest* means the lab's protocol digest, ``spec/lwm2m-fota.md``, section 2 (Connectivity
Monitoring /4): LTE-M and NB-IoT report RSRP/NRSRP in dBm on the scale -140 ... -44; for LTE-M
good is above -90, fair -90 ... -105 and poor -105 ... -120; NB-IoT stays usable down to about
-130 ... -140 with coverage enhancement; Link Quality is RSRQ in dB, -19.5 ... -3, reported as a
rounded integer. Wi-Fi is not covered by the digest's table, so every Wi-Fi number is a *lab
assumption*, as are means, spreads, correlation times, dip rates, delays and data rates: they
are typical published figures chosen to make the lesson visible, not measurements.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from labkit.lwm2m.objects import NetworkBearer

__all__ = [
    "MIXED_WEIGHTS",
    "PROFILES",
    "PROFILE_NAMES",
    "DataRate",
    "DelayModel",
    "DipModel",
    "LinkProfile",
    "LinkQualityModel",
    "LossCurve",
    "derive_seed",
    "get_profile",
    "profile_for",
    "round_half_up",
]


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def derive_seed(*parts: int | str) -> int:
    """Derive an independent 64-bit seed from a root seed and labels.

    ``derive_seed(seed, "trace", 3)`` and ``derive_seed(seed, "impairment")`` give unrelated
    streams from one user seed, so that, for example, per-datagram loss decisions never shift
    the signal trace. The mapping is a BLAKE2b hash of the parts' ``repr``: it is the same on
    every platform and every run (unlike :func:`hash`, which Python salts per process).

    Parameters
    ----------
    *parts:
        Integers and strings; order matters.

    Returns
    -------
    int
        A seed in ``0 .. 2**64 - 1``, suitable for ``numpy.random.PCG64`` or
        ``random.Random``.
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves upwards (-19.5 -> -19, 2.5 -> 3).

    Python's :func:`round` rounds halves to even; the lab uses one explicit rule for every
    integer /4 value it reports (the resources are Integer, digest 2).
    """
    return math.floor(x + 0.5)


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


# ---------------------------------------------------------------------------------------------
# Component models
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkQualityModel:
    """Reported Link Quality (/4/0/3) as a linear function of the signal strength plus noise.

    ``quality = at_ref + slope * (rssi_dbm - ref_dbm) + noise``, with Gaussian noise of
    standard deviation ``sigma`` (one draw per trace step), clamped to ``min_value ..
    max_value`` and reported as an integer (:func:`round_half_up`).

    Attributes
    ----------
    unit:
        The bearer's unit of Link Quality, for labels: ``"dB"`` (RSRQ) or ``"%"``.
    ref_dbm, at_ref:
        A reference signal strength and the mean quality there.
    slope:
        Quality units per dB of signal strength (>= 0: quality rises with signal).
    sigma:
        Standard deviation of the per-step noise, in quality units.
    min_value, max_value:
        The range of the bearer's quality scale.
    """

    unit: str
    ref_dbm: float
    at_ref: float
    slope: float
    sigma: float
    min_value: float
    max_value: float

    def __post_init__(self) -> None:
        if self.slope < 0 or self.sigma < 0:
            raise ValueError("link quality slope and sigma must be >= 0")
        if self.min_value > self.max_value:
            raise ValueError("link quality min_value must be <= max_value")

    def mean(self, rssi_dbm: float) -> float:
        """Mean quality (before noise and rounding) at ``rssi_dbm``, clamped to the scale."""
        value = self.at_ref + self.slope * (rssi_dbm - self.ref_dbm)
        return _clamp(value, self.min_value, self.max_value)

    def report(self, rssi_dbm: float, noise: float) -> int:
        """The integer a device reports at ``rssi_dbm`` given a standard-normal ``noise`` draw.

        The integer is kept inside the scale: for RSRQ -19.5 ... -3 (digest 2) that is
        -19 ... -3, since -19.5 rounds half up to -19.
        """
        value = self.at_ref + self.slope * (rssi_dbm - self.ref_dbm) + self.sigma * noise
        lo, hi = math.ceil(self.min_value), math.floor(self.max_value)
        return int(_clamp(round_half_up(value), lo, hi))


@dataclass(frozen=True, slots=True, kw_only=True)
class DipModel:
    """Random signal dips (a door closes, a truck parks in front, a tunnel), as a Poisson process.

    Dip starts form a Poisson process of ``rate_per_hour``; each dip lowers the signal by a
    depth drawn uniformly from ``0.5 .. 1.5 x depth_db`` for a duration drawn from an
    exponential distribution of mean ``duration_s``, capped at ``max_duration_factor x
    duration_s`` (the cap bounds how far back a trace must look for a dip still running).

    Attributes
    ----------
    rate_per_hour:
        Mean number of dips per hour; 0 disables random dips.
    depth_db:
        Mean depth in dB.
    duration_s:
        Mean duration in seconds.
    max_duration_factor:
        Cap on the duration, as a multiple of the mean.
    """

    rate_per_hour: float
    depth_db: float
    duration_s: float
    max_duration_factor: float = 4.0

    def __post_init__(self) -> None:
        if self.rate_per_hour < 0 or self.depth_db < 0 or self.duration_s <= 0:
            raise ValueError("dip rate and depth must be >= 0 and duration > 0")
        if self.max_duration_factor < 1:
            raise ValueError("max_duration_factor must be >= 1")

    @property
    def max_duration_s(self) -> float:
        """The longest a random dip can last."""
        return self.duration_s * self.max_duration_factor


@dataclass(frozen=True, slots=True, kw_only=True)
class LossCurve:
    """Packet loss probability as a logistic function of the signal strength.

    ``loss = floor + (ceiling - floor) / (1 + exp((rssi_dbm - midpoint_dbm) / width_db))``:
    about ``floor`` at good signal, ``(floor + ceiling) / 2`` at ``midpoint_dbm`` (put it near
    the bearer's sensitivity) and rising steeply within a few ``width_db`` below it. The curve
    is strictly decreasing in ``rssi_dbm`` for ``width_db > 0`` and ``ceiling > floor``.

    Attributes
    ----------
    floor:
        Residual loss at good signal (congestion, collisions), 0 ... 1.
    midpoint_dbm:
        Signal strength of half-way loss.
    width_db:
        Steepness; smaller is steeper.
    ceiling:
        Loss far below the sensitivity, usually 1.
    """

    floor: float
    midpoint_dbm: float
    width_db: float
    ceiling: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor < self.ceiling <= 1.0:
            raise ValueError("loss curve needs 0 <= floor < ceiling <= 1")
        if self.width_db <= 0:
            raise ValueError("loss curve width_db must be > 0")

    def __call__(self, rssi_dbm: float) -> float:
        z = (rssi_dbm - self.midpoint_dbm) / self.width_db
        if z > 700.0:  # exp() would overflow; the logistic term is 0 to double precision
            return self.floor
        return self.floor + (self.ceiling - self.floor) / (1.0 + math.exp(z))


@dataclass(frozen=True, slots=True, kw_only=True)
class DelayModel:
    """One-way delay: a base, an extra that grows as the signal degrades, and random jitter.

    The mean one-way delay is ``base_s + poor_extra_s * d`` where ``d`` is the profile's
    degradation (0 at ``good_dbm``, 1 at ``worst_dbm``, see :meth:`LinkProfile.degradation`). Each
    datagram adds exponential jitter of mean ``jitter_s * (1 + d)`` (drawn by
    :class:`labkit.sim.link.LinkImpairment`, not here).

    Attributes
    ----------
    base_s:
        One-way delay at good signal, seconds.
    poor_extra_s:
        Extra one-way delay at ``worst_dbm`` (retransmissions in the radio layer, coverage
        enhancement repetitions), seconds.
    jitter_s:
        Mean of the per-datagram exponential jitter at good signal, seconds.
    """

    base_s: float
    poor_extra_s: float
    jitter_s: float

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.poor_extra_s < 0 or self.jitter_s < 0:
            raise ValueError("delays must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class DataRate:
    """Effective application data rate, falling linearly to a fraction of the peak at worst signal.

    Attributes
    ----------
    peak_bytes_per_s:
        Effective rate at good signal (after protocol overhead), bytes per second.
    poor_fraction:
        Fraction of the peak left at ``worst_dbm`` (and below), 0 < f <= 1.
    """

    peak_bytes_per_s: float
    poor_fraction: float

    def __post_init__(self) -> None:
        if self.peak_bytes_per_s <= 0 or not 0 < self.poor_fraction <= 1:
            raise ValueError("data rate needs peak > 0 and 0 < poor_fraction <= 1")


# ---------------------------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkProfile:
    """Everything that defines one kind of simulated link (a frozen value).

    The signal strength follows ``rssi_mean_dbm + shadowing - dips``, where shadowing is an
    Ornstein-Uhlenbeck process of stationary standard deviation ``rssi_sigma_db`` and
    correlation time ``correlation_time_s`` (see :class:`labkit.sim.link.SignalTrace`),
    clamped to ``rssi_min_dbm .. rssi_max_dbm``.

    Attributes
    ----------
    name:
        Profile name (``"nb-iot"``, ``"lte-m"``, ``"wifi"`` ...).
    bearer:
        The /4/0/0 Network Bearer code the device reports.
    rssi_mean_dbm, rssi_sigma_db:
        Long-term mean and standard deviation (shadowing) of /4/0/2, before dips and clamping.
    rssi_min_dbm, rssi_max_dbm:
        The bearer's reporting range; samples are clamped to it.
    correlation_time_s:
        Mean-reversion time of the shadowing: how long a good or bad spell typically lasts.
    good_dbm, poor_dbm, worst_dbm:
        Signal bands: above ``good_dbm`` is good, below ``poor_dbm`` poor, fair in between
        (for LTE-M the digest's "good > -90, fair -90 ... -105, poor -105 ... -120"; plots can
        draw them). Delay and data rate start to degrade below ``good_dbm`` and reach their
        worst at ``worst_dbm``.
    link_quality, dips, loss, delay, rate:
        The component models.
    description:
        One line for tables and widgets.
    """

    name: str
    bearer: NetworkBearer
    rssi_mean_dbm: float
    rssi_sigma_db: float
    rssi_min_dbm: float
    rssi_max_dbm: float
    correlation_time_s: float
    good_dbm: float
    poor_dbm: float
    worst_dbm: float
    link_quality: LinkQualityModel
    dips: DipModel
    loss: LossCurve
    delay: DelayModel
    rate: DataRate
    description: str = field(default="")

    def __post_init__(self) -> None:
        if not self.rssi_min_dbm < self.rssi_max_dbm:
            raise ValueError("rssi_min_dbm must be below rssi_max_dbm")
        if self.rssi_sigma_db < 0:
            raise ValueError("rssi_sigma_db must be >= 0")
        if self.correlation_time_s <= 0:
            raise ValueError("correlation_time_s must be > 0")
        if not self.worst_dbm < self.poor_dbm <= self.good_dbm:
            raise ValueError("signal bands need worst_dbm < poor_dbm <= good_dbm")

    # -- pure functions of the signal strength -------------------------------------------------

    def degradation(self, rssi_dbm: float) -> float:
        """0 at or above ``good_dbm``, 1 at or below ``worst_dbm``, linear in between."""
        return _clamp((self.good_dbm - rssi_dbm) / (self.good_dbm - self.worst_dbm), 0.0, 1.0)

    def band(self, rssi_dbm: float) -> Literal["good", "fair", "poor"]:
        """Coarse label of a signal level: ``good`` above ``good_dbm``, ``poor`` below
        ``poor_dbm``, ``fair`` in between (digest 2's LTE-M bands for the cellular profiles).
        """
        if rssi_dbm > self.good_dbm:
            return "good"
        if rssi_dbm < self.poor_dbm:
            return "poor"
        return "fair"

    def loss_at(self, rssi_dbm: float) -> float:
        """Packet loss probability of one datagram at ``rssi_dbm``."""
        return self.loss(rssi_dbm)

    def delay_at(self, rssi_dbm: float) -> float:
        """Mean one-way delay in seconds at ``rssi_dbm``, without per-datagram jitter."""
        return self.link_terms(rssi_dbm)[0]

    def jitter_at(self, rssi_dbm: float) -> float:
        """Mean of the per-datagram exponential jitter at ``rssi_dbm``, seconds."""
        return self.link_terms(rssi_dbm)[1]

    def data_rate_at(self, rssi_dbm: float) -> float:
        """Effective data rate in bytes per second at ``rssi_dbm`` (for pacing blocks)."""
        return self.link_terms(rssi_dbm)[2]

    def link_terms(self, rssi_dbm: float) -> tuple[float, float, float]:
        """``(delay_at, jitter_at, data_rate_at)`` at ``rssi_dbm`` from one
        :meth:`degradation` (what a verdict on every datagram needs)."""
        d = self.degradation(rssi_dbm)
        delay, rate = self.delay, self.rate
        return (
            delay.base_s + delay.poor_extra_s * d,
            delay.jitter_s * (1.0 + d),
            rate.peak_bytes_per_s * (1.0 - (1.0 - rate.poor_fraction) * d),
        )

    def link_quality_at(self, rssi_dbm: float) -> float:
        """Mean Link Quality (/4/0/3, in the bearer's unit) at ``rssi_dbm``, before noise."""
        return self.link_quality.mean(rssi_dbm)


# ---------------------------------------------------------------------------------------------
# The lab's profiles
# ---------------------------------------------------------------------------------------------


def _rsrq(at_minus_90_dbm: float) -> LinkQualityModel:
    """RSRQ as used by LTE-M and NB-IoT: digest 2 gives -19.5 ... -3 dB for LTE (NB-IoT's
    NRSRQ is reported on the same dB scale). The mean line (``at_minus_90_dbm`` at -90 dBm,
    +0.1 dB per dB of RSRP) and the 1.5 dB noise are lab assumptions: RSRQ depends on cell load
    as much as on RSRP."""
    return LinkQualityModel(
        unit="dB",
        ref_dbm=-90.0,
        at_ref=at_minus_90_dbm,
        slope=0.1,
        sigma=1.5,
        min_value=-19.5,
        max_value=-3.0,
    )


NB_IOT = LinkProfile(
    name="nb-iot",
    bearer=NetworkBearer.NB_IOT,  # digest 2: bearer code 7
    # Lab assumption: a static meter in a basement or cabinet, often in fair-to-poor coverage.
    rssi_mean_dbm=-108.0,
    rssi_sigma_db=8.0,
    # Digest 2: NRSRP on the RSRP scale -140 ... -44 dBm.
    rssi_min_dbm=-140.0,
    rssi_max_dbm=-44.0,
    # Lab assumption: nothing moves, so the shadowing changes slowly (10 min).
    correlation_time_s=600.0,
    # Digest 2: NB-IoT uses the LTE scale, so LTE-M's bands (good > -90, poor below -105); it
    # is "usable down to -130 ... -140 with CE", so its worst delay and rate are reached at
    # -130 rather than at LTE-M's -120.
    good_dbm=-90.0,
    poor_dbm=-105.0,
    worst_dbm=-130.0,
    link_quality=_rsrq(-10.0),
    # Lab assumption: rare, long dips (a parked car over a manhole).
    dips=DipModel(rate_per_hour=1.0, depth_db=15.0, duration_s=120.0),
    # Digest 2: usable down to about -130 ... -140 with coverage enhancement, so loss is small
    # above -125 and reaches 50 % at -136 dBm (floor and steepness: lab assumption).
    loss=LossCurve(floor=0.005, midpoint_dbm=-136.0, width_db=2.5),
    # Lab assumption: NB-IoT round trips of about 1 ... 10 s; 0.6 s one way at good signal,
    # up to 3.6 s at worst (CE repetitions). Such round trips exceed CoAP's ACK_TIMEOUT of 2 s
    # (digest 7.5), so retransmissions happen, as they do on real NB-IoT links.
    delay=DelayModel(base_s=0.6, poor_extra_s=3.0, jitter_s=0.3),
    # Lab assumption: about 2 ... 20 kbit/s effective; 16 kbit/s peak, 1.6 kbit/s at worst.
    rate=DataRate(peak_bytes_per_s=2_000.0, poor_fraction=0.1),
    description="NB-IoT meter: slow fading, seconds-scale latency, ~2-16 kbit/s",
)

LTE_M = LinkProfile(
    name="lte-m",
    # Digest 2: there is no LTE-M code; LTE-M devices report 6 (LTE-FDD).
    bearer=NetworkBearer.LTE_FDD,
    # Lab assumption: a tracker or vending machine, mostly fair coverage.
    rssi_mean_dbm=-96.0,
    rssi_sigma_db=7.0,
    # Digest 2: RSRP -140 ... -44 dBm.
    rssi_min_dbm=-140.0,
    rssi_max_dbm=-44.0,
    # Lab assumption: devices move now and then: two-minute spells.
    correlation_time_s=120.0,
    # Digest 2: good > -90, fair -90 ... -105, poor -105 ... -120.
    good_dbm=-90.0,
    poor_dbm=-105.0,
    worst_dbm=-120.0,
    link_quality=_rsrq(-9.0),
    # Lab assumption: frequent short dips (tunnels, underground car parks).
    dips=DipModel(rate_per_hour=4.0, depth_db=12.0, duration_s=30.0),
    # Digest 2: poor ends at -120; LTE-M coverage enhancement (CE mode A/B) stretches a little
    # further, so 50 % loss at -126 dBm (floor and steepness: lab assumption).
    loss=LossCurve(floor=0.002, midpoint_dbm=-126.0, width_db=3.0),
    # Lab assumption: round trips of about 100 ... 300 ms.
    delay=DelayModel(base_s=0.05, poor_extra_s=0.1, jitter_s=0.015),
    # Lab assumption: about 100 ... 300 kbit/s effective; 300 kbit/s peak.
    rate=DataRate(peak_bytes_per_s=37_500.0, poor_fraction=0.1),
    description="LTE-M tracker: minutes-scale fading, ~100-300 ms RTT, ~30-300 kbit/s",
)

WIFI = LinkProfile(
    name="wifi",
    bearer=NetworkBearer.WLAN,  # digest 2: bearer code 21
    # Lab assumption (the digest gives no WLAN numbers): an indoor sensor a room or two away
    # from the access point.
    rssi_mean_dbm=-62.0,
    rssi_sigma_db=5.0,
    # Lab assumption: the range Wi-Fi chips usually report as RSSI.
    rssi_min_dbm=-100.0,
    rssi_max_dbm=-20.0,
    # Lab assumption: people walking by: one-minute spells.
    correlation_time_s=60.0,
    # Lab assumption: rates fall from -65 dBm and are at their lowest (MCS 0) near -85 dBm.
    good_dbm=-65.0,
    poor_dbm=-75.0,
    worst_dbm=-85.0,
    # Lab assumption: the common "signal quality %" convention, 2 x (RSSI + 100), 0 ... 100.
    link_quality=LinkQualityModel(
        unit="%", ref_dbm=-100.0, at_ref=0.0, slope=2.0, sigma=3.0, min_value=0.0, max_value=100.0
    ),
    # Lab assumption: a microwave oven, a closing fire door.
    dips=DipModel(rate_per_hour=2.0, depth_db=20.0, duration_s=20.0),
    # Lab assumption: association is lost around -90 dBm.
    loss=LossCurve(floor=0.003, midpoint_dbm=-90.0, width_db=2.5),
    # Lab assumption: round trips of about 2 ... 20 ms.
    delay=DelayModel(base_s=0.002, poor_extra_s=0.006, jitter_s=0.002),
    # Lab assumption: 10 Mbit/s effective at good signal, 0.5 Mbit/s at worst.
    rate=DataRate(peak_bytes_per_s=1_250_000.0, poor_fraction=0.05),
    description="Wi-Fi sensor: strong signal, ms latency, Mbit/s",
)

#: The concrete profiles by name (read-only).
PROFILES: Mapping[str, LinkProfile] = MappingProxyType({p.name: p for p in (NB_IOT, LTE_M, WIFI)})

#: Members of the ``"mixed"`` fleet and their weights (lab assumption: a utility's fleet is
#: mostly NB-IoT meters, some LTE-M trackers, a few Wi-Fi gateways).
MIXED_WEIGHTS: tuple[tuple[str, float], ...] = (("nb-iot", 0.5), ("lte-m", 0.3), ("wifi", 0.2))

#: Every name :func:`profile_for` accepts (``--profile NAME`` on the command line).
PROFILE_NAMES: tuple[str, ...] = (*PROFILES, "mixed")


def get_profile(name: str) -> LinkProfile:
    """The concrete profile called ``name``.

    Raises
    ------
    ValueError
        For an unknown name, and for ``"mixed"``, which is a per-device draw: use
        :func:`profile_for`.
    """
    try:
        return PROFILES[name]
    except KeyError:
        if name == "mixed":
            raise ValueError(
                "'mixed' draws a profile per device; use profile_for('mixed', device_index, seed)"
            ) from None
        raise ValueError(f"unknown link profile {name!r}; one of {PROFILE_NAMES}") from None


def profile_for(name: str, device_index: int, seed: int) -> LinkProfile:
    """The link profile of device number ``device_index`` in a fleet.

    For a concrete profile name this is just that profile. For ``"mixed"`` each device draws
    one member of :data:`MIXED_WEIGHTS`; the draw depends only on ``(seed, device_index)``, so
    device 17 gets the same profile whether the fleet has 20 or 10,000 devices and in
    whatever order the devices are created.

    Parameters
    ----------
    name:
        One of :data:`PROFILE_NAMES`.
    device_index:
        The device's position in the fleet, from 0.
    seed:
        The run's seed.

    Returns
    -------
    LinkProfile
    """
    if name != "mixed":
        return get_profile(name)
    rng = random.Random(derive_seed(seed, "mixed-profile", device_index))
    names = [n for n, _ in MIXED_WEIGHTS]
    weights = [w for _, w in MIXED_WEIGHTS]
    return PROFILES[rng.choices(names, weights=weights)[0]]
