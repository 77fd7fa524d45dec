"""A seeded, realistic FOTA campaign as event rows, for the plot and report tests.

``campaign_events(n, seed)`` builds what a lab run of ``n`` devices would log: registrations,
/4 link samples every 30 s, a threshold policy's decisions (wait while RSSI < -105 dBm, then
push or pull; give up after 8 waits), block-wise downloads with retransmissions, and outcomes
drawn per attempt: SUCCESS (reboot, re-registration, 1.0.0 -> 2.0.0), 4 CONNECTION_LOST midway,
5 INTEGRITY_CHECK_FAILURE after download, 8 UPDATE_FAILED after the reboot. A failed device
retries once. Devices belong to waves 0 (canary), 1 and 2.
"""

from __future__ import annotations

import math
import random

import pandas as pd

from labkit.events import Event
from labkit.record import events_to_frame

T0 = 1_800_000_000.0
IMAGE_BYTES = 64 * 1024
THRESHOLD_DBM = -105
MAX_WAITS = 8
WAVE_START_S = (30.0, 600.0, 1200.0)


def campaign_events(
    n_devices: int = 20, seed: int = 1, *, image_bytes: int = IMAGE_BYTES
) -> list[Event]:
    rng = random.Random(seed)
    out: list[Event] = [Event(ts=T0, source="campaign", kind="campaign", detail="start")]

    def add(t: float, source: str, kind: str, device: str, **kw: object) -> None:
        out.append(Event(ts=T0 + t, source=source, kind=kind, device=device, **kw))  # type: ignore[arg-type]

    for i in range(1, n_devices + 1):
        dev = f"sim-{i}"
        wave = 0 if i <= 2 else (1 if i <= n_devices // 2 else 2)
        method = "pull" if i % 4 == 0 else "push"
        base = rng.uniform(-116, -80)
        phase = rng.uniform(0, 2 * math.pi)

        def rssi_at(t: float, base: float = base, phase: float = phase) -> int:
            return round(base + 9 * math.sin(t / 400 + phase) + rng.gauss(0, 2.5))

        def lq_at(rssi: int) -> int:
            return max(0, min(100, round((rssi + 125) * 2.2 + rng.gauss(0, 4))))

        t = rng.uniform(0, 20)
        add(t, "server", "registered", dev, wave=wave)
        add(t + 0.2, "server", "fw_version", dev, fw_version="1.0.0")
        add(t + 0.3, "server", "fw_state", dev, state=0)
        add(t + 0.4, "server", "fw_result", dev, result=0)
        version = "1.0.0"
        attempts_left = 2
        t = max(t + 1, WAVE_START_S[wave] + rng.uniform(0, 60))
        waits = 0
        while attempts_left > 0:
            rssi = rssi_at(t)
            lq = lq_at(rssi)
            add(t, "server", "link", dev, rssi_dbm=rssi, link_quality=lq, battery=80)
            if rssi < THRESHOLD_DBM:
                waits += 1
                if waits > MAX_WAITS:
                    add(
                        t + 0.1,
                        "policy",
                        "decision",
                        dev,
                        decision="give_up",
                        reason=f"waited {MAX_WAITS} times",
                    )
                    break
                add(
                    t + 0.1,
                    "policy",
                    "decision",
                    dev,
                    decision="wait",
                    reason=f"RSSI {rssi} dBm below threshold {THRESHOLD_DBM} dBm",
                )
                t += 30
                continue
            waits = 0
            add(
                t + 0.1,
                "policy",
                "decision",
                dev,
                decision=method,
                reason=f"RSSI {rssi} dBm >= {THRESHOLD_DBM} dBm",
            )
            attempts_left -= 1
            path = "/5/0/0" if method == "push" else "/5/0/1"
            add(t + 0.3, "server", "request", dev, method="PUT", path=path)
            t += 0.5
            add(t, "server", "fw_state", dev, state=1)
            add(t + 0.05, "server", "fw_result", dev, result=0)
            fate = rng.random()
            outcome = 1
            if fate < 0.15:
                outcome = 4
            elif fate < 0.22:
                outcome = 5
            elif fate < 0.30:
                outcome = 8
            if method == "push":
                block_size, source, protocol = 1024, "server", "coap"
            else:
                block_size, source, protocol = 4096, "repo", "http"
            n_blocks = math.ceil(image_bytes / block_size)
            stop_at = rng.randrange(n_blocks // 4, 3 * n_blocks // 4) if outcome == 4 else n_blocks
            per_block = (0.4 if method == "push" else 1.6) * (1 + max(0.0, (-85 - rssi)) / 8)
            for b in range(stop_at):
                t += per_block * rng.uniform(0.7, 1.4)
                size = min(block_size, image_bytes - b * block_size)
                add(t, source, "block", dev, block=b, bytes=size, protocol=protocol)
                if rng.random() < 0.04:
                    t += 2.0
                    add(
                        t,
                        source,
                        "block",
                        dev,
                        block=b,
                        bytes=size,
                        protocol=protocol,
                        detail="retransmission",
                    )
                if b % 10 == 9:
                    rssi = rssi_at(t)
                    add(t + 0.01, "server", "link", dev, rssi_dbm=rssi, link_quality=lq_at(rssi))
            if outcome == 4:
                t += 12
                add(t, "server", "fw_state", dev, state=0)
                add(t + 0.05, "server", "fw_result", dev, result=4)
            elif outcome == 5:
                t += 1
                add(t, "server", "fw_state", dev, state=0)
                add(t + 0.05, "server", "fw_result", dev, result=5)
            else:
                t += 0.5
                add(t, "server", "fw_state", dev, state=2)
                t += rng.uniform(2, 8)
                add(t, "server", "request", dev, method="POST", path="/5/0/2")
                add(t + 0.1, "server", "fw_state", dev, state=3)
                t += rng.uniform(5, 15)
                add(t, "device", "reboot", dev)
                t += rng.uniform(10, 30)
                add(t, "server", "registered", dev, wave=wave)
                if outcome == 1:
                    version = "2.0.0"
                    add(t + 0.2, "server", "fw_version", dev, fw_version=version)
                    add(t + 0.3, "server", "fw_state", dev, state=0)
                    add(t + 0.4, "server", "fw_result", dev, result=1)
                    break
                add(t + 0.2, "server", "fw_version", dev, fw_version=version)
                add(t + 0.3, "server", "fw_state", dev, state=0)
                add(t + 0.4, "server", "fw_result", dev, result=8)
            if rng.random() < 0.3:
                break  # the operator does not retry this one
            t += 120
        # a last link sample and a registration update close the device's timeline
        t += 60
        rssi = rssi_at(t)
        add(t, "server", "link", dev, rssi_dbm=rssi, link_quality=lq_at(rssi))
        add(t + 0.5, "server", "reg_updated", dev)
    out.sort(key=lambda e: e.ts)
    return out


def campaign_frame(n_devices: int = 20, seed: int = 1, run_id: str = "demo-run") -> pd.DataFrame:
    """The campaign as a typed event table."""
    return events_to_frame(campaign_events(n_devices, seed), run_id)
