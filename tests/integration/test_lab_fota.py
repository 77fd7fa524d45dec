"""A whole PUSH update through the lab: server and simulated device over real CoAP/UDP.

Block1 ``PUT /5/0/0`` of a 1 MiB package (State 0 -> 1 -> 2, seen as ``fw_state`` events),
then Execute ``/5/0/2``: the device answers 2.04, reboots into the new image and registers again
from a new UDP port, reporting the new ``/3/0/3`` and Update Result 1 (digest 1.8, pitfall 8).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from labkit.runtime import Lab

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(request_timeout=10.0) as lab:
        yield lab


def lab_package(version: str, size: int, seed: int = 1) -> bytes:
    """A package in the simulated device's lab format: ``LABKIT-FW <version>`` first line."""
    header = f"LABKIT-FW {version}\n".encode()
    body = random.Random(seed).randbytes(size - len(header))
    return header + body


def fw_states(lab: Lab, endpoint: str, source: str = "device") -> list[str]:
    events = lab.events()
    rows = events[
        (events["kind"] == "fw_state")
        & (events["device"] == endpoint)
        & (events["source"] == source)
    ]
    return [str(s) for s in rows["state"]]


def test_push_one_mib_then_update_reboots_into_the_new_version(lab: Lab) -> None:
    device = lab.add_device("fota-1", firmware_version="1.0.0", lifetime=60)
    assert device.state == 0
    package = lab_package("2.0.0", MIB)
    acked: list[int] = []

    response = device.write(
        "/5/0/0",
        package,
        content_format=42,
        block_size=1024,
        progress=lambda done, total: acked.append(done),
    )
    assert response.code == "2.04"
    assert acked[-1] == MIB
    assert len(acked) == MIB // 1024
    assert device.state == 2  # DOWNLOADED
    assert device.read("/5/0/3") == 2

    states = fw_states(lab, "fota-1")
    assert "DOWNLOADING" in states and "DOWNLOADED" in states
    assert states.index("DOWNLOADING") < states.index("DOWNLOADED")

    events = lab.events()
    blocks = events[(events["kind"] == "block") & (events["device"] == "fota-1")]
    assert len(blocks) >= MIB // 1024 - 1

    before = device.registration
    old_port, registered_at = before.address[1], before.registered_at
    assert device.execute("/5/0/2").code == "2.04"

    after = lab.wait_for_registration("fota-1", timeout=30, after=registered_at)
    assert after.address[1] != old_port, "the device should come back from a new port"
    assert device.read("/3/0/3") == "2.0.0"
    assert device.firmware_version == "2.0.0"
    assert device.read("/5/0/5") == 1  # SUCCESS
    assert device.state == 0

    states = fw_states(lab, "fota-1")
    assert "UPDATING" in states
    kinds = set(lab.events().loc[lambda f: f["device"] == "fota-1", "kind"].astype(str))
    assert {"registered", "reboot", "fw_result"} <= kinds


def test_execute_update_outside_downloaded_is_refused(lab: Lab) -> None:
    from labkit.server import RequestFailed

    device = lab.add_device("fota-2")
    with pytest.raises(RequestFailed) as info:
        device.execute("/5/0/2")
    assert info.value.code == "4.05"  # Method Not Allowed when not DOWNLOADED (digest 5.3)
    assert device.state == 0


def test_pull_from_the_lab_repository_over_coap(lab: Lab) -> None:
    device = lab.add_device("fota-pull", firmware_version="1.0.0", lifetime=60)
    uris = lab.publish("app-1.5.0.bin", lab_package("1.5.0", 64 * 1024 + 3, seed=5))
    assert uris["coap"].startswith("coap://127.0.0.1:")
    assert uris["http"].startswith("http://127.0.0.1:")

    device.write("/5/0/1", uris["coap"])
    lab.wait_for(lambda: device.state == 2 or device.result != 0, timeout=30)
    assert device.state == 2, f"PULL failed with result {device.result}"

    events = lab.events()
    served = events[(events["kind"] == "block") & (events["source"] == "repo")]
    assert len(served) >= 64  # 1024-byte blocks, each logged by the repository

    registered_at = device.registration.registered_at
    device.execute("/5/0/2")
    lab.wait_for_registration("fota-pull", timeout=30, after=registered_at)
    assert device.read("/3/0/3") == "1.5.0"
