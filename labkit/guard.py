"""The lab's guard in front of aiocoap: datagrams checked before aiocoap parses them, Block1
reassembly bounded, the de-duplication cache bounded.

Every UDP socket the lab binds (:func:`labkit.coap.open_udp_context`) hands its datagrams to
:class:`GuardedUDP6` first. It does what RFC 7252 asks and aiocoap 0.4.17 does not (the
upstream findings are listed in the README):

* a datagram larger than the receive buffer (aiocoap reads 4,096 bytes and does not look at
  ``MSG_TRUNC``) is refused: a request with 4.13 Request Entity Too Large and Size1, anything
  else dropped -- never processed cut short;
* message format errors (RFC 7252 section 3: token length 9-15, a payload marker with no
  payload, an option with the reserved nibble 15, options running past the end, an Empty
  message with a token or options) reject a CON with RST and drop anything else;
* an unrecognised critical option (odd number) in a CON request is answered 4.02 Bad Option
  (section 5.4.1); in a NON request, or in a response, the message is rejected;
* a string option (Uri-Path, Uri-Query, ...) that is not UTF-8 is answered 4.00 in a request
  (aiocoap raises ``UnicodeDecodeError`` out of its datagram callback: a traceback per datagram
  and no answer) and rejected in a response.

:func:`inspect` is the pure check (bytes in, verdict out); the protocol class sends what it
says. Anything aiocoap still raises on a datagram is logged (rate-limited) instead of reaching
the event loop's handler.

:class:`BoundedBlock1Spool` replaces aiocoap's ``Block1Spool`` on the lab's resources: a
request body reassembled from Block1 blocks is limited per path (4.13 with Size1 as soon as
the next block would pass the limit), a gap or a block that does not continue the assembly is
4.08 Request Entity Incomplete (aiocoap raised ``ValueError``: 5.00), and at most
``max_assemblies`` are kept at a time (the oldest is dropped).

:class:`RecentExchanges` replaces aiocoap's message de-duplication cache (one timer and one
stored response per request for EXCHANGE_LIFETIME, 247 s, without any bound) with one that
holds at most ``capacity`` entries and expires them lazily.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiocoap
from aiocoap import error as coap_error
from aiocoap.blockwise import Block1Spool, IncompleteException
from aiocoap.transports.udp6 import MessageInterfaceUDP6

__all__ = [
    "MAX_DATAGRAM",
    "BoundedBlock1Spool",
    "GuardedUDP6",
    "RateLimitedLog",
    "RecentExchanges",
    "Verdict",
    "inspect",
]

log = logging.getLogger("labkit.guard")

#: aiocoap's receive buffer (``RecvmsgSelectorDatagramTransport.max_size``): a datagram larger
#: than this arrives cut; the guard refuses it instead.
MAX_DATAGRAM = 4096

#: option numbers the lab's stack understands (RFC 7252, 7641, 7959, 8613, 7967, 9175)
KNOWN_OPTIONS = frozenset(
    {1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60, 252, 258, 292}
)
#: options whose value is a UTF-8 string (RFC 7252 section 5.10)
STRING_OPTIONS = frozenset({3, 8, 11, 15, 20, 35, 39})
SIZE1 = 60

CON, NON, ACK, RST = 0, 1, 2, 3


@dataclass(frozen=True)
class Verdict:
    """What to do with a datagram that is not handed to aiocoap.

    ``action`` is ``"drop"`` (silently ignore), ``"reset"`` (send RST) or ``"answer"`` (send
    ``code`` as a response to the request, with ``size1`` if given); ``reason`` says why.
    """

    action: str
    reason: str
    code: int = 0
    size1: int | None = None


def _options(data: bytes, start: int) -> Iterator[tuple[int, bytes] | str]:
    """Yield (number, value) per option, then ``"payload"``/``"end"``; a str error on failure."""
    pos, number = start, 0
    n = len(data)
    while pos < n:
        byte = data[pos]
        if byte == 0xFF:
            yield "payload" if pos + 1 < n else "error: payload marker with an empty payload"
            return
        pos += 1
        delta, length = byte >> 4, byte & 0x0F
        values = []
        for nibble in (delta, length):
            if nibble == 13:
                if pos >= n:
                    yield "error: option header runs past the end"
                    return
                values.append(data[pos] + 13)
                pos += 1
            elif nibble == 14:
                if pos + 2 > n:
                    yield "error: option header runs past the end"
                    return
                values.append(struct.unpack_from("!H", data, pos)[0] + 269)
                pos += 2
            elif nibble == 15:
                yield "error: reserved option nibble 15"
                return
            else:
                values.append(nibble)
        number += values[0]
        if pos + values[1] > n:
            yield "error: option value runs past the end"
            return
        yield number, data[pos : pos + values[1]]
        pos += values[1]
    yield "end"


def inspect(data: bytes, *, truncated: bool = False, limit: int = MAX_DATAGRAM) -> Verdict | None:
    """Check one datagram; None means "hand it to aiocoap", else what to do instead."""
    if len(data) < 4:
        return Verdict("drop", "shorter than a CoAP header")
    first, code = data[0], data[1]
    if first >> 6 != 1:
        return Verdict("drop", f"CoAP version {first >> 6}")
    mtype, tkl = (first >> 4) & 0x03, first & 0x0F
    reject = Verdict("reset", "") if mtype == CON else Verdict("drop", "")

    def rejected(reason: str) -> Verdict:
        return Verdict(reject.action, reason)

    if tkl > 8:
        return rejected(f"token length {tkl} (9-15 are reserved)")
    is_request = 1 <= code <= 31
    if truncated or len(data) > limit:
        if is_request and mtype in (CON, NON):
            return Verdict("answer", f"datagram larger than {limit} bytes", 0x8D, size1=limit)
        return rejected(f"datagram larger than {limit} bytes")
    if code == 0:
        if len(data) > 4 or tkl:
            return rejected("Empty message with a token, options or payload")
        return None
    if code >> 5 in (1, 6, 7):
        return rejected(f"reserved code class {code >> 5}")
    if len(data) < 4 + tkl:
        return rejected("token runs past the end")
    bad_utf8: str | None = None
    bad_critical: int | None = None
    for item in _options(data, 4 + tkl):
        if isinstance(item, str):
            if item.startswith("error"):
                return rejected(item[7:])
            break
        number, value = item
        if number not in KNOWN_OPTIONS and number & 1 and bad_critical is None:
            bad_critical = number
        if number in STRING_OPTIONS and bad_utf8 is None:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                bad_utf8 = f"option {number} is not UTF-8"
    if bad_critical is not None:
        reason = f"unrecognised critical option {bad_critical}"
        if is_request and mtype == CON:
            return Verdict("answer", reason, 0x82)  # 4.02 Bad Option
        return rejected(reason)
    if bad_utf8 is not None:
        if is_request and mtype in (CON, NON):
            return Verdict("answer", bad_utf8, 0x80)  # 4.00 Bad Request
        return rejected(bad_utf8)
    return None


def _encode_size1(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big").lstrip(b"\0")
    # option 60 after option 0: delta 60 = 13 + 47
    return bytes([(13 << 4) | len(raw), 60 - 13]) + raw


def reply_bytes(data: bytes, verdict: Verdict) -> bytes | None:
    """The datagram answering ``data`` as ``verdict`` says (None: send nothing)."""
    if verdict.action == "drop":
        return None
    mid = data[2:4]
    if verdict.action == "reset":
        return bytes([0x40 | (RST << 4), 0]) + mid
    mtype, tkl = (data[0] >> 4) & 0x03, data[0] & 0x0F
    token = data[4 : 4 + tkl]
    if mtype == CON:
        head = bytes([0x40 | (ACK << 4) | len(token), verdict.code]) + mid
    else:
        head = bytes([0x40 | (NON << 4) | len(token), verdict.code]) + os.urandom(2)
    opts = _encode_size1(verdict.size1) if verdict.size1 is not None else b""
    return head + token + opts + b"\xff" + verdict.reason.encode()[:120]


RejectHook = Callable[[str, Any, str], None]


class RateLimitedLog:
    """At most one log line per ``every`` seconds; the lines in between are counted."""

    def __init__(self, every: float = 10.0, logger: logging.Logger | None = None) -> None:
        self.every = every
        self.log = logger or log
        self._last = -1e9
        self.suppressed = 0

    def __call__(self, level: int, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            if self.suppressed:
                msg += f" ({self.suppressed} more since the last line)"
            self.log.log(level, msg, *args)
            self._last, self.suppressed = now, 0
        else:
            self.suppressed += 1


class GuardedUDP6(MessageInterfaceUDP6):  # type: ignore[misc]
    """aiocoap's udp6 message interface with :func:`inspect` in front of its parser."""

    on_reject: RejectHook | None = None
    rejected = 0
    #: refusals reported to ``on_reject`` per second at most (the rest are counted)
    EVENTS_PER_SECOND = 20

    def datagram_msg_received(self, data: bytes, ancdata: Any, flags: int, address: Any) -> None:
        verdict = inspect(data, truncated=bool(flags & socket.MSG_TRUNC))
        if verdict is not None:
            self._reject(data, ancdata, address, verdict)
            return
        try:
            super().datagram_msg_received(data, ancdata, flags, address)
        except asyncio.InvalidStateError:
            # aiocoap #210: a late response to a request that already timed out; harmless
            log.debug("late CoAP response from %s ignored", address)
        except Exception as exc:  # aiocoap already logged it; keep serving
            self._reject(data, ancdata, address, Verdict("drop", f"aiocoap raised {exc!r}"))

    def _reject(self, data: bytes, ancdata: Any, address: Any, verdict: Verdict) -> None:
        self.rejected += 1
        limiter = self.__dict__.setdefault("_limiter", RateLimitedLog())
        limiter(
            logging.WARNING,
            "refused a datagram from %s: %s (%s)",
            address,
            verdict.reason,
            verdict.action,
        )
        reply = reply_bytes(data, verdict)
        if reply is not None and self.transport is not None:
            anc = [
                (lvl, typ, val)
                for lvl, typ, val in ancdata
                if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO
            ]
            self.transport.sendmsg(reply, anc, 0, address)
        hook = self.on_reject
        if hook is not None:
            # a flood must not become a flood of events: at most EVENTS_PER_SECOND are
            # reported, the others counted into the next one
            now = time.monotonic()
            window, told, quiet = self.__dict__.get("_events", (0.0, 0, 0))
            if now - window >= 1.0:
                window, told = now, 0
            if told >= self.EVENTS_PER_SECOND:
                self._events = (window, told, quiet + 1)
                return
            self._events = (window, told + 1, 0)
            reason = verdict.reason + (f" (and {quiet} more refused)" if quiet else "")
            code = (
                "" if verdict.action != "answer" else f"{verdict.code >> 5}.{verdict.code & 31:02d}"
            )
            try:
                hook(code or verdict.action.upper(), address, reason)
            except Exception:  # a hook must never stop the socket
                log.exception("reject hook failed")


