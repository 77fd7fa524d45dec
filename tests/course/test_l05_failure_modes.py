"""labkit.course.l05_failure_modes:
the helpers and exercises of notebook 05_failure_modes;
pure ones first, then on a live lab.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from labkit.course import l05_failure_modes as lesson
from labkit.course.exercises import EXERCISES, check
from labkit.course.l06_secure_boot_and_rollback import flash_table
from labkit.lwm2m.objects import UpdateResult


@pytest.fixture(scope="module")
def lab():  # type: ignore[no-untyped-def]
    from labkit import Lab

    with Lab() as lab:
        lab.add_device("sim-0001")
        yield lab


def test_operator_guide_has_one_row_per_code_with_advice() -> None:
    guide = lesson.operator_guide()
    assert guide.columns.tolist() == ["code", "name", "description", "likely_cause", "next_step"]
    assert guide["code"].tolist() == list(range(12))
    assert guide["description"].tolist() == [r.description for r in UpdateResult]
    assert (guide["likely_cause"].str.len() > 10).all() and (
        guide["next_step"].str.len() > 10
    ).all()
    assert "roll" in guide.set_index("code").loc[8, "likely_cause"]
    assert isinstance(guide.index, pd.RangeIndex)


def test_failure_cases_cover_every_final_code() -> None:
    codes = {case.expected for case in lesson.FAILURE_CASES}
    assert codes == set(range(1, 12))
    names = [case.endpoint for case in lesson.FAILURE_CASES]
    assert len(set(names)) == len(names) and names == sorted(names)


@pytest.mark.parametrize("clock", ["virtual", "wall"])
def test_failure_matrix_produces_every_code_on_purpose(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    from labkit import Lab
    from labkit.plots import plot_result_counts

    key = lesson.lab_key(tmp_path / "keys")
    assert key.exists() and key.parent == tmp_path / "keys"
    with (Lab(clock="virtual", seed=5) if clock == "virtual" else Lab()) as lab:
        matrix = lesson.failure_matrix(lab, fast=True, key=key)
        slots = flash_table(lab, ["r01-success", "r08-boot-fail", "r05-wrong-key"])
    assert matrix["device"].tolist() == [c.endpoint for c in lesson.FAILURE_CASES]
    problems = matrix.loc[~matrix["match"], ["device", "expected", "observed", "reported"]]
    assert problems.empty, problems.to_string()
    assert set(matrix["observed"]) == set(range(1, 12))
    assert (matrix["final_state"] == 0).all()  # nobody left in 1, 2 or 3
    assert (matrix["fw_before"] == lesson.OLD_VERSION).all()
    winners = set(matrix.loc[matrix["fw_after"] == lesson.NEW_VERSION, "device"])
    assert winners == {"r01-success", "r11-defer"}
    defer = matrix.set_index("device").loc["r11-defer"]
    assert defer["reported"] == "11 → 1" and defer["final_result"] == 1
    assert str(matrix["result"].dtype) == "category"
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_result_counts(matrix)
    assert len(ax.patches) == 11
    by_device = slots.set_index("device")
    assert by_device.loc["r01-success", "running"] == "b"
    assert by_device.loc["r01-success", "slot_b"] == "MCUboot image 2.0.0"
    assert by_device.loc["r08-boot-fail", "running"] == "a"
    assert by_device.loc["r08-boot-fail", "fw_version"] == "1.0.0"
    assert by_device.loc["r05-wrong-key", "result"].startswith("5 ")


# -- exercises -----------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [5, "5", "INTEGRITY_CHECK_FAILURE", UpdateResult(5)])
def test_integrity_code_right(answer: Any) -> None:
    verdict = check("failures.integrity_code", answer)
    assert verdict.right and "never booted" in verdict.why


@pytest.mark.parametrize(("answer", "why"), [(6, "not an image"), (8, "rolled back"), (4, "")])
def test_integrity_code_wrong_with_reason(answer: Any, why: str) -> None:
    verdict = check("failures.integrity_code", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", ["no-ram", "NO_RAM", "the no ram fault"])
def test_fault_for_3_right(answer: str) -> None:
    assert check("failures.fault_for_3", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [("link-drop", "leads to 4"), ("power-loss", "1, 4 or 8"), (3, "the code itself")],
)
def test_fault_for_3_wrong_with_reason(answer: Any, why: str) -> None:
    verdict = check("failures.fault_for_3", answer)
    assert not verdict.right and why in verdict.why


def test_fault_for_3_agrees_with_the_fault_table() -> None:
    from labkit.sim.faults import FAULT_RESULTS

    assert FAULT_RESULTS[EXERCISES["failures.fault_for_3"].solution] == 3


@pytest.mark.parametrize(
    "answer",
    [
        "rollback",
        "it rolled back",
        "the bootloader reverted to the old image",
        "the new image failed its self-test at boot",
    ],
)
def test_result_8_right(answer: str) -> None:
    assert check("failures.result_8_old_version", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("the signature was bad", "gives 5"),
        ("the link dropped", "2, 3 or 4"),
        ("it was cancelled", "10"),
    ],
)
def test_result_8_wrong_with_reason(answer: str, why: str) -> None:
    verdict = check("failures.result_8_old_version", answer)
    assert not verdict.right and why in verdict.why
