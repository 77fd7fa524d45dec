"""The simulated device's /5 Firmware Update glue: PUSH blocks, PULL downloads, install.

This module connects the pure :class:`~labkit.lwm2m.fota.FirmwareUpdateMachine` (which decides
every /5 state and result, digest 1.4) to the device's I/O:

* PUSH (digest 1.8): every Block1 block of ``PUT /5/0/0`` becomes a ``WritePackage`` event;
  the machine's ``StoreBlock`` actions append to an in-memory image (a later issue adds a flash
  model). Content formats 42 (octet-stream), 1544 (its legacy number) and 11542 (a package
  wrapped in one TLV resource, as Leshan's generic Write sends it -- digest 9.4) are accepted;
  the TLV header is stripped from the first block.
* PULL (digest 7.2): a ``StartDownload`` action starts a ``coap://`` Block2 download through the
  device's own CoAP context, block by block (``block`` events), with an ETag check; failures
  map to ``DownloadFailed`` (4.04 or an unusable URI -> 7 Invalid URI, timeouts and other
  errors -> 4 Connection Lost, as Anjay does; digest 1.7).
* Install: ``StartInstall`` asks the device to reboot into the new image
  (:meth:`SimulatedDevice._install_and_reboot`); the *installer* decides the outcome.

The lab package convention (used by the default installer until MCUboot images arrive): a
package whose first line is ``LABKIT-FW <version>\\n`` installs firmware version ``<version>``;
any other non-empty package installs ``<old version>+1``.

It never decides a transition itself; it translates actions into I/O and I/O into events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiocoap
from aiocoap.optiontypes import BlockOption

from labkit.lwm2m.errors import DecodeError
from labkit.lwm2m.fota import (
    AbortDownload,
    DeferralEnded,
    DiscardImage,
    DownloadCompleted,
    DownloadFailed,
    FirmwareUpdateMachine,
    ResultChanged,
    StartDeferral,
    StartDownload,
    StartInstall,
    StateChanged,
    StoreBlock,
)
from labkit.lwm2m.objects import ProtocolSupport, UpdateResult

if TYPE_CHECKING:
    from labkit.client.device import SimulatedDevice

__all__ = [
    "PACKAGE_MAGIC",
    "InstallOutcome",
    "coap_download",
    "default_installer",
    "package_version",
    "strip_tlv_header",
]

log = logging.getLogger(__name__)

#: First-line marker of a lab package: ``LABKIT-FW 2.0.0\n`` then anything.
PACKAGE_MAGIC = b"LABKIT-FW "


@dataclass(frozen=True, slots=True)
class InstallOutcome:
    """What the bootloader made of a package after the post-Update reboot.

    Attributes
    ----------
    success:
        True when the device runs the new image.
    new_version:
        The firmware version (/3/0/3) after a success; None lets the device derive one
        (``<old>+1``).
    result:
        Update Result to report: SUCCESS, UPDATE_FAILED (8) or INTEGRITY_CHECK_FAILURE (5).
    image_usable:
        On failure: True keeps the image (State 2 again), False discards it (State 0).
    """

    success: bool
    new_version: str | None = None
    result: UpdateResult = UpdateResult.SUCCESS
    image_usable: bool = True


def package_version(package: bytes) -> str | None:
    """The version announced by a lab package's first line, or None."""
    if not package.startswith(PACKAGE_MAGIC):
        return None
    end = package.find(b"\n", 0, 256)
    if end < 0:
        return None
    try:
        text = package[len(PACKAGE_MAGIC) : end].decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return text or None


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


class DownloadError(Exception):
    """A PULL download failed; ``result`` is the Update Result to report."""

    def __init__(self, message: str, result: UpdateResult) -> None:
        super().__init__(message)
        self.result = result


async def coap_download(
    ctx: aiocoap.Context,
    uri: str,
    *,
    szx: int = 6,
    request_timeout: float = 10.0,
    on_block: Callable[[int, int], None] | None = None,
) -> bytes:
    """GET ``uri`` block by block (RFC 7959 Block2) through ``ctx``.

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

    Raises
    ------
    DownloadError
        Result 7 for an unusable URI or 4.04, Result 4 for timeouts, network errors, other
        error codes and an image that changed (ETag) mid-transfer.
    """
    data = bytearray()
    etag: bytes | None = None
    num = 0
    while True:
        try:
            msg = aiocoap.Message(code=aiocoap.GET, uri=uri)
        except (ValueError, TypeError) as exc:
            raise DownloadError(f"bad URI {uri!r}: {exc}", UpdateResult.INVALID_URI) from None
        msg.opt.block2 = BlockOption.BlockwiseTuple(num, False, szx)
        try:
            request = ctx.request(msg, handle_blockwise=False)
            resp = await asyncio.wait_for(request.response, request_timeout)
        except TimeoutError:
            raise DownloadError("repository did not answer", UpdateResult.CONNECTION_LOST) from None
        except aiocoap.error.ResolutionError as exc:
            raise DownloadError(f"cannot resolve: {exc}", UpdateResult.INVALID_URI) from None
        except aiocoap.error.Error as exc:
            raise DownloadError(f"network error: {exc}", UpdateResult.CONNECTION_LOST) from None
        if resp.code == aiocoap.NOT_FOUND:
            raise DownloadError("repository answered 4.04", UpdateResult.INVALID_URI)
        if not resp.code.is_successful():
            raise DownloadError(
                f"repository answered {resp.code.dotted}", UpdateResult.CONNECTION_LOST
            )
        block = resp.opt.block2
        if block is None:
            # The whole image in one response (small image, or a server without Block2).
            data[:] = resp.payload
            if on_block is not None:
                on_block(0, len(resp.payload))
            return bytes(data)
        if num == 0:
            etag = resp.opt.etag
        elif resp.opt.etag != etag:
            raise DownloadError("image changed during download", UpdateResult.CONNECTION_LOST)
        if block.start != len(data):
            raise DownloadError("repository sent an unexpected block", UpdateResult.CONNECTION_LOST)
        data += resp.payload
        if on_block is not None:
            on_block(block.block_number, len(resp.payload))
        if not block.more:
            return bytes(data)
        szx = block.size_exponent
        num = len(data) >> (szx + 4)


