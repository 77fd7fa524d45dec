"""Small sweeps shared by the sweep tests (virtual time: each cell is deterministic)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from labkit.sweep.grid import Grid

#: Why determinism tests skip when the simulator has no virtual time.
NEEDS_VIRTUAL = "needs simulate(clock='virtual') from issue 12"


def has_virtual_time() -> bool:
    from labkit.fota.simulate import simulate

    return "clock" in inspect.signature(simulate).parameters


needs_virtual = pytest.mark.skipif(not has_virtual_time(), reason=NEEDS_VIRTUAL)


def small_grid(devices: int = 6, seeds: tuple[int, ...] = (0, 1)) -> Grid:
    """2 points (always, threshold -105) x seeds on NB-IoT with a third of the links
    dropping: failures and successes both occur."""
    return Grid(
        {"policy": ["always", "threshold"], "min_rssi_dbm": [-105]},
        fixed={"profile": "nb-iot", "devices": devices, "faults": "link-drop:0.3",
               "image_size": 4096},
        seeds=seeds,
    )


@pytest.fixture(scope="session")
def serial_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small grid run with ``workers=1`` (serially, in this process)."""
    from labkit.sweep.engine import run_sweep

    out = tmp_path_factory.mktemp("sweep-serial")
    result = run_sweep(small_grid(), out, workers=1, progress=False)
    assert result.ok, result.failed
    return out
