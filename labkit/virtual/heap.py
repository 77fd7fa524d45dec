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

This module owns that policy; it knows nothing about LwM2M or time.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

__all__ = ["freeze_survivors"]


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


@contextlib.contextmanager
def freeze_survivors() -> Iterator[None]:
    """Freeze the survivors of every full collection while the block runs (see the module
    docstring); unfreeze them at the end."""
    gc.freeze()
    gc.callbacks.append(_after_collection)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(_after_collection)
        if _after_collection not in gc.callbacks:  # the outermost active block ends
            gc.unfreeze()
