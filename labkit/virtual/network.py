"""The in-process network of a virtual run: datagrams as bytes, delivered by loop callbacks.

Every CoAP endpoint of a virtual run -- the LwM2M server, each simulated device, the firmware
repository -- gets its aiocoap context from :func:`open_virtual_context` (through
:func:`labkit.coap.open_udp_context`, which picks it when the running loop is a
:class:`~labkit.virtual.loop.VirtualEventLoop`). The context is a normal ``aiocoap.Context``;
only its lowest layer is ours: :class:`VirtualMessageInterface`, plugged in with
``Context._append_tokenmanaged_messagemanaged_transport``, so aiocoap's own message manager
(CON retransmission, deduplication, piggy-backed and separate responses), token manager,
block-wise and Observe run exactly as on UDP sockets. A message is encoded to the bytes a UDP
socket would carry, handed to :class:`VirtualNetwork`, and decoded by the receiver from those
bytes; a malformed datagram is ignored as on a socket.

The network itself is ideal: a datagram reaches the endpoint bound at its destination address
in the next loop iteration, at the same simulated instant, in the order it was sent, or is
silently lost when nothing is bound there (a device rebooting). Radio links are modelled in
between by the same :class:`~labkit.linkem.LinkRelay` as on sockets: the loop's
``create_datagram_endpoint`` binds plain datagram endpoints on this network
(:meth:`VirtualNetwork.bind_datagram`), so the relay judges each datagram with the device's
link model and delivers it ``delay + size / rate`` simulated seconds later with a loop timer.

Determinism: ports are handed out in order from :data:`FIRST_PORT` (a rebooting device gets
the next one), and every context gets its own ``random.Random`` derived from the network's
seed and its address, from which aiocoap's initial message ID, initial token and the random
part of every first retransmission timeout are drawn (aiocoap draws them from the global
generator; the context's managers are configured after construction, aiocoap's files are not
touched). Same seed and same calls: the same datagrams at the same simulated instants.

This module opens no socket and decides nothing about LwM2M.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiocoap
from aiocoap import error, interfaces, util
from aiocoap.message import Message
from aiocoap.numbers.constants import COAP_PORT, MAX_REGULAR_BLOCK_SIZE_EXP

from labkit.sim.profiles import derive_seed

__all__ = [
    "FIRST_PORT",
    "NetworkStats",
    "VirtualMessageInterface",
    "VirtualNetwork",
    "VirtualRemote",
    "open_virtual_context",
]

log = logging.getLogger(__name__)

#: First port the network hands out for port 0 (the start of the IANA ephemeral range).
FIRST_PORT = 49152

Address = tuple[str, int]


def _norm_host(host: str) -> str:
    host = host.strip("[]")
    if host.startswith("::ffff:") and "." in host:
        host = host.removeprefix("::ffff:")
    return "127.0.0.1" if host in ("localhost", "") else host


@dataclass(slots=True)
class NetworkStats:
    """Datagram counters of a :class:`VirtualNetwork`."""

    sent: int = 0
    delivered: int = 0
    unreachable: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class VirtualNetwork:
    """Endpoints by ``(host, port)`` and the delivery of datagrams between them.

    Parameters
    ----------
    loop:
        The virtual loop that delivers (``call_soon``).
    seed:
        Seed of the per-context random generators (:meth:`context_rng`).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, seed: int = 0) -> None:
        self.loop = loop
        self.seed = int(seed)
        self.stats = NetworkStats()
        self._nodes: dict[Address, Callable[[bytes, Address], None]] = {}
        self._next_port = FIRST_PORT
        self._opened: dict[Address, int] = {}

    def __repr__(self) -> str:
        return f"<VirtualNetwork {len(self._nodes)} endpoints, {self.stats.sent} datagrams>"

    # -- addresses --------------------------------------------------------------------------
    def bind(self, host: str, port: int, receive: Callable[[bytes, Address], None]) -> Address:
        """Bind ``receive(data, source)`` at ``(host, port)``; port 0 takes the next free port.

        Raises
        ------
        OSError
            When the address is taken (as a busy UDP port does).
        """
        host = _norm_host(host)
        if port == 0:
            while (host, self._next_port) in self._nodes:
                self._next_port += 1
            port = self._next_port
            self._next_port += 1
            if self._next_port > 65535:
                self._next_port = FIRST_PORT
        address = (host, int(port))
        if address in self._nodes:
            raise OSError(98, f"address {host}:{port} already in use on the virtual network")
        self._nodes[address] = receive
        return address

    def unbind(self, address: Address) -> None:
        self._nodes.pop(address, None)

    def bound(self, address: Address) -> bool:
        return (_norm_host(address[0]), int(address[1])) in self._nodes

    # -- datagrams --------------------------------------------------------------------------
    def send(self, source: Address, destination: Address, data: bytes) -> None:
        """Deliver ``data`` to ``destination`` in the next loop iteration (same instant)."""
        stats = self.stats
        stats.sent += 1
        stats.bytes += len(data)
        self.loop.call_soon(self._deliver, (_norm_host(destination[0]), int(destination[1])),
                            bytes(data), source)

    def _deliver(self, destination: Address, data: bytes, source: Address) -> None:
        receive = self._nodes.get(destination)
        if receive is None:
            self.stats.unreachable += 1
            return
        self.stats.delivered += 1
        receive(data, source)

    # -- endpoints --------------------------------------------------------------------------
    def bind_datagram(
        self, protocol: asyncio.DatagramProtocol, host: str, port: int
    ) -> _DatagramTransport:
        """A datagram transport bound on this network for ``protocol`` (what the virtual
        loop's ``create_datagram_endpoint`` returns)."""
        return _DatagramTransport(self, protocol, host, port)

    def context_rng(self, address: Address) -> random.Random:
        """The random generator of the ``n``-th context opened at ``address`` (derived from the
        network's seed, the address and ``n``)."""
        n = self._opened.get(address, 0)
        self._opened[address] = n + 1
        return random.Random(derive_seed(self.seed, "coap-context", address[0], address[1], n))


