"""Interop with lwm2m-node-lib (npm, 1.4.0): an old, text-only LwM2M client and server in JS.

``tests/interop/node/peer.js`` wraps the library as a line-oriented peer (JSON lines on stdout,
commands on stdin). Two directions are tested over UDP on 127.0.0.1:

* its **client** registers to the lab's :class:`~labkit.server.LwM2MServer`; the lab reads and
  writes its resources and sees it de-register;
* a labkit **simulated device** registers to its **server**, which reads ``/3/0/3`` and
  ``/5/0/3`` and writes ``/1/0/1`` (the device then sends an Update with the new lifetime).

Quirks of lwm2m-node-lib found on the way (read from its source and seen on the wire):

* Client: registers with ``lwm2m=1.0&b=U``, **no Content-Format** on the Register, and a payload
  of instance links only (``</3/0>,</5/0>``); a server must not insist on Content-Format 40.
  ``client.lifetime`` is documented as milliseconds but sent verbatim as ``lt=`` seconds.
  It sends no Updates by itself (no lifetime timer). It answers reads with a text body and
  **no Content-Format option**, accepts any Content-Format on writes and stores the text.
  After the Register it re-binds a CoAP *server* on the port the Register left from (a short
  window where a request could be lost; CoAP retransmission covers it).
* Server: sends every request to a device through **its own CoAP proxy** (Proxy-Uri to
  itself), so requests come from a different UDP port than the one the device registered to;
  a client that ignores unknown peers (Anjay does, spec 4.2) will not answer it. Writes use the
  **legacy Content-Format 1541** (pre-1.0 text), reads send ``Accept: 0``. ``Location-Path``
  is **one option ``rd/1`` containing a slash** (two segments in the spec). Its
  ``updateRegistration`` handler is called as ``(device, payload, callback)``, not as the
  README says. It is a process-wide singleton, and Node 20 prints "circular dependency"
  warnings on stderr (harmless).

CI: ``npm ci --prefix tests/interop/node`` (Node >= 18). Without it these tests skip.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from labkit.runtime import Lab

pytestmark = pytest.mark.interop

NODE_DIR = Path(__file__).resolve().parent / "node"
PEER = NODE_DIR / "peer.js"
NODE = shutil.which("node")

requires_node_lib = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "lwm2m-node-lib").is_dir(),
    reason="node or lwm2m-node-lib missing (run: npm ci --prefix tests/interop/node)",
)


class NodePeer:
    """``node peer.js ...`` with JSON lines read in a thread and commands written to stdin."""

    def __init__(self, *args: str) -> None:
        assert NODE is not None
        self.popen = subprocess.Popen(
            [NODE, str(PEER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=NODE_DIR,
            start_new_session=True,
        )
        self.messages: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with suppress(json.JSONDecodeError):
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def expect(self, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict:
        for message in self.messages:
            if match(message):
                return message
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if message is None:
                break
            self.messages.append(message)
            if match(message):
                return message
        stderr = ""
        if self.popen.poll() is not None and self.popen.stderr is not None:
            stderr = self.popen.stderr.read()
        raise AssertionError(f"no matching message within {timeout} s: {self.messages} {stderr}")

    def send(self, **command: Any) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(command) + "\n")
        self.popen.stdin.flush()

    def ask(self, timeout: float = 20.0, **command: Any) -> dict[str, Any]:
        """Send a server command and wait for its answer (answers carry ``op`` and ``path``)."""
        self.send(**command)
        done = [m for m in self.messages if m.get("op") == command["op"]]
        return self.expect(
            lambda m: (
                m.get("op") == command["op"]
                and m.get("path") == command.get("path")
                and not any(m is d for d in done)
            ),
            timeout,
        )

    def kill(self) -> None:
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with suppress(OSError):
                    stream.close()


@contextmanager
def node_peer(*args: str) -> Iterator[NodePeer]:
    peer = NodePeer(*args)
    try:
        yield peer
    finally:
        peer.kill()


@requires_node_lib
def test_node_client_registers_to_the_lab_and_is_read_and_written() -> None:
    with Lab(request_timeout=10.0) as lab:
        port = lab.server_uri.rsplit(":", 1)[1]
        with node_peer("client", "127.0.0.1", port, "node-client-1", "60") as peer:
            peer.expect(lambda m: m.get("event") == "registered")
            reg = lab.wait_for_registration("node-client-1", timeout=10)
            assert reg.lwm2m_version == "1.0"
            assert reg.lifetime == 60
            assert set(reg.objects) == {3, 5}

            device = lab.device("node-client-1")
            assert device.read("/3/0/3") == "0.9.0"
            assert device.read("/5/0/3") == 0  # text "0", decoded with /5/0/3's type

            assert device.write("/3/0/1", "written-by-labkit").code == "2.04"
            seen = peer.expect(lambda m: m.get("event") == "write")
            assert seen == {"event": "write", "path": "/3/0/1", "value": "written-by-labkit"}
            assert device.read("/3/0/1") == "written-by-labkit"

            frame = lab.registrations()
            assert list(frame["endpoint"]) == ["node-client-1"]

            peer.send(op="quit")
            peer.expect(lambda m: m.get("event") == "deregistered")
            lab.wait_for(lambda: "node-client-1" not in set(lab.registrations()["endpoint"]), 10)
            assert peer.popen.wait(timeout=10) == 0

        events = lab.events()
        kinds = set(events.loc[events["device"] == "node-client-1", "kind"].astype(str))
        assert {"registered", "deregistered", "fw_version"} <= kinds


@pytest.fixture
def node_server() -> Iterator[tuple[NodePeer, int]]:
    for _attempt in range(3):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        peer = NodePeer("server", str(port))
        try:
            try:
                peer.expect(lambda m: m.get("event") in ("listening", "error"), timeout=20)
            except AssertionError:
                continue
            if any(m.get("event") == "error" for m in peer.messages):
                continue
            yield peer, port
            return
        finally:
            peer.kill()
    pytest.fail("could not start the lwm2m-node-lib server")


@requires_node_lib
def test_simulated_device_works_with_the_node_server(node_server: tuple[NodePeer, int]) -> None:
    server, port = node_server
    with Lab(request_timeout=10.0) as lab:
        device = lab.add_device(
            "sim-to-node",
            server_uri=f"coap://127.0.0.1:{port}",
            firmware_version="7.7.7",
            lifetime=60,
        )
        registered = server.expect(lambda m: m.get("event") == "registered")
        assert registered["endpoint"] == "sim-to-node"
        assert registered["lifetime"] == "60"
        assert "</5/0>" in registered["payload"]

        answer = server.ask(op="read", endpoint="sim-to-node", path="/3/0/3")
        assert answer["error"] is None
        assert answer["result"] == "7.7.7"
        answer = server.ask(op="read", endpoint="sim-to-node", path="/5/0/3")
        assert answer["result"] == "0"

        # A write in legacy text format (1541) to the lifetime: the device applies it and
        # tells the server with an Update carrying lt=120.
        answer = server.ask(op="write", endpoint="sim-to-node", path="/1/0/1", value="120")
        assert answer["error"] is None
        assert device.value("/1/0/1") == 120
        updated = server.expect(lambda m: m.get("event") == "updated")
        assert updated["lifetime"] == "120"

        device.stop()
        server.expect(lambda m: m.get("event") == "deregistered")
