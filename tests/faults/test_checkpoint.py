"""Cheap flash, same guarantees: the slot file stays open, ``state.json`` is a checkpoint.

A PULL saves its resume point (offset + ETag) every 1/16 of the package (4 to 64 KiB), not per
block, and a PUSH block never rewrites ``state.json``. A power cut between two checkpoints
leaves the slot file longer than the checkpointed offset -- here with garbage in that tail, as
a torn flash write would -- and the boot must keep only the checkpointed prefix: the download
resumes there and the device boots exactly the new image.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from labkit.client import firmware
from labkit.client.device import SimulatedDevice
from labkit.client.model import FlashStorage
from tests.faults.harness import KIB, NEW, Lab, image, lab_key, update


def test_flash_storage_keeps_the_slot_open_and_truncates_on_begin(tmp_path: Path) -> None:
    flash = FlashStorage(tmp_path, 64 * KIB)
    flash.begin_slot("b", 0)
    for n in range(4):
        flash.append("b", n * 100, bytes([n]) * 100)
    assert flash.read_slot("b") == b"".join(bytes([n]) * 100 for n in range(4))  # unbuffered
    flash.close()  # the power goes
    flash.begin_slot("b", 250)  # the boot keeps the checkpointed prefix only
    flash.append("b", 250, b"x" * 10)
    flash.finish_slot("b")
    assert flash.read_slot("b") == bytes(100) + b"\x01" * 100 + b"\x02" * 50 + b"x" * 10
    flash.begin_slot("a", 0)
    flash.erase("a")  # closes the open file first
    assert flash.read_slot("a") == b""


def test_power_cut_between_checkpoints_resumes_from_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = lab_key(str(tmp_path / "keys"))
    new = image(key, size=24 * KIB)
    blocks = -(-len(new) // 1024)
    assert firmware.CHECKPOINT_MIN == 4 * KIB  # 24 KiB / 16 is less: a checkpoint per 4 KiB
    monkeypatch.setattr(firmware, "CHECKPOINT_SECONDS", 3600.0)  # bytes decide, not time
    seen: dict[str, Any] = {}
    boot = SimulatedDevice._boot_and_register

    async def garble_then_boot(self: SimulatedDevice) -> None:
        record = self.storage.load() or {}
        dl = record.get("download")
        if self.faults.power_cut_done and dl and "checkpoint" not in seen:
            slot = self.storage.slot_path("b")
            seen["checkpoint"] = int(dl["offset"])
            seen["slot_before"] = slot.stat().st_size
            with slot.open("r+b") as fh:  # the bytes after the checkpoint are not trusted
                fh.seek(int(dl["offset"]))
                fh.write(b"\xa5" * (seen["slot_before"] - int(dl["offset"]) + 512))
        await boot(self)

    monkeypatch.setattr(SimulatedDevice, "_boot_and_register", garble_then_boot)

    async def main() -> tuple[tuple[int | None, int | None, str | None], Lab, bytes, int]:
        async with Lab(key) as lab:
            dev = await lab.device("ckpt-coap", faults=["power-loss"])
            dev.faults.power_cut_point = ("block", 9)  # 10 KiB stored, checkpoint at 8 KiB
            lab.repo.add("fw.bin", new)
            final = await update(lab, dev, uri=lab.repo.coap_uri("fw.bin"))
            assert dev.faults.power_cut_done
            return final.as_tuple(), lab, dev.active_image(), dev.storage.writes

    final, lab, running, writes = asyncio.run(main())
    assert final == (0, 1, NEW)
    assert running == new  # not one garbage byte kept
    assert seen["checkpoint"] == 8 * KIB and seen["slot_before"] == 10 * KIB, seen
    served = Counter(
        int(e.block)
        for e in lab.events
        if e.source == "repo" and e.kind == "block" and e.block is not None
    )
    assert set(served) == set(range(blocks))
    again = {n for n, count in served.items() if count > 1}
    assert again == {8, 9}, served  # fetched again: only the blocks after the checkpoint
    assert writes < blocks, writes  # state.json is not rewritten per block


def test_push_blocks_do_not_rewrite_state_json(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    new = image(key, size=32 * KIB)

    async def main() -> tuple[tuple[int | None, int | None, str | None], int]:
        async with Lab(key) as lab:
            dev = await lab.device("ckpt-push")
            final = await update(lab, dev, push=new)
            assert dev.active_image() == new
            return final.as_tuple(), dev.storage.writes

    final, writes = asyncio.run(main())
    assert final == (0, 1, NEW)
    assert writes < 12, writes  # a handful of State/Result changes for 32 blocks
