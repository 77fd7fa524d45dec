"""labkit.course.l02_firmware_update_object:
the helpers and exercises of notebook 02_firmware_update_object;
pure ones first, then on a live lab.
"""

from __future__ import annotations

from labkit.course import l02_firmware_update_object as lesson
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
