"""The server's registration store: who is registered, until when, and from where.

This module owns the bookkeeping of the Client Registration Interface (digest section 4) on the
server side: :class:`Registration` records, their lifetime arithmetic given ``now``, the
replacement of a registration when its endpoint registers again, and the computation of which
registrations have expired. It never touches a socket, a clock or the event loop: the adapter
in :mod:`labkit.server.server` parses requests with :mod:`labkit.lwm2m.registration`, passes
the parsed request, the peer's address object and ``now`` in, and turns what comes back into
CoAP answers and events.

Registration ids are short opaque strings from a counter (``"1"``, ``"2"``, ...), like
Wakaama's numeric ``/rd/<n>``; they are never reused within one server's life, so a client
holding a stale location gets 4.04 and registers again (digest 4.2, pitfall 20).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.lwm2m.registration import (
        ObjectAnnouncement,
        RegisterRequest,
        UpdateRequest,
    )

__all__ = ["Registration", "Registry", "UnknownRegistration"]


class UnknownRegistration(KeyError):
    """An Update or De-register named a registration id the store does not hold (4.04)."""

    coap_code = "4.04"


@dataclass(eq=False)
class Registration:
    """One current registration of an LwM2M client.

    The record is owned by the :class:`Registry`, which updates it in place on an Update;
    treat it as read-only elsewhere. Times are seconds in the server's clock.

    Attributes
    ----------
    endpoint, reg_id, location:
        Endpoint Client Name, the opaque registration id and its location (``/rd/<id>``).
    lifetime, lwm2m_version, binding, queue_mode, sms:
        From the latest Register/Update (``lt``, ``lwm2m``, ``b``, ``Q``, ``sms``).
    objects:
        Object id -> announcement (version and instances) from the latest link payload.
    root_path, content_formats:
        Alternate root (``</>;rt="oma.lwm2m"``) and the ``ct`` formats it lists, if any.
    extra:
        Unknown query parameters of the Register, kept as Leshan's "additional attributes".
    registered_at, updated_at, expires_at:
        When the Register and the latest Register/Update arrived, and ``updated_at + lifetime``
        (infinity for a lifetime of 0, which LwM2M 1.2 defines as "never expires").
    remote:
        The transport's peer object of the latest Register/Update (aiocoap's endpoint
        address); requests to the device go there, through the socket it registered to.
    address:
        ``(host, port)`` of that peer, for display.
    """

    endpoint: str
    reg_id: str
    lifetime: int
    lwm2m_version: str
    binding: str
    queue_mode: bool
    sms: str | None
    objects: Mapping[int, ObjectAnnouncement]
    root_path: Any
    content_formats: tuple[int, ...]
    registered_at: float
    updated_at: float
    expires_at: float
    remote: Any = None
    address: tuple[str, int] | None = None
    extra: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """The registration's location path, ``/rd/<id>``."""
        return f"/rd/{self.reg_id}"

    def expired(self, now: float) -> bool:
        """True when the lifetime ran out before ``now`` without an Update."""
        return now > self.expires_at

    def remaining(self, now: float) -> float:
        """Seconds of lifetime left at ``now`` (negative once expired)."""
        return self.expires_at - now

    def __repr__(self) -> str:
        addr = f"{self.address[0]}:{self.address[1]}" if self.address else "?"
        return (
            f"Registration(endpoint={self.endpoint!r}, location={self.location!r}, "
            f"lwm2m={self.lwm2m_version}, b={self.binding}{', Q' if self.queue_mode else ''}, "
            f"lt={self.lifetime}, address={addr})"
        )

    def _repr_html_(self) -> str:
        from html import escape

        objs = ", ".join(f"/{oid}" for oid in sorted(self.objects))
        addr = f"{self.address[0]}:{self.address[1]}" if self.address else "?"
        rows = [
            ("endpoint", self.endpoint),
            ("location", self.location),
            ("LwM2M", self.lwm2m_version),
            ("binding", self.binding + (" (queue mode)" if self.queue_mode else "")),
            ("lifetime", f"{self.lifetime} s"),
            ("address", addr),
            ("objects", objs),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table>{body}</table>"


def _expiry(now: float, lifetime: int) -> float:
    # LwM2M 1.2 (/1 obj 1.2): a lifetime of 0 means the registration never expires.
    return math.inf if lifetime == 0 else now + lifetime


_OBJECT_MAPS: dict[tuple[tuple[int, ObjectAnnouncement], ...], dict[int, ObjectAnnouncement]] = {}


def _shared_objects(
    objects: Mapping[int, ObjectAnnouncement],
) -> Mapping[int, ObjectAnnouncement]:
    """One dict of each distinct announcement for every registration (a fleet announces the
    same objects; a record is read-only outside the registry, which replaces, never changes,
    it). Bounded: past 4096 distinct ones each registration keeps its own."""
    key = tuple(objects.items())
    try:
        found = _OBJECT_MAPS.get(key)
    except TypeError:  # an unhashable announcement (not one the codec makes)
        return dict(objects)
    if found is None:
        found = dict(objects)
        if len(_OBJECT_MAPS) < 4096:
            _OBJECT_MAPS[key] = found
    return found


def _content_formats(value: Any) -> tuple[int, ...]:
    if not value:
        return ()
    return tuple(int(v) for v in value)


class Registry:
    """The set of current registrations, indexed by endpoint name and by registration id.

    Every method that changes the store takes ``now`` (seconds in the server's clock); none
    reads a clock itself.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Registration] = {}
        self._by_endpoint: dict[str, Registration] = {}
        self._counter = 0
        # (expires_at, reg_id) of every registration and Update, earliest first; entries of
        # registrations that were updated or removed since are skipped when they reach the
        # top. The expiry sweep then costs O(log n) per registration event instead of O(n)
        # per sweep (10,000 devices, a sweep every second of a simulated day).
        self._deadlines: list[tuple[float, int]] = []

    def _schedule(self, reg: Registration) -> None:
        heapq.heappush(self._deadlines, (reg.expires_at, int(reg.reg_id)))

    def _live(self, expires_at: float, reg_id: int) -> Registration | None:
        reg = self._by_id.get(str(reg_id))
        return reg if reg is not None and reg.expires_at == expires_at else None

    # -- queries ---------------------------------------------------------------------------
    @property
    def by_endpoint(self) -> Mapping[str, Registration]:
        """Read-only live view: endpoint name -> current registration."""
        return MappingProxyType(self._by_endpoint)

    def get(self, endpoint: str) -> Registration | None:
        return self._by_endpoint.get(endpoint)

    def by_id(self, reg_id: str) -> Registration | None:
        return self._by_id.get(reg_id)

    def __iter__(self) -> Iterator[Registration]:
        return iter(list(self._by_endpoint.values()))

    def __len__(self) -> int:
        return len(self._by_endpoint)

    def __contains__(self, endpoint: object) -> bool:
        return endpoint in self._by_endpoint

    def next_expiry(self) -> float | None:
        """The earliest ``expires_at`` of all registrations, or None when empty."""
        heap = self._deadlines
        while heap and self._live(*heap[0]) is None:
            heapq.heappop(heap)  # updated or removed since
        return heap[0][0] if heap else None

    def expired(self, now: float) -> list[Registration]:
        """Registrations whose lifetime ran out before ``now``, earliest first (the store is
        not changed)."""
        heap = self._deadlines
        found: list[tuple[float, int]] = []
        while heap and heap[0][0] < now:
            entry = heapq.heappop(heap)
            if self._live(*entry) is not None:
                found.append(entry)
        for entry in found:
            heapq.heappush(heap, entry)
        gone = [self._by_id[str(reg_id)] for _, reg_id in found]
        return [r for r in gone if r.expired(now)]

    # -- changes ---------------------------------------------------------------------------
    def register(
        self,
        req: RegisterRequest,
        *,
        now: float,
        remote: Any = None,
        address: tuple[str, int] | None = None,
    ) -> tuple[Registration, Registration | None]:
        """Store a new registration for ``req.endpoint``.

        Returns
        -------
        (Registration, Registration or None)
            The new registration and the one it replaced, if the endpoint was registered
            already (a re-registration replaces the old one; digest 4.1, Leshan behaviour).
        """
        old = self._by_endpoint.pop(req.endpoint, None)
        if old is not None:
            self._by_id.pop(old.reg_id, None)
        self._counter += 1
        reg = Registration(
            endpoint=req.endpoint,
            reg_id=str(self._counter),
            lifetime=int(req.lifetime),
            lwm2m_version=str(req.lwm2m_version),
            binding=str(req.binding),
            queue_mode=bool(req.queue_mode),
            sms=req.sms,
            objects=_shared_objects(req.objects),
            root_path=req.root_path,
            content_formats=_content_formats(req.content_formats),
            registered_at=now,
            updated_at=now,
            expires_at=_expiry(now, int(req.lifetime)),
            remote=remote,
            address=address,
            extra=dict(req.extra or {}),
        )
        self._by_id[reg.reg_id] = reg
        self._by_endpoint[reg.endpoint] = reg
        self._schedule(reg)
        return reg, old

    def update(
        self,
        reg_id: str,
        upd: UpdateRequest,
        *,
        now: float,
        remote: Any = None,
        address: tuple[str, int] | None = None,
    ) -> Registration:
        """Apply an Update: refresh the peer address and the lifetime, take new parameters.

        Raises
        ------
        UnknownRegistration
            When ``reg_id`` is not a current registration (answer 4.04; the client must
            register again).
        """
        reg = self._by_id.get(reg_id)
        if reg is None:
            raise UnknownRegistration(reg_id)
        if upd.lifetime is not None:
            reg.lifetime = int(upd.lifetime)
        if upd.binding is not None:
            reg.binding = str(upd.binding)
        if upd.sms is not None:
            reg.sms = upd.sms
        if upd.queue_mode is not None:
            reg.queue_mode = bool(upd.queue_mode)
        if upd.objects is not None:
            reg.objects = _shared_objects(upd.objects)
        if remote is not None:
            reg.remote = remote
        if address is not None:
            reg.address = address
        reg.updated_at = now
        reg.expires_at = _expiry(now, reg.lifetime)
        self._schedule(reg)
        return reg

    def deregister(self, reg_id: str) -> Registration:
        """Remove a registration by id (De-register).

        Raises
        ------
        UnknownRegistration
            When ``reg_id`` is not a current registration (answer 4.04).
        """
        reg = self._by_id.pop(reg_id, None)
        if reg is None:
            raise UnknownRegistration(reg_id)
        if self._by_endpoint.get(reg.endpoint) is reg:
            del self._by_endpoint[reg.endpoint]
        return reg

    def expire(self, now: float) -> list[Registration]:
        """Remove and return every registration whose lifetime ran out before ``now``."""
        gone = self.expired(now)
        for reg in gone:
            self.deregister(reg.reg_id)
        return gone
