"""Pure decisions of a FOTA run: what the device allows, and what a State/Result pair means.

``fota/`` decides what to do next; the server only translates. This module holds the decisions
that need no I/O, so that they are table-tested in microseconds:

* :func:`capabilities` -- what /5/0/8 (Firmware Update Protocol Support), /5/0/9 (Delivery
  Method) and the announced /5 object version allow. An absent /5/0/8 (4.04, or a client that
  does not implement the optional resource) means CoAP is assumed (digest 1.2); values a server
  does not know are ignored (pitfall 16).
* :func:`plan_delivery` -- PUSH or PULL, and over which scheme, or a clear refusal. The rule of
  the object: never send a Package URI whose scheme the device did not list; never PUSH to a
  pull-only device nor give a URI to a push-only one.
* :func:`interpret_download` and :func:`interpret_update` -- what the latest State (/5/0/3)
  and Update Result (/5/0/5) mean while the orchestrator waits: keep waiting, go on to the next
  stage, or stop with a final result. They cope with the clients of digest 1.7: Anjay stays
  IDLE during a PUSH and jumps to DOWNLOADED; a failed Update goes back to DOWNLOADED (obj 1.0,
  Anjay) or to IDLE (Zephyr, obj 1.1 with an unusable image); Zephyr and the Wakaama example
  do not persist State/Result across the reboot and come back as 0/0 -- then success is judged
  by /3/0/3 changing (to the package's version when it is known).
* :func:`package_version` -- the version a package announces (the lab's ``LABKIT-FW <v>``
  first line, or an MCUboot header), so that the version check has something to compare with.

Nothing here sends a request, reads a clock or sleeps.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from labkit.lwm2m.objects import (
    DEFAULT_OBJECT_VERSIONS,
    DeliveryMethod,
    ProtocolSupport,
    State,
    UpdateResult,
)

__all__ = [
    "BLOCK_SIZES",
    "FAILURE_RESULTS",
    "METHODS",
    "PROTOCOLS",
    "Capabilities",
    "Plan",
    "Step",
    "Verdict",
    "capabilities",
    "fw_object_version",
    "interpret_cancel",
    "interpret_download",
    "interpret_update",
    "package_version",
    "plan_delivery",
    "same_version",
    "validate_request",
]

#: Delivery methods the orchestrator knows.
METHODS = ("push", "pull")
#: Download protocols of a PULL the lab's repository serves (``--protocol``).
PROTOCOLS = ("coap", "http", "coaps", "https")
#: CoAP block sizes (SZX 0..6; digest 7.2).
BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)

#: Update Result codes that end an attempt without success (2..10). 0 (nothing to report) and
#: 11 (deferred: the device stays in DOWNLOADED and installs later) do not.
FAILURE_RESULTS = frozenset(
    r
    for r in UpdateResult
    if r not in (UpdateResult.INITIAL, UpdateResult.SUCCESS, UpdateResult.DEFERRED)
)


def validate_request(method: str, protocol: str, block_size: int) -> None:
    """Raise :class:`ValueError` for an impossible request (a usage error, before any I/O).

    PUSH always travels over the LwM2M CoAP session (Block1 ``PUT /5/0/0``), so ``protocol``
    must be ``"coap"`` for it; ``"http"`` only chooses the download protocol of a PULL.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    if method == "push" and protocol != "coap":
        raise ValueError(
            "PUSH goes over the LwM2M CoAP session (Block1 PUT /5/0/0); "
            f"protocol={protocol!r} only applies to PULL"
        )
    if block_size not in BLOCK_SIZES:
        raise ValueError(f"block_size must be one of {BLOCK_SIZES} bytes, not {block_size}")


