"""Lesson 04, link quality versus PUSH decisions (``notebooks/04_link_quality_vs_push``):
signal traces per link profile (:func:`link_traces`, :func:`trace_summary`), the policies
asked by hand (:func:`policy_examples`, :func:`policy_walk`), one small campaign per policy
(:func:`policy_run`, :func:`compare_runs`, :class:`ThresholdExplorer`, in
:mod:`labkit.course.l04_policy_runs`), and the lesson's exercises ``link.*``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from labkit.course.common import fast_mode
from labkit.course.exercises import check, hint, plain_words, question, register, words_of
from labkit.course.l04_policy_runs import (
    OUTAGE_FROM_S,
    OUTAGE_UNTIL_S,
    WEAK_UNTIL_S,
    PolicyRun,
    ThresholdExplorer,
    compare_runs,
    policy_run,
    weak_links,
)
from labkit.course.staging import course_lab, scaled_lab

if TYPE_CHECKING:
    import pandas as pd

    from labkit.policy import Policy


__all__ = [
    "EXAMPLE_POLICIES",
    "EXAMPLE_SNAPSHOTS",
    "PolicyRun",
    "ThresholdExplorer",
    "check",
    "compare_runs",
    "course_lab",
    "fast_mode",
    "hint",
    "link_traces",
    "policy_examples",
    "policy_run",
    "policy_walk",
    "question",
    "scaled_lab",
    "trace_summary",
    "weak_links",
]


_TRACE_COLUMNS = ["trace", "profile", "device", "t_min", "rssi_dbm", "link_quality", "loss", "band"]


def link_traces(
    profiles: Iterable[str] = ("nb-iot", "lte-m", "wifi", "mixed"),
    *,
    devices: int = 2,
    minutes: float = 60.0,
    step_s: float = 30.0,
    seed: int = 0,
) -> pd.DataFrame:
    """What /4 reports over time for ``devices`` devices of each link profile (tidy).

    Each trace is the link of one device of a fleet seeded ``seed``
    (:func:`labkit.sim.device_link`; every trace another device); for ``"mixed"`` each
    device draws its own profile.

    Returns
    -------
    DataFrame
        ``trace`` (``"lte-m #1"``, for mixed ``"mixed #1 (nb-iot)"``), ``profile`` (the name
        asked for), ``device`` (1, 2 ...), ``t_min`` (simulated minutes), ``rssi_dbm``
        (/4/0/2), ``link_quality`` (/4/0/3, the bearer's unit), ``loss`` (probability a
        datagram is lost), ``band`` (good/fair/poor); one row per sample, RangeIndex.
    """
    import pandas as pd

    from labkit.sim import device_link

    rows = []
    for k, name in enumerate(profiles):
        for i in range(devices):
            # Device numbers differ between profiles: "mixed" shows other devices' links.
            trace = device_link(name, k * devices + i, seed).trace
            label = f"{name} #{i + 1}"
            if name == "mixed":
                label += f" ({trace.profile.name})"
            for s in trace.samples(0.0, minutes * 60.0, step_s):
                rows.append(
                    {
                        "trace": label,
                        "profile": name,
                        "device": i + 1,
                        "t_min": s.t / 60.0,
                        "rssi_dbm": s.rssi_dbm,
                        "link_quality": s.link_quality,
                        "loss": s.loss,
                        "band": trace.profile.band(s.rssi_dbm),
                    }
                )
    return pd.DataFrame(rows, columns=_TRACE_COLUMNS)


def trace_summary(traces: pd.DataFrame, threshold_dbm: float = -105.0) -> pd.DataFrame:
    """Per trace of :func:`link_traces`: the signal's range and how much of the time a
    threshold policy at ``threshold_dbm`` would have said *wait*.

    Returns
    -------
    DataFrame
        ``trace``, ``rssi_mean``, ``rssi_min``, ``rssi_max`` (dBm), ``below_pct`` (percent
        of the samples below ``threshold_dbm``), ``max_loss`` (worst datagram loss).
    """
    grouped = traces.groupby("trace", sort=False)
    out = grouped["rssi_dbm"].agg(rssi_mean="mean", rssi_min="min", rssi_max="max")
    out["rssi_mean"] = out["rssi_mean"].round(1)
    below = traces["rssi_dbm"] < threshold_dbm
    out["below_pct"] = (100.0 * below.groupby(traces["trace"], sort=False).mean()).round(1)
    out["max_loss"] = grouped["loss"].max().round(3)
    return out.reset_index()


#: Link samples that tell the policies apart: (label, RSSI dBm, Link Quality dB, battery %).
EXAMPLE_SNAPSHOTS: tuple[tuple[str, int | None, int | None, int | None], ...] = (
    ("good", -85, -8, 80),
    ("fair", -98, -10, 80),
    ("poor", -112, -14, 80),
    ("no /4 answer", None, None, None),
    ("good, battery 12 %", -85, -8, 12),
)


#: The registered policies with their default parameters, as the lesson compares them.
EXAMPLE_POLICIES: tuple[str, ...] = (
    "always",
    "threshold",
    "hysteresis",
    "best-window",
    "battery-floor",
)


def policy_examples(
    policies: Iterable[Any] = EXAMPLE_POLICIES,
    snapshots: Iterable[tuple[str, int | None, int | None, int | None]] = EXAMPLE_SNAPSHOTS,
) -> pd.DataFrame:
    """Every policy asked once about every snapshot (a fresh context: nothing waited yet).

    ``policies`` are registry names (:data:`labkit.policy.POLICIES`, default parameters) or
    policy objects; ``snapshots`` are ``(label, rssi_dbm, link_quality, battery)``.

    Returns
    -------
    DataFrame
        ``link`` (the snapshot's label), ``rssi_dbm``, ``battery``, ``policy``, ``action``
        (push/wait/pull/give_up), ``retry_after_s`` and ``reason``; policies vary fastest.
    """
    import pandas as pd

    from labkit.policy import LinkSnapshot, evaluate, make_policy, policy_name

    built = [make_policy(p) if isinstance(p, str) else p for p in policies]
    rows = []
    for label, rssi, lq, battery in snapshots:
        snapshot = LinkSnapshot(rssi_dbm=rssi, link_quality=lq, battery=battery, t=0.0)
        for policy in built:
            decision = evaluate(policy, snapshot)
            rows.append(
                {
                    "link": label,
                    "rssi_dbm": rssi,
                    "battery": battery,
                    "policy": policy_name(policy),
                    "action": decision.action,
                    "retry_after_s": decision.retry_after_s,
                    "reason": decision.reason,
                }
            )
    frame = pd.DataFrame(rows)
    frame["rssi_dbm"] = frame["rssi_dbm"].astype("Int64")
    frame["battery"] = frame["battery"].astype("Int64")
    return frame


def policy_walk(
    policy: str | Policy, rssi_dbm: Iterable[int | None], *, step_s: float = 60.0, **params: Any
) -> pd.DataFrame:
    """Ask ``policy`` once per sample of a signal, as a campaign does: it remembers its
    previous decision and how long the device has waited so far.

    ``policy`` is a registry name (built with ``params``) or a policy object; the samples
    are ``step_s`` seconds apart.

    Returns
    -------
    DataFrame
        ``t_s``, ``rssi_dbm``, ``waited_s`` (before the decision), ``action``, ``reason``.
    """
    import pandas as pd

    from labkit.policy import LinkSnapshot, PolicyContext, evaluate, make_policy

    built = make_policy(policy, **params) if isinstance(policy, str) else policy
    previous = None
    waited = 0.0
    rows = []
    for k, rssi in enumerate(rssi_dbm):
        snapshot = LinkSnapshot(rssi_dbm=rssi, link_quality=None, battery=None, t=k * step_s)
        decision = evaluate(built, snapshot, PolicyContext(waited_s=waited, previous=previous))
        rows.append(
            {
                "t_s": k * step_s,
                "rssi_dbm": rssi,
                "waited_s": waited,
                "action": decision.action,
                "reason": decision.reason,
            }
        )
        if decision.action == "wait":
            waited += step_s
        previous = decision
    frame = pd.DataFrame(rows)
    frame["rssi_dbm"] = frame["rssi_dbm"].astype("Int64")
    return frame


# -- exercises ------------------------------------------------------------------------------


def _link_levels() -> dict[str, int]:
    """The RSSI a weak device of lesson 04 reports in each phase, read from its trace."""
    trace = weak_links(2, [1])[1].trace
    return {
        "weak": trace.sample(1.0).rssi_dbm,
        "outage": trace.sample((OUTAGE_FROM_S + OUTAGE_UNTIL_S) / 2).rssi_dbm,
        "good": trace.sample(WEAK_UNTIL_S + 1.0).rssi_dbm,
    }


def _link_threshold() -> float:
    from labkit.policy import make_policy, policy_thresholds

    return policy_thresholds(make_policy("threshold"))["min_rssi_dbm"]


def _as_dbm(answer: Any) -> float | None:
    """A signal level from -90, -90.0 or "-90 dBm"; None when the answer names none."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int | float):
        return float(answer) if math.isfinite(answer) else None
    if isinstance(answer, str):
        found = re.findall(r"[-+−]?\d+(?:\.\d+)?", answer)
        if len(found) == 1:
            return float(found[0].replace("−", "-"))
    return None


@register(
    "link.fewer_result_4",
    notebook="04_link_quality_vs_push",
    question=(
        "Which policy had fewer Result 4 (connection lost) failures in this run: 'always' or "
        "'threshold'?"
    ),
    hint="Look at the result_4 column of the comparison table.",
    solution="threshold",
)
def _link_fewer_result_4(answer: Any) -> tuple[bool, str]:
    words = words_of(answer)
    if not words:
        return False, "answer with one policy name, 'always' or 'threshold'"
    always, threshold = "always" in words, "threshold" in words
    if always and threshold:
        return False, "one of the two had fewer: answer one name"
    if threshold:
        return True, (
            "threshold: the weak devices reported an RSSI below its -105 dBm, so it waited "
            "(nothing was sent) and pushed once the signal was back. 'always' pushed into "
            "the weak link, the outage cut the transfers and the server recorded Result 4. "
            "The price: the threshold campaign took longer to complete."
        )
    if always:
        return False, (
            "always pushed at once, also to the weak devices, and their downloads died in the "
            "outage: look again at result_4"
        )
    if words & {"hysteresis", "best", "window", "battery", "floor"}:
        return False, "this run compared two policies, 'always' and 'threshold'"
    return False, "the run compared the policies 'always' and 'threshold'"


@register(
    "link.push_rssi",
    notebook="04_link_quality_vs_push",
    question=(
        "At what RSSI (/4/0/2, in dBm) did the threshold policy finally push to the weak devices?"
    ),
    hint="The green triangle of the weak device's link plot, or its last_rssi_dbm.",
    solution=-90,
)
def _link_push_rssi(answer: Any) -> tuple[bool, str]:
    level = _as_dbm(answer)
    levels = _link_levels()
    threshold = _link_threshold()
    if level is None:
        return False, "answer a signal level in dBm, like -100"
    if level > 0:
        return False, "a signal strength in dBm is negative here (-44 is very strong)"
    if level == levels["good"]:
        return True, (
            f"{levels['good']} dBm: once the van had gone the signal was back at "
            f"{levels['good']} dBm, at or above the threshold {threshold:g} dBm, and the "
            "next look at /4 gave push."
        )
    if level == levels["weak"]:
        return False, (
            f"at {levels['weak']} dBm (below {threshold:g}) the policy said wait; it pushed later"
        )
    if level == levels["outage"]:
        return False, (
            f"{levels['outage']} dBm is the bottom of the scale during the outage: there the "
            "server could not even read /4, and the policy waited"
        )
    if level == threshold:
        return False, (
            f"{threshold:g} dBm is the policy's threshold; the question asks for the sample "
            "it pushed on"
        )
    return False, "read the RSSI of the push decision in the weak device's plot or table"


_WAIT_CHOICES = {
    "a": "the device does not pause anything: it had not started a download",
    "b": "",
    "c": "a PULL is another decision ('pull'); on 'wait' the server sends nothing at all",
    "d": "giving up is another decision ('give_up'); after 'wait' the server asks again",
}


@register(
    "link.wait_meaning",
    notebook="04_link_quality_vs_push",
    question=(
        "What does a 'wait' decision mean for the device? Answer a, b, c or d (the choices "
        "are in the notebook)."
    ),
    hint="Look at a wait row of the decisions table: what happened next, and when?",
    solution="b",
)
def _link_wait_meaning(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or plain_words(answer) not in _WAIT_CHOICES:
        return False, "answer with one letter, a, b, c or d"
    letter = plain_words(answer)
    if letter == "b":
        return True, (
            "b: 'wait' concerns only the server. Nothing is sent to the device, which goes on "
            "as before; after retry_after_s (60 s here) the server reads /4 again and asks "
            "the policy once more. In PUSH the server picks the moment."
        )
    return False, _WAIT_CHOICES[letter]
