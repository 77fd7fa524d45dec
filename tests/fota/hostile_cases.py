"""Seeded updates against hostile-notification devices, one case per Update Result 1-11.

Shared by the property tests (a few dozen updates under a fixed seed) and the long run
(``python -m tests.fota.hostile_cases --n 500``, also ``python -m benchmarks --only hostile``).
Every case is a real update over CoAP/UDP on loopback: the lab's LwM2MServer, a
SimulatedDevice whose /5/0/3 and /5/0/5 notifications are reordered, coalesced, delayed,
dropped or repeated from a seed (:mod:`labkit.client.hostile`), and :func:`labkit.fota.update`.
A case *agrees* when the Update Result the server concluded equals the device's own /5/0/5
(``SimulatedDevice.own_result``) at the end.

How each code is produced (nothing is faked on the server's side):

== =============================================================================================
1  a good lab package, PUSH or PULL
2  ``no-flash``        3  ``no-ram``        4  ``link-drop`` (PULL, short link timings)
5  ``corrupt-in-flash`` 6  bytes that are no image   8  ``boot-fail``
7  a repository that hands out URIs with nothing behind them (4.04)
9  a repository that hands out ``coaps://`` URIs (a scheme the device cannot download)
10 Cancel (``cancel_after``) while the repository holds the download after two blocks
11 ``defer``: the user postpones longer than the attempt may last; the attempt ends on its
   overall timeout with the device in DOWNLOADED / Result 11
== =============================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from labkit.client import FaultTiming, SimulatedDevice
from labkit.client.hostile import HostileNotifications
from labkit.fota import Outcome, update
from labkit.repo.repository import FirmwareRepository
from labkit.server import LwM2MServer

CODES = tuple(range(1, 12))


def lab_package(version: str, size: int, seed: int = 1) -> bytes:
    head = f"LABKIT-FW {version}\n".encode()
    return head + random.Random(seed).randbytes(size - len(head))


GOOD = lab_package("2.0.0", 6 * 1024)
NOT_AN_IMAGE = random.Random(6).randbytes(3 * 1024)


class RewritingRepository:
    """A real repository whose URIs are rewritten: a misconfigured download server.

    ``how="missing"`` points at a path that does not exist (the device gets 4.04: Result 7);
    ``how="coaps"`` gives a ``coaps://`` URI (a scheme the device does not download: 9).
    """

    def __init__(self, repo: FirmwareRepository, how: str) -> None:
        self._repo = repo
        self._how = how

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    def __contains__(self, name: object) -> bool:
        return name in self._repo

    def coap_uri(self, name: str) -> str:
        uri = self._repo.coap_uri(name)
        if self._how == "missing":
            return uri.replace("/fw/", "/fw/missing-")
        return uri.replace("coap://", "coaps://", 1)


@dataclass(frozen=True)
class Case:
    code: int  # the Update Result the case is built to produce
    seed: int
    method: str
    hostile: HostileNotifications


@dataclass(frozen=True)
class Verdict:
    case: Case
    outcome: Outcome
    own_result: int
    own_state: int
    history: tuple[tuple[str, int], ...]
    notifications: tuple[tuple[str, Any, str], ...]

    @property
    def concluded(self) -> int | None:
        return None if self.outcome.result is None else int(self.outcome.result)

    @property
    def agrees(self) -> bool:
        return self.concluded == self.own_result

    def describe(self) -> str:
        return (
            f"code {self.case.code} seed {self.case.seed} {self.case.method}: server "
            f"{self.concluded} ({self.outcome.result_line}, {self.outcome.result_source}), "
            f"device {self.own_result}; {self.outcome.reason}; history {self.history}; "
            f"notifications {self.notifications[:12]}"
        )


def make_cases(n: int, seed: int) -> list[Case]:
    """``n`` cases cycling through the codes 1-11, each with its own hostile seed."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        code = CODES[i % len(CODES)]
        method = rng.choice(("push", "pull"))
        if code in (4, 7, 9, 10):
            method = "pull"
        cases.append(Case(code, rng.randrange(1 << 30), method, hostile_for(rng)))
    return cases


