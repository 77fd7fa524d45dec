"""The lab runtime: one object that owns the event loop, the sockets and the recorder.

A :class:`Lab` gives notebooks, scripts and pytest tests one *synchronous* API over the
asynchronous lab. It starts a private asyncio event loop in a daemon thread and runs everything
with sockets there: the :class:`~labkit.server.LwM2MServer`, any
:class:`~labkit.client.SimulatedDevice`, observations and transfers. A notebook cell that calls
``lab.device("sim-0001").read("/3/0/3")`` blocks only its own thread while the loop thread keeps
answering registration Updates, notifications and block-wise transfers.

::

    with Lab() as lab:                       # server on 127.0.0.1, ephemeral port
        lab.add_devices(3)                   # sim-0001 .. sim-0003 register concurrently
        lab.device("sim-0001").read("/3/0/3")    # -> "1.0.0"
        lab.registrations()                  # DataFrame, one row per registration
        lab.events()                         # the run's typed event table

Rules this module keeps:

* Every blocking call is bounded: :meth:`Lab.call` waits on a :class:`concurrent.futures.Future`
  with a timeout and cancels the work on the loop when it expires.
* Callbacks handed to the lab (event listeners, observation callbacks) run **on the loop
  thread**; they must be quick and must not call back into the lab synchronously (that would
  dead-lock, and :meth:`Lab.call` refuses it with a clear error).
* A forgotten lab does not hang interpreter exit: :func:`weakref.finalize` closes it (devices
  de-register, the server stops, the recorder flushes, the loop stops, the thread is joined).

* Sockets are bound without ``SO_REUSEPORT`` (:func:`labkit.coap.open_udp_context`), so two
  simulated devices never share an ephemeral port.

The firmware repository (``lab.repository``, ``lab.publish(name, image)``) is started on first
use, on the lab's host, with ephemeral CoAP and HTTP ports.

The runtime decides nothing about LwM2M: it starts and stops the adapters (``server/``,
``client/``, ``repo/``) and the recorder (``record``) and forwards calls to them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import inspect
import itertools
import math
import threading
import time
import weakref
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any, TypeVar

from labkit.client.scratch import sweep_stale_flash_once
from labkit.events import Event, EventSink
from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DeviceHandle",
    "Lab",
    "LabClosedError",
    "ObservationHandle",
    "derive_seed",
    "format_address",
    "start_devices",
]

T = TypeVar("T")

#: How long :meth:`Lab.close` waits for devices to de-register and the server to stop.
CLOSE_TIMEOUT = 10.0
#: Default bound for a :meth:`Lab.call` when the caller gives none.
DEFAULT_CALL_TIMEOUT = 60.0
#: Extra time the synchronous wrapper grants on top of a request's own timeout.
CALL_GRACE = 5.0
#: Default number of devices that register at the same time in :meth:`Lab.add_devices`.
DEFAULT_CONCURRENCY = 32
#: Wall-clock guard of a call on a virtual-time lab (its real bound is simulated time): only a
#: loop that stopped moving hits it.
VIRTUAL_WALL_LIMIT = 900.0

REGISTRATION_COLUMNS = (
    "endpoint",
    "address",
    "lifetime",
    "lwm2m",
    "binding",
    "queue_mode",
    "registered_at",
    "updated_at",
    "expires_at",
    "reg_id",
)


class LabClosedError(RuntimeError):
    """The lab was closed (or never started) and cannot run the request."""


def derive_seed(seed: int, endpoint: str) -> int:
    """A device's seed from the lab seed and its endpoint name (stable across runs and orders)."""
    return (seed * 1_000_003 + zlib.crc32(endpoint.encode())) & 0x7FFF_FFFF


def format_address(address: Any) -> str:
    """``"127.0.0.1:40123"`` / ``"[::1]:40123"`` from a tuple, an aiocoap remote or a string."""
    if address is None:
        return ""
    if isinstance(address, str):
        return address
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = str(address[0]), address[1]
        if host.startswith("::ffff:") and "." in host:
            host = host.removeprefix("::ffff:")  # IPv4 peer on a dual-stack socket (spec 8.4)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sockaddr = getattr(address, "sockaddr", None)
    if isinstance(sockaddr, tuple):
        return format_address(sockaddr)
    hostinfo = getattr(address, "hostinfo", None)
    return str(hostinfo if hostinfo is not None else address)


def _to_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), tz=UTC)


