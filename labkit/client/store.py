"""The simulated device's object store: instances, values, attributes and their rules.

This module owns the *data* side of an LwM2M client: which object instances exist, the value
of every resource, the notification attributes a server attached (``pmin``, ``pmax``, ``gt``,
``lt``, ``st``), and the rules of the device-management operations on them -- which path may be
read, written, executed, created or deleted, and the CoAP code a refusal carries
(digest 5.1, 5.3). It also holds the pure "should this observation notify now?" decision
(digest 5.2, 7.4).

It never opens a socket, never reads a clock and never decodes a payload: the aiocoap adapter
(:mod:`labkit.client.device`) decodes requests with :mod:`labkit.lwm2m.formats`, asks the store,
and encodes the answer. Refusals are :class:`OperationError` (a
:class:`~labkit.lwm2m.errors.RemoteProtocolError`) carrying ``coap_code``.

Definitions (types, operations, object versions) come from the shared
:data:`labkit.lwm2m.objects.OBJECTS` tables; a store keeps only values, so many devices in one
process share every definition.

Value layout: each instance maps resource ids to what it holds: a single resource its
:data:`~labkit.lwm2m.values.Value`, a multiple resource a :class:`Multi` (an immutable mapping
of resource-instance id to value), an executable resource ``None`` (present, valueless). The
layout is compact because a process may hold 10,000 stores: an instance is a list of values
next to a shared tuple of its resource ids, and equal :class:`Multi` values, layouts and object
versions are one object for every store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeAlias, TypeVar

from labkit.lwm2m.errors import RemoteProtocolError
from labkit.lwm2m.formats.linkformat import Link
from labkit.lwm2m.objects import OBJECTS, ObjectDef, ResourceDef, ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, Value

__all__ = [
    "Attributes",
    "Multi",
    "ObjectStore",
    "OperationError",
    "Stored",
    "condition_met",
    "next_notification",
    "parse_execute_args",
    "pmax_due",
]

#: What a resource slot of an instance holds: a value, resource instances, or None (executable).
Stored: TypeAlias = "Value | Multi | None"

_NUMERIC = frozenset(
    {ResourceType.INTEGER, ResourceType.UNSIGNED_INTEGER, ResourceType.FLOAT, ResourceType.TIME}
)


class OperationError(RemoteProtocolError):
    """A device-management operation the store refuses; answer with :attr:`coap_code`."""

    @classmethod
    def not_found(cls, what: str) -> OperationError:
        return cls(f"{what} not found", coap_code="4.04")

    @classmethod
    def not_allowed(cls, what: str) -> OperationError:
        return cls(what, coap_code="4.05")

    @classmethod
    def unauthorized(cls, what: str) -> OperationError:
        return cls(what, coap_code="4.01")

    @classmethod
    def bad_request(cls, what: str) -> OperationError:
        return cls(what, coap_code="4.00")


# ---------------------------------------------------------------------------------------------
# Notification attributes (digest 5.2) and the pure notify decision (digest 7.4)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attributes:
    """Notification attributes attached to a path; ``None`` means "not set at this level"."""

    pmin: int | None = None
    pmax: int | None = None
    gt: float | None = None
    lt: float | None = None
    st: float | None = None

    def overridden_by(self, lower: Attributes) -> Attributes:
        """These attributes with every attribute set in ``lower`` (a deeper level) replacing."""
        changes = {f.name: getattr(lower, f.name) for f in fields(lower)}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def params(self) -> dict[str, str]:
        """Link-format parameters for Discover (``{"pmin": "10", "gt": "20.5"}``)."""
        out: dict[str, str] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = _number_text(v)
        return out


def _number_text(v: float) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def condition_met(attrs: Attributes, last_value: object, value: object) -> bool:
    """Whether a change from ``last_value`` (the last notified value) to ``value`` is reportable.

    Without ``gt``/``lt``/``st`` (or for non-numeric values) any change is reportable. With
    them, a numeric change is reportable when it crosses ``gt`` or ``lt`` (in either direction,
    as Anjay does) or moves at least ``st`` away from the last notified value; the conditions
    are or-ed.
    """
    if value == last_value:
        return False
    numeric = (attrs.gt, attrs.lt, attrs.st) != (None, None, None)
    if not numeric or not (_is_number(value) and _is_number(last_value)):
        return True
    old, new = float(last_value), float(value)  # type: ignore[arg-type]
    if attrs.gt is not None and (old > attrs.gt) != (new > attrs.gt):
        return True
    if attrs.lt is not None and (old < attrs.lt) != (new < attrs.lt):
        return True
    return attrs.st is not None and abs(new - old) >= attrs.st


def next_notification(
    attrs: Attributes, *, now: float, last_sent: float | None, last_value: object, value: object
) -> float | None:
    """When a value change should be notified: ``now``, a later time (pmin), or None (never).

    Parameters
    ----------
    attrs:
        The effective attributes of the observed path.
    now:
        The current time (seconds, the device clock).
    last_sent:
        When the last notification (or the first response) went out; None if never.
    last_value:
        The value carried by that notification.
    value:
        The current value.

    Returns
    -------
    float or None
        The time to send at: ``max(now, last_sent + pmin)``; None when the change is not
        reportable (see :func:`condition_met`).
    """
    if not condition_met(attrs, last_value, value):
        return None
    if last_sent is None or not attrs.pmin:
        return now
    return max(now, last_sent + attrs.pmin)


def pmax_due(attrs: Attributes, last_sent: float) -> float | None:
    """When a notification is due even without a change (``last_sent + pmax``), or None.

    ``pmax`` of 0 (or unset) means no periodic notification; a ``pmax`` smaller than ``pmin``
    is ignored (digest 5.2).
    """
    if not attrs.pmax:
        return None
    if attrs.pmin is not None and attrs.pmax < attrs.pmin:
        return None
    return last_sent + attrs.pmax


_ATTR_NAMES = ("pmin", "pmax", "gt", "lt", "st")
# Attributes of LwM2M 1.1/1.2 we accept and ignore (evaluation periods, edge, confirmable).
_IGNORED_ATTRS = frozenset({"epmin", "epmax", "edge", "con", "hqmax"})


def _parse_attr(name: str, text: str) -> int | float:
    try:
        if name in ("pmin", "pmax"):
            number: int | float = int(text)
            if number < 0:
                raise ValueError
            return number
        number = float(text)
    except ValueError:
        raise OperationError.bad_request(f"bad value for attribute {name}: {text!r}") from None
    if not math.isfinite(number) or (name == "st" and number < 0):
        raise OperationError.bad_request(f"bad value for attribute {name}: {text!r}")
    return number


# ---------------------------------------------------------------------------------------------
# Execute arguments (digest 5.1: digit or digit='value', comma-separated)
# ---------------------------------------------------------------------------------------------


def parse_execute_args(payload: bytes) -> dict[int, str | None]:
    """Parse Execute arguments (``0,1='x'``) into ``{0: None, 1: "x"}``.

    Raises
    ------
    OperationError
        4.00 for anything outside the grammar (or non-UTF-8 bytes, or a repeated digit).
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise OperationError.bad_request("execute arguments are not UTF-8") from None
    out: dict[int, str | None] = {}
    pos, n = 0, len(text)
    while pos < n:
        ch = text[pos]
        if not ("0" <= ch <= "9"):
            raise OperationError.bad_request(f"bad execute arguments: {text!r}")
        digit = int(ch)
        if digit in out:
            raise OperationError.bad_request(f"argument {digit} given twice")
        pos += 1
        value: str | None = None
        if pos < n and text[pos] == "=":
            if pos + 1 >= n or text[pos + 1] != "'":
                raise OperationError.bad_request(f"bad execute arguments: {text!r}")
            end = text.find("'", pos + 2)
            if end < 0:
                raise OperationError.bad_request(f"unterminated argument value: {text!r}")
            value = text[pos + 2 : end]
            pos = end + 1
        out[digit] = value
        if pos < n:
            if text[pos] != "," or pos + 1 == n:
                raise OperationError.bad_request(f"bad execute arguments: {text!r}")
            pos += 1
    return out


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


