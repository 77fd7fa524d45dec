"""Sweeps: a query across all runs of a sweep against DuckDB, and 2 Dask workers against 1.

``sweep-query`` -- a synthetic sweep on disk (the layout of :mod:`labkit.sweep.store`):
cells whose ``events/cell=<id>/part-0.parquet`` are the synthetic campaign events of
:mod:`benchmarks.bench_analysis` (10 cells of 1 million events; quick: 4 of 250,000).

* lab: :func:`labkit.sweep.analysis.read_sweep` + ``Sweep.result_counts(kind="fw_result")``
  -- Update Result counts per cell over every run, returned as a pandas frame -- with each
  engine: ``duckdb`` (the default when DuckDB is installed) and ``pyarrow`` (without it);
* reference: the same query in DuckDB over the same files (``read_parquet(...,
  hive_partitioning=true)`` ``group by cell, result``), fetched as a pandas frame.

Interleaved pairs; goal: lab <= 2x DuckDB. Both answers are checked against the counts the
generator drew.

``sweep-scale`` -- the 4 x 2 x 3 sweep of the issue (always / threshold at -115, -105 and
-95 dBm, x profiles nb-iot and lte-m, x 3 seeds; 100 devices each; quick: 2 x 1 x 2 of 10
devices) run on an embedded Dask LocalCluster with 2 worker processes and serially with
``workers=1``: the speed-up serial / parallel (goal >= 1.7 on a 2-core machine). One pair
only (it is long and CPU-bound): on a shared machine other jobs take cores from the
parallel run, so read it with the machine's load, which the note gives. The two runs'
per-device tables are compared (virtual time makes them identical).
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Goal, Options, Row, interleaved, median, paired_ratio, register

QUERY_GOAL = Goal(op="<=", value=2.0, text="<= 2x")
SCALE_GOAL = Goal(op=">=", value=1.7, text=">= 1.7x")


def _write_sweep(root: Path, cells: int, per_cell: int) -> dict[tuple[str, str], int]:
    """A sweep directory whose cells hold synthetic events; returns the expected counts."""
    import pyarrow.parquet as pq

    from benchmarks.bench_analysis import build_events
    from labkit.sweep.store import write_json_atomic

    expected: dict[tuple[str, str], int] = {}
    rows = []
    for i in range(cells):
        cell = f"c{i:012d}"
        table, counts = build_events(per_cell, seed=i + 1)
        part = root / "events" / f"cell={cell}" / "part-0.parquet"
        part.parent.mkdir(parents=True)
        pq.write_table(table, part, row_group_size=1 << 20)
        for name, n in counts.items():
            expected[(cell, name)] = n
        write_json_atomic(root / "done" / f"{cell}.json", {"cell": cell, "status": "done"})
        rows.append({"cell": cell, "point": f"p{i}", "seed": 0, "params": {"seed_of_data": i},
                     "status": "done"})
    manifest = {"kind": "labkit-sweep", "grid": {"axes": {}, "fixed": {}, "seeds": [0],
                                                  "varied": []}, "cells": rows}
    (root / "sweep.json").write_text(json.dumps(manifest), encoding="utf-8")
    return expected


@register("sweep-query", "result counts across all runs of a sweep vs the same query in DuckDB")
def run_query(options: Options) -> list[Row]:
    try:
        import duckdb
    except ImportError:
        from benchmarks.harness import skipped

        return [skipped("sweep-query", "sweep query vs DuckDB", QUERY_GOAL,
                        "duckdb is not installed")]
    from labkit.sweep.analysis import read_sweep

    cells = options.pick(10, 4)
    per_cell = options.pick(1_000_000, 250_000)
    reps = 5
    with tempfile.TemporaryDirectory(prefix="labkit-bench-sweep-") as tmp:
        root = Path(tmp)
        expected = _write_sweep(root, cells, per_cell)
        got: dict[str, dict[tuple[str, str], int]] = {}
        sql = (
            f"select cell, result, count(*) as n from read_parquet('{root}/events/*/*.parquet', "
            "hive_partitioning=true) where kind = 'fw_result' and result is not null "
            "group by cell, result"
        )

        def timed_engine(engine: str) -> float:
            gc.collect()
            start = time.perf_counter()
            frame = read_sweep(root).result_counts(kind="fw_result", engine=engine)
            took = time.perf_counter() - start
            got[engine] = {(str(c), str(r)): int(n) for c, r, n in
                           zip(frame["cell"], frame["result"], frame["count"], strict=True)}
            return took

        def reference() -> float:
            gc.collect()
            start = time.perf_counter()
            con = duckdb.connect()
            frame = con.sql(sql).df()
            con.close()
            took = time.perf_counter() - start
            got["reference"] = {(str(c), str(r)): int(n) for c, r, n in
                             zip(frame["cell"], frame["result"], frame["n"], strict=True)}
            return took

        rows: list[Row] = []
        for engine in ("duckdb", "pyarrow"):
            labs, refs = interleaved(lambda e=engine: timed_engine(e), reference, reps,
                                     warmup=1)
            rows.append(Row(
                key=f"sweep-query-{engine}",
                what=f"result counts per cell over {cells} runs, "
                     f"{cells * per_cell / 1e6:g} M events, engine={engine}",
                goal=QUERY_GOAL,
                lab=median(labs),
                reference=median(refs),
                ref_what="DuckDB read_parquet(hive_partitioning) group by cell, result -> "
                         "pandas",
                ratio=paired_ratio(labs, refs),
                note=f"median of {reps} interleaved pairs after a warm-up pair; lab = "
                     f"read_sweep + Sweep.result_counts(engine={engine!r}) ("
                     + ("the default when DuckDB is installed: one query over the done "
                        "cells' files" if engine == "duckdb" else
                        "without DuckDB: each cell's kind and result columns read with "
                        "pyarrow, counted on their dictionary codes with numpy, cells in "
                        "threads") + "; pandas out)",
                samples={"lab": labs, "reference": refs},
            ))
    for who, counts in got.items():
        if counts != expected:
            raise RuntimeError(f"{who} counted {len(counts)} (cell, result) pairs that differ "
                               "from the generated ones")
    return rows


def _scale_grid(quick: bool) -> Any:
    from labkit.sweep.grid import Grid

    variants: list[dict[str, Any]] = [{"policy": "always"}] + [
        {"policy": "threshold", "min_rssi_dbm": t} for t in (-115, -105, -95)
    ]
    profiles = ["nb-iot", "lte-m"]
    if quick:
        variants, profiles = variants[:2], profiles[:1]
    explicit = [{**v, "profile": p} for v in variants for p in profiles]
    return Grid(explicit=explicit, fixed={"devices": 10 if quick else 100},
                seeds=range(2 if quick else 3))


def _overhead(serial: Any, parallel: Any) -> str:
    """Where the parallel run's time went besides the cells: cluster start and close, the
    idle tail (from the first worker's last cell to the last cell's end), per-cell times."""
    from datetime import datetime

    timings = parallel.extra.get("timings", {})
    ends: dict[Any, float] = {}
    for record in parallel.done.values():
        end = datetime.fromisoformat(record["finished_at"]).timestamp()
        ends[record.get("pid")] = max(end, ends.get(record.get("pid"), 0.0))
    tail = max(ends.values()) - min(ends.values()) if len(ends) > 1 else 0.0
    walls = sorted(float(r["wall_s"]) for r in serial.done.values())
    mid = walls[len(walls) // 2] if walls else 0.0
    return (f"parallel: cluster start {timings.get('cluster_start_s', 0):.1f} s, cells "
            f"{timings.get('cells_s', 0):.1f} s, close {timings.get('cluster_close_s', 0):.1f} s, "
            f"idle tail {tail:.1f} s on {len(ends)} workers; serial cells {walls[0]:.1f} / "
            f"{mid:.1f} / {walls[-1]:.1f} s (min / median / max)" if walls else "")


def _cpu_s() -> float:
    """User + system CPU seconds of this process and of its children that have ended (a
    LocalCluster's workers count once the cluster is closed)."""
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@register("sweep-scale", "the 4 x 2 x 3 sweep (100 devices each): 2 Dask workers vs 1")
def run_scale(options: Options) -> list[Row]:
    from labkit.sweep.analysis import read_sweep
    from labkit.sweep.engine import run_sweep

    grid = _scale_grid(options.quick)
    n_cells = len(grid.cells())
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="labkit-bench-scale-") as tmp:
        cpu0 = _cpu_s()
        start = time.perf_counter()
        serial = run_sweep(grid, Path(tmp) / "serial", workers=1, progress=False)
        t_serial = time.perf_counter() - start
        cpu1 = _cpu_s()
        start = time.perf_counter()
        parallel = run_sweep(grid, Path(tmp) / "parallel", workers=2, progress=False)
        t_parallel = time.perf_counter() - start
        cpu2 = _cpu_s()
        if not (serial.ok and parallel.ok):
            raise RuntimeError(f"cells failed: {serial.failed or parallel.failed}")
        a = read_sweep(Path(tmp) / "serial").devices().sort_values(["cell", "device"],
                                                                   ignore_index=True)
        b = read_sweep(Path(tmp) / "parallel").devices().sort_values(["cell", "device"],
                                                                     ignore_index=True)
        same = a.equals(b)
    load_after = os.getloadavg()
    cpus = os.cpu_count()
    overhead = _overhead(serial, parallel)
    return [Row(
        key="sweep-scale",
        what=f"sweep of {n_cells} cells ({grid.fixed['devices']} devices each): speed-up of "
             "2 workers",
        goal=SCALE_GOAL,
        lab=t_parallel,
        reference=t_serial,
        ref_what="the same sweep with --workers 1 (serially, in-process)",
        ratio=t_serial / t_parallel,
        note=f"one pair (serial then LocalCluster(2 workers), cluster start-up included); "
             f"{cpus} CPUs, load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
             f"after: other jobs on a shared machine take cores from the parallel run; "
             f"per-device tables {'identical' if same else 'DIFFERENT'} between the two; "
             f"CPU s (user+sys, this process and its reaped workers): serial "
             f"{cpu1 - cpu0:.1f}, parallel {cpu2 - cpu1:.1f}; " + overhead,
        caveat="" if same else "tables differ",
        samples={"lab": [t_parallel], "reference": [t_serial]},
    )]
