"""The lab's firmware repository against libcoap's ``coap-server``, both downloaded by
libcoap's ``coap-client``.

One row: ``coap-client -m get -b 1024`` fetches the same image (1 MiB; 256 KiB quick) from the
lab's :class:`~labkit.repo.FirmwareRepository` (started by a :class:`~labkit.runtime.Lab`,
recording every block it serves) and from ``coap-server -d`` (the image PUT into a dynamic
resource first), alternately; each repetition is timed from spawning ``coap-client`` to its
exit, and the bytes it wrote are checked. The ratio is reported; there is no goal (libcoap is
C, the lab is Python: the figure says how far apart they are, not a target).

Skipped, with the reason, when the Debian ``libcoap3-bin`` binaries are absent. ``coap-server``
runs in its own session on 127.0.0.1 and an ephemeral port and is killed in ``finally``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.bench_transfer import KIB, MIB, image_bytes
from benchmarks.harness import (
    Goal,
    Options,
    Row,
    interleaved,
    median,
    paired_ratio,
    register,
    skipped,
)

GOAL = Goal(text="reported")
CLIENTS = ("coap-client", "coap-client-notls", "coap-client-openssl", "coap-client-gnutls")
SERVERS = ("coap-server", "coap-server-notls", "coap-server-openssl", "coap-server-gnutls")


def _which(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def _client(client: str, *args: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run coap-client bounded on both sides (libcoap's -B and the process timeout)."""
    return subprocess.run(
        [client, "-B", str(int(timeout)), *args],
        capture_output=True,
        timeout=timeout + 10,
        check=False,
    )


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def coap_server(server: str, client: str, log: Path) -> Iterator[int]:
    """libcoap's coap-server with dynamic resources (``-d``) on 127.0.0.1; yields its port."""
    last = "not started"
    for _attempt in range(3):
        port = _free_udp_port()
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                [server, "-A", "127.0.0.1", "-p", str(port), "-d", "4", "-v", "3"],
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                time.sleep(0.3)
                if proc.poll() is not None:
                    last = f"exited with {proc.returncode}"
                    continue  # the port was taken meanwhile; try another
                probe = _client(client, "-m", "get", f"coap://127.0.0.1:{port}/", timeout=5)
                if probe.returncode != 0:
                    last = probe.stderr.decode(errors="replace")[-200:]
                    continue
                yield port
                return
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    raise RuntimeError(f"could not start {server}: {last}")


@register("libcoap", "coap-client downloads from the lab repository vs from coap-server")
def run(options: Options) -> list[Row]:
    size = options.pick(MIB, 256 * KIB)
    reps = options.pick(9, 5)
    text = f"{size // MIB} MiB" if size % MIB == 0 else f"{size // KIB} KiB"
    what = f"lab repository vs coap-server, {text} to coap-client"
    client, server = _which(CLIENTS), _which(SERVERS)
    if client is None or server is None:
        return [skipped("libcoap", what, GOAL, "libcoap binaries absent (apt libcoap3-bin)")]

    from labkit.runtime import Lab

    image = image_bytes(size)
    timeout = 30.0 + size / MIB * 30.0
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        tmpdir = Path(tmp)
        src, out = tmpdir / "fw.bin", tmpdir / "out.bin"
        src.write_bytes(image)

        def fetch(uri: str) -> float:
            out.unlink(missing_ok=True)
            start = time.perf_counter()
            done = _client(client, "-m", "get", "-b", "1024", "-o", str(out), uri, timeout=timeout)
            took = time.perf_counter() - start
            got = out.stat().st_size if out.exists() else 0
            if done.returncode != 0 or got != size:
                detail = done.stderr.decode(errors="replace")[-160:].strip()
                code = done.returncode
                raise RuntimeError(f"coap-client GET {uri}: exit {code}, {got} B {detail}")
            return took

        with Lab() as lab, coap_server(server, client, tmpdir / "coap-server.log") as port:
            lab_uri = lab.publish("fw.bin", image)["coap"]
            ref_uri = f"coap://127.0.0.1:{port}/fw.bin"
            stored = _client(
                client, "-m", "put", "-t", "42", "-b", "1024", "-f", str(src), ref_uri,
                timeout=timeout,
            )  # fmt: skip
            if stored.returncode != 0:
                raise RuntimeError(f"coap-client PUT to coap-server: {stored.stderr[-200:]!r}")
            labs, refs = interleaved(lambda: fetch(lab_uri), lambda: fetch(ref_uri), reps)
    return [
        Row(
            key="libcoap",
            what=what,
            goal=GOAL,
            lab=median(labs),
            reference=median(refs),
            ref_what=f"libcoap {Path(server).name} -d (the image PUT into a dynamic resource)",
            ratio=paired_ratio(labs, refs),
            note=f"median of {len(labs)} interleaved pairs; times include spawning coap-client",
            samples={"lab": labs, "reference": refs},
        )
    ]
