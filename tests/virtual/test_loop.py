"""The virtual-time event loop: timers at their simulated instants, the horizon, idle hooks,
the virtual clock, and a Lab on virtual time (run_for, run_until, wait_for)."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from labkit import Lab
from labkit.virtual import DEFAULT_EPOCH, VirtualClock, VirtualEventLoop


def run(coro_fn, **kwargs):
    loop = VirtualEventLoop(**kwargs)
    try:
        return loop, loop.run_until_complete(coro_fn(loop))
    finally:
        loop.close()


def test_timers_fire_at_their_simulated_instants_in_order() -> None:
    async def main(loop: VirtualEventLoop) -> list[tuple[str, float]]:
        seen: list[tuple[str, float]] = []
        loop.call_later(7200.0, lambda: seen.append(("b", loop.time())))
        loop.call_later(0.25, lambda: seen.append(("a", loop.time())))
        await asyncio.sleep(86_400.0)  # a simulated day
        seen.append(("end", loop.time()))
        return seen

    loop, seen = run(main)
    assert seen == [("a", 0.25), ("b", 7200.0), ("end", 86_400.0)]
    assert loop.advances == 3


def test_timers_of_one_instant_run_one_per_iteration_with_what_each_started() -> None:
    async def main(loop: VirtualEventLoop) -> list[str]:
        seen: list[str] = []

        def timer(name: str) -> None:
            seen.append(name)
            loop.call_soon(seen.append, name + "'")  # what the timer started

        for name in "abcd":
            loop.call_at(5.0, timer, name)
        await asyncio.sleep(10.0)
        return seen

    _, seen = run(main)
    # asyncio's own loop: a, b, c, d, a', b', c', d' (all four timers first)
    assert sorted(seen[0::2]) == list("abcd")
    assert seen[1::2] == [name + "'" for name in seen[0::2]]


def test_a_busy_instant_does_not_starve_the_timers_due_at_it() -> None:
    async def main(loop: VirtualEventLoop) -> tuple[int, float]:
        fired = 0

        def tick() -> None:
            nonlocal fired
            fired += 1

        for _ in range(100):
            loop.call_at(1.0, tick)
        await asyncio.sleep(1.0)
        while fired < 100:  # ready work at every iteration of the instant
            await asyncio.sleep(0)
        return fired, loop.time()

    _, (fired, t) = run(main)
    assert (fired, t) == (100, 1.0)


def test_wait_for_times_out_in_simulated_time() -> None:
    async def main(loop: VirtualEventLoop) -> float:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.create_future(), 93.0)
        return loop.time()

    _, t = run(main)
    assert t == 93.0


def test_clock_reads_the_epoch_plus_loop_time() -> None:
    async def main(loop: VirtualEventLoop) -> tuple[float, float, float]:
        clock = VirtualClock(loop)
        before = clock()
        await asyncio.sleep(1.5)
        return before, clock(), clock.elapsed()

    _, (before, after, elapsed) = run(main, epoch=1_000_000.0)
    assert (before, after, elapsed) == (1_000_000.0, 1_000_001.5, 1.5)
    assert DEFAULT_EPOCH == 1_735_689_600.0  # 2025-01-01T00:00:00Z


def test_horizon_holds_time_and_idle_hooks_see_each_settled_instant() -> None:
    async def main(loop: VirtualEventLoop) -> tuple[float, list[float]]:
        instants: list[float] = []
        loop.add_idle_hook(lambda: instants.append(loop.time()))
        loop.call_later(5.0, lambda: None)
        loop.call_later(30.0, lambda: None)
        loop.horizon = 10.0
        # Time goes to 5 (a timer), then to the horizon, and waits there; a callback from
        # another thread lifts the horizon, as a Lab call does.
        loop.call_later(5.0, lambda: None)

        def lift() -> None:
            loop.horizon = math.inf

        import threading

        threading.Timer(0.05, lambda: loop.call_soon_threadsafe(lift)).start()
        await asyncio.sleep(40.0)
        return loop.time(), instants

    _, (t, instants) = run(main)
    assert t == 40.0
    assert instants[:2] == [0.0, 5.0]
    assert 10.0 in instants and 30.0 in instants
    assert all(a <= b for a, b in itertools.pairwise(instants))


def test_a_virtual_lab_stands_still_between_calls_and_runs_when_asked() -> None:
    with Lab(clock="virtual", seed=2) as lab:
        assert lab.virtual and lab.now() == DEFAULT_EPOCH
        handle = lab.add_device("sim-0001", lifetime=60)
        start = lab.now()
        assert lab.now() == start  # no call, no time
        assert lab.run_for(3600.0) == start + 3600.0
        updates = lab.events().query("kind == 'reg_updated' and source == 'server'")
        # Updates every lt - min(93, lt/2) = 30 s for an hour: 120 of them, at exact instants.
        assert len(updates) == 120
        assert handle.registered
        # run_until a condition stops at the first instant it holds
        device = handle.simulated
        got = lab.run_until(lambda: device.registered and lab.now() >= start + 3700.0)
        # (the server sweeps expired registrations every simulated second: an instant at 3700)
        assert got is True and lab.now() == start + 3700.0
        lab.run_until(start + 4000.0)
        assert lab.now() == start + 4000.0
        with pytest.raises(TimeoutError):
            lab.run_until(lambda: False, timeout=50.0)
        assert lab.now() == start + 4050.0
        assert lab.wait_for(lambda: lab.now() >= start + 4060.0, timeout=20.0, interval=5.0)
        manifest = lab.recorder.manifest["params"]
        assert manifest["clock"] == "virtual" and manifest["epoch"] == DEFAULT_EPOCH


def test_run_for_needs_a_virtual_lab() -> None:
    with Lab() as lab, pytest.raises(RuntimeError, match="virtual"):
        lab.run_for(1.0)
    with pytest.raises(ValueError):
        Lab(clock="sundial")
