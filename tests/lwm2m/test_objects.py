"""Object definitions and enums against the digest tables (spec/lwm2m-fota.md sections 1-3)."""

from __future__ import annotations

import pytest

from labkit.lwm2m.objects import (
    BINDING_LETTERS,
    BINDING_MODES_1_0,
    DEFAULT_OBJECT_VERSIONS,
    OBJECTS,
    BatteryStatus,
    DeliveryMethod,
    NetworkBearer,
    PowerSource,
    ProtocolSupport,
    ResourceType,
    SecurityMode,
    Severity,
    State,
    UpdateResult,
    resource_def,
    resource_type,
)
from labkit.lwm2m.paths import Path

STR, INT, UINT = ResourceType.STRING, ResourceType.INTEGER, ResourceType.UNSIGNED_INTEGER
BOOL, OPQ, TIME = ResourceType.BOOLEAN, ResourceType.OPAQUE, ResourceType.TIME
LNK, NONE = ResourceType.OBJLNK, ResourceType.NONE

# (object, resource, name, operations, type, multiple, mandatory)
FIRMWARE = [
    (5, 0, "Package", "W", OPQ, False, True),
    (5, 1, "Package URI", "RW", STR, False, True),
    (5, 2, "Update", "E", NONE, False, True),
    (5, 3, "State", "R", INT, False, True),
    (5, 5, "Update Result", "R", INT, False, True),
    (5, 6, "PkgName", "R", STR, False, False),
    (5, 7, "PkgVersion", "R", STR, False, False),
    (5, 8, "Firmware Update Protocol Support", "R", INT, True, False),
    (5, 9, "Firmware Update Delivery Method", "R", INT, False, True),
    (5, 10, "Cancel", "E", NONE, False, False),
    (5, 11, "Severity", "RW", INT, False, False),
    (5, 12, "Last State Change Time", "R", TIME, False, False),
    (5, 13, "Maximum Defer Period", "RW", UINT, False, False),
    (5, 14, "Automatic Upgrade at Download", "RW", BOOL, False, False),
]
CONNMON = [
    (4, 0, "Network Bearer", "R", INT, False, True),
    (4, 1, "Available Network Bearer", "R", INT, True, True),
    (4, 2, "Radio Signal Strength", "R", INT, False, True),
    (4, 3, "Link Quality", "R", INT, False, False),
    (4, 4, "IP Addresses", "R", STR, True, True),
    (4, 5, "Router IP Addresses", "R", STR, True, False),
    (4, 6, "Link Utilization", "R", INT, False, False),
    (4, 7, "APN", "R", STR, True, False),
    (4, 8, "Cell ID", "R", INT, False, False),
    (4, 9, "SMNC", "R", INT, False, False),
    (4, 10, "SMCC", "R", INT, False, False),
    (4, 11, "SignalSNR", "R", INT, False, False),
    (4, 12, "LAC", "R", INT, False, False),
    (4, 13, "Coverage Enhancement Level", "R", INT, False, False),
]
DEVICE = [
    (3, 0, "Manufacturer", "R", STR, False, False),
    (3, 1, "Model Number", "R", STR, False, False),
    (3, 2, "Serial Number", "R", STR, False, False),
    (3, 3, "Firmware Version", "R", STR, False, False),
    (3, 4, "Reboot", "E", NONE, False, True),
    (3, 5, "Factory Reset", "E", NONE, False, False),
    (3, 6, "Available Power Sources", "R", INT, True, False),
    (3, 7, "Power Source Voltage", "R", INT, True, False),
    (3, 8, "Power Source Current", "R", INT, True, False),
    (3, 9, "Battery Level", "R", INT, False, False),
    (3, 10, "Memory Free", "R", INT, False, False),
    (3, 11, "Error Code", "R", INT, True, True),
    (3, 12, "Reset Error Code", "E", NONE, False, False),
    (3, 13, "Current Time", "RW", TIME, False, False),
    (3, 14, "UTC Offset", "RW", STR, False, False),
    (3, 15, "Timezone", "RW", STR, False, False),
    (3, 16, "Supported Binding and Modes", "R", STR, False, True),
    (3, 17, "Device Type", "R", STR, False, False),
    (3, 18, "Hardware Version", "R", STR, False, False),
    (3, 19, "Software Version", "R", STR, False, False),
    (3, 20, "Battery Status", "R", INT, False, False),
    (3, 21, "Memory Total", "R", INT, False, False),
    (3, 22, "ExtDevInfo", "R", LNK, True, False),
]
SERVER = [
    (1, 0, "Short Server ID", "R", INT, False, True),
    (1, 1, "Lifetime", "RW", UINT, False, True),
    (1, 2, "Default Minimum Period", "RW", INT, False, False),
    (1, 3, "Default Maximum Period", "RW", INT, False, False),
    (1, 4, "Disable", "E", NONE, False, False),
    (1, 5, "Disable Timeout", "RW", INT, False, False),
    (1, 6, "Notification Storing When Disabled or Offline", "RW", BOOL, False, True),
    (1, 7, "Binding", "RW", STR, False, True),
    (1, 8, "Registration Update Trigger", "E", NONE, False, True),
    (1, 9, "Bootstrap-Request Trigger", "E", NONE, False, False),
    (1, 21, "Trigger", "RW", BOOL, False, False),
    (1, 22, "Preferred Transport", "RW", STR, False, False),
    (1, 23, "Mute Send", "RW", BOOL, False, False),
]
SECURITY = [
    (0, 0, "LwM2M Server URI", "", STR, False, True),
    (0, 1, "Bootstrap-Server", "", BOOL, False, True),
    (0, 2, "Security Mode", "", INT, False, True),
    (0, 3, "Public Key or Identity", "", OPQ, False, True),
    (0, 4, "Server Public Key", "", OPQ, False, True),
    (0, 5, "Secret Key", "", OPQ, False, True),
    (0, 10, "Short Server ID", "", INT, False, False),
    (0, 11, "Client Hold Off Time", "", INT, False, False),
    (0, 16, "DTLS/TLS Ciphersuite", "", UINT, True, False),
]


