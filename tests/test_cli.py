"""The ``labkit`` command: usage errors, and serve/device/fleet/lab as real subprocesses.

The long-running commands are started with ``python -m labkit`` in their own process group and
followed line by line on stdout; every wait is bounded and every process is killed in a
``finally``. UDP ports are picked by binding port 0 and closing the socket; a start that loses
the race for the port is retried with a new one.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from labkit.cli import COMMANDS, build_parser, coap_uri, host_port, main

REPO = Path(__file__).resolve().parent.parent


# -- helpers -------------------------------------------------------------------------------
def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A ``python -m labkit ...`` subprocess whose stdout is read line by line in a thread."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "labkit", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
            start_new_session=True,  # own process group, killed as a whole in finally
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for a stdout line matching ``pattern`` (regex search)."""
        regex = re.compile(pattern)
        for line in self.lines:
            if (m := regex.search(line)) is not None:
                return m
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if (m := regex.search(line)) is not None:
                return m
        raise AssertionError(
            f"no line matching {pattern!r} from labkit {' '.join(self.args)} within {timeout} s;"
            f" output so far:\n" + "\n".join(self.lines)
        )

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=5)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


@contextmanager
def labkit_proc(*args: str, env: dict[str, str] | None = None) -> Iterator[Proc]:
    proc = Proc(args, env=env)
    try:
        yield proc
    finally:
        proc.kill()


@contextmanager
def serve_on_free_port(*extra: str) -> Iterator[tuple[Proc, int]]:
    """``labkit serve`` on a free UDP port (retried if another process took the port)."""
    for _attempt in range(3):
        port = free_port()
        proc = Proc(["serve", "--listen", f"127.0.0.1:{port}", *extra])
        try:
            proc.expect(r"^(listening on|labkit: cannot listen)", timeout=30)
            if any("cannot listen" in line for line in proc.lines):
                continue
            yield proc, port
            return
        finally:
            proc.kill()
    pytest.fail("could not start labkit serve on a free port after 3 attempts")


# -- argument parsing ----------------------------------------------------------------------
def test_subcommands_are_registered_in_the_table() -> None:
    assert {"lab", "serve", "device", "fleet"} <= set(COMMANDS)
    parser = build_parser()
    args = parser.parse_args(["serve"])
    assert args.listen == ("127.0.0.1", 5683)  # DESIGN.md section 6 default


def test_host_port_and_coap_uri_types() -> None:
    assert host_port("127.0.0.1:5683") == ("127.0.0.1", 5683)
    assert host_port("[::1]:0") == ("::1", 0)
    assert coap_uri("coap://127.0.0.1:5683/") == "coap://127.0.0.1:5683"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["serve", "--listen", "localhost"],
        ["serve", "--listen", "127.0.0.1:70000"],
        ["device", "--endpoint", "x"],  # --server missing
        ["device", "--server", "http://127.0.0.1:5683", "--endpoint", "x"],
        ["device", "--server", "coap://127.0.0.1:5683"],  # --endpoint missing
        ["fleet", "--server", "coap://127.0.0.1:5683", "--count", "0"],
        ["fleet", "--server", "coap://127.0.0.1:5683", "--count", "many"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_lab_refuses_a_missing_notebooks_folder(tmp_path: Path) -> None:
    assert main(["lab", "--notebooks", str(tmp_path / "nope")]) == 2


# -- serve + device + fleet as processes ---------------------------------------------------
def test_serve_and_device_register_and_deregister_on_sigint() -> None:
    with serve_on_free_port() as (serve, port):
        with labkit_proc(
            "device",
            "--server",
            f"coap://127.0.0.1:{port}",
            "--endpoint",
            "cli-dev-1",
            "--lifetime",
            "60",
            "--firmware-version",
            "3.1.4",
        ) as device:
            device.expect(r"^registered cli-dev-1 to coap://127\.0\.0\.1:\d+ from 127\.0\.0\.1:\d+")
            m = serve.expect(r"^registered cli-dev-1 from 127\.0\.0\.1:(\d+) lt=60 lwm2m=1\.1")
            assert 0 < int(m.group(1)) < 65536

            device.signal(signal.SIGINT)
            assert device.wait(timeout=20) == 0
            device.expect(r"^deregistered cli-dev-1$")
            serve.expect(r"^deregistered cli-dev-1$")

        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=20) == 0
        serve.expect(r"^stopped$")