async def start_devices(
    devices: Iterable[Any],
    *,
    timeout: float = 10.0,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[BaseException | None]:
    """Start (register) simulated devices concurrently, at most ``concurrency`` at a time.

    Returns one entry per device, in order: ``None`` when it registered, else the exception.
    Each start is bounded by ``timeout`` seconds.
    """
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(device: Any) -> BaseException | None:
        async with gate:
            try:
                await asyncio.wait_for(device.start(timeout=timeout), timeout + CALL_GRACE)
            except Exception as exc:  # reported to the caller, not raised here
                return exc
            return None

    return list(await asyncio.gather(*(one(d) for d in devices)))


class _Fanout:
    """The lab's event sink: the recorder first, then any listeners. Runs on the loop thread."""

    def __init__(self) -> None:
        self.recorder: Any = None
        self.listeners: list[EventSink] = []

    def __call__(self, event: Event) -> None:
        recorder = self.recorder
        if recorder is not None and not recorder.closed:
            recorder(event)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a broken widget must not break the lab
                import logging

                logging.getLogger(__name__).exception("event listener %r failed", listener)


@dataclass
class _Core:
    """Everything the lab owns. Kept apart from :class:`Lab` so the finalizer can close it."""

    host: str
    port: int
    record: str | None
    run_id: str | None
    seed: int
    retain_events: bool
    request_timeout: float
    clock: Callable[[], float]
    sink: _Fanout = field(default_factory=_Fanout)
    loop: asyncio.AbstractEventLoop | None = None
    #: The virtual-time loop of a ``Lab(clock="virtual")`` (made in ``Lab.__init__``).
    virtual_loop: Any = None
    thread: threading.Thread | None = None
    server: Any = None
    repository: Any = None
    recorder: Any = None
    devices: dict[str, Any] = field(default_factory=dict)
    security: str = "nosec"  # "psk": the server also listens on coaps:// (issue 15)
    bootstrap: bool = False  # devices start from the lab's LwM2M Bootstrap server
    bootstrap_server: Any = None
    psk_store: Any = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    started: bool = False
    closed: bool = False

    # -- loop plumbing -----------------------------------------------------------------
    def in_loop_thread(self) -> bool:
        return self.thread is not None and threading.current_thread() is self.thread

    def submit(
        self, work: Awaitable[T] | Callable[[], Any], sim_limit: float | None = None
    ) -> concurrent.futures.Future[Any]:
        """Schedule ``work`` on the loop. On a virtual-time loop simulated time runs freely
        while the work runs (bounded by ``sim_limit`` simulated seconds when given)."""
        loop = self.loop
        if loop is None or self.closed or not loop.is_running():
            if inspect.iscoroutine(work):
                work.close()  # never leave "coroutine was never awaited" behind
            raise LabClosedError("the lab is not running (start() it, or it was closed)")
        if inspect.isawaitable(work):
            coro: Coroutine[Any, Any, Any] = _await(work)
        elif callable(work):
            coro = _call_then_await(work)
        else:
            raise TypeError(f"expected a coroutine, an awaitable or a callable, got {work!r}")
        if self.virtual_loop is not None:
            coro = _free_running(self.virtual_loop, coro, sim_limit)
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def call(self, work: Awaitable[T] | Callable[[], Any], timeout: float | None) -> Any:
        if self.in_loop_thread():
            if inspect.iscoroutine(work):
                work.close()
            raise RuntimeError(
                "Lab.call() was used from the lab's own event loop thread (for example inside "
                "an event listener or observation callback); that would dead-lock. "
                "Use `await` there, or Lab.submit()."
            )
        limit = DEFAULT_CALL_TIMEOUT if timeout is None else timeout
        if self.virtual_loop is not None:
            # The bound is simulated time (the work is cancelled on the loop when it runs
            # out); the wall-clock wait only guards against a loop that stopped moving.
            future = self.submit(work, sim_limit=limit)
            wall_limit = max(limit, VIRTUAL_WALL_LIMIT)
        else:
            future = self.submit(work)
            wall_limit = limit
        try:
            return future.result(timeout=wall_limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"the lab did not finish {_describe(work)} within {limit:g} s "
                "(the work on the lab loop was cancelled)"
            ) from None
        except KeyboardInterrupt:
            future.cancel()  # "interrupt kernel" in a notebook also stops the lab's work
            raise

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        with self.lock:
            if self.closed:
                raise LabClosedError("this lab was closed; create a new Lab()")
            if self.started:
                return
            loop = self.virtual_loop or asyncio.new_event_loop()
            if self.virtual_loop is not None:
                self.virtual_loop.horizon = 0.0  # time stands still until a call lets it run
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="labkit-lab-loop", daemon=True)
            thread.start()
            if not ready.wait(10.0):
                raise RuntimeError("the lab's event loop thread did not start")
            self.loop, self.thread = loop, thread
            self.started = True
            try:
                self.call(self._astart(), timeout=self.request_timeout + CALL_GRACE)
            except BaseException:
                self.close()
                raise

    async def _astart(self) -> None:
        run_id = self.run_id
        if run_id is None and self.virtual_loop is not None:
            run_id = _virtual_run_id(self.record, self.virtual_loop.epoch, self.seed)
        self.recorder = _make_recorder(
            self.record, run_id, self._manifest(), retain=self.retain_events,
            flush_interval=(VIRTUAL_FLUSH_S if self.virtual_loop is not None
                            else DEFAULT_FLUSH_S),
        )
        self.sink.recorder = self.recorder
        from labkit.server import LwM2MServer

        secure: dict[str, Any] = {}
        if self.security == "psk" or self.bootstrap:
            from labkit.dtls import PskStore

            self.psk_store = PskStore()
        if self.security == "psk":
            secure = {"psk_store": self.psk_store, "coaps_port": 0}
        server = LwM2MServer(
            host=self.host,
            port=self.port,
            on_event=self.sink,
            clock=self.clock,
            request_timeout=self.request_timeout,
            **secure,
        )
        await asyncio.wait_for(server.start(), self.request_timeout)
        self.server = server
        if self.bootstrap:
            from labkit.dtls import PskStore
            from labkit.server.bootstrap import BootstrapConfig, BootstrapServer

            default = None if self.security == "psk" else BootstrapConfig(server.uri)
            bss = BootstrapServer(
                host=self.host,
                coaps_port=0,
                psk_store=PskStore(),
                default=default,
                on_event=self.sink,
                clock=self.clock,
                request_timeout=self.request_timeout,
            )
            await asyncio.wait_for(bss.start(), self.request_timeout)
            self.bootstrap_server = bss

    async def _astart_repository(self) -> Any:
        if self.repository is None:
            from labkit.repo.repository import FirmwareRepository

            repository = FirmwareRepository(host=self.host, on_event=self.sink, clock=self.clock)
            await repository.start()
            self.repository = repository
        return self.repository

    def _manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = {
            "created_by": "labkit.runtime.Lab",
            "host": self.host,
            "port": self.port,
            "seed": self.seed,
            "request_timeout": self.request_timeout,
            "security": self.security,
            "bootstrap": self.bootstrap,
            "retain_events": self.retain_events,
        }
        if self.virtual_loop is not None:
            from labkit.virtual.loop import epoch_iso

            manifest["clock"] = "virtual"
            manifest["epoch"] = self.virtual_loop.epoch
            manifest["epoch_iso"] = epoch_iso(self.virtual_loop.epoch)
        else:
            scale = getattr(self.clock, "scale", None)
            manifest["clock"] = "scaled" if isinstance(scale, int | float) else "wall"
        return manifest

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            loop, thread = self.loop, self.thread
        if loop is None or thread is None:
            self.started = False
            return
        if self.in_loop_thread():
            # Garbage collection ran the finalizer on the loop thread itself: we cannot wait
            # for the loop here, so let it shut down on its own and stop.
            async def shutdown() -> None:
                if self.virtual_loop is not None:
                    self.virtual_loop.horizon = math.inf
                try:
                    await self._aclose()
                finally:
                    loop.stop()
                    if self.recorder is not None:
                        self.recorder.close()

            loop.create_task(shutdown())
            return
        try:
            if loop.is_running() and thread.is_alive():
                closing: Coroutine[Any, Any, None] = self._aclose()
                if self.virtual_loop is not None:  # De-register and stop on simulated time
                    closing = _free_running(self.virtual_loop, closing, None)  # bounded inside
                future = asyncio.run_coroutine_threadsafe(closing, loop)
                try:
                    future.result(timeout=CLOSE_TIMEOUT * 2 + CALL_GRACE)
                except concurrent.futures.TimeoutError:
                    future.cancel()
                except Exception:
                    import logging

                    logging.getLogger(__name__).exception("error while closing the lab")
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=CLOSE_TIMEOUT)
        finally:
            if not thread.is_alive() and not loop.is_closed():
                loop.close()
            if self.recorder is not None:
                self.recorder.close()  # writes what is left and finishes the manifest
            self.started = False

    async def _aclose(self) -> None:
        devices = list(self.devices.values())
        if devices:
            await asyncio.gather(
                *(_bounded(d.stop(deregister=True, timeout=5), CLOSE_TIMEOUT) for d in devices),
                return_exceptions=True,
            )
        parts = (self.server, self.repository, self.bootstrap_server)
        stopping = [s.stop() for s in parts if s is not None]
        if stopping:
            await asyncio.gather(
                *(_bounded(stop, CLOSE_TIMEOUT) for stop in stopping), return_exceptions=True
            )
        # Cancel what is left (observations, submitted jobs) so no task dies with the loop.
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=CLOSE_TIMEOUT)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.shutdown_asyncgens(), CLOSE_TIMEOUT)
        await asyncio.wait_for(loop.shutdown_default_executor(), CLOSE_TIMEOUT)


