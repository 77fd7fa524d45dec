"""update() over real CoAP: the lab's LwM2MServer against SimulatedDevices.

The scenarios run on virtual time (:mod:`labkit.virtual`: simulated time that jumps to the next
timer, aiocoap over the in-process network, HTTP over its in-memory streams), so timeouts that
follow progress, stuck devices and overall bounds are decided by simulated time, never by how
busy the machine is (``run(..., virtual=False)`` runs a scenario over loopback sockets).

Nothing is mocked on the orchestrator's side. Devices that misbehave are SimulatedDevices with
one behaviour changed (a subclass, or a repository that stops answering), standing in for the
third-party clients the orchestrator must cope with (digest 1.7): one that never notifies, one
that does not accept Observe, one that forgets /5 across the reboot (Zephyr, Wakaama), one
whose install fails, one that stays in DOWNLOADING forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from labkit.client import InstallOutcome, SimulatedDevice
from labkit.client.firmware import default_installer
from labkit.client.store import OperationError
from labkit.events import Event
from labkit.fota import Outcome, update
from labkit.linkem import LinkRelay
from labkit.lwm2m.fota import FirmwareUpdateMachine
from labkit.lwm2m.objects import DeliveryMethod, ProtocolSupport, State, UpdateResult
from labkit.server import LwM2MServer
from labkit.virtual.loop import VirtualEventLoop, current_clock
from tests.linkem.links import steady_link

T = TypeVar("T")
KIB = 1024


def run(
    scenario: Callable[[], Awaitable[T]], timeout: float = 60.0, *, virtual: bool = True
) -> T:
    """Run a scenario bounded by ``timeout`` seconds: simulated seconds on a virtual-time
    loop (default), wall seconds over real sockets with ``virtual=False``."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await scenario()

    if not virtual:
        return asyncio.run(main())
    loop = VirtualEventLoop(seed=1)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def now() -> float:
    """The running loop's time (simulated on the virtual loop)."""
    return asyncio.get_running_loop().time()


def lab_package(version: str, size: int, seed: int = 1) -> bytes:
    head = f"LABKIT-FW {version}\n".encode()
    return head + random.Random(seed).randbytes(size - len(head))


class Lab:
    """A running server, its events, and the devices started for one test."""

    def __init__(self, server: LwM2MServer, events: list[Event]) -> None:
        self.server = server
        self.events = events
        self.devices: list[SimulatedDevice] = []
        self.server_uri: str | None = None  # where devices register (a link relay, say)

    async def device(
        self, endpoint: str = "sim-1", cls: type = SimulatedDevice, **kwargs: Any
    ) -> SimulatedDevice:
        kwargs.setdefault("lifetime", 60)
        kwargs.setdefault("clock", current_clock())
        dev = cls(endpoint, self.server_uri or self.server.uri, **kwargs)
        self.devices.append(dev)
        await dev.start(timeout=10)
        await self.server.wait_for_registration(endpoint, timeout=10)
        return dev

    def requests(self, path: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e.source == "server" and e.kind == "request" and (path is None or e.path == path)
        ]

    def notes(self) -> list[str]:
        return [e.detail or "" for e in self.events if e.kind == "note"]


@contextlib.asynccontextmanager
async def lab(**kwargs: Any) -> AsyncIterator[Lab]:
    events: list[Event] = []
    server = LwM2MServer(on_event=events.append, clock=current_clock(), **kwargs)
    await server.start()
    the_lab = Lab(server, events)
    try:
        yield the_lab
    finally:
        for dev in the_lab.devices:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(dev.stop(timeout=3), 10)
        await server.stop()


@contextlib.asynccontextmanager
async def repository() -> AsyncIterator[Any]:
    repo_mod = pytest.importorskip("labkit.repo.repository")
    repo = repo_mod.FirmwareRepository(clock=current_clock())
    await repo.start()
    try:
        yield repo
    finally:
        await repo.stop()


# -- test doubles: one behaviour of a real client each ------------------------------------------
class SilentDevice(SimulatedDevice):
    """Accepts observations but never sends a notification (all of them lost)."""

    def _flush(self) -> None:
        self._dirty = None


