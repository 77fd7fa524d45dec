"""Lesson 07, a fleet campaign (``notebooks/07_fleet_campaign``): a fleet kept on a lab in
scaled time (:func:`fleet`, :func:`scaled_lab`, from :mod:`labkit.course.staging`), a package
every device refuses (:func:`bad_package`), a campaign paused and resumed
(:func:`pause_and_resume`), and the lesson's exercises ``fleet.*``.
"""

from __future__ import annotations

import math
import random
import re
from typing import TYPE_CHECKING, Any

from labkit.course.common import fast_mode, package
from labkit.course.exercises import (
    as_count,
    as_enum,
    as_sequence,
    check,
    hint,
    plain_words,
    question,
    register,
)
from labkit.course.staging import (
    VIRTUAL_BUDGET,
    LabFleet,
    VirtualRun,
    course_lab,
    fleet,
    scaled_lab,
    wait_campaign,
)
from labkit.lwm2m.objects import UpdateResult

if TYPE_CHECKING:
    from concurrent.futures import Future

    import pandas as pd

    from labkit.fota.campaign import Campaign


__all__ = [
    "LabFleet",
    "bad_package",
    "check",
    "course_lab",
    "fast_mode",
    "fleet",
    "hint",
    "package",
    "pause_and_resume",
    "question",
    "scaled_lab",
    "wait_campaign",
]


def bad_package(size: int = 4096, *, seed: int = 0) -> bytes:
    """``size`` bytes that are no firmware image (neither MCUboot nor a lab package): every
    device takes the download and refuses it at its end, Update Result 6."""
    return b"NOT-FIRMWARE\n" + random.Random(f"labkit-bad|{seed}").randbytes(max(0, size - 13))


def _status_counts(campaign: Campaign) -> dict[str, int]:
    statuses = [run.status for run in list(campaign.runs.values())]
    return {s: statuses.count(s) for s in ("pending", "waiting", "updating", "success", "failed")}


def pause_and_resume(
    campaign: Campaign,
    future: Future[Any] | VirtualRun,
    *,
    after: int = 2,
    hold_s: float = 1.5,
    timeout: float = 120.0,
) -> pd.DataFrame:
    """Pause a running campaign once ``after`` devices have finished, hold it ``hold_s``
    wall seconds (on a virtual lab ``hold_s`` x 100 simulated seconds), resume it and wait
    for its end; a snapshot of the devices' statuses at each of those moments.

    Returns
    -------
    DataFrame
        ``moment``, ``campaign`` (its status), ``started`` (devices whose update began),
        ``pending``, ``waiting``, ``updating``, ``success``, ``failed``.
    """
    import time

    import pandas as pd

    rows = []

    def snap(moment: str) -> None:
        started = sum(r.attempts > 0 for r in list(campaign.runs.values()))
        rows.append(
            {
                "moment": moment,
                "campaign": campaign.status,
                "started": started,
                **_status_counts(campaign),
            }
        )

    if isinstance(future, VirtualRun):  # virtual time: every wait is simulated time
        lab = future.lab
        budget = timeout * VIRTUAL_BUDGET
        lab.run_until(lambda: campaign.progress[0] >= after or future.done(), timeout=budget)
        lab.call(campaign.pause)
        lab.run_for(0.05 * VIRTUAL_BUDGET)  # what was already starting has started
        snap("paused")
        lab.run_for(hold_s * VIRTUAL_BUDGET)
        snap(f"still paused, {hold_s * VIRTUAL_BUDGET:g} simulated s later")
        lab.call(campaign.resume)
        lab.run_for(0.05 * VIRTUAL_BUDGET)
        snap("resumed")
        wait_campaign(campaign, future, timeout=timeout)
        snap("finished")
        return pd.DataFrame(rows)

    deadline = time.monotonic() + timeout
    while campaign.progress[0] < after and not future.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    campaign.pause()
    time.sleep(0.05)
    snap("paused")
    time.sleep(hold_s)
    snap(f"still paused, {hold_s:g} s later")
    campaign.resume()
    time.sleep(0.05)
    snap("resumed")
    wait_campaign(campaign, future, timeout=max(1.0, deadline - time.monotonic()))
    snap("finished")
    return pd.DataFrame(rows)


# -- exercises ------------------------------------------------------------------------------


_FLEET_FAIL_WORDS = ("fail", "refus", "broken", "bad", "error", "reject", "unsupported")


