"""labkit.plots.sweep: error bars, the Pareto scatter and the heatmap, readable in grey."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from labkit.plots.sweep import plot_pareto, plot_rate_by_param, plot_sweep_heatmap


def table() -> pd.DataFrame:
    rows = []
    for pol in ("always", "threshold"):
        for thr in (-115, -105):
            f = 0.1 if pol == "always" else 0.02 + (thr + 115) / 1000
            p90 = 3600.0 if pol == "always" else 5400.0 + 30 * (thr + 115)
            rows.append({"point": f"{pol}{thr}", "policy": pol, "min_rssi_dbm": thr,
                         "n_seeds": 3, "failure_rate": f, "failure_rate_low": f * 0.8,
                         "failure_rate_high": f * 1.2, "p90_s": p90, "p90_low": p90 * 0.9,
                         "p90_high": p90 * 1.1})
    t = pd.DataFrame(rows)
    from labkit.sweep.analysis import pareto_front

    t["pareto"] = pareto_front(t)
    return t


def test_rate_by_param_draws_error_bars_per_group_with_distinct_markers() -> None:
    ax = plot_rate_by_param(table(), "min_rssi_dbm", by="policy")
    lines = [c.lines[0] for c in ax.containers]  # one ErrorbarContainer per group
    assert len(lines) == 2
    assert lines[0].get_marker() != lines[1].get_marker()
    assert lines[0].get_linestyle() != lines[1].get_linestyle()
    assert len(ax.collections) >= 2  # the error bars
    ys = np.concatenate([ln.get_ydata() for ln in lines])
    assert np.isclose(ys.max(), 10.0)  # percent
    assert "interval" in ax.get_title()


def test_pareto_marks_the_front() -> None:
    t = table()
    ax = plot_pareto(t, label=["policy", "min_rssi_dbm"])
    texts = [a.get_text() for a in ax.texts]
    assert "always -115" in texts
    assert any("Pareto front" in (h.get_label() or "") for h in ax.get_legend().legend_handles)
    assert t["pareto"].any() and not t["pareto"].all()


def test_heatmap_writes_every_value() -> None:
    ax = plot_sweep_heatmap(table(), "min_rssi_dbm", "policy")
    texts = [a.get_text() for a in ax.texts]
    assert len(texts) == 4 and all("[" in s for s in texts)
    assert ax.images[0].get_cmap().name == "cividis"


def test_empty_tables_give_a_note() -> None:
    empty = table().iloc[0:0]
    assert plot_pareto(empty).texts[0].get_text() == "no points to compare"
