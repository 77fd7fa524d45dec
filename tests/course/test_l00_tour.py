"""labkit.course.l00_tour:
the helpers and exercises of notebook 00_tour;
pure ones first, then on a live lab.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from labkit.course import l00_tour as lesson
from labkit.course.exercises import check
from labkit.lwm2m.objects import State, UpdateResult


def _events(rows: list[dict[str, object]]) -> pd.DataFrame:
    from labkit.record import empty_frame

    base = empty_frame()
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    frame["seq"] = range(len(frame))
    return pd.concat([base, frame], ignore_index=True)


def test_story_keeps_changes_and_drops_repeats() -> None:
    events = _events(
        [
            {"ts": 0.0, "device": "d", "source": "device", "kind": "registered", "detail": "p1"},
            {"ts": 0.1, "device": "d", "source": "server", "kind": "fw_state", "state": "IDLE"},
            {"ts": 0.2, "device": "d", "source": "device", "kind": "fw_state", "state": "IDLE"},
            {"ts": 0.3, "device": "d", "source": "device", "kind": "fw_state", "state": "UPDATING"},
            {
                "ts": 0.4,
                "device": "d",
                "source": "device",
                "kind": "fw_result",
                "result": "SUCCESS",
            },
            {"ts": 0.5, "device": "e", "source": "device", "kind": "fw_state", "state": "IDLE"},
            {"ts": 0.6, "device": "d", "source": "server", "kind": "request", "path": "/5/0/3"},
        ]
    )
    story = lesson.story(events, "d")
    assert list(story.columns) == ["t_ms", "source", "what", "value"]
    assert story["value"].tolist() == ["p1", "0 IDLE", "3 UPDATING", "1 SUCCESS"]
    assert story["source"].tolist() == ["device", "server", "device", "device"]
    assert story["t_ms"].tolist() == [0.0, 100.0, 300.0, 400.0]
    assert lesson.story(events.iloc[:0]).empty
    assert lesson.story(events, "nobody").empty


# -- exercises -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        [0, 1, 2, 3, 0],
        (0, 1, 2, 3, 0),
        "0 1 2 3 0",
        "0 -> 1 -> 2 -> 3 -> 0",
        "IDLE, DOWNLOADING, DOWNLOADED, UPDATING, IDLE",
        ["idle", "downloading", "downloaded", "updating", "idle"],
        [State.IDLE, State.DOWNLOADING, State.DOWNLOADED, State.UPDATING, State.IDLE],
    ],
)
def test_tour_states_right(answer: Any) -> None:
    assert check("tour.states", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ([1, 2, 3, 0], "IDLE (0) before"),
        ([0, 1, 2, 3], "does not end in UPDATING"),
        ([0, 2, 1, 3, 0], "order of the seed's four steps"),
        ([0, 1, 3, 0], "DOWNLOADED (2) is missing"),
        ([0, 1, 2, 3, 4], "is not a State"),
    ],
)
def test_tour_states_wrong_with_reason(answer: Any, why: str) -> None:
    verdict = check("tour.states", answer)
    assert not verdict.right
    assert why in verdict.why


@pytest.mark.parametrize("answer", [1, "1", "SUCCESS", "success", UpdateResult.SUCCESS])
def test_tour_success_result_right(answer: Any) -> None:
    assert check("tour.success_result", answer).right


def test_tour_success_result_wrong_names_the_code() -> None:
    assert "INITIAL" in check("tour.success_result", 0).why
    assert "Integrity check failure" in check("tour.success_result", 5).why
