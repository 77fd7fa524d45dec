"""Plots of a parameter sweep: rates with error bars, the Pareto scatter, a two-parameter heatmap.

They draw the tables of :mod:`labkit.sweep.analysis` (a :func:`~labkit.sweep.analysis.summary`
or :func:`~labkit.sweep.analysis.result_rates` frame), never compute them. Groups differ in
marker shape and line style as well as colour, the heatmap uses a colour map whose lightness
rises steadily (cividis) and writes every value in its cell, so all three read in grey.
Same contract as every labkit plot: ``ax=None`` in, Axes out, no ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from labkit.plots._util import new_axes, no_data, style_axes, time_unit
from labkit.plots.style import FONT, group_style

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_pareto", "plot_rate_by_param", "plot_sweep_heatmap"]

_RATE_LABELS = {
    "failure_rate": "devices not updated (%)",
    "success_rate": "devices updated (%)",
    "result_4_rate": "Result 4 CONNECTION_LOST (%)",
    "rate": "share of devices (%)",
}
_TIME_LABELS = {"p90_s": "p90 time to update", "median_s": "median time to update",
                "completion_s": "campaign completion time"}


def _is_time(column: str) -> bool:
    return column.endswith("_s")


def _interval(table: pd.DataFrame, column: str) -> tuple[str, str]:
    base = column[:-2] if column.endswith("_s") else column
    for lo, hi in ((f"{column}_low", f"{column}_high"), (f"{base}_low", f"{base}_high"),
                   ("low", "high")):
        if lo in table.columns and hi in table.columns:
            return lo, hi
    raise KeyError(f"no interval columns for {column!r}")


def _scale(column: str, values: np.ndarray) -> tuple[float, str]:
    if _is_time(column):
        finite = values[np.isfinite(values)]
        div, unit = time_unit(float(finite.max()) if len(finite) else 0.0)
        return div, f"{_TIME_LABELS.get(column, column)} ({unit})"
    return 0.01, _RATE_LABELS.get(column, column)


def _label(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "n/a"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def plot_rate_by_param(
    table: pd.DataFrame,
    param: str,
    *,
    rate: str = "failure_rate",
    by: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """A rate (or a time) against the values of one parameter, with its interval as error
    bars; one line per value of ``by``.

    Parameters
    ----------
    table:
        A :func:`~labkit.sweep.analysis.summary` (columns ``rate``, ``rate_low``,
        ``rate_high``), or a :func:`~labkit.sweep.analysis.result_rates` frame filtered to
        one result (``rate``, ``low``, ``high``).
    param:
        The parameter on the x axis (numeric values are placed by value, others evenly).
    rate:
        The column to draw: ``failure_rate``, ``result_4_rate``, ``success_rate``, ``rate``,
        ``p90_s``, ``median_s``, ``completion_s``.
    by:
        A second parameter: one line (its own marker, line style and colour) per value.
    """
    title = f"{_RATE_LABELS.get(rate, _TIME_LABELS.get(rate, rate))} by {param}"
    ax = new_axes(ax)
    if len(table) == 0 or param not in table.columns:
        return no_data(ax, title, "no points to compare")
    lo_col, hi_col = _interval(table, rate)
    values = pd.to_numeric(table[rate], errors="coerce").to_numpy(dtype=np.float64)
    div, ylabel = _scale(rate, values)
    xs_raw = table[param]
    numeric = pd.to_numeric(xs_raw, errors="coerce")
    if numeric.notna().all():
        xs = numeric.to_numpy(dtype=np.float64)
        ticks = sorted(set(xs.tolist()))
        tick_labels = [_label(v) for v in ticks]
    else:
        cats = list(dict.fromkeys(_label(v) for v in xs_raw))
        xs = np.array([cats.index(_label(v)) for v in xs_raw], dtype=np.float64)
        ticks, tick_labels = list(range(len(cats))), cats
    groups = list(dict.fromkeys(table[by].tolist())) if by else [None]
    n = len(groups)
    span = (max(ticks) - min(ticks)) if len(ticks) > 1 else 1.0
    for gi, g in enumerate(groups):
        sel = np.ones(len(table), dtype=bool) if by is None else (
            table[by].map(_label) == _label(g)).to_numpy()
        order = np.argsort(xs[sel], kind="stable")
        x = xs[sel][order] + (gi - (n - 1) / 2) * span * 0.012  # dodge overlapping bars
        y = values[sel][order] / div
        lo = pd.to_numeric(table.loc[sel, lo_col], errors="coerce").to_numpy(np.float64)[order]
        hi = pd.to_numeric(table.loc[sel, hi_col], errors="coerce").to_numpy(np.float64)[order]
        yerr = np.vstack([np.clip(y - lo / div, 0, None), np.clip(hi / div - y, 0, None)])
        st = group_style(gi)
        ax.errorbar(x, y, yerr=np.nan_to_num(yerr), color=st["color"], marker=st["marker"],
                    linestyle=st["linestyle"], markersize=9, capsize=5, linewidth=2,
                    markeredgecolor="black", label=f"{by}={_label(g)}" if by else None)
    ax.set_xticks(ticks, tick_labels)
    ax.grid(axis="y", color="#E5E5E5")
    level = "95 %"
    style_axes(ax, title=f"{title} (bars: {level} bootstrap interval over seeds)",
               xlabel=param, ylabel=ylabel)
    if by:
        ax.legend(frameon=False, fontsize=FONT["legend"], loc="best")
    return ax


def plot_pareto(
    table: pd.DataFrame,
    *,
    x: str = "p90_s",
    y: str = "failure_rate",
    label: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Every point of a :func:`~labkit.sweep.analysis.summary` as time (x) against failure
    rate (y), both with their intervals; the Pareto front (column ``pareto``) filled and
    joined by a dashed step line, the dominated points hollow. Each point is labelled with
    its ``label`` parameters (default: those that vary)."""
    title = "Failure rate vs time to update, Pareto front"
    ax = new_axes(ax, (10.0, 6.0))
    if len(table) == 0:
        return no_data(ax, title, "no points to compare")
    xv = pd.to_numeric(table[x], errors="coerce").to_numpy(dtype=np.float64)
    yv = pd.to_numeric(table[y], errors="coerce").to_numpy(dtype=np.float64)
    xdiv, xlabel = _scale(x, xv)
    ydiv, ylabel = _scale(y, yv)
    xlo, xhi = _interval(table, x)
    ylo, yhi = _interval(table, y)
    front = (table["pareto"].to_numpy(dtype=bool) if "pareto" in table.columns
             else np.zeros(len(table), dtype=bool))
    skip = {"point", "label", "pareto"}
    names = list(label) if label is not None else [
        c for c in table.columns[1: table.columns.get_loc("n_seeds")] if c not in skip
    ] if "n_seeds" in table.columns else []
    for i in range(len(table)):
        st = group_style(0 if front[i] else 1)
        xe = np.array([[max(xv[i] - float(table[xlo].iloc[i]), 0)],
                       [max(float(table[xhi].iloc[i]) - xv[i], 0)]]) / xdiv
        ye = np.array([[max(yv[i] - float(table[ylo].iloc[i]), 0)],
                       [max(float(table[yhi].iloc[i]) - yv[i], 0)]]) / ydiv
        ax.errorbar(xv[i] / xdiv, yv[i] / ydiv, xerr=np.nan_to_num(xe), yerr=np.nan_to_num(ye),
                    marker="o" if front[i] else "s", markersize=10,
                    markerfacecolor=st["color"] if front[i] else "white",
                    markeredgecolor="black", ecolor="#555555", capsize=4, linestyle="none")
        text = " ".join(_label(table[n].iloc[i]) for n in names
                        if not pd.isna(table[n].iloc[i]))
        ax.annotate(text, (xv[i] / xdiv, yv[i] / ydiv), textcoords="offset points",
                    xytext=(8, 6), fontsize=FONT["small"] + 1)
    if front.any():
        order = np.argsort(xv[front])
        ax.step(xv[front][order] / xdiv, yv[front][order] / ydiv, where="post",
                linestyle="--", color="black", linewidth=1.5, label="Pareto front")
        ax.plot([], [], "o", markerfacecolor=group_style(0)["color"], markeredgecolor="black",
                label="on the front (filled)")
        ax.plot([], [], "s", markerfacecolor="white", markeredgecolor="black",
                label="dominated (hollow)")
        ax.legend(frameon=False, fontsize=FONT["legend"], loc="best")
    ax.grid(color="#E5E5E5")
    style_axes(ax, title=f"{title} (bars: 95 % intervals)", xlabel=xlabel, ylabel=ylabel)
    if names:
        ax.text(0.0, -0.13, "points labelled " + " ".join(names), transform=ax.transAxes,
                fontsize=FONT["small"] + 1, color="#333333")
    return ax


