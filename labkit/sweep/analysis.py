"""Reading a sweep back and comparing its points, with uncertainty.

:func:`read_sweep` opens a sweep directory (:mod:`labkit.sweep.store` layout) as a
:class:`Sweep`: its manifest, its cells, the per-device table of every done cell and, on
demand, the events of all its runs (pyarrow datasets read in place; the functions return
pandas frames).

The comparison is per **point** (a parameter combination) across its seeds:

- :func:`result_rates`: for every Update Result that occurs in the sweep (and ``none``: no
  final result), its share of the point's devices with a bootstrap interval;
- :func:`time_to_update`: median and p90 of the time from the campaign's start until a
  device's SUCCESS, with intervals;
- :func:`summary`: one row per point: success, failure and Result 4 rates, median and p90
  time to update, the campaign's completion time, each with its interval, and whether the
  point is on the failure-rate versus time Pareto front (:func:`pareto_front`);
- :func:`best_point`: the points ranked for a stated goal ("fewest failures with p90 under
  2 h"), saying whether the winner's interval overlaps the runner-up's.

Intervals are seeded percentile bootstraps over *seeds* (a cluster bootstrap: a resample
draws whole campaigns, since devices of one campaign share its link conditions and
scheduling). With a handful of seeds they are rough and rather too narrow; a point with one
seed gets an interval of zero width, and ``n_seeds`` is always in the table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit.sweep.store import DatasetError, done_cells, read_manifest

__all__ = [
    "Sweep",
    "best_point",
    "cell_result_counts",
    "pareto_front",
    "point_label",
    "read_sweep",
    "result_rates",
    "summary",
    "time_to_update",
]

#: Bootstrap resamples and the interval's level used unless told otherwise.
N_BOOT = 1000
LEVEL = 0.95
NO_RESULT = "none"


@dataclass
class Sweep:
    """A sweep on disk: ``path``, ``manifest`` (``sweep.json``), ``cells`` (one row per cell
    of the grid: cell, point, seed, parameters, status, wall_s ...) and ``varied`` (the
    parameter names that differ between points)."""

    path: Path
    manifest: dict[str, Any]
    cells: pd.DataFrame

    @property
    def varied(self) -> list[str]:
        grid = self.manifest.get("grid", {})
        return [str(v) for v in grid.get("varied", [])]

    @property
    def done(self) -> list[str]:
        return self.cells.loc[self.cells["status"] == "done", "cell"].astype(str).tolist()

    def devices(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Per device of every done cell: ``cell``, ``point``, ``seed``, the parameters and
        the campaign's verdict (``status``, ``result`` code, ``result_name``, ``finished_s``
        ...). Read from ``devices/`` in place."""
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        folder = self.path / "devices"
        if not folder.is_dir() or not self.done:
            return pd.DataFrame({"cell": pd.Series([], dtype="string")})
        data = ds.dataset(folder, format="parquet", partitioning="hive")
        filt = pc.field("cell").isin(self.done)
        table = data.to_table(columns=list(columns) if columns else None, filter=filt)
        frame = table.to_pandas()
        if "cell" in frame.columns:
            frame["cell"] = frame["cell"].astype("string")
        return frame

    def events(self, columns: Sequence[str] | None = None, filter: Any = None) -> pd.DataFrame:
        """The events of every done cell's run, with ``cell`` (the run schema's columns; read
        in place from ``events/``; ``filter`` a pyarrow compute expression)."""
        table = self.events_table(columns, filter)
        return table.to_pandas()

    def events_table(self, columns: Sequence[str] | None = None, filter: Any = None) -> Any:
        """:meth:`events` as a pyarrow Table (no pandas conversion)."""
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        data = ds.dataset(self.path / "events", format="parquet", partitioning="hive")
        expr = pc.field("cell").isin(self.done)
        if filter is not None:
            expr = expr & filter
        return data.to_table(columns=list(columns) if columns else None, filter=expr)

    def result_counts(self, kind: str = "campaign", *, engine: str = "auto") -> pd.DataFrame:
        """How the update attempts of every run ended, per cell: ``cell``, ``result``,
        ``code``, ``count``, from the events of all runs at once (:func:`cell_result_counts`:
        the campaign's verdicts, one per device and attempt, by default)."""
        return cell_result_counts(self, kind, engine=engine)

    def __repr__(self) -> str:
        return (f"<Sweep {self.path}: {len(self.done)}/{len(self.cells)} cells done, "
                f"varied {self.varied}>")


