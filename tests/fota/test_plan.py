"""The pure decisions of labkit.fota.plan, table-driven (no I/O, no clock)."""

from __future__ import annotations

import pytest

from labkit.fota.outcome import Outcome
from labkit.fota.plan import (
    Capabilities,
    Verdict,
    capabilities,
    fw_object_version,
    interpret_cancel,
    interpret_download,
    interpret_update,
    package_version,
    plan_delivery,
    same_version,
    validate_request,
)
from labkit.lwm2m.objects import DeliveryMethod, ProtocolSupport, State, UpdateResult

COAP, HTTP = ProtocolSupport.COAP, ProtocolSupport.HTTP


# -- capabilities -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "delivery", "protocols", "listed", "unknown", "method"),
    [
        (None, 2, (COAP,), False, (), DeliveryMethod.BOTH),  # /5/0/8 absent: CoAP assumed
        ([], 1, (COAP,), False, (), DeliveryMethod.PUSH_ONLY),
        ([0, 1], 1, (COAP, ProtocolSupport.COAPS), True, (), DeliveryMethod.PUSH_ONLY),  # Wakaama
        ([0, 1, 2, 3, 4, 5], 2, tuple(ProtocolSupport), True, (), DeliveryMethod.BOTH),  # Anjay
        ([2, 9, "x"], 0, (HTTP,), True, (9,), DeliveryMethod.PULL_ONLY),  # unknown ignored
        (["0", "2"], "2", (COAP, HTTP), True, (), DeliveryMethod.BOTH),  # text values
        ([0, 0], None, (COAP,), True, (), None),  # duplicates; /5/0/9 unreadable
        ([0], 7, (COAP,), True, (), None),  # out-of-range delivery method
    ],
)
def test_capabilities(values, delivery, protocols, listed, unknown, method) -> None:
    caps = capabilities(values, delivery, "1.1")
    assert caps.protocols == protocols
    assert caps.protocols_listed is listed
    assert caps.unknown_protocols == unknown
    assert caps.delivery is method
    assert caps.can_cancel


@pytest.mark.parametrize(
    ("announced", "lwm2m", "expected", "can_cancel"),
    [
        ("1.1", "1.1", "1.1", True),
        ('"1.2"', "1.0", "1.2", True),  # quoted ver (Anjay in 1.0 mode)
        (None, "1.1", "1.0", False),  # 1.1 core default of /5 is obj 1.0 (pitfall 1)
        (None, "1.0", "1.0", False),
        ("1.0", "1.1", "1.0", False),
    ],
)
def test_object_version_and_cancel(announced, lwm2m, expected, can_cancel) -> None:
    version = fw_object_version(announced, lwm2m)
    assert version == expected
    assert capabilities([0], 2, version).can_cancel is can_cancel


# -- plan_delivery ---------------------------------------------------------------------------
BOTH = capabilities([0, 2], 2)
COAP_ONLY = capabilities([0], 2)
ABSENT = capabilities(None, 2)
PUSH_ONLY = capabilities([0, 1], 1)
PULL_ONLY = capabilities([0, 2], 0)
UNKNOWN_DELIVERY = capabilities(None, None)


@pytest.mark.parametrize(
    ("method", "protocol", "caps", "scheme", "refusal"),
    [
        ("push", "coap", BOTH, None, None),
        ("pull", "coap", BOTH, "coap", None),
        ("pull", "http", BOTH, "http", None),
        ("pull", "http", COAP_ONLY, None, "does not list http"),
        ("pull", "http", ABSENT, None, "/5/0/8 is absent"),
        ("pull", "coap", ABSENT, "coap", None),  # absent /5/0/8 = CoAP assumed
        ("push", "coap", PULL_ONLY, None, "pull only"),
        ("pull", "coap", PUSH_ONLY, None, "push only"),
        ("pull", "http", PULL_ONLY, "http", None),
        ("push", "coap", UNKNOWN_DELIVERY, None, None),  # cannot tell: try
        ("pull", "coap", capabilities([1], 2), None, "does not list coap"),  # coaps only
    ],
)
def test_plan_delivery(method, protocol, caps, scheme, refusal) -> None:
    plan = plan_delivery(method, protocol, caps)
    assert plan.scheme == scheme
    if refusal is None:
        assert plan.ok and plan.refused is None
    else:
        assert not plan.ok
        assert refusal in (plan.refused or "")


