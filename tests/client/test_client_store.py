"""The pure object store: operation rules and codes, attributes, the notify decision."""

from __future__ import annotations

import pytest

from labkit.client.store import (
    Attributes,
    ObjectStore,
    OperationError,
    condition_met,
    next_notification,
    parse_execute_args,
    pmax_due,
)
from labkit.lwm2m.paths import Path

P = Path.parse


@pytest.fixture
def store() -> ObjectStore:
    s = ObjectStore(hidden=(0,), creatable=(1,), permanent=("/1/0",))
    s.add_instance(0, 0, {0: "coap://x", 1: False, 2: 3})
    s.add_instance(1, 0, {0: 1, 1: 300, 2: 1, 3: 60, 6: True, 7: "U", 8: None})
    s.add_instance(3, 0, {0: "labkit", 3: "1.0", 4: None, 9: 80, 11: [0], 13: 5})
    s.add_object(5, "1.1")
    s.add_instance(5, 0, {0: b"", 1: "", 2: None, 3: 0, 8: [0, 1]})
    return s


def code_of(fn, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(OperationError) as info:
        fn(*args, **kwargs)
    return info.value.coap_code


def test_read_levels_and_codes(store: ObjectStore) -> None:
    assert store.read("/3/0/0") == {P("/3/0/0"): "labkit"}
    assert store.read("/5/0/8") == {P("/5/0/8/0"): 0, P("/5/0/8/1"): 1}
    assert store.read("/5/0/8/1") == {P("/5/0/8/1"): 1}
    inst = store.read("/5/0")
    assert P("/5/0/0") not in inst and P("/5/0/2") not in inst  # W-only and E skipped
    assert store.read("/3") == store.read("/3/0")
    assert code_of(store.read, "/0") == "4.01"
    assert code_of(store.read, "/0/0/0") == "4.01"
    assert code_of(store.read, "/4") == "4.04"
    assert code_of(store.read, "/3/1") == "4.04"
    assert code_of(store.read, "/3/0/1") == "4.04"  # defined but not instantiated
    assert code_of(store.read, "/5/0/8/7") == "4.04"
    assert code_of(store.read, "/5/0/0") == "4.05"
    assert code_of(store.read, "/3/0/4") == "4.05"
    assert store.is_multiple(P("/5/0/8")) and not store.is_multiple(P("/5/0/8/0"))


def test_dynamic_value(store: ObjectStore) -> None:
    store.bind("/3/0/13", lambda: 42)
    assert store.read("/3/0/13") == {P("/3/0/13"): 42}
    assert store.get("/3/0/13") == 42


def test_write_rules(store: ObjectStore) -> None:
    assert store.write("/1/0/1", {P("/1/0/1"): 60}) == [P("/1/0/1")]
    assert store.get("/1/0/1") == 60
    assert store.write("/1/0/1", {P("/1/0/1"): 60}) == []  # unchanged
    assert code_of(store.write, "/3/0/0", {P("/3/0/0"): "x"}) == "4.05"
    assert code_of(store.write, "/3", {}) == "4.05"
    assert code_of(store.write, "/1/0/1", {P("/1/0/1"): "60"}) == "4.00"  # wrong type
    assert code_of(store.write, "/1/0/1", {P("/1/0/1"): -1}) == "4.00"  # unsigned
    assert code_of(store.write, "/1/0", {P("/3/0/0"): "x"}) == "4.00"  # outside the path
    assert code_of(store.write, "/1/0", {P("/1/0/5"): 1}) == "4.04"  # not instantiated
    assert code_of(store.write, "/1/0/1", {P("/1/0/1"): 1}, replace=False) == "4.05"
    assert code_of(store.write, "/0/0/0", {P("/0/0/0"): "y"}) == "4.01"
    assert code_of(store.write, "/1/0", {P("/1/0/1/0"): 1}) == "4.00"  # single as multi


def test_create_delete(store: ObjectStore) -> None:
    iid = store.create(1, {P("/1/1/0"): 2, P("/1/1/1"): 600, P("/1/1/7"): "U"})
    assert iid == 1 and store.get("/1/1/1") == 600
    assert store.exists("/1/1/8")  # mandatory executable added
    assert store.create(1, {}) == 2  # lowest free id
    assert code_of(store.create, 1, {P("/1/1/0"): 3}) == "4.00"  # exists
    assert code_of(store.create, 1, {P("/1/3/0"): 3, P("/1/4/0"): 3}) == "4.00"
    assert code_of(store.create, 3, {}) == "4.05"
    assert code_of(store.create, 0, {}) == "4.01"
    store.write_attributes("/1/1", ["pmin=3"])
    store.delete("/1/1")
    assert not store.exists("/1/1") and store.attributes("/1/1").empty
    assert code_of(store.delete, "/1/0") == "4.05"  # permanent
    assert code_of(store.delete, "/3/0") == "4.05"
    assert code_of(store.delete, "/1/9") == "4.04"
    assert code_of(store.delete, "/1/0/0") == "4.05"  # not an instance
    assert store.registration_objects() == {1: ("1.2", [0, 2]), 3: ("1.2", [0]), 5: ("1.1", [0])}


def test_execute_checks(store: ObjectStore) -> None:
    assert store.check_execute("/1/0/8").name == "Registration Update Trigger"
    assert code_of(store.check_execute, "/3/0/0") == "4.05"
    assert code_of(store.check_execute, "/3/0") == "4.05"
    assert code_of(store.check_execute, "/3/0/5") == "4.04"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"", {}),
        (b"0", {0: None}),
        (b"0,1='x'", {0: None, 1: "x"}),
        (b"5='a,b'", {5: "a,b"}),
    ],
)
def test_execute_args(text: bytes, expected: dict[int, str | None]) -> None:
    assert parse_execute_args(text) == expected


