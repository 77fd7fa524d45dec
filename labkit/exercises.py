"""Exercises of the notebook course, checked from inside the notebook.

Every notebook ends with one to three exercises. A student writes an answer and calls
:func:`check`, which says right or wrong *and why*::

    from labkit import exercises
    exercises.check("fuo.execute_state", "DOWNLOADED")
    # ✔ right: Execute /5/0/2 starts the install only in DOWNLOADED (2) ...

Each exercise is one entry of :data:`EXERCISES` (name, notebook, question, hint, a right
answer, and a checker). Checkers are pure and deterministic: they read the answer and, where
they can, the lab's own tables (the /5 transition table, the codecs, the seed's wording)
instead of a hard-coded key, so the explanation always agrees with what the lab does. A
checker never raises on a student's answer: an answer it cannot read is "not quite", with a
word on the expected form; ``None`` (the placeholder in the notebooks) is "no answer yet".

Adding an exercise: write ``def _my_checker(answer) -> tuple[bool, str]`` returning
(right, explanation) and call :func:`register` with it; ``tests/test_exercises.py`` checks
that every registered solution is judged right.
"""

from __future__ import annotations

import functools
import html
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.lwm2m.errors import PathError
from labkit.lwm2m.formats import ContentFormat, encode
from labkit.lwm2m.objects import OBJECTS, State, UpdateResult, resource_def
from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EXERCISES",
    "Exercise",
    "Verdict",
    "check",
    "hint",
    "listing",
    "question",
    "register",
]

Checker = Callable[[Any], tuple[bool, str]]


# ---------------------------------------------------------------------------------------------
# Verdicts and the registry
# ---------------------------------------------------------------------------------------------


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