class RecentExchanges:
    """aiocoap's ``MessageManager._recent_messages`` with a bound and lazy expiry.

    Keys are (remote, message id); values the stored response (or None). Entries live for
    ``lifetime`` seconds (EXCHANGE_LIFETIME) or until ``capacity`` newer ones pushed them out.
    """

    def __init__(self, capacity: int, lifetime: float, clock: Callable[[], float]) -> None:
        self.capacity, self.lifetime, self.clock = capacity, lifetime, clock
        self._d: OrderedDict[Any, list[Any]] = OrderedDict()

    def _expire(self) -> None:
        now = self.clock()
        d = self._d
        while d:
            expires = next(iter(d.values()))[0]
            if expires > now and len(d) <= self.capacity:
                break
            d.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __getitem__(self, key: Any) -> Any:
        return self._d[key][1]

    def __setitem__(self, key: Any, value: Any) -> None:
        entry = self._d.get(key)
        if entry is not None:
            entry[1] = value
            return
        self._d[key] = [self.clock() + self.lifetime, value]
        self._expire()

    def pop(self, key: Any, default: Any = None) -> Any:
        entry = self._d.pop(key, None)
        return default if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._d)


def bound_deduplication(mman: Any, capacity: int = 2048) -> None:
    """Give an aiocoap MessageManager a bounded de-duplication cache (no timer per message)."""
    loop = mman.loop
    lifetime = aiocoap.numbers.constants.TransportTuning().EXCHANGE_LIFETIME
    recent = RecentExchanges(capacity, lifetime, loop.time)
    mman._recent_messages = recent

    def deduplicate(message: aiocoap.Message) -> bool:
        key = (message.remote, message.mid)
        if key in recent:
            stored = recent[key]
            if message.mtype is aiocoap.CON and stored is not None:
                mman._send_initially(stored)
            return True
        recent[key] = None
        return False

    mman._deduplicate_message = deduplicate