@pytest.mark.parametrize("text", [b"x", b"0,", b"0=1", b"0='x", b"10", b"0,0", b"\xff", b"1 "])
def test_execute_args_bad(text: bytes) -> None:
    assert code_of(parse_execute_args, text) == "4.00"


def test_attributes_and_effective(store: ObjectStore) -> None:
    assert store.effective_attributes("/3/0/9") == Attributes(pmin=1, pmax=60)  # /1 defaults
    store.write_attributes("/3", ["pmin=5"])
    store.write_attributes("/3/0/9", ["pmax=10", "gt=90", "lt=10", "st=2"])
    assert store.effective_attributes("/3/0/9") == Attributes(pmin=5, pmax=10, gt=90, lt=10, st=2)
    assert store.effective_attributes("/3/0/0") == Attributes(pmin=5, pmax=60)
    store.write_attributes("/3/0/9", ["gt", "lt", "st"])
    assert store.attributes("/3/0/9") == Attributes(pmax=10)
    assert code_of(store.write_attributes, "/3/0/9", ["gt=1", "lt=5"]) == "4.00"
    assert code_of(store.write_attributes, "/3/0/9", ["lt=4", "gt=10", "st=3"]) == "4.00"
    assert code_of(store.write_attributes, "/3/0/0", ["gt=1"]) == "4.00"  # string
    assert code_of(store.write_attributes, "/3/0", ["st=1"]) == "4.00"  # not a resource
    assert code_of(store.write_attributes, "/3/0/9", ["pmin=-1"]) == "4.00"
    assert code_of(store.write_attributes, "/3/0/9", ["st=-1"]) == "4.00"
    assert code_of(store.write_attributes, "/3/0/9", ["gt=nan"]) == "4.00"
    assert code_of(store.write_attributes, "/3/0/9", ["foo=1"]) == "4.00"
    assert code_of(store.write_attributes, "/3/7", ["pmin=1"]) == "4.04"
    store.write_attributes("/3/0/9", ["epmin=1"])  # 1.1 attributes accepted, ignored
    links = {link.target: dict(link.params) for link in store.discover("/3")}
    assert links["/3"] == {"ver": "1.2", "pmin": "5"}
    assert links["/3/0/9"] == {"pmax": "10"}
    assert links["/3/0/11"] == {"dim": "1"}


def test_notify_decision() -> None:
    none = Attributes()
    assert condition_met(none, 1, 2) and not condition_met(none, 2, 2)
    assert condition_met(Attributes(st=5), "a", "b")  # non-numeric: any change
    st = Attributes(st=5)
    assert not condition_met(st, 10, 14) and condition_met(st, 10, 15)
    gt = Attributes(gt=50)
    assert condition_met(gt, 49, 51) and condition_met(gt, 51, 49)
    assert not condition_met(gt, 51, 60)
    lt = Attributes(lt=20)
    assert condition_met(lt, 21, 19) and not condition_met(lt, 10, 15)
    assert condition_met(Attributes(gt=50), True, False)  # bools: any change
    pmin = Attributes(pmin=10)
    assert next_notification(pmin, now=105, last_sent=100, last_value=1, value=2) == 110
    assert next_notification(pmin, now=115, last_sent=100, last_value=1, value=2) == 115
    assert next_notification(pmin, now=115, last_sent=100, last_value=2, value=2) is None
    assert next_notification(none, now=5, last_sent=None, last_value=1, value=2) == 5
    assert pmax_due(Attributes(pmax=30), 100) == 130
    assert pmax_due(Attributes(pmin=40, pmax=30), 100) is None
    assert pmax_due(Attributes(pmax=0), 100) is None
    assert pmax_due(none, 100) is None


