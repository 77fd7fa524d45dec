"""The exercise checkers of the notebook course (the registry in labkit.course.exercises, the
checkers in each lesson module): right answers in every form, wrong answers with a reason, no
crash on nonsense, the same verdict every time."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.course import exercises, l01_lwm2m_basics
from labkit.course.exercises import EXERCISES, Verdict, check
from labkit.lwm2m.formats import ContentFormat
from labkit.lwm2m.objects import State, UpdateResult

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


# -- 00 tour -------------------------------------------------------------------------------


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


# -- 01 basics -------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["/4/0/2", "4/0/2", " /4/0/2 ", "/4/0/2/"])
def test_rssi_path_right(answer: str) -> None:
    assert check("basics.rssi_path", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("/4/0/3", "Link Quality"),
        ("/4/1/2", "only instance 0"),
        ("/3/0/9", "Battery Level of Device"),
        ("/9/0/0", "not a path of the objects"),
        ("four", "a path looks like"),
    ],
)
def test_rssi_path_wrong_with_reason(answer: str, why: str) -> None:
    verdict = check("basics.rssi_path", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", ["TLV", "tlv", " TLV ", "OMA TLV", 11542, "11542"])
def test_smallest_format_right(answer: Any) -> None:
    assert check("basics.smallest_format", answer).right
    assert check("basics.smallest_format", ContentFormat.TLV).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [("SenML JSON", "as text"), (110, "as text"), ("senml-cbor", "names every record")],
)
def test_smallest_format_wrong_with_reason(answer: Any, why: str) -> None:
    verdict = check("basics.smallest_format", answer)
    assert not verdict.right and why in verdict.why


def test_smallest_format_ranking_comes_from_the_codecs() -> None:
    sizes = l01_lwm2m_basics._sizes()
    assert min(sizes, key=sizes.__getitem__) is ContentFormat.TLV
    assert "TLV < SENML_CBOR < SENML_JSON" in check("basics.smallest_format", "TLV").why


@pytest.mark.parametrize("answer", ["lt", "LT", " lt ", "lt=300", "lifetime"])
def test_lifetime_parameter_right(answer: str) -> None:
    assert check("basics.lifetime_parameter", answer).right


def test_lifetime_parameter_wrong_names_what_it_is() -> None:
    assert "Endpoint Client Name" in check("basics.lifetime_parameter", "ep").why
    assert "binding" in check("basics.lifetime_parameter", "b").why


# -- 02 the Firmware Update Object -----------------------------------------------------------


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


# -- 03 PULL versus PUSH ---------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["/5/0/1", "5/0/1", " /5/0/1 "])
def test_pull_resource_right(answer: str) -> None:
    verdict = check("delivery.pull_resource", answer)
    assert verdict.right and "Package URI" in verdict.why


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("/5/0/0", "*is* the PUSH"),
        ("/5/0/2", "after the download"),
        ("/5/0/8", "pick a scheme"),
        ("/5/0/9", "PUSH or PULL"),
        ("/5/1/1", "only instance 0"),
        ("/3/0/3", "Firmware Version of Device"),
        ("uri", "a path looks like"),
    ],
)
def test_pull_resource_wrong_with_reason(answer: str, why: str) -> None:
    verdict = check("delivery.pull_resource", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", ["push", "PUSH", " Push ", "the push method"])
def test_who_decides_right(answer: str) -> None:
    assert check("delivery.who_decides", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("pull", "earliest available opportunity"),
        ("push or pull", "one side only"),
        ("the server", "not the side"),
        (1, "one word"),
    ],
)
def test_who_decides_wrong_with_reason(answer: Any, why: str) -> None:
    verdict = check("delivery.who_decides", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", [128, "128", " 128 ", 128.0])
def test_blocks_right(answer: Any) -> None:
    verdict = check("delivery.blocks", answer)
    assert verdict.right and "65,536 / 512 = 128" in verdict.why


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (64, "at 1024-byte blocks"),
        (256, "at 256-byte blocks"),
        (127, "from 0 to 127"),
        (129, "no partial last block"),
        (100, "divide the image size"),
        ("many", "whole number"),
    ],
)
def test_blocks_wrong_with_reason(answer: Any, why: str) -> None:
    verdict = check("delivery.blocks", answer)
    assert not verdict.right and why in verdict.why


# -- 08 analysing runs (answers computed from data/samples) -----------------------------------


def _sample_truths() -> tuple[int, float, int]:
    """The answers, computed here the way the notebook computes them."""
    from labkit.record import campaign_outcomes, import_capture, result_counts
    from labkit.samples import sample_path

    outcomes = campaign_outcomes([sample_path(f"campaign-{p}") for p in ("always", "threshold")])
    counts = result_counts(outcomes, by="policy").query("code == 4").set_index("policy")["count"]
    lost = int(counts.get("threshold", 0))
    share = float(outcomes.query("policy == 'threshold'")["success"].mean())
    ports = len(import_capture(sample_path("push-update.pcap")).devices["sim-0001"])
    return lost, share, ports


def test_analysis_solutions_agree_with_the_samples() -> None:
    lost, share, ports = _sample_truths()
    assert EXERCISES["analysis.connection_lost"].solution == lost
    assert abs(EXERCISES["analysis.threshold_success"].solution - share) <= 0.005
    assert EXERCISES["analysis.capture_ports"].solution == ports


def test_connection_lost_right_names_the_devices_and_their_fault() -> None:
    lost = EXERCISES["analysis.connection_lost"].solution
    verdict = check("analysis.connection_lost", str(lost))
    assert verdict.right and "link-drop" in verdict.why and "sim-" in verdict.why


def test_connection_lost_wrong_with_reason() -> None:
    lost = EXERCISES["analysis.connection_lost"].solution
    assert "threshold policy" in check("analysis.connection_lost", lost + 1).why
    assert "whole number" in check("analysis.connection_lost", "three").why


def test_threshold_success_takes_fractions_and_percentages() -> None:
    share = EXERCISES["analysis.threshold_success"].solution
    for answer in (share, share * 100, f"{share * 100:.0f} %", f"{share * 100:.0f}%", str(share)):
        assert check("analysis.threshold_success", answer).right, answer
    assert not check("analysis.threshold_success", share + 0.02).right


def test_threshold_success_names_the_usual_mistakes() -> None:
    from labkit.record import campaign_outcomes
    from labkit.samples import sample_path

    outcomes = campaign_outcomes([sample_path(f"campaign-{p}") for p in ("always", "threshold")])
    always = float(outcomes.query("policy == 'always'")["success"].mean())
    if abs(always - EXERCISES["analysis.threshold_success"].solution) > 0.005:
        verdict = check("analysis.threshold_success", always)
        assert not verdict.right and "always campaign" in verdict.why
    mine = outcomes.query("policy == 'threshold'")
    if mine["result"].isna().any():  # a device without a result: the share among the others
        among = int(mine["success"].sum()) / int(mine["result"].notna().sum())
        assert "reported a result" in check("analysis.threshold_success", among).why


def test_capture_ports_right_and_wrong() -> None:
    assert check("analysis.capture_ports", 2).right and check("analysis.capture_ports", "2").right
    assert "registered more than once" in check("analysis.capture_ports", 1).why


# -- 09 a real device --------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [256, "256"])
def test_zephyr_block_size_right(answer: Any) -> None:
    assert check("real.zephyr_block_size", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [(1024, "aiocoap"), (512, "NB-IoT"), (64, "not the default"), (300, "powers of two")],
)
def test_zephyr_block_size_wrong_with_reason(answer: Any, why: str) -> None:
    verdict = check("real.zephyr_block_size", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", [3, "3"])
def test_timeout_exit_right(answer: Any) -> None:
    assert check("real.timeout_exit", answer).right


@pytest.mark.parametrize(
    ("answer", "why"), [(0, "success"), (1, "refused"), (2, "usage"), (124, "coreutils")]
)
def test_timeout_exit_wrong_with_reason(answer: Any, why: str) -> None:
    verdict = check("real.timeout_exit", answer)
    assert not verdict.right and why in verdict.why


def test_timeout_exit_agrees_with_the_command() -> None:
    from labkit.fota.outcome import EXIT_TIMEOUT, Outcome

    stuck = Outcome(endpoint="board", method="push", protocol="coap", timed_out=True)
    assert stuck.exit_code == EXIT_TIMEOUT == EXERCISES["real.timeout_exit"].solution


@pytest.mark.parametrize("answer", ["/3/0/3", "3/0/3"])
def test_version_path_right(answer: str) -> None:
    verdict = check("real.version_path", answer)
    assert verdict.right and "Firmware Version" in verdict.why


@pytest.mark.parametrize(
    ("answer", "why"),
    [("/5/0/5", "comes back with 0"), ("/5/0/3", "before and after"), ("/5/0/7", "announced")],
)
def test_version_path_wrong_with_reason(answer: str, why: str) -> None:
    verdict = check("real.version_path", answer)
    assert not verdict.right and why in verdict.why


# -- 05 failure modes ------------------------------------------------------------------------


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


# -- 06 secure boot and rollback -------------------------------------------------------------


@pytest.mark.parametrize(
    "answer", ["the hash does not match", "bad signature", "the bootloader verifies it first"]
)
def test_never_booted_right(answer: str) -> None:
    assert check("secureboot.never_booted", answer).right


@pytest.mark.parametrize(
    ("answer", "why"), [("it is rolled back", "Result 8"), ("the download fails", "State 2")]
)
def test_never_booted_wrong_with_reason(answer: str, why: str) -> None:
    verdict = check("secureboot.never_booted", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", ["a", "A", "slot a", "the old one", "primary"])
def test_slot_after_rollback_right(answer: str) -> None:
    assert check("secureboot.slot_after_rollback", answer).right


@pytest.mark.parametrize(("answer", "why"), [("b", "held the new image"), ("a or b", "one slot")])
def test_slot_after_rollback_wrong_with_reason(answer: str, why: str) -> None:
    verdict = check("secureboot.slot_after_rollback", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", ["public", "the public part of the lab key", "Public key"])
def test_verifying_key_right(answer: str) -> None:
    assert check("secureboot.verifying_key", answer).right


@pytest.mark.parametrize(
    ("answer", "why"), [("the private key", "makes signatures"), ("public and private", "one")]
)
def test_verifying_key_wrong_with_reason(answer: str, why: str) -> None:
    verdict = check("secureboot.verifying_key", answer)
    assert not verdict.right and why in verdict.why


# -- 04 link quality versus PUSH decisions ---------------------------------------------------


@pytest.mark.parametrize("answer", ["threshold", "Threshold", "the threshold policy"])
def test_link_fewer_result_4_right(answer: Any) -> None:
    assert check("link.fewer_result_4", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("always", "always pushed at once"),
        ("always or threshold", "one name"),
        ("hysteresis", "compared two policies"),
    ],
)
def test_link_fewer_result_4_wrong(answer: Any, why: str) -> None:
    verdict = check("link.fewer_result_4", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", [-90, -90.0, "-90", "-90 dBm", "−90 dBm"])
def test_link_push_rssi_right(answer: Any) -> None:
    assert check("link.push_rssi", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (-115, "said wait"),
        ("-140 dBm", "outage"),
        (-105, "threshold"),
        (90, "negative"),
        ("between -90 and -80", "signal level"),
    ],
)
def test_link_push_rssi_wrong(answer: Any, why: str) -> None:
    verdict = check("link.push_rssi", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", ["b", "B", " b ", "(b)"])
def test_link_wait_meaning_right(answer: Any) -> None:
    assert check("link.wait_meaning", answer).right


@pytest.mark.parametrize(
    ("answer", "why"), [("a", "not pause"), ("c", "PULL"), ("d", "give_up"), ("e", "one letter")]
)
def test_link_wait_meaning_wrong(answer: Any, why: str) -> None:
    verdict = check("link.wait_meaning", answer)
    assert not verdict.right and why in verdict.why


# -- 07 fleet campaign ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer", ["the canary failed", "Canaries failed: Result 6", "because of the canary wave"]
)
def test_fleet_stopped_why_right(answer: Any) -> None:
    assert check("fleet.stopped_why", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("the image was bad", "which rule"),
        ("result 6", "which rule"),
        ("the failure threshold", "failure threshold"),
        ("someone paused it", "nobody paused"),
        ("the canary succeeded", "stopped_campaign"),
    ],
)
def test_fleet_stopped_why_wrong(answer: Any, why: str) -> None:
    verdict = check("fleet.stopped_why", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize("answer", [3, "3", 3.0])
def test_fleet_wave_size_right(answer: Any) -> None:
    assert check("fleet.wave_size", answer).right


@pytest.mark.parametrize(
    ("answer", "why"), [(5, "among them"), (2, "canary"), (10, "another wave"), (7, "cumulative")]
)
def test_fleet_wave_size_wrong(answer: Any, why: str) -> None:
    verdict = check("fleet.wave_size", answer)
    assert not verdict.right and why in verdict.why


@pytest.mark.parametrize(
    "answer", [[4], 4, "4", {4}, (4,), "CONNECTION_LOST", "connection lost", [UpdateResult(4)]]
)
def test_fleet_retry_codes_right(answer: Any) -> None:
    assert check("fleet.retry_codes", answer).right


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ([4, 8], "bad image again"),
        ([5, 6], "corrupt"),
        ([2], "frees space"),
        ([1], "nothing to retry"),
        ([4, 12], "codes 0 to 11"),
        ([11], "deferred"),
    ],
)
def test_fleet_retry_codes_wrong(answer: Any, why: str) -> None:
    verdict = check("fleet.retry_codes", answer)
    assert not verdict.right and why in verdict.why
