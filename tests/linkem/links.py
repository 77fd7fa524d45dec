"""Links with known behaviour for tests: steady signal, fixed loss, fixed delay, scripted dips."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from labkit.sim.link import Dip, LinkImpairment, SignalTrace
from labkit.sim.profiles import (
    PROFILES,
    DataRate,
    DelayModel,
    DipModel,
    LinkProfile,
    LossCurve,
    derive_seed,
)


def steady_profile(
    *,
    rssi_dbm: float = -85.0,
    loss: float = 0.0,
    delay_s: float = 0.05,
    base: str = "lte-m",
) -> LinkProfile:
    """A profile without fading or random dips: the signal sits at ``rssi_dbm`` (minus scripted
    dips), loss is ``loss`` above -125 dBm and ~1 far below it, one-way delay is ``delay_s``."""
    return dataclasses.replace(
        PROFILES[base],
        name=f"steady-{base}",
        rssi_mean_dbm=rssi_dbm,
        rssi_sigma_db=0.0,
        dips=DipModel(rate_per_hour=0.0, depth_db=0.0, duration_s=1.0),
        loss=LossCurve(floor=loss, midpoint_dbm=-130.0, width_db=0.5),
        delay=DelayModel(base_s=delay_s, poor_extra_s=0.0, jitter_s=0.0),
        rate=DataRate(peak_bytes_per_s=1e9, poor_fraction=1.0),
    )


def steady_link(
    index: int = 0,
    seed: int = 1,
    *,
    dips: Sequence[Dip] = (),
    **profile: float | str,
) -> LinkImpairment:
    s = derive_seed(seed, "test-link", index)
    trace = SignalTrace(steady_profile(**profile), s, dips=dips)  # type: ignore[arg-type]
    return LinkImpairment(trace, s)
