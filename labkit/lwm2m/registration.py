"""The Client Registration Interface as pure data: Register and Update, both ends.

Server side, this module owns the validation of a Register (``POST /rd?...``) and an Update
(``POST /rd/{id}?...``): the Uri-Query parameters and the link-format payload become a frozen
:class:`RegisterRequest` / :class:`UpdateRequest`, or a :class:`RegistrationError` whose
``coap_code`` the server adapter answers with. Client side, it builds the query and the payload
of a Register and says when to send the next Update. It never keeps registrations, never
allocates a location and never touches a socket or a clock: the server adapter does that.

Decisions (digest section 4; "digest" = ``spec/lwm2m-fota.md``):

* Error codes. 4.00 Bad Request for every malformed request, *including a missing or empty*
  ``ep=``: without credentials (the lab runs NoSec) a missing endpoint name is a malformed
  request, not an authorisation failure (Leshan answers 4.03 only because it can sometimes
  derive the name from credentials). 4.12 Precondition Failed for any ``lwm2m=`` value other
  than 1.0, 1.1, 1.2 (Anjay then retries with a lower version). 4.03 is left to the server
  adapter, which may refuse well-formed registrations (unknown endpoints).
* ``lt=`` is a decimal integer 1..2**32-1. ``lt=0`` is accepted only from LwM2M 1.2 clients,
  where /1 obj 1.2 defines a lifetime of 0 as infinite; earlier versions have no such meaning.
* ``b=``: 1.0 accepts exactly U, UQ, S, SQ, US, UQS; 1.1+ any non-empty combination of the
  letters U T S N (1.2 also M H, unverified), each at most once. Tolerance: a 1.1+ client that
  writes the 1.0-style ``Q`` inside ``b=`` (``b=UQ``) gets queue mode, as does a 1.0 client
  sending the 1.1 ``Q`` flag. :attr:`RegisterRequest.binding` holds the transport letters only
  (``UQS`` -> ``US`` with ``queue_mode=True``), whatever the version.
* ``Q`` takes no value (``Q=...`` -> 4.00, as in Leshan). Any parameter given twice -> 4.00.
  Unknown parameters are kept in ``extra`` (Leshan's "additional attributes").
* Payload: UTF-8 link format. A root link (``rt="oma.lwm2m"``, or a bare ``</>``) gives the
  root path (``/`` or an alternate root such as ``/lwm2m``) and ``ct=`` the content formats
  (one number or a quoted space-separated list, kept as sent: legacy numbers such as 1543 are
  the codecs' business). With an alternate root, every other link must lie under it and is
  stripped of it. ``ver=`` is read on object links only. Links to /0 and /21 are ignored (a
  client must not send them), so are links to resources. Any other target that is not an
  LwM2M object or instance path -> 4.00. An empty payload announces no objects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from labkit.lwm2m.errors import DecodeError, LocalProtocolError, PathError, RegistrationError
from labkit.lwm2m.formats.linkformat import Link, parse_links
from labkit.lwm2m.objects import (
    BINDING_LETTERS,
    BINDING_LETTERS_1_2,
    BINDING_MODES_1_0,
    DEFAULT_OBJECT_VERSIONS,
)
from labkit.lwm2m.paths import Path

__all__ = [
    "DEFAULT_LIFETIME",
    "SUPPORTED_VERSIONS",
    "ObjectAnnouncement",
    "RegisterRequest",
    "UpdateRequest",
    "object_version",
    "parse_register",
    "parse_update",
    "register_links",
    "register_query",
    "update_delay",
]

#: Enabler versions this lab speaks (``lwm2m=``); anything else is answered 4.12.
SUPPORTED_VERSIONS: tuple[str, ...] = ("1.0", "1.1", "1.2")
#: Lifetime when a Register carries no ``lt=`` (digest 4.1).
DEFAULT_LIFETIME = 86400
#: Largest lifetime accepted (unsigned 32-bit seconds, about 136 years).
MAX_LIFETIME = 0xFFFF_FFFF
#: CoAP MAX_TRANSMIT_WAIT: clients Update this long before expiry at most (digest 4.2).
MAX_TRANSMIT_WAIT = 93.0
#: Objects that never appear in a Register payload: /0 Security and /21 OSCORE (digest 3.3).
PRIVATE_OBJECTS: frozenset[int] = frozenset({0, 21})

_LIFETIME = re.compile(r"[0-9]{1,10}")
_VERSION = re.compile(r"[0-9]{1,5}\.[0-9]{1,5}")
_LWM2M_PATH = re.compile(r"(?:/[0-9]{1,5}){1,4}")
_CT = re.compile(r"[0-9]{1,5}")
_ROOT_RT = "oma.lwm2m"


@dataclass(frozen=True, slots=True)
class ObjectAnnouncement:
    """One object of a Register/Update payload.

    Attributes
    ----------
    object_id:
        The object id.
    version:
        The ``ver=`` of the object link, or None when the client gave none (then the default
        of its enabler version applies, see :func:`object_version`).
    instances:
        Announced instance ids, ascending; empty for an object announced without instances.
    """

    object_id: int
    version: str | None
    instances: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """A validated Register request (``POST /rd``).

    Attributes
    ----------
    endpoint:
        Endpoint Client Name (``ep=``).
    lifetime:
        Registration lifetime in seconds (``lt=``); 0 = infinite (LwM2M 1.2 only).
    lwm2m_version:
        Enabler version (``lwm2m=``), "1.0" when absent.
    binding:
        Transport letters of ``b=`` without any ``Q`` ("U" when absent).
    queue_mode:
        True when the client announced queue mode (``Q`` flag, or ``Q`` inside ``b=``).
    sms:
        MSISDN (``sms=``) or None.
    extra:
        Unknown query parameters (value None for a parameter without ``=``).
    objects:
        Object id -> :class:`ObjectAnnouncement`, ascending ids; never /0 or /21.
    root_path:
        "/" or the alternate root of the root link (``</lwm2m>;rt="oma.lwm2m"``).
    content_formats:
        ``ct=`` of the root link (empty when not given).
    """

    endpoint: str
    lifetime: int = DEFAULT_LIFETIME
    lwm2m_version: str = "1.0"
    binding: str = "U"
    queue_mode: bool = False
    sms: str | None = None
    extra: Mapping[str, str | None] = field(default_factory=dict)
    objects: Mapping[int, ObjectAnnouncement] = field(default_factory=dict)
    root_path: str = "/"
    content_formats: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """A validated Update request (``POST /rd/{id}``); None means "unchanged".

    Attributes
    ----------
    lifetime, binding, sms:
        New ``lt=``, ``b=`` (transport letters only) and ``sms=``, or None when absent.
    queue_mode:
        True when ``Q`` (or a ``Q`` inside ``b=``) was given; False when a 1.0 client sent a
        ``b=`` without ``Q``; None when the request says nothing about it.
    objects:
        The new object list when the Update carries a payload, else None.
    extra:
        Unknown query parameters.
    """

    lifetime: int | None = None
    binding: str | None = None
    sms: str | None = None
    queue_mode: bool | None = None
    objects: Mapping[int, ObjectAnnouncement] | None = None
    extra: Mapping[str, str | None] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Query parameters
# ---------------------------------------------------------------------------------------------


def _bad(message: str) -> RegistrationError:
    return RegistrationError(message, coap_code="4.00")


def _split_query(query: Sequence[str]) -> dict[str, str | None]:
    """Uri-Query options -> {name: value}; ``Q`` -> {"Q": None}. Repeated names -> 4.00."""
    if isinstance(query, str | bytes):
        raise LocalProtocolError("query must be a sequence of Uri-Query strings, not one string")
    params: dict[str, str | None] = {}
    for item in query:
        if not isinstance(item, str):
            raise _bad(f"query option is not text: {item!r}")
        name, sep, value = item.partition("=")
        if not name:
            raise _bad(f"query option without a name: {item!r}")
        if name in params:
            raise _bad(f"query parameter {name!r} given twice")
        params[name] = value if sep else None
    return params


def _required_value(params: Mapping[str, str | None], name: str) -> str:
    value = params[name]
    if value is None or value == "":
        raise _bad(f"query parameter {name!r} needs a value")
    return value


def _parse_version(params: Mapping[str, str | None]) -> str:
    if "lwm2m" not in params:
        return "1.0"  # digest 4.1: 1.0 clients may omit lwm2m=
    value = params["lwm2m"]
    if value is None:
        raise _bad("query parameter 'lwm2m' needs a value")
    if value not in SUPPORTED_VERSIONS:
        # digest 4.1 / pitfall 20: 4.12 lets the client fall back to a lower version.
        raise RegistrationError(f"unsupported LwM2M version {value!r}", coap_code="4.12")
    return value


def _parse_lifetime(text: str, version: str | None) -> int:
    if not _LIFETIME.fullmatch(text):
        raise _bad(f"lifetime must be a decimal number of seconds, got {text!r}")
    lifetime = int(text)
    if lifetime > MAX_LIFETIME:
        raise _bad(f"lifetime {lifetime} is larger than {MAX_LIFETIME}")
    # /1/x/1 in obj 1.2: "If the value is set to 0, the lifetime is infinite" (LwM2M 1.2).
    if lifetime == 0 and version not in ("1.2", None):
        raise _bad("lifetime 0 (infinite) exists only in LwM2M 1.2")
    return lifetime


def _parse_binding(text: str, version: str | None) -> tuple[str, bool]:
    """``b=`` -> (transport letters without Q, queue mode). ``version`` None: any version."""
    if version == "1.0" or (version is None and text in BINDING_MODES_1_0):
        # digest 3.2 / 4.3: the closed list of 1.0 binding modes; Q = queue mode.
        if text not in BINDING_MODES_1_0:
            raise _bad(f"binding {text!r} is not one of {sorted(BINDING_MODES_1_0)} (LwM2M 1.0)")
        return text.replace("Q", ""), "Q" in text
    allowed = set(BINDING_LETTERS)
    if version in ("1.2", None):
        allowed |= set(BINDING_LETTERS_1_2)
    letters = text.replace("Q", "", 1)  # tolerated: 1.0-style Q from a 1.1+ client
    if not letters:
        raise _bad(f"binding {text!r} names no transport")
    if len(set(letters)) != len(letters) or not set(letters) <= allowed:
        raise _bad(f"binding {text!r} is not a combination of {''.join(sorted(allowed))}")
    return letters, letters != text


def _parse_sms(params: Mapping[str, str | None]) -> str | None:
    return _required_value(params, "sms") if "sms" in params else None


def _parse_queue_flag(params: Mapping[str, str | None]) -> bool:
    if "Q" not in params:
        return False
    if params["Q"] is not None:
        raise _bad("the queue mode parameter 'Q' takes no value")
    return True


# ---------------------------------------------------------------------------------------------
# Link-format payload
# ---------------------------------------------------------------------------------------------


def _is_root_link(link: Link) -> bool:
    rt = link.params.get("rt")
    return link.target == "/" or (rt is not None and _ROOT_RT in rt.split())


def _parse_root(link: Link) -> tuple[str, tuple[int, ...]]:
    target = link.target
    if not target.startswith("/"):
        raise _bad(f"root link target must be an absolute path: {target!r}")
    segments = target[1:].removesuffix("/").split("/") if target != "/" else []
    for seg in segments:
        if not seg or not seg.isprintable() or any(c.isspace() for c in seg):
            raise _bad(f"bad alternate root path {target!r}")
    if segments and segments[0].isdigit():
        # An alternate root that looks like an object path would make every path ambiguous.
        raise _bad(f"alternate root path {target!r} collides with LwM2M object paths")
    root = "/" + "/".join(segments)
    formats: list[int] = []
    if "ct" in link.params:
        ct = link.params["ct"]
        words = ct.split() if ct is not None else []
        if not words:
            raise _bad("root link ct= has no content format")
        for word in words:
            if not _CT.fullmatch(word) or int(word) > 0xFFFF:
                raise _bad(f"root link ct= is not a list of content formats: {ct!r}")
            if int(word) not in formats:
                formats.append(int(word))
    return root, tuple(formats)


_ANNOUNCED: dict[tuple[int, str | None, tuple[int, ...]], ObjectAnnouncement] = {}
_ANNOUNCED_MAX = 4096


def _announcement(
    object_id: int, version: str | None, instances: tuple[int, ...]
) -> ObjectAnnouncement:
    """The (immutable) announcement, one shared instance per distinct value: a fleet's
    registrations announce the same objects, and a server keeps one record per device."""
    key = (object_id, version, instances)
    found = _ANNOUNCED.get(key)
    if found is None:
        found = ObjectAnnouncement(object_id, version, instances)
        if len(_ANNOUNCED) < _ANNOUNCED_MAX:  # bounded, whatever clients announce
            _ANNOUNCED[key] = found
    return found


def _parse_payload(payload: bytes) -> tuple[dict[int, ObjectAnnouncement], str, tuple[int, ...]]:
    """Register/Update payload -> (objects, root path, content formats)."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise LocalProtocolError(f"payload must be bytes, not {type(payload).__name__}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"registration payload is not UTF-8: {exc}") from None
    try:
        links = parse_links(text)
    except DecodeError as exc:
        raise _bad(f"registration payload is not a link list: {exc}") from None

    roots = [link for link in links if _is_root_link(link)]
    if len(roots) > 1:
        raise _bad("registration payload has more than one root link")
    root_link = roots[0] if roots else None
    root, formats = _parse_root(root_link) if root_link is not None else ("/", ())
    prefix = "" if root == "/" else root

    versions: dict[int, str | None] = {}
    instances: dict[int, set[int]] = {}
    for link in links:
        if link is root_link:
            continue
        target = link.target
        if prefix:
            if not target.startswith(prefix + "/"):
                raise _bad(f"link {target!r} is not under the alternate root {root!r}")
            target = target[len(prefix) :]
        if not _LWM2M_PATH.fullmatch(target):
            raise _bad(f"link target {link.target!r} is not an LwM2M object or instance path")
        try:
            path = Path.parse(target)
        except PathError as exc:
            raise _bad(f"link target {link.target!r}: {exc}") from None
        oid = path.ids[0]
        if oid in PRIVATE_OBJECTS or path.level > 2:
            continue  # tolerated and ignored: /0, /21, resource-level links
        instances.setdefault(oid, set())
        versions.setdefault(oid, None)
        if path.level == 2:
            instances[oid].add(path.ids[1])
        elif "ver" in link.params:
            # digest 4.1: ver= sits on the object link, quoted (1.0 practice) or not.
            ver = link.params["ver"]
            if ver is None or not _VERSION.fullmatch(ver):
                raise _bad(f"object link {link.target!r} has a bad ver={ver!r}")
            if versions[oid] not in (None, ver):
                raise _bad(f"object {oid} announced with two versions")
            versions[oid] = ver
    objects = {
        oid: _announcement(oid, versions[oid], tuple(sorted(instances[oid])))
        for oid in sorted(instances)
    }
    return objects, root, formats


