"""Comparing two sweep directories cell by cell."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from labkit.sweep.analysis import read_sweep


def device_tables(path: Path) -> pd.DataFrame:
    frame = read_sweep(path).devices()
    return frame.sort_values(["cell", "device"], ignore_index=True)


def assert_same_sweep(a: Path, b: Path) -> None:
    """Same cells, same per-device result tables, same event tables, cell by cell."""
    cells_a = sorted(p.name for p in (a / "devices").iterdir())
    cells_b = sorted(p.name for p in (b / "devices").iterdir())
    assert cells_a == cells_b
    pd.testing.assert_frame_equal(device_tables(a), device_tables(b))
    for name in cells_a:
        ea = pq.read_table(a / "events" / name / "part-0.parquet")
        eb = pq.read_table(b / "events" / name / "part-0.parquet")
        assert ea.equals(eb), f"events of {name} differ"


def partitions(path: Path, kind: str = "devices") -> list[str]:
    """Every Parquet file under ``kind/``, as ``cell=<id>/<file>``."""
    return sorted(str(p.relative_to(path / kind)) for p in (path / kind).rglob("*.parquet"))
