"""A sweep on disk: the layout, the idempotent commit of one cell, and reading it back.

This module owns the files of a sweep directory::

    SWEEP/
      sweep.json                        the sweep manifest: grid, seeds, versions, cells with
                                        their status and wall time (rewritten by the client)
      cells.parquet                     one row per finished cell: cell, point, seed, params
      devices/cell=<id>/part-0.parquet  per device: the campaign's verdict + the cell's params
      events/cell=<id>/part-0.parquet   the run's whole event table (the run schema)
      runs/<id>/                        the run as simulate saved it (read_run, labkit report)
      done/<id>.json                    the cell's commit record (written last: "done")
      failed/<id>.json                  a failed cell: parameters, error and traceback
      tmp/                              cells being written (removed when they commit)

``devices/`` and ``events/`` are Hive-partitioned Parquet datasets: ``pd.read_parquet(SWEEP /
"devices")``, ``pyarrow.dataset.dataset(..., partitioning="hive")`` and DuckDB's
``read_parquet('SWEEP/devices/*/*.parquet', hive_partitioning=true)`` read them in place and
add the ``cell`` column.

Idempotent commit (:func:`commit_cell`): a cell is written completely under ``tmp/`` first,
then each piece is moved into place with one atomic ``os.replace`` per file (a fixed name per
cell, so a second copy of the same cell replaces the first and can never duplicate it), and
``done/<id>.json`` is written last. A worker killed mid-cell leaves only ``tmp/`` debris,
which the next run removes; a cell counts as done only with its ``done`` record, and a
rerun skips exactly those.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST",
    "DatasetError",
    "commit_cell",
    "done_cells",
    "failed_cells",
    "is_sweep_dir",
    "read_manifest",
    "remove_stale_tmp",
    "write_json_atomic",
]

MANIFEST = "sweep.json"
PART = "part-0.parquet"


class DatasetError(Exception):
    """A sweep directory is missing, unreadable or inconsistent."""


def is_sweep_dir(path: str | Path) -> bool:
    """True when ``path`` holds a sweep manifest (``sweep.json``)."""
    return (Path(path) / MANIFEST).is_file()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(sweep_dir: str | Path) -> dict[str, Any]:
    path = Path(sweep_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: no sweep manifest (not a sweep directory)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable sweep manifest: {exc}") from exc
    if not isinstance(data, dict) or "grid" not in data:
        raise DatasetError(f"{path}: not a sweep manifest")
    return data


def _records(folder: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.glob("*.json")):
        try:
            out[p.stem] = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a record being replaced; the next listing sees it
    return out


def done_cells(sweep_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Commit records of the cells that are done, by cell id."""
    return _records(Path(sweep_dir) / "done")


def failed_cells(sweep_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Failure records (parameters, error, traceback) of cells that failed, by cell id."""
    return _records(Path(sweep_dir) / "failed")


def remove_stale_tmp(sweep_dir: str | Path) -> int:
    """Remove what killed or failed cells left under ``tmp/``; returns how many entries."""
    tmp = Path(sweep_dir) / "tmp"
    if not tmp.is_dir():
        return 0
    n = 0
    for p in tmp.iterdir():
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        n += 1
    with contextlib.suppress(OSError):
        tmp.rmdir()
    return n


def new_tmp(sweep_dir: str | Path, cell_id: str) -> Path:
    """A fresh private folder under ``tmp/`` for one attempt at ``cell_id``."""
    path = Path(sweep_dir) / "tmp" / f"{cell_id}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def _replace_dir(src: Path, dst: Path) -> None:
    """Move directory ``src`` to ``dst``, replacing an older ``dst`` (another attempt's)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        try:
            os.replace(src, dst)
            return
        except OSError:
            if not dst.exists():
                raise
            trash = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.old")
            with contextlib.suppress(FileNotFoundError):
                os.replace(dst, trash)
            shutil.rmtree(trash, ignore_errors=True)
    os.replace(src, dst)


def commit_cell(
    sweep_dir: str | Path,
    cell_id: str,
    *,
    devices: Path,
    events: Path,
    run_dir: Path,
    record: Mapping[str, Any],
) -> None:
    """Move a cell written under ``tmp/`` into place, then write its ``done`` record.

    ``devices`` and ``events`` are single Parquet files, ``run_dir`` the run directory; all
    three must be on the sweep's file system (under its ``tmp/``). Each file lands with one
    atomic rename under a name fixed by ``cell_id``; a cell committed twice (a rescheduled
    copy of it) is replaced, never repeated.
    """
    root = Path(sweep_dir)
    for src, kind in ((devices, "devices"), (events, "events")):
        dst = root / kind / f"cell={cell_id}" / PART
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    _replace_dir(run_dir, root / "runs" / cell_id)
    write_json_atomic(root / "done" / f"{cell_id}.json", dict(record))
    (root / "failed" / f"{cell_id}.json").unlink(missing_ok=True)


def prune(sweep_dir: str | Path, keep: Iterable[str]) -> list[str]:
    """Partitions of cells that are not in ``keep`` (committed data without a done record,
    e.g. a commit cut short): their ids. Nothing is deleted; readers filter on done cells."""
    keep_set = set(keep)
    extra: set[str] = set()
    for kind in ("devices", "events"):
        folder = Path(sweep_dir) / kind
        if folder.is_dir():
            for p in folder.iterdir():
                if p.name.startswith("cell=") and p.name[5:] not in keep_set:
                    extra.add(p.name[5:])
    return sorted(extra)
