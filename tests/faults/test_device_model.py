"""The simulated device's hardware model seen from the server: Protocol Support and Delivery
Method tell the truth, the flash persists across runs, the battery drains, RAM sets the PULL
block size."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from labkit.client import SimulatedDevice
from labkit.events import Event
from tests.faults.harness import KIB, NEW, OLD, Lab, image, lab_key, update


def test_protocol_support_and_delivery_method_are_the_real_capabilities() -> None:
    plain = SimulatedDevice("a", "coap://127.0.0.1:1")
    coap_only = SimulatedDevice("b", "coap://127.0.0.1:1", faults=["no-http"])
    assert plain.value("/5/0/8") == {0: 0, 1: 2} and plain.value("/5/0/9") == 2
    assert coap_only.value("/5/0/8") == {0: 0}
    deferring = SimulatedDevice("c", "coap://127.0.0.1:1", faults=["defer"])
    assert deferring.user_defers and deferring.value("/5/0/13") == 30
    assert SimulatedDevice("d", "coap://127.0.0.1:1", battery=42).value("/3/0/9") == 42


def test_flash_survives_a_new_process_and_the_battery_drains(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    where = tmp_path / "devices" / "keep-1"

    async def main() -> tuple[str, int, int, str]:
        async with Lab(key) as lab:
            dev = await lab.device("keep-1", storage_dir=where, battery=80)
            final = await update(lab, dev, push=image(key, size=64 * KIB))
            assert final.as_tuple() == (0, 1, NEW)
            level = int(dev.value("/3/0/9"))
            await dev.stop()
            # the "next run": a new object over the same flash folder
            again = await lab.device("keep-1", storage_dir=where)
            return again.firmware_version, level, int(again.value("/5/0/5")), again.active_slot

    version, level, result, slot = asyncio.run(main())
    assert (version, result, slot) == (NEW, 1, "b")
    assert level < 80
    record = json.loads((where / "state.json").read_text())
    assert record["active"] == "b" and record["slots"]["b"]["version"] == NEW
    assert (where / "slot-b.bin").read_bytes() == image(key, size=64 * KIB)
    assert (where / "slot-a.bin").read_bytes().startswith(b"LABKIT-FW " + OLD.encode())


def test_a_small_ram_buffer_pulls_small_blocks(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    data = image(key, size=4 * KIB)
    events: list[Event] = []

    async def main() -> tuple[int | None, int | None, str | None]:
        async with Lab(key) as lab:
            dev = await lab.device("ram-256", ram=300)
            assert dev.download_szx == 4
            lab.repo.add("fw.bin", data)
            final = await update(lab, dev, uri=lab.repo.coap_uri("fw.bin"))
            events.extend(lab.events)
            return final.as_tuple()

    assert asyncio.run(main()) == (0, 1, NEW)
    sizes = {e.bytes for e in events if e.source == "repo" and e.kind == "block"}
    assert max(s or 0 for s in sizes) == 256


def test_stop_and_start_during_a_pull_resumes_it(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    data = image(key, size=12 * KIB)

    async def main() -> tuple[tuple[int | None, int | None, str | None], Lab]:
        async with Lab(key) as lab:
            dev = await lab.device("stop-start")
            lab.repo.add("fw.bin", data)
            lab.repo.drop_after("fw.bin", blocks=4)  # keeps the download busy for a while
            proxy = lab.server.device("stop-start")
            (await proxy.write("/5/0/1", lab.repo.coap_uri("fw.bin"))).raise_for_status()
            while lab.repo.served_blocks("fw.bin") < 4:
                await asyncio.sleep(0.02)
            await dev.stop()
            await dev.start(timeout=10)
            final = await update(lab, dev)  # nothing new to deliver: wait, Execute, read
            return final.as_tuple(), lab

    final, lab = asyncio.run(main())
    assert final == (0, 1, NEW)
    zeros = [e for e in lab.events if e.source == "repo" and e.kind == "block" and e.block == 0]
    assert len(zeros) == 1


def test_an_unusable_state_record_boots_the_active_slot(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    where = tmp_path / "dev"
    where.mkdir()
    record = {
        "active": "a",
        "slots": {"a": {"version": "1.4.0", "kind": "factory"}, "b": None},
        "fw": {"state": 7, "result": 0},  # no such State
    }
    (where / "state.json").write_text(json.dumps(record))

    async def main() -> tuple[int, int, str, list[str]]:
        async with Lab(key) as lab:
            dev = await lab.device("odd", storage_dir=where)
            errors = [str(e.detail) for e in lab.events if e.kind == "error" and e.device == "odd"]
            return int(dev.fw.state), int(dev.fw.result), dev.firmware_version, errors

    state, result, version, errors = asyncio.run(main())
    assert (state, result, version) == (0, 0, "1.4.0")
    assert any("state.json not usable" in e for e in errors)