def _exercise(name: str) -> Exercise:
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
        Columns ``name``, ``notebook`` and ``question``, in registration order.
    """
    import pandas as pd

    rows = [
        {"name": e.name, "notebook": e.notebook, "question": e.question}
        for e in EXERCISES.values()
        if notebook is None or e.notebook == notebook
    ]
    return pd.DataFrame(rows, columns=["name", "notebook", "question"])


# ---------------------------------------------------------------------------------------------
# Reading answers
# ---------------------------------------------------------------------------------------------


def _words(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _as_enum(answer: Any, enum: type[State] | type[UpdateResult]) -> Any:
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
    words = _words(answer)
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


def _as_sequence(answer: Any) -> list[Any] | None:
    if isinstance(answer, str):
        parts = [p for p in re.split(r"[\s,;>\-]+", answer) if p]
        return parts or None
    if isinstance(answer, Iterable) and not isinstance(answer, bytes | dict):
        return list(answer)
    return None


def _state_text(state: State) -> str:
    return f"{state.name} ({int(state)})"


def _result_text(result: UpdateResult) -> str:
    return f"{int(result)} ({result.name}: “{result.description}”)"


# ---------------------------------------------------------------------------------------------
# 00 tour
# ---------------------------------------------------------------------------------------------

_PUSH_STATES = [State.IDLE, State.DOWNLOADING, State.DOWNLOADED, State.UPDATING, State.IDLE]


@register(
    "tour.states",
    notebook="00_tour",
    question=(
        "In which order did the device's State (/5/0/3) change during the PUSH, from before "
        "the download until after the reboot? Answer a list of State numbers or names."
    ),
    hint="Look at the State lanes of the timeline, from left to right, or at the story table.",
    solution=[0, 1, 2, 3, 0],
)
def _tour_states(answer: Any) -> tuple[bool, str]:
    items = _as_sequence(answer)
    if items is None:
        return False, "the answer should be a list of States, e.g. [0, 3] or 'IDLE, UPDATING'"
    states = [_as_enum(item, State) for item in items]
    if None in states:
        bad = items[states.index(None)]
        return (
            False,
            f"{bad!r} is not a State: they are 0 IDLE, 1 DOWNLOADING, 2 DOWNLOADED, 3 UPDATING",
        )
    if states == _PUSH_STATES:
        return True, (
            "IDLE → DOWNLOADING (the first block arrived, seed step 2) → DOWNLOADED (the last "
            "one) → UPDATING (Execute /5/0/2, step 3) → reboot → IDLE with Result 1 (step 4)."
        )
    if states == _PUSH_STATES[1:]:
        return False, "the device was IDLE (0) before the first block arrived"
    if states == _PUSH_STATES[:-1]:
        return False, (
            "the story does not end in UPDATING: after the reboot the new firmware reports "
            "IDLE (0) again, now with Update Result 1"
        )
    if sorted(set(states)) == sorted(set(_PUSH_STATES)):
        return False, (
            "the device visits each State in the order of the seed's four steps: download "
            "(1), downloaded (2), update (3), back to idle (0)"
        )
    missing = [s for s in State if s not in states]
    if missing:
        names = ", ".join(_state_text(s) for s in missing)
        return False, f"a successful PUSH passes through every State, and {names} is missing"
    return False, "that order is not what the timeline shows; read it from left to right"


@register(
    "tour.success_result",
    notebook="00_tour",
    question=(
        "Which Update Result (/5/0/5) did the device report once the new firmware was "
        "running? Answer the number."
    ),
    hint="It is the marker in the “Update Result” lane of the timeline.",
    solution=1,
)
def _tour_success_result(answer: Any) -> tuple[bool, str]:
    result = _as_enum(answer, UpdateResult)
    if result is None:
        return False, "Update Result is a number from 0 to 11 (or a name like SUCCESS)"
    if result is UpdateResult.SUCCESS:
        return True, f"Update Result {_result_text(result)} — the lesson's step 4 succeeded."
    if result is UpdateResult.INITIAL:
        return False, (
            "0 (INITIAL) is the value before any update, and while one runs; a finished "
            "successful update reports 1"
        )
    return False, f"{_result_text(result)} reports a failure; this update succeeded"


# ---------------------------------------------------------------------------------------------
# 01 LwM2M basics
# ---------------------------------------------------------------------------------------------

_RSSI = Path.of(4, 0, 2)


def _path_name(path: Path) -> str:
    if path.resource_id is not None and path.object_id is not None:
        rdef = resource_def(path.object_id, path.resource_id)
        if rdef is not None:
            return f"{path} is {rdef.name} of {OBJECTS[path.object_id].name}"
    obj = OBJECTS.get(path.object_id) if path.object_id is not None else None
    if obj is not None:
        return f"{path} is in {obj.name} (/{obj.id}), but it is not a resource this lab knows"
    return f"{path} is not a path of the objects the lab's devices have (/1, /3, /4, /5)"


@register(
    "basics.rssi_path",
    notebook="01_lwm2m_basics",
    question=(
        "Which path holds the Radio Signal Strength that a server looks at before it decides "
        "to PUSH? Answer like '/3/0/3'."
    ),
    hint="It is a resource of Connectivity Monitoring (/4); it is in dBm.",
    solution="/4/0/2",
)
def _basics_rssi_path(answer: Any) -> tuple[bool, str]:
    try:
        path = Path.parse(answer.strip() if isinstance(answer, str) else answer)
    except PathError:
        return False, "a path looks like '/4/0/1': object, instance, resource"
    if path == _RSSI:
        return True, (
            "/4/0/2 is Radio Signal Strength (dBm) of Connectivity Monitoring, instance 0 — "
            "what the seed's PUSH method says the server should decide on."
        )
    if path.ids[:1] == (4,) and path.ids[2:3] == (2,):
        return False, "the device has only instance 0 of /4, so the path is /4/0/2"
    if path == Path.of(4, 0, 3):
        return False, "/4/0/3 is Link Quality, the second link measure; signal strength is /4/0/2"
    return False, _path_name(path)


def _sample_values() -> dict[Path, Any]:
    """/5/0 of a fresh simulated device (obj 1.1, CoAP pull, both delivery methods)."""
    from labkit.lwm2m.fota import FirmwareUpdateMachine

    values: dict[Path, Any] = {}
    for rid, value in FirmwareUpdateMachine().resources().items():
        if isinstance(value, tuple):
            values.update({Path.of(5, 0, rid, i): v for i, v in enumerate(value)})
        else:
            values[Path.of(5, 0, rid)] = value
    values[Path.of(5, 0, 6)] = ""
    values[Path.of(5, 0, 7)] = ""
    return dict(sorted(values.items()))


_COMPARED = (ContentFormat.TLV, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR)


def _sizes() -> dict[ContentFormat, int]:
    values = _sample_values()
    return {fmt: len(encode(int(fmt), Path.of(5, 0), values)) for fmt in _COMPARED}


def _as_format(answer: Any) -> ContentFormat | None:
    if isinstance(answer, ContentFormat):
        return answer
    if isinstance(answer, int) and not isinstance(answer, bool):
        return ContentFormat(answer) if answer in ContentFormat._value2member_map_ else None
    if not isinstance(answer, str):
        return None
    words = _words(answer).replace(" ", "").removeprefix("oma")
    if words.isdigit():
        return _as_format(int(words))
    for fmt in ContentFormat:
        if words == fmt.name.lower().replace("_", ""):
            return fmt
    aliases = {"senml": None, "json": ContentFormat.SENML_JSON, "cbor": ContentFormat.SENML_CBOR}
    return aliases.get(words)


@register(
    "basics.smallest_format",
    notebook="01_lwm2m_basics",
    question=(
        "Reading /5/0 in TLV, SenML JSON and SenML CBOR: which format put it on the wire in "
        "the fewest bytes? Answer the name or the Content-Format number."
    ),
    hint="Compare the 'bytes' column of the format comparison.",
    solution="TLV",
)
def _basics_smallest_format(answer: Any) -> tuple[bool, str]:
    fmt = _as_format(answer)
    sizes = _sizes()
    if fmt is None or fmt not in sizes:
        names = ", ".join(f"{f.name} ({int(f)})" for f in _COMPARED)
        return False, f"the three formats compared are {names}"
    ranking = " < ".join(f.name for f in sorted(sizes, key=sizes.__getitem__))
    if fmt is min(sizes, key=sizes.__getitem__):
        return True, (
            f"{fmt.name} ({ranking} for /5/0). TLV spends 2-3 header bytes per resource and "
            "writes ids and integers in binary; SenML repeats a name for every record."
        )
    if fmt is ContentFormat.SENML_JSON:
        return False, f"JSON writes every name, key and number as text: {ranking}"
    return False, f"SenML CBOR is binary but still names every record: {ranking}"


_QUERY = {
    "ep": "the Endpoint Client Name",
    "lwm2m": "the LwM2M version",
    "b": "the binding (transport)",
    "q": "the queue-mode flag",
    "lt": "the lifetime",
}


@register(
    "basics.lifetime_parameter",
    notebook="01_lwm2m_basics",
    question=(
        "Which query parameter of the Register request tells the server how long to keep the "
        "registration if no Update arrives? Answer its name as it appears in the query."
    ),
    hint="Look at the registration table: one row per query parameter.",
    solution="lt",
)
def _basics_lifetime(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str):
        return False, "the answer is the parameter's name, a short text like 'ep'"
    word = answer.strip().lower().split("=", 1)[0].strip()
    if word in ("lt", "lifetime"):
        return True, (
            "lt (lifetime, seconds). The device sends an Update before it runs out; a server "
            "that hears nothing for lt seconds removes the registration."
        )
    if word in _QUERY:
        return False, f"{word} is {_QUERY[word]}, not the lifetime"
    return False, "the Register query has ep, lt, lwm2m, b and (optionally) Q"


# ---------------------------------------------------------------------------------------------
# 02 the Firmware Update Object
# ---------------------------------------------------------------------------------------------


def _execute_rules() -> dict[State, Any]:
    """The decisive rule of Execute /5/0/2 in each State (the user does not defer)."""
    from labkit.lwm2m.fota import TRANSITIONS, ExecuteUpdate

    rules = {}
    for state in State:
        candidates = TRANSITIONS[(state, ExecuteUpdate)]
        rules[state] = next(r for r in candidates if r.guard is None)
    return rules


@register(
    "fuo.execute_state",
    notebook="02_firmware_update_object",
    question=(
        "In which State must the device be before Execute /5/0/2 (Update) may start the "
        "installation? Answer the number or the name."
    ),
    hint="Try ExecuteUpdate() on the machine in each State, or read the transition table.",
    solution="DOWNLOADED",
)
def _fuo_execute_state(answer: Any) -> tuple[bool, str]:
    state = _as_enum(answer, State)
    if state is None:
        return False, "States are 0 IDLE, 1 DOWNLOADING, 2 DOWNLOADED, 3 UPDATING"
    rule = _execute_rules()[state]
    if not rule.rejects:
        return True, (
            f"only in {_state_text(state)} is there a complete image to install; Execute "
            f"answers 2.04 and moves to UPDATING (rule {rule.id}, seed step 3)."
        )
    why = {
        State.IDLE: "there is no image yet",
        State.DOWNLOADING: "the image is still arriving",
        State.UPDATING: "the installation is already running",
    }[state]
    return False, (
        f"in {_state_text(state)} {why}: the device answers {rule.reply} and stays where it "
        f"is (rule {rule.id})"
    )


def _cancel_result() -> UpdateResult:
    from labkit.lwm2m.fota import TRANSITIONS, ExecuteCancel

    for rule in TRANSITIONS[(State.DOWNLOADING, ExecuteCancel)]:
        if not rule.rejects and isinstance(rule.result, UpdateResult):
            return rule.result
    raise AssertionError("the table has no accepting Cancel in DOWNLOADING")


@register(
    "fuo.cancelled_result",
    notebook="02_firmware_update_object",
    question="What Update Result code does a device report after an update was cancelled?",
    hint="Read the seed's result table (or run ExecuteCancel() on a DOWNLOADING machine).",
    solution=10,
)
def _fuo_cancelled_result(answer: Any) -> tuple[bool, str]:
    result = _as_enum(answer, UpdateResult)
    expected = _cancel_result()
    if result is None:
        return False, "Update Result is a number from 0 to 11 (or a name like SUCCESS)"
    if result is expected:
        return True, (
            f"{_result_text(result)}. Execute /5/0/10 (Cancel, object 1.1) while DOWNLOADING "
            "or DOWNLOADED drops the image and goes back to IDLE with it."
        )
    return False, f"{_result_text(result)} is another outcome; the cancelled one is in the table"


_INTEGRITY_WORDS = (
    "integrity",
    "checksum",
    "hash",
    "crc",
    "signature",
    "signed",
    "corrupt",
    "verif",
    "tamper",
    "validat",
)


@register(
    "fuo.result_5",
    notebook="02_firmware_update_object",
    question="What does Update Result 5 mean? Answer in a few words.",
    hint="The seed's result table has one line per code.",
    solution="the integrity check of the downloaded package failed",
)
def _fuo_result_5(answer: Any) -> tuple[bool, str]:
    meaning = UpdateResult.INTEGRITY_CHECK_FAILURE.description
    if isinstance(answer, UpdateResult | int) and not isinstance(answer, bool):
        if int(answer) == 5:
            return False, "that is the code itself; say in words what it means"
        return False, f"the question asks about 5, and {int(answer)} is another code"
    if not isinstance(answer, str):
        return False, "answer in a few words, as text"
    words = _words(answer)
    if any(w in words for w in _INTEGRITY_WORDS) or "integrity check failure" in words:
        return True, (
            f"5 is “{meaning}”: the downloaded image failed its check (hash or signature). "
            "Secure boot (seed step 3) refuses to run it."
        )
    for result in UpdateResult:
        keywords = {
            UpdateResult.NOT_ENOUGH_FLASH: ("flash", "memory", "storage", "space"),
            UpdateResult.OUT_OF_RAM: ("ram",),
            UpdateResult.CONNECTION_LOST: ("connection", "link", "network"),
            UpdateResult.UNSUPPORTED_PACKAGE_TYPE: ("package type", "type"),
            UpdateResult.INVALID_URI: ("uri", "url"),
            UpdateResult.UNSUPPORTED_PROTOCOL: ("protocol",),
            UpdateResult.CANCELLED: ("cancel",),
            UpdateResult.DEFERRED: ("defer", "postpone"),
            UpdateResult.SUCCESS: ("success",),
        }.get(result, ())
        if any(re.search(rf"\b{k}", words) for k in keywords):
            return False, f"that describes {_result_text(result)}; 5 is a different failure"
    return False, "5 is about the downloaded package itself: look at the seed's result table"


# ---------------------------------------------------------------------------------------------
# 03 PULL versus PUSH
# ---------------------------------------------------------------------------------------------


def _as_path(answer: Any) -> Path | None:
    try:
        return Path.parse(answer.strip() if isinstance(answer, str) else answer)
    except PathError:
        return None


_PACKAGE_URI = Path.of(5, 0, 1)


@register(
    "delivery.pull_resource",
    notebook="03_pull_vs_push",
    question=(
        "To start a PULL, the server writes one resource of the Firmware Update Object. Which "
        "one? Answer its path like '/5/0/3'."
    ),
    hint="Look at the request log of the PULL: which PUT did the server send before the download?",
    solution="/5/0/1",
)
def _delivery_pull_resource(answer: Any) -> tuple[bool, str]:
    path = _as_path(answer)
    if path is None:
        return False, "a path looks like '/5/0/3': object, instance, resource"
    if path == _PACKAGE_URI:
        return True, (
            "/5/0/1 is the Package URI: the server writes where the image is (a coap:// or "
            "http:// address in the repository) and the device fetches it itself, at its "
            "earliest opportunity (the lesson's PULL)."
        )
    if path.ids[:1] == (5,) and path.ids[2:] == (1,):
        return False, "the device has only instance 0 of /5, so the path is /5/0/1"
    reasons: dict[tuple[int, ...], str] = {
        (5, 0, 0): "/5/0/0 is the Package itself: writing the image there *is* the PUSH",
        (5, 0, 2): "/5/0/2 is Update, an Execute that comes after the download in both methods",
        (5, 0, 3): "/5/0/3 is the State; the device sets it, the server only reads it",
        (5, 0, 8): "/5/0/8 (Protocol Support) is read before a PULL, to pick a scheme",
        (5, 0, 9): "/5/0/9 (Delivery Method) is read before choosing PUSH or PULL",
    }
    return False, reasons.get(path.ids) or _path_name(path)


def _words_of(answer: Any) -> set[str] | None:
    if not isinstance(answer, str):
        return None
    return set(_words(answer).split())


@register(
    "delivery.who_decides",
    notebook="03_pull_vs_push",
    question=(
        "In which of the two methods does the LwM2M Server pick the moment the download "
        "starts? Answer 'push' or 'pull'."
    ),
    hint="Read the lesson's two paragraphs again: who starts the transfer of the bytes?",
    solution="push",
)
def _delivery_who_decides(answer: Any) -> tuple[bool, str]:
    words = _words_of(answer)
    if not words:
        return False, "answer with one word, 'push' or 'pull'"
    push, pull = "push" in words, "pull" in words
    if push and pull:
        return False, "the moment is picked by one side only: answer one of the two"
    if push:
        return True, (
            "PUSH: the server sends the image (Block1 writes to /5/0/0) when it decides, "
            "ideally when Radio Signal Strength and Link Quality (/4) are good."
        )
    if pull:
        return False, (
            "in PULL the server only writes the Package URI; the device downloads "
            "“at the earliest available opportunity”, so the device picks the moment"
        )
    if "server" in words or "device" in words or "client" in words:
        return False, "the question asks for the method, 'push' or 'pull', not the side"
    return False, "the lesson's two methods are PUSH and PULL"


_IMAGE_BYTES = 64 * 1024
_BLOCK = 512


def _as_count(answer: Any) -> int | None:
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


@register(
    "delivery.blocks",
    notebook="03_pull_vs_push",
    question=(
        "How many CoAP blocks does a 64 KiB image (65,536 bytes) need at 512-byte blocks? "
        "Answer a number."
    ),
    hint="Divide the image size by the block size; the comparison table has blocks and bytes.",
    solution=128,
)
def _delivery_blocks(answer: Any) -> tuple[bool, str]:
    count = _as_count(answer)
    expected = -(-_IMAGE_BYTES // _BLOCK)
    if count is None:
        return False, "the answer is a whole number of blocks"
    if count == expected:
        return True, (
            f"{_IMAGE_BYTES:,} / {_BLOCK} = {expected} blocks, each one request answered "
            "before the next (2.31 Continue, the last one 2.04). At 256 bytes (Zephyr's "
            "default) it takes 256 round trips, at 1024 only 64: that is why small blocks "
            "are slower, and slower still on a radio link with a long round trip."
        )
    if count == expected - 1:
        return False, (
            f"block numbers run from 0 to {expected - 1}, so there are {expected} of them"
        )
    for size in (16, 32, 64, 128, 256, 1024):
        if count == _IMAGE_BYTES // size:
            return False, f"{count} blocks is the count at {size}-byte blocks, not at {_BLOCK}"
    if count == expected + 1:
        return False, f"{_IMAGE_BYTES:,} is a multiple of {_BLOCK}: no partial last block"
    return False, f"divide the image size ({_IMAGE_BYTES:,} bytes) by the block size ({_BLOCK})"


# ---------------------------------------------------------------------------------------------
# 08 analysing runs (the answers come from the sample runs in data/samples)
# ---------------------------------------------------------------------------------------------

_POLICIES = ("always", "threshold")


@functools.lru_cache(maxsize=1)
def _sample_outcomes() -> pd.DataFrame:
    from labkit.record import campaign_outcomes
    from labkit.samples import sample_path

    return campaign_outcomes([sample_path(f"campaign-{p}") for p in _POLICIES])


@functools.lru_cache(maxsize=1)
def _sample_capture_addresses() -> tuple[str, ...]:
    from labkit.record import import_capture
    from labkit.samples import CAPTURE_NAME, sample_path

    return tuple(import_capture(sample_path(CAPTURE_NAME)).devices.get("sim-0001", ()))


def _as_share(answer: Any) -> float | None:
    """A share in [0, 1] from 0.82, 82, "82 %", "0.82"; None when it is not one."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int | float):
        value, percent = float(answer), False
    elif isinstance(answer, str):
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%|percent)?\s*", answer)
        if found is None:
            return None
        value, percent = float(found[1]), found[2] is not None
    else:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    if percent or value > 1:
        value /= 100
    return value if value <= 1 else None


