"""The notebook series in fast mode: total wall time (goal <= 5 min).

Runs every ``notebooks/*.ipynb`` the way CI does (``pytest --nbmake``, each notebook in a fresh
kernel) with ``LABKIT_FAST=1`` in the environment, and reports the wall time of the whole
series. There is no reference: the goal is on the absolute time. ``--quick`` does not run
the series (it alone may take minutes); it only reports how many notebooks there are.

Not measurable while ``notebooks/`` holds no notebook.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import ERROR, Goal, Options, Row, not_yet, register, skipped

GOAL = Goal(on="lab", op="<=", value=300.0, text="<= 5 min")
ROOT = Path(__file__).resolve().parents[1]
WHAT = "notebook series in fast mode, total wall time"
TIMEOUT = 1800.0


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


@register("notebooks", "the notebook series in fast mode, total wall time")
def run(options: Options) -> list[Row]:
    found = notebooks()
    if not found:
        return [not_yet("notebooks", WHAT, GOAL, "no notebooks yet (notebooks/*.ipynb is empty)")]
    if importlib.util.find_spec("nbmake") is None:
        return [skipped("notebooks", WHAT, GOAL, "nbmake is not installed (pip install nbmake)")]
    if options.quick:
        return [skipped("notebooks", WHAT, GOAL, f"{len(found)} notebooks; full run only")]
    env = dict(os.environ, LABKIT_FAST="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake"]
    cmd += [str(p) for p in found]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        note = f"the series did not finish within {TIMEOUT:.0f} s"
        return [Row(key="notebooks", what=WHAT, goal=GOAL, status=ERROR, note=note)]
    took = time.perf_counter() - start
    if done.returncode != 0:
        lines = done.stdout.decode(errors="replace").strip().splitlines()
        failed = [ln.split()[1] for ln in lines if ln.startswith("FAILED ") and len(ln.split()) > 1]
        note = f"no figure: pytest --nbmake exited {done.returncode} after {took:.0f} s"
        note += f" ({lines[-1].strip('= ')})" if lines else ""
        if failed:
            note += "; failed: " + ", ".join(Path(f.split("::")[0]).name for f in failed)
        return [Row(key="notebooks", what=WHAT, goal=GOAL, status=ERROR, note=note)]
    return [
        Row(
            key="notebooks",
            what=WHAT,
            goal=GOAL,
            lab=took,
            note=f"{len(found)} notebooks, pytest --nbmake with LABKIT_FAST=1",
            samples={"lab": [took]},
        )
    ]