def test_device_exits_3_when_no_server_answers() -> None:
    port = free_port()  # nobody listens there
    with labkit_proc(
        "device",
        "--server",
        f"coap://127.0.0.1:{port}",
        "--endpoint",
        "lonely",
        "--timeout",
        "2",
    ) as device:
        assert device.wait(timeout=30) == 3
        device.expect(r"lonely could not register")


def test_fleet_registers_n_devices_and_deregisters_them() -> None:
    with (
        serve_on_free_port() as (serve, port),
        labkit_proc(
            "fleet",
            "--server",
            f"coap://127.0.0.1:{port}",
            "--count",
            "5",
            "--prefix",
            "fl-",
            "--lifetime",
            "60",
        ) as fleet,
    ):
        fleet.expect(r"^registered 5/5 devices to coap://127\.0\.0\.1:\d+$", timeout=30)
        for i in range(1, 6):
            serve.expect(rf"^registered fl-{i:04d} from 127\.0\.0\.1:\d+ lt=60")
        fleet.signal(signal.SIGTERM)
        assert fleet.wait(timeout=30) == 0
        fleet.expect(r"^deregistered 5 devices$")
        for i in range(1, 6):
            serve.expect(rf"^deregistered fl-{i:04d}$")


def test_serve_records_a_run(tmp_path: Path) -> None:
    with serve_on_free_port("--record", str(tmp_path), "--run-id", "cli-run") as (serve, port):
        with labkit_proc(
            "device", "--server", f"coap://127.0.0.1:{port}", "--endpoint", "rec-1"
        ) as device:
            serve.expect(r"^registered rec-1 ")
            device.expect(r"^registered rec-1 ")
            device.signal(signal.SIGINT)
            assert device.wait(timeout=20) == 0
            serve.expect(r"^deregistered rec-1$")
        serve.signal(signal.SIGINT)
        assert serve.wait(timeout=20) == 0
    from labkit.record import read_run

    run = read_run(tmp_path / "cli-run")
    assert run.complete
    frame = run.events
    kinds = set(frame.loc[frame["device"] == "rec-1", "kind"].astype(str))
    assert {"registered", "deregistered"} <= kinds


def test_serve_runs_the_firmware_repository(tmp_path: Path) -> None:
    image = tmp_path / "app-2.0.0.bin"
    image.write_bytes(b"LABKIT-FW 2.0.0\n" + bytes(range(256)) * 40)
    with serve_on_free_port(
        "--repo-coap", "127.0.0.1:0", "--repo-http", "127.0.0.1:0", "--image", str(image)
    ) as (serve, _port):
        serve.expect(r"^repository coap://127\.0\.0\.1:\d+ http://127\.0\.0\.1:\d+$")
        m = serve.expect(r"^image app-2\.0\.0\.bin (coap://\S+) (http://\S+)$")
        assert m.group(1).endswith("/fw/app-2.0.0.bin")
        with urllib.request.urlopen(m.group(2), timeout=10) as response:
            assert response.read() == image.read_bytes()
        serve.signal(signal.SIGINT)
        assert serve.wait(timeout=20) == 0


def test_serve_refuses_a_missing_image(tmp_path: Path) -> None:
    code = main(["serve", "--listen", "127.0.0.1:0", "--image", str(tmp_path / "nope.bin")])
    assert code == 2


# -- labkit lab ----------------------------------------------------------------------------
def test_lab_starts_jupyterlab_on_loopback(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM)
    token = "labkit-test-token"
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    env = dict(os.environ)
    # Keep JupyterLab away from the user's own config and runtime files.
    for name, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTER_DATA_DIR", "data"),
        ("IPYTHONDIR", "ipython"),
    ):
        env[name] = str(tmp_path / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    with labkit_proc(
        "lab",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--notebooks",
        str(notebooks),
        "--",
        f"--IdentityProvider.token={token}",
        env=env,
    ) as lab:
        lab.expect(rf"^JupyterLab on http://127\.0\.0\.1:{port}/lab ")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/status",
            headers={"Authorization": f"token {token}"},
        )
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            if lab.popen.poll() is not None:
                lab.wait(timeout=5)
                pytest.fail("JupyterLab exited early:\n" + "\n".join(lab.lines))
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    status = json.load(response)
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert status is not None, "JupyterLab did not answer /api/status within 60 s"
        assert "started" in status
