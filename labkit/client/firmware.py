"""The simulated device's /5 Firmware Update glue: PUSH blocks, PULL downloads, flash, install.

This module connects the pure :class:`~labkit.lwm2m.fota.FirmwareUpdateMachine` (which decides
every /5 state and result, digest 1.4) to the device's I/O and hardware model
(:mod:`labkit.client.model`, :mod:`labkit.client.bootloader`):

* PUSH (digest 1.8): every Block1 block of ``PUT /5/0/0`` becomes a ``WritePackage`` event;
  the machine's ``StoreBlock`` actions write the block into the download slot (a real file)
  and an in-memory copy. Content formats 42, 1544 and 11542 (a package wrapped in one TLV
  resource, as Leshan's generic Write sends it -- digest 9.4) are accepted.
* PULL (digest 7.2, 7.3): a ``StartDownload`` action starts a ``coap://`` Block2 download
  (:func:`coap_download`) through the device's own CoAP context, or an ``http://`` download
  (:func:`~labkit.client.http_download.http_download`). Both resume an interrupted transfer
  -- CoAP from the next block with an ETag check, HTTP with ``Range`` + ``If-Match`` -- up to
  ``SimulatedDevice.download_retries`` times, and again after a power cut from the last
  resume checkpoint (offset + ETag, as Anjay persists them); a changed ETag restarts from 0.
  4.04/404 or an unusable URI -> 7, timeouts and other errors -> 4 (Anjay's mapping, 1.7).
  HTTP bodies are stored in pieces of the RAM buffer's size (``ram``, at most 64 KiB), not
  in CoAP-sized 1 KiB blocks.
* Flash cost: the download slot stays open for the whole transfer (one write per block) and
  ``state.json`` is saved only when the persisted record changes (State, Result, URI, the
  pending image, an install step, a transfer starting or restarting) -- never for a PUSH
  block -- plus, during a PULL, a resume checkpoint once 1/16 of the package (4 to 64 KiB,
  :data:`CHECKPOINT_SHARE`) more is stored or :data:`CHECKPOINT_SECONDS` of simulated time
  passed since the last one. A power cut between checkpoints loses only the bytes after the
  last one: the boot truncates the slot to the checkpointed offset and the download resumes
  there (the slot never keeps bytes the record does not vouch for). A download restart
  (changed ETag, 200 instead of 206) saves its lower offset and new ETag before new bytes
  overwrite the old ones. The battery level is saved with these records only. On completion
  the slot is ``fsync``-ed and the record naming the image complete is flushed before it
  replaces the old one. A boot writes the record as booted, unless ``state.json`` already
  holds exactly that text (most boots change nothing).
* Install: ``StartInstall`` asks the device to reboot; :meth:`FirmwareAgent.run_install` is
  the bootloader's part (verify, swap, self-test, confirm -- each step persisted).

Where each check runs (digest 1.3 and 1.7; Zephyr checks integrity "at download end or
install"):

====================================  ===================================================
check                                 when, and what the device reports
====================================  ===================================================
package larger than the flash slot    at the first block, from Size1 (PUSH: 4.13 with
                                      Size1 = slot size) or Size2 (PULL); else when the
                                      data exceed the slot -> Result 2
block larger than the RAM buffer      at that block (PUSH: 5.00) -> Result 3
package type (MCUboot magic, or a     at download end (PUSH: the last block is answered
lab ``LABKIT-FW`` package)            4.00) -> Result 6
hash and signature (imgtool)          at the reboot, by the bootloader: never booted,
                                      old image runs -> Result 5 (State 0)
new image's self-test                 after the swap: rolled back -> Result 8 (State 0)
====================================  ===================================================

The lab package convention (the teaching packages that predate MCUboot images): a package
whose first line is ``LABKIT-FW <version>\\n`` installs firmware version ``<version>``; a
``LABKIT-FW`` package without a version installs ``<old version>+1``.

It never decides a transition itself; it translates actions into I/O and I/O into events.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiocoap
from aiocoap.optiontypes import BlockOption

from labkit.client.bootloader import (
    LAB,
    PACKAGE_MAGIC,
    classify_package,
    package_version,
)
from labkit.client.http_download import DownloadError, http_download
from labkit.client.model import SLOTS, other_slot
from labkit.coap_abandon import response_within
from labkit.lwm2m.errors import DecodeError
from labkit.lwm2m.fota import (
    AbortDownload,
    DeferralEnded,
    DiscardImage,
    DownloadCompleted,
    DownloadFailed,
    FirmwareUpdateMachine,
    InstallFailed,
    ResultChanged,
    StartDeferral,
    StartDownload,
    StartInstall,
    StateChanged,
    StoreBlock,
)
from labkit.lwm2m.objects import ProtocolSupport, Severity, State, UpdateResult
from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from aiocoap.numbers.constants import TransportTuning

    from labkit.client.bootloader import Bootloader
    from labkit.client.model import Battery, FaultPlan, FaultTiming, FlashStorage
    from labkit.client.store import ObjectStore

__all__ = [
    "PACKAGE_MAGIC",
    "DownloadError",
    "FirmwareAgent",
    "InstallOutcome",
    "StoreError",
    "coap_download",
    "default_installer",
    "package_version",
    "strip_tlv_header",
    "tlv_value_length",
]

log = logging.getLogger(__name__)

#: Format number of ``state.json``.
RECORD_FORMAT = 1

#: A PULL saves a resume checkpoint once 1/:data:`CHECKPOINT_SHARE` of the package (Size2;
#: unknown: the minimum) was stored since the last one, but at least :data:`CHECKPOINT_MIN`
#: bytes (a flash sector of an MCUboot device: what its stream-flash layer commits at once)
#: and at most :data:`CHECKPOINT_MAX` -- so a power cut costs at most 1/16 of the package or
#: 64 KiB of download again, and a large package writes ``state.json`` about 16 times ...
CHECKPOINT_SHARE = 16
CHECKPOINT_MIN = 4 * 1024
CHECKPOINT_MAX = 64 * 1024
#: ... or once this much simulated time passed since the last one (slow links).
CHECKPOINT_SECONDS = 1.0
#: HTTP bodies go to flash in pieces of the RAM buffer's size, up to this many bytes.
HTTP_PIECE_MAX = 64 * 1024
#: the longest a whole HTTP PULL may take (simulated seconds); a server that drips bytes just
#: inside each read timeout ends in Result 4 instead of State 1 forever (issue 17 case 3)
HTTP_DOWNLOAD_DEADLINE_S = 1800.0


@dataclass(frozen=True, slots=True)
class InstallOutcome:
    """What a custom installer made of a package after the post-Update reboot.

    A device built with ``installer=`` skips the bootloader (no image checks): the installer
    decides. Attributes: ``success`` (the device runs the new image), ``new_version``
    (/3/0/3 after a success; None derives ``<old>+1``), ``result`` (SUCCESS, 8 or 5) and
    ``image_usable`` (on failure: True keeps the image, State 2; False discards it, State 0).
    """

    success: bool
    new_version: str | None = None
    result: UpdateResult = UpdateResult.SUCCESS
    image_usable: bool = True


def default_installer(package: bytes) -> InstallOutcome:
    """Accept any non-empty package; the version comes from a ``LABKIT-FW <v>`` first line.

    An empty package fails the integrity check (Result 5) and is discarded.
    """
    if not package:
        return InstallOutcome(
            success=False, result=UpdateResult.INTEGRITY_CHECK_FAILURE, image_usable=False
        )
    return InstallOutcome(success=True, new_version=package_version(package))


def strip_tlv_header(first_block: bytes) -> bytes:
    """The value bytes of a package wrapped in one TLV "resource with value" (id 0).

    Only the header is parsed (digest 6.3), so this works on the first block of a block-wise
    transfer: what follows the header is raw package data.

    Raises
    ------
    DecodeError
        When the bytes do not start with a resource TLV for resource 0.
    """
    if len(first_block) < 2:
        raise DecodeError("TLV package: header too short")
    kind = first_block[0]
    if kind >> 6 != 0b11:
        raise DecodeError("TLV package: not a resource-with-value TLV")
    id_len = 2 if kind & 0x20 else 1
    len_len = (kind >> 3) & 0x03
    header = 1 + id_len + len_len
    if len(first_block) < header:
        raise DecodeError("TLV package: header too short")
    rid = int.from_bytes(first_block[1 : 1 + id_len], "big")
    if rid != 0:
        raise DecodeError(f"TLV package: resource {rid}, expected 0 (Package)")
    return first_block[header:]


def tlv_value_length(first_block: bytes) -> int | None:
    """The value length a Package TLV header declares (None when it is not a valid header;
    :func:`strip_tlv_header` says why)."""
    if len(first_block) < 2 or first_block[0] >> 6 != 0b11:
        return None
    kind = first_block[0]
    id_len = 2 if kind & 0x20 else 1
    len_len = (kind >> 3) & 0x03
    if len_len == 0:
        return kind & 0x07
    start = 1 + id_len
    if len(first_block) < start + len_len:
        return None
    return int.from_bytes(first_block[start : start + len_len], "big")


class StoreError(Exception):
    """The device cannot take a block (flash, RAM); ``result`` is 2 or 3."""

    def __init__(self, message: str, result: UpdateResult) -> None:
        super().__init__(message)
        self.result = result


class PowerCut(Exception):
    """The ``power-loss`` fault strikes now: the device must lose power at once."""


class LinkDown(Exception):
    """The ``link-drop`` fault strikes now: the link is gone for a long while."""


class _MemorySink:
    """A download sink that only keeps the bytes (for :func:`coap_download` without a device)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.offset = 0
        self.etag: bytes | None = None

    def begin(self, total: int | None, etag: bytes | None, offset: int) -> None:
        del self.data[offset:]
        self.offset = offset
        self.etag = etag

    def block(self, num: int, offset: int, data: bytes) -> None:
        self.data += data
        self.offset += len(data)