@register(
    "analysis.connection_lost",
    notebook="08_analysing_runs",
    question=(
        "How many devices of the threshold campaign sample ended with CONNECTION_LOST "
        "(Result 4)? Answer a number, then look at those devices' faults."
    ),
    hint="Look at the row 4 CONNECTION_LOST of result_counts(outcomes, by='policy').",
    solution=3,
)
def _analysis_connection_lost(answer: Any) -> tuple[bool, str]:
    count = _as_count(answer)
    if count is None:
        return False, "the answer is a whole number of devices"
    outcomes = _sample_outcomes()
    lost = outcomes[outcomes["result"] == "CONNECTION_LOST"]
    devices = {p: sorted(map(str, lost.loc[lost["policy"] == p, "device"])) for p in _POLICIES}
    cut = lost[lost["faults"].astype("string").str.contains("link-drop").fillna(False)]
    n_cut = int((cut["policy"] == "threshold").sum())
    mine = devices["threshold"]
    if count == len(mine):
        same = (
            "the same devices"
            if devices["always"] == mine
            else (f"{len(devices['always'])} devices")
        )
        return True, (
            f"{len(mine)} ({', '.join(mine)}); {n_cut} of them have the link-drop fault, whose "
            f"link is cut halfway through the download. Policy always lost {same}: waiting "
            "for a good signal cannot avoid a link that is cut during the transfer."
        )
    if count == len(devices["always"]):
        return False, "that is the count of the always campaign; look at the threshold rows"
    return False, "count the CONNECTION_LOST row of the threshold policy"


