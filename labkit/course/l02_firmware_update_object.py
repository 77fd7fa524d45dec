"""Lesson 02, the Firmware Update Object (``notebooks/02_firmware_update_object``): the
State and Update Result tables (:func:`state_table`, :func:`result_table`), the /5 transition
table's rules (:func:`rules`), the machine driven by hand (:func:`walk`), a Mermaid diagram in
the notebook (:func:`mermaid`), and the lesson's exercises ``fuo.*``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from labkit.course.common import fast_mode, log, package
from labkit.course.exercises import (
    as_enum,
    check,
    hint,
    plain_words,
    question,
    register,
    result_text,
    state_text,
)
from labkit.lwm2m.errors import FotaError
from labkit.lwm2m.objects import State, UpdateResult

if TYPE_CHECKING:
    import pandas as pd
    from IPython.display import Markdown

    from labkit.lwm2m.fota import Action, FirmwareUpdateMachine
    from labkit.lwm2m.fota import Event as FotaEvent

__all__ = [
    "check",
    "fast_mode",
    "hint",
    "log",
    "mermaid",
    "package",
    "question",
    "result_table",
    "rules",
    "state_table",
    "walk",
]


def state_table() -> pd.DataFrame:
    """The lesson's State table (/5/0/3).

    Returns
    -------
    DataFrame
        Columns ``state`` (0..3), ``name`` (IDLE ...) and ``description`` (the lesson's
        wording); one row per State.
    """
    import pandas as pd

    rows = [{"state": int(s), "name": s.name, "description": s.description} for s in State]
    return pd.DataFrame(rows, columns=["state", "name", "description"])


def result_table() -> pd.DataFrame:
    """The lesson's Update Result table (/5/0/5).

    Returns
    -------
    DataFrame
        Columns ``result`` (0..11), ``name`` (INITIAL ...) and ``description`` (the lesson's
        wording); one row per code.
    """
    import pandas as pd

    rows = [{"result": int(r), "name": r.name, "description": r.description} for r in UpdateResult]
    return pd.DataFrame(rows, columns=["result", "name", "description"])


def rules(event: str | None = None, state: str | None = None) -> pd.DataFrame:
    """Rows of the /5 transition table (:func:`labkit.lwm2m.fota.transition_rows`), optionally
    only those of one trigger (``"ExecuteUpdate"``) and/or one State (``"IDLE"``).

    Returns
    -------
    DataFrame
        Columns ``id``, ``state``, ``event``, ``guard``, ``to``, ``via``, ``result``,
        ``actions``, ``reply`` and ``note``, in table order.
    """
    import pandas as pd

    from labkit.lwm2m.fota import transition_rows

    frame = pd.DataFrame(transition_rows())
    if event is not None:
        frame = frame[frame["event"] == event]
    if state is not None:
        frame = frame[frame["state"] == state.upper()]
    return frame.reset_index(drop=True)


def _trigger_text(event: FotaEvent) -> str:
    """``WriteUri(uri='coap://...')``, with long byte strings shortened and enums by name."""
    args = []
    for key in getattr(event, "__dataclass_fields__", {}):
        value = getattr(event, key)
        if isinstance(value, bytes) and len(value) > 8:
            text = f"<{len(value)} bytes>"
        elif isinstance(value, State | UpdateResult):
            text = value.name
        else:
            text = repr(value)
        args.append(f"{key}={text}")
    return f"{type(event).__name__}({', '.join(args)})"


def walk(
    machine: FirmwareUpdateMachine,
    triggers: Sequence[FotaEvent],
    *,
    start: float = 0.0,
    step: float = 1.0,
) -> pd.DataFrame:
    """Feed ``triggers`` to ``machine`` one by one (at ``now = start, start + step, ...``) and
    tabulate what each did. A refused trigger is a row too (the machine stays as it was).

    Returns
    -------
    DataFrame
        Columns ``trigger`` (the event, written out), ``rule`` (the table's rule id, T1..T20
        and friends), ``reply`` (what the device answers: ``"2.04"`` or the refusal code),
        ``state`` and ``result`` after the trigger (``"2 DOWNLOADED"``) and ``actions`` (what
        the device must do, in order).
    """
    import pandas as pd

    rows = []
    for i, event in enumerate(triggers):
        rule = machine.rule_for(event)
        try:
            actions = machine.handle(event, now=start + i * step)
            reply = rule.reply or "(internal)"
            done = ", ".join(_action_text(a) for a in actions)
        except FotaError as err:
            reply, done = f"{err.coap_code} refused", ""
        rows.append(
            {
                "trigger": _trigger_text(event),
                "rule": rule.id,
                "reply": reply,
                "state": f"{int(machine.state)} {machine.state.name}",
                "result": f"{int(machine.result)} {machine.result.name}",
                "actions": done,
            }
        )
    return pd.DataFrame(rows, columns=["trigger", "rule", "reply", "state", "result", "actions"])


def _action_text(action: Action) -> str:
    from labkit.lwm2m.fota import ResultChanged, StateChanged, StoreBlock

    if isinstance(action, StateChanged):
        return f"State {int(action.previous)} -> {int(action.state)}"
    if isinstance(action, ResultChanged):
        return f"Result {int(action.previous)} -> {int(action.result)}"
    if isinstance(action, StoreBlock):
        return f"StoreBlock({action.block_number})"
    return type(action).__name__


def mermaid(text: str) -> Markdown:
    """Show Mermaid diagram ``text`` in a notebook (JupyterLab 4 draws ```mermaid blocks).

    Returns an :class:`IPython.display.Markdown` object: the last line of a cell displays it;
    where Markdown is not rendered, the Mermaid source shows as text.
    """
    from IPython.display import Markdown

    return Markdown(f"```mermaid\n{text.rstrip()}\n```")  # type: ignore[no-untyped-call]


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
    state = as_enum(answer, State)
    if state is None:
        return False, "States are 0 IDLE, 1 DOWNLOADING, 2 DOWNLOADED, 3 UPDATING"
    rule = _execute_rules()[state]
    if not rule.rejects:
        return True, (
            f"only in {state_text(state)} is there a complete image to install; Execute "
            f"answers 2.04 and moves to UPDATING (rule {rule.id}, seed step 3)."
        )
    why = {
        State.IDLE: "there is no image yet",
        State.DOWNLOADING: "the image is still arriving",
        State.UPDATING: "the installation is already running",
    }[state]
    return False, (
        f"in {state_text(state)} {why}: the device answers {rule.reply} and stays where it "
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
    result = as_enum(answer, UpdateResult)
    expected = _cancel_result()
    if result is None:
        return False, "Update Result is a number from 0 to 11 (or a name like SUCCESS)"
    if result is expected:
        return True, (
            f"{result_text(result)}. Execute /5/0/10 (Cancel, object 1.1) while DOWNLOADING "
            "or DOWNLOADED drops the image and goes back to IDLE with it."
        )
    return False, f"{result_text(result)} is another outcome; the cancelled one is in the table"


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
    words = plain_words(answer)
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
            return False, f"that describes {result_text(result)}; 5 is a different failure"
    return False, "5 is about the downloaded package itself: look at the seed's result table"
