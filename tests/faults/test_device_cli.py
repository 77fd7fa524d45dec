"""``labkit device --fault NAME``: the command takes the fault names, and a device started in the
folder where ``labkit image build`` made its image trusts that image (the same lab key)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.cli import build_parser, main
from labkit.server import LwM2MServer, ServerError
from labkit.sim.faults import FAULTS


def test_every_fault_name_is_accepted_and_others_are_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    base = ["device", "--server", "coap://127.0.0.1:5683", "--endpoint", "x"]
    argv = [*base]
    for name in FAULTS:
        argv += ["--fault", name]
    args = parser.parse_args([*argv, "--flash-size", "65536", "--ram", "512", "--battery", "40"])
    assert args.fault == list(FAULTS)
    assert (args.flash_size, args.ram, args.battery) == (65536, 512, 40.0)
    fleet = parser.parse_args(
        ["fleet", "--server", "coap://h:1", "--count", "2", "--fault", "defer"]
    )
    assert fleet.fault == ["defer"]
    with pytest.raises(SystemExit) as exc:
        main([*base, "--fault", "gremlins"])
    assert exc.value.code == 2
    assert "gremlins" in capsys.readouterr().err


async def _poll(proxy: object, path: str, want: set[int], timeout: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = -1
    while loop.time() < deadline:
        with contextlib.suppress(ServerError, TimeoutError):
            value = int((await proxy.read(path, timeout=2)).value)  # type: ignore[attr-defined]
            if value in want:
                return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} stayed {value}")


def test_device_command_with_boot_fail_rolls_back(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    built = subprocess.run(
        [sys.executable, "-m", "labkit", "image", "build", "--version", "2.0.0",
         "--size", "16384", "--out", "fw.bin"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    image = (tmp_path / "fw.bin").read_bytes()

    async def main_() -> tuple[int, int, str, list[str]]:
        server = LwM2MServer(request_timeout=3)
        await server.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "labkit", "device", "--server", server.uri,
             "--endpoint", "cli-bf", "--fault", "boot-fail", "--lifetime", "60"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env, start_new_session=True,
        )  # fmt: skip
        try:
            reg = await server.wait_for_registration("cli-bf", timeout=30)
            proxy = server.device("cli-bf")
            (await proxy.write("/5/0/0", image, timeout=5)).raise_for_status()
            await _poll(proxy, "/5/0/3", {2}, 10)
            (await proxy.execute("/5/0/2")).raise_for_status()
            await server.wait_for_registration("cli-bf", timeout=20, after=reg.registered_at)
            result = await _poll(proxy, "/5/0/5", {8}, 10)
            state = int((await proxy.read("/5/0/3")).value)  # type: ignore[arg-type]
            version = str((await proxy.read("/3/0/3")).value)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate(timeout=10)
            await server.stop()
        return state, result, version, out.splitlines()

    state, result, version, lines = asyncio.run(asyncio.wait_for(main_(), 90))
    assert (state, result, version) == (0, 8, "1.0.0"), lines
    assert "fault cli-bf boot-fail" in lines, lines
