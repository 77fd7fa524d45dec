"""Helpers shared by the plot modules: new axes, the "no data" note, time axes, tick labels.

Private to :mod:`labkit.plots`. pyplot is imported only inside :func:`new_axes`, so importing
the plot modules does not pick a matplotlib backend.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from labkit.plots.style import FIGSIZE, FONT

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "elapsed_seconds",
    "is_events",
    "natural_key",
    "new_axes",
    "no_data",
    "plural",
    "run_start",
    "style_axes",
    "time_unit",
    "wrap_title",
]


def new_axes(ax: Axes | None, figsize: tuple[float, float] = FIGSIZE) -> Axes:
    """``ax`` itself, or the Axes of a new figure of ``figsize`` inches (constrained layout)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _fig, new = plt.subplots(figsize=figsize, layout="constrained")
    return new


def no_data(ax: Axes, title: str, why: str = "no data") -> Axes:
    """Write a centred note on an empty Axes (the plot has nothing to show) and return it."""
    ax.text(
        0.5,
        0.5,
        why,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=FONT["title"],
        color="#555555",
        gid="no-data",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=FONT["title"])
    return ax


def style_axes(
    ax: Axes, *, title: str, xlabel: str | None = None, ylabel: str | None = None
) -> None:
    """Large title, axis labels and tick labels; light grid behind the data."""
    ax.set_title(wrap_title(title), fontsize=FONT["title"])
    if xlabel is not None:
        ax.set_xlabel(xlabel, fontsize=FONT["label"])
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=FONT["label"])
    ax.tick_params(labelsize=FONT["tick"])
    ax.set_axisbelow(True)


def wrap_title(title: str, width: int = 64) -> str:
    """Break a long title into lines of at most ``width`` characters (fits a 10 in figure)."""
    lines = [
        wrapped
        for line in title.split("\n")
        for wrapped in (textwrap.wrap(line, width=width, break_long_words=False) or [""])
    ]
    return "\n".join(lines)


def plural(n: int, word: str) -> str:
    """``"1 device"``, ``"3 devices"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def is_events(data: pd.DataFrame) -> bool:
    """True for an event table (it has ``kind`` and ``seq`` columns), False for derived tables."""
    return "kind" in data.columns and "seq" in data.columns


def run_start(events: pd.DataFrame) -> pd.Timestamp | None:
    """The first timestamp of the run (the zero of every time axis), None when empty."""
    if len(events) == 0:
        return None
    return pd.Timestamp(events["ts"].min())


def elapsed_seconds(ts: pd.Series | Iterable[Any], t0: pd.Timestamp) -> np.ndarray:
    """Seconds from ``t0`` to each timestamp (float64; NaT -> NaN)."""
    s = pd.Series(ts) if not isinstance(ts, pd.Series) else ts
    delta = s - t0
    return np.asarray(delta.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan))


def time_unit(span_s: float) -> tuple[float, str]:
    """(seconds per unit, unit name) that keeps tick numbers small: ms, s, min or h."""
    if span_s >= 3 * 3600:
        return 3600.0, "h"
    if span_s >= 3 * 60:
        return 60.0, "min"
    if span_s >= 2:
        return 1.0, "s"
    return 0.001, "ms"


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: object) -> tuple[Any, ...]:
    """Sort key putting ``sim-2`` before ``sim-10``."""
    parts = _DIGITS.split(str(name))
    return tuple(int(p) if p.isdigit() else p.lower() for p in parts)


def thin_labels(n: int, max_labels: int = 40) -> int:
    """Label every k-th of ``n`` ticks so that at most ``max_labels`` are written."""
    return max(1, int(np.ceil(n / max_labels)))
