"""labkit.course.l02_firmware_update_object:
the helpers and exercises of notebook 02_firmware_update_object;
pure ones first, then on a live lab.
"""

from __future__ import annotations

from typing import Any

import pytest

from labkit.course import l02_firmware_update_object as lesson
from labkit.course.exercises import check
from labkit.lwm2m.fota import (
    DownloadCompleted,
    ExecuteUpdate,
    FirmwareUpdateMachine,
    InstallSucceeded,
    WriteUri,
)
from labkit.lwm2m.fota_diagram import mermaid_state_diagram
from labkit.lwm2m.objects import State, UpdateResult


def test_state_and_result_tables_follow_the_seed() -> None:
    states = lesson.state_table()
    assert list(states.columns) == ["state", "name", "description"]
    assert states["state"].tolist() == [0, 1, 2, 3]
    assert states.loc[1, "description"] == "The new firmware is on the way"
    results = lesson.result_table()
    assert results["result"].tolist() == list(range(12))
    assert results.loc[10, "description"] == "Firmware update cancelled"
    assert results.loc[5, "name"] == "INTEGRITY_CHECK_FAILURE"


def test_walk_tabulates_a_pull_and_a_refusal() -> None:
    machine = FirmwareUpdateMachine()
    triggers = [
        ExecuteUpdate(),
        WriteUri(uri="coap://127.0.0.1/fw/a.bin"),
        DownloadCompleted(),
        ExecuteUpdate(),
        InstallSucceeded(),
    ]
    table = lesson.walk(machine, triggers)
    assert table["rule"].tolist() == ["T15", "T1", "T7", "T12", "T16"]
    assert table["reply"].tolist() == ["4.05 refused", "2.04", "(internal)", "2.04", "(internal)"]
    assert table["state"].tolist() == [
        "0 IDLE",
        "1 DOWNLOADING",
        "2 DOWNLOADED",
        "3 UPDATING",
        "0 IDLE",
    ]
    assert table["result"].iloc[-1] == "1 SUCCESS"
    assert table.loc[0, "actions"] == ""
    assert "StartDownload" in table.loc[1, "actions"]
    assert machine.state is State.IDLE and machine.result is UpdateResult.SUCCESS


def test_rules_filter_the_transition_table() -> None:
    rows = lesson.rules("ExecuteUpdate", state="idle")
    assert rows["id"].tolist() == ["T15"] and rows.loc[0, "reply"] == "4.05"
    assert len(lesson.rules()) > len(lesson.rules("ExecuteUpdate"))


def test_mermaid_wraps_the_diagram_in_a_fence() -> None:
    shown = lesson.mermaid(mermaid_state_diagram(config_writes=False))
    assert shown.data.startswith("```mermaid\nstateDiagram-v2\n")
    assert shown.data.endswith("\n```")


# -- exercises -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer", [2, "2", "DOWNLOADED", "downloaded", "Downloaded (2)", "state 2", State.DOWNLOADED]
)
def test_execute_state_right(answer: Any) -> None:
    verdict = check("fuo.execute_state", answer)
    assert verdict.right and "T12" in verdict.why


@pytest.mark.parametrize(
    ("answer", "why"),
    [(0, "no image yet"), ("DOWNLOADING", "still arriving"), (State.UPDATING, "already running")],
)
def test_execute_state_wrong_quotes_the_table(answer: Any, why: str) -> None:
    verdict = check("fuo.execute_state", answer)
    assert not verdict.right
    assert why in verdict.why and "4.05" in verdict.why and "T15" in verdict.why


def test_execute_state_refuses_two_states_at_once() -> None:
    assert not check("fuo.execute_state", "IDLE or DOWNLOADED").right


@pytest.mark.parametrize("answer", [10, "10", "CANCELLED", UpdateResult.CANCELLED])
def test_cancelled_result_right(answer: Any) -> None:
    assert check("fuo.cancelled_result", answer).right


def test_cancelled_result_wrong_names_the_code() -> None:
    assert "UPDATE_FAILED" in check("fuo.cancelled_result", 8).why


@pytest.mark.parametrize(
    "answer",
    [
        "integrity check failure",
        "The integrity check of the new package failed",
        "the hash did not match",
        "bad signature",
        "the image is corrupt",
        "verification failed",
    ],
)
def test_result_5_right(answer: str) -> None:
    assert check("fuo.result_5", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("not enough flash", "NOT_ENOUGH_FLASH"),
        ("out of RAM", "OUT_OF_RAM"),
        ("the connection was lost", "CONNECTION_LOST"),
        ("invalid URI", "INVALID_URI"),
        ("it was cancelled", "CANCELLED"),
        (5, "the code itself"),
        (UpdateResult.INTEGRITY_CHECK_FAILURE, "the code itself"),
        (7, "another code"),
    ],
)
def test_result_5_wrong_with_reason(answer: Any, why: str) -> None:
    verdict = check("fuo.result_5", answer)
    assert not verdict.right and why in verdict.why