@register(
    "fleet.stopped_why",
    notebook="07_fleet_campaign",
    question="Why did wave 1 of the broken release never start? Answer in a few words.",
    hint="Read the campaign's stop_reason and the stopped_campaign column of its waves.",
    solution="the canary wave failed",
)
def _fleet_stopped_why(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or not answer.strip():
        return False, "answer in a few words"
    words = plain_words(answer)
    canary = "canar" in words
    failed = any(w in words for w in _FLEET_FAIL_WORDS) or re.search(r"\b6\b", words)
    if canary and not re.search(r"\bsucce", words):
        return True, (
            "the canary failed: both canary devices refused the package (Result 6, not a "
            "firmware image), more than canary_max_failures = 0, so the campaign stopped "
            "after the canary wave and every later device was skipped, still on its old "
            "firmware."
        )
    if "threshold" in words or "rate" in words:
        return False, (
            "the failure threshold would stop a campaign later, on the share of failures "
            "among the finished devices; here a rule about the first wave acted first"
        )
    if failed or "not firmware" in words or "image" in words:
        return False, (
            "that is why the first devices failed; which rule made the campaign stop before wave 1?"
        )
    if any(w in words for w in ("pause", "cancel", "user")):
        return False, "nobody paused or cancelled this campaign: it stopped itself"
    return False, "look at which wave has stopped_campaign = True, and at stop_reason"


_FLEET_DEVICES = 20


_FLEET_CANARY = 2


_FLEET_WAVES = (25.0, 50.0, 100.0)


@register(
    "fleet.wave_size",
    notebook="07_fleet_campaign",
    question=(
        "A fleet of 20 devices, a canary of 2, then waves=(25, 50, 100): how many devices "
        "does wave 1, the first wave after the canary, update?"
    ),
    hint="The percentages are cumulative shares of the whole fleet; plan_waves shows it.",
    solution=3,
)
def _fleet_wave_size(answer: Any) -> tuple[bool, str]:
    from labkit.fota.campaign import plan_waves

    sizes = [
        len(w)
        for w in plan_waves([f"d{i}" for i in range(_FLEET_DEVICES)], _FLEET_CANARY, _FLEET_WAVES)
    ]
    count = as_count(answer)
    if count is None:
        return False, "the answer is a whole number of devices"
    if count == sizes[1]:
        return True, (
            f"{sizes[1]}: 25 % of 20 is 5 devices updated by the end of wave 1, and 2 of them "
            f"were the canary. The waves are {sizes}: each percentage says how much of the "
            "fleet is done when the wave ends."
        )
    if count == math.ceil(_FLEET_DEVICES * _FLEET_WAVES[0] / 100):
        return False, (
            f"{count} devices are done when wave 1 ends, but the canary's "
            f"{_FLEET_CANARY} are among them"
        )
    if count == _FLEET_CANARY:
        return False, "that is the canary (wave 0); the question asks for the wave after it"
    if count in sizes:
        return False, f"{count} devices is another wave of the plan {sizes}"
    return False, "percentages are cumulative shares of the whole fleet, canary included"


_FLEET_TRANSIENT = UpdateResult.CONNECTION_LOST


def _as_results(answer: Any) -> list[Any] | None:
    if isinstance(answer, UpdateResult | int | str) and not isinstance(answer, bool):
        single = as_enum(answer, UpdateResult)
        if single is not None:
            return [single]
    items = as_sequence(answer) if not isinstance(answer, int | float) else None
    if not items:
        return None
    return [as_enum(item, UpdateResult) for item in items]


@register(
    "fleet.retry_codes",
    notebook="07_fleet_campaign",
    question=(
        "Which Update Result codes would you let a campaign retry on its own (retry_on)? "
        "Answer a list of codes."
    ),
    hint="Which failure can go away by itself when the same device simply tries again later?",
    solution=[4],
)
def _fleet_retry_codes(answer: Any) -> tuple[bool, str]:
    results = _as_results(answer)
    if results is None:
        return False, "answer a list of Update Result codes, like [2, 3]"
    if None in results:
        return False, "Update Results are the codes 0 to 11 (or names like CONNECTION_LOST)"
    chosen = set(results)
    why_not = {
        UpdateResult.INITIAL: "0 is no result at all",
        UpdateResult.SUCCESS: "1 is success: nothing to retry",
        UpdateResult.NOT_ENOUGH_FLASH: "2 (no flash) stays until someone frees space",
        UpdateResult.OUT_OF_RAM: "3 (no RAM) comes back on the next try with the same image",
        UpdateResult.INTEGRITY_CHECK_FAILURE: "5 means the image is corrupt or badly signed",
        UpdateResult.UNSUPPORTED_PACKAGE_TYPE: "6: the same package is refused again",
        UpdateResult.INVALID_URI: "7: the same URI is invalid again",
        UpdateResult.UPDATE_FAILED: "8: the image failed on the device; retrying rolls out a "
        "bad image again",
        UpdateResult.UNSUPPORTED_PROTOCOL: "9: the device will not learn the protocol",
        UpdateResult.CANCELLED: "10: someone cancelled it on purpose",
        UpdateResult.DEFERRED: "11: the user deferred; the device resumes by itself",
    }
    wrong = sorted(chosen - {_FLEET_TRANSIENT})
    if chosen == {_FLEET_TRANSIENT}:
        return True, (
            "[4]: connection lost is the one failure that can go away by itself (the link "
            "comes back); a retry after a back-off often succeeds. Every other code says "
            "something about the image, the device or a decision, and the same attempt would "
            "fail the same way: those need a person, not a retry."
        )
    if wrong:
        return False, "; ".join(why_not[r] for r in wrong)
    return False, "one failure may go away by itself when the device simply tries again"
