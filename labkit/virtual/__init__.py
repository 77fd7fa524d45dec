"""Virtual time for simulated fleets: an event loop on simulated time and an in-process network.

* :mod:`labkit.virtual.loop` -- :class:`VirtualEventLoop` (simulated time that jumps to the next
  timer, a horizon for notebooks) and :class:`VirtualClock` (the lab clock on it).
* :mod:`labkit.virtual.network` -- :class:`VirtualNetwork`: aiocoap contexts and datagram
  endpoints in one process, deterministic ports and per-context random generators.

A virtual run's results depend only on its parameters and seed, never on how busy the CPU is.
"""

from labkit.virtual.loop import DEFAULT_EPOCH, VirtualClock, VirtualEventLoop, running_virtual_loop
from labkit.virtual.network import VirtualNetwork, open_virtual_context

__all__ = [
    "DEFAULT_EPOCH",
    "VirtualClock",
    "VirtualEventLoop",
    "VirtualNetwork",
    "open_virtual_context",
    "running_virtual_loop",
]
