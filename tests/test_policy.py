"""PUSH-decision policies: table-driven decisions, memory through the context, user policies."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.events import Event
from labkit.policy import (
    ACTIONS,
    POLICIES,
    Decision,
    LinkSnapshot,
    Policy,
    PolicyContext,
    always,
    battery_floor,
    best_window,
    decision_event_fields,
    evaluate,
    hysteresis,
    make_policy,
    policy_name,
    policy_thresholds,
    threshold,
)
from labkit.sim import PROFILES, SignalTrace


def snap(
    rssi: int | None = -95,
    lq: int | None = -10,
    battery: int | None = 80,
    t: float = 0.0,
    bearer: int | None = 6,
) -> LinkSnapshot:
    return LinkSnapshot(rssi_dbm=rssi, link_quality=lq, battery=battery, t=t, bearer=bearer)


CTX = PolicyContext()


# -- table-driven decisions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "snapshot", "context", "action", "in_reason"),
    [
        (always(), snap(rssi=-139), CTX, "push", ["always"]),
        (always(), snap(rssi=None, lq=None, battery=None), CTX, "push", ["always"]),
        (threshold(), snap(rssi=-100), CTX, "push", ["-100 dBm", "-105 dBm"]),
        (threshold(), snap(rssi=-105), CTX, "push", ["-105"]),
        (threshold(), snap(rssi=-112), CTX, "wait", ["RSSI -112 dBm below threshold -105 dBm"]),
        (threshold(otherwise="pull"), snap(rssi=-112), CTX, "pull", ["-112", "pull"]),
        (threshold(), snap(rssi=None), CTX, "wait", ["no link sample"]),
        (
            threshold(min_rssi_dbm=None, min_link_quality=-12),
            snap(rssi=None, lq=-15),
            CTX,
            "wait",
            ["Link Quality -15 below threshold -12"],
        ),
        (
            threshold(min_rssi_dbm=-110, min_link_quality=-12),
            snap(rssi=-100, lq=-11),
            CTX,
            "push",
            ["-100", "-11", "-12"],
        ),
        (
            threshold(min_link_quality=-12),
            snap(rssi=-100, lq=None),
            CTX,
            "wait",
            ["no link sample", "/4/0/3"],
        ),
        (threshold(min_rssi_dbm=None), snap(rssi=None), CTX, "push", ["no threshold"]),
        (threshold(min_rssi_dbm=-105.5), snap(rssi=-106), CTX, "wait", ["-105.5 dBm"]),
        (hysteresis(), snap(rssi=-89), CTX, "push", ["-89 dBm", "-90 dBm"]),
        (hysteresis(), snap(rssi=-95), CTX, "wait", ["-95 dBm", "-90 dBm"]),
        (
            hysteresis(),
            snap(rssi=-95),
            PolicyContext(previous=Decision("push", "x")),
            "push",
            ["-95 dBm", "-105 dBm", "keep pushing"],
        ),
        (
            hysteresis(),
            snap(rssi=-106),
            PolicyContext(previous=Decision("push", "x")),
            "wait",
            ["-106 dBm", "-105 dBm"],
        ),
        (hysteresis(), snap(rssi=None), CTX, "wait", ["no link sample"]),
        (best_window(), snap(rssi=-85), CTX, "push", ["-85 dBm", "-90 dBm"]),
        (best_window(), snap(rssi=-95), CTX, "wait", ["-95 dBm", "3600 s left"]),
        (
            best_window(max_wait_s=600, fallback="pull"),
            snap(rssi=-95),
            PolicyContext(waited_s=600),
            "pull",
            ["waited 600 s of max 600 s", "-95 dBm"],
        ),
        (battery_floor(), snap(battery=10), CTX, "give_up", ["battery 10 % below floor 20 %"]),
        (battery_floor(below="wait"), snap(battery=10), CTX, "wait", ["battery 10 %"]),
        (battery_floor(), snap(rssi=-100, battery=50), CTX, "push", ["-100", "battery 50 % ok"]),
        (battery_floor(), snap(rssi=-120, battery=None), CTX, "wait", ["-120", "unknown"]),
    ],
)
def test_decisions(
    policy: Policy,
    snapshot: LinkSnapshot,
    context: PolicyContext,
    action: str,
    in_reason: list[str],
) -> None:
    decision = evaluate(policy, snapshot, context)
    assert decision.action == action
    for text in in_reason:
        assert text in decision.reason
    if action == "wait":
        assert decision.retry_after_s is not None and decision.retry_after_s > 0
    if action in ("push", "give_up", "pull"):
        assert decision.retry_after_s is None


def test_hysteresis_sequence() -> None:
    policy = hysteresis(push_above_dbm=-90, stop_below_dbm=-105)
    rssi = [-100, -92, -90, -95, -104, -105, -106, -100, -91, -89, -120]
    expected = ["wait", "wait", "push", "push", "push", "push", "wait", "wait", "wait", "push"]
    expected.append("wait")
    previous: Decision | None = None
    got = []
    for i, r in enumerate(rssi):
        previous = evaluate(policy, snap(rssi=r, t=i), PolicyContext(previous=previous))
        got.append(previous.action)
    assert got == expected


def test_threshold_chatters_where_hysteresis_does_not() -> None:
    # A signal hovering around -97 dBm: a single threshold starts and stops at every crossing.
    rssi = [-95, -99, -96, -98, -95, -99, -96, -98]
    single = threshold(min_rssi_dbm=-97)
    band = hysteresis(push_above_dbm=-95, stop_below_dbm=-100)
    a = [evaluate(single, snap(rssi=r)).action for r in rssi]
    b: list[str] = []
    previous: Decision | None = None
    for r in rssi:
        previous = evaluate(band, snap(rssi=r), PolicyContext(previous=previous))
        b.append(previous.action)
    assert sum(x != y for x, y in itertools.pairwise(a)) == 7
    assert b == ["push"] * len(rssi)


def test_hysteresis_rejects_crossed_thresholds() -> None:
    with pytest.raises(ValueError, match="must not exceed"):
        hysteresis(push_above_dbm=-110, stop_below_dbm=-100)


@pytest.mark.parametrize("fallback", ["push", "pull", "give_up"])
def test_best_window_falls_back_after_max_wait(fallback: Any) -> None:
    policy = best_window(min_rssi_dbm=-90, max_wait_s=3600, fallback=fallback, retry_after_s=60)
    weak = snap(rssi=-100)
    waits = [evaluate(policy, weak, PolicyContext(waited_s=w)) for w in (0, 1800, 3590)]
    assert [d.action for d in waits] == ["wait", "wait", "wait"]
    assert [d.retry_after_s for d in waits] == [60, 60, 10]  # never beyond the deadline
    late = evaluate(policy, weak, PolicyContext(waited_s=3600))
    assert late.action == fallback
    assert "waited 3600 s of max 3600 s" in late.reason
    # A good window at any time pushes, even after the deadline.
    assert evaluate(policy, snap(rssi=-80), PolicyContext(waited_s=5000)).action == "push"
    # No sample at all: wait, then fall back, saying why.
    blind = evaluate(policy, snap(rssi=None), PolicyContext(waited_s=4000))
    assert blind.action == fallback and "no link sample" in blind.reason


def test_battery_floor_wraps_any_policy() -> None:
    inner = best_window(min_rssi_dbm=-100)
    policy = battery_floor(inner, min_battery=30)
    assert policy.name == "battery-floor(best-window)"
    assert policy.thresholds == {"min_rssi_dbm": -100, "max_wait_s": 3600, "min_battery": 30}
    assert evaluate(policy, snap(battery=29)).action == "give_up"
    assert evaluate(policy, snap(battery=30, rssi=-99)).action == "push"
    by_name = battery_floor("hysteresis")
    assert by_name.name == "battery-floor(hysteresis)"
    with pytest.raises(TypeError):
        battery_floor(42)  # type: ignore[arg-type]


# -- registry ----------------------------------------------------------------------------------


def test_registry_builds_every_policy_with_defaults() -> None:
    assert set(POLICIES) == {"always", "threshold", "hysteresis", "best-window", "battery-floor"}
    for name in POLICIES:
        policy = make_policy(name)
        assert policy_name(policy).startswith(name)
        thresholds = policy_thresholds(policy)
        assert all(isinstance(v, float) for v in thresholds.values())
        assert evaluate(policy, snap()).action in ACTIONS


def test_thresholds_expose_the_numbers_for_plots() -> None:
    assert make_policy("always").thresholds == {}  # type: ignore[attr-defined]
    assert make_policy("threshold", min_rssi_dbm=-100).thresholds == {"min_rssi_dbm": -100.0}  # type: ignore[attr-defined]
    assert make_policy("hysteresis").thresholds == {  # type: ignore[attr-defined]
        "push_above_dbm": -90.0,
        "stop_below_dbm": -105.0,
    }


def test_make_policy_rejects_unknown_names_and_parameters() -> None:
    with pytest.raises(ValueError, match="unknown policy 'yolo'"):
        make_policy("yolo")
    with pytest.raises(TypeError, match="min_rssi_dbm"):
        make_policy("threshold", min_rssi=-100)
    with pytest.raises(ValueError):
        make_policy("threshold", otherwise="give_up")
    with pytest.raises(ValueError):
        make_policy("best-window", fallback="wait")
    with pytest.raises(ValueError):
        make_policy("best-window", max_wait_s=-1)


# -- user policies and validation --------------------------------------------------------------


def test_a_user_function_is_a_policy() -> None:
    def night_owl(snapshot: LinkSnapshot, context: PolicyContext) -> Decision:
        if snapshot.t % 86_400 < 6 * 3600:
            return Decision("push", f"night, RSSI {snapshot.rssi_dbm} dBm")
        return Decision("wait", "daytime", retry_after_s=3600)

    assert evaluate(night_owl, snap(t=3600)).action == "push"
    assert evaluate(night_owl, snap(t=12 * 3600)).retry_after_s == 3600
    assert policy_name(night_owl) == "night_owl"
    assert policy_thresholds(night_owl) == {}
    lam = lambda s, c: Decision("pull", "always pull")  # noqa: E731
    assert evaluate(lam, snap()).action == "pull"
    wrapped = battery_floor(lam, min_battery=50)
    assert evaluate(wrapped, snap(battery=60)).action == "pull"
    assert evaluate(wrapped, snap(battery=40)).action == "give_up"


@pytest.mark.parametrize("bad", ["push", ("push", "why"), None, {"action": "push"}])
def test_a_bad_return_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"must return labkit\.policy\.Decision"):
        evaluate(lambda s, c: bad, snap())


def test_a_malformed_decision_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="action"):
        Decision("now", "why")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reason"):
        Decision("push", "  ")
    with pytest.raises(ValueError, match="retry_after_s"):
        Decision("wait", "why", -5)
    forged = Decision("push", "ok")
    object.__setattr__(forged, "action", "later")
    with pytest.raises(ValueError, match="bad decision"):
        evaluate(lambda s, c: forged, snap())


def test_context_validation() -> None:
    with pytest.raises(ValueError):
        PolicyContext(waited_s=-1)
    with pytest.raises(ValueError):
        PolicyContext(waited_s=float("nan"))
    with pytest.raises(ValueError):
        PolicyContext(attempts=-1)


# -- glue --------------------------------------------------------------------------------------


def test_decision_event_fields_make_an_event_row() -> None:
    snapshot = snap(rssi=-112, lq=-14, battery=55)
    decision = evaluate(threshold(), snapshot)
    fields = decision_event_fields(decision, snapshot)
    assert fields == {
        "decision": "wait",
        "reason": "RSSI -112 dBm below threshold -105 dBm; waiting",
        "rssi_dbm": -112,
        "link_quality": -14,
        "battery": 55,
    }
    event = Event(ts=1.0, source="policy", kind="decision", device="dev-1", **fields)
    assert event.decision == "wait" and event.rssi_dbm == -112


def test_snapshot_from_a_simulated_sample() -> None:
    sample = SignalTrace(PROFILES["nb-iot"], 1).sample(12.0)
    snapshot = LinkSnapshot.from_sample(sample, battery=70)
    assert snapshot == LinkSnapshot(sample.rssi_dbm, sample.link_quality, 70, 12.0, 7)


def test_decision_renders_in_a_notebook() -> None:
    html = Decision("wait", "RSSI <-110> dBm", 30)._repr_html_()
    assert "&lt;-110&gt;" in html and "wait" in html and "30 s" in html


# -- property: never raise, say when the link is unknown --------------------------------------

opt_int = st.one_of(st.none(), st.integers(min_value=-200, max_value=300))
snapshots = st.builds(
    LinkSnapshot,
    rssi_dbm=opt_int,
    link_quality=opt_int,
    battery=st.one_of(st.none(), st.integers(min_value=-5, max_value=120)),
    t=st.floats(min_value=0, max_value=1e9),
    bearer=st.one_of(st.none(), st.sampled_from([6, 7, 21, 99])),
)
decisions = st.builds(
    Decision,
    action=st.sampled_from(ACTIONS),
    reason=st.just("earlier"),
    retry_after_s=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
)
contexts = st.builds(
    PolicyContext,
    waited_s=st.floats(min_value=0, max_value=1e7),
    attempts=st.integers(min_value=0, max_value=100),
    previous=st.one_of(st.none(), decisions),
    image_size=st.integers(min_value=0, max_value=10**8),
)
ALL_POLICIES: list[Policy] = [
    *(make_policy(name) for name in POLICIES),
    threshold(min_rssi_dbm=-100, min_link_quality=-12, otherwise="pull"),
    best_window(fallback="give_up", max_wait_s=0),
    battery_floor(hysteresis(), below="wait"),
]


@given(snapshot=snapshots, context=contexts)
def test_policies_never_raise_and_explain_missing_samples(
    snapshot: LinkSnapshot, context: PolicyContext
) -> None:
    for policy in ALL_POLICIES:
        decision = evaluate(policy, snapshot, context)
        assert decision.action in ACTIONS
        assert decision.reason
        if decision.action == "wait":
            assert decision.retry_after_s is not None
        battery_low = snapshot.battery is not None and snapshot.battery < 20
        if snapshot.rssi_dbm is None and policy_name(policy) != "always" and not battery_low:
            assert "no link sample" in decision.reason, (policy, decision)
            assert decision.action != "push" or "falling back" in decision.reason