@register(
    "analysis.threshold_success",
    notebook="08_analysing_runs",
    question=(
        "What share of the 50 devices of the threshold campaign sample were updated "
        "successfully? Answer a fraction (0.5) or a percentage ('50 %')."
    ),
    hint="outcomes[outcomes['policy'] == 'threshold']['success'].mean(), or the stats table.",
    solution=0.88,
)
def _analysis_threshold_success(answer: Any) -> tuple[bool, str]:
    share = _as_share(answer)
    if share is None:
        return False, "the answer is a share: a fraction from 0 to 1 or a percentage"
    outcomes = _sample_outcomes()
    mine = outcomes[outcomes["policy"] == "threshold"]
    ok, n = int(mine["success"].sum()), len(mine)
    with_result = int(mine["result"].notna().sum())
    truth = ok / n
    if abs(share - truth) <= 0.005:
        return True, (
            f"{ok} of {n} devices run firmware 2.0.0 afterwards: {truth:.0%}. Of the other "
            f"{n - ok}, {with_result - ok} failed with the result in the table and "
            f"{n - with_result} ended without any."
        )
    if with_result and abs(share - ok / with_result) <= 0.005:
        return False, (
            f"{ok} of {with_result} is the share among devices that reported a result; the "
            f"question asks about all {n} devices"
        )
    other = outcomes[outcomes["policy"] == "always"]["success"].mean()
    if abs(share - other) <= 0.005:
        return False, "that is the share of the always campaign, not of threshold"
    return False, f"count the threshold campaign's successful devices and divide by {n}"


