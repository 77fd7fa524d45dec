"""The exercises of notebook 10 (Choosing a PUSH policy), registered in :mod:`labkit.exercises`.

Importing this module registers them (the notebook imports it); checkers are pure and
compute their verdict from the question's own numbers, like every checker of the course.
"""

from __future__ import annotations

import math
import re
from typing import Any

from labkit.exercises import EXERCISES, register

__all__ = ["NOTEBOOK"]

NOTEBOOK = "10_choosing_a_push_policy"


def _text(answer: Any) -> str | None:
    return re.sub(r"[^a-z0-9.]+", " ", answer.lower()).strip() if isinstance(answer, str) else None


def _yes_no(answer: Any) -> bool | None:
    if isinstance(answer, bool):
        return answer
    words = set((_text(answer) or "").split())
    yes = bool(words & {"yes", "true", "y"})
    no = bool(words & {"no", "false", "n", "not"})
    return None if yes == no else yes


# -- what a resample draws ---------------------------------------------------------------------

if "sweep.resample_unit" not in EXERCISES:

    @register(
        "sweep.resample_unit",
        notebook=NOTEBOOK,
        question=(
            "The intervals of the sweep come from a bootstrap. What does one resample draw "
            "with replacement: single 'devices', or whole 'seeds' (campaigns)?"
        ),
        hint="Do the devices of one campaign fail independently of each other?",
        solution="seeds",
    )
    def _resample_unit(answer: Any) -> tuple[bool, str]:
        words = set((_text(answer) or "").split())
        seeds = bool(words & {"seed", "seeds", "campaign", "campaigns", "cell", "cells"})
        devices = bool(words & {"device", "devices"})
        if seeds == devices:
            return False, "answer one of the two words, 'devices' or 'seeds'"
        if seeds:
            return True, (
                "whole seeds: the devices of one campaign share its link traces, its "
                "scheduling and its fault draw, so they are not independent; resampling "
                "devices would pretend there is far more evidence than the few campaigns give"
            )
        return False, (
            "devices of one campaign share the same seeded link conditions and faults: they "
            "are correlated, and resampling them one by one gives intervals that are too narrow"
        )


# -- overlapping intervals ---------------------------------------------------------------------

_A = (0.03, 0.09)  # 95 % interval of point A's failure rate
_B = (0.06, 0.12)  # and of point B's

if "sweep.tell_apart" not in EXERCISES:

    @register(
        "sweep.tell_apart",
        notebook=NOTEBOOK,
        question=(
            "Point A's failure rate is 6 % with a 95 % interval of [3 %, 9 %]; point B's is "
            "9 % with [6 %, 12 %]. Does the sweep show that A fails less than B? Answer yes "
            "or no."
        ),
        hint="Look at where the two intervals lie relative to each other.",
        solution="no",
    )
    def _tell_apart(answer: Any) -> tuple[bool, str]:
        said = _yes_no(answer)
        if said is None:
            return False, "answer yes or no"
        overlap = _A[1] >= _B[0]
        if said == (not overlap):
            return True, (
                f"no: the intervals overlap (A reaches {100 * _A[1]:.0f} %, B starts at "
                f"{100 * _B[0]:.0f} %), so the difference may be the seeds' luck; run more "
                "seeds (or call it a tie and choose on the other criterion)"
            )
        return False, (
            "A's estimate is lower, but its interval reaches into B's: the data allow B to be "
            "the better one"
        )


# -- how intervals shrink -----------------------------------------------------------------------

if "sweep.more_seeds" not in EXERCISES:

    @register(
        "sweep.more_seeds",
        notebook=NOTEBOOK,
        question=(
            "You rerun the sweep with 4 times as many seeds. By about what factor does the "
            "width of an interval shrink? Answer a number."
        ),
        hint="The spread of a mean falls with the square root of the number of samples.",
        solution=2,
    )
    def _more_seeds(answer: Any) -> tuple[bool, str]:
        if isinstance(answer, bool):
            return False, "answer a number, like 3"
        value: float | None = None
        if isinstance(answer, int | float):
            value = float(answer)
        elif isinstance(answer, str):
            try:
                value = float(answer.strip().rstrip("x"))
            except ValueError:
                value = None
        if value is None or not math.isfinite(value) or value <= 0:
            return False, "answer a number, like 3"
        factor = math.sqrt(4)
        if math.isclose(value, factor, rel_tol=0.15) or math.isclose(value, 1 / factor,
                                                                    rel_tol=0.15):
            return True, (
                "about 2: the interval's width goes with 1/sqrt(number of seeds), so 4x the "
                "seeds (and 4x the CPU time) halves it -- precision is expensive"
            )
        if math.isclose(value, 4, rel_tol=0.15):
            return False, "4x the samples does not give 4x the precision: think square root"
        return False, "the width goes with 1/sqrt(n): what is sqrt(4)?"