def plot_sweep_heatmap(
    table: pd.DataFrame,
    x: str,
    y: str,
    *,
    value: str = "failure_rate",
    ax: Axes | None = None,
) -> Axes:
    """A heatmap of ``value`` over two parameters, every cell written out with its interval
    ("12 %\\n[8–15]"); the colour's lightness rises with the value (cividis), and the text
    alone carries the numbers, so it reads in grey."""
    title = f"{_RATE_LABELS.get(value, _TIME_LABELS.get(value, value))} by {x} and {y}"
    ax = new_axes(ax, (10.0, 6.0))
    if len(table) == 0 or x not in table.columns or y not in table.columns:
        return no_data(ax, title, "no points to compare")
    lo_col, hi_col = _interval(table, value)
    vals = pd.to_numeric(table[value], errors="coerce").to_numpy(dtype=np.float64)
    div, label = _scale(value, vals)

    def levels(column: str) -> list[str]:
        raw = list(dict.fromkeys(_label(v) for v in table[column].tolist()))
        num = pd.to_numeric(pd.Series([v for v in raw if v != "n/a"], dtype=object),
                            errors="coerce")
        if num.notna().all():  # numbers in order, "n/a" (a parameter a point lacks) last
            ordered = [v for _, v in sorted(zip(num.tolist(), [v for v in raw if v != "n/a"],
                                                strict=True))]
            raw = ordered + (["n/a"] if "n/a" in raw else [])
        return raw

    xs, ys = levels(x), levels(y)
    grid = np.full((len(ys), len(xs)), np.nan)
    text = [["" for _ in xs] for _ in ys]
    for i in range(len(table)):
        xi = xs.index(_label(table[x].iloc[i]))
        yi = ys.index(_label(table[y].iloc[i]))
        v = vals[i] / div
        lo = float(pd.to_numeric(table[lo_col].iloc[i], errors="coerce")) / div
        hi = float(pd.to_numeric(table[hi_col].iloc[i], errors="coerce")) / div
        grid[yi, xi] = v
        fmt = "{:.0f}" if not _is_time(value) else "{:.1f}"
        text[yi][xi] = f"{fmt.format(v)}\n[{fmt.format(lo)}–{fmt.format(hi)}]"
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="cividis", aspect="auto",
                      origin="lower")
    finite = grid[np.isfinite(grid)]
    mid = (float(finite.min()) + float(finite.max())) / 2 if len(finite) else 0.0
    for yi in range(len(ys)):
        for xi in range(len(xs)):
            if text[yi][xi]:
                dark = grid[yi, xi] < mid  # cividis is dark at the low end
                ax.text(xi, yi, text[yi][xi], ha="center", va="center",
                        fontsize=FONT["legend"], color="white" if dark else "black",
                        fontweight="bold")
            else:
                ax.text(xi, yi, "–", ha="center", va="center", fontsize=FONT["small"],
                        color="#555555")  # no point has this combination
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    bar = ax.figure.colorbar(image, ax=ax)
    bar.set_label(label, fontsize=FONT["label"])
    style_axes(ax, title=f"{title}\n(value and 95 % interval)", xlabel=x, ylabel=y)
    return ax