async def _await(work: Awaitable[T]) -> T:
    return await work


async def _free_running(loop: Any, work: Coroutine[Any, Any, T], limit: float | None) -> T:
    """Run ``work`` on a virtual-time loop with simulated time free to advance (bounded by
    ``limit`` simulated seconds), then let the current instant settle; when the last such
    work ends, time stands still again."""
    loop.free_runners = getattr(loop, "free_runners", 0) + 1
    loop.horizon = math.inf
    try:
        if limit is None:
            result = await work
        else:
            result = await asyncio.wait_for(work, limit)
        # Return once everything due at this instant has happened, so that the caller sees
        # the same settled state (events, registrations) every time.
        await loop.settled()
        return result
    finally:
        loop.free_runners -= 1
        if loop.free_runners == 0:
            loop.horizon = loop.time()


def _virtual_run_id(record: str | None, epoch: float, seed: int) -> str:
    """``<epoch stamp>-v<seed>`` (``-2``, ``-3`` ... when that directory exists): a virtual
    run's id depends on its epoch and seed, not on when it ran."""
    stamp = datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-v{seed}"
    if record is None:
        return base
    run_id, n = base, 1
    while (FsPath(record) / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


async def _call_then_await(fn: Callable[[], Any]) -> Any:
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return result


async def _bounded(work: Awaitable[T], timeout: float) -> T:
    return await asyncio.wait_for(work, timeout)


def _describe(work: Any) -> str:
    code = getattr(work, "cr_code", None)
    if code is not None:
        return f"{code.co_qualname}()"
    name = getattr(work, "__qualname__", None)
    return f"{name}()" if name else repr(work)


#: Wall seconds between the recorder's conversions of new events (and part files): 0.5 s on
#: real time. A virtual run makes events as fast as the CPU goes (thousands per wall second
#: in a fleet run) and each conversion has a fixed cost of ~10 ms (a typed column each):
#: converting every 2 s halves the recorder's CPU there. Readers never wait for it
#: (:meth:`Lab.events` converts what is pending); only the files lag that much behind.
DEFAULT_FLUSH_S = 0.5
VIRTUAL_FLUSH_S = 2.0


def _make_recorder(
    record: str | None, run_id: str | None, manifest: dict[str, Any], *, retain: bool = True,
    flush_interval: float = DEFAULT_FLUSH_S,
) -> Any:
    """A :class:`labkit.record.Recorder`: memory-only when ``record`` is None, else it writes
    ``<record>/<run_id>/`` (and, with ``retain=False``, releases what it has written)."""
    from labkit.record import Recorder, new_run_id

    if record is None:
        return Recorder(None, run_id=run_id, manifest=manifest, flush_interval=flush_interval)
    run_id = run_id or new_run_id(record)
    return Recorder(FsPath(record) / run_id, run_id=run_id, manifest=manifest, retain=retain,
                    flush_interval=flush_interval)


class ObservationHandle:
    """A synchronous view of a server-side observation (``/5/0/3`` of one device, say).

    ``first`` is the response to the Observe request, ``latest`` the newest notification (or
    the first response), ``values`` the decoded values of ``latest``. The callback given to
    :meth:`DeviceHandle.observe` runs on the lab's loop thread for every notification.
    """

    def __init__(self, core: _Core, observation: Any, path: Path) -> None:
        self._core = core
        self._observation = observation
        self.path = path

    @property
    def first(self) -> Any:
        return self._observation.first

    @property
    def latest(self) -> Any:
        return self._observation.latest

    @property
    def active(self) -> bool:
        """False once cancelled, ended by the device, or dropped with its registration."""
        return bool(self._observation.active)

    @property
    def count(self) -> int:
        """Notifications received after the first response."""
        return int(self._observation.count)

    @property
    def values(self) -> dict[Path, Any]:
        latest = self.latest
        return dict(latest.values) if latest is not None else {}

    @property
    def value(self) -> Any:
        """The single value of the newest notification of a single-resource observation."""
        return _single_value(self.path, self.values)

    def cancel(self) -> None:
        """Stop observing (aiocoap cancels reactively: the next notification gets a RST)."""
        if self._core.closed:
            return
        self._core.call(self._observation.cancel, timeout=self._core.request_timeout)

    def __repr__(self) -> str:
        return f"<ObservationHandle {self.path} latest={self.values!r}>"


def _state_text(value: Any) -> str:
    """``"DOWNLOADED (2)"`` for an IntEnum State/UpdateResult, ``str(value)`` otherwise."""
    name = getattr(value, "name", None)
    return f"{name} ({int(value)})" if name else str(value)


def _single_value(path: Path, values: Mapping[Path, Any]) -> Any:
    if path.level >= 3 and len(values) == 1:
        return next(iter(values.values()))
    if path in values:
        return values[path]
    return dict(values)


class DeviceHandle:
    """One LwM2M client as seen from the lab: simulated (added by the lab) or real.

    LwM2M operations (``read``, ``write``, ``execute``...) go through the lab's server to the
    device's registered address, like any LwM2M server request; they raise the server's
    ``RequestFailed`` / ``RequestTimeout`` / ``DeviceNotRegistered`` errors. The simulated-device
    conveniences (``state``, ``result``, ``firmware_version``, ``reboot()``, ``set_value()``) read
    the device object directly and need a device added with :meth:`Lab.add_device`; for a real
    device ``state``/``result``/``firmware_version`` are read over CoAP instead.
    """

    def __init__(self, lab: Lab, endpoint: str) -> None:
        self._lab = lab
        self.endpoint = endpoint

    # -- plumbing ----------------------------------------------------------------------
    @property
    def simulated(self) -> Any:
        """The :class:`~labkit.client.SimulatedDevice` behind this handle, or ``None``."""
        return self._lab._core.devices.get(self.endpoint)  # noqa: SLF001 - the handle's own lab

    def _proxy(self) -> Any:
        server = self._lab.server
        return server.device(self.endpoint)

    def _call(self, make: Callable[[Any], Awaitable[Any]], timeout: float | None) -> Any:
        limit = (self._lab.request_timeout if timeout is None else timeout) + CALL_GRACE
        return self._lab.call(lambda: make(self._proxy()), timeout=limit)

    @property
    def registration(self) -> Any:
        """The server's current registration record for this endpoint, or ``None``."""
        return self._lab._registrations_snapshot().get(self.endpoint)  # noqa: SLF001 - the handle's own lab

    @property
    def registered(self) -> bool:
        return self.registration is not None

    # -- LwM2M operations --------------------------------------------------------------
    def read(
        self,
        path: str | Path,
        accept: int | None = None,
        *,
        raw: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Read ``path``.

        Returns the value for a single resource (``read("/3/0/3") -> "1.0.0"``), a
        ``{Path: value}`` dict for an object or instance, or the server's ``Response`` with
        ``raw=True`` (then a 4.xx is returned, not raised).
        """
        p = Path.parse(path)
        response = self._call(lambda d: d.read(p, accept=accept, timeout=timeout), timeout)
        if raw:
            return response
        response.raise_for_status()
        return _single_value(p, response.values)

    def discover(self, path: str | Path, *, timeout: float | None = None) -> Any:
        """Discover ``path``; returns the parsed links of the 2.05 answer."""
        p = Path.parse(path)
        response = self._call(lambda d: d.discover(p, timeout=timeout), timeout)
        response.raise_for_status()
        return response.links

    def write(
        self,
        path: str | Path,
        value: Any,
        *,
        content_format: int | None = None,
        partial: bool = False,
        block_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Write a value (or ``{Path: value}`` mapping) to ``path``; returns the Response.

        A large ``bytes`` value to ``/5/0/0`` is a PUSH (Block1, ``block_size`` bytes per
        block). ``timeout`` bounds the whole operation from the caller's side; the server also
        applies its own progress-based timeout to each block. ``progress`` runs on the loop
        thread.
        """
        p = Path.parse(path)
        if timeout is None and isinstance(value, bytes | bytearray) and len(value) > 1024:
            # A PUSH: allow time in proportion to the number of blocks, still bounded.
            blocks = len(value) // (block_size or 1024) + 1
            call_timeout: float | None = self._lab.request_timeout + blocks * 0.5
        else:
            call_timeout = timeout
        response = self._call(
            lambda d: d.write(
                p,
                value,
                content_format=content_format,
                partial=partial,
                block_size=block_size,
                progress=progress,
                timeout=timeout,
            ),
            call_timeout,
        )
        response.raise_for_status()
        return response

    def execute(
        self, path: str | Path, args: str | None = None, *, timeout: float | None = None
    ) -> Any:
        """Execute ``path`` (e.g. ``/5/0/2`` Update); returns the Response."""
        p = Path.parse(path)
        response = self._call(lambda d: d.execute(p, args, timeout=timeout), timeout)
        response.raise_for_status()
        return response

    def write_attributes(
        self, path: str | Path, *, timeout: float | None = None, **attributes: Any
    ) -> Any:
        """Write-Attributes (``pmin``, ``pmax``, ``gt``, ``lt``, ``st``) on ``path``."""
        p = Path.parse(path)
        response = self._call(
            lambda d: d.write_attributes(p, timeout=timeout, **attributes), timeout
        )
        response.raise_for_status()
        return response

    def observe(
        self,
        path: str | Path,
        callback: Callable[[Any], None] | None = None,
        *,
        accept: int | None = None,
        timeout: float | None = None,
    ) -> ObservationHandle:
        """Observe ``path``; ``callback(response)`` runs on the loop thread per notification."""
        p = Path.parse(path)
        observation = self._call(
            lambda d: d.observe(p, callback, accept=accept, timeout=timeout), timeout
        )
        return ObservationHandle(self._lab._core, observation, p)  # noqa: SLF001 - the handle's own lab

    # -- simulated device conveniences -------------------------------------------------
    def _sim(self) -> Any:
        device = self.simulated
        if device is None:
            raise LookupError(
                f"{self.endpoint!r} is not a simulated device of this lab (use read() instead)"
            )
        return device

    @property
    def state(self) -> int:
        """/5/0/3 State (0 IDLE .. 3 UPDATING)."""
        device = self.simulated
        if device is None:
            return int(self.read("/5/0/3"))
        return int(self._lab.call(lambda: device.fw.state, timeout=self._lab.request_timeout))

    @property
    def result(self) -> int:
        """/5/0/5 Update Result (0 INITIAL .. 11 DEFERRED)."""
        device = self.simulated
        if device is None:
            return int(self.read("/5/0/5"))
        return int(self._lab.call(lambda: device.fw.result, timeout=self._lab.request_timeout))

    @property
    def firmware_version(self) -> str:
        """/3/0/3 Firmware Version."""
        device = self.simulated
        if device is None:
            return str(self.read("/3/0/3"))
        return str(
            self._lab.call(lambda: device.firmware_version, timeout=self._lab.request_timeout)
        )

    @property
    def port(self) -> int | None:
        device = self.simulated
        return None if device is None else device.port

    def value(self, path: str | Path) -> Any:
        """A simulated device's own current value of a resource (no CoAP involved)."""
        device = self._sim()
        p = Path.parse(path)
        return self._lab.call(lambda: device.value(p), timeout=self._lab.request_timeout)

    def set_value(self, path: str | Path, value: Any) -> None:
        """Change a simulated device's resource locally (notifies observers)."""
        device = self._sim()
        p = Path.parse(path)
        self._lab.call(lambda: device.set_value(p, value), timeout=self._lab.request_timeout)

    def set_values(self, values: Mapping[str | Path, Any]) -> None:
        """Change several resources of a simulated device at one instant (RSSI and Link
        Quality together: one ``link`` event with both; observers notified)."""
        device = self._sim()
        parsed = {Path.parse(p): v for p, v in values.items()}
        self._lab.call(lambda: device.set_values(parsed), timeout=self._lab.request_timeout)

    def reboot(self, *, timeout: float | None = None) -> None:
        """Power-cycle a simulated device (it registers again from a new port)."""
        device = self._sim()
        limit = self._lab.request_timeout * 2 if timeout is None else timeout
        self._lab.call(device.reboot(), timeout=limit)

    def stop(self, *, deregister: bool = True, timeout: float = 5.0) -> None:
        """Stop a simulated device (De-register first unless ``deregister=False``)."""
        device = self._sim()
        self._lab.call(device.stop(deregister=deregister, timeout=timeout), timeout=timeout + 5)
        with self._lab._core.lock:  # noqa: SLF001 - the handle's own lab
            self._lab._core.devices.pop(self.endpoint, None)  # noqa: SLF001 - the handle's own lab

    def wait_for_registration(self, *, timeout: float = 10.0, after: float | None = None) -> Any:
        """Block until the endpoint is registered (newer than ``after``); returns the record."""
        return self._lab.wait_for_registration(self.endpoint, timeout=timeout, after=after)

    def __repr__(self) -> str:
        kind = "simulated" if self.simulated is not None else "device"
        return f"<DeviceHandle {self.endpoint} ({kind})>"

    def _repr_html_(self) -> str:
        reg = self.registration
        rows = [("endpoint", self.endpoint), ("registered", "yes" if reg else "no")]
        if reg is not None:
            rows.append(("address", format_address(getattr(reg, "address", None))))
            rows.append(("lifetime", str(getattr(reg, "lifetime", ""))))
        device = self.simulated
        if device is not None:
            rows.append(("firmware", str(device.firmware_version)))
            rows.append(
                (
                    "state / result",
                    f"{_state_text(device.fw.state)} / {_state_text(device.fw.result)}",
                )
            )
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table>{body}</table>"


class Lab:
    """An LwM2M server, simulated devices and a recorder behind one synchronous API.

    Parameters
    ----------
    host, port
        Where the LwM2M server listens (loopback and an ephemeral port by default).
    record
        ``None`` keeps the event table in memory only; a directory (e.g. ``"data/runs"``) also
        saves the run to ``<record>/<run_id>/`` (``events.parquet`` + ``manifest.json``).
    retain_events
        ``True`` (default): the recorder also keeps every event in memory, so
        :meth:`events` is a quick copy. ``False`` (needs ``record``): events are streamed to
        the run's files and leave memory once written (at most 0.5 s of wall time later, 2 s
        on virtual time), so a long or large run (10,000 devices for a simulated day) does
        not hold its event table in RAM; :meth:`events` still returns the whole table, read
        back from disk (slower: use it between steps, not on every tick).
    seed
        Lab seed; each simulated device gets a seed derived from it and its endpoint name.
    request_timeout
        Default bound (seconds) of one LwM2M request from the server to a device.
    run_id
        Name of the run (default: a timestamp).
    clock
        The lab's clock, handed to the server and the devices. With a
        :class:`~labkit.timebase.ScaledClock`, the devices the lab creates also get its scale
        (``time_scale=``), so their timers run on the same simulated time. ``"virtual"``
        runs the lab on virtual time (:mod:`labkit.virtual`): an event loop whose clock is
        simulated and jumps to the next timer, and an in-process network instead of sockets.
        Simulated time then stands still between calls and runs while a call waits
        (``lab.update()``, ``lab.add_device()``) or when asked (:meth:`run_for`,
        :meth:`run_until`); results depend on the seed only, never on the CPU.
    epoch
        Virtual runs only: simulated Unix time at which the run starts (default
        :data:`labkit.virtual.DEFAULT_EPOCH`, 2025-01-01T00:00:00Z).
    security
        ``"nosec"`` (plain CoAP) or ``"psk"``: the server also listens on ``coaps://``
        (DTLS-PSK, :mod:`labkit.dtls`) and every device the lab creates gets its own identity
        and key (seeded) and registers over DTLS. Passing ``psk_key=`` to :meth:`add_device`
        gives that device a different key than the server holds: its handshake fails on
        purpose, and a ``security`` event says why.
    bootstrap
        Start an LwM2M Bootstrap server (:mod:`labkit.server.bootstrap`, on ``coaps://``) and
        give the devices only its URI and a bootstrap PSK: each bootstraps, then registers to
        the lab's server (over DTLS with ``security="psk"``).

    The lab starts on :meth:`start`, on entering a ``with`` block, or implicitly on first use.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record: str | FsPath | None = None,
        retain_events: bool = True,
        seed: int = 0,
        request_timeout: float = 10.0,
        run_id: str | None = None,
        clock: Callable[[], float] | str = time.time,
        epoch: float | None = None,
        security: str = "nosec",
        bootstrap: bool = False,
    ) -> None:
        if security not in ("nosec", "psk"):
            raise ValueError(f"security must be 'nosec' or 'psk', not {security!r}")
        if not retain_events and record is None:
            raise ValueError(
                "retain_events=False streams the events to the run's files: give record= a "
                "directory (a memory-only lab must keep its events)"
            )
        if clock == "virtual" and (security != "nosec" or bootstrap):
            raise ValueError(
                "DTLS (security='psk') and bootstrap=True need real sockets: use a scaled or "
                "wall clock; the virtual network carries plain CoAP only"
            )
        virtual_loop = None
        if isinstance(clock, str):
            if clock != "virtual":
                raise ValueError(f"clock must be 'virtual' or a callable, got {clock!r}")
            from labkit.virtual import DEFAULT_EPOCH, VirtualClock, VirtualEventLoop

            virtual_loop = VirtualEventLoop(
                epoch=DEFAULT_EPOCH if epoch is None else float(epoch), seed=seed
            )
            clock = VirtualClock(virtual_loop)
        elif epoch is not None:
            raise ValueError("epoch= is only for clock='virtual'")
        self._core = _Core(
            host=host,
            port=port,
            record=None if record is None else str(record),
            run_id=run_id,
            seed=seed,
            retain_events=bool(retain_events),
            request_timeout=request_timeout,
            clock=clock,
            virtual_loop=virtual_loop,
            security=security,
            bootstrap=bootstrap,
        )
        self._next_index = itertools.count(1)
        self._finalizer = weakref.finalize(self, self._core.close)

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> Lab:
        """Start the loop thread and the server (idempotent). Returns the lab."""
        sweep_stale_flash_once()  # (once per process: flash folders of killed runs)
        self._core.start()
        return self

    def close(self) -> None:
        """De-register and stop devices, stop the server, close the recorder and the loop.

        Idempotent; also runs when the lab is garbage-collected or the interpreter exits.
        """
        self._finalizer()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def running(self) -> bool:
        return self._core.started and not self._core.closed

    def _ensure_started(self) -> None:
        if not self._core.started and not self._core.closed:
            self.start()

    # -- plumbing ----------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The lab's event loop (runs in its own thread)."""
        self._ensure_started()
        assert self._core.loop is not None
        return self._core.loop

    @property
    def server(self) -> Any:
        """The :class:`~labkit.server.LwM2MServer` (its async API runs on :attr:`loop`)."""
        self._ensure_started()
        return self._core.server

    @property
    def server_uri(self) -> str:
        """``coap://127.0.0.1:<port>``: what devices register to."""
        return str(self.server.uri)

    @property
    def bootstrap_server(self) -> Any:
        """The :class:`~labkit.server.bootstrap.BootstrapServer` of ``Lab(bootstrap=True)``."""
        self._ensure_started()
        return self._core.bootstrap_server

    @property
    def repository(self) -> Any:
        """The lab's :class:`~labkit.repo.repository.FirmwareRepository` (CoAP Block2 + HTTP
        Range on loopback), started on first use."""
        self._ensure_started()
        if self._core.repository is None:
            self.call(self._core._astart_repository(), timeout=10 + CALL_GRACE)  # noqa: SLF001 - the handle's own lab
        return self._core.repository

    def publish(self, name: str, image: bytes | str | FsPath) -> dict[str, str]:
        """Put an image (bytes or a file) in the lab repository for PULL downloads (an image
        already published under ``name`` is replaced).

        Returns ``{"coap": "coap://127.0.0.1:<port>/fw/<name>", "http": "http://..."}``.
        """
        repository = self.repository
        data = image if isinstance(image, bytes) else FsPath(image).read_bytes()

        def put() -> None:
            if name in repository:
                repository.replace(name, data)  # re-running a notebook cell is fine
            else:
                repository.add(name, data)

        self.call(put, timeout=DEFAULT_CALL_TIMEOUT)
        return {"coap": repository.coap_uri(name), "http": repository.http_uri(name)}

    def update(
        self,
        endpoint: str,
        package: bytes | str | FsPath,
        *,
        method: str = "push",
        protocol: str = "coap",
        timeout: float | None = None,
        **options: Any,
    ) -> Any:
        """Update one registered device and wait for the outcome (the seed's four steps).

        A synchronous front to :func:`labkit.fota.update` on the lab's server and repository;
        ``options`` are passed through (``block_size``, ``cancel_after``, ...). ``timeout`` is
        the no-progress timeout of the update (default 60 s); the call itself is bounded by
        the update's own timeouts. Returns a :class:`~labkit.fota.Outcome`.
        """
        from labkit.fota import update

        no_progress = 60.0 if timeout is None else timeout
        overall = options.pop("overall_timeout", 10 * no_progress)
        if method == "pull":
            options.setdefault("repository", self.repository)
        work = update(
            self.server,
            endpoint,
            package,
            method=method,
            protocol=protocol,
            timeout=no_progress,
            overall_timeout=overall,
            clock=self._core.clock,
            **options,
        )
        return self.call(work, timeout=overall + CALL_GRACE)

    @property
    def seed(self) -> int:
        return self._core.seed

    @property
    def request_timeout(self) -> float:
        return self._core.request_timeout

    @property
    def run_id(self) -> str:
        """The run's identifier (the directory name under ``record`` when saving)."""
        return str(self.recorder.run_id)

    @property
    def run_dir(self) -> FsPath | None:
        """Where the run is saved, or ``None`` for a memory-only lab."""
        path = self.recorder.path
        return None if path is None else FsPath(path)

    @property
    def recorder(self) -> Any:
        self._ensure_started()
        return self._core.recorder

    def call(
        self,
        work: Coroutine[Any, Any, T] | Awaitable[T] | Callable[[], Any],
        timeout: float | None = None,
    ) -> Any:
        """Run a coroutine (or a function, sync or async) on the lab loop and wait for it.

        Raises :class:`TimeoutError` (and cancels the work) after ``timeout`` seconds
        (default 60). Must not be called from the loop thread itself.
        """
        self._ensure_started()
        return self._core.call(work, timeout)

    def submit(
        self,
        work: Coroutine[Any, Any, T] | Awaitable[T] | Callable[[], Any],
        *,
        sim_limit: float | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Schedule work on the lab loop and return at once (for buttons and background jobs).

        In a virtual lab simulated time runs freely until the work ends (at most ``sim_limit``
        simulated seconds when given)."""
        self._ensure_started()
        return self._core.submit(work, sim_limit=sim_limit)

    def subscribe(self, listener: EventSink) -> Callable[[], None]:
        """Call ``listener(event)`` (on the loop thread) for every event; returns unsubscribe."""
        self._core.sink.listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._core.sink.listeners:
                self._core.sink.listeners.remove(listener)

        return unsubscribe

    def emit(self, kind: str, **columns: Any) -> None:
        """Record an event of the lab itself (e.g. ``lab.emit("note", detail="start")``)."""
        event = Event(ts=self._core.clock(), source="lab", kind=kind, **columns)
        self.call(lambda: self._core.sink(event), timeout=self.request_timeout)

    # -- devices -----------------------------------------------------------------------
    def _next_endpoint(self, prefix: str = "sim-") -> str:
        taken = set(self._core.devices)
        while True:
            name = f"{prefix}{next(self._next_index):04d}"
            if name not in taken:
                return name

    def _new_device(self, endpoint: str, kwargs: dict[str, Any]) -> Any:
        from labkit.client import SimulatedDevice

        if endpoint in self._core.devices:
            raise ValueError(f"the lab already has a simulated device named {endpoint!r}")
        options: dict[str, Any] = {
            "host": self._core.host,
            "on_event": self._core.sink,
            "clock": self._core.clock,
            "seed": derive_seed(self._core.seed, endpoint),
        }
        scale = getattr(self._core.clock, "scale", None)  # a ScaledClock: scale the timers too
        if isinstance(scale, int | float) and scale != 1.0:
            options["time_scale"] = float(scale)
        options.update(kwargs)
        server_uri = options.pop("server_uri", None) or self.server_uri
        core = self._core
        if core.security == "psk" or core.bootstrap:
            server_uri = self._secure_device_options(endpoint, server_uri, options)
        return SimulatedDevice(endpoint, server_uri, **options)

    def _secure_device_options(
        self, endpoint: str, server_uri: str, options: dict[str, Any]
    ) -> Any:
        """Keys for a device of a ``security="psk"`` or ``bootstrap=True`` lab (loop thread)."""
        import random

        from labkit.dtls import PskEntry

        core = self._core
        rng = random.Random(derive_seed(core.seed, endpoint + "/psk"))
        dm_key, bs_key = rng.randbytes(16), rng.randbytes(16)
        dm_identity = f"{endpoint}-id".encode()
        wanted_key = options.pop("psk_key", None)
        if core.security == "psk":
            core.psk_store.add(PskEntry(endpoint, dm_identity, dm_key))
            server_uri = core.server.coaps_uri
        if not core.bootstrap:
            if core.security == "psk":
                options["psk_identity"] = options.get("psk_identity", dm_identity)
                options["psk_key"] = wanted_key if wanted_key is not None else dm_key
            return server_uri
        from labkit.server.bootstrap import BootstrapConfig

        bss = core.bootstrap_server
        if core.security == "psk":
            bss.configs[endpoint] = BootstrapConfig(
                server_uri, dm_identity, wanted_key if wanted_key is not None else dm_key
            )
        bs_identity = f"{endpoint}-bs".encode()
        bss.psk_store.add(PskEntry(endpoint, bs_identity, bs_key))
        options["bootstrap_uri"] = bss.coaps_uri
        options["psk_identity"], options["psk_key"] = bs_identity, bs_key
        return None

    def add_device(
        self, endpoint: str | None = None, *, timeout: float = 10.0, **device_kwargs: Any
    ) -> DeviceHandle:
        """Create a :class:`~labkit.client.SimulatedDevice`, register it and return its handle.

        ``endpoint`` defaults to ``sim-0001``, ``sim-0002``...; ``device_kwargs`` go to the
        device (``firmware_version=``, ``lifetime=``, ``lwm2m_version=``...). Pass
        ``server_uri="coap://host:port"`` to point the device at another LwM2M server than the
        lab's (its LwM2M operations then go through that server; ``state``, ``value()`` and the
        other simulated-device conveniences still work).
        """
        self._ensure_started()
        endpoint = endpoint or self._next_endpoint()
        device = self.call(lambda: self._new_device(endpoint, device_kwargs), timeout=timeout)
        with self._core.lock:
            self._core.devices[endpoint] = device
        try:
            self.call(device.start(timeout=timeout), timeout=timeout + CALL_GRACE)
        except BaseException:
            with self._core.lock:
                self._core.devices.pop(endpoint, None)
            if not self._core.closed:
                self.call(device.stop(deregister=False, timeout=2), timeout=CALL_GRACE + 2)
            raise
        return DeviceHandle(self, endpoint)

    def add_devices(
        self,
        n: int,
        prefix: str = "sim-",
        *,
        timeout: float = 10.0,
        concurrency: int = DEFAULT_CONCURRENCY,
        **device_kwargs: Any,
    ) -> list[DeviceHandle]:
        """Create ``n`` simulated devices and register them concurrently (``concurrency`` at once).

        Raises :class:`RuntimeError` naming the devices that failed to register (the others
        stay in the lab).
        """
        self._ensure_started()
        if n < 0:
            raise ValueError("n must be >= 0")
        names = [self._next_endpoint(prefix) for _ in range(n)]

        def build() -> list[Any]:
            return [self._new_device(name, dict(device_kwargs)) for name in names]

        devices = self.call(build, timeout=timeout + CALL_GRACE)
        with self._core.lock:
            self._core.devices.update(zip(names, devices, strict=True))
        rounds = n // max(1, concurrency) + 1
        outcomes = self.call(
            start_devices(devices, timeout=timeout, concurrency=concurrency),
            timeout=(timeout + CALL_GRACE) * rounds,
        )
        failed = [(name, exc) for name, exc in zip(names, outcomes, strict=True) if exc]
        if failed:
            for name, _ in failed:
                with self._core.lock:
                    device = self._core.devices.pop(name)
                self.call(device.stop(deregister=False, timeout=2), timeout=CALL_GRACE + 2)
            first_name, first_exc = failed[0]
            raise RuntimeError(
                f"{len(failed)} of {n} devices failed to register "
                f"(first: {first_name}: {first_exc!r})"
            )
        return [DeviceHandle(self, name) for name in names]

    def device(self, endpoint: str) -> DeviceHandle:
        """The handle of a simulated device of the lab or of any registered endpoint."""
        self._ensure_started()
        if endpoint not in self._core.devices and endpoint not in self._registrations_snapshot():
            raise KeyError(f"no device {endpoint!r} in the lab and no such registration")
        return DeviceHandle(self, endpoint)

    @property
    def devices(self) -> list[DeviceHandle]:
        """Handles of the lab's simulated devices, in creation order."""
        return [DeviceHandle(self, name) for name in list(self._core.devices)]

    # -- registrations and events ------------------------------------------------------
    def _registrations_snapshot(self) -> dict[str, Any]:
        if not self.running:
            return {}
        snapshot: dict[str, Any] = self.call(
            lambda: dict(self._core.server.registrations), timeout=CALL_GRACE
        )
        return snapshot

    def registrations(self) -> pd.DataFrame:
        """The server's registrations.

        Returns
        -------
        DataFrame
            Columns: ``endpoint``, ``address`` ("host:port" of the last Register/Update),
            ``lifetime`` (s), ``lwm2m``, ``binding``, ``queue_mode``, ``registered_at``,
            ``updated_at``, ``expires_at`` (datetime64 UTC), ``reg_id``; sorted by endpoint.
        """
        import pandas as pd

        regs = self._registrations_snapshot()
        rows = [
            {
                "endpoint": reg.endpoint,
                "address": format_address(getattr(reg, "address", None)),
                "lifetime": int(reg.lifetime),
                "lwm2m": str(reg.lwm2m_version),
                "binding": str(reg.binding),
                "queue_mode": bool(reg.queue_mode),
                "registered_at": _to_datetime(reg.registered_at),
                "updated_at": _to_datetime(reg.updated_at),
                "expires_at": _to_datetime(reg.expires_at),
                "reg_id": str(reg.reg_id),
            }
            for reg in sorted(regs.values(), key=lambda r: r.endpoint)
        ]
        frame = pd.DataFrame(rows, columns=list(REGISTRATION_COLUMNS))
        for column in ("registered_at", "updated_at", "expires_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
        frame["lifetime"] = frame["lifetime"].astype("int64")
        frame["queue_mode"] = frame["queue_mode"].astype("bool")
        return frame

    def events(self) -> pd.DataFrame:
        """The run's event table so far (see :mod:`labkit.record` for its columns).

        With ``retain_events=False`` the table is read back from the run's files (every event
        recorded so far, the ones not yet written included)."""
        self._ensure_started()
        recorder = self._core.recorder
        if recorder is None:
            from labkit.record import empty_frame

            return empty_frame()
        return recorder.frame()  # thread-safe; works after close() too

    def wait_for_registration(
        self, endpoint: str, *, timeout: float = 10.0, after: float | None = None
    ) -> Any:
        """Block until ``endpoint`` registers (after the time ``after``); returns its record."""
        return self.call(
            self.server.wait_for_registration(endpoint, timeout=timeout, after=after),
            timeout=timeout + CALL_GRACE,
        )

    # -- virtual time ------------------------------------------------------------------
    @property
    def virtual(self) -> bool:
        """True for a ``Lab(clock="virtual")``."""
        return self._core.virtual_loop is not None

    @property
    def clock(self) -> Callable[[], float]:
        """The lab's clock (a :class:`~labkit.virtual.VirtualClock` in a virtual lab)."""
        return self._core.clock

    def now(self) -> float:
        """The lab's current time, Unix seconds (simulated in a virtual lab)."""
        return float(self._core.clock())

    def _require_virtual(self, what: str) -> Any:
        loop = self._core.virtual_loop
        if loop is None:
            raise RuntimeError(f"{what} needs a Lab(clock='virtual'); this lab runs on the "
                               "wall clock (use time.sleep or wait_for)")
        self._ensure_started()
        return loop

    def run_for(self, seconds: float) -> float:
        """Let ``seconds`` of simulated time pass (virtual labs); returns the new time.

        Everything due meanwhile happens (registration Updates, campaign steps, timeouts);
        the call takes only the wall time those events need.
        """
        self._require_virtual("run_for()")
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        self.call(asyncio.sleep(seconds), timeout=seconds + CALL_GRACE)
        return self.now()

    def run_until(
        self, until: Callable[[], Any] | float | datetime, *, timeout: float = 3600.0
    ) -> Any:
        """Let simulated time run until a moment or a condition (virtual labs).

        ``until`` is a Unix time (like the event table's ``ts``) or a ``datetime``: time runs
        up to it. Or a predicate: it is evaluated on the lab's loop thread each time the lab
        has finished everything due at the current simulated instant, and time stops at the
        first instant it is truthy (its value is returned). A predicate must be quick and
        must not call the lab synchronously (read simulated devices and the server directly,
        e.g. ``lambda: dev.simulated.fw.state == 0``). Raises :class:`TimeoutError` when
        ``timeout`` simulated seconds pass first.
        """
        loop = self._require_virtual("run_until()")
        if isinstance(until, datetime):
            until = _to_datetime(until).timestamp()  # type: ignore[union-attr]
        if not callable(until):
            target = float(until)
            if target > self.now() + timeout:
                raise TimeoutError(f"{target} is more than {timeout:g} simulated s away")
            return self.run_for(max(0.0, target - self.now()))
        predicate = until

        async def wait() -> Any:
            value = predicate()
            if value:
                return value
            done: asyncio.Future[Any] = loop.create_future()

            def check() -> None:
                if not done.done():
                    result = predicate()
                    if result:
                        done.set_result(result)

            remove = loop.add_idle_hook(check)
            try:
                return await asyncio.wait_for(done, timeout)
            except TimeoutError:
                name = getattr(predicate, "__qualname__", repr(predicate))
                raise TimeoutError(
                    f"{name} did not become true within {timeout:g} simulated s"
                ) from None
            finally:
                remove()

        return self.call(wait(), timeout=timeout + CALL_GRACE)

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.05
    ) -> T:
        """Poll ``predicate()`` in the calling thread until it is truthy; return its value.

        Raises :class:`TimeoutError` after ``timeout`` seconds. The lab keeps running
        meanwhile (it lives in its own thread). In a virtual lab the seconds are simulated:
        each poll lets ``interval`` simulated seconds pass.
        """
        if self.virtual:
            waited = 0.0
            while True:
                value = predicate()
                if value:
                    return value
                if waited >= timeout:
                    name = getattr(predicate, "__qualname__", repr(predicate))
                    raise TimeoutError(
                        f"{name} did not become true within {timeout:g} simulated s"
                    )
                self.run_for(interval)
                waited += interval
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                name = getattr(predicate, "__qualname__", repr(predicate))
                raise TimeoutError(f"{name} did not become true within {timeout:g} s")
            time.sleep(interval)

    # -- display -----------------------------------------------------------------------
    def __repr__(self) -> str:
        if not self.running:
            state = "closed" if self.closed else "not started"
            return f"<Lab {state}>"
        return f"<Lab {self.server_uri} devices={len(self._core.devices)}>"

    def _repr_html_(self) -> str:
        esc = html.escape
        if not self.running:
            return f"<p><b>labkit Lab</b>: {'closed' if self.closed else 'not started'}</p>"
        try:
            regs = self._registrations_snapshot()
        except Exception as exc:  # display must never raise
            return f"<p><b>labkit Lab</b> at {esc(self.server_uri)}: {esc(repr(exc))}</p>"
        endpoints = sorted(set(regs) | set(self._core.devices))
        rows = []
        for ep in endpoints:
            reg = regs.get(ep)
            device = self._core.devices.get(ep)
            fw = str(device.firmware_version) if device is not None else ""
            state = _state_text(device.fw.state) if device is not None else ""
            rows.append(
                "<tr>"
                f"<td>{esc(ep)}</td>"
                f"<td>{'simulated' if device is not None else 'real'}</td>"
                f"<td>{esc(format_address(getattr(reg, 'address', None))) if reg else '-'}</td>"
                f"<td>{esc(str(reg.lifetime)) if reg else '-'}</td>"
                f"<td>{esc(fw)}</td><td>{esc(state)}</td>"
                "</tr>"
            )
        head = (
            "<tr><th>endpoint</th><th>kind</th><th>address</th><th>lifetime</th>"
            "<th>firmware</th><th>/5/0/3</th></tr>"
        )
        return (
            f"<div><b>labkit Lab</b> — LwM2M server <code>{esc(self.server_uri)}</code>, "
            f"{len(regs)} registered, {len(self._core.devices)} simulated"
            f"<table>{head}{''.join(rows)}</table></div>"
        )
