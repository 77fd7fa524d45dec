"""How update attempts ended: counts (or shares) per Update Result code, optionally per group.

:func:`plot_result_counts` draws horizontal bars, one row per /5/0/5 code that occurs, labelled
with code and name ("1 SUCCESS", "4 CONNECTION_LOST") so long names stay readable; with ``by``
each group (policy, profile, wave, method, firmware version ...) gets its own bar in the row,
with its own colour *and* hatch. Each bar carries its number. The counting is
:func:`labkit.record.result_counts` on the attempts table (raw ``fw_result`` rows would count
re-reads and duplicates). Never calls ``plt.show()`` and never changes global settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from labkit.plots._util import is_events, new_axes, no_data, plural, style_axes
from labkit.plots.style import FONT, group_style, result_color, result_label
from labkit.record.derived import attempts as attempts_table
from labkit.record.derived import result_counts

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_result_counts"]


def _group_name(keys: Sequence[str], values: tuple[Any, ...]) -> str:
    parts = ["n/a" if pd.isna(v) else str(v) for v in values]
    if len(keys) == 1:
        return f"{keys[0]} {parts[0]}" if keys[0] in ("wave",) else parts[0]
    return ", ".join(f"{k}={v}" for k, v in zip(keys, parts, strict=True))


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def plot_result_counts(
    events_or_attempts: pd.DataFrame,
    *,
    by: str | Sequence[str] | None = None,
    share: bool = False,
    ax: Axes | None = None,
    **kwargs: Any,
) -> Axes:
    """Bars of how many attempts ended with each Update Result, overall or per group.

    Parameters
    ----------
    events_or_attempts : pandas.DataFrame
        A run's event table, or an attempts table (:func:`labkit.record.attempts`, possibly
        with extra columns such as ``policy`` added and several runs concatenated).
    by : str or list of str, optional
        Column(s) to split by: one bar per group in each result row.
    share : bool
        Show each result's share of its group's attempts (percent) instead of counts.
    ax : matplotlib Axes, optional
        Draw here; a new figure (10 in wide, taller with more bars) when omitted.
    **kwargs
        Passed to ``ax.barh`` (e.g. ``alpha``).

    Returns
    -------
    matplotlib.axes.Axes
        One bar (a Rectangle in ``ax.patches``) per result code present per group; rows are
        result codes in code order, top to bottom, labelled ``"1 SUCCESS"``. Without ``by``
        the bars are coloured by outcome (green SUCCESS, vermillion failures); with ``by`` by
        group, with a legend. Attempts without a result are not counted.
    """
    from matplotlib.ticker import MaxNLocator

    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    title = "How the update attempts ended (Update Result /5/0/5)"
    data = events_or_attempts
    if len(data) and is_events(data):
        data = attempts_table(data)
    counts = result_counts(data, by=keys) if len(data) else None
    if counts is None or len(counts) == 0:
        return no_data(new_axes(ax), title, "no attempt has a result yet")
    codes = sorted(set(counts["code"].tolist()))
    groups = (
        list(counts[keys].drop_duplicates().itertuples(index=False, name=None)) if keys else [()]
    )
    n_groups = len(groups)
    if ax is None:
        height = float(np.clip(1.6 + 0.45 * len(codes) * max(1, n_groups) ** 0.7, 3.5, 9.5))
        ax = new_axes(None, (10.0, height))
    row_h = 0.8
    bar_h = row_h / n_groups
    value = counts["share"] * 100 if share else counts["count"]
    vmax = float(value.max())
    handles = []
    for gi, group in enumerate(groups):
        if keys:
            sel = np.ones(len(counts), dtype=bool)
            for k, v in zip(keys, group, strict=True):
                col = counts[k]
                sel &= (col.isna() if pd.isna(v) else (col == v)).to_numpy(dtype=bool)
        else:
            sel = np.ones(len(counts), dtype=bool)
        sub = counts.loc[sel]
        vals = value.loc[sel].to_numpy(dtype=np.float64)
        rows = np.array([codes.index(c) for c in sub["code"]], dtype=np.float64)
        y = rows - row_h / 2 + bar_h * (gi + 0.5)
        if keys:
            gs = group_style(gi)
            n_total = int(sub["count"].sum())
            bars = ax.barh(
                y,
                vals,
                height=bar_h * 0.92,
                color=gs["color"],
                hatch=gs["hatch"],
                edgecolor="black",
                linewidth=0.8,
                label=f"{_group_name(keys, group)} ({_attempts(n_total)})",
                **kwargs,
            )
            handles.append(bars)
        else:
            colours = [result_color(int(c)) for c in sub["code"]]
            bars = ax.barh(
                y,
                vals,
                height=bar_h * 0.7,
                color=colours,
                edgecolor="black",
                linewidth=0.8,
                **kwargs,
            )
        labels = [
            f"{v:.0f} % ({int(c)})" if share else f"{int(c)}"
            for v, c in zip(vals, sub["count"], strict=True)
        ]
        ax.bar_label(
            bars,
            labels=labels,
            padding=4,
            fontsize=FONT["legend"] if n_groups > 1 else FONT["label"],
        )
    ax.set_yticks(range(len(codes)), [result_label(c) for c in codes])
    ax.set_ylim(len(codes) - 0.5, -0.5)
    ax.set_xlim(0, vmax * (1.25 if share else 1.15) if vmax > 0 else 1)
    if not share:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", color="#E5E5E5")
    n_att = int(counts["count"].sum())
    split = f", by {', '.join(keys)}" if keys else ""
    xlabel = "share of the group's attempts (%)" if share else "number of attempts"
    style_axes(
        ax,
        title=f"How {plural(n_att, 'update attempt')} ended{split} (Update Result /5/0/5)",
        xlabel=xlabel,
    )
    if keys:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize=FONT["legend"],
            title=", ".join(keys),
            title_fontsize=FONT["legend"],
        )
    return ax
