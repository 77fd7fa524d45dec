"""``labkit simulate``: a 200-device campaign (on virtual time, so that what it checks cannot
depend on how busy the machine is), and the command line on both clocks
(tests/campaign/test_simulate_virtual.py checks the results of virtual runs in depth)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from labkit.fota.campaign import FINAL_STATUSES
from labkit.fota.simulate import simulate
from labkit.record import decisions, read_run

ROOT = Path(__file__).resolve().parents[2]


def test_200_devices_mixed_faults_threshold(tmp_path: Path) -> None:
    run_dir = simulate(
        devices=200, profile="mixed", policy="threshold", method="push", image_size=4096,
        faults="link-drop:0.05,boot-fail:0.05", seed=1, out=tmp_path,
        block_size=1024, max_wait_s=1800.0, clock="virtual",
    )

    devices = pd.read_parquet(run_dir / "campaign_devices.parquet")
    assert len(devices) == 200
    assert set(devices["status"].astype(str)) <= set(FINAL_STATUSES)
    assert not (devices["status"].astype(str) == "cancelled").any()
    waves = pd.read_parquet(run_dir / "campaign_waves.parquet")
    assert int(waves["devices"].sum()) == 200
    assert len(pd.read_parquet(run_dir / "links.parquet")) == 200

    params = json.loads((run_dir / "manifest.json").read_text())["params"]
    assert params["seed"] == 1 and params["clock"] == "virtual"
    assert params["policy"] == "threshold" and params["thresholds"] == {"min_rssi_dbm": -105.0}
    assert params["fault_counts"] == {"link-drop": 10, "boot-fail": 10}
    assert params["distorted"] is False  # a virtual run cannot be distorted by the CPU
    assert params["campaign"]["status"] == "finished"

    run = read_run(run_dir)
    dec = decisions(run.events)
    assert (dec["device"].nunique()) == 200
    known = dec["rssi_dbm"].notna() & dec["link_quality"].notna()
    assert (known | dec["reason"].str.startswith("no link sample")).all()
    assert known.mean() > 0.9
    # A decision taken on a sample carries it in its own row (sample_age_s 0); when the read
    # of /4 failed, the row says so (decisions() then shows the device's last known sample,
    # with its age). Every decision row carries its wave.
    own = ~dec["reason"].str.startswith("no link sample")
    assert known[own].all() and (dec.loc[own, "sample_age_s"] == 0).all()
    raw = run.events[run.events["kind"] == "decision"]
    assert raw["wave"].notna().all() and raw["rssi_dbm"].notna().sum() == int(own.sum())


def test_simulate_command_virtual_by_default(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "simulate", "--devices", "3", "--profile", "nb-iot",
         "--policy", "always", "--image-size", "4096", "--seed", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=100, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "result SUCCESS 3" in lines
    assert "clock virtual from 1735689600.0 (exact: no loop lag)" in lines
    assert not any(line.startswith("warning") for line in lines)
    assert "3/3 devices" in proc.stderr  # the progress line, drawn on wall-clock ticks


def test_simulate_command(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "simulate", "--devices", "3", "--profile", "wifi",
         "--policy", "always", "--image-size", "2048", "--seed", "2", "--time-scale", "10",
         "--clock", "scaled", "--out", str(tmp_path), "--canary", "1"],
        capture_output=True, text=True, timeout=100, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "result SUCCESS 3" in lines
    assert lines[0].startswith("wave 0 canary: 1 devices, 1 success")
    assert any(line.startswith("loop lag p95") for line in lines)
    run_line = [line for line in lines if line.startswith("run ")]
    assert run_line and Path(run_line[0][4:]).is_dir()
    assert "3/3 devices" in proc.stderr  # the progress line
    params = json.loads((Path(run_line[0][4:]) / "manifest.json").read_text())["params"]
    assert params["clock"] == "scaled" and params["time_scale"] == 10.0
    lag = params["loop_lag"]  # a scaled run measures how late the CPU made its timers
    assert lag["samples"] > 0 and 0 <= lag["p50_ms"] <= lag["p95_ms"] <= lag["max_ms"]
    assert params["distorted"] == (lag["p95_sim_ms"] / 1000 > 0.1 * params["typical_rtt_s"])


def test_simulate_command_usage_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "simulate", "--faults", "gremlins:0.5",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "gremlins" in proc.stderr
