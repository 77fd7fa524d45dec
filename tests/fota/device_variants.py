"""A simulated device with one behaviour changed, run as its own process for the CLI tests.

    python -m tests.fota.device_variants --server coap://HOST:PORT --endpoint EP --variant V

Variants (each stands in for a third-party client the orchestrator must cope with):

* ``plain``          -- the lab's SimulatedDevice as it is;
* ``hang-download``  -- a PULL never finishes: the device stays in DOWNLOADING (State 1);
* ``install-fails``  -- the install fails and the image is kept: DOWNLOADED, Result 8;
* ``coap-only``      -- /5/0/8 lists CoAP only (no HTTP download).

Prints ``registered EP`` once registered, runs until SIGTERM/SIGINT, then de-registers.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from labkit.client import InstallOutcome, SimulatedDevice
from labkit.client import firmware as firmware_module
from labkit.lwm2m.objects import ProtocolSupport, UpdateResult


async def _hang(*args: Any, **kwargs: Any) -> bytes:
    await asyncio.sleep(3600)  # the repository "never answers"; the process is killed first
    raise AssertionError("unreachable")


def _failing_installer(package: bytes) -> InstallOutcome:
    return InstallOutcome(success=False, result=UpdateResult.UPDATE_FAILED, image_usable=True)


async def main(args: argparse.Namespace) -> int:
    kwargs: dict[str, Any] = {}
    if args.variant == "hang-download":
        firmware_module.coap_download = _hang  # type: ignore[assignment]
    elif args.variant == "install-fails":
        kwargs["installer"] = _failing_installer
    elif args.variant == "coap-only":
        kwargs["protocols"] = (ProtocolSupport.COAP,)
    device = SimulatedDevice(args.endpoint, args.server, lifetime=60, **kwargs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await device.start(timeout=20)
    print(f"registered {args.endpoint}", flush=True)
    try:
        await stop.wait()
    finally:
        await asyncio.wait_for(device.stop(timeout=3), 10)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument(
        "--variant",
        default="plain",
        choices=("plain", "hang-download", "install-fails", "coap-only"),
    )
    raise SystemExit(asyncio.run(main(parser.parse_args())))