# ---------------------------------------------------------------------------------------------
# Server side
# ---------------------------------------------------------------------------------------------

_REGISTER_PARAMS = frozenset({"ep", "lt", "lwm2m", "b", "Q", "sms"})
_UPDATE_PARAMS = frozenset({"lt", "b", "Q", "sms"})


def parse_register(query: Sequence[str], payload: bytes) -> RegisterRequest:
    """Validate a Register request.

    Parameters
    ----------
    query:
        The Uri-Query options as strings, in any order (``["ep=sim-1", "lt=60", "Q"]``).
    payload:
        The link-format payload (content format 40); may be empty.

    Returns
    -------
    RegisterRequest
        The request with defaults filled in (lifetime 86400, version 1.0, binding U).

    Raises
    ------
    RegistrationError
        ``coap_code`` 4.12 for an unsupported ``lwm2m=``; 4.00 for everything else that is
        malformed (see the module docstring for the exact rules).
    """
    params = _split_query(query)
    version = _parse_version(params)
    if "ep" not in params:
        raise _bad("Register without an endpoint name (ep=)")
    endpoint = _required_value(params, "ep")
    lifetime = (
        _parse_lifetime(_required_value(params, "lt"), version)
        if "lt" in params
        else DEFAULT_LIFETIME
    )
    binding, queue = (
        _parse_binding(_required_value(params, "b"), version) if "b" in params else ("U", False)
    )
    queue = _parse_queue_flag(params) or queue
    sms = _parse_sms(params)
    extra = {k: v for k, v in params.items() if k not in _REGISTER_PARAMS}
    objects, root, formats = _parse_payload(payload)
    return RegisterRequest(
        endpoint=endpoint,
        lifetime=lifetime,
        lwm2m_version=version,
        binding=binding,
        queue_mode=queue,
        sms=sms,
        extra=extra,
        objects=objects,
        root_path=root,
        content_formats=formats,
    )


