"""The link a PUSH decision saw, and what the policy decided.

:func:`plot_link_decisions` draws one device's Radio Signal Strength (/4/0/2) and Link Quality
(/4/0/3) over time, each decision of the policy marked at its time and link sample (push ▲,
wait ●, pull ■, give up ✕), the policy's thresholds as horizontal lines and the device's update
attempts shaded. :func:`plot_decision_scatter` shows every decision of a campaign against the
link sample it was based on, one row per decision, so a threshold appears as the line where
``wait`` turns into ``push``. :func:`link_trace` is the pure table behind the traces.

Thresholds are given as a plain mapping such as ``{"min_rssi_dbm": -105}`` (a policy's
``.thresholds``; a policy object itself is accepted too): names ending in ``_dbm`` or
containing ``rssi`` are signal levels, names containing ``link_quality`` are Link Quality
levels, others (``max_wait_s``, ``min_battery``) are not drawn. Never calls ``plt.show()`` and
never changes matplotlib's global settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from labkit.plots._util import (
    elapsed_seconds,
    is_events,
    natural_key,
    new_axes,
    no_data,
    plural,
    run_start,
    style_axes,
    time_unit,
)
from labkit.plots.style import (
    DECISION_ORDER,
    FONT,
    LQ_COLOR,
    RSSI_COLOR,
    decision_label,
    decision_style,
)
from labkit.record.derived import attempts as attempts_table
from labkit.record.derived import decisions as decisions_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["link_trace", "plot_decision_scatter", "plot_link_decisions", "split_thresholds"]

_RSSI_LABEL = "Radio Signal Strength /4/0/2 (dBm)"
_LQ_LABEL = "Link Quality /4/0/3"
_THRESHOLD_STYLES = (
    {"linestyle": (0, (8, 3))},
    {"linestyle": "-."},
    {"linestyle": (0, (3, 1, 1, 1))},
)


def split_thresholds(thresholds: object) -> tuple[dict[str, float], dict[str, float]]:
    """(signal-level thresholds, link-quality thresholds) from a mapping or a policy.

    Names containing ``link_quality`` (or ``lq``) are Link Quality levels; names ending in
    ``_dbm`` or containing ``rssi`` are signal levels; other names are left out.
    """
    if thresholds is None:
        return {}, {}
    found = thresholds if isinstance(thresholds, Mapping) else getattr(thresholds, "thresholds", {})
    if not isinstance(found, Mapping):
        return {}, {}
    rssi: dict[str, float] = {}
    lq: dict[str, float] = {}
    for key, value in found.items():
        name = str(key).lower()
        if value is None:
            continue
        if "link_quality" in name or name.split("_")[-1] == "lq" or name.startswith("lq"):
            lq[str(key)] = float(value)
        elif name.endswith("_dbm") or "rssi" in name:
            rssi[str(key)] = float(value)
    return rssi, lq


def _threshold_label(key: str, value: float, unit: str) -> str:
    return f"threshold {key} = {value:g}{unit}"


def _device_rows(events: pd.DataFrame, device: str) -> pd.DataFrame:
    mask = (events["device"].astype("string") == device).fillna(False).to_numpy(dtype=bool)
    return events.loc[mask].reset_index(drop=True)


def link_trace(events: pd.DataFrame, device: str) -> pd.DataFrame:
    """One device's /4 link samples over time.

    Returns
    -------
    pandas.DataFrame
        ``ts`` (datetime64[us, UTC]), ``rssi_dbm``, ``link_quality`` (Int16): every row of the
        device carrying either value (``link`` rows, and decision rows that carry their sample),
        in ``seq`` order; RangeIndex.
    """
    dev = _device_rows(events, device)
    has = (dev["rssi_dbm"].notna() | dev["link_quality"].notna()).to_numpy(dtype=bool)
    rows = dev.loc[has].sort_values("seq", kind="stable")
    return rows[["ts", "rssi_dbm", "link_quality"]].reset_index(drop=True)


def _default_device(events: pd.DataFrame) -> str | None:
    """The device with the most decisions (first in natural order on ties), else any device."""
    dec = events.loc[(events["kind"] == "decision").to_numpy(dtype=bool), "device"].dropna()
    if len(dec):
        counts = dec.astype(str).value_counts()
        best = counts[counts == counts.max()].index.tolist()
        return sorted(best, key=natural_key)[0]
    devices = events["device"].dropna().astype(str).unique().tolist()
    return sorted(devices, key=natural_key)[0] if devices else None


def _float(values: pd.Series) -> np.ndarray:
    return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))


def plot_link_decisions(
    events: pd.DataFrame,
    device: str | None = None,
    *,
    thresholds: Mapping[str, float] | object | None = None,
    ax: Axes | None = None,
    **kwargs: Any,
) -> Axes:
    """One device's RSSI and Link Quality over time, with each policy decision marked.

    Parameters
    ----------
    events : pandas.DataFrame
        A run's event table (``run.events``).
    device : str, optional
        The endpoint; default the device with the most decisions.
    thresholds : mapping or policy, optional
        ``{"min_rssi_dbm": -105, "min_link_quality": 20}`` or a policy with ``.thresholds``;
        drawn as horizontal lines on the matching axis.
    ax : matplotlib Axes, optional
        Draw the RSSI here (Link Quality goes on a twin axis on the right); a new 10 x 4.5 in
        figure when omitted.
    **kwargs
        Passed to the RSSI line (``ax.plot``).

    Returns
    -------
    matplotlib.axes.Axes
        The RSSI axes: the RSSI line (``gid`` ``"rssi"``); one marker per decision in scatter
        collections with ``gid`` ``"decision:<name>"``, at the decision's time and the RSSI it
        was based on (decisions without a known RSSI sit at the bottom edge); threshold lines
        (``gid`` ``"threshold:<key>"``); update attempts shaded. Its twin axis (when Link
        Quality was reported) holds the Link Quality line (``gid`` ``"link_quality"``) and
        Link Quality thresholds.
    """
    from matplotlib.ticker import MaxNLocator

    ax = new_axes(ax)
    if device is None:
        device = _default_device(events) if len(events) else None
    if device is None or len(events) == 0:
        return no_data(ax, "Link quality and PUSH decisions")
    trace = link_trace(events, device)
    dev = _device_rows(events, device)
    dec = decisions_table(dev) if len(dev) else decisions_table(events.iloc[:0])
    title = f"{device}: link quality and PUSH decisions"
    if len(trace) == 0 and len(dec) == 0:
        return no_data(ax, title, f"no link samples or decisions for {device}")
    t0 = run_start(events)
    assert t0 is not None
    tx = elapsed_seconds(trace["ts"], t0)
    dx = elapsed_seconds(dec["ts"], t0)
    all_x = np.r_[tx, dx]
    lo, hi = float(np.nanmin(all_x)), float(np.nanmax(all_x))
    per, unit = time_unit(hi)
    rssi = _float(trace["rssi_dbm"])
    lq = _float(trace["link_quality"])
    rssi_t, lq_t = split_thresholds(thresholds)
    handles: list[Any] = []

    # update attempts, shaded behind everything
    att = attempts_table(dev) if len(dev) else None
    if att is not None and len(att):
        a0 = elapsed_seconds(att["start"], t0) / per
        a1 = elapsed_seconds(att["end"], t0) / per
        for i, (s, e) in enumerate(zip(a0, a1, strict=True)):
            span = ax.axvspan(
                s,
                e,
                color="#56B4E9",
                alpha=0.18,
                lw=0,
                zorder=0,
                label="update attempt" if i == 0 else "_",
            )
            if i == 0:
                handles.append(span)

    ok = ~np.isnan(rssi)
    if ok.any():
        kw: dict[str, Any] = {"color": RSSI_COLOR, "linewidth": 2.0, "marker": ".", "markersize": 5}
        kw.update(kwargs)
        (line,) = ax.plot(tx[ok] / per, rssi[ok], label="RSSI (dBm)", gid="rssi", **kw)
        handles.append(line)
    for i, (key, value) in enumerate(rssi_t.items()):
        handles.append(
            ax.axhline(
                value,
                color="black",
                linewidth=1.6,
                label=_threshold_label(key, value, " dBm"),
                gid=f"threshold:{key}",
                **_THRESHOLD_STYLES[i % len(_THRESHOLD_STYLES)],  # type: ignore[arg-type]
            )
        )

    twin = None
    if not np.isnan(lq).all() or lq_t:
        twin = ax.twinx()
        okq = ~np.isnan(lq)
        (qline,) = twin.plot(
            tx[okq] / per,
            lq[okq],
            color=LQ_COLOR,
            linewidth=2.2,
            linestyle=":",
            label="Link Quality",
            gid="link_quality",
        )
        handles.append(qline)
        for i, (key, value) in enumerate(lq_t.items()):
            handles.append(
                twin.axhline(
                    value,
                    color=LQ_COLOR,
                    linewidth=1.6,
                    label=_threshold_label(key, value, ""),
                    gid=f"threshold:{key}",
                    **_THRESHOLD_STYLES[(i + 1) % len(_THRESHOLD_STYLES)],  # type: ignore[arg-type]
                )
            )
        twin.set_ylabel(_LQ_LABEL, fontsize=FONT["label"], color=LQ_COLOR)
        twin.tick_params(labelsize=FONT["tick"], colors=LQ_COLOR, axis="y")
        ax.set_zorder(twin.get_zorder() + 1)  # decision markers above the Link Quality line
        ax.patch.set_visible(False)

    # decisions, at the RSSI they saw (unknown RSSI: at the bottom edge)
    d_rssi = _float(dec["rssi_dbm"])
    names = dec["decision"].astype(str).to_numpy()
    ordered = [d for d in DECISION_ORDER if d in set(names)]
    ordered += sorted(set(names) - set(DECISION_ORDER))
    bottom = ax.get_xaxis_transform()
    for name in ordered:
        st = decision_style(name)
        sel = names == name
        known = sel & ~np.isnan(d_rssi)
        unknown = sel & np.isnan(d_rssi)
        common: dict[str, Any] = {
            "marker": st.marker,
            "color": st.color,
            "edgecolors": "black",
            "linewidths": 0.9,
            "s": st.size**2,
            "zorder": 5,
        }
        if known.any():
            coll = ax.scatter(
                dx[known] / per,
                d_rssi[known],
                label=decision_label(name),
                gid=f"decision:{name}",
                **common,
            )
            handles.append(coll)
        if unknown.any():
            coll = ax.scatter(
                dx[unknown] / per,
                np.full(int(unknown.sum()), 0.04),
                transform=bottom,
                clip_on=False,
                label=f"{decision_label(name)} (RSSI unknown)",
                gid=f"decision:{name}",
                **common,
            )
            handles.append(coll)

    if ok.any() or rssi_t:
        levels = np.r_[rssi[ok], d_rssi[~np.isnan(d_rssi)], list(rssi_t.values())]
        ax.set_ylim(float(levels.min()) - 4, float(levels.max()) + 4)
    pad = (hi - lo) * 0.02 if hi > lo else 1e-3
    ax.set_xlim((lo - pad) / per, (hi + pad) / per)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(color="#E5E5E5")
    style_axes(
        ax,
        title=title,
        xlabel=f"time since run start ({unit})",
        ylabel=_RSSI_LABEL,
    )
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.12 if twin is not None else 1.01, 1.0),
        fontsize=FONT["legend"],
        frameon=False,
    )
    return ax


def plot_decision_scatter(
    events_or_decisions: pd.DataFrame,
    *,
    x: Literal["rssi_dbm", "link_quality"] = "rssi_dbm",
    thresholds: Mapping[str, float] | object | None = None,
    ax: Axes | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> Axes:
    """Every decision of a campaign against the link sample it was based on (a strip plot).

    Parameters
    ----------
    events_or_decisions : pandas.DataFrame
        A run's event table, or a decisions table (:func:`labkit.record.decisions`).
    x : {"rssi_dbm", "link_quality"}
        The link value on the x axis.
    thresholds : mapping or policy, optional
        Drawn as vertical lines when they are levels of ``x``.
    ax : matplotlib Axes, optional
        Draw here; a new 10 x 4.5 in figure when omitted.
    seed : int
        Seed of the small vertical jitter that keeps equal samples apart.
    **kwargs
        Passed to ``ax.scatter`` (e.g. ``alpha``).

    Returns
    -------
    matplotlib.axes.Axes
        One row per decision kind (push, wait, pull, give up, then any other), one marker per
        decision with a known ``x`` (scatter collections with ``gid`` ``"decision:<name>"``);
        decisions without a link sample are counted in the title, not drawn.
    """
    ax = new_axes(ax)
    what = "RSSI" if x == "rssi_dbm" else "Link Quality"
    title = f"PUSH decisions against the {what} they saw"
    if len(events_or_decisions) == 0:
        return no_data(ax, title)
    dec = (
        decisions_table(events_or_decisions)
        if is_events(events_or_decisions)
        else events_or_decisions
    )
    if len(dec) == 0:
        return no_data(ax, title, "no decisions in this run")
    values = _float(dec[x])
    names = dec["decision"].astype(str).to_numpy()
    ordered = [d for d in DECISION_ORDER if d in set(names)]
    ordered += sorted(set(names) - set(DECISION_ORDER))
    known = ~np.isnan(values)
    if not known.any():
        return no_data(ax, title, f"no decision carries a {what} sample")
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-0.22, 0.22, size=len(values))
    for row, name in enumerate(ordered):
        st = decision_style(name)
        sel = (names == name) & known
        if not sel.any():
            continue
        kw: dict[str, Any] = {
            "alpha": 0.85,
            "s": st.size**2 * 0.8,
            "edgecolors": "black",
            "linewidths": 0.7,
        }
        kw.update(kwargs)
        ax.scatter(
            values[sel],
            row + jitter[sel],
            marker=st.marker,
            color=st.color,
            label=decision_label(name),
            gid=f"decision:{name}",
            zorder=3,
            **kw,
        )
    rssi_t, lq_t = split_thresholds(thresholds)
    lines = rssi_t if x == "rssi_dbm" else lq_t
    unit = " dBm" if x == "rssi_dbm" else ""
    for i, (key, value) in enumerate(lines.items()):
        ax.axvline(
            value,
            color="black",
            linewidth=1.8,
            label=_threshold_label(key, value, unit),
            gid=f"threshold:{key}",
            **_THRESHOLD_STYLES[i % len(_THRESHOLD_STYLES)],  # type: ignore[arg-type]
        )
    counts = {name: int((names == name).sum()) for name in ordered}
    ax.set_yticks(range(len(ordered)), [f"{decision_label(n)}\n(n={counts[n]})" for n in ordered])
    ax.set_ylim(len(ordered) - 0.5, -0.5)
    ax.grid(axis="x", color="#E5E5E5")
    n_dev = dec["device"].nunique() if "device" in dec.columns else None
    missing = int((~known).sum())
    sub = plural(len(dec), "decision") + (f", {plural(n_dev, 'device')}" if n_dev else "")
    if missing:
        sub += f"; {missing} without a sample not shown"
    style_axes(
        ax,
        title=f"{title}\n{sub}",
        xlabel=_RSSI_LABEL if x == "rssi_dbm" else _LQ_LABEL,
        ylabel="decision",
    )
    if lines:
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=FONT["legend"], frameon=False
        )
    return ax
