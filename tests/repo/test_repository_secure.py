"""The repository over coaps:// (DTLS-PSK) and https:// (lab certificate), and a simulated
device PULLing from it and from libcoap's ``coap-server-openssl`` with PSK.

Real peers on loopback: libcoap's DTLS client fetches an image (SHA-256 equal) and a wrong key
is refused and recorded; a device with a PSK installs a signed image PULLed over coaps:// and
over https:// (State 0, Result 1, the new version).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from labkit.dtls import PskEntry, PskStore, dtls_available
from labkit.events import Event
from labkit.lwm2m.objects import ProtocolSupport
from labkit.repo import FirmwareRepository
from labkit.server import LwM2MServer
from tests.faults.harness import NEW, Lab, image, lab_key, update

pytestmark = pytest.mark.skipif(not dtls_available(), reason="DTLSSocket is not installed")

KEY = b"repo-key-000001"
CLIENT = shutil.which("coap-client-openssl") or shutil.which("coap-client-gnutls")
SERVER = shutil.which("coap-server-openssl") or shutil.which("coap-server-gnutls")
SECURE = (ProtocolSupport.COAP, ProtocolSupport.COAPS, ProtocolSupport.HTTP, ProtocolSupport.HTTPS)


class SecureLab(Lab):
    """The harness lab with the server on coaps:// and the repository on coaps:// + https://."""

    def __init__(self, key: Path, store: PskStore, keys_dir: Path) -> None:
        super().__init__(key)
        self.store = store
        self.keys_dir = keys_dir
        self.server = LwM2MServer(
            request_timeout=2.0, on_event=self.events.append, psk_store=store, coaps_port=0
        )
        self.repo = FirmwareRepository(
            on_event=self._repo_event, psk_store=store, coaps_port=0, https_port=0,
            tls_keys_dir=keys_dir,
        )  # fmt: skip

    async def device(self, endpoint: str, **kwargs: Any) -> Any:
        from labkit.client import SimulatedDevice

        entry = self.store[endpoint]
        options: dict[str, Any] = {
            "firmware_version": "1.0.0", "lifetime": 60, "request_timeout": 2.0,
            "trusted_key": self.key, "on_event": self.events.append, "retry_delay": 0.2,
            "psk_identity": entry.identity, "psk_key": entry.key, "protocols": SECURE,
            "tls_trust": self.keys_dir / "lab-tls.crt",
        }  # fmt: skip
        options.update(kwargs)
        assert self.server.coaps_uri is not None
        dev = SimulatedDevice(endpoint, self.server.coaps_uri, **options)
        self.devices.append(dev)
        await dev.start(timeout=10)
        await self.server.wait_for_registration(endpoint, timeout=10)
        return dev


@pytest.mark.parametrize("scheme", ["coaps", "https"])
def test_device_pulls_over_coaps_and_https_and_installs(tmp_path: Path, scheme: str) -> None:
    key = lab_key(str(tmp_path / "keys"))
    data = image(key, size=30 * 1024 + 7)
    store = PskStore([PskEntry("pull-1", b"pull-1-id", KEY)])

    async def main() -> tuple[tuple[Any, ...], list[Event]]:
        async with SecureLab(key, store, tmp_path / "keys") as lab:
            lab.repo.add("fw.bin", data)
            dev = await lab.device("pull-1")
            assert set(dev.value("/5/0/8")) == {0, 1, 2, 3}
            uri = (
                lab.repo.coaps_uri("fw.bin") if scheme == "coaps" else lab.repo.https_uri("fw.bin")
            )
            final = await update(lab, dev, uri=uri)
            assert dev.active_image() == data
            return final.as_tuple(), lab.events

    final, events = asyncio.run(main())
    assert final == (0, 1, NEW)
    if scheme == "coaps":
        repo_security = [e for e in events if e.source == "repo" and e.kind == "security"]
        assert repo_security and repo_security[0].reason == "ok"
        assert repo_security[0].device == "pull-1"
    else:
        assert (tmp_path / "keys" / "lab-tls.crt").exists()


