"""Lesson 10's exercises: right, wrong, unanswered."""

from __future__ import annotations

import pytest

from labkit.course import exercises
from labkit.course import l10_choosing_a_push_policy as lesson

NAMES = sorted(n for n, e in exercises.EXERCISES.items() if e.notebook == lesson.NOTEBOOK)


def test_notebook_10_has_three_exercises() -> None:
    assert NAMES == ["sweep.more_seeds", "sweep.resample_unit", "sweep.tell_apart"]


@pytest.mark.parametrize("name", NAMES)
def test_solution_right_none_unanswered_nonsense_wrong(name: str) -> None:
    assert exercises.check(name, exercises.EXERCISES[name].solution).right
    assert not exercises.check(name, None).answered
    for nonsense in ("", "banana", 17, [1, 2], {"a": 1}, True, -3.0):
        verdict = exercises.check(name, nonsense)
        assert not verdict.right and verdict.why


def test_wrong_answers_say_why() -> None:
    assert "too narrow" in exercises.check("sweep.resample_unit", "devices").why
    assert not exercises.check("sweep.tell_apart", "yes").right
    assert exercises.check("sweep.more_seeds", "0.5").right
    assert "square root" in exercises.check("sweep.more_seeds", 4).why
