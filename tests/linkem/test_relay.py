"""The link relay over real UDP on loopback, and /4 values that follow the trace."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from labkit.client import SimulatedDevice
from labkit.events import Event
from labkit.linkem import LinkFeeder, LinkRelay
from labkit.server import DeviceUnreachable, LwM2MServer, RequestTimeout, scaled_tuning
from labkit.sim import device_link, outage
from labkit.sim.link import LinkImpairment
from labkit.timebase import ScaledClock
from tests.linkem.links import steady_link

T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await scenario()

    return asyncio.run(main())


class Sink(asyncio.DatagramProtocol):
    """A UDP endpoint that records what it receives and can echo it back."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.got: list[tuple[bytes, float]] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((data, time.monotonic()))
        if self.echo:
            self.transport.sendto(data, addr)


@contextlib.asynccontextmanager
async def endpoint(echo: bool = False) -> Any:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: Sink(echo), local_addr=("127.0.0.1", 0)
    )
    try:
        yield proto, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_datagrams_pass_both_ways_and_the_server_sees_the_relay() -> None:
    async def scenario() -> None:
        async with endpoint(echo=True) as (server, port), endpoint() as (device, _):
            relay = LinkRelay(steady_link(delay_s=0.0), ("127.0.0.1", port))
            async with relay:
                for i in range(20):
                    device.transport.sendto(f"ping {i}".encode(), ("127.0.0.1", relay.device_port))
                await eventually(lambda: len(device.got) == 20)
                assert sorted(d for d, _ in server.got) == sorted(
                    f"ping {i}".encode() for i in range(20)
                )
                assert relay.stats.up_sent == relay.stats.down_sent == 20
                assert relay.stats.up_dropped == relay.stats.down_dropped == 0
                assert relay.uri == f"coap://127.0.0.1:{relay.device_port}"
                assert relay.server_port not in (None, relay.device_port)

    run(scenario)


def test_drop_fraction_follows_the_seeded_loss() -> None:
    n = 1000

    async def scenario() -> tuple[int, LinkImpairment]:
        link = steady_link(seed=7, loss=0.3, delay_s=0.0)
        async with endpoint() as (server, port), endpoint() as (device, _):
            relay = LinkRelay(link, ("127.0.0.1", port))
            async with relay:
                for i in range(n):
                    device.transport.sendto(i.to_bytes(4, "big"), ("127.0.0.1", relay.device_port))
                    if i % 50 == 49:
                        await asyncio.sleep(0.005)  # keep the socket buffers small
                await eventually(lambda: relay.stats.up_sent == n)
                await asyncio.sleep(0.1)
                delivered = {int.from_bytes(d, "big") for d, _ in server.got}
                assert relay.stats.up_dropped == n - len(delivered)
                return len(delivered), link

    delivered, link = run(scenario)
    dropped = n - delivered
    assert 0.25 * n < dropped < 0.35 * n  # loss 0.3; 3 sigma is about +-0.045
    # Seeded: a fresh impairment with the same seed drops exactly as many of n datagrams.
    fresh = steady_link(seed=7, loss=0.3, delay_s=0.0)
    again = sum(fresh.decide(1.0, 4).drop for _ in range(n))
    assert again == dropped == link.dropped


def test_delay_is_the_simulated_delay_divided_by_the_scale() -> None:
    async def scenario() -> list[float]:
        clock = ScaledClock(10.0)
        link = steady_link(delay_s=0.5)  # one way; 1 s simulated round trip = 0.1 s wall
        async with endpoint(echo=True) as (_, port), endpoint() as (device, _):
            relay = LinkRelay(link, ("127.0.0.1", port), clock=clock)
            async with relay:
                rtts = []
                for _ in range(5):
                    t = time.monotonic()
                    device.transport.sendto(b"x", ("127.0.0.1", relay.device_port))
                    n = len(device.got)
                    await eventually(lambda n=n: len(device.got) > n)
                    rtts.append(device.got[-1][1] - t)
                return rtts

    rtts = run(scenario)
    assert all(0.095 <= r < 0.5 for r in rtts), rtts