def _type_ok(rtype: ResourceType, value: object) -> bool:
    if rtype in (ResourceType.STRING, ResourceType.CORELNK):
        return isinstance(value, str)
    if rtype in (ResourceType.INTEGER, ResourceType.TIME):
        return isinstance(value, int) and not isinstance(value, bool)
    if rtype is ResourceType.UNSIGNED_INTEGER:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if rtype is ResourceType.FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if rtype is ResourceType.BOOLEAN:
        return isinstance(value, bool)
    if rtype is ResourceType.OPAQUE:
        return isinstance(value, bytes)
    if rtype is ResourceType.OBJLNK:
        return isinstance(value, ObjLink)
    return False


_SHARED: dict[frozenset[Any], frozenset[Any]] = {}


def _shared(value: frozenset[Any]) -> frozenset[Any]:
    """One instance of each distinct (small, immutable) set, shared by every store."""
    if len(_SHARED) >= 256:  # never grows without bound, whatever the callers pass
        return value
    return _SHARED.setdefault(value, value)


# A fleet of simulated devices holds the same layouts and mostly the same values: the compact
# forms below let every store share what is equal (a device of 10,000 pays for its own values
# only, about 1.5 KiB instead of 5.5 KiB of nested dicts). Each cache is bounded: past its size
# new entries are simply not shared.
_CACHE_MAX = 4096


