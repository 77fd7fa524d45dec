"""PUSH and PULL of one image through the lab against bare aiocoap, side by side.

Rows:

* **push** -- the lab's server writes the image to a simulated device's /5/0/0 (Block1, 1024-byte
  blocks, one CON per block, every block an event in the lab's recorder), timed from the
  caller's ``DeviceHandle.write`` until 2.04; reference: a bare aiocoap client context PUTs
  the same bytes to a bare aiocoap server context (aiocoap's own Block1 handling, the
  server reassembling). Goal: lab <= 1.25x the reference.
* **pull (CoAP)** -- a simulated device is given the image's ``coap://`` URI in the lab's
  repository (Write /5/0/1) and downloads it (Block2, 1024-byte blocks), timed until the
  device reports DOWNLOADED; reference: a bare aiocoap GET of the same bytes from a bare
  aiocoap resource. Goal: lab <= 1.25x.
* **pull (HTTP)** -- the same download from the repository's ``http://`` URI against the CoAP
  pull of the lab itself. Goal: HTTP at least 5x faster. A simulated device that cannot
  pull over HTTP makes the row "not yet measurable" (probed, not assumed).

Everything runs on loopback with ephemeral ports. The reference contexts live on the lab's
own event loop and are driven through the same ``Lab.call`` hop as the lab's operations, so
both sides pay the same thread crossing. A fresh device serves each repetition (the previous
one is stopped), so no repetition starts in a state left by another.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from typing import Any

import aiocoap
from aiocoap import resource

from benchmarks.harness import (
    Goal,
    Options,
    Row,
    interleaved,
    median,
    not_yet,
    paired_ratio,
    register,
)

KIB = 1024
MIB = 1024 * KIB
BLOCK = 1024
GOAL_PUSH = Goal(op="<=", value=1.25, text="<= 1.25x")
GOAL_PULL = Goal(op="<=", value=1.25, text="<= 1.25x")
GOAL_HTTP = Goal(op=">=", value=5.0, text=">= 5x faster than CoAP")

DOWNLOADED = 2


def timed_push(device: Any, image: bytes, timeout: float, what: str) -> float:
    """Wall seconds of one PUSH of ``image`` to a lab device in BLOCK-byte blocks, until the
    last block is answered and the device is DOWNLOADED; the device is stopped afterwards."""
    try:
        start = time.perf_counter()
        resp = device.write("/5/0/0", image, block_size=BLOCK, timeout=timeout)
        took = time.perf_counter() - start
        if not resp.ok or device.state != DOWNLOADED:
            raise RuntimeError(f"{what} PUSH ended with {resp.code}, state {device.state}")
        return took
    finally:
        device.stop(timeout=5)


def image_bytes(size: int, seed: int = 7) -> bytes:
    """A deterministic firmware-like payload (a version line, then noise)."""
    head = b"LABKIT-FW 9.9.9\n"
    return head + random.Random(seed).randbytes(size - len(head))


def _size_text(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size // KIB} KiB"


class _Sink(resource.Resource):  # type: ignore[misc]
    """A bare aiocoap resource: PUT stores the (reassembled) body, GET serves the image."""

    def __init__(self, image: bytes) -> None:
        super().__init__()
        self.image = image
        self.received = 0

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.received = len(request.payload)
        return aiocoap.Message(code=aiocoap.CHANGED)

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=aiocoap.CONTENT, payload=self.image, content_format=42)


def _bound_port(ctx: aiocoap.Context) -> int:
    for ri in ctx.request_interfaces:
        mi = getattr(getattr(ri, "token_interface", None), "message_interface", None)
        transport = getattr(mi, "transport", None)
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                return int(sock.getsockname()[1])
    raise RuntimeError("cannot find the bound port of the reference server")


class BareAiocoap:
    """Two bare aiocoap contexts on loopback: a server with :class:`_Sink` and a client."""

    def __init__(self, image: bytes) -> None:
        self.sink = _Sink(image)
        self.server: aiocoap.Context | None = None
        self.client: aiocoap.Context | None = None
        self.uri = ""

    async def start(self) -> BareAiocoap:
        site = resource.Site()
        site.add_resource(["fw"], self.sink)
        self.server = await asyncio.wait_for(
            aiocoap.Context.create_server_context(site, bind=("127.0.0.1", 0), transports=["udp6"]),
            10,
        )
        self.client = await asyncio.wait_for(
            aiocoap.Context.create_client_context(transports=["udp6"]), 10
        )
        self.uri = f"coap://127.0.0.1:{_bound_port(self.server)}/fw"
        return self

    async def stop(self) -> None:
        for ctx in (self.client, self.server):
            if ctx is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.shutdown(), 10)
        self.client = self.server = None

    async def put(self, payload: bytes, timeout: float) -> None:
        assert self.client is not None
        msg = aiocoap.Message(code=aiocoap.PUT, uri=self.uri, payload=payload, content_format=42)
        resp = await asyncio.wait_for(self.client.request(msg).response, timeout)
        if resp.code != aiocoap.CHANGED or self.sink.received != len(payload):
            raise RuntimeError(f"reference PUT answered {resp.code} ({self.sink.received} B)")

    async def get(self, size: int, timeout: float) -> None:
        assert self.client is not None
        msg = aiocoap.Message(code=aiocoap.GET, uri=self.uri)
        resp = await asyncio.wait_for(self.client.request(msg).response, timeout)
        if resp.code != aiocoap.CONTENT or len(resp.payload) != size:
            raise RuntimeError(f"reference GET answered {resp.code} ({len(resp.payload)} B)")


class _StateWatch:
    """Wakes the caller when a device reports DOWNLOADED, or a failed Update Result."""

    def __init__(self) -> None:
        self.endpoint: str | None = None
        self.done = threading.Event()
        self.result: int | None = None

    def arm(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.result = None
        self.done.clear()

    def __call__(self, event: Any) -> None:  # runs on the lab's loop thread
        if event.source != "device" or event.device != self.endpoint:
            return
        if event.kind == "fw_state" and event.state == DOWNLOADED:
            self.done.set()
        elif event.kind == "fw_result" and event.result not in (None, 0):
            self.result = int(event.result)
            self.done.set()


class _Bench:
    """The lab (a :class:`~labkit.runtime.Lab`) and the bare reference, started together."""

    def __init__(self, size: int) -> None:
        from labkit.runtime import Lab

        self.size = size
        self.image = image_bytes(size)
        self.timeout = 30.0 + size / MIB * 60.0
        self.lab = Lab(request_timeout=30.0)
        self.lab.start()
        self.ref = BareAiocoap(self.image)
        self.watch = _StateWatch()
        self.unsubscribe = self.lab.subscribe(self.watch)
        self.uris: dict[str, str] = {}
        self._n = 0

    def start(self) -> None:
        self.lab.call(self.ref.start(), timeout=20)
        self.uris = self.lab.publish("bench.bin", self.image)

    def close(self) -> None:
        self.unsubscribe()
        with contextlib.suppress(Exception):
            self.lab.call(self.ref.stop(), timeout=30)
        self.lab.close()

    def _device(self, prefix: str, **kwargs: Any) -> Any:
        self._n += 1
        return self.lab.add_device(f"{prefix}-{self._n:03d}", lifetime=3600, **kwargs)

    # lab side -----------------------------------------------------------------------------
    def lab_push(self) -> float:
        return timed_push(self._device("bench-push"), self.image, self.timeout, "lab")

    def lab_pull(self, scheme: str) -> float:
        from labkit.lwm2m.objects import ProtocolSupport

        device = self._device(
            f"bench-pull-{scheme}", protocols=(ProtocolSupport.COAP, ProtocolSupport.HTTP)
        )
        try:
            self.watch.arm(device.endpoint)
            start = time.perf_counter()
            device.write("/5/0/1", self.uris[scheme]).raise_for_status()
            if not self.watch.done.wait(self.timeout):
                raise TimeoutError(f"{scheme} PULL did not finish in {self.timeout:.0f} s")
            took = time.perf_counter() - start
            if self.watch.result is not None:
                raise PullFailed(scheme, self.watch.result)
            return took
        finally:
            self.watch.arm("")
            device.stop(timeout=5)

    # reference side -----------------------------------------------------------------------
    def ref_put(self) -> float:
        start = time.perf_counter()
        self.lab.call(self.ref.put(self.image, self.timeout), timeout=self.timeout + 5)
        return time.perf_counter() - start

    def ref_get(self) -> float:
        start = time.perf_counter()
        self.lab.call(self.ref.get(self.size, self.timeout), timeout=self.timeout + 5)
        return time.perf_counter() - start


class PullFailed(RuntimeError):
    def __init__(self, scheme: str, result: int) -> None:
        from labkit.lwm2m.objects import UpdateResult

        self.result = result
        try:
            name = UpdateResult(result).name
        except ValueError:
            name = "unknown"
        super().__init__(f"{scheme} PULL ended with Update Result {result} ({name})")


def _row(
    key: str, what: str, goal: Goal, ref_what: str, labs: list[float], refs: list[float]
) -> Row:
    return Row(
        key=key,
        what=what,
        goal=goal,
        lab=median(labs),
        reference=median(refs),
        ref_what=ref_what,
        ratio=paired_ratio(labs, refs),
        note=f"median of {len(labs)} interleaved pairs",
        samples={"lab": labs, "reference": refs},
    )


@register("transfer", "PUSH and PULL of one image: lab vs bare aiocoap, HTTP vs CoAP")
def run(options: Options) -> list[Row]:
    size = options.pick(MIB, 256 * KIB)
    reps = options.pick(9, 5)
    text = _size_text(size)
    rows: list[Row] = []
    bench = _Bench(size)
    try:
        bench.start()
        labs, refs = interleaved(bench.lab_push, bench.ref_put, reps)
        rows.append(
            _row(
                "push",
                f"PUSH {text} (Block1 PUT /5/0/0)",
                GOAL_PUSH,
                "bare aiocoap Block1 PUT between two bare contexts",
                labs,
                refs,
            )
        )
        labs, refs = interleaved(lambda: bench.lab_pull("coap"), bench.ref_get, reps)
        rows.append(
            _row(
                "pull-coap",
                f"PULL {text} over CoAP from the lab repository",
                GOAL_PULL,
                "bare aiocoap Block2 GET from a bare aiocoap resource",
                labs,
                refs,
            )
        )
        rows.append(_http_row(bench, text, reps))
    finally:
        bench.close()
    return rows


def _http_row(bench: _Bench, text: str, reps: int) -> Row:
    what = f"PULL {text} over HTTP vs over CoAP (lab)"
    try:
        bench.lab_pull("http")  # probe: can a simulated device pull over HTTP at all?
    except PullFailed as exc:
        return not_yet(
            "pull-http",
            what,
            GOAL_HTTP,
            f"the simulated device has no HTTP downloader yet ({exc})",
        )
    coap, http = interleaved(
        lambda: bench.lab_pull("coap"), lambda: bench.lab_pull("http"), reps, warmup=0
    )
    # the figure is a speed-up: CoAP time / HTTP time (>= 5 means HTTP is 5x faster)
    return Row(
        key="pull-http",
        what=what,
        goal=GOAL_HTTP,
        lab=median(http),
        reference=median(coap),
        ref_what="the same device pulling the same image over CoAP",
        ratio=paired_ratio(coap, http),
        ratio_text="x faster",
        note=f"median of {len(http)} interleaved pairs",
        samples={"lab": http, "reference": coap},
    )