async def coap_download(
    ctx: aiocoap.Context,
    uri: str,
    *,
    szx: int = 6,
    request_timeout: float = 10.0,
    on_block: Callable[[int, int], None] | None = None,
    sink: Any = None,
    retries: int = 0,
    retry_delay: float = 0.5,
    on_retry: Callable[[str], None] | None = None,
    transport_tuning: Any = None,
) -> bytes:
    """GET ``uri`` block by block (RFC 7959 Block2) through ``ctx``, resuming if asked.

    Parameters
    ----------
    ctx:
        The CoAP context to send from (the device's own socket).
    szx:
        Block size exponent asked for (6 = 1024 bytes); a server may answer smaller blocks.
    request_timeout:
        Bound on each block's exchange (retransmissions included).
    on_block:
        Called with (block number, payload bytes) for every block received.
    sink:
        Where blocks go (``offset``, ``etag``, ``begin()``, ``block()``; see
        :class:`~labkit.client.http_download.DownloadSink`). A sink with ``offset > 0``
        resumes at the block holding that offset; when the first answer's ETag differs from
        the sink's, the download restarts at block 0. Default: an in-memory sink.
    retries, retry_delay:
        A block that times out (or meets a network error) is asked for again, up to
        ``retries`` times in a row, after ``retry_delay`` seconds: the download resumes from
        that block.
    transport_tuning:
        aiocoap transport tuning of every GET (e.g. :func:`labkit.coap.scaled_tuning` for a
        time-scaled device); default: aiocoap's. ``request_timeout`` and ``retry_delay`` are
        wall seconds here: a time-scaled caller converts them.

    Returns
    -------
    bytes
        The image (with the default sink; ``b""`` with a caller's sink).

    Raises
    ------
    DownloadError
        Result 7 for an unusable URI or 4.04, Result 4 for timeouts, network errors and
        other error codes once the retries are spent.
    """
    own = sink is None
    if own:
        sink = _MemorySink()
    size = 1 << (szx + 4)
    num = sink.offset // size
    if sink.offset % size:
        sink.begin(None, sink.etag, num * size)  # resume on a block boundary
    first = True
    failures = 0
    while True:
        try:
            msg = aiocoap.Message(code=aiocoap.GET, uri=uri, transport_tuning=transport_tuning)
        except (ValueError, TypeError) as exc:
            raise DownloadError(f"bad URI {uri!r}: {exc}", UpdateResult.INVALID_URI) from None
        msg.opt.block2 = BlockOption.BlockwiseTuple(num, False, szx)
        try:
            request = ctx.request(msg, handle_blockwise=False)
            resp = await response_within(request, request_timeout)
        except aiocoap.error.ResolutionError as exc:
            raise DownloadError(f"cannot resolve: {exc}", UpdateResult.INVALID_URI) from None
        except (TimeoutError, aiocoap.error.Error) as exc:
            failures += 1
            what = "no answer" if isinstance(exc, TimeoutError) else f"network error: {exc}"
            if failures > retries:
                raise DownloadError(
                    f"block {num}: {what} ({failures} tries)", UpdateResult.CONNECTION_LOST
                ) from None
            if on_retry is not None:
                on_retry(f"block {num}: {what}; asking again")
            await asyncio.sleep(retry_delay)
            continue
        failures = 0
        if resp.code == aiocoap.NOT_FOUND:
            raise DownloadError("repository answered 4.04", UpdateResult.INVALID_URI)
        if not resp.code.is_successful():
            raise DownloadError(
                f"repository answered {resp.code.dotted}", UpdateResult.CONNECTION_LOST
            )
        block = resp.opt.block2
        etag = resp.opt.etag
        if block is None:
            # The whole image in one response (small image, or a server without Block2).
            sink.begin(len(resp.payload), etag, 0)
            sink.block(0, 0, resp.payload)
            if on_block is not None:
                on_block(0, len(resp.payload))
            return bytes(sink.data) if own else b""
        if first or etag != sink.etag:
            changed = sink.offset > 0 and sink.etag is not None and etag != sink.etag
            first = False
            if changed:
                # The image changed since the stored part was fetched: start over (Anjay).
                sink.begin(resp.opt.size2, etag, 0)
                if block.block_number != 0:
                    num = 0
                    continue
            else:
                sink.begin(resp.opt.size2, etag, block.start)
        if block.start != sink.offset:
            raise DownloadError("repository sent an unexpected block", UpdateResult.CONNECTION_LOST)
        sink.block(block.block_number, block.start, resp.payload)
        if on_block is not None:
            on_block(block.block_number, len(resp.payload))
        if not block.more:
            return bytes(sink.data) if own else b""
        szx = block.size_exponent
        num = sink.offset >> (szx + 4)


