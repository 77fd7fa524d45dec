"""Lesson 10, choosing a PUSH policy (``notebooks/10_choosing_a_push_policy``): the
notebook's sweep (:func:`policy_grid`, small in fast mode), where it is written
(:func:`sweep_dir`), the sentence it ends with (:func:`answer`: the best point for a goal with
its interval, and which points the data cannot tell apart from it), and the lesson's exercises
``sweep.*``. Checkers are pure and compute their verdict from the question's own numbers.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from labkit.course.common import fast_mode
from labkit.course.exercises import EXERCISES, check, hint, question, register
from labkit.sweep.analysis import best_point, parse_goal
from labkit.sweep.grid import Grid
from labkit.sweep.progress import format_s

__all__ = [
    "NOTEBOOK",
    "answer",
    "check",
    "fast_mode",
    "hint",
    "policy_grid",
    "question",
    "sweep_dir",
]

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


# -- the notebook's sweep and its answer ---------------------------------------------------



def policy_grid(fast: bool) -> Grid:
    """``always`` against ``threshold`` at several RSSI floors, on an NB-IoT fleet whose
    server gives up on a request after 8 s (``timeout_s``): on a weak link a PUSH then often
    ends in Result 4. 3 seeds of 12 devices in fast mode, 5 seeds of 100 otherwise."""
    thresholds = [-112, -104] if fast else [-115, -110, -105, -100]
    return Grid(
        {"policy": ["always", "threshold"], "min_rssi_dbm": thresholds},
        fixed={"profile": "nb-iot", "devices": 12 if fast else 100, "image_size": 8192,
               "timeout_s": 8.0},
        seeds=range(3 if fast else 5),
    )


def sweep_dir(name: str) -> Path:
    """``<checkout>/data/runs/<name>`` (git ignores ``data/runs``); ``./data/runs/<name>``
    when labkit is not run from a checkout."""
    root = Path(__file__).resolve().parents[2]
    base = root / "data" / "runs" if (root / "pyproject.toml").is_file() else Path("data/runs")
    return base / name


def _pct(v: float) -> str:
    return "?" if v is None or math.isnan(v) else f"{100 * v:.1f} %"


def answer(table: pd.DataFrame, goal: str, names: list[str]) -> str:
    """One paragraph: the best point of ``table`` (a :func:`~labkit.sweep.analysis.summary`)
    for ``goal`` ("minimise failure_rate where p90_s <= 7200"), with its interval, and the
    points whose interval overlaps it."""
    metric, where = parse_goal(goal)
    ranked = best_point(table, metric, where=where)
    if len(ranked) == 0:
        return f"No point satisfies '{where}'."

    def name(row: pd.Series) -> str:
        return " ".join(f"{n}={row[n]:g}" if isinstance(row[n], float) else f"{n}={row[n]}"
                        for n in names if not pd.isna(row[n]))

    best = ranked.iloc[0]
    fmt = _pct if metric.endswith("rate") else (lambda v: format_s(float(v)))
    text = (f"Best for '{goal}': {name(best)} -- {metric} {fmt(best[metric])} "
            f"[{fmt(best[f'{metric}_low'])} to {fmt(best[f'{metric}_high'])}], p90 time to "
            f"update {format_s(float(best['p90_s']))}, over {int(best['n_seeds'])} seeds.")
    tied = ranked[(ranked["rank"] > 1) & ranked["overlaps_best"].astype(bool)]
    if len(tied):
        text += (" Not distinguishable from it at 95 %: "
                 + "; ".join(name(r) for _, r in tied.iterrows()) + ".")
    else:
        text += " No other point's interval overlaps it."
    return text
