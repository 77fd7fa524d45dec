"""labkit.sweep.run_sweep: serially, on a LocalCluster, on a separately started Dask cluster,
with a worker killed mid-sweep, with a failing cell, and resumed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.sweep.engine import run_sweep
from labkit.sweep.grid import Grid
from labkit.sweep.progress import SweepProgress
from labkit.sweep.store import done_cells, failed_cells
from tests.sweep.conftest import needs_virtual, small_grid
from tests.sweep.helpers import assert_same_sweep, partitions

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]


def test_serial_sweep_writes_one_partition_per_cell(serial_sweep: Path) -> None:
    grid = small_grid()
    cells = grid.cells()
    assert partitions(serial_sweep) == sorted(f"cell={c.id}/part-0.parquet" for c in cells)
    assert partitions(serial_sweep, "events") == partitions(serial_sweep)
    manifest = json.loads((serial_sweep / "sweep.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["seeds"] == [0, 1]
    assert manifest["grid"]["varied"] == ["policy", "min_rssi_dbm"]
    assert {"labkit", "dask", "pyarrow"} <= set(manifest["versions"])
    assert all(c["status"] == "done" and c["wall_s"] > 0 for c in manifest["cells"])
    assert not (serial_sweep / "tmp").exists()
    # each cell's run is a run read_run accepts, and its events are the partition's
    from labkit.record import read_run

    run = read_run(serial_sweep / "runs" / cells[0].id)
    assert run.params["seed"] == cells[0].seed
    assert len(run.events) == done_cells(serial_sweep)[cells[0].id]["n_events"]


def test_the_dataset_reads_in_place_with_pandas_pyarrow_and_duckdb(serial_sweep: Path) -> None:
    import pandas as pd
    import pyarrow.dataset as ds

    frame = pd.read_parquet(serial_sweep / "devices")
    assert set(frame["cell"].astype(str)) == {c.id for c in small_grid().cells()}
    assert {"policy", "min_rssi_dbm", "seed", "device", "status", "result"} <= set(frame)
    events = ds.dataset(serial_sweep / "events", partitioning="hive").to_table()
    n_events = sum(r["n_events"] for r in done_cells(serial_sweep).values())
    assert events.num_rows == n_events
    duckdb = pytest.importorskip("duckdb")
    got = duckdb.sql(
        f"select count(*) from read_parquet('{serial_sweep}/events/*/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()
    assert got == [(n_events,)]


@needs_virtual
@pytest.mark.timeout(300)
def test_local_cluster_gives_the_same_tables_as_serial(serial_sweep: Path, tmp_path: Path) -> None:
    seen: list[SweepProgress] = []
    result = run_sweep(small_grid(), tmp_path, workers=2, progress=seen.append)
    assert result.ok, result.failed
    assert result.executor.startswith("dask LocalCluster")
    assert seen[-1].finished == seen[-1].total == 4
    assert seen[-1].eta_s == 0.0
    assert_same_sweep(serial_sweep, tmp_path)


@contextlib.contextmanager
def dask_cluster(tmp: Path, workers: int = 2) -> Iterator[str]:
    """``dask scheduler`` and ``workers`` ``dask worker`` processes on 127.0.0.1; yields the
    scheduler address; kills them all on exit."""
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip("the dask command is not installed next to this Python")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]).rstrip(os.pathsep)}
    file = tmp / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        log = (tmp / "scheduler.log").open("wb")
        logs.append(log)
        procs.append(subprocess.Popen(
            [str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(file)], stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True))
        for _ in range(600):  # bounded: 60 s
            if file.exists() and file.stat().st_size:
                break
            if procs[0].poll() is not None:
                pytest.fail(f"dask scheduler exited: {(tmp / 'scheduler.log').read_text()}")
            time.sleep(0.1)
        else:
            pytest.fail("dask scheduler did not write its address in 60 s")
        address = json.loads(file.read_text())["address"]
        for i in range(workers):
            log = (tmp / f"worker-{i}.log").open("wb")
            logs.append(log)
            procs.append(subprocess.Popen(
                [str(dask), "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--nworkers", "1", "--no-dashboard", "--name", f"w{i}"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        for log in logs:
            log.close()


@needs_virtual
@pytest.mark.timeout(400)
def test_a_separately_started_cluster_gives_the_same_tables(
    serial_sweep: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    with dask_cluster(tmp_path) as address:
        result = run_sweep(small_grid(), out, scheduler=address, progress=False)
    assert result.ok, result.failed
    assert result.executor == f"dask {address}"
    pids = {rec["pid"] for rec in result.done.values()}
    assert os.getpid() not in pids  # the cells ran in the worker processes
    assert_same_sweep(serial_sweep, out)


@pytest.mark.timeout(400)
def test_killing_a_worker_mid_sweep_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    grid = small_grid(devices=20, seeds=(0, 1, 2))
    killed: list[int] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:

        def kill_a_busy_worker(p: SweepProgress) -> None:
            if killed or p.finished < 1 or p.finished >= p.total:
                return
            busy = [w for w, keys in client.processing().items() if keys]
            if not busy:
                return
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        result = run_sweep(grid, tmp_path, client=client, progress=kill_a_busy_worker)
    assert killed, "no worker was busy after the first cell finished"
    cells = grid.cells()
    assert result.ok, result.failed
    assert partitions(tmp_path) == sorted(f"cell={c.id}/part-0.parquet" for c in cells)
    assert partitions(tmp_path, "events") == partitions(tmp_path)
    assert sorted(done_cells(tmp_path)) == sorted(c.id for c in cells)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(c.id for c in cells)
    assert not (tmp_path / "tmp").exists()
    import pandas as pd

    frame = pd.read_parquet(tmp_path / "devices")
    assert len(frame) == 20 * len(cells)
    assert not frame.duplicated(["cell", "device"]).any()


def test_a_failing_cell_is_reported_and_the_rest_completes(tmp_path: Path) -> None:
    grid = Grid({"method": ["push", "bogus"]}, fixed={"profile": "wifi", "devices": 2,
                                                       "image_size": 2048}, seeds=[0])
    result = run_sweep(grid, tmp_path, workers=1, progress=False)
    assert len(result.done) == 1 and len(result.failed) == 1
    record = next(iter(result.failed.values()))
    assert record["params"]["method"] == "bogus"
    assert "Traceback" in record["traceback"] and "bogus" in record["error"]
    assert failed_cells(tmp_path).keys() == result.failed.keys()
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["status"] == "incomplete"
    assert sorted(c["status"] for c in manifest["cells"]) == ["done", "failed"]


def test_rerun_skips_done_cells_and_redoes_a_lost_one(serial_sweep: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(serial_sweep, out)
    lost = small_grid().cells()[1].id
    (out / "done" / f"{lost}.json").unlink()  # as if killed between its files and its record
    (out / "tmp" / "debris").mkdir(parents=True)
    seen: list[SweepProgress] = []
    result = run_sweep(small_grid(), out, workers=1, progress=seen.append)
    assert result.ok
    assert result.skipped == 3
    assert seen[-1].done == 1
    assert list(result.done) and result.done[lost]["pid"] == os.getpid()
    assert partitions(out) == partitions(serial_sweep)
    assert not (out / "tmp").exists()


def _loop_settings(dask_worker: Any) -> dict[str, Any]:
    callbacks = dask_worker.periodic_callbacks
    return {
        "profile": "profile" in callbacks,
        "tick_ms": callbacks["tick"].callback_time,
        "monitor_ms": callbacks["monitor"].callback_time,
        "memory_ms": callbacks["memory_monitor"].callback_time,
    }


def test_our_local_cluster_wakes_its_workers_event_loop_seldom() -> None:
    """Our own LocalCluster's workers: no statistical profiler and monitoring callbacks at
    1-5 s (each wake-up takes the GIL from the cell); the caller's config is left as it was."""
    import dask

    from labkit.sweep.engine import _local_client

    before = dask.config.get("distributed.admin.tick.interval")
    client, cluster = _local_client(1)
    try:
        settings = list(client.run(_loop_settings).values())
    finally:
        client.close()
        cluster.close()
    assert settings == [{"profile": False, "tick_ms": 1000, "monitor_ms": 5000,
                         "memory_ms": 1000}]
    assert dask.config.get("distributed.admin.tick.interval") == before


def test_cells_are_handed_out_biggest_first() -> None:
    """Devices x blocks x the profile's retransmissions: NB-IoT's round trips exceed CoAP's
    ACK_TIMEOUT, so its cells go before LTE-M's of the same size; grid order breaks ties."""
    from labkit.sweep.engine import longest_first

    grid = Grid(explicit=[{"profile": "lte-m", "devices": 100},
                          {"profile": "nb-iot", "devices": 100},
                          {"profile": "lte-m", "devices": 300},
                          {"profile": "wifi", "devices": 100}], seeds=[0, 1])
    order = [(c["params"]["profile"], c["params"]["devices"], c["seed"])
             for c in longest_first([c.as_dict() for c in grid.cells()])]
    assert order == [("lte-m", 300, 0), ("lte-m", 300, 1), ("nb-iot", 100, 0),
                     ("nb-iot", 100, 1), ("lte-m", 100, 0), ("lte-m", 100, 1),
                     ("wifi", 100, 0), ("wifi", 100, 1)]