@pytest.mark.parametrize(
    ("method", "protocol", "block_size", "message"),
    [
        ("fetch", "coap", 1024, "method"),
        ("pull", "ftp", 1024, "protocol"),
        ("push", "http", 1024, "PUSH goes over"),
        ("push", "coap", 1000, "block_size"),
        ("push", "coap", 2048, "block_size"),
    ],
)
def test_impossible_requests_are_usage_errors(method, protocol, block_size, message) -> None:
    with pytest.raises(ValueError, match=message):
        validate_request(method, protocol, block_size)
    if block_size == 1024:
        with pytest.raises(ValueError, match=message):
            plan_delivery(method, protocol, Capabilities())


# -- interpret_download ----------------------------------------------------------------------
F, N, W = Verdict.FINAL, Verdict.NEXT, Verdict.WAIT


@pytest.mark.parametrize(
    ("state", "result", "fresh", "seen1", "baseline", "verdict", "code"),
    [
        (2, 0, True, True, 0, N, None),  # downloaded
        (2, 0, False, False, 1, N, None),  # Anjay push: 0 -> 2 without 1
        (3, 0, True, True, 0, N, None),  # automatic upgrade (res 14)
        (1, 0, True, True, 0, W, None),  # downloading
        (0, 0, False, False, 0, W, None),  # not started yet
        (0, 0, True, False, 0, W, None),  # Anjay: IDLE during the whole push
        (0, 0, True, True, 0, F, UpdateResult.INITIAL),  # back to IDLE, nothing said: reset
        (0, 7, True, True, 0, F, UpdateResult.INVALID_URI),
        (0, 4, True, True, 0, F, UpdateResult.CONNECTION_LOST),
        (0, 9, False, False, 0, F, UpdateResult.UNSUPPORTED_PROTOCOL),  # T2: news vs baseline
        (0, 8, False, False, 8, W, None),  # stale result of an earlier attempt
        (0, 1, False, False, 1, W, None),  # stale SUCCESS
        (0, 1, True, True, 0, F, UpdateResult.INITIAL),  # SUCCESS is no download failure
        (1, 2, True, True, 0, F, UpdateResult.NOT_ENOUGH_FLASH),  # Result before State
        (0, 10, True, True, 0, F, UpdateResult.CANCELLED),
        (None, None, False, False, None, W, None),
        (7, 42, True, True, 0, W, None),  # values outside the enums: keep waiting
    ],
)
def test_interpret_download(state, result, fresh, seen1, baseline, verdict, code) -> None:
    step = interpret_download(
        state, result, fresh=fresh, seen_downloading=seen1, baseline_result=baseline
    )
    assert step.verdict is verdict, step
    if verdict is F:
        assert step.result is code
        assert not step.success
    assert step.reason


# -- interpret_update ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "result", "rebooted", "before", "after", "expected", "verdict", "success", "words"),
    [
        (3, 0, False, "1.0", None, None, W, False, "updating"),
        (2, 0, False, "1.0", None, None, W, False, "DOWNLOADED"),
        (2, 11, False, "1.0", None, None, W, False, "deferred"),
        (0, 0, False, "1.0", None, None, W, False, "reboot"),
        (0, 1, True, "1.0", "2.0", "2.0", F, True, "1.0 -> 2.0"),
        (0, 1, False, "1.0", "2.0", None, F, True, "SUCCESS"),  # no reboot needed
        (0, 1, True, "1.0", "1.0", None, F, True, "suspicious"),  # version unchanged
        (0, 1, True, "1.0", "3.0", "2.0", F, True, "suspicious"),  # not the package's version
        (2, 8, True, "1.0", "1.0", None, F, False, "back to DOWNLOADED"),  # obj 1.0 / Anjay
        (0, 8, False, "1.0", None, None, F, False, "back to IDLE"),  # Zephyr
        (0, 5, True, "1.0", "1.0", None, F, False, "INTEGRITY"),
        # no persistence (Zephyr, Wakaama): 0/0 after the reboot, judge /3/0/3
        (0, 0, True, "1.0", "2.0", "2.0", F, True, "package's version"),
        (0, 0, True, "1.0", "2.0", None, F, True, "changed"),
        (0, 0, True, "1.0", "1.0", "2.0", F, False, "still 1.0"),
        (0, 0, True, "1.0", "1.5", "2.0", F, False, "announced 2.0"),
        (0, 0, True, "1.0", None, "2.0", F, False, "could not be read"),
        (3, 0, True, "1.0", "1.0", None, W, False, "updating"),  # still installing after boot
    ],
)
def test_interpret_update(
    state, result, rebooted, before, after, expected, verdict, success, words
) -> None:
    step = interpret_update(
        state,
        result,
        rebooted=rebooted,
        fw_before=before,
        fw_after=after,
        expected_version=expected,
    )
    assert step.verdict is verdict, step
    assert step.success is success
    assert words in step.reason


