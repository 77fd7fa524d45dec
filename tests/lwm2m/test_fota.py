"""Tests of the /5 state machine (labkit.lwm2m.fota) and its diagram.

The core test is table-driven: CASES lists, for machines in each of the four states (reached
by real event sequences, not by poking attributes), a representative trigger of every event
type and what must happen -- the new state, result and actions, or a FotaError with its CoAP
code and every attribute unchanged. Meta-tests check that CASES covers every (state, event
type) pair and selects every rule of the table at least once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.lwm2m.errors import FotaError
from labkit.lwm2m.fota import (
    DOWNLOAD_FAILURES,
    EVENT_TYPES,
    TRANSITIONS,
    VALID_RESULTS,
    AbortDownload,
    Action,
    DeferralEnded,
    DiscardImage,
    DownloadCompleted,
    DownloadFailed,
    Event,
    ExecuteCancel,
    ExecuteUpdate,
    FirmwareUpdateMachine,
    FotaUsageError,
    InstallFailed,
    InstallSucceeded,
    ResultChanged,
    StartDeferral,
    StartDownload,
    StartInstall,
    StateChanged,
    StoreBlock,
    WriteAutoUpgrade,
    WriteMaxDeferPeriod,
    WritePackage,
    WriteSeverity,
    WriteUri,
    transition_rows,
)
from labkit.lwm2m.fota import __doc__ as FOTA_DOC
from labkit.lwm2m.fota_diagram import edge_label, mermaid_state_diagram
from labkit.lwm2m.objects import DeliveryMethod, ProtocolSupport, Severity, State, UpdateResult

IDLE, DOWNLOADING, DOWNLOADED, UPDATING = State
R = UpdateResult
URI = "coap://repo.example:5683/fw/v2.bin"


def SC(a: State, b: State) -> StateChanged:
    return StateChanged(a, b)


def RC(a: int, b: int) -> ResultChanged:
    return ResultChanged(R(a), R(b))


def snapshot(m: FirmwareUpdateMachine) -> dict[str, Any]:
    return dict(vars(m))


# ---------------------------------------------------------------------------------------------
# Machines in each state, reached through real event sequences
# ---------------------------------------------------------------------------------------------


def idle(**cfg: Any) -> FirmwareUpdateMachine:
    return FirmwareUpdateMachine(**cfg)


def idle_failed(**cfg: Any) -> FirmwareUpdateMachine:
    """IDLE with Result 7 left from a bad URI (T3)."""
    m = idle(**cfg)
    m.handle(WriteUri(uri="no uri here"), 1.0)
    return m


def pulling(**cfg: Any) -> FirmwareUpdateMachine:
    m = idle(**cfg)
    m.handle(WriteUri(uri=URI), 1.0)
    return m


def pushing(**cfg: Any) -> FirmwareUpdateMachine:
    """DOWNLOADING by push, blocks 0 and 1 stored (4 bytes); block 2 expected next."""
    m = idle(**cfg)
    m.handle(WritePackage(block_number=0, more=True, data=b"ab"), 1.0)
    m.handle(WritePackage(block_number=1, more=True, data=b"cd"), 2.0)
    return m


def downloaded(**cfg: Any) -> FirmwareUpdateMachine:
    m = pulling(**cfg)
    m.handle(DownloadCompleted(), 3.0)
    return m


def pushed(**cfg: Any) -> FirmwareUpdateMachine:
    """Right after the last push block (DOWNLOADED, or UPDATING with auto-upgrade)."""
    m = pushing(**cfg)
    m.handle(WritePackage(block_number=2, more=False, data=b"ef"), 3.0)
    return m


def deferred(**cfg: Any) -> FirmwareUpdateMachine:
    m = downloaded(max_defer_period=60, **cfg)
    m.handle(ExecuteUpdate(user_defers=True), 4.0)
    return m


def updating(**cfg: Any) -> FirmwareUpdateMachine:
    m = downloaded(**cfg)
    m.handle(ExecuteUpdate(), 4.0)
    return m


# Representative events
FIRST = WritePackage(block_number=0, more=True, data=b"AB")
SINGLE = WritePackage(block_number=0, more=False, data=b"IMAGE")
NEXT = WritePackage(block_number=2, more=True, data=b"ef")
LAST = WritePackage(block_number=2, more=False, data=b"ef")
REPEAT = WritePackage(block_number=1, more=True, data=b"cd")
GAP = WritePackage(block_number=5, more=True, data=b"zz")
NUL = WritePackage(block_number=0, more=False, data=b"\x00")
EMPTY = WritePackage(block_number=0, more=False, data=b"")
WU = WriteUri(uri=URI)
WU_EMPTY = WriteUri(uri="")
WU_BAD = WriteUri(uri="repo.example/fw.bin")
WU_HTTP = WriteUri(uri="http://repo.example/fw.bin")
WU_LONG = WriteUri(uri="coap://repo.example/" + "x" * 250)
EU = ExecuteUpdate()
EU_DEFER = ExecuteUpdate(user_defers=True)
EC = ExecuteCancel()
DC = DownloadCompleted()
DF4 = DownloadFailed(result=R.CONNECTION_LOST)
DE = DeferralEnded()
IS = InstallSucceeded()
IF = InstallFailed()
IF_BAD5 = InstallFailed(result=R.INTEGRITY_CHECK_FAILURE, image_usable=False)


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[..., FirmwareUpdateMachine]
    event: Event
    state: State | None = None  # None: a rejection is expected
    result: int | None = None
    actions: Sequence[Action] = ()
    code: str | None = None  # the FotaError code of a rejection
    cfg: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)  # attributes to check afterwards


def ok(
    name: str,
    setup: Callable[..., FirmwareUpdateMachine],
    event: Event,
    state: State,
    result: int,
    actions: Sequence[Action] = (),
    **kw: Any,
) -> Case:
    return Case(name, setup, event, state, result, actions, **kw)


def err(
    name: str,
    setup: Callable[..., FirmwareUpdateMachine],
    event: Event,
    code: str,
    **kw: Any,
) -> Case:
    return Case(name, setup, event, code=code, **kw)


V10 = {"object_version": "1.0"}
V12_AUTO = {"object_version": "1.2", "auto_upgrade": True}

CASES = [
    # ---------------------------------------------------------------- IDLE
    ok(
        "idle first block T4",
        idle,
        FIRST,
        DOWNLOADING,
        0,
        [StoreBlock(0, b"AB"), SC(IDLE, DOWNLOADING)],
        after={"bytes_received": 2},
    ),
    ok(
        "idle single message T6",
        idle,
        SINGLE,
        DOWNLOADED,
        0,
        [StoreBlock(0, b"IMAGE"), SC(IDLE, DOWNLOADING), SC(DOWNLOADING, DOWNLOADED)],
    ),
    ok(
        "idle single message auto T6+T14",
        idle,
        SINGLE,
        UPDATING,
        0,
        [
            StoreBlock(0, b"IMAGE"),
            SC(IDLE, DOWNLOADING),
            SC(DOWNLOADING, DOWNLOADED),
            SC(DOWNLOADED, UPDATING),
            StartInstall(),
        ],
        cfg=V12_AUTO,
    ),
    ok(
        "idle first block clears old result T4",
        idle_failed,
        FIRST,
        DOWNLOADING,
        0,
        [StoreBlock(0, b"AB"), RC(7, 0), SC(IDLE, DOWNLOADING)],
        after={"package_uri": ""},
    ),
    ok("idle NUL reset T9", idle, NUL, IDLE, 0, []),
    ok("idle empty reset clears result T9", idle_failed, EMPTY, IDLE, 0, [RC(7, 0)]),
    err("idle block out of sequence B1", idle, GAP, "4.08"),
    err(
        "idle push on pull-only device R9",
        idle,
        FIRST,
        "4.05",
        cfg={"delivery": DeliveryMethod.PULL_ONLY},
    ),
    ok(
        "idle NUL reset on pull-only T9",
        idle,
        NUL,
        IDLE,
        0,
        [],
        cfg={"delivery": DeliveryMethod.PULL_ONLY},
    ),
    ok(
        "idle uri T1",
        idle,
        WU,
        DOWNLOADING,
        0,
        [SC(IDLE, DOWNLOADING), StartDownload(URI)],
        after={"package_uri": URI},
    ),
    ok(
        "idle uri after failure T1",
        idle_failed,
        WU,
        DOWNLOADING,
        0,
        [RC(7, 0), SC(IDLE, DOWNLOADING), StartDownload(URI)],
    ),
    ok(
        "idle http uri with http support T1",
        idle,
        WU_HTTP,
        DOWNLOADING,
        0,
        [SC(IDLE, DOWNLOADING), StartDownload(WU_HTTP.uri)],
        cfg={"protocols": [ProtocolSupport.COAP, ProtocolSupport.HTTP]},
    ),
    ok(
        "idle unsupported scheme T2",
        idle,
        WU_HTTP,
        IDLE,
        9,
        [RC(0, 9)],
        after={"package_uri": WU_HTTP.uri},
    ),
    ok(
        "idle uri on push-only device T2",
        idle,
        WU,
        IDLE,
        9,
        [RC(0, 9)],
        cfg={"delivery": DeliveryMethod.PUSH_ONLY},
    ),
    ok(
        "idle malformed uri T3",
        idle,
        WU_BAD,
        IDLE,
        7,
        [RC(0, 7)],
        after={"package_uri": WU_BAD.uri},
    ),
    ok("idle empty uri T9", idle_failed, WU_EMPTY, IDLE, 0, [RC(7, 0)], after={"package_uri": ""}),
    err("idle uri too long R1", idle, WU_LONG, "4.00"),
    err("idle update T15", idle, EU, "4.05"),
    err("idle cancel T11", idle, EC, "4.05"),
    err("idle cancel obj 1.0 R10", idle, EC, "4.04", cfg=V10),
    ok(
        "idle severity W11",
        idle,
        WriteSeverity(value=0),
        IDLE,
        0,
        [],
        after={"severity": Severity.CRITICAL},
    ),
    err("idle severity out of range R11", idle, WriteSeverity(value=3), "4.00"),
    err("idle severity obj 1.0 R11", idle, WriteSeverity(value=2), "4.04", cfg=V10),
    ok(
        "idle max defer W13",
        idle,
        WriteMaxDeferPeriod(value=90),
        IDLE,
        0,
        [],
        after={"max_defer_period": 90},
    ),
    err("idle max defer negative R13", idle, WriteMaxDeferPeriod(value=-1), "4.00"),
    err("idle max defer obj 1.0 R13", idle, WriteMaxDeferPeriod(value=5), "4.04", cfg=V10),
    ok(
        "idle auto upgrade W14",
        idle,
        WriteAutoUpgrade(value=True),
        IDLE,
        0,
        [],
        cfg={"object_version": "1.2"},
        after={"auto_upgrade": True},
    ),
    err("idle auto upgrade obj 1.1 R14", idle, WriteAutoUpgrade(value=True), "4.04"),
    err("idle download completed X", idle, DC, "5.00"),
    err("idle download failed X", idle, DF4, "5.00"),
    err("idle deferral ended X", idle, DE, "5.00"),
    err("idle install succeeded X", idle, IS, "5.00"),
    err("idle install failed X", idle, IF, "5.00"),
    # ---------------------------------------------------------- DOWNLOADING by pull
    err("pull package write T20", pulling, FIRST, "4.00"),
    ok(
        "pull NUL reset T9",
        pulling,
        NUL,
        IDLE,
        0,
        [AbortDownload(), DiscardImage(), SC(DOWNLOADING, IDLE)],
        after={"package_uri": ""},
    ),
    err("pull new uri T20", pulling, WU, "4.00"),
    ok(
        "pull empty uri T9",
        pulling,
        WU_EMPTY,
        IDLE,
        0,
        [AbortDownload(), DiscardImage(), SC(DOWNLOADING, IDLE)],
        after={"package_uri": ""},
    ),
    err("pull update T15", pulling, EU, "4.05"),
    ok(
        "pull cancel T10",
        pulling,
        EC,
        IDLE,
        10,
        [AbortDownload(), DiscardImage(), RC(0, 10), SC(DOWNLOADING, IDLE)],
        after={"package_uri": ""},
    ),
    err("pull cancel obj 1.0 R10", pulling, EC, "4.04", cfg=V10),
    ok(
        "pull severity W11",
        pulling,
        WriteSeverity(value=2),
        DOWNLOADING,
        0,
        [],
        after={"severity": Severity.OPTIONAL},
    ),
    ok("pull max defer W13", pulling, WriteMaxDeferPeriod(value=0), DOWNLOADING, 0, []),
    ok(
        "pull auto upgrade W14",
        pulling,
        WriteAutoUpgrade(value=False),
        DOWNLOADING,
        0,
        [],
        cfg=V12_AUTO,
        after={"auto_upgrade": False},
    ),
    ok("pull completed T7", pulling, DC, DOWNLOADED, 0, [SC(DOWNLOADING, DOWNLOADED)]),
    ok(
        "pull completed auto T7+T14",
        pulling,
        DC,
        UPDATING,
        0,
        [SC(DOWNLOADING, DOWNLOADED), SC(DOWNLOADED, UPDATING), StartInstall()],
        cfg=V12_AUTO,
    ),
    ok(
        "pull failed T8",
        pulling,
        DF4,
        IDLE,
        4,
        [AbortDownload(), DiscardImage(), RC(0, 4), SC(DOWNLOADING, IDLE)],
        after={"package_uri": URI},
    ),
    err("pull deferral ended X", pulling, DE, "5.00"),
    err("pull install succeeded X", pulling, IS, "5.00"),
    err("pull install failed X", pulling, IF, "5.00"),
    # ---------------------------------------------------------- DOWNLOADING by push
    ok(
        "push next block T5",
        pushing,
        NEXT,
        DOWNLOADING,
        0,
        [StoreBlock(2, b"ef")],
        after={"bytes_received": 6},
    ),
    ok(
        "push last block T6",
        pushing,
        LAST,
        DOWNLOADED,
        0,
        [StoreBlock(2, b"ef"), SC(DOWNLOADING, DOWNLOADED)],
        after={"bytes_received": 6},
    ),
    ok(
        "push last block auto T6+T14",
        pushing,
        LAST,
        UPDATING,
        0,
        [
            StoreBlock(2, b"ef"),
            SC(DOWNLOADING, DOWNLOADED),
            SC(DOWNLOADED, UPDATING),
            StartInstall(),
        ],
        cfg=V12_AUTO,
    ),
    ok("push repeated block B2", pushing, REPEAT, DOWNLOADING, 0, [], after={"bytes_received": 4}),
    err("push gap B1", pushing, GAP, "4.08"),
    ok(
        "push new block 0 restarts T4",
        pushing,
        FIRST,
        DOWNLOADING,
        0,
        [DiscardImage(), StoreBlock(0, b"AB")],
        after={"bytes_received": 2},
    ),
    ok(
        "push new single message T6",
        pushing,
        SINGLE,
        DOWNLOADED,
        0,
        [DiscardImage(), StoreBlock(0, b"IMAGE"), SC(DOWNLOADING, DOWNLOADED)],
        after={"bytes_received": 5},
    ),
    ok(
        "push new single message auto T6+T14",
        pushing,
        SINGLE,
        UPDATING,
        0,
        [
            DiscardImage(),
            StoreBlock(0, b"IMAGE"),
            SC(DOWNLOADING, DOWNLOADED),
            SC(DOWNLOADED, UPDATING),
            StartInstall(),
        ],
        cfg=V12_AUTO,
    ),
    ok(
        "push empty reset T9",
        pushing,
        EMPTY,
        IDLE,
        0,
        [AbortDownload(), DiscardImage(), SC(DOWNLOADING, IDLE)],
        after={"bytes_received": 0},
    ),
    err("push uri T20", pushing, WU, "4.00"),
    err("push completed X", pushing, DC, "5.00"),
    ok(
        "push storage full T8",
        pushing,
        DownloadFailed(result=R.NOT_ENOUGH_FLASH),
        IDLE,
        2,
        [AbortDownload(), DiscardImage(), RC(0, 2), SC(DOWNLOADING, IDLE)],
    ),
    ok(
        "push cancel T10",
        pushing,
        EC,
        IDLE,
        10,
        [AbortDownload(), DiscardImage(), RC(0, 10), SC(DOWNLOADING, IDLE)],
    ),
    # ---------------------------------------------------------------- DOWNLOADED
    err("downloaded package write T20", downloaded, FIRST, "4.00"),
    err("downloaded single message T20", downloaded, SINGLE, "4.00"),
    ok(
        "downloaded NUL reset T9",
        downloaded,
        NUL,
        IDLE,
        0,
        [DiscardImage(), SC(DOWNLOADED, IDLE)],
        after={"package_uri": ""},
    ),
    err("downloaded uri T20", downloaded, WU, "4.00"),
    ok(
        "downloaded empty uri T9",
        downloaded,
        WU_EMPTY,
        IDLE,
        0,
        [DiscardImage(), SC(DOWNLOADED, IDLE)],
    ),
    ok(
        "downloaded update T12",
        downloaded,
        EU,
        UPDATING,
        0,
        [SC(DOWNLOADED, UPDATING), StartInstall()],
    ),
    ok(
        "downloaded user may not defer T12",
        downloaded,
        EU_DEFER,
        UPDATING,
        0,
        [SC(DOWNLOADED, UPDATING), StartInstall()],
    ),
    ok(
        "downloaded obj 1.0 ignores defer T12",
        downloaded,
        EU_DEFER,
        UPDATING,
        0,
        [SC(DOWNLOADED, UPDATING), StartInstall()],
        cfg=V10,
    ),
    ok(
        "downloaded user defers T13",
        downloaded,
        EU_DEFER,
        DOWNLOADED,
        11,
        [RC(0, 11), StartDeferral(60)],
        cfg={"max_defer_period": 60},
    ),
    ok(
        "downloaded cancel T10",
        downloaded,
        EC,
        IDLE,
        10,
        [DiscardImage(), RC(0, 10), SC(DOWNLOADED, IDLE)],
    ),
    err("downloaded cancel obj 1.0 R10", downloaded, EC, "4.04", cfg=V10),
    ok("downloaded severity W11", downloaded, WriteSeverity(value=1), DOWNLOADED, 0, []),
    ok(
        "downloaded max defer W13",
        downloaded,
        WriteMaxDeferPeriod(value=30),
        DOWNLOADED,
        0,
        [],
        after={"max_defer_period": 30},
    ),
    err("downloaded auto upgrade obj 1.1 R14", downloaded, WriteAutoUpgrade(value=True), "4.04"),
    err("downloaded download completed X", downloaded, DC, "5.00"),
    err("downloaded download failed X", downloaded, DF4, "5.00"),
    ok(
        "pushed last block not stored T8",
        pushed,
        DownloadFailed(result=R.INTEGRITY_CHECK_FAILURE),
        IDLE,
        5,
        [DiscardImage(), RC(0, 5), SC(DOWNLOADED, IDLE)],
    ),
    err("downloaded deferral ended without deferral X", downloaded, DE, "5.00"),
    ok(
        "deferred deferral ended T13",
        deferred,
        DE,
        UPDATING,
        0,
        [RC(11, 0), SC(DOWNLOADED, UPDATING), StartInstall()],
    ),
    ok(
        "deferred update again T12",
        deferred,
        EU,
        UPDATING,
        0,
        [RC(11, 0), SC(DOWNLOADED, UPDATING), StartInstall()],
    ),
    ok(
        "deferred cancel T10",
        deferred,
        EC,
        IDLE,
        10,
        [DiscardImage(), RC(11, 10), SC(DOWNLOADED, IDLE)],
    ),
    err("downloaded install succeeded X", downloaded, IS, "5.00"),
    err("downloaded install failed X", downloaded, IF, "5.00"),
    # ------------------------------------------------------------------ UPDATING
    err("updating package write T19", updating, FIRST, "4.05"),
    err("updating NUL reset T19", updating, NUL, "4.05"),
    err("updating uri T19", updating, WU, "4.05"),
    err("updating empty uri T19", updating, WU_EMPTY, "4.05"),
    err("updating update T15", updating, EU, "4.05"),
    err("updating cancel T11", updating, EC, "4.05"),
    err("updating cancel obj 1.0 R10", updating, EC, "4.04", cfg=V10),
    ok("updating severity W11", updating, WriteSeverity(value=0), UPDATING, 0, []),
    ok("updating max defer W13", updating, WriteMaxDeferPeriod(value=10), UPDATING, 0, []),
    ok(
        "updating auto upgrade W14",
        updating,
        WriteAutoUpgrade(value=True),
        UPDATING,
        0,
        [],
        cfg={"object_version": "1.2"},
    ),
    err("updating download completed X", updating, DC, "5.00"),
    err("updating download failed X", updating, DF4, "5.00"),
    ok(
        "auto-updating last block not stored T8",
        pushed,
        DownloadFailed(result=R.NOT_ENOUGH_FLASH),
        IDLE,
        2,
        [DiscardImage(), RC(0, 2), SC(UPDATING, IDLE)],
        cfg=V12_AUTO,
    ),
    err("updating deferral ended X", updating, DE, "5.00"),
    ok("updating success T16", updating, IS, IDLE, 1, [RC(0, 1), SC(UPDATING, IDLE)]),
    ok(
        "updating failed, image usable T17",
        updating,
        IF,
        DOWNLOADED,
        8,
        [RC(0, 8), SC(UPDATING, DOWNLOADED)],
    ),
    ok(
        "updating failed, image bad T18",
        updating,
        IF_BAD5,
        IDLE,
        5,
        [DiscardImage(), RC(0, 5), SC(UPDATING, IDLE)],
        after={"bytes_received": 0},
    ),
    ok(
        "updating failed, image bad, result 8 T18",
        updating,
        InstallFailed(image_usable=False),
        IDLE,
        8,
        [DiscardImage(), RC(0, 8), SC(UPDATING, IDLE)],
        cfg={"object_version": "1.2"},
    ),
    ok(
        "updating failed obj 1.0 always T17",
        updating,
        IF_BAD5,
        DOWNLOADED,
        8,
        [RC(0, 8), SC(UPDATING, DOWNLOADED)],
        cfg=V10,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_transition(case: Case) -> None:
    m = case.setup(**case.cfg)
    before = snapshot(m)
    if case.code is not None:
        with pytest.raises(FotaError) as info:
            m.handle(case.event, now=100.0)
        assert info.value.coap_code == case.code
        assert snapshot(m) == before, "a refused trigger must leave every attribute unchanged"
        return
    actions = m.handle(case.event, now=100.0)
    assert actions == list(case.actions)
    assert m.state is case.state
    assert m.result == case.result
    assert isinstance(m.result, UpdateResult)
    changed = any(isinstance(a, StateChanged) for a in actions)
    assert m.last_state_change == (100.0 if changed else before["last_state_change"])
    for name, value in case.after.items():
        assert getattr(m, name) == value, name


def test_cases_cover_every_state_and_event_type() -> None:
    covered = {(c.setup(**c.cfg).state, type(c.event)) for c in CASES}
    assert covered == {(s, e) for s in State for e in EVENT_TYPES}


def test_cases_select_every_rule_of_the_table() -> None:
    selected = set()
    for c in CASES:
        m = c.setup(**c.cfg)
        selected.add(id(m.rule_for(c.event)))
    missing = [
        (s.name, e.__name__, r.id)
        for (s, e), rules in TRANSITIONS.items()
        for r in rules
        if id(r) not in selected
    ]
    assert missing == []


# ---------------------------------------------------------------------------------------------
# The table itself
# ---------------------------------------------------------------------------------------------


def test_table_is_complete_and_every_entry_ends_with_an_unguarded_rule() -> None:
    assert set(TRANSITIONS) == {(s, e) for s in State for e in EVENT_TYPES}
    for key, rules in TRANSITIONS.items():
        assert rules, key
        assert rules[-1].guard is None, key
        assert all(r.guard is not None for r in rules[:-1]), key


def test_rule_ids_and_replies() -> None:
    ids = {r.id for rules in TRANSITIONS.values() for r in rules}
    for rid in ids:
        assert re.fullmatch(r"T\d+(\+T\d+)?|[WR]\d+|B[12]|X", rid), rid
    digest_ids = {part for rid in ids for part in rid.split("+") if part.startswith("T")}
    assert digest_ids == {f"T{n}" for n in range(1, 21)}
    for rules in TRANSITIONS.values():
        for r in rules:
            assert r.reply in {"", "2.04", "2.31", "4.00", "4.04", "4.05", "4.08", "5.00"}
            if r.rejects:
                assert r.to is None and r.result is None and not r.before and not r.after
                assert r.note


def test_transition_rows_one_per_rule() -> None:
    rows = transition_rows()
    assert len(rows) == sum(len(rules) for rules in TRANSITIONS.values())
    first = rows[0]
    assert set(first) == {
        "id",
        "state",
        "event",
        "guard",
        "to",
        "via",
        "result",
        "actions",
        "reply",
        "note",
    }
    t1 = next(r for r in rows if r["id"] == "T1")
    assert t1 == {
        "id": "T1",
        "state": "IDLE",
        "event": "WriteUri",
        "guard": "",
        "to": "DOWNLOADING",
        "via": "",
        "result": "0 INITIAL",
        "actions": "<changes>, StartDownload",
        "reply": "2.04",
        "note": "",
    }


def test_module_docstring_names_every_digest_transition() -> None:
    assert FOTA_DOC is not None
    for n in range(1, 21):
        assert re.search(rf"\bT{n}\b", FOTA_DOC), f"T{n}"


# ---------------------------------------------------------------------------------------------
# Whole runs
# ---------------------------------------------------------------------------------------------


def run(m: FirmwareUpdateMachine, events: Sequence[Event], start: float = 0.0) -> list[Action]:
    out: list[Action] = []
    for i, event in enumerate(events):
        out += m.handle(event, now=start + i)
    return out


def test_push_happy_path() -> None:
    m = FirmwareUpdateMachine()
    blocks = [b"0" * 16, b"1" * 16, b"2" * 5]
    events: list[Event] = [
        WritePackage(block_number=i, more=i < 2, data=d) for i, d in enumerate(blocks)
    ]
    actions = run(m, [*events, ExecuteUpdate(), InstallSucceeded()], start=10.0)
    assert actions == [
        StoreBlock(0, blocks[0]),
        SC(IDLE, DOWNLOADING),
        StoreBlock(1, blocks[1]),
        StoreBlock(2, blocks[2]),
        SC(DOWNLOADING, DOWNLOADED),
        SC(DOWNLOADED, UPDATING),
        StartInstall(),
        RC(0, 1),
        SC(UPDATING, IDLE),
    ]
    assert (m.state, m.result) == (IDLE, R.SUCCESS)
    assert m.bytes_received == 37
    assert m.last_state_change == 14.0


def test_pull_happy_path() -> None:
    m = FirmwareUpdateMachine(protocols=[ProtocolSupport.COAPS, ProtocolSupport.HTTPS])
    uri = "https://repo.example/fw/v2.bin"
    actions = run(m, [WriteUri(uri=uri), DownloadCompleted(), ExecuteUpdate(), InstallSucceeded()])
    assert actions == [
        SC(IDLE, DOWNLOADING),
        StartDownload(uri),
        SC(DOWNLOADING, DOWNLOADED),
        SC(DOWNLOADED, UPDATING),
        StartInstall(),
        RC(0, 1),
        SC(UPDATING, IDLE),
    ]
    assert m.package_uri == uri
    assert m.bytes_received == 0


def test_deferral_reaches_result_11_then_updating() -> None:
    m = FirmwareUpdateMachine(object_version="1.1", max_defer_period=3600)
    run(m, [WriteUri(uri=URI), DownloadCompleted()])
    assert m.handle(ExecuteUpdate(user_defers=True), now=50.0) == [RC(0, 11), StartDeferral(3600)]
    assert (m.state, m.result) == (DOWNLOADED, R.DEFERRED)
    assert m.last_state_change == 1.0  # the deferral changes no state
    assert m.handle(DeferralEnded(), now=60.0) == [
        RC(11, 0),
        SC(DOWNLOADED, UPDATING),
        StartInstall(),
    ]
    assert m.last_state_change == 60.0
    with pytest.raises(FotaError):  # a second timer firing is a stale event
        m.handle(DeferralEnded(), now=61.0)


def test_object_1_0_versus_1_1() -> None:
    old, new = FirmwareUpdateMachine(object_version="1.0"), FirmwareUpdateMachine()
    for m in (old, new):
        run(m, [WriteUri(uri=URI), DownloadCompleted(), ExecuteUpdate()])
    # Failure after Update: 1.0 returns to DOWNLOADED whatever the reason, 1.1 may go to IDLE.
    old.handle(IF_BAD5, now=9.0)
    new.handle(IF_BAD5, now=9.0)
    assert (old.state, old.result) == (DOWNLOADED, R.UPDATE_FAILED)
    assert (new.state, new.result) == (IDLE, R.INTEGRITY_CHECK_FAILURE)
    # Cancel does not exist in 1.0 (4.04); in 1.1 it works from DOWNLOADED.
    with pytest.raises(FotaError) as info:
        old.handle(ExecuteCancel(), now=10.0)
    assert info.value.coap_code == "4.04"
    run(new, [WriteUri(uri=URI), DownloadCompleted(), ExecuteCancel()])
    assert (new.state, new.result) == (IDLE, R.CANCELLED)
    assert 10 not in old.resources() and 12 in new.resources()


def test_last_state_change_only_on_state_changes() -> None:
    m = FirmwareUpdateMachine()
    assert m.last_state_change is None
    m.handle(WriteUri(uri="ftp://repo/fw"), now=5.0)  # T2: result only
    assert (m.result, m.last_state_change) == (R.UNSUPPORTED_PROTOCOL, None)
    m.handle(FIRST, now=6.0)
    assert m.last_state_change == 6.0
    m.handle(WritePackage(block_number=1, more=True, data=b"x"), now=7.0)  # T5: no change
    m.handle(WritePackage(block_number=1, more=True, data=b"x"), now=8.0)  # B2: repeat
    m.handle(WriteSeverity(value=0), now=9.0)
    assert m.last_state_change == 6.0
    m.handle(WritePackage(block_number=2, more=False, data=b"y"), now=10.0)
    assert m.last_state_change == 10.0


REACH: dict[UpdateResult, tuple[dict[str, Any], list[Event]]] = {
    R.SUCCESS: ({}, [WU, DC, EU, IS]),
    R.NOT_ENOUGH_FLASH: ({}, [FIRST, DownloadFailed(result=R.NOT_ENOUGH_FLASH)]),
    R.OUT_OF_RAM: ({}, [WU, DownloadFailed(result=R.OUT_OF_RAM)]),
    R.CONNECTION_LOST: ({}, [WU, DF4]),
    R.INTEGRITY_CHECK_FAILURE: ({}, [WU, DC, EU, IF_BAD5]),
    R.UNSUPPORTED_PACKAGE_TYPE: ({}, [WU, DownloadFailed(result=R.UNSUPPORTED_PACKAGE_TYPE)]),
    R.INVALID_URI: ({}, [WU_BAD]),
    R.UPDATE_FAILED: ({}, [WU, DC, EU, IF]),
    R.UNSUPPORTED_PROTOCOL: ({}, [WU_HTTP]),
    R.CANCELLED: ({}, [WU, EC]),
    R.DEFERRED: ({"max_defer_period": 10}, [WU, DC, EU_DEFER]),
}


def test_every_result_1_to_11_is_reachable() -> None:
    assert set(REACH) == set(UpdateResult) - {R.INITIAL}
    for result, (cfg, events) in REACH.items():
        m = FirmwareUpdateMachine(**cfg)
        run(m, events)
        assert m.result is result


# ---------------------------------------------------------------------------------------------
# Restore, construction, events, views
# ---------------------------------------------------------------------------------------------


def test_restore_after_reboot() -> None:
    m = FirmwareUpdateMachine.restore(state=IDLE, result=R.SUCCESS, last_state_change=5.0)
    assert (m.state, m.result, m.last_state_change) == (IDLE, R.SUCCESS, 5.0)
    assert m.handle(WU, now=6.0) == [RC(1, 0), SC(IDLE, DOWNLOADING), StartDownload(URI)]

    d = FirmwareUpdateMachine.restore(state=DOWNLOADED, result=R.DEFERRED, max_defer_period=60)
    assert d.handle(DeferralEnded(), now=1.0)[-1] == StartInstall()

    # A push cut by a reboot continues only with a fresh block 0.
    p = FirmwareUpdateMachine.restore(state=DOWNLOADING, result=R.INITIAL)
    with pytest.raises(FotaError) as info:
        p.handle(WritePackage(block_number=3, more=True, data=b"x"), now=1.0)
    assert info.value.coap_code == "4.08"
    assert p.handle(FIRST, now=2.0) == [DiscardImage(), StoreBlock(0, b"AB")]

    # A restored pull is the device's to resume; the machine takes its outcome.
    q = FirmwareUpdateMachine.restore(state=DOWNLOADING, result=R.INITIAL, package_uri=URI)
    assert q.handle(DC, now=1.0) == [SC(DOWNLOADING, DOWNLOADED)]


@pytest.mark.parametrize(
    ("state", "result", "version"),
    [
        (UPDATING, R.SUCCESS, "1.1"),
        (DOWNLOADING, R.CONNECTION_LOST, "1.1"),
        (IDLE, R.DEFERRED, "1.1"),
        (IDLE, R.CANCELLED, "1.0"),
    ],
)
def test_restore_refuses_impossible_combinations(
    state: State, result: UpdateResult, version: str
) -> None:
    with pytest.raises(FotaUsageError):
        FirmwareUpdateMachine.restore(state=state, result=result, object_version=version)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        FirmwareUpdateMachine(object_version="2.0")
    with pytest.raises(ValueError):
        FirmwareUpdateMachine(object_version="1.0", max_defer_period=10)
    with pytest.raises(ValueError):
        FirmwareUpdateMachine(object_version="1.1", auto_upgrade=True)
    with pytest.raises(ValueError):
        FirmwareUpdateMachine(max_defer_period=-1)
    m = FirmwareUpdateMachine(protocols=[ProtocolSupport.COAP, 0, ProtocolSupport.HTTP])  # type: ignore[list-item]
    assert m.protocols == (ProtocolSupport.COAP, ProtocolSupport.HTTP)


def test_events_that_can_never_be_valid_fail_when_built() -> None:
    with pytest.raises(FotaUsageError):
        DownloadFailed(result=R.SUCCESS)
    with pytest.raises(FotaUsageError):
        DownloadFailed(result=R.UPDATE_FAILED)
    with pytest.raises(FotaUsageError):
        InstallFailed(result=R.NOT_ENOUGH_FLASH)
    with pytest.raises(ValueError):
        WritePackage(block_number=-1, more=False, data=b"")
    assert DownloadFailed(result=4).result is R.CONNECTION_LOST  # type: ignore[arg-type]


def test_events_are_frozen_and_keyword_only() -> None:
    with pytest.raises(TypeError):
        WriteUri("coap://x")  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        WU.uri = "x"  # type: ignore[misc]


def test_uri_checks() -> None:
    for uri in ["coap://[::1", "coap://host:99999/x", "coap:///path", "just text", "coap://a b"]:
        m = FirmwareUpdateMachine()
        m.handle(WriteUri(uri=uri), now=0.0)
        assert m.result is R.INVALID_URI, uri
    m = FirmwareUpdateMachine(protocols=list(ProtocolSupport))
    m.handle(WriteUri(uri="COAPS+TCP://repo.example/fw"), now=0.0)
    assert m.state is DOWNLOADING


def test_resources_follow_the_object_version() -> None:
    assert set(FirmwareUpdateMachine(object_version="1.0").resources()) == {1, 3, 5, 8, 9}
    assert set(FirmwareUpdateMachine().resources()) == {1, 3, 5, 8, 9, 11, 12, 13}
    m = FirmwareUpdateMachine(object_version="1.2", auto_upgrade=True)
    assert m.resources()[14] is True


def test_repr_html_shows_names() -> None:
    m = FirmwareUpdateMachine()
    m.handle(WriteUri(uri="coap://repo/<fw>"), now=0.0)
    text = m._repr_html_()
    assert "DOWNLOADING" in text and "INITIAL" in text
    assert "&lt;fw&gt;" in text
    assert "DOWNLOADING" in repr(m)


# ---------------------------------------------------------------------------------------------
# The diagram
# ---------------------------------------------------------------------------------------------


def test_diagram_lists_every_table_transition() -> None:
    text = mermaid_state_diagram()
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    for (state, event_type), rules in TRANSITIONS.items():
        for rule in rules:
            if rule.rejects:
                continue
            label = edge_label(rule, event_type.__name__)
            hops = [state, *rule.via, rule.to if rule.to is not None else state]
            for a, b in pairwise(hops):
                assert f"    {a.name} --> {b.name}: {label}" in lines, (rule.id, a, b)
    for bad in (";", "#", '"', "<", ">"):
        assert all(bad not in line.partition(":")[2] for line in lines if "-->" in line)


def test_diagram_options() -> None:
    compact = mermaid_state_diagram(config_writes=False)
    assert "W11" not in compact.replace("W11, W13, W14 config writes", "")
    full = mermaid_state_diagram(rejections=True)
    assert "note right of UPDATING" in full
    assert "WritePackage 4.05 T19" in full


# ---------------------------------------------------------------------------------------------
# Random sequences
# ---------------------------------------------------------------------------------------------

results = st.sampled_from(sorted(UpdateResult))
events = st.one_of(
    st.builds(
        WritePackage,
        block_number=st.integers(0, 4),
        more=st.booleans(),
        data=st.sampled_from([b"", b"\x00", b"ab", b"\x00\x00", b"xyz"]),
    ),
    st.builds(
        WriteUri,
        uri=st.sampled_from(
            ["", URI, "coaps://r/fw", "http://r/fw", "https://r/fw", "nonsense", "c" * 300]
        ),
    ),
    st.builds(ExecuteUpdate, user_defers=st.booleans()),
    st.just(ExecuteCancel()),
    st.builds(WriteSeverity, value=st.integers(-1, 3)),
    st.builds(WriteMaxDeferPeriod, value=st.integers(-1, 100)),
    st.builds(WriteAutoUpgrade, value=st.booleans()),
    st.just(DownloadCompleted()),
    st.builds(DownloadFailed, result=st.sampled_from(sorted(DOWNLOAD_FAILURES))),
    st.just(DeferralEnded()),
    st.just(InstallSucceeded()),
    st.builds(
        InstallFailed,
        result=st.sampled_from([R.UPDATE_FAILED, R.INTEGRITY_CHECK_FAILURE]),
        image_usable=st.booleans(),
    ),
)
configs = st.fixed_dictionaries(
    {
        "object_version": st.sampled_from(["1.0", "1.1", "1.2"]),
        "delivery": st.sampled_from(list(DeliveryMethod)),
        "protocols": st.lists(st.sampled_from(list(ProtocolSupport)), max_size=3),
    }
)


@settings(max_examples=300, deadline=None)
@given(cfg=configs, seq=st.lists(events, max_size=40))
def test_random_sequences_keep_the_machine_valid(cfg: dict[str, Any], seq: list[Event]) -> None:
    m = FirmwareUpdateMachine(**cfg)
    for i, event in enumerate(seq):
        before = snapshot(m)
        try:
            actions = m.handle(event, now=float(i))
        except FotaError:
            assert snapshot(m) == before
            continue
        state = before["state"]
        result = before["result"]
        for action in actions:
            if isinstance(action, StateChanged):
                assert action.previous is state
                assert action.state is not state
                if action.state is UPDATING:
                    assert state is DOWNLOADED, "UPDATING only from DOWNLOADED"
                if action.state is DOWNLOADED:
                    assert state in (DOWNLOADING, UPDATING)
                if action.state is DOWNLOADING:
                    assert state is IDLE
                state = action.state
            elif isinstance(action, ResultChanged):
                assert action.previous is result
                result = action.result
        assert (m.state, m.result) == (state, result)
        assert 0 <= m.state <= 3 and 0 <= m.result <= 11
        assert m.result in VALID_RESULTS[m.state]
        if cfg["object_version"] == "1.0":
            assert m.result <= R.UNSUPPORTED_PROTOCOL
        if any(isinstance(a, StateChanged) for a in actions):
            assert m.last_state_change == float(i)
        else:
            assert m.last_state_change == before["last_state_change"]
        if m.state is not DOWNLOADING:
            assert m._next_block is None
