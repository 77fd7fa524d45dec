"""Interop: a simulated device PULLs a signed MCUboot image from libcoap's ``coap-server`` (a
CoAP stack in C, Debian ``libcoap3-bin``) and installs it through its bootloader.

``coap-server -d N`` creates a resource on the first PUT to an unknown path and serves it with
Block2 at the requester's block size; ``coap-client`` PUTs the image there. Skipped when the
binaries are not installed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.harness import NEW, Lab, image, lab_key, update
from tests.libcoap import COAP_CLIENT, COAP_SERVER

pytestmark = pytest.mark.interop


def _client(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert COAP_CLIENT is not None
    return subprocess.run(
        [COAP_CLIENT, "-B", "20", *args], capture_output=True, timeout=30, check=False
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(
    COAP_SERVER is None or COAP_CLIENT is None,
    reason="libcoap's coap-server/coap-client are not installed (apt-get install libcoap3-bin)",
)
def test_device_pulls_and_installs_a_signed_image_from_libcoap_server(tmp_path: Path) -> None:
    assert COAP_SERVER is not None
    key = lab_key(str(tmp_path / "keys"))
    data = image(key, size=20 * 1024 + 5)
    file = tmp_path / "fw.bin"
    file.write_bytes(data)
    for _attempt in range(3):
        port = _free_port()
        proc = subprocess.Popen(
            [COAP_SERVER, "-A", "127.0.0.1", "-p", str(port), "-d", "10"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(0.3)
        if proc.poll() is None:
            break
    else:
        pytest.fail("could not start coap-server")
    try:
        uri = f"coap://127.0.0.1:{port}/fw.bin"
        stored = _client("-m", "put", "-t", "42", "-b", "1024", "-f", str(file), uri)
        assert stored.returncode == 0, stored.stderr

        async def main() -> tuple[int | None, int | None, str | None]:
            async with Lab(key) as lab:
                dev = await lab.device("lc-pull-signed")
                final = await update(lab, dev, uri=uri)
                assert dev.active_image() == data
                return final.as_tuple()

        assert asyncio.run(main()) == (0, 1, NEW)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