def parse_update(
    query: Sequence[str], payload: bytes, *, lwm2m_version: str | None = None
) -> UpdateRequest:
    """Validate an Update request (``POST /rd/{id}``).

    Parameters
    ----------
    query:
        The Uri-Query options (``lt=``, ``b=``, ``sms=``, ``Q``; all optional).
    payload:
        The new link list, or empty when the objects did not change.
    lwm2m_version:
        The enabler version of the registration, to check ``b=`` against; None accepts any
        binding valid in some supported version.

    Returns
    -------
    UpdateRequest
        None for everything the request leaves unchanged.

    Raises
    ------
    RegistrationError
        4.00 for ``ep=`` or ``lwm2m=`` (they belong to Register only, digest 4.2) and for any
        malformed parameter or payload.
    """
    params = _split_query(query)
    for name in ("ep", "lwm2m"):
        if name in params:
            raise _bad(f"{name}= is not allowed in an Update")
    if lwm2m_version is not None and lwm2m_version not in SUPPORTED_VERSIONS:
        raise LocalProtocolError(f"unknown LwM2M version {lwm2m_version!r}")
    lifetime = (
        _parse_lifetime(_required_value(params, "lt"), lwm2m_version) if "lt" in params else None
    )
    binding: str | None = None
    queue: bool | None = None
    if "b" in params:
        binding, in_binding = _parse_binding(_required_value(params, "b"), lwm2m_version)
        # In 1.0 the binding is the whole mode: b=U after b=UQ switches queue mode off.
        queue = True if in_binding else (False if lwm2m_version == "1.0" else None)
    if _parse_queue_flag(params):
        queue = True
    sms = _parse_sms(params)
    extra = {k: v for k, v in params.items() if k not in _UPDATE_PARAMS}
    objects = _parse_payload(payload)[0] if len(payload) else None
    return UpdateRequest(
        lifetime=lifetime, binding=binding, sms=sms, queue_mode=queue, objects=objects, extra=extra
    )


