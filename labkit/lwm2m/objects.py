"""Object and resource definitions of the core LwM2M objects the lab uses, and their enums.

This module owns the *data* of the object model: which resources /0 Security, /1 Server,
/3 Device, /4 Connectivity Monitoring and /5 Firmware Update have (at their newest object
versions), what type each resource has, which operations a server may perform on it, and the
enumerations whose numbers the specification fixes (firmware State and Update Result,
protocol support, delivery method, network bearer, ...). It never holds values, never talks
to a peer and never decides anything: the state machine lives in :mod:`labkit.lwm2m.fota`,
registration handling in :mod:`labkit.lwm2m.registration`.

Sources: the OMA LwM2M registry object XML (``0.xml``, ``1.xml``, ``3.xml``, ``4.xml``,
``5.xml``) as condensed in the lab's protocol digest (``spec/lwm2m-fota.md`` sections 1-3);
section numbers in comments refer to that digest.

:func:`resource_type` is the default :data:`labkit.lwm2m.values.TypeResolver` used by the
content-format codecs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Literal, TypeAlias

from labkit.lwm2m.paths import Path

__all__ = [
    "BINDING_LETTERS",
    "BINDING_LETTERS_1_2",
    "BINDING_MODES_1_0",
    "DEFAULT_OBJECT_VERSIONS",
    "OBJECTS",
    "BatteryStatus",
    "DeliveryMethod",
    "NetworkBearer",
    "ObjectDef",
    "Operations",
    "PowerSource",
    "ProtocolSupport",
    "ResourceDef",
    "ResourceType",
    "SecurityMode",
    "Severity",
    "State",
    "UpdateResult",
    "resource_def",
    "resource_type",
]


# ---------------------------------------------------------------------------------------------
# Resource types and definitions
# ---------------------------------------------------------------------------------------------


class ResourceType(StrEnum):
    """LwM2M data types; the values are the type names used in the object XML."""

    STRING = "String"
    INTEGER = "Integer"
    UNSIGNED_INTEGER = "Unsigned Integer"
    FLOAT = "Float"
    BOOLEAN = "Boolean"
    OPAQUE = "Opaque"
    TIME = "Time"
    OBJLNK = "Objlnk"
    CORELNK = "Corelnk"
    #: Executable resources carry no value (empty ``<Type>`` in the XML).
    NONE = "none"


#: Operations an LwM2M server may perform on a resource. ``""`` means none at all: the
#: resources of /0 Security are written only by a Bootstrap-Server and are never accessible to
#: an LwM2M server (digest 3.3; the object XML leaves ``<Operations>`` empty for them).
Operations: TypeAlias = Literal["", "R", "W", "RW", "E"]


@dataclass(frozen=True, slots=True)
class ResourceDef:
    """Definition of one resource of an object (one ``<Item>`` of the object XML).

    Attributes
    ----------
    id, name:
        Resource id and its registry name.
    operations:
        ``"R"``, ``"W"``, ``"RW"``, ``"E"``, or ``""`` (no server access, /0 only).
    type:
        The LwM2M data type (:attr:`ResourceType.NONE` for executables).
    multiple:
        True for multiple-instance resources (values live at ``/O/I/R/RI``).
    mandatory:
        True when every instance of the object must have the resource.
    units:
        Units as written in the registry (``"s"``, ``"dBm"``, ...), ``""`` when none.
    since:
        Object version that introduced the resource.
    """

    id: int
    name: str
    operations: Operations
    type: ResourceType
    multiple: bool
    mandatory: bool
    units: str = ""
    since: str = "1.0"

    @property
    def readable(self) -> bool:
        """True when a server may Read the resource."""
        return "R" in self.operations

    @property
    def writable(self) -> bool:
        """True when a server may Write the resource."""
        return "W" in self.operations

    @property
    def executable(self) -> bool:
        """True when a server may Execute the resource."""
        return self.operations == "E"


@dataclass(frozen=True, slots=True)
class ObjectDef:
    """Definition of one object at one object version.

    Attributes
    ----------
    id, name, version, urn:
        Object id, registry name, object version (``"1.2"``) and URN.
    multiple:
        True for multiple-instance objects (/0, /1).
    mandatory:
        True for objects every client must implement (/0, /1, /3).
    resources:
        Resource id -> :class:`ResourceDef`, in id order.
    """

    id: int
    name: str
    version: str
    urn: str
    multiple: bool
    mandatory: bool
    resources: Mapping[int, ResourceDef] = field(default_factory=dict)

    def resource(self, rid: int) -> ResourceDef | None:
        """Definition of resource ``rid``, or None when the object has no such resource."""
        return self.resources.get(rid)


# Short aliases keep the tables below readable (one resource per line).
_S = ResourceType.STRING
_I = ResourceType.INTEGER
_U = ResourceType.UNSIGNED_INTEGER
_B = ResourceType.BOOLEAN
_O = ResourceType.OPAQUE
_T = ResourceType.TIME
_L = ResourceType.OBJLNK
_N = ResourceType.NONE
_M = True  # mandatory
_OPT = False  # optional
_MULTI = True
_SINGLE = False


def _object(
    oid: int,
    name: str,
    version: str,
    *,
    multiple: bool,
    mandatory: bool,
    resources: list[ResourceDef],
) -> ObjectDef:
    urn = f"urn:oma:lwm2m:oma:{oid}" if version == "1.0" else f"urn:oma:lwm2m:oma:{oid}:{version}"
    table = {r.id: r for r in sorted(resources, key=lambda r: r.id)}
    if len(table) != len(resources):  # pragma: no cover - guards the tables below
        raise AssertionError(f"duplicate resource id in object {oid}")
    return ObjectDef(oid, name, version, urn, multiple, mandatory, MappingProxyType(table))


R = ResourceDef

# /0 LwM2M Security, obj v1.2 (digest 3.3; registry 0.xml). Resources 18..30 (TLS 1.3 and
# non-IP items of obj 1.2) are not modelled: the lab never bootstraps and never reads /0.
_SECURITY = _object(
    0,
    "LwM2M Security",
    "1.2",
    multiple=True,
    mandatory=True,
    resources=[
        R(0, "LwM2M Server URI", "", _S, _SINGLE, _M),
        R(1, "Bootstrap-Server", "", _B, _SINGLE, _M),
        R(2, "Security Mode", "", _I, _SINGLE, _M),
        R(3, "Public Key or Identity", "", _O, _SINGLE, _M),
        R(4, "Server Public Key", "", _O, _SINGLE, _M),
        R(5, "Secret Key", "", _O, _SINGLE, _M),
        R(6, "SMS Security Mode", "", _I, _SINGLE, _OPT),
        R(7, "SMS Binding Key Parameters", "", _O, _SINGLE, _OPT),
        R(8, "SMS Binding Secret Key(s)", "", _O, _SINGLE, _OPT),
        R(9, "LwM2M Server SMS Number", "", _S, _SINGLE, _OPT),
        R(10, "Short Server ID", "", _I, _SINGLE, _OPT),
        R(11, "Client Hold Off Time", "", _I, _SINGLE, _OPT, "s"),
        R(12, "Bootstrap-Server Account Timeout", "", _I, _SINGLE, _OPT, "s"),
        R(13, "Matching Type", "", _U, _SINGLE, _OPT, since="1.1"),
        R(14, "SNI", "", _S, _SINGLE, _OPT, since="1.1"),
        R(15, "Certificate Usage", "", _U, _SINGLE, _OPT, since="1.1"),
        R(16, "DTLS/TLS Ciphersuite", "", _U, _MULTI, _OPT, since="1.1"),
        R(17, "OSCORE Security Mode", "", _L, _SINGLE, _OPT, since="1.1"),
    ],
)

# /1 LwM2M Server, obj v1.2 (digest 3.2; registry 1.xml). Lifetime (1) is Unsigned Integer in
# the obj 1.2 XML ("0 = infinite"); older versions typed it Integer.
_SERVER = _object(
    1,
    "LwM2M Server",
    "1.2",
    multiple=True,
    mandatory=True,
    resources=[
        R(0, "Short Server ID", "R", _I, _SINGLE, _M),
        R(1, "Lifetime", "RW", _U, _SINGLE, _M, "s"),
        R(2, "Default Minimum Period", "RW", _I, _SINGLE, _OPT, "s"),
        R(3, "Default Maximum Period", "RW", _I, _SINGLE, _OPT, "s"),
        R(4, "Disable", "E", _N, _SINGLE, _OPT),
        R(5, "Disable Timeout", "RW", _I, _SINGLE, _OPT, "s"),
        R(6, "Notification Storing When Disabled or Offline", "RW", _B, _SINGLE, _M),
        R(7, "Binding", "RW", _S, _SINGLE, _M),
        R(8, "Registration Update Trigger", "E", _N, _SINGLE, _M),
        R(9, "Bootstrap-Request Trigger", "E", _N, _SINGLE, _OPT, since="1.1"),
        R(10, "APN Link", "RW", _L, _SINGLE, _OPT, since="1.1"),
        R(11, "TLS-DTLS Alert Code", "R", _U, _SINGLE, _OPT, since="1.1"),
        R(12, "Last Bootstrapped", "R", _T, _SINGLE, _OPT, since="1.1"),
        R(13, "Registration Priority Order", "R", _U, _SINGLE, _OPT, since="1.1"),
        R(14, "Initial Registration Delay Timer", "RW", _U, _SINGLE, _OPT, "s", since="1.1"),
        R(15, "Registration Failure Block", "R", _B, _SINGLE, _OPT, since="1.1"),
        R(16, "Bootstrap on Registration Failure", "R", _B, _SINGLE, _OPT, since="1.1"),
        R(17, "Communication Retry Count", "RW", _U, _SINGLE, _OPT, since="1.1"),
        R(18, "Communication Retry Timer", "RW", _U, _SINGLE, _OPT, "s", since="1.1"),
        R(19, "Communication Sequence Delay Timer", "RW", _U, _SINGLE, _OPT, "s", since="1.1"),
        R(20, "Communication Sequence Retry Count", "RW", _U, _SINGLE, _OPT, since="1.1"),
        R(21, "Trigger", "RW", _B, _SINGLE, _OPT, since="1.1"),
        R(22, "Preferred Transport", "RW", _S, _SINGLE, _OPT, since="1.1"),
        # digest 3.2: Mute Send true or absent => the client must not use Send.
        R(23, "Mute Send", "RW", _B, _SINGLE, _OPT, since="1.1"),
        R(24, "Alternate APN Links", "RW", _L, _MULTI, _OPT, since="1.2"),
        R(25, "Supported Server Versions", "RW", _S, _MULTI, _OPT, since="1.2"),
        R(26, "Default Notification Mode", "RW", _I, _SINGLE, _OPT, since="1.2"),
        R(27, "Profile ID Hash Algorithm", "RW", _U, _SINGLE, _OPT, since="1.2"),
    ],
)

# /3 Device, obj v1.2 (digest 3.1). The resource set 0..22 is the same in obj 1.0, 1.1, 1.2.
_DEVICE = _object(
    3,
    "Device",
    "1.2",
    multiple=False,
    mandatory=True,
    resources=[
        R(0, "Manufacturer", "R", _S, _SINGLE, _OPT),
        R(1, "Model Number", "R", _S, _SINGLE, _OPT),
        R(2, "Serial Number", "R", _S, _SINGLE, _OPT),
        # What FOTA success is checked against after the post-update Register (digest 1.6).
        R(3, "Firmware Version", "R", _S, _SINGLE, _OPT),
        R(4, "Reboot", "E", _N, _SINGLE, _M),
        R(5, "Factory Reset", "E", _N, _SINGLE, _OPT),
        R(6, "Available Power Sources", "R", _I, _MULTI, _OPT),
        R(7, "Power Source Voltage", "R", _I, _MULTI, _OPT, "mV"),
        R(8, "Power Source Current", "R", _I, _MULTI, _OPT, "mA"),
        R(9, "Battery Level", "R", _I, _SINGLE, _OPT, "%"),
        R(10, "Memory Free", "R", _I, _SINGLE, _OPT, "KB"),
        R(11, "Error Code", "R", _I, _MULTI, _M),
        R(12, "Reset Error Code", "E", _N, _SINGLE, _OPT),
        R(13, "Current Time", "RW", _T, _SINGLE, _OPT),
        R(14, "UTC Offset", "RW", _S, _SINGLE, _OPT),
        R(15, "Timezone", "RW", _S, _SINGLE, _OPT),
        R(16, "Supported Binding and Modes", "R", _S, _SINGLE, _M),
        R(17, "Device Type", "R", _S, _SINGLE, _OPT),
        R(18, "Hardware Version", "R", _S, _SINGLE, _OPT),
        R(19, "Software Version", "R", _S, _SINGLE, _OPT),
        R(20, "Battery Status", "R", _I, _SINGLE, _OPT),
        R(21, "Memory Total", "R", _I, _SINGLE, _OPT, "KB"),
        R(22, "ExtDevInfo", "R", _L, _MULTI, _OPT),
    ],
)

# /4 Connectivity Monitoring, obj v1.3 (digest 2). Res 2 is signed dBm (RSRP for LTE);
# res 3 is bearer-specific (RSRQ dB for LTE, LQI 0..255 for 802.15.4).
_CONNMON = _object(
    4,
    "Connectivity Monitoring",
    "1.3",
    multiple=False,
    mandatory=False,
    resources=[
        R(0, "Network Bearer", "R", _I, _SINGLE, _M),
        R(1, "Available Network Bearer", "R", _I, _MULTI, _M),
        R(2, "Radio Signal Strength", "R", _I, _SINGLE, _M, "dBm"),
        R(3, "Link Quality", "R", _I, _SINGLE, _OPT),
        R(4, "IP Addresses", "R", _S, _MULTI, _M),
        R(5, "Router IP Addresses", "R", _S, _MULTI, _OPT),
        R(6, "Link Utilization", "R", _I, _SINGLE, _OPT, "%"),
        R(7, "APN", "R", _S, _MULTI, _OPT),
        R(8, "Cell ID", "R", _I, _SINGLE, _OPT),
        R(9, "SMNC", "R", _I, _SINGLE, _OPT),
        R(10, "SMCC", "R", _I, _SINGLE, _OPT),
        R(11, "SignalSNR", "R", _I, _SINGLE, _OPT, "dB", since="1.1"),
        R(12, "LAC", "R", _I, _SINGLE, _OPT, since="1.2"),
        R(13, "Coverage Enhancement Level", "R", _I, _SINGLE, _OPT, since="1.3"),
    ],
)

# /5 Firmware Update, obj v1.2 (digest 1.1-1.2). Id 4 is a hole (pre-1.0 "Update Supported
# Objects"). Package (0) is write-only: a Read answers 4.05.
_FIRMWARE = _object(
    5,
    "Firmware Update",
    "1.2",
    multiple=False,
    mandatory=False,
    resources=[
        R(0, "Package", "W", _O, _SINGLE, _M),
        R(1, "Package URI", "RW", _S, _SINGLE, _M),
        R(2, "Update", "E", _N, _SINGLE, _M),
        R(3, "State", "R", _I, _SINGLE, _M),
        R(5, "Update Result", "R", _I, _SINGLE, _M),
        R(6, "PkgName", "R", _S, _SINGLE, _OPT),
        R(7, "PkgVersion", "R", _S, _SINGLE, _OPT),
        R(8, "Firmware Update Protocol Support", "R", _I, _MULTI, _OPT),
        R(9, "Firmware Update Delivery Method", "R", _I, _SINGLE, _M),
        R(10, "Cancel", "E", _N, _SINGLE, _OPT, since="1.1"),
        R(11, "Severity", "RW", _I, _SINGLE, _OPT, since="1.1"),
        R(12, "Last State Change Time", "R", _T, _SINGLE, _OPT, since="1.1"),
        R(13, "Maximum Defer Period", "RW", _U, _SINGLE, _OPT, "s", since="1.1"),
        R(14, "Automatic Upgrade at Download", "RW", _B, _SINGLE, _OPT, since="1.2"),
    ],
)

del R

#: Object id -> definition at the newest object version the lab knows.
OBJECTS: Mapping[int, ObjectDef] = MappingProxyType(
    {o.id: o for o in (_SECURITY, _SERVER, _DEVICE, _CONNMON, _FIRMWARE)}
)

#: Default object version per LwM2M enabler version, used when a Register payload carries no
#: ``ver=`` for an object (digest 4.1, after Leshan's core object version registry). Objects not
#: listed default to "1.0". LwM2M 1.2 uses the 1.1 table: the digest has no separate 1.2 table
#: and obj 1.2 versions must be announced explicitly with ``ver=``.
_V1_0 = MappingProxyType({oid: "1.0" for oid in range(8)})
_V1_1 = MappingProxyType(
    {0: "1.1", 1: "1.1", 2: "1.0", 3: "1.1", 4: "1.2", 5: "1.0", 6: "1.0", 7: "1.0", 21: "1.0"}
)
DEFAULT_OBJECT_VERSIONS: Mapping[str, Mapping[int, str]] = MappingProxyType(
    {"1.0": _V1_0, "1.1": _V1_1, "1.2": _V1_1}
)


def resource_def(object_id: int, resource_id: int) -> ResourceDef | None:
    """Definition of resource ``/object_id/*/resource_id``.

    Parameters
    ----------
    object_id, resource_id:
        Object and resource ids.

    Returns
    -------
    ResourceDef or None
        None when the object or the resource is not one the lab defines.
    """
    obj = OBJECTS.get(object_id)
    return None if obj is None else obj.resource(resource_id)


def resource_type(path: Path) -> ResourceType | None:
    """Type of the resource that a resource or resource-instance path points at.

    This is the default :data:`labkit.lwm2m.values.TypeResolver` of the codecs.

    Parameters
    ----------
    path:
        ``/O/I/R`` or ``/O/I/R/RI``.

    Returns
    -------
    ResourceType or None
        The resource's type (:attr:`ResourceType.NONE` for executables); None for shorter
        paths and for resources the lab does not define.
    """
    if path.object_id is None or path.resource_id is None:
        return None
    rdef = resource_def(path.object_id, path.resource_id)
    return None if rdef is None else rdef.type


# ---------------------------------------------------------------------------------------------
# Enumerations with the specification's numbers
# ---------------------------------------------------------------------------------------------


class State(IntEnum):
    """Firmware Update State, /5/0/3 (digest 1.4)."""

    IDLE = 0
    DOWNLOADING = 1
    DOWNLOADED = 2
    UPDATING = 3

    @property
    def description(self) -> str:
        """One-line meaning of the state (as the lesson states it)."""
        return _STATE_DESCRIPTIONS[self.value]


_STATE_DESCRIPTIONS: Mapping[int, str] = {
    0: "Before downloading and after successfully updating",
    1: "The new firmware is on the way",
    2: "The firmware download is completed",
    3: "The Client starts updating its firmware, after which it changes its state back to Idle",
}


class UpdateResult(IntEnum):
    """Firmware Update Result, /5/0/5 (digest 1.3). Codes 10 and 11 exist from obj 1.1."""

    INITIAL = 0
    SUCCESS = 1
    NOT_ENOUGH_FLASH = 2
    OUT_OF_RAM = 3
    CONNECTION_LOST = 4
    INTEGRITY_CHECK_FAILURE = 5
    UNSUPPORTED_PACKAGE_TYPE = 6
    INVALID_URI = 7
    UPDATE_FAILED = 8
    UNSUPPORTED_PROTOCOL = 9
    CANCELLED = 10
    DEFERRED = 11

    @property
    def description(self) -> str:
        """One-line meaning of the result code (as the lesson states it)."""
        return _RESULT_DESCRIPTIONS[self.value]


_RESULT_DESCRIPTIONS: Mapping[int, str] = {
    0: "Initial value",
    1: "Firmware updated successfully",
    2: "Insufficient flash memory for the new firmware package",
    3: "Out of RAM during downloading process",
    4: "Connection lost during downloading process",
    5: "Integrity check failure for new downloaded package",
    6: "Unsupported package type",
    7: "Invalid URI",
    8: "Firmware update failed",
    9: "Unsupported protocol",
    10: "Firmware update cancelled",
    11: "Firmware update deferred",
}


class ProtocolSupport(IntEnum):
    """Firmware Update Protocol Support, /5/0/8 (digest 1.2).

    Values 4 and 5 (CoAP over TCP/TLS, RFC 8323) exist only from the re-issued obj 1.0 XML;
    original 1.0 clients know 0..3. A server ignores values it does not know.
    """

    COAP = 0
    COAPS = 1
    HTTP = 2
    HTTPS = 3
    COAP_TCP = 4
    COAP_TLS = 5

    @property
    def scheme(self) -> str:
        """The URI scheme of a Package URI for this protocol (``"coap"``, ``"coaps+tcp"``...)."""
        return _SCHEMES[self.value]

    @property
    def description(self) -> str:
        """One-line meaning of the value."""
        return _PROTOCOL_DESCRIPTIONS[self.value]

    @classmethod
    def from_scheme(cls, scheme: str) -> ProtocolSupport | None:
        """The protocol of a URI scheme (case-insensitive; a trailing ``:`` is allowed).

        Returns
        -------
        ProtocolSupport or None
            None for a scheme no Protocol Support value stands for.
        """
        wanted = scheme.strip().lower().removesuffix(":")
        for value, name in _SCHEMES.items():
            if name == wanted:
                return cls(value)
        return None


_SCHEMES: Mapping[int, str] = {
    0: "coap",
    1: "coaps",
    2: "http",
    3: "https",
    4: "coap+tcp",
    5: "coaps+tcp",
}

_PROTOCOL_DESCRIPTIONS: Mapping[int, str] = {
    0: "CoAP (RFC 7252) with block-wise transfer",
    1: "CoAPS (CoAP over DTLS) with block-wise transfer",
    2: "HTTP/1.1",
    3: "HTTPS/1.1",
    4: "CoAP over TCP (RFC 8323)",
    5: "CoAP over TLS (RFC 8323)",
}


class DeliveryMethod(IntEnum):
    """Firmware Update Delivery Method, /5/0/9 (digest 1.2)."""

    PULL_ONLY = 0
    PUSH_ONLY = 1
    BOTH = 2

    @property
    def description(self) -> str:
        """One-line meaning of the value."""
        return ("Pull only", "Push only", "Push or pull (the server picks)")[self.value]


class Severity(IntEnum):
    """Firmware Update Severity, /5/0/11 (obj >= 1.1; default MANDATORY)."""

    CRITICAL = 0
    MANDATORY = 1
    OPTIONAL = 2

    @property
    def description(self) -> str:
        """One-line meaning of the value."""
        return ("Critical", "Mandatory", "Optional")[self.value]


class NetworkBearer(IntEnum):
    """Network Bearer codes of /4/0/0 and /4/0/1 (digest 2).

    10-20 are reserved cellular, 24-40 reserved wireless and 44-50 reserved wireline codes;
    there is no LTE-M code (LTE-M devices report LTE_FDD).
    """

    GSM = 0
    TD_SCDMA = 1
    WCDMA = 2
    CDMA2000 = 3
    WIMAX = 4
    LTE_TDD = 5
    LTE_FDD = 6
    NB_IOT = 7
    NR_TDD = 8  # 5G-NR TDD, obj 4 v1.3
    NR_FDD = 9  # 5G-NR FDD, obj 4 v1.3
    WLAN = 21
    BLUETOOTH = 22
    IEEE_802_15_4 = 23
    ETHERNET = 41
    DSL = 42
    PLC = 43

    @property
    def is_cellular(self) -> bool:
        """True for the cellular codes 0..20."""
        return self.value <= 20


class PowerSource(IntEnum):
    """Available Power Sources, /3/0/6 (digest 3.1)."""

    DC = 0
    INTERNAL_BATTERY = 1
    EXTERNAL_BATTERY = 2
    FUEL_CELL = 3
    POWER_OVER_ETHERNET = 4
    USB = 5
    AC_MAINS = 6
    SOLAR = 7


class BatteryStatus(IntEnum):
    """Battery Status, /3/0/20 (digest 3.1)."""

    NORMAL = 0
    CHARGING = 1
    CHARGE_COMPLETE = 2
    DAMAGED = 3
    LOW = 4
    NOT_INSTALLED = 5
    UNKNOWN = 6


class SecurityMode(IntEnum):
    """Security Mode, /0/x/2 (digest 3.3)."""

    PSK = 0
    RPK = 1
    CERTIFICATE = 2
    NO_SEC = 3
    CERTIFICATE_EST = 4


#: Transport letters of the binding (``b=`` query parameter, /1/x/7) in LwM2M 1.1+, with their
#: meaning (digest 3.2, 4.3). LwM2M 1.2 also defines ``M`` (MQTT) and ``H`` (HTTP); the digest
#: marks them unverified, so they are accepted for 1.2 registrations only.
BINDING_LETTERS: Mapping[str, str] = MappingProxyType(
    {"U": "UDP", "T": "TCP", "S": "SMS", "N": "Non-IP"}
)

#: Extra binding letters of LwM2M 1.2 (digest 4.3, marked unverified there).
BINDING_LETTERS_1_2: Mapping[str, str] = MappingProxyType({"M": "MQTT", "H": "HTTP"})

#: The complete list of binding modes of LwM2M 1.0, where ``Q`` (queue mode) is part of the
#: binding string (digest 3.2, 4.1).
BINDING_MODES_1_0: frozenset[str] = frozenset({"U", "UQ", "S", "SQ", "US", "UQS"})
