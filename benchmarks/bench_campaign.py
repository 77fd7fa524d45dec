"""A 1,000-device, 64 KiB PUSH campaign at zero loss against bare aiocoap exchanges of the same
count (quick: 30 devices).

* lab -- a :class:`~labkit.runtime.Lab` with N simulated devices registered directly to its
  server (loopback, no link emulation: zero loss), a signed 64 KiB MCUboot image, and a
  :class:`labkit.fota.campaign.Campaign` (policy ``always``, one wave, ``MAX_CONCURRENT``
  updates in flight) run to its end: every device checked, pushed to, executed, re-registered
  and verified. Timed from ``Campaign.run`` to its return; registration is not timed.
* reference -- the same number of CoAP exchanges done with bare aiocoap, at the same
  concurrency, between one bare client context (the server's side) and N bare server
  contexts (one per device): per device one Block1 PUT of the same image (as many block
  exchanges as the lab's push), as many small GETs as the lab's server sent other requests
  per device (reads, Write-Attributes, Observe, Execute), and as many small POSTs from the
  device's context as the lab's devices sent during the campaign (re-Register,
  notifications). The counts come from the lab run's event table, so the reference follows
  the lab's traffic if the campaign changes.

Goal: lab <= 1.5x. One pair is measured (a campaign is long), bracketed: reference, lab,
reference; the reference figure is the mean of its two runs. A campaign that does not end
within ``DEADLINE_S`` is cancelled and the figures become lower bounds (said in the note).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import time
from typing import Any

import aiocoap
from aiocoap import resource

from benchmarks.bench_transfer import _bound_port
from benchmarks.harness import Goal, Options, Row, bounded_all, not_yet, register

GOAL = Goal(op="<=", value=1.5, text="<= 1.5x")
IMAGE_PAYLOAD = 64 * 1024
MAX_CONCURRENT = 50
DEADLINE_S = 1200.0


def missing() -> str | None:
    """What is missing for this row, or None when it can be measured."""
    if importlib.util.find_spec("labkit.fota.campaign") is None:
        return "no fleet campaign runner yet (labkit.fota.campaign does not exist)"
    return None


# -- the reference ------------------------------------------------------------------------------


class _Device(resource.Resource):  # type: ignore[misc]
    """A bare device: PUT stores the reassembled body, GET answers a few bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.stored = 0

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.stored = len(request.payload)
        return aiocoap.Message(code=aiocoap.CHANGED)

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=aiocoap.CONTENT, payload=b"1", content_format=0)


class _Server(resource.Resource):  # type: ignore[misc]
    """The bare server's resource for device-originated POSTs."""

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=aiocoap.CHANGED)


async def _context(site: Any) -> aiocoap.Context:
    return await asyncio.wait_for(
        aiocoap.Context.create_server_context(site, bind=("127.0.0.1", 0), transports=["udp6"]),
        10,
    )


async def bare_exchanges(
    n: int, image: bytes, small_requests: int, device_posts: int, concurrency: int
) -> float:
    """Seconds for the reference traffic (see the module docstring); setup not timed."""
    server_site = resource.Site()
    server_site.add_resource(["rd"], _Server())
    server = await _context(server_site)
    server_uri = f"coap://127.0.0.1:{_bound_port(server)}/rd"
    devices: list[tuple[aiocoap.Context, _Device, str]] = []
    try:
        for _ in range(n):
            res = _Device()
            site = resource.Site()
            site.add_resource(["5", "0", "0"], res)
            ctx = await _context(site)
            devices.append((ctx, res, f"coap://127.0.0.1:{_bound_port(ctx)}/5/0/0"))
        gate = asyncio.Semaphore(concurrency)

        async def one(ctx: aiocoap.Context, res: _Device, uri: str) -> None:
            async with gate:
                for _ in range(small_requests):
                    msg = aiocoap.Message(code=aiocoap.GET, uri=uri)
                    await asyncio.wait_for(server.request(msg).response, 60)
                put = aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=image, content_format=42)
                await asyncio.wait_for(server.request(put).response, 120)
                if res.stored != len(image):
                    raise RuntimeError(f"bare PUT stored {res.stored} of {len(image)} bytes")
                for _ in range(device_posts):
                    post = aiocoap.Message(code=aiocoap.POST, uri=server_uri, payload=b"x")
                    await asyncio.wait_for(ctx.request(post).response, 60)

        start = time.perf_counter()
        await asyncio.gather(*(one(*d) for d in devices))
        return time.perf_counter() - start
    finally:
        await bounded_all([ctx.shutdown() for ctx, _, _ in devices], 60)
        await bounded_all([server.shutdown()], 10)


