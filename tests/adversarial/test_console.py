"""Cases 9 and 10: ``labkit serve`` keeps serving when nobody reads its stdout, and an endpoint
name cannot forge a line on it (control characters are escaped)."""

from __future__ import annotations

import io
import os
import signal
import subprocess

from labkit.console import Console, escape
from tests.adversarial.helpers import (
    REPO,
    Peer,
    encode,
    free_udp_port,
    labkit_argv,
    labkit_env,
    register,
    run,
    wait_registering,
)


def test_escape_makes_one_visible_line() -> None:
    assert escape("plain ünïcode") == "plain ünïcode"
    assert escape("z\nderegistered victim") == "z\\x0aderegistered victim"
    assert escape("a\x00b\x1b[2Jc\u2028d\u202e") == "a\\x00b\\x1b[2Jc\\u2028d\\u202e"


def test_console_drops_and_counts_when_the_reader_is_stuck() -> None:
    r, w = os.pipe()
    stream = io.TextIOWrapper(os.fdopen(w, "wb"), write_through=True)
    console = Console(stream, maxsize=100)
    try:
        accepted = sum(console.line("x" * 1000) for _ in range(5000))  # never blocks
        assert accepted < 5000 and console.dropped == 5000 - accepted
    finally:
        os.set_blocking(r, False)
        data = b""
        while True:
            try:
                chunk = os.read(r, 1 << 16)
            except BlockingIOError:
                break
            data += chunk
        os.close(r)
        console._queue.queue.clear()  # the writer thread is daemon; let it go


def test_serve_keeps_answering_with_an_unread_stdout() -> None:
    port = free_udp_port()
    r, w = os.pipe()  # stdout of serve: never read while the registrations go in
    proc = subprocess.Popen(
        labkit_argv("serve", "--listen", f"127.0.0.1:{port}"),
        stdout=w,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=labkit_env(),
        start_new_session=True,
    )
    os.close(w)
    try:

        async def main() -> int:
            await wait_registering(port)
            peer = Peer(port)
            ok = 0
            try:
                for i in range(1500):  # ~330 bytes a line: 480 kB, far past a 64 KiB pipe
                    answer = await peer.exchange(encode(register(f"ep-{i:04d}-" + "x" * 300), i), 5)
                    assert answer is not None, f"no answer to Register {i}"
                    ok += answer[1] == 0x41
            finally:
                peer.close()
            return ok

        assert run(main, 120) == 1500
    finally:
        proc.send_signal(signal.SIGTERM)
        os.set_blocking(r, False)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        os.close(r)


def test_endpoint_name_cannot_forge_a_line() -> None:
    port = free_udp_port()
    proc = subprocess.Popen(
        labkit_argv("serve", "--listen", f"127.0.0.1:{port}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=labkit_env(),
        start_new_session=True,
        text=True,
    )
    try:

        async def main() -> None:
            await wait_registering(port)
            peer = Peer(port)
            try:
                for i, ep in enumerate(["z\nderegistered victim-0001", "nul\x00byte\r"]):
                    answer = await peer.exchange(encode(register(ep), 900 + i), 5)
                    assert answer is not None
            finally:
                peer.close()

        run(main)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    lines = out.splitlines()
    assert not any(line.startswith("deregistered victim-0001") for line in lines), lines
    assert not any("\x00" in line or "\r" in line for line in lines)
    assert any("z\\x0aderegistered victim-0001" in line for line in lines), lines
    assert lines[-1] == "stopped"


def test_log_records_are_escaped() -> None:
    import logging

    from labkit.console import EscapingFormatter

    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "GET %s", ("/a\nFAKE line",), None
    )
    text = EscapingFormatter("%(message)s").format(record)
    assert "\n" not in text and text == "GET /a\\x0aFAKE line"
