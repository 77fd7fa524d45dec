"""Running a sweep: every cell not yet done, on Dask distributed or serially, with progress.

:func:`run_sweep` is the whole job. Where the cells run:

- ``workers=1`` (and no scheduler): one after the other in this process;
- by default: an embedded Dask ``LocalCluster`` with one worker *process* per core
  (``threads_per_worker=1``; each campaign has its own event loop and sockets);
- ``scheduler="tcp://HOST:PORT"``: an existing Dask cluster (``dask scheduler`` plus ``dask
  worker`` processes); every worker must import the same labkit and see ``out`` at the same
  path (one machine, or a shared file system);
- ``client=``: a ``distributed.Client`` you already hold.

Cells are handed to Dask biggest first (:func:`longest_first`, by devices x blocks per image
x the profile's retransmissions), so the last cells running are small ones and workers do
not wait for each other at the end. Each cell is one task
(:func:`labkit.sweep.cell.run_cell`) that commits its own files (:mod:`labkit.sweep.store`).
A task whose worker dies is rescheduled by Dask on another worker; its commit replaces, so
the dataset never holds a cell twice. A cell that fails is recorded with its parameters and
traceback and the sweep goes on. Running the same sweep again skips the cells already done
(resume) and retries the failed ones. A grid changed between runs (more seeds, another
threshold) reuses the cells the two grids share; cells of the old grid stay on disk, and
:func:`labkit.sweep.analysis.read_sweep` reads only the current grid's (``sweep.json`` and
``cells.parquet`` describe the current grid).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from labkit.sweep.cell import param_table_types, run_cell, simulate_clock_kwargs
from labkit.sweep.grid import Grid
from labkit.sweep.progress import SweepProgress, auto_progress
from labkit.sweep.store import (
    MANIFEST,
    done_cells,
    failed_cells,
    prune,
    read_manifest,
    remove_stale_tmp,
    write_json_atomic,
)

__all__ = ["SweepResult", "estimated_cost", "longest_first", "run_sweep"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[SweepProgress], None]


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: the directory, the cells done and failed (records with
    parameters, and for failures the error and traceback), and what it ran on. On Dask,
    ``extra["timings"]`` holds ``cluster_start_s`` (connecting, or starting the
    LocalCluster), ``cells_s`` (submitting until the last cell is back) and
    ``cluster_close_s``."""

    path: Path
    total: int
    done: dict[str, dict[str, Any]]
    failed: dict[str, dict[str, Any]]
    skipped: int
    wall_s: float
    executor: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and len(self.done) == self.total

    def __repr__(self) -> str:
        return (f"<SweepResult {self.path}: {len(self.done)}/{self.total} cells done, "
                f"{len(self.failed)} failed, {self.skipped} skipped, {self.wall_s:.1f} s "
                f"on {self.executor}>")


