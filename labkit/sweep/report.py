"""``labkit report SWEEP_DIR --out DIR``: a sweep's plots as PNG files and a summary table.

:func:`write_sweep_report` reads a sweep (:func:`labkit.sweep.analysis.read_sweep`), writes
``summary.csv`` (one row per point, :func:`~labkit.sweep.analysis.summary`), ``rates.csv``
(every Update Result per point with intervals), the plots (failure rate and p90 time per
value of each varied parameter, the Pareto scatter, a heatmap when two parameters vary) and
``summary.md``: the sweep's identity, the best point for the goal with its interval, the
table, failed cells with their errors, and every picture with a sentence. It only reads the
sweep.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from labkit.sweep.analysis import Sweep, best_point, parse_goal, read_sweep, result_rates, summary
from labkit.sweep.progress import format_s
from labkit.sweep.store import failed_cells

__all__ = ["DEFAULT_GOAL", "write_sweep_report"]

#: The goal ranked in the report unless told otherwise.
DEFAULT_GOAL = "minimise failure_rate"


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f} %"


def _time(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format_s(float(v))


def _value(x: Any) -> Any:
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return int(x) if isinstance(x, float) and x.is_integer() else x


def _md_table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    sep = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


def _readable(table: pd.DataFrame, varied: list[str]) -> pd.DataFrame:
    out = pd.DataFrame({"point": table["point"]})
    for v in varied:
        out[v] = table[v].map(_value)
    out["seeds"] = table["n_seeds"]
    out["devices"] = table["n_devices"]
    for name, col in (("not updated", "failure_rate"), ("Result 4", "result_4_rate")):
        out[name] = [f"{_pct(v)} [{_pct(lo)}–{_pct(hi)}]" for v, lo, hi in
                     zip(table[col], table[f"{col}_low"], table[f"{col}_high"], strict=True)]
    for name, col, base in (("median time", "median_s", "median"), ("p90 time", "p90_s", "p90")):
        out[name] = [f"{_time(v)} [{_time(lo)}–{_time(hi)}]" for v, lo, hi in
                     zip(table[col], table[f"{base}_low"], table[f"{base}_high"], strict=True)]
    out["Pareto"] = table["pareto"].map({True: "yes", False: ""})
    return out


def write_sweep_report(
    sweep_or_path: Sweep | str | Path,
    out_dir: str | Path,
    *,
    goal: str = DEFAULT_GOAL,
    dpi: int = 130,
) -> list[Path]:
    """Write the sweep's plots, CSV tables and ``summary.md`` into ``out_dir``; returns the
    files written (``summary.md`` last)."""
    import matplotlib.pyplot as plt

    from labkit.plots.sweep import plot_pareto, plot_rate_by_param, plot_sweep_heatmap

    sweep = sweep_or_path if isinstance(sweep_or_path, Sweep) else read_sweep(sweep_or_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = summary(sweep)
    varied = [v for v in sweep.varied if v in table.columns]
    written: list[Path] = []
    table.to_csv(out / "summary.csv", index=False)
    result_rates(sweep).to_csv(out / "rates.csv", index=False)
    written += [out / "summary.csv", out / "rates.csv"]
    pictures: list[tuple[str, str, Callable[[], Any]]] = []
    others = varied[1:2]
    for param in varied[:2]:
        by = next((v for v in varied if v != param), None)
        pictures.append((f"failure_rate_by_{param}.png",
                         f"Share of devices not updated per {param}"
                         + (f", one line per {by}" if by else "")
                         + "; bars are 95 % bootstrap intervals over the seeds.",
                         partial(plot_rate_by_param, table, param, by=by)))
        pictures.append((f"p90_by_{param}.png",
                         f"p90 time to update (campaign start to SUCCESS) per {param}.",
                         partial(plot_rate_by_param, table, param, rate="p90_s", by=by)))
    pictures.append(("pareto.png",
                     "Each point's failure rate against its p90 time to update; filled "
                     "points are on the Pareto front (no other point is better on both).",
                     lambda: plot_pareto(table, label=varied)))
    if len(varied) >= 2 and others:
        pictures.append(("heatmap.png",
                         f"Failure rate over {varied[0]} and {varied[1]}, value and interval "
                         "in each cell.",
                         lambda: plot_sweep_heatmap(table, varied[0], varied[1])))
    captions: list[tuple[Path, str]] = []
    for name, caption, draw in pictures:
        ax = draw()
        fig = ax.figure
        try:
            fig.savefig(out / name, dpi=dpi, facecolor="white")
            captions.append((out / name, caption))
            written.append(out / name)
        finally:
            plt.close(fig)
    metric, where = parse_goal(goal)
    ranked = best_point(table, metric, where=where)
    lines = [f"# Sweep {sweep.path.name}", ""]
    m = sweep.manifest
    lines += [f"- cells: {len(sweep.done)} done of {len(sweep.cells)} "
              f"({m.get('points')} points x {len(m.get('seeds', []))} seeds)",
              f"- varied: {', '.join(varied) or 'nothing'}; fixed: {m['grid'].get('fixed')}",
              f"- clock: {m.get('clock')}; executor: {m.get('executor')}; wall "
              f"{format_s(m.get('wall_s'))}",
              f"- versions: {m.get('versions')}", ""]
    lines += [f"## Best point: {goal}", ""]
    if len(ranked):
        b = ranked.iloc[0]
        params = ", ".join(f"{v}={_value(b[v])}" for v in varied if not pd.isna(b[v]))
        tied = ranked.loc[ranked.get("overlaps_best", pd.Series(False, index=ranked.index))
                          .astype(bool) & (ranked["rank"] > 1), "point"].tolist()
        lines += [f"**{params or b['point']}**: {metric} {b[metric]:.4g} "
                  f"[{b.get(f'{metric}_low', float('nan')):.4g}–"
                  f"{b.get(f'{metric}_high', float('nan')):.4g}], p90 {_time(b['p90_s'])}.",
                  "",
                  (f"{len(tied)} other point(s) have intervals overlapping it: "
                   f"{', '.join(tied)} — the data do not tell them apart." if tied else
                   "No other point's interval overlaps it."), ""]
    else:
        lines += ["No point satisfies the goal's condition.", ""]
    lines += ["## Points", "", _md_table(_readable(table, varied)), ""]
    failed = failed_cells(sweep.path)
    if failed:
        lines += ["## Failed cells", ""]
        for cid, rec in sorted(failed.items()):
            lines += [f"- `{cid}` {rec.get('params')} seed {rec.get('seed')}: "
                      f"{rec.get('error')}"]
        lines.append("")
    lines += ["## Pictures", ""]
    for path, caption in captions:
        lines += [f"![{path.name}]({path.name})", "", caption, ""]
    summary_md = out / "summary.md"
    summary_md.write_text("\n".join(lines), encoding="utf-8")
    written.append(summary_md)
    return written
