"""The cells of a sweep: a grid of campaign parameters times seeds, each cell one campaign.

This module owns what a sweep *is*, before anything runs: parsing ``--grid name=v1,v2``
axes, the product of the axes (or an explicit list of parameter sets), the seeds, and the
identity of every cell. It is pure: no files, no clocks, no randomness.

Words used throughout :mod:`labkit.sweep`:

- a **point** is one combination of parameters (``policy=threshold, min_rssi_dbm=-110,
  profile=nb-iot``); its id is a short hash of its *effective* parameters;
- a **cell** is a point with one seed: one campaign, one run; its id is the hash of the
  point's parameters and the seed. Cells are what the sweep schedules, writes (one Parquet
  partition ``cell=<id>`` each) and skips on a rerun; points are what the analysis compares
  (rates with intervals across the point's seeds).

Effective parameters: a policy parameter the cell's policy does not take is dropped (``always``
has no ``min_rssi_dbm``), so ``--grid policy=always,threshold --grid min_rssi_dbm=-115,-105``
gives three points, not four: ``always`` once, ``threshold`` at each threshold.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CAMPAIGN_PARAMS",
    "SIMULATE_PARAMS",
    "Cell",
    "Grid",
    "GridError",
    "parse_axis",
    "parse_value",
    "policy_params_of",
]

#: Parameters of :func:`labkit.fota.simulate.simulate` a sweep may vary or fix.
SIMULATE_PARAMS: tuple[str, ...] = (
    "devices",
    "profile",
    "policy",
    "method",
    "image_size",
    "faults",
    "block_size",
    "time_scale",
)

#: Campaign options (:class:`labkit.fota.campaign.Campaign`) a sweep may vary or fix.
CAMPAIGN_PARAMS: tuple[str, ...] = (
    "canary",
    "waves",
    "max_concurrent",
    "pacing_s",
    "failure_threshold",
    "retry_on",
    "max_attempts",
    "backoff_s",
    "max_wait_s",
    "timeout_s",
    "attempt_timeout_s",
)

#: Defaults of a cell's parameters when neither the grid nor the fixed parameters give them.
DEFAULTS: Mapping[str, Any] = {
    "devices": 100,
    "profile": "mixed",
    "policy": "threshold",
    "method": "push",
    "image_size": 8192,
    "faults": "",
    "block_size": 1024,
}

#: Axes whose values contain commas (fault specs): their values are separated by ``;``.
_SEMICOLON_AXES = frozenset({"faults", "waves", "retry_on"})


class GridError(ValueError):
    """A grid axis or parameter that cannot be used (unknown name, bad value)."""


def parse_value(text: str) -> Any:
    """``"-110"`` -> -110, ``"0.5"`` -> 0.5, ``"none"`` -> None, ``"true"`` -> True, else str."""
    t = text.strip()
    low = t.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        value = float(t)
    except ValueError:
        return t
    return value if math.isfinite(value) else t


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """``"min_rssi_dbm=-115,-110"`` -> ``("min_rssi_dbm", [-115, -110])``.

    Values are separated by commas; for ``faults``, ``waves`` and ``retry_on`` (whose values
    hold commas) by ``;``: ``faults=link-drop:0.05,boot-fail:0.05;none``. The values of
    ``faults`` stay text (``none`` is no faults, ``""``).
    """
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise GridError(f"expected NAME=V1,V2,..., got {text!r}")
    parts = values.split(";" if name in _SEMICOLON_AXES else ",")
    if name == "faults":
        out: list[Any] = ["" if p.strip().lower() in ("", "none") else p.strip() for p in parts]
    elif name in ("waves", "retry_on"):
        out = [[parse_value(v) for v in p.split(",") if v.strip()] for p in parts]
    else:
        out = [parse_value(p) for p in parts if p.strip()]
    if not out:
        raise GridError(f"axis {name!r} has no values")
    if len({_canon(v) for v in out}) != len(out):
        raise GridError(f"axis {name!r} repeats a value: {values!r}")
    return name, out


def policy_params_of(policy: str) -> tuple[str, ...]:
    """The parameters policy ``policy`` takes (:data:`labkit.policy.POLICIES`)."""
    from labkit.policy import POLICIES

    try:
        factory = POLICIES[policy]
    except KeyError:
        raise GridError(f"unknown policy {policy!r}; one of {tuple(POLICIES)}") from None
    return tuple(
        p.name
        for p in inspect.signature(factory).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def _all_policy_params() -> set[str]:
    from labkit.policy import POLICIES

    return {name for policy in POLICIES for name in policy_params_of(policy)}


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _digest(obj: Any, n: int = 12) -> str:
    return hashlib.sha1(_canon(obj).encode("utf-8")).hexdigest()[:n]


@dataclass(frozen=True)
class Cell:
    """One campaign of a sweep: the point's effective parameters and the seed.

    ``params`` holds every parameter (defaults filled in); ``policy_params`` those of them
    that go to the policy; ``campaign`` those that go to the campaign.
    """

    params: Mapping[str, Any]
    seed: int
    point: str = field(init=False)
    id: str = field(init=False)

    def __post_init__(self) -> None:
        canon = dict(sorted(self.params.items()))
        object.__setattr__(self, "params", canon)
        object.__setattr__(self, "point", "p" + _digest(canon, 10))
        object.__setattr__(self, "id", "c" + _digest({"params": canon, "seed": self.seed}))

    @property
    def policy_params(self) -> dict[str, Any]:
        taken = policy_params_of(str(self.params["policy"]))
        return {k: v for k, v in self.params.items() if k in taken}

    @property
    def campaign(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k in CAMPAIGN_PARAMS}

    def simulate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`labkit.fota.simulate.simulate` for this cell (without
        ``out``, ``run_id`` and the clock)."""
        kwargs: dict[str, Any] = {k: self.params[k] for k in SIMULATE_PARAMS if k in self.params}
        kwargs["faults"] = kwargs.get("faults") or ""
        kwargs["seed"] = self.seed
        kwargs["policy_params"] = self.policy_params
        kwargs.update(self.campaign)
        return kwargs

    def label(self, names: Sequence[str] | None = None) -> str:
        """``policy=threshold min_rssi_dbm=-110 seed=2`` (only ``names`` when given)."""
        keys = list(names) if names is not None else list(self.params)
        parts = [f"{k}={self.params[k]}" for k in keys if k in self.params]
        return " ".join([*parts, f"seed={self.seed}"])

    def as_dict(self) -> dict[str, Any]:
        return {"cell": self.id, "point": self.point, "seed": self.seed,
                "params": dict(self.params)}


