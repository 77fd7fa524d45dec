"""ScaledClock arithmetic and the event-loop lag monitor."""

from __future__ import annotations

import asyncio
import time

import pytest

from labkit.timebase import LoopLagMonitor, ScaledClock


class FakeTime:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_scaled_clock_maths() -> None:
    mono = FakeTime(50.0)
    clock = ScaledClock(100.0, wall=lambda: 1_700_000_000.0, monotonic=mono)
    assert clock() == clock.sim_now() == 1_700_000_000.0
    assert clock.elapsed() == 0.0
    mono.t += 0.5  # half a wall second
    assert clock.elapsed() == pytest.approx(50.0)
    assert clock.sim_now() == pytest.approx(1_700_000_050.0)
    assert clock.to_wall(2.0) == pytest.approx(0.02)  # ACK_TIMEOUT 2 s -> 20 ms
    assert clock.to_sim(0.02) == pytest.approx(2.0)


def test_scale_one_is_real_time() -> None:
    clock = ScaledClock(1.0)
    assert abs(clock() - time.time()) < 0.5
    assert clock.to_wall(3.0) == 3.0 and clock.to_sim(3.0) == 3.0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True])
def test_bad_scale_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        ScaledClock(bad)


def test_sleep_is_scaled() -> None:
    async def main() -> float:
        clock = ScaledClock(100.0)
        t = time.monotonic()
        await clock.sleep(10.0)  # 10 simulated seconds = 0.1 s
        return time.monotonic() - t

    took = asyncio.run(asyncio.wait_for(main(), 5))
    assert 0.09 <= took < 1.0


def test_loop_lag_monitor_reports_a_blocked_loop() -> None:
    async def main() -> LoopLagMonitor:
        async with LoopLagMonitor(interval=0.005, scale=100.0) as lag:
            await asyncio.sleep(0.05)
            time.sleep(0.08)  # block the loop: the next wake-up is ~80 ms late
            await asyncio.sleep(0.05)
        return lag

    lag = asyncio.run(asyncio.wait_for(main(), 10))
    s = lag.summary()
    assert s.samples >= 5
    assert s.max_ms >= 60.0
    assert s.p50_ms < s.max_ms
    assert s.max_sim_ms == pytest.approx(s.max_ms * 100.0)
    assert s.p95_sim_ms == pytest.approx(s.p95_ms * 100.0)
    # 80 ms wall at 100x is 8 simulated seconds: it distorts a 1 s round trip
    assert s.distorts(typical_rtt_s=1.0) == (s.p95_sim_ms > 100.0)
    assert set(s.as_dict()) >= {"p50_ms", "p95_ms", "max_ms", "scale", "p95_sim_ms"}


def test_idle_monitor_summary_is_zero() -> None:
    s = LoopLagMonitor().summary()
    assert s.samples == 0 and s.max_ms == 0.0 and not s.distorts(1.0)