class _PullSink:
    """The agent seen by a downloader (offset, ETag, begin, block)."""

    __slots__ = ("_agent",)

    def __init__(self, agent: FirmwareAgent) -> None:
        self._agent = agent

    @property
    def offset(self) -> int:
        return int(self._agent.download.get("offset", 0)) if self._agent.download else 0

    @property
    def etag(self) -> bytes | None:
        dl = self._agent.download
        text = dl.get("etag") if dl else None
        return bytes.fromhex(text) if text else None

    @etag.setter
    def etag(self, value: bytes | None) -> None:
        if self._agent.download is not None:
            self._agent.download["etag"] = value.hex() if value else None

    def begin(self, total: int | None, etag: bytes | None, offset: int) -> None:
        self._agent._pull_begin(total, etag, offset)  # noqa: SLF001 - the agent's own sink

    def block(self, num: int, offset: int, data: bytes) -> None:
        self._agent._accept_block(num, data)  # noqa: SLF001 - the agent's own sink


class FirmwareHost(Protocol):
    """What a :class:`FirmwareAgent` uses of the device it runs in (implemented by
    :class:`~labkit.client.device.SimulatedDevice`): its store, flash, bootloader, battery and
    faults, its clock and event sink, its task spawner, its CoAP context and timings."""

    @property
    def store(self) -> ObjectStore: ...
    @property
    def storage(self) -> FlashStorage: ...
    @property
    def bootloader(self) -> Bootloader: ...
    @property
    def battery(self) -> Battery: ...
    @property
    def faults(self) -> FaultPlan: ...
    @property
    def fault_timing(self) -> FaultTiming: ...
    @property
    def installer(self) -> Callable[[bytes], InstallOutcome] | None: ...
    @property
    def ram(self) -> int: ...
    @property
    def flash_size(self) -> int: ...
    @property
    def firmware_version(self) -> str: ...
    @property
    def download_szx(self) -> int: ...
    @property
    def download_retries(self) -> int: ...
    @property
    def retry_delay(self) -> float: ...
    @property
    def request_timeout(self) -> float: ...
    @property
    def push_idle_timeout(self) -> float: ...
    @property
    def push_size1(self) -> int | None:
        """The Size1 of the PUSH under way (the whole package), if the server sent one."""

    @property
    def coap_context(self) -> aiocoap.Context | None:
        """The device's CoAP context (None while it is off)."""

    @property
    def transport_tuning(self) -> TransportTuning: ...

    def tls_context(self) -> Any:
        """The TLS client context of ``https://`` downloads."""

    def now(self) -> float: ...
    def wall(self, sim_seconds: float) -> float:
        """The wall duration of ``sim_seconds`` simulated seconds."""

    def request_wall(self) -> float:
        """The wall bound of one request the device sends."""

    def emit(self, kind: str, **fields: Any) -> None: ...
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...
    def guarded(self, fn: Callable[..., Any], *args: Any) -> None: ...
    def set_internal(self, path: Path | str, value: Any) -> None:
        """Set a resource from inside the device (observers are notified)."""

    def set_internal_resources(
        self, object_id: int, instance_id: int, values: Mapping[int, Any]
    ) -> None:
        """Set several resources of one instance that it holds (observers are notified)."""

    def link_down_for(self, seconds: float) -> None: ...
    async def power_loss(self) -> None: ...
    async def install_and_reboot(self) -> None:
        """After Execute Update: reboot into the bootloader, which installs or rolls back."""