@pytest.mark.parametrize(
    ("state", "result", "by_reset", "verdict", "code"),
    [
        (0, 10, False, F, UpdateResult.CANCELLED),
        (1, 0, False, W, None),
        (0, 0, False, W, None),  # Cancel expects Result 10
        (0, 0, True, F, UpdateResult.INITIAL),  # a reset ends in 0/0
        (0, 4, False, F, UpdateResult.CONNECTION_LOST),  # the download failed first
        (2, 0, False, W, None),
    ],
)
def test_interpret_cancel(state, result, by_reset, verdict, code) -> None:
    step = interpret_cancel(state, result, by_reset=by_reset)
    assert step.verdict is verdict
    assert step.result is code


# -- packages and versions -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "version"),
    [
        (b"LABKIT-FW 2.0.0\nrest", "2.0.0"),
        (b"LABKIT-FW  1.2.3-rc1 \n", "1.2.3-rc1"),
        (b"LABKIT-FW 2.0.0", None),  # no end of line
        (b"LABKIT-FW \n", None),
        (b"\x00\x01\x02", None),
        (b"", None),
    ],
)
def test_package_version(data, version) -> None:
    assert package_version(data) == version


def test_package_version_of_an_mcuboot_image() -> None:
    images = pytest.importorskip("labkit.repo.images")
    image = images.build_image(version="1.2.3+4", size=256)
    assert package_version(image) == "1.2.3+4" == images.inspect_image(image).version
    image = images.build_image(version="3.0.1", size=256)
    assert package_version(image) == "3.0.1"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("1.2.3", "1.2.3", True),
        ("1.2.3", "1.2.3+0", True),
        (" 1.0 ", "1.0", True),
        ("1.1.1", "1.1.10", False),
        ("1.0", None, False),
    ],
)
def test_same_version(a, b, same) -> None:
    assert same_version(a, b) is same


# -- Outcome ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "line", "exit_code"),
    [
        ({"result": UpdateResult.SUCCESS, "success": True}, "RESULT 1 SUCCESS", 0),
        ({"result": UpdateResult.INITIAL, "success": True}, "RESULT 1 SUCCESS", 0),  # by version
        ({"result": UpdateResult.UPDATE_FAILED}, "RESULT 8 UPDATE_FAILED", 1),
        ({"result": UpdateResult.CANCELLED, "cancelled": True}, "RESULT 10 CANCELLED", 1),
        ({"refused": True}, "RESULT - REFUSED", 1),
        (
            {"stuck_in": State.DOWNLOADING, "timed_out": True, "result": UpdateResult.INITIAL},
            "RESULT - STUCK",
            3,
        ),
        ({"timed_out": True}, "RESULT - TIMEOUT", 3),
        ({}, "RESULT - UNKNOWN", 1),
    ],
)
def test_outcome_result_line_and_exit_code(kwargs, line, exit_code) -> None:
    outcome = Outcome(endpoint="ep", method="push", protocol="coap", reason="why", **kwargs)
    assert outcome.result_line == line
    assert outcome.exit_code == exit_code
    row = outcome.as_row()
    assert row["endpoint"] == "ep" and row["exit_code"] == exit_code
    assert all(not isinstance(v, State | UpdateResult) for v in row.values())
    html = outcome._repr_html_()
    assert "<table>" in html and "why" in html
    if outcome.stuck_in is not None:
        assert "stuck in state DOWNLOADING" in outcome.summary
