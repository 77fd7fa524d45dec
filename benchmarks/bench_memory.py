"""Resident memory per idle, registered simulated device (1,000 and 10,000; quick: 200).

Each figure comes from a **fresh subprocess** (``python -m benchmarks.bench_memory child KIND
N``), so nothing allocated by an earlier measurement pollutes it:

* ``lab`` -- one :class:`~labkit.server.LwM2MServer` and N :class:`~labkit.client.SimulatedDevice`
  in one process, all on loopback. One device is started and stopped first (lazy imports and
  first-use caches), then ``VmRSS`` is read from ``/proc/self/status``; the N devices register
  (64 at a time, lifetime one day so no Update happens while measuring); after a settling
  second and a garbage collection ``VmRSS`` is read again. Figure: the difference / N, in KiB.
  It includes what the server keeps per registration (the registration record) and what
  aiocoap still holds of the recent Register exchanges (its message-deduplication caches
  expire after EXCHANGE_LIFETIME, 247 s), since both are there in a lab that just started N
  devices.
* ``reference`` -- the floor of the same design: N bare aiocoap server contexts (one UDP
  socket each, an empty site) that each POST one Register-like request to a bare aiocoap
  resource, which keeps the requester's remote in a dict. Same before/after protocol.

The goal (<= 40 KiB per device) applies to the lab's figure; the ratio lab/reference says how
much the lab adds to one aiocoap context per device. Each device owns one UDP socket, so the
child raises its soft ``RLIMIT_NOFILE``; if the hard limit is too low the row says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource as rlimit
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ERROR, Goal, Options, Row, bounded_all, register, skipped

GOAL = Goal(on="lab", op="<=", value=40.0, text="<= 40 KiB/device")
ROOT = Path(__file__).resolve().parents[1]
LIFETIME = 86_400
CONCURRENCY = 64
FD_MARGIN = 256


def rss_kib() -> int:
    """This process's resident set size (``VmRSS``), KiB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _raise_fd_limit(n: int) -> str | None:
    """Allow n sockets plus a margin; the reason it cannot, or None."""
    want = n + FD_MARGIN
    soft, hard = rlimit.getrlimit(rlimit.RLIMIT_NOFILE)
    if soft >= want:
        return None
    if hard != rlimit.RLIM_INFINITY and hard < want:
        return f"the hard RLIMIT_NOFILE is {hard}, {n} devices need about {want} descriptors"
    rlimit.setrlimit(rlimit.RLIMIT_NOFILE, (want, hard))
    return None


def _settled() -> int:
    gc.collect()
    return rss_kib()


