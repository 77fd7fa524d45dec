"""The fault panel schedules injections and link changes on the lab loop and confirms them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from labkit.client import SimulatedDevice
from labkit.course import package
from labkit.fota import update
from labkit.runtime import Lab
from labkit.sim.faults import FAULTS
from labkit.ui import FaultPanel, UpdatePanel
from tests.ui.conftest import wait_until

HAS_INJECT = hasattr(SimulatedDevice, "inject_fault")


def test_the_panel_lists_devices_and_every_fault(lab: Lab, closing: Any) -> None:
    panel = closing(FaultPanel(lab))
    assert panel.devices.options == ("sim-0001", "sim-0002", "sim-0003")
    assert [value for _label, value in panel.fault.options] == list(FAULTS)
    labels = dict((v, k) for k, v in panel.fault.options)
    assert labels["link-drop"] == "link-drop (Result 4)"
    panel.devices.value = ("sim-0002",)
    lab.add_device("late-1")
    panel.reload_devices()
    assert "late-1" in panel.devices.options and panel.devices.value == ("sim-0002",)


def test_inject_calls_the_device_on_the_loop_thread(
    lab: Lab, closing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str, str]] = []

    async def fake(self: SimulatedDevice, name: str) -> None:  # the device API, a stand-in
        calls.append((self.endpoint, name, threading.current_thread().name))

    monkeypatch.setattr(SimulatedDevice, "inject_fault", fake, raising=False)
    panel = closing(FaultPanel(lab))
    panel.devices.value = ("sim-0001", "sim-0002")
    panel.fault.value = "boot-fail"
    t0 = time.monotonic()
    panel.inject_button.click()
    assert time.monotonic() - t0 < 0.2
    for future in panel.futures:
        future.result(timeout=5)
    assert sorted(c[:2] for c in calls) == [("sim-0001", "boot-fail"), ("sim-0002", "boot-fail")]
    assert {c[2] for c in calls} == {"labkit-lab-loop"}
    messages = wait_until(lambda: len(panel.messages) == 2 and panel.messages, timeout=2)
    assert any("boot-fail injected into sim-0001" in m for m in messages)
    assert "boot-fail injected into sim-0002" in panel.status.value


def test_a_device_without_injection_says_how_instead(
    lab: Lab, closing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if HAS_INJECT:
        monkeypatch.delattr(SimulatedDevice, "inject_fault")
    panel = closing(FaultPanel(lab))
    futures = panel.inject("no-ram", devices=["sim-0003"])
    with pytest.raises(NotImplementedError, match="faults=\\['no-ram'\\]"):
        futures[0].result(timeout=5)
    messages = wait_until(lambda: panel.messages, timeout=2)
    assert "no-ram into sim-0003 failed" in messages[-1]


def test_bad_input_is_refused(lab: Lab, closing: Any) -> None:
    panel = closing(FaultPanel(lab))
    with pytest.raises(ValueError, match="unknown fault"):
        panel.inject("gremlins", devices=["sim-0001"])
    panel.inject_button.click()  # nothing chosen
    assert panel.futures == []
    assert "choose one or more devices" in panel.messages[-1]
    futures = panel.inject("defer", devices=["nobody"])
    with pytest.raises(LookupError):
        futures[0].result(timeout=5)


def test_set_link_changes_the_devices_link(lab: Lab, closing: Any) -> None:
    panel = closing(FaultPanel(lab))
    panel.devices.value = ("sim-0001", "sim-0003")
    panel.rssi.value = -121
    panel.link_quality.value = -18
    panel.link_button.click()
    for future in panel.futures:
        future.result(timeout=5)
    for ep in ("sim-0001", "sim-0003"):
        assert lab.device(ep).value("/4/0/2") == -121
        assert lab.device(ep).value("/4/0/3") == -18
    assert lab.device("sim-0002").value("/4/0/2") != -121
    events = lab.events()
    links = events[(events["kind"] == "link") & (events["rssi_dbm"] == -121)]
    assert set(links["device"]) == {"sim-0001", "sim-0003"}
    wait_until(lambda: any("RSSI -121 dBm" in m for m in panel.messages), timeout=2)


def test_an_injected_fault_strikes_the_next_update(lab: Lab, closing: Any) -> None:
    panel = closing(FaultPanel(lab))
    panel.devices.value = ("sim-0002",)
    panel.fault.value = "no-flash"
    panel.inject_button.click()
    panel.futures[-1].result(timeout=5)
    outcome = lab.call(update(lab.server, "sim-0002", package("2.0.0", 4096)), timeout=60)
    assert not outcome.success
    assert lab.device("sim-0002").result == 2  # NOT_ENOUGH_FLASH
    assert lab.device("sim-0001").result == 0


def test_a_closed_lab_is_reported_not_raised(closing: Any) -> None:
    with Lab() as lab:
        lab.add_devices(1)
        panel = closing(FaultPanel(lab))
        update_panel = closing(UpdatePanel(lab))
    panel.devices.value = ("sim-0001",)
    panel.inject_button.click()
    panel.link_button.click()
    assert panel.futures == []
    assert all("failed" in m and "not running" in m for m in panel.messages)
    update_panel.start_button.click()
    assert update_panel.campaign is None and "cannot start" in update_panel.status_text