class _TooLarge(coap_error.ConstructionRenderableError):  # type: ignore[misc]
    code = aiocoap.REQUEST_ENTITY_TOO_LARGE

    def __init__(self, limit: int, path: str) -> None:
        super().__init__(f"request body on {path} larger than {limit} bytes")
        self.limit = limit

    def to_message(self) -> aiocoap.Message:
        msg = super().to_message()
        msg.opt.size1 = self.limit
        return msg


class BoundedBlock1Spool(Block1Spool):  # type: ignore[misc]
    """aiocoap's Block1 reassembly with a size limit per path, 4.08 on gaps, bounded count.

    ``limit_for(path)`` gives the largest body accepted on ``path`` (a tuple of Uri-Path
    segments). ``on_refuse(code, request, detail)`` is told of every refusal.
    """

    def __init__(
        self,
        limit_for: Callable[[tuple[str, ...]], int],
        *,
        max_assemblies: int = 256,
        on_refuse: Callable[[str, aiocoap.Message, str], None] | None = None,
    ) -> None:
        super().__init__()
        self.limit_for = limit_for
        self.max_assemblies = max_assemblies
        self.on_refuse = on_refuse

    def _refuse(self, code: str, req: aiocoap.Message, detail: str) -> None:
        if self.on_refuse is not None:
            try:
                self.on_refuse(code, req, detail)
            except Exception:
                log.exception("refuse hook failed")

    def feed_and_take(self, req: aiocoap.Message) -> aiocoap.Message:
        path = tuple(req.opt.uri_path)
        limit = self.limit_for(path)
        text = "/" + "/".join(path)
        size1 = req.opt.size1
        block1 = req.opt.block1
        if block1 is None:
            if len(req.payload) > limit or (size1 is not None and size1 > limit):
                self._refuse("4.13", req, f"{len(req.payload)} bytes on {text}")
                raise _TooLarge(limit, text)
            return req
        if block1.start + len(req.payload) > limit or (size1 is not None and size1 > limit):
            self._refuse("4.13", req, f"Block1 past {limit} bytes on {text}")
            raise _TooLarge(limit, text)
        assemblies = self._assemblies
        items = getattr(assemblies, "_items", None)
        if block1.block_number == 0 and isinstance(items, dict):
            while len(items) >= self.max_assemblies:
                items.pop(next(iter(items)))
        try:
            return super().feed_and_take(req)
        except ValueError:  # aiocoap: a gap or overlap ("possible extension point")
            self._refuse("4.08", req, f"Block1 block {block1.block_number} does not continue")
            raise IncompleteException from None
        except IncompleteException:
            self._refuse("4.08", req, f"Block1 block {block1.block_number} without block 0")
            raise


#: the largest request body the server reassembles from Block1 (/rd, /rd/{id}, /dp)
SERVER_BODY_LIMIT = 64 * 1024
#: the largest Write a simulated device reassembles (/5/0/0 is streamed, not reassembled)
DEVICE_BODY_LIMIT = 64 * 1024
#: /5/0/1 Package URI: a String of 0-255 bytes (OMA Object 5)
PACKAGE_URI_LIMIT = 255


def server_body_limit(path: tuple[str, ...]) -> int:
    """Body limit of the LwM2M server's resources."""
    return SERVER_BODY_LIMIT


def device_body_limit(path: tuple[str, ...]) -> int:
    """Body limit of a simulated device's resources."""
    if path == ("5", "0", "1"):
        return PACKAGE_URI_LIMIT
    return DEVICE_BODY_LIMIT
