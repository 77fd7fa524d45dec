"""The benchmark harness keeps working: ``python -m benchmarks`` runs and prints its table.

Benchmarks report and never gate, so this checks the harness (the command, the table, the
goal arithmetic), not any figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import NOT_YET, Goal, Row, format_table, interleaved, paired_ratio

ROOT = Path(__file__).resolve().parents[1]


def test_quick_analysis_prints_the_table_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "analysis", "notebooks",
         "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        timeout=90,
        check=False,
    )  # fmt: skip
    stdout = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "| benchmark" in stdout and "| ratio" in stdout and "| met?" in stdout
    assert "analysis over 1 million events" in stdout
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and doc["machine"]["cores"]
    rows = {r["key"]: r for r in doc["rows"]}
    assert rows["analysis"]["status"] == "measured" and rows["analysis"]["ratio"] > 0
    assert rows["notebooks"]["status"] in ("skipped", NOT_YET)  # --quick never runs them


def test_goals_judge_the_ratio_or_the_lab_figure() -> None:
    at_most = Goal(op="<=", value=1.25, text="<= 1.25x")
    assert at_most.met(lab=10.0, ratio=1.2) is True
    assert at_most.met(lab=10.0, ratio=1.3) is False
    at_least = Goal(on="lab", op=">=", value=50.0, text=">= 50")
    assert at_least.met(lab=60.0, ratio=None) is True
    assert Goal().met(lab=1.0, ratio=2.0) is None  # reported only


def test_interleaving_alternates_and_ratio_is_the_median_of_pairs() -> None:
    order: list[str] = []

    def lab() -> float:
        order.append("lab")
        return 2.0

    def ref() -> float:
        order.append("ref")
        return 1.0

    labs, refs = interleaved(lab, ref, 4, warmup=1)
    assert order[2:] == ["lab", "ref", "ref", "lab", "lab", "ref", "ref", "lab"]
    assert len(labs) == len(refs) == 4
    assert paired_ratio([2.0, 3.0, 100.0], [1.0, 1.0, 1.0]) == 3.0


def test_rows_not_yet_measurable_show_no_figure() -> None:
    row = Row(key="x", what="thing", goal=Goal(op="<=", value=1.0), status=NOT_YET, note="why")
    text = format_table([row])
    assert "not yet measurable: why" in text
    assert row.met is None
