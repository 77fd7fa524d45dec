"""labkit.sweep.cell.run_cell: what a cell leaves behind in the process that ran it."""

from __future__ import annotations

import gc
from pathlib import Path

from labkit.client.model import FlashStorage
from labkit.sweep.cell import param_table_types, run_cell
from tests.sweep.conftest import small_grid


def _alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def test_a_cell_leaves_no_fleet_behind(tmp_path: Path) -> None:
    """The campaign's devices are cyclic garbage when it ends; run_cell frees them (and their
    flash directories) before it returns, so a worker does not grow with every cell."""
    cells = [c.as_dict() for c in small_grid(devices=8).cells()]
    types = param_table_types(cells)
    before = _alive(FlashStorage)
    for cell in cells[:2]:
        record = run_cell(cell, str(tmp_path), types)
        assert record["status"] == "done", record.get("traceback")
        assert _alive(FlashStorage) == before