class NoObserveDevice(SimulatedDevice):
    """Answers an Observe like a plain Read (no Observe option): the client does not observe."""

    def _add_observation(self, request: Any, serverobs: Any) -> None:
        return None


class ForgetfulDevice(SimulatedDevice):
    """Does not persist /5 across a reboot: comes back as State 0 / Result 0 (Zephyr, Wakaama)."""

    def _recover_after_boot(self) -> None:
        super()._recover_after_boot()
        agent = self._firmware
        m = agent.machine
        if m.state is State.IDLE and m.result is UpdateResult.SUCCESS:
            agent.machine = FirmwareUpdateMachine.restore(
                state=State.IDLE,
                result=UpdateResult.INITIAL,
                last_state_change=self.now(),
                object_version=m.object_version,
                protocols=m.protocols,
                delivery=m.delivery,
            )
            agent.sync()


class NoProtocolSupportDevice(SimulatedDevice):
    """Does not implement the optional /5/0/8: a Read answers 4.04 (CoAP is then assumed)."""

    def _read(self, path: Any, accept: int | None) -> Any:
        if str(path).startswith("/5/0/8"):
            raise OperationError.not_found(f"{path}")
        return super()._read(path, accept)


class NeverInstallsDevice(SimulatedDevice):
    """Accepts Execute Update, goes to UPDATING and then never reboots nor reports."""

    async def _install_and_reboot(self) -> None:
        await asyncio.sleep(3600)


def assert_clean_success(outcome: Outcome, package: bytes) -> None:
    assert outcome.success, outcome
    assert outcome.result is UpdateResult.SUCCESS
    assert outcome.result_line == "RESULT 1 SUCCESS"
    assert outcome.exit_code == 0
    assert outcome.final_state is State.IDLE
    assert outcome.fw_before == "1.0.0" and outcome.fw_after == "2.0.0"
    assert outcome.rebooted and outcome.stuck_in is None and not outcome.timed_out
    # On the ideal in-process network a request takes no simulated time, so a stage may last
    # 0 s; the install (the device's install_delay) makes the whole update last longer.
    for stage in ("check_s", "download_s", "update_s", "reboot_s"):
        value = getattr(outcome, stage)
        assert value is not None and value >= 0, (stage, outcome)
    assert outcome.duration_s >= 0.2, outcome
    assert outcome.bytes_sent == len(package) == outcome.package_size
    assert "suspicious" not in outcome.reason