def fw_object_version(announced: str | None, lwm2m_version: str) -> str:
    """The /5 object version a client implements: its ``</5>;ver=`` or its enabler's default.

    A 1.1 client that does not announce ``ver`` has /5 obj 1.0 (digest 1.1, pitfall 1), so
    Cancel (/5/0/10) must not be assumed.
    """
    if announced:
        return announced.strip('"')
    return DEFAULT_OBJECT_VERSIONS.get(lwm2m_version, {}).get(5, "1.0")


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (1, 0)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a device's /5 lets the server do.

    Attributes
    ----------
    protocols:
        Protocol Support values the device listed and the lab knows, or ``(COAP,)`` assumed
        when /5/0/8 is absent.
    protocols_listed:
        False when /5/0/8 was absent and CoAP is only assumed.
    unknown_protocols:
        Listed values the lab does not know (ignored, pitfall 16).
    delivery:
        /5/0/9, or None when it could not be read (mandatory, but stubs exist).
    object_version:
        The /5 object version ("1.0", "1.1", "1.2").
    """

    protocols: tuple[ProtocolSupport, ...] = (ProtocolSupport.COAP,)
    protocols_listed: bool = False
    unknown_protocols: tuple[int, ...] = ()
    delivery: DeliveryMethod | None = None
    object_version: str = "1.0"

    @property
    def can_cancel(self) -> bool:
        """Cancel (/5/0/10) exists from obj 1.1 on."""
        return _version_tuple(self.object_version) >= (1, 1)

    @property
    def schemes(self) -> tuple[str, ...]:
        return tuple(p.scheme for p in self.protocols)

    def describe(self) -> str:
        listed = ",".join(self.schemes) + ("" if self.protocols_listed else " (assumed)")
        delivery = "unknown" if self.delivery is None else self.delivery.name.lower()
        return f"obj /5 v{self.object_version}, protocols {listed}, delivery {delivery}"


def capabilities(
    protocol_values: Iterable[object] | None,
    delivery_value: object | None,
    object_version: str = "1.0",
) -> Capabilities:
    """Build :class:`Capabilities` from the values read from /5/0/8 and /5/0/9.

    ``protocol_values`` is None when /5/0/8 is absent (CoAP assumed, digest 1.2); values that
    are not integers or not known Protocol Support values are kept in ``unknown_protocols``.
    An empty list counts as absent too (a client listing nothing still downloads over CoAP,
    the object's default).
    """
    known: list[ProtocolSupport] = []
    unknown: list[int] = []
    listed = False
    for raw in protocol_values or ():
        value = _as_int(raw)
        if value is None:
            continue
        try:
            proto = ProtocolSupport(value)
        except ValueError:
            unknown.append(value)
            continue
        listed = True
        if proto not in known:
            known.append(proto)
    delivery: DeliveryMethod | None = None
    d = _as_int(delivery_value)
    if d is not None:
        try:
            delivery = DeliveryMethod(d)
        except ValueError:
            delivery = None
    return Capabilities(
        protocols=tuple(known) if listed else (ProtocolSupport.COAP,),
        protocols_listed=listed,
        unknown_protocols=tuple(unknown),
        delivery=delivery,
        object_version=object_version,
    )


def _as_int(raw: object) -> int | None:
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str | bytes):
        try:
            return int(raw)
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    """How to deliver, or why not.

    ``scheme`` is the Package URI scheme of a PULL (None for PUSH); ``refused`` is the reason
    when the device does not allow the request (None when it does).
    """

    method: str
    protocol: str
    scheme: str | None = None
    refused: str | None = None

    @property
    def ok(self) -> bool:
        return self.refused is None


def plan_delivery(method: str, protocol: str, caps: Capabilities) -> Plan:
    """Check ``method``/``protocol`` against the device's :class:`Capabilities`.

    Raises :class:`ValueError` for a request that is impossible whatever the device (see
    :func:`validate_request`); returns a refused :class:`Plan` for one the device forbids.
    """
    validate_request(method, protocol, 1024)
    delivery = caps.delivery
    if method == "push" and delivery is DeliveryMethod.PULL_ONLY:
        return Plan(
            method,
            protocol,
            refused=(
                "the device's Delivery Method (/5/0/9) is 0, pull only: it does not accept PUSH"
            ),
        )
    if method == "pull" and delivery is DeliveryMethod.PUSH_ONLY:
        return Plan(
            method,
            protocol,
            refused=(
                "the device's Delivery Method (/5/0/9) is 1, push only: "
                "it does not take a Package URI"
            ),
        )
    if method == "push":
        return Plan(method, protocol)
    wanted = ProtocolSupport.from_scheme(protocol)
    if wanted is None or wanted not in caps.protocols:
        listed = ", ".join(f"{int(p)} {p.scheme}" for p in caps.protocols)
        source = "/5/0/8 lists" if caps.protocols_listed else "/5/0/8 is absent, so only"
        return Plan(
            method,
            protocol,
            refused=(
                f"the device does not list {protocol} in Firmware Update Protocol Support "
                f"({source} [{listed}]); a server must never send a URI scheme the device did "
                "not list"
            ),
        )
    return Plan(method, protocol, scheme=wanted.scheme)


# ---------------------------------------------------------------------------------------------
# Interpreting State/Result while waiting
# ---------------------------------------------------------------------------------------------


class Verdict(StrEnum):
    """What the orchestrator does after looking at State/Result."""

    WAIT = "wait"  # nothing decided yet: keep waiting (notifications, polls)
    NEXT = "next"  # this stage is done: go on with the next one
    FINAL = "final"  # the attempt is over (success or not)


@dataclass(frozen=True, slots=True)
class Step:
    """A verdict with its reason; for FINAL also the result and whether it is a success."""

    verdict: Verdict
    reason: str = ""
    result: UpdateResult | None = None
    success: bool = False


def _state(value: int | None) -> State | None:
    if value is None:
        return None
    try:
        return State(value)
    except ValueError:
        return None


def _result(value: int | None) -> UpdateResult | None:
    if value is None:
        return None
    try:
        return UpdateResult(value)
    except ValueError:
        return None


def interpret_download(
    state: int | None,
    result: int | None,
    *,
    fresh: bool,
    seen_downloading: bool = False,
    baseline_result: int | None = None,
) -> Step:
    """The download stage: after the package was pushed or its URI written.

    Parameters
    ----------
    state, result:
        Latest /5/0/3 and /5/0/5 (None when unknown).
    fresh:
        True once the device has shown it works on *this* attempt: the Block1 push was
        answered 2.04, or State 1 or Result 0 was seen after the delivery started. Until then a
        non-zero Result may be left over from an earlier attempt.
    seen_downloading:
        State 1 was seen during this attempt.
    baseline_result:
        The Result read before the delivery started; a different non-zero Result is news even
        before ``fresh``.

    Returns
    -------
    Step
        NEXT when the device reached DOWNLOADED (or went on to UPDATING by itself, obj 1.2
        Automatic Upgrade); FINAL with the code when the download failed (State back to 0 with
        Result 2..10, or a failure Result while State has not caught up yet) or when the device
        went back to IDLE without any result after downloading (reset by someone else);
        otherwise WAIT.
    """
    s, r = _state(state), _result(result)
    news = r is not None and (fresh or (baseline_result is not None and int(r) != baseline_result))
    if s is State.DOWNLOADED:
        return Step(Verdict.NEXT, "downloaded (State 2)")
    if s is State.UPDATING:
        return Step(Verdict.NEXT, "the device went on to UPDATING by itself (Automatic Upgrade)")
    if r in FAILURE_RESULTS and news:
        where = "" if s is State.IDLE else f" (State still {s.name if s else '?'})"
        return Step(Verdict.FINAL, f"download failed: Result {int(r)} {r.name}{where}", r)
    if s is State.IDLE and seen_downloading and r in (UpdateResult.INITIAL, UpdateResult.SUCCESS):
        return Step(
            Verdict.FINAL,
            f"the device went back to IDLE during the download without a failure code "
            f"(Result {int(r)}): reset by someone else?",
            UpdateResult.INITIAL,
        )
    if s is State.DOWNLOADING:
        return Step(Verdict.WAIT, "downloading (State 1)")
    return Step(Verdict.WAIT, f"waiting for the download to start (State {state}, Result {result})")


def same_version(a: str | None, b: str | None) -> bool:
    """Two firmware versions are the same (``"1.2.3"`` == ``"1.2.3+0"``; whitespace ignored)."""
    if a is None or b is None:
        return False

    def norm(v: str) -> str:
        v = v.strip()
        return v[:-2] if v.endswith("+0") else v

    return norm(a) == norm(b)


def interpret_update(
    state: int | None,
    result: int | None,
    *,
    rebooted: bool,
    fw_before: str | None = None,
    fw_after: str | None = None,
    expected_version: str | None = None,
) -> Step:
    """The update stage: after Execute /5/0/2 (or an automatic upgrade).

    Parameters
    ----------
    state, result:
        Latest /5/0/3 and /5/0/5 (after a reboot: as read from the new registration).
    rebooted:
        The device registered again since the Execute.
    fw_before, fw_after:
        /3/0/3 before the attempt and as read after it (None when unknown).
    expected_version:
        The version the package announces, when known.

    Returns
    -------
    Step
        FINAL success for Result 1 (with a "suspicious" reason when /3/0/3 did not change);
        FINAL failure for Result 2..10 whether State went back to DOWNLOADED (obj 1.0, Anjay)
        or to IDLE (Zephyr); after a reboot that reports 0/0 (no persistence: Zephyr, Wakaama)
        FINAL success iff /3/0/3 changed (to ``expected_version`` when known); WAIT while
        UPDATING, while DOWNLOADED with Result 0 (Execute not acted on yet) or 11 (deferred),
        and on 0/0 before the reboot.
    """
    s, r = _state(state), _result(result)
    if r is UpdateResult.SUCCESS and s in (State.IDLE, None):
        return Step(
            Verdict.FINAL, _success_reason(fw_before, fw_after, expected_version), r, success=True
        )
    if r in FAILURE_RESULTS:
        where = (
            {
                State.DOWNLOADED: "back to DOWNLOADED, image kept (obj 1.0 / Anjay)",
                State.IDLE: "back to IDLE (Zephyr, or an unusable image)",
            }.get(s, f"State {state}")
            if s is not None
            else "State unknown"
        )
        return Step(Verdict.FINAL, f"update failed: Result {int(r)} {r.name}, {where}", r)
    if s is State.UPDATING:
        return Step(Verdict.WAIT, "updating (State 3)")
    if s is State.DOWNLOADED:
        if r is UpdateResult.DEFERRED:
            return Step(Verdict.WAIT, "the update is deferred by the device (Result 11)")
        return Step(Verdict.WAIT, "still DOWNLOADED: waiting for the device to start updating")
    if s is State.IDLE and r is UpdateResult.INITIAL:
        if not rebooted:
            return Step(Verdict.WAIT, "IDLE with Result 0: waiting for the reboot")
        return _judge_by_version(fw_before, fw_after, expected_version)
    return Step(Verdict.WAIT, f"waiting (State {state}, Result {result})")


def _success_reason(
    fw_before: str | None, fw_after: str | None, expected_version: str | None
) -> str:
    if fw_before is not None and fw_after is not None and same_version(fw_before, fw_after):
        return (
            f"Result 1 SUCCESS, but /3/0/3 is still {fw_after}: suspicious (the device reports "
            "success without running a new version)"
        )
    if expected_version and fw_after is not None and not same_version(fw_after, expected_version):
        return (
            f"Result 1 SUCCESS, /3/0/3 {fw_before} -> {fw_after}; the package announced "
            f"{expected_version}: suspicious"
        )
    if fw_before is not None and fw_after is not None:
        return f"Result 1 SUCCESS, firmware {fw_before} -> {fw_after}"
    return "Result 1 SUCCESS"


def _judge_by_version(
    fw_before: str | None, fw_after: str | None, expected_version: str | None
) -> Step:
    initial = UpdateResult.INITIAL
    prefix = "the device came back with State 0 / Result 0 (it does not persist /5 across the "
    prefix += "reboot, as Zephyr and Wakaama do); "
    if fw_after is None:
        return Step(Verdict.FINAL, prefix + "/3/0/3 could not be read: outcome unknown", initial)
    if expected_version and same_version(fw_after, expected_version):
        return Step(
            Verdict.FINAL,
            prefix + f"judged a success: /3/0/3 {fw_before} -> {fw_after} (the package's version)",
            initial,
            success=True,
        )
    if fw_before is not None and same_version(fw_before, fw_after):
        return Step(
            Verdict.FINAL,
            prefix + f"judged a failure: /3/0/3 is still {fw_after} (rolled back?)",
            initial,
        )
    if expected_version:
        return Step(
            Verdict.FINAL,
            prefix + f"judged a failure: /3/0/3 {fw_before} -> {fw_after}, but the package "
            f"announced {expected_version}",
            initial,
        )
    return Step(
        Verdict.FINAL,
        prefix + f"judged a success: /3/0/3 changed {fw_before} -> {fw_after}",
        initial,
        success=True,
    )


def interpret_cancel(state: int | None, result: int | None, *, by_reset: bool) -> Step:
    """After Execute /5/0/10 (Cancel) or a reset (empty URI / NUL package).

    Cancel ends in IDLE with Result 10 (T10); a reset in IDLE with Result 0 (T9). Another
    final result that arrived first (the download failed or finished and failed) is reported
    as it is.
    """
    s, r = _state(state), _result(result)
    if s is State.IDLE and r is UpdateResult.CANCELLED:
        return Step(Verdict.FINAL, "cancelled: State 0, Result 10 CANCELLED", r)
    if s is State.IDLE and r is UpdateResult.INITIAL and by_reset:
        return Step(Verdict.FINAL, "reset: State 0, Result 0 (obj 1.0 has no Cancel)", r)
    if s is State.IDLE and r in FAILURE_RESULTS:
        return Step(
            Verdict.FINAL, f"ended before the cancel took effect: Result {int(r)} {r.name}", r
        )
    return Step(
        Verdict.WAIT, f"waiting for the cancel to take effect (State {state}, Result {result})"
    )


# ---------------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------------

_LAB_MAGIC = b"LABKIT-FW "
_MCUBOOT_MAGIC = struct.pack("<I", 0x96F3B83D)
_MCUBOOT_VERSION = struct.Struct("<BBHI")  # major, minor, revision, build at offset 20


def package_version(package: bytes) -> str | None:
    """The firmware version a package announces, or None.

    Knows the lab's convention (first line ``LABKIT-FW <version>``) and the MCUboot image header
    (``ih_ver`` at offset 20: major.minor.revision, ``+build`` when the build is not 0).
    """
    if package.startswith(_LAB_MAGIC):
        end = package.find(b"\n", 0, 256)
        if end < 0:
            return None
        try:
            text = package[len(_LAB_MAGIC) : end].decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
        return text or None
    if package.startswith(_MCUBOOT_MAGIC) and len(package) >= 32:
        major, minor, rev, build = _MCUBOOT_VERSION.unpack_from(package, 20)
        version = f"{major}.{minor}.{rev}"
        return f"{version}+{build}" if build else version
    return None
