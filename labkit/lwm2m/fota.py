r"""The Firmware Update Object (/5) state machine, written as transition tables.

Theory
======

A LwM2M client that implements /5 is a small state machine. Its state is resource 3 (State:
0 IDLE, 1 DOWNLOADING, 2 DOWNLOADED, 3 UPDATING); resource 5 (Update Result, 0..11) says
how the last attempt ended. Two kinds of trigger move it:

* **requests from the server** -- Write /5/0/0 (Package, PUSH, one Block1 block per
  trigger), Write /5/0/1 (Package URI, PULL), Execute /5/0/2 (Update), Execute /5/0/10
  (Cancel, obj >= 1.1) and Writes of the configuration resources 11, 13 and 14;
* **things the device itself finds out** -- a pull download finished or failed, the user's
  deferral ended, the installation succeeded or failed.

Each trigger is an *event* (a frozen, keyword-only dataclass below). :meth:`handle` looks up
``(state, type(event))`` in :data:`TRANSITIONS` and gets an ordered tuple of rules;
the first rule whose guard holds decides. A rule either *accepts* -- it names the new state
(possibly passing through intermediate states, ``via``), the new Update Result, and the side
effects the device must carry out -- or *rejects* with the CoAP code the device answers. A
rejection raises :class:`~labkit.lwm2m.errors.FotaError` and leaves every attribute of the
machine unchanged. The table is complete: every state has an entry for every event type, and
each entry ends with an unguarded rule, so there is no implicit "else".

Rule ids are the transition numbers of the protocol digest (``spec/lwm2m-fota.md`` 1.4,
T1..T20). Rows the digest has no number for are named after what they stand on:
``W11``/``W13``/``W14`` accepted writes of resources 11/13/14, ``R1``/``R9``/``R10``/``R11``/
``R13``/``R14`` rejections caused by a resource (its range, its absence in the object version,
the Delivery Method), ``B1``/``B2`` Block1 sequencing (RFC 7959), ``X`` an internal event in a
state where it cannot happen.

What the machine decides, and what it leaves to the device:

* The machine never does I/O and never reads a clock: ``now`` is an argument of
  :meth:`handle`, and Last State Change Time (res 12) is stamped with it before every State
  change (digest 1.5). Nothing else is stamped.
* :meth:`handle` returns the actions the device must carry out, **in order**: first the
  tear-down and storage effects of the rule (:class:`AbortDownload`, :class:`DiscardImage`,
  :class:`StoreBlock`), then :class:`ResultChanged` (if the result changed), then one
  :class:`StateChanged` per hop (``0 -> 1 -> 2`` for a single-message package), then the
  start effects (:class:`StartDownload`, :class:`StartInstall`, :class:`StartDeferral`).
  Start effects must run *after* the response to the triggering request is sent (digest T12:
  "2.04 before starting install/reboot"). The device notifies observers of /5/0/5 and
  /5/0/3 on the change actions.
* Update Result is reset to 0 on entering DOWNLOADING and on entering UPDATING, and on every
  reset (digest 1.3).

Rules of this implementation (choices where the digest leaves room):

* PUSH goes to DOWNLOADING on the *first* block and to DOWNLOADED after the last (Zephyr, not
  Anjay, which stays IDLE during the write). A single-message package passes through
  DOWNLOADING in the same call. Blocks must arrive in sequence: a gap answers 4.08 Request
  Entity Incomplete (digest 7.2, RFC 7959 2.9.2; rule ``B1``); a repeat of the previous
  block is ignored (``B2``); a new block 0 restarts the package (``T4``/``T6`` from
  DOWNLOADING). A block that
  the device then fails to store is reported with :class:`DownloadFailed` (T8) -- allowed in
  DOWNLOADING and, right after the last block, in DOWNLOADED (or UPDATING with auto-upgrade);
  the device then drops the rest of that block's actions and answers the Block1 request with
  an error (4.13 for no space, as Zephyr does).
* Reset = Write /5/0/1 ``""`` or Write /5/0/0 of ``b"\0"`` or ``b""`` as the whole payload
  (block 0, no more blocks). Accepted in IDLE (result back to 0), DOWNLOADING and DOWNLOADED
  (T9); refused in UPDATING (T19, 4.05).
* A non-empty Package URI is checked when written: over 255 characters -> 4.00 (``R1``); not
  of the form ``scheme://host...`` -> Result 7 (T3); a scheme not in Protocol Support (res 8),
  or any URI on a push-only device -> Result 9 (T2). Both answer 2.04 as the spec words it
  (Anjay answers T2 with 4.00). Resource 1 keeps the URI written in T1/T2/T3; resets (T9),
  Cancel (T10) and the start of a push clear it.
* A non-empty URI or new package data while DOWNLOADING/DOWNLOADED -> 4.00 (T20, Anjay); any
  write of /5/0/0 or /5/0/1 while UPDATING -> 4.05 (T19); Execute Update outside DOWNLOADED
  -> 4.05 (T15); Cancel outside DOWNLOADING/DOWNLOADED -> 4.05 (T11). On a pull-only device
  (Delivery Method 0) a package write is refused with 4.05 (``R9``).
* Resources missing from the object version answer 4.04 Not Found, the CoAP answer to an
  operation on a resource the client does not have: Cancel (10), Severity (11) and Maximum
  Defer Period (13) in obj 1.0, Automatic Upgrade (14) before obj 1.2.
* Deferral (T13) happens when Execute Update says the user defers, the object is >= 1.1 and
  Maximum Defer Period > 0: State stays 2, Result 11, and :class:`StartDeferral` asks the
  device to run the user's timer; :class:`DeferralEnded` (user accepts or the period ran out)
  then goes to UPDATING. A user who may not defer gets T12.
* Install failure (T17/T18): obj 1.0 always returns to DOWNLOADED with Result 8. From obj 1.1,
  a usable image returns to DOWNLOADED with 8, an unusable one goes to IDLE with the event's
  code (5 or 8) and the image is discarded.
* With Automatic Upgrade (res 14, obj 1.2) a finished download goes on to UPDATING in the
  same call (T7+T14, T6+T14), passing through DOWNLOADED.
* Internal events in a state where they cannot happen (``X``) raise :class:`FotaError` with
  code 5.00: there is no request to answer; they reveal a race or a bug in the device code
  (e.g. a download that completes just after a Cancel), which should catch and drop them.
* Events that can never be valid (a negative block number, ``DownloadFailed(SUCCESS)``) fail
  when constructed, with :class:`FotaUsageError` (a :class:`ValueError`).

The table at a glance (``-> s`` new state s, ``rN`` new Update Result N, a CoAP code is a
rejection, ``X`` an internal event out of place; "T14 3": with auto-upgrade on to UPDATING)::

    Trigger                    IDLE 0          DOWNLOADING 1     DOWNLOADED 2      UPDATING 3
    -------------------------  --------------  ----------------  ----------------  -----------
    Write /5/0/0 block 0, M=1  T4 -> 1         T4 restart        T20 4.00          T19 4.05
    Write /5/0/0 next, M=1     B1 4.08         T5 (B2 repeat)    T20 4.00          T19 4.05
    Write /5/0/0 last block    T6 -> 1 -> 2    T6 -> 2           T20 4.00          T19 4.05
    Write /5/0/0 b"\0" or b""   T9 r0           T9 -> 0, r0       T9 -> 0, r0       T19 4.05
    Write /5/0/1 ""            T9 r0           T9 -> 0, r0       T9 -> 0, r0       T19 4.05
    Write /5/0/1 uri           T1 -> 1, T2 r9  T20 4.00          T20 4.00          T19 4.05
                               T3 r7
    Execute /5/0/2 Update      T15 4.05        T15 4.05          T12 -> 3, T13 r11 T15 4.05
    Execute /5/0/10 Cancel     T11 4.05        T10 -> 0, r10     T10 -> 0, r10     T11 4.05
    DownloadCompleted (pull)   X               T7 -> 2 (T14 3)   X                 X
    DownloadFailed(code)       X               T8 -> 0, rcode    T8 after push     T8 ditto
    DeferralEnded              X               X                 T13 -> 3 if r11   X
    InstallSucceeded           X               X                 X                 T16 -> 0, r1
    InstallFailed              X               X                 X                 T17 -> 2, r8
                                                                                   T18 -> 0, r5/8
    Write /5/0/11, 13, 14      W11, W13, W14 in every state (4.04 if the version lacks it)

The same table as rows: :func:`transition_rows`; as a Mermaid diagram:
:func:`labkit.lwm2m.fota_diagram.mermaid_state_diagram`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

from labkit.lwm2m.errors import FotaError, LocalProtocolError
from labkit.lwm2m.objects import DeliveryMethod, ProtocolSupport, Severity, State, UpdateResult

__all__ = [
    "EVENT_TYPES",
    "OBJECT_VERSIONS",
    "TRANSITIONS",
    "VALID_RESULTS",
    "AbortDownload",
    "Action",
    "DeferralEnded",
    "DiscardImage",
    "DownloadCompleted",
    "DownloadFailed",
    "Event",
    "ExecuteCancel",
    "ExecuteUpdate",
    "FirmwareUpdateMachine",
    "FotaUsageError",
    "Guard",
    "InstallFailed",
    "InstallSucceeded",
    "ResultChanged",
    "Rule",
    "StartDeferral",
    "StartDownload",
    "StartInstall",
    "StateChanged",
    "StoreBlock",
    "WriteAutoUpgrade",
    "WriteMaxDeferPeriod",
    "WritePackage",
    "WriteSeverity",
    "WriteUri",
    "transition_rows",
]

IDLE = State.IDLE
DOWNLOADING = State.DOWNLOADING
DOWNLOADED = State.DOWNLOADED
UPDATING = State.UPDATING

#: Object versions of /5 the machine knows (digest 1.1).
OBJECT_VERSIONS = ("1.0", "1.1", "1.2")

#: Longest Package URI (res 1 range 0..255 characters, digest 1.2).
MAX_URI_LENGTH = 255

#: The results a state can carry. Anything else is an invalid combination.
VALID_RESULTS: Mapping[State, frozenset[UpdateResult]] = MappingProxyType(
    {
        # T2, T3, T8, T9, T10, T16, T18 land in IDLE; deferral (11) never does.
        IDLE: frozenset(UpdateResult) - {UpdateResult.DEFERRED},
        # Entering DOWNLOADING and UPDATING resets the result (digest 1.3).
        DOWNLOADING: frozenset({UpdateResult.INITIAL}),
        # T6/T7 (0), T13 (11), T17 (8).
        DOWNLOADED: frozenset(
            {UpdateResult.INITIAL, UpdateResult.UPDATE_FAILED, UpdateResult.DEFERRED}
        ),
        UPDATING: frozenset({UpdateResult.INITIAL}),
    }
)

#: Result codes that exist only from obj 1.1 (digest 1.3).
RESULTS_SINCE_1_1 = frozenset({UpdateResult.CANCELLED, UpdateResult.DEFERRED})

#: Codes a failed download may report (T8).
DOWNLOAD_FAILURES = frozenset(
    {
        UpdateResult.NOT_ENOUGH_FLASH,
        UpdateResult.OUT_OF_RAM,
        UpdateResult.CONNECTION_LOST,
        UpdateResult.INTEGRITY_CHECK_FAILURE,
        UpdateResult.UNSUPPORTED_PACKAGE_TYPE,
        UpdateResult.INVALID_URI,
        UpdateResult.UNSUPPORTED_PROTOCOL,
    }
)

#: Codes a failed installation may report (T17/T18).
INSTALL_FAILURES = frozenset({UpdateResult.INTEGRITY_CHECK_FAILURE, UpdateResult.UPDATE_FAILED})


class FotaUsageError(LocalProtocolError, ValueError):
    """An event or a machine built with values that can never be valid (a bug of the caller)."""


# ---------------------------------------------------------------------------------------------
# Events: the triggers. Frozen, keyword-only; server requests first, device findings after.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class WritePackage:
    """Write /5/0/0: one Block1 block of a PUSH (a whole single-message package is block 0,
    ``more=False``). ``data=b"\\0"`` or ``b""`` as the whole payload is a reset (T9)."""

    block_number: int
    more: bool
    data: bytes

    def __post_init__(self) -> None:
        if self.block_number < 0:
            raise FotaUsageError(f"block number must be >= 0, not {self.block_number}")

    @property
    def is_reset(self) -> bool:
        """The whole payload is ``b"\\0"`` or empty (digest 1.2, res 0)."""
        return self.block_number == 0 and not self.more and self.data in (b"", b"\x00")


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteUri:
    """Write /5/0/1 Package URI (PULL). ``""`` is a reset (T9)."""

    uri: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecuteUpdate:
    """Execute /5/0/2 Update. ``user_defers``: the device's user postpones it (T13)."""

    user_defers: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecuteCancel:
    """Execute /5/0/10 Cancel (obj >= 1.1; T10/T11)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteSeverity:
    """Write /5/0/11 Severity (obj >= 1.1): 0 critical, 1 mandatory, 2 optional."""

    value: int


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteMaxDeferPeriod:
    """Write /5/0/13 Maximum Defer Period in seconds (obj >= 1.1); 0 = no deferral."""

    value: int


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteAutoUpgrade:
    """Write /5/0/14 Automatic Upgrade at Download (obj 1.2)."""

    value: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class DownloadCompleted:
    """The device's pull download finished (and the image checked out if checked here; T7)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DownloadFailed:
    """A download failed (T8); ``result`` is one of 2, 3, 4, 5, 6, 7, 9."""

    result: UpdateResult

    def __post_init__(self) -> None:
        object.__setattr__(self, "result", UpdateResult(self.result))
        if self.result not in DOWNLOAD_FAILURES:
            raise FotaUsageError(
                f"a failed download reports 2, 3, 4, 5, 6, 7 or 9, not {self.result!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class DeferralEnded:
    """The user accepted the deferred update, or Maximum Defer Period ran out (T13 -> 3)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallSucceeded:
    """The new image runs (normally known after the reboot; T16)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallFailed:
    """The installation failed (T17/T18). ``result`` is 8 or 5; ``image_usable``: the
    downloaded image can be installed again (obj >= 1.1 decides the state with it)."""

    result: UpdateResult = UpdateResult.UPDATE_FAILED
    image_usable: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "result", UpdateResult(self.result))
        if self.result not in INSTALL_FAILURES:
            raise FotaUsageError(f"a failed install reports 5 or 8, not {self.result!r}")


