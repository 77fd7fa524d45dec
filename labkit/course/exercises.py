"""Exercises of the notebook course, checked from inside the notebook: the registry every
lesson adds its exercises to, and the readers of a student's answer that several lessons share.

Every notebook ends with one to three exercises. A student writes an answer and calls its
lesson module's ``check`` (this module's :func:`check`), which says right or wrong *and why*::

    from labkit.course import l02_firmware_update_object as lesson
    lesson.check("fuo.execute_state", "DOWNLOADED")
    # ✔ right: Execute /5/0/2 starts the install only in DOWNLOADED (2) ...

Each exercise is one entry of :data:`EXERCISES` (name, notebook, question, hint, a right
answer, and a checker). The checkers live in their lesson's module
(``labkit/course/lNN_*.py``), next to that lesson's helpers. Checkers are pure and
deterministic: they read the answer and, where they can, the lab's own tables (the /5
transition table, the codecs, the seed's wording) instead of a hard-coded key, so the
explanation always agrees with what the lab does. A checker never raises on a student's
answer: an answer it cannot read is "not quite", with a word on the expected form; ``None``
(the placeholder in the notebooks) is "no answer yet".

Adding an exercise: in the lesson's module write ``def _my_checker(answer) -> tuple[bool,
str]`` returning (right, explanation) and decorate it with :func:`register`;
``tests/course/test_exercises.py`` checks that every registered solution is judged right.
"""

from __future__ import annotations

import html
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.lwm2m.errors import PathError
from labkit.lwm2m.objects import OBJECTS, State, UpdateResult, resource_def
from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EXERCISES",
    "Exercise",
    "Verdict",
    "all_exercises",
    "as_count",
    "as_enum",
    "as_path",
    "as_sequence",
    "check",
    "hint",
    "listing",
    "load_lessons",
    "path_name",
    "plain_words",
    "question",
    "register",
    "result_text",
    "state_text",
    "words_of",
]


Checker = Callable[[Any], tuple[bool, str]]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`check` says about one answer.

    Attributes
    ----------
    exercise:
        The exercise's name.
    answer:
        The answer as given.
    right:
        True when the answer is right.
    answered:
        False when the answer was ``None`` (the notebook's placeholder).
    why:
        The explanation: why it is right, or why it is not.
    """

    exercise: str
    answer: Any
    right: bool
    answered: bool
    why: str

    def __bool__(self) -> bool:
        return self.right

    def __str__(self) -> str:
        if not self.answered:
            return f"✎ no answer yet: {self.why}"
        if self.right:
            return f"✔ right: {self.why}"
        return f"✘ not quite: {self.answer!r} — because {self.why}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        if not self.answered:
            colour, background = "#555555", "#f2f2f2"
        elif self.right:
            colour, background = "#00734d", "#e6f4ee"
        else:
            colour, background = "#a3370f", "#fbece6"
        return (
            f"<div style='border-left:4px solid {colour};background:{background};"
            f"padding:4px 8px;color:{colour}'>{html.escape(str(self))}</div>"
        )


@dataclass(frozen=True, slots=True)
class Exercise:
    """One exercise: where it is, what it asks, a hint, one right answer and its checker."""

    name: str
    notebook: str
    question: str
    hint: str
    solution: Any
    checker: Checker


#: Every exercise of the course, by name (``"<lesson>.<topic>"``).
EXERCISES: dict[str, Exercise] = {}


def register(
    name: str, *, notebook: str, question: str, hint: str, solution: Any
) -> Callable[[Checker], Checker]:
    """Decorator: add the decorated checker to :data:`EXERCISES` under ``name``."""

    def add(checker: Checker) -> Checker:
        if name in EXERCISES:
            raise ValueError(f"exercise {name!r} is already registered")
        EXERCISES[name] = Exercise(name, notebook, question, hint, solution, checker)
        return checker

    return add


def load_lessons() -> list[str]:
    """Import every lesson module (``labkit.course.lNN_*``), so that all their exercises are
    registered; returns the modules' names in course order."""
    import labkit.course

    names = sorted(
        info.name
        for info in pkgutil.iter_modules(labkit.course.__path__)
        if re.fullmatch(r"l\d\d_\w+", info.name)
    )
    for name in names:
        importlib.import_module(f"labkit.course.{name}")
    return names


def all_exercises() -> dict[str, Exercise]:
    """Every exercise of the course (all lessons loaded), by name."""
    load_lessons()
    return dict(EXERCISES)


def _exercise(name: str) -> Exercise:
    if name not in EXERCISES:  # its lesson module is not imported yet
        load_lessons()
    try:
        return EXERCISES[name]
    except KeyError:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"no exercise named {name!r}; the course has: {known}") from None


