"""``simulate`` on virtual time: every device final, CONNECTION_LOST only where the faults or
the link explain it, byte-identical event tables across processes and hash seeds, and no
wall-clock read on the lab's loop thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from labkit.fota.campaign import FINAL_STATUSES
from labkit.fota.simulate import simulate
from labkit.record import read_run
from labkit.sim.link import device_link, link_trouble

ROOT = Path(__file__).resolve().parents[2]

#: The issue's command, shrunk to 40 devices (the 200-device run is a benchmark).
ISSUE_RUN = dict(
    devices=40, profile="mixed", policy="threshold", method="push", image_size=32768,
    faults="link-drop:0.05,boot-fail:0.05", seed=7,
)


def explained(profile: str, index: int, seed: int, faults: str, start: float,
              end: float) -> bool:
    """A CONNECTION_LOST is explained by a link-drop fault, or by the device's own link getting
    bad at some second of its download: losing at least every other datagram, or at its
    profile's worst signal (worst delay and data rate), :func:`labkit.sim.link.link_trouble`."""
    if "link-drop" in faults.split(","):
        return True
    return link_trouble(device_link(profile, index, seed).trace, start, end) is not None


def check_run(run_dir: Path, devices: int, seed: int, profile: str) -> pd.DataFrame:
    table = pd.read_parquet(run_dir / "campaign_devices.parquet")
    links = pd.read_parquet(run_dir / "links.parquet")
    assert len(table) == devices
    assert set(table["status"].astype(str)) <= set(FINAL_STATUSES)
    assert not (table["status"].astype(str) == "cancelled").any()
    merged = table.merge(links, on="device")
    lost = merged[merged["result"] == 4]
    for row in lost.itertuples(index=False):
        index = int(row.device.removeprefix("sim-")) - 1
        assert explained(profile, index, seed, row.faults, float(row.started_s),
                         float(row.finished_s)), row
    return merged


def test_the_issue_run_on_virtual_time_every_device_final_and_losses_explained(
    tmp_path: Path,
) -> None:
    run_dir = simulate(**ISSUE_RUN, out=tmp_path)  # type: ignore[arg-type]
    merged = check_run(run_dir, 40, 7, "mixed")
    params = json.loads((run_dir / "manifest.json").read_text())["params"]
    assert params["clock"] == "virtual" and params["epoch"] == 1_735_689_600.0
    assert params["distorted"] is False and "distortion_warning" not in params
    assert params["campaign"]["status"] == "finished"
    # every device with the link-drop fault lost its connection; the boot-fail ones failed
    drop = merged[merged["faults"].str.contains("link-drop")]
    assert len(drop) == 2 and set(drop["result"]) == {4}
    boot = merged[merged["faults"].str.contains("boot-fail")]
    assert set(boot["result"].dropna()) <= {8}  # rolled back: firmware update failed
    assert (merged["result"] == 1).sum() >= 30
    events = read_run(run_dir).events
    assert events["ts"].min() == pd.Timestamp("2025-01-01", tz="UTC")
    assert run_dir.name == "20250101T000000Z-v7"


DIGEST = """
import hashlib, sys
from labkit.fota.simulate import simulate
from labkit.record import read_run
run = simulate(devices=12, profile="mixed", policy="threshold", method="push",
               image_size=16384, faults="link-drop:0.1,boot-fail:0.1", seed=3, out=sys.argv[1])
events = read_run(run).events
print(hashlib.sha256(events.to_csv(index=False).encode()).hexdigest(), len(events))
"""


def test_two_processes_with_different_hash_seeds_give_byte_identical_event_tables(
    tmp_path: Path,
) -> None:
    digests = []
    for hash_seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, "-c", DIGEST, str(tmp_path / hash_seed)],
            capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
        )
        assert proc.returncode == 0, proc.stderr
        digests.append(proc.stdout.split())
    assert digests[0] == digests[1]
    assert int(digests[0][1]) > 500


def test_no_wall_clock_is_read_on_the_loop_thread_of_a_virtual_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []

    def guard(name: str, real):  # type: ignore[no-untyped-def]
        def wrapper(*args):  # type: ignore[no-untyped-def]
            if threading.current_thread().name == "labkit-lab-loop":
                caller = sys._getframe(1).f_globals.get("__name__", "?")
                if caller != "logging":  # log records carry a wall timestamp, by design
                    reads.append(f"{name} from {caller}")
                    raise AssertionError(f"wall clock {name}() read in a virtual run by {caller}")
            return real(*args)

        return wrapper

    for name in ("time", "monotonic", "perf_counter", "time_ns", "monotonic_ns"):
        monkeypatch.setattr(time, name, guard(name, getattr(time, name)))
    run_dir = simulate(devices=8, profile="mixed", policy="threshold", method="push",
                       image_size=8192, faults="link-drop:0.2,boot-fail:0.2", seed=5,
                       out=tmp_path, on_progress=lambda done, total: None)
    monkeypatch.undo()
    assert reads == []
    check_run(run_dir, 8, 5, "mixed")


def test_closing_the_table_writer_does_not_wait_out_its_pause(tmp_path: Path) -> None:
    """The writer pauses between two writes (a large fleet: many wall seconds); the end of a
    run must not wait for that pause (it did: up to devices / 200 wall seconds per run)."""
    from labkit.fota.simulate import _TableWriter

    writer = _TableWriter(tmp_path, min_interval=3600.0)
    writer.offer({"campaign_waves": pd.DataFrame({"wave": [0, 1]})})
    while writer.ready.is_set() or not (tmp_path / "campaign_waves.parquet").exists():
        time.sleep(0.01)  # written: the thread is in its pause now (or about to be)
    writer.close()  # joins with a 30 s bound: a pause of an hour would outlast it
    assert not writer._thread.is_alive()
    assert pd.read_parquet(tmp_path / "campaign_waves.parquet")["wave"].tolist() == [0, 1]
