"""update() against devices whose /5 notifications arrive reordered, coalesced, late or never.

The property: whatever a hostile device does to its notifications (labkit.client.hostile), the
Update Result the server concludes is the device's own /5/0/5. 66 seeded updates here (six per
code 1-11); ``python -m tests.fota.hostile_cases --n 500`` runs 500. Named tests cover the
third-party-like orders: State notified before Result (Zephyr, Wakaama), and Result never
notified at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from labkit.client import SimulatedDevice
from labkit.client.hostile import HostileNotifications
from labkit.events import Event
from labkit.fota import Outcome, update
from labkit.fota.update import READ_AFTER_STATE, SOURCES
from labkit.lwm2m.objects import State, UpdateResult
from labkit.repo.repository import FirmwareRepository
from labkit.server import LwM2MServer
from tests.fota.hostile_cases import CODES, GOOD, make_cases, run_cases

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 240.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await scenario()

    return asyncio.run(main())


def test_seeded_updates_against_hostile_devices_end_with_the_devices_own_result() -> None:
    verdicts = run(lambda: run_cases(make_cases(66, seed=13), concurrency=4))
    wrong = [v.describe() for v in verdicts if not v.agrees]
    assert not wrong, "\n".join(wrong)
    # every Update Result 1-11 was the device's own final result at least once
    assert {v.own_result for v in verdicts} == set(CODES)
    # the devices really were hostile: notifications were reordered, dropped, delayed ...
    what = {entry[2] for v in verdicts for entry in v.notifications}
    assert {"dropped", "delayed", "withheld"} <= what
    # and every verdict says where its values came from
    assert {v.outcome.result_source for v in verdicts} <= set(SOURCES)


async def _update_one(
    hostile: HostileNotifications,
    *,
    faults: tuple[str, ...] = (),
    method: str = "pull",
    package: bytes = GOOD,
) -> tuple[Outcome, SimulatedDevice, list[Event]]:
    events: list[Event] = []
    server = LwM2MServer(on_event=events.append)
    repo = FirmwareRepository()
    await server.start()
    await repo.start()
    device = SimulatedDevice(
        "third-party", server.uri, faults=faults, lifetime=60, hostile_notifications=hostile
    )
    try:
        await device.start(timeout=10)
        outcome = await update(
            server,
            "third-party",
            package,
            method=method,
            repository=repo if method == "pull" else None,
            timeout=5,
            poll_interval=30,  # no polls in time: only notifications and the reads before a verdict
        )
        return outcome, device, events
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(device.stop(timeout=2), 10)
        await repo.stop()
        await server.stop()


def _verdict_rows(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "verdict" and e.source == "server"]


@pytest.mark.parametrize(
    ("faults", "method", "code"),
    [
        (("no-ram",), "pull", UpdateResult.OUT_OF_RAM),  # the reported bug: RESULT 0 before
        (("no-flash",), "push", UpdateResult.NOT_ENOUGH_FLASH),
        (("boot-fail",), "pull", UpdateResult.UPDATE_FAILED),
        ((), "push", UpdateResult.SUCCESS),
    ],
)
def test_a_device_that_notifies_state_before_result_gets_its_own_result(
    faults: tuple[str, ...], method: str, code: UpdateResult
) -> None:
    hostile = HostileNotifications.notifying_state_before_result(seed=3)
    outcome, device, events = run(lambda: _update_one(hostile, faults=faults, method=method))
    assert device.own_result == code
    assert outcome.result is code, outcome.reason
    assert outcome.confirmed and outcome.result_source == READ_AFTER_STATE
    # State went out before Result whenever both changed together
    sent = [(p, v) for p, v, what in device.notification_log if what == "sent"]
    assert sent and all(what == "sent" for _, _, what in device.notification_log)
    rows = _verdict_rows(events)
    assert len(rows) == 1 and rows[0].result == int(code)
    assert rows[0].reason == f"state={READ_AFTER_STATE} result={READ_AFTER_STATE}"


@pytest.mark.parametrize(
    ("faults", "method", "code"),
    [
        (("no-ram",), "pull", UpdateResult.OUT_OF_RAM),
        (("corrupt-in-flash",), "push", UpdateResult.INTEGRITY_CHECK_FAILURE),
        ((), "pull", UpdateResult.SUCCESS),
    ],
)
def test_a_device_that_never_notifies_result_gets_its_own_result(
    faults: tuple[str, ...], method: str, code: UpdateResult
) -> None:
    hostile = HostileNotifications.never_notifying_result(seed=4)
    outcome, device, events = run(lambda: _update_one(hostile, faults=faults, method=method))
    # the device changed its Result but never notified it
    assert ("result", int(code)) in [(k, v) for _, k, v in device.fw_history]
    assert not [
        e for e in events if e.kind == "notify" and e.source == "server" and e.path == "/5/0/5"
    ]
    if not outcome.rebooted:  # a result set before any reboot was withheld, not just absent
        assert any(what == "withheld" for _, _, what in device.notification_log)
    assert device.own_result == code
    assert outcome.result is code, outcome.reason
    assert outcome.result_source == READ_AFTER_STATE
    assert outcome.success is (code is UpdateResult.SUCCESS)


def test_a_stale_view_is_corrected_by_the_read_and_the_event_says_so() -> None:
    # Result notifications arrive one State change late (or never): the State 0 of a failed
    # PULL comes first, with the old Result 0 still in view.
    hostile = HostileNotifications(
        seed=11, reorder=0, coalesce=0, drop=0, repeat=0, delay=1.0, state_first=True
    )
    outcome, device, events = run(lambda: _update_one(hostile, faults=("no-ram",)))
    assert device.own_result == UpdateResult.OUT_OF_RAM
    assert outcome.result is UpdateResult.OUT_OF_RAM
    assert outcome.final_state is State.IDLE
    assert outcome.confirm_reads >= 1
    rows = _verdict_rows(events)
    assert rows and "confirmed by a read" in (rows[-1].detail or "")




def test_lab_add_device_takes_a_hostile_seed_and_records_the_verdict() -> None:
    from labkit import Lab

    with Lab() as lab:
        lab.add_device("x", hostile_notifications=3, faults=["no-ram"])
        outcome = lab.update("x", GOOD, method="pull")
        events = lab.events()
    assert outcome.result_line == "RESULT 3 OUT_OF_RAM"
    verdicts = events[events["kind"] == "verdict"]
    assert len(verdicts) == 1
    row = verdicts.iloc[0]
    assert (row["device"], row["state"], row["result"]) == ("x", "IDLE", "OUT_OF_RAM")
    assert row["reason"] == f"state={READ_AFTER_STATE} result={READ_AFTER_STATE}"
