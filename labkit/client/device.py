"""A simulated LwM2M device speaking real CoAP over UDP (the aiocoap adapter of the client role).

:class:`SimulatedDevice` owns one aiocoap context, i.e. one UDP socket (``127.0.0.1``, an
ephemeral port by default). It Registers to an LwM2M server *through that same context*, so the
server's later requests reach the device's resource tree from the registered address (digest
8.4), keeps the registration alive with Updates at ``lt - min(93, lt/2)`` (digest 4.2) and
answers Read, Discover, Write, Write-Attributes, Execute, Create, Delete and Observe on
/1, /3, /4 and /5 (digest 5.1); /0 Security exists but answers 4.01 (digest 9.13).

The adapter only translates: a request is decoded with :mod:`labkit.lwm2m.formats`, the pure
:class:`~labkit.client.store.ObjectStore` decides what may be done and holds the values, the
pure :class:`~labkit.lwm2m.fota.FirmwareUpdateMachine` decides /5, and
:class:`~labkit.client.firmware.FirmwareAgent` carries out its actions (PUSH blocks, PULL
downloads, install and reboot). Every incoming request becomes a ``request`` event, every
refused one also an ``error`` event; nothing a peer sends can crash the device.

Choices a lab user may want to know:

* ``/5/0/0`` sees every Block1 block (``needs_blockwise_assembly`` is False there), so State is
  1 from the first block on; non-final blocks get 2.31 Continue with Block1 echoed. Block sizes
  16..1024 are accepted as the sender chose them.
* After Execute /5/0/2 the device answers 2.04 first; the install runs in a task that waits
  :attr:`SimulatedDevice.install_delay` (so the State 3 notification leaves), closes the socket
  (the "reboot"), lets the bootloader verify the image with imgtool, swap slots, self-test and
  confirm (or roll back), then Registers again from a new ephemeral port (digest 1.6, 9.7)
  with State 0 and Result 1, 5 or 8. A device that cannot Register after a reboot keeps
  trying with back-off, as a real one does.
* The device has a hardware model (:mod:`labkit.client.model`): two flash slots and
  ``state.json`` on disk (every boot starts from them, so a power cut is survived), a RAM
  buffer, a battery, and faults by name (:mod:`labkit.sim.faults`) that strike at seeded
  points, each a ``fault`` event. A request the device cannot answer (power cut, link down)
  is held unanswered, as a dead device would leave it.
* Time scale: ``time_scale=X`` runs the device ``X`` times faster than the wall clock (see
  :mod:`labkit.timebase`). Every duration the device owns is in *simulated* seconds and is
  divided by ``X`` before it reaches the event loop: the Update timer ``lt - min(93, lt/2)``
  (digest 4.2), the Register/Update back-off, ``install_delay``, ``request_timeout`` (with a
  floor of :data:`MIN_WALL_TIMEOUT_S` wall seconds, below which the event loop itself cannot
  answer in time), pmin/pmax timers, ``retry_delay``, ``push_idle_timeout``, /5/0/13 deferrals
  and the :class:`~labkit.client.model.FaultTiming` durations. Every CON the device sends
  (Register, Update, De-register, PULL GETs, notifications and separate responses) carries
  :func:`labkit.coap.scaled_tuning`, so its CoAP retransmissions happen at the simulated times
  of RFC 7252 (ACK_TIMEOUT 2 s -> 20 ms at 100x). Timestamps, /3/0/13 and the notification
  attributes read ``clock`` -- simulated time; by default a
  :class:`~labkit.timebase.ScaledClock` of the same scale (give the run's clock to share one
  time axis). The ``timeout=`` of :meth:`SimulatedDevice.start`, :meth:`~SimulatedDevice.stop`
  and :meth:`~SimulatedDevice.reboot` are the caller's wall-clock bounds and are not scaled.
* Queue mode (``b=UQ`` / ``Q``) is announced but not simulated: the device stays reachable.
* Security (:mod:`labkit.dtls`): with ``psk_identity``/``psk_key`` the /0 instance carries
  Security Mode 0 (PSK), the identity (/0/0/3) and the key (/0/0/5), and the device opens a
  second socket for ``coaps://``: it Registers to a ``coaps://`` server over DTLS-PSK (the
  server's requests come back over that session), PULLs ``coaps://`` Package URIs, and
  accepts DTLS sessions with its own identity (e.g. ``coap-client-openssl`` reading it).
  Every handshake is a ``security`` event; a failed one makes Register fail and retry with
  back-off, never hang. ``https://`` downloads trust ``tls_trust`` (default: the lab
  certificate, :mod:`labkit.tls`).

Nothing here reads the global random generator: the device draws from ``random.Random(seed)``
(kept only while the object model is built and once the device backs off).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path as FsPath
from typing import Any
from urllib.parse import urlsplit

import aiocoap
from aiocoap import resource
from aiocoap.blockwise import Block2Cache
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning
from aiocoap.optiontypes import BlockOption

from labkit.client.bootloader import Bootloader
from labkit.client.firmware import (
    FirmwareAgent,
    InstallOutcome,
    LinkDown,
    PowerCut,
    StoreError,
    strip_tlv_header,
    tlv_value_length,
)
from labkit.client.hostile import (
    HostileNotifications,
    NotificationScheduler,
    hostile_config,
    stale_observe,
)
from labkit.client.model import (
    DEFAULT_FLASH_SIZE,
    DEFAULT_RAM,
    Battery,
    FaultPlan,
    FaultTiming,
    FlashStorage,
)
from labkit.client.store import (
    ObjectStore,
    OperationError,
    next_notification,
    parse_execute_args,
    pmax_due,
)
from labkit.coap import local_port, open_udp_context, scaled_tuning
from labkit.coap_abandon import response_within
from labkit.events import Event, EventSink, discard
from labkit.guard import BoundedBlock1Spool, device_body_limit
from labkit.lwm2m.errors import (
    LocalProtocolError,
    Lwm2mError,
    PathError,
    UnsupportedContentFormat,
)
from labkit.lwm2m.formats import (
    DECODABLE_FORMATS,
    ENCODABLE_FORMATS,
    ContentFormat,
    decode,
    encode,
    format_links,
    normalize_format,
)
from labkit.lwm2m.fota import (
    DownloadFailed,
    ExecuteCancel,
    ExecuteUpdate,
    FirmwareUpdateMachine,
    InstallFailed,
    WriteAutoUpgrade,
    WriteMaxDeferPeriod,
    WritePackage,
    WriteSeverity,
    WriteUri,
)
from labkit.lwm2m.objects import (
    OBJECTS,
    DeliveryMethod,
    NetworkBearer,
    ProtocolSupport,
    ResourceType,
    State,
    UpdateResult,
)
from labkit.lwm2m.paths import Path
from labkit.lwm2m.registration import register_links, register_query, update_delay
from labkit.lwm2m.values import Value
from labkit.sim.faults import check_faults
from labkit.timebase import ScaledClock

__all__ = ["MIN_WALL_TIMEOUT_S", "InstallOutcome", "SimulatedDevice"]

log = logging.getLogger(__name__)

_PACKAGE = Path.of(5, 0, 0)
_PACKAGE_TEXT = str(_PACKAGE)
_PACKAGE_SEGMENTS = ("5", "0", "0")
_RSSI = Path.of(4, 0, 2)  # Radio Signal Strength
_LQ = Path.of(4, 0, 3)  # Link Quality
_LINK_PATHS = {_RSSI: str(_RSSI), _LQ: str(_LQ)}  # the two that make a ``link`` event
_PACKAGE_FORMATS = frozenset({None, 42, 1544, 11542})
_MULTI_ONLY = frozenset({ContentFormat.TEXT, ContentFormat.OPAQUE, ContentFormat.CBOR})
_BACKOFF_FIRST = 0.5  # simulated s, first Register retry; doubles per attempt
_BACKOFF_MAX = 8.0
_EPS = 1e-3
_MAX_HOLD = 60.0  # wall s: a request held by a power cut is released when the socket closes
_LOCAL_WALL_S = 10.0  # wall s: bound of local work (binding, closing the socket)
_REBOOT_REGISTER_S = 30.0  # simulated s of Register tries right after a reboot, then back-off

#: Wall seconds at least for one request the device sends (``request_timeout`` divided by the
#: time scale): 10 s at 1000x would be 10 ms, less than one busy event-loop turn, and every
#: answer would come "too late". At 100x the default 10 s is 0.1 s wall, above the floor.
MIN_WALL_TIMEOUT_S = 0.05


def _nothing() -> None:
    pass


def _forget_pending_acks(ctx: aiocoap.Context) -> None:
    """Cancel aiocoap's empty-ACK timers of requests still being answered.

    A request held unanswered (power cut, link drop) leaves a timer in aiocoap's message
    manager that would send an empty ACK on the closed socket after the power-off (aiocoap
    0.4.17 does not cancel them at shutdown). Uses the udp6 transport internals, as
    :func:`labkit.coap.open_udp_context` does.
    """
    for ri in ctx.request_interfaces:
        mm = getattr(ri, "token_interface", None)
        pending = getattr(mm, "_piggyback_opportunities", None)
        if isinstance(pending, dict):
            for _mid, handle in pending.values():
                handle.cancel()
            pending.clear()


def _code(text: str) -> Code:
    """``"4.05"`` -> ``Code.METHOD_NOT_ALLOWED``."""
    cls, _, detail = text.partition(".")
    return Code((int(cls) << 5) | int(detail))


def _snapshot(path: Path, values: dict[Path, Value]) -> object:
    """What an observation compares: the value itself for a single resource, else all values."""
    if len(values) == 1 and path in values:
        return values[path]
    return values


class _Observation:
    """One accepted Observe: its path, Accept, and notification bookkeeping."""

    __slots__ = ("accept", "last_sent", "last_value", "path", "pending", "serverobs", "timer")

    def __init__(self, path: Path, accept: int | None, serverobs: Any) -> None:
        self.path = path
        self.accept = accept
        self.serverobs = serverobs
        self.last_sent = 0.0
        self.last_value: object = None
        self.pending = False
        self.timer: asyncio.TimerHandle | None = None


class _DeviceSite(resource.ObservableResource, resource.PathCapable):  # type: ignore[misc]
    """The device's whole resource tree as one aiocoap resource; it hands every request to
    its :class:`SimulatedDevice` (one small object per device instead of a Site of many)."""

    def __init__(self, device: SimulatedDevice) -> None:
        # aiocoap's resource constructors give every resource a Block1 spool, a Block2 cache
        # and an observation set (about 1 KiB); this site makes each on first use instead
        # (__getattr__): most devices of a large fleet never see a block-wise request.
        self._device = device

    def __getattr__(self, name: str) -> Any:
        if name == "_block1":
            device = self._device
            # Block1 bodies bounded (4.13), gaps 4.08 (labkit.guard); /5/0/0 streams past it
            value: Any = BoundedBlock1Spool(
                device_body_limit,
                max_assemblies=16,
                on_refuse=lambda code, req, detail: device.emit(
                    "error", code=code, path="/" + "/".join(req.opt.uri_path), detail=detail
                ),
            )
        elif name == "_block2":
            value = Block2Cache()
        elif name == "_observations":
            value = set()
        else:
            raise AttributeError(name)
        setattr(self, name, value)
        return value

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        # /5/0/0 must see every Block1 block (State 1 on the first one, digest 8.2).
        return not (
            request.code in (Code.PUT, Code.POST) and request.opt.uri_path == _PACKAGE_SEGMENTS
        )

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        device = self._device
        down = device.link_down_remaining()
        if down > 0:  # link-drop: nothing gets through until the link is back
            await device._hold(device._wall(down))  # noqa: SLF001 - the device's own site
            response = device._refuse("5.03", "the link was down")  # noqa: SLF001 - the device's own site
        else:
            answer = device._render(request)  # noqa: SLF001 - the device's own site
            if answer is None:  # power lost or link dropped while handling it: never answered
                down = device.link_down_remaining()
                await device._hold(device._wall(down) if down else _MAX_HOLD)  # noqa: SLF001 - the device's own site
                answer = device._refuse("5.03", "the link was down")  # noqa: SLF001 - the device's own site
            response = answer
        response.transport_tuning = device._reply_tuning  # a separate response: scaled timers  # noqa: SLF001 - the device's own site
        return response

    async def add_observation(self, request: aiocoap.Message, serverobservation: Any) -> None:
        self._device._add_observation(request, serverobservation)  # noqa: SLF001 - the device's own site

    def get_link_description(self) -> None:
        return None


class SimulatedDevice:
    """A simulated LwM2M client with a working /5 Firmware Update object.

    Parameters
    ----------
    endpoint:
        Endpoint Client Name (also the Serial Number /3/0/2).
    server_uri:
        The LwM2M server, ``coap://host:port`` (Register goes to ``<server_uri>/rd``).
    firmware_version:
        Initial /3/0/3.
    lifetime:
        Registration lifetime in seconds (/1/0/1).
    host, port:
        Local address to bind; port 0 = ephemeral (a new one after every reboot).
    on_event:
        Sink for ``source="device"`` :class:`~labkit.events.Event` rows.
    clock:
        Simulated seconds since the epoch; event timestamps, Current Time and attribute timing
        use it. Default: :func:`time.time` at scale 1, else a new
        :class:`~labkit.timebase.ScaledClock` of ``time_scale``.
    time_scale:
        Simulated seconds per wall second (see the module docstring); 1.0 is real time.
    seed:
        Seed of the device's own random generator (back-off jitter, simulated values).
    lwm2m_version, queue_mode:
        Announced at Register (``lwm2m=``, ``Q``).
    fw_object_version, protocols, delivery:
        /5 object version ("1.0", "1.1", "1.2"), resource 8 and resource 9.
    installer:
        A custom install step deciding the outcome from the package bytes, instead of the
        bootloader (e.g. :func:`~labkit.client.firmware.default_installer`); a device with an
        installer also skips the package-type check at download end.
    request_timeout:
        Bound of every request the device sends (Register, Update, each download block), in
        simulated seconds (at least :data:`MIN_WALL_TIMEOUT_S` wall seconds).
    flash_size:
        Bytes of one flash slot: the largest package the device takes (Result 2 above it).
    ram:
        Bytes of the RAM buffer for one download block (Result 3 for a larger block); PULL
        asks for blocks that fit it.
    battery:
        Initial /3/0/9 in percent (default: drawn from the seed, 81..100); it drains per
        block and per install.
    faults:
        Fault names of :mod:`labkit.sim.faults` (``no-flash``, ``no-ram``, ``link-drop``,
        ``corrupt-in-flash``, ``boot-fail``, ``defer``, ``power-loss``, ``no-http``); where
        and when they strike follows ``seed``. Each is a ``fault`` event when it strikes.
    fault_timing:
        Durations of faults (:class:`~labkit.client.model.FaultTiming`).
    storage_dir:
        Directory of the device's flash files (``slot-a.bin``, ``slot-b.bin``,
        ``state.json``); default: a temporary directory made on first use. An existing
        ``state.json`` there is booted from (the device continues where it was).
    trusted_key:
        The PEM key the bootloader trusts; default: the lab key in ``data/keys/`` of the
        current directory (the one ``labkit image build`` signs with).
    accept_lab_packages:
        Also accept the lab's unsigned ``LABKIT-FW <version>`` packages.
    max_defer_period:
        Initial /5/0/13 (obj >= 1.1); default 0, or 30 s with the ``defer`` fault.
    download_retries, retry_delay:
        How many times a PULL asks again for a block (or reconnects) before Result 4, and
        the seconds between tries.
    push_idle_timeout:
        A PUSH that sends no block for this long ends with Result 4 (nothing stays in
        State 1 forever). The default, 60 s, outlasts the server's last retransmission of a
        block (at 30-45 s, digest 7.5).
    hostile_notifications:
        A :class:`~labkit.client.hostile.HostileNotifications` (or a seed for its default
        shares): /5/0/3 and /5/0/5 notifications go out reordered, coalesced, late, dropped
        or repeated (:mod:`labkit.client.hostile`). The device's true /5 history stays in
        :attr:`fw_history` (and its ``fw_state``/``fw_result`` events).
    """

    #: Simulated seconds between answering Execute Update and closing the socket for the
    #: install reboot.
    install_delay = 0.2
    #: Block size exponent asked for in PULL downloads (6 = 1024-byte blocks; less if the RAM
    #: buffer is smaller).
    pull_szx = 6

    __slots__ = (
        "_base_protocols",
        "_binding_changed",
        "_bs",
        "_clock",
        "_ctx",
        "_dirty",
        "_dtls",
        "_failures",
        "_firmware",
        "_held",
        "_hostile",
        "_last_ok",
        "_link_down_until",
        "_links_dirty",
        "_observations",
        "_on_event",
        "_push_bytes",
        "_push_size1",
        "_reply_tuning",
        "_rng",
        "_seed",
        "_site",
        "_tasks",
        "_time_offset",
        "_tuning",
        "_update_handle",
        "_update_query_lt",
        "battery",
        "bootloader",
        "bootstrap_uri",
        "download_retries",
        "endpoint",
        "fault_timing",
        "faults",
        "flash_size",
        "fw_history",
        "host",
        "installer",
        "lifetime",
        "location",
        "lwm2m_version",
        "push_idle_timeout",
        "queue_mode",
        "ram",
        "registered",
        "request_timeout",
        "retry_delay",
        "server_uri",
        "storage",
        "store",
        "time_scale",
        "tls_trust",
        "user_defers",
        "want_port",
    )

    def __init__(
        self,
        endpoint: str,
        server_uri: str,
        *,
        firmware_version: str = "1.0.0",
        lifetime: int = 300,
        host: str = "127.0.0.1",
        port: int = 0,
        on_event: EventSink = discard,
        clock: Callable[[], float] | None = None,
        time_scale: float = 1.0,
        seed: int = 0,
        lwm2m_version: str = "1.1",
        queue_mode: bool = False,
        fw_object_version: str = "1.1",
        protocols: Iterable[ProtocolSupport] | None = None,
        delivery: DeliveryMethod = DeliveryMethod.BOTH,
        installer: Callable[[bytes], InstallOutcome] | None = None,
        request_timeout: float = 10.0,
        flash_size: int = DEFAULT_FLASH_SIZE,
        ram: int = DEFAULT_RAM,
        battery: float | None = None,
        faults: Iterable[str] = (),
        fault_timing: FaultTiming | None = None,
        storage_dir: str | FsPath | None = None,
        trusted_key: str | FsPath | None = None,
        accept_lab_packages: bool = True,
        max_defer_period: int | None = None,
        download_retries: int = 3,
        retry_delay: float = 0.5,
        push_idle_timeout: float = 60.0,
        psk_identity: str | bytes | None = None,
        psk_key: bytes | None = None,
        tls_trust: str | FsPath | None = None,
        bootstrap_uri: str | None = None,
        hostile_notifications: HostileNotifications | int | None = None,
    ) -> None:
        first = server_uri if server_uri else bootstrap_uri
        split = urlsplit(first or "")
        if split.scheme not in ("coap", "coaps") or not split.hostname:
            raise ValueError(
                f"server_uri (or bootstrap_uri) must be coap[s]://host[:port], got {first!r}"
            )
        if server_uri and bootstrap_uri:
            raise ValueError("give server_uri or bootstrap_uri (bootstrap writes the server)")
        if isinstance(psk_identity, str):
            psk_identity = psk_identity.encode()
        if (psk_identity is None) != (psk_key is None):
            raise ValueError("psk_identity and psk_key go together")
        if split.scheme == "coaps" and psk_identity is None:
            raise ValueError("a coaps:// server needs psk_identity and psk_key")
        self._dtls: Any = None
        self._bs: Any = None
        self.tls_trust = tls_trust
        self.endpoint = endpoint
        self.bootstrap_uri = bootstrap_uri.rstrip("/") if bootstrap_uri else None
        self.server_uri: str | None = server_uri.rstrip("/") if server_uri else None
        self.lifetime = int(lifetime)
        self.host = host
        self.want_port = port
        self.lwm2m_version = lwm2m_version
        self.queue_mode = queue_mode
        self.installer = installer
        self.request_timeout = float(request_timeout)
        self.registered = False
        self.location: tuple[str, ...] | None = None
        self._on_event = on_event
        self._tuning = scaled_tuning(time_scale)  # validates the scale
        self._reply_tuning = scaled_tuning(time_scale, reliable=False)
        self.time_scale = float(time_scale)
        if clock is None:
            clock = time.time if self.time_scale == 1.0 else ScaledClock(self.time_scale)
        self._clock = clock
        self._seed = seed
        #: the device's generator (Mersenne Twister, 2.5 KiB): drawn from while the object
        #: model is built, then dropped and rebuilt on the first back-off (:meth:`_retry_rng`)
        #: with the same stream, so an idle device does not carry it
        self._rng: random.Random | None = random.Random(seed)
        self._ctx: aiocoap.Context | None = None
        self._site = _DeviceSite(self)
        self._tasks: set[asyncio.Task[Any]] | None = None  # made while a task runs
        self._update_handle: asyncio.TimerHandle | None = None
        self._observations: list[_Observation] | None = None
        self._dirty: set[Path] | None = None
        self._links_dirty = False
        self._time_offset = 0.0
        self._update_query_lt = False  # the next Update carries lt= (after a Write of /1/0/1)
        self._binding_changed = False  # ... and b= (after a Write of /1/0/7)
        self._failures = 0  # consecutive failed Updates/Registers (back-off exponent)
        self._last_ok = 0.0  # loop time of the last successful Register/Update
        if flash_size <= 0 or ram < 16:
            raise ValueError("flash_size must be > 0 and ram >= 16 bytes")
        self.download_retries = int(download_retries)
        self.retry_delay = float(retry_delay)
        self.push_idle_timeout = float(push_idle_timeout)
        self.faults = FaultPlan(faults, seed)
        self.fault_timing = fault_timing or FaultTiming()
        self.flash_size = int(flash_size)
        self.ram = int(ram)
        self.storage = FlashStorage(storage_dir, self.flash_size)
        self.bootloader = Bootloader(
            key=trusted_key, slot_size=self.flash_size, accept_lab_packages=accept_lab_packages
        )
        self._held: set[asyncio.Future[None]] | None = None  # made when a request is held
        hostile = hostile_config(hostile_notifications)
        self._hostile = NotificationScheduler(hostile) if hostile is not None else None
        #: The device's own /5 history, whatever its observers heard: ``(ts, "state" |
        #: "result", value)`` in the order the device set them.
        self.fw_history: list[tuple[float, str, int]] = []
        self._link_down_until = 0.0
        self._push_size1: int | None = None
        #: PUSH bytes by Block1 offset: (offset expected next, (offset, length) of the last
        #: block, TLV value length declared or None, value bytes so far)
        self._push_bytes: tuple[int, tuple[int, int], int | None, int] | None = None
        #: The simulated user postpones updates (Execute /5/0/2 -> Result 11 while /5/0/13 > 0).
        self.user_defers = "defer" in self.faults
        # Validate the registration parameters now rather than at start().
        register_query(endpoint, self.lifetime, lwm2m_version, self._binding(), queue_mode)
        if protocols is None:  # what the device can really download with (res 8)
            protocols = (ProtocolSupport.COAP, ProtocolSupport.HTTP)
            if psk_identity is not None:  # listed only when configured
                protocols += (ProtocolSupport.COAPS,)
            if tls_trust is not None:
                protocols += (ProtocolSupport.HTTPS,)
        protocols = tuple(ProtocolSupport(p) for p in protocols)
        self._base_protocols = protocols  # what clear_fault("no-http") gives back
        if "no-http" in self.faults:
            protocols = tuple(p for p in protocols if p is not ProtocolSupport.HTTP)
        if max_defer_period is None:
            max_defer_period = 0
            if "defer" in self.faults and fw_object_version != "1.0":
                max_defer_period = self.fault_timing.default_max_defer_period
        machine = FirmwareUpdateMachine(
            object_version=fw_object_version,
            protocols=protocols,
            delivery=delivery,
            max_defer_period=max_defer_period,
        )
        self.store = self._build_store(firmware_version, machine)
        if psk_identity is not None and psk_key is not None:
            self.store.set("/0/0/2", 0)  # Security Mode: Pre-Shared Key
            self.store.set("/0/0/3", bytes(psk_identity))
            self.store.set("/0/0/5", bytes(psk_key))
        level = self.store.get("/3/0/9") if battery is None else battery
        self.battery = Battery(float(level), seed)  # type: ignore[arg-type]
        self.store.set("/3/0/9", self.battery.percent)
        self._firmware = FirmwareAgent(self, machine, firmware_version)
        self._firmware.sync()
        self._rng = None  # see _retry_rng

    # -- the object model ------------------------------------------------------------------
    @property
    def dtls_port(self) -> int | None:
        """The local port of the device's ``coaps://`` socket (None without PSK)."""
        return None if self._dtls is None else int(self._dtls.local_address[1])

    def _binding(self) -> str:
        return "UQ" if self.queue_mode else "U"

    @staticmethod
    def _identity_draws(rng: random.Random) -> tuple[int, int]:
        """The draws of the object model from the device's generator, in order: the battery
        drop below 100 % (/3/0/9) and the Cell ID (/4/0/8)."""
        return rng.randrange(0, 20), rng.randrange(1, 268_435_455)

    def _retry_rng(self) -> random.Random:
        """The device's generator after the object model's draws (rebuilt from the seed on
        first use and kept from then on: only a device that backs off carries it)."""
        rng = self._rng
        if rng is None:
            rng = random.Random(self._seed)
            self._identity_draws(rng)
            self._rng = rng
        return rng

    def _build_store(self, firmware_version: str, machine: FirmwareUpdateMachine) -> ObjectStore:
        assert self._rng is not None
        battery_drop, cell_id = self._identity_draws(self._rng)
        store = ObjectStore(hidden=(0,), creatable=(1,), permanent=("/1/0",))
        store.add_object(0)
        store.add_instance(
            0,
            0,
            {
                0: self.server_uri or self.bootstrap_uri,
                1: self.server_uri is None,  # the Bootstrap-Server account
                2: 3,
                3: b"",
                4: b"",
                5: b"",
                10: 1,
            },
        )
        store.add_object(1)
        store.add_instance(
            1,
            0,
            {
                0: 1,
                1: self.lifetime,
                2: 0,
                3: 0,
                6: True,
                7: self._binding(),
                8: None,
            },
        )
        store.add_object(3)
        store.add_instance(
            3,
            0,
            {
                0: "labkit",
                1: "sim",
                2: self.endpoint,
                3: firmware_version,
                4: None,
                6: [1, 5],
                7: [3700, 5000],
                9: 100 - battery_drop,
                10: 128,
                11: [0],
                12: None,
                13: 0,
                14: "+00:00",
                15: "UTC",
                16: self._binding(),
                17: "fota-sim",
                18: "sim-hw-1",
                20: 0,
                21: 256,
            },
        )
        store.bind("/3/0/13", self._current_time)
        store.add_object(4)
        store.add_instance(
            4,
            0,
            {
                0: int(NetworkBearer.LTE_FDD),
                1: [int(NetworkBearer.LTE_FDD), int(NetworkBearer.NB_IOT)],
                2: -85,
                3: -10,
                4: [self.host],
                8: cell_id,
            },
        )
        version = machine.object_version
        store.add_object(5, version)
        fw_values: dict[int, Any] = {0: b"", 2: None, 6: "", 7: ""}
        for rid, value in machine.resources().items():
            fw_values[rid] = list(value) if isinstance(value, tuple) else value
        if version != "1.0":
            fw_values[10] = None
        since = tuple(int(x) for x in version.split("."))
        for rid in fw_values:
            rdef = OBJECTS[5].resources[rid]
            if tuple(int(x) for x in rdef.since.split(".")) > since:
                raise AssertionError(f"/5/0/{rid} does not exist in obj {version}")
        store.add_instance(5, 0, fw_values)
        return store

    def _current_time(self) -> int:
        """/3/0/13 Current Time."""
        return int(self._clock() + self._time_offset)

    # -- public surface ----------------------------------------------------------------------
    @property
    def fw(self) -> FirmwareUpdateMachine:
        """The /5 state machine (replaced by a restored one after an install reboot)."""
        return self._firmware.machine

    @property
    def own_result(self) -> int:
        """The device's own /5/0/5 Update Result now (the truth a server's verdict is held to)."""
        return int(self.fw.result)

    @property
    def own_state(self) -> int:
        """The device's own /5/0/3 State now."""
        return int(self.fw.state)

    @property
    def notification_log(self) -> list[tuple[str, Any, str]]:
        """What a hostile scheduler did with each /5 notification (empty for an honest device)."""
        return [] if self._hostile is None else list(self._hostile.log)

    @property
    def firmware_version(self) -> str:
        """/3/0/3."""
        return str(self.store.get("/3/0/3"))

    @property
    def port(self) -> int | None:
        """The local UDP port, or None while the device is off."""
        ctx = self._ctx
        return None if ctx is None else local_port(ctx)

    @property
    def package(self) -> bytes | None:
        """The stored firmware image (in memory), if any."""
        pkg = self._firmware.package
        return None if pkg is None else bytes(pkg)

    @property
    def download_szx(self) -> int:
        """Block size exponent of PULL requests: ``pull_szx``, or less to fit the RAM buffer."""
        fit = max(0, min(6, self.ram.bit_length() - 1 - 4))
        return min(self.pull_szx, fit)

    @property
    def active_slot(self) -> str:
        """The flash slot the device runs from ("a" or "b")."""
        return self._firmware.active

    def active_image(self) -> bytes:
        """The bytes of the running image, as stored in its flash slot."""
        agent = self._firmware
        if not self.storage.materialised:
            from labkit.client.firmware import factory_image

            return factory_image(self.firmware_version)
        return self.storage.read_slot(agent.active)

    def now(self) -> float:
        return self._clock()

    # -- faults ------------------------------------------------------------------------------
    def inject_fault(self, name: str) -> None:
        """Give the device fault ``name`` from now on, as if it had been built with it.

        ``no-http`` drops HTTP from /5/0/8 at once (observers are notified); ``defer`` makes
        the simulated user postpone the next Execute Update and, when /5/0/13 is 0, sets it
        as at construction (obj >= 1.1); ``power-loss`` arms one new power cut; the others
        (``no-flash``, ``no-ram``, ``link-drop``, ``corrupt-in-flash``, ``boot-fail``) strike
        at the next download or install -- a transfer already running keeps its plan. Emits a
        ``fault`` event with detail ``"injected NAME"``. Runs on the device's event loop
        (from another thread: ``lab.call(lambda: device.inject_fault(name))``).

        Raises
        ------
        ValueError
            For a name that is not in :data:`labkit.sim.faults.FAULTS` (the message lists
            them); the device is left unchanged.
        """
        (name,) = check_faults([name])
        plan = self.faults
        plan.faults = plan.faults | {name}
        self.emit("fault", detail=f"injected {name}")
        if name == "power-loss":
            plan.power_cut_point = None  # chosen afresh when the next transfer starts
            plan.power_cut_done = False
        elif name == "no-http":
            self._set_protocols(p for p in self.fw.protocols if p is not ProtocolSupport.HTTP)
        elif name == "defer":
            self.user_defers = True
            machine = self.fw
            if machine.object_version != "1.0" and machine.max_defer_period == 0:
                period = self.fault_timing.default_max_defer_period
                self.guarded(self._firmware.handle, WriteMaxDeferPeriod(value=period))

    def clear_fault(self, name: str) -> None:
        """Take fault ``name`` away again (a ``note`` event says so; no-op if it is absent).

        ``no-http`` gives HTTP back to /5/0/8 when the device had it; ``defer`` stops the
        user from postponing (/5/0/13 keeps its value: the server may have written it);
        a planned link drop, bit flip or power cut of a running transfer is called off.

        Raises
        ------
        ValueError
            For a name that is not in :data:`labkit.sim.faults.FAULTS`.
        """
        (name,) = check_faults([name])
        plan = self.faults
        if name not in plan:
            return
        plan.faults = plan.faults - {name}
        agent = self._firmware
        if name == "power-loss":
            plan.power_cut_point = None
        elif name in ("link-drop", "corrupt-in-flash"):
            agent.call_off(name)
        elif name == "no-http":
            now = self.fw.protocols
            self._set_protocols(
                p for p in self._base_protocols if p in now or p is ProtocolSupport.HTTP
            )
        elif name == "defer":
            self.user_defers = False
        self.emit("note", detail=f"fault {name} cleared")

    def _set_protocols(self, protocols: Iterable[ProtocolSupport]) -> None:
        """New /5/0/8 (Firmware Update Protocol Support): machine, store and observers."""
        self.fw.protocols = tuple(dict.fromkeys(protocols))
        self._firmware.sync()

    def link_down_remaining(self) -> float:
        """Simulated seconds until the link is back (0 when it is up)."""
        if not self._link_down_until:
            return 0.0
        left = self._link_down_until - asyncio.get_running_loop().time()
        if left <= 0:
            self._link_down_until = 0.0
            return 0.0
        return left * self.time_scale

    def link_down_for(self, seconds: float) -> None:
        """The link goes down now for ``seconds`` simulated seconds (the ``link-drop`` fault)."""
        loop = asyncio.get_running_loop()
        self._link_down_until = max(self._link_down_until, loop.time() + self._wall(seconds))

    def _wall(self, sim_seconds: float) -> float:
        """The wall duration of ``sim_seconds`` simulated seconds (what the loop waits)."""
        return max(0.0, sim_seconds) / self.time_scale

    def _request_wall(self) -> float:
        """Wall bound of one request the device sends (``request_timeout``, scaled, floored)."""
        return max(MIN_WALL_TIMEOUT_S, self._wall(self.request_timeout))

    # -- what the firmware agent uses (labkit.client.firmware.FirmwareHost) ----------------
    def wall(self, sim_seconds: float) -> float:
        """The wall duration of ``sim_seconds`` simulated seconds (what the loop waits)."""
        return self._wall(sim_seconds)

    def request_wall(self) -> float:
        """Wall bound of one request the device sends (``request_timeout``, scaled, floored)."""
        return self._request_wall()

    def set_internal(self, path: Path | str, value: Any) -> None:
        """Set a resource from inside the device; observers of it are notified."""
        self._set_internal(path, value)

    def set_internal_resources(
        self, object_id: int, instance_id: int, values: Mapping[int, Any]
    ) -> None:
        """:meth:`set_internal` for several resources of one instance (those it holds), in
        the order of ``values``; observers of the changed ones are notified."""
        changed = self.store.set_resources(object_id, instance_id, values)
        if changed:
            self._changed([Path((object_id, instance_id, rid)) for rid in changed])

    async def install_and_reboot(self) -> None:
        """After Execute Update: reboot into the bootloader (see :meth:`_install_and_reboot`)."""
        await self._install_and_reboot()

    @property
    def push_size1(self) -> int | None:
        """The Size1 of the PUSH under way (the whole package), if the server sent one."""
        return self._push_size1

    @property
    def coap_context(self) -> aiocoap.Context | None:
        """The device's CoAP context (None while it is off)."""
        return self._ctx

    @property
    def transport_tuning(self) -> TransportTuning:
        """The scaled RFC 7252 timers of the CON requests the device sends."""
        return self._tuning

    async def _hold(self, seconds: float) -> None:
        """Never answer (until ``seconds`` wall seconds pass, or the device powers off)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._held is None:
            self._held = set()
        held = self._held
        held.add(future)
        try:
            await asyncio.wait_for(future, seconds)
        except TimeoutError:
            pass
        finally:
            held.discard(future)

    async def power_loss(self) -> None:
        """The ``power-loss`` fault: off at once (no De-register), memory lost, then boot from
        the persisted ``state.json`` after :attr:`FaultTiming.power_off_s`."""
        self.emit("fault", detail="power-loss")
        self.emit("reboot", detail="power lost")
        await self._power_off(timeout=_LOCAL_WALL_S)
        agent = self._firmware
        agent.package = None  # RAM is gone; flash and state.json remain
        agent.download = None
        await asyncio.sleep(self._wall(self.fault_timing.power_off_s))
        await self._boot_and_register()

    def value(self, path: str | Path) -> Any:
        """The current value of a resource or resource instance (multiple: a dict)."""
        return self.store.get(path)

    def set_value(self, path: str | Path, value: Any) -> None:
        """Change a value from the device side (battery, RSSI, ...); observers are notified
        as their attributes allow."""
        self.set_values({path: value})

    def set_values(self, values: Mapping[str | Path, Any]) -> None:
        """Change several values from the device side at one instant (say RSSI and Link
        Quality of one link sample): observers are notified as their attributes allow (one
        evaluation for all), and when /4/0/2 or /4/0/3 is among them one ``link`` event shows
        both values as they are now (``path``: the last link path given).

        Raises
        ------
        KeyError
            When the device lacks one of the resources (then nothing is changed).
        """
        paths = [(Path.parse(path), value) for path, value in values.items()]
        for p, _ in paths:
            ids = p.ids
            if len(ids) < 3 or not self.store.exists(p if len(ids) == 3 else Path(ids[:3])):
                raise KeyError(f"the device has no resource {p}")
        changed = [p for p, value in paths if self.store.set(p, value)]
        if changed:
            self._changed(changed)
        link = None
        for p, _ in paths:
            link = _LINK_PATHS.get(p, link)
        if link is not None:
            rssi, lq = self.store.get(_RSSI), self.store.get(_LQ)
            self.emit(
                "link",
                path=link,
                rssi_dbm=rssi if isinstance(rssi, int) else None,
                link_quality=lq if isinstance(lq, int) else None,
            )

    def __repr__(self) -> str:
        where = f"port {self.port}" if self._ctx is not None else "off"
        reg = "registered" if self.registered else "not registered"
        return (
            f"<SimulatedDevice {self.endpoint} {where} {reg} fw={self.firmware_version} "
            f"state={self.fw.state.name} result={self.fw.result.name}>"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("Endpoint", self.endpoint),
            ("Server", self.server_uri),
            ("Local port", str(self.port) if self._ctx is not None else "(off)"),
            (
                "Registered",
                "/".join(("", *self.location)) if self.registered and self.location else "no",
            ),
            ("Firmware version (/3/0/3)", self.firmware_version),
            ("State (/5/0/3)", f"{int(self.fw.state)} {self.fw.state.name}"),
            ("Update Result (/5/0/5)", f"{int(self.fw.result)} {self.fw.result.name}"),
            ("Battery (/3/0/9)", f"{self.value('/3/0/9')} %"),
            ("Signal (/4/0/2)", f"{self.value('/4/0/2')} dBm"),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>Simulated device</caption>{body}</table>"

    # -- life cycle --------------------------------------------------------------------------
    async def start(self, *, timeout: float = 10.0) -> None:
        """Bind the socket and Register (retrying with back-off within ``timeout``).

        Raises
        ------
        TimeoutError
            When no Register succeeded within ``timeout`` (the socket stays open and the
            device keeps its state; call :meth:`stop`).
        """
        if self._ctx is not None:
            raise RuntimeError(f"{self.endpoint} is already started")
        await self._power_on(timeout=timeout)

    async def stop(self, *, deregister: bool = True, timeout: float = 5.0) -> None:
        """De-register (unless told not to), then close the socket. Bounded by ``timeout``.

        Device tasks (an install reboot, a download, an Update) are cancelled first, so a
        reboot in progress cannot bring the device back after it was stopped.
        """
        current = asyncio.current_task()
        pending = [task for task in self._tasks or () if task is not current]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        if self._ctx is None:
            return
        if deregister and self.registered and self.location is not None:
            try:
                await self._deregister(timeout)
            except (TimeoutError, aiocoap.error.Error) as exc:
                self.emit("error", detail=f"de-register failed: {exc!r}")
        await self._power_off(timeout=timeout)

    async def reboot(self, *, timeout: float = 10.0) -> None:
        """Power-cycle: close the socket, open a new one (new port) and Register afresh."""
        self.emit("reboot", detail="reboot")
        await self._power_off(timeout=timeout)
        await self._power_on(timeout=timeout)

    async def send_update(self) -> None:
        """Send a registration Update now (Register again if the server answers 4.04).

        Failures never stop the device: a timed-out or refused Update is retried with
        back-off, and once the lifetime has run out since the last success the device
        Registers afresh (retrying with back-off until it succeeds or is stopped).
        """
        if self._ctx is None:
            raise RuntimeError(f"{self.endpoint} is not started")
        if not self.registered or self.location is None:
            await self._reregister()
            return
        msg = aiocoap.Message(code=aiocoap.POST, uri=self.server_uri)
        msg.opt.uri_path = self.location
        query = [f"lt={self.lifetime}"] if self._update_query_lt else []
        if self._binding_changed:
            query.append(f"b={self.value('/1/0/7')}")
        if self._links_dirty:
            msg.opt.content_format = int(ContentFormat.LINK_FORMAT)
            msg.payload = register_links(self.store.registration_objects()).encode()
        msg.opt.uri_query = query
        try:
            resp = await self._send(msg, self._request_wall())
        except (TimeoutError, aiocoap.error.Error) as exc:
            self.emit("error", detail=f"registration Update failed: {exc!r}")
            self._update_failed()
            return
        if resp.code == Code.CHANGED:
            self._links_dirty = self._update_query_lt = self._binding_changed = False
            self._failures = 0
            self._last_ok = asyncio.get_running_loop().time()
            self.emit("reg_updated", path="/" + "/".join(self.location))
            self._schedule_update(update_delay(self.lifetime))
        elif resp.code == Code.NOT_FOUND:
            self.registered = False
            self.emit("error", code="4.04", detail="Update answered 4.04: registering again")
            await self._reregister()
        else:
            self.emit("error", code=resp.code.dotted, detail="registration Update refused")
            self._update_failed()

    def _update_failed(self) -> None:
        if self._dtls is not None:
            self._dtls.reset_client_sessions()  # re-handshake next time (server restarted?)
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_ok >= self._wall(self.lifetime):
            self.registered = False  # the server has dropped us by now: Register next time
        self._schedule_update(self._retry_delay(min(self._failures, 4)))
        self._failures += 1

    async def _reregister(self) -> None:
        try:
            await self._register_with_retry(self._request_wall())
        except TimeoutError:
            self._schedule_update(self._retry_delay(min(self._failures, 4)))
            self._failures += 1
        except Exception as exc:  # anything else: say so and keep trying (never die silently)
            log.warning("%s: Register failed, retrying: %r", self.endpoint, exc)
            self.emit("error", detail=f"Register failed: {exc!r}")
            self._schedule_update(self._retry_delay(min(self._failures, 4)))
            self._failures += 1

    async def _power_on(self, *, timeout: float) -> None:
        """Boot, bind, Register within ``timeout`` wall seconds (TimeoutError otherwise)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        todo = await self._boot()
        self._recover_after_boot()
        self._ctx = await asyncio.wait_for(
            open_udp_context(
                self._site, self.host, self.want_port, loggername="coap-device",
                on_reject=lambda code, remote, reason: self.emit("error", code=code, detail=reason),
            ),
            max(timeout, _LOCAL_WALL_S),
        )
        self._dtls = None
        await self._open_dtls()
        if self.server_uri is None:
            await self._bootstrap(max(0.0, deadline - loop.time()))
        try:
            await self._register_with_retry(max(0.0, deadline - loop.time()))
        finally:
            if todo == "pull" and self._ctx is not None and self.fw.state is State.DOWNLOADING:
                self._firmware.resume_pull()

    def psk(self, *, bootstrap: bool = False) -> tuple[bytes, bytes] | None:
        """(identity, key) of the management (or bootstrap) account of /0 in PSK mode."""
        from labkit.client.bootstrap import accounts

        bs, servers = accounts(self.store)
        account = bs if bootstrap else (servers[0] if servers else None)
        if account is None or account.mode != 0 or not account.identity or not account.key:
            return None
        return account.identity, account.key

    async def _open_dtls(self) -> None:
        """Add the ``coaps://`` socket to the device's context when /0 has a PSK account, or
        give the one already open the keys /0 holds now (after a bootstrap)."""
        from labkit.dtls import PskEntry, PskStore, add_dtls_transport

        psk, bs_psk = self.psk(), self.psk(bootstrap=True)
        own = psk or bs_psk
        if own is None or self._ctx is None:
            return
        store = PskStore([PskEntry(self.endpoint, own[0], own[1])])
        if self._dtls is None:
            self._dtls = await add_dtls_transport(
                self._ctx,
                self.host,
                0,
                psk_store=store,
                client_psk=psk,
                on_security=self._security,
                handshake_timeout=self._request_wall(),
            )
        else:
            self._dtls.psk_store, self._dtls.client_psk = store, psk
        if bs_psk is not None and self.bootstrap_uri is not None:
            split = urlsplit(self.bootstrap_uri)
            bs_host = (split.hostname or "").strip("[]")
            self._dtls.client_keys[(bs_host, split.port or 5684)] = bs_psk

    # -- bootstrap (labkit.client.bootstrap decides; this sends and receives) -----------------
    async def _bootstrap(self, timeout: float) -> None:
        """Client-Initiated Bootstrap: POST /bs?ep=, serve the server's Bootstrap operations
        until Bootstrap-Finish, then take the management server from /0 and /1."""
        from labkit.client.bootstrap import accounts

        assert self.bootstrap_uri is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._bs = loop.create_future()
        attempt = 0
        try:
            while True:
                msg = aiocoap.Message(code=aiocoap.POST, uri=self.bootstrap_uri + "/bs")
                msg.opt.uri_query = [f"ep={self.endpoint}"]
                remaining = deadline - loop.time()
                if remaining <= 0:
                    self.emit("error", method="Bootstrap-Request", detail="bootstrap timed out")
                    raise TimeoutError(f"{self.endpoint}: bootstrap did not finish")
                try:
                    resp = await self._send(msg, min(self._request_wall(), remaining))
                except (TimeoutError, aiocoap.error.Error) as exc:
                    self.emit("bootstrap", method="Bootstrap-Request", path="/bs",
                              detail=f"no answer: {exc!r}")  # fmt: skip
                else:
                    self.emit("bootstrap", method="Bootstrap-Request", path="/bs",
                              code=resp.code.dotted)  # fmt: skip
                    if resp.code == Code.CHANGED:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(
                                asyncio.shield(self._bs), max(0.0, deadline - loop.time())
                            )
                        if self._bs.done():
                            break
                        continue
                delay = self._wall(self._retry_delay(attempt))
                attempt += 1
                await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        finally:
            self._bs = None
        _, servers = accounts(self.store)
        account = servers[0]
        self.server_uri = account.uri.rstrip("/")
        for iid in self.store.instances(1):
            with contextlib.suppress(KeyError):
                if self.store.get(Path.of(1, iid, 0)) == account.ssid:
                    self.lifetime = int(self.store.get(Path.of(1, iid, 1)))  # type: ignore[call-overload,arg-type]
        await self._open_dtls()

    def _from_bootstrap_server(self, request: aiocoap.Message) -> bool:
        if self._bs is None or self.bootstrap_uri is None:
            return False
        split = urlsplit(self.bootstrap_uri)
        port = split.port or (5684 if split.scheme == "coaps" else 5683)
        try:
            remote = urlsplit(str(request.remote.uri_base))
        except Exception:
            return False
        return (
            remote.scheme == split.scheme
            and (remote.hostname or "") == (split.hostname or "")
            and (remote.port or port) == port
        )

    def _bootstrap_request(self, request: aiocoap.Message) -> aiocoap.Message:
        """One Bootstrap operation from the bootstrap server (Discover, Delete, Write, Finish)."""
        from labkit.client import bootstrap as bs

        segments = list(request.opt.uri_path)
        text = "/" + "/".join(segments)
        operation = "?"
        try:
            if segments == ["bs"] and request.code == Code.POST:
                operation = "Bootstrap-Finish"
                problem = bs.finish_check(self.store)
                if problem is not None:
                    raise OperationError(problem, coap_code="4.06")
                if self._bs is not None and not self._bs.done():
                    self._bs.set_result(None)
                response = aiocoap.Message(code=Code.CHANGED)
            else:
                path = Path.from_segments(segments)
                if request.code == Code.GET:
                    operation = "Bootstrap-Discover"
                    links = bs.bootstrap_discover(self.store, path, self.lwm2m_version)
                    response = aiocoap.Message(
                        code=Code.CONTENT,
                        payload=format_links(links).encode(),
                        content_format=int(ContentFormat.LINK_FORMAT),
                    )
                elif request.code == Code.DELETE:
                    operation = "Bootstrap-Delete"
                    bs.bootstrap_delete(self.store, path)
                    response = aiocoap.Message(code=Code.DELETED)
                elif request.code == Code.PUT:
                    operation = "Bootstrap-Write"
                    bs.bootstrap_write(self.store, path, self._decode(request, path))
                    response = aiocoap.Message(code=Code.CHANGED)
                else:
                    raise OperationError.not_allowed(f"{request.code} during bootstrap")
        except (Lwm2mError, PathError) as exc:
            code = getattr(exc, "coap_code", "4.00")
            self.emit("bootstrap", method=operation, path=text, code=code, detail=str(exc))
            return self._refuse(code, str(exc))
        self.emit("bootstrap", method=operation, path=text, code=response.code.dotted)
        return response

    def _security(self, report: Any) -> None:
        from labkit.dtls import security_event_fields

        fields = security_event_fields(report)
        fields.pop("kind")
        fields.pop("device")
        self.emit("security", **fields)

    def tls_context(self) -> Any:
        """The TLS client context of ``https://`` downloads (trusting ``tls_trust``)."""
        from labkit.tls import client_context

        return client_context(self.tls_trust)

    async def _boot_and_register(self) -> None:
        """Power on after a reboot the device made itself; if Register fails for a while,
        keep trying with back-off (the device stays on and never gives up)."""
        try:
            await self._power_on(timeout=self._wall(max(self.request_timeout, _REBOOT_REGISTER_S)))
        except TimeoutError:
            if self._ctx is not None:
                self._schedule_update(self._retry_delay(min(self._failures, 4)))
                self._failures += 1

    def _recover_after_boot(self) -> None:
        """A hook that runs after :meth:`_boot` restored /5 from flash, before the socket opens.

        Does nothing here; a subclass can model a client that does not persist /5 across a
        reboot (Zephyr, the Wakaama example: digest 1.6) by resetting the machine.
        """

    async def _boot(self) -> str | None:
        """Boot from flash: restore ``state.json`` (nothing stays "in progress" across a power
        cycle, DESIGN 8): finish an install the bootloader had not swapped yet, roll back an
        unconfirmed one, resume a PULL, end an interrupted PUSH with Result 4."""
        record = self.storage.load()
        agent = self._firmware
        if record is None:  # nothing persisted (yet): the in-memory view is all there is
            if self.fw.state is State.DOWNLOADING:
                self.guarded(agent.handle, DownloadFailed(result=UpdateResult.CONNECTION_LOST))
            elif self.fw.state is State.UPDATING:
                self.guarded(agent.handle, InstallFailed(result=UpdateResult.UPDATE_FAILED))
            return None
        try:
            todo = agent.restore(record)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            # An unusable record (edited by hand?): boot the active slot, forget the rest.
            self.emit("error", detail=f"state.json not usable ({exc!r}); /5 starts afresh")
            record = {k: record.get(k) for k in ("active", "slots", "battery")}
            todo = agent.restore(record)
        while todo == "install":
            self.emit("note", detail="bootloader: continuing the interrupted install")
            if agent.run_install():
                return None
            await self._power_cut_off()
            todo = agent.restore(self.storage.load() or record)
        return todo

    async def _power_off(self, *, timeout: float = 5.0) -> None:
        self.registered = False
        if self._update_handle is not None:
            self._update_handle.cancel()
            self._update_handle = None
        self._firmware.reset_for_reboot()
        self._drop_all_observations()
        current = asyncio.current_task()
        for task in list(self._tasks or ()):
            if task is not current:
                task.cancel()
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            _forget_pending_acks(ctx)
            try:
                await asyncio.wait_for(ctx.shutdown(), timeout)
            except (TimeoutError, OSError) as exc:
                self.emit("error", detail=f"socket close: {exc!r}")
        for future in list(self._held or ()):  # requests held unanswered die with the socket
            if not future.done():
                future.set_result(None)
        self._link_down_until = 0.0

    # -- registration ----------------------------------------------------------------------
    async def _send(self, msg: aiocoap.Message, timeout: float) -> aiocoap.Message:
        ctx = self._ctx
        if ctx is None:
            raise aiocoap.error.LibraryShutdown()
        msg.transport_tuning = self._tuning  # CON with the scaled RFC 7252 timers
        # A plain request (one datagram: Register/Update payloads are small) can be abandoned
        # cleanly when the server answers too late (labkit.coap_abandon); Block1 only when a
        # payload does not fit.
        request = ctx.request(msg, handle_blockwise=len(msg.payload) > 1024)
        return await response_within(request, timeout)

    def _retry_delay(self, attempt: int) -> float:
        base = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0**attempt)
        return base * self._retry_rng().uniform(1.0, 1.5)

    async def _register_once(self, timeout: float) -> aiocoap.Message:
        query = register_query(
            self.endpoint, self.lifetime, self.lwm2m_version, "U", self.queue_mode
        )
        payload = register_links(self.store.registration_objects()).encode()
        if self.server_uri is None:
            raise RuntimeError(f"{self.endpoint}: no LwM2M server yet (bootstrap first)")
        msg = aiocoap.Message(
            code=aiocoap.POST,
            uri=self.server_uri + "/rd",
            content_format=int(ContentFormat.LINK_FORMAT),
            payload=payload,
        )
        msg.opt.uri_query = query
        return await self._send(msg, timeout)

    async def _register_with_retry(self, timeout: float) -> None:
        """Register, retrying with back-off, within ``timeout`` wall seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        attempt = 0
        last = "no attempt"
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.emit("error", detail=f"Register failed: {last}")
                raise TimeoutError(f"{self.endpoint}: Register failed within {timeout} s ({last})")
            try:
                resp = await self._register_once(min(self._request_wall(), remaining))
            except (TimeoutError, aiocoap.error.Error) as exc:
                last = repr(exc)
                if self._dtls is not None:
                    self._dtls.reset_client_sessions()
            else:
                if resp.code == Code.CREATED and resp.opt.location_path:
                    self._registered(tuple(resp.opt.location_path))
                    return
                last = f"server answered {resp.code.dotted}"
            delay = min(self._wall(self._retry_delay(attempt)), max(0.0, deadline - loop.time()))
            attempt += 1
            await asyncio.sleep(delay)

    def _registered(self, location: tuple[str, ...]) -> None:
        self.registered = True
        self.location = location
        self._links_dirty = self._update_query_lt = self._binding_changed = False
        self._failures = 0
        self._last_ok = asyncio.get_running_loop().time()
        self.emit(
            "registered",
            path="/" + "/".join(location),
            fw_version=self.firmware_version,
            detail=f"port {self.port}",
        )
        self._schedule_update(update_delay(self.lifetime))

    def _schedule_update(self, delay: float) -> None:
        """Send an Update (or Register) in ``delay`` simulated seconds."""
        if self._update_handle is not None:
            self._update_handle.cancel()
            self._update_handle = None
        if self._ctx is None or delay == float("inf"):
            return
        loop = asyncio.get_running_loop()
        self._update_handle = loop.call_later(self._wall(delay), self._update_due)

    def _update_due(self) -> None:
        self._update_handle = None
        self.spawn(self.send_update())

    async def _deregister(self, timeout: float) -> None:
        assert self.location is not None
        msg = aiocoap.Message(code=aiocoap.DELETE, uri=self.server_uri)
        msg.opt.uri_path = self.location
        resp = await self._send(msg, timeout)
        self.registered = False
        self.emit("deregistered", path="/" + "/".join(self.location), code=resp.code.dotted)

    # -- tasks, events ---------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a device task (cancelled at power-off; failures become events)."""
        task = asyncio.get_running_loop().create_task(self._guard(coro))
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        tasks = self._tasks
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                self._tasks = None

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a device task must never die silently
            log.warning("%s: task failed: %r", self.endpoint, exc, exc_info=True)
            self.emit("error", detail=f"device task failed: {exc!r}")
            # supervisor: whatever failed, the registration loop stays alive
            if self._ctx is not None and self._update_handle is None:
                self._schedule_update(self._retry_delay(min(self._failures, 4)))
                self._failures += 1

    def guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)``; a refusal of the core becomes an ``error`` event."""
        try:
            fn(*args)
        except Lwm2mError as exc:
            self.emit("error", code=exc.coap_code, detail=str(exc))

    def emit(self, kind: str, **fields: Any) -> None:
        if kind == "fw_state" and fields.get("state") is not None:
            self.fw_history.append((self._clock(), "state", int(fields["state"])))
        elif kind == "fw_result" and fields.get("result") is not None:
            self.fw_history.append((self._clock(), "result", int(fields["result"])))
        try:
            self._on_event(
                Event(ts=self._clock(), source="device", kind=kind, device=self.endpoint, **fields)
            )
        except Exception:  # a broken sink must not break the device
            log.exception("%s: event sink failed", self.endpoint)

    # -- requests ----------------------------------------------------------------------------
    def _render(self, request: aiocoap.Message) -> aiocoap.Message | None:
        if self._bs is not None and self._from_bootstrap_server(request):
            return self._bootstrap_request(request)
        method = request.code.name if request.code.is_request() else str(request.code)
        segments = request.opt.uri_path  # (a tuple made on every read of the option)
        path_text = "/" + "/".join(segments)
        try:
            path = Path.parse(path_text)  # (what Path.from_segments(segments) parses)
            response = self._dispatch(request, path)
            if response is None:
                self.emit("request", method=method, path=path_text, detail="not answered")
                return None
        except PathError as exc:
            response = self._refuse("4.04", str(exc))
        except Lwm2mError as exc:
            response = self._refuse(exc.coap_code, str(exc))
        except Exception as exc:  # never crash on input
            log.exception("%s: failed to handle %s %s", self.endpoint, method, path_text)
            response = self._refuse("5.00", f"internal error: {exc!r}")
        code = response.code.dotted
        self.emit("request", method=method, path=path_text, code=code)
        if not response.code.is_successful():
            detail = response.payload.decode("utf-8", "replace") if response.payload else None
            self.emit("error", method=method, path=path_text, code=code, detail=detail)
        return response

    @staticmethod
    def _refuse(code: str, detail: str) -> aiocoap.Message:
        return aiocoap.Message(code=_code(code), payload=detail.encode("utf-8")[:200])

    def _dispatch(self, request: aiocoap.Message, path: Path) -> aiocoap.Message | None:
        code = request.code
        if path.is_root:
            raise OperationError.not_allowed(f"{code.name} on /")
        if code == Code.GET:
            accept = request.opt.accept
            if accept is not None and int(accept) == ContentFormat.LINK_FORMAT:
                links = self.store.discover(path)
                return aiocoap.Message(
                    code=Code.CONTENT,
                    payload=format_links(links).encode(),
                    content_format=int(ContentFormat.LINK_FORMAT),
                )
            return self._read(path, None if accept is None else int(accept))
        if code == Code.PUT:
            if path == _PACKAGE:
                return self._push(request)
            if request.opt.uri_query and not request.payload and request.opt.content_format is None:
                self.store.write_attributes(path, request.opt.uri_query)
                self._rearm(path)
                return aiocoap.Message(code=Code.CHANGED)
            return self._write(request, path, replace=True)
        if code == Code.POST:
            if path.is_object:
                return self._create(request, path)
            if path == _PACKAGE:
                return self._push(request)
            if path.is_resource:
                rdef = self.store.resource_definition(path)
                if rdef is not None and rdef.executable:
                    return self._execute(request, path)
            return self._write(request, path, replace=False)
        if code == Code.DELETE:
            self.store.delete(path)
            self._links_changed()
            return aiocoap.Message(code=Code.DELETED)
        raise OperationError.not_allowed(f"{code.name} is not an LwM2M operation here")

    # Read -----------------------------------------------------------------------------------
    def _format_for(self, path: Path, accept: int | None) -> ContentFormat:
        multiple = self.store.is_multiple(path)
        if accept is None:
            if multiple:
                return ContentFormat.TLV
            rtype = self.store.resource_type(path)
            return ContentFormat.OPAQUE if rtype is ResourceType.OPAQUE else ContentFormat.TEXT
        try:
            fmt = normalize_format(accept)
        except UnsupportedContentFormat:
            raise OperationError(f"cannot produce format {accept}", coap_code="4.06") from None
        if fmt not in ENCODABLE_FORMATS or (multiple and fmt in _MULTI_ONLY):
            raise OperationError(f"cannot produce {fmt.name} for {path}", coap_code="4.06")
        return fmt

    def _encode(self, path: Path, accept: int | None) -> tuple[ContentFormat, bytes, object]:
        values = self.store.read(path)
        fmt = self._format_for(path, accept)
        try:
            payload = encode(fmt, path, values, types=self.store.resource_type)
        except Lwm2mError as exc:
            raise OperationError(
                f"{fmt.name} cannot carry {path}: {exc}", coap_code="4.06"
            ) from None
        return fmt, payload, _snapshot(path, values)

    def _read(self, path: Path, accept: int | None) -> aiocoap.Message:
        fmt, payload, _ = self._encode(path, accept)
        return aiocoap.Message(code=Code.CONTENT, payload=payload, content_format=int(fmt))

    # Write ----------------------------------------------------------------------------------
    def _decode(self, request: aiocoap.Message, base: Path) -> dict[Path, Value]:
        cf = request.opt.content_format
        if cf is None:
            fmt = ContentFormat.TLV if self.store.is_multiple(base) else ContentFormat.TEXT
        else:
            fmt = normalize_format(int(cf))  # 4.15 for unknown numbers
            if fmt not in DECODABLE_FORMATS:
                raise UnsupportedContentFormat(f"cannot decode {fmt.name}")
        return decode(fmt, request.payload, base, types=self.store.resource_type)

    def _write(self, request: aiocoap.Message, path: Path, *, replace: bool) -> aiocoap.Message:
        if path.is_object:
            raise OperationError.not_allowed(f"Write on {path} (use Create)")
        self.store.check_write(path, {}, replace=replace)
        values = self._decode(request, path)
        self.store.check_write(path, values, replace=replace)
        lifetime = values.get(Path.of(1, 0, 1))
        if lifetime is not None and (not isinstance(lifetime, int) or lifetime < 1):
            raise OperationError.bad_request("Lifetime must be >= 1 s")
        if lifetime is not None:  # refuse what the device could never register with
            try:
                register_query(self.endpoint, lifetime, self.lwm2m_version, "U", self.queue_mode)
            except LocalProtocolError as exc:
                raise OperationError.bad_request(f"Lifetime {lifetime}: {exc}") from None
        firmware = {p: v for p, v in values.items() if p.object_id == 5}
        rest = {p: v for p, v in values.items() if p.object_id != 5}
        for p, v in firmware.items():
            self._write_firmware(p, v)
        changed = self.store.write(path, rest, replace=replace) if rest else []
        written_time = rest.get(Path.of(3, 0, 13))
        if isinstance(written_time, int):
            self._time_offset = written_time - self._clock()
        self._after_write(changed)
        return aiocoap.Message(code=Code.CHANGED)

    def _write_firmware(self, path: Path, value: Value) -> None:
        rid = path.resource_id
        agent = self._firmware
        if rid == 0:
            assert isinstance(value, bytes)
            agent.handle(WritePackage(block_number=0, more=False, data=value))
        elif rid == 1:
            assert isinstance(value, str)
            if "no-http" in self.faults and value.lower().startswith("http"):
                self.emit("fault", detail="no-http", path=value)
            agent.handle(WriteUri(uri=value))
        elif rid == 11:
            agent.handle(WriteSeverity(value=int(value)))  # type: ignore[arg-type]
        elif rid == 13:
            agent.handle(WriteMaxDeferPeriod(value=int(value)))  # type: ignore[arg-type]
        elif rid == 14:
            agent.handle(WriteAutoUpgrade(value=bool(value)))
        else:  # pragma: no cover - check_write refuses the others (not writable)
            raise OperationError.not_allowed(f"{path} is not writable")

    def _after_write(self, changed: list[Path]) -> None:
        for p in changed:
            if p == Path.of(1, 0, 1):
                self.lifetime = int(self.store.get(p))  # type: ignore[arg-type]
                self._update_query_lt = True
                self.spawn(self.send_update())
            elif p == Path.of(1, 0, 7):
                self._binding_changed = True
                self.spawn(self.send_update())
        self._changed(changed)

    def _set_internal(self, path: Path | str, value: Any) -> None:
        p = Path.parse(path)
        if self.store.set(p, value):
            self._changed((p,))

    # PUSH (Block1 on /5/0/0) -------------------------------------------------------------------
    def _push(self, request: aiocoap.Message) -> aiocoap.Message | None:
        cf = request.opt.content_format
        cfn = None if cf is None else int(cf)
        if cfn not in _PACKAGE_FORMATS:
            raise UnsupportedContentFormat(f"Package takes content format 42, not {cfn}")
        block1 = request.opt.block1
        data = request.payload
        if block1 is None:
            num, more = 0, False
        else:
            if block1.size_exponent > 6:
                raise OperationError.bad_request("BERT blocks are not for CoAP over UDP")
            num, more = block1.block_number, bool(block1.more)
            if more and len(data) != block1.size:
                raise OperationError.bad_request(
                    f"block {num}: {len(data)} bytes, Block1 says {block1.size}"
                )
        if block1 is not None and num != 0:
            placed = self._place_block(num * block1.size, len(data))
            if isinstance(placed, aiocoap.Message):
                return placed
            num = placed
        declared = None if self._push_bytes is None or num == 0 else self._push_bytes[2]
        if cfn == 11542 and num == 0:
            declared = tlv_value_length(data)
            data = strip_tlv_header(data)
        value_so_far = len(data) + (
            self._push_bytes[3] if self._push_bytes is not None and num != 0 else 0
        )
        if declared is not None and (
            value_so_far > declared or (not more and value_so_far != declared)
        ):
            detail = f"TLV Package declares {declared} bytes, {value_so_far} arrived"
            self.emit("error", path=_PACKAGE_TEXT, code="4.00", detail=detail)
            self._push_bytes = None
            if self.fw.state is State.DOWNLOADING:
                self.guarded(
                    self._firmware.handle,
                    DownloadFailed(result=UpdateResult.UNSUPPORTED_PACKAGE_TYPE),
                )
            return self._refuse("4.00", detail)
        if num == 0:
            size1 = request.opt.size1
            self._push_size1 = None if size1 is None else int(size1)
            if block1 is None:
                self._push_size1 = len(data)
        agent = self._firmware
        try:
            agent.handle(WritePackage(block_number=num, more=more, data=data))
        except StoreError as exc:
            self.emit("error", path=_PACKAGE_TEXT, detail=str(exc))
            self.guarded(agent.handle, DownloadFailed(result=exc.result))
            if exc.result is UpdateResult.NOT_ENOUGH_FLASH:
                answer = self._refuse("4.13", str(exc))
                answer.opt.size1 = self.flash_size
                return answer
            return self._refuse("5.00", str(exc))
        except PowerCut:
            self.spawn(self.power_loss())
            return None
        except LinkDown:
            self.emit("fault", detail="link-drop", path=_PACKAGE_TEXT)
            self._push_link_drop()
            return None
        start = 0 if block1 is None else block1.block_number * block1.size
        if num == 0 or self._push_bytes is None or start == self._push_bytes[0]:
            self._push_bytes = (
                start + len(request.payload),
                (start, len(request.payload)),
                declared,
                value_so_far,
            )
        self.emit(
            "block",
            method="push",
            protocol="coap",
            path=_PACKAGE_TEXT,
            block=num,
            bytes=len(request.payload),
        )
        if not more and self.fw.state in (State.DOWNLOADED, State.UPDATING):
            failure = agent.finish_download()
            if failure is not None:
                self.guarded(agent.handle, DownloadFailed(result=failure))
                return self._refuse("4.00", "not a firmware image (Result 6)")
        if block1 is None:
            return aiocoap.Message(code=Code.CHANGED)
        echo = BlockOption.BlockwiseTuple(num, more, block1.size_exponent)
        return aiocoap.Message(code=Code.CONTINUE if more else Code.CHANGED, block1=echo)

    def _place_block(self, start: int, length: int) -> int | aiocoap.Message:
        """The core's block number for a PUSH block at byte ``start`` (RFC 7959 section 2.3:
        NUM x size, so a size change renumbers), or a 4.08 for one that does not continue."""
        nxt = self.fw.next_block
        pushed = self._push_bytes
        if nxt is None or pushed is None:
            return start  # nothing in progress: the core answers (4.08 B1)
        expected, (last_start, last_len), _, _ = pushed
        if start == expected:
            return nxt
        if start == last_start and length == last_len:
            return nxt - 1  # the last block again (its 2.31 was lost): B2
        detail = f"Block1 at byte {start}, expected byte {expected}"
        self.emit("error", path=_PACKAGE_TEXT, code="4.08", detail=detail)
        return self._refuse("4.08", detail)

    def _push_link_drop(self) -> None:
        """The link is gone mid-push: blocks go unanswered; when it is back, Result 4."""
        seconds = self.fault_timing.link_drop_s
        self.link_down_for(seconds)
        loop = asyncio.get_running_loop()

        def back() -> None:
            agent = self._firmware
            if self.fw.state is State.DOWNLOADING and agent.download is not None:
                self.emit("error", detail="the link is back; the push was lost: Result 4")
                self.guarded(agent.handle, DownloadFailed(result=UpdateResult.CONNECTION_LOST))

        loop.call_later(self._wall(seconds), back)

    # Execute ------------------------------------------------------------------------------------
    def _execute(self, request: aiocoap.Message, path: Path) -> aiocoap.Message:
        self.store.check_execute(path)
        parse_execute_args(request.payload)  # 4.00 on bad arguments
        key = (path.object_id, path.resource_id)
        if key == (1, 8):  # Registration Update Trigger: answer, then Update
            self.spawn(self.send_update())
        elif key == (3, 4):  # Reboot: answer 2.04 first, then power-cycle
            self.spawn(self._reboot_soon())
        elif key == (3, 12):  # Reset Error Code
            self._set_internal("/3/0/11", {0: 0})
        elif key == (5, 2):
            self._firmware.handle(ExecuteUpdate(user_defers=self.user_defers))
        elif key == (5, 10):
            self._firmware.handle(ExecuteCancel())
        else:
            raise OperationError(f"Execute {path} is not implemented", coap_code="5.01")
        return aiocoap.Message(code=Code.CHANGED)

    async def _reboot_soon(self) -> None:
        await asyncio.sleep(self._wall(self.install_delay))
        self.emit("reboot", detail="reboot")
        await self._power_off(timeout=_LOCAL_WALL_S)
        await self._boot_and_register()

    async def _install_and_reboot(self) -> None:
        """After Execute Update: let 2.04 and the State 3 notification go, then reboot into
        the bootloader, which verifies, swaps, self-tests and confirms (or rolls back)."""
        await asyncio.sleep(self._wall(self.install_delay))
        if self.fw.state is not State.UPDATING:
            return  # e.g. an auto-upgrade whose package was refused at download end
        image = self.package or b""
        self.emit("reboot", detail="installing firmware", bytes=len(image))
        await self._power_off(timeout=_LOCAL_WALL_S)
        if not self._firmware.run_install():
            await self._power_cut_off()
        await self._boot_and_register()

    async def _power_cut_off(self) -> None:
        """Power is lost while the device is already off (an install step): stay off a while."""
        self.emit("fault", detail="power-loss")
        self._firmware.package = None
        await asyncio.sleep(self._wall(self.fault_timing.power_off_s))

    # Create / Delete ---------------------------------------------------------------------------
    def _create(self, request: aiocoap.Message, path: Path) -> aiocoap.Message:
        oid = path.object_id
        assert oid is not None
        if oid in self.store.hidden:
            raise OperationError.unauthorized(f"/{oid} is not accessible")
        if oid not in self.store.creatable:
            if not self.store.exists(path):
                raise OperationError.not_found(f"object {path}")
            raise OperationError.not_allowed(f"Create in /{oid}")
        values = self._decode(request, path)
        iid = self.store.create(oid, values)
        self._links_changed()
        return aiocoap.Message(code=Code.CREATED, location_path=[str(oid), str(iid)])

    def _links_changed(self) -> None:
        self._links_dirty = True
        if self.registered:
            self.spawn(self.send_update())

    # -- observations -----------------------------------------------------------------------------
    def _add_observation(self, request: aiocoap.Message, serverobs: Any) -> None:
        obs = self._new_observation(request, serverobs)
        if obs is None:
            # Decline. aiocoap 0.4.17 calls the cancellation callback of *every* observation
            # when its pipe ends, accepted or not (AttributeError otherwise), so accept with a
            # no-op callback and deregister at once: the answer goes out without Observe.
            serverobs.accept(_nothing)
            serverobs.deregister()
            return
        if self._observations is None:
            self._observations = []
        self._observations.append(obs)
        serverobs.accept(lambda: self._drop_observation(obs))
        self._arm(obs, obs.last_sent)

    def _new_observation(self, request: aiocoap.Message, serverobs: Any) -> _Observation | None:
        """The observation a GET Observe=0 starts, or None when it cannot be observed."""
        if request.code != Code.GET:
            return None
        accept = request.opt.accept
        if accept is not None and int(accept) == ContentFormat.LINK_FORMAT:
            return None
        try:
            path = Path.from_segments(list(request.opt.uri_path))
            if path.is_root:
                return None
            _, _, snap = self._encode(path, None if accept is None else int(accept))
        except Exception:
            return None  # render() answers the error
        obs = _Observation(path, None if accept is None else int(accept), serverobs)
        obs.last_sent = self.now()
        obs.last_value = snap
        return obs

    def _drop_observation(self, obs: _Observation) -> None:
        if self._hostile is not None:
            self._hostile.forget(obs)
        if obs.timer is not None:
            obs.timer.cancel()
            obs.timer = None
        if self._observations is not None and obs in self._observations:
            self._observations.remove(obs)
            if not self._observations:
                self._observations = None

    def _drop_all_observations(self) -> None:
        if self._hostile is not None:
            self._hostile.clear()
        for obs in list(self._observations or ()):
            self._drop_observation(obs)
        self._observations = None
        self._dirty = None

    def _changed(self, paths: Iterable[Path]) -> None:
        """Values changed: evaluate related observations soon (after the current response)."""
        if not self._observations:
            return
        first = self._dirty is None
        if first:
            self._dirty = set()
        self._dirty.update(paths)  # type: ignore[union-attr]
        if first:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty or set(), None
        now = self.now()
        for obs in list(self._observations or ()):
            if any(p.startswith(obs.path) or obs.path.startswith(p) for p in dirty):
                self._evaluate(obs, now)

    def _evaluate(self, obs: _Observation, now: float, *, force: bool = False) -> None:
        try:
            fmt, payload, snap = self._encode(obs.path, obs.accept)
        except Lwm2mError as exc:  # e.g. the instance was deleted: end the observation
            ended = self._refuse(exc.coap_code, str(exc))
            ended.transport_tuning = self._reply_tuning
            obs.serverobs.trigger(ended)
            self._drop_observation(obs)
            return
        attrs = self.store.effective_attributes(obs.path)
        if force:
            when: float | None = now
        else:
            when = next_notification(
                attrs, now=now, last_sent=obs.last_sent, last_value=obs.last_value, value=snap
            )
        if when is None:
            obs.pending = False
            self._arm(obs, now)
            return
        if when > now + _EPS:
            obs.pending = True
            self._arm(obs, now)
            return
        hostile = self._hostile
        if hostile is not None and hostile.affects(obs.path):
            send = functools.partial(self._send_held, obs, fmt)
            hostile.offer(obs, obs.path, snap, payload, send)
        else:
            self._notify(obs, int(fmt), payload, snap, False)
        obs.last_sent, obs.last_value, obs.pending = now, snap, False
        self._arm(obs, now)

    def _send_held(
        self, obs: _Observation, fmt: int, value: object, payload: bytes, stale: bool
    ) -> None:
        """The hostile scheduler's ``send`` for one observation."""
        self._notify(obs, int(fmt), payload, value, stale)

    def _notify(
        self, obs: _Observation, fmt: int, payload: bytes, snap: object, stale: bool
    ) -> None:
        """Send one notification of ``obs`` now (``stale``: with a stale Observe number)."""
        if obs not in (self._observations or ()):
            return  # ended meanwhile (a hostile scheduler held it past a reboot)
        message = aiocoap.Message(
            code=Code.CONTENT,
            payload=payload,
            content_format=fmt,
            transport_tuning=self._reply_tuning,
        )
        if stale:
            stale_observe(message)
        obs.serverobs.trigger(message)
        fields: dict[str, Any] = {}
        if obs.path == Path.of(5, 0, 3) and isinstance(snap, int):
            fields["state"] = snap
        elif obs.path == Path.of(5, 0, 5) and isinstance(snap, int):
            fields["result"] = snap
        if stale:
            fields["detail"] = "stale Observe sequence number"
        self.emit("notify", path=str(obs.path), bytes=len(payload), **fields)

    def _arm(self, obs: _Observation, now: float) -> None:
        if obs.timer is not None:
            obs.timer.cancel()
            obs.timer = None
        attrs = self.store.effective_attributes(obs.path)
        due = pmax_due(attrs, obs.last_sent)
        if obs.pending:
            at = obs.last_sent + (attrs.pmin or 0)
            due = at if due is None else min(due, at)
        if due is None:
            return
        loop = asyncio.get_running_loop()
        obs.timer = loop.call_later(self._wall(due - now), self._timer_fired, obs)

    def _timer_fired(self, obs: _Observation) -> None:
        obs.timer = None
        now = self.now()
        attrs = self.store.effective_attributes(obs.path)
        due = pmax_due(attrs, obs.last_sent)
        self._evaluate(obs, now, force=due is not None and now >= due - _EPS)

    def _rearm(self, path: Path) -> None:
        """Attributes changed at ``path``: re-plan the timers of related observations."""
        now = self.now()
        for obs in list(self._observations or ()):
            if obs.path.startswith(path) or path.startswith(obs.path):
                self._arm(obs, now)
