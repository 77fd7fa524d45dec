"""Lesson 00, a tour of the lab (``notebooks/00_tour``): the story of one update from the
event table (:func:`story`), and the lesson's exercises ``tour.*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.course.common import fast_mode, package, wire
from labkit.course.exercises import (
    as_enum,
    as_sequence,
    check,
    hint,
    question,
    register,
    result_text,
    state_text,
)
from labkit.lwm2m.objects import State, UpdateResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "check",
    "fast_mode",
    "hint",
    "package",
    "question",
    "story",
    "wire",
]


def _name_of(value: Any, enum: type[State] | type[UpdateResult]) -> str:
    try:
        member = enum[str(value)]
    except KeyError:
        return str(value)
    return f"{int(member)} {member.name}"


def story(events: pd.DataFrame, device: str | None = None) -> pd.DataFrame:
    """The story of one device's firmware, in order: its registrations and reboots, and every
    change of State, Update Result and firmware version that anyone saw (repeats dropped).

    The device reports its own changes (``source`` "device"); the server sees them through
    its reads and notifications ("server"). A change is listed once, where it was seen first.

    Returns
    -------
    DataFrame
        Columns ``t_ms`` (milliseconds since the device's first row, float), ``source``
        ("device" or "server"), ``what`` ("State", "Update Result", "firmware",
        "registered", "reboot", "deregistered") and ``value`` (``"1 DOWNLOADING"``,
        ``"2.0.0"``, a registration's port...).
    """
    import pandas as pd

    columns = ["t_ms", "source", "what", "value"]
    if events.empty:
        return pd.DataFrame(columns=columns)
    rows = events[events["device"].notna()]
    if device is None:
        names = sorted(rows["device"].astype(str).unique().tolist())
        device = names[0] if names else None
    rows = rows[(rows["device"].astype("string") == device).fillna(False)]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    t0 = rows["ts"].iloc[0]
    source = rows["source"].astype("string")
    kind = rows["kind"].astype("string")
    own = (source == "device") & kind.isin(["registered", "deregistered", "reboot"])
    values = kind.isin(["fw_state", "fw_result", "fw_version"])
    rows = rows[(own | values).fillna(False)].sort_values("seq")
    out: list[dict[str, Any]] = []
    last: dict[str, str] = {}
    for row in rows.itertuples(index=False):
        k = str(row.kind)
        if k == "fw_state":
            what, value = "State", _name_of(row.state, State)
        elif k == "fw_result":
            what, value = "Update Result", _name_of(row.result, UpdateResult)
        elif k == "fw_version":
            what, value = "firmware", "" if pd.isna(row.fw_version) else str(row.fw_version)
        else:
            what, value = k, "" if pd.isna(row.detail) else str(row.detail)
        if what in ("State", "Update Result", "firmware"):
            if last.get(what) == value:
                continue
            last[what] = value
        t_ms = round((row.ts - t0).total_seconds() * 1000.0, 1)
        out.append({"t_ms": t_ms, "source": str(row.source), "what": what, "value": value})
    return pd.DataFrame(out, columns=columns)


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
    items = as_sequence(answer)
    if items is None:
        return False, "the answer should be a list of States, e.g. [0, 3] or 'IDLE, UPDATING'"
    states = [as_enum(item, State) for item in items]
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
        names = ", ".join(state_text(s) for s in missing)
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
    result = as_enum(answer, UpdateResult)
    if result is None:
        return False, "Update Result is a number from 0 to 11 (or a name like SUCCESS)"
    if result is UpdateResult.SUCCESS:
        return True, f"Update Result {result_text(result)} — the lesson's step 4 succeeded."
    if result is UpdateResult.INITIAL:
        return False, (
            "0 (INITIAL) is the value before any update, and while one runs; a finished "
            "successful update reports 1"
        )
    return False, f"{result_text(result)} reports a failure; this update succeeded"