Event: TypeAlias = (
    WritePackage
    | WriteUri
    | ExecuteUpdate
    | ExecuteCancel
    | WriteSeverity
    | WriteMaxDeferPeriod
    | WriteAutoUpgrade
    | DownloadCompleted
    | DownloadFailed
    | DeferralEnded
    | InstallSucceeded
    | InstallFailed
)

#: Every event type, in the order of the table.
EVENT_TYPES: tuple[type[Event], ...] = (
    WritePackage,
    WriteUri,
    ExecuteUpdate,
    ExecuteCancel,
    WriteSeverity,
    WriteMaxDeferPeriod,
    WriteAutoUpgrade,
    DownloadCompleted,
    DownloadFailed,
    DeferralEnded,
    InstallSucceeded,
    InstallFailed,
)

# ---------------------------------------------------------------------------------------------
# Actions: what the device must do, returned by handle() in order.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateChanged:
    """/5/0/3 changed (res 12 was stamped first); notify observers."""

    previous: State
    state: State


@dataclass(frozen=True, slots=True)
class ResultChanged:
    """/5/0/5 changed; notify observers."""

    previous: UpdateResult
    result: UpdateResult


@dataclass(frozen=True, slots=True)
class AbortDownload:
    """Stop a running download (pull task, or the reassembly of a push)."""


