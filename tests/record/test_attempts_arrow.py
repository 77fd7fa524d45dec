"""attempts and result_counts of a run straight from its Arrow columns equal the pandas path.

``read_run`` keeps a clean run's Arrow tables and builds the pandas event table only when
``run.events`` is used; ``attempts(run)`` / ``result_counts(run)`` then read the Arrow columns
(:func:`labkit.record.derived.arrays_from_arrow`). These tests compare that path with
``attempts(run.events)`` on recorded runs (the repository's sample runs and runs written by the
Recorder in several part files), including the edge cases of the block-row handling.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from labkit.events import Event
from labkit.record import Recorder, RunError, attempts, read_run, result_counts
from labkit.record.derived import _attempts_of, arrays_from_arrow
from labkit.record.runs import part_files
from labkit.record.schema import coerce, empty_frame
from tests.record.record_events import T0, scenario

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def _e(dt: float, source: str, kind: str, device: str | None, **kw: object) -> Event:
    return Event(ts=T0 + dt, source=source, kind=kind, device=device, **kw)  # type: ignore[arg-type]


def edge_cases() -> list[Event]:
    """Devices whose attempts depend on block rows and on rows around them."""
    out: list[Event] = []
    t = 100.0

    def add(source: str, kind: str, device: str | None, **kw: object) -> None:
        nonlocal t
        t += 0.5
        out.append(_e(t, source, kind, device, **kw))

    # r1: PUSH lost (4), PUSH again: SUCCESS; blocks seen by both sides, one repeated by the
    # server and one marked as a retransmission; a block between the end and the next start
    for result, blocks in ((4, (0, 1, 1, 2)), (1, (0, 1, 2, 3))):
        add("policy", "decision", "r1", decision="push", reason="ok")
        add("server", "request", "r1", method="PUT", path="/5/0/0", code="2.31")
        add("device", "fw_state", "r1", state=1)
        for i, b in enumerate(blocks):
            add("server", "block", "r1", block=b, bytes=512, method="PUT", code="2.31",
                detail="retransmission" if i == 3 and result == 1 else None)
            add("device", "block", "r1", block=b, bytes=512)
        add("server", "fw_result", "r1", result=result)
        add("server", "block", "r1", block=9, bytes=512)  # after the end: in no attempt
    # r2: the attempt starts at an Execute without method or protocol; blocks then carry the
    # protocol and a push method before any request does; a block carries the wave; a block
    # before the start is in no attempt; the attempt never ends (no result)
    add("server", "block", "r2", block=7, bytes=100)
    add("server", "request", "r2", path="/5/0/2")
    add("device", "fw_state", "r2", state=1)
    add("server", "block", "r2", block=0, bytes=100, protocol="coap", method="push", wave=3)
    add("server", "block", "r2", block=1, bytes=None, protocol="http")
    add("server", "block", "r2", block=None, bytes=100)
    add("server", "request", "r2", method="PUT", path="/5/0/0", protocol="http")
    # r3: only blocks (no attempt); lab-wide rows without a device
    add("server", "block", "r3", block=0, bytes=100)
    add("lab", "note", None, detail="retransmission")
    add("server", "block", None, block=5, bytes=100)
    # r4: a device-side log: DOWNLOADING entered starts the attempt, no result
    add("device", "fw_state", "r4", state=1)
    add("device", "block", "r4", block=0, bytes=64, wave=1)
    add("device", "fw_state", "r4", state=2)
    return out


def record(run_dir: Path, events: list[Event], parts: int = 3) -> Recorder:
    """A run of ``events`` in ``parts`` part files: left open (closing compacts the parts),
    like a run being recorded; the caller closes it."""
    rec = Recorder(run_dir, flush_interval=60)
    size = max(1, -(-len(events) // parts))
    for i in range(0, len(events), size):
        for event in events[i : i + size]:
            rec(event)
        rec.flush()
    return rec


def assert_same_paths(run_dir: Path) -> pd.DataFrame:
    """The Arrow path (run, directory, the arrays themselves) against the pandas path."""
    expected = attempts(read_run(run_dir).events)
    run = read_run(run_dir)
    pd.testing.assert_frame_equal(attempts(run), expected)
    pd.testing.assert_frame_equal(run.attempts(), expected)
    pd.testing.assert_frame_equal(result_counts(read_run(run_dir)), result_counts(expected))
    pd.testing.assert_frame_equal(
        result_counts(read_run(run_dir), by="method"), result_counts(expected, by="method")
    )
    files = part_files(run_dir / "events.parquet") or [run_dir / "events.parquet"]
    for part in files:
        table = pq.read_table(part)
        arrays = arrays_from_arrow(table)
        assert arrays is not None  # a part the recorder wrote takes the Arrow path
        pd.testing.assert_frame_equal(_attempts_of(arrays), attempts(table.to_pandas()))
    return expected


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.iterdir() if p.is_dir()))
def test_sample_runs(name: str) -> None:
    table = assert_same_paths(SAMPLES / name)
    assert len(table) > 0


def test_recorded_edge_cases_in_several_parts(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    rec = record(run_dir, scenario() + edge_cases(), parts=4)
    try:
        assert len(part_files(run_dir / "events.parquet")) == 4
        got = assert_same_paths(run_dir).set_index(["device", "attempt"], drop=False)
    finally:
        rec.close()
    assert len(part_files(run_dir / "events.parquet")) == 1  # compacted
    pd.testing.assert_frame_equal(assert_same_paths(run_dir).set_index(
        ["device", "attempt"], drop=False), got)
    r1 = got.loc["r1"]
    assert r1["result"].tolist() == ["CONNECTION_LOST", "SUCCESS"]
    # both sides' records of each block number count once; each side's repeat of block 1,
    # and the row marked as a retransmission, are retransmissions
    assert r1["blocks"].tolist() == [3, 4]
    assert r1["bytes"].tolist() == [1536, 2048]
    assert r1["retransmissions"].tolist() == [2, 1]
    r2 = got.loc[("r2", 1)]
    assert r2["protocol"] == "coap" and r2["method"] == "push"
    assert r2["wave"] == 3 and not r2["finished"] and pd.isna(r2["result"])
    assert r2["blocks"] == 3 and r2["bytes"] == 200
    assert "r3" not in set(got["device"])
    r4 = got.loc[("r4", 1)]
    assert r4["wave"] == 1 and r4["blocks"] == 1 and r4["final_state"] == "DOWNLOADED"


def test_one_part_per_event(tmp_path: Path) -> None:
    events = edge_cases()[:30]
    rec = record(tmp_path / "r", events, parts=len(events))
    try:
        assert_same_paths(tmp_path / "r")
    finally:
        rec.close()


def test_empty_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "empty"
    Recorder(run_dir, flush_interval=60).close()
    empty = attempts(empty_frame())
    pd.testing.assert_frame_equal(attempts(read_run(run_dir)), empty)
    pd.testing.assert_frame_equal(read_run(run_dir).attempts(), empty)
    assert len(result_counts(read_run(run_dir))) == 0
    with pytest.raises(TypeError):
        attempts(run_dir)  # type: ignore[arg-type]


def test_events_are_built_on_first_use_and_equal_the_recorded_table(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    record(run_dir, scenario(), parts=2).close()
    run = read_run(run_dir)
    assert run.n_events == len(scenario())
    assert "events" in repr(run)
    first = run.events
    assert run.events is first  # built once
    pd.testing.assert_frame_equal(attempts(run), attempts(first))


def test_late_columns_of_a_closed_run_are_read_with_the_event_table(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    record(run_dir, scenario(), parts=2).close()
    (part,) = part_files(run_dir / "events.parquet")
    whole = coerce(pq.read_table(part).to_pandas())
    assert whole["rssi_dbm"].notna().any() and whole["reason"].notna().any()
    pd.testing.assert_frame_equal(read_run(run_dir).events, whole)

    run = read_run(run_dir)
    part.unlink()  # gone before the event table was built: said, not half a table
    with pytest.raises(RunError):
        _ = run.events
    assert len(attempts(run)) == len(attempts(whole))  # read already: still there


@pytest.mark.parametrize(("window", "bitmap"), [(1, 2), (7, 2), (7, 0), (1 << 20, 0)])
def test_block_pass_in_windows_and_without_bitmap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int, bitmap: int
) -> None:
    """The block rows looked at a few rows at a time, and counted row by row instead of with
    the bitmap, give the same attempts (devices whose blocks repeat and devices whose do not)."""
    from labkit.record import derived

    run_dir = tmp_path / "r"
    record(run_dir, scenario() + edge_cases(), parts=2).close()
    expected = attempts(read_run(run_dir))
    without_repeats = expected.loc[expected["device"] != "r1"]
    assert (without_repeats["retransmissions"] == 0).any() and (expected["blocks"] > 0).any()
    monkeypatch.setattr(derived, "_WINDOW", window)
    monkeypatch.setattr(derived, "_BITMAP_CELLS_PER_ROW", bitmap)
    pd.testing.assert_frame_equal(attempts(read_run(run_dir)), expected)
    pd.testing.assert_frame_equal(attempts(read_run(run_dir).events), expected)
    # only devices without repeated blocks: the bitmap alone decides their counts
    events = read_run(run_dir).events
    plain = events.loc[events["device"] != "r1"].reset_index(drop=True)
    monkeypatch.setattr(derived, "_BITMAP_CELLS_PER_ROW", 2)
    with_bitmap = attempts(plain)
    monkeypatch.setattr(derived, "_BITMAP_CELLS_PER_ROW", 0)
    pd.testing.assert_frame_equal(with_bitmap, attempts(plain))
