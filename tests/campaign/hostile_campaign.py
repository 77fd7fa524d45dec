"""A campaign over devices in the hostile-notifications mode: does its table hold their results?

Shared by the suite's test (30 devices) and the long run
(``python -m tests.campaign.hostile_campaign --devices 200``). Each device is a
SimulatedDevice with its own hostile seed (:mod:`labkit.client.hostile`) and, for most of
them, a fault (no-flash 2, no-ram 3, corrupt-in-flash 5, boot-fail 8) or none (1); the
campaign updates them all (PUSH, or PULL from a repository), and the per-device table
(:meth:`Campaign.devices`) is compared with each device's own /5/0/5 afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from dataclasses import dataclass

import pandas as pd

from labkit.client import SimulatedDevice
from labkit.client.hostile import HostileNotifications
from labkit.fota.campaign import Campaign
from labkit.repo.repository import FirmwareRepository
from labkit.server import LwM2MServer

FAULTS = ((), ("no-flash",), ("no-ram",), ("corrupt-in-flash",), ("boot-fail",))


def lab_package(version: str = "2.0.0", size: int = 4096, seed: int = 1) -> bytes:
    head = f"LABKIT-FW {version}\n".encode()
    return head + random.Random(seed).randbytes(size - len(head))


@dataclass(frozen=True)
class CampaignCheck:
    table: pd.DataFrame  # Campaign.devices() with an ``own_result`` column added
    wall_s: float

    @property
    def disagreeing(self) -> pd.DataFrame:
        concluded = self.table["result"].astype("Int64")
        return self.table[concluded.isna() | (concluded != self.table["own_result"])]


async def run_campaign(n: int, *, seed: int = 13, method: str = "push") -> CampaignCheck:
    """Start ``n`` hostile devices, update them in one campaign, compare the table."""
    rng = random.Random(seed)
    started = time.perf_counter()
    server = LwM2MServer()
    repo = FirmwareRepository()
    await server.start()
    await repo.start()
    devices: list[SimulatedDevice] = []
    try:
        for i in range(n):
            hostile_seed = rng.randrange(1 << 30)
            pick = rng.random()
            if pick < 0.15:
                hostile = HostileNotifications.notifying_state_before_result(hostile_seed)
            elif pick < 0.25:
                hostile = HostileNotifications.never_notifying_result(hostile_seed)
            else:
                hostile = HostileNotifications(seed=hostile_seed, drop=0.3, delay=0.3)
            devices.append(
                SimulatedDevice(
                    f"hc-{i:04d}",
                    server.uri,
                    seed=rng.randrange(1 << 30),
                    lifetime=300,
                    faults=FAULTS[rng.randrange(len(FAULTS))],
                    hostile_notifications=hostile,
                )
            )
        slots = asyncio.Semaphore(16)

        async def start(dev: SimulatedDevice) -> None:
            async with slots:
                await dev.start(timeout=30)

        await asyncio.gather(*(start(d) for d in devices))
        campaign = Campaign(
            server,
            lab_package(),
            fleet=[d.endpoint for d in devices],
            method=method,
            repository=repo if method == "pull" else None,
            max_concurrent=16,
            timeout_s=10.0,
            reboot_timeout_s=20.0,
        )
        await campaign.run()
        table = campaign.devices()
        own = {d.endpoint: d.own_result for d in devices}
        table["own_result"] = table["device"].map(own).astype("Int64")
        return CampaignCheck(table, time.perf_counter() - started)
    finally:
        stops = [asyncio.wait_for(d.stop(timeout=2), 10) for d in devices]
        await asyncio.gather(*stops, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(repo.stop(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.stop(), 10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.campaign.hostile_campaign")
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--method", choices=("push", "pull"), default="push")
    args = p.parse_args(argv)
    check = asyncio.run(run_campaign(args.devices, seed=args.seed, method=args.method))
    bad = check.disagreeing
    if len(bad):
        print(bad[["device", "status", "result", "own_result", "reason"]].to_string())
    own = check.table["own_result"].value_counts().sort_index()
    counts = {int(k): int(v) for k, v in own.items()}
    print(f"device results: {counts}")
    print(
        f"{len(check.table) - len(bad)} of {len(check.table)} rows of the campaign table equal "
        f"the device's own result ({len(bad)} differ), {check.wall_s:.0f} s"
    )
    return 1 if len(bad) else 0


if __name__ == "__main__":
    sys.exit(main())