@dataclass(frozen=True, slots=True)
class DiscardImage:
    """Delete the stored (partial) image."""


@dataclass(frozen=True, slots=True)
class StoreBlock:
    """Store an accepted push block (block 0 starts a new image)."""

    block_number: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StartDownload:
    """Start pulling the package from ``uri`` (after answering 2.04)."""

    uri: str


@dataclass(frozen=True, slots=True)
class StartInstall:
    """Install the image, normally with a reboot (after answering 2.04)."""


@dataclass(frozen=True, slots=True)
class StartDeferral:
    """Let the user postpone the update for at most ``max_period`` seconds, then
    hand :class:`DeferralEnded` to the machine."""

    max_period: int


Effect: TypeAlias = (
    AbortDownload | DiscardImage | StoreBlock | StartDownload | StartInstall | StartDeferral
)
Action: TypeAlias = StateChanged | ResultChanged | Effect

# ---------------------------------------------------------------------------------------------
# Guards and rules: the vocabulary of the table.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Guard:
    """A named condition on the machine and the event; ``label`` is what docs print."""

    label: str
    test: Callable[[FirmwareUpdateMachine, Any], bool]

    def __call__(self, machine: FirmwareUpdateMachine, event: Event) -> bool:
        return self.test(machine, event)

    def __and__(self, other: Guard) -> Guard:
        return Guard(
            f"{self.label} and {other.label}",
            lambda m, e: self.test(m, e) and other.test(m, e),
        )


