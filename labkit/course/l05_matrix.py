"""Lesson 05's failure matrix: one simulated device per :class:`FailureCase`, every attempt
run at once through the lab's server (:func:`failure_matrix`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.course.common import NEW_VERSION, OLD_VERSION, fast_mode, lab_key
from labkit.lwm2m.objects import State, UpdateResult

if TYPE_CHECKING:
    from pathlib import Path as FsPath

    import pandas as pd

    from labkit.client.model import FaultTiming
    from labkit.runtime import DeviceHandle, Lab


__all__ = [
    "FAILURE_CASES",
    "FailureCase",
    "add_devices_for",
    "device_options",
    "failure_matrix",
]


@dataclass(frozen=True, slots=True)
class FailureCase:
    """One row of the failure matrix: one device, one thing that goes wrong, one expected code.

    Attributes
    ----------
    endpoint:
        The device's name (``r05-wrong-key``: the expected code first, so names sort by code).
    expected:
        The Update Result (/5/0/5) this case must produce.
    label:
        What goes wrong, in a few words.
    fault:
        A device fault of :mod:`labkit.sim.faults` (None: a healthy device).
    package:
        ``"image"`` (a signed MCUboot image), ``"wrong-key"`` or ``"not-an-image"`` (the
        :func:`labkit.repo.images.build_image` variants), or None when nothing is published.
    delivery:
        ``"push"``, ``"pull coap"``, ``"pull http"``, ``"uri nowhere"`` (a coap:// URI the
        repository does not have) or ``"uri ftp"`` (a scheme no device speaks).
    cancel:
        Execute Cancel (/5/0/10) once DOWNLOADED instead of Update (/5/0/2).
    """

    endpoint: str
    expected: int
    label: str
    fault: str | None = None
    package: str | None = "image"
    delivery: str = "push"
    cancel: bool = False


#: The cases of :func:`failure_matrix`: a success and every failure code 2..11 (two for 5 and
#: two for 9), one device each.
FAILURE_CASES: tuple[FailureCase, ...] = (
    FailureCase("r01-success", 1, "nothing goes wrong"),
    FailureCase("r02-no-flash", 2, "no room in the download slot", fault="no-flash"),
    FailureCase("r03-no-ram", 3, "no RAM buffer for a block", "no-ram", delivery="pull coap"),
    FailureCase("r04-link-drop", 4, "the link goes down", "link-drop", delivery="pull coap"),
    FailureCase("r05-corrupt-in-flash", 5, "a bit flips in flash", fault="corrupt-in-flash"),
    FailureCase("r05-wrong-key", 5, "image signed with another key", package="wrong-key"),
    FailureCase(
        "r06-not-an-image", 6, "the file is not an image", None, "not-an-image", "pull http"
    ),
    FailureCase("r07-uri-nowhere", 7, "the URI points nowhere", None, None, "uri nowhere"),
    FailureCase("r08-boot-fail", 8, "the new image fails its self-test", fault="boot-fail"),
    FailureCase("r09-ftp", 9, "a scheme no device speaks (ftp://)", None, None, "uri ftp"),
    FailureCase("r09-no-http", 9, "http URI, CoAP-only device", "no-http", "image", "pull http"),
    FailureCase("r10-cancel", 10, "the server cancels", cancel=True),
    FailureCase("r11-defer", 11, "the user postpones, then accepts", fault="defer"),
)


def _fast_fault_timing() -> FaultTiming:
    from labkit.client.model import FaultTiming

    # Short faults: a lesson waits seconds, not the 20 s of a realistic link drop.
    return FaultTiming(power_off_s=0.15, link_drop_s=2.5, defer_s=0.5)


def device_options(key: FsPath) -> dict[str, Any]:
    """What every device of notebooks 05 and 06 gets: the lab key's public part to trust,
    short fault timings and short retries (every wait stays a few seconds)."""
    from labkit.repo.images import public_key

    return {
        "firmware_version": OLD_VERSION,
        "trusted_key": public_key("ed25519", key.parent),
        "fault_timing": _fast_fault_timing(),
        "request_timeout": 2.0,
        "download_retries": 2,
        "retry_delay": 0.2,
        "push_idle_timeout": 10.0,
    }


def add_devices_for(
    lab: Lab, cases: Iterable[FailureCase], *, key: FsPath | None = None
) -> list[DeviceHandle]:
    """Add one simulated device per case to ``lab`` (its fault, trusting the lab key's public
    part); returns their handles. A device of that name already in the lab is reused."""
    options = device_options(key if key is not None else lab_key())
    present = {handle.endpoint for handle in lab.devices}
    handles = []
    for case in cases:
        if case.endpoint in present:
            handles.append(lab.device(case.endpoint))
        else:
            faults = [case.fault] if case.fault else []
            handles.append(lab.add_device(case.endpoint, faults=faults, **options))
    return handles


def _case_target(lab: Lab, case: FailureCase, images: Mapping[str, bytes]) -> tuple[str, Any]:
    """(``"push"``, bytes) or (``"uri"``, the Package URI) for a case."""
    if case.delivery == "push":
        return "push", images[case.package or "image"]
    if case.delivery == "uri nowhere":
        return "uri", lab.repository.coap_uri(f"{case.endpoint}-missing.bin")
    if case.delivery == "uri ftp":
        return "uri", f"ftp://127.0.0.1/fw/{case.endpoint}.bin"
    name = f"{case.endpoint}.bin"
    uris = lab.publish(name, images[case.package or "image"])
    scheme = case.delivery.removeprefix("pull ")
    return "uri", uris[scheme]


async def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _drive(
    lab: Lab, case: FailureCase, how: str, what: bytes | str, *, timeout: float
) -> dict[str, Any]:
    """One attempt through the lab's server: deliver, Execute Update (or Cancel), wait for the
    reboot, read State, Result and /3/0/3. Every wait is bounded by ``timeout``."""
    import asyncio
    import contextlib

    from labkit.server import ServerError

    server = lab.server
    sim = lab.device(case.endpoint).simulated
    proxy = server.device(case.endpoint)
    quiet = (ServerError, TimeoutError)

    def settled() -> bool:
        return bool(sim.registered) and sim.fw.state not in (State.DOWNLOADING, State.UPDATING)

    async def read(path: str) -> Any:
        for _attempt in range(5):
            with contextlib.suppress(*quiet):
                response = await proxy.read(path, timeout=2)
                if response.ok:
                    return response.value
            await asyncio.sleep(0.2)
        return None

    started = asyncio.get_running_loop().time()
    before = await read("/3/0/3")
    with contextlib.suppress(*quiet):
        if how == "push":
            await proxy.write("/5/0/0", what, block_size=1024)
        else:
            await proxy.write("/5/0/1", what)
    await _until(settled, timeout)
    if sim.fw.state is State.DOWNLOADED:
        if case.cancel:
            with contextlib.suppress(*quiet):
                await proxy.execute("/5/0/10")
        else:
            registered_at = proxy.registration.registered_at
            for _attempt in range(3):  # a lost Execute is sent again
                with contextlib.suppress(*quiet):
                    await proxy.execute("/5/0/2")
                    break
            await _until(
                lambda: (
                    sim.fw.state is not State.DOWNLOADED
                    or sim.fw.result is not UpdateResult.DEFERRED
                ),
                timeout,
            )
            with contextlib.suppress(TimeoutError):
                await server.wait_for_registration(
                    case.endpoint, timeout=timeout, after=registered_at
                )
    await _until(settled, timeout)
    state, result, after = await read("/5/0/3"), await read("/5/0/5"), await read("/3/0/3")
    return {
        "final_state": None if state is None else int(state),
        "final_result": None if result is None else int(result),
        "fw_before": None if before is None else str(before),
        "fw_after": None if after is None else str(after),
        "seconds": asyncio.get_running_loop().time() - started,
    }


def _reported_results(events: pd.DataFrame, device: str) -> list[int]:
    """The Update Results a device reported itself, in order, zeros and repeats dropped."""
    rows = events[
        (events["device"].astype("string") == device).fillna(False)
        & (events["kind"].astype("string") == "fw_result").fillna(False)
        & (events["source"].astype("string") == "device").fillna(False)
    ]
    codes: list[int] = []
    for value in rows.sort_values("seq")["result"]:
        text = str(value)
        code = int(text) if text.isdigit() else int(UpdateResult[text])
        if code and (not codes or codes[-1] != code):
            codes.append(code)
    return codes


_MATRIX_COLUMNS = [
    "device",
    "case",
    "fault",
    "package",
    "delivery",
    "expected",
    "observed",
    "reported",
    "result",
    "final_state",
    "final_result",
    "fw_before",
    "fw_after",
    "match",
    "seconds",
]


def failure_matrix(
    lab: Lab,
    cases: Iterable[FailureCase] = FAILURE_CASES,
    *,
    fast: bool | None = None,
    size: int | None = None,
    key: FsPath | None = None,
    timeout: float = 30.0,
) -> pd.DataFrame:
    """Produce every Update Result on purpose: one device per case, all at once.

    Adds one simulated device per case to ``lab`` (firmware 1.0.0, its fault, trusting the
    public part of :func:`lab_key`), builds the images (a signed MCUboot 2.0.0 image of
    ``size`` payload bytes, and the ``wrong-key`` and ``not-an-image`` variants), publishes
    what is pulled, then runs every attempt concurrently through the lab's server: PUSH to
    /5/0/0 or a Package URI to /5/0/1, Execute /5/0/2 (or Cancel /5/0/10) once DOWNLOADED,
    wait for the reboot, read /5/0/3, /5/0/5 and /3/0/3. Each wait is bounded by ``timeout``.

    Parameters
    ----------
    fast:
        Small images (8 KiB instead of 64 KiB); default :func:`fast_mode`.

    Returns
    -------
    DataFrame
        One row per case, in the order given: ``device``, ``case`` (what goes wrong),
        ``fault`` (or ""), ``package`` (or ""), ``delivery``, ``expected`` (int64),
        ``observed`` (Int64: the first non-zero Update Result the device reported -- 11 for
        a deferral that was accepted later), ``reported`` (every code it reported, "11 → 1"),
        ``result`` (category of Update Result names, of ``observed``: what
        :func:`labkit.plots.plot_result_counts` counts), ``final_state`` and
        ``final_result`` (Int64, read by the server at the end), ``fw_before`` and
        ``fw_after`` (/3/0/3 read before and after), ``match`` (observed == expected) and
        ``seconds`` (the attempt's duration); RangeIndex.
    """
    import asyncio

    import pandas as pd

    from labkit.record.schema import RESULT_DTYPE
    from labkit.repo.images import build_image

    cases = list(cases)
    if fast is None:
        fast = fast_mode()
    if size is None:
        size = 8 * 1024 if fast else 64 * 1024
    key = key if key is not None else lab_key()
    images = {
        variant: build_image(
            version=NEW_VERSION,
            size=size,
            key=key,
            broken=None if variant == "image" else variant,
            seed=5,
        )
        for variant in {c.package or "image" for c in cases}
    }
    add_devices_for(lab, cases, key=key)
    targets = [_case_target(lab, case, images) for case in cases]

    async def run_all() -> list[Any]:
        finals: list[Any] = await asyncio.gather(
            *(
                asyncio.wait_for(_drive(lab, case, how, what, timeout=timeout), 4 * timeout)
                for case, (how, what) in zip(cases, targets, strict=True)
            ),
            return_exceptions=True,
        )
        return finals

    finals = lab.call(run_all(), timeout=4 * timeout + 10)
    events = lab.events()
    rows = []
    for case, final in zip(cases, finals, strict=True):
        if isinstance(final, BaseException):
            final = {"error": repr(final)}
        reported = _reported_results(events, case.endpoint)
        observed = reported[0] if reported else None
        rows.append(
            {
                "device": case.endpoint,
                "case": case.label,
                "fault": case.fault or "",
                "package": case.package or "",
                "delivery": case.delivery,
                "expected": case.expected,
                "observed": observed,
                "reported": " → ".join(str(c) for c in reported),
                "result": None if observed is None else UpdateResult(observed).name,
                "final_state": final.get("final_state"),
                "final_result": final.get("final_result"),
                "fw_before": final.get("fw_before"),
                "fw_after": final.get("fw_after"),
                "match": observed == case.expected,
                "seconds": final.get("seconds"),
            }
        )
    frame = pd.DataFrame(rows, columns=_MATRIX_COLUMNS)
    for column in ("observed", "final_state", "final_result"):
        frame[column] = frame[column].astype("Int64")
    frame["expected"] = frame["expected"].astype("int64")
    frame["result"] = frame["result"].astype(RESULT_DTYPE)
    frame["match"] = frame["match"].astype(bool)
    frame["seconds"] = frame["seconds"].astype("float64").round(2)
    return frame
