"""The fault vocabulary (labkit.sim.faults) and the pure parts of the device model."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.client.model import Battery, FaultPlan, FlashStorage, scratch_root
from labkit.sim.faults import (
    FAULT_RESULTS,
    FAULTS,
    FaultSpecError,
    assign_faults,
    check_faults,
    parse_fault_spec,
)


def test_the_names_are_the_contract() -> None:
    assert FAULTS == (
        "no-flash",
        "no-ram",
        "link-drop",
        "corrupt-in-flash",
        "boot-fail",
        "defer",
        "power-loss",
        "no-http",
    )
    assert set(FAULT_RESULTS) == set(FAULTS)


def test_parse_fault_spec() -> None:
    assert parse_fault_spec("link-drop:0.05,boot-fail:0.05") == {
        "link-drop": 0.05,
        "boot-fail": 0.05,
    }
    assert parse_fault_spec(" defer : 0.5 ") == {"defer": 0.5}
    assert parse_fault_spec("") == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gremlins:0.1", "unknown fault 'gremlins'"),
        ("link-drop", "expected NAME:FRACTION"),
        ("link-drop:lots", "is not a number"),
        ("link-drop:1.5", "between 0 and 1"),
        ("link-drop:-0.1", "between 0 and 1"),
        ("defer:0.1,defer:0.2", "given twice"),
        ("defer:0.6,boot-fail:0.6", "more than 1"),
        ("defer:0.1,,boot-fail:0.1", "empty item"),
    ],
)
def test_bad_specs_say_why(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_fault_spec(spec)


def test_check_faults() -> None:
    assert check_faults(["defer", "no-http", "defer"]) == {"defer", "no-http"}
    with pytest.raises(FaultSpecError, match="known faults: no-flash"):
        check_faults(["nope"])


def test_assign_faults_is_deterministic_and_exact() -> None:
    spec = "link-drop:0.1,boot-fail:0.05,power-loss:0.25"
    a = assign_faults(spec, 200, seed=7)
    assert a == assign_faults(parse_fault_spec(spec), 200, seed=7)
    assert a != assign_faults(spec, 200, seed=8)
    counts = {name: sum(name in s for s in a) for name in FAULTS}
    assert counts["link-drop"] == 20 and counts["boot-fail"] == 10
    assert counts["power-loss"] == 50
    assert all(len(s) <= 1 for s in a)
    assert assign_faults("", 3) == [set(), set(), set()]
    assert assign_faults("defer:1", 0) == []
    with pytest.raises(FaultSpecError):
        assign_faults("defer:0.5", -1)


def test_fault_plan_is_seeded() -> None:
    plans = [FaultPlan(["power-loss", "link-drop"], seed=s) for s in range(20)]
    points = {p.plan_power_cut(8) for p in plans}
    assert len(points) > 3  # seeds spread the cut points
    again = FaultPlan(["power-loss"], seed=3)
    assert again.plan_power_cut(8) == FaultPlan(["power-loss"], seed=3).plan_power_cut(8)
    plan = FaultPlan(["power-loss"], seed=0)
    plan.power_cut_point = ("block", 2)
    assert not plan.cut_now("block", 1) and plan.cut_now("block", 2)
    assert not plan.cut_now("block", 3)  # once only
    assert FaultPlan([], seed=0).plan_power_cut(8) is None
    with pytest.raises(FaultSpecError):
        FaultPlan(["nope"])


def test_battery_drains_deterministically() -> None:
    a, b = Battery(90, seed=1), Battery(90, seed=1)
    for _ in range(1000):
        a.drain_block(1024)
        b.drain_block(1024)
    assert a.level == b.level and 84 < a.level < 89
    assert a.drain_install() < 89
    with pytest.raises(ValueError):
        Battery(101)


def test_flash_storage_is_atomic_and_lazy(tmp_path: Path) -> None:
    lazy = FlashStorage(None, 1024)
    assert not lazy.materialised and lazy.load() is None
    storage = FlashStorage(tmp_path / "dev", 1024)
    storage.save({"a": 1})
    assert storage.load() == {"a": 1} and storage.materialised
    assert not list((tmp_path / "dev").glob(".*.tmp"))
    storage.begin_slot("b", 0)
    storage.append("b", 0, b"abc")
    storage.append("b", 3, b"def")
    assert storage.read_slot("b") == b"abcdef"
    storage.begin_slot("b", 4)
    assert storage.read_slot("b") == b"abcd"
    (tmp_path / "dev" / "state.json").write_text("{torn")
    assert storage.load() is None  # unreadable: boots as from the factory
    with pytest.raises(ValueError):
        storage.slot_path("c")


def test_flash_append_at_another_offset_rewinds(tmp_path: Path) -> None:
    storage = FlashStorage(tmp_path / "dev", 1024)
    storage.begin_slot("b", 0)
    storage.append("b", 0, b"abcdef")
    storage.append("b", 2, b"XY")  # a block again from an earlier offset: the rest is cut
    assert storage.read_slot("b") == b"abXY"
    storage.append("b", 4, b"z")
    assert storage.read_slot("b") == b"abXYz"
    storage.finish_slot("b", sync=False)
    storage.begin_slot("b", 3)  # a resumed download keeps the checkpointed prefix
    storage.append("b", 3, b"!")
    assert storage.read_slot("b") == b"abX!"


def test_devices_without_a_flash_directory_use_the_scratch_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch_root.cache_clear()
    try:
        default = scratch_root()
        assert default is None or Path(default).is_dir()
        (tmp_path / "scratch").mkdir()
        monkeypatch.setenv("LABKIT_FLASH_TMP", str(tmp_path / "scratch"))
        scratch_root.cache_clear()
        storage = FlashStorage(None, 1024)
        storage.save({"a": 1})
        assert storage.directory.parent == tmp_path / "scratch"
        assert storage.materialised and storage.load() == {"a": 1}
    finally:
        scratch_root.cache_clear()


def test_flash_save_unless_same_leaves_an_identical_record_alone(tmp_path: Path) -> None:
    storage = FlashStorage(tmp_path / "dev", 1024)
    storage.save({"a": 1, "b": [1, 2]})
    state = tmp_path / "dev" / "state.json"
    inode = state.stat().st_ino
    storage.save({"b": [1, 2], "a": 1}, unless_same=True)  # the same JSON text: no rewrite
    assert state.stat().st_ino == inode and storage.writes == 1
    storage.save({"a": 1.0, "b": [1, 2]}, unless_same=True)  # equal in Python, not in JSON
    assert state.stat().st_ino != inode and storage.writes == 2
    assert storage.load() == {"a": 1.0, "b": [1, 2]}
    state.write_text('{"a": 1.0, "b": [1, 2]}  ')  # other bytes: rewritten
    storage.save({"a": 1.0, "b": [1, 2]}, unless_same=True)
    assert storage.writes == 3 and state.read_bytes() == b'{"a": 1.0, "b": [1, 2]}'
    other = FlashStorage(tmp_path / "fresh", 1024)
    other.save({"a": 1}, unless_same=True)  # nothing on disk yet: written
    assert other.writes == 1 and other.load() == {"a": 1}


def test_flash_save_makes_a_removed_directory_again(tmp_path: Path) -> None:
    storage = FlashStorage(tmp_path / "dev", 1024)
    storage.save({"a": 1})
    (tmp_path / "dev" / "state.json").unlink()
    (tmp_path / "dev").rmdir()
    storage.save({"a": 2}, sync=True)
    assert storage.load() == {"a": 2} and storage.materialised
    assert not list((tmp_path / "dev").glob(".*.tmp"))