#: Where the new Update Result comes from: a code, the event's ``result``, or unchanged.
ResultSpec: TypeAlias = UpdateResult | Literal["event"] | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    """One row of the table.

    A rule whose ``reply`` is an error code (4.xx/5.xx) rejects: :meth:`handle` raises
    :class:`FotaError` with it and ``note`` as the message. Otherwise the machine goes through
    ``via`` to ``to`` (None: state unchanged), sets the result (``"event"``: the event's
    ``result``), writes the configuration attribute ``writes`` from the event's ``value``,
    updates Package URI (``uri``) and returns ``before`` effects, the changes, ``after``
    effects. ``reply`` is the CoAP answer to a request ("" for internal events).
    """

    id: str
    guard: Guard | None = None
    to: State | None = None
    via: tuple[State, ...] = ()
    result: ResultSpec = None
    before: tuple[type[Effect], ...] = ()
    after: tuple[type[Effect], ...] = ()
    uri: Literal["keep", "set", "clear"] = "keep"
    writes: Literal["severity", "max_defer_period", "auto_upgrade"] | None = None
    reply: str = "2.04"
    note: str = ""

    @property
    def rejects(self) -> bool:
        """True when the rule refuses the trigger (its reply is a 4.xx or 5.xx code)."""
        return self.reply[:1] in ("4", "5")


def _version(machine: FirmwareUpdateMachine) -> tuple[int, int]:
    major, minor = machine.object_version.split(".")
    return int(major), int(minor)


def _uri_malformed(uri: str) -> bool:
    """True unless ``uri`` parses as ``scheme://host[:port][/path...]`` (T3)."""
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return True
    return not parts.scheme or not parts.hostname or any(c.isspace() for c in uri)


def _scheme_unsupported(machine: FirmwareUpdateMachine, uri: str) -> bool:
    if machine.delivery is DeliveryMethod.PUSH_ONLY:
        return True
    protocol = ProtocolSupport.from_scheme(urlsplit(uri).scheme)
    return protocol is None or protocol not in machine.protocols


RESET = Guard("reset payload", lambda m, e: e.is_reset)
PULL_ONLY = Guard("delivery pull only", lambda m, e: m.delivery is DeliveryMethod.PULL_ONLY)
PULLING = Guard("pull running", lambda m, e: not m._push)  # noqa: SLF001 - guard of this module's machine
PUSHING = Guard("push running", lambda m, e: m._push)  # noqa: SLF001 - guard of this module's machine
FIRST_BLOCK = Guard("block 0, more", lambda m, e: e.block_number == 0 and e.more)
SINGLE = Guard("block 0, last", lambda m, e: e.block_number == 0 and not e.more)
NEXT_BLOCK = Guard("next block, more", lambda m, e: e.block_number == m._next_block and e.more)  # noqa: SLF001 - guard of this module's machine
LAST_BLOCK = Guard("next block, last", lambda m, e: e.block_number == m._next_block and not e.more)  # noqa: SLF001 - guard of this module's machine
REPEATED_BLOCK = Guard(
    "previous block again",
    lambda m, e: m._next_block is not None and e.block_number == m._next_block - 1,  # noqa: SLF001 - guard of this module's machine
)
AUTO = Guard("auto upgrade", lambda m, e: m.auto_upgrade)
EMPTY_URI = Guard("empty uri", lambda m, e: e.uri == "")
LONG_URI = Guard("uri over 255 chars", lambda m, e: len(e.uri) > MAX_URI_LENGTH)
MALFORMED_URI = Guard("uri malformed", lambda m, e: _uri_malformed(e.uri))
UNSUPPORTED_SCHEME = Guard("scheme unsupported", lambda m, e: _scheme_unsupported(m, e.uri))
OBJ_1_0 = Guard("obj 1.0", lambda m, e: _version(m) < (1, 1))
BEFORE_1_2 = Guard("obj before 1.2", lambda m, e: _version(m) < (1, 2))
USER_DEFERS = Guard(
    "user defers, obj 1.1+, max defer period over 0",
    lambda m, e: e.user_defers and _version(m) >= (1, 1) and m.max_defer_period > 0,
)
DEFERRAL_PENDING = Guard("result 11", lambda m, e: m.result is UpdateResult.DEFERRED)
PUSH_JUST_ENDED = Guard("right after the last push block", lambda m, e: m._push_just_ended)  # noqa: SLF001 - guard of this module's machine
IMAGE_UNUSABLE = Guard("image unusable", lambda m, e: not e.image_usable)
BAD_SEVERITY = Guard("value not 0..2", lambda m, e: e.value not in (0, 1, 2))
NEGATIVE = Guard("value below 0", lambda m, e: e.value < 0)


def _internal(what: str) -> Rule:
    return Rule(id="X", reply="5.00", note=f"internal event out of place: {what}")


# Rows shared by every state: the configuration resources (digest 1.2, 1.5).
_SEVERITY_RULES = (
    Rule(id="R11", guard=OBJ_1_0, reply="4.04", note="Severity (11) does not exist in obj 1.0"),
    Rule(id="R11", guard=BAD_SEVERITY, reply="4.00", note="Severity is 0, 1 or 2"),
    Rule(id="W11", writes="severity"),
)
_MAX_DEFER_RULES = (
    Rule(
        id="R13",
        guard=OBJ_1_0,
        reply="4.04",
        note="Maximum Defer Period (13) does not exist in obj 1.0",
    ),
    Rule(id="R13", guard=NEGATIVE, reply="4.00", note="Maximum Defer Period is unsigned"),
    Rule(id="W13", writes="max_defer_period"),
)
_AUTO_UPGRADE_RULES = (
    Rule(
        id="R14",
        guard=BEFORE_1_2,
        reply="4.04",
        note="Automatic Upgrade at Download (14) exists from obj 1.2",
    ),
    Rule(id="W14", writes="auto_upgrade"),
)
_CANCEL_ABSENT = Rule(
    id="R10", guard=OBJ_1_0, reply="4.04", note="Cancel (10) does not exist in obj 1.0"
)
_UPDATE_REFUSED = Rule(
    id="T15", reply="4.05", note="Update (/5/0/2) is executable only in DOWNLOADED"
)
_BUSY_UPDATING = Rule(
    id="T19", reply="4.05", note="the device is UPDATING; /5/0/0 and /5/0/1 are locked"
)