def object_version(req: RegisterRequest, object_id: int) -> str:
    """Object version a registered client implements for ``object_id``.

    Parameters
    ----------
    req:
        The client's registration.
    object_id:
        The object.

    Returns
    -------
    str
        The announced ``ver=``, else the default of the client's enabler version (digest 4.1:
        a 1.1 client without ``</5>;ver=...`` has /5 obj 1.0, so no Cancel/Severity), else
        "1.0" for objects without a default.
    """
    ann = req.objects.get(object_id)
    if ann is not None and ann.version is not None:
        return ann.version
    defaults = DEFAULT_OBJECT_VERSIONS.get(req.lwm2m_version, {})
    return defaults.get(object_id, "1.0")


# ---------------------------------------------------------------------------------------------
# Client side
# ---------------------------------------------------------------------------------------------


def register_query(
    endpoint: str,
    lifetime: int,
    lwm2m_version: str = "1.1",
    binding: str = "U",
    queue_mode: bool = False,
) -> list[str]:
    """Uri-Query options of a Register, in Anjay's order (``lwm2m, ep, lt, b, Q``).

    Parameters
    ----------
    endpoint:
        Endpoint Client Name.
    lifetime:
        Lifetime in seconds (>= 1; 0 = infinite is allowed for LwM2M 1.2).
    lwm2m_version:
        "1.0", "1.1" or "1.2".
    binding:
        Transport letters (``"U"``, ``"UT"``...); a 1.0 mode with ``Q`` is accepted too.
    queue_mode:
        Announce queue mode: the ``Q`` flag in 1.1+, a ``Q`` inside ``b=`` in 1.0.

    Returns
    -------
    list[str]
        E.g. ``["lwm2m=1.1", "ep=sim-1", "lt=60", "b=U", "Q"]``.

    Raises
    ------
    LocalProtocolError
        For an empty endpoint, a bad lifetime, version or binding.
    """
    if lwm2m_version not in SUPPORTED_VERSIONS:
        raise LocalProtocolError(f"unsupported LwM2M version {lwm2m_version!r}")
    if not isinstance(endpoint, str) or not endpoint:
        raise LocalProtocolError("the endpoint name must be a non-empty string")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int):
        raise LocalProtocolError(f"lifetime must be an integer, got {lifetime!r}")
    try:
        _parse_lifetime(str(lifetime), lwm2m_version)
        letters, in_binding = _parse_binding(binding, lwm2m_version)
    except RegistrationError as exc:
        raise LocalProtocolError(str(exc)) from None
    queue = queue_mode or in_binding
    query = [f"lwm2m={lwm2m_version}", f"ep={endpoint}", f"lt={lifetime}"]
    if lwm2m_version == "1.0":
        # 1.0 modes: U, UQ, S, SQ, US, UQS -- the Q follows the transport it applies to.
        mode = letters.replace("U", "UQ", 1) if queue and "U" in letters else letters
        if queue and "U" not in letters:
            mode = letters + "Q"
        if mode not in BINDING_MODES_1_0:
            raise LocalProtocolError(f"binding {mode!r} does not exist in LwM2M 1.0")
        query.append(f"b={mode}")
    else:
        query.append(f"b={letters}")
        if queue:
            query.append("Q")
    return query


