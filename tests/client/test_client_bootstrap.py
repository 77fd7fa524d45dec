"""labkit.client.bootstrap: the device side of the Bootstrap Interface on an object store."""

from __future__ import annotations

import pytest

from labkit.client import bootstrap as bs
from labkit.client.store import ObjectStore, OperationError
from labkit.lwm2m.paths import Path


def _store() -> ObjectStore:
    store = ObjectStore(hidden=(0,), creatable=(1,), permanent=("/1/0",))
    store.add_instance(0, 0, {0: "coaps://127.0.0.1:5784", 1: True, 2: 0, 3: b"bs", 5: b"k"})
    store.add_instance(1, 0, {0: 1, 1: 300, 6: True, 7: "U"})
    store.add_instance(3, 0, {0: "labkit"})
    return store


def test_delete_keeps_the_bootstrap_account_and_the_device_object() -> None:
    store = _store()
    assert bs.bootstrap_delete(store, Path(())) == [Path.of(1, 0)]
    assert store.instances(0) == [0] and store.instances(3) == [0] and store.instances(1) == []


def test_write_discover_and_finish() -> None:
    store = _store()
    assert bs.finish_check(store) == "no LwM2M server account in /0"
    values = {
        Path.of(0, 1, 0): "coaps://127.0.0.1:5684", Path.of(0, 1, 1): False,
        Path.of(0, 1, 2): 0, Path.of(0, 1, 3): b"dm", Path.of(0, 1, 5): b"", Path.of(0, 1, 10): 101,
    }  # fmt: skip
    bs.bootstrap_write(store, Path.of(0, 1), values)
    assert "without an identity and a key" in (bs.finish_check(store) or "")
    bs.bootstrap_write(store, Path.of(0, 1, 5), {Path.of(0, 1, 5): b"secret"})
    assert store.get("/0/1/3") == b"dm"  # a resource write keeps the rest of the instance
    assert "Short Server ID" in (bs.finish_check(store) or "")
    bs.bootstrap_write(store, Path.of(1, 1), {Path.of(1, 1, 0): 101, Path.of(1, 1, 1): 60})
    assert bs.finish_check(store) is None
    _, servers = bs.accounts(store)
    assert [(a.uri, a.identity, a.ssid) for a in servers] == [
        ("coaps://127.0.0.1:5684", b"dm", 101)
    ]
    assert "secret" not in repr(servers)
    links = {link.target: dict(link.params) for link in bs.bootstrap_discover(store, Path(()))}
    assert links[""] == {"lwm2m": "1.1"} and links["/0/1"] == {"ssid": "101"}
    assert links["/1/1"] == {"ssid": "101"} and links["/0/0"] == {}
    with pytest.raises(OperationError):
        bs.bootstrap_write(store, Path.of(0, 1), {Path.of(1, 1, 0): 5})