class _DatagramTransport(asyncio.DatagramTransport):
    """A datagram endpoint on a :class:`VirtualNetwork` (the subset of asyncio's datagram
    transport the lab uses: ``sendto``, ``close``, ``get_extra_info("sockname")``)."""

    def __init__(
        self, network: VirtualNetwork, protocol: asyncio.DatagramProtocol, host: str, port: int
    ) -> None:
        super().__init__()
        self._network = network
        self._protocol = protocol
        self._closing = False
        self._address: Address = network.bind(host, port, self._receive)

    def _receive(self, data: bytes, source: Address) -> None:
        if not self._closing:
            self._protocol.datagram_received(data, source)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing or addr is None:
            return
        self._network.send(self._address, (str(addr[0]), int(addr[1])), bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._address
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._network.unbind(self._address)
        self._network.loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


class VirtualRemote(interfaces.EndpointAddress):  # type: ignore[misc]
    """The address of a CoAP peer on the virtual network (hashes and compares by address)."""

    scheme = "coap"
    maximum_block_size_exp = MAX_REGULAR_BLOCK_SIZE_EXP

    def __init__(self, sockaddr: Address, interface: VirtualMessageInterface) -> None:
        self.sockaddr = sockaddr
        self.interface = interface

    def __hash__(self) -> int:
        return hash(self.sockaddr)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VirtualRemote) and self.sockaddr == other.sockaddr

    def __repr__(self) -> str:
        return f"<VirtualRemote {self.hostinfo}>"

    @staticmethod
    def _hostinfo(address: Address) -> str:
        host, port = address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def hostinfo(self) -> str:
        return self._hostinfo(self.sockaddr)

    @property
    def hostinfo_local(self) -> str:
        return self._hostinfo(self.interface.address)

    @property
    def uri_base(self) -> str:
        return "coap://" + self.hostinfo

    @property
    def uri_base_local(self) -> str:
        return "coap://" + self.hostinfo_local

    is_multicast = False
    is_multicast_locally = False

    @property
    def blockwise_key(self) -> Address:
        return self.sockaddr


