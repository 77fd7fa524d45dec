"""freeze_survivors: survivors of full collections set aside during a run, all back after."""

from __future__ import annotations

import gc
import weakref

from labkit.virtual.heap import freeze_survivors


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_survivors_are_frozen_during_the_block_and_unfrozen_after() -> None:
    assert gc.get_freeze_count() == 0
    with freeze_survivors():
        assert gc.get_freeze_count() > 0  # what was alive on entry
        node = _Node()
        gone = weakref.ref(node)
        gc.collect()  # a full collection: the node survives it and is frozen with the rest
        del node
        gc.collect()  # frozen: not collected while the block runs
        assert gone() is not None
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None  # unfrozen: the cycle that died meanwhile is collected


def test_nested_blocks_unfreeze_only_at_the_outermost_end() -> None:
    with freeze_survivors():
        with freeze_survivors():
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    assert all(getattr(cb, "__module__", "") != "labkit.virtual.heap" for cb in gc.callbacks)


def test_young_collections_are_rarer_inside_and_as_before_after() -> None:
    from labkit.virtual.heap import YOUNG_THRESHOLD

    before = gc.get_threshold()
    with freeze_survivors():
        assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
        assert gc.get_threshold()[1:] == before[1:]
        with freeze_survivors():
            pass
        assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
    assert gc.get_threshold() == before