class FirmwareAgent:
    """Runs the /5 machine's actions for one device and keeps /5/0 in its store current.

    Parameters
    ----------
    device:
        The owning :class:`~labkit.client.device.SimulatedDevice` (its store, clock, event
        sink, CoAP context and task spawner are used).
    machine:
        The state machine.
    """

    __slots__ = ("_deferral", "_device", "_pull", "machine", "package")

    def __init__(self, device: SimulatedDevice, machine: FirmwareUpdateMachine) -> None:
        self._device = device
        self.machine = machine
        self.package: bytearray | None = None
        self._pull: asyncio.Task[None] | None = None
        self._deferral: asyncio.TimerHandle | None = None

    # -- machine -> store, events and I/O --------------------------------------------------
    def handle(self, event: Any) -> None:
        """Feed one event to the machine and run its actions (FotaError propagates)."""
        actions = self.machine.handle(event, self._device.now())
        self.run(actions)

    def run(self, actions: list[Any]) -> None:
        dev = self._device
        for action in actions:
            if isinstance(action, StateChanged):
                dev.emit("fw_state", state=int(action.state), path="/5/0/3")
            elif isinstance(action, ResultChanged):
                dev.emit("fw_result", result=int(action.result), path="/5/0/5")
            elif isinstance(action, StoreBlock):
                if action.block_number == 0 or self.package is None:
                    self.package = bytearray()
                self.package += action.data
            elif isinstance(action, DiscardImage):
                self.package = None
            elif isinstance(action, StartDownload):
                self._cancel_pull()
                self.package = bytearray()
                self._pull = dev.spawn(self._download(action.uri))
            elif isinstance(action, AbortDownload):
                self._cancel_pull()
            elif isinstance(action, StartInstall):
                dev.spawn(dev._install_and_reboot())
            elif isinstance(action, StartDeferral):
                self._start_deferral(action.max_period)
        self.sync()

    def sync(self) -> None:
        """Copy the machine's view of /5/0 into the store (observers are notified)."""
        dev = self._device
        for rid, value in self.machine.resources().items():
            path = f"/5/0/{rid}"
            if dev.store.exists(path):
                dev._set_internal(
                    path, dict(enumerate(value)) if isinstance(value, tuple) else value
                )
        if dev.store.exists("/5/0/7"):
            version = package_version(bytes(self.package[:256])) if self.package else None
            dev._set_internal("/5/0/7", version or "")

    def reset_for_reboot(self) -> None:
        """Stop downloads and timers (the device is powering off)."""
        self._cancel_pull()
        if self._deferral is not None:
            self._deferral.cancel()
            self._deferral = None

    def _cancel_pull(self) -> None:
        if self._pull is not None and not self._pull.done():
            self._pull.cancel()
        self._pull = None

    def _start_deferral(self, max_period: float) -> None:
        if self._deferral is not None:
            self._deferral.cancel()
        loop = asyncio.get_running_loop()

        def ended() -> None:
            self._deferral = None
            self._device.guarded(self.handle, DeferralEnded())

        self._deferral = loop.call_later(max(0.0, float(max_period)), ended)

    # -- PULL ------------------------------------------------------------------------------
    async def _download(self, uri: str) -> None:
        dev = self._device
        scheme = uri.partition(":")[0].lower()
        protocol = ProtocolSupport.from_scheme(scheme)

        def on_block(num: int, size: int) -> None:
            dev.emit("block", method="pull", protocol=scheme, path=uri, block=num, bytes=size)

        try:
            if protocol is not ProtocolSupport.COAP:
                raise DownloadError(
                    f"no downloader for {scheme}", UpdateResult.UNSUPPORTED_PROTOCOL
                )
            ctx = dev._ctx
            if ctx is None:
                raise DownloadError("device is offline", UpdateResult.CONNECTION_LOST)
            image = await coap_download(
                ctx, uri, szx=dev.pull_szx, request_timeout=dev.request_timeout, on_block=on_block
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # DownloadError, or a bug: never stay in DOWNLOADING
            result = exc.result if isinstance(exc, DownloadError) else UpdateResult.CONNECTION_LOST
            self._pull = None
            dev.emit("error", path=uri, method="pull", detail=str(exc) or repr(exc))
            dev.guarded(self.handle, DownloadFailed(result=result))
            return
        self._pull = None
        self.package = bytearray(image)
        dev.guarded(self.handle, DownloadCompleted())
