"""Interop with libcoap (Debian ``libcoap3-bin``): a second, independent CoAP stack in C.

What is exercised, all over UDP on 127.0.0.1:

* ``coap-client`` reads ``/3/0/3`` (text/plain, Accept 0) from a simulated device;
* ``coap-client`` PUSHes a package to ``/5/0/0`` block-wise (Block1, 64..1024-byte blocks,
  Content-Format 42): the device ends in State 2 (DOWNLOADED), and after ``POST /5/0/2`` it
  reboots and registers again to the lab with the new version;
* ``coap-server -d`` serves a package (PUT into a dynamic resource) and a simulated device
  PULLs it (``/5/0/1`` = ``coap://...``) with Block2;
* ``coap-client`` registers to the lab's LwM2M server (``POST /rd?ep=...``, link format).

Quirks found (libcoap 4.3.1):

* The binaries are installed with a TLS suffix (``coap-client-notls``, ``-gnutls``,
  ``-openssl``); there is no plain ``coap-client`` unless alternatives are set up. We take
  whichever exists.
* ``-b SIZE`` is used for both Block1 (PUT) and Block2; it must be a power of two from 16 to
  1024. ``-B SECONDS`` bounds the whole exchange (default 90 s): always pass it.
* ``-t`` / ``-A`` take numbers or names; numbers (42, 0, 40) are unambiguous.
* ``coap-client`` prints the payload to stdout without a trailing newline.
* ``coap-server -d N`` creates a resource on the first PUT to an unknown path and then serves
  it with Block2 at the requester's block size -- a ready-made firmware repository.

CI: ``apt-get install -y libcoap3-bin``. Without it these tests skip.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.runtime import Lab
from tests.libcoap import COAP_CLIENT, COAP_SERVER

pytestmark = pytest.mark.interop


needs_client = pytest.mark.skipif(
    COAP_CLIENT is None,
    reason="libcoap's coap-client is not installed (apt-get install libcoap3-bin)",
)
needs_server = pytest.mark.skipif(
    COAP_SERVER is None,
    reason="libcoap's coap-server is not installed (apt-get install libcoap3-bin)",
)


def coap_client(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[bytes]:
    """Run coap-client with a libcoap-side bound (-B) and a process-side bound."""
    assert COAP_CLIENT is not None
    return subprocess.run(
        [COAP_CLIENT, "-B", str(int(timeout)), *args],
        capture_output=True,
        timeout=timeout + 10,
        check=False,
    )


def lab_package(version: str, size: int, seed: int = 3) -> bytes:
    header = f"LABKIT-FW {version}\n".encode()
    return header + random.Random(seed).randbytes(size - len(header))


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(request_timeout=10.0) as lab:
        yield lab


@needs_client
def test_coap_client_reads_the_firmware_version(lab: Lab) -> None:
    device = lab.add_device("lc-read", firmware_version="4.5.6")
    done = coap_client("-m", "get", "-A", "0", f"coap://127.0.0.1:{device.port}/3/0/3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == b"4.5.6"


@needs_client
def test_coap_client_gets_not_found_for_an_unknown_object(lab: Lab) -> None:
    device = lab.add_device("lc-404")
    done = coap_client("-m", "get", "-v", "4", f"coap://127.0.0.1:{device.port}/42/0/0")
    assert b"4.04" in done.stdout + done.stderr


@needs_client
@pytest.mark.parametrize("block_size", [64, 256, 1024])
def test_coap_client_block_wise_push(lab: Lab, tmp_path: Path, block_size: int) -> None:
    endpoint = f"lc-push-{block_size}"
    device = lab.add_device(endpoint, firmware_version="1.0.0", lifetime=60)
    package = lab_package("1.1.0", 24 * 1024 + 17, seed=block_size)  # last block is partial
    file = tmp_path / "package.bin"
    file.write_bytes(package)

    done = coap_client(
        "-m",
        "put",
        "-t",
        "42",
        "-b",
        str(block_size),
        "-f",
        str(file),
        f"coap://127.0.0.1:{device.port}/5/0/0",
    )
    assert done.returncode == 0, done.stderr
    assert device.state == 2  # DOWNLOADED
    assert device.result == 0

    events = lab.events()
    states = events[
        (events["kind"] == "fw_state")
        & (events["device"] == endpoint)
        & (events["source"] == "device")
    ]["state"].astype(str)
    assert list(states)[-2:] == ["DOWNLOADING", "DOWNLOADED"]

    if block_size != 1024:
        return
    # Execute Update from libcoap too: 2.04, reboot, re-registration to the lab.
    registered_at = device.registration.registered_at
    done = coap_client("-m", "post", f"coap://127.0.0.1:{device.port}/5/0/2")
    assert done.returncode == 0, done.stderr
    lab.wait_for_registration(endpoint, timeout=30, after=registered_at)
    assert device.read("/3/0/3") == "1.1.0"
    assert device.read("/5/0/5") == 1


@pytest.fixture
def coap_server(tmp_path: Path) -> Iterator[int]:
    """libcoap's coap-server on 127.0.0.1 with dynamic resources; yields its port."""
    assert COAP_SERVER is not None
    for _attempt in range(3):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = (tmp_path / "coap-server.log").open("wb")
        proc = subprocess.Popen(
            [COAP_SERVER, "-A", "127.0.0.1", "-p", str(port), "-d", "8", "-v", "3"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            time.sleep(0.3)
            if proc.poll() is not None:
                continue  # lost the port to someone else; try another
            probe = coap_client("-m", "get", f"coap://127.0.0.1:{port}/", timeout=5)
            if probe.returncode != 0:
                continue
            yield port
            return
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            log.close()
    pytest.fail("could not start coap-server on a free port")


@needs_client
@needs_server
def test_device_pulls_a_package_from_libcoap_server(
    lab: Lab, coap_server: int, tmp_path: Path
) -> None:
    package = lab_package("3.0.0", 40 * 1024 + 5)
    file = tmp_path / "fw.bin"
    file.write_bytes(package)
    uri = f"coap://127.0.0.1:{coap_server}/fw.bin"
    stored = coap_client("-m", "put", "-t", "42", "-b", "1024", "-f", str(file), uri)
    assert stored.returncode == 0, stored.stderr

    device = lab.add_device("lc-pull", firmware_version="1.0.0", lifetime=60)
    device.write("/5/0/1", uri)
    lab.wait_for(lambda: device.state == 2 or device.result != 0, timeout=30)
    assert device.state == 2, f"download failed with result {device.result}"

    registered_at = device.registration.registered_at
    device.execute("/5/0/2")
    lab.wait_for_registration("lc-pull", timeout=30, after=registered_at)
    assert device.read("/3/0/3") == "3.0.0"


@needs_client
def test_coap_client_registers_to_the_lab_server(lab: Lab) -> None:
    port = int(lab.server_uri.rsplit(":", 1)[1])
    done = coap_client(
        "-m",
        "post",
        "-t",
        "40",
        "-e",
        "</1/0>,</3/0>,</5/0>",
        "-v",
        "5",
        f"coap://127.0.0.1:{port}/rd?ep=libcoap-ep&lt=60&lwm2m=1.1&b=U",
    )
    assert done.returncode == 0, done.stderr
    frame = lab.registrations()
    row = frame[frame["endpoint"] == "libcoap-ep"]
    assert len(row) == 1
    assert int(row["lifetime"].iloc[0]) == 60
    assert row["lwm2m"].iloc[0] == "1.1"
    reg = lab.device("libcoap-ep").registration
    assert set(reg.objects) == {1, 3, 5}
