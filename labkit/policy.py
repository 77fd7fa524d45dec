"""PUSH-decision policies: when should the server push a firmware image, given the link?

In the PUSH method "the LwM2M Server determines the moment to initiate the firmware download,
ideally based on the connectivity conditions", read from Radio Signal Strength (/4/0/2) and
Link Quality (/4/0/3) of the Connectivity Monitoring Object (seed, module 5; digest 2). This
module owns that decision and nothing else: a policy looks at one :class:`LinkSnapshot` and a
:class:`PolicyContext` and returns a :class:`Decision` -- ``push`` now, ``wait`` and look
again, ``pull`` instead (let the device download at its own pace), or ``give_up`` -- with a
human-readable reason that carries the numbers. It never reads /4 itself, never sends anything,
never sleeps and never reads a clock: the orchestrator (:mod:`labkit.fota`) samples the link,
asks the policy, records the decision as an event (:func:`decision_event_fields`) and acts.

Writing your own policy
-----------------------
A policy is any callable ``policy(snapshot, context) -> Decision``::

    def night_owl(snapshot: LinkSnapshot, context: PolicyContext) -> Decision:
        if snapshot.rssi_dbm is None:
            return Decision("wait", "no link sample", retry_after_s=60)
        return Decision("push", f"RSSI {snapshot.rssi_dbm} dBm; pushing")

It must be pure (same inputs, same decision), must handle missing /4 values (``None``), and
keeps no state of its own: what it needs to remember arrives in the context (the previous
decision, how long the device has waited, how many attempts failed). Pass it to
:func:`evaluate`, which checks what it returns. The built-in policies are frozen dataclasses
that also expose ``.name`` and ``.thresholds`` (for plots); a plain function works without.

Threshold defaults come from the digest's LTE-M bands (section 2): RSRP good above -90 dBm,
fair -90 ... -105, poor -105 ... -120. They are in the units of the bearer's /4/0/2 and /4/0/3,
so a policy tuned for cellular RSRP is not the right one for a Wi-Fi RSSI.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, get_args

if TYPE_CHECKING:
    from labkit.sim.link import LinkSample

__all__ = [
    "ACTIONS",
    "POLICIES",
    "Action",
    "Always",
    "BatteryFloor",
    "BestWindow",
    "Decision",
    "Hysteresis",
    "LinkSnapshot",
    "Policy",
    "PolicyContext",
    "Threshold",
    "always",
    "battery_floor",
    "best_window",
    "decision_event_fields",
    "evaluate",
    "hysteresis",
    "make_policy",
    "policy_name",
    "policy_thresholds",
    "threshold",
]

Action: TypeAlias = Literal["push", "wait", "pull", "give_up"]

#: The four things a policy can decide.
ACTIONS: tuple[Action, ...] = get_args(Action)

#: Default wait before asking again (lab assumption: a minute is short next to the slow fading
#: of the simulated links and long next to CoAP's ACK_TIMEOUT of 2 s, digest 7.5).
DEFAULT_RETRY_S = 60.0

_NO_SAMPLE = "no link sample"


def _num(x: float) -> str:
    """A number as people write it: -105, -105.5, 3600."""
    return f"{x:g}"


def _gerund(action: Action) -> str:
    return {
        "push": "pushing",
        "wait": "waiting",
        "pull": "pulling instead",
        "give_up": "giving up",
    }[action]


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    """What the server knows about a device's link when it decides.

    Attributes
    ----------
    rssi_dbm:
        Radio Signal Strength, /4/0/2, dBm; ``None`` when not (yet) read.
    link_quality:
        Link Quality, /4/0/3, in the bearer's unit; ``None`` when unknown (it is optional).
    battery:
        Battery Level, /3/0/9, percent; ``None`` when unknown (mains-powered devices).
    t:
        When the snapshot was taken (the lab's clock, seconds).
    bearer:
        Network Bearer, /4/0/0 code; ``None`` when unknown.
    """

    rssi_dbm: int | None
    link_quality: int | None
    battery: int | None
    t: float
    bearer: int | None = None

    @classmethod
    def from_sample(cls, sample: LinkSample, *, battery: int | None = None) -> LinkSnapshot:
        """A snapshot of a simulated :class:`~labkit.sim.link.LinkSample`."""
        return cls(
            rssi_dbm=sample.rssi_dbm,
            link_quality=sample.link_quality,
            battery=battery,
            t=sample.t,
            bearer=int(sample.bearer),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's answer.

    Attributes
    ----------
    action:
        ``"push"`` now, ``"wait"`` and ask again, ``"pull"`` instead, or ``"give_up"``.
    reason:
        Why, in words and numbers: ``"RSSI -112 dBm below threshold -105 dBm; waiting"``.
    retry_after_s:
        For ``wait``: when to ask again, seconds (``None``: the caller's default).
    """

    action: Action
    reason: str
    retry_after_s: float | None = None

    def __post_init__(self) -> None:
        _check_decision(self)

    def _repr_html_(self) -> str:
        colour = {"push": "#2a7", "wait": "#c80", "pull": "#27c", "give_up": "#c33"}[self.action]
        retry = "" if self.retry_after_s is None else f" (retry in {_num(self.retry_after_s)} s)"
        return (
            f'<span style="font-weight:bold;color:{colour}">{escape(self.action)}</span>'
            f" &mdash; {escape(self.reason)}{escape(retry)}"
        )


def _check_decision(decision: Decision) -> None:
    if decision.action not in ACTIONS:
        raise ValueError(f"decision action must be one of {ACTIONS}, got {decision.action!r}")
    if not isinstance(decision.reason, str) or not decision.reason.strip():
        raise ValueError(f"decision reason must be a non-empty string, got {decision.reason!r}")
    retry = decision.retry_after_s
    if retry is not None and (
        isinstance(retry, bool)
        or not isinstance(retry, int | float)
        or not math.isfinite(retry)
        or retry < 0
    ):
        raise ValueError(f"decision retry_after_s must be None or a number >= 0, got {retry!r}")


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What a policy may need besides the link: its memory, kept by the caller.

    Attributes
    ----------
    waited_s:
        How long this device has been waiting for a push so far, seconds.
    attempts:
        Update attempts already made for this device (failed or interrupted).
    previous:
        The policy's previous decision for this device, ``None`` the first time.
    image_size:
        Size of the firmware image to push, bytes.
    """

    waited_s: float = 0.0
    attempts: int = 0
    previous: Decision | None = None
    image_size: int = 0

    def __post_init__(self) -> None:
        if not self.waited_s >= 0:  # also rejects NaN
            raise ValueError(f"waited_s must be >= 0, got {self.waited_s!r}")
        if self.attempts < 0 or self.image_size < 0:
            raise ValueError("attempts and image_size must be >= 0")


class Policy(Protocol):
    """The signature of a policy: ``(snapshot, context) -> Decision``."""

    def __call__(self, snapshot: LinkSnapshot, context: PolicyContext, /) -> Decision: ...


# ---------------------------------------------------------------------------------------------
# Built-in policies
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Always:
    """Push at once, whatever the link (the baseline every other policy is compared with)."""

    name: str = field(default="always", init=False)

    @property
    def thresholds(self) -> dict[str, float]:
        return {}

    def __call__(self, snapshot: LinkSnapshot, context: PolicyContext) -> Decision:
        return Decision("push", "always push: the link is not consulted")


@dataclass(frozen=True, slots=True)
class Threshold:
    """Push when the signal (and/or Link Quality) is at or above a threshold, else ``otherwise``.

    A threshold left ``None`` is not checked; with both ``None`` the policy always pushes.
    A value the threshold needs but the device did not report gives ``otherwise`` with the
    reason "no link sample".
    """

    min_rssi_dbm: float | None = -105.0  # digest 2: LTE-M poor below -105 dBm
    min_link_quality: float | None = None
    otherwise: Literal["wait", "pull"] = "wait"
    retry_after_s: float = DEFAULT_RETRY_S
    name: str = field(default="threshold", init=False)

    def __post_init__(self) -> None:
        if self.otherwise not in ("wait", "pull"):
            raise ValueError(f"otherwise must be 'wait' or 'pull', got {self.otherwise!r}")
        _check_retry(self.retry_after_s)

    @property
    def thresholds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.min_rssi_dbm is not None:
            out["min_rssi_dbm"] = float(self.min_rssi_dbm)
        if self.min_link_quality is not None:
            out["min_link_quality"] = float(self.min_link_quality)
        return out

    def _otherwise(self, reason: str) -> Decision:
        retry = self.retry_after_s if self.otherwise == "wait" else None
        return Decision(self.otherwise, f"{reason}; {_gerund(self.otherwise)}", retry)

    def __call__(self, snapshot: LinkSnapshot, context: PolicyContext) -> Decision:
        ok: list[str] = []
        if self.min_rssi_dbm is not None:
            if snapshot.rssi_dbm is None:
                return self._otherwise(f"{_NO_SAMPLE}: RSSI (/4/0/2) unknown")
            if snapshot.rssi_dbm < self.min_rssi_dbm:
                return self._otherwise(
                    f"RSSI {snapshot.rssi_dbm} dBm below threshold {_num(self.min_rssi_dbm)} dBm"
                )
            ok.append(f"RSSI {snapshot.rssi_dbm} dBm >= {_num(self.min_rssi_dbm)} dBm")
        if self.min_link_quality is not None:
            if snapshot.link_quality is None:
                return self._otherwise(f"{_NO_SAMPLE}: Link Quality (/4/0/3) unknown")
            if snapshot.link_quality < self.min_link_quality:
                return self._otherwise(
                    f"Link Quality {snapshot.link_quality} below threshold "
                    f"{_num(self.min_link_quality)}"
                )
            ok.append(f"Link Quality {snapshot.link_quality} >= {_num(self.min_link_quality)}")
        if not ok:
            return Decision("push", "no threshold set; pushing")
        return Decision("push", f"{' and '.join(ok)}; pushing")


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """Start pushing at or above ``push_above_dbm``; once pushing, keep on until the signal falls
    below ``stop_below_dbm``. Uses ``context.previous`` to know whether it was pushing.

    Between the two thresholds the decision depends on the past: that gap keeps a signal
    hovering around one threshold from starting and stopping the transfer at every sample.
    """

    push_above_dbm: float = -90.0  # digest 2: LTE-M "good" above -90 dBm
    stop_below_dbm: float = -105.0  # digest 2: LTE-M "poor" below -105 dBm
    retry_after_s: float = DEFAULT_RETRY_S
    name: str = field(default="hysteresis", init=False)

    def __post_init__(self) -> None:
        if not self.stop_below_dbm <= self.push_above_dbm:
            raise ValueError(
                f"stop_below_dbm ({_num(self.stop_below_dbm)}) must not exceed "
                f"push_above_dbm ({_num(self.push_above_dbm)})"
            )
        _check_retry(self.retry_after_s)

    @property
    def thresholds(self) -> dict[str, float]:
        return {
            "push_above_dbm": float(self.push_above_dbm),
            "stop_below_dbm": float(self.stop_below_dbm),
        }

    def __call__(self, snapshot: LinkSnapshot, context: PolicyContext) -> Decision:
        rssi = snapshot.rssi_dbm
        if rssi is None:
            return Decision(
                "wait", f"{_NO_SAMPLE}: RSSI (/4/0/2) unknown; waiting", self.retry_after_s
            )
        pushing = context.previous is not None and context.previous.action == "push"
        hi, lo = _num(self.push_above_dbm), _num(self.stop_below_dbm)
        if pushing:
            if rssi < self.stop_below_dbm:
                return Decision(
                    "wait",
                    f"RSSI {rssi} dBm fell below stop threshold {lo} dBm; pausing the push",
                    self.retry_after_s,
                )
            return Decision(
                "push", f"RSSI {rssi} dBm not below stop threshold {lo} dBm; keep pushing"
            )
        if rssi >= self.push_above_dbm:
            return Decision(
                "push", f"RSSI {rssi} dBm at or above start threshold {hi} dBm; pushing"
            )
        return Decision(
            "wait",
            f"RSSI {rssi} dBm below start threshold {hi} dBm; waiting",
            self.retry_after_s,
        )


@dataclass(frozen=True, slots=True)
class BestWindow:
    """Wait for a good window (signal at or above ``min_rssi_dbm``) for at most ``max_wait_s``,
    then do ``fallback``.

    Pushes as soon as the signal is good enough. Otherwise waits, asking again after
    ``retry_after_s`` (or sooner, when the deadline is closer); once ``context.waited_s``
    reaches ``max_wait_s`` it falls back: ``push`` anyway, ``pull`` instead, or ``give_up``.
    """

    min_rssi_dbm: float = -90.0  # digest 2: LTE-M "good" above -90 dBm
    max_wait_s: float = 3600.0  # lab assumption: an hour, several fading spells of every profile
    fallback: Literal["push", "pull", "give_up"] = "push"
    retry_after_s: float = DEFAULT_RETRY_S
    name: str = field(default="best-window", init=False)

    def __post_init__(self) -> None:
        if self.fallback not in ("push", "pull", "give_up"):
            raise ValueError(f"fallback must be 'push', 'pull' or 'give_up', got {self.fallback!r}")
        if not (math.isfinite(self.max_wait_s) and self.max_wait_s >= 0):
            raise ValueError(f"max_wait_s must be a finite number >= 0, got {self.max_wait_s!r}")
        _check_retry(self.retry_after_s)

    @property
    def thresholds(self) -> dict[str, float]:
        return {"min_rssi_dbm": float(self.min_rssi_dbm), "max_wait_s": float(self.max_wait_s)}

    def __call__(self, snapshot: LinkSnapshot, context: PolicyContext) -> Decision:
        rssi = snapshot.rssi_dbm
        floor = _num(self.min_rssi_dbm)
        if rssi is not None and rssi >= self.min_rssi_dbm:
            return Decision(
                "push", f"RSSI {rssi} dBm at or above {floor} dBm: good window; pushing"
            )
        why = (
            f"{_NO_SAMPLE}: RSSI (/4/0/2) unknown"
            if rssi is None
            else f"RSSI {rssi} dBm below {floor} dBm"
        )
        if context.waited_s >= self.max_wait_s:
            return Decision(
                self.fallback,
                f"{why}; waited {_num(context.waited_s)} s of max {_num(self.max_wait_s)} s; "
                f"falling back: {_gerund(self.fallback)}",
            )
        left = self.max_wait_s - context.waited_s
        return Decision(
            "wait",
            f"{why}; waiting for a better window "
            f"({_num(left)} s left of {_num(self.max_wait_s)} s)",
            min(self.retry_after_s, left),
        )


@dataclass(frozen=True, slots=True)
class BatteryFloor:
    """Refuse to update below a battery level, else ask ``inner``.

    A flash write and a reboot on an almost empty battery is how devices get bricked. Below
    ``min_battery`` percent the decision is ``below`` (``give_up`` by default, or ``wait`` for
    the battery to recharge). A device that reports no battery level (mains-powered, /3/0/9 is
    optional) is left to ``inner``, and the reason says so.
    """

    inner: Policy
    min_battery: float = 20.0  # lab assumption: a common "low battery" level in device firmware
    below: Literal["give_up", "wait"] = "give_up"
    retry_after_s: float = 3600.0  # lab assumption: recharging takes hours, not minutes
    name: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if not callable(self.inner):
            raise TypeError(f"inner must be a policy (a callable), got {self.inner!r}")
        if self.below not in ("give_up", "wait"):
            raise ValueError(f"below must be 'give_up' or 'wait', got {self.below!r}")
        _check_retry(self.retry_after_s)
        object.__setattr__(self, "name", f"battery-floor({policy_name(self.inner)})")

    @property
    def thresholds(self) -> dict[str, float]:
        return {**policy_thresholds(self.inner), "min_battery": float(self.min_battery)}

    def __call__(self, snapshot: LinkSnapshot, context: PolicyContext) -> Decision:
        battery = snapshot.battery
        if battery is not None and battery < self.min_battery:
            return Decision(
                self.below,
                f"battery {battery} % below floor {_num(self.min_battery)} %; "
                f"{_gerund(self.below)}",
                self.retry_after_s if self.below == "wait" else None,
            )
        inner = evaluate(self.inner, snapshot, context)
        note = "battery level unknown" if battery is None else f"battery {battery} % ok"
        return Decision(inner.action, f"{inner.reason} ({note})", inner.retry_after_s)


def _check_retry(retry_after_s: float) -> None:
    if not (math.isfinite(retry_after_s) and retry_after_s >= 0):
        raise ValueError(f"retry_after_s must be a finite number >= 0, got {retry_after_s!r}")


# ---------------------------------------------------------------------------------------------
# Factories, registry, evaluation
# ---------------------------------------------------------------------------------------------


def always() -> Always:
    """A policy that pushes at once."""
    return Always()


def threshold(
    *,
    min_rssi_dbm: float | None = -105.0,
    min_link_quality: float | None = None,
    otherwise: Literal["wait", "pull"] = "wait",
    retry_after_s: float = DEFAULT_RETRY_S,
) -> Threshold:
    """Push when RSSI >= ``min_rssi_dbm`` (and Link Quality >= ``min_link_quality``), else
    ``otherwise`` (``"wait"`` or ``"pull"``). See :class:`Threshold`."""
    return Threshold(min_rssi_dbm, min_link_quality, otherwise, retry_after_s)


def hysteresis(
    *,
    push_above_dbm: float = -90.0,
    stop_below_dbm: float = -105.0,
    retry_after_s: float = DEFAULT_RETRY_S,
) -> Hysteresis:
    """Start at RSSI >= ``push_above_dbm``, stop below ``stop_below_dbm``. See
    :class:`Hysteresis`."""
    return Hysteresis(push_above_dbm, stop_below_dbm, retry_after_s)


def best_window(
    *,
    min_rssi_dbm: float = -90.0,
    max_wait_s: float = 3600.0,
    fallback: Literal["push", "pull", "give_up"] = "push",
    retry_after_s: float = DEFAULT_RETRY_S,
) -> BestWindow:
    """Wait up to ``max_wait_s`` for RSSI >= ``min_rssi_dbm``, then ``fallback``. See
    :class:`BestWindow`."""
    return BestWindow(min_rssi_dbm, max_wait_s, fallback, retry_after_s)


def battery_floor(
    inner: Policy | str = "threshold",
    *,
    min_battery: float = 20.0,
    below: Literal["give_up", "wait"] = "give_up",
    retry_after_s: float = 3600.0,
) -> BatteryFloor:
    """Give up (or wait) below ``min_battery`` percent, else delegate to ``inner`` (a policy or
    a registry name). See :class:`BatteryFloor`."""
    policy = make_policy(inner) if isinstance(inner, str) else inner
    return BatteryFloor(policy, min_battery, below, retry_after_s)


#: Policy factories by name; each builds a policy with default parameters when called bare.
POLICIES: Mapping[str, Callable[..., Policy]] = MappingProxyType(
    {
        "always": always,
        "threshold": threshold,
        "hysteresis": hysteresis,
        "best-window": best_window,
        "battery-floor": battery_floor,
    }
)


def make_policy(name: str, **params: Any) -> Policy:
    """Build the registered policy ``name`` with ``params`` (``labkit simulate --policy NAME``).

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For a parameter the policy does not take (the message lists those it does).
    """
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; one of {tuple(POLICIES)}") from None
    accepted = [
        p.name
        for p in inspect.signature(factory).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"policy {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(accepted) or 'none'}"
        )
    return factory(**params)


def policy_name(policy: object) -> str:
    """A policy's ``.name``, or the function's name for a user function."""
    name = getattr(policy, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(policy, "__name__", type(policy).__name__)


def policy_thresholds(policy: object) -> dict[str, float]:
    """A policy's ``.thresholds`` (names ending ``_dbm`` are signal levels), ``{}`` if none."""
    found = getattr(policy, "thresholds", None)
    return dict(found) if isinstance(found, Mapping) else {}


def evaluate(
    policy: Policy | Callable[[LinkSnapshot, PolicyContext], object],
    snapshot: LinkSnapshot,
    context: PolicyContext | None = None,
) -> Decision:
    """Ask ``policy`` and check its answer.

    Parameters
    ----------
    policy:
        A built-in policy or any callable ``(snapshot, context) -> Decision``.
    snapshot:
        The link as last read.
    context:
        The policy's memory; ``PolicyContext()`` (nothing waited, no previous decision) if
        omitted.

    Returns
    -------
    Decision
        The policy's decision, validated.

    Raises
    ------
    TypeError
        If the policy returned something that is not a :class:`Decision` (a string, a tuple,
        ``None`` ...).
    ValueError
        If the returned decision is malformed (unknown action, empty reason, negative retry).
    """
    result = policy(snapshot, context if context is not None else PolicyContext())
    if not isinstance(result, Decision):
        raise TypeError(
            f"policy {policy_name(policy)!r} returned {result!r} ({type(result).__name__}); "
            "a policy must return labkit.policy.Decision(action, reason), e.g. "
            "Decision('wait', 'RSSI -112 dBm below -105 dBm')"
        )
    try:
        _check_decision(result)  # a Decision can be forged with object.__setattr__
    except ValueError as exc:
        raise ValueError(f"policy {policy_name(policy)!r} returned a bad decision: {exc}") from None
    return result


def decision_event_fields(decision: Decision, snapshot: LinkSnapshot) -> dict[str, Any]:
    """Keyword arguments for the decision's event row.

    Use as ``Event(ts=..., source="policy", kind="decision", device=ep,
    **decision_event_fields(decision, snapshot))``.

    Returns
    -------
    dict
        ``decision`` (the action), ``reason``, ``rssi_dbm``, ``link_quality``, ``battery``.
    """
    return {
        "decision": decision.action,
        "reason": decision.reason,
        "rssi_dbm": snapshot.rssi_dbm,
        "link_quality": snapshot.link_quality,
        "battery": snapshot.battery,
    }