def read_sweep(path: str | Path) -> Sweep:
    """Open a sweep directory written by :func:`labkit.sweep.run_sweep`."""
    root = Path(path)
    manifest = read_manifest(root)
    cells_path = root / "cells.parquet"
    if cells_path.is_file():
        cells = pd.read_parquet(cells_path)
    else:  # a sweep still running: build the table from the manifest and done records
        done = done_cells(root)
        rows = [{"cell": c["cell"], "point": c["point"], "seed": c["seed"], **c["params"],
                 "status": "done" if c["cell"] in done else c.get("status", "pending")}
                for c in manifest.get("cells", [])]
        cells = pd.DataFrame(rows)
    if "cell" not in cells.columns:
        raise DatasetError(f"{root}: the sweep lists no cells")
    return Sweep(path=root, manifest=manifest, cells=cells)


def _chunk_counts(kind_chunk: Any, result_chunk: Any, kind: str) -> dict[str, int]:
    """Result name -> count over the rows of one chunk whose kind is ``kind``: on the
    dictionary indices when both columns are dictionary-encoded (no string is decoded)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(kind_chunk.type) and pa.types.is_dictionary(result_chunk.type):
        kinds = kind_chunk.dictionary.to_pylist()
        if kind not in kinds:
            return {}
        names = result_chunk.dictionary.to_pylist()
        k = pc.fill_null(kind_chunk.indices, -1).to_numpy()
        r = pc.fill_null(result_chunk.indices, -1).to_numpy()
        picked = r[(k == kinds.index(kind)) & (r >= 0)]
        counts = np.bincount(picked, minlength=len(names))
        return {str(names[i]): int(counts[i]) for i in np.flatnonzero(counts)}
    mask = pc.and_(pc.equal(kind_chunk.cast(pa.string()), kind), pc.is_valid(result_chunk))
    values = pc.value_counts(pc.filter(result_chunk.cast(pa.string()), mask))
    return {str(v["values"]): int(v["counts"]) for v in values.to_pylist()}


def _duckdb_counts(sweep: Sweep, kind: str) -> list[tuple[str, str, int]]:
    import duckdb

    files = [str(p) for c in sweep.done
             for p in sorted((sweep.path / "events" / f"cell={c}").glob("*.parquet"))]
    if not files:
        return []
    con = duckdb.connect()
    try:
        rows = con.execute(
            "select cell, result, count(*) from read_parquet(?, hive_partitioning=true) "
            "where kind = ? and result is not null group by cell, result", [files, kind]
        ).fetchall()
    finally:
        con.close()
    return [(str(c), str(r), int(n)) for c, r, n in rows]


def cell_result_counts(sweep: Sweep, kind: str = "campaign", *,
                       engine: str = "auto") -> pd.DataFrame:
    """Update Result counts per cell over the events of every run: the ``kind`` rows carrying
    a result (``campaign``: the campaign's verdicts; ``fw_result``: every /5/0/5 value
    recorded); returned as pandas: ``cell``, ``result``, ``code``, ``count``, sorted by cell
    and code.

    ``engine``: ``"duckdb"`` (one SQL query over the done cells' files, multi-threaded; DuckDB
    is a runtime dependency), ``"pyarrow"`` (each cell's two columns read with pyarrow and
    counted on their dictionary codes with numpy, cells in threads; about 2.5x DuckDB's time,
    for an environment without DuckDB), or ``"auto"``: DuckDB when it is importable.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    from labkit.record.schema import RESULT_NAMES

    if engine not in ("auto", "duckdb", "pyarrow"):
        raise ValueError(f"engine must be auto, duckdb or pyarrow, not {engine!r}")
    if engine == "auto":
        import importlib.util

        engine = "duckdb" if importlib.util.find_spec("duckdb") is not None else "pyarrow"

    def one(cell: str) -> list[tuple[str, str, int]]:
        folder = sweep.path / "events" / f"cell={cell}"
        totals: dict[str, int] = {}
        for path in sorted(folder.glob("*.parquet")):
            table = pq.read_table(path, columns=["kind", "result"], use_threads=False)
            for kc, rc in zip(table["kind"].chunks, table["result"].chunks, strict=True):
                for name, n in _chunk_counts(kc, rc, kind).items():
                    totals[name] = totals.get(name, 0) + n
        return [(cell, name, n) for name, n in totals.items()]

    cells = sweep.done
    if engine == "duckdb":
        rows = _duckdb_counts(sweep, kind)
    else:
        workers = max(1, min(len(cells), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            rows = [row for part in pool.map(one, cells) for row in part]
    frame = pd.DataFrame(rows, columns=["cell", "result", "count"])
    frame["cell"] = frame["cell"].astype("string")
    frame["result"] = frame["result"].astype("string")
    code = {n: i for i, n in enumerate(RESULT_NAMES)}
    frame["code"] = frame["result"].map(code).astype("int64")
    frame["count"] = frame["count"].astype("int64")
    return frame.sort_values(["cell", "code"], ignore_index=True)[["cell", "result", "code",
                                                                    "count"]]


# -- helpers ------------------------------------------------------------------------------------


def _devices_of(data: Sweep | pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    if isinstance(data, Sweep):
        return data.devices(), data.varied
    return data, []


def _point_rng(seed: int, point: str) -> np.random.Generator:
    tail = int(re.sub(r"[^0-9a-f]", "", point.lower())[:12] or "0", 16)
    return np.random.default_rng([int(seed), tail])


def _bounds(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[~np.isnan(samples)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def point_label(params: Mapping[str, Any]) -> str:
    """``"threshold min_rssi_dbm=-104"``: text values bare, numbers as name=value; parameters
    the point does not have (NA) left out."""
    parts = []
    for k, v in params.items():
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        parts.append(str(v) if isinstance(v, str) else f"{k}={v}")
    return " ".join(parts) or "all"


def _params_of(devices: pd.DataFrame, varied: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per point: ``label`` and the values of ``varied`` (first row of the point)."""
    keep = [c for c in varied if c in devices.columns]
    first = devices.drop_duplicates("point")[["point", *keep]]
    out = {}
    for _, r in first.iterrows():
        values = {k: r[k] for k in keep}
        out[str(r["point"])] = {"label": point_label(values), **values}
    return out


def _result_names(devices: pd.DataFrame) -> pd.Series:
    """Each device's final Update Result name, or ``none`` (no final result known)."""
    names = devices["result_name"].astype("string") if "result_name" in devices else None
    if names is None:
        from labkit.record.schema import RESULT_NAMES

        codes = pd.to_numeric(devices["result"], errors="coerce")
        names = codes.map(lambda c: RESULT_NAMES[int(c)] if pd.notna(c) else None)
        names = names.astype("string")
    names = names.fillna(NO_RESULT)
    return names.where(names != "", NO_RESULT)


def _default_varied(devices: pd.DataFrame, varied: Sequence[str]) -> list[str]:
    if varied:
        return [v for v in varied if v in devices.columns]
    skip = {"cell", "point", "seed"}
    candidates = [c for c in devices.columns[: devices.columns.get_loc("device")]
                  if c not in skip] if "device" in devices.columns else []
    return [c for c in candidates if devices.groupby("point")[c].first().nunique() > 1]


# -- rates --------------------------------------------------------------------------------------


def result_rates(
    data: Sweep | pd.DataFrame,
    *,
    varied: Sequence[str] | None = None,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """Share of each point's devices that ended with each Update Result, with an interval.

    Parameters
    ----------
    data:
        A :class:`Sweep` or its :meth:`Sweep.devices` table.
    varied:
        Parameter columns to carry into the result (default: the sweep's varied ones).
    n_boot, level, seed:
        Bootstrap resamples (over seeds), interval level and the bootstrap's seed.

    Returns
    -------
    pandas.DataFrame
        ``point``, ``label`` (:func:`point_label`), the varied parameters, ``result``
        (name, or ``none`` for devices without a final result), ``code`` (Int64; NA for
        ``none``), ``count``, ``n_devices``, ``n_seeds``, ``rate`` (pooled: count /
        devices over all the point's seeds), ``low``, ``high`` (the interval). Every result
        that occurs anywhere in the sweep appears for every point (count 0 where it did not
        occur). Sorted by point order of appearance, then code.
    """
    from labkit.record.schema import RESULT_NAMES

    devices, sweep_varied = _devices_of(data)
    keys = _default_varied(devices, list(varied) if varied is not None else sweep_varied)
    if len(devices) == 0:
        return pd.DataFrame(columns=["point", "label", *keys, "result", "code", "count",
                                     "n_devices", "n_seeds", "rate", "low", "high"])
    names = _result_names(devices)
    order = [n for n in RESULT_NAMES if (names == n).any()]
    if (names == NO_RESULT).any():
        order.append(NO_RESULT)
    col = {n: i for i, n in enumerate(order)}
    frame = pd.DataFrame({"point": devices["point"].astype(str).to_numpy(),
                          "cell": devices["cell"].astype(str).to_numpy(),
                          "r": names.map(col).to_numpy(dtype=np.int64)})
    params = _params_of(devices, keys)
    rows = []
    for point in pd.unique(frame["point"]):
        sub = frame[frame["point"] == point]
        cells = pd.unique(sub["cell"])
        k = len(cells)
        cell_idx = pd.Categorical(sub["cell"], categories=cells).codes
        counts = np.zeros((k, len(order)), dtype=np.int64)
        np.add.at(counts, (cell_idx, sub["r"].to_numpy()), 1)
        n = counts.sum(axis=1)
        rng = _point_rng(seed, str(point))
        draw = rng.integers(0, k, size=(n_boot, k))
        boot = counts[draw].sum(axis=1) / np.maximum(n[draw].sum(axis=1), 1)[:, None]
        total = int(n.sum())
        for j, name in enumerate(order):
            lo, hi = _bounds(boot[:, j], level)
            c = int(counts[:, j].sum())
            rows.append({
                "point": point, **params[str(point)], "result": name,
                "code": RESULT_NAMES.index(name) if name in RESULT_NAMES else pd.NA,
                "count": c, "n_devices": total, "n_seeds": k,
                "rate": c / total if total else float("nan"), "low": lo, "high": hi,
            })
    out = pd.DataFrame(rows)
    out["code"] = out["code"].astype("Int64")
    return out


# -- time to update -----------------------------------------------------------------------------


def _quantile_boot(values_per_cell: list[np.ndarray], qs: Sequence[float], rng: np.random.Generator,
                   n_boot: int) -> np.ndarray:
    """(n_boot, len(qs)) quantiles of the pooled values of resampled cells (NaN if none)."""
    k = len(values_per_cell)
    out = np.full((n_boot, len(qs)), np.nan)
    draw = rng.integers(0, k, size=(n_boot, k))
    for b in range(n_boot):
        pooled = np.concatenate([values_per_cell[i] for i in draw[b]])
        if len(pooled):
            out[b] = np.quantile(pooled, qs)
    return out


def time_to_update(
    data: Sweep | pd.DataFrame,
    *,
    varied: Sequence[str] | None = None,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """Median and p90 of the time to update per point, with intervals.

    The time to update of a device is ``finished_s`` of a device whose campaign status is
    ``success``: simulated seconds from the campaign's start (so waiting for the policy's
    window counts) to its SUCCESS. Devices that did not succeed are not in it; read it beside
    the failure rate (:func:`summary` puts them together).

    Returns
    -------
    pandas.DataFrame
        ``point``, ``label``, the varied parameters, ``n_success``, ``median_s``, ``median_low``,
        ``median_high``, ``p90_s``, ``p90_low``, ``p90_high`` (float64 seconds; NaN when no
        device of the point succeeded).
    """
    devices, sweep_varied = _devices_of(data)
    keys = _default_varied(devices, list(varied) if varied is not None else sweep_varied)
    cols = ["point", "label", *keys, "n_success", "median_s", "median_low", "median_high", "p90_s",
            "p90_low", "p90_high"]
    if len(devices) == 0:
        return pd.DataFrame(columns=cols)
    params = _params_of(devices, keys)
    ok = devices["status"].astype("string") == "success"
    t = pd.to_numeric(devices["finished_s"], errors="coerce").to_numpy(dtype=np.float64,
                                                                          na_value=np.nan)
    rows = []
    for point in pd.unique(devices["point"].astype(str)):
        in_point = (devices["point"].astype(str) == point).to_numpy()
        cells = pd.unique(devices.loc[in_point, "cell"].astype(str))
        per_cell = []
        for c in cells:
            m = in_point & (devices["cell"].astype(str) == c).to_numpy() & ok.fillna(False)\
                .to_numpy(dtype=bool) & ~np.isnan(t)
            per_cell.append(t[m])
        pooled = np.concatenate(per_cell) if per_cell else np.zeros(0)
        est = np.quantile(pooled, [0.5, 0.9]) if len(pooled) else np.array([np.nan, np.nan])
        boot = _quantile_boot(per_cell, [0.5, 0.9], _point_rng(seed, point), n_boot)
        mlo, mhi = _bounds(boot[:, 0], level)
        plo, phi = _bounds(boot[:, 1], level)
        rows.append({"point": point, **params[point], "n_success": len(pooled),
                     "median_s": float(est[0]), "median_low": mlo, "median_high": mhi,
                     "p90_s": float(est[1]), "p90_low": plo, "p90_high": phi})
    return pd.DataFrame(rows, columns=cols)


# -- summary, Pareto front, best point ------------------------------------------------------


def _campaign_times(sweep: Sweep | None, devices: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the campaign's time to complete (simulated s), from the cells table or the
    devices' latest ``finished_s``."""
    if sweep is not None and "time_to_complete_s" in sweep.cells.columns:
        frame = sweep.cells[["cell", "point", "time_to_complete_s"]].copy()
        frame["cell"] = frame["cell"].astype(str)
        return frame.rename(columns={"time_to_complete_s": "completion_s"})
    g = devices.assign(cell=devices["cell"].astype(str)).groupby("cell")
    return pd.DataFrame({"cell": list(g.groups), "point": g["point"].first().to_numpy(),
                         "completion_s": g["finished_s"].max().to_numpy(dtype=np.float64)})


def summary(
    data: Sweep | pd.DataFrame,
    *,
    varied: Sequence[str] | None = None,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
    pareto: tuple[str, str] = ("p90_s", "failure_rate"),
) -> pd.DataFrame:
    """One row per point: what a paper's table would show.

    Columns: ``point``, ``label``, the varied parameters, ``n_seeds``, ``n_devices``;
    ``success_rate``, ``failure_rate`` (every device that did not end in SUCCESS: a failure
    result, none, given up or cancelled) and ``result_4_rate`` (4 CONNECTION_LOST) each
    with ``_low``/``_high``;
    ``median_s``, ``p90_s`` (time to update, :func:`time_to_update`) with intervals;
    ``completion_s`` (mean campaign time to complete across seeds) with its interval;
    ``pareto`` (True on the front of ``pareto`` = (time column, rate column), both
    minimised).
    """
    sweep = data if isinstance(data, Sweep) else None
    devices, sweep_varied = _devices_of(data)
    keys = _default_varied(devices, list(varied) if varied is not None else sweep_varied)
    times = time_to_update(devices, varied=keys, n_boot=n_boot, level=level, seed=seed)
    if len(devices) == 0:
        return times.assign(pareto=pd.Series([], dtype=bool))
    ok = (devices["status"].astype("string") == "success").fillna(False)
    flags = pd.DataFrame({
        "point": devices["point"].astype(str), "cell": devices["cell"].astype(str),
        "success": ok.to_numpy(dtype=np.int64),
        "result_4": (_result_names(devices) == "CONNECTION_LOST").to_numpy(dtype=np.int64),
    })
    camp = _campaign_times(sweep, devices)
    rows = []
    for point in pd.unique(flags["point"]):
        sub = flags[flags["point"] == point]
        g = sub.groupby("cell", sort=False)
        succ = g["success"].sum().to_numpy(dtype=np.float64)
        r4 = g["result_4"].sum().to_numpy(dtype=np.float64)
        n = g.size().to_numpy(dtype=np.float64)
        k = len(n)
        rng = _point_rng(seed, point)
        draw = rng.integers(0, k, size=(n_boot, k))
        nd = n[draw].sum(axis=1)
        s_boot = succ[draw].sum(axis=1) / nd
        r4_boot = r4[draw].sum(axis=1) / nd
        comp = camp.loc[camp["point"].astype(str) == point, "completion_s"]
        comp = pd.to_numeric(comp, errors="coerce").to_numpy(dtype=np.float64)
        comp_boot = (np.nanmean(comp[rng.integers(0, len(comp), size=(n_boot, len(comp)))],
                                axis=1) if len(comp) and not np.isnan(comp).all()
                     else np.full(n_boot, np.nan))
        srate = succ.sum() / n.sum()
        slo, shi = _bounds(s_boot, level)
        row: dict[str, Any] = {"point": point, "n_seeds": k, "n_devices": int(n.sum()),
                               "success_rate": srate, "success_rate_low": slo,
                               "success_rate_high": shi,
                               "failure_rate": 1 - srate, "failure_rate_low": 1 - shi,
                               "failure_rate_high": 1 - slo,
                               "result_4_rate": r4.sum() / n.sum()}
        row["result_4_rate_low"], row["result_4_rate_high"] = _bounds(r4_boot, level)
        row["completion_s"] = float(np.nanmean(comp)) if len(comp) and not np.isnan(comp).all() \
            else float("nan")
        row["completion_low"], row["completion_high"] = _bounds(comp_boot, level)
        rows.append(row)
    table = pd.DataFrame(rows)
    out = times.merge(table, on="point", how="right")
    first = ["point", "label", *keys, "n_seeds", "n_devices", "success_rate", "success_rate_low",
             "success_rate_high", "failure_rate", "failure_rate_low", "failure_rate_high",
             "result_4_rate", "result_4_rate_low", "result_4_rate_high", "n_success",
             "median_s", "median_low", "median_high", "p90_s", "p90_low", "p90_high",
             "completion_s", "completion_low", "completion_high"]
    out = out[first]
    out["pareto"] = pareto_front(out, x=pareto[0], y=pareto[1])
    return out


def pareto_front(table: pd.DataFrame, *, x: str = "p90_s", y: str = "failure_rate") -> pd.Series:
    """True for the rows no other row beats on both ``x`` and ``y`` (both minimised): no
    other row is at least as good on both and strictly better on one. Rows with NaN in
    either are never on the front."""
    xs = pd.to_numeric(table[x], errors="coerce").to_numpy(dtype=np.float64)
    ys = pd.to_numeric(table[y], errors="coerce").to_numpy(dtype=np.float64)
    ok = ~(np.isnan(xs) | np.isnan(ys))
    front = np.zeros(len(table), dtype=bool)
    for i in np.flatnonzero(ok):
        others = ok & ((xs <= xs[i]) & (ys <= ys[i])) & ((xs < xs[i]) | (ys < ys[i]))
        front[i] = not others.any()
    return pd.Series(front, index=table.index, name="pareto")


_GOAL = re.compile(r"^\s*(?:minimi[sz]e\s+|min\s+)?(?P<metric>[A-Za-z_0-9]+)"
                   r"(?:\s+(?:where|with|if)\s+(?P<where>.+))?\s*$")


def parse_goal(text: str) -> tuple[str, str | None]:
    """``"minimise result_4_rate where p90_s <= 7200"`` -> ``("result_4_rate", "p90_s <=
    7200")``."""
    m = _GOAL.match(text)
    if not m:
        raise ValueError(f"goal {text!r}: expected 'minimise METRIC [where CONDITION]'")
    return m.group("metric"), m.group("where")


def best_point(
    table: pd.DataFrame,
    minimize: str = "failure_rate",
    *,
    where: str | None = None,
    then: str = "p90_s",
) -> pd.DataFrame:
    """The points of a :func:`summary` ranked for a goal: minimise ``minimize`` among the rows
    satisfying ``where`` (a ``DataFrame.query`` condition, e.g. ``"p90_s <= 7200"``), ties
    broken by ``then``.

    Returns
    -------
    pandas.DataFrame
        The feasible rows, best first, with ``rank`` (1 = best) and ``overlaps_best`` (True
        when the row's interval of ``minimize`` overlaps the best row's: the data do not
        tell them apart at this level). Empty when no point satisfies ``where``.
    """
    if minimize not in table.columns:
        raise KeyError(f"no column {minimize!r}; one of {list(table.columns)}")
    feasible = table.query(where) if where else table
    ranked = feasible.sort_values([minimize, then], kind="stable", na_position="last")
    ranked = ranked.reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    lo, hi = f"{minimize}_low", f"{minimize}_high"
    if len(ranked) and lo in ranked.columns and hi in ranked.columns:
        best_hi = float(ranked.loc[0, hi])
        ranked["overlaps_best"] = ranked[lo].to_numpy(dtype=np.float64) <= best_hi
    return ranked


def manifest_json(sweep: Sweep) -> str:
    """The sweep manifest without its per-cell list, as indented JSON (for reports)."""
    data: Mapping[str, Any] = {k: v for k, v in sweep.manifest.items() if k != "cells"}
    return json.dumps(data, indent=1, sort_keys=True, default=str)