@pytest.mark.parametrize(
    ("oid", "rid", "name", "ops", "rtype", "multiple", "mandatory"),
    FIRMWARE + CONNMON + DEVICE + SERVER + SECURITY,
)
def test_resource_table(
    oid: int, rid: int, name: str, ops: str, rtype: ResourceType, multiple: bool, mandatory: bool
) -> None:
    rdef = resource_def(oid, rid)
    assert rdef is not None
    assert (rdef.id, rdef.name, rdef.operations, rdef.type) == (rid, name, ops, rtype)
    assert (rdef.multiple, rdef.mandatory) == (multiple, mandatory)
    assert rdef.readable == ("R" in ops)
    assert rdef.writable == ("W" in ops)
    assert rdef.executable == (ops == "E")
    assert (rdef.type is ResourceType.NONE) == rdef.executable
    assert OBJECTS[oid].resource(rid) is rdef


@pytest.mark.parametrize(
    ("oid", "ids"),
    [
        (5, [*range(0, 4), *range(5, 15)]),
        (4, range(14)),
        (3, range(23)),
        (1, range(28)),
        (0, range(18)),
    ],
)
def test_every_resource_of_the_digest_is_defined(oid: int, ids: range | list[int]) -> None:
    assert sorted(OBJECTS[oid].resources) == list(ids)


def test_firmware_has_no_resource_4() -> None:
    # digest 1.1: id 4 is a hole (pre-1.0 "Update Supported Objects")
    assert resource_def(5, 4) is None


@pytest.mark.parametrize(
    ("oid", "version", "urn", "multiple", "mandatory"),
    [
        (0, "1.2", "urn:oma:lwm2m:oma:0:1.2", True, True),
        (1, "1.2", "urn:oma:lwm2m:oma:1:1.2", True, True),
        (3, "1.2", "urn:oma:lwm2m:oma:3:1.2", False, True),
        (4, "1.3", "urn:oma:lwm2m:oma:4:1.3", False, False),
        (5, "1.2", "urn:oma:lwm2m:oma:5:1.2", False, False),
    ],
)
def test_object_table(oid: int, version: str, urn: str, multiple: bool, mandatory: bool) -> None:
    obj = OBJECTS[oid]
    assert (obj.id, obj.version, obj.urn, obj.multiple, obj.mandatory) == (
        oid,
        version,
        urn,
        multiple,
        mandatory,
    )


@pytest.mark.parametrize(
    ("oid", "rid", "since"),
    [
        (5, 9, "1.0"),
        (5, 10, "1.1"),
        (5, 13, "1.1"),
        (5, 14, "1.2"),
        (4, 11, "1.1"),
        (4, 12, "1.2"),
        (4, 13, "1.3"),
        (1, 23, "1.1"),
        (1, 27, "1.2"),
    ],
)
def test_since(oid: int, rid: int, since: str) -> None:
    rdef = resource_def(oid, rid)
    assert rdef is not None and rdef.since == since


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/5/0/8/1", ResourceType.INTEGER),
        ("/5/0/0", ResourceType.OPAQUE),
        ("/5/0/1", ResourceType.STRING),
        ("/5/0/2", ResourceType.NONE),
        ("/5/0/12", ResourceType.TIME),
        ("/4/0/2", ResourceType.INTEGER),
        ("/4/0/4/0", ResourceType.STRING),
        ("/3/0/3", ResourceType.STRING),
        ("/3/0/22/0", ResourceType.OBJLNK),
        ("/1/0/6", ResourceType.BOOLEAN),
        ("/5/0/4", None),
        ("/5/0", None),
        ("/5", None),
        ("/", None),
        ("/3303/0/5700", None),
    ],
)
def test_resource_type(path: str, expected: ResourceType | None) -> None:
    assert resource_type(Path.parse(path)) == expected


def test_units() -> None:
    assert resource_def(4, 2).units == "dBm"  # type: ignore[union-attr]
    assert resource_def(3, 9).units == "%"  # type: ignore[union-attr]
    assert resource_def(1, 1).units == "s"  # type: ignore[union-attr]


