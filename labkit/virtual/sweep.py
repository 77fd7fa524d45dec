"""Collecting a burst's cyclic garbage while the virtual loop is quiet.

Every CoAP exchange aiocoap (0.4.17) completes leaves a few reference cycles behind, all inside
aiocoap: the server side's ``TokenManager.process_request`` closure ``on_event`` holds ``stop``,
a ``functools.partial`` of ``Pipe._unregister_on_event`` bound to ``on_event`` itself (and
through the pipe the request message and its remote); the client side's ``protocol.Request``
holds ``_stop_interest``, a partial bound to its ``process`` closure, which holds the request.
About 30 objects per exchange, which reference counting alone can never free.

A fleet registered together Updates together: thousands of exchanges are in flight at one
simulated instant, so their objects outlive the young generations and reach the oldest one
before they become garbage. CPython collects that generation only once the objects promoted
since its last collection exceed a quarter of its population, which for a large idle fleet is
every few dozen bursts: meanwhile the garbage of each burst stays, the next burst allocates
fresh memory beside it, and the allocator keeps the peak (RSS grows with every burst).

:func:`collect_when_quiet` installs an idle hook on a
:class:`~labkit.virtual.loop.VirtualEventLoop`: when the loop is idle, nothing is due for at
least ``min_gap`` simulated seconds (a burst is over) and at least ``min_promotions``
generation-1 collections happened since the last full one (objects reached the oldest
generation), it runs one full collection. The next burst then reuses the freed memory. On an
idle fleet that is about one collection per burst; during a busy run the gaps are short and
the hook does nothing. Nothing the simulation does depends on when the collector runs.
:func:`labkit.virtual.heap.freeze_survivors` (simulate runs) is compatible: it freezes the
survivors of each full collection, this one included, which makes the next one cheaper.

This module owns that policy; it knows nothing about CoAP beyond the explanation above.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labkit.virtual.loop import VirtualEventLoop

__all__ = ["QuietCollector", "collect_when_quiet"]

MIN_GAP_S = 1.0
"""Simulated seconds with nothing due that count as the end of a burst."""

MIN_PROMOTIONS = 5
"""Generation-1 collections since the last full one before a quiet moment triggers one."""


class QuietCollector:
    """The installed policy: :attr:`collections` counts the full collections it ran."""

    def __init__(self, loop: VirtualEventLoop, min_gap: float, min_promotions: int) -> None:
        self._loop = loop
        self.min_gap = float(min_gap)
        self.min_promotions = int(min_promotions)
        self.collections = 0
        self.remove: Callable[[], None] = loop.add_idle_hook(self._idle)

    def _idle(self) -> None:
        if not gc.isenabled() or gc.get_count()[2] < self.min_promotions:
            return
        scheduled = self._loop._scheduled  # type: ignore[attr-defined]  # asyncio's timer heap
        if scheduled and scheduled[0].when() - self._loop.time() < self.min_gap:
            return
        gc.collect()
        self.collections += 1


def collect_when_quiet(
    loop: VirtualEventLoop,
    *,
    min_gap: float = MIN_GAP_S,
    min_promotions: int = MIN_PROMOTIONS,
) -> QuietCollector:
    """Run a full garbage collection whenever ``loop`` goes quiet after enough promotions to
    the oldest generation (see the module docstring); ``.remove()`` on the result ends it."""
    return QuietCollector(loop, min_gap, min_promotions)
