"""The lab's LwM2M server: registrations, requests to devices, observations, Send.

``server/`` never decides; it translates. :class:`LwM2MServer` is the aiocoap adapter for the
LwM2M server role (Client Registration Interface, LwM2M Send), :class:`DeviceProxy` turns
Device Management operations into CoAP requests to one registered device, and
:class:`Registry` is the socket-free store of registrations. What to do with a device (read
its version, push an image, wait for the reboot) is decided by the FOTA orchestrator.
"""

from __future__ import annotations

from labkit.server.device import DEFAULT_BLOCK_SIZE, DeviceProxy
from labkit.server.observe import Observation
from labkit.server.registry import Registration, Registry, UnknownRegistration
from labkit.server.response import (
    DeviceNotRegistered,
    DeviceUnreachable,
    RequestFailed,
    RequestTimeout,
    Response,
    ServerError,
)
from labkit.server.server import QUEUE_AWAKE_WINDOW, LwM2MServer, scaled_tuning

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "QUEUE_AWAKE_WINDOW",
    "DeviceNotRegistered",
    "DeviceProxy",
    "DeviceUnreachable",
    "LwM2MServer",
    "Observation",
    "Registration",
    "Registry",
    "RequestFailed",
    "RequestTimeout",
    "Response",
    "ServerError",
    "UnknownRegistration",
    "scaled_tuning",
]