class Multi(Mapping[int, Value]):
    """The instances of a multiple resource, ``{resource instance id: value}``: immutable
    (a change makes a new one, :meth:`with_item`), sorted by id, and equal ones are one shared
    object (:func:`_multi`)."""

    __slots__ = ("_ids", "_values")

    def __init__(self, ids: tuple[int, ...], values: tuple[Value, ...]) -> None:
        self._ids = ids
        self._values = values

    def __getitem__(self, ri: int) -> Value:
        try:
            return self._values[self._ids.index(ri)]
        except ValueError:
            raise KeyError(ri) from None

    def __contains__(self, ri: object) -> bool:
        return ri in self._ids

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        # Mapping's comparison builds two dicts; two Multis (sorted ids) compare as tuples,
        # with the same answer. The firmware agent compares /5/0/8 after every PUSH block.
        if self is other:
            return True
        if isinstance(other, Multi):
            return self._ids == other._ids and self._values == other._values
        return Mapping.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]  # (as Mapping's: a Multi is not hashable)

    def holds(self, items: Mapping[int, Any]) -> bool:
        """True when ``items`` are exactly these instances: the same ids, each value equal and
        of the same type (what :func:`_multi` would make of ``items`` equals this one)."""
        if len(items) != len(self._ids):
            return False
        get = items.get
        for ri, value in zip(self._ids, self._values, strict=True):
            other = get(ri, _ABSENT)
            if other is not value and (type(other) is not type(value) or other != value):
                return False
        return True

    def with_item(self, ri: int, value: Value) -> Multi:
        """A copy with instance ``ri`` set to ``value``."""
        items = dict(zip(self._ids, self._values, strict=True))
        items[ri] = value
        return _multi(items)

    def __repr__(self) -> str:
        return f"Multi({dict(self.items())!r})"


_K = TypeVar("_K")
_V = TypeVar("_V")