async def _start_all(devices: list[Any], timeout: float) -> list[BaseException | None]:
    """Start (register) devices, ``CONCURRENCY`` at a time; None or the error, per device."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(device: Any) -> BaseException | None:
        async with gate:
            try:
                await asyncio.wait_for(device.start(timeout=timeout), timeout + 5)
            except Exception as exc:
                return exc
            return None

    return list(await asyncio.gather(*(one(d) for d in devices)))


# -- the lab ------------------------------------------------------------------------------------


async def _lab_child(n: int) -> dict[str, Any]:
    from labkit.client import SimulatedDevice
    from labkit.server import LwM2MServer

    os.environ.setdefault("AIOCOAP_REUSE_PORT", "0")  # distinct ephemeral ports (spec 9.9)
    server = LwM2MServer(request_timeout=30.0)
    await server.start()
    devices: list[Any] = []
    try:
        warm = SimulatedDevice("warm-up", server.uri, lifetime=LIFETIME)
        await warm.start(timeout=30)
        await warm.stop(timeout=10)
        await asyncio.sleep(0.5)
        before = _settled()
        started = time.perf_counter()
        devices = [
            SimulatedDevice(f"idle-{i:05d}", server.uri, lifetime=LIFETIME, seed=i)
            for i in range(n)
        ]
        outcomes = await _start_all(devices, timeout=60.0)
        took = time.perf_counter() - started
        await asyncio.sleep(1.0)
        after = _settled()
        failed = sum(1 for o in outcomes if o is not None)
        registered = sum(1 for d in devices if d.registered)
        return {
            "n": n,
            "before_kib": before,
            "after_kib": after,
            "registered": registered,
            "failed": failed,
            "server_registrations": len(server.registrations),
            "start_s": took,
        }
    finally:
        await bounded_all([d.stop(deregister=False, timeout=5) for d in devices], 120)
        await server.stop()


# -- the reference ------------------------------------------------------------------------------


async def _reference_child(n: int) -> dict[str, Any]:
    import aiocoap
    from aiocoap import resource

    os.environ.setdefault("AIOCOAP_REUSE_PORT", "0")  # distinct ephemeral ports, as the lab

    class Directory(resource.Resource):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.remotes: dict[str, Any] = {}

        async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
            ep = next((q[3:] for q in request.opt.uri_query if q.startswith("ep=")), "")
            self.remotes[ep] = request.remote
            location = ["rd", str(len(self.remotes))]
            return aiocoap.Message(code=aiocoap.CREATED, location_path=location)

    site = resource.Site()
    directory = Directory()
    site.add_resource(["rd"], directory)
    server = await aiocoap.Context.create_server_context(
        site, bind=("127.0.0.1", 0), transports=["udp6"]
    )
    from benchmarks.bench_transfer import _bound_port

    uri = f"coap://127.0.0.1:{_bound_port(server)}/rd"
    payload = b"</1/0>,</3/0>,</4/0>,</5/0>"
    contexts: list[Any] = []
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> bool:
        async with gate:
            ctx = await aiocoap.Context.create_server_context(
                resource.Site(), bind=("127.0.0.1", 0), transports=["udp6"]
            )
            contexts.append(ctx)
            msg = aiocoap.Message(
                code=aiocoap.POST,
                uri=uri,
                uri_query=[f"ep=bare-{i:05d}", f"lt={LIFETIME}", "lwm2m=1.1", "b=U"],
                content_format=40,
                payload=payload,
            )
            resp = await asyncio.wait_for(ctx.request(msg).response, 60)
            return bool(resp.code == aiocoap.CREATED)

    try:
        warm = await aiocoap.Context.create_server_context(
            resource.Site(), bind=("127.0.0.1", 0), transports=["udp6"]
        )
        await warm.shutdown()
        await asyncio.sleep(0.5)
        before = _settled()
        started = time.perf_counter()
        oks = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        took = time.perf_counter() - started
        await asyncio.sleep(1.0)
        after = _settled()
        registered = sum(1 for ok in oks if ok is True)
        return {
            "n": n,
            "before_kib": before,
            "after_kib": after,
            "registered": registered,
            "failed": n - registered,
            "server_registrations": len(directory.remotes),
            "start_s": took,
        }
    finally:
        await bounded_all([ctx.shutdown() for ctx in contexts], 120)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.shutdown(), 10)


def child(kind: str, n: int) -> dict[str, Any]:
    """One measurement in this (fresh) process; the result as a JSON-able dict."""
    reason = _raise_fd_limit(n)
    if reason is not None:
        return {"n": n, "error": reason}
    work = _lab_child(n) if kind == "lab" else _reference_child(n)
    return asyncio.run(asyncio.wait_for(work, 900))


# -- the parent ---------------------------------------------------------------------------------


def _measure(kind: str, n: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "child", kind, str(n)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"n": n, "error": f"{kind} child did not finish within {timeout:.0f} s"}
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        # a crash of the measurement itself (e.g. an API it uses changed): not a report
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"{kind} child exited {done.returncode}: {' '.join(tail)}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _per_device(m: dict[str, Any]) -> float:
    return float(m["after_kib"] - m["before_kib"]) / max(1, int(m["n"]))


@register("memory", "resident memory per idle registered simulated device")
def run(options: Options) -> list[Row]:
    if not Path("/proc/self/status").exists():
        return [skipped("memory", "RSS per idle device", GOAL, "needs Linux /proc")]
    counts = options.pick((1_000, 10_000), (200,))
    rows: list[Row] = []
    for n in counts:
        what = f"RSS per idle registered device, {n:,} devices"
        timeout = 120.0 + n * 0.1
        lab = _measure("lab", n, timeout)
        ref = _measure("reference", n, timeout)
        problem = lab.get("error") or ref.get("error")
        if problem:
            rows.append(Row(key=f"memory-{n}", what=what, goal=GOAL, status=ERROR, note=problem))
            continue
        lab_kib, ref_kib = _per_device(lab), _per_device(ref)
        note = (
            f"RSS delta over {n:,} devices in a fresh process "
            f"({lab['before_kib'] / 1024:.0f} -> {lab['after_kib'] / 1024:.0f} MiB); "
            f"includes the server's registration per device; "
            f"registered {lab['registered']}/{n} in {lab['start_s']:.1f} s"
        )
        if lab["registered"] != n or ref["registered"] != n:
            note += f" (reference registered {ref['registered']}/{n})"
        rows.append(
            Row(
                key=f"memory-{n}",
                what=what,
                goal=GOAL,
                lab=lab_kib,
                unit="KiB",
                reference=ref_kib,
                ref_what="one bare aiocoap server context per device (empty site) after one "
                "Register-like POST to a bare aiocoap resource",
                ratio=lab_kib / ref_kib if ref_kib > 0 else None,
                note=note,
                samples={"lab": [lab_kib], "reference": [ref_kib]},
            )
        )
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "child" and sys.argv[2] in ("lab", "reference"):
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))), flush=True)
    else:
        sys.exit("usage: python -m benchmarks.bench_memory child lab|reference N")
