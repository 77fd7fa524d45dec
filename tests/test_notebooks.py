"""The notebook course, checked without running it (``tests/test_notebooks_run.py`` runs it).

Every ``notebooks/NN_name.ipynb``:

* carries no outputs and no execution counts (and no saved widget state): git stores it
  stripped;
* is paired with ``notebooks/NN_name.py`` in jupytext's py:percent format, and both files hold
  the same cells (types, sources and tags);
* opens with a Markdown cell holding its title and a "What you will see" paragraph, has a code
  cell tagged ``parameters`` as its first code cell (importing its own lesson module,
  ``from labkit.course import lNN_name as lesson``, and setting ``FAST`` from
  ``lesson.fast_mode()``), ends with a code cell that closes its lab (when it starts one:
  08 reads saved runs and starts none), and has one to three
  exercises, each registered by its lesson module (:mod:`labkit.course.exercises`) for that
  notebook;
* is thin: a few logical lines per code cell;
* is listed in ``notebooks/README.md``.

Adding notebook 03 needs no change here: write ``notebooks/03_name.py``, run
``jupytext --sync notebooks/03_name.py``, write ``labkit/course/l03_name.py`` with its helpers
and exercises.
"""

from __future__ import annotations

import io
import re
import statistics
import tokenize
import tomllib
from pathlib import Path
from typing import Any

import pytest

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

from labkit.course import exercises  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
SCRIPTS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))

#: Thin notebooks (STYLE.md, after scikit-rf): logical lines per code cell.
MAX_LINES_PER_CELL = 8
MAX_MEDIAN_LINES = 3

ids = [p.stem for p in NOTEBOOKS]


# -- checks, as functions (tested on bad notebooks below) -------------------------------------


def output_problems(nb: Any) -> list[str]:
    """What a notebook stored that git must not: outputs, execution counts, widget state."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {index} has {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {index} has execution_count {cell.execution_count}")
    if "widgets" in nb.metadata:
        problems.append("the notebook stores widget state (metadata.widgets)")
    return problems


def cell_signature(nb: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    """What a pair must agree on: each cell's type, source and tags."""
    return [
        (c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", ())))
        for c in nb.cells
    ]


def pair_problems(ipynb: Path, script: Path) -> list[str]:
    """Differences between a notebook and its py:percent twin ([] when in sync)."""
    if not script.exists():
        return [f"{script.name} is missing: run `jupytext --sync {ipynb.name}`"]
    if "format_name: percent" not in script.read_text(encoding="utf-8")[:2000]:
        return [f"{script.name} is not in py:percent format"]
    a = cell_signature(jupytext.read(ipynb))
    b = cell_signature(jupytext.read(script))
    if a == b:
        return []
    if len(a) != len(b):
        return [f"{ipynb.name} has {len(a)} cells, {script.name} has {len(b)}"]
    first = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return [f"cell {first} differs between {ipynb.name} and {script.name}"]


def logical_lines(source: str) -> int:
    """Logical lines of Python (a statement split over lines in brackets counts once)."""
    text = "\n".join(
        line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
    )
    tokens = tokenize.generate_tokens(io.StringIO(text + "\n").readline)
    return sum(1 for token in tokens if token.type == tokenize.NEWLINE)


def code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def exercise_names(nb: Any) -> list[str]:
    text = "\n".join(c.source for c in code_cells(nb))
    return re.findall(r"lesson\.check\(\s*[\"']([^\"']+)[\"']", text)


# -- the course as a whole ----------------------------------------------------------------------


def test_the_course_has_its_first_notebooks() -> None:
    names = [p.stem for p in NOTEBOOKS]
    assert names[:3] == ["00_tour", "01_lwm2m_basics", "02_firmware_update_object"]


def test_notebook_numbers_are_unique() -> None:
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers))


def test_every_script_has_its_notebook() -> None:
    orphans = [p.name for p in SCRIPTS if not p.with_suffix(".ipynb").exists()]
    assert not orphans, f"run `jupytext --sync` on {orphans}"


def test_jupytext_pairs_ipynb_with_py_percent() -> None:
    config = tomllib.loads((NOTEBOOK_DIR / "jupytext.toml").read_text())
    assert config["formats"] == "ipynb,py:percent"


def test_readme_lists_every_notebook() -> None:
    readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in NOTEBOOKS if f"({p.name})" not in readme]
    assert not missing, f"notebooks/README.md has no line linking {missing}"


def test_every_registered_exercise_is_in_its_notebook() -> None:
    used = {name for path in NOTEBOOKS for name in exercise_names(nbformat.read(path, 4))}
    unused = sorted(set(exercises.all_exercises()) - used)
    assert not unused, f"exercises registered but in no notebook: {unused}"


