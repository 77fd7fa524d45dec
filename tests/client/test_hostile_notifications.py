"""The hostile-notifications mode: what the scheduler does to /5 notifications, from a seed.

Unit tests of :class:`labkit.client.hostile.NotificationScheduler` (run on an event loop, with a
recording ``send``) and one real device over CoAP/UDP whose server-side observations see the
notifications the scheduler let through while the device's own history keeps the truth.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiocoap
import pytest

from labkit.client import SimulatedDevice
from labkit.client.hostile import (
    HostileNotifications,
    NotificationScheduler,
    hostile_config,
    stale_observe,
)
from labkit.events import Event
from labkit.lwm2m.paths import Path
from labkit.server import LwM2MServer

STATE = Path.of(5, 0, 3)
RESULT = Path.of(5, 0, 5)


def test_config_shares_are_checked_and_a_seed_is_enough() -> None:
    with pytest.raises(ValueError, match="drop"):
        HostileNotifications(drop=1.5)
    assert hostile_config(None) is None and hostile_config(False) is None
    assert hostile_config(7) == HostileNotifications(seed=7)
    cfg = HostileNotifications.never_notifying_result(2)
    assert hostile_config(cfg) is cfg and cfg.never_result
    with pytest.raises(TypeError):
        hostile_config("seven")  # type: ignore[arg-type]


def _drive(config: HostileNotifications, changes: list[list[tuple[Path, int]]]) -> list[Any]:
    """Offer each change (a list of (path, value) set together) and collect what was sent."""
    sent: list[Any] = []

    async def main() -> list[Any]:
        sched = NotificationScheduler(config)
        key = object()
        for change in changes:
            for path, value in change:
                sched.offer(
                    key,
                    path,
                    value,
                    b"",
                    lambda v, _d, stale, p=path: sent.append((str(p), v, stale)),
                )
            for _ in range(3):  # let the release (call_soon) and its follow-ups run
                await asyncio.sleep(0)
        await asyncio.sleep(config.hold_s * 2 + 0.01)  # coalesced ones go out after hold_s
        return sent

    return asyncio.run(main())


CHANGES = [
    [(STATE, 1), (RESULT, 0)],
    [(STATE, 2)],
    [(STATE, 3)],
    [(STATE, 0), (RESULT, 8)],
]


def test_state_first_sends_state_before_result_in_every_change() -> None:
    sent = _drive(HostileNotifications.notifying_state_before_result(), CHANGES)
    assert [(p, v) for p, v, _ in sent] == [
        ("/5/0/3", 1), ("/5/0/5", 0), ("/5/0/3", 2), ("/5/0/3", 3), ("/5/0/3", 0), ("/5/0/5", 8)
    ]


def test_never_result_withholds_every_result() -> None:
    sent = _drive(HostileNotifications.never_notifying_result(), CHANGES)
    assert [p for p, _, _ in sent] == ["/5/0/3"] * 4


def test_drop_everything_sends_nothing() -> None:
    cfg = HostileNotifications(reorder=0, coalesce=0, delay=0, drop=1.0, repeat=0)
    assert _drive(cfg, CHANGES) == []


def test_a_delayed_notification_goes_out_after_a_later_state() -> None:
    late = 0
    for seed in range(20):
        cfg = HostileNotifications(seed=seed, reorder=0, coalesce=0, delay=0.5, drop=0, repeat=0)
        order = [(p, v) for p, v, _ in _drive(cfg, CHANGES)]
        # nothing is invented, and nothing is sent twice
        assert len(order) == len(set(order))
        assert set(order) <= {(str(p), v) for change in CHANGES for p, v in change}
        # Result 0 (offered with State 1) arriving after State 2 or 3 is a late notification
        if ("/5/0/5", 0) in order and ("/5/0/3", 2) in order:
            late += order.index(("/5/0/5", 0)) > order.index(("/5/0/3", 2))
    assert late > 0
    # with every notification delayed nothing ever goes out (no State is sent to release them)
    cfg = HostileNotifications(reorder=0, coalesce=0, delay=1.0, drop=0, repeat=0)
    assert _drive(cfg, CHANGES) == []


def test_the_same_seed_gives_the_same_schedule() -> None:
    cfg = HostileNotifications(seed=42, repeat=0.5)
    assert _drive(cfg, CHANGES) == _drive(cfg, CHANGES)
    other = [_drive(HostileNotifications(seed=s, repeat=0.5), CHANGES) for s in range(8)]
    assert len({tuple(o) for o in other}) > 1


def test_stale_observe_pins_the_sequence_number() -> None:
    msg = stale_observe(aiocoap.Message(code=aiocoap.CONTENT, payload=b"1"), 3)
    msg.opt.observe = 17  # what aiocoap's notification loop does
    assert msg.opt.observe == 3


def test_a_hostile_device_keeps_its_true_history_while_observers_hear_less() -> None:
    async def main() -> tuple[SimulatedDevice, list[Event], list[Any]]:
        events: list[Event] = []
        server = LwM2MServer(on_event=events.append)
        await server.start()
        cfg = HostileNotifications(seed=1, reorder=0, coalesce=0, delay=0, drop=1.0, repeat=0)
        dev = SimulatedDevice("h-1", server.uri, lifetime=60, hostile_notifications=cfg)
        heard: list[Any] = []
        try:
            await dev.start(timeout=10)
            proxy = server.device("h-1")
            await proxy.observe("/5/0/3", lambda r: heard.append(r.value), timeout=5)
            # a reset by empty URI from IDLE: State stays 0; write a URI that fails at once
            await proxy.write("/5/0/1", "coaps://127.0.0.1/none.bin", timeout=5)
            await proxy.write("/5/0/1", "", timeout=5)
            assert int((await proxy.read("/5/0/5", timeout=5)).value) == 0
        finally:
            await dev.stop(timeout=2)
            await server.stop()
        return dev, events, heard

    dev, _events, heard = asyncio.run(main())
    assert ("result", 9) in [(k, v) for _, k, v in dev.fw_history]  # the device's truth
    assert heard == []  # every notification was dropped
    assert all(what in ("dropped", "withheld") for _, _, what in dev.notification_log)