# -- success ------------------------------------------------------------------------------------
def test_push_updates_the_device_and_reports_every_stage() -> None:
    package = lab_package("2.0.0", 100 * KIB)
    stages: list[str] = []
    progress: list[int] = []

    async def scenario() -> tuple[Outcome, Lab]:
        async with lab() as the_lab:
            dev = await the_lab.device("sim-1")
            outcome = await update(
                the_lab.server,
                "sim-1",
                package,
                method="push",
                block_size=512,
                timeout=10,
                on_stage=lambda stage, detail: stages.append(stage),
                on_progress=lambda done, total: progress.append(done),
            )
            assert dev.firmware_version == "2.0.0"
            return outcome, the_lab

    outcome, the_lab = run(scenario)
    assert_clean_success(outcome, package)
    assert outcome.blocks == -(-len(package) // 512)
    assert outcome.method == "push" and outcome.block_size == 512
    assert outcome.expected_version == "2.0.0"
    assert outcome.notifications >= 2  # State 1, 2, 3 as notifications
    assert progress[-1] == len(package)
    assert stages == [
        "check",
        "check",
        "download",
        "download",
        "update",
        "update",
        "verify",
        "verify",
        "done",
    ]
    notes = the_lab.notes()
    for wanted in (
        "stage check started",
        "stage download started",
        "stage update started",
        "waiting for re-registration",
        "stage verify started",
        "outcome: RESULT 1",
    ):
        assert any(n.startswith(wanted) for n in notes), (wanted, notes)
    # pmin=0 written and both resources observed, before and after the reboot
    attrs = [e for e in the_lab.requests() if e.detail == "write-attributes"]
    assert {e.path for e in attrs} == {"/5/0/3", "/5/0/5"} and len(attrs) == 4
    assert len(the_lab.requests("/5/0/2")) == 1
    assert not the_lab.requests("/5/0/1")


def test_pull_over_coap_from_a_repository() -> None:
    package = lab_package("2.0.0", 50 * KIB)

    async def scenario() -> tuple[Outcome, Lab, int]:
        async with lab() as the_lab, repository() as repo:
            await the_lab.device("sim-1")
            outcome = await update(
                the_lab.server,
                "sim-1",
                package,
                method="pull",
                protocol="coap",
                repository=repo,
                timeout=10,
            )
            return outcome, the_lab, repo.served_blocks(repo.names()[0])

    outcome, the_lab, served = run(scenario)
    assert_clean_success(outcome, package)
    assert outcome.uri is not None and outcome.uri.startswith("coap://127.0.0.1:")
    assert outcome.blocks == served == 50
    writes = the_lab.requests("/5/0/1")
    assert len(writes) == 1 and not the_lab.requests("/5/0/0")


def test_pull_starts_its_own_repository_when_none_is_given() -> None:
    package = lab_package("2.0.0", 8 * KIB)

    async def scenario() -> Outcome:
        async with lab() as the_lab:
            await the_lab.device("sim-1")
            return await update(the_lab.server, "sim-1", package, method="pull", timeout=10)

    outcome = run(scenario)
    assert_clean_success(outcome, package)


def test_pull_over_http() -> None:
    package = lab_package("2.0.0", 40 * KIB)

    async def scenario() -> Outcome:
        async with lab() as the_lab, repository() as repo:
            await the_lab.device("sim-1", protocols=(ProtocolSupport.COAP, ProtocolSupport.HTTP))
            return await update(
                the_lab.server,
                "sim-1",
                package,
                method="pull",
                protocol="http",
                repository=repo,
                timeout=10,
            )

    outcome = run(scenario)  # HTTP over the virtual network's in-memory streams
    if outcome.result is UpdateResult.UNSUPPORTED_PROTOCOL:
        pytest.skip("the simulated device has no HTTP downloader yet (Result 9)")
    assert_clean_success(outcome, package)
    assert outcome.uri is not None and outcome.uri.startswith("http://")


def test_timeouts_follow_progress_a_long_push_is_not_cut() -> None:
    # 4096 blocks of 64 B take longer than the 1 s no-progress timeout, but every block moves.
    package = lab_package("2.0.0", 256 * KIB)

    async def scenario() -> Outcome:
        async with lab() as the_lab:
            await the_lab.device("sim-1")
            return await update(
                the_lab.server,
                "sim-1",
                package,
                method="push",
                block_size=64,
                timeout=1.0,
                reboot_timeout=10,
            )

    outcome = run(scenario)
    assert_clean_success(outcome, package)
    assert outcome.blocks == 4096


# -- clients that differ -------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [SilentDevice, NoObserveDevice])
def test_lost_notifications_polling_finishes_the_update(cls: type) -> None:
    package = lab_package("2.0.0", 16 * KIB)

    async def scenario() -> tuple[Outcome, Lab]:
        async with lab() as the_lab:
            await the_lab.device("sim-1", cls=cls)
            outcome = await update(
                the_lab.server, "sim-1", package, method="push", timeout=5, poll_interval=0.3
            )
            return outcome, the_lab

    outcome, the_lab = run(scenario)
    assert_clean_success(outcome, package)
    assert outcome.notifications == 0
    assert outcome.polls >= 1
    if cls is NoObserveDevice:
        assert any("does not accept Observe" in n for n in the_lab.notes())


def test_no_persistence_success_is_judged_by_the_firmware_version() -> None:
    package = lab_package("2.0.0", 8 * KIB)

    async def scenario() -> Outcome:
        async with lab() as the_lab:
            await the_lab.device("sim-1", cls=ForgetfulDevice)
            return await update(the_lab.server, "sim-1", package, method="push", timeout=10)

    outcome = run(scenario)
    assert outcome.success and outcome.exit_code == 0
    assert outcome.result is UpdateResult.INITIAL  # what the device says after the reboot
    assert outcome.result_line == "RESULT 1 SUCCESS"
    assert "does not persist" in outcome.reason and "2.0.0" in outcome.reason


def test_success_with_an_unchanged_version_is_reported_as_suspicious() -> None:
    package = lab_package("2.0.0", 8 * KIB)

    async def scenario() -> Outcome:
        async with lab() as the_lab:
            await the_lab.device(
                "sim-1", installer=lambda pkg: InstallOutcome(success=True, new_version="1.0.0")
            )
            return await update(the_lab.server, "sim-1", package, method="push", timeout=10)

    outcome = run(scenario)
    assert outcome.success and outcome.result is UpdateResult.SUCCESS
    assert outcome.fw_before == outcome.fw_after == "1.0.0"
    assert "suspicious" in outcome.reason


# -- failures ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("installer", "package", "result", "state"),
    [
        # install fails, image kept: back to DOWNLOADED with 8 (obj 1.0 text, Anjay)
        (
            lambda pkg: InstallOutcome(success=False, result=UpdateResult.UPDATE_FAILED),
            lab_package("2.0.0", 4 * KIB),
            UpdateResult.UPDATE_FAILED,
            State.DOWNLOADED,
        ),
        # a device that checks the package: a broken one fails the integrity check -> IDLE / 5
        (
            lambda pkg: (
                default_installer(pkg)
                if pkg.startswith(b"LABKIT-FW ")
                else InstallOutcome(
                    success=False, result=UpdateResult.INTEGRITY_CHECK_FAILURE, image_usable=False
                )
            ),
            random.Random(5).randbytes(4 * KIB),
            UpdateResult.INTEGRITY_CHECK_FAILURE,
            State.IDLE,
        ),
    ],
)
def test_failed_install_ends_with_the_devices_result(installer, package, result, state) -> None:
    async def scenario() -> Outcome:
        async with lab() as the_lab:
            await the_lab.device("sim-1", installer=installer)
            return await update(the_lab.server, "sim-1", package, method="push", timeout=10)

    outcome = run(scenario)
    assert not outcome.success and outcome.exit_code == 1
    assert outcome.result is result and outcome.final_state is state
    assert outcome.result_line == f"RESULT {int(result)} {result.name}"
    assert outcome.rebooted and outcome.fw_after == "1.0.0"


