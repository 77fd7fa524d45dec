"""Loading runs: broken and foreign files, interrupted compaction, and the table of runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labkit.events import Event
from labkit.record import Recorder, RunError, list_runs, read_run
from labkit.record.runs import part_files
from labkit.record.schema import events_to_frame
from tests.record.record_events import T0, scenario


def unclosed_run(run_dir: Path, chunks: int = 3, **kw: object) -> Recorder:
    """A run with one part file per chunk of the scenario, left open (like a killed one)."""
    rec = Recorder(run_dir, flush_interval=60, **kw)  # type: ignore[arg-type]
    events = scenario()
    size = -(-len(events) // chunks)
    for i in range(0, len(events), size):
        for event in events[i : i + size]:
            rec(event)
        rec.flush()
    return rec


def test_truncated_part_raises_naming_it_or_is_skipped(tmp_path: Path) -> None:
    rec = unclosed_run(tmp_path / "r")
    try:
        parts = part_files(tmp_path / "r" / "events.parquet")
        assert len(parts) == 3
        broken = parts[1]
        data = broken.read_bytes()
        broken.write_bytes(data[: len(data) // 2])
        with pytest.raises(RunError) as info:
            read_run(tmp_path / "r")
        assert info.value.path == broken
        assert broken.name in str(info.value)

        run = read_run(tmp_path / "r", skip_broken=True)
        assert run.skipped == (broken,)
        assert not run.complete
        good = pd.concat([pq.read_table(p).to_pandas() for p in (parts[0], parts[2])])
        assert run.events["seq"].tolist() == good["seq"].tolist()
    finally:
        rec.close()


def test_empty_part_file_is_broken_too(tmp_path: Path) -> None:
    rec = unclosed_run(tmp_path / "r", chunks=1)
    rec.close()
    empty = tmp_path / "r" / "events.parquet" / "part-00009.parquet"
    empty.write_bytes(b"")
    with pytest.raises(RunError) as info:
        read_run(tmp_path / "r")
    assert info.value.path == empty


def test_a_part_file_of_another_table_is_rejected(tmp_path: Path) -> None:
    rec = unclosed_run(tmp_path / "r", chunks=1)
    rec.close()
    foreign = tmp_path / "r" / "events.parquet" / "part-00007.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    with pytest.raises(RunError, match="columns") as info:
        read_run(tmp_path / "r")
    assert info.value.path == foreign


def test_interrupted_compaction_duplicates_are_dropped(tmp_path: Path) -> None:
    rec = unclosed_run(tmp_path / "r")
    try:
        expected = rec.frame()
        parts = part_files(tmp_path / "r" / "events.parquet")
        # a compaction killed after writing the merged part, before deleting the old ones
        merged = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
        table = pa.Table.from_pandas(merged, preserve_index=False)
        pq.write_table(table, parts[0].with_name("part-00003.parquet"))
        # and leftovers of a flush that never finished
        (parts[0].parent / ".part-00004.parquet.tmp").write_bytes(b"PAR1 half")
        run = read_run(tmp_path / "r")
        pd.testing.assert_frame_equal(run.events, expected)
    finally:
        rec.close()


def test_single_file_events_parquet_and_killed_before_first_flush(tmp_path: Path) -> None:
    run_dir = tmp_path / "single"
    with Recorder(run_dir) as rec:
        for event in scenario():
            rec(event)
    part = part_files(run_dir / "events.parquet")[0]
    shutil.move(part, tmp_path / "one.parquet")
    shutil.rmtree(run_dir / "events.parquet")
    shutil.move(tmp_path / "one.parquet", run_dir / "events.parquet")
    assert len(read_run(run_dir).events) == len(scenario())

    rec = Recorder(tmp_path / "early", flush_interval=60)  # killed before any flush
    run = read_run(tmp_path / "early")
    assert len(run.events) == 0 and not run.complete
    rec.close()


def test_missing_and_broken_manifests(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not a directory"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="no manifest"):
        read_run(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON") as info:
        read_run(tmp_path / "bad")
    assert info.value.path == tmp_path / "bad" / "manifest.json"


def test_events_of_another_run_are_rejected(tmp_path: Path) -> None:
    with Recorder(tmp_path / "a") as rec:
        rec(Event(ts=T0, source="lab", kind="note"))
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    manifest["run_id"] = "b"
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="run_id"):
        read_run(tmp_path / "a")


def test_invalid_events_are_a_run_error(tmp_path: Path) -> None:
    with Recorder(tmp_path / "a") as rec:
        rec(Event(ts=T0, source="lab", kind="note", detail="original"))
    parts = tmp_path / "a" / "events.parquet"
    other = events_to_frame([Event(ts=T0, source="lab", kind="note", detail="other")], "a")
    pq.write_table(pa.Table.from_pandas(other, preserve_index=False), parts / "part-00005.parquet")
    with pytest.raises(RunError, match="seq 0 appears more than once"):
        read_run(tmp_path / "a")
    (parts / "part-00005.parquet").unlink()
    bogus = other.assign(seq=1, kind=pd.Series(["teleport"], dtype="category"))
    pq.write_table(pa.Table.from_pandas(bogus, preserve_index=False), parts / "part-00006.parquet")
    with pytest.raises(RunError, match="teleport") as info:
        read_run(tmp_path / "a")
    assert info.value.path == tmp_path / "a" / "events.parquet"


def test_list_runs(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    with Recorder(root / "r-done", manifest={"seed": 1, "policy": "rssi", "faults": ["x"]}) as rec:
        for event in scenario():
            rec(event)
    killed = unclosed_run(root / "r-killed", manifest={"seed": 2, "profile": "urban"})
    (root / "not-a-run").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "manifest.json").write_text("[]")
    try:
        runs = list_runs(root)
    finally:
        killed.close()
    assert isinstance(runs.index, pd.RangeIndex)
    assert list(runs.columns[:8]) == [
        "run_id",
        "path",
        "created_at",
        "finished_at",
        "complete",
        "n_events",
        "n_devices",
        "error",
    ]
    assert set(runs["run_id"]) == {"r-done", "r-killed", "broken"}
    by_id = runs.set_index("run_id")
    assert by_id.loc["r-done", "complete"] and not by_id.loc["r-killed", "complete"]
    assert by_id.loc["r-done", "n_events"] == by_id.loc["r-killed", "n_events"] == len(scenario())
    assert by_id.loc["r-done", "n_devices"] == 2
    assert pd.isna(by_id.loc["r-killed", "finished_at"])
    assert str(runs["created_at"].dtype) == "datetime64[us, UTC]"
    assert by_id.loc["r-done", "seed"] == 1 and by_id.loc["r-killed", "profile"] == "urban"
    assert by_id.loc["r-done", "faults"] == '["x"]'
    assert "manifest" in by_id.loc["broken", "error"]
    assert pd.isna(by_id.loc["r-done", "error"])


def test_list_runs_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    runs = list_runs(tmp_path / "none")
    assert len(runs) == 0 and "run_id" in runs.columns


def test_run_helpers_and_html(tmp_path: Path) -> None:
    with Recorder(tmp_path / "r", manifest={"policy": "rssi<-90"}) as rec:
        for event in scenario():
            rec(event)
    run = read_run(tmp_path / "r")
    assert len(run.attempts()) == 3
    assert len(run.state_intervals()) == 11
    assert len(run.decisions()) == 4
    html = run._repr_html_()
    assert "rssi&lt;-90" in html and "r" in html
    assert "complete" in repr(run)
