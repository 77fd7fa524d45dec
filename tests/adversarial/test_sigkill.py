"""The recorder after SIGKILL: ``labkit simulate`` killed at several moments leaves a loadable
run -- the directory and manifest from the first second, events up to the last flush, the
campaign tables as of their last update, and no temporary file a reader would see."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from labkit.record.runs import part_files, read_run
from labkit.runstart import SCHEMA_VERSION
from tests.adversarial.helpers import REPO, labkit_argv, labkit_env

ARGS = [
    "simulate",
    "--devices",
    "20",
    "--profile",
    "wifi",
    "--policy",
    "always",
    "--method",
    "push",
    "--image-size",
    "65536",
    "--seed",
    "1",
    "--time-scale",
    "1",  # about 8 s of wall time (7 s of campaign): every kill moment below comes before the end
    "--clock",
    "scaled",
    "--no-progress",
]

#: the same on virtual time (the default clock), with a fleet large enough that the run lasts
#: many flushes of wall time (virtual labs flush every 2 s; 400 devices take about 26 CPU s on
#: the two-core machine, 100 took 6 s: three flushes, too few for the kill moments below)
ARGS_VIRTUAL = [
    "simulate",
    "--devices",
    "400",
    "--profile",
    "nb-iot",
    "--policy",
    "always",
    "--method",
    "push",
    "--image-size",
    "16384",
    "--seed",
    "1",
    "--no-progress",
]


def _run_dir(out: Path) -> Path | None:
    dirs = [p for p in out.iterdir() if p.is_dir()] if out.is_dir() else []
    return dirs[0] if dirs else None


def _kill_when(
    out: Path,
    condition: Callable[[Path | None], bool],
    limit: float = 60.0,
    args: list[str] = ARGS,
) -> float:
    proc = subprocess.Popen(
        labkit_argv(*args, "--out", str(out)),
        cwd=REPO,
        env=labkit_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        while time.monotonic() - started < limit and proc.poll() is None:
            if condition(_run_dir(out)):
                break
            time.sleep(0.01)
        else:
            pytest.fail("the condition never held before the run ended")
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have ended on its own
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    return time.monotonic() - started


def _check(run_dir: Path) -> pd.DataFrame:
    run = read_run(run_dir)
    assert not run.complete  # killed: no finished_at
    visible = [p.name for p in run_dir.rglob("*") if not p.name.startswith(".")]
    assert not [n for n in visible if n.endswith(".tmp")], visible
    for name in ("campaign_devices", "campaign_waves", "links"):
        path = run_dir / f"{name}.parquet"
        if path.exists():
            pd.read_parquet(path)  # complete, never half a file
    return run.events


#: the issue asks for a run directory from 1 s on (measured: 0.34-0.49 s to the manifest on a
#: two-core machine at load 9)
KILL_AFTER_S = 1.0


def test_killed_after_one_second_leaves_a_run_directory(tmp_path: Path) -> None:
    t0 = time.monotonic()

    def after_one_second(d: Path | None) -> bool:
        return time.monotonic() - t0 >= KILL_AFTER_S

    waited = _kill_when(tmp_path, after_one_second)
    run_dir = _run_dir(tmp_path)
    assert run_dir is not None, f"no run directory {waited:.2f} s after start"
    _check(run_dir)
    assert read_run(run_dir).manifest["schema_version"] == SCHEMA_VERSION


@pytest.mark.slow
@pytest.mark.parametrize("clock", ["scaled", "virtual"])
def test_killed_at_several_moments(tmp_path: Path, clock: str) -> None:
    args = ARGS if clock == "scaled" else ARGS_VIRTUAL
    def tables(d: Path | None) -> bool:
        return d is not None and (d / "links.parquet").exists()  # written last of the three

    def parts(n: int) -> Callable[[Path | None], bool]:
        # n flushes done: part numbers only grow, while the number of part files on disk
        # falls whenever the recorder merges eight parts into one
        def flushed(d: Path | None) -> bool:
            files = [] if d is None else part_files(d / "events.parquet")
            return bool(files) and int(files[-1].stem.split("-")[1]) + 1 >= n

        return flushed

    def success(d: Path | None) -> bool:
        path = None if d is None else d / "campaign_devices.parquet"
        if path is None or not path.exists():
            return False
        try:
            return bool((pd.read_parquet(path)["status"] == "success").any())
        except Exception:
            return False

    counts = []
    for i, condition in enumerate([tables, parts(2), parts(5), success]):
        out = tmp_path / f"k{i}"
        _kill_when(out, condition, args=args)
        run_dir = _run_dir(out)
        assert run_dir is not None
        events = _check(run_dir)
        counts.append(len(events))
        if condition is tables:
            assert (run_dir / "campaign_waves.parquet").exists()
            assert (run_dir / "links.parquet").exists()
        if condition is success:
            devices = pd.read_parquet(run_dir / "campaign_devices.parquet")
            assert (devices["status"] == "success").any()
    assert counts[1] > 0 and counts[2] >= counts[1]


def test_usage_error_leaves_no_run_directory(tmp_path: Path) -> None:
    for bad in (["--devices", "x"], ["--faults", "nonsense=2"]):
        proc = subprocess.run(
            labkit_argv(*ARGS, *bad, "--out", str(tmp_path)),
            cwd=REPO,
            env=labkit_env(),
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 2
        assert _run_dir(tmp_path) is None


def test_runstart_schema_version_is_the_recorders() -> None:
    from labkit.record.schema import SCHEMA_VERSION as RECORDER_SCHEMA

    assert SCHEMA_VERSION == RECORDER_SCHEMA