def test_a_protocol_the_device_did_not_list_is_refused_before_anything_is_sent() -> None:
    async def scenario() -> tuple[Outcome, Lab]:
        async with lab() as the_lab:
            await the_lab.device("sim-1", protocols=(ProtocolSupport.COAP,))
            outcome = await update(
                the_lab.server,
                "sim-1",
                lab_package("2.0.0", KIB),
                method="pull",
                protocol="http",
                timeout=5,
            )
            return outcome, the_lab

    outcome, the_lab = run(scenario)
    assert outcome.refused and not outcome.success and outcome.exit_code == 1
    assert outcome.result_line == "RESULT - REFUSED"
    assert "does not list http" in outcome.reason
    assert not the_lab.requests("/5/0/1") and not the_lab.requests("/5/0/0")
    assert {e.path for e in the_lab.requests()} == {"/3/0/3", "/5/0/8", "/5/0/9"}


@pytest.mark.parametrize("protocol", ["coap", "http"])
def test_an_absent_protocol_support_means_coap(protocol: str) -> None:
    package = lab_package("2.0.0", 8 * KIB)

    async def scenario() -> tuple[Outcome, Lab]:
        async with lab() as the_lab:
            await the_lab.device("sim-1", cls=NoProtocolSupportDevice)
            outcome = await update(
                the_lab.server, "sim-1", package, method="pull", protocol=protocol, timeout=10
            )
            return outcome, the_lab

    outcome, the_lab = run(scenario)
    assert any(e.code == "4.04" and e.path == "/5/0/8" for e in the_lab.events)
    if protocol == "coap":
        assert_clean_success(outcome, package)
    else:
        assert outcome.refused and "/5/0/8 is absent" in outcome.reason
        assert not the_lab.requests("/5/0/1")


