"""Download resumption: CoAP from the next block, HTTP with Range + If-Match, and a restart from
zero when the image changed (ETag) -- counted on the repository's side."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from labkit.events import Event
from tests.faults.harness import KIB, NEW, Lab, image, lab_key, update


def _coap_blocks(events: list[Event], name: str) -> Counter[int]:
    return Counter(
        int(e.block)
        for e in events
        if e.source == "repo"
        and e.kind == "block"
        and e.path == f"/fw/{name}"
        and e.block is not None
    )


def test_coap_pull_resumes_after_a_dropped_block_without_fetching_block_0_again(
    tmp_path: Path,
) -> None:
    key = lab_key(str(tmp_path / "keys"))
    data = image(key, size=16 * KIB)
    blocks = -(-len(data) // 1024)

    async def main() -> tuple[tuple[int | None, int | None, str | None], Lab]:
        async with Lab(key) as lab:
            dev = await lab.device("resume-coap")
            lab.repo.add("fw.bin", data)
            lab.repo.drop_after("fw.bin", blocks=5)  # the request for block 5 is never answered
            final = await update(lab, dev, uri=lab.repo.coap_uri("fw.bin"))
            return final.as_tuple(), lab

    final, lab = asyncio.run(main())
    assert final == (0, 1, NEW)
    served = _coap_blocks(lab.events, "fw.bin")
    assert served[0] == 1 and set(served) == set(range(blocks))
    assert all(count == 1 for count in served.values()), served
    assert lab.repo.served_blocks("fw.bin") == blocks
    faults = [e for e in lab.events if e.source == "repo" and e.kind == "fault"]
    assert len(faults) == 1 and faults[0].block == 5


def test_coap_pull_resumes_after_a_power_cut_from_the_persisted_offset(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    data = image(key, size=12 * KIB)
    blocks = -(-len(data) // 1024)

    async def main() -> tuple[tuple[int | None, int | None, str | None], Lab]:
        async with Lab(key) as lab:
            dev = await lab.device("resume-power", faults=["power-loss"])
            dev.faults.power_cut_point = ("block", 6)  # the power goes after block 6 is stored
            lab.repo.add("fw.bin", data)
            final = await update(lab, dev, uri=lab.repo.coap_uri("fw.bin"))
            assert dev.faults.power_cut_done
            return final.as_tuple(), lab

    final, lab = asyncio.run(main())
    assert final == (0, 1, NEW)
    served = _coap_blocks(lab.events, "fw.bin")
    assert served[0] == 1 and set(served) == set(range(blocks)), served
    assert lab.registrations("resume-power") == 3  # first boot, after the cut, after the update


def test_coap_pull_restarts_from_zero_when_the_image_changed(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    first = image(key, version="2.0.0", size=8 * KIB)
    second = image(key, version="3.0.0", size=8 * KIB)

    async def main() -> tuple[tuple[int | None, int | None, str | None], Lab]:
        async with Lab(key) as lab:

            def swap(event: Event) -> None:  # the image changes while the device waits
                if event.source == "repo" and event.kind == "fault":
                    lab.repo.replace("fw.bin", second)

            lab.on_repo_event = swap
            dev = await lab.device("etag-coap")
            lab.repo.add("fw.bin", first)
            lab.repo.drop_after("fw.bin", blocks=3)
            final = await update(lab, dev, uri=lab.repo.coap_uri("fw.bin"))
            return final.as_tuple(), lab

    final, lab = asyncio.run(main())
    assert final == (0, 1, "3.0.0")
    served = _coap_blocks(lab.events, "fw.bin")
    assert served[0] == 2  # block 0 again, of the new image


def test_http_pull_resumes_with_range_and_if_match(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    data = image(key, size=16 * KIB)

    async def main() -> tuple[tuple[int | None, int | None, str | None], Lab]:
        async with Lab(key) as lab:
            dev = await lab.device("resume-http")
            lab.repo.add("fw.bin", data)
            lab.repo.drop_after("fw.bin", bytes=5000)  # the connection closes mid-body
            final = await update(lab, dev, uri=lab.repo.http_uri("fw.bin"))
            return final.as_tuple(), lab

    final, lab = asyncio.run(main())
    assert final == (0, 1, NEW)
    assert lab.repo.served_bytes("fw.bin", "http") == len(data)  # not one byte twice
    answers = [e for e in lab.events if e.source == "repo" and e.kind == "response" and e.code]
    codes = [str(e.code) for e in answers]
    assert codes[:2] == ["200", "206"], codes
    assert f"bytes 5000-{len(data) - 1}/{len(data)}" in (answers[1].detail or "")


def test_http_pull_restarts_from_zero_on_412(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    first = image(key, version="2.0.0", size=8 * KIB)
    second = image(key, version="3.0.0", size=8 * KIB)

    async def main() -> tuple[tuple[int | None, int | None, str | None], Lab]:
        async with Lab(key) as lab:

            def swap(event: Event) -> None:
                if event.source == "repo" and event.kind == "fault":
                    lab.repo.replace("fw.bin", second)

            lab.on_repo_event = swap
            dev = await lab.device("etag-http")
            lab.repo.add("fw.bin", first)
            lab.repo.drop_after("fw.bin", bytes=3000)
            final = await update(lab, dev, uri=lab.repo.http_uri("fw.bin"))
            return final.as_tuple(), lab

    final, lab = asyncio.run(main())
    assert final == (0, 1, "3.0.0")
    codes = [
        str(e.code) for e in lab.events if e.source == "repo" and e.kind == "response" and e.code
    ]
    assert codes[:3] == ["200", "412", "200"], codes