class FirmwareAgent:
    """Runs the /5 machine's actions for one device, keeps /5/0 in its store current and owns
    the device's flash (slots and ``state.json``, :class:`~labkit.client.model.FlashStorage`).

    Parameters
    ----------
    device:
        The owning :class:`~labkit.client.device.SimulatedDevice` (its store, clock, event
        sink, CoAP context, task spawner, storage, bootloader and faults are used).
    machine:
        The state machine.
    firmware_version:
        The factory image's version (slot a).
    """

    __slots__ = (
        "_corrupt_at",
        "_deferral",
        "_device",
        "_link_drop_at",
        "_pull",
        "_push_timer",
        "_saved",
        "_saved_offset",
        "_saved_time",
        "active",
        "defer_deadline",
        "download",
        "install",
        "machine",
        "package",
        "pending",
        "slots",
    )

    def __init__(
        self, device: FirmwareHost, machine: FirmwareUpdateMachine, firmware_version: str
    ) -> None:
        self._device = device
        self.machine = machine
        self.package: bytearray | None = None
        self._pull: asyncio.Task[None] | None = None
        self._deferral: asyncio.TimerHandle | None = None
        self._push_timer: asyncio.TimerHandle | None = None
        self._corrupt_at: int | None = None
        self._link_drop_at: int | None = None
        #: The slot that runs, and what each slot holds ({"version", "kind"} or None).
        self.active = "a"
        self.slots: dict[str, dict[str, Any] | None] = {
            "a": {"version": firmware_version, "kind": "factory"},
            "b": None,
        }
        #: The downloaded image waiting in the other slot: slot, size, kind, version, sha256.
        self.pending: dict[str, Any] | None = None
        #: A transfer in progress: method, uri, offset, etag (hex), total.
        self.download: dict[str, Any] | None = None
        #: An install in progress: step ("verify" or "testing"), from, to.
        self.install: dict[str, Any] | None = None
        self.defer_deadline: float | None = None
        #: What the last saved ``state.json`` holds (a copy of its record without the
        #: volatile download offset and battery level; the offset and when it was saved): see
        #: :meth:`persist`.
        self._saved: dict[str, Any] | None = None
        self._saved_offset = 0
        self._saved_time = 0.0

    @property
    def download_slot(self) -> str:
        return other_slot(self.active)

    # -- machine -> store, events and I/O --------------------------------------------------
    def handle(self, event: Any) -> None:
        """Feed one event to the machine and run its actions (FotaError propagates).

        A block the device could not store raises :class:`StoreError`, :class:`PowerCut` or
        :class:`LinkDown` *after* all actions ran (the caller reports it).
        """
        actions = self.machine.handle(event, self._device.now())
        self.run(actions)

    def run(self, actions: list[Any]) -> None:
        dev = self._device
        error: Exception | None = None
        for action in actions:
            if isinstance(action, StateChanged):
                dev.emit("fw_state", state=int(action.state), path="/5/0/3")
            elif isinstance(action, ResultChanged):
                dev.emit("fw_result", result=int(action.result), path="/5/0/5")
            elif isinstance(action, StoreBlock):
                if error is None:
                    try:
                        self._push_block(action.block_number, action.data)
                    except (StoreError, PowerCut, LinkDown) as exc:
                        error = exc
            elif isinstance(action, DiscardImage):
                self._discard()
            elif isinstance(action, StartDownload):
                self._cancel_pull()
                self._start_transfer("pull", action.uri, None)
                self._pull = dev.spawn(self._download(action.uri))
            elif isinstance(action, AbortDownload):
                self._cancel_pull()
                self._stop_push_timer()
                self.download = None
            elif isinstance(action, StartInstall):
                dev.spawn(dev.install_and_reboot())
            elif isinstance(action, StartDeferral):
                self._start_deferral(action.max_period)
        if self.machine.state is not State.DOWNLOADED or self.machine.result is not (
            UpdateResult.DEFERRED
        ):
            self._stop_deferral()
        if self.machine.state is not State.DOWNLOADING:
            self._stop_push_timer()
        self.sync()
        self.persist()
        if error is not None:
            raise error

    def sync(self) -> None:
        """Copy the machine's view of /5/0 into the store (observers are notified)."""
        values: dict[int, Any] = {
            rid: dict(enumerate(value)) if isinstance(value, tuple) else value
            for rid, value in self.machine.resources().items()
        }
        version = None
        if self.pending is not None:
            version = self.pending.get("version")
        elif self.package:
            version = package_version(bytes(self.package[:256]))
        values[7] = version or ""  # PkgVersion, after the machine's resources
        self._device.set_internal_resources(5, 0, values)

    def reset_for_reboot(self) -> None:
        """Stop downloads and timers (the device is powering off); close the slot files."""
        self._cancel_pull()
        self._stop_deferral()
        self._stop_push_timer()
        self._device.storage.close()

    def _cancel_pull(self) -> None:
        if self._pull is not None and not self._pull.done():
            self._pull.cancel()
        self._pull = None

    # -- flash -----------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """What ``state.json`` holds (see :mod:`labkit.client.model`)."""
        m = self.machine
        return {
            "format": RECORD_FORMAT,
            "active": self.active,
            "slots": self.slots,
            "fw": {
                "state": int(m.state),
                "result": int(m.result),
                "uri": m.package_uri,
                "severity": int(m.severity),
                "max_defer_period": m.max_defer_period,
                "auto_upgrade": m.auto_upgrade,
                "last_state_change": m.last_state_change,
            },
            "pending": self.pending,
            "download": self.download,
            "install": self.install,
            "defer_deadline": self.defer_deadline,
            "battery": self._device.battery.level,
        }

    def persist(self, *, force: bool = False, sync: bool = False, unless_same: bool = False
                ) -> None:
        """Save ``state.json`` (atomically) when it would change; the factory image goes to
        slot a the first time.

        The record is saved when anything but the download offset and the battery level
        differs from the last saved one, when ``force``, and during a PULL as a resume
        checkpoint (see the module docstring): the stored offset went down (a restart), or
        :meth:`checkpoint_bytes` / :data:`CHECKPOINT_SECONDS` passed since the last save.
        ``sync`` flushes the record to disk before it replaces the old one; ``unless_same``
        does not rewrite a file that already holds exactly this record
        (:meth:`~labkit.client.model.FlashStorage.save`).
        """
        dev = self._device
        storage = dev.storage
        if not storage.materialised:
            force = True
            for slot in SLOTS:
                info = self.slots.get(slot)
                if info is not None and info.get("kind") == "factory":
                    storage.write_slot(slot, factory_image(str(info.get("version"))))
        record = self.record()
        dl = self.download
        offset = int(dl.get("offset", 0)) if dl else 0
        volatile = dict(record, battery=None, download=dl and dict(dl, offset=None))
        now = dev.now()
        # (compared as values, not as JSON text: persist runs after every PUSH block)
        if not force and volatile == self._saved:
            saved = self._saved_offset
            if dl is None or dl.get("method") != "pull" or offset == saved:
                return
            if (
                offset > saved
                and offset - saved < self.checkpoint_bytes()
                and now - self._saved_time < CHECKPOINT_SECONDS
            ):
                return
        storage.save(record, sync=sync, unless_same=unless_same)
        self._saved = _plain_copy(volatile)
        self._saved_offset = offset
        self._saved_time = now

    def checkpoint_bytes(self) -> int:
        """How many stored bytes of a PULL make a resume checkpoint due (module constants)."""
        total = (self.download or {}).get("total")
        share = int(total) // CHECKPOINT_SHARE if total else 0
        return min(CHECKPOINT_MAX, max(CHECKPOINT_MIN, share))

    def _checkpoint(self, offset: int) -> None:
        """A PULL block was stored: save the resume point if one is due (only the offset and
        the battery changed since the last save, so no comparison of whole records)."""
        saved = self._saved_offset
        if (
            saved < offset < saved + self.checkpoint_bytes()
            and self._device.now() - self._saved_time < CHECKPOINT_SECONDS
        ):
            return
        self.persist()

    def restore(self, record: dict[str, Any]) -> str | None:
        """Rebuild the in-memory state from ``state.json`` (after a power cut or reboot).

        Returns what the caller must continue: ``"install"`` (an install that had not swapped
        yet), ``"pull"`` (a download to resume) or None.
        """
        dev = self._device
        prev = self.machine
        self.reset_for_reboot()
        active = record.get("active")
        self.active = active if active in SLOTS else self.active
        slots = record.get("slots")
        if isinstance(slots, dict):
            self.slots = {slot: slots.get(slot) for slot in SLOTS}
        self.pending = record.get("pending")
        self.download = record.get("download")
        self.install = record.get("install")
        self.defer_deadline = record.get("defer_deadline")
        fw = record.get("fw") or {}
        state = State(int(fw.get("state", 0)))
        result = UpdateResult(int(fw.get("result", 0)))
        uri = str(fw.get("uri", ""))
        version = (self.slots.get(self.active) or {}).get("version")
        if isinstance(version, str):
            dev.store.set("/3/0/3", version)
        battery = record.get("battery")
        if isinstance(battery, int | float):
            dev.battery.level = float(battery)
            dev.store.set("/3/0/9", dev.battery.percent)
        todo: str | None = None
        self.package = None
        if state is State.UPDATING or self.install is not None:
            step = (self.install or {}).get("step", "verify")
            if step == "testing":
                # Swapped but never confirmed: MCUboot reverts the test image at this boot.
                self._revert("power was lost before the new image confirmed itself")
                state, result, uri = State.DOWNLOADED, UpdateResult.UPDATE_FAILED, ""
            else:
                state, result, todo = State.UPDATING, UpdateResult.INITIAL, "install"
        elif state is State.DOWNLOADING:
            dl = self.download or {}
            if dl.get("method") == "pull" and uri:
                keep = int(dl.get("offset", 0))
                dev.storage.begin_slot(self.download_slot, keep)
                self.package = bytearray(dev.storage.read_slot(self.download_slot, keep))
                dl["offset"] = len(self.package)
                result, todo = UpdateResult.INITIAL, "pull"
            else:
                # A push cannot continue after a power cut: the server's transfer is gone.
                self.download = None
                state, result, uri = State.IDLE, UpdateResult.CONNECTION_LOST, ""
                dev.emit("error", detail="power lost during a push: the package is incomplete")
        if state is State.DOWNLOADED and self.pending is not None:
            self.package = bytearray(
                dev.storage.read_slot(self.pending["slot"], int(self.pending["size"]))
            )
        elif state is State.DOWNLOADED:
            # Power went right after the last push block, before the download-end check
            # finished: for the server the transfer never completed.
            self.download = None
            state, result, uri = State.IDLE, UpdateResult.CONNECTION_LOST, ""
        if state is State.IDLE:
            self.pending = None
        if result is UpdateResult.DEFERRED and state is not State.DOWNLOADED:
            result = UpdateResult.INITIAL
        self.machine = FirmwareUpdateMachine.restore(
            state=state,
            result=result,
            package_uri=uri if state is State.DOWNLOADING or state is State.IDLE else "",
            last_state_change=fw.get("last_state_change"),
            severity=Severity(int(fw.get("severity", int(prev.severity)))),
            object_version=prev.object_version,
            protocols=prev.protocols,
            delivery=prev.delivery,
            max_defer_period=int(fw.get("max_defer_period", prev.max_defer_period)),
            auto_upgrade=bool(fw.get("auto_upgrade", prev.auto_upgrade)),
        )
        if result is UpdateResult.DEFERRED:
            deadline = self.defer_deadline or dev.now()
            self._arm_deferral(max(0.0, deadline - dev.now()))
        self.sync()
        # the record as booted (the slot truncated to its offset); most boots change nothing
        self.persist(force=True, unless_same=True)
        return todo

    def _discard(self) -> None:
        self.package = None
        self.pending = None
        self.download = None
        self._stop_push_timer()
        if self._device.storage.materialised:
            self._device.storage.erase(self.download_slot)

    # -- transfers (push and pull) -----------------------------------------------------------
    def _start_transfer(self, method: str, uri: str, total: int | None) -> None:
        dev = self._device
        self.package = bytearray()
        self.pending = None
        self.download = {"method": method, "uri": uri, "offset": 0, "etag": None, "total": total}
        self._corrupt_at = None
        self._link_drop_at = None
        dev.storage.begin_slot(self.download_slot, 0)

    def _check_total(self, total: int | None) -> None:
        """Size checks and faults at the start of a transfer (first block)."""
        dev = self._device
        if "no-flash" in dev.faults:
            dev.emit("fault", detail="no-flash")
            raise StoreError("no-flash: the download slot is full", UpdateResult.NOT_ENOUGH_FLASH)
        if total is not None and total > dev.flash_size:
            raise StoreError(
                f"package of {total} bytes > flash slot of {dev.flash_size}",
                UpdateResult.NOT_ENOUGH_FLASH,
            )
        if "no-ram" in dev.faults:
            dev.emit("fault", detail="no-ram")
            raise StoreError("no-ram: no buffer for a download block", UpdateResult.OUT_OF_RAM)

    def _plan_faults(self, block_len: int) -> None:
        dev = self._device
        total = (self.download or {}).get("total")
        blocks = -(-int(total) // block_len) if total and block_len else None
        dev.faults.plan_power_cut(blocks)
        if "corrupt-in-flash" in dev.faults and self._corrupt_at is None:
            self._corrupt_at = dev.faults.corrupt_offset(int(total) if total else 4 * block_len)
        if "link-drop" in dev.faults and self._link_drop_at is None:
            self._link_drop_at = dev.faults.link_drop_block(blocks)

    def _push_block(self, num: int, data: bytes) -> None:
        dev = self._device
        if num == 0 or self.download is None:
            self._start_transfer("push", "", dev.push_size1)
            self._check_total(dev.push_size1)
        self._accept_block(num, data)
        self._arm_push_timer()

    def call_off(self, fault: str) -> None:
        """Call off what fault ``fault`` planned for the transfer under way (``link-drop``:
        the drop at a block; ``corrupt-in-flash``: the bit flip); other names do nothing."""
        if fault == "link-drop":
            self._link_drop_at = None
        elif fault == "corrupt-in-flash":
            self._corrupt_at = None

    def _pull_begin(self, total: int | None, etag: bytes | None, offset: int) -> None:
        dl = self.download
        if dl is None:
            raise StoreError("no transfer in progress", UpdateResult.CONNECTION_LOST)
        if offset < int(dl.get("offset", 0)) or offset == 0:
            keep = offset
            self._device.storage.begin_slot(self.download_slot, keep)
            if self.package is None:
                self.package = bytearray()
            del self.package[keep:]
            dl["offset"] = keep
        dl["etag"] = etag.hex() if etag else None
        if total is not None:
            dl["total"] = int(total)
        if offset == 0:
            self._check_total(total)
        self.persist()  # a restart (lower offset) or a new ETag is saved before new bytes

    def _accept_block(self, num: int, data: bytes) -> None:
        """Store one block in flash (and RAM copy); faults strike here."""
        dev = self._device
        dl = self.download
        if dl is None or self.package is None:
            raise StoreError("no transfer in progress", UpdateResult.CONNECTION_LOST)
        offset = int(dl["offset"])
        if len(data) > dev.ram:
            raise StoreError(
                f"block of {len(data)} bytes > RAM buffer of {dev.ram}", UpdateResult.OUT_OF_RAM
            )
        if offset + len(data) > dev.flash_size:
            raise StoreError(
                f"{offset + len(data)} bytes > flash slot of {dev.flash_size}",
                UpdateResult.NOT_ENOUGH_FLASH,
            )
        if offset == 0:
            self._plan_faults(len(data))
        flash = data
        at = self._corrupt_at
        if at is not None and offset <= at < offset + len(data):
            flipped = bytearray(data)
            flipped[at - offset] ^= 0x10
            flash = bytes(flipped)
            dev.emit("fault", detail="corrupt-in-flash", bytes=at)
        dev.storage.append(self.download_slot, offset, flash)
        self.package += data
        dl["offset"] = offset + len(data)
        level = dev.battery.percent
        if dev.battery.drain_block(len(data)) != level:
            dev.set_internal("/3/0/9", dev.battery.percent)
        if dl.get("method") == "pull":
            scheme = str(dl["uri"]).partition(":")[0]
            dev.emit(
                "block", method="pull", protocol=scheme, path=dl["uri"], block=num, bytes=len(data)
            )
            self._checkpoint(offset + len(data))
        if dev.faults.cut_now("block", num):
            raise PowerCut(f"power lost after block {num}")
        if self._link_drop_at is not None and num >= self._link_drop_at:
            self._link_drop_at = None
            raise LinkDown(f"link lost after block {num}")

    def finish_download(self) -> UpdateResult | None:
        """The download-end check (package type); returns a failure result or None."""
        dev = self._device
        data = bytes(self.package or b"")
        kind = classify_package(data, accept_lab_packages=dev.bootloader.accept_lab_packages)
        if kind is None and dev.installer is None:
            dev.emit("error", detail="not a firmware image (no MCUboot magic): Result 6")
            return UpdateResult.UNSUPPORTED_PACKAGE_TYPE
        self.pending = {
            "slot": self.download_slot,
            "size": len(data),
            "kind": kind.kind if kind else "raw",
            "version": kind.version if kind else None,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        self.download = None
        self.sync()
        # The image's bytes reach the disk before the record that names them complete.
        dev.storage.finish_slot(self.pending["slot"], sync=True)
        self.persist(force=True, sync=True)
        return None

    def _arm_push_timer(self) -> None:
        self._stop_push_timer()
        dev = self._device
        loop = asyncio.get_running_loop()

        def stalled() -> None:
            self._push_timer = None
            if self.machine.state is State.DOWNLOADING and self.download is not None:
                dev.emit("error", detail=f"push stalled for {dev.push_idle_timeout} s: Result 4")
                dev.guarded(self.handle, DownloadFailed(result=UpdateResult.CONNECTION_LOST))

        self._push_timer = loop.call_later(dev.wall(dev.push_idle_timeout), stalled)

    def _stop_push_timer(self) -> None:
        if self._push_timer is not None:
            self._push_timer.cancel()
            self._push_timer = None

    # -- deferral --------------------------------------------------------------------------
    def _start_deferral(self, max_period: float) -> None:
        dev = self._device
        delay = float(max_period)
        if "defer" in dev.faults:
            dev.emit("fault", detail="defer")
            delay = min(delay, dev.fault_timing.defer_s)
        self.defer_deadline = dev.now() + delay
        self._arm_deferral(delay)

    def _arm_deferral(self, delay: float) -> None:
        self._stop_deferral()
        loop = asyncio.get_running_loop()

        def ended() -> None:
            self._deferral = None
            self.defer_deadline = None
            self._device.guarded(self.handle, DeferralEnded())

        self._deferral = loop.call_later(self._device.wall(delay), ended)

    def _stop_deferral(self) -> None:
        if self._deferral is not None:
            self._deferral.cancel()
            self._deferral = None

    # -- PULL ------------------------------------------------------------------------------
    async def _download(self, uri: str) -> None:
        dev = self._device
        scheme = uri.partition(":")[0].lower()
        protocol = ProtocolSupport.from_scheme(scheme)
        sink = _PullSink(self)

        def on_retry(detail: str) -> None:
            dev.emit("note", method="pull", protocol=scheme, path=uri, detail=detail)

        dl = self.download or {}
        complete = dl.get("total") is not None and int(dl.get("offset", 0)) >= int(dl["total"])
        try:
            if complete:
                pass  # resumed after a power cut that came right after the last block
            elif protocol in (ProtocolSupport.COAP, ProtocolSupport.COAPS):
                ctx = dev.coap_context
                if ctx is None:
                    raise DownloadError("device is offline", UpdateResult.CONNECTION_LOST)
                await coap_download(
                    ctx,
                    uri,
                    szx=dev.download_szx,
                    request_timeout=dev.request_wall(),
                    sink=sink,
                    retries=dev.download_retries,
                    retry_delay=dev.wall(dev.retry_delay),
                    on_retry=on_retry,
                    transport_tuning=dev.transport_tuning,
                )
            elif protocol in (ProtocolSupport.HTTP, ProtocolSupport.HTTPS):
                await http_download(
                    uri,
                    sink,
                    timeout=dev.request_wall(),
                    block_size=max(1 << (dev.download_szx + 4), min(dev.ram, HTTP_PIECE_MAX)),
                    retries=dev.download_retries,
                    retry_delay=dev.wall(dev.retry_delay),
                    on_retry=on_retry,
                    ssl_context=dev.tls_context() if protocol is ProtocolSupport.HTTPS else None,
                    deadline=dev.wall(HTTP_DOWNLOAD_DEADLINE_S),
                )
            else:
                raise DownloadError(
                    f"no downloader for {scheme}", UpdateResult.UNSUPPORTED_PROTOCOL
                )
        except asyncio.CancelledError:
            raise
        except PowerCut:
            self._pull = None
            dev.spawn(dev.power_loss())
            return
        except LinkDown as exc:
            dev.emit("fault", detail="link-drop", path=uri)
            dev.link_down_for(dev.fault_timing.link_drop_s)
            # Every GET now times out; the device gives up once its retries are spent.
            tries = dev.download_retries + 1
            wait = tries * dev.request_timeout + dev.download_retries * dev.retry_delay
            await asyncio.sleep(dev.wall(min(dev.fault_timing.link_drop_s, wait)))
            result = UpdateResult.CONNECTION_LOST
            detail = f"{exc}: no answer to {tries} tries"
        except Exception as exc:  # DownloadError, StoreError, or a bug: never stay in 1
            result = getattr(exc, "result", UpdateResult.CONNECTION_LOST)
            detail = str(exc) or repr(exc)
        else:
            self._pull = None
            failure = self.finish_download()
            if failure is None:
                dev.guarded(self.handle, DownloadCompleted())
                return
            result, detail = failure, "the package is not a firmware image"
        self._pull = None
        dev.emit("error", path=uri, method="pull", detail=detail)
        if self.machine.state is State.DOWNLOADING:
            dev.guarded(self.handle, DownloadFailed(result=result))

    def resume_pull(self) -> None:
        """Continue a download restored from flash (after a power cut)."""
        uri = self.machine.package_uri
        self._cancel_pull()
        offset = (self.download or {}).get("offset", 0)
        self._device.emit(
            "note", method="pull", path=uri, detail=f"resuming the download at byte {offset}"
        )
        self._pull = self._device.spawn(self._download(uri))

    # -- install (the bootloader's part) ----------------------------------------------------
    def run_install(self) -> bool:
        """Verify, swap, self-test and confirm the pending image, persisting every step.

        Returns False when power is lost on the way (the caller power-cycles the device; the
        next boot continues from ``state.json``). The outcome lands in the machine: IDLE/1
        with the new /3/0/3, IDLE/5 (never booted), or IDLE/8 (rolled back).
        """
        dev = self._device
        faults = dev.faults
        if self.install is None:
            self.install = {"step": "verify", "from": self.active, "to": self.download_slot}
            self.persist()
        inst = self.install
        if inst["step"] == "verify":
            if faults.cut_now("install", 0):
                return False
            pending = self.pending or {}
            data = dev.storage.read_slot(inst["to"], int(pending.get("size", 0)) or None)
            if dev.installer is not None:
                return self._run_installer(data)
            check = dev.bootloader.verify(data, sha256=pending.get("sha256"))
            if not check.ok:
                dev.emit(
                    "error",
                    detail=f"bootloader: {check.reason} {check.detail}".strip()
                    + "; the image is not booted",
                )
                self.install = None
                dev.guarded(
                    self.handle,
                    InstallFailed(result=UpdateResult.INTEGRITY_CHECK_FAILURE, image_usable=False),
                )
                return True
            if faults.cut_now("install", 1):
                return False
            old = self.slots.get(inst["from"]) or {}
            version = check.version or f"{old.get('version', '0')}+1"
            self.slots[inst["to"]] = {"version": version, "kind": pending.get("kind", LAB)}
            self.active = inst["to"]
            inst["step"] = "testing"
            dev.store.set("/3/0/3", version)
            self.persist()
        if faults.cut_now("install", 2):
            return False
        if "boot-fail" in faults:
            dev.emit("fault", detail="boot-fail")
            self._revert("the new image failed its self-test")
            dev.guarded(
                self.handle, InstallFailed(result=UpdateResult.UPDATE_FAILED, image_usable=False)
            )
            return True
        if faults.cut_now("install", 3):
            return False
        self._confirm()
        return True

    def _revert(self, why: str) -> None:
        dev = self._device
        inst = self.install or {}
        self.active = str(inst.get("from", self.active))
        self.install = None
        version = (self.slots.get(self.active) or {}).get("version")
        if isinstance(version, str):
            dev.store.set("/3/0/3", version)
        dev.emit("note", detail=f"bootloader: rolled back to slot {self.active} ({why})")

    def _confirm(self, version: str | None = None) -> None:
        dev = self._device
        prev = self.machine
        self.install = None
        self.pending = None
        self.package = None
        self.download = None
        if version is not None:
            self.slots[self.active] = {"version": version, "kind": "raw"}
            dev.store.set("/3/0/3", version)
        new = dev.firmware_version
        self.machine = FirmwareUpdateMachine.restore(
            state=State.IDLE,
            result=UpdateResult.SUCCESS,
            last_state_change=dev.now(),
            severity=prev.severity,
            object_version=prev.object_version,
            protocols=prev.protocols,
            delivery=prev.delivery,
            max_defer_period=prev.max_defer_period,
            auto_upgrade=prev.auto_upgrade,
        )
        dev.battery.drain_install()
        dev.store.set("/3/0/9", dev.battery.percent)
        dev.emit("fw_state", state=int(State.IDLE), path="/5/0/3")
        dev.emit("fw_result", result=int(UpdateResult.SUCCESS), path="/5/0/5")
        dev.emit("fw_version", fw_version=new, path="/3/0/3")
        self.sync()
        self.persist()

    def _run_installer(self, data: bytes) -> bool:
        """A custom installer decides (no bootloader checks)."""
        dev = self._device
        old = dev.firmware_version
        assert dev.installer is not None
        image = bytes(self.package) if self.package is not None else data
        try:
            outcome = dev.installer(image)
        except Exception as exc:
            dev.emit("error", detail=f"installer failed: {exc!r}")
            outcome = InstallOutcome(success=False, result=UpdateResult.UPDATE_FAILED)
        if outcome.success:
            self.active = (self.install or {}).get("to", self.download_slot)
            self._confirm(outcome.new_version or f"{old}+1")
        else:
            self.install = None
            dev.guarded(
                self.handle,
                InstallFailed(result=outcome.result, image_usable=outcome.image_usable),
            )
        return True


def _plain_copy(value: Any) -> Any:
    """A deep copy of a JSON-like record (dicts, lists, tuples of immutable scalars): what
    ``copy.deepcopy`` makes of it, without its memo bookkeeping (one per saved record)."""
    if isinstance(value, dict):
        return {k: _plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain_copy(v) for v in value)
    if value is None or isinstance(value, str | int | float | bytes):
        return value
    return copy.deepcopy(value)


def factory_image(version: str) -> bytes:
    """What slot a holds when the device leaves the factory (a lab package)."""
    return PACKAGE_MAGIC + version.encode("utf-8") + b"\nfactory image\n"
