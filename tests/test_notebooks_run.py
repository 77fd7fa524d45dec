"""Run every notebook of the course, as a student would, in fast mode.

Each ``notebooks/NN_name.ipynb`` is executed top to bottom in a fresh ``python3`` kernel (the
one ipykernel installs in the venv, so ``make test`` needs no kernelspec step) with
``LABKIT_FAST=1``. A notebook passes when no cell raises, nothing is written to stderr (a
student must not see warnings or tracebacks), it draws at least one plot (an ``image/png``
output from matplotlib's inline backend) and it finishes within a minute; all of them together
within five. The notebook files are not modified: outputs stay in memory.

``LABKIT_NOTEBOOK_TIMEOUT`` (seconds, default 60) widens the per-notebook bound on a slow
machine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))

#: Seconds one notebook may take (kernel start included), and all of them together.
NOTEBOOK_SECONDS = float(os.environ.get("LABKIT_NOTEBOOK_TIMEOUT", "60"))
COURSE_SECONDS = 300.0
#: Notebooks that legitimately draw nothing (none so far).
NO_PLOTS: frozenset[str] = frozenset()

_durations: dict[str, float] = {}


def _run(path: Path) -> tuple[object, float]:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=int(NOTEBOOK_SECONDS),  # per cell
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    started = time.monotonic()
    client.execute()
    return nb, time.monotonic() - started


@pytest.mark.timeout(NOTEBOOK_SECONDS * 3)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(
    path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The kernel inherits this process's environment.
    monkeypatch.setenv("LABKIT_FAST", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # keep the inline backend: PNG outputs
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # no debugger note on stderr
    # Hermetic kernel: the venv's own "python3" kernelspec (ipykernel installs it in
    # sys.prefix), not one from the user's Jupyter or IPython directories.
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    nb, seconds = _run(path)
    _durations[path.stem] = seconds

    outputs = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.outputs]
    errors = [f"cell {i}: {o.get('ename')}" for i, o in outputs if o.output_type == "error"]
    stderr = [
        f"cell {i}: {o.text.strip()[:300]}"
        for i, o in outputs
        if o.output_type == "stream" and o.name == "stderr"
    ]
    images = [i for i, o in outputs if "image/png" in o.get("data", {})]
    assert not errors, errors
    assert not stderr, f"{path.name} wrote to stderr: {stderr}"
    if path.stem not in NO_PLOTS:
        assert images, f"{path.name} drew no plot"
    assert seconds < NOTEBOOK_SECONDS, f"{path.name} took {seconds:.1f} s"


def test_the_whole_course_runs_in_five_minutes() -> None:
    if len(_durations) < len(NOTEBOOKS):
        pytest.skip("needs every notebook run in this session")
    total = sum(_durations.values())
    assert total < COURSE_SECONDS, f"the notebooks took {total:.0f} s together: {_durations}"
