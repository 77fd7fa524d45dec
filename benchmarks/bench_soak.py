"""Soak on sockets: ``labkit serve --record`` under a re-registering fleet and a garbage flood.

Three processes on loopback: ``labkit serve --record DIR`` (measured), ``labkit fleet`` with
``--count`` devices at ``--lifetime 60`` (each sends an Update about every 30-54 s), and this
process sending seeded garbage to the server at ``--rate`` datagrams/s (random bytes, token
lengths 9-15, empty payloads after the marker, unknown critical options, invalid UTF-8 in
Uri-Path, oversized datagrams, Registers without ``ep``, requests to unknown paths). The
server's ``VmRSS`` and open descriptors are read from ``/proc/PID`` every 5 s.

Figures: RSS at the end over RSS at the baseline (after the first 5 minutes; after half the
run when it is shorter than 10 minutes), goal <= 1.10; registrations lost = ``reg_expired``
events of fleet endpoints in the recorded run (goal 0); whether the server still answered a
Register at the end.

``python -m benchmarks --only soak`` runs 30 minutes with 1,000 devices (``--quick``: 2
minutes, 200 devices). ``python -m benchmarks.bench_soak --minutes 10 --devices 500`` runs it
alone with other sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ERROR, Goal, Options, Row, register

ROOT = Path(__file__).resolve().parents[1]
GOAL = Goal(on="lab", op="<=", value=1.10, text="<= 1.10x of RSS after 5 min")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_figures(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, open descriptors) of ``pid``."""
    rss = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _opt(delta: int, value: bytes) -> bytes:
    if delta < 13:
        return bytes([(delta << 4) | min(len(value), 12)]) + value[:12]
    return bytes([(13 << 4) | min(len(value), 12), delta - 13]) + value[:12]


def garbage(rng: random.Random) -> bytes:
    """One seeded hostile datagram."""
    kind = rng.randrange(9)
    mid = struct.pack("!H", rng.randrange(65536))
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 1:  # token length 9-15
        tkl = rng.randrange(9, 16)
        return bytes([0x40 | tkl, 0x02]) + mid + rng.randbytes(tkl) + _opt(11, b"rd")
    if kind == 2:  # payload marker, no payload
        return bytes([0x41, 0x02]) + mid + b"\x01" + _opt(11, b"rd") + b"\xff"
    if kind == 3:  # unknown critical option 2049
        crit = b"\xe0" + (2049 - 11 - 269).to_bytes(2, "big")
        return bytes([0x41, 0x01]) + mid + b"\x02" + _opt(11, b"rd") + crit
    if kind == 4:  # invalid UTF-8 in Uri-Path
        return bytes([0x41, 0x01]) + mid + b"\x03" + _opt(11, b"\xff\xfe" + rng.randbytes(3))
    if kind == 5:  # oversized
        return bytes([0x41, 0x02]) + mid + b"\x04" + _opt(11, b"rd") + b"\xff" + b"<" * 5000
    if kind == 6:  # Register without ep
        return bytes([0x41, 0x02]) + mid + b"\x05" + _opt(11, b"rd") + _opt(4, b"lt=60")
    if kind == 7:  # an unknown path
        query = _opt(0, str(rng.random()).encode())
        return bytes([0x51, 0x01]) + mid + b"\x06" + _opt(11, b"nope") + query
    return bytes([0x50, 0x01]) + mid + _opt(11, b"rd") + _opt(0, b"x")  # NON GET /rd/x


