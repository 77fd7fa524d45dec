"""libcoap's ``coap-client`` (Debian ``libcoap3-bin``) downloads from the lab's repository.

A third-party CoAP stack checks what aiocoap alone cannot: that the repository's Block2,
ETag and Size2 are what a real constrained client expects. Skipped when no coap-client binary
is installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from pathlib import Path

import pytest

from labkit.events import Event
from labkit.repo.images import build_image, ensure_key, verify_image
from labkit.repo.repository import FirmwareRepository
from tests.libcoap import COAP_CLIENT

pytestmark = pytest.mark.interop

needs_libcoap = pytest.mark.skipif(COAP_CLIENT is None, reason="libcoap's coap-client is absent")


async def coap_client(*args: str, timeout: float = 60) -> tuple[int, str]:
    assert COAP_CLIENT is not None
    process = await asyncio.create_subprocess_exec(
        COAP_CLIENT,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, output.decode(errors="replace")


@needs_libcoap
@pytest.mark.parametrize(("block_size", "size"), [(512, 120_000), (1024, 60_000), (64, 8_000)])
def test_libcoap_fetches_a_signed_image_blockwise(
    block_size: int, size: int, tmp_path: Path
) -> None:
    key = ensure_key("ed25519", tmp_path / "keys")
    image = build_image(version="2.1.0", size=size, key=key)
    out = tmp_path / "downloaded.bin"

    async def main() -> list[Event]:
        events: list[Event] = []
        async with FirmwareRepository(on_event=events.append) as repo:
            repo.add("app.bin", image)
            code, output = await coap_client(
                "-m", "get", "-b", str(block_size), "-B", "30", "-o", str(out),
                repo.coap_uri("app.bin"),
            )  # fmt: skip
            assert code == 0, output
            blocks = math.ceil(len(image) / block_size)
            assert repo.served_blocks("app.bin") == blocks
            assert repo.served_bytes("app.bin", "coap") == len(image)
        return events

    events = asyncio.run(asyncio.wait_for(main(), 90))
    downloaded = out.read_bytes()
    assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(image).hexdigest()
    assert verify_image(downloaded, key=key).version == "2.1.0"
    blocks = [e for e in events if e.kind == "block"]
    assert [e.block for e in blocks] == list(range(len(blocks)))
    assert all(f"size={block_size} " in (e.detail or "") for e in blocks)


@needs_libcoap
def test_libcoap_non_confirmable_download(tmp_path: Path) -> None:
    image = bytes(hashlib.shake_256(b"non").digest(20_000))
    out = tmp_path / "non.bin"

    async def main() -> None:
        async with FirmwareRepository() as repo:
            repo.add("non.bin", image)
            code, output = await coap_client(
                "-N", "-m", "get", "-b", "256", "-B", "30", "-o", str(out),
                repo.coap_uri("non.bin"),
            )  # fmt: skip
            assert code == 0, output

    asyncio.run(asyncio.wait_for(main(), 90))
    assert out.read_bytes() == image


@needs_libcoap
def test_libcoap_sees_4xx_for_unknown_images_and_other_methods() -> None:
    async def main() -> list[Event]:
        events: list[Event] = []
        async with FirmwareRepository(on_event=events.append) as repo:
            repo.add("app.bin", b"firmware")
            _, missing = await coap_client("-m", "get", "-B", "10", repo.coap_uri("nope.bin"))
            _, put = await coap_client("-m", "put", "-e", "x", "-B", "10", repo.coap_uri("app.bin"))
            _, ok = await coap_client("-m", "get", "-B", "10", repo.coap_uri("app.bin"))
            assert "4.04" in missing
            assert "4.05" in put
            assert "firmware" in ok
        return events

    events = asyncio.run(asyncio.wait_for(main(), 60))
    assert [e.code for e in events if e.kind == "error"] == ["4.04", "4.05"]