class VirtualMessageInterface(interfaces.MessageInterface):  # type: ignore[misc]
    """aiocoap's lowest layer for a context on the virtual network: ``send`` encodes the
    message and hands the bytes to the network; received bytes are decoded and dispatched to
    the context's message manager."""

    def __init__(self, mman: Any, network: VirtualNetwork, host: str, port: int,
                 log: logging.Logger) -> None:
        self._mman = mman
        self._network = network
        self._log = log
        self.address = network.bind(host, port, self._received)

    def __repr__(self) -> str:
        return f"<VirtualMessageInterface {self.address[0]}:{self.address[1]}>"

    @property
    def local_port(self) -> int | None:
        return None if self._mman is None else self.address[1]

    def _received(self, data: bytes, source: Address) -> None:
        mman = self._mman
        if mman is None:
            return
        try:
            message = Message.decode(data, remote=VirtualRemote(source, self))
        except error.UnparsableMessage:
            self._log.warning("Ignoring unparsable message from %s", source)
            return
        mman.dispatch_message(message)

    def send(self, message: Message) -> None:
        if self._mman is None:
            return
        self._network.send(self.address, message.remote.sockaddr, message.encode())

    async def shutdown(self) -> None:
        self._mman = None
        self._network.unbind(self.address)

    async def determine_remote(self, request: Message) -> VirtualRemote | None:
        if request.requested_scheme not in ("coap", None):
            return None
        if request.unresolved_remote is not None:
            host, port = util.hostportsplit(request.unresolved_remote)
            port = port or COAP_PORT
        elif request.opt.uri_host:
            host, port = request.opt.uri_host, request.opt.uri_port or COAP_PORT
        else:
            raise ValueError("No location found to send message to")
        if self._mman is None:
            raise error.LibraryShutdown
        return VirtualRemote((_norm_host(str(host)), int(port)), self)

    async def recognize_remote(self, remote: Any) -> bool:
        return isinstance(remote, VirtualRemote) and remote.interface is self


def _seed_managers(mman: Any, rng: random.Random) -> None:
    """Make a context's message and token managers draw from ``rng`` instead of the global
    generator: the initial message ID and token now, the first retransmission timeout of every
    CON later (aiocoap doubles it for the following ones)."""
    mman.message_id = rng.randint(0, 65535)
    mman.token_manager._token = rng.randint(0, 65535)  # noqa: SLF001 - aiocoap internals
    schedule = mman._schedule_retransmit  # noqa: SLF001 - aiocoap internals

    def schedule_retransmit(message: Message, timeout: float, counter: int) -> Any:
        if counter == 0:
            tuning = message.transport_tuning
            timeout = rng.uniform(tuning.ACK_TIMEOUT, tuning.ACK_TIMEOUT * tuning.ACK_RANDOM_FACTOR)
        return schedule(message, timeout, counter)

    mman._schedule_retransmit = schedule_retransmit  # noqa: SLF001 - aiocoap internals


async def open_virtual_context(
    network: VirtualNetwork, site: Any, host: str = "127.0.0.1", port: int = 0, *,
    loggername: str = "coap",
) -> aiocoap.Context:
    """An aiocoap context serving ``site`` at ``(host, port)`` of ``network`` (port 0: the
    next free one). A taken address raises :class:`OSError`, as a busy UDP port does."""
    loop = network.loop
    ctx = aiocoap.Context(loop=loop, serversite=site, loggername=loggername)
    holder: dict[str, VirtualMessageInterface] = {}

    async def constructor(mman: Any) -> VirtualMessageInterface:
        interface = VirtualMessageInterface(mman, network, host, port, ctx.log)
        _seed_managers(mman, network.context_rng(interface.address))
        holder["mi"] = interface
        return interface

    await ctx._append_tokenmanaged_messagemanaged_transport(constructor)  # noqa: SLF001 - aiocoap's plug
    return ctx
