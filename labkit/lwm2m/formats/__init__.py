"""LwM2M content formats: numbers, media types, and one decode/encode entry point.

This package owns the bytes of LwM2M payloads (digest section 6). Each format lives in its
own module; this one maps content-format numbers to them:

=======  ===========================  ==============================================
Number   Module                       Carries
=======  ===========================  ==============================================
0        :mod:`.text`                 one value as text
40       :mod:`.linkformat`           link lists (not values: use ``parse_links``)
42       :mod:`.opaque`               one Opaque value as raw bytes
60       :mod:`.lwm2m_cbor`           one value as a CBOR item
110/112  :mod:`.senml`                SenML JSON / SenML CBOR records
11542    :mod:`.tlv`                  OMA TLV
11543    :mod:`.senml`                old LwM2M JSON (decode only)
11544    :mod:`.lwm2m_cbor`           LwM2M CBOR
=======  ===========================  ==============================================

Decoded content is always a flat ``dict`` from full resource paths (``/O/I/R``) or
resource-instance paths (``/O/I/R/RI``) to Python values (:mod:`labkit.lwm2m.values`).
Decoders raise only :class:`~labkit.lwm2m.errors.DecodeError` on a bad payload; encoders raise
:class:`~labkit.lwm2m.errors.EncodeError`; an unknown or unsupported format number raises
:class:`~labkit.lwm2m.errors.UnsupportedContentFormat`. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum

from labkit.lwm2m.errors import UnsupportedContentFormat
from labkit.lwm2m.formats import linkformat, lwm2m_cbor, opaque, senml, text, tlv
from labkit.lwm2m.formats.linkformat import Link, format_links, parse_links
from labkit.lwm2m.objects import resource_type
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import TypeResolver, Value

__all__ = [
    "DECODABLE_FORMATS",
    "ENCODABLE_FORMATS",
    "LEGACY_FORMATS",
    "ContentFormat",
    "Link",
    "decode",
    "encode",
    "format_links",
    "linkformat",
    "normalize_format",
    "parse_links",
]


class ContentFormat(IntEnum):
    """CoAP Content-Format numbers used by LwM2M (digest 6.1)."""

    TEXT = 0
    LINK_FORMAT = 40
    OPAQUE = 42
    CBOR = 60
    SENML_JSON = 110
    SENML_CBOR = 112
    TLV = 11542
    LWM2M_JSON = 11543
    LWM2M_CBOR = 11544

    @property
    def media_type(self) -> str:
        """The IANA media type, e.g. ``application/vnd.oma.lwm2m+tlv``."""
        return _MEDIA_TYPES[self]


_MEDIA_TYPES: Mapping[ContentFormat, str] = {
    ContentFormat.TEXT: "text/plain;charset=utf-8",
    ContentFormat.LINK_FORMAT: "application/link-format",
    ContentFormat.OPAQUE: "application/octet-stream",
    ContentFormat.CBOR: "application/cbor",
    ContentFormat.SENML_JSON: "application/senml+json",
    ContentFormat.SENML_CBOR: "application/senml+cbor",
    ContentFormat.TLV: "application/vnd.oma.lwm2m+tlv",
    ContentFormat.LWM2M_JSON: "application/vnd.oma.lwm2m+json",
    ContentFormat.LWM2M_CBOR: "application/vnd.oma.lwm2m+cbor",
}

#: Pre-1.0 numbers still seen on input (digest 6.1, pitfall 2): map them, never send them.
LEGACY_FORMATS: Mapping[int, ContentFormat] = {
    1541: ContentFormat.TEXT,
    1542: ContentFormat.TLV,
    1543: ContentFormat.LWM2M_JSON,
    1544: ContentFormat.OPAQUE,
}

_Decoder = Callable[[bytes, Path, TypeResolver], dict[Path, Value]]
_Encoder = Callable[[Path, Mapping[Path, Value], TypeResolver], bytes]

_DECODERS: Mapping[ContentFormat, _Decoder] = {
    ContentFormat.TEXT: text.decode,
    ContentFormat.OPAQUE: opaque.decode,
    ContentFormat.CBOR: lwm2m_cbor.decode_plain,
    ContentFormat.SENML_JSON: senml.decode_json,
    ContentFormat.SENML_CBOR: senml.decode_cbor,
    ContentFormat.TLV: tlv.decode,
    ContentFormat.LWM2M_JSON: senml.decode_lwm2m_json,
    ContentFormat.LWM2M_CBOR: lwm2m_cbor.decode,
}
_ENCODERS: Mapping[ContentFormat, _Encoder] = {
    ContentFormat.TEXT: text.encode,
    ContentFormat.OPAQUE: opaque.encode,
    ContentFormat.CBOR: lwm2m_cbor.encode_plain,
    ContentFormat.SENML_JSON: senml.encode_json,
    ContentFormat.SENML_CBOR: senml.encode_cbor,
    ContentFormat.TLV: tlv.encode,
    ContentFormat.LWM2M_CBOR: lwm2m_cbor.encode,
}

#: Formats :func:`decode` reads into values (link format is parsed by :func:`parse_links`).
DECODABLE_FORMATS: frozenset[ContentFormat] = frozenset(_DECODERS)
#: Formats :func:`encode` writes (old LwM2M JSON is read-only).
ENCODABLE_FORMATS: frozenset[ContentFormat] = frozenset(_ENCODERS)


def normalize_format(n: int) -> ContentFormat:
    """The :class:`ContentFormat` for number ``n``, mapping legacy numbers (1541-1544).

    Raises
    ------
    UnsupportedContentFormat
        For a number LwM2M does not define (CoAP 4.15).
    """
    if n in LEGACY_FORMATS:
        return LEGACY_FORMATS[n]
    try:
        return ContentFormat(n)
    except ValueError:
        raise UnsupportedContentFormat(f"unknown content format {n!r}") from None


def decode(
    fmt: int, payload: bytes, base: Path, types: TypeResolver = resource_type
) -> dict[Path, Value]:
    """Decode a payload of content format ``fmt`` that answered a request on ``base``.

    Parameters
    ----------
    fmt
        Content-Format number (legacy numbers accepted).
    payload
        The payload bytes.
    base
        The requested path. TLV nests by its level; text, opaque and CBOR (60) need a
        resource or resource-instance path. SenML and LwM2M CBOR carry absolute names and
        accept any full path, even outside ``base``.
    types
        Resource type resolver: TLV and text values are typed with it (unknown: TLV keeps
        ``bytes``, text keeps ``str``); the other formats check their values against it.

    Returns
    -------
    dict[Path, Value]
        Full resource or resource-instance path -> value.

    Raises
    ------
    DecodeError
        The payload is not valid in that format (CoAP 4.00).
    UnsupportedContentFormat
        ``fmt`` is unknown or cannot be decoded to values (CoAP 4.15).
    """
    cf = normalize_format(fmt)
    decoder = _DECODERS.get(cf)
    if decoder is None:
        raise UnsupportedContentFormat(f"{cf.name} ({cf.value}) does not carry values")
    return decoder(bytes(payload), base, types)


def encode(
    fmt: int, base: Path, values: Mapping[Path, Value], types: TypeResolver = resource_type
) -> bytes:
    """Encode ``values`` (full paths at or below ``base``) in content format ``fmt``.

    Returns
    -------
    bytes
        The payload of a response to (or a Write on) ``base``.

    Raises
    ------
    EncodeError
        A value does not fit its type or the format, or a path is not at or below ``base``.
    UnsupportedContentFormat
        ``fmt`` is unknown or not produced (coap_code 4.06).
    """
    try:
        cf = normalize_format(fmt)
    except UnsupportedContentFormat as exc:
        raise UnsupportedContentFormat(str(exc), coap_code="4.06") from None
    encoder = _ENCODERS.get(cf)
    if encoder is None:
        raise UnsupportedContentFormat(f"{cf.name} ({cf.value}) is not produced", coap_code="4.06")
    return encoder(base, values, types)