def hostile_for(rng: random.Random) -> HostileNotifications:
    """A hostile profile: mostly the seeded mix, sometimes a fixed third-party-like order."""
    seed = rng.randrange(1 << 30)
    pick = rng.random()
    if pick < 0.15:
        return HostileNotifications.notifying_state_before_result(seed)
    if pick < 0.25:
        return HostileNotifications.never_notifying_result(seed)
    return HostileNotifications(
        seed=seed,
        reorder=rng.choice((0.5, 1.0)),
        coalesce=rng.choice((0.0, 0.2)),
        delay=rng.choice((0.0, 0.2, 0.4)),
        drop=rng.choice((0.0, 0.2, 0.4)),
        repeat=rng.choice((0.0, 0.3)),
    )


class Bench:
    """One server and repository shared by many cases (each case its own device)."""

    def __init__(self) -> None:
        self.server = LwM2MServer()
        self.repo = FirmwareRepository()
        self.count = 0

    async def __aenter__(self) -> Bench:
        await self.server.start()
        await self.repo.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.repo.stop(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.stop(), 10)

    async def run(self, case: Case) -> Verdict:
        self.count += 1
        endpoint = f"h{self.count:04d}-c{case.code}"
        device_kw: dict[str, Any] = {"seed": case.seed, "lifetime": 120}
        update_kw: dict[str, Any] = {"timeout": 5.0, "poll_interval": 0.5, "reboot_timeout": 10}
        package = GOOD
        repo: Any = self.repo
        own_repo: FirmwareRepository | None = None
        code = case.code
        if code in (2, 3, 5, 8):
            device_kw["faults"] = [
                {2: "no-flash", 3: "no-ram", 5: "corrupt-in-flash", 8: "boot-fail"}[code]
            ]
        elif code == 4:
            device_kw.update(
                faults=["link-drop"],
                fault_timing=FaultTiming(link_drop_s=1.5),
                request_timeout=0.3,
                download_retries=1,
                retry_delay=0.05,
            )
        elif code == 6:
            package = NOT_AN_IMAGE
        elif code in (7, 9):
            repo = RewritingRepository(self.repo, "missing" if code == 7 else "coaps")
        elif code == 10:
            own_repo = FirmwareRepository()
            await own_repo.start()
            own_repo.drop_after(blocks=2, times=1)
            repo = own_repo
            device_kw["request_timeout"] = 30
            update_kw["cancel_after"] = 0.3
        elif code == 11:
            device_kw.update(faults=["defer"], fault_timing=FaultTiming(defer_s=600))
            update_kw["overall_timeout"] = 2.5
        device = SimulatedDevice(
            endpoint, self.server.uri, hostile_notifications=case.hostile, **device_kw
        )
        try:
            await device.start(timeout=10)
            outcome = await update(
                self.server,
                endpoint,
                package,
                method=case.method,
                repository=repo if case.method == "pull" else None,
                **update_kw,
            )
            return Verdict(
                case,
                outcome,
                device.own_result,
                device.own_state,
                tuple((kind, value) for _, kind, value in device.fw_history),
                tuple(device.notification_log),
            )
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(device.stop(timeout=2), 10)
            if own_repo is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(own_repo.stop(), 10)


async def run_cases(cases: list[Case], *, concurrency: int = 4) -> list[Verdict]:
    """Run ``cases`` against one server, ``concurrency`` at a time, in their order."""
    async with Bench() as bench:
        slots = asyncio.Semaphore(concurrency)

        async def one(case: Case) -> Verdict:
            async with slots:
                return await bench.run(case)

        return list(await asyncio.gather(*(one(c) for c in cases)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fota.hostile_cases")
    p.add_argument("--n", type=int, default=500, help="updates (500)")
    p.add_argument("--seed", type=int, default=13, help="seed of the case list (13)")
    p.add_argument("--concurrency", type=int, default=4)
    args = p.parse_args(argv)
    started = time.perf_counter()
    verdicts = asyncio.run(run_cases(make_cases(args.n, args.seed), concurrency=args.concurrency))
    bad = [v for v in verdicts if not v.agrees]
    for v in bad:
        print("DISAGREES", v.describe(), flush=True)
    codes: dict[int, int] = {}
    for v in verdicts:
        codes[v.own_result] = codes.get(v.own_result, 0) + 1
    print(f"device results: {dict(sorted(codes.items()))}")
    print(
        f"{len(verdicts) - len(bad)} of {len(verdicts)} updates ended with the device's own "
        f"result ({len(bad)} disagree), {time.perf_counter() - started:.0f} s"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
