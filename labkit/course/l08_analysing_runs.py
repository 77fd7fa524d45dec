"""Lesson 08, analysing runs (``notebooks/08_analysing_runs``): the lesson works on the
sample runs in ``data/samples`` with :mod:`labkit.record` and :mod:`labkit.plots` directly;
here are its exercises ``analysis.*``, whose answers come from those samples.
"""

from __future__ import annotations

import functools
import math
import re
from typing import TYPE_CHECKING, Any

from labkit.course.common import fast_mode
from labkit.course.exercises import as_count, check, hint, question, register

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "check",
    "fast_mode",
    "hint",
    "question",
]


_POLICIES = ("always", "threshold")


@functools.lru_cache(maxsize=1)
def _sample_outcomes() -> pd.DataFrame:
    from labkit.record import campaign_outcomes
    from labkit.samples import sample_path

    return campaign_outcomes([sample_path(f"campaign-{p}") for p in _POLICIES])


@functools.lru_cache(maxsize=1)
def _sample_capture_addresses() -> tuple[str, ...]:
    from labkit.record import import_capture
    from labkit.samples import CAPTURE_NAME, sample_path

    return tuple(import_capture(sample_path(CAPTURE_NAME)).devices.get("sim-0001", ()))


def _as_share(answer: Any) -> float | None:
    """A share in [0, 1] from 0.82, 82, "82 %", "0.82"; None when it is not one."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int | float):
        value, percent = float(answer), False
    elif isinstance(answer, str):
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%|percent)?\s*", answer)
        if found is None:
            return None
        value, percent = float(found[1]), found[2] is not None
    else:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    if percent or value > 1:
        value /= 100
    return value if value <= 1 else None


@register(
    "analysis.connection_lost",
    notebook="08_analysing_runs",
    question=(
        "How many devices of the threshold campaign sample ended with CONNECTION_LOST "
        "(Result 4)? Answer a number, then look at those devices' faults."
    ),
    hint="Look at the row 4 CONNECTION_LOST of result_counts(outcomes, by='policy').",
    solution=3,
)
def _analysis_connection_lost(answer: Any) -> tuple[bool, str]:
    count = as_count(answer)
    if count is None:
        return False, "the answer is a whole number of devices"
    outcomes = _sample_outcomes()
    lost = outcomes[outcomes["result"] == "CONNECTION_LOST"]
    devices = {p: sorted(map(str, lost.loc[lost["policy"] == p, "device"])) for p in _POLICIES}
    cut = lost[lost["faults"].astype("string").str.contains("link-drop").fillna(False)]
    n_cut = int((cut["policy"] == "threshold").sum())
    mine = devices["threshold"]
    if count == len(mine):
        same = (
            "the same devices"
            if devices["always"] == mine
            else (f"{len(devices['always'])} devices")
        )
        return True, (
            f"{len(mine)} ({', '.join(mine)}); {n_cut} of them have the link-drop fault, whose "
            f"link is cut halfway through the download. Policy always lost {same}: waiting "
            "for a good signal cannot avoid a link that is cut during the transfer."
        )
    if count == len(devices["always"]):
        return False, "that is the count of the always campaign; look at the threshold rows"
    return False, "count the CONNECTION_LOST row of the threshold policy"


@register(
    "analysis.threshold_success",
    notebook="08_analysing_runs",
    question=(
        "What share of the 50 devices of the threshold campaign sample were updated "
        "successfully? Answer a fraction (0.5) or a percentage ('50 %')."
    ),
    hint="outcomes[outcomes['policy'] == 'threshold']['success'].mean(), or the stats table.",
    solution=0.88,
)
def _analysis_threshold_success(answer: Any) -> tuple[bool, str]:
    share = _as_share(answer)
    if share is None:
        return False, "the answer is a share: a fraction from 0 to 1 or a percentage"
    outcomes = _sample_outcomes()
    mine = outcomes[outcomes["policy"] == "threshold"]
    ok, n = int(mine["success"].sum()), len(mine)
    with_result = int(mine["result"].notna().sum())
    truth = ok / n
    if abs(share - truth) <= 0.005:
        return True, (
            f"{ok} of {n} devices run firmware 2.0.0 afterwards: {truth:.0%}. Of the other "
            f"{n - ok}, {with_result - ok} failed with the result in the table and "
            f"{n - with_result} ended without any."
        )
    if with_result and abs(share - ok / with_result) <= 0.005:
        return False, (
            f"{ok} of {with_result} is the share among devices that reported a result; the "
            f"question asks about all {n} devices"
        )
    other = outcomes[outcomes["policy"] == "always"]["success"].mean()
    if abs(share - other) <= 0.005:
        return False, "that is the share of the always campaign, not of threshold"
    return False, f"count the threshold campaign's successful devices and divide by {n}"


@register(
    "analysis.capture_ports",
    notebook="08_analysing_runs",
    question=(
        "From how many different UDP ports did sim-0001 talk to the server in the capture "
        "push-update.pcap? Answer a number."
    ),
    hint="The capture's summary lists its devices; capture.devices gives their addresses.",
    solution=2,
)
def _analysis_capture_ports(answer: Any) -> tuple[bool, str]:
    count = as_count(answer)
    if count is None:
        return False, "the answer is a whole number of ports"
    addresses = _sample_capture_addresses()
    if count == len(addresses):
        return True, (
            f"{', then '.join(addresses)}: the device registered again after rebooting into "
            "its new firmware, from a new ephemeral port. The server (and an import) follows "
            "the endpoint name of the Register, not the address."
        )
    if count < len(addresses):
        return False, "the device registered more than once: look at every registration"
    return False, "count the addresses of sim-0001 in capture.devices"
