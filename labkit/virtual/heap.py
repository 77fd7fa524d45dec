"""Garbage collection for long simulated runs: survivors of a full collection are set aside.

A virtual fleet run allocates millions of short-lived objects (CoAP messages, loop handles,
futures) next to a large population that lives as long as the run (the devices, their object
models and link traces, the recorded events). CPython's cyclic collector walks that whole
population again in every full (generation 2) collection, and a run of 1,000 devices triggers
dozens of them: about a fifth of the run's CPU went there.

:func:`freeze_survivors` is a context manager for such runs: on entry, and after every full
collection while it is active, it moves what is alive into CPython's permanent generation
(:func:`gc.freeze`), so the next full collection only walks objects that arrived since. On
exit everything is unfrozen (:func:`gc.unfreeze`) and the collector works as before; a cycle
that became garbage while frozen is collected then. Reference counting frees everything else
at once, as always: only cyclic garbage waits longer, so memory may grow a little during the
run. Nothing the simulation does depends on when the collector runs.

The young generations are collected less often while it is active (:data:`YOUNG_THRESHOLD`
instead of CPython's 700 allocations): such a run keeps many middle-aged objects (CoAP
deduplication entries and their timers live 247 simulated seconds, pending events, in-flight
datagrams), and at 700 every one of them was walked in a dozen young collections before it
was old enough to be frozen -- a tenth of a fleet run's CPU.

This module owns that policy; it knows nothing about LwM2M or time.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

__all__ = ["YOUNG_THRESHOLD", "freeze_survivors"]

#: Generation-0 threshold while :func:`freeze_survivors` is active (allocations minus
#: deallocations of tracked objects between young collections; CPython's default is 700).
#: Cyclic garbage waits at most that many allocations longer; the older generations keep
#: CPython's ratios (10, 10).
YOUNG_THRESHOLD = 7000


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


@contextlib.contextmanager
def freeze_survivors() -> Iterator[None]:
    """Freeze the survivors of every full collection while the block runs (see the module
    docstring); unfreeze them at the end."""
    gc.freeze()
    gc.callbacks.append(_after_collection)
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], YOUNG_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(_after_collection)
        if _after_collection not in gc.callbacks:  # the outermost active block ends
            gc.unfreeze()
