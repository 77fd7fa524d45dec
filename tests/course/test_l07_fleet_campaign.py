"""labkit.course.l07_fleet_campaign:
the helpers and exercises of notebook 07_fleet_campaign;
pure ones first, then on a live lab.
"""

from __future__ import annotations

from typing import Any

import pytest

from labkit.course import l07_fleet_campaign as lesson
from labkit.course.exercises import check
from labkit.lwm2m.objects import UpdateResult


@pytest.fixture(scope="module", params=["virtual", "scaled"])
def course(request):  # type: ignore[no-untyped-def]
    """The lesson's lab on virtual time (the course's default) and on scaled time (50x)."""
    lab = lesson.course_lab(clock=request.param, time_scale=50.0)
    yield lab
    lab.close()


def test_bad_package_is_no_firmware() -> None:
    from labkit.client.bootloader import classify_package

    bad = lesson.bad_package(1000)
    assert len(bad) == 1000 and classify_package(bad) is None
    assert classify_package(lesson.package("2.0.0", 1000)) is not None


def test_fleet_canary_stops_a_bad_release_and_pause_holds_new_starts(course) -> None:  # type: ignore[no-untyped-def]
    fleet = lesson.fleet(course, 4, profile="wifi", faults="boot-fail:0.25", seed=1, clean=1)
    try:
        table = fleet.table()
        assert list(table["faults"]).count("boot-fail") == 1 and table.loc[0, "faults"] == ""
        broken = fleet.run(fleet.campaign(lesson.bad_package(4096), canary=1))
        assert broken.status == "stopped"
        assert list(broken.devices()["status"]) == ["failed", "skipped", "skipped", "skipped"]
        campaign = fleet.campaign(lesson.package("2.0.0", 4096), max_concurrent=1)
        moments = lesson.pause_and_resume(campaign, fleet.start(campaign), after=1, hold_s=0.5)
        assert list(moments["moment"])[::3] == ["paused", "finished"]
        assert moments.loc[0, "started"] == moments.loc[1, "started"]  # nothing new while paused
        assert moments.loc[3, "success"] == 3 and moments.loc[3, "failed"] == 1
        assert len(fleet.events(campaign)) > 0
    finally:
        fleet.close()


# -- exercises -----------------------------------------------------------------------------


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
