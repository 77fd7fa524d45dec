"""The lab's one way to open a CoAP endpoint, and CoAP timers that follow the time scale.

Every aiocoap context the lab creates -- the LwM2M server, each simulated device, the firmware
repository -- comes from :func:`open_udp_context`, which binds one UDP socket *without*
``SO_REUSEPORT``. aiocoap's udp6 server transport sets that option before ``bind()`` on Linux;
with it, two sockets of the same user bound to port 0 may be handed the same port, and the
kernel then load-balances datagrams between them (seen with 100 simulated devices registering
at once: one device's 2.01 landed on another's socket). On a fixed port it lets a forgotten
second server on 5683 silently share the traffic (digest pitfall 9.9). Without the option, an
ephemeral port is always the socket's own and a busy fixed port fails loudly (``OSError``).

Decision on ``AIOCOAP_REUSE_PORT``: the lab's own sockets do not depend on it (they never get
the option). ``import labkit`` still sets the variable to ``0`` by default (``setdefault``: a
user's choice wins) for the aiocoap contexts the lab does *not* create in the same process --
a notebook or a benchmark reference that calls ``aiocoap.Context.create_server_context``
many times with port 0 would otherwise share ports among themselves in the same way. That one
line in :mod:`labkit` is the only other place; the runtime and the command line no longer
touch the environment, and the repository no longer probes for free ports.

:func:`scaled_tuning` gives the aiocoap transport tuning whose RFC 7252 retransmission timers
are divided by a time scale (:mod:`labkit.timebase`), for every CON message a time-scaled
peer sends.

This module owns sockets but decides nothing about LwM2M.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import aiocoap
from aiocoap.numbers.constants import Reliable, TransportTuning

__all__ = ["local_port", "open_udp_context", "scaled_tuning"]


async def open_udp_context(
    site: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    loggername: str = "coap",
    on_reject: Callable[[str, Any, str], None] | None = None,
) -> aiocoap.Context:
    """An aiocoap context serving ``site`` on one UDP socket bound to ``(host, port)``.

    Like ``Context.create_server_context(site, bind=(host, port), transports=["udp6"])`` but
    the socket is bound without ``SO_REUSEPORT`` (see the module docstring): port 0 gives a
    port no other socket holds, a busy fixed port raises :class:`OSError`. The socket is
    dual-stack (IPv4 addresses are bound v4-mapped), as aiocoap's udp6 transport expects.
    Uses that transport's internals (``_create_transport_endpoint``); Linux, as the udp6
    transport itself. On a virtual-time loop (:mod:`labkit.virtual`) the context is bound on
    the loop's in-process network instead (:func:`labkit.virtual.network.open_virtual_context`):
    the same aiocoap context, the same callers, no socket.

    Datagrams pass :class:`labkit.guard.GuardedUDP6` before aiocoap parses them (oversized,
    malformed, unknown critical options, non-UTF-8 strings are refused as RFC 7252 says;
    ``on_reject(code, remote, reason)`` hears of each), and the message de-duplication cache
    is bounded (:func:`labkit.guard.bound_deduplication`).
    """
    from labkit.guard import GuardedUDP6, bound_deduplication

    async def endpoint(mman: Any) -> Any:
        bound_deduplication(mman)
        protocol = await GuardedUDP6._create_transport_endpoint(sock, mman, log=ctx.log, loop=loop)
        protocol.on_reject = on_reject
        return protocol

    loop = asyncio.get_running_loop()
    network = getattr(loop, "network", None)
    if network is not None:  # a virtual-time loop: the context lives on its in-process network
        from labkit.virtual.network import open_virtual_context

        return await open_virtual_context(network, site, host, port, loggername=loggername)
    infos = await loop.getaddrinfo(
        host, port, family=socket.AF_INET6, type=socket.SOCK_DGRAM, flags=socket.AI_V4MAPPED
    )
    sock = socket.socket(family=socket.AF_INET6, type=socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(infos[0][4])
    except OSError:
        sock.close()
        raise
    ctx = aiocoap.Context(loop=loop, serversite=site, loggername=loggername)
    try:
        await ctx._append_tokenmanaged_messagemanaged_transport(endpoint)
    except BaseException:
        sock.close()
        raise
    return ctx


def local_port(ctx: aiocoap.Context) -> int | None:
    """The local UDP port of a context made by :func:`open_udp_context` (None once closed)."""
    for interface in ctx.request_interfaces:
        mi = getattr(getattr(interface, "token_interface", None), "message_interface", None)
        if hasattr(mi, "local_port"):  # labkit.virtual.network.VirtualMessageInterface
            return mi.local_port  # type: ignore[union-attr,no-any-return]
        transport = getattr(mi, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None and sock.fileno() >= 0:
            return int(sock.getsockname()[1])
    return None


def scaled_tuning(time_scale: float = 1.0, *, reliable: bool = True) -> TransportTuning:
    """aiocoap transport tuning with the RFC 7252 timers divided by ``time_scale``.

    Digest 7.5: ACK_TIMEOUT 2 s, ACK_RANDOM_FACTOR 1.5, MAX_RETRANSMIT 4, MAX_LATENCY 100 s;
    at 100x the first retransmission of a CON comes after 20-30 ms and a CON is given up after
    MAX_TRANSMIT_WAIT = 0.93 s instead of 93 s. aiocoap reads the timers from each message's
    ``transport_tuning`` (``messagemanager``: first retransmission after
    ``uniform(ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR)``, then doubling,
    ``MAX_RETRANSMIT`` times), so scaling is a property of the message, not a patch of the
    library.

    ``reliable=True`` (requests) sends the message as CON; ``reliable=False`` leaves the
    choice to aiocoap (responses and notifications: CON when the request was CON).
    ``time_scale=1`` with ``reliable=True`` is aiocoap's :class:`~aiocoap.Reliable`.
    """
    if isinstance(time_scale, bool) or not (time_scale > 0 and time_scale < float("inf")):
        raise ValueError(f"time_scale must be a finite number > 0, got {time_scale!r}")
    base: type[TransportTuning] = Reliable if reliable else TransportTuning
    if time_scale == 1.0:
        return base()
    default = TransportTuning()

    class _Scaled(base):  # type: ignore[misc,valid-type]
        ACK_TIMEOUT = default.ACK_TIMEOUT / time_scale
        MAX_LATENCY = default.MAX_LATENCY / time_scale

    kind = "Reliable" if reliable else "Tuning"
    _Scaled.__name__ = _Scaled.__qualname__ = f"{kind}Scaled{time_scale:g}x"
    return _Scaled()
