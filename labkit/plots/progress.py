"""Download progress and time to success.

:func:`plot_download_progress` draws, per device, the bytes received over time from the run's
``block`` rows (a failed transfer ends where it broke off; a retry starts again at zero).
:func:`plot_time_to_success` draws, per group, the share of update attempts that succeeded
within a given time (a Kaplan–Meier curve from :func:`labkit.record.time_to_success`: attempts
that failed or never finished count as "not yet succeeded" up to their end, then leave the
estimate). :func:`download_progress` is the pure table behind the first plot. Nothing here
calls ``plt.show()`` or changes matplotlib's global settings.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from labkit.plots.style import FONT, group_style
from labkit.record.derived import attempts as attempts_table
from labkit.record.derived import time_to_success

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["download_progress", "plot_download_progress", "plot_time_to_success"]

_SOURCE_PREFERENCE = ("server", "repo", "device")


def download_progress(events: pd.DataFrame) -> pd.DataFrame:
    """Cumulative bytes per device and transfer, from the run's ``block`` rows.

    Rows marked ``detail == "retransmission"`` and repeats of a block number within a transfer
    are not counted again. When a device's blocks were logged by several sources (the server
    sending, the device receiving), only the source with the most rows is used. A transfer
    starts at a device's first block row and again whenever the block number falls back (to 0
    or below the previous one): a retry after a failure.

    Returns
    -------
    pandas.DataFrame
        ``device`` (str), ``transfer`` (int64, 1, 2 ... per device), ``protocol`` (string:
        the first ``protocol`` logged on the transfer's rows, NA if none), ``ts``
        (datetime64[us, UTC]), ``transfer_start`` (datetime64[us, UTC], the transfer's first
        block), ``block`` (Int64), ``bytes`` (int64, 0 when not logged), ``cumulative_bytes``
        (int64, within the transfer). In device (natural) and ``seq`` order; RangeIndex.
    """
    cols = [
        "device",
        "transfer",
        "protocol",
        "ts",
        "transfer_start",
        "block",
        "bytes",
        "cumulative_bytes",
    ]
    is_block = (events["kind"] == "block").to_numpy(dtype=bool) & events["device"].notna().to_numpy(
        dtype=bool
    )
    retrans = (events["detail"] == "retransmission").fillna(False).to_numpy(dtype=bool)
    rows = events.loc[
        is_block & ~retrans, ["seq", "ts", "device", "source", "protocol", "block", "bytes"]
    ]
    if len(rows) == 0:
        ts_dtype = events["ts"].dtype
        return pd.DataFrame(
            {
                "device": pd.Series([], dtype=object),
                "transfer": pd.Series([], dtype=np.int64),
                "protocol": pd.Series([], dtype="string"),
                "ts": pd.Series([], dtype=ts_dtype),
                "transfer_start": pd.Series([], dtype=ts_dtype),
                "block": pd.Series([], dtype="Int64"),
                "bytes": pd.Series([], dtype=np.int64),
                "cumulative_bytes": pd.Series([], dtype=np.int64),
            }
        )[cols]
    rows = rows.assign(device=rows["device"].astype(str), source=rows["source"].astype(str))
    # one source per device: the one that logged most rows
    per_source = rows.groupby(["device", "source"], observed=True).size().reset_index(name="n")
    per_source["pref"] = (
        per_source["source"]
        .map({s: i for i, s in enumerate(_SOURCE_PREFERENCE)})
        .fillna(len(_SOURCE_PREFERENCE))
    )
    best = per_source.sort_values(["device", "n", "pref"], ascending=[True, False, True])
    best = best.drop_duplicates("device")[["device", "source"]]
    rows = rows.merge(best, on=["device", "source"], how="inner")
    order = sorted(rows["device"].unique(), key=natural_key)
    rank = {d: i for i, d in enumerate(order)}
    rows = rows.assign(_dev=rows["device"].map(rank)).sort_values(["_dev", "seq"], kind="stable")
    rows = rows.reset_index(drop=True)
    block = rows["block"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    dev = rows["_dev"].to_numpy()
    first_of_dev = np.r_[True, dev[1:] != dev[:-1]]
    prev = np.r_[np.nan, block[:-1]]
    falls_back = (
        ~np.isnan(block) & ~np.isnan(prev) & (block <= prev) & ((block == 0) | (block < prev))
    )
    new_transfer = first_of_dev | (falls_back & ~first_of_dev)
    transfer_global = np.cumsum(new_transfer)
    dev_first_transfer = pd.Series(transfer_global).groupby(dev).transform("min").to_numpy()
    transfer = transfer_global - dev_first_transfer + 1
    nbytes = rows["bytes"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    nbytes = np.where(np.isnan(nbytes), 0, nbytes).astype(np.int64)
    keyed = pd.DataFrame({"g": transfer_global, "b": block})
    repeat = keyed.duplicated().to_numpy() & ~np.isnan(block)
    nbytes = np.where(repeat, 0, nbytes)
    cumulative = pd.Series(nbytes).groupby(transfer_global).cumsum().to_numpy(dtype=np.int64)
    keep = ~repeat
    start = rows["ts"].groupby(transfer_global).transform("min")
    protocol = rows["protocol"].astype("string").groupby(transfer_global).transform("first")
    out = pd.DataFrame(
        {
            "device": rows["device"].to_numpy(dtype=object),
            "transfer": transfer.astype(np.int64),
            "protocol": protocol.astype("string"),
            "ts": rows["ts"],
            "transfer_start": start,
            "block": rows["block"].astype("Int64"),
            "bytes": nbytes,
            "cumulative_bytes": cumulative,
        }
    )
    return out.loc[keep].reset_index(drop=True)


def _byte_unit(max_bytes: float) -> tuple[float, str]:
    if max_bytes >= 10 * 1024 * 1024:
        return 1024.0 * 1024.0, "MiB"
    if max_bytes >= 10 * 1024:
        return 1024.0, "KiB"
    return 1.0, "bytes"


def plot_download_progress(
    events: pd.DataFrame,
    *,
    devices: Sequence[str] | None = None,
    align: Literal["transfer", "run"] = "transfer",
    by: Literal["device", "protocol"] = "device",
    ax: Axes | None = None,
    **kwargs: Any,
) -> Axes:
    """Bytes downloaded over time, one line per device.

    Parameters
    ----------
    events : pandas.DataFrame
        A run's event table (its ``block`` rows).
    devices : list of str, optional
        Only these devices (default all that downloaded anything).
    align : {"transfer", "run"}
        ``"transfer"``: x is the time since each transfer's first block, so transfers started
        at different times compare directly; ``"run"``: time since the run's first event.
    by : {"device", "protocol"}
        What a line's colour and style tell: the device (up to 8 devices; more share one
        colour), or the transfer protocol of the device's first transfer (CoAP vs HTTP).
    ax : matplotlib Axes, optional
        Draw here; a new 10 x 4.5 in figure when omitted.
    **kwargs
        Passed to ``ax.plot`` (e.g. ``alpha``, ``linewidth``).

    Returns
    -------
    matplotlib.axes.Axes
        One line per device (``gid`` ``"progress:<device>"``; a device's transfers are pieces
        of its line separated by gaps), each transfer's end marked (scatter ``gid``
        ``"transfer-end"``), a dotted line at the largest transfer's size. With ``by="device"``
        up to 8 devices get their own colour, line style and legend entry, more share one
        colour; with ``by="protocol"`` each protocol has its colour, style and legend entry.
        When no block row logged its size, the y axis counts blocks instead of bytes.
    """
    ax = new_axes(ax)
    title = "Firmware download progress"
    if len(events) == 0:
        return no_data(ax, title)
    prog = download_progress(events)
    if devices is not None:
        wanted = {str(d) for d in devices}
        prog = prog.loc[prog["device"].isin(wanted).to_numpy(dtype=bool)]
    if len(prog) == 0:
        return no_data(ax, title, "no firmware blocks were transferred")
    t0 = run_start(events)
    assert t0 is not None
    if align == "transfer":
        x_s = (prog["ts"] - prog["transfer_start"]).dt.total_seconds().to_numpy(dtype=np.float64)
        xlabel_what = "time since the transfer's first block"
    elif align == "run":
        x_s = elapsed_seconds(prog["ts"], t0)
        xlabel_what = "time since run start"
    else:
        raise ValueError(f"align must be 'transfer' or 'run', not {align!r}")
    per, unit = time_unit(float(np.nanmax(x_s)))
    x = x_s / per
    ymax = float(prog["cumulative_bytes"].max())
    if ymax > 0:
        bper, bunit = _byte_unit(ymax)
        y = prog["cumulative_bytes"].to_numpy(dtype=np.float64) / bper
        what = "bytes"
    else:  # blocks logged without sizes: count them instead
        counted = prog.groupby(["device", "transfer"], sort=False).cumcount() + 1
        y = counted.to_numpy(dtype=np.float64)
        bper, bunit, ymax = 1.0, "blocks", float(y.max())
        what = "blocks"
    names = sorted(prog["device"].unique(), key=natural_key)
    many = len(names) > 8
    crowded = len(names) > 50  # thinner, lighter lines so the bundle stays readable
    if by not in ("device", "protocol"):
        raise ValueError(f"by must be 'device' or 'protocol', not {by!r}")
    first_protocol = (
        prog.groupby("device", sort=False)["protocol"].first().fillna("unknown").astype(str)
    )
    protocols = sorted(set(first_protocol))
    seen_protocols: set[str] = set()
    dev_col = prog["device"].to_numpy(dtype=object)
    transfer = prog["transfer"].to_numpy()
    ends_x: list[float] = []
    ends_y: list[float] = []
    for i, name in enumerate(names):
        sel = np.flatnonzero(dev_col == name)
        xs: list[float] = []
        ys: list[float] = []
        for tr in np.unique(transfer[sel]):
            part = sel[transfer[sel] == tr]
            if xs:
                xs.append(np.nan)
                ys.append(np.nan)
            x_start = (
                0.0
                if align == "transfer"
                else float(elapsed_seconds(prog["transfer_start"].iloc[part[:1]], t0)[0] / per)
            )
            xs += [x_start, *x[part]]
            ys += [0.0, *y[part]]
            ends_x.append(float(x[part[-1]]))
            ends_y.append(float(y[part[-1]]))
        if by == "protocol":
            proto = first_protocol[name]
            gs = group_style(protocols.index(proto))
            kw: dict[str, Any] = {
                "color": gs["color"],
                "linestyle": gs["linestyle"],
                "linewidth": (0.9 if crowded else 1.4) if many else 2.2,
                "alpha": (0.45 if crowded else 0.7) if many else 1.0,
            }
            label = "_" if proto in seen_protocols else f"{proto} (one line per device)"
            seen_protocols.add(proto)
        elif many:
            kw = {"color": "#0072B2", "linewidth": 0.9 if crowded else 1.2, "alpha": 0.55}
            label = "one line per device" if i == 0 else "_"
        else:
            gs = group_style(i)
            kw = {"color": gs["color"], "linestyle": gs["linestyle"], "linewidth": 2.2}
            label = name
        kw.update(kwargs)
        ax.plot(xs, ys, label=label, gid=f"progress:{name}", **kw)
    ax.scatter(
        ends_x,
        ends_y,
        marker="o",
        s=22,
        color="black",
        zorder=4,
        gid="transfer-end",
        label="transfer ended (below the line: broken off)",
    )
    ax.axhline(
        ymax / bper,
        color="#555555",
        linestyle=":",
        linewidth=1.5,
        label=f"largest transfer: {ymax / bper:,.0f} {bunit}",
    )
    ax.set_ylim(0, ymax / bper * 1.08)
    ax.set_xlim(left=0 if align == "transfer" else None)
    ax.grid(color="#E5E5E5")
    n_tr = int(prog.groupby(["device", "transfer"]).ngroups)
    style_axes(
        ax,
        title=f"{title}: {plural(len(names), 'device')}, {plural(n_tr, 'transfer')}",
        xlabel=f"{xlabel_what} ({unit})",
        ylabel=f"bytes received ({bunit})" if what == "bytes" else "blocks received",
    )
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=FONT["legend"],
        frameon=False,
    )
    return ax


def plot_time_to_success(
    events_or_attempts: pd.DataFrame,
    *,
    by: str | Sequence[str] | None = None,
    kind: Literal["cdf", "km"] = "cdf",
    ax: Axes | None = None,
    **kwargs: Any,
) -> Axes:
    """Share of update attempts that succeeded within a given time, one step line per group.

    Parameters
    ----------
    events_or_attempts : pandas.DataFrame
        A run's event table, or an attempts table (:func:`labkit.record.attempts`).
    by : str or list of str, optional
        One curve per group (``method``, ``wave``, ``policy`` ...); one curve when omitted.
    kind : {"cdf", "km"}
        ``"cdf"`` (default): the share of *all* attempts that had succeeded by time t (failed
        and unfinished attempts never succeed, so the curve ends at the success rate).
        ``"km"``: the Kaplan–Meier estimate ``1 - surviving`` of
        :func:`labkit.record.time_to_success`, which treats failed and unfinished attempts as
        censored at their end (marked ``|``): "how fast do updates succeed, when they do".
    ax : matplotlib Axes, optional
        Draw here; a new 10 x 4.5 in figure when omitted.
    **kwargs
        Passed to ``ax.step`` (e.g. ``linewidth``).

    Returns
    -------
    matplotlib.axes.Axes
        One step line per group (``gid`` ``"tts:<group>"``) starting at (0, 0 %); with
        ``kind="km"`` censored attempts are marked on the line (scatter ``gid``
        ``"censored:<group>"``).
    """
    if kind not in ("cdf", "km"):
        raise ValueError(f"kind must be 'cdf' or 'km', not {kind!r}")
    ax = new_axes(ax)
    title = "Time to a successful update"
    data = events_or_attempts
    if len(data) and is_events(data):
        data = attempts_table(data)
    if len(data) == 0:
        return no_data(ax, title, "no update attempts in this run")
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    table = time_to_success(data, by=keys)
    if len(table) == 0:
        return no_data(ax, title, "no attempt has a duration")
    groups = (
        list(table[keys].drop_duplicates().itertuples(index=False, name=None)) if keys else [()]
    )
    per, unit = time_unit(float(table["t_s"].max()))
    for gi, group in enumerate(groups):
        sel = np.ones(len(table), dtype=bool)
        for k, v in zip(keys, group, strict=True):
            c = table[k]
            sel &= (c.isna() if pd.isna(v) else (c == v)).to_numpy(dtype=bool)
        sub = table.loc[sel]
        t = sub["t_s"].to_numpy(dtype=np.float64) / per
        n_success = sub["n_success"].to_numpy(dtype=np.float64)
        n = int(n_success.sum() + sub["n_censored"].sum())
        ok = int(n_success.sum())
        if kind == "cdf":
            frac = np.cumsum(n_success) / max(n, 1) * 100
        else:
            frac = sub["success_fraction"].to_numpy(dtype=np.float64) * 100
        name = ", ".join("n/a" if pd.isna(v) else str(v) for v in group) if keys else "all"
        rate = f"{ok} of {n} attempts succeeded ({ok / max(n, 1):.0%})"
        label = f"{name}: {rate}" if keys else rate
        gs = group_style(gi)
        kw: dict[str, Any] = {"color": gs["color"], "linestyle": gs["linestyle"], "linewidth": 2.6}
        kw.update(kwargs)
        ax.step(np.r_[0.0, t], np.r_[0.0, frac], where="post", label=label, gid=f"tts:{name}", **kw)
        cens = sub["n_censored"].to_numpy() > 0
        if kind == "km" and cens.any():
            ax.scatter(
                t[cens],
                frac[cens],
                marker="|",
                s=160,
                linewidths=2,
                color=kw["color"],
                zorder=4,
                gid=f"censored:{name}",
                label="failed / unfinished (censored)" if gi == 0 else "_",
            )
    ax.set_ylim(-2, 102)
    ax.set_xlim(left=0)
    ax.grid(color="#E5E5E5")
    split = f", by {', '.join(keys)}" if keys else ""
    if kind == "cdf":
        heading = f"{title}{split}"
        ylabel = "attempts succeeded within t (%)"
    else:
        heading = f"{title}{split} (Kaplan–Meier, failures censored)"
        ylabel = "estimated share succeeded (%)"
    style_axes(
        ax, title=heading, xlabel=f"t: time since the attempt started ({unit})", ylabel=ylabel
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=FONT["legend"], frameon=False)
    return ax
