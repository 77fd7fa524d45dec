"""CoRE Link Format (RFC 6690): parse_links / format_links on real registration payloads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.lwm2m.errors import DecodeError, EncodeError
from labkit.lwm2m.formats.linkformat import Link, format_links, parse_links
from labkit.lwm2m.paths import Path


def test_wakaama_registration_payload() -> None:
    links = parse_links('</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</4/0>,</5/0>')
    assert links[0] == Link("/", {"rt": "oma.lwm2m", "ct": "110"})
    assert [link.target for link in links[1:]] == ["/1/0", "/3/0", "/4/0", "/5/0"]
    assert links[1].path == Path.of(1, 0)
    assert links[0].path == Path()


def test_anjay_registration_payloads_quoted_and_unquoted_ver() -> None:
    assert parse_links("</1>;ver=1.1,</1/1>,</3>;ver=1.1") == [
        Link("/1", {"ver": "1.1"}),
        Link("/1/1"),
        Link("/3", {"ver": "1.1"}),
    ]
    assert parse_links(b'</3>;ver="1.1",</3/0>') == [Link("/3", {"ver": "1.1"}), Link("/3/0")]


def test_discover_answer_with_dim_and_valueless_params() -> None:
    links = parse_links("</5/0>,</5/0/8>;dim=6,</5/0/3>;obs;pmin=10")
    assert links[1].params == {"dim": "6"}
    assert links[2].params == {"obs": None, "pmin": "10"}


def test_whitespace_newlines_and_quoted_separators_are_tolerated() -> None:
    text = ' \n</a>;title="x, y; z" ,\r\n\t</b> ; ct="110 112" ;sz = 12 ,'
    assert parse_links(text) == [
        Link("/a", {"title": "x, y; z"}),
        Link("/b", {"ct": "110 112", "sz": "12"}),
    ]


def test_escaped_quotes_and_repeated_params() -> None:
    (link,) = parse_links(r'</a>;t="say \"hi\" \\ bye";rt=first;rt=second')
    assert link.params == {"t": 'say "hi" \\ bye', "rt": "first"}


@pytest.mark.parametrize("payload", ["", b"", "  \n ", b"\r\n"])
def test_empty_payloads_are_empty_lists(payload: str | bytes) -> None:
    assert parse_links(payload) == []


@pytest.mark.parametrize(
    "payload",
    [
        "/5/0",  # no angle brackets
        "5/0>",
        "</5/0",  # unterminated target
        '</5/0>;ver="1.1',  # unterminated quote
        '</5/0>;ver="1.1\\',  # escape at the end
        "</5/0> </5/1>",  # missing comma
        "</5/0>;",  # empty parameter
        "</5/0>;=3",
        "</5/0>,,</5/1>",
        '</5/0>;a=b"c',
        "<</5/0>",
        b"</5/0>\xff",  # invalid UTF-8
        b"\xc3",
    ],
)
def test_garbage_raises_decode_error(payload: str | bytes) -> None:
    with pytest.raises(DecodeError):
        parse_links(payload)


def test_format_links_quotes_only_non_numbers() -> None:
    links = [
        Link("/", {"rt": "oma.lwm2m", "ct": "110"}),
        Link("/3", {"ver": "1.1"}),
        Link("/3/0"),
        Link("/5/0/8", {"dim": "6", "obs": None}),
        Link("/x", {"t": 'a,b;"c" d'}),
    ]
    text = format_links(links)
    assert text == (
        '</>;rt="oma.lwm2m";ct=110,</3>;ver=1.1,</3/0>,</5/0/8>;dim=6;obs,</x>;t="a,b;\\"c\\" d"'
    )
    assert parse_links(text) == links


def test_links_are_hashable_and_read_only() -> None:
    link = Link("/3", {"ver": "1.1"})
    assert {link, Link("/3", {"ver": "1.1"})} == {link}
    with pytest.raises(TypeError):
        link.params["ver"] = "1.2"  # type: ignore[index]


@pytest.mark.parametrize(
    "link", [Link("/a>b"), Link("/a", {"bad name": "x"}), Link("/a", {"": None})]
)
def test_format_links_refuses_what_cannot_be_written(link: Link) -> None:
    with pytest.raises(EncodeError):
        format_links([link])


_names = st.from_regex(r"[a-z][a-z0-9.\-_]{0,8}", fullmatch=True)
_values = st.one_of(st.none(), st.text(max_size=12), st.from_regex(r"-?[0-9]{1,4}", fullmatch=True))
_links = st.builds(
    Link,
    st.text(max_size=15).filter(lambda t: "<" not in t and ">" not in t),
    st.dictionaries(_names, _values, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_links, max_size=5))
def test_format_then_parse_round_trips(links: list[Link]) -> None:
    assert parse_links(format_links(links)) == links
    assert parse_links(format_links(links).encode("utf-8")) == links
