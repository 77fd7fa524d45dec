"""The helpers behind notebook 10 (Choosing a PUSH policy), kept next to the sweep code.

:func:`policy_grid` is the notebook's sweep (small in fast mode), :func:`sweep_dir` where it
is written (under the checkout's ``data/runs``, which git ignores), and :func:`answer` the
sentence the notebook ends with: the best point for a goal, with its interval, and which
other points the data cannot tell apart from it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from labkit.sweep.analysis import best_point, parse_goal
from labkit.sweep.grid import Grid
from labkit.sweep.progress import format_s

__all__ = ["answer", "policy_grid", "sweep_dir"]


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
