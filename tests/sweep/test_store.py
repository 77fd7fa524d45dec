"""labkit.sweep.store (a cell committed twice is there once) and the progress line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from labkit.sweep.progress import SweepProgress, TextProgress, format_s
from labkit.sweep.store import (
    commit_cell,
    done_cells,
    is_sweep_dir,
    new_tmp,
    prune,
    remove_stale_tmp,
)


def _attempt(root: Path, cell: str, value: int) -> None:
    tmp = new_tmp(root, cell)
    pq.write_table(pa.table({"x": [value]}), tmp / "devices.parquet")
    pq.write_table(pa.table({"y": [value, value]}), tmp / "events.parquet")
    run = tmp / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"value": value}))
    commit_cell(root, cell, devices=tmp / "devices.parquet", events=tmp / "events.parquet",
                run_dir=run, record={"cell": cell, "value": value})


def test_a_cell_committed_twice_is_there_once_with_the_last_copy(tmp_path: Path) -> None:
    _attempt(tmp_path, "c1", 1)
    _attempt(tmp_path, "c1", 2)  # a rescheduled copy of the same cell
    _attempt(tmp_path, "c2", 3)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet")
                   if p.relative_to(tmp_path).parts[0] != "tmp")
    assert files == ["devices/cell=c1/part-0.parquet", "devices/cell=c2/part-0.parquet",
                     "events/cell=c1/part-0.parquet", "events/cell=c2/part-0.parquet"]
    assert pq.read_table(tmp_path / "devices" / "cell=c1" / "part-0.parquet")["x"].to_pylist() \
        == [2]
    assert json.loads((tmp_path / "runs" / "c1" / "manifest.json").read_text()) == {"value": 2}
    assert sorted(done_cells(tmp_path)) == ["c1", "c2"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["c1", "c2"]
    assert remove_stale_tmp(tmp_path) == 3  # the three emptied attempt folders
    assert not (tmp_path / "tmp").exists()
    assert not is_sweep_dir(tmp_path)


def test_partitions_without_a_done_record_are_found(tmp_path: Path) -> None:
    _attempt(tmp_path, "c1", 1)
    _attempt(tmp_path, "c2", 1)
    (tmp_path / "done" / "c2.json").unlink()
    assert prune(tmp_path, done_cells(tmp_path)) == ["c2"]


def test_progress_line_and_eta() -> None:
    p = SweepProgress(done=3, failed=1, skipped=2, total=10, elapsed_s=40.0)
    assert p.finished == 6
    assert p.eta_s == 40.0  # 10 s per cell run, 4 left
    assert p.line() == ("sweep: 6/10 cells, 1 failed, 2 already done, 40 s elapsed, "
                        "ETA 40 s")
    assert SweepProgress(0, 0, 0, 5, 1.0).eta_s is None
    assert format_s(3725) == "1 h 02 min" and format_s(None) == "?"
    out = io.StringIO()
    bar = TextProgress(out)
    for i in range(11):
        bar(SweepProgress(i, 0, 0, 10, float(i)))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sweep: 0/10") and lines[-1].startswith("sweep: 10/10")
    assert len(lines) == 11  # one per 10 %
