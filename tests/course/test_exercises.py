"""labkit.course.exercises: the registry, and what holds for every exercise of every lesson
(the registered solution is right, no answer yet is no mistake, nonsense never raises, the
same verdict every time). Each checker's own right and wrong answers are tested with its
lesson, in ``tests/course/test_lNN_*.py``."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.course import exercises
from labkit.course.exercises import EXERCISES, Verdict, check

exercises.load_lessons()  # every lesson registers its exercises on import
NAMES = sorted(EXERCISES)

NONSENSE: list[Any] = [
    "",
    "   ",
    "banana",
    -1,
    99,
    3.5,
    True,
    b"\x00\xff",
    [],
    {},
    object(),
    ["x", None],
]


@pytest.mark.parametrize("name", NAMES)
def test_the_registered_solution_is_right(name: str) -> None:
    verdict = check(name, EXERCISES[name].solution)
    assert verdict.right and verdict.answered
    assert bool(verdict)
    assert str(verdict).startswith("✔ right: ")


@pytest.mark.parametrize("name", NAMES)
def test_no_answer_yet_is_neither_right_nor_a_mistake(name: str) -> None:
    verdict = check(name, None)
    assert not verdict.right and not verdict.answered
    assert str(verdict).startswith("✎ no answer yet")
    assert exercises.hint(name) in verdict.why


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("answer", NONSENSE, ids=repr)
def test_nonsense_is_not_quite_and_never_raises(name: str, answer: Any) -> None:
    verdict = check(name, answer)
    assert not verdict.right and verdict.answered
    assert str(verdict).startswith("✘ not quite: ")
    assert " because " in str(verdict)
    assert "could not read" not in verdict.why  # the checker handled it, not the safety net


@pytest.mark.parametrize("name", NAMES)
def test_verdicts_are_deterministic(name: str) -> None:
    solution = EXERCISES[name].solution
    assert check(name, solution) == check(name, solution)
    assert check(name, "banana") == check(name, "banana")


@pytest.mark.parametrize("name", NAMES)
def test_every_exercise_has_a_question_and_a_hint(name: str) -> None:
    exercise = EXERCISES[name]
    assert exercise.question.strip().endswith(("?", ".", "'.")) and exercise.hint.strip()
    assert exercise.notebook[:2].isdigit()
    assert exercises.question(name) == exercise.question


def test_unknown_exercise_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"tour\.states"):
        check("no.such.exercise", 1)


def test_register_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        exercises.register("tour.states", notebook="00_tour", question="?", hint="", solution=0)(
            lambda answer: (True, "")
        )


def test_listing_by_notebook() -> None:
    frame = exercises.listing("02_firmware_update_object")
    assert list(frame.columns) == ["name", "notebook", "question"]
    assert set(frame["name"]) == {"fuo.execute_state", "fuo.cancelled_result", "fuo.result_5"}
    assert len(exercises.listing()) == len(EXERCISES)


def test_verdict_renders_in_a_notebook() -> None:
    right = check("fuo.cancelled_result", 10)
    wrong = check("fuo.cancelled_result", 8)
    assert "✔ right" in right._repr_html_() and "#00734d" in right._repr_html_()
    assert "✘ not quite" in wrong._repr_html_()
    assert "&lt;b&gt;" in check("basics.rssi_path", "<b>")._repr_html_()
    assert repr(right) == str(right)


def test_a_failing_checker_is_reported_not_raised() -> None:
    name = "test.broken"

    @exercises.register(name, notebook="99_test", question="?", hint="h", solution=1)
    def broken(answer: Any) -> tuple[bool, str]:
        raise RuntimeError("bug")

    try:
        verdict = check(name, 1)
        assert isinstance(verdict, Verdict) and not verdict.right
        assert "could not read" in verdict.why
    finally:
        del EXERCISES[name]