def test_push_to_a_pull_only_device_is_refused() -> None:
    async def scenario() -> tuple[Outcome, Lab]:
        async with lab() as the_lab:
            await the_lab.device("sim-1", delivery=DeliveryMethod.PULL_ONLY)
            outcome = await update(
                the_lab.server, "sim-1", lab_package("2.0.0", KIB), method="push", timeout=5
            )
            return outcome, the_lab

    outcome, the_lab = run(scenario)
    assert outcome.refused and "pull only" in outcome.reason
    assert not the_lab.requests("/5/0/0")


def test_a_device_that_never_leaves_downloading_ends_stuck_not_hung() -> None:
    package = lab_package("2.0.0", 8 * KIB)

    async def scenario() -> tuple[Outcome, float]:
        async with lab() as the_lab, repository() as repo:
            repo.drop_after(blocks=0, times=1000)  # the repository never answers
            await the_lab.device("sim-1", request_timeout=60)
            t0 = now()
            outcome = await update(
                the_lab.server,
                "sim-1",
                package,
                method="pull",
                repository=repo,
                timeout=1.5,
                poll_interval=0.5,
            )
            return outcome, now() - t0

    outcome, elapsed = run(scenario)
    assert outcome.stuck_in is State.DOWNLOADING
    assert outcome.exit_code == 3 and outcome.result_line == "RESULT - STUCK"
    assert "stuck in state DOWNLOADING" in outcome.reason
    assert "stuck in state DOWNLOADING" in outcome.summary
    assert outcome.polls >= 1
    assert elapsed < 6


def test_a_device_that_never_finishes_installing_ends_stuck_in_updating() -> None:
    async def scenario() -> tuple[Outcome, float]:
        async with lab() as the_lab:
            await the_lab.device("sim-1", cls=NeverInstallsDevice)
            t0 = now()
            outcome = await update(
                the_lab.server,
                "sim-1",
                lab_package("2.0.0", 4 * KIB),
                timeout=1.0,
                reboot_timeout=1.5,
                poll_interval=0.3,
            )
            return outcome, now() - t0

    outcome, elapsed = run(scenario)
    assert outcome.stuck_in is State.UPDATING and outcome.exit_code == 3
    assert not outcome.rebooted and outcome.update_s is not None
    assert "no re-registration" in outcome.reason
    assert elapsed < 6


def test_overall_timeout_bounds_the_whole_attempt() -> None:
    async def scenario() -> tuple[Outcome, float]:
        async with lab() as the_lab:
            await the_lab.device("sim-1", cls=NeverInstallsDevice)
            t0 = now()
            outcome = await update(
                the_lab.server,
                "sim-1",
                lab_package("2.0.0", 4 * KIB),
                timeout=30,
                overall_timeout=1.0,
            )
            return outcome, now() - t0

    outcome, elapsed = run(scenario)
    assert outcome.timed_out and outcome.exit_code == 3
    assert outcome.stuck_in is State.UPDATING
    assert "overall timeout" in outcome.reason and "stage update" in outcome.reason
    assert elapsed < 3


def test_a_device_that_never_registers_times_out() -> None:
    async def scenario() -> Outcome:
        async with lab() as the_lab:
            return await update(
                the_lab.server, "nobody", lab_package("2.0.0", KIB), timeout=5, register_timeout=0.3
            )

    outcome = run(scenario)
    assert outcome.timed_out and outcome.exit_code == 3
    assert outcome.result_line == "RESULT - TIMEOUT"
    assert "did not register" in outcome.reason


# -- cancel and reset ----------------------------------------------------------------------------
def test_cancel_after_during_a_pull_gives_result_10() -> None:
    package = lab_package("2.0.0", 16 * KIB)

    async def scenario() -> tuple[Outcome, Lab]:
        async with lab() as the_lab, repository() as repo:
            repo.drop_after(blocks=2, times=1)  # the download hangs after two blocks
            await the_lab.device("sim-1", request_timeout=30)
            outcome = await update(
                the_lab.server,
                "sim-1",
                package,
                method="pull",
                repository=repo,
                timeout=10,
                cancel_after=0.5,
            )
            return outcome, the_lab

    outcome, the_lab = run(scenario)
    assert outcome.cancelled and not outcome.success and outcome.exit_code == 1
    assert outcome.result is UpdateResult.CANCELLED and outcome.final_state is State.IDLE
    assert outcome.result_line == "RESULT 10 CANCELLED"
    assert outcome.bytes_sent == 2 * KIB
    assert len(the_lab.requests("/5/0/10")) == 1 and not the_lab.requests("/5/0/2")


