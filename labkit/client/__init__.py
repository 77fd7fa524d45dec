"""The simulated LwM2M device: a real CoAP/UDP client with a working /5 Firmware Update object.

* :mod:`labkit.client.store` -- the pure object store (values, attributes, operation rules).
* :mod:`labkit.client.firmware` -- the /5 glue: PUSH blocks, PULL downloads, install outcome.
* :mod:`labkit.client.device` -- :class:`SimulatedDevice`, the aiocoap adapter.

Many devices can run in one process; each owns one UDP socket (one aiocoap context), bound
without SO_REUSEPORT (see :func:`open_udp_context`). An idle registered device costs about
20 KiB of resident memory (measured with 1,000 devices in one process).

Quick use (in a notebook cell or any coroutine)::

    dev = SimulatedDevice("sim-1", "coap://127.0.0.1:5683", lifetime=60)
    await dev.start()                 # bind, Register, keep the registration alive
    dev.set_value("/4/0/2", -101)     # the link got worse; observers are notified
    await dev.stop()                  # De-register, close the socket

Lab package convention (the default installer): a package whose first line is
``LABKIT-FW <version>\n`` installs firmware version ``<version>``; any other non-empty package
installs ``<old version>+1``.
"""

from __future__ import annotations

from labkit.client.device import SimulatedDevice, open_udp_context
from labkit.client.firmware import InstallOutcome, default_installer, package_version
from labkit.client.store import Attributes, ObjectStore, OperationError

__all__ = [
    "Attributes",
    "InstallOutcome",
    "ObjectStore",
    "OperationError",
    "SimulatedDevice",
    "default_installer",
    "open_udp_context",
    "package_version",
]