async def _flood(port: int, rate: int, seconds: float, seed: int) -> int:
    rng = random.Random(seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sent = 0
    start = time.monotonic()
    try:
        while (now := time.monotonic() - start) < seconds:
            due = int(now * rate)
            while sent < due:
                with contextlib.suppress(BlockingIOError):
                    sock.sendto(garbage(rng), ("127.0.0.1", port))
                sent += 1
            try:  # drain the answers
                while True:
                    sock.recv(70000)
            except BlockingIOError:
                pass
            await asyncio.sleep(0.01)
    finally:
        sock.close()
    return sent


def _register_ok(port: int, tries: int = 4) -> bool:
    """A Register answered 2.01, retransmitted like a CON (2, 4, 8 s) up to ``tries`` times."""
    msg = bytes([0x41, 0x02, 0x12, 0x34, 0x09]) + _opt(11, b"rd") + _opt(4, b"ep=soak-probe")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for attempt in range(tries):
            s.settimeout(2.0 * 2**attempt)
            s.sendto(msg + _opt(0, b"lt=60"), ("127.0.0.1", port))
            try:
                return s.recv(2048)[1] == 0x41
            except TimeoutError:
                continue
    return False


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def soak(minutes: float, devices: int, rate: int, seed: int = 1) -> dict[str, Any]:
    """Run the soak; a dict of figures (see the module docstring)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    port = _free_port()
    record = Path(tempfile.mkdtemp(prefix="labkit-soak-"))
    server = subprocess.Popen(
        [sys.executable, "-m", "labkit", "serve", "--listen", f"127.0.0.1:{port}", "--record",
         str(record), "--run-id", "soak"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    fleet = None
    samples: list[tuple[float, int, int]] = []
    try:
        deadline = time.monotonic() + 30
        while not _register_ok(port):
            if time.monotonic() > deadline:
                raise RuntimeError("labkit serve did not answer within 30 s")
        fleet = subprocess.Popen(
            [sys.executable, "-m", "labkit", "fleet", "--server", f"coap://127.0.0.1:{port}",
             "--count", str(devices), "--lifetime", "60", "--prefix", "soak-",
             "--timeout", "120"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        seconds = minutes * 60
        start = time.monotonic()

        async def main() -> int:
            flood = asyncio.create_task(_flood(port, rate, seconds, seed))
            while not flood.done():
                samples.append((time.monotonic() - start, *_proc_figures(server.pid)))
                await asyncio.wait({flood}, timeout=5)
            return flood.result()

        cpu0 = _cpu_seconds(server.pid)
        sent = asyncio.run(main())
        cpu = _cpu_seconds(server.pid) - cpu0
        fleet_cpu = _cpu_seconds(fleet.pid)
        alive = _register_ok(port)
    finally:
        for proc in (fleet, server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (fleet, server):
            if proc is not None:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
    from labkit.record.runs import read_run

    events = read_run(record / "soak").events
    fleet_events = events[events["device"].astype(str).str.fullmatch(r"soak-\d+")]
    expired = int((fleet_events["kind"] == "reg_expired").sum())
    registered = int(fleet_events.loc[fleet_events["kind"] == "registered", "device"].nunique())
    base_t = 300.0 if minutes >= 10 else seconds / 2
    base = next((s for s in samples if s[0] >= base_t), samples[0])
    end = samples[-1]
    return {
        "minutes": minutes, "devices": devices, "rate": rate, "sent": sent,
        "rss_base_kib": base[1], "rss_end_kib": end[1], "rss_max_kib": max(s[1] for s in samples),
        "growth": end[1] / base[1], "fds_base": base[2], "fds_end": end[2],
        "fds_max": max(s[2] for s in samples), "registered": registered, "lost": expired,
        "answering_at_end": alive, "events": len(events),
        "server_cpu_share": round(cpu / seconds, 3),
        "fleet_cpu_share": round(fleet_cpu / seconds, 3),
        "load_avg_end": os.getloadavg()[0],
        "samples": [list(s) for s in samples], "record": str(record),
    }


@register("soak", "soak: serve --record, fleet at lt=60, 500 garbage datagrams/s")
def bench(options: Options) -> list[Row]:
    minutes = float(os.environ.get("LABKIT_SOAK_MINUTES", options.pick(30, 2)))
    devices = int(os.environ.get("LABKIT_SOAK_DEVICES", options.pick(1000, 200)))
    try:
        got = soak(minutes, devices, 500)
    except Exception as exc:
        return [Row(key="soak", what="soak", goal=GOAL, status=ERROR, note=repr(exc))]
    return [
        Row(
            key="soak",
            what=f"server RSS after {minutes:g} min / after the baseline ({devices} devices)",
            goal=GOAL,
            lab=round(got["growth"], 3),
            unit="x",
            note=(
                f"RSS {got['rss_base_kib']} -> {got['rss_end_kib']} KiB (max "
                f"{got['rss_max_kib']}), fds {got['fds_base']} -> {got['fds_end']}, "
                f"{got['registered']} devices registered, {got['lost']} registrations lost, "
                f"{got['sent']} garbage datagrams, answering at the end: "
                f"{got['answering_at_end']}, server CPU {got['server_cpu_share']:.0%} of a core, "
                f"load average {got['load_avg_end']:.1f}"
            ),
        )
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_soak")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--rate", type=int, default=500, help="garbage datagrams per second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)
    got = soak(args.minutes, args.devices, args.rate, args.seed)
    text = json.dumps(got, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    summary = {k: v for k, v in got.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    return 0 if got["growth"] <= 1.10 and got["lost"] == 0 and got["answering_at_end"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