def test_stores_share_equal_layouts_and_multiple_values_and_copy_on_change() -> None:
    a, b = (ObjectStore(creatable=(1,)) for _ in range(2))
    for s in (a, b):
        s.add_instance(3, 0, {0: "labkit", 6: [1, 5], 9: 80})
    slot_a, slot_b = a._inst[3, 0], b._inst[3, 0]
    assert slot_a.shape is slot_b.shape  # one tuple of resource ids for both devices
    assert slot_a[6] is slot_b[6]  # equal multiple-resource values are one object
    assert a._versions is b._versions
    # a change of one store never shows in the other
    assert a.set("/3/0/6/1", 7) and a.get("/3/0/6") == {0: 1, 1: 7}
    assert b.get("/3/0/6") == {0: 1, 1: 5}
    for s in (a, b):
        s.add_instance(1, 0, {0: 1, 25: ["x"]})
    a.write("/1/0/25", {P("/1/0/25/2"): "y"}, replace=False)  # a partial update
    assert a.read("/1/0/25") == {P("/1/0/25/0"): "x", P("/1/0/25/2"): "y"}
    assert b.read("/1/0/25") == {P("/1/0/25/0"): "x"}
    assert a.write("/1/0/25", {P("/1/0/25/1"): "z"}) == [P("/1/0/25")]  # a replace
    assert a.get("/1/0/25") == {1: "z"} and b.get("/1/0/25") == {0: "x"}
    a.set("/3/0/1", "model")  # a resource the instance did not hold yet: a new layout
    assert a.resource_ids(3, 0) == [0, 1, 6, 9] and b.resource_ids(3, 0) == [0, 6, 9]
    a.add_object(5, "1.1")
    assert a.version(5) == "1.1" and b.version(5) is None and b.objects() == [1, 3]
    # 1 and True are equal in Python but not the same LwM2M value: never shared
    c = ObjectStore()
    c.add_instance(3, 0, {6: [True]})
    d = ObjectStore()
    d.add_instance(3, 0, {6: [1]})
    assert c.get("/3/0/6/0") is True and d.get("/3/0/6/0") == 1 and d.get("/3/0/6/0") is not True


def test_created_instances_hold_their_values_and_multiples(store: ObjectStore) -> None:
    iid = store.create(1, {P("/1/1/0"): 2, P("/1/1/1"): 60, P("/1/1/25/3"): "a"})
    assert iid == 1 and store.instances(1) == [0, 1]
    assert store.get("/1/1/1") == 60 and store.get("/1/1/25") == {3: "a"}
    assert store.read("/1/1/25/3") == {P("/1/1/25/3"): "a"}
    store.delete("/1/1")
    assert store.instances(1) == [0]
    assert code_of(store.read, "/1/1") == "4.04"


def test_multiple_values_compare_as_mappings() -> None:
    a = ObjectStore()
    a.add_instance(3, 0, {6: [1, 5]})
    multi = a._inst[3, 0][6]
    assert multi == {0: 1, 1: 5} and multi != {0: 1} and multi != {0: 1, 1: 6}
    assert multi == multi  # (the identity shortcut)
    b = ObjectStore()
    b.add_instance(3, 0, {6: [1.0, 5]})  # equal values of another type: another object, equal
    assert b._inst[3, 0][6] is not multi and b._inst[3, 0][6] == multi
    assert multi.holds({0: 1, 1: 5}) and not multi.holds({0: 1.0, 1: 5})
    assert not multi.holds({0: 1}) and not multi.holds({0: 1, 2: 5})
    # set_resources: the same instances change nothing; another type or value does
    assert a.set_resources(3, 0, {6: {0: 1, 1: 5}}) == []
    assert a._inst[3, 0][6] is multi
    assert a.set_resources(3, 0, {6: {0: True, 1: 5}}) == []  # equal: not a change ...
    assert a.get("/3/0/6/0") is True  # ... but the value now held is the one given
    assert a.set_resources(3, 0, {6: (1, 7)}) == [6] and a.get("/3/0/6") == {0: 1, 1: 7}
