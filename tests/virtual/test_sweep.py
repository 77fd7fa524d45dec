"""labkit.virtual.sweep: a full collection once the virtual loop is quiet after promotions."""

from __future__ import annotations

import asyncio
import gc
import weakref

from labkit.virtual.loop import VirtualEventLoop
from labkit.virtual.sweep import collect_when_quiet


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def _old_garbage() -> weakref.ref[_Node]:
    """A cycle that reaches the oldest generation while alive, then becomes garbage."""
    node = _Node()
    gc.collect(1)  # survives: promoted to generation 2 (counts one generation-1 collection)
    return weakref.ref(node)


def _run(min_gap: float, quiet_for: float) -> tuple[bool, int]:
    loop = VirtualEventLoop(seed=1)
    collector = collect_when_quiet(loop, min_gap=min_gap, min_promotions=1)

    async def scenario() -> bool:
        ref = _old_garbage()
        await asyncio.sleep(quiet_for)  # nothing else scheduled: quiet for that long
        return ref() is None

    try:
        freed = loop.run_until_complete(scenario())
    finally:
        collector.remove()
        loop.close()
    return freed, collector.collections


def test_a_quiet_loop_collects_old_cyclic_garbage() -> None:
    freed, collections = _run(min_gap=1.0, quiet_for=5.0)
    assert freed and collections >= 1


def test_a_busy_loop_does_not_collect() -> None:
    # the next timer is 0.5 s away: shorter than the gap that marks the end of a burst
    _, collections = _run(min_gap=1.0, quiet_for=0.5)
    assert collections == 0