# Leaving for IDLE from DOWNLOADING always stops the transfer and drops the partial image.
_TEARDOWN: tuple[type[Effect], ...] = (AbortDownload, DiscardImage)

TRANSITIONS: Mapping[tuple[State, type[Event]], tuple[Rule, ...]] = MappingProxyType(
    {
        # ------------------------------------------------------------------- IDLE (0)
        (IDLE, WritePackage): (
            # Anjay: a single NUL byte in Idle is a reset; it clears a reported result.
            Rule(id="T9", guard=RESET, to=IDLE, result=UpdateResult.INITIAL, uri="clear"),
            Rule(id="R9", guard=PULL_ONLY, reply="4.05", note="Delivery Method 0: no push"),
            # T6 (+T14): a single-message package passes through DOWNLOADING (Zephyr).
            Rule(
                id="T6+T14",
                guard=SINGLE & AUTO,
                via=(DOWNLOADING, DOWNLOADED),
                to=UPDATING,
                result=UpdateResult.INITIAL,
                before=(StoreBlock,),
                after=(StartInstall,),
                uri="clear",
            ),
            Rule(
                id="T6",
                guard=SINGLE,
                via=(DOWNLOADING,),
                to=DOWNLOADED,
                result=UpdateResult.INITIAL,
                before=(StoreBlock,),
                uri="clear",
            ),
            # T4: state 1 on the first block, not only after reassembly.
            Rule(
                id="T4",
                guard=FIRST_BLOCK,
                to=DOWNLOADING,
                result=UpdateResult.INITIAL,
                before=(StoreBlock,),
                uri="clear",
                reply="2.31",
            ),
            Rule(id="B1", reply="4.08", note="Block1 out of sequence: a push starts at block 0"),
        ),
        (IDLE, WriteUri): (
            Rule(id="T9", guard=EMPTY_URI, to=IDLE, result=UpdateResult.INITIAL, uri="clear"),
            Rule(id="R1", guard=LONG_URI, reply="4.00", note="Package URI is 0..255 characters"),
            Rule(id="T3", guard=MALFORMED_URI, result=UpdateResult.INVALID_URI, uri="set"),
            Rule(
                id="T2",
                guard=UNSUPPORTED_SCHEME,
                result=UpdateResult.UNSUPPORTED_PROTOCOL,
                uri="set",
            ),
            Rule(
                id="T1",
                to=DOWNLOADING,
                result=UpdateResult.INITIAL,
                after=(StartDownload,),
                uri="set",
            ),
        ),
        (IDLE, ExecuteUpdate): (_UPDATE_REFUSED,),
        (IDLE, ExecuteCancel): (
            _CANCEL_ABSENT,
            Rule(id="T11", reply="4.05", note="nothing to cancel in IDLE"),
        ),
        (IDLE, WriteSeverity): _SEVERITY_RULES,
        (IDLE, WriteMaxDeferPeriod): _MAX_DEFER_RULES,
        (IDLE, WriteAutoUpgrade): _AUTO_UPGRADE_RULES,
        (IDLE, DownloadCompleted): (_internal("no download runs in IDLE"),),
        (IDLE, DownloadFailed): (_internal("no download runs in IDLE"),),
        (IDLE, DeferralEnded): (_internal("no update is deferred in IDLE"),),
        (IDLE, InstallSucceeded): (_internal("nothing is installed in IDLE"),),
        (IDLE, InstallFailed): (_internal("nothing is installed in IDLE"),),
        # ------------------------------------------------------------ DOWNLOADING (1)
        (DOWNLOADING, WritePackage): (
            Rule(
                id="T9",
                guard=RESET,
                to=IDLE,
                result=UpdateResult.INITIAL,
                before=_TEARDOWN,
                uri="clear",
            ),
            Rule(id="T20", guard=PULLING, reply="4.00", note="a pull download is running"),
            # A new block 0 restarts the push.
            Rule(
                id="T6+T14",
                guard=SINGLE & AUTO,
                via=(DOWNLOADED,),
                to=UPDATING,
                before=(DiscardImage, StoreBlock),
                after=(StartInstall,),
            ),
            Rule(id="T6", guard=SINGLE, to=DOWNLOADED, before=(DiscardImage, StoreBlock)),
            Rule(id="T4", guard=FIRST_BLOCK, before=(DiscardImage, StoreBlock), reply="2.31"),
            Rule(
                id="T6+T14",
                guard=LAST_BLOCK & AUTO,
                via=(DOWNLOADED,),
                to=UPDATING,
                before=(StoreBlock,),
                after=(StartInstall,),
            ),
            Rule(id="T6", guard=LAST_BLOCK, to=DOWNLOADED, before=(StoreBlock,)),
            Rule(id="T5", guard=NEXT_BLOCK, before=(StoreBlock,), reply="2.31"),
            # A retransmitted copy of the block just stored: answered again, changes nothing.
            Rule(id="B2", guard=REPEATED_BLOCK, reply="2.31"),
            Rule(id="B1", reply="4.08", note="Block1 out of sequence (Request Entity Incomplete)"),
        ),
        (DOWNLOADING, WriteUri): (
            Rule(
                id="T9",
                guard=EMPTY_URI,
                to=IDLE,
                result=UpdateResult.INITIAL,
                before=_TEARDOWN,
                uri="clear",
            ),
            Rule(id="T20", reply="4.00", note="a download is running; reset it first"),
        ),
        (DOWNLOADING, ExecuteUpdate): (_UPDATE_REFUSED,),
        (DOWNLOADING, ExecuteCancel): (
            _CANCEL_ABSENT,
            Rule(
                id="T10",
                to=IDLE,
                result=UpdateResult.CANCELLED,
                before=_TEARDOWN,
                uri="clear",
            ),
        ),
        (DOWNLOADING, WriteSeverity): _SEVERITY_RULES,
        (DOWNLOADING, WriteMaxDeferPeriod): _MAX_DEFER_RULES,
        (DOWNLOADING, WriteAutoUpgrade): _AUTO_UPGRADE_RULES,
        (DOWNLOADING, DownloadCompleted): (
            Rule(
                id="X",
                guard=PUSHING,
                reply="5.00",
                note="internal event out of place: a push completes with its last block (T6)",
            ),
            Rule(
                id="T7+T14",
                guard=AUTO,
                via=(DOWNLOADED,),
                to=UPDATING,
                after=(StartInstall,),
                reply="",
            ),
            Rule(id="T7", to=DOWNLOADED, reply=""),
        ),
        (DOWNLOADING, DownloadFailed): (
            Rule(id="T8", to=IDLE, result="event", before=_TEARDOWN, reply=""),
        ),
        (DOWNLOADING, DeferralEnded): (_internal("no update is deferred in DOWNLOADING"),),
        (DOWNLOADING, InstallSucceeded): (_internal("nothing is installed in DOWNLOADING"),),
        (DOWNLOADING, InstallFailed): (_internal("nothing is installed in DOWNLOADING"),),
        # ------------------------------------------------------------- DOWNLOADED (2)
        (DOWNLOADED, WritePackage): (
            Rule(
                id="T9",
                guard=RESET,
                to=IDLE,
                result=UpdateResult.INITIAL,
                before=(DiscardImage,),
                uri="clear",
            ),
            Rule(id="T20", reply="4.00", note="a package is downloaded; reset it first"),
        ),
        (DOWNLOADED, WriteUri): (
            Rule(
                id="T9",
                guard=EMPTY_URI,
                to=IDLE,
                result=UpdateResult.INITIAL,
                before=(DiscardImage,),
                uri="clear",
            ),
            Rule(id="T20", reply="4.00", note="a package is downloaded; reset it first"),
        ),
        (DOWNLOADED, ExecuteUpdate): (
            Rule(
                id="T13",
                guard=USER_DEFERS,
                result=UpdateResult.DEFERRED,
                after=(StartDeferral,),
            ),
            Rule(id="T12", to=UPDATING, result=UpdateResult.INITIAL, after=(StartInstall,)),
        ),
        (DOWNLOADED, ExecuteCancel): (
            _CANCEL_ABSENT,
            Rule(
                id="T10",
                to=IDLE,
                result=UpdateResult.CANCELLED,
                before=(DiscardImage,),
                uri="clear",
            ),
        ),
        (DOWNLOADED, WriteSeverity): _SEVERITY_RULES,
        (DOWNLOADED, WriteMaxDeferPeriod): _MAX_DEFER_RULES,
        (DOWNLOADED, WriteAutoUpgrade): _AUTO_UPGRADE_RULES,
        (DOWNLOADED, DownloadCompleted): (_internal("the download is already complete"),),
        (DOWNLOADED, DownloadFailed): (
            # The device could not store or verify the last push block it was handed.
            Rule(
                id="T8",
                guard=PUSH_JUST_ENDED,
                to=IDLE,
                result="event",
                before=(DiscardImage,),
                reply="",
            ),
            _internal("the download is already complete"),
        ),
        (DOWNLOADED, DeferralEnded): (
            Rule(
                id="T13",
                guard=DEFERRAL_PENDING,
                to=UPDATING,
                result=UpdateResult.INITIAL,
                after=(StartInstall,),
                reply="",
            ),
            _internal("no update is deferred (result is not 11)"),
        ),
        (DOWNLOADED, InstallSucceeded): (_internal("no installation runs in DOWNLOADED"),),
        (DOWNLOADED, InstallFailed): (_internal("no installation runs in DOWNLOADED"),),
        # --------------------------------------------------------------- UPDATING (3)
        (UPDATING, WritePackage): (_BUSY_UPDATING,),
        (UPDATING, WriteUri): (_BUSY_UPDATING,),
        (UPDATING, ExecuteUpdate): (_UPDATE_REFUSED,),
        (UPDATING, ExecuteCancel): (
            _CANCEL_ABSENT,
            Rule(id="T11", reply="4.05", note="the installation cannot be cancelled"),
        ),
        (UPDATING, WriteSeverity): _SEVERITY_RULES,
        (UPDATING, WriteMaxDeferPeriod): _MAX_DEFER_RULES,
        (UPDATING, WriteAutoUpgrade): _AUTO_UPGRADE_RULES,
        (UPDATING, DownloadCompleted): (_internal("the download is already complete"),),
        (UPDATING, DownloadFailed): (
            # Auto-upgrade after a push: the last block could not be stored after all.
            Rule(
                id="T8",
                guard=PUSH_JUST_ENDED,
                to=IDLE,
                result="event",
                before=(DiscardImage,),
                reply="",
            ),
            _internal("the download is already complete"),
        ),
        (UPDATING, DeferralEnded): (_internal("the update already runs"),),
        (UPDATING, InstallSucceeded): (
            Rule(id="T16", to=IDLE, result=UpdateResult.SUCCESS, reply=""),
        ),
        (UPDATING, InstallFailed): (
            # obj 1.0: "state returns at Downloaded" whatever the reason.
            Rule(
                id="T17",
                guard=OBJ_1_0,
                to=DOWNLOADED,
                result=UpdateResult.UPDATE_FAILED,
                reply="",
            ),
            Rule(
                id="T18",
                guard=IMAGE_UNUSABLE,
                to=IDLE,
                result="event",
                before=(DiscardImage,),
                reply="",
            ),
            Rule(id="T17", to=DOWNLOADED, result=UpdateResult.UPDATE_FAILED, reply=""),
        ),
    }
)


