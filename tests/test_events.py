"""The event row: its constructor, checks and dataclass behaviour."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import pytest

from labkit.events import EVENT_FIELDS, Event


def test_the_constructor_takes_every_field_by_keyword_with_none_defaults() -> None:
    params = inspect.signature(Event.__init__).parameters
    assert list(params)[1:] == list(EVENT_FIELDS)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(params.values())[1:])
    assert [n for n, p in params.items() if p.default is inspect.Parameter.empty] == [
        "self", "ts", "source", "kind"
    ]
    assert all(params[n].default is None for n in EVENT_FIELDS[3:])


def test_fields_checks_and_frozen_rows() -> None:
    e = Event(ts=1.5, source="device", kind="block", device="d1", block=3, bytes=1024)
    assert (e.ts, e.source, e.kind, e.device, e.block, e.bytes, e.detail) == (
        1.5, "device", "block", "d1", 3, 1024, None
    )
    assert e == Event(ts=1.5, source="device", kind="block", device="d1", block=3, bytes=1024)
    assert dataclasses.replace(e, block=4).block == 4
    assert dataclasses.asdict(e)["bytes"] == 1024 and pickle.loads(pickle.dumps(e)) == e
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.block = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown event source"):
        Event(ts=0, source="nobody", kind="block")
    with pytest.raises(ValueError, match="unknown event kind"):
        Event(ts=0, source="device", kind="nothing")
    with pytest.raises(TypeError):
        Event(ts=0, source="device")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Event(0, "device", "block")  # type: ignore[misc]
    with pytest.raises(TypeError):
        Event(ts=0, source="device", kind="block", colour="red")  # type: ignore[call-arg]