def register_links(objects: Mapping[int, tuple[str | None, Iterable[int]]]) -> str:
    """Link-format payload of a Register or Update.

    Parameters
    ----------
    objects:
        Object id -> (object version or None, instance ids). A version is written on the
        object link (``</5>;ver=1.1``); an object without version and instances is written
        as ``</O>``. /0 and /21 are never listed (digest 3.3).

    Returns
    -------
    str
        E.g. ``</1>;ver=1.2,</1/0>,</3>;ver=1.2,</3/0>,</5/0>``, ascending ids.

    Raises
    ------
    LocalProtocolError
        For ids outside 0..65534 or a version that is not ``major.minor``.
    """
    parts: list[str] = []
    for oid in sorted(objects):
        if oid in PRIVATE_OBJECTS:
            continue
        version, instance_ids = objects[oid]
        ids = sorted(set(instance_ids))
        for i in (oid, *ids):
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= 65534:
                raise LocalProtocolError(f"object and instance ids are 0..65534, got {i!r}")
        if version is not None:
            if not _VERSION.fullmatch(version):
                raise LocalProtocolError(f"object version must be major.minor, got {version!r}")
            parts.append(f"</{oid}>;ver={version}")
        elif not ids:
            parts.append(f"</{oid}>")
        parts.extend(f"</{oid}/{i}>" for i in ids)
    return ",".join(parts)


def update_delay(lifetime: float) -> float:
    """Seconds after a Register/Update at which the client sends its next Update.

    Wakaama and Anjay send it at ``expiry - min(93 s, lt/2)`` (digest 4.2; 93 s is CoAP
    MAX_TRANSMIT_WAIT), so ``lt - min(93, lt/2)``: 30 s -> 15 s, 300 s -> 207 s.

    Parameters
    ----------
    lifetime:
        Registration lifetime in seconds; 0 means infinite (LwM2M 1.2).

    Returns
    -------
    float
        The delay; ``math.inf`` for an infinite lifetime (no Update needed).

    Raises
    ------
    LocalProtocolError
        For a negative or NaN lifetime.
    """
    if math.isnan(lifetime) or lifetime < 0:
        raise LocalProtocolError(f"lifetime must be >= 0, got {lifetime!r}")
    if lifetime == 0 or math.isinf(lifetime):
        return math.inf
    return float(lifetime - min(MAX_TRANSMIT_WAIT, lifetime / 2))
