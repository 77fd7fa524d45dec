"""Faults injected into a running simulated device (``inject_fault`` / ``clear_fault``) act as
if the device had been built with them, from the next download or update on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from labkit.course import package
from labkit.lwm2m.objects import ProtocolSupport
from labkit.runtime import Lab
from labkit.sim.faults import FAULTS


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(request_timeout=5.0) as lab:
        lab.add_devices(2)
        yield lab


def _inject(lab: Lab, endpoint: str, name: str) -> None:
    lab.call(lambda: lab.device(endpoint).simulated.inject_fault(name), timeout=5)


def _clear(lab: Lab, endpoint: str, name: str) -> None:
    lab.call(lambda: lab.device(endpoint).simulated.clear_fault(name), timeout=5)


def _fault_details(lab: Lab, endpoint: str) -> list[str]:
    events = lab.events()
    rows = events[(events["kind"] == "fault") & (events["device"] == endpoint)]
    return [str(d) for d in rows["detail"]]


def _protocols(lab: Lab, endpoint: str) -> list[int]:
    response: Any = lab.device(endpoint).read("/5/0/8", raw=True)
    response.raise_for_status()
    return sorted(int(v) for v in response.values.values())


def test_an_injected_no_flash_ends_the_next_update_with_result_2(lab: Lab) -> None:
    _inject(lab, "sim-0001", "no-flash")
    assert "no-flash" in lab.device("sim-0001").simulated.faults
    outcome = lab.update("sim-0001", package("2.0.0", 4096), timeout=20)
    assert not outcome.success
    assert lab.device("sim-0001").result == 2  # NOT_ENOUGH_FLASH
    assert lab.device("sim-0001").firmware_version == "1.0.0"
    assert _fault_details(lab, "sim-0001") == ["injected no-flash", "no-flash"]
    assert lab.device("sim-0002").simulated.faults.faults == frozenset()
    # Cleared, the next update succeeds.
    _clear(lab, "sim-0001", "no-flash")
    outcome = lab.update("sim-0001", package("2.0.0", 4096), timeout=20)
    assert outcome.success and lab.device("sim-0001").firmware_version == "2.0.0"


def test_an_injected_no_http_leaves_only_coap_in_5_0_8(lab: Lab) -> None:
    full = [int(ProtocolSupport.COAP), int(ProtocolSupport.HTTP)]
    assert _protocols(lab, "sim-0001") == full
    observation = lab.device("sim-0001").observe("/5/0/8")
    _inject(lab, "sim-0001", "no-http")
    assert _protocols(lab, "sim-0001") == [int(ProtocolSupport.COAP)]
    lab.wait_for(lambda: observation.count >= 1, timeout=5)  # the change was notified
    assert sorted(int(v) for v in observation.latest.values.values()) == [0]
    assert _protocols(lab, "sim-0002") == full
    # A server following /5/0/8 now refuses an http PULL before sending anything.
    outcome = lab.update(
        "sim-0001", package("2.0.0", 4096), method="pull", protocol="http", timeout=20
    )
    assert outcome.refused and lab.device("sim-0001").firmware_version == "1.0.0"
    _clear(lab, "sim-0001", "no-http")
    assert _protocols(lab, "sim-0001") == full
    observation.cancel()


def test_an_injected_no_http_makes_an_http_uri_result_9(lab: Lab) -> None:
    uris = lab.publish("app.bin", package("2.0.0", 4096))
    _inject(lab, "sim-0002", "no-http")
    lab.device("sim-0002").write("/5/0/1", uris["http"])
    lab.wait_for(lambda: lab.device("sim-0002").result == 9, timeout=5)
    assert lab.device("sim-0002").state == 0
    assert _fault_details(lab, "sim-0002") == ["injected no-http", "no-http"]


def test_an_injected_defer_sets_the_defer_period_and_postpones(lab: Lab) -> None:
    device = lab.device("sim-0001")
    assert device.read("/5/0/13") == 0
    _inject(lab, "sim-0001", "defer")
    assert device.simulated.user_defers
    assert device.read("/5/0/13") == device.simulated.fault_timing.default_max_defer_period
    _clear(lab, "sim-0001", "defer")
    assert not device.simulated.user_defers


@pytest.mark.parametrize("name", ["boot-fail", "corrupt-in-flash"])
def test_install_faults_strike_the_next_update(lab: Lab, name: str) -> None:
    _inject(lab, "sim-0002", name)
    outcome = lab.update("sim-0002", package("2.0.0", 4096), timeout=20)
    expected = {"boot-fail": 8, "corrupt-in-flash": 5}[name]
    assert outcome.result == expected
    assert lab.device("sim-0002").firmware_version == "1.0.0"  # the old image still runs
    assert name in _fault_details(lab, "sim-0002")


def test_unknown_names_are_refused_and_change_nothing(lab: Lab) -> None:
    device = lab.device("sim-0001").simulated
    for bad in ("gremlins", "", "No-Flash"):
        with pytest.raises(ValueError, match="known faults: " + ", ".join(FAULTS)):
            lab.call(lambda bad=bad: device.inject_fault(bad), timeout=5)
        with pytest.raises(ValueError, match="unknown fault"):
            lab.call(lambda bad=bad: device.clear_fault(bad), timeout=5)
    assert device.faults.faults == frozenset()
    assert _fault_details(lab, "sim-0001") == []


def test_injecting_twice_and_clearing_an_absent_fault_are_harmless(lab: Lab) -> None:
    _inject(lab, "sim-0001", "link-drop")
    _inject(lab, "sim-0001", "link-drop")
    _clear(lab, "sim-0001", "no-ram")  # never injected: nothing happens
    device = lab.device("sim-0001").simulated
    assert device.faults.faults == frozenset({"link-drop"})
    _clear(lab, "sim-0001", "link-drop")
    assert device.faults.faults == frozenset()
    events = lab.events()
    notes = events[(events["kind"] == "note") & (events["device"] == "sim-0001")]
    assert list(notes["detail"]) == ["fault link-drop cleared"]
