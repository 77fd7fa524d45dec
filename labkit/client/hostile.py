"""Hostile notifications: a seeded scheduler between a device's /5 changes and its Observe pipe.

Real LwM2M clients notify /5/0/3 (State) and /5/0/5 (Update Result) as two observations with
no ordering guarantee: Anjay changes both in one step, Zephyr and Wakaama notify them
separately, some coalesce two changes into one notification, and notifications are CoAP NON
or get lost. A server that takes a verdict from the notifications alone reports results the
device never gave. This module makes a simulated device behave that way on purpose, from a
seed, so tests can compare what the server concluded with what the device did (its own
``fw_history``).

:class:`HostileNotifications` says what may happen (shares in 0..1, drawn per notification):

* ``reorder`` -- the notifications of one change (State and Result together) go out in a
  shuffled order: Result before State or State before Result.
* ``coalesce`` -- a notification is held back briefly; a newer value of the same resource
  that arrives meanwhile replaces it (only the newest is sent).
* ``delay`` -- a notification is held until after the *next* State notification.
* ``drop`` -- a notification is never sent.
* ``repeat`` -- after a notification, an older value of the same resource is sent again:
  with a stale Observe sequence number (``stale_sequence``: RFC 7641 section 3.4 makes the
  receiver discard it) or as a fresh notification carrying an old value.
* ``state_first`` / ``never_result`` -- fixed third-party-like orders: State always before
  Result; Result never notified at all (it must be read).

Only /5/0/3 and /5/0/5 are affected; every other notification passes straight through. What a
device *does* is never changed: only what its observers hear and when. The scheduler owns
no socket; the device hands it a ``send`` callable per notification.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labkit.lwm2m.paths import Path

__all__ = ["HostileNotifications", "NotificationScheduler", "hostile_config", "stale_observe"]

_STATE = Path.of(5, 0, 3)
_RESULT = Path.of(5, 0, 5)
_HOSTILE_PATHS = frozenset({_STATE, _RESULT})

#: ``send(value, stale)``: trigger one notification of ``value`` (the old value of a repeat,
#: or the current one); ``stale=True`` asks for a stale Observe sequence number.
Send = Callable[[Any, bytes, bool], None]


@dataclass(frozen=True, slots=True)
class HostileNotifications:
    """What a hostile device may do to its /5/0/3 and /5/0/5 notifications (see the module).

    ``hold_s`` is how long (wall seconds) a coalesced notification waits for a newer value.
    """

    seed: int = 0
    reorder: float = 0.5
    coalesce: float = 0.15
    delay: float = 0.15
    drop: float = 0.15
    repeat: float = 0.15
    stale_sequence: float = 0.5
    state_first: bool = False
    never_result: bool = False
    hold_s: float = 0.05

    def __post_init__(self) -> None:
        for name in ("reorder", "coalesce", "delay", "drop", "repeat", "stale_sequence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a share in 0..1, not {value!r}")
        if self.hold_s < 0:
            raise ValueError(f"hold_s must be >= 0, not {self.hold_s!r}")

    @classmethod
    def notifying_state_before_result(cls, seed: int = 0) -> HostileNotifications:
        """State always first, then Result, nothing lost (a Zephyr/Wakaama-like order)."""
        return cls(
            seed, reorder=0, coalesce=0, delay=0, drop=0, repeat=0, state_first=True
        )

    @classmethod
    def never_notifying_result(cls, seed: int = 0) -> HostileNotifications:
        """State notified, Result never (it has to be read)."""
        return cls(seed, reorder=0, coalesce=0, delay=0, drop=0, repeat=0, never_result=True)


def hostile_config(value: HostileNotifications | int | bool | None) -> HostileNotifications | None:
    """``SimulatedDevice(hostile_notifications=...)``: a config, a seed (default shares), or
    None/False for an honest device."""
    if value is None or value is False:
        return None
    if isinstance(value, HostileNotifications):
        return value
    if value is True:
        return HostileNotifications()
    if isinstance(value, int):
        return HostileNotifications(seed=value)
    raise TypeError(
        f"hostile_notifications must be a HostileNotifications or a seed, not {value!r}"
    )


def stale_observe(message: Any, number: int = 0) -> Any:
    """Make ``message`` go out with Observe sequence number ``number`` whatever aiocoap assigns.

    aiocoap numbers a resource's notifications itself (0, 1, 2 ...); a repeat with a stale
    number needs the option pinned. The message's options become an instance of a subclass
    whose ``observe`` setter keeps ``number``; nothing else changes.
    """
    base = type(message.opt)
    prop = base.observe

    class _PinnedObserve(base):  # type: ignore[misc, valid-type]
        __slots__ = ()

        @property
        def observe(self) -> Any:
            return prop.fget(self)

        @observe.setter
        def observe(self, _value: Any) -> None:
            prop.fset(self, number)

    message.opt.__class__ = _PinnedObserve
    message.opt.observe = number
    return message


@dataclass(slots=True)
class _Item:
    key: object  # the observation (one per observer and path)
    path: Path
    value: Any
    payload: bytes
    send: Send


class NotificationScheduler:
    """Decides, from its seed, when (and whether) each /5 notification of one device goes out.

    The device calls :meth:`offer` where it would trigger a notification; the scheduler calls
    the item's ``send`` now, later, twice or never. :meth:`forget` drops everything held for
    an observation that ended (a reboot drops them all: :meth:`clear`).
    """

    def __init__(self, config: HostileNotifications) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._batch: list[_Item] = []
        self._delayed: list[_Item] = []
        self._coalescing: dict[tuple[int, Path], _Item] = {}
        self._sent: dict[tuple[int, Path], list[tuple[Any, bytes]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: What happened to each offered notification: (path, value, what) with ``what`` one
        #: of "sent", "dropped", "delayed", "coalesced", "repeated", "repeated-stale",
        #: "withheld" (never_result).
        self.log: list[tuple[str, Any, str]] = []

    @staticmethod
    def affects(path: Path) -> bool:
        return path in _HOSTILE_PATHS

    def offer(self, key: object, path: Path, value: Any, payload: bytes, send: Send) -> None:
        """A notification the device would send now."""
        item = _Item(key, path, value, payload, send)
        if self.config.never_result and path == _RESULT:
            self.log.append((str(path), value, "withheld"))
            return
        first = not self._batch
        self._batch.append(item)
        if first:
            # everything one change produces arrives in the same loop iteration: release it
            # together, in the order the scheduler picks
            asyncio.get_running_loop().call_soon(self._release)

    def clear(self) -> None:
        """Forget everything held (the device rebooted or stopped)."""
        self._batch.clear()
        self._delayed.clear()
        self._coalescing.clear()
        self._sent.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def forget(self, key: object) -> None:
        """Drop what is held for one ended observation."""
        self._batch = [i for i in self._batch if i.key is not key]
        self._delayed = [i for i in self._delayed if i.key is not key]
        for k in [k for k, i in self._coalescing.items() if i.key is key]:
            del self._coalescing[k]

    # -- internals -------------------------------------------------------------------------
    def _release(self) -> None:
        batch, self._batch = self._batch, []
        cfg, rng = self.config, self._rng
        if cfg.state_first:
            batch.sort(key=lambda i: 0 if i.path == _STATE else 1)
        elif len(batch) > 1 and rng.random() < cfg.reorder:
            rng.shuffle(batch)
        for item in batch:
            slot = (id(item.key), item.path)
            held = self._coalescing.pop(slot, None)
            if held is not None:
                self.log.append((str(held.path), held.value, "coalesced"))
            draw = rng.random()
            if draw < cfg.drop:
                self.log.append((str(item.path), item.value, "dropped"))
                continue
            draw -= cfg.drop
            if draw < cfg.delay:
                self.log.append((str(item.path), item.value, "delayed"))
                self._delayed.append(item)
                continue
            draw -= cfg.delay
            if draw < cfg.coalesce:
                self._coalescing[slot] = item
                self._arm_hold()
                continue
            self._send(item)

    def _arm_hold(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.config.hold_s, self._flush_held)

    def _flush_held(self) -> None:
        self._timer = None
        held, self._coalescing = list(self._coalescing.values()), {}
        for item in held:
            self._send(item)

    def _send(self, item: _Item) -> None:
        slot = (id(item.key), item.path)
        item.send(item.value, item.payload, False)
        self.log.append((str(item.path), item.value, "sent"))
        history = self._sent.setdefault(slot, [])
        older = [h for h in history if h[0] != item.value]
        history.append((item.value, item.payload))
        del history[:-8]
        if item.path == _STATE and self._delayed:
            delayed, self._delayed = self._delayed, []
            for d in delayed:
                self._send(d)
        if older and self._rng.random() < self.config.repeat:
            value, payload = self._rng.choice(older)
            stale = self._rng.random() < self.config.stale_sequence
            item.send(value, payload, stale)
            self.log.append(
                (str(item.path), value, "repeated-stale" if stale else "repeated")
            )
