"""Update one device: check its /5, deliver the package (PUSH or PULL), Execute, verify.

``fota/`` decides what to do next; the server only translates. :func:`update` performs the
four steps of the lesson (``seed/``) against one registered device, through the lab's
:class:`~labkit.server.LwM2MServer`, and returns an :class:`~labkit.fota.outcome.Outcome`:

1. **Check** -- read /3/0/3 (firmware version), /5/0/8 (Protocol Support; 4.04 = absent = CoAP
   assumed) and /5/0/9 (Delivery Method); refuse, before sending anything to /5, a scheme the
   device did not list or a method its Delivery Method forbids (:mod:`labkit.fota.plan`).
   Write-Attributes ``pmin=0`` on /5/0/3 and /5/0/5 (a 4.xx is ignored: not every client
   supports it) and observe both. A device left in DOWNLOADING/DOWNLOADED by an earlier
   attempt is reset first (empty URI / NUL package).
2. **Deliver** -- PUSH: Block1 ``PUT /5/0/0`` (Content-Format 42) with the chosen block size;
   the no-progress timeout bounds every block, so a long transfer never times out while it
   moves. PULL: the package is added to a :class:`~labkit.repo.FirmwareRepository` (the one
   given, or one started for the run) and its ``coap://`` or ``http://`` URI written to
   /5/0/1; progress is State changes plus the bytes the repository serves. Then wait for
   DOWNLOADED.
3. **Update** -- Execute /5/0/2 (expect 2.04), then wait for either the post-update
   re-registration (new port, the old observations are gone: observe again and read /5/0/3,
   /5/0/5 and /3/0/3 from the new registration) or a final State/Result without a reboot.
4. **Verify** -- success iff Result 1, with a "suspicious" reason when /3/0/3 did not change.
   Zephyr and the Wakaama example do not persist /5 across the reboot and come back as 0/0:
   then success is judged by /3/0/3 changing to the package's version (when the package
   announces one, see :func:`labkit.fota.plan.package_version`), or at least changing.

Waiting never relies on notifications alone: they can be lost, coalesced (two State changes
seen as one) or never sent. Every wait listens to the observations *and* polls (reads /5/0/3
and /5/0/5) whenever no notification arrived within the poll interval. Timeouts follow
progress: a wait ends after ``timeout`` seconds *without progress* (``reboot_timeout`` or
more while the device reboots), and a device that never progresses ends in an Outcome
"stuck in state X", never in a hang. ``cancel_after`` executes Cancel (/5/0/10, obj >= 1.1; a
reset on obj 1.0) that many seconds into the download and expects Result 10.

No verdict from a stale view: State and Result are two observations with no ordering
guarantee (real clients notify them in either order, coalesce, delay or drop one, or repeat an
old value). Whenever the latest values suggest a verdict (the next stage, a final result, or a
timeout), State and then Result are read (bounded by a short timeout) and the verdict is taken
on what was read; a State 0 without a failure code during a download is given one more poll
interval for a late Result. Each value keeps its provenance (:data:`SOURCES`: ``notification``,
``poll``, ``read``, ``read-after-state``), carried by the Outcome (``state_source``,
``result_source``, ``confirmed``) and by the final ``verdict`` event. The same waits serve
campaigns (one :func:`update` per attempt, retries included) and the re-registration wait.

Events: the server already records every request, response, notification and the typed
``fw_state``/``fw_result``/``fw_version`` rows; the orchestrator adds ``note`` rows
(``source="server"``) for its stages ("stage download started", "waiting for
re-registration", the outcome) with ``method`` and ``protocol`` set, and one ``verdict`` row
(``state``, ``result``, ``reason`` = ``state=<source> result=<source>``, ``detail``).

Clocks: durations and timestamps of the Outcome use ``clock`` (the lab's clock); timeouts use
the event loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

from labkit.events import Event, EventSink, discard
from labkit.fota.outcome import Outcome
from labkit.fota.plan import (
    Capabilities,
    Step,
    Verdict,
    capabilities,
    fw_object_version,
    interpret_cancel,
    interpret_download,
    interpret_update,
    package_version,
    plan_delivery,
    validate_request,
)
from labkit.lwm2m.objects import DeliveryMethod, State, UpdateResult
from labkit.lwm2m.paths import Path
from labkit.server import (
    DeviceNotRegistered,
    DeviceProxy,
    DeviceUnreachable,
    LwM2MServer,
    Observation,
    Registration,
    RequestFailed,
    RequestTimeout,
    Response,
    ServerError,
)

_WALL_TIME = time.time  # update()'s default clock


def _default_clock() -> Callable[[], float]:
    from labkit.virtual.loop import current_clock

    return current_clock()


__all__ = [
    "NOTIFICATION",
    "POLL",
    "READ",
    "READ_AFTER_STATE",
    "SOURCES",
    "cancel",
    "reset",
    "update",
]

log = logging.getLogger(__name__)

_VERSION = Path.of(3, 0, 3)
_PACKAGE = Path.of(5, 0, 0)
_URI = Path.of(5, 0, 1)
_UPDATE = Path.of(5, 0, 2)
_STATE = Path.of(5, 0, 3)
_RESULT = Path.of(5, 0, 5)
_PROTOCOLS = Path.of(5, 0, 8)
_DELIVERY = Path.of(5, 0, 9)
_CANCEL = Path.of(5, 0, 10)

#: Update Results only an install (the reboot after Execute) reports.
_INSTALL_RESULTS = frozenset(
    {UpdateResult.SUCCESS, UpdateResult.INTEGRITY_CHECK_FAILURE, UpdateResult.UPDATE_FAILED}
)

#: What the device does not answer to (or answers wrongly): errors a wait survives.
_DEVICE_ERRORS = (
    RequestTimeout,
    DeviceUnreachable,
    DeviceNotRegistered,
    RequestFailed,
    ServerError,
)

#: Where a State or Result value came from (the provenance an Outcome and a verdict row carry):
#: an Observe notification; a poll (a read because notifications were overdue); a read (the
#: first answer to an Observe, a read after an error or a re-registration); a read taken just
#: before a verdict, after the State or Result that suggested it (``read-after-state``).
NOTIFICATION = "notification"
POLL = "poll"
READ = "read"
READ_AFTER_STATE = "read-after-state"
SOURCES = (NOTIFICATION, POLL, READ, READ_AFTER_STATE)

StageCallback = Callable[[str, str], None]
ProgressCallback = Callable[[int, int], None]


class _End(Exception):
    """Internal: the attempt is over; ``outcome`` says how."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class _PushStopped(Exception):
    """Internal: raised from the Block1 progress callback to stop a PUSH between blocks."""


