"""A time-scaled simulated device: its timers, its CoAP retransmissions and its timestamps.

At ``time_scale=100`` one wall second is 100 simulated seconds: the Update timer, the
retransmissions of the CON messages the device sends (RFC 7252 timers, digest 7.5) and the
pmax timer run 100 times faster, and every event is stamped in simulated time.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiocoap
import pytest
from aiocoap.numbers.codes import Code

from labkit.client import SimulatedDevice
from labkit.client.device import MIN_WALL_TIMEOUT_S
from labkit.coap import scaled_tuning
from labkit.events import Event
from labkit.timebase import ScaledClock
from tests.client.peer import RdPeer, Watch, run, started

SCALE = 100.0


def test_update_timer_is_scaled_and_events_are_in_simulated_time() -> None:
    events: list[Event] = []
    clock = ScaledClock(SCALE)

    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, lifetime=200, time_scale=SCALE, clock=clock,
                                   on_event=events.append)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await server.next("update", timeout=5)
            wall = loop.time() - t0
            # lt - min(93, lt/2) = 100 simulated seconds = 1 s of wall time (not 100 s)
            assert 0.8 <= wall <= 1.8, wall
            await device.stop(timeout=2)

    run(main())
    registered = next(e for e in events if e.kind == "registered")
    updated = next(e for e in events if e.kind == "reg_updated")
    # Timestamps are simulated: about 100 s apart, although 1 s of wall time passed.
    assert 90.0 <= updated.ts - registered.ts <= 180.0
    assert registered.ts >= clock.origin


def test_default_clock_follows_the_scale() -> None:
    device = SimulatedDevice("sim-1", "coap://127.0.0.1:5683", time_scale=SCALE)
    first = device.now()
    assert isinstance(device._clock, ScaledClock) and device._clock.scale == SCALE
    assert SimulatedDevice("sim-2", "coap://127.0.0.1:5683").now() == pytest.approx(first, abs=60)
    with pytest.raises(ValueError):
        SimulatedDevice("sim-3", "coap://127.0.0.1:5683", time_scale=0)


class _Silent(asyncio.DatagramProtocol):
    """A UDP port that receives and never answers (no ICMP unreachable either)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, int]] = []  # (loop time, CoAP message ID)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg = aiocoap.Message.decode(data)
        self.seen.append((asyncio.get_running_loop().time(), msg.mid))


def test_retransmissions_of_a_register_are_scaled() -> None:
    """A Register to a silent server: 1 + MAX_RETRANSMIT transmissions, then the exchange is
    given up after MAX_TRANSMIT_WAIT -- 62..93 simulated seconds = 0.62..0.93 s of wall time."""

    async def main() -> list[tuple[float, int]]:
        loop = asyncio.get_running_loop()
        transport, silent = await loop.create_datagram_endpoint(
            _Silent, local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        # request_timeout 1000 simulated s (10 s wall): the CoAP layer gives up first.
        device = SimulatedDevice("sim-1", f"coap://127.0.0.1:{port}", time_scale=SCALE,
                                 request_timeout=1000.0)
        try:
            with pytest.raises(TimeoutError):
                await device.start(timeout=1.6)
        finally:
            await device.stop(deregister=False, timeout=2)
            transport.close()
        return silent.seen

    seen = run(main())
    first_mid = seen[0][1]
    first = [t for t, mid in seen if mid == first_mid]
    assert len(first) == 5  # the Register and its 4 retransmissions
    gaps = [b - a for a, b in itertools.pairwise(first)]
    # ACK_TIMEOUT 2 s x [1, 1.5), doubling: 20-30, 40-60, 80-120, 160-240 ms of wall time
    for k, gap in enumerate(gaps):
        low = 0.02 * 2**k
        assert 0.8 * low <= gap <= 1.5 * low + 0.05, (k, gaps)
    # The next Register (a new message ID) follows once the exchange was given up (plus a
    # back-off of 0.5-0.75 simulated s): 0.62-0.93 s of wall time, where unscaled it is 62-93 s.
    retry = next(t for t, mid in seen if mid != first_mid)
    assert 0.55 <= retry - first[0] <= 1.2, retry - first[0]


def test_pmax_timer_is_scaled() -> None:
    async def main() -> None:
        async with RdPeer() as server:
            device = await started(server, time_scale=SCALE)
            resp = await server.request("sim-1", Code.PUT, "/3/0/9", uri_query=["pmax=50"])
            assert resp.code == Code.CHANGED
            watch = Watch(server, "sim-1", "/3/0/9")
            await watch.first()
            t1, _ = await watch.next(timeout=3)
            t2, _ = await watch.next(timeout=3)
            assert 0.3 <= t2 - t1 <= 1.2  # pmax 50 simulated s = 0.5 s of wall time
            watch.close()
            await device.stop(timeout=2)

    run(main())


def test_request_timeout_is_scaled_with_a_wall_floor() -> None:
    device = SimulatedDevice("sim-1", "coap://127.0.0.1:5683", time_scale=SCALE,
                             request_timeout=10.0)
    assert device._request_wall() == pytest.approx(0.1)
    fast = SimulatedDevice("sim-2", "coap://127.0.0.1:5683", time_scale=10_000.0)
    assert fast._request_wall() == MIN_WALL_TIMEOUT_S
    assert pytest.approx(scaled_tuning(SCALE).ACK_TIMEOUT) == device._tuning.ACK_TIMEOUT
    assert pytest.approx(0.02) == device._tuning.ACK_TIMEOUT
    assert pytest.approx(0.02) == device._reply_tuning.ACK_TIMEOUT  # notifications, too
    assert device._reply_tuning.reliability is None  # CON only when the request was CON
