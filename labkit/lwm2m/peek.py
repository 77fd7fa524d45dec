"""Which LwM2M object a CoAP datagram can read, told from its first bytes without decoding it.

This module owns one question the link emulator asks of every datagram it delivers to a
simulated device: *can this datagram make the device read object N?* (the emulator refreshes
the device's /4 Connectivity Monitoring values from its link trace only before datagrams that
can read /4: :class:`labkit.linkem.LinkRelay`). The answer comes from the CoAP header and the
options up to the first Uri-Path (RFC 7252 section 3 and 3.1): the version/type/token-length
byte, the code, the message ID, the token, then options as delta/length nibbles with their
extended forms (13: one more byte + 13, 14: two more bytes + 269, 15: the payload marker when
both nibbles are 15, else reserved). Nothing else is decoded.

The answer is conservative: :func:`may_read_object` says ``False`` only when the datagram
certainly cannot read the object -- an Empty message (ACK, RST, ping), a response, or a request
whose first Uri-Path segment is a decimal number naming another object. Anything it is unsure
of says ``True``: a datagram that does not parse, a reserved code class, any FETCH or iPATCH
(LwM2M's Read-/Observe-/Write-Composite), a request with no Uri-Path (the root: Discover,
composite operations) and a first segment that is not a plain number. A wrong ``True`` costs
one needless refresh; a wrong ``False`` would let the device answer with a stale value.

Pure: bytes in, a bool out; no socket, no clock, never raises on any input.
"""

from __future__ import annotations

__all__ = ["may_read_object"]

_FETCH = 5  # 0.05 (RFC 8132)
_IPATCH = 7  # 0.07 (RFC 8132)
_URI_PATH = 11


def may_read_object(data: bytes, object_id: int) -> bool:
    """True unless the CoAP datagram ``data`` certainly cannot read LwM2M object ``object_id``.

    Parameters
    ----------
    data:
        One CoAP-over-UDP datagram as it travels (RFC 7252 section 3).
    object_id:
        The object (4 for Connectivity Monitoring).

    Returns
    -------
    bool
        ``False`` for an Empty message (code 0.00: ACK, RST, CoAP ping), a response (classes
        2, 4, 5) and a request (class 0) other than FETCH/iPATCH whose first Uri-Path segment
        is an ASCII decimal number other than ``object_id`` (``"04"`` counts as 4, as the
        device's path parser reads it); ``True`` for everything else, including malformed or
        truncated bytes.

    Examples
    --------
    >>> may_read_object(bytes([0x40, 0x01, 0x12, 0x34, 0xB1]) + b"4", 4)  # CON GET /4
    True
    >>> may_read_object(bytes([0x40, 0x03, 0x12, 0x34, 0xB1]) + b"5", 4)  # CON PUT /5
    False
    >>> may_read_object(bytes([0x60, 0x00, 0x12, 0x34]), 4)  # empty ACK
    False
    >>> may_read_object(b"\\x40", 4)  # truncated: unsure, so True
    True
    """
    n = len(data)
    if n < 4:
        return True  # not even a header
    first = data[0]
    if first >> 6 != 1:
        return True  # not CoAP version 1
    code = data[1]
    if code == 0:
        return False  # Empty: ACK, RST or ping
    klass = code >> 5
    if klass != 0:
        return klass not in (2, 4, 5)  # a response reads nothing; reserved classes: unsure
    if code in (_FETCH, _IPATCH):
        return True
    tkl = first & 0x0F
    if tkl > 8:
        return True  # reserved token length: malformed
    i = 4 + tkl
    number = 0
    while i < n:
        byte = data[i]
        i += 1
        delta = _extended(byte >> 4, data, i)
        if delta is None:
            return True  # payload marker (no Uri-Path: the root), reserved nibble, truncated
        i = delta[1]
        length = _extended(byte & 0x0F, data, i)
        if length is None:
            return True  # reserved nibble or truncated
        i = length[1]
        number += delta[0]
        if number > _URI_PATH:
            return True  # options are in order: no Uri-Path, the request targets the root
        if number == _URI_PATH:
            end = i + length[0]
            if end > n:
                return True  # truncated
            segment = data[i:end]
            if not segment.isdigit():  # (bytes.isdigit() is ASCII-only)
                return True  # empty, a name, "4/0" in one segment...: unsure
            digits = segment.lstrip(b"0") or b"0"  # no int() of a 60 KB number
            return len(digits) <= 10 and int(digits) == object_id
        i += length[0]
    return True  # no Uri-Path (or options ran past the end): the root, or unsure


def _extended(nibble: int, data: bytes, i: int) -> tuple[int, int] | None:
    """An option delta or length from its 4-bit ``nibble`` and the extended bytes at ``data[i:]``
    (RFC 7252 section 3.1): ``(value, index after it)``, or None for 15 (the payload marker or
    a reserved value) and for extended bytes cut off by the end of the datagram."""
    if nibble < 13:
        return nibble, i
    if nibble == 13:
        return (data[i] + 13, i + 1) if i < len(data) else None
    if nibble == 14:
        return ((data[i] << 8 | data[i + 1]) + 269, i + 2) if i + 1 < len(data) else None
    return None