@register(
    "analysis.capture_ports",
    notebook="08_analysing_runs",
    question=(
        "From how many different UDP ports did sim-0001 talk to the server in the capture "
        "push-update.pcap? Answer a number."
    ),
    hint="The capture's summary lists its devices; capture.devices gives their addresses.",
    solution=2,
)
def _analysis_capture_ports(answer: Any) -> tuple[bool, str]:
    count = _as_count(answer)
    if count is None:
        return False, "the answer is a whole number of ports"
    addresses = _sample_capture_addresses()
    if count == len(addresses):
        return True, (
            f"{', then '.join(addresses)}: the device registered again after rebooting into "
            "its new firmware, from a new ephemeral port. The server (and an import) follows "
            "the endpoint name of the Register, not the address."
        )
    if count < len(addresses):
        return False, "the device registered more than once: look at every registration"
    return False, "count the addresses of sim-0001 in capture.devices"


# ---------------------------------------------------------------------------------------------
# 09 a real device
# ---------------------------------------------------------------------------------------------

_BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)
_ZEPHYR_BLOCK = 256


@register(
    "real.zephyr_block_size",
    notebook="09_real_device",
    question=(
        "Which CoAP block size does Zephyr's LwM2M client use by default "
        "(CONFIG_LWM2M_COAP_BLOCK_SIZE)? Answer in bytes."
    ),
    hint="It is in the list of things to check on a real device, and in the fota command.",
    solution=256,
)
def _real_zephyr_block_size(answer: Any) -> tuple[bool, str]:
    size = _as_count(answer)
    if size is None:
        return False, "the answer is a number of bytes, like 64"
    if size == _ZEPHYR_BLOCK:
        return True, (
            "256 bytes. Zephyr also pulls with that size, and a PUSH should use it too "
            "(`labkit fota --block-size 256`): 1024-byte blocks are the default of aiocoap "
            "and Wakaama, not of a Zephyr board."
        )
    if size not in _BLOCK_SIZES:
        return False, "CoAP block sizes are powers of two from 16 to 1024 bytes"
    if size == 1024:
        return False, "1024 is the default of aiocoap and Wakaama (and Anjay's cap), not Zephyr's"
    if size == 512:
        return False, "512 is a common choice on NB-IoT and LTE-M; Zephyr's default is smaller"
    return False, f"{size} bytes is allowed (Zephyr takes 64..1024), but it is not the default"


@register(
    "real.timeout_exit",
    notebook="09_real_device",
    question=(
        "You start `labkit fota` for a board that never registers (a wrong server address on "
        "the board). Which exit code does the command return?"
    ),
    hint="The exit codes are 0, 1, 2 and 3; the fota run above ended with one of them.",
    solution=3,
)
def _real_timeout_exit(answer: Any) -> tuple[bool, str]:
    from labkit.fota.outcome import EXIT_FAILURE, EXIT_SUCCESS, EXIT_TIMEOUT, EXIT_USAGE

    code = _as_count(answer)
    if code is None:
        return False, "an exit code is a small whole number"
    if code == EXIT_TIMEOUT:
        return True, (
            f"{EXIT_TIMEOUT}: a timeout (the device never registered, got stuck, or never came "
            f"back after Execute). {EXIT_SUCCESS} is success, {EXIT_FAILURE} another final "
            f"result or a refusal, {EXIT_USAGE} a usage error."
        )
    meanings = {
        EXIT_SUCCESS: "success, Result 1",
        EXIT_FAILURE: "a final Update Result other than 1, or a refused request",
        EXIT_USAGE: "a usage error (bad arguments, an unreadable package)",
        124: "what coreutils' `timeout` returns; labkit fota has a code of its own",
    }
    if code in meanings:
        return False, f"{code} means {meanings[code]}; a board that never came is something else"
    return False, "labkit fota exits with 0, 1, 2 or 3"


_FW_VERSION = Path.of(3, 0, 3)


@register(
    "real.version_path",
    notebook="09_real_device",
    question=(
        "After an update, which resource do you read to be sure the board runs the new "
        "firmware, even on a client that forgets /5 when it reboots? Answer a path."
    ),
    hint="Not in /5: the Device object (/3) says what is running.",
    solution="/3/0/3",
)
def _real_version_path(answer: Any) -> tuple[bool, str]:
    path = _as_path(answer)
    if path is None:
        return False, "a path looks like '/5/0/3': object, instance, resource"
    if path == _FW_VERSION:
        return True, (
            "/3/0/3, Firmware Version of the Device object: it names what runs. Zephyr and "
            "Wakaama do not keep /5 across the reboot and come back with State 0 and Result "
            "0, so a server must check /3/0/3 (labkit judges success by it then)."
        )
    reasons: dict[tuple[int, ...], str] = {
        (5, 0, 5): (
            "Update Result 1 says the attempt succeeded, but a client that does not keep /5 "
            "across the reboot comes back with 0 there"
        ),
        (5, 0, 3): "State is 0 (IDLE) both before and after an update",
        (5, 0, 7): "PkgVersion is what the package announced, not what runs",
        (5, 0, 6): "PkgName is the package's name, not what runs",
    }
    return False, reasons.get(path.ids) or _path_name(path)


# ---------------------------------------------------------------------------------------------
# 05 failure modes
# ---------------------------------------------------------------------------------------------


