"""labkit.course.l08_analysing_runs: the exercises of notebook 08_analysing_runs."""

from __future__ import annotations

from labkit.course import l08_analysing_runs  # noqa: F401 - registers the lesson's exercises
from labkit.course.exercises import EXERCISES, check

# -- exercises -----------------------------------------------------------------------------


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