def test_a_cut_drops_everything_for_its_duration() -> None:
    async def scenario() -> None:
        clock = ScaledClock(100.0)
        async with endpoint() as (server, port), endpoint() as (device, _):
            relay = LinkRelay(steady_link(delay_s=0.0), ("127.0.0.1", port), clock=clock)
            async with relay:
                relay.cut(20.0)  # 0.2 s wall
                device.transport.sendto(b"lost", ("127.0.0.1", relay.device_port))
                await asyncio.sleep(0.3)
                device.transport.sendto(b"kept", ("127.0.0.1", relay.device_port))
                await eventually(lambda: len(server.got) == 1)
                assert server.got[0][0] == b"kept"
                assert relay.stats.cut_dropped == 1

    run(scenario)


@contextlib.asynccontextmanager
async def device_behind_relay(
    link: LinkImpairment,
    clock: ScaledClock,
    scale: float,
    *,
    interval_s: float = 5.0,
    device_events: list[Event] | None = None,
) -> Any:
    events: list[Event] = []
    server = LwM2MServer(on_event=events.append, clock=clock, time_scale=scale)
    await server.start()
    relay = LinkRelay(link, ("127.0.0.1", server.port), clock=clock, device="sim-1")
    await relay.start()
    sink = device_events.append if device_events is not None else (lambda _e: None)
    dev = SimulatedDevice("sim-1", relay.uri, lifetime=86400, on_event=sink)
    feeder = LinkFeeder([(dev, link)], clock=clock, interval_s=interval_s)
    relay.before_delivery = feeder.refresher(dev, link)
    try:
        await dev.start(timeout=10)
        feeder.start()
        yield server, dev, relay, feeder
    finally:
        await feeder.stop()
        await dev.stop(deregister=False, timeout=2)
        await relay.stop()
        await server.stop()


def test_values_in_4_follow_the_trace() -> None:
    async def scenario() -> None:
        mono = [100.0]
        # simulated time stands still unless the test moves it; delays are divided by 100
        clock = ScaledClock(100.0, monotonic=lambda: mono[0])
        link = device_link("nb-iot", 3, seed=11)
        async with device_behind_relay(link, clock, 100.0) as (server, dev, _relay, _feeder):
            for t in (0.0, 250.0, 1800.0, 7200.0):
                mono[0] = 100.0 + t / 100.0
                resp = await server.device("sim-1").read("/4/0", timeout=10)
                sample = link.trace.sample(t)
                got = {str(p): v for p, v in resp.values.items()}
                assert got["/4/0/2"] == sample.rssi_dbm
                assert got["/4/0/3"] == sample.link_quality
                assert got["/4/0/0"] == 7  # NB-IoT (digest 2)
                assert dev.value("/4/0/2") == sample.rssi_dbm

    run(scenario)


def test_only_requests_that_can_read_4_refresh_it_and_they_see_the_trace_at_arrival() -> None:
    """The relay refreshes /4 before a request that can read it (here GET /4/0/2), never
    before a Block1 PUT to /5/0/0 or a read of /3: those leave /4 and the link rows alone even
    when the trace moved, and the next /4 read answers the trace's value at its arrival."""

    async def scenario() -> None:
        mono = [100.0]
        clock = ScaledClock(100.0, monotonic=lambda: mono[0])  # still unless the test moves it
        link = device_link("nb-iot", 3, seed=11)
        t1 = next(t for t in range(60, 7200, 60) if link.trace.signal(t) != link.trace.signal(0))
        rows: list[Event] = []

        def link_rows() -> list[tuple[int | None, int | None]]:
            return [(e.rssi_dbm, e.link_quality) for e in rows if e.kind == "link"]

        # a periodic tick that never comes during the test: only the relay refreshes
        async with device_behind_relay(link, clock, 100.0, interval_s=1e9,
                                       device_events=rows) as (server, dev, _relay, _feeder):
            handle = server.device("sim-1")
            at_start = link.trace.signal(0.0)
            assert link_rows()[-1] == at_start
            before = len(link_rows())
            mono[0] = 100.0 + t1 / 100.0  # the trace moves on
            resp = await handle.write("/5/0/0", b"\x00" * 200, block_size=64, timeout=10)
            assert resp.code is not None
            assert (await handle.read("/3/0/0", timeout=10)).ok
            assert len(link_rows()) == before  # no PUT block, no /3 read refreshed /4
            assert (dev.value("/4/0/2"), dev.value("/4/0/3")) == at_start
            resp = await handle.read("/4/0/2", timeout=10)
            rssi, lq = link.trace.signal(float(t1))
            assert next(iter(resp.values.values())) == rssi
            assert dev.value("/4/0/3") == lq
            assert link_rows()[before:] == [(rssi, lq)]  # the read wrote one row, first

    run(scenario)


