"""The update panel: sliders build the policy; buttons drive a campaign on a running lab."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from labkit.course import package
from labkit.policy import POLICIES
from labkit.runtime import Lab
from labkit.ui import FleetDashboard, UpdatePanel, policy_parameters
from labkit.ui.update_panel import BLOCK_SIZES
from tests.ui.conftest import SLOW_BLOCK, SLOW_SIZE, wait_until


def decisions(lab: Lab) -> int:
    events = lab.events()
    return int((events["kind"] == "decision").sum())


def statuses(panel: UpdatePanel) -> dict[str, str]:
    assert panel.campaign is not None
    return {ep: run.status for ep, run in list(panel.campaign.runs.items())}


def slow_panel(lab: Lab, closing: Any, **kwargs: Any) -> UpdatePanel:
    panel = closing(UpdatePanel(lab, **kwargs))
    panel.size.value = SLOW_SIZE
    panel.block_size.value = SLOW_BLOCK
    panel.max_concurrent.value = 1
    return panel


def test_policy_parameters_come_from_the_factories() -> None:
    names = {p["name"]: p for p in policy_parameters("threshold")}
    assert names["min_rssi_dbm"]["kind"] == "number"
    assert names["min_rssi_dbm"]["range"][:2] == (-140.0, -40.0)
    assert names["min_link_quality"]["optional"] and names["min_link_quality"]["default"] is None
    assert names["otherwise"] == {
        "name": "otherwise",
        "default": "wait",
        "optional": False,
        "kind": "choice",
        "choices": ("wait", "pull"),
    }
    assert policy_parameters("always") == []
    inner = {p["name"]: p for p in policy_parameters("battery-floor")}["inner"]
    assert inner["kind"] == "policy" and "battery-floor" not in inner["choices"]
    for name in POLICIES:  # every policy's defaults build a policy
        for p in policy_parameters(name):
            if p["kind"] == "number" and p["default"] is not None:
                lo, hi, _ = p["range"]
                assert lo <= p["default"] <= hi


def test_sliders_change_the_policy(lab: Lab, closing: Any) -> None:
    panel = closing(UpdatePanel(lab))
    assert panel.policy.name == "always" and panel.policy.thresholds == {}
    panel.policy_name.value = "threshold"
    assert panel.policy.thresholds == {"min_rssi_dbm": -105.0}
    panel.slider("min_rssi_dbm").value = -97
    assert panel.policy.thresholds == {"min_rssi_dbm": -97.0}
    # an optional threshold: off until its box is ticked
    control, toggle = panel.slider("min_link_quality"), panel.switch("min_link_quality")
    assert control.disabled and toggle is not None
    toggle.value = True
    assert not control.disabled
    control.value = -12
    assert panel.policy.thresholds == {"min_rssi_dbm": -97.0, "min_link_quality": -12.0}
    panel.slider("otherwise").value = "pull"
    assert panel.policy.otherwise == "pull"
    assert "min_link_quality = -12" in panel.policy_info.value
    # another policy, other sliders
    panel.policy_name.value = "hysteresis"
    assert [p["name"] for p in policy_parameters("hysteresis")] == [
        "push_above_dbm",
        "stop_below_dbm",
        "retry_after_s",
    ]
    assert panel.switch("push_above_dbm") is None
    panel.slider("push_above_dbm").value = -80
    panel.slider("stop_below_dbm").value = -110
    assert panel.policy.thresholds == {"push_above_dbm": -80.0, "stop_below_dbm": -110.0}
    panel.policy_name.value = "battery-floor"
    panel.slider("min_battery").value = 35
    panel.slider("inner").value = "best-window"
    assert panel.policy.thresholds == {
        "min_rssi_dbm": -90.0,
        "max_wait_s": 3600.0,
        "min_battery": 35.0,
    }


def test_an_invalid_policy_is_reported_and_not_started(lab: Lab, closing: Any) -> None:
    panel = closing(UpdatePanel(lab))
    panel.policy_name.value = "hysteresis"
    panel.slider("stop_below_dbm").value = -60
    panel.slider("push_above_dbm").value = -100
    assert "not a valid policy" in panel.policy_info.value
    with pytest.raises(ValueError, match="must not exceed"):
        _ = panel.policy
    panel.start_button.click()
    assert panel.campaign is None and panel.future is None
    assert "cannot start" in panel.status_text and panel.error


def test_form_to_campaign_arguments(lab: Lab, closing: Any) -> None:
    panel = closing(UpdatePanel(lab, devices=["sim-0002", lab.device("sim-0003")], timeout_s=30))
    assert panel.targets.value == ("sim-0002", "sim-0003")
    assert list(panel.block_size.options) == list(BLOCK_SIZES)
    assert panel.protocol.disabled  # PUSH goes over CoAP only
    panel.method.value = "pull"
    assert not panel.protocol.disabled
    panel.protocol.value = "http"
    panel.block_size.value = 256
    panel.use_threshold.value = True
    panel.failure_threshold.value = 0.25
    kwargs = panel.campaign_kwargs()
    assert kwargs["fleet"] == ["sim-0002", "sim-0003"]
    assert (kwargs["method"], kwargs["protocol"], kwargs["block_size"]) == ("pull", "http", 256)
    assert kwargs["failure_threshold"] == 0.25 and kwargs["timeout_s"] == 30
    assert kwargs["repository"] is lab.repository
    assert panel.package() == package("2.0.0", 64 * 1024)
    panel.reload_devices()
    assert panel.targets.value == ("sim-0002", "sim-0003")
    assert set(panel.targets.options) == {"sim-0001", "sim-0002", "sim-0003"}


def test_an_uploaded_file_is_the_package(lab: Lab, closing: Any) -> None:
    panel = closing(UpdatePanel(lab))
    data = package("3.1.4", 2048)
    panel.upload.value = (
        {
            "name": "fw.bin",
            "type": "application/octet-stream",
            "size": len(data),
            "content": memoryview(data),
            "last_modified": datetime.now(UTC),
        },
    )
    assert panel.package() == data
    assert panel.version.disabled and "fw.bin (2048 B)" in panel.package_info.value
    panel.start_button.click()
    assert panel.future is not None
    panel.future.result(timeout=60)
    assert lab.device("sim-0001").firmware_version == "3.1.4"


def test_start_pause_resume_cancel_on_a_running_lab(lab: Lab, closing: Any) -> None:
    dash = closing(FleetDashboard(lab))
    panel = slow_panel(lab, closing, dashboard=dash)
    assert panel.pause_button.disabled and not panel.start_button.disabled

    t0 = time.monotonic()
    panel.start_button.click()
    assert time.monotonic() - t0 < 0.2  # scheduled, not run
    assert panel.campaign is not None and panel.running
    assert panel.start_button.disabled and not panel.pause_button.disabled

    # started: the first device leaves IDLE, on the lab and on the dashboard
    wait_until(lambda: lab.device("sim-0001").state != 0, timeout=10)
    wait_until(lambda: "DOWNLOADING" in set(dash.frame()["state"].astype(str)), timeout=2)
    assert dash.frame().set_index("endpoint").loc["sim-0001", "campaign"] == "updating"

    # a second click on start is refused while it runs
    first = panel.campaign
    panel.start_button.click()
    assert panel.campaign is first and "already running" in panel.status_text

    t0 = time.monotonic()
    panel.pause_button.click()
    assert time.monotonic() - t0 < 0.2
    wait_until(lambda: panel.campaign.paused, timeout=2)
    assert panel.resume_button.disabled is False and panel.pause_button.disabled
    # the update in flight finishes; no new device starts while paused
    wait_until(lambda: statuses(panel)["sim-0001"] == "success", timeout=30)
    count = decisions(lab)
    time.sleep(0.5)  # a window in which nothing may start
    assert decisions(lab) == count
    assert statuses(panel)["sim-0002"] == "waiting" and lab.device("sim-0002").state == 0
    panel.refresh()
    assert "paused" in panel.status_text and "1/3 finished" in panel.status_text

    panel.resume_button.click()
    wait_until(lambda: statuses(panel)["sim-0002"] == "updating", timeout=10)
    wait_until(lambda: lab.device("sim-0002").state != 0, timeout=10)

    t0 = time.monotonic()
    panel.cancel_button.click()
    assert time.monotonic() - t0 < 0.2
    panel.future.result(timeout=60)
    campaign = panel.campaign
    assert campaign.status == "cancelled"
    final = statuses(panel)
    assert final["sim-0001"] == "success"
    assert final["sim-0003"] in ("cancelled", "skipped")
    assert lab.device("sim-0003").firmware_version == "1.0.0"
    panel.refresh()
    assert (
        "campaign cancelled" in panel.status_text and "cancelled by the user" in panel.status_text
    )
    assert not panel.start_button.disabled and panel.cancel_button.disabled
    assert panel.progress.value == panel.progress.max == 3
    wait_until(
        lambda: (
            dash.frame().set_index("endpoint").loc["sim-0003", "campaign"]
            in ("cancelled", "skipped")
        ),
        timeout=2,
    )
    # the lab kept running all along and can start another campaign
    assert panel.start() is not None
    panel.future.result(timeout=60)


def test_buttons_without_a_campaign_only_say_so(lab: Lab, closing: Any) -> None:
    panel = closing(UpdatePanel(lab))
    for button in (panel.pause_button, panel.resume_button, panel.cancel_button):
        button.click()
        assert "no campaign is running" in panel.status_text


def test_policy_from_the_sliders_reaches_the_devices(lab: Lab, closing: Any) -> None:
    panel = closing(UpdatePanel(lab, devices=["sim-0001", "sim-0002"]))
    panel.size.value = 2048
    lab.device("sim-0001").set_value("/4/0/2", -80)
    lab.device("sim-0002").set_value("/4/0/2", -120)
    panel.policy_name.value = "threshold"
    panel.slider("min_rssi_dbm").value = -100
    panel.slider("otherwise").value = "pull"  # a weak device is sent a URI instead
    panel.start_button.click()
    campaign = panel.future.result(timeout=60)
    rows = campaign.devices().set_index("device")
    assert rows.loc["sim-0001", "method"] == "push"
    assert rows.loc["sim-0002", "method"] == "pull"
    assert set(rows["status"]) == {"success"}
    events = lab.events()
    reasons = events.loc[events["kind"] == "decision", "reason"].tolist()
    assert any("-100 dBm" in r for r in reasons)
    panel.refresh()
    assert "campaign finished: 2/2 finished (success 2)" in panel.status_text