def check(name: str, answer: Any) -> Verdict:
    """Check ``answer`` to exercise ``name``; the Verdict shows "✔ right" or "✘ not quite"
    with the reason (and is truthy when right).

    Raises
    ------
    KeyError
        For an unknown exercise name (the message lists the known ones).
    """
    exercise = _exercise(name)
    if answer is None:
        return Verdict(name, None, False, False, f"replace None with your answer. {exercise.hint}")
    try:
        right, why = exercise.checker(answer)
    except Exception as exc:  # a checker bug must not look like the student's mistake
        return Verdict(name, answer, False, True, f"the checker could not read it ({exc!r})")
    return Verdict(name, answer, right, True, why)


def question(name: str) -> str:
    """The question of exercise ``name``."""
    return _exercise(name).question


def hint(name: str) -> str:
    """A hint for exercise ``name`` (it points where to look, it does not give the answer)."""
    return _exercise(name).hint


def listing(notebook: str | None = None) -> pd.DataFrame:
    """The exercises, optionally of one notebook (``"02_firmware_update_object"``).

    Returns
    -------
    DataFrame
        Columns ``name``, ``notebook`` and ``question``, in course order (notebook, then the
        order of the notebook's exercises).
    """
    import pandas as pd

    rows = [
        {"name": e.name, "notebook": e.notebook, "question": e.question}
        for e in sorted(all_exercises().values(), key=lambda e: e.notebook)
        if notebook is None or e.notebook == notebook
    ]
    return pd.DataFrame(rows, columns=["name", "notebook", "question"])


def plain_words(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def as_enum(answer: Any, enum: type[State] | type[UpdateResult]) -> Any:
    """An enum member from a member, a number, or a text like "2", "DOWNLOADED", "state 2",
    "Downloaded (2)"; None when the answer names no member (or more than one)."""
    if isinstance(answer, enum):
        return answer
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int):
        return enum(answer) if answer in enum._value2member_map_ else None
    if not isinstance(answer, str):
        return None
    words = plain_words(answer)
    found = set()
    for member in enum:
        name = member.name.lower().replace("_", " ")
        if re.search(rf"\b{re.escape(name)}\b", words):
            found.add(member)
    numbers = {int(n) for n in re.findall(r"\b\d+\b", words)}
    found |= {enum(n) for n in numbers if n in enum._value2member_map_}
    if len(numbers - set(enum._value2member_map_)) > 0 or len(found) != 1:
        return None
    return found.pop()


def as_sequence(answer: Any) -> list[Any] | None:
    if isinstance(answer, str):
        parts = [p for p in re.split(r"[\s,;>\-]+", answer) if p]
        return parts or None
    if isinstance(answer, Iterable) and not isinstance(answer, bytes | dict):
        return list(answer)
    return None


def state_text(state: State) -> str:
    return f"{state.name} ({int(state)})"


def result_text(result: UpdateResult) -> str:
    return f"{int(result)} ({result.name}: “{result.description}”)"


def path_name(path: Path) -> str:
    if path.resource_id is not None and path.object_id is not None:
        rdef = resource_def(path.object_id, path.resource_id)
        if rdef is not None:
            return f"{path} is {rdef.name} of {OBJECTS[path.object_id].name}"
    obj = OBJECTS.get(path.object_id) if path.object_id is not None else None
    if obj is not None:
        return f"{path} is in {obj.name} (/{obj.id}), but it is not a resource this lab knows"
    return f"{path} is not a path of the objects the lab's devices have (/1, /3, /4, /5)"


def as_path(answer: Any) -> Path | None:
    try:
        return Path.parse(answer.strip() if isinstance(answer, str) else answer)
    except PathError:
        return None


def words_of(answer: Any) -> set[str] | None:
    if not isinstance(answer, str):
        return None
    return set(plain_words(answer).split())


def as_count(answer: Any) -> int | None:
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int):
        return answer
    if isinstance(answer, float) and answer.is_integer():
        return int(answer)
    if isinstance(answer, str):
        text = answer.strip().replace(",", "").replace("_", "")
        return int(text) if re.fullmatch(r"\d+", text) else None
    return None
