"""Device faults by name: the vocabulary shared by ``labkit device --fault NAME``,
``labkit simulate --faults NAME:FRACTION,...`` and the Python API.

Each fault makes a simulated device fail the way real devices do, one Update Result each
(spec digest 1.3); the device (:mod:`labkit.client`) decides *when* it strikes, from its seed:

==================  ======  ==================================================================
name                result  what happens on the device
==================  ======  ==================================================================
``no-flash``        2       the download slot is too small for any package (PUSH: 4.13 with
                            Size1 on the first block; PULL: Size2 or the data exceed it)
``no-ram``          3       no RAM buffer for a download block (PUSH: 5.00; PULL: at the first
                            block)
``link-drop``       4       the link goes down mid-download for longer than the download can
                            survive (PULL: every GET times out; PUSH: blocks are not answered,
                            the device reports 4 when the link is back)
``corrupt-in-flash`` 5      a bit flips while the image is written to flash; the bootloader's
                            hash check refuses it at the reboot, the old image stays
``boot-fail``       8       the new image passes the signature check but fails its self-test;
                            the bootloader rolls back to the old slot
``defer``           11      the user postpones the update (Result 11) and accepts after a
                            while, within Maximum Defer Period (/5/0/13), then 1
``power-loss``      --      the device loses power once at a seeded point of the download or
                            the install and comes back from its persisted state: a resumed
                            download, or the old or the new image booted (1 or 8), never neither
``no-http``         9       the device supports CoAP only (/5/0/8 = [0]); an http URI gives 9
==================  ======  ==================================================================

Package-side failures come from the package, not from a fault: not an image -> 6, bad
signature or hash -> 5, a URI pointing nowhere -> 7, an unknown scheme -> 9; Cancel -> 10.

This module is pure: it parses and assigns names; it never opens a socket or reads a clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

__all__ = [
    "FAULTS",
    "FAULT_RESULTS",
    "FaultSpecError",
    "assign_faults",
    "check_faults",
    "parse_fault_spec",
]

#: Every fault name, in the order of the table above.
FAULTS: tuple[str, ...] = (
    "no-flash",
    "no-ram",
    "link-drop",
    "corrupt-in-flash",
    "boot-fail",
    "defer",
    "power-loss",
    "no-http",
)

#: The Update Result each fault leads to (power-loss: None, it must end consistent: 1, 4 or 8).
FAULT_RESULTS: Mapping[str, int | None] = {
    "no-flash": 2,
    "no-ram": 3,
    "link-drop": 4,
    "corrupt-in-flash": 5,
    "boot-fail": 8,
    "defer": 11,
    "power-loss": None,
    "no-http": 9,
}


class FaultSpecError(ValueError):
    """A fault name or ``NAME:FRACTION`` list that cannot be used."""


def _unknown(name: str) -> FaultSpecError:
    return FaultSpecError(f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}")


def check_faults(names: Iterable[str]) -> frozenset[str]:
    """The set of fault names, each checked against :data:`FAULTS`.

    Raises
    ------
    FaultSpecError
        For a name that is not a fault.
    """
    out = set()
    for name in names:
        text = str(name).strip()
        if text not in FAULTS:
            raise _unknown(text)
        out.add(text)
    return frozenset(out)


def parse_fault_spec(spec: str) -> dict[str, float]:
    """``"link-drop:0.05,boot-fail:0.05"`` -> ``{"link-drop": 0.05, "boot-fail": 0.05}``.

    Fractions are in 0..1 and add up to at most 1 (a device gets at most one fault from a
    spec). An empty spec gives ``{}``.

    Raises
    ------
    FaultSpecError
        For an unknown name, a missing or non-numeric fraction, a fraction outside 0..1, a
        name given twice, or fractions that add up to more than 1.
    """
    out: dict[str, float] = {}
    if not spec.strip():
        return out
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise FaultSpecError(f"empty item in fault spec {spec!r}")
        name, sep, text = item.partition(":")
        name = name.strip()
        if not sep:
            raise FaultSpecError(f"{item!r}: expected NAME:FRACTION, e.g. link-drop:0.05")
        if name not in FAULTS:
            raise _unknown(name)
        try:
            fraction = float(text)
        except ValueError:
            raise FaultSpecError(f"{item!r}: fraction {text.strip()!r} is not a number") from None
        if not 0.0 <= fraction <= 1.0:
            raise FaultSpecError(f"{item!r}: fraction must be between 0 and 1")
        if name in out:
            raise FaultSpecError(f"fault {name!r} is given twice in {spec!r}")
        out[name] = fraction
    total = sum(out.values())
    if total > 1.0 + 1e-9:
        raise FaultSpecError(f"fault fractions add up to {total:g}, more than 1")
    return out


def assign_faults(spec: Mapping[str, float] | str, n_devices: int, seed: int = 0) -> list[set[str]]:
    """Which devices of a fleet of ``n_devices`` get which fault (one set per device).

    Each fault goes to ``round(fraction * n_devices)`` devices, no device gets two; the
    choice is a seeded shuffle, so the same spec, size and seed always give the same list.

    Raises
    ------
    FaultSpecError
        For a bad spec (see :func:`parse_fault_spec`) or a negative ``n_devices``.
    """
    fractions = parse_fault_spec(spec) if isinstance(spec, str) else dict(spec)
    check_faults(fractions)
    if n_devices < 0:
        raise FaultSpecError(f"n_devices must be >= 0, not {n_devices}")
    order = list(range(n_devices))
    random.Random(f"labkit-faults|{seed}|{n_devices}").shuffle(order)
    out: list[set[str]] = [set() for _ in range(n_devices)]
    pos = 0
    for name in FAULTS:  # a fixed order: the dict order of the spec does not matter
        count = min(round(fractions.get(name, 0.0) * n_devices), n_devices - pos)
        for index in order[pos : pos + count]:
            out[index].add(name)
        pos += count
    return out