@register(
    "failures.integrity_code",
    notebook="05_failure_modes",
    question=(
        "Which Update Result code means that the downloaded image failed its integrity check "
        "(a bad hash or signature)?"
    ),
    hint="Two devices of the failure matrix reported it: the bit flip and the wrong key.",
    solution=5,
)
def _failures_integrity_code(answer: Any) -> tuple[bool, str]:
    result = _as_enum(answer, UpdateResult)
    if result is None:
        return False, "Update Result is a number from 0 to 11 (or a name like SUCCESS)"
    if result is UpdateResult.INTEGRITY_CHECK_FAILURE:
        return True, (
            f"{_result_text(result)}. The bootloader recomputes the image's SHA-256 and checks "
            "its signature before it boots it; a flipped bit or a foreign key fails that, the "
            "image is never booted and the old firmware keeps running."
        )
    if result is UpdateResult.UNSUPPORTED_PACKAGE_TYPE:
        return False, (
            f"{_result_text(result)} is for a file that is not an image at all; an image "
            "whose check fails is another code"
        )
    if result is UpdateResult.UPDATE_FAILED:
        return False, (
            f"{_result_text(result)}: the image passed its check, booted, and failed later "
            "(rolled back)"
        )
    return False, f"{_result_text(result)} is another outcome; see the failure matrix"


def _fault_named(answer: Any) -> str | None:
    """The one fault name an answer mentions ("no-ram", "no ram", "NO_RAM"), else None."""
    from labkit.sim.faults import FAULTS

    if not isinstance(answer, str):
        return None
    words = f" {_words(answer)} "
    found = [f for f in FAULTS if f" {_words(f)} " in words]
    return found[0] if len(found) == 1 else None


@register(
    "failures.fault_for_3",
    notebook="05_failure_modes",
    question="Which fault made a device of the failure matrix report Update Result 3?",
    hint="Find the row whose observed code is 3 and read its fault column.",
    solution="no-ram",
)
def _failures_fault_for_3(answer: Any) -> tuple[bool, str]:
    from labkit.sim.faults import FAULT_RESULTS

    fault = _fault_named(answer)
    if fault is None:
        if isinstance(answer, int) and not isinstance(answer, bool) and answer == 3:
            return False, "3 is the code itself; the question asks for the fault's name"
        return False, "answer with a fault name from the matrix, e.g. 'link-drop'"
    code = FAULT_RESULTS[fault]
    if code == int(UpdateResult.OUT_OF_RAM):
        return True, (
            f"{fault}: the device had no RAM buffer for a download block, so the download "
            "stopped at the first block with 3 (“Out of RAM during downloading process”). "
            "A block larger than the buffer does the same."
        )
    if code is None:
        return False, f"{fault} leaves the device consistent (1, 4 or 8), never 3"
    return False, f"{fault} leads to {_result_text(UpdateResult(code))}, not to 3"


_ROLLBACK_WORDS = ("roll", "revert", "fall back", "fallback", "old image", "previous image")
_BOOT_WORDS = ("self test", "boot", "crash", "did not start", "failed to start")


