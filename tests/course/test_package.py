"""labkit.course as a package of lessons: one module per notebook, each small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import labkit.course
from labkit.course import exercises

COURSE = Path(labkit.course.__file__).parent
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

#: A lesson module a teacher reads in one sitting (STYLE: about 400 lines).
MAX_LINES = 400


def test_no_course_module_is_longer_than_a_lesson() -> None:
    long = {
        p.name: n
        for p in COURSE.glob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these into a lesson and a companion module: {long}"


def test_every_notebook_has_a_lesson_module_and_back() -> None:
    notebooks = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    lessons = {p.stem[1:] for p in COURSE.glob("l[0-9][0-9]_*.py")}
    companions = {name for name in lessons if name not in notebooks}
    assert notebooks <= lessons
    # a companion module (l04_policy_runs) belongs to a lesson with the same number
    numbers = {name[:2] for name in notebooks}
    assert {name[:2] for name in companions} <= numbers


def test_importing_the_package_loads_no_lesson() -> None:
    tree = ast.parse((COURSE / "__init__.py").read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"__future__", "labkit.course.common"}


def test_every_lesson_registers_its_exercises_under_its_notebook() -> None:
    loaded = exercises.load_lessons()
    assert "l00_tour" in loaded and "l09_real_device" in loaded
    by_notebook = {e.notebook for e in exercises.all_exercises().values()}
    notebooks = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert by_notebook == notebooks
