"""Pure, seeded simulation models for the lab's devices.

``labkit.sim`` owns the models that make a simulated device behave like a device, as pure
functions of explicit inputs: simulated time is an argument and randomness comes from explicit
seeds. It never opens a socket, never runs an event loop and never reads a clock; the CoAP
adapters in :mod:`labkit.client` consult it.

The link model (this package's public surface so far):

- :mod:`labkit.sim.profiles` -- :class:`LinkProfile` values for ``"nb-iot"``, ``"lte-m"`` and
  ``"wifi"`` links, the ``"mixed"`` fleet (:func:`profile_for`) and :func:`derive_seed`;
- :mod:`labkit.sim.link` -- :class:`SignalTrace` (what /4 reports over time, with loss and
  delay), :class:`LinkImpairment` (per-datagram drop/delay verdicts), scripted :class:`Dip` s
  and :func:`outage` s; :func:`device_link` builds device *i*'s link of a seeded run.
"""

from __future__ import annotations

from labkit.sim.link import (
    Dip,
    LinkImpairment,
    LinkSample,
    SignalTrace,
    Verdict,
    device_link,
    outage,
)
from labkit.sim.profiles import (
    MIXED_WEIGHTS,
    PROFILE_NAMES,
    PROFILES,
    LinkProfile,
    derive_seed,
    get_profile,
    profile_for,
)

__all__ = [
    "MIXED_WEIGHTS",
    "PROFILES",
    "PROFILE_NAMES",
    "Dip",
    "LinkImpairment",
    "LinkProfile",
    "LinkSample",
    "SignalTrace",
    "Verdict",
    "derive_seed",
    "device_link",
    "get_profile",
    "outage",
    "profile_for",
]