def _intern(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    """The value ``cache`` shares for ``key``; ``value`` becomes it when there is none yet
    (and the cache has room)."""
    found = cache.get(key)
    if found is None:
        found = value
        if len(cache) < _CACHE_MAX:
            cache[key] = value
    return found


_MULTIS: dict[tuple[Any, ...], Multi] = {}
_ABSENT = object()


def _multi(items: Mapping[int, Value]) -> Multi:
    """The (shared) :class:`Multi` of ``items``."""
    ids = tuple(sorted(items))
    values = tuple(items[i] for i in ids)
    # 1, 1.0 and True are equal in Python but not the same LwM2M value: the types are part of
    # the key
    key = (ids, values, tuple(type(v) for v in values))
    try:
        found = _MULTIS.get(key)
    except TypeError:  # an unhashable value (never one of the LwM2M types): not shared
        return Multi(ids, values)
    if found is None:
        found = Multi(ids, values)
        if len(_MULTIS) < _CACHE_MAX:
            _MULTIS[key] = found
    return found


class _Shape:
    """The resource ids an instance holds, sorted, and each one's position in its values;
    one shared object per distinct set of ids (:func:`_shape`)."""

    __slots__ = ("ids", "index")

    def __init__(self, ids: tuple[int, ...]) -> None:
        self.ids = ids
        self.index = {rid: i for i, rid in enumerate(ids)}


_SHAPES: dict[tuple[int, ...], _Shape] = {}


def _shape(ids: tuple[int, ...]) -> _Shape:
    found = _SHAPES.get(ids)
    if found is None:
        found = _Shape(ids)
        if len(_SHAPES) < _CACHE_MAX:
            _SHAPES[ids] = found
    return found


class _Instance:
    """The resources of one object instance: a shared :class:`_Shape` and a list of the values
    in its order. Reads like a ``dict`` of resource id to :data:`Stored` (iteration in id
    order)."""

    __slots__ = ("shape", "values")

    def __init__(self, items: Mapping[int, Stored]) -> None:
        ids = tuple(sorted(items))
        self.shape = _shape(ids)
        self.values: list[Stored] = list(tuple(items[rid] for rid in ids))

    def __contains__(self, rid: object) -> bool:
        return rid in self.shape.index

    def __getitem__(self, rid: int) -> Stored:
        return self.values[self.shape.index[rid]]

    def get(self, rid: int | None, default: Any = None) -> Any:
        at = self.shape.index.get(rid)  # type: ignore[arg-type]
        return default if at is None else self.values[at]

    def __setitem__(self, rid: int, value: Stored) -> None:
        at = self.shape.index.get(rid)
        if at is not None:
            self.values[at] = value
            return
        items = dict(zip(self.shape.ids, self.values, strict=True))
        items[rid] = value
        ids = tuple(sorted(items))
        self.shape = _shape(ids)
        self.values = list(tuple(items[i] for i in ids))

    def __iter__(self) -> Iterator[int]:
        return iter(self.shape.ids)

    def __len__(self) -> int:
        return len(self.shape.ids)


_VERSIONS: dict[tuple[tuple[int, str], ...], dict[int, str]] = {}


def _versions(versions: dict[int, str]) -> dict[int, str]:
    """One shared (never mutated) dict of each distinct ``{object id: version}``."""
    return _intern(_VERSIONS, tuple(sorted(versions.items())), versions)


_NO_DYNAMIC: dict[Path, Callable[[], Value]] = {}


class ObjectStore:
    """Object instances and resource values of one device, with the operation rules.

    Parameters
    ----------
    definitions:
        Object definitions (shared, read-only); defaults to :data:`~labkit.lwm2m.objects.OBJECTS`.
    hidden:
        Objects a (non-bootstrap) server may never see: Read/Discover/Write/... answer 4.01 and
        the object is left out of the Register payload (/0 Security, digest 3.3, 9.13).
    creatable:
        Objects in which a server may Create and Delete instances (others answer 4.05).
    permanent:
        Instances that may never be deleted even in a creatable object (e.g. ``/1/0``, the
        account of the server the device is registered to).
    """

    __slots__ = (
        "_attrs",
        "_defs",
        "_dynamic",
        "_inst",
        "_versions",
        "creatable",
        "hidden",
        "permanent",
    )

    def __init__(
        self,
        *,
        definitions: Mapping[int, ObjectDef] = OBJECTS,
        hidden: Iterable[int] = (0,),
        creatable: Iterable[int] = (),
        permanent: Iterable[Path | str] = (),
    ) -> None:
        self._defs = definitions
        #: every instance, by (object id, instance id)
        self._inst: dict[tuple[int, int], _Instance] = {}
        #: the implemented objects and their versions (a shared dict: replaced, never changed)
        self._versions: dict[int, str] = _versions({})
        #: attached attributes and bound getters (shared empty dicts until the first one)
        self._attrs: dict[Path, Attributes] = _NO_ATTRS_MAP
        self._dynamic: dict[Path, Callable[[], Value]] = _NO_DYNAMIC
        # equal sets are one object for every device of a fleet (immutable, 216 B each)
        self.hidden = _shared(frozenset(hidden))
        self.creatable = _shared(frozenset(creatable))
        self.permanent = _shared(frozenset(Path.parse(p) for p in permanent))

    # -- building ------------------------------------------------------------------------
    def add_object(self, object_id: int, version: str | None = None) -> None:
        """Declare that the device implements ``object_id`` at ``version`` (default: newest)."""
        odef = self._defs.get(object_id)
        if odef is None:
            raise KeyError(f"no definition for object {object_id}")
        self._versions = _versions({**self._versions, object_id: version or odef.version})

    def add_instance(self, object_id: int, instance_id: int, values: Mapping[int, Any]) -> None:
        """Add (or replace) an instance: ``values`` maps resource ids to a value, a mapping or
        list of resource-instance values (multiple resources), or None (executables)."""
        odef = self._defs[object_id]
        if object_id not in self._versions:
            self.add_object(object_id)
        inst: dict[int, Stored] = {}
        for rid, value in values.items():
            rdef = odef.resources.get(rid)
            if rdef is None:
                raise KeyError(f"object {object_id} has no resource {rid}")
            inst[rid] = self._coerce_local(rdef, value)
        self._inst[_key(object_id, instance_id)] = _Instance(inst)

    @staticmethod
    def _coerce_local(rdef: ResourceDef, value: Any) -> Stored:
        if rdef.executable:
            return None
        if rdef.multiple:
            if isinstance(value, Mapping):
                return _multi(value)
            return _multi(dict(enumerate(value)))
        return value  # type: ignore[no-any-return]

    def bind(self, path: Path | str, getter: Callable[[], Value]) -> None:
        """Make a single resource's value computed on every read (e.g. Current Time)."""
        if self._dynamic is _NO_DYNAMIC:
            self._dynamic = {}
        self._dynamic[Path.parse(path)] = getter

    # -- lookups -------------------------------------------------------------------------
    def definition(self, object_id: int) -> ObjectDef | None:
        return self._defs.get(object_id)

    def resource_definition(self, path: Path) -> ResourceDef | None:
        if path.object_id is None or path.resource_id is None:
            return None
        odef = self._defs.get(path.object_id)
        return None if odef is None else odef.resources.get(path.resource_id)

    def resource_type(self, path: Path) -> ResourceType | None:
        """A :data:`~labkit.lwm2m.values.TypeResolver` over this store's definitions."""
        rdef = self.resource_definition(path)
        return None if rdef is None else rdef.type

    def version(self, object_id: int) -> str | None:
        return self._versions.get(object_id)

    def objects(self) -> list[int]:
        return sorted(self._versions)

    def instances(self, object_id: int) -> list[int]:
        return sorted(iid for oid, iid in self._inst if oid == object_id)

    def resource_ids(self, object_id: int, instance_id: int) -> list[int]:
        """The resource ids an instance holds (no access checks; KeyError if missing)."""
        return list(self._inst[object_id, instance_id])

    def remove_instance(self, object_id: int, instance_id: int) -> None:
        """Remove an instance without the Delete rules (the Bootstrap-Delete of the device
        side, :mod:`labkit.client.bootstrap`); KeyError if it is missing."""
        del self._inst[object_id, instance_id]
        prefix = Path.of(object_id, instance_id)
        for apath in [a for a in self._attrs if a.startswith(prefix)]:
            del self._attrs[apath]

    def exists(self, path: Path | str) -> bool:
        try:
            self._locate(Path.parse(path))
        except OperationError:
            return False
        return True

    def _locate(self, path: Path) -> None:
        """Raise 4.04 unless ``path`` names something that exists (4.01 for hidden objects)."""
        if path.is_root:
            raise OperationError.not_allowed("the root path")
        oid = path.object_id
        if oid in self.hidden:
            raise OperationError.unauthorized(f"/{oid} is not accessible to a server")
        if oid not in self._versions:
            raise OperationError.not_found(f"object /{oid}")
        if path.instance_id is None:
            return
        inst = self._inst.get((oid, path.instance_id))  # type: ignore[arg-type]
        if inst is None:
            raise OperationError.not_found(f"instance {path.parent}/{path.instance_id}")
        rid = path.resource_id
        if rid is None:
            return
        if rid not in inst:
            raise OperationError.not_found(f"resource {path}")
        ri = path.resource_instance_id
        if ri is None:
            return
        slot = inst[rid]
        if not isinstance(slot, Multi) or ri not in slot:
            raise OperationError.not_found(f"resource instance {path}")

    def get(self, path: Path | str) -> Value | dict[int, Value] | None:
        """The stored value of a resource or resource instance (no access checks)."""
        p = Path.parse(path)
        if p.resource_id is None:
            raise ValueError(f"get() takes a resource path, not {p}")
        getter = self._dynamic.get(p)
        if getter is not None:
            return getter()
        try:
            slot = self._inst[p.object_id, p.instance_id][p.resource_id]  # type: ignore[index]
        except KeyError:
            raise KeyError(str(p)) from None
        if p.resource_instance_id is not None:
            if not isinstance(slot, Multi):
                raise KeyError(str(p))
            return slot[p.resource_instance_id]
        return dict(slot) if isinstance(slot, Multi) else slot

    def set(self, path: Path | str, value: Any) -> bool:
        """Set a value from the device side (no operation checks). Returns True if it changed.

        A multiple resource takes a mapping or list of its instances; a resource-instance path
        sets one instance. The resource must exist in the definition; the instance must exist.
        """
        p = Path.parse(path)
        if p.resource_id is None:
            raise ValueError(f"set() takes a resource path, not {p}")
        rdef = self.resource_definition(p)
        if rdef is None:
            raise KeyError(f"no definition for {p}")
        inst = self._inst[p.object_id, p.instance_id]  # type: ignore[index]
        if p.resource_instance_id is not None:
            slot = inst.get(p.resource_id, _NO_INSTANCES)
            if not isinstance(slot, Multi):
                raise ValueError(f"{p.parent} is not a multiple resource")
            old = slot.get(p.resource_instance_id, _MISSING)
            inst[p.resource_id] = slot.with_item(p.resource_instance_id, value)
            return bool(old != value)
        new = self._coerce_local(rdef, value)
        old = inst.get(p.resource_id, _MISSING)
        inst[p.resource_id] = new
        return bool(old != new)

    def set_resources(
        self, object_id: int, instance_id: int, values: Mapping[int, Any]
    ) -> list[int]:
        """:meth:`set` for several resources of one instance, each one only if it
        :meth:`exists` (a resource the instance does not hold is skipped); returns the ids of
        those that changed, in the order of ``values``. One lookup of the instance for all of
        them: the firmware agent copies /5/0 into the store after every PUSH block."""
        if object_id in self.hidden:
            return []
        inst = self._inst.get((object_id, instance_id))
        odef = self._defs.get(object_id)
        if inst is None or odef is None:
            return []
        changed: list[int] = []
        index = inst.shape.index  # (the instance's layout does not change here)
        held = inst.values
        defs = odef.resources
        for rid, value in values.items():
            at = index.get(rid)
            if at is None:
                continue
            rdef = defs.get(rid)
            if rdef is None:
                raise KeyError(f"no definition for /{object_id}/{instance_id}/{rid}")
            old = held[at]
            if type(old) is Multi and isinstance(value, Mapping) and old.holds(value):
                continue  # the same instances: nothing to make, nothing changed
            new = self._coerce_local(rdef, value)
            if held[at] != new:
                changed.append(rid)
            held[at] = new
        return changed

    def iter_values(self, path: Path) -> Iterator[tuple[Path, Value]]:
        """Flat (path, value) pairs of everything readable at or under ``path`` (no checks)."""
        oid = path.object_id
        if oid is None:
            return
        iids = [path.instance_id] if path.instance_id is not None else self.instances(oid)
        odef = self._defs[oid]
        for iid in iids:
            inst = self._inst.get((oid, iid))
            if inst is None:
                continue
            rids = [path.resource_id] if path.resource_id is not None else list(inst)
            for rid in rids:
                rdef = odef.resources.get(rid)
                if rdef is None or rid not in inst:
                    continue
                if path.resource_id is None and not rdef.readable:
                    continue
                rpath = Path((oid, iid, rid))
                slot = inst[rid]
                getter = self._dynamic.get(rpath)
                if getter is not None:
                    yield rpath, getter()
                elif isinstance(slot, Multi):
                    for ri in slot:
                        if path.resource_instance_id in (None, ri):
                            yield Path((oid, iid, rid, ri)), slot[ri]
                elif slot is not None:
                    yield rpath, slot

    # -- Read / Discover -----------------------------------------------------------------
    def read(self, path: Path | str) -> dict[Path, Value]:
        """Read (digest 5.1): the flat values at ``path``.

        Raises
        ------
        OperationError
            4.01 on a hidden object, 4.04 for a missing path, 4.05 for a non-readable
            resource (e.g. /5/0/0 Package) or the root.
        """
        p = Path.parse(path)
        self._locate(p)
        if p.resource_id is not None:
            rdef = self.resource_definition(p)
            if rdef is None or not rdef.readable:
                raise OperationError.not_allowed(f"{p} is not readable")
        return dict(self.iter_values(p))

    def is_multiple(self, path: Path) -> bool:
        """True when ``path`` is an object, an instance or a multiple resource."""
        if path.resource_id is None:
            return True
        if path.resource_instance_id is not None:
            return False
        rdef = self.resource_definition(path)
        return bool(rdef is not None and rdef.multiple)

    def discover(self, path: Path | str) -> list[Link]:
        """Discover (digest 5.1): links with attached attributes, ``dim`` and object ``ver``."""
        p = Path.parse(path)
        self._locate(p)
        if p.resource_instance_id is not None:
            raise OperationError.bad_request("Discover takes /O, /O/I or /O/I/R")
        oid = p.object_id
        assert oid is not None
        links: list[Link] = []
        odef = self._defs[oid]
        if p.instance_id is None:
            params = self._attached(p).params()
            version = self._versions.get(oid)
            if version and version != "1.0":
                params = {"ver": version, **params}
            links.append(Link(str(p), params))
        iids = [p.instance_id] if p.instance_id is not None else self.instances(oid)
        for iid in iids:
            ipath = Path((oid, iid))
            inst = self._inst[oid, iid]
            if p.resource_id is None:
                links.append(Link(str(ipath), self._attached(ipath).params()))
            rids = [p.resource_id] if p.resource_id is not None else list(inst)
            for rid in rids:
                rpath = ipath.child(rid)
                params = self._attached(rpath).params()
                slot = inst[rid]
                rdef = odef.resources[rid]
                if rdef.multiple and isinstance(slot, Multi):
                    params = {"dim": str(len(slot)), **params}
                links.append(Link(str(rpath), params))
        return links

    def registration_objects(self) -> dict[int, tuple[str | None, list[int]]]:
        """``{object id: (version or None, instance ids)}`` for the Register payload.

        Hidden objects are left out; the version is given when it is not 1.0.
        """
        out: dict[int, tuple[str | None, list[int]]] = {}
        for oid in sorted(self._versions):
            if oid in self.hidden:
                continue
            version = self._versions.get(oid)
            out[oid] = (version if version and version != "1.0" else None, self.instances(oid))
        return out

    # -- Write -------------------------------------------------------------------------
    def check_write(
        self, path: Path | str, values: Mapping[Path, Value], *, replace: bool = True
    ) -> None:
        """Validate a Write of decoded ``values`` at ``path`` without changing anything.

        Raises
        ------
        OperationError
            4.01 hidden object; 4.05 Write on an object/root or on a resource a server may not
            write or a Partial Update (POST) of a single resource; 4.04 missing instance/resource;
            4.00 values outside ``path``, values of the wrong type, a resource-instance value
            for a single resource (or the reverse).
        """
        p = Path.parse(path)
        if p.is_root or p.is_object:
            raise OperationError.not_allowed(f"Write on {p or '/'} (use Create on an object)")
        self._locate(Path(p.ids[:2]))
        if p.resource_id is not None:
            rdef = self.resource_definition(p)
            if rdef is None or p.resource_id not in self._inst[p.object_id, p.instance_id]:  # type: ignore[index]
                raise OperationError.not_found(f"resource {p}")
            if not rdef.writable:
                raise OperationError.not_allowed(f"{p} is not writable")
            if not replace and not rdef.multiple:
                raise OperationError.not_allowed("Partial Update (POST) of a single resource")
        inst = self._inst[p.object_id, p.instance_id]  # type: ignore[index]
        for vpath, value in values.items():
            if not vpath.startswith(p) or vpath.level < 3:
                raise OperationError.bad_request(f"value for {vpath} outside {p}")
            rdef = self.resource_definition(vpath)
            if rdef is None or vpath.resource_id not in inst:
                raise OperationError.not_found(f"resource {Path(vpath.ids[:3])}")
            if not rdef.writable:
                raise OperationError.not_allowed(f"{Path(vpath.ids[:3])} is not writable")
            if rdef.multiple != (vpath.level == 4):
                raise OperationError.bad_request(f"{vpath}: wrong level for this resource")
            if not _type_ok(rdef.type, value):
                raise OperationError.bad_request(
                    f"{vpath}: {type(value).__name__} is not a {rdef.type.value}"
                )

    def write(
        self, path: Path | str, values: Mapping[Path, Value], *, replace: bool = True
    ) -> list[Path]:
        """Write (PUT = replace, POST = partial update) after :meth:`check_write`.

        A replace of a multiple resource (or of an instance carrying it) replaces the whole set
        of its instances; a partial update adds/replaces only the given ones. Writable
        resources absent from an instance-level replace keep their values (a lab simplification
        of "reset", which the digest does not pin down).

        Returns
        -------
        list[Path]
            The resource paths whose value changed.
        """
        p = Path.parse(path)
        self.check_write(p, values, replace=replace)
        inst = self._inst[p.object_id, p.instance_id]  # type: ignore[index]
        changed: dict[Path, None] = {}
        fresh: dict[int, dict[int, Value]] = {}
        for vpath, value in values.items():
            rid = vpath.resource_id
            assert rid is not None
            rpath = Path(vpath.ids[:3])
            if vpath.resource_instance_id is None:
                if inst.get(rid, _MISSING) != value:
                    changed[rpath] = None
                inst[rid] = value
                continue
            if replace:
                fresh.setdefault(rid, {})[vpath.resource_instance_id] = value
            else:
                slot = inst[rid]
                assert isinstance(slot, Multi)
                if slot.get(vpath.resource_instance_id, _MISSING) != value:
                    changed[rpath] = None
                inst[rid] = slot.with_item(vpath.resource_instance_id, value)
        if replace and p.resource_id is not None and self.is_multiple(p):
            fresh.setdefault(p.resource_id, {})  # PUT with no instances empties it
        for rid, new in fresh.items():
            if inst.get(rid) != new:
                changed[p.child(rid) if p.level == 2 else Path(p.ids[:3])] = None
            inst[rid] = _multi(new)
        return list(changed)

    # -- Execute -------------------------------------------------------------------------
    def check_execute(self, path: Path | str) -> ResourceDef:
        """Validate an Execute on ``path``: 4.01 hidden, 4.04 missing, 4.05 not executable."""
        p = Path.parse(path)
        self._locate(p)
        rdef = self.resource_definition(p)
        if p.level != 3 or rdef is None or not rdef.executable:
            raise OperationError.not_allowed(f"{p} is not executable")
        return rdef

    # -- Create / Delete -----------------------------------------------------------------
    def create(
        self, object_id: int, values: Mapping[Path, Value], instance_id: int | None = None
    ) -> int:
        """Create an instance of ``object_id`` from decoded ``values`` (paths ``/O/I/R[/RI]``).

        The instance id comes from the payload paths, else ``instance_id``, else the lowest
        free id. Mandatory executable resources of the definition are added.

        Returns
        -------
        int
            The new instance id.

        Raises
        ------
        OperationError
            4.01 hidden, 4.04 unknown object, 4.05 object not creatable, 4.00 bad paths or
            values, an existing instance id.
        """
        self._locate(Path((object_id,)))
        if object_id not in self.creatable:
            raise OperationError.not_allowed(f"Create in /{object_id}")
        odef = self._defs[object_id]
        ids = {v.instance_id for v in values}
        if len(ids) > 1 or any(v.object_id != object_id or v.level < 3 for v in values):
            raise OperationError.bad_request("Create payload must describe one instance")
        if ids:
            payload_id = ids.pop()
            if instance_id is not None and payload_id != instance_id:
                raise OperationError.bad_request("instance id differs from the payload's")
            instance_id = payload_id
        existing = self.instances(object_id)
        if instance_id is None:
            instance_id = next(i for i in range(len(existing) + 1) if i not in existing)
        if instance_id in existing:
            raise OperationError.bad_request(f"/{object_id}/{instance_id} already exists")
        inst: dict[int, Any] = {
            r.id: None for r in odef.resources.values() if r.executable and r.mandatory
        }
        for vpath, value in values.items():
            rdef = odef.resources.get(vpath.resource_id)  # type: ignore[arg-type]
            if rdef is None:
                raise OperationError.not_found(f"resource {Path(vpath.ids[:3])}")
            if rdef.executable or rdef.multiple != (vpath.level == 4):
                raise OperationError.bad_request(f"{vpath}: wrong level for this resource")
            if not _type_ok(rdef.type, value):
                raise OperationError.bad_request(f"{vpath}: not a {rdef.type.value}")
            if rdef.multiple:
                inst.setdefault(rdef.id, {})[vpath.resource_instance_id] = value
            else:
                inst[rdef.id] = value
        for rid, slot in inst.items():
            if isinstance(slot, dict):
                inst[rid] = _multi(slot)
        self._inst[_key(object_id, instance_id)] = _Instance(inst)
        return instance_id

    def delete(self, path: Path | str) -> None:
        """Delete instance ``/O/I``: 4.05 unless the object is creatable and the instance
        not permanent (and for any other level), 4.04 if missing, 4.01 hidden."""
        p = Path.parse(path)
        if p.is_root:
            raise OperationError.not_allowed("Delete on /")
        self._locate(p)
        if not p.is_instance or p.object_id not in self.creatable or p in self.permanent:
            raise OperationError.not_allowed(f"Delete on {p}")
        oid, iid = p.ids
        del self._inst[oid, iid]
        for apath in [a for a in self._attrs if a.startswith(p)]:
            del self._attrs[apath]

    # -- Write-Attributes ----------------------------------------------------------------
    def write_attributes(self, path: Path | str, query: Iterable[str]) -> Attributes:
        """Write-Attributes (``PUT ?pmin=10&pmax=60``); a name without value removes it.

        Returns
        -------
        Attributes
            The attributes now attached at ``path``.

        Raises
        ------
        OperationError
            4.04 missing path, 4.01 hidden, 4.00 unknown attribute, bad value, gt/lt/st on a
            non-numeric resource or above resource level, or ``lt >= gt`` /
            ``lt + 2*st >= gt`` when set together.
        """
        p = Path.parse(path)
        self._locate(p)
        current = self._attrs.get(p, Attributes())
        changes: dict[str, int | float | None] = {}
        for item in query:
            name, sep, text = item.partition("=")
            if name in _IGNORED_ATTRS:
                continue
            if name not in _ATTR_NAMES:
                raise OperationError.bad_request(f"unknown attribute {name!r}")
            if name in ("gt", "lt", "st"):
                rdef = self.resource_definition(p)
                if p.resource_id is None or rdef is None or rdef.type not in _NUMERIC:
                    raise OperationError.bad_request(f"{name} only applies to numeric resources")
            changes[name] = _parse_attr(name, text) if sep else None
        new = replace(current, **changes)  # type: ignore[arg-type]
        if new.gt is not None and new.lt is not None:
            st = new.st or 0.0
            if not new.lt + 2 * st < new.gt:
                raise OperationError.bad_request("need lt + 2*st < gt")
        if new.empty:
            self._attrs.pop(p, None)
        else:
            if self._attrs is _NO_ATTRS_MAP:
                self._attrs = {}
            self._attrs[p] = new
        return new

    def _attached(self, path: Path) -> Attributes:
        return self._attrs.get(path, _NO_ATTRS)

    def attributes(self, path: Path | str) -> Attributes:
        """Attributes attached exactly at ``path``."""
        return self._attached(Path.parse(path))

    def effective_attributes(self, path: Path | str) -> Attributes:
        """Attributes in force for an observation of ``path``.

        Starts from the server defaults (/1/x/2 Default Minimum Period, /1/x/3 Default Maximum
        Period of the first /1 instance), then applies those attached at the object, instance,
        resource and resource-instance levels, deeper levels winning (digest 5.2).
        """
        p = Path.parse(path)
        servers = self.instances(1)
        eff = _NO_ATTRS
        if servers:
            first = self._inst[1, servers[0]]
            pmin, pmax = first.get(2), first.get(3)
            eff = Attributes(
                pmin=pmin if isinstance(pmin, int) else None,
                pmax=pmax if isinstance(pmax, int) else None,
            )
        if not self._attrs:
            return eff
        for level in range(1, p.level + 1):
            attached = self._attrs.get(Path(p.ids[:level]))
            if attached is not None:
                eff = eff.overridden_by(attached)
        return eff


_MISSING = object()
_NO_ATTRS = Attributes()
_NO_ATTRS_MAP: dict[Path, Attributes] = {}  # never changed: a store makes its own dict
_NO_INSTANCES = _multi({})
_KEYS: dict[tuple[int, int], tuple[int, int]] = {}


def _key(object_id: int, instance_id: int) -> tuple[int, int]:
    """The (shared) key of an instance in a store."""
    key = (object_id, instance_id)
    return _intern(_KEYS, key, key)