def test_server_timers_are_scaled_a_dead_link_fails_fast() -> None:
    assert abs(scaled_tuning(100.0).ACK_TIMEOUT - 0.02) < 1e-12
    assert scaled_tuning(1.0).ACK_TIMEOUT == 2.0

    async def scenario() -> float:
        clock = ScaledClock(100.0)
        # up for 10 simulated seconds from the relay's origin, then an outage
        link = steady_link(dips=[outage(10_000.0, 1e9)])
        async with device_behind_relay(link, clock, 100.0) as (server, _, relay, _f):
            relay.t0 = clock.elapsed() - 20_000.0  # jump the trace into its outage
            t = time.monotonic()
            with pytest.raises((DeviceUnreachable, RequestTimeout)):
                await server.device("sim-1").read("/3/0/3", timeout=20)
            return time.monotonic() - t

    took = run(scenario)
    # MAX_TRANSMIT_WAIT of 93 s lasts 0.93 s at 100x (not 93 s, nor the 20 s timeout)
    assert took < 5.0


def test_one_link_row_per_sample_with_both_values_of_that_sample() -> None:
    """A sample that changes RSSI and Link Quality is one ``link`` row holding both new values
    (never a row mixing the new Link Quality with the old RSSI); an unchanged sample, none."""

    async def scenario() -> None:
        mono = [100.0]
        clock = ScaledClock(100.0, monotonic=lambda: mono[0])
        link = device_link("nb-iot", 3, seed=11)
        events: list[Event] = []
        dev = SimulatedDevice("sim-1", "coap://127.0.0.1:5683", on_event=events.append)
        feeder = LinkFeeder([(dev, link)], clock=clock, interval_s=5.0)
        samples = []
        for t in (0.0, 0.0, 250.0, 1800.0, 7200.0):
            mono[0] = 100.0 + t / 100.0
            feeder.refresh(dev, link)
            samples.append(link.trace.signal(t))
        rows = [(e.rssi_dbm, e.link_quality) for e in events if e.kind == "link"]
        distinct = [s for i, s in enumerate(samples) if i == 0 or s != samples[i - 1]]
        assert rows == distinct  # one row per changed sample, each the sample's own pair
        assert len({r for r, _ in rows}) > 1 and len({q for _, q in rows}) > 1  # both moved
        assert feeder.updates == len(rows)

    run(scenario)


def test_set_values_notes_one_link_row_and_refuses_unknown_paths_whole() -> None:
    events: list[Event] = []
    dev = SimulatedDevice("sim-1", "coap://127.0.0.1:5683", on_event=events.append)
    dev.set_values({"/4/0/3": 7, "/4/0/2": -99})
    assert [(e.path, e.rssi_dbm, e.link_quality) for e in events if e.kind == "link"] == [
        ("/4/0/2", -99, 7)
    ]
    with pytest.raises(KeyError):
        dev.set_values({"/4/0/2": -80, "/4/0/77": 1})
    assert dev.value("/4/0/2") == -99  # nothing changed
    dev.set_values({"/3/0/9": 55})  # not a link value: no link row
    assert dev.value("/3/0/9") == 55
    assert len([e for e in events if e.kind == "link"]) == 1