def test_https_with_an_untrusted_certificate_fails_the_download(tmp_path: Path) -> None:
    key = lab_key(str(tmp_path / "keys"))
    data = image(key, size=4 * 1024)
    store = PskStore([PskEntry("pull-2", b"pull-2-id", KEY)])
    from labkit.tls import ensure_certificate

    other, _ = ensure_certificate(tmp_path / "other")  # a different lab's certificate

    async def main() -> tuple[Any, ...]:
        async with SecureLab(key, store, tmp_path / "keys") as lab:
            lab.repo.add("fw.bin", data)
            dev = await lab.device("pull-2", tls_trust=other)
            return (await update(lab, dev, uri=lab.repo.https_uri("fw.bin"))).as_tuple()

    state, result, version = asyncio.run(main())
    assert (state, version) == (0, "1.0.0") and result == 4


@pytest.mark.skipif(CLIENT is None, reason="libcoap3-bin with DTLS is not installed")
def test_libcoap_fetches_an_image_over_coaps_and_a_wrong_key_is_recorded(tmp_path: Path) -> None:
    data = os.urandom(50 * 1024 + 3)
    store = PskStore([PskEntry("lc-1", b"lc-1-id", KEY)])

    async def fetch(key: bytes, uri: str) -> subprocess.CompletedProcess[bytes]:
        assert CLIENT is not None
        out = tmp_path / "out.bin"
        proc = await asyncio.create_subprocess_exec(
            CLIENT, "-B", "20", "-b", "1024", "-u", "lc-1-id", "-k", key.decode(),
            "-o", str(out), uri, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.wait_for(proc.wait(), 40)
        body = out.read_bytes() if out.exists() else b""
        out.unlink(missing_ok=True)
        return subprocess.CompletedProcess([], proc.returncode or 0, body)

    async def main() -> tuple[bytes, list[Event]]:
        events: list[Event] = []
        async with FirmwareRepository(
            on_event=events.append, psk_store=store, coaps_port=0
        ) as repo:
            repo.add("big.bin", data)
            got = await fetch(KEY, repo.coaps_uri("big.bin"))
            await fetch(b"wrong-key-00001", repo.coaps_uri("big.bin"))
        return got.stdout, events

    body, events = asyncio.run(main())
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
    security = [(e.code, e.reason) for e in events if e.kind == "security"]
    assert security == [("ok", "ok"), ("failed", "bad_key")]
    assert any(e.kind == "block" for e in events)


def _free_port_pair() -> int:
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                    b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no free pair of UDP ports")


@pytest.mark.skipif(SERVER is None or CLIENT is None, reason="libcoap3-bin is not installed")
def test_device_pulls_from_libcoap_server_over_dtls_psk(tmp_path: Path) -> None:
    assert SERVER is not None and CLIENT is not None
    key = lab_key(str(tmp_path / "keys"))
    data = image(key, size=20 * 1024 + 5)
    (tmp_path / "fw.bin").write_bytes(data)
    store = PskStore([PskEntry("lc-pull", b"lc-pull-id", KEY)])
    for _attempt in range(3):
        port = _free_port_pair()  # coap-server: CoAP on port, DTLS on port + 1
        proc = subprocess.Popen(
            [SERVER, "-A", "127.0.0.1", "-p", str(port), "-d", "10", "-k", KEY.decode()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        time.sleep(0.3)
        if proc.poll() is None:
            break
    else:
        pytest.fail("could not start coap-server")
    try:
        put = subprocess.run(
            [CLIENT, "-B", "20", "-m", "put", "-t", "42", "-b", "1024", "-f",
             str(tmp_path / "fw.bin"), f"coap://127.0.0.1:{port}/fw.bin"],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        assert put.returncode == 0, put.stderr

        async def main() -> tuple[Any, ...]:
            async with SecureLab(key, store, tmp_path / "keys") as lab:
                dev = await lab.device("lc-pull")
                final = await update(lab, dev, uri=f"coaps://127.0.0.1:{port + 1}/fw.bin")
                assert dev.active_image() == data
                return final.as_tuple()

        assert asyncio.run(main()) == (0, 1, NEW)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