# -- the lab ------------------------------------------------------------------------------------


def _traffic(events: Any, n: int) -> tuple[int, int, int]:
    """Per device: small server requests, device-originated requests; and block exchanges."""
    server = events[events["source"] == "server"]
    device = events[events["source"] == "device"]
    requests = int((server["kind"] == "request").sum())
    blocks = int((server["kind"] == "block").sum())
    # the package write is one "request" row plus one "block" row per block
    small = max(0, requests - n)
    sent = int(device["kind"].isin(["registered", "notify"]).sum())
    return round(small / n), round(sent / n), blocks


@register("campaign", "1,000-device 64 KiB PUSH campaign vs bare aiocoap exchanges")
def run(options: Options) -> list[Row]:
    n = options.pick(1_000, 30)
    what = f"PUSH campaign, {n:,} devices x 64 KiB, zero loss"
    reason = missing()
    if reason is not None:
        return [not_yet("campaign", what, GOAL, reason)]
    from labkit.fota.campaign import Campaign
    from labkit.repo.images import build_image
    from labkit.runtime import Lab

    image = build_image(version="2.0.0", size=IMAGE_PAYLOAD)
    with Lab(request_timeout=30.0) as lab:
        lab.add_devices(n, prefix="camp-", lifetime=86_400, concurrency=64, timeout=60)
        first = len(lab.events())

        async def campaign() -> tuple[float, Any]:
            c = Campaign(lab.server, image, policy="always", max_concurrent=MAX_CONCURRENT)
            start = time.perf_counter()
            task = asyncio.ensure_future(c.run())
            done, _ = await asyncio.wait({task}, timeout=DEADLINE_S)
            if not done:
                c.cancel(abort=True)
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, 60)
            elif task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            return time.perf_counter() - start, c

        took, c = lab.call(campaign(), timeout=DEADLINE_S + 120)
        summary = c.summary()
        events = lab.events().iloc[first:]
        small, sent, blocks = _traffic(events, n)
    counts = dict(small_requests=small, device_posts=sent, concurrency=MAX_CONCURRENT)
    refs = [asyncio.run(bare_exchanges(n, image, **counts))]
    # the lab ran between the two references
    refs.append(asyncio.run(bare_exchanges(n, image, **counts)))
    reference = sum(refs) / len(refs)
    cut = summary["status"] != "finished"
    note = (
        f"{summary.get('success', 0)}/{n} succeeded, {summary.get('failed', 0)} failed "
        f"({summary.get('result_counts')}); {MAX_CONCURRENT} updates in flight; "
        f"per device {small} small server requests, {sent} device-sent requests, "
        f"{blocks // max(1, n)} block exchanges; one lab run bracketed by two reference runs"
    )
    failed = n - int(summary.get("success", 0) or 0)
    caveats = [f"{failed}/{n} updates failed"] if failed else []
    if cut:
        caveats.insert(0, "lower bound")
        note = f"cancelled at the {DEADLINE_S:.0f} s deadline: the ratio is a lower bound; {note}"
    return [
        Row(
            key="campaign",
            what=what,
            goal=GOAL,
            lab=took,
            reference=reference,
            ref_what="the same count of bare aiocoap exchanges (Block1 PUT of the image, small "
            "GETs, device POSTs) at the same concurrency",
            ratio=took / reference,
            ratio_text="x+" if cut else "x",
            note=note,
            caveat=", ".join(caveats),
            samples={"lab": [took], "reference": refs},
        )
    ]
