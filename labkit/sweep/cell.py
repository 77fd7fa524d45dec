"""One cell of a sweep, run where it is scheduled (a Dask worker process, or in-process).

:func:`run_cell` runs the cell's campaign with :func:`labkit.fota.simulate.simulate` (in
virtual time, ``clock="virtual"``, when that ``simulate`` accepts a ``clock``; scaled time
otherwise), turns the saved run into the sweep's per-device rows and one compacted event
file, and commits them with :func:`labkit.sweep.store.commit_cell`. It never raises for a
failure of the campaign itself: that is written to ``failed/<id>.json`` with the parameters
and the traceback and returned as a record with ``status: "failed"``, so one bad cell does
not sink the sweep.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import os
import shutil
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["param_table_types", "run_cell", "simulate_clock_kwargs"]


def simulate_clock_kwargs(time_scale: float | None = None) -> dict[str, Any]:
    """``{"clock": "virtual"}`` when :func:`~labkit.fota.simulate.simulate` has virtual time;
    otherwise ``{"time_scale": time_scale}`` (scaled time, 100x unless given)."""
    from labkit.fota.simulate import simulate

    if "clock" in inspect.signature(simulate).parameters:
        return {"clock": "virtual"}
    return {"time_scale": float(time_scale) if time_scale else 100.0}


class _DistortionNote(logging.Filter):
    """Keeps simulate's "timings distorted" warning out of the sweep's output: the cell's
    record carries the ``distorted`` flag, and the sweep summary reports it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "distorted" not in record.getMessage()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def param_table_types(cells: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The column type of every parameter across ``cells`` (``as_dict()`` forms): ``int64``,
    ``float64``, ``bool``, or ``string`` (lists and mixed values as JSON text). One type per
    name for the whole sweep, so every partition has the same schema."""
    values: dict[str, list[Any]] = {}
    for c in cells:
        for k in c["params"]:
            values.setdefault(k, [])
    for c in cells:
        for k in values:
            values[k].append(c["params"].get(k))
    out: dict[str, str] = {}
    for k, vs in values.items():
        present = [v for v in vs if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            out[k] = "bool"
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            out[k] = "int64"
        elif present and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in present
        ):
            out[k] = "float64"
        else:
            out[k] = "string"
    return out


def _param_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return value


def _devices_table(run_dir: Path, cell: Mapping[str, Any], types: Mapping[str, str]) -> Any:
    """The campaign's per-device table with the cell's point, seed and parameters."""
    import pandas as pd
    import pyarrow as pa

    table = pd.read_parquet(run_dir / "campaign_devices.parquet")
    links = run_dir / "links.parquet"
    if links.is_file():
        extra = pd.read_parquet(links, columns=["device", "profile", "faults"]).rename(
            columns={"profile": "device_profile", "faults": "device_faults"}
        )
        table = table.merge(extra, on="device", how="left")
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    n = arrow.num_rows
    head: dict[str, pa.Array] = {
        "point": pa.array([cell["point"]] * n, pa.string()),
        "seed": pa.array([int(cell["seed"])] * n, pa.int64()),
    }
    for name, kind in sorted(types.items()):
        typ = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}.get(
            kind, pa.string()
        )
        head[name] = pa.array([_param_value(cell["params"].get(name), kind)] * n, typ)
    for name in arrow.column_names:
        # a device column named like a parameter (method) keeps its value as device_<name>
        head[f"device_{name}" if name in head else name] = arrow.column(name)
    return pa.table(head)


def _compact_events(run_dir: Path, out: Path) -> int:
    """The run's event parts as one Parquet file at ``out``; the run keeps a hard link to it
    (``events.parquet`` as a single file, which :func:`~labkit.record.read_run` reads)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labkit.record.runs import part_files
    from labkit.record.schema import arrow_schema

    events = run_dir / "events.parquet"
    parts = [events] if events.is_file() else part_files(events)
    schema = arrow_schema()
    tables = [pq.read_table(p).cast(schema) for p in parts]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    table = table.replace_schema_metadata(None)
    pq.write_table(table, out, row_group_size=1 << 20)
    if events.is_dir():
        shutil.rmtree(events)
    else:
        events.unlink(missing_ok=True)
    try:
        os.link(out, events)
    except OSError:
        shutil.copyfile(out, events)
    return int(table.num_rows)


def run_cell(
    cell: Mapping[str, Any],
    sweep_dir: str,
    types: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one cell and commit it; returns its record (``status`` ``done`` or ``failed``).

    Parameters
    ----------
    cell:
        :meth:`labkit.sweep.grid.Cell.as_dict` of the cell.
    sweep_dir:
        The sweep directory (shared by every worker: a local path, or a shared file system).
    types:
        :func:`param_table_types` of the whole sweep.
    options:
        ``time_scale`` (scaled time only), ``deadline_s`` (bound of the campaign: simulated
        seconds in virtual time, wall seconds in scaled time; default simulate's).
    """
    from labkit.fota.simulate import simulate
    from labkit.sweep.grid import Cell
    from labkit.sweep.store import commit_cell, new_tmp, write_json_atomic

    opts = dict(options or {})
    started = time.monotonic()
    started_at = _now()
    cell_obj = Cell(dict(cell["params"]), int(cell["seed"]))
    cell_id = str(cell["cell"])
    base = {
        "cell": cell_id,
        "point": cell["point"],
        "seed": int(cell["seed"]),
        "params": dict(cell["params"]),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": started_at,
    }
    tmp = new_tmp(sweep_dir, cell_id)
    quiet = _DistortionNote()
    sim_log = logging.getLogger("labkit.fota.simulate")
    sim_log.addFilter(quiet)
    try:
        kwargs = cell_obj.simulate_kwargs()
        scale = kwargs.pop("time_scale", None) or opts.get("time_scale")
        clock = simulate_clock_kwargs(scale)
        if opts.get("deadline_s") is not None:
            kwargs["deadline_s"] = float(opts["deadline_s"])
        run_dir = simulate(out=tmp / "runs", run_id=cell_id, **clock, **kwargs)
        run_dir = Path(run_dir)
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        params = manifest.get("params", {})
        n_events = _compact_events(run_dir, tmp / "events.parquet")
        devices = _devices_table(run_dir, cell, types)
        import pyarrow.parquet as pq

        pq.write_table(devices, tmp / "devices.parquet")
        record = {
            **base,
            "status": "done",
            "clock": clock.get("clock", "scaled"),
            "time_scale": clock.get("time_scale"),
            "wall_s": time.monotonic() - started,
            "finished_at": _now(),
            "n_events": n_events,
            "n_devices": devices.num_rows,
            "campaign": params.get("campaign", {}),
            "distorted": params.get("distorted"),
        }
        commit_cell(sweep_dir, cell_id, devices=tmp / "devices.parquet",
                    events=tmp / "events.parquet", run_dir=run_dir, record=record)
        return record
    except Exception as exc:  # the cell failed: report it, keep the sweep going
        record = {
            **base,
            "status": "failed",
            "wall_s": time.monotonic() - started,
            "finished_at": _now(),
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
        write_json_atomic(Path(sweep_dir) / "failed" / f"{cell_id}.json", record)
        return record
    finally:
        sim_log.removeFilter(quiet)
        shutil.rmtree(tmp, ignore_errors=True)
        # The campaign leaves its fleet behind as cyclic garbage (devices, their object
        # models, messages: ~90,000 objects for 100 devices, and each device's flash in a
        # temporary directory that goes when its storage is collected). The next cell would
        # freeze all of it with its own survivors (labkit.virtual.heap), so without this a
        # worker's memory and temporary files grow with every cell it runs, and the whole
        # heap is freed only when the process exits (in a LocalCluster's close, serially).
        # Freed here, each cell leaves the process as it found it (~0.1-0.2 s a cell).
        gc.collect()