class _Signal:
    """Why :meth:`_Run._wait` returned without a verdict."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_TIMEOUT = _Signal("no progress")
_REREGISTERED = _Signal("re-registered")
_UNTIL = _Signal("until")


# ---------------------------------------------------------------------------------------------
# Public helpers
# ---------------------------------------------------------------------------------------------


async def cancel(server: LwM2MServer, endpoint: str, *, timeout: float = 10.0) -> Response:
    """Execute Cancel (/5/0/10, obj >= 1.1): DOWNLOADING/DOWNLOADED -> IDLE with Result 10.

    Returns the device's answer (4.05 outside DOWNLOADING/DOWNLOADED, 4.04 on obj 1.0).
    """
    return await server.device(endpoint).execute(_CANCEL, timeout=timeout)


async def reset(
    server: LwM2MServer, endpoint: str, method: str = "push", *, timeout: float = 10.0
) -> Response:
    """Reset the device's /5 state machine to IDLE, Result 0 (digest T9).

    ``method="push"`` writes a single NUL byte to /5/0/0 (the one reset payload Anjay accepts
    in every state, pitfall 5); ``method="pull"`` writes an empty Package URI to /5/0/1.
    Refused with 4.05 while UPDATING.
    """
    proxy = server.device(endpoint)
    if method == "push":
        return await proxy.write(_PACKAGE, b"\x00", content_format=42, timeout=timeout)
    if method == "pull":
        return await proxy.write(_URI, "", timeout=timeout)
    raise ValueError(f"method must be 'push' or 'pull', not {method!r}")


def _load_package(package: bytes | bytearray | memoryview | str | os.PathLike[str]) -> bytes:
    if isinstance(package, bytes | bytearray | memoryview):
        data = bytes(package)
    else:
        data = FsPath(package).read_bytes()
    if not data:
        raise ValueError(
            "the package is empty: an empty (or NUL) package is the /5 reset, not an image"
        )
    return data


def _repo_name(endpoint: str, data: bytes) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", endpoint)[:40] or "device"
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}.bin"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str | bytes):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _state_name(value: int | None) -> str:
    if value is None:
        return "unknown"
    try:
        return State(value).name
    except ValueError:
        return str(value)


# ---------------------------------------------------------------------------------------------
# update()
# ---------------------------------------------------------------------------------------------


async def update(
    server: LwM2MServer,
    endpoint: str,
    package: bytes | bytearray | memoryview | str | os.PathLike[str],
    *,
    method: str = "push",
    protocol: str = "coap",
    block_size: int = 1024,
    repository: Any = None,
    timeout: float = 60.0,
    overall_timeout: float | None = None,
    register_timeout: float | None = None,
    reboot_timeout: float = 30.0,
    cancel_after: float | None = None,
    expected_version: str | None = None,
    reset_busy: bool = True,
    poll_interval: float | None = None,
    on_stage: StageCallback | None = None,
    on_progress: ProgressCallback | None = None,
    on_event: EventSink | None = None,
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """Update the firmware of ``endpoint`` with ``package`` and report how it went.

    Parameters
    ----------
    server:
        A started :class:`~labkit.server.LwM2MServer`.
    endpoint:
        The device's endpoint name; if it is not registered yet, wait ``register_timeout``.
    package:
        The image: bytes, or a path to a file. Any bytes are delivered as they are.
    method, protocol:
        ``"push"`` (Block1 ``PUT /5/0/0``, always CoAP) or ``"pull"`` (Package URI) over
        ``"coap"`` or ``"http"``.
    block_size:
        Block1 block size of a PUSH (16..1024).
    repository:
        A started :class:`~labkit.repo.FirmwareRepository` for PULL; None starts one on the
        server's host (ephemeral ports) for the run.
    timeout:
        The no-progress timeout (s): every wait ends after this long without a block, a
        State/Result change or served repository bytes. Also the bound of each request.
    overall_timeout:
        Optional bound (s) of the whole attempt.
    register_timeout:
        How long to wait for the device to register (default: ``timeout``).
    reboot_timeout:
        No-progress bound while the device installs and reboots (the larger of this and
        ``timeout`` applies).
    cancel_after:
        Cancel (/5/0/10; a reset on obj 1.0) this many seconds after the download started.
    expected_version:
        The firmware version the package installs; default: what the package announces
        (``LABKIT-FW <v>`` first line or MCUboot header), else unknown.
    reset_busy:
        Reset a device found in DOWNLOADING/DOWNLOADED before starting (else refuse).
    poll_interval:
        Read State/Result when no notification arrived for this long (default
        ``max(1, timeout / 10)``).
    on_stage:
        ``on_stage(stage, detail)`` at each stage and notable step: register, check,
        download, cancel, update, verify (after the re-registration), done.
    on_progress:
        ``on_progress(bytes_done, total)`` for PUSH blocks and PULL bytes served.
    on_event:
        Sink for the orchestrator's ``note`` rows (default: the server's own sink).
    clock:
        The lab's clock for the Outcome's timestamps and durations.

    Returns
    -------
    Outcome
        Never raises for anything the device does (or fails to do).

    Raises
    ------
    ValueError
        For an impossible request (unknown method/protocol, PUSH over http, a block size CoAP
        does not have, an empty package, non-positive timeouts).
    OSError
        When ``package`` names a file that cannot be read.
    """
    validate_request(method, protocol, block_size)
    for name, value in (("timeout", timeout), ("reboot_timeout", reboot_timeout)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, not {value}")
    if overall_timeout is not None and not overall_timeout > 0:
        raise ValueError(f"overall_timeout must be > 0, not {overall_timeout}")
    if cancel_after is not None and cancel_after < 0:
        raise ValueError(f"cancel_after must be >= 0, not {cancel_after}")
    data = _load_package(package)
    sink = on_event if on_event is not None else getattr(server, "_on_event", discard)
    run = _Run(
        server=server,
        endpoint=endpoint,
        data=data,
        method=method,
        protocol=protocol,
        block_size=block_size,
        repository=repository,
        timeout=float(timeout),
        register_timeout=float(timeout if register_timeout is None else register_timeout),
        reboot_timeout=float(reboot_timeout),
        cancel_after=cancel_after,
        expected_version=expected_version or package_version(data),
        reset_busy=reset_busy,
        poll_interval=poll_interval if poll_interval else max(1.0, timeout / 10.0),
        on_stage=on_stage,
        on_progress=on_progress,
        sink=sink,
        clock=_default_clock() if clock is _WALL_TIME else clock,  # virtual loop: its clock
    )
    try:
        if overall_timeout is None:
            outcome = await run.go()
        else:
            run.overall_timeout = overall_timeout
            run.overall_deadline = asyncio.get_running_loop().time() + overall_timeout
            try:
                async with asyncio.timeout(overall_timeout + 0.5):
                    outcome = await run.go()
            except TimeoutError:
                outcome = run.ended_by_overall_timeout(overall_timeout)
    finally:
        await run.close()
    run.announce(outcome)
    return outcome


class _Run:
    """The state of one attempt (one device, one package)."""

    def __init__(
        self,
        *,
        server: LwM2MServer,
        endpoint: str,
        data: bytes,
        method: str,
        protocol: str,
        block_size: int,
        repository: Any,
        timeout: float,
        register_timeout: float,
        reboot_timeout: float,
        cancel_after: float | None,
        expected_version: str | None,
        reset_busy: bool,
        poll_interval: float,
        on_stage: StageCallback | None,
        on_progress: ProgressCallback | None,
        sink: EventSink,
        clock: Callable[[], float],
    ) -> None:
        self.server = server
        self.endpoint = endpoint
        self.data = data
        self.method = method
        self.protocol = protocol
        self.block_size = block_size
        self.repository = repository
        self.own_repository: Any = None
        self.timeout = timeout
        self.register_timeout = register_timeout
        self.reboot_timeout = reboot_timeout
        self.cancel_after = cancel_after
        self.expected_version = expected_version
        self.reset_busy = reset_busy
        self.poll_interval = poll_interval
        self.on_stage = on_stage
        self.on_progress = on_progress
        self.sink = sink
        self.clock = clock
        # the bound of the reads before a verdict: short, the device may be rebooting
        self.confirm_timeout = min(timeout, max(1.0, poll_interval))
        # what the device said
        self.state: int | None = None
        self.result: int | None = None
        self.fw_before: str | None = None
        self.fw_after: str | None = None
        self.caps: Capabilities | None = None
        self.stage = "register"
        self.seen_downloading = False
        self.fresh = False
        # where the latest State and Result came from (see SOURCES)
        self.state_src: str | None = None
        self.result_src: str | None = None
        self.confirmed = False  # the latest values were read just before the verdict
        self.confirm_reads = 0
        # counters
        self.notifications = 0
        self.polls = 0
        self.retries = 0
        self.bytes_sent = 0
        self.blocks = 0
        self.uri: str | None = None
        self.repo_name: str | None = None
        self.served0 = (0, 0)
        # times (lab clock)
        self.started_at = clock()
        self.t_checked: float | None = None
        self.t_download: float | None = None
        self.t_downloaded: float | None = None
        #: When the evidence behind the latest verdict of :meth:`wait` arrived (before the
        #: read that confirmed it).
        self.t_evidence: float | None = None
        self.t_execute: float | None = None
        self.t_heard: float | None = None  # last answer/notification from the device
        self.t_heard_before_reboot: float | None = None
        self.t_reregistered: float | None = None
        self.t_final: float | None = None
        # flags
        self.rebooted = False
        self.cancelled = False
        self.rereg_pending = False
        self.stop_push = False
        self.overall_timeout: float | None = None
        self.overall_deadline: float | None = None  # loop time
        self.registration: Registration | None = None
        self.observations: list[Observation] = []
        self.observed_reg: Registration | None = None
        self.changed = asyncio.Event()
        self.heard_loop = 0.0  # loop time of the last notification or poll answer
        self.download_loop_start = 0.0
        self.listening = False
        self.background: set[asyncio.Task[None]] = set()

    # -- small helpers -------------------------------------------------------------------------
    @property
    def proxy(self) -> DeviceProxy:
        return self.server.device(self.endpoint)

    def note(self, detail: str, **fields: Any) -> None:
        try:
            self.sink(
                Event(
                    ts=self.clock(),
                    source="server",
                    kind="note",
                    device=self.endpoint,
                    method=self.method,
                    protocol=self.protocol,
                    detail=detail,
                    **fields,
                )
            )
        except Exception:
            log.exception("event sink failed")

    def enter(self, stage: str, detail: str) -> None:
        self.stage = stage
        self.note(f"stage {stage} started" + (f": {detail}" if detail else ""))
        if self.on_stage is not None:
            try:
                self.on_stage(stage, detail)
            except Exception:
                log.exception("on_stage callback failed")

    def tell(self, stage: str, detail: str) -> None:
        """A note and an on_stage call within the current stage."""
        self.note(detail)
        if self.on_stage is not None:
            try:
                self.on_stage(stage, detail)
            except Exception:
                log.exception("on_stage callback failed")

    def heard(self) -> None:
        self.t_heard = self.clock()
        self.heard_loop = asyncio.get_running_loop().time()

    def absorb(self, resp: Response, source: str = READ) -> None:
        """Take /5/0/3 and /5/0/5 out of a response or notification; ``source`` is where it
        came from (:data:`SOURCES`), kept as the provenance of each value."""
        if not resp.ok:
            return
        self.heard()
        values = dict(resp.values)
        if not values and resp.value is not None:
            values = {resp.path: resp.value}
        before = (self.state, self.result)
        for path, value in values.items():
            if path == _STATE:
                self.state = _int(value)
                self.state_src = source
                self.confirmed = False
            elif path == _RESULT:
                self.result = _int(value)
                self.result_src = source
                self.confirmed = False
        if self.state == State.DOWNLOADING and self.stage == "download":
            self.seen_downloading = True
            self.fresh = True
        if (self.state, self.result) != before:
            self.changed.set()

    def _notified(self, resp: Response) -> None:
        self.notifications += 1
        self.absorb(resp, NOTIFICATION)

    def _registration_event(self, kind: str, reg: Registration) -> None:
        if reg.endpoint != self.endpoint:
            return
        if kind == "registered" and reg is not self.registration:
            self.rereg_pending = True
            self.t_heard_before_reboot = self.t_heard
            self.t_reregistered = self.clock()
            self.changed.set()
        elif kind in ("deregistered", "expired"):
            self.changed.set()

    # -- requests --------------------------------------------------------------------------------
    async def read(self, path: Path, *, attempts: int = 2) -> Response:
        """Read with one retry after a timeout or a network error (counted in ``retries``).

        A network error can be stale: aiocoap reports a socket error pending from an earlier
        datagram (an ICMP "port unreachable" for a device that is gone) on the next send,
        whichever peer that send goes to.
        """
        for attempt in range(attempts):
            try:
                resp = await self.proxy.read(path, timeout=self.timeout)
            except (RequestTimeout, DeviceUnreachable):
                if attempt + 1 >= attempts:
                    raise
                self.retries += 1
                continue
            if resp.ok:
                self.heard()
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    async def refresh(self, source: str = READ, timeout: float | None = None) -> bool:
        """Read State, then Result, once (errors ignored); True when both were read.

        State first: a device sets its final Result no later than the State that ends the
        download or the install, so a Result read after the State is at least as new.
        """
        got = 0
        for path in (_STATE, _RESULT):
            try:
                resp = await self.proxy.read(path, timeout=timeout or self.timeout)
            except _DEVICE_ERRORS:
                break  # the device does not answer now (rebooting?): do not wait twice
            self.absorb(resp, source)
            got += resp.ok
        return got == 2

    async def confirm(self) -> bool:
        """Read /5/0/3 and /5/0/5 before a verdict (``read-after-state``), bounded.

        The latest notifications may be out of order, coalesced, late, lost or repeated; a
        verdict is taken on what the device answers now. True when both values were read.
        """
        self.confirm_reads += 1
        ok = await self.refresh(READ_AFTER_STATE, timeout=self.confirm_timeout)
        self.confirmed = ok
        return ok

    def verdict_note(self, step: Step, *, reason: str | None = None) -> None:
        """A ``verdict`` row: the final State/Result and where each value came from."""
        try:
            self.sink(
                Event(
                    ts=self.clock(),
                    source="server",
                    kind="verdict",
                    device=self.endpoint,
                    method=self.method,
                    protocol=self.protocol,
                    state=self.state if self.state in range(4) else None,
                    result=(
                        int(step.result)
                        if step.result is not None
                        else (self.result if self.result in range(12) else None)
                    ),
                    reason=self.provenance(),
                    detail=f"stage {self.stage}"
                    + (", confirmed by a read" if self.confirmed else "")
                    + f": {reason or step.reason}",
                )
            )
        except Exception:
            log.exception("event sink failed")

    def provenance(self) -> str:
        """``state=<source> result=<source>`` of the values the verdict rests on."""
        return f"state={self.state_src or 'none'} result={self.result_src or 'none'}"

    async def read_version(self) -> str | None:
        try:
            resp = await self.read(_VERSION)
        except _DEVICE_ERRORS:
            return None
        return _text(resp.value) if resp.ok else None

    async def observe(self) -> None:
        """pmin=0 and Observe on /5/0/3 and /5/0/5 of the current registration."""
        for old in self.observations:
            old.cancel()
        self.observations = []
        self.observed_reg = self.server.registrations.get(self.endpoint)
        for path in (_STATE, _RESULT):
            # pmin=0: a State change must not be held back (digest 5.2); not every client
            # implements Write-Attributes, so any answer is fine.
            with contextlib.suppress(*_DEVICE_ERRORS):
                await self.proxy.write_attributes(path, pmin=0, timeout=self.timeout)
            obs: Observation | None = None
            for attempt in range(2):
                try:
                    obs = await self.proxy.observe(path, self._notified, timeout=self.timeout)
                    break
                except RequestTimeout:
                    if attempt == 0:
                        self.retries += 1
                except _DEVICE_ERRORS:
                    break
            if obs is None:
                self.note(f"could not observe {path}: polling it")
                continue
            self.absorb(obs.first)
            if obs.active:
                self.observations.append(obs)
            else:
                self.note(
                    f"the device does not accept Observe on {path} ({obs.first.code}): polling it"
                )

    async def poll(self) -> None:
        """One poll round: re-observe if the observations died with a registration, else read."""
        self.polls += 1
        try:
            current = self.server.registrations.get(self.endpoint)
            if current is not None and current is not self.observed_reg:
                await self.observe()
                return
            bound = min(self.timeout, max(2.0, 2 * self.poll_interval))
            for path in (_STATE, _RESULT):
                resp = await self.proxy.read(path, timeout=bound)
                self.absorb(resp, POLL)
        except _DEVICE_ERRORS as exc:
            log.debug("poll of %s failed: %r", self.endpoint, exc)
        finally:
            self.heard_loop = asyncio.get_running_loop().time()
            self.changed.set()

    # -- waiting ---------------------------------------------------------------------------------
    async def wait(
        self,
        judge: Callable[[], Step],
        *,
        no_progress: float,
        probe: Callable[[], int] | None = None,
        until: float | None = None,
        stop_on_reregistration: bool = True,
    ) -> Step | _Signal:
        """Wait until ``judge()`` is not WAIT, a re-registration, ``until`` (loop time), or
        ``no_progress`` seconds without a change of State, Result or ``probe()``."""
        loop = asyncio.get_running_loop()
        self.t_evidence = None
        last_progress = loop.time()
        marker = (self.state, self.result, probe() if probe else 0)
        poll_task: asyncio.Task[None] | None = None
        confirmed_timeout = False
        try:
            while True:
                self.changed.clear()
                step = judge()
                if step.verdict is not Verdict.WAIT:
                    if self.confirmed:
                        self.t_evidence = self.clock()
                        return step
                    # No verdict from a stale view: the notifications that suggested it may be
                    # reordered, coalesced, late or repeated. Read, then decide on what was read.
                    evidence_at = self.clock()
                    await self.confirm()
                    step = judge()
                    if step.verdict is not Verdict.WAIT:
                        # The stage ended when the device first said so; the read only
                        # confirmed it (durations do not include the confirming round trips).
                        self.t_evidence = evidence_at
                        return step
                    self.note(
                        f"the notifications suggested a verdict, the device's answer did not "
                        f"(State {self.state}, Result {self.result}): waiting on"
                    )
                    continue
                if stop_on_reregistration and self.rereg_pending:
                    return _REREGISTERED
                now = loop.time()
                if self.overall_deadline is not None and now >= self.overall_deadline:
                    # (asyncio.timeout bounds the requests too; this holds even if a
                    # cancellation was swallowed by Python 3.11's wait_for)
                    raise _End(self.ended_by_overall_timeout(self.overall_timeout or 0.0))
                if until is not None and now >= until:
                    return _UNTIL
                m = (self.state, self.result, probe() if probe else 0)
                if m != marker:
                    marker, last_progress = m, now
                    confirmed_timeout = False
                    if probe is not None and self.on_progress is not None:
                        self._safe_progress(m[2])
                deadline = last_progress + no_progress
                if now >= deadline:
                    if confirmed_timeout:
                        return _TIMEOUT
                    # Before a timeout verdict, ask the device once: its answer may end the
                    # wait (a lost notification) or show progress.
                    confirmed_timeout = True
                    await self.confirm()
                    continue
                if poll_task is not None and poll_task.done():
                    poll_task = None
                next_poll = self.heard_loop + self.poll_interval
                if poll_task is None and now >= next_poll:
                    poll_task = asyncio.create_task(self.poll(), name=f"fota-poll-{self.endpoint}")
                    next_poll = now + self.poll_interval
                wake = min(deadline, next_poll if poll_task is None else deadline)
                if until is not None:
                    wake = min(wake, until)
                if self.overall_deadline is not None:
                    wake = min(wake, self.overall_deadline)
                if probe is not None:
                    wake = min(wake, now + 0.25)  # repository bytes do not wake us up
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), max(0.005, wake - now))
        finally:
            if poll_task is not None and not poll_task.done():
                # Not awaited: Python 3.11's wait_for may swallow the cancellation, and the
                # next stage must not wait for a poll of a device that is rebooting.
                poll_task.cancel()
                self.background.add(poll_task)
                poll_task.add_done_callback(self.background.discard)

    def _safe_progress(self, done: int) -> None:
        if self.on_progress is None:
            return
        try:
            self.on_progress(done, len(self.data))
        except Exception:
            log.exception("on_progress callback failed")

    # -- outcome ---------------------------------------------------------------------------------
    def _durations(self) -> dict[str, float | None]:
        end = self.t_final if self.t_final is not None else self.clock()

        def span(a: float | None, b: float | None) -> float | None:
            if a is None or b is None:
                return None
            return max(0.0, b - a)

        update_end: float | None
        reboot_s: float | None = None
        if self.t_execute is None:
            update_end = None
        elif self.rebooted:
            heard = self.t_heard_before_reboot
            update_end = heard if heard is not None and heard >= self.t_execute else self.t_execute
            reboot_s = span(update_end, self.t_reregistered)
        else:
            update_end = end
        return {
            "check_s": span(self.started_at, self.t_checked),
            "download_s": span(
                self.t_download,
                self.t_downloaded
                if self.t_downloaded is not None
                else (end if self.t_download is not None else None),
            ),
            "update_s": span(self.t_execute, update_end),
            "reboot_s": reboot_s,
        }

    def outcome(
        self,
        *,
        reason: str,
        step: Step | None = None,
        stuck: bool = False,
        timed_out: bool = False,
        refused: bool = False,
    ) -> Outcome:
        if self.t_final is None:
            self.t_final = self.clock()
        result: UpdateResult | None = None
        if step is not None and step.result is not None:
            result = step.result
        elif self.result is not None:
            with contextlib.suppress(ValueError):
                result = UpdateResult(self.result)
        final_state: State | None = None
        if self.state is not None:
            with contextlib.suppress(ValueError):
                final_state = State(self.state)
        if self.method == "pull" and self.repository is not None and self.repo_name is not None:
            self._count_served()
        self.verdict_note(
            step if step is not None else Step(Verdict.FINAL, reason, result), reason=reason
        )
        return Outcome(
            endpoint=self.endpoint,
            method=self.method,
            protocol=self.protocol,
            result=result,
            final_state=final_state,
            success=bool(step is not None and step.success),
            stuck_in=final_state if stuck else None,
            reason=reason,
            fw_before=self.fw_before,
            fw_after=self.fw_after,
            started_at=self.started_at,
            finished_at=self.t_final,
            bytes_sent=self.bytes_sent,
            blocks=self.blocks,
            retries=self.retries,
            notifications=self.notifications,
            polls=self.polls,
            refused=refused,
            timed_out=timed_out or stuck,
            rebooted=self.rebooted,
            cancelled=self.cancelled,
            package_size=len(self.data),
            block_size=self.block_size if self.method == "push" else None,
            uri=self.uri,
            expected_version=self.expected_version,
            state_source=self.state_src if self.state is not None else None,
            result_source=self.result_src if self.result is not None else None,
            confirmed=self.confirmed,
            confirm_reads=self.confirm_reads,
            **self._durations(),
        )

    def stuck(self, what: str, no_progress: float) -> _End:
        if self.state is None:
            return _End(
                self.outcome(
                    reason=f"{what}: no answer from the device for {no_progress:.0f} s "
                    "(State unknown)",
                    timed_out=True,
                )
            )
        return _End(
            self.outcome(
                reason=f"stuck in state {_state_name(self.state)} (Result {self.result}): "
                f"{what}, no progress for {no_progress:.0f} s",
                stuck=True,
            )
        )

    def ended_by_overall_timeout(self, overall: float) -> Outcome:
        return self.outcome(
            reason=f"overall timeout of {overall:.0f} s ran out in stage {self.stage} "
            f"(State {_state_name(self.state)})",
            stuck=self.state is not None and self.state != State.IDLE,
            timed_out=True,
        )

    def announce(self, outcome: Outcome) -> None:
        self.note(f"outcome: {outcome.result_line}: {outcome.reason}")
        if self.on_stage is not None:
            try:
                self.on_stage("done", outcome.summary)
            except Exception:
                log.exception("on_stage callback failed")

    # -- the attempt -----------------------------------------------------------------------------
    async def go(self) -> Outcome:
        try:
            await self.check()
            step = await self.deliver()
            if step.verdict is Verdict.FINAL:
                self.fw_after = await self.read_version()
                raise _End(self.outcome(reason=step.reason, step=step))
            step = await self.install()
            raise _End(self.outcome(reason=step.reason, step=step))
        except _End as end:
            return end.outcome

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        if self.background:
            await asyncio.wait(set(self.background), timeout=2.0)
        for obs in self.observations:
            obs.cancel()
        self.observations = []
        if self.listening:
            self.server.remove_listener(self._registration_event)
            self.listening = False
        repo, self.own_repository = self.own_repository, None
        if repo is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(repo.stop(), 10)

    async def check(self) -> None:
        server, ep = self.server, self.endpoint
        reg = server.registrations.get(ep)
        if reg is None:
            self.enter("register", f"waiting up to {self.register_timeout:.0f} s for {ep}")
            try:
                reg = await server.wait_for_registration(ep, timeout=self.register_timeout)
            except TimeoutError:
                raise _End(
                    self.outcome(
                        reason=f"{ep} did not register within {self.register_timeout:.0f} s",
                        timed_out=True,
                    )
                ) from None
            except ServerError as exc:
                raise _End(self.outcome(reason=f"server error: {exc}", timed_out=True)) from None
        self.registration = reg
        server.add_listener(self._registration_event)
        self.listening = True
        self.started_at = self.clock()
        self.enter(
            "check",
            f"{ep} registered from "
            f"{reg.address[0] if reg.address else '?'}:"
            f"{reg.address[1] if reg.address else '?'}",
        )
        try:
            self.fw_before = await self.read_version()
            protocols_resp = await self.read(_PROTOCOLS)
            delivery_resp = await self.read(_DELIVERY)
        except _DEVICE_ERRORS as exc:
            raise _End(
                self.outcome(reason=f"the device did not answer the check: {exc}", timed_out=True)
            ) from None
        protocols: list[Any] | None = None
        if protocols_resp.ok:
            protocols = [
                v
                for p, v in protocols_resp.values.items()
                if p == _PROTOCOLS or p.startswith(_PROTOCOLS)
            ]
        delivery = delivery_resp.value if delivery_resp.ok else None
        ann = reg.objects.get(5)
        version = fw_object_version(ann.version if ann is not None else None, reg.lwm2m_version)
        caps = self.caps = capabilities(protocols, delivery, version)
        self.tell("check", f"firmware {self.fw_before}; {caps.describe()}")
        if 5 not in reg.objects:
            self.note("the device did not announce /5 at registration; trying anyway")
        plan = plan_delivery(self.method, self.protocol, caps)
        if not plan.ok:
            raise _End(self.outcome(reason=f"refused: {plan.refused}", refused=True))
        await self.observe()
        if self.state is None or self.result is None:
            await self.refresh()
        if self.state == State.UPDATING:
            raise _End(
                self.outcome(
                    reason="refused: the device is UPDATING already (an earlier update runs)",
                    refused=True,
                )
            )
        if self.state in (State.DOWNLOADING, State.DOWNLOADED):
            if not self.reset_busy:
                raise _End(
                    self.outcome(
                        reason=f"refused: the device is {_state_name(self.state)} from an earlier "
                        "attempt (reset it first, or pass reset_busy=True)",
                        refused=True,
                    )
                )
            await self.reset_first()
        self.t_checked = self.clock()

    def _reset_method(self) -> str:
        delivery = self.caps.delivery if self.caps is not None else None
        if delivery is DeliveryMethod.PUSH_ONLY:
            return "push"
        if delivery is DeliveryMethod.PULL_ONLY:
            return "pull"
        return self.method

    async def reset_first(self) -> None:
        how = self._reset_method()
        self.tell(
            "check",
            f"the device is {_state_name(self.state)} from an earlier attempt: "
            f"resetting it ({'NUL package' if how == 'push' else 'empty Package URI'})",
        )
        try:
            resp = await reset(self.server, self.endpoint, how, timeout=self.timeout)
        except _DEVICE_ERRORS as exc:
            raise _End(self.outcome(reason=f"reset failed: {exc}", timed_out=True)) from None
        if not resp.ok:
            raise _End(
                self.outcome(
                    reason=f"reset refused with {resp.code} in state {_state_name(self.state)}"
                )
            )

        def judge() -> Step:
            if self.state == State.IDLE:
                return Step(Verdict.NEXT, "reset")
            return Step(Verdict.WAIT)

        while True:
            got = await self.wait(judge, no_progress=self.timeout)
            if got is _REREGISTERED:
                await self.after_reregistration(mid=True)
                continue
            if isinstance(got, _Signal):
                raise self.stuck("the reset did not bring the device back to IDLE", self.timeout)
            return

    # -- delivery --------------------------------------------------------------------------------
    async def deliver(self) -> Step:
        self.seen_downloading = False
        self.fresh = False
        self.t_download = self.clock()
        self.download_loop_start = asyncio.get_running_loop().time()
        if self.method == "push":
            self.enter("download", f"push {len(self.data)} B in {self.block_size} B blocks")
            return await self.push()
        return await self.pull()

    async def _stop_push(self, write: asyncio.Task[Response]) -> None:
        """Stop a Block1 transfer between two blocks (before Cancel is sent)."""
        self.stop_push = True  # the next progress callback raises _PushStopped
        while not write.done():
            # asyncio.wait_for of Python 3.11 can swallow a cancellation that coincides
            # with an answer, so cancel until the task has really ended.
            write.cancel()
            await asyncio.wait({write}, timeout=0.05)
        with contextlib.suppress(asyncio.CancelledError, _PushStopped, *_DEVICE_ERRORS):
            write.result()

    def _push_progress(self, done: int, total: int) -> None:
        if self.stop_push:
            raise _PushStopped
        self.bytes_sent = done
        self.blocks += 1
        self.heard()
        self._safe_progress(done)

    async def push(self) -> Step:
        write = asyncio.create_task(
            self.proxy.write(
                _PACKAGE,
                self.data,
                content_format=42,
                block_size=self.block_size,
                progress=self._push_progress,
                timeout=self.timeout,
            ),
            name=f"fota-push-{self.endpoint}",
        )
        if self.cancel_after is not None:
            done, _ = await asyncio.wait({write}, timeout=self.cancel_after)
            if not done:
                await self._stop_push(write)
                return await self.do_cancel()
        try:
            resp = await write
        except RequestTimeout:
            await self.confirm()
            failed = self.failed_download(baseline=None)
            if failed is not None:
                return failed
            raise self.stuck(
                f"PUSH stalled after {self.bytes_sent} of {len(self.data)} B "
                f"(no answer to a block)",
                self.timeout,
            ) from None
        except RequestFailed as exc:  # the device broke the Block1 protocol
            await self.confirm()
            raise _End(
                self.outcome(reason=f"PUSH failed after {self.bytes_sent} B: {exc}")
            ) from None
        except (DeviceUnreachable, DeviceNotRegistered, ServerError) as exc:
            await self.confirm()
            failed = self.failed_download(baseline=None)
            if failed is not None:
                return failed
            raise _End(
                self.outcome(
                    reason=f"PUSH interrupted after {self.bytes_sent} B: {exc}",
                    timed_out=True,
                )
            ) from None
        if not resp.ok:
            await self.confirm()
            step = interpret_download(self.state, self.result, fresh=True)
            if step.verdict is Verdict.FINAL:
                return Step(
                    Verdict.FINAL,
                    f"the device refused the package with {resp.code}; " + step.reason,
                    step.result,
                )
            return Step(
                Verdict.FINAL,
                f"the device refused the package with {resp.code} after {self.bytes_sent} B "
                f"(State {_state_name(self.state)}, Result {self.result})",
                None,
            )
        self.fresh = True
        self.heard()
        return await self.until_downloaded(probe=None)

    def failed_download(self, *, baseline: int | None) -> Step | None:
        """After a delivery error and a read: the failure the device reports, if it does."""
        if not self.confirmed:
            return None
        step = interpret_download(
            self.state, self.result, fresh=self.method == "push", baseline_result=baseline
        )
        if step.verdict is Verdict.FINAL and step.result is not None and step.result not in (
            UpdateResult.INITIAL,
            UpdateResult.SUCCESS,
        ):
            return step
        return None

    def _ensure_repository_name(self) -> None:
        repo = self.repository
        name = _repo_name(self.endpoint, self.data)
        if name not in repo:
            repo.add(name, self.data)
        elif repo.data(name) != self.data:  # pragma: no cover - sha256 prefix collision
            name = name.replace(".bin", f"-{len(self.data)}.bin")
            repo.add(name, self.data)
        self.repo_name = name

    @property
    def _carrier(self) -> str:
        """The repository's byte counter of the protocol (coaps counts as coap, https as http)."""
        return {"coaps": "coap", "https": "http"}.get(self.protocol, self.protocol)

    def _count_served(self) -> None:
        repo, name = self.repository, self.repo_name
        if repo is None or name is None:
            return
        self.bytes_sent = repo.served_bytes(name, self._carrier) - self.served0[0]
        if self._carrier == "coap":
            self.blocks = repo.served_blocks(name) - self.served0[1]

    async def pull(self) -> Step:
        if self.repository is None:
            from labkit.repo.repository import FirmwareRepository

            host = self.server.host
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            repo = FirmwareRepository(host=host, on_event=self.sink, clock=self.clock)
            await asyncio.wait_for(repo.start(), 15)
            self.repository = self.own_repository = repo
        self._ensure_repository_name()
        repo, name = self.repository, self.repo_name
        assert name is not None
        uri_of = {
            "coap": repo.coap_uri,
            "http": repo.http_uri,
            "coaps": getattr(repo, "coaps_uri", None),
            "https": getattr(repo, "https_uri", None),
        }[self.protocol]
        self.uri = uri_of(name)
        self.served0 = (repo.served_bytes(name, self._carrier), repo.served_blocks(name))
        self.enter("download", f"pull from {self.uri} ({len(self.data)} B)")
        baseline = self.result
        try:
            resp = await self.proxy.write(_URI, self.uri, timeout=self.timeout)
        except RequestTimeout:
            await self.confirm()
            failed = self.failed_download(baseline=baseline)
            if failed is not None:
                return failed
            raise self.stuck("no answer to the Package URI write", self.timeout) from None
        except (DeviceUnreachable, DeviceNotRegistered, ServerError) as exc:
            raise _End(
                self.outcome(reason=f"Package URI write failed: {exc}", timed_out=True)
            ) from None
        if not resp.ok:
            await self.confirm()
            step = interpret_download(
                self.state, self.result, fresh=False, baseline_result=baseline
            )
            reason = f"the device refused the Package URI with {resp.code}"
            if step.verdict is Verdict.FINAL:
                return Step(Verdict.FINAL, f"{reason}; {step.reason}", step.result)
            return Step(Verdict.FINAL, reason, None)
        self.heard()

        def served() -> int:
            return int(repo.served_bytes(name, self._carrier)) - self.served0[0]

        return await self.until_downloaded(probe=served, baseline=baseline)

    async def until_downloaded(
        self, *, probe: Callable[[], int] | None, baseline: int | None = None
    ) -> Step:
        until = None
        if self.cancel_after is not None:
            # (a PUSH handles cancel_after itself; here only a PULL gets there before the end)
            until = self.download_loop_start + self.cancel_after
        settled = False

        def judge() -> Step:
            return interpret_download(
                self.state,
                self.result,
                fresh=self.fresh,
                seen_downloading=self.seen_downloading,
                baseline_result=baseline,
            )

        while True:
            got = await self.wait(
                judge,
                no_progress=self.timeout,
                probe=probe,
                until=until if not self.cancelled else None,
            )
            if got is _UNTIL:
                return await self.do_cancel()
            if got is _REREGISTERED:
                await self.after_reregistration(mid=True)
                continue
            if got is _TIMEOUT:
                what = "the download does not progress"
                if self.state == State.IDLE and not self.fresh:
                    what = "the device never started the download"
                raise self.stuck(what, self.timeout)
            assert isinstance(got, Step)
            if (
                got.verdict is Verdict.FINAL
                and got.result in (None, UpdateResult.INITIAL)
                and not settled
            ):
                # IDLE without a failure code, even as read: a device may set its Result a
                # moment after its State. Give it one poll interval, then read again.
                settled = True
                seen = (self.state, self.result)
                loop = asyncio.get_running_loop()
                again = await self.wait(
                    lambda seen=seen: (  # type: ignore[misc,unused-ignore]
                        judge() if (self.state, self.result) != seen else Step(Verdict.WAIT)
                    ),
                    no_progress=self.timeout,
                    until=loop.time() + self.poll_interval,
                )
                if isinstance(again, Step):
                    got = again
                elif again is _REREGISTERED:
                    await self.after_reregistration(mid=True)
                    continue
                else:
                    await self.confirm()
                    got = judge()
                    if got.verdict is Verdict.WAIT:
                        continue
            if probe is not None:
                self._count_served()
            if got.verdict is Verdict.NEXT:
                self.t_downloaded = self.t_evidence if self.t_evidence is not None else self.clock()
                self.tell(
                    "download",
                    f"{got.reason} after "
                    f"{self.t_downloaded - (self.t_download or self.t_downloaded):.2f} s",
                )
            return got

    async def do_cancel(self) -> Step:
        self.cancelled = True
        caps = self.caps
        by_reset = caps is None or not caps.can_cancel
        self.enter("cancel", f"cancel after {self.cancel_after} s of download")
        resp: Response | None = None
        try:
            if not by_reset:
                resp = await cancel(self.server, self.endpoint, timeout=self.timeout)
                if not resp.ok:
                    self.note(f"Cancel answered {resp.code}: resetting instead")
                    by_reset = True
            if by_reset:
                resp = await reset(
                    self.server, self.endpoint, self._reset_method(), timeout=self.timeout
                )
        except _DEVICE_ERRORS as exc:
            await self.confirm()
            raise _End(self.outcome(reason=f"cancel failed: {exc}", timed_out=True)) from None
        if resp is not None and not resp.ok:
            await self.confirm()
        got = await self.wait(
            lambda: interpret_cancel(self.state, self.result, by_reset=by_reset),
            no_progress=self.timeout,
            stop_on_reregistration=False,
        )
        if isinstance(got, _Signal):
            raise self.stuck("the cancel did not take effect", self.timeout)
        if self.repo_name is not None:
            self._count_served()
        return got

    # -- update, reboot, verify ------------------------------------------------------------------
    async def install(self) -> Step:
        self.enter("update", "Execute /5/0/2")
        self.registration = self.server.registrations.get(self.endpoint) or self.registration
        self.rereg_pending = False
        self.t_execute = self.clock()
        if self.state != State.UPDATING:  # not already updating by itself (obj 1.2 res 14)
            try:
                resp = await self.proxy.execute(_UPDATE, timeout=self.timeout)
            except (RequestTimeout, DeviceUnreachable) as exc:
                # Pitfall 7: a device that reboots inside the handler never answers.
                self.note(
                    f"no answer to Execute /5/0/2 ({type(exc).__name__}); "
                    "waiting for the device anyway"
                )
            except (DeviceNotRegistered, ServerError) as exc:
                raise _End(self.outcome(reason=f"Execute failed: {exc}", timed_out=True)) from None
            else:
                if not resp.ok:
                    await self.confirm()
                    if self.state != State.IDLE or self.result not in _INSTALL_RESULTS:
                        return Step(
                            Verdict.FINAL,
                            f"Execute /5/0/2 refused with {resp.code} in state "
                            f"{_state_name(self.state)}",
                            None,
                        )
                    # The answer to Execute was lost and the device rebooted before our
                    # retransmission arrived: the retransmission reached the rebooted device
                    # (same address through a NAT, or a fixed port), which refuses a second
                    # Execute in IDLE. The install did happen (Result 1, 5 or 8): go on.
                    self.note(
                        f"Execute /5/0/2 answered {resp.code} after the install reboot "
                        f"(Result {self.result}): a retransmission reached the rebooted device"
                    )
                self.heard()
        self.tell("update", "waiting for re-registration")
        no_progress = max(self.timeout, self.reboot_timeout)

        def judge() -> Step:
            return interpret_update(
                self.state,
                self.result,
                rebooted=self.rebooted,
                fw_before=self.fw_before,
                fw_after=self.fw_after,
                expected_version=self.expected_version,
            )

        while True:
            got = await self.wait(judge, no_progress=no_progress)
            if got is _REREGISTERED:
                await self.after_reregistration(mid=False)
                continue
            if got is _TIMEOUT or got is _UNTIL:
                if self.state == State.UPDATING or not self.rebooted:
                    raise self.stuck(
                        "no re-registration and no final result after Execute", no_progress
                    )
                raise self.stuck("no final result after the reboot", no_progress)
            assert isinstance(got, Step)
            if self.fw_after is None:
                self.fw_after = await self.read_version()
                if self.fw_after is not None and got.success:
                    got = judge()  # the reason mentions the versions now
            if self.fw_after is None and not self.rebooted and got.success:
                # Result 1 seen before the reboot: wait for the device to come back.
                got = await self.late_reboot(judge, no_progress)
            return got

    async def late_reboot(self, judge: Callable[[], Step], no_progress: float) -> Step:
        got = await self.wait(lambda: Step(Verdict.WAIT), no_progress=no_progress)
        if got is _REREGISTERED:
            await self.after_reregistration(mid=False)
            step = judge()
            if step.verdict is Verdict.FINAL:
                return step
        return Step(
            Verdict.FINAL,
            "Result 1 SUCCESS, but /3/0/3 could not be read after it",
            UpdateResult.SUCCESS,
            success=True,
        )

    async def after_reregistration(self, *, mid: bool) -> None:
        self.rereg_pending = False
        reg = self.server.registrations.get(self.endpoint)
        old = self.registration
        self.registration = reg
        if reg is None:
            return
        where = f"{reg.address[0]}:{reg.address[1]}" if reg.address else "?"
        was = f"{old.address[0]}:{old.address[1]}" if old is not None and old.address else "?"
        if mid:
            self.tell(
                self.stage,
                f"the device registered again from {where} (was {was}) "
                f"in stage {self.stage}; observing again",
            )
            await self.observe()
            return
        self.rebooted = True
        self.enter("verify", f"re-registered from {where} (was {was}); observing again")
        self.state = self.result = None
        await self.observe()
        if self.state is None or self.result is None:
            await self.refresh()
        self.fw_after = await self.read_version()
        self.tell(
            "verify",
            f"after the reboot: State {_state_name(self.state)}, "
            f"Result {self.result}, firmware {self.fw_after}",
        )
