"""The recorder: memory and disk recording, incremental flushes, manifests, and SIGKILL safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from labkit.events import Event
from labkit.record import Recorder, new_run_id, read_run
from labkit.record.runs import part_files
from labkit.record.schema import validate
from tests.record.record_events import T0, scenario

REPO = Path(__file__).resolve().parents[2]


def test_round_trip_through_disk_equals_the_live_frame(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-a"
    events = scenario()
    with Recorder(run_dir, flush_interval=0.05, manifest={"seed": 7, "policy": "rssi"}) as rec:
        for i, event in enumerate(events):
            rec(event)
            if i == 20:
                rec.flush()  # at least two part files before close
        live = rec.frame()
    run = read_run(run_dir)
    assert run.complete and run.run_id == "run-a" and run.skipped == ()
    assert len(run.events) == len(events)
    pd.testing.assert_frame_equal(run.events, live)
    pd.testing.assert_frame_equal(run.events, rec.frame())
    validate(run.events)
    assert [p.name for p in part_files(run_dir / "events.parquet")] == ["part-00002.parquet"]
    assert run.params == {"seed": 7, "policy": "rssi"}


def test_manifest_before_and_after_close(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "r1", manifest={"seed": 3, "package": tmp_path / "fw.bin"})
    try:
        manifest = json.loads((tmp_path / "r1" / "manifest.json").read_text())
        assert manifest["run_id"] == "r1"
        assert manifest["finished_at"] is None
        assert manifest["schema_version"] == 1
        assert set(manifest["versions"]) == {
            "labkit",
            "aiocoap",
            "pandas",
            "pyarrow",
            "numpy",
            "python",
        }
        assert manifest["versions"]["pandas"] == pd.__version__
        assert manifest["params"] == {"seed": 3, "package": str(tmp_path / "fw.bin")}
        datetime.fromisoformat(manifest["created_at"])
        rec(Event(ts=T0, source="lab", kind="note"))
    finally:
        rec.close()
    rec.close()  # idempotent
    manifest = json.loads((tmp_path / "r1" / "manifest.json").read_text())
    assert manifest["finished_at"] >= manifest["created_at"]
    assert manifest["n_events"] == 1
    assert not list((tmp_path / "r1").glob(".*.tmp"))


def test_live_directory_shows_events_after_the_flush_interval(tmp_path: Path) -> None:
    run_dir = tmp_path / "live"
    with Recorder(run_dir, flush_interval=0.1) as rec:
        for event in scenario()[:10]:
            rec(event)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and rec.n_written < 10:
            time.sleep(0.02)
        run = read_run(run_dir)  # no explicit flush: the background thread wrote them
        assert not run.complete
        assert len(run.events) == 10
        pd.testing.assert_frame_equal(run.events, rec.frame())
        rec(scenario()[10])
    assert len(read_run(run_dir).events) == 11


def test_memory_only_recorder(tmp_path: Path) -> None:
    with Recorder(None) as rec:
        assert rec.path is None
        assert rec.run_id.endswith("-" + rec.run_id.split("-")[-1])
        assert len(rec.frame()) == 0
        for event in scenario():
            rec(event)
        rec.flush()
        assert rec.n_written == 0
        frame = rec.frame()
    validate(frame)
    assert len(frame) == len(scenario())
    assert frame["run_id"].astype(str).unique().tolist() == [rec.run_id]
    assert not list(tmp_path.iterdir())


def test_frame_is_a_snapshot(tmp_path: Path) -> None:
    with Recorder(None) as rec:
        rec(Event(ts=T0, source="lab", kind="note", detail="one"))
        first = rec.frame()
        first.loc[0, "detail"] = "changed"
        rec(Event(ts=T0 + 1, source="lab", kind="note", detail="two"))
        assert rec.frame()["detail"].tolist() == ["one", "two"]


def test_bad_events_fail_in_the_caller_and_closed_recorder_refuses(tmp_path: Path) -> None:
    rec = Recorder(None)
    with pytest.raises(ValueError, match="state"):
        rec(Event(ts=T0, source="device", kind="fw_state", state=5))
    with pytest.raises(ValueError, match="result"):
        rec(Event(ts=T0, source="device", kind="fw_result", result=12))
    with pytest.raises(ValueError, match="ts"):
        rec(Event(ts=float("inf"), source="device", kind="note"))
    rec.close()
    assert len(rec.frame()) == 0
    with pytest.raises(RuntimeError, match="closed"):
        rec(Event(ts=T0, source="lab", kind="note"))


def test_calls_do_not_wait_for_a_slow_flush(tmp_path: Path) -> None:
    """While a flush holds the writer (a slow disk), recording still returns at once."""
    rec = Recorder(tmp_path / "slow", flush_interval=0.05)
    try:
        done = threading.Event()

        def produce() -> None:
            for i in range(1000):
                rec(Event(ts=T0 + i, source="device", kind="note", device="d"))
            done.set()

        with rec._flush_lock:  # what a long write holds
            producer = threading.Thread(target=produce)
            producer.start()
            assert done.wait(timeout=10), "recording blocked behind the flush"
            producer.join()
        assert len(rec) == 1000
    finally:
        rec.close()
    assert len(read_run(tmp_path / "slow").events) == 1000


def test_refuses_a_directory_that_already_holds_a_run(tmp_path: Path) -> None:
    from labkit.record import RunError

    with Recorder(tmp_path / "once") as rec:
        rec(Event(ts=T0, source="lab", kind="note"))
    with pytest.raises(RunError, match="already holds"):
        Recorder(tmp_path / "once")


def test_new_run_id_skips_existing_directories(tmp_path: Path) -> None:
    now = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    probe = new_run_id(None, now=now)
    stamp, n = probe.rsplit("-", 1)
    assert stamp == "20261127T093000Z"
    for k in range(int(n) + 1, int(n) + 4):
        (tmp_path / f"{stamp}-{k}").mkdir()
    assert new_run_id(tmp_path, now=now) == f"{stamp}-{int(n) + 4}"
    rec = Recorder.in_root(tmp_path)
    rec.close()
    assert rec.path == tmp_path / rec.run_id
    assert read_run(rec.path).run_id == rec.run_id


def test_dropped_recorder_stops_its_thread() -> None:
    import gc

    rec = Recorder(None, flush_interval=0.02)
    name = f"labkit-recorder-{rec.run_id}"
    del rec
    gc.collect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(t.name == name for t in threading.enumerate()):
        time.sleep(0.02)
    assert not any(t.name == name for t in threading.enumerate())


CHILD = textwrap.dedent(
    """
    import sys, time
    from labkit.events import Event
    from labkit.record import Recorder

    rec = Recorder(sys.argv[1], flush_interval=float(sys.argv[2]))
    i = 0
    last = -1
    while True:
        for _ in range(20):
            rec(Event(ts=1.8e9 + i * 0.001, source="device", kind="block", device=f"d{i % 7}",
                      block=i, bytes=512, detail=str(i)))
            i += 1
        if rec.n_written != last:
            last = rec.n_written
            print(f"flushed {last} recorded {i}", flush=True)
        time.sleep(0.002)
    """
)


@pytest.mark.parametrize("kill_after", [1.2, 2.3])
def test_sigkill_leaves_a_readable_run(tmp_path: Path, kill_after: float) -> None:
    interval = 0.1
    run_dir = tmp_path / "killed"
    lines: list[tuple[float, int, int]] = []  # (time seen, flushed, recorded)
    with (
        open(tmp_path / "child.err", "w") as err,
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(run_dir), str(interval)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=REPO,
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            out = proc.stdout
            first = out.readline()  # after the imports and the first flush
            assert first.startswith("flushed"), (tmp_path / "child.err").read_text()
            start = time.monotonic()

            def read_lines() -> None:
                for line in out:
                    words = line.split()
                    lines.append((time.monotonic(), int(words[1]), int(words[3])))

            reader = threading.Thread(target=read_lines, daemon=True)
            reader.start()
            while time.monotonic() - start < kill_after:
                time.sleep(0.01)
            killed_at = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            reader.join(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(lines) >= 3, "the child did not flush repeatedly"

    run = read_run(run_dir)
    assert not run.complete
    events = run.events
    validate(events)
    n = len(events)
    # no holes: rows 0..n-1, each event intact
    assert events["seq"].tolist() == list(range(n))
    assert events["detail"].tolist() == [str(i) for i in range(n)]
    assert events["block"].tolist() == list(range(n))
    # everything the child reported flushed is there ...
    assert n >= max(flushed for _, flushed, _ in lines)
    # ... and so is every event handed over well over a flush interval before the kill
    old = [recorded for seen, _, recorded in lines if seen < killed_at - 10 * interval]
    if old:
        assert n >= max(old)


def test_an_unstorable_value_becomes_an_error_row_without_losing_the_batch() -> None:
    with Recorder(None) as rec:
        rec(Event(ts=T0, source="device", kind="link", device="d", rssi_dbm=-80))
        rec(Event(ts=T0 + 1, source="device", kind="link", device="d", battery=300))
        rec(Event(ts=T0 + 2, source="device", kind="link", device="d", rssi_dbm=-81))
        frame = rec.frame()
    validate(frame)
    assert frame["kind"].tolist() == ["link", "error", "link"]
    assert frame["rssi_dbm"].tolist()[::2] == [-80, -81]
    assert "battery" in frame["detail"].iloc[1] and frame["device"].iloc[1] == "d"
    assert frame["seq"].tolist() == [0, 1, 2]


def test_a_failed_write_keeps_the_events_for_the_next_flush(tmp_path: Path) -> None:
    import shutil

    rec = Recorder(tmp_path / "r", flush_interval=60)
    try:
        parts = tmp_path / "r" / "events.parquet"
        rec(Event(ts=T0, source="lab", kind="note", detail="kept"))
        shutil.rmtree(parts)
        parts.write_text("not a directory")  # the disk refuses the write
        with pytest.raises(OSError):
            rec.flush()
        assert rec.n_written == 0
        parts.unlink()
        parts.mkdir()
        rec(Event(ts=T0 + 1, source="lab", kind="note", detail="later"))
        rec.flush()
        assert rec.n_written == 2
        assert read_run(tmp_path / "r").events["detail"].tolist() == ["kept", "later"]
    finally:
        rec.close()


def test_reading_while_the_recorder_flushes_and_compacts(tmp_path: Path) -> None:
    run_dir = tmp_path / "busy"
    rec = Recorder(run_dir, flush_interval=0.01)
    seen: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                events = read_run(run_dir).events
                assert events["seq"].tolist() == list(range(len(events)))
                seen.append(len(events))
            except BaseException as exc:  # report in the test thread
                failures.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(3000):
            rec(Event(ts=T0 + i, source="device", kind="note", device="d", detail=str(i)))
            if i % 100 == 0:
                time.sleep(0.01)
        rec.close()  # compacts while the reader keeps reading
        time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
        rec.close()
    assert not failures, failures[0]
    assert seen and seen == sorted(seen)
    assert len(read_run(run_dir).events) == 3000
