"""``labkit fota --listen coaps://...`` updates a ``labkit device`` over DTLS-PSK, across two
processes: by PUSH over the DTLS session, by PULL over coaps:// and by PULL over https://
(the lab certificate, made on first use in the command's ``data/keys``), each ending in
``RESULT 1 SUCCESS``.
"""

from __future__ import annotations

import os
import random
import select
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.dtls import dtls_available

ROOT = Path(__file__).resolve().parents[2]
KEY_HEX = "6c61622d7365637265742d6b65792d31"
pytestmark = pytest.mark.skipif(not dtls_available(), reason="DTLSSocket is not installed")


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=5)
    return err or ""


@pytest.mark.parametrize(
    ("method", "protocol"), [("push", "coap"), ("pull", "coaps"), ("pull", "https")]
)
def test_fota_over_dtls_psk_two_processes(tmp_path: Path, method: str, protocol: str) -> None:
    package = tmp_path / "fw.bin"
    package.write_bytes(b"LABKIT-FW 2.0.0\n" + random.Random(4).randbytes(30_000))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "labkit", "fota", "--listen", "coaps://127.0.0.1:0",
        "--psk", f"sec-cli:sec-cli-id:{KEY_HEX}", "--endpoint", "sec-cli",
        "--package", str(package), "--method", method, "--protocol", protocol,
        "--timeout", "30",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    dev: subprocess.Popen[str] | None = None
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "labkit fota printed nothing"
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on coaps://127.0.0.1:"), first
        dev_cmd = [
            sys.executable, "-m", "labkit", "device", "--server", first.split()[-1],
            "--endpoint", "sec-cli", "--psk-identity", "sec-cli-id", "--psk-key", KEY_HEX,
            "--tls-trust", str(tmp_path / "data" / "keys" / "lab-tls.crt"),
        ]  # fmt: skip
        dev = subprocess.Popen(
            dev_cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.returncode is None:
            _stop(proc)
        dev_err = _stop(dev) if dev is not None else ""
    lines = out.splitlines()
    assert lines and lines[-1] == "RESULT 1 SUCCESS", (out, err, dev_err)
    assert proc.returncode == 0
    if protocol != "coap":
        assert any(f"{protocol}://127.0.0.1:" in line for line in lines), out
    assert KEY_HEX not in out + err + dev_err


def test_bootstrap_then_fota_three_processes(tmp_path: Path) -> None:
    """``labkit bootstrap`` sends a ``labkit device --bootstrap`` (bootstrap PSK only) to
    ``labkit fota --listen coaps://`` with the management key; the PUSH succeeds."""
    package = tmp_path / "fw.bin"
    package.write_bytes(b"LABKIT-FW 2.0.0\n" + random.Random(5).randbytes(10_000))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bs_hex, dm_hex = KEY_HEX, "00112233445566778899aabbccddeeff"
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "labkit", *args], cwd=tmp_path, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        procs.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, f"{args[0]} printed nothing"
        return proc, proc.stdout.readline().strip()

    try:
        fota, first = start(
            "fota", "--listen", "coaps://127.0.0.1:0", "--psk", f"bs-cli:bs-cli-dm:{dm_hex}",
            "--endpoint", "bs-cli", "--package", str(package), "--method", "push",
            "--timeout", "30",
        )  # fmt: skip
        dm_uri = first.split()[-1]
        _, bs_line = start(
            "bootstrap", "--listen", "coaps://127.0.0.1:0", "--server-uri", dm_uri,
            "--psk", f"bs-cli:bs-cli-bs:{bs_hex}", "--server-psk", f"bs-cli:bs-cli-dm:{dm_hex}",
        )  # fmt: skip
        assert bs_line.startswith("bootstrap server listening on coaps://"), bs_line
        start(
            "device", "--bootstrap", bs_line.split()[-1], "--endpoint", "bs-cli",
            "--psk-identity", "bs-cli-bs", "--psk-key", bs_hex,
        )  # fmt: skip
        out, err = fota.communicate(timeout=120)
    finally:
        errs = [_stop(p) for p in procs]
    lines = out.splitlines()
    assert lines and lines[-1] == "RESULT 1 SUCCESS", (out, err, errs)
    assert not any(dm_hex in e or bs_hex in e for e in [out, *errs])