def _describe_result(spec: ResultSpec) -> str:
    if spec is None:
        return ""
    if spec == "event":
        return "event.result"
    return f"{int(spec)} {spec.name}"


def transition_rows() -> list[dict[str, str]]:
    """The table as rows, one per rule, in table order (for docs, tests and DataFrames).

    Returns
    -------
    list of dict
        Keys: ``id`` (T1..T20 or W/R/B/X), ``state`` (from), ``event`` (type name),
        ``guard`` ("" = otherwise), ``to`` (new state, "" = unchanged), ``via``
        (intermediate states, comma-separated), ``result`` ("" = unchanged), ``actions``
        (effect names in order, the changes marked ``<changes>``), ``reply`` (CoAP answer;
        "" for internal events) and ``note``.
    """
    rows: list[dict[str, str]] = []
    for (state, event_type), rules in TRANSITIONS.items():
        for rule in rules:
            if rule.rejects:
                actions = ""
            else:
                names = [k.__name__ for k in rule.before]
                names.append("<changes>")
                names += [k.__name__ for k in rule.after]
                actions = ", ".join(names)
            rows.append(
                {
                    "id": rule.id,
                    "state": state.name,
                    "event": event_type.__name__,
                    "guard": rule.guard.label if rule.guard else "",
                    "to": rule.to.name if rule.to is not None else "",
                    "via": ", ".join(s.name for s in rule.via),
                    "result": _describe_result(rule.result),
                    "actions": actions,
                    "reply": rule.reply,
                    "note": rule.note,
                }
            )
    return rows


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------


