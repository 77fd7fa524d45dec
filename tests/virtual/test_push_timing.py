"""A 64 KiB PUSH in 1024-byte blocks over a fixed 400 ms round trip: 64 x 0.4 s of simulated
time on virtual time, and the same State sequence, block count and result as over sockets."""

from __future__ import annotations

from typing import Any

import pytest

from labkit import Lab
from labkit.linkem import LinkRelay
from labkit.repo.images import build_image
from labkit.timebase import ScaledClock
from tests.linkem.links import steady_link

RTT_S = 0.4
BLOCK = 1024


def image_of(total: int) -> bytes:
    """A signed image of exactly ``total`` bytes."""
    overhead = len(build_image(version="2.0.0", size=1024)) - 1024
    image = build_image(version="2.0.0", size=total - overhead)
    assert len(image) == total
    return image


def push_over_fixed_link(lab: Lab, package: bytes) -> tuple[Any, list[str]]:
    link = steady_link(0, 1, rssi_dbm=-80.0, delay_s=RTT_S / 2, loss=0.0)
    relay = LinkRelay(link, (lab.server.host, lab.server.port), clock=lab.clock,
                      device="sim-0001")
    lab.call(relay.start())
    try:
        lab.add_device("sim-0001", server_uri=relay.uri, timeout=30.0)
        outcome = lab.update("sim-0001", package, method="push", block_size=BLOCK,
                             timeout=120.0)
    finally:
        lab.call(relay.stop())
    events = lab.events()
    states = events[(events["device"] == "sim-0001") & (events["source"] == "device")
                    & events["state"].notna()]["state"].astype(str).tolist()
    sequence = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    return outcome, sequence


def test_a_64_kib_push_over_a_400_ms_round_trip_takes_64_round_trips() -> None:
    package = image_of(64 * 1024)
    with Lab(clock="virtual", seed=1) as lab:
        outcome, sequence = push_over_fixed_link(lab, package)
    assert outcome.success and int(outcome.result) == 1
    assert outcome.blocks == 64
    assert outcome.download_s == pytest.approx(64 * RTT_S, rel=0.01)
    assert sequence == ["DOWNLOADING", "DOWNLOADED", "UPDATING", "IDLE"]


def test_the_same_push_over_real_sockets_gives_the_same_states_blocks_and_result() -> None:
    package = image_of(64 * 1024)
    with Lab(clock="virtual", seed=1) as lab:
        virtual, virtual_states = push_over_fixed_link(lab, package)
    # Sockets at 20x: the transfer takes about 1.3 s of wall time; only what does not depend on
    # timing is compared.
    with Lab(clock=ScaledClock(20.0), seed=1) as lab:
        lab.call(lambda: setattr(lab.server, "time_scale", 20.0))
        real, real_states = push_over_fixed_link(lab, package)
    assert real.success and virtual.success
    assert (real.blocks, int(real.result), real_states) == (
        virtual.blocks, int(virtual.result), virtual_states)