@dataclass
class Grid:
    """Axes (each a name and its values) or an explicit list of parameter sets, fixed
    parameters shared by every cell, and the seeds.

    >>> g = Grid({"policy": ["always", "threshold"], "min_rssi_dbm": [-115, -105]},
    ...          fixed={"profile": "nb-iot", "devices": 20}, seeds=[0, 1])
    >>> len(g.points()), len(g.cells())
    (3, 6)
    """

    axes: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    seeds: Sequence[int] = (0,)
    explicit: Sequence[Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.axes = {k.replace("-", "_"): list(v) for k, v in self.axes.items()}
        self.fixed = {k.replace("-", "_"): v for k, v in self.fixed.items()}
        self.seeds = [int(s) for s in self.seeds]
        if not self.seeds:
            raise GridError("a sweep needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise GridError(f"seeds repeat: {self.seeds}")
        if self.explicit is not None and self.axes:
            raise GridError("give axes or an explicit list of parameter sets, not both")
        clash = sorted(set(self.axes) & set(self.fixed))
        if clash:
            raise GridError(f"{clash} given both as an axis and as a fixed parameter")
        known = {*SIMULATE_PARAMS, *CAMPAIGN_PARAMS, *_all_policy_params()}
        names = set(self.axes) | set(self.fixed)
        for item in self.explicit or ():
            names |= set(item)
        unknown = sorted(names - known - {"seed"})
        if unknown:
            raise GridError(f"unknown parameter(s) {unknown}; a sweep can vary {sorted(known)}")
        if "seed" in names:
            raise GridError("seeds are given with seeds=, not as a parameter")
        for k, values in self.axes.items():
            if not values:
                raise GridError(f"axis {k!r} has no values")

    @property
    def varied(self) -> list[str]:
        """The names that vary across points (axes, or keys that differ in the list)."""
        if self.explicit is None:
            return list(self.axes)
        keys: list[str] = []
        for item in self.explicit:
            keys += [k for k in item if k not in keys]
        return [k for k in keys if len({_canon(i.get(k)) for i in self.explicit}) > 1]

    def _raw(self) -> Iterable[dict[str, Any]]:
        if self.explicit is not None:
            for item in self.explicit:
                yield {**self.fixed, **item}
            return
        names = list(self.axes)
        for combo in itertools.product(*(self.axes[n] for n in names)):
            yield {**self.fixed, **dict(zip(names, combo, strict=True))}

    def points(self) -> list[dict[str, Any]]:
        """The distinct effective parameter sets, in grid order (defaults filled in)."""
        seen: dict[str, dict[str, Any]] = {}
        for raw in self._raw():
            params = {**DEFAULTS, **raw}
            taken = set(policy_params_of(str(params["policy"])))
            policy_keys = _all_policy_params() - set(SIMULATE_PARAMS) - set(CAMPAIGN_PARAMS)
            params = {k: v for k, v in params.items() if k not in policy_keys or k in taken}
            key = _canon(dict(sorted(params.items())))
            seen.setdefault(key, params)
        return list(seen.values())

    def cells(self) -> list[Cell]:
        """Every cell: each point with each seed (points vary slowest)."""
        return [Cell(p, s) for p in self.points() for s in self.seeds]

    def as_dict(self) -> dict[str, Any]:
        return {
            "axes": {k: list(v) for k, v in self.axes.items()},
            "fixed": dict(self.fixed),
            "seeds": list(self.seeds),
            "explicit": None if self.explicit is None else [dict(i) for i in self.explicit],
            "varied": self.varied,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grid:
        return cls(axes=data.get("axes") or {}, fixed=data.get("fixed") or {},
                   seeds=data.get("seeds") or (0,), explicit=data.get("explicit"))