def test_cancel_after_during_a_push_gives_result_10() -> None:
    package = lab_package("2.0.0", 128 * KIB)  # 8192 blocks of 16 B: far longer than 0.3 s

    async def scenario() -> tuple[Outcome, SimulatedDevice]:
        async with lab() as the_lab:
            # A link with a 20 ms round trip: the 8192 blocks need 164 simulated seconds.
            relay = LinkRelay(steady_link(0, 1, delay_s=0.01), ("127.0.0.1", the_lab.server.port),
                              clock=current_clock())  # type: ignore[arg-type]
            await relay.start()
            the_lab.server_uri = relay.uri
            dev = await the_lab.device("sim-1")
            outcome = await update(
                the_lab.server,
                "sim-1",
                package,
                method="push",
                block_size=16,
                timeout=10,
                cancel_after=0.3,
            )
            return outcome, dev

    outcome, dev = run(scenario)
    assert outcome.cancelled and outcome.result is UpdateResult.CANCELLED
    assert 0 < outcome.bytes_sent < len(package)
    assert dev.fw.state is State.IDLE and dev.package is None


def test_cancel_on_obj_1_0_falls_back_to_a_reset() -> None:
    package = lab_package("2.0.0", 16 * KIB)

    async def scenario() -> tuple[Outcome, Lab]:
        async with lab() as the_lab, repository() as repo:
            repo.drop_after(blocks=1, times=1)
            await the_lab.device("sim-1", fw_object_version="1.0", request_timeout=30)
            outcome = await update(
                the_lab.server,
                "sim-1",
                package,
                method="pull",
                repository=repo,
                timeout=10,
                cancel_after=0.3,
            )
            return outcome, the_lab

    outcome, the_lab = run(scenario)
    assert outcome.cancelled and outcome.result is UpdateResult.INITIAL
    assert outcome.final_state is State.IDLE and "reset" in outcome.reason
    assert not the_lab.requests("/5/0/10")  # obj 1.0 has no Cancel: not even tried
    uri_writes = the_lab.requests("/5/0/1")
    assert len(uri_writes) == 2  # the URI, then the empty URI (reset)


def test_a_device_left_downloaded_is_reset_first() -> None:
    package = lab_package("2.0.0", 8 * KIB)

    async def scenario() -> tuple[Outcome, Lab]:
        async with lab() as the_lab:
            await the_lab.device("sim-1")
            old = lab_package("1.5.0", 4 * KIB)
            resp = await the_lab.server.device("sim-1").write("/5/0/0", old)
            assert resp.ok
            outcome = await update(the_lab.server, "sim-1", package, method="push", timeout=10)
            return outcome, the_lab

    outcome, the_lab = run(scenario)
    assert_clean_success(outcome, package)
    assert any("resetting it (NUL package)" in n for n in the_lab.notes())


def test_a_busy_device_is_refused_without_reset_busy() -> None:
    async def scenario() -> Outcome:
        async with lab() as the_lab:
            await the_lab.device("sim-1")
            await the_lab.server.device("sim-1").write("/5/0/0", lab_package("1.5.0", KIB))
            return await update(
                the_lab.server, "sim-1", lab_package("2.0.0", KIB), timeout=5, reset_busy=False
            )

    outcome = run(scenario)
    assert outcome.refused and "DOWNLOADED" in outcome.reason


# -- usage errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "push", "protocol": "http"}, "PUSH goes over"),
        ({"method": "carrier-pigeon"}, "method"),
        ({"block_size": 100}, "block_size"),
        ({"timeout": 0}, "timeout"),
        ({"package": b""}, "empty"),
    ],
)
def test_usage_errors_raise_before_any_request(kwargs: dict[str, Any], message: str) -> None:
    async def scenario() -> None:
        async with lab() as the_lab:
            args = {"package": b"x", **kwargs}
            with pytest.raises(ValueError, match=message):
                await update(the_lab.server, "sim-1", **args)
            assert not the_lab.requests()

    run(scenario)