def test_state_numbers() -> None:
    assert [(s.name, int(s)) for s in State] == [
        ("IDLE", 0),
        ("DOWNLOADING", 1),
        ("DOWNLOADED", 2),
        ("UPDATING", 3),
    ]
    assert State.DOWNLOADED.description == "The firmware download is completed"


@pytest.mark.parametrize(
    ("name", "code", "description"),
    [
        ("INITIAL", 0, "Initial value"),
        ("SUCCESS", 1, "Firmware updated successfully"),
        ("NOT_ENOUGH_FLASH", 2, "Insufficient flash memory for the new firmware package"),
        ("OUT_OF_RAM", 3, "Out of RAM during downloading process"),
        ("CONNECTION_LOST", 4, "Connection lost during downloading process"),
        ("INTEGRITY_CHECK_FAILURE", 5, "Integrity check failure for new downloaded package"),
        ("UNSUPPORTED_PACKAGE_TYPE", 6, "Unsupported package type"),
        ("INVALID_URI", 7, "Invalid URI"),
        ("UPDATE_FAILED", 8, "Firmware update failed"),
        ("UNSUPPORTED_PROTOCOL", 9, "Unsupported protocol"),
        ("CANCELLED", 10, "Firmware update cancelled"),
        ("DEFERRED", 11, "Firmware update deferred"),
    ],
)
def test_update_result(name: str, code: int, description: str) -> None:
    result = UpdateResult(code)
    assert result.name == name
    assert result.description == description


def test_update_result_is_complete() -> None:
    assert [int(r) for r in UpdateResult] == list(range(12))


@pytest.mark.parametrize(
    ("member", "code", "scheme"),
    [
        (ProtocolSupport.COAP, 0, "coap"),
        (ProtocolSupport.COAPS, 1, "coaps"),
        (ProtocolSupport.HTTP, 2, "http"),
        (ProtocolSupport.HTTPS, 3, "https"),
        (ProtocolSupport.COAP_TCP, 4, "coap+tcp"),
        (ProtocolSupport.COAP_TLS, 5, "coaps+tcp"),
    ],
)
def test_protocol_support(member: ProtocolSupport, code: int, scheme: str) -> None:
    assert int(member) == code
    assert member.scheme == scheme
    assert ProtocolSupport.from_scheme(scheme) is member
    assert ProtocolSupport.from_scheme(scheme.upper() + ":") is member
    assert member.description


@pytest.mark.parametrize("scheme", ["ftp", "", "coap+ws", "file"])
def test_unknown_scheme(scheme: str) -> None:
    assert ProtocolSupport.from_scheme(scheme) is None


def test_small_enums() -> None:
    assert [int(m) for m in DeliveryMethod] == [0, 1, 2]
    assert int(DeliveryMethod.BOTH) == 2 and int(DeliveryMethod.PUSH_ONLY) == 1
    assert [(m.name, int(m)) for m in Severity] == [
        ("CRITICAL", 0),
        ("MANDATORY", 1),
        ("OPTIONAL", 2),
    ]
    assert [int(m) for m in PowerSource] == list(range(8))
    assert int(PowerSource.INTERNAL_BATTERY) == 1 and int(PowerSource.SOLAR) == 7
    assert [int(m) for m in BatteryStatus] == list(range(7))
    assert int(BatteryStatus.NOT_INSTALLED) == 5
    assert [int(m) for m in SecurityMode] == list(range(5))
    assert int(SecurityMode.NO_SEC) == 3


def test_network_bearer() -> None:
    expected = {
        "GSM": 0,
        "TD_SCDMA": 1,
        "WCDMA": 2,
        "CDMA2000": 3,
        "WIMAX": 4,
        "LTE_TDD": 5,
        "LTE_FDD": 6,
        "NB_IOT": 7,
        "NR_TDD": 8,
        "NR_FDD": 9,
        "WLAN": 21,
        "BLUETOOTH": 22,
        "IEEE_802_15_4": 23,
        "ETHERNET": 41,
        "DSL": 42,
        "PLC": 43,
    }
    assert {m.name: int(m) for m in NetworkBearer} == expected
    assert NetworkBearer.NB_IOT.is_cellular and not NetworkBearer.WLAN.is_cellular


def test_bindings() -> None:
    assert set(BINDING_LETTERS) == {"U", "T", "S", "N"}
    assert {"U", "UQ", "S", "SQ", "US", "UQS"} == BINDING_MODES_1_0


def test_default_object_versions() -> None:
    assert all(v == "1.0" for v in DEFAULT_OBJECT_VERSIONS["1.0"].values())
    v11 = DEFAULT_OBJECT_VERSIONS["1.1"]
    assert (v11[0], v11[1], v11[2], v11[3], v11[4], v11[5]) == (
        "1.1",
        "1.1",
        "1.0",
        "1.1",
        "1.2",
        "1.0",
    )
    assert DEFAULT_OBJECT_VERSIONS["1.2"] == v11
