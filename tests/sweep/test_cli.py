"""``labkit sweep`` and ``labkit report SWEEP_DIR`` end to end (serially, small)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.cli import main


def test_sweep_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    code = main(["sweep", "--grid", "policy=always,threshold", "--grid", "min_rssi_dbm=-110,-100",
                 "--profile", "lte-m", "--devices", "3", "--image-size", "2048", "--seeds", "2",
                 "--workers", "1", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "3 points x 2 seeds = 6 cells" in text
    assert "6/6 cells done, 0 failed, 0 skipped" in text
    # a second run skips everything
    assert main(["sweep", "--grid", "policy=always,threshold", "--grid",
                 "min_rssi_dbm=-110,-100", "--profile", "lte-m", "--devices", "3",
                 "--image-size", "2048", "--seeds", "2", "--workers", "1", "--out", str(out),
                 "--no-progress"]) == 0
    assert "6 skipped (already done)" in capsys.readouterr().out
    report = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report)]) == 0
    names = {p.name for p in report.iterdir()}
    assert {"summary.md", "summary.csv", "rates.csv", "pareto.png", "heatmap.png",
            "failure_rate_by_policy.png", "failure_rate_by_min_rssi_dbm.png"} <= names
    md = (report / "summary.md").read_text()
    assert "## Best point: minimise failure_rate" in md
    rows = [line for line in md.splitlines() if line.startswith("| p") and "point" not in line]
    assert len(rows) == 3  # one table row per point
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["grid"]["fixed"] == {"devices": 3, "image_size": 2048, "profile": "lte-m"}


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--grid", "colour=red", "--out", str(tmp_path), "--workers",
                 "1"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    assert main(["sweep", "--grid", "profile=wifi", "--profile", "nb-iot", "--out",
                 str(tmp_path), "--workers", "1"]) == 2
    with pytest.raises(SystemExit):
        main(["sweep", "--grid", "policy", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["sweep", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1", "--out",
              str(tmp_path)])