@register(
    "failures.result_8_old_version",
    notebook="05_failure_modes",
    question=(
        "A device reports Update Result 8 and /3/0/3 still names the old version. What "
        "happened to the new image? Answer in a few words."
    ),
    hint="Look at the boot-fail device: its story and its firmware lane.",
    solution="it booted, failed its self-test and the bootloader rolled back to the old image",
)
def _failures_result_8(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or not _words(answer):
        return False, "answer in a few words, as text"
    words = _words(answer)
    if any(w in words for w in _ROLLBACK_WORDS) or (
        any(w in words for w in _BOOT_WORDS) and "fail" in words
    ):
        return True, (
            "the image was installed and booted in test mode, failed (its self-test), never "
            "confirmed itself, and the bootloader rolled back to the old slot: the device runs "
            "the old version again and reports 8 (“Firmware update failed”)."
        )
    if any(w in words for w in ("hash", "signature", "integrity", "tamper", "corrupt")):
        return False, (
            "an image that fails its hash or signature check is never booted and gives 5; "
            "8 comes after the check passed"
        )
    if any(w in words for w in ("download", "link", "connection", "ram", "flash", "space")):
        return False, "a failed download ends with 2, 3 or 4 before any install; 8 comes later"
    if "cancel" in words or "defer" in words:
        return False, "a cancel gives 10 and a deferral 11; nothing was installed then"
    return False, "8 is reported after the install: what did the bootloader do then?"


# ---------------------------------------------------------------------------------------------
# 06 secure boot and rollback
# ---------------------------------------------------------------------------------------------

_CHECK_WORDS = (
    "hash",
    "sha",
    "signature",
    "signed",
    "verif",
    "integrity",
    "checksum",
    "digest",
    "mismatch",
)


@register(
    "secureboot.never_booted",
    notebook="06_secure_boot_and_rollback",
    question="Why is a tampered image never booted? Answer in a few words.",
    hint="Compare hash_tlv and hash_now of the tampered copy in the verify table.",
    solution="its SHA-256 no longer matches the hash in its TLVs, so the bootloader refuses it",
)
def _secureboot_never_booted(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or not _words(answer):
        return False, "answer in a few words, as text"
    words = _words(answer)
    if any(w in words for w in _CHECK_WORDS):
        return True, (
            "before it boots anything, the bootloader recomputes the SHA-256 of header and "
            "payload and compares it with the hash TLV, then checks the signature over that "
            "hash with the key it trusts. One changed byte changes the hash: the check fails, "
            "the image is not booted, the old slot keeps running and the device reports 5."
        )
    if "roll" in words or "revert" in words:
        return False, (
            "a rollback happens to an image that *was* booted (Result 8); a tampered one "
            "never gets that far"
        )
    if "download" in words or "transfer" in words:
        return False, "the tampered image downloads fine (State 2); it is stopped later"
    return False, "what does the bootloader compute and compare before it boots an image?"


@register(
    "secureboot.slot_after_rollback",
    notebook="06_secure_boot_and_rollback",
    question=(
        "The devices run from slot a and download into slot b. Which slot runs after a "
        "rollback? Answer 'a' or 'b'."
    ),
    hint="The flash table shows the running slot of each device.",
    solution="a",
)
def _secureboot_slot_after_rollback(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str):
        return False, "answer with one letter, 'a' or 'b'"
    words = set(_words(answer).split())
    old = bool(words & {"a", "old", "previous", "primary", "original"})
    new = bool(words & {"b", "new", "secondary"})
    if old and not new:
        return True, (
            "slot a, the old one: the new image ran from slot b in test mode, never "
            "confirmed itself, and the bootloader swapped back, so /3/0/3 names the old "
            "version again (MCUboot's test swap and revert)."
        )
    if new and not old:
        return False, (
            "slot b held the new image, which failed; a rollback goes back to where the "
            "device came from"
        )
    return False, "answer with one slot, 'a' or 'b'"


@register(
    "secureboot.verifying_key",
    notebook="06_secure_boot_and_rollback",
    question=(
        "Which key does the device's bootloader use to verify an image's signature: the "
        "lab key's private part or its public part?"
    ),
    hint="Which of the two files did the devices get as trusted_key?",
    solution="the public part of the lab key",
)
def _secureboot_verifying_key(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str):
        return False, "answer in words: the private part or the public part"
    words = set(_words(answer).split())
    public, private = "public" in words, bool(words & {"private", "secret"})
    if public and not private:
        return True, (
            "the public part: whoever builds images signs them with the private key, which "
            "never leaves the build machine; devices hold only the public key, which can "
            "check a signature but cannot make one."
        )
    if private and not public:
        return False, (
            "the private key makes signatures; a device holding it could be read out and "
            "used to sign anything, so devices get the other part"
        )
    return False, "answer with one part: the private part or the public part"


# ---------------------------------------------------------------------------------------------
# 04 link quality versus PUSH decisions
# ---------------------------------------------------------------------------------------------


def _link_levels() -> dict[str, int]:
    """The RSSI a weak device of lesson 04 reports in each phase, read from its trace."""
    from labkit.course import OUTAGE_FROM_S, OUTAGE_UNTIL_S, WEAK_UNTIL_S, weak_links

    trace = weak_links(2, [1])[1].trace
    return {
        "weak": trace.sample(1.0).rssi_dbm,
        "outage": trace.sample((OUTAGE_FROM_S + OUTAGE_UNTIL_S) / 2).rssi_dbm,
        "good": trace.sample(WEAK_UNTIL_S + 1.0).rssi_dbm,
    }


def _link_threshold() -> float:
    from labkit.policy import make_policy, policy_thresholds

    return policy_thresholds(make_policy("threshold"))["min_rssi_dbm"]


def _as_dbm(answer: Any) -> float | None:
    """A signal level from -90, -90.0 or "-90 dBm"; None when the answer names none."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int | float):
        return float(answer) if math.isfinite(answer) else None
    if isinstance(answer, str):
        found = re.findall(r"[-+−]?\d+(?:\.\d+)?", answer)
        if len(found) == 1:
            return float(found[0].replace("−", "-"))
    return None


@register(
    "link.fewer_result_4",
    notebook="04_link_quality_vs_push",
    question=(
        "Which policy had fewer Result 4 (connection lost) failures in this run: 'always' or "
        "'threshold'?"
    ),
    hint="Look at the result_4 column of the comparison table.",
    solution="threshold",
)
def _link_fewer_result_4(answer: Any) -> tuple[bool, str]:
    words = _words_of(answer)
    if not words:
        return False, "answer with one policy name, 'always' or 'threshold'"
    always, threshold = "always" in words, "threshold" in words
    if always and threshold:
        return False, "one of the two had fewer: answer one name"
    if threshold:
        return True, (
            "threshold: the weak devices reported an RSSI below its -105 dBm, so it waited "
            "(nothing was sent) and pushed once the signal was back. 'always' pushed into "
            "the weak link, the outage cut the transfers and the server recorded Result 4. "
            "The price: the threshold campaign took longer to complete."
        )
    if always:
        return False, (
            "always pushed at once, also to the weak devices, and their downloads died in the "
            "outage: look again at result_4"
        )
    if words & {"hysteresis", "best", "window", "battery", "floor"}:
        return False, "this run compared two policies, 'always' and 'threshold'"
    return False, "the run compared the policies 'always' and 'threshold'"


@register(
    "link.push_rssi",
    notebook="04_link_quality_vs_push",
    question=(
        "At what RSSI (/4/0/2, in dBm) did the threshold policy finally push to the weak devices?"
    ),
    hint="The green triangle of the weak device's link plot, or its last_rssi_dbm.",
    solution=-90,
)
def _link_push_rssi(answer: Any) -> tuple[bool, str]:
    level = _as_dbm(answer)
    levels = _link_levels()
    threshold = _link_threshold()
    if level is None:
        return False, "answer a signal level in dBm, like -100"
    if level > 0:
        return False, "a signal strength in dBm is negative here (-44 is very strong)"
    if level == levels["good"]:
        return True, (
            f"{levels['good']} dBm: once the van had gone the signal was back at "
            f"{levels['good']} dBm, at or above the threshold {threshold:g} dBm, and the "
            "next look at /4 gave push."
        )
    if level == levels["weak"]:
        return False, (
            f"at {levels['weak']} dBm (below {threshold:g}) the policy said wait; it pushed later"
        )
    if level == levels["outage"]:
        return False, (
            f"{levels['outage']} dBm is the bottom of the scale during the outage: there the "
            "server could not even read /4, and the policy waited"
        )
    if level == threshold:
        return False, (
            f"{threshold:g} dBm is the policy's threshold; the question asks for the sample "
            "it pushed on"
        )
    return False, "read the RSSI of the push decision in the weak device's plot or table"


_WAIT_CHOICES = {
    "a": "the device does not pause anything: it had not started a download",
    "b": "",
    "c": "a PULL is another decision ('pull'); on 'wait' the server sends nothing at all",
    "d": "giving up is another decision ('give_up'); after 'wait' the server asks again",
}


@register(
    "link.wait_meaning",
    notebook="04_link_quality_vs_push",
    question=(
        "What does a 'wait' decision mean for the device? Answer a, b, c or d (the choices "
        "are in the notebook)."
    ),
    hint="Look at a wait row of the decisions table: what happened next, and when?",
    solution="b",
)
def _link_wait_meaning(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or _words(answer) not in _WAIT_CHOICES:
        return False, "answer with one letter, a, b, c or d"
    letter = _words(answer)
    if letter == "b":
        return True, (
            "b: 'wait' concerns only the server. Nothing is sent to the device, which goes on "
            "as before; after retry_after_s (60 s here) the server reads /4 again and asks "
            "the policy once more. In PUSH the server picks the moment."
        )
    return False, _WAIT_CHOICES[letter]


# ---------------------------------------------------------------------------------------------
# 07 fleet campaign
# ---------------------------------------------------------------------------------------------

_FLEET_FAIL_WORDS = ("fail", "refus", "broken", "bad", "error", "reject", "unsupported")


@register(
    "fleet.stopped_why",
    notebook="07_fleet_campaign",
    question="Why did wave 1 of the broken release never start? Answer in a few words.",
    hint="Read the campaign's stop_reason and the stopped_campaign column of its waves.",
    solution="the canary wave failed",
)
def _fleet_stopped_why(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or not answer.strip():
        return False, "answer in a few words"
    words = _words(answer)
    canary = "canar" in words
    failed = any(w in words for w in _FLEET_FAIL_WORDS) or re.search(r"\b6\b", words)
    if canary and not re.search(r"\bsucce", words):
        return True, (
            "the canary failed: both canary devices refused the package (Result 6, not a "
            "firmware image), more than canary_max_failures = 0, so the campaign stopped "
            "after the canary wave and every later device was skipped, still on its old "
            "firmware."
        )
    if "threshold" in words or "rate" in words:
        return False, (
            "the failure threshold would stop a campaign later, on the share of failures "
            "among the finished devices; here a rule about the first wave acted first"
        )
    if failed or "not firmware" in words or "image" in words:
        return False, (
            "that is why the first devices failed; which rule made the campaign stop before wave 1?"
        )
    if any(w in words for w in ("pause", "cancel", "user")):
        return False, "nobody paused or cancelled this campaign: it stopped itself"
    return False, "look at which wave has stopped_campaign = True, and at stop_reason"


_FLEET_DEVICES = 20
_FLEET_CANARY = 2
_FLEET_WAVES = (25.0, 50.0, 100.0)


@register(
    "fleet.wave_size",
    notebook="07_fleet_campaign",
    question=(
        "A fleet of 20 devices, a canary of 2, then waves=(25, 50, 100): how many devices "
        "does wave 1, the first wave after the canary, update?"
    ),
    hint="The percentages are cumulative shares of the whole fleet; plan_waves shows it.",
    solution=3,
)
def _fleet_wave_size(answer: Any) -> tuple[bool, str]:
    from labkit.fota.campaign import plan_waves

    sizes = [len(w) for w in plan_waves(list(range(_FLEET_DEVICES)), _FLEET_CANARY, _FLEET_WAVES)]
    count = _as_count(answer)
    if count is None:
        return False, "the answer is a whole number of devices"
    if count == sizes[1]:
        return True, (
            f"{sizes[1]}: 25 % of 20 is 5 devices updated by the end of wave 1, and 2 of them "
            f"were the canary. The waves are {sizes}: each percentage says how much of the "
            "fleet is done when the wave ends."
        )
    if count == math.ceil(_FLEET_DEVICES * _FLEET_WAVES[0] / 100):
        return False, (
            f"{count} devices are done when wave 1 ends, but the canary's "
            f"{_FLEET_CANARY} are among them"
        )
    if count == _FLEET_CANARY:
        return False, "that is the canary (wave 0); the question asks for the wave after it"
    if count in sizes:
        return False, f"{count} devices is another wave of the plan {sizes}"
    return False, "percentages are cumulative shares of the whole fleet, canary included"


_FLEET_TRANSIENT = UpdateResult.CONNECTION_LOST


def _as_results(answer: Any) -> list[Any] | None:
    if isinstance(answer, UpdateResult | int | str) and not isinstance(answer, bool):
        single = _as_enum(answer, UpdateResult)
        if single is not None:
            return [single]
    items = _as_sequence(answer) if not isinstance(answer, int | float) else None
    if not items:
        return None
    return [_as_enum(item, UpdateResult) for item in items]


@register(
    "fleet.retry_codes",
    notebook="07_fleet_campaign",
    question=(
        "Which Update Result codes would you let a campaign retry on its own (retry_on)? "
        "Answer a list of codes."
    ),
    hint="Which failure can go away by itself when the same device simply tries again later?",
    solution=[4],
)
def _fleet_retry_codes(answer: Any) -> tuple[bool, str]:
    results = _as_results(answer)
    if results is None:
        return False, "answer a list of Update Result codes, like [2, 3]"
    if None in results:
        return False, "Update Results are the codes 0 to 11 (or names like CONNECTION_LOST)"
    chosen = set(results)
    why_not = {
        UpdateResult.INITIAL: "0 is no result at all",
        UpdateResult.SUCCESS: "1 is success: nothing to retry",
        UpdateResult.NOT_ENOUGH_FLASH: "2 (no flash) stays until someone frees space",
        UpdateResult.OUT_OF_RAM: "3 (no RAM) comes back on the next try with the same image",
        UpdateResult.INTEGRITY_CHECK_FAILURE: "5 means the image is corrupt or badly signed",
        UpdateResult.UNSUPPORTED_PACKAGE_TYPE: "6: the same package is refused again",
        UpdateResult.INVALID_URI: "7: the same URI is invalid again",
        UpdateResult.UPDATE_FAILED: "8: the image failed on the device; retrying rolls out a "
        "bad image again",
        UpdateResult.UNSUPPORTED_PROTOCOL: "9: the device will not learn the protocol",
        UpdateResult.CANCELLED: "10: someone cancelled it on purpose",
        UpdateResult.DEFERRED: "11: the user deferred; the device resumes by itself",
    }
    wrong = sorted(chosen - {_FLEET_TRANSIENT})
    if chosen == {_FLEET_TRANSIENT}:
        return True, (
            "[4]: connection lost is the one failure that can go away by itself (the link "
            "comes back); a retry after a back-off often succeeds. Every other code says "
            "something about the image, the device or a decision, and the same attempt would "
            "fail the same way: those need a person, not a retry."
        )
    if wrong:
        return False, "; ".join(why_not[r] for r in wrong)
    return False, "one failure may go away by itself when the device simply tries again"