# -- each notebook ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    problems = output_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{path.name}: {problems}; strip it (jupytext --sync from the .py)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_and_its_py_percent_file_agree(path: Path) -> None:
    problems = pair_problems(path, path.with_suffix(".py"))
    assert not problems, f"{problems}; run `jupytext --sync notebooks/{path.stem}.py`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_opens_with_title_and_what_you_will_see(path: Path) -> None:
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith(f"# {path.name[:2]} "), "title: '# NN · name'"
    assert "**What you will see.**" in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_first_code_cell_holds_the_parameters(path: Path) -> None:
    first = code_cells(nbformat.read(path, as_version=4))[0]
    assert "parameters" in first.metadata.get("tags", [])
    assert f"from labkit.course import l{path.stem} as lesson\n" in first.source
    assert "FAST = lesson.fast_mode()" in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_has_its_lesson_module(path: Path) -> None:
    module = ROOT / "labkit" / "course" / f"l{path.stem}.py"
    assert module.exists(), f"{path.name} has no lesson module {module.relative_to(ROOT)}"


def starts_a_lab(nb: Any) -> bool:
    """True when a code cell starts a lab (``Lab(`` or ``lab = ...``); 08 analyses saved runs
    and starts none."""
    return any(re.search(r"\bLab\(|^\s*lab\s*=", c.source, re.M) for c in code_cells(nb))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_ends_by_closing_its_lab(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    if not starts_a_lab(nb):  # nothing to close; and nothing may use a lab it never started
        used = [c.source for c in code_cells(nb) if re.search(r"\blab\.", c.source)]
        assert not used, f"{path.name} starts no lab but uses one: {used[0][:80]!r}"
        return
    last = code_cells(nb)[-1]
    assert re.search(r"\blab\.close\(\)", last.source), "the last code cell must close the lab"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_has_one_to_three_registered_exercises(path: Path) -> None:
    names = exercise_names(nbformat.read(path, as_version=4))
    assert 1 <= len(names) <= 3, f"{path.name} checks {len(names)} exercises"
    for name in names:
        registered = exercises.all_exercises()
        assert name in registered, f"{name!r} is not registered"
        assert registered[name].notebook == path.stem


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_code_cells_are_thin(path: Path) -> None:
    lines = [logical_lines(c.source) for c in code_cells(nbformat.read(path, as_version=4))]
    assert max(lines) <= MAX_LINES_PER_CELL, f"a cell has {max(lines)} lines: move it to labkit"
    assert statistics.median(lines) <= MAX_MEDIAN_LINES


# -- the checks catch what they should ------------------------------------------------------


def _notebook(*cells: Any) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def test_output_check_flags_outputs_counts_and_widget_state() -> None:
    cell = nbformat.v4.new_code_cell("1 + 1")
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"})]
    cell.execution_count = 1
    nb = _notebook(nbformat.v4.new_markdown_cell("# x"), cell)
    nb.metadata["widgets"] = {}
    assert len(output_problems(nb)) == 3
    assert output_problems(_notebook(nbformat.v4.new_code_cell("1 + 1"))) == []


def test_pair_check_flags_an_edited_script(tmp_path: Path) -> None:
    source = NOTEBOOK_DIR / "00_tour.py"
    script = tmp_path / "00_tour.py"
    ipynb = tmp_path / "00_tour.ipynb"
    script.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    jupytext.write(jupytext.read(script), ipynb)
    assert pair_problems(ipynb, script) == []
    script.write_text(
        script.read_text(encoding="utf-8").replace("lab.close()", "lab.close()  # done"),
        encoding="utf-8",
    )
    assert pair_problems(ipynb, script) != []
    assert pair_problems(ipynb, tmp_path / "missing.py") != []


def test_pair_check_flags_a_changed_tag(tmp_path: Path) -> None:
    script = tmp_path / "00_tour.py"
    ipynb = tmp_path / "00_tour.ipynb"
    text = (NOTEBOOK_DIR / "00_tour.py").read_text(encoding="utf-8")
    script.write_text(text, encoding="utf-8")
    jupytext.write(jupytext.read(script), ipynb)
    script.write_text(text.replace('tags=["parameters"]', ""), encoding="utf-8")
    assert pair_problems(ipynb, script) != []


def test_logical_lines_count_statements_not_brackets() -> None:
    assert logical_lines("from x import (\n    a,\n    b,\n)\ny = 1\n") == 2
    assert logical_lines("for i in r:\n    f(i)\n") == 2
    assert logical_lines("# only a comment\n") == 0


def test_starts_a_lab_tells_a_notebook_without_a_lab() -> None:
    assert starts_a_lab(_notebook(nbformat.v4.new_code_cell("lab = Lab().start()")))
    assert starts_a_lab(_notebook(nbformat.v4.new_code_cell("x = 1\nlab = lesson.scaled_lab()")))
    # a mention in a comment counts too: the closing rule stays strict
    assert starts_a_lab(_notebook(nbformat.v4.new_code_cell("r = read_run(p)  # the Lab() of 00")))
    assert not starts_a_lab(_notebook(nbformat.v4.new_code_cell("lab_rows = read_run(p).events")))
