"""The simulated LwM2M device: a real CoAP/UDP client with a working /5 Firmware Update object.

* :mod:`labkit.client.store` -- the pure object store (values, attributes, operation rules).
* :mod:`labkit.client.firmware` -- the /5 glue: PUSH blocks, PULL downloads (CoAP and HTTP,
  resumed after interruptions), flash, install steps; where each package check runs.
* :mod:`labkit.client.http_download` -- a small HTTP/1.1 client with Range + If-Match.
* :mod:`labkit.client.bootloader` -- package types and MCUboot verification with imgtool.
* :mod:`labkit.client.model` -- flash slots on disk and ``state.json``, RAM, battery, faults.
* :mod:`labkit.client.device` -- :class:`SimulatedDevice`, the aiocoap adapter.

A device fails the way real ones do, on purpose: ``SimulatedDevice(..., faults=["boot-fail"])``
with the names of :mod:`labkit.sim.faults` (no-flash, no-ram, link-drop, corrupt-in-flash,
boot-fail, defer, power-loss, no-http). Its bootloader trusts the lab key in ``data/keys/``
(or ``trusted_key=``), so images from ``labkit image build`` in the same folder install.

Many devices can run in one process; each owns one UDP socket (one aiocoap context), bound
without SO_REUSEPORT (:func:`labkit.coap.open_udp_context`, re-exported here). With
``time_scale=100`` a device runs its timers and CoAP retransmissions 100 times faster than the
wall clock (an NB-IoT update of ten minutes lasts six seconds; see :mod:`labkit.client.device`).
An idle registered device costs about 20 KiB of resident memory (measured with 1,000 devices
in one process).

Quick use (in a notebook cell or any coroutine)::

    dev = SimulatedDevice("sim-1", "coap://127.0.0.1:5683", lifetime=60)
    await dev.start()                 # bind, Register, keep the registration alive
    dev.set_value("/4/0/2", -101)     # the link got worse; observers are notified
    await dev.stop()                  # De-register, close the socket

Packages: signed MCUboot images, verified at the reboot (a bad signature or hash is never
booted: Result 5); or the lab's unsigned teaching packages, whose first line is
``LABKIT-FW <version>\n`` (installs ``<version>``, or ``<old version>+1`` without one); any
other bytes are refused at download end (Result 6).
"""

from __future__ import annotations

from labkit.client.bootloader import Bootloader
from labkit.client.device import SimulatedDevice
from labkit.client.firmware import InstallOutcome, default_installer, package_version
from labkit.client.model import FaultTiming, FlashStorage
from labkit.client.store import Attributes, ObjectStore, OperationError
from labkit.coap import open_udp_context

__all__ = [
    "Attributes",
    "Bootloader",
    "FaultTiming",
    "FlashStorage",
    "InstallOutcome",
    "ObjectStore",
    "OperationError",
    "SimulatedDevice",
    "default_installer",
    "open_udp_context",
    "package_version",
]
