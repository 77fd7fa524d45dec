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
the next one), and every context gets its own generator derived from the network's seed and
its address (a :class:`~labkit.virtual.rng.SplitMix64`: one integer of state where a
``random.Random`` holds 2.5 KiB), from which aiocoap's initial message ID, initial token
and the random part of every first retransmission timeout are drawn (aiocoap draws them from
the global generator; the context's managers are configured after construction, aiocoap's
files are not touched). Same seed and same calls: the same datagrams at the same simulated instants.

HTTP runs on the same network: the virtual loop's ``create_server`` and ``create_connection``
(what ``asyncio.start_server`` and ``asyncio.open_connection`` call) give in-memory stream
transports (:class:`VirtualServer`, :class:`StreamTransport`): bytes arrive in order, in the
next loop iteration, at the same simulated instant; links are not applied to them.

This module opens no socket and decides nothing about LwM2M.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import aiocoap
from aiocoap import error, interfaces, util
from aiocoap.message import Message
from aiocoap.numbers.constants import COAP_PORT, MAX_REGULAR_BLOCK_SIZE_EXP

from labkit.sim.profiles import derive_seed
from labkit.virtual.rng import SplitMix64

__all__ = [
    "FIRST_PORT",
    "NetworkStats",
    "StreamTransport",
    "VirtualMessageInterface",
    "VirtualNetwork",
    "VirtualRemote",
    "VirtualServer",
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
        self._listeners: dict[Address, VirtualServer] = {}
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
            port = self._free_port(host, self._nodes)
        address = (host, int(port))
        if address in self._nodes:
            raise OSError(98, f"address {host}:{port} already in use on the virtual network")
        self._nodes[address] = receive
        return address

    def _free_port(self, host: str, taken: dict[Address, Any]) -> int:
        while (host, self._next_port) in taken:
            self._next_port += 1
        port = self._next_port
        self._next_port = port + 1 if port < 65535 else FIRST_PORT
        return port

    def unbind(self, address: Address) -> None:
        self._nodes.pop(address, None)

    # -- streams (HTTP) ---------------------------------------------------------------------
    def listen(
        self, protocol_factory: Callable[[], asyncio.Protocol], host: str, port: int
    ) -> VirtualServer:
        """A stream server at ``(host, port)`` (port 0: the next free one), what the virtual
        loop's ``create_server`` returns."""
        host = _norm_host(host)
        port = port or self._free_port(host, self._listeners)
        if (host, port) in self._listeners:
            raise OSError(98, f"address {host}:{port} already in use on the virtual network")
        server = VirtualServer(self, protocol_factory, (host, int(port)))
        self._listeners[server.address] = server
        return server

    def connect(
        self, protocol_factory: Callable[[], asyncio.Protocol], host: str, port: int
    ) -> tuple[StreamTransport, asyncio.Protocol]:
        """Connect to the stream server at ``(host, port)`` (``ConnectionRefusedError`` when
        none listens): a pair of in-memory transports, bytes delivered in order by loop
        callbacks at the same simulated instant."""
        server = self._listeners.get((_norm_host(host), int(port)))
        if server is None or server.closed:
            raise ConnectionRefusedError(111, f"nothing listens on {host}:{port} (virtual)")
        local = ("127.0.0.1", self._free_port("127.0.0.1", self._listeners))
        client_protocol = protocol_factory()
        server_protocol = server.protocol_factory()
        client = StreamTransport(self, client_protocol, local, server.address)
        served = StreamTransport(self, server_protocol, server.address, local)
        client.peer, served.peer = served, client
        server.transports.append(served)
        client_protocol.connection_made(client)
        self.loop.call_soon(server_protocol.connection_made, served)
        return client, client_protocol

    def bound(self, address: Address) -> bool:
        return (_norm_host(address[0]), int(address[1])) in self._nodes

    # -- datagrams --------------------------------------------------------------------------
    def send(self, source: Address, destination: Address, data: bytes) -> None:
        """Deliver ``data`` to ``destination`` in the next loop iteration (same instant)."""
        stats = self.stats
        stats.sent += 1
        stats.bytes += len(data)
        if destination not in self._nodes:  # (a bound address is normalised already)
            destination = (_norm_host(destination[0]), int(destination[1]))
        self.loop.call_soon(self._deliver, destination, bytes(data), source)

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

    def context_rng(self, address: Address) -> SplitMix64:
        """The random generator of the ``n``-th context opened at ``address`` (derived from the
        network's seed, the address and ``n``; a :class:`~labkit.virtual.rng.SplitMix64`, one
        integer of state instead of a Mersenne Twister's 2.5 KiB per device)."""
        n = self._opened.get(address, 0)
        self._opened[address] = n + 1
        return SplitMix64(derive_seed(self.seed, "coap-context", address[0], address[1], n))


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
        self._network.send(self._address, (str(addr[0]), int(addr[1])), data)

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


class _Sockname:
    """What ``server.sockets[0]`` offers of a socket: its name."""

    def __init__(self, address: Address) -> None:
        self._address = address

    def getsockname(self) -> Address:
        return self._address


class VirtualServer(asyncio.AbstractServer):
    """A stream server on a :class:`VirtualNetwork` (``asyncio.start_server`` on a virtual
    loop)."""

    def __init__(self, network: VirtualNetwork, protocol_factory: Callable[[], asyncio.Protocol],
                 address: Address) -> None:
        self.network = network
        self.protocol_factory = protocol_factory
        self.address = address
        self.transports: list[StreamTransport] = []
        self.closed = False

    @property
    def sockets(self) -> tuple[Any, ...]:
        return () if self.closed else (_Sockname(self.address),)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.network._listeners.pop(self.address, None)

    async def wait_closed(self) -> None:
        return None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.network.loop

    def is_serving(self) -> bool:
        return not self.closed

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:
        raise NotImplementedError("a virtual server serves as long as it is open")

    def close_clients(self) -> None:
        for transport in list(self.transports):
            transport.close()

    def abort_clients(self) -> None:
        self.close_clients()


class StreamTransport(asyncio.Transport):
    """One end of an in-memory stream connection: ``write`` hands the bytes to the other end
    in the next loop iteration; closing delivers end-of-file and then the connection's loss
    to the other end, after every byte written before."""

    def __init__(self, network: VirtualNetwork, protocol: asyncio.Protocol, local: Address,
                 peername: Address) -> None:
        super().__init__()
        self._network = network
        self._protocol = protocol
        self._local = local
        self._peername = peername
        self.peer: StreamTransport | None = None
        self._closing = False

    def write(self, data: Any) -> None:
        peer = self.peer
        if self._closing or peer is None or not data:
            return
        self._network.stats.bytes += len(data)
        self._network.loop.call_soon(peer.receive, bytes(data))

    def receive(self, data: bytes) -> None:
        if not self._closing:
            self._protocol.data_received(data)

    def write_eof(self) -> None:
        if self.peer is not None:
            self._network.loop.call_soon(self.peer.peer_closed)

    def can_write_eof(self) -> bool:
        return True

    def peer_closed(self) -> None:
        if self._closing:
            return
        keep_open = self._protocol.eof_received()  # type: ignore[func-returns-value]
        if not keep_open:
            self.close()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        loop = self._network.loop
        if self.peer is not None:
            loop.call_soon(self.peer.peer_closed)
        loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peername
        if name == "sockname":
            return self._local
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self._closing

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class VirtualRemote(interfaces.EndpointAddress):  # type: ignore[misc]
    """The address of a CoAP peer on the virtual network, as seen from one interface.

    An interface holds at most one live remote per peer address (:meth:`VirtualMessageInterface.
    remote`), so equal addresses are the same object and a remote hashes and compares by
    identity, in C: aiocoap compares remotes in loops over all of a context's exchanges
    (``MessageManager._continue_backlog`` after every ACK), a Python ``__eq__`` there cost a
    fleet's server time proportional to the number of devices per exchange."""

    scheme = "coap"
    maximum_block_size_exp = MAX_REGULAR_BLOCK_SIZE_EXP

    def __init__(self, sockaddr: Address, interface: VirtualMessageInterface) -> None:
        self.sockaddr = sockaddr
        self.interface = interface

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
        #: the live remote of each peer address (one object per address: see VirtualRemote)
        self._remotes: weakref.WeakValueDictionary[Address, VirtualRemote] = (
            weakref.WeakValueDictionary()
        )

    def remote(self, address: Address) -> VirtualRemote:
        """The remote of peer ``address`` (a normalised ``(host, port)``): the live one if
        there is one, else a new one."""
        found = self._remotes.get(address)
        if found is None:
            found = self._remotes[address] = VirtualRemote(address, self)
        return found

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
            message = Message.decode(data, remote=self.remote(source))
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
        return self.remote((_norm_host(str(host)), int(port)))

    async def recognize_remote(self, remote: Any) -> bool:
        return isinstance(remote, VirtualRemote) and remote.interface is self


def _seed_managers(mman: Any, rng: SplitMix64) -> None:
    """Make a context's message and token managers draw from ``rng`` instead of the global
    generator: the initial message ID and token now, the first retransmission timeout of every
    CON later (aiocoap doubles it for the following ones)."""
    mman.message_id = rng.randint(0, 65535)
    mman.token_manager._token = rng.randint(0, 65535)
    schedule = mman._schedule_retransmit

    def schedule_retransmit(message: Message, timeout: float, counter: int) -> Any:
        if counter == 0:
            tuning = message.transport_tuning
            timeout = rng.uniform(tuning.ACK_TIMEOUT, tuning.ACK_TIMEOUT * tuning.ACK_RANDOM_FACTOR)
        return schedule(message, timeout, counter)

    mman._schedule_retransmit = schedule_retransmit


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

    await ctx._append_tokenmanaged_messagemanaged_transport(constructor)
    return ctx
