"""The lab's event rows, as produced by the server, the devices, the repository and the policy.

One :class:`Event` is one row of the run's event table (DESIGN.md section 4). Producers create
events and hand them to an :class:`EventSink` (any callable taking an event); the recorder in
:mod:`labkit.record` turns them into a typed DataFrame and writes them to disk. This module only
defines the row; it never stores or writes anything.

Timestamps are seconds since the Unix epoch (float) in the lab's clock, which is simulated
time when the lab runs time-scaled; the recorder converts them to ``datetime64[us, UTC]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

#: Which part of the lab observed the event.
SOURCES = ("server", "device", "repo", "policy", "campaign", "import", "lab", "bootstrap")

#: What happened. Producers must use one of these names.
KINDS = (
    "registered",  # a Register was accepted (server) or answered 2.01 (device)
    "reg_updated",  # a registration Update
    "deregistered",  # De-register, or the server dropped an expired registration
    "reg_expired",  # the server dropped a registration whose lifetime ran out
    "fw_state",  # /5/0/3 State value seen or set (``state`` column)
    "fw_result",  # /5/0/5 Update Result value seen or set (``result`` column)
    "fw_version",  # /3/0/3 Firmware Version seen (``fw_version`` column)
    "link",  # a /4 link sample (``rssi_dbm``, ``link_quality``)
    "decision",  # a PUSH-decision policy's output (``decision``, ``reason``)
    "block",  # one block of a block-wise transfer sent or received
    "request",  # a CoAP request sent (server) or received (device)
    "response",  # the response to a request (``code``, ``rtt_ms``)
    "notify",  # an Observe notification
    "send",  # an LwM2M Send (POST /dp) received
    "reboot",  # a device rebooted (power cycle, update)
    "campaign",  # campaign life cycle (waves, pause, stop)
    "fault",  # a fault was injected or struck
    "error",  # bad input answered with a 4.xx, or a failure of the lab itself
    "note",  # free text
    "security",  # a DTLS handshake succeeded or failed (``reason``: ok, unknown_identity, ...)
    "bootstrap",  # an LwM2M Bootstrap exchange (``method``: the operation, ``path``)
    "verdict",  # the orchestrator's final verdict: state, result, reason = their provenance
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One row of the event table. Only ``ts``, ``source`` and ``kind`` are required."""

    ts: float
    source: str
    kind: str
    device: str | None = None
    state: int | None = None  # /5/0/3, 0..3
    result: int | None = None  # /5/0/5, 0..11
    rssi_dbm: int | None = None  # /4/0/2
    link_quality: int | None = None  # /4/0/3
    battery: int | None = None  # /3/0/9
    decision: str | None = None  # push / wait / pull / give_up
    reason: str | None = None
    method: str | None = None  # push / pull, or the CoAP method of a request
    protocol: str | None = None  # coap / http
    path: str | None = None  # LwM2M path or URI path
    code: str | None = None  # CoAP response code "2.05", HTTP status "206"
    rtt_ms: float | None = None
    bytes: int | None = None
    block: int | None = None
    fw_version: str | None = None
    detail: str | None = None  # anything else, human-readable
    wave: int | None = None  # campaign wave the device belongs to (0 = canary), when known

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown event source {self.source!r}; one of {SOURCES}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; one of {KINDS}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Event))


def _quick_init() -> Callable[..., None]:
    """``Event.__init__`` with the same parameters, defaults and checks as the one dataclasses
    writes, setting each field through its slot directly.

    A frozen dataclass's ``__init__`` looks up ``object.__setattr__`` once per field (21 per
    event); a virtual fleet makes an event for every block and request of every device, so
    this one binds each slot's setter once, here.
    """
    required = [f.name for f in fields(Event) if f.default is MISSING]
    if any(f.default is not None for f in fields(Event) if f.name not in required):
        raise TypeError("Event fields other than ts, source, kind must default to None")
    params = ", ".join(n if n in required else f"{n}=None" for n in EVENT_FIELDS)
    body = "".join(f"    _set_{n}(self, {n})\n" for n in EVENT_FIELDS)
    source = f"def __init__(self, *, {params}):\n{body}    self.__post_init__()\n"
    scope: dict[str, Any] = {f"_set_{n}": Event.__dict__[n].__set__ for n in EVENT_FIELDS}
    exec(source, scope)  # our own text, built from the field names above
    init: Callable[..., None] = scope["__init__"]
    init.__qualname__ = "Event.__init__"
    init.__module__ = __name__
    return init


Event.__init__ = _quick_init()  # type: ignore[method-assign]

#: Anything that accepts events: a recorder, ``list.append``, a print function.
EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """An :data:`EventSink` that drops every event."""