def _versions() -> dict[str, str]:
    out = {}
    for name in ("labkit", "aiocoap", "pandas", "pyarrow", "numpy", "dask", "distributed"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_manifest(out: Path, base: Mapping[str, Any], cells: list[dict[str, Any]],
                    status: str) -> dict[str, Any]:
    done = done_cells(out)
    failed = failed_cells(out)
    rows = []
    for c in cells:
        rec = done.get(c["cell"]) or failed.get(c["cell"]) or {}
        rows.append({
            **c,
            "status": "done" if c["cell"] in done else "failed" if c["cell"] in failed
            else "pending",
            "wall_s": rec.get("wall_s"),
            "clock": rec.get("clock"),
            "error": rec.get("error") if c["cell"] not in done else None,
        })
    manifest = {**base, "status": status, "updated_at": _now(), "cells": rows}
    write_json_atomic(out / MANIFEST, manifest)
    return manifest


def _cells_table(out: Path, cells: list[dict[str, Any]], types: Mapping[str, str]) -> None:
    """``cells.parquet``: one row per cell of the grid with its status and parameters."""
    import pandas as pd

    done = done_cells(out)
    failed = failed_cells(out)
    rows = []
    for c in cells:
        rec = done.get(c["cell"]) or failed.get(c["cell"]) or {}
        row: dict[str, Any] = {"cell": c["cell"], "point": c["point"], "seed": c["seed"]}
        for name in types:
            v = c["params"].get(name)
            row[name] = v if types[name] != "string" or v is None or isinstance(v, str) \
                else str(v)
        row["status"] = "done" if c["cell"] in done else (
            "failed" if c["cell"] in failed else "pending")
        row["wall_s"] = rec.get("wall_s")
        row["n_events"] = rec.get("n_events")
        row["n_devices"] = rec.get("n_devices")
        camp = rec.get("campaign") or {}
        row["campaign_status"] = camp.get("status")
        row["time_to_complete_s"] = camp.get("time_to_complete_s")
        rows.append(row)
    frame = pd.DataFrame(rows)
    for name, kind in types.items():
        if kind == "int64":
            frame[name] = frame[name].astype("Int64")
        elif kind == "float64":
            frame[name] = frame[name].astype("Float64")
        elif kind == "bool":
            frame[name] = frame[name].astype("boolean")
        else:
            frame[name] = frame[name].astype("string")
    tmp = out / ".cells.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, out / "cells.parquet")


#: CoAP's ACK_TIMEOUT (RFC 7252, 4.8), seconds: a confirmable message whose answer takes
#: longer than this is sent again.
_ACK_TIMEOUT_S = 2.0


def _link_factor(profile: Any) -> float:
    """Roughly how many times each exchange is sent on a profile's links: 1 where the mean
    round trip (at the profile's mean signal) is far under CoAP's ACK_TIMEOUT, up to 2 where
    it exceeds it twice over and retransmissions are the rule (NB-IoT: ~2, LTE-M: ~1.04;
    the cells of the issue's sweep take ~1.7x the CPU on NB-IoT). ``mixed`` weighs its
    members; an unknown name counts 1."""
    from labkit.sim.profiles import MIXED_WEIGHTS, PROFILES

    def one(name: Any) -> float:
        link = PROFILES.get(str(name)) if name is not None else None
        if link is None:
            return 1.0
        one_way = link.delay.base_s + link.delay.poor_extra_s * link.degradation(
            link.rssi_mean_dbm)
        return 1.0 + min(1.0, 2.0 * one_way / (2.0 * _ACK_TIMEOUT_S))

    if profile == "mixed":
        return sum(w * one(n) for n, w in MIXED_WEIGHTS) / sum(w for _, w in MIXED_WEIGHTS)
    return one(profile)


def estimated_cost(cell: Mapping[str, Any]) -> float:
    """A rough relative cost of a cell, from its parameters: devices x blocks per image x the
    profile's :func:`_link_factor` (a virtual-time campaign's work grows with the messages it
    exchanges). Only used to hand out the biggest cells first, so that the last cells to
    finish are small ones and no worker waits long for another at the end."""
    from labkit.sweep.grid import DEFAULTS

    params = cell.get("params") or {}

    def number(name: str) -> float:
        value = params.get(name, DEFAULTS.get(name))
        return float(value) if isinstance(value, int | float) and value > 0 else 1.0

    blocks = max(1.0, number("image_size") / number("block_size"))
    return number("devices") * blocks * _link_factor(params.get("profile",
                                                                 DEFAULTS.get("profile")))


def longest_first(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``cells`` by :func:`estimated_cost`, biggest first; equal costs keep grid order."""
    return sorted(cells, key=lambda c: -estimated_cost(c))


def _local_client(workers: int | None) -> tuple[Any, Any]:
    import dask
    from distributed import Client, LocalCluster

    n = workers or os.cpu_count() or 1
    # Only for our own cluster (an existing one keeps its configuration); its servers and
    # nannies read these when they are made, and the nannies pass them to the workers.
    # - Dask's statistical profiler samples every thread's stack every 10 ms in each worker,
    #   a cost a CPU-bound cell pays in full and nobody reads here: off.
    # - A worker's event loop runs in its main thread next to the cell, which holds the GIL
    #   nearly all the time. Every wake-up of that loop takes the GIL from the cell (after
    #   Python's 5 ms switch interval, a forced switch there and back), and every file read
    #   or socket call in a callback releases and re-takes it again. By default the loop
    #   wakes ~60 times a second for monitoring only: the tick that detects a blocked loop
    #   (20 ms), the memory monitor (100 ms, psutil) and the system monitor for the
    #   dashboard (500 ms, psutil). Measured on 2 cells of the sweep in a 1-worker
    #   cluster: ~2,000 voluntary context switches per cell in the loop's thread and ~4 % of
    #   the cell's CPU; with the intervals below ~150 and ~0.3 %. Pausing and spilling still
    #   work (checked every second; a cell's result is a small record), and so does the
    #   nanny's restart of a worker over its memory limit.
    quiet = {
        "distributed.worker.profile.enabled": False,
        "distributed.admin.tick.interval": "1s",
        "distributed.admin.system-monitor.interval": "5s",
        "distributed.worker.memory.monitor-interval": "1s",
    }
    with dask.config.set(quiet):
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # an ephemeral port: never collide with :8787
            silence_logs=logging.ERROR,
        )
    return Client(cluster), cluster


def run_sweep(
    grid: Grid,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    progress: ProgressFn | bool | None = True,
    time_scale: float | None = None,
    deadline_s: float | None = None,
    connect_timeout_s: float = 30.0,
) -> SweepResult:
    """Run every cell of ``grid`` not done yet in ``out``; returns what happened.

    Parameters
    ----------
    grid:
        The sweep (:class:`~labkit.sweep.grid.Grid`).
    out:
        The sweep directory (created). Rerunning into the same directory resumes.
    workers:
        ``1``: serially in this process. Otherwise the number of worker processes of the
        embedded ``LocalCluster`` (default: one per core).
    scheduler:
        ``"tcp://HOST:PORT"`` of an existing Dask scheduler (instead of a LocalCluster).
    client:
        An existing ``distributed.Client`` (instead of both).
    progress:
        A callback taking :class:`~labkit.sweep.progress.SweepProgress`, True for the
        default (a notebook line in Jupyter, a text line on stderr elsewhere), False/None
        for none.
    time_scale:
        Scaled time only (a ``simulate`` without virtual time): simulated seconds per wall
        second, unless the grid sets ``time_scale``.
    deadline_s:
        Bound of each campaign: simulated seconds in virtual time (default one simulated
        day), wall seconds in scaled time (default 1800); simulate's default when None.
    """
    started = time.monotonic()
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    cells = [c.as_dict() for c in grid.cells()]
    types = param_table_types(cells)
    clock = simulate_clock_kwargs(time_scale)
    previous: dict[str, Any] = {}
    if (path / MANIFEST).exists():
        previous = read_manifest(path)
    remove_stale_tmp(path)
    executor = (
        "serial" if client is None and scheduler is None and workers == 1
        else f"dask {scheduler}" if scheduler else "dask (given client)" if client is not None
        else f"dask LocalCluster ({workers or os.cpu_count()} workers)"
    )
    base = {
        "kind": "labkit-sweep",
        "created_at": previous.get("created_at") or _now(),
        "grid": grid.as_dict(),
        "seeds": list(grid.seeds),
        "points": len({c["point"] for c in cells}),
        "param_types": types,
        "clock": clock.get("clock", "scaled"),
        "time_scale": clock.get("time_scale"),
        "deadline_s": deadline_s,
        "versions": _versions(),
        "executor": executor,
    }
    already = done_cells(path)
    todo = [c for c in cells if c["cell"] not in already]
    skipped = len(cells) - len(todo)
    _write_manifest(path, base, cells, "running")
    report: ProgressFn | None
    if progress is True:
        report = auto_progress()
    elif callable(progress):
        report = progress
    else:
        report = None
    options = {"deadline_s": deadline_s, "time_scale": clock.get("time_scale")}
    counts = {"done": 0, "failed": 0}
    timings: dict[str, float] = {}

    def tick(record: Mapping[str, Any] | None) -> None:
        if record is not None:
            counts["done" if record.get("status") == "done" else "failed"] += 1
            if record.get("status") != "done":
                log.warning("sweep cell %s failed (%s): %s", record.get("cell"),
                            record.get("params"), record.get("error"))
        if report is not None:
            report(SweepProgress(counts["done"], counts["failed"], skipped, len(cells),
                                 time.monotonic() - started,
                                 last=str(record.get("cell")) if record else ""))

    tick(None)
    try:
        if todo and executor == "serial":
            for c in todo:
                tick(run_cell(c, str(path), types, options))
        elif todo:
            _run_dask(todo, path, types, options, tick, workers=workers, scheduler=scheduler,
                      client=client, connect_timeout_s=connect_timeout_s, timings=timings)
    except BaseException:  # no cluster, Ctrl-C ...: say so in the manifest; rerun resumes
        _write_manifest(path, {**base, "wall_s": time.monotonic() - started}, cells,
                        "interrupted")
        raise
    # partitions of cells that never got their done record (a commit cut short) go
    done = done_cells(path)
    for orphan in prune(path, done):
        for kind in ("devices", "events"):
            shutil.rmtree(path / kind / f"cell={orphan}", ignore_errors=True)
        shutil.rmtree(path / "runs" / orphan, ignore_errors=True)
    remove_stale_tmp(path)
    ids = {c["cell"] for c in cells}
    done = {k: v for k, v in done.items() if k in ids}
    failed = {k: v for k, v in failed_cells(path).items() if k in ids and k not in done}
    wall = time.monotonic() - started
    status = "complete" if len(done) == len(cells) else "incomplete"
    _write_manifest(path, {**base, "wall_s": wall}, cells, status)
    _cells_table(path, cells, types)
    return SweepResult(path=path, total=len(cells), done=done, failed=failed, skipped=skipped,
                       wall_s=wall, executor=executor, extra={"timings": timings})


def _run_dask(
    todo: list[dict[str, Any]],
    path: Path,
    types: Mapping[str, str],
    options: Mapping[str, Any],
    tick: Callable[[Mapping[str, Any] | None], None],
    *,
    workers: int | None,
    scheduler: str | None,
    client: Any,
    connect_timeout_s: float,
    timings: dict[str, float],
) -> None:
    from distributed import Client, as_completed

    own_client = own_cluster = None
    started = time.monotonic()
    if client is None:
        if scheduler is not None:
            own_client = client = Client(scheduler, timeout=connect_timeout_s)
        else:
            own_client, own_cluster = _local_client(workers)
            client = own_client
    timings["cluster_start_s"] = time.monotonic() - started
    run_tag = os.urandom(4).hex()
    try:
        todo = longest_first(todo)  # submission order is Dask's priority order
        futures = [
            client.submit(run_cell, c, str(path.resolve()), dict(types), dict(options),
                          key=f"labkit-sweep-{c['cell']}-{run_tag}", pure=False)
            for c in todo
        ]
        by_key = {f.key: c for f, c in zip(futures, todo, strict=True)}
        for future in as_completed(futures):
            try:
                record = future.result()
            except Exception as exc:  # the task itself died (e.g. its workers kept dying)
                import traceback

                cell = by_key[future.key]
                record = {
                    "cell": cell["cell"], "point": cell["point"], "seed": cell["seed"],
                    "params": cell["params"], "status": "failed",
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": "".join(traceback.format_exception(exc)),
                }
                write_json_atomic(path / "failed" / f"{cell['cell']}.json", record)
            tick(record)
        timings["cells_s"] = time.monotonic() - started - timings["cluster_start_s"]
    finally:
        closing = time.monotonic()
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()
        timings["cluster_close_s"] = time.monotonic() - closing
