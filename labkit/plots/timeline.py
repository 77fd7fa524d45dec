"""Timelines of the /5 Firmware Update State: one device in detail, or the whole fleet.

:func:`plot_state_timeline` draws one device's State bands (one lane per State, so the y axis
reads ``0 IDLE`` ... ``3 UPDATING``), its Update Result reports, its firmware version before and
after, and its registrations and reboots. :func:`plot_fleet_timeline` draws one swimlane per
device, coloured by State, with each attempt's result marked at its end, sorted by outcome,
duration or name. :func:`fleet_order` is the pure table behind the fleet's order.

Both take the raw event table (``run.events``), because they need rows the derived tables drop
(registrations, reboots, firmware versions). Times are shown since the run's first event, in
s, min or h depending on the span. Drawing functions return the Axes and never call
``plt.show()``; nothing here changes matplotlib's global settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from labkit.lwm2m.objects import State, UpdateResult
from labkit.plots._util import (
    elapsed_seconds,
    natural_key,
    new_axes,
    no_data,
    plural,
    run_start,
    style_axes,
    thin_labels,
    time_unit,
    wrap_title,
)
from labkit.plots.style import (
    DECISION_STYLES,
    FONT,
    STATE_STYLES,
    result_color,
    result_label,
    result_marker,
    state_label,
)
from labkit.record.derived import attempts as attempts_table
from labkit.record.derived import state_intervals

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["fleet_order", "plot_fleet_timeline", "plot_state_timeline"]

SortBy = Literal["outcome", "duration", "device"]
_RESULT_LANE = 4.0
_FIRMWARE_LANE = 5.0
_NO_ATTEMPT = "no attempt"
_GAVE_UP = "gave up"
_UNFINISHED = "unfinished"


def _device_rows(events: pd.DataFrame, device: str) -> pd.DataFrame:
    mask = (events["device"].astype("string") == device).fillna(False).to_numpy(dtype=bool)
    return events.loc[mask].reset_index(drop=True)


def _devices(events: pd.DataFrame) -> list[str]:
    present = events["device"].dropna().astype(str).unique().tolist()
    return sorted(present, key=natural_key)


def _default_device(events: pd.DataFrame) -> str | None:
    """The only device, or the first (natural order) that started an update attempt."""
    devices = _devices(events)
    if len(devices) <= 1:
        return devices[0] if devices else None
    att = attempts_table(events)
    started = sorted(att["device"].astype(str).unique().tolist(), key=natural_key)
    return started[0] if started else devices[0]


def _hatch_color(name: str, color: str) -> dict[str, Any]:
    """``{name: color}`` when this matplotlib can colour hatches apart from edges (3.10+ for
    patches, 3.11+ for collections); otherwise nothing, and hatches take the edge colour."""
    from matplotlib.collections import Collection
    from matplotlib.patches import Patch

    owner = Collection if name == "hatchcolors" else Patch
    return {name: color} if hasattr(owner, "set_hatchcolor") else {}


def _ordinal(n: int) -> str:
    """``"2nd"``, ``"3rd"``, ``"11th"``, ``"21st"``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _one_source(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of one source: the server's when it logged any, else the most frequent one
    (a registration is logged by the server and by the device; draw it once)."""
    sources = rows["source"].astype(str)
    if sources.nunique() <= 1:
        return rows
    keep = "server" if (sources == "server").any() else sources.value_counts().index[0]
    return rows.loc[(sources == keep).to_numpy(dtype=bool)]


def _changes(values: pd.Series) -> np.ndarray:
    """Positions where a value differs from the previous one (the first always counts)."""
    v = values.astype("string").fillna("<NA>").to_numpy(dtype=object)
    if len(v) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, v[1:] != v[:-1]])


def plot_state_timeline(
    events: pd.DataFrame,
    device: str | None = None,
    *,
    ax: Axes | None = None,
    **kwargs: object,
) -> Axes:
    """One device's /5 State over time, with its results, firmware versions and reboots.

    Parameters
    ----------
    events : pandas.DataFrame
        A run's event table (``run.events``), one device or many.
    device : str, optional
        The endpoint to draw. Default: the only device, or else the first device (in natural
        order: sim-2 before sim-10) that started an update attempt.
    ax : matplotlib Axes, optional
        Draw here; a new 10 x 4.5 in figure when omitted.
    **kwargs
        Passed to the State bars (``ax.barh``), e.g. ``height=0.8`` or ``alpha``.

    Returns
    -------
    matplotlib.axes.Axes
        One bar per State interval (lanes ``0 IDLE`` ... ``3 UPDATING``, bar containers labelled
        with the State), one marker per Update Result change other than INITIAL in the "Update
        Result" lane (scatter collections with ``gid`` ``"result:<NAME>"``, the code written
        next to it), firmware versions as text in the "firmware" lane at each change, dotted
        vertical lines at registrations and dashed ones at reboots (``gid`` ``"registered"`` and
        ``"reboot"``). X axis: time since the run's first event.
    """
    ax = new_axes(ax)
    title = "Firmware update state of one device"
    if device is None:
        device = _default_device(events) if len(events) else None
    if device is None or len(events) == 0:
        return no_data(ax, title)
    dev = _device_rows(events, device)
    intervals = state_intervals(dev) if len(dev) else state_intervals(events.iloc[:0])
    if len(intervals) == 0:
        return no_data(ax, f"{device}: firmware update state", f"no /5 State reported by {device}")
    t0 = run_start(events)
    assert t0 is not None
    x_dev = elapsed_seconds(dev["ts"], t0)
    x_lo, x_hi = float(np.nanmin(x_dev)), float(np.nanmax(x_dev))
    per, unit = time_unit(x_hi)
    span = x_hi - x_lo if x_hi > x_lo else max(abs(x_hi), 1e-3)

    # State bands: one lane per State
    start = elapsed_seconds(intervals["start"], t0) / per
    width = np.maximum(intervals["duration_s"].to_numpy(dtype=np.float64) / per, 0.0)
    height = float(kwargs.pop("height", 0.62))  # type: ignore[arg-type]
    codes = intervals["state"].cat.codes.to_numpy()
    for state in State:
        sel = codes == int(state)
        if not sel.any():
            continue
        st = STATE_STYLES[state.name]
        ax.barh(
            np.full(int(sel.sum()), float(state)),
            width[sel],
            left=start[sel],
            height=height,
            color=st.color,
            hatch=st.hatch,
            **_hatch_color("hatchcolor", st.hatch_color),
            edgecolor=st.edge_color,
            linewidth=1.0,
            label=st.label,
            **kwargs,  # type: ignore[arg-type]
        )

    handles: list[object] = []
    # Update Result changes (INITIAL is the reset, not an outcome: not marked)
    res_rows = dev.loc[(dev["kind"] == "fw_result").to_numpy(dtype=bool) & dev["result"].notna()]
    res_rows = res_rows.iloc[_changes(res_rows["result"])]
    res_rows = res_rows.loc[(res_rows["result"] != "INITIAL").to_numpy(dtype=bool)]
    rx = elapsed_seconds(res_rows["ts"], t0) / per
    rnames = res_rows["result"].astype(str).to_numpy()
    for name in sorted(set(rnames), key=lambda n: int(UpdateResult[n])):
        sel = rnames == name
        handles.append(
            ax.scatter(
                rx[sel],
                np.full(int(sel.sum()), _RESULT_LANE),
                s=170,
                marker=result_marker(name),
                color=result_color(name),
                edgecolors="black",
                linewidths=1.0,
                zorder=4,
                label=result_label(name),
                gid=f"result:{name}",
            )
        )
        for x in rx[sel]:
            ax.annotate(
                str(int(UpdateResult[name])),
                (x, _RESULT_LANE),
                xytext=(9, 0),
                textcoords="offset points",
                va="center",
                fontsize=FONT["label"],
                fontweight="bold",
            )

    # firmware version at each change
    fw_rows = dev.loc[
        (dev["kind"] == "fw_version").to_numpy(dtype=bool) & dev["fw_version"].notna()
    ]
    fw_rows = fw_rows.iloc[_changes(fw_rows["fw_version"])]
    fx = elapsed_seconds(fw_rows["ts"], t0) / per
    versions = fw_rows["fw_version"].astype(str).tolist()
    last_x, low = -np.inf, False
    for i, (x, v) in enumerate(zip(fx, versions, strict=True)):
        ax.plot([x], [_FIRMWARE_LANE], marker="|", markersize=16, color="black", mew=2)
        low = (not low) and (x - last_x) * per < 0.15 * span  # too close: step down a line
        last_x = x
        ax.annotate(
            v if i == 0 else f"→ {v}",
            (x, _FIRMWARE_LANE),
            xytext=(6, -15 if low else 0),
            textcoords="offset points",
            va="center",
            fontsize=FONT["label"],
        )

    # registrations and reboots (seen by server and device: one source's rows are drawn)
    for kind, style, label in (
        ("registered", {"linestyle": ":", "color": "#555555", "linewidth": 1.6}, "registered"),
        ("reboot", {"linestyle": "--", "color": "black", "linewidth": 2.0}, "reboot"),
    ):
        rows = _one_source(dev.loc[(dev["kind"] == kind).to_numpy(dtype=bool)])
        for j, x in enumerate(elapsed_seconds(rows["ts"], t0) / per):
            line = ax.axvline(x, zorder=1, gid=kind, label=label if j == 0 else "_", **style)  # type: ignore[arg-type]
            if j == 0:
                handles.append(line)

    lanes = [float(s) for s in State] + [_RESULT_LANE, _FIRMWARE_LANE]
    ax.set_yticks(lanes, [state_label(s) for s in State] + ["Update Result", "firmware"])
    ax.set_ylim(-0.6, _FIRMWARE_LANE + 0.6)
    pad = span * 0.03
    ax.set_xlim((x_lo - pad) / per, (x_hi + pad * 3.5) / per)
    ax.grid(axis="x", color="#DDDDDD")
    if len(versions) >= 2 and versions[-1] != versions[0]:
        fw = f"firmware {versions[0]} → {versions[-1]}"
    elif versions:
        fw = f"firmware stays {versions[0]}"
    else:
        fw = "firmware version unknown"
    style_axes(
        ax,
        title=f"{device}: /5 State over time ({fw})",
        xlabel=f"time since run start ({unit})",
    )
    if handles:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=FONT["legend"],
            frameon=False,
        )
    return ax


# -- fleet ----------------------------------------------------------------------------------


def fleet_order(events: pd.DataFrame, sort_by: SortBy = "outcome") -> pd.DataFrame:
    """Each device's outcome and update time, sorted for a fleet timeline (top row first).

    Parameters
    ----------
    events : pandas.DataFrame
        A run's event table.
    sort_by : {"outcome", "duration", "device"}
        ``outcome``: SUCCESS first, then failures by result code, unfinished attempts, devices
        the policy gave up on, devices that never started one; by duration within each.
        ``duration``: longest update time first. ``device``: natural name order (sim-2 before
        sim-10).

    Returns
    -------
    pandas.DataFrame
        ``device`` (str), ``outcome`` (str: ``"1 SUCCESS"``-style label of the last attempt's
        result, ``"unfinished"``, ``"gave up"`` (the policy gave up before any attempt) or
        ``"no attempt"``), ``outcome_rank`` (int64), ``attempts``
        (int64), ``update_s`` (float64: first attempt start to last attempt end; NaN without an
        attempt). One row per device with events; RangeIndex.
    """
    columns = ["device", "outcome", "outcome_rank", "attempts", "update_s"]
    devices = _devices(events) if len(events) else []
    if not devices:
        return pd.DataFrame(
            {
                c: pd.Series([], dtype=d)
                for c, d in zip(
                    columns, ["object", "object", "int64", "int64", "float64"], strict=True
                )
            }
        )
    att = attempts_table(events)
    att = att.assign(device=att["device"].astype(str))
    by_dev = att.groupby("device", sort=False)
    last = by_dev.tail(1).set_index("device")
    first_start = by_dev["start"].min()
    last_end = by_dev["end"].max()
    n_att = by_dev.size()
    is_give_up = (events["kind"] == "decision").to_numpy(dtype=bool) & (
        events["decision"].astype("string") == "give_up"
    ).fillna(False).to_numpy(dtype=bool)
    gave_up = set(events.loc[is_give_up, "device"].dropna().astype(str))
    rows = []
    for d in devices:
        if d in last.index:
            finished = bool(last.at[d, "finished"])
            result = last.at[d, "result"]
            if finished and not pd.isna(result):
                code = int(UpdateResult[str(result)])
                outcome, rank = result_label(code), code
            else:
                outcome, rank = _UNFINISHED, 20
            span = (last_end[d] - first_start[d]).total_seconds()
            rows.append((d, outcome, rank, int(n_att[d]), float(span)))
        elif d in gave_up:
            rows.append((d, _GAVE_UP, 21, 0, float("nan")))
        else:
            rows.append((d, _NO_ATTEMPT, 22, 0, float("nan")))
    df = pd.DataFrame(rows, columns=columns)
    df["outcome_rank"] = df["outcome_rank"].astype(np.int64)
    df["attempts"] = df["attempts"].astype(np.int64)
    by_name = sorted(range(len(df)), key=lambda i: natural_key(df["device"].iloc[i]))
    name_rank = np.empty(len(df), dtype=np.int64)
    name_rank[by_name] = np.arange(len(df))
    df["_name"] = name_rank
    if sort_by == "outcome":
        df = df.sort_values(["outcome_rank", "update_s", "_name"], na_position="last")
    elif sort_by == "duration":
        df = df.sort_values(["update_s", "_name"], ascending=[False, True], na_position="last")
    elif sort_by == "device":
        df = df.sort_values("_name")
    else:
        raise ValueError(f"sort_by must be 'outcome', 'duration' or 'device', not {sort_by!r}")
    return df.drop(columns="_name").reset_index(drop=True)


def plot_fleet_timeline(
    events: pd.DataFrame,
    *,
    sort_by: SortBy = "outcome",
    max_devices: int | None = None,
    ax: Axes | None = None,
    **kwargs: object,
) -> Axes:
    """One swimlane per device: its /5 State over time and each attempt's result at its end.

    Parameters
    ----------
    events : pandas.DataFrame
        A run's event table (``run.events``).
    sort_by : {"outcome", "duration", "device"}
        Lane order, top to bottom (see :func:`fleet_order`).
    max_devices : int, optional
        Draw only the first ``max_devices`` lanes in that order (the title says so).
    ax : matplotlib Axes, optional
        Draw here; a new figure (10 in wide, taller with more devices, at most 9.5 in) when
        omitted.
    **kwargs
        Passed to the State band collections (e.g. ``alpha``).

    Returns
    -------
    matplotlib.axes.Axes
        One PolyCollection per State present (``gid`` ``"state:<NAME>"``, one rectangle per State
        interval), one scatter collection per final result present (``gid``
        ``"result:<NAME>"``, one marker per finished attempt at its end). Lane labels are the
        device names, thinned to at most 40 written labels for large fleets. The policy's
        "give up" decisions are ✕ markers (``gid`` ``"decision:give_up"``).
    """
    from matplotlib.collections import PolyCollection

    order = fleet_order(events, sort_by) if len(events) else fleet_order(events.iloc[:0])
    n_all = len(order)
    if max_devices is not None:
        order = order.head(max_devices)
    n = len(order)
    if ax is None:
        ax = new_axes(None, (10.0, float(np.clip(1.8 + 0.3 * n, 4.5, 9.5))))
    title = "Fleet timeline: /5 State of every device"
    if n == 0:
        return no_data(ax, title)
    t0 = run_start(events)
    assert t0 is not None
    lane = {d: i for i, d in enumerate(order["device"])}
    intervals = state_intervals(events)
    intervals = intervals.assign(device=intervals["device"].astype(str))
    intervals = intervals.loc[intervals["device"].isin(lane).to_numpy(dtype=bool)]
    span_s = max(float(np.nanmax(elapsed_seconds(events["ts"], t0))), 1e-3)
    per, unit = time_unit(span_s)
    x0 = elapsed_seconds(intervals["start"], t0) / per
    x1 = elapsed_seconds(intervals["end"], t0) / per
    y = intervals["device"].map(lane).to_numpy(dtype=np.float64)
    half = 0.36 if n <= 60 else 0.45
    thin_edges = n > 40
    codes = intervals["state"].cat.codes.to_numpy()
    handles: list[object] = []
    for state in State:
        sel = codes == int(state)
        if not sel.any():
            continue
        st = STATE_STYLES[state.name]
        a, b, c = x0[sel], x1[sel], y[sel]
        verts = np.stack(
            [
                np.column_stack([a, c - half]),
                np.column_stack([a, c + half]),
                np.column_stack([b, c + half]),
                np.column_stack([b, c - half]),
            ],
            axis=1,
        )
        coll = PolyCollection(
            list(verts),
            facecolors=st.color,
            edgecolors=st.edge_color,
            hatch=st.hatch,
            **_hatch_color("hatchcolors", st.hatch_color),
            linewidths=0.3 if thin_edges else 0.8,
            label=st.label,
            gid=f"state:{state.name}",
            **kwargs,  # type: ignore[arg-type]
        )
        ax.add_collection(coll)
        handles.append(coll)

    # each finished attempt's result, at its end
    att = attempts_table(events)
    att = att.assign(device=att["device"].astype(str))
    att = att.loc[
        att["finished"].to_numpy(dtype=bool) & att["device"].isin(lane).to_numpy(dtype=bool)
    ]
    ax_ = elapsed_seconds(att["end"], t0) / per
    ay = att["device"].map(lane).to_numpy(dtype=np.float64)
    names = att["result"].astype(str).to_numpy()
    size = float(np.clip(2400 / max(n, 1), 12, 110))
    for name in sorted(set(names), key=lambda r: int(UpdateResult[r])):
        sel = names == name
        handles.append(
            ax.scatter(
                ax_[sel],
                ay[sel],
                s=size,
                marker=result_marker(name),
                color=result_color(name),
                edgecolors="black",
                linewidths=0.6 if n > 40 else 1.0,
                zorder=4,
                label=result_label(name),
                gid=f"result:{name}",
            )
        )

    # the policy's "give up" decisions (devices that may never have started an attempt)
    dec = events.loc[(events["kind"] == "decision").to_numpy(dtype=bool)]
    dec = dec.loc[
        (dec["decision"].astype("string") == "give_up").fillna(False).to_numpy(dtype=bool)
    ]
    dec = dec.loc[dec["device"].astype("string").isin(lane).fillna(False).to_numpy(dtype=bool)]
    if len(dec):
        give_up = DECISION_STYLES["give_up"]
        handles.append(
            ax.scatter(
                elapsed_seconds(dec["ts"], t0) / per,
                dec["device"].astype(str).map(lane).to_numpy(dtype=np.float64),
                s=size,
                marker=give_up.marker,
                color=give_up.color,
                edgecolors="black",
                linewidths=0.6 if n > 40 else 1.0,
                zorder=4,
                label="policy gave up",
                gid="decision:give_up",
            )
        )

    ax.set_xlim(-0.01 * span_s / per, span_s * 1.02 / per)
    extra = max(0.0, (3 - n) / 2)  # keep lanes lane-sized when there are only one or two
    ax.set_ylim(n - 0.5 + extra, -0.5 - extra)  # first device on top
    step = thin_labels(n)
    ticks = np.arange(0, n, step)
    label_size = FONT["tick"] if n <= 30 else max(7.0, min(FONT["tick"], 260 / len(ticks)))
    ax.set_yticks(ticks, [str(order["device"].iloc[i]) for i in ticks], fontsize=label_size)
    ax.tick_params(axis="x", labelsize=FONT["tick"])
    ax.grid(axis="x", color="#DDDDDD")
    shown = f" (first {n} of {n_all})" if n < n_all else ""
    sort_text = {"outcome": "outcome", "duration": "update time", "device": "name"}[sort_by]
    ax.set_title(
        wrap_title(
            f"Fleet timeline: /5 State of {plural(n_all, 'device')}{shown}, sorted by {sort_text}"
        ),
        fontsize=FONT["title"],
    )
    ax.set_xlabel(f"time since run start ({unit})", fontsize=FONT["label"])
    ylabel = "device" if step == 1 else f"device (every {_ordinal(step)} named)"
    ax.set_ylabel(ylabel, fontsize=FONT["label"])
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=FONT["legend"],
        title="State band / attempt result",
        title_fontsize=FONT["legend"],
        frameon=False,
    )
    return ax
