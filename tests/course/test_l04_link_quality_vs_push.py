"""labkit.course.l04_link_quality_vs_push:
the helpers and exercises of notebook 04_link_quality_vs_push;
pure ones first, then on a live lab.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from labkit.course import l04_link_quality_vs_push as lesson
from labkit.course.exercises import check


@pytest.fixture(scope="module", params=["virtual", "scaled"])
def course(request):  # type: ignore[no-untyped-def]
    """The lesson's lab on virtual time (the course's default) and on scaled time (50x)."""
    lab = lesson.course_lab(clock=request.param, time_scale=50.0)
    yield lab
    lab.close()


def test_link_traces_are_tidy_and_distinct_per_trace() -> None:
    traces = lesson.link_traces(["nb-iot", "wifi", "mixed"], devices=2, minutes=10, step_s=60)
    assert list(traces.columns) == [
        "trace",
        "profile",
        "device",
        "t_min",
        "rssi_dbm",
        "link_quality",
        "loss",
        "band",
    ]
    assert len(traces) == 3 * 2 * 10 and isinstance(traces.index, pd.RangeIndex)
    assert traces["trace"].nunique() == 6
    assert traces["trace"].str.match(r"mixed #\d \((nb-iot|lte-m|wifi)\)").sum() == 20
    wide = traces.pivot(index="t_min", columns="trace", values="rssi_dbm")
    assert not wide.T.duplicated().any()  # no two traces are the same link
    assert set(traces["band"]) <= {"good", "fair", "poor"}
    assert traces.equals(
        lesson.link_traces(["nb-iot", "wifi", "mixed"], devices=2, minutes=10, step_s=60)
    )


def test_trace_summary_counts_the_time_below_the_threshold() -> None:
    traces = pd.DataFrame(
        {
            "trace": ["a"] * 4 + ["b"] * 2,
            "rssi_dbm": [-100, -110, -120, -90, -80, -81],
            "loss": [0.0, 0.1, 0.2, 0.0, 0.0, 0.0],
        }
    )
    summary = lesson.trace_summary(traces, threshold_dbm=-105)
    assert list(summary["trace"]) == ["a", "b"]
    assert list(summary["below_pct"]) == [50.0, 0.0]
    assert list(summary["rssi_min"]) == [-120, -81]
    assert summary.loc[0, "max_loss"] == 0.2


def test_policy_examples_ask_every_policy_about_every_sample() -> None:
    table = lesson.policy_examples()
    assert len(table) == len(lesson.EXAMPLE_POLICIES) * len(lesson.EXAMPLE_SNAPSHOTS)
    by = table.set_index(["link", "policy"])["action"]
    assert by[("poor", "always")] == "push" and by[("poor", "threshold")] == "wait"
    assert by[("fair", "threshold")] == "push" and by[("fair", "hysteresis")] == "wait"
    assert by[("no /4 answer", "threshold")] == "wait"
    assert by[("good, battery 12 %", "battery-floor(threshold)")] == "give_up"
    assert table["reason"].str.len().min() > 5


def test_policy_walk_carries_memory_like_a_campaign() -> None:
    walk = lesson.policy_walk("hysteresis", [-95, -88, -100, -107])
    assert list(walk["action"]) == ["wait", "push", "push", "wait"]
    window = lesson.policy_walk("best-window", [-100, -99, -98], max_wait_s=120)
    assert list(window["waited_s"]) == [0.0, 60.0, 120.0]
    assert list(window["action"]) == ["wait", "wait", "push"]
    assert "falling back" in window.loc[2, "reason"]


def test_weak_links_are_calm_except_for_the_scripted_trouble() -> None:
    links = lesson.weak_links(3, [1])
    good, weak = links[0].trace, links[1].trace
    assert {good.sample(t).rssi_dbm for t in (0, 100, 300, 1000)} == {-90}
    assert weak.sample(1.0).rssi_dbm == -115
    middle = (lesson.OUTAGE_FROM_S + lesson.OUTAGE_UNTIL_S) / 2
    assert weak.sample(middle).loss == 1.0
    assert weak.sample(lesson.WEAK_UNTIL_S + 1).rssi_dbm == -90


def test_a_lab_without_a_scaled_clock_is_refused() -> None:
    from labkit.runtime import Lab

    with Lab() as plain, pytest.raises(ValueError, match="scaled_lab"):
        lesson.policy_run(plain, "always", devices=1)


def test_threshold_waits_out_the_outage_and_always_loses_the_weak_device(course) -> None:  # type: ignore[no-untyped-def]
    always = lesson.policy_run(course, "always", devices=2, image_size=64 * 1024)
    threshold = lesson.policy_run(course, "threshold", devices=2, image_size=64 * 1024)
    assert always.devices == ["always-0001", "always-0002"] and always.weak == ["always-0002"]
    a = always.table().set_index("device")
    assert a.loc["always-0001", "result"] == 1 and a.loc["always-0002", "result"] == 4
    assert set(threshold.table()["result"]) == {1}
    table = lesson.compare_runs([always, threshold])
    assert list(table["run"]) == ["always", "threshold"]
    assert list(table["result_4"]) == [1, 0]
    assert table.loc[1, "thresholds"] == "min_rssi_dbm -105"
    assert table.loc[1, "time_to_complete_s"] > table.loc[0, "time_to_complete_s"]
    weak = threshold.decisions(threshold.weak[0])
    assert weak["decision"].iloc[0] == "wait" and weak["rssi_dbm"].iloc[0] == -115
    assert weak["decision"].iloc[-1] == "push" and weak["rssi_dbm"].iloc[-1] == -90
    assert set(threshold.events["device"].dropna().astype(str)) <= set(threshold.devices)


def test_threshold_explorer_reruns_with_the_sliders_value(course) -> None:  # type: ignore[no-untyped-def]
    explorer = lesson.ThresholdExplorer(course, devices=2, image_size=32 * 1024)
    explorer.slider.value = -120.0
    run = explorer.run()
    assert run.thresholds == {"min_rssi_dbm": -120.0} and run.label.startswith("threshold")
    assert list(explorer.comparison()["thresholds"]) == ["min_rssi_dbm -120"]
    assert "threshold -120 dBm" in explorer.status.value and "<table" in explorer.table.value


def test_on_virtual_time_every_student_gets_the_same_run() -> None:
    tables = []
    for _ in range(2):
        lab = lesson.course_lab(seed=4)
        try:
            run = lesson.policy_run(lab, "threshold", devices=2, image_size=32 * 1024, seed=4)
            tables.append((run.table(), run.events.drop(columns="run_id")))
        finally:
            lab.close()
    (first, first_events), (second, second_events) = tables
    assert first.equals(second)  # durations and times included
    assert first_events.equals(second_events)


# -- exercises -----------------------------------------------------------------------------


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
