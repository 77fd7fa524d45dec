"""Pure parts of campaigns: target selection, waves, result classification."""

from __future__ import annotations

import pytest

from labkit.fota.campaign import classify, plan_waves, select_targets
from labkit.fota.outcome import Outcome
from labkit.lwm2m.objects import State, UpdateResult

FLEET = {"a": {"nb-iot"}, "b": {"wifi"}, "c": {"nb-iot", "fault:boot-fail"}, "d": set()}


def test_select_targets() -> None:
    assert select_targets(FLEET) == ["a", "b", "c", "d"]
    assert select_targets(FLEET, "tag:nb-iot") == ["a", "c"]
    assert select_targets(FLEET, "wifi") == ["b"]
    assert select_targets(FLEET, lambda ep, tags: ep > "b") == ["c", "d"]
    assert select_targets(["x", "y"], "all") == ["x", "y"]


def test_plan_waves_canary_then_cumulative_percentages() -> None:
    eps = [f"d{i:03d}" for i in range(100)]
    waves = plan_waves(eps, canary=2, percents=(10, 50, 100))
    assert [len(w) for w in waves] == [2, 8, 40, 50]
    assert [ep for wave in waves for ep in wave] == eps  # every device once, in order
    assert [len(w) for w in plan_waves(eps[:5], 0, (50,))] == [3, 2]  # the rest goes last
    assert plan_waves([], 3, (100,)) == []
    assert [len(w) for w in plan_waves(eps[:3], 5, (100,))] == [3]


@pytest.mark.parametrize("bad", [(0,), (50, 20), (120,)])
def test_plan_waves_refuses_bad_percentages(bad: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        plan_waves(["a"], 0, bad)


def outcome(**kw: object) -> Outcome:
    return Outcome(endpoint="d", method="push", protocol="coap", **kw)  # type: ignore[arg-type]


def test_classify() -> None:
    assert classify(outcome(success=True, result=UpdateResult.SUCCESS)) == (1, False)
    assert classify(outcome(result=UpdateResult.UPDATE_FAILED)) == (8, False)
    assert classify(outcome(result=UpdateResult.CONNECTION_LOST)) == (4, False)
    # the push stalled in DOWNLOADING: the link died, the device never reported
    stalled = outcome(result=UpdateResult.INITIAL, final_state=State.DOWNLOADING,
                      stuck_in=State.DOWNLOADING)
    assert classify(stalled, "download") == (4, True)
    unreachable = outcome(timed_out=True)
    assert classify(unreachable, "check") == (None, False)
    assert classify(outcome(timed_out=True), "download") == (4, True)
    # stuck after Execute is not a connection loss
    assert classify(outcome(stuck_in=State.UPDATING, final_state=State.UPDATING), "update") == (
        None, False)
