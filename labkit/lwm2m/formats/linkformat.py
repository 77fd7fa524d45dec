"""CoRE Link Format (RFC 6690, content format 40): parse and write link lists.

This module owns the text form of link lists as LwM2M uses them: Register/Update payloads
(``</1/0>,</3>;ver=1.1,</5/0>``) and Discover answers (``</5/0/8>;dim=6``). It knows nothing
about registrations; it turns text into :class:`Link` values and back.

Parsing is tolerant where real clients differ (whitespace and newlines between links, quoted
and unquoted attribute values, a trailing comma) and strict where the text is not a link list
at all (a link that does not start with ``<``, an unterminated quote or target, invalid UTF-8):
those raise :class:`~labkit.lwm2m.errors.DecodeError` and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from labkit.lwm2m.errors import DecodeError, EncodeError, PathError
from labkit.lwm2m.paths import Path

__all__ = ["Link", "format_links", "parse_links"]

# RFC 6690 section 2: link-value = "<" URI-Reference ">" *( ";" link-param ).
_WS = " \t\r\n"
# Characters that end a parameter name or an unquoted value.
_NAME_STOP = frozenset(';,="<>' + _WS)
_VALUE_STOP = frozenset(";," + _WS)
# A value written without quotes by format_links: a plain (decimal) number. Everything else,
# including tokens such as oma.lwm2m, is quoted, because that is how clients write rt= and ct=
# lists (digest 4.1: </>;rt="oma.lwm2m";ct=110, </3>;ver=1.1, </5/0/8>;dim=6).
_PLAIN_VALUE = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_NAME = re.compile(r"[A-Za-z0-9!#$&+\-.^_`|~*]+")


@dataclass(frozen=True)
class Link:
    """One link of a link list: ``<target>`` and its parameters.

    ``params`` maps a parameter name to its value with quotes removed, or to ``None`` for a
    parameter written without a value (``</5/0>;obs``). When a name is repeated, the first
    occurrence wins. The mapping is read-only; links are hashable.
    """

    target: str
    params: Mapping[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __hash__(self) -> int:
        return hash((self.target, tuple(self.params.items())))

    @property
    def path(self) -> Path | None:
        """The target as an LwM2M :class:`Path` (``</5/0>`` -> ``/5/0``), or ``None``."""
        try:
            return Path.parse(self.target)
        except PathError:
            return None

    def __str__(self) -> str:
        return format_links([self])


class _Scanner:
    """A cursor over the text of a link list."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def error(self, what: str) -> DecodeError:
        return DecodeError(f"link format: {what} at offset {self.pos}")

    def target(self) -> str:
        if self.peek() != "<":
            raise self.error("expected '<' starting a link")
        end = self.text.find(">", self.pos + 1)
        if end < 0:
            raise self.error("unterminated link target")
        value = self.text[self.pos + 1 : end]
        if "<" in value:
            raise self.error("'<' inside a link target")
        self.pos = end + 1
        return value

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _NAME_STOP:
            self.pos += 1
        name = self.text[start : self.pos]
        if not name:
            raise self.error("empty parameter name")
        return name

    def quoted(self) -> str:
        # RFC 6690 uses RFC 2616 quoted-string: backslash escapes the next character.
        self.pos += 1  # the opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                if self.pos + 1 >= len(self.text):
                    break
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1
        raise self.error("unterminated quoted value")

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _VALUE_STOP:
            if self.text[self.pos] == '"':
                raise self.error("quote inside an unquoted value")
            self.pos += 1
        return self.text[start : self.pos]


def _links(s: _Scanner) -> Iterator[Link]:
    s.skip_ws()
    while not s.at_end():
        target = s.target()
        params: dict[str, str | None] = {}
        s.skip_ws()
        while s.peek() == ";":
            s.pos += 1
            s.skip_ws()
            name = s.name()
            s.skip_ws()
            value: str | None = None
            if s.peek() == "=":
                s.pos += 1
                s.skip_ws()
                value = s.quoted() if s.peek() == '"' else s.token()
                s.skip_ws()
            params.setdefault(name, value)
        yield Link(target, params)
        if s.at_end():
            return
        if s.peek() != ",":
            raise s.error(f"expected ',' or ';', got {s.peek()!r}")
        s.pos += 1
        s.skip_ws()  # a trailing comma is tolerated


def parse_links(text: str | bytes) -> list[Link]:
    """Parse an RFC 6690 link list (a Register payload, a Discover answer).

    Parameters
    ----------
    text
        The payload, as text or as UTF-8 bytes. An empty (or all-whitespace) payload is an
        empty list.

    Returns
    -------
    list[Link]
        The links in payload order.

    Raises
    ------
    DecodeError
        On invalid UTF-8, a link not starting with ``<``, an unterminated target or quoted
        value, an empty parameter name, or junk between links.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"link format payload is not UTF-8: {exc}") from None
    if not isinstance(text, str):
        raise DecodeError(f"link format payload must be text or bytes, not {type(text).__name__}")
    return list(_links(_Scanner(text)))


def _format_value(value: str) -> str:
    if _PLAIN_VALUE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def format_links(links: Iterable[Link]) -> str:
    """Write links as an RFC 6690 link list, comma-separated without spaces.

    Values that are plain decimal numbers (``ver=1.1``, ``dim=6``, ``ct=110``) are written
    bare; every other value is quoted (``rt="oma.lwm2m"``, ``ct="110 112"``), with ``"`` and
    ``\\`` escaped. A parameter whose value is ``None`` is written as its name alone.

    Raises
    ------
    EncodeError
        When a target contains ``<`` or ``>`` or a parameter name is not a token.
    """
    parts: list[str] = []
    for link in links:
        if "<" in link.target or ">" in link.target:
            raise EncodeError(f"link target cannot contain '<' or '>': {link.target!r}")
        text = f"<{link.target}>"
        for name, value in link.params.items():
            if not _NAME.fullmatch(name):
                raise EncodeError(f"not a link parameter name: {name!r}")
            text += f";{name}" if value is None else f";{name}={_format_value(value)}"
        parts.append(text)
    return ",".join(parts)