class FirmwareUpdateMachine:
    """The /5/0 instance of a simulated client: State, Update Result and what drives them.

    Parameters
    ----------
    object_version : {"1.0", "1.1", "1.2"}
        The /5 object version the device announces; decides Cancel, Severity, deferral,
        Automatic Upgrade and the install-failure state (digest 1.1, 1.4).
    protocols : iterable of ProtocolSupport
        Resource 8: the schemes a Package URI may use.
    delivery : DeliveryMethod
        Resource 9: pull only, push only or both.
    max_defer_period : int
        Resource 13 in seconds (obj >= 1.1); 0 forbids deferral.
    auto_upgrade : bool
        Resource 14 (obj 1.2): install as soon as the download is complete.

    Raises
    ------
    FotaUsageError
        For an unknown object version, a negative defer period, or a value for a resource
        the object version lacks (``max_defer_period > 0`` in 1.0, ``auto_upgrade`` before 1.2).
    """

    object_version: str
    protocols: tuple[ProtocolSupport, ...]
    delivery: DeliveryMethod
    max_defer_period: int
    auto_upgrade: bool
    severity: Severity
    state: State
    result: UpdateResult
    package_uri: str
    last_state_change: float | None
    bytes_received: int
    _push: bool
    _next_block: int | None
    _push_just_ended: bool

    def __init__(
        self,
        *,
        object_version: str = "1.1",
        protocols: Iterable[ProtocolSupport] = (ProtocolSupport.COAP,),
        delivery: DeliveryMethod = DeliveryMethod.BOTH,
        max_defer_period: int = 0,
        auto_upgrade: bool = False,
    ) -> None:
        if object_version not in OBJECT_VERSIONS:
            raise FotaUsageError(f"unknown /5 object version {object_version!r}")
        if max_defer_period < 0:
            raise FotaUsageError("max_defer_period is unsigned (seconds)")
        if max_defer_period and object_version == "1.0":
            raise FotaUsageError("Maximum Defer Period (13) needs /5 object version 1.1 or 1.2")
        if auto_upgrade and object_version != "1.2":
            raise FotaUsageError("Automatic Upgrade at Download (14) needs /5 object version 1.2")
        self.object_version = object_version
        self.protocols = tuple(dict.fromkeys(ProtocolSupport(p) for p in protocols))
        self.delivery = DeliveryMethod(delivery)
        self.max_defer_period = max_defer_period
        self.auto_upgrade = auto_upgrade
        self.severity = Severity.MANDATORY
        self.state = State.IDLE
        self.result = UpdateResult.INITIAL
        self.package_uri = ""
        self.last_state_change = None
        self.bytes_received = 0
        # Push bookkeeping (the few rules the table leaves to code):
        self._push = False  # the current download arrives by Block1 writes
        self._next_block: int | None = None  # Block1 number expected next
        self._push_just_ended = False  # the previous event was the last push block

    @classmethod
    def restore(
        cls,
        *,
        state: State,
        result: UpdateResult,
        package_uri: str = "",
        last_state_change: float | None = None,
        severity: Severity = Severity.MANDATORY,
        object_version: str = "1.1",
        protocols: Iterable[ProtocolSupport] = (ProtocolSupport.COAP,),
        delivery: DeliveryMethod = DeliveryMethod.BOTH,
        max_defer_period: int = 0,
        auto_upgrade: bool = False,
    ) -> FirmwareUpdateMachine:
        """A machine as persisted storage brings it back after a reboot (digest 1.6).

        The usual case is the new image reporting its outcome: ``state=IDLE,
        result=SUCCESS`` (or ``UPDATE_FAILED``/``INTEGRITY_CHECK_FAILURE`` after a rollback).
        A restored DOWNLOADING with a ``package_uri`` is a pull the device resumes itself;
        without one it is a push, which continues only with a new block 0.

        Raises
        ------
        FotaUsageError
            When the state/result pair is not one the machine can be in (see
            :data:`VALID_RESULTS`), or the result does not exist in the object version.
        """
        machine = cls(
            object_version=object_version,
            protocols=protocols,
            delivery=delivery,
            max_defer_period=max_defer_period,
            auto_upgrade=auto_upgrade,
        )
        state, result = State(state), UpdateResult(result)
        if result not in VALID_RESULTS[state]:
            raise FotaUsageError(f"/5 cannot be in {state.name} with result {result.name}")
        if object_version == "1.0" and result in RESULTS_SINCE_1_1:
            raise FotaUsageError(f"result {result.name} needs /5 object version 1.1")
        if len(package_uri) > MAX_URI_LENGTH:
            raise FotaUsageError("Package URI is 0..255 characters")
        machine.state = state
        machine.result = result
        machine.package_uri = package_uri
        machine.last_state_change = last_state_change
        machine.severity = Severity(severity)
        machine._push = state is DOWNLOADING and not package_uri
        return machine

    # -- the engine ------------------------------------------------------------------------

    @property
    def next_block(self) -> int | None:
        """The Block1 number of a PUSH the machine expects next (None: no PUSH under way)."""
        return self._next_block

    def rule_for(self, event: Event) -> Rule:
        """The rule :meth:`handle` would apply to ``event`` now (nothing changes)."""
        try:
            rules = TRANSITIONS[(self.state, type(event))]
        except KeyError:
            raise TypeError(f"not a /5 event: {event!r}") from None
        for rule in rules:
            if rule.guard is None or rule.guard(self, event):
                return rule
        raise AssertionError(f"table entry for {self.state.name} has no final rule")

    def handle(self, event: Event, now: float) -> list[Action]:
        """Apply one trigger; return the actions the device must carry out, in order.

        Order: the rule's ``before`` effects (abort, discard, store), :class:`ResultChanged`,
        one :class:`StateChanged` per hop, the rule's ``after`` effects (start download,
        install, deferral). Last State Change Time is set to ``now`` when the state changes.

        Raises
        ------
        FotaError
            When the rule rejects the trigger; ``coap_code`` is the device's answer and
            every attribute of the machine is unchanged.
        """
        rule = self.rule_for(event)
        if rule.rejects:
            raise FotaError(
                f"{type(event).__name__} refused in {self.state.name} [{rule.id}]: {rule.note}",
                coap_code=rule.reply,
            )
        return self._apply(rule, event, now)

    def _apply(self, rule: Rule, event: Event, now: float) -> list[Action]:
        actions: list[Action] = [self._effect(kind, event) for kind in rule.before]

        if rule.result == "event":
            if not isinstance(event, DownloadFailed | InstallFailed):
                raise TypeError(f"rule {rule.id} takes the result of {event!r}")
            new_result = event.result
        elif rule.result is None:
            new_result = self.result
        else:
            new_result = rule.result
        if new_result != self.result:
            actions.append(ResultChanged(self.result, new_result))
            self.result = new_result

        hops = [*rule.via, rule.to] if rule.to is not None else []
        for hop in hops:
            if hop is not self.state:
                actions.append(StateChanged(self.state, hop))
                self.last_state_change = now  # res 12, stamped before the change
                self.state = hop

        if rule.writes is not None:
            if not isinstance(event, WriteSeverity | WriteMaxDeferPeriod | WriteAutoUpgrade):
                raise TypeError(f"rule {rule.id} writes from {event!r}")
            if rule.writes == "severity":
                self.severity = Severity(event.value)
            elif rule.writes == "max_defer_period":
                self.max_defer_period = int(event.value)
            else:
                self.auto_upgrade = bool(event.value)

        if rule.uri == "clear":
            self.package_uri = ""
        elif rule.uri == "set" and isinstance(event, WriteUri):
            self.package_uri = event.uri

        actions += [self._effect(kind, event) for kind in rule.after]

        if self.state is not DOWNLOADING:
            self._next_block = None
        self._push_just_ended = StoreBlock in rule.before and self.state is not DOWNLOADING
        return actions

    def _effect(self, kind: type[Effect], event: Event) -> Effect:
        """Build one effect of a rule and keep the push/pull bookkeeping in step with it."""
        if kind is StoreBlock:
            if not isinstance(event, WritePackage):
                raise TypeError(f"StoreBlock needs a WritePackage, not {event!r}")
            if event.block_number == 0:
                self.bytes_received = 0
            self.bytes_received += len(event.data)
            self._next_block = event.block_number + 1
            self._push = True
            return StoreBlock(event.block_number, event.data)
        if kind is StartDownload:
            if not isinstance(event, WriteUri):
                raise TypeError(f"StartDownload needs a WriteUri, not {event!r}")
            self._push = False
            self._next_block = None
            self.bytes_received = 0
            return StartDownload(event.uri)
        if kind is DiscardImage:
            self.bytes_received = 0
            self._next_block = None
            return DiscardImage()
        if kind is AbortDownload:
            return AbortDownload()
        if kind is StartInstall:
            return StartInstall()
        if kind is StartDeferral:
            return StartDeferral(self.max_defer_period)
        raise TypeError(f"unknown effect {kind!r}")

    # -- views -----------------------------------------------------------------------------

    def resources(self) -> dict[int, int | str | bool | tuple[int, ...]]:
        """Readable /5/0 resource values this machine owns, for its object version.

        Res 3, 5, 8, 9 always; 1 (Package URI); from obj 1.1: 11, 12 (0 before any change),
        13; from obj 1.2: 14. PkgName/PkgVersion (6, 7) belong to the device's image.
        """
        values: dict[int, int | str | bool | tuple[int, ...]] = {
            1: self.package_uri,
            3: int(self.state),
            5: int(self.result),
            8: tuple(int(p) for p in self.protocols),
            9: int(self.delivery),
        }
        if self.object_version != "1.0":
            values[11] = int(self.severity)
            values[12] = int(self.last_state_change or 0)
            values[13] = self.max_defer_period
        if self.object_version == "1.2":
            values[14] = self.auto_upgrade
        return values

    def __repr__(self) -> str:
        return (
            f"<FirmwareUpdateMachine obj {self.object_version} state={self.state.name} "
            f"result={self.result.name} uri={self.package_uri!r} "
            f"bytes_received={self.bytes_received}>"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("State (/5/0/3)", f"{int(self.state)} {self.state.name}"),
            ("Update Result (/5/0/5)", f"{int(self.result)} {self.result.name}"),
            ("Package URI (/5/0/1)", self.package_uri or "(empty)"),
            ("Bytes received (push)", str(self.bytes_received)),
            (
                "Last state change (/5/0/12)",
                "never" if self.last_state_change is None else f"{self.last_state_change:g}",
            ),
            ("Object version", self.object_version),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>Firmware Update /5/0</caption>{body}</table>"
