"""Register/Update validation (digest section 4) and the client-side helpers."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path as FsPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.lwm2m.errors import LocalProtocolError, RegistrationError
from labkit.lwm2m.registration import (
    ObjectAnnouncement,
    RegisterRequest,
    UpdateRequest,
    object_version,
    parse_register,
    parse_update,
    register_links,
    register_query,
    update_delay,
)

# -- real registrations (the `registration` entries of shared/vectors/*.json) -----------------
# Copied here so the tests run without the vector files; test_vectors_match_files checks the
# copies against the files when they are present.
_ANJAY_PAYLOAD = (
    "</1/1>,</2>,</3/0>,</4/0>,</5/0>,</6/0>,</7/0>,</9/0>,</9/1>,</10>;ver=1.1,</10/0>,</11>,"
    "</16>,</19>,</20/0>,</3303/0>,</3313/0>,</3347/0>,</33605>,</33606/0>,</33607/0>,</33608>,"
    "</33609/0>,</33629>"
)
VECTORS = {
    "anjay-3.14-lwm2m-1.1.json": {
        "query": ["lwm2m=1.1", "ep=vectors-anjay", "lt=60"],
        "content_format": 40,
        "payload": _ANJAY_PAYLOAD,
    },
    "anjay-3.14-lwm2m-1.2.json": {
        "query": ["lwm2m=1.2", "ep=vectors-anjay12", "lt=60"],
        "content_format": 40,
        "payload": _ANJAY_PAYLOAD,
    },
    "wakaama-example-client.json": {
        "query": ["lwm2m=1.1", "ep=vectors-wakaama", "b=U", "lt=60"],
        "content_format": 40,
        "payload": '</>;rt="oma.lwm2m";ct=110,</1>;ver=1.1,</1/0>,</2/0>,</3/0>,</4/0>,</5/0>,'
        "</6/0>,</7/0>,</31024>;ver=1.0,</31024/10>,</31024/11>,</31024/12>",
    },
}


def _vector_dirs() -> list[FsPath]:
    here = FsPath(__file__).resolve().parent
    candidates = [
        os.environ.get("LABKIT_VECTORS", ""),
        str(here / "vectors"),
        str(here.parent / "data" / "vectors"),
        "/work/shared/vectors",
    ]
    return [FsPath(c) for c in candidates if c and FsPath(c).is_dir()]


def test_vectors_match_files() -> None:
    dirs = _vector_dirs()
    if not dirs:
        pytest.skip("vector files not available; the inline copies are used")
    for name, reg in VECTORS.items():
        data = json.loads((dirs[0] / name).read_text(encoding="utf-8"))
        assert data["registration"] == reg


def _register(name: str) -> RegisterRequest:
    reg = VECTORS[name]
    assert reg["content_format"] == 40
    payload = reg["payload"]
    assert isinstance(payload, str)
    query = reg["query"]
    assert isinstance(query, list)
    return parse_register(query, payload.encode())


@pytest.mark.parametrize(
    ("name", "endpoint", "version"),
    [
        ("anjay-3.14-lwm2m-1.1.json", "vectors-anjay", "1.1"),
        ("anjay-3.14-lwm2m-1.2.json", "vectors-anjay12", "1.2"),
    ],
)
def test_anjay_registration(name: str, endpoint: str, version: str) -> None:
    req = _register(name)
    assert (req.endpoint, req.lwm2m_version, req.lifetime) == (endpoint, version, 60)
    # Anjay sends no b=: the default U applies, no queue mode.
    assert (req.binding, req.queue_mode, req.sms) == ("U", False, None)
    assert req.extra == {}
    assert (req.root_path, req.content_formats) == ("/", ())
    assert req.objects[10] == ObjectAnnouncement(10, "1.1", (0,))
    assert req.objects[1] == ObjectAnnouncement(1, None, (1,))
    assert req.objects[2] == ObjectAnnouncement(2, None, ())
    assert req.objects[9].instances == (0, 1)
    assert req.objects[33629] == ObjectAnnouncement(33629, None, ())
    assert 0 not in req.objects and 21 not in req.objects
    assert list(req.objects) == sorted(req.objects)
    assert [oid for oid, a in req.objects.items() if a.version] == [10]
    # No ver= on /5: the enabler default applies (obj 1.0 for 1.1 and 1.2 clients).
    assert object_version(req, 5) == "1.0"
    assert object_version(req, 3) == "1.1"
    assert object_version(req, 4) == "1.2"
    assert object_version(req, 10) == "1.1"
    assert object_version(req, 3303) == "1.0"


def test_wakaama_registration() -> None:
    req = _register("wakaama-example-client.json")
    assert (req.endpoint, req.lwm2m_version, req.lifetime) == ("vectors-wakaama", "1.1", 60)
    assert (req.binding, req.queue_mode) == ("U", False)
    assert req.root_path == "/"
    assert req.content_formats == (110,)
    assert req.objects[1] == ObjectAnnouncement(1, "1.1", (0,))
    assert req.objects[5] == ObjectAnnouncement(5, None, (0,))
    assert req.objects[31024] == ObjectAnnouncement(31024, "1.0", (10, 11, 12))
    assert sorted(req.objects) == [1, 2, 3, 4, 5, 6, 7, 31024]
    assert object_version(req, 1) == "1.1"


@pytest.mark.parametrize(
    ("payload", "objects"),
    [
        # digest 4.1 examples
        (
            '</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</4/0>,</5/0>',
            {1: (None, (0,)), 3: (None, (0,)), 4: (None, (0,)), 5: (None, (0,))},
        ),
        (
            "</1>;ver=1.1,</1/1>,</3>;ver=1.1,</3/0>,</4>;ver=1.3,</4/0>,</5/0>",
            {1: ("1.1", (1,)), 3: ("1.1", (0,)), 4: ("1.3", (0,)), 5: (None, (0,))},
        ),
        ('</3>;ver="1.1",</3/0>', {3: ("1.1", (0,))}),
        ("</1/0>,</3>;ver=1.1,</3/0>", {1: (None, (0,)), 3: ("1.1", (0,))}),
        # tolerated: /0 and /21, resource links, duplicate instance links, whitespace
        ("</0/0>,</0/1>,</21/0>,</1/0>", {1: (None, (0,))}),
        ("</3/0>,</3/0/3>,</3/0/7/1>", {3: (None, (0,))}),
        ("</3/0>, </3/0>,\n</3/1>", {3: (None, (0, 1))}),
        ("</3/0>,</3>;ver=1.1", {3: ("1.1", (0,))}),
        ("</3>;ver=1.1,</3>;ver=1.1,</3/0>", {3: ("1.1", (0,))}),
        ("</3/0>;ver=2.0", {3: (None, (0,))}),  # ver on instance links is not read
        ("", {}),
        ("   ", {}),
    ],
)
def test_payloads(payload: str, objects: dict[int, tuple[str | None, tuple[int, ...]]]) -> None:
    req = parse_register(["ep=x"], payload.encode())
    assert {k: (a.version, a.instances) for k, a in req.objects.items()} == objects
    assert all(a.object_id == k for k, a in req.objects.items())


@pytest.mark.parametrize(
    ("payload", "root", "formats"),
    [
        ('</>;rt="oma.lwm2m";ct=110', "/", (110,)),
        ('</>;rt="oma.lwm2m";ct="110 112 11542"', "/", (110, 112, 11542)),
        ('</>;rt="oma.lwm2m";ct=1543', "/", (1543,)),  # legacy numbers kept as sent
        ('</>;rt="oma.lwm2m"', "/", ()),
        ("</>;ct=11543", "/", (11543,)),  # root without rt= tolerated
        ('</lwm2m>;rt="oma.lwm2m";ct=110,</lwm2m/3/0>,</lwm2m/5>;ver=1.1', "/lwm2m", (110,)),
        ('</a/b/>;rt="oma.lwm2m",</a/b/3/0>', "/a/b", ()),
        ('</3/0>,</>;rt="core.rd oma.lwm2m"', "/", ()),
    ],
)
def test_root_link(payload: str, root: str, formats: tuple[int, ...]) -> None:
    req = parse_register(["ep=x", "lwm2m=1.1"], payload.encode())
    assert (req.root_path, req.content_formats) == (root, formats)
    assert 0 not in req.objects


def test_alternate_root_is_stripped() -> None:
    req = parse_register(
        ["ep=x"], b'</lwm2m>;rt="oma.lwm2m",</lwm2m/3/0>,</lwm2m/5>;ver=1.1,</lwm2m/5/0>'
    )
    assert req.objects == {
        3: ObjectAnnouncement(3, None, (0,)),
        5: ObjectAnnouncement(5, "1.1", (0,)),
    }
    assert object_version(req, 5) == "1.1"


@pytest.mark.parametrize(
    ("query", "attrs"),
    [
        (
            ["ep=a"],
            {
                "lifetime": 86400,
                "lwm2m_version": "1.0",
                "binding": "U",
                "queue_mode": False,
                "sms": None,
            },
        ),
        (
            ["lt=30", "ep=a", "lwm2m=1.1", "b=UT", "Q"],
            {"lifetime": 30, "binding": "UT", "queue_mode": True},
        ),
        (["ep=a", "b=UQ"], {"binding": "U", "queue_mode": True}),  # 1.0 queue binding
        (["ep=a", "b=UQS"], {"binding": "US", "queue_mode": True}),
        (["ep=a", "b=SQ"], {"binding": "S", "queue_mode": True}),
        (["ep=a", "b=US"], {"binding": "US", "queue_mode": False}),
        (["ep=a", "Q"], {"binding": "U", "queue_mode": True}),  # 1.1 flag from a 1.0 client
        (["ep=a", "lwm2m=1.1", "b=UQ"], {"binding": "U", "queue_mode": True}),  # tolerated
        (["ep=a", "lwm2m=1.1", "b=N"], {"binding": "N"}),
        (["ep=a", "lwm2m=1.1", "b=TSUN"], {"binding": "TSUN"}),
        (["ep=a", "lwm2m=1.2", "b=UM"], {"binding": "UM"}),
        (["ep=a", "lwm2m=1.2", "lt=0"], {"lifetime": 0}),
        (["ep=a", "lt=4294967295"], {"lifetime": 4294967295}),
        (["ep=a", "lt=060"], {"lifetime": 60}),
        (["ep=a", "sms=+4812345"], {"sms": "+4812345"}),
        (["ep=urn:imei:490154203237518"], {"endpoint": "urn:imei:490154203237518"}),
        (["ep=a=b"], {"endpoint": "a=b"}),
        (["ep=a", "pct=50", "flag", "empty="], {"extra": {"pct": "50", "flag": None, "empty": ""}}),
    ],
)
def test_query(query: list[str], attrs: dict[str, object]) -> None:
    req = parse_register(query, b"")
    for name, value in attrs.items():
        assert getattr(req, name) == value, name


@pytest.mark.parametrize(
    ("query", "payload", "code"),
    [
        # endpoint: missing or empty -> 4.00 (Leshan says 4.03; see the module docstring)
        ([], b"", "4.00"),
        (["lt=60"], b"", "4.00"),
        (["ep="], b"", "4.00"),
        (["ep"], b"", "4.00"),
        # version: unsupported -> 4.12, no value -> 4.00
        (["ep=a", "lwm2m=2.0"], b"", "4.12"),
        (["ep=a", "lwm2m=1.3"], b"", "4.12"),
        (["ep=a", "lwm2m=1.1.1"], b"", "4.12"),
        (["ep=a", "lwm2m="], b"", "4.12"),
        (["lwm2m=0.9"], b"", "4.12"),  # version is checked before the endpoint
        (["ep=a", "lwm2m"], b"", "4.00"),
        # lifetime
        (["ep=a", "lt=0"], b"", "4.00"),
        (["ep=a", "lwm2m=1.1", "lt=0"], b"", "4.00"),
        (["ep=a", "lt=-5"], b"", "4.00"),
        (["ep=a", "lt=+5"], b"", "4.00"),
        (["ep=a", "lt=1_000"], b"", "4.00"),
        (["ep=a", "lt= 60"], b"", "4.00"),
        (["ep=a", "lt=6.5"], b"", "4.00"),
        (["ep=a", "lt=abc"], b"", "4.00"),
        (["ep=a", "lt="], b"", "4.00"),
        (["ep=a", "lt"], b"", "4.00"),
        (["ep=a", "lt=4294967296"], b"", "4.00"),
        (["ep=a", "lt=" + "9" * 5000], b"", "4.00"),
        (["ep=a", "lt=٣"], b"", "4.00"),  # a non-ASCII digit
        # binding
        (["ep=a", "b=T"], b"", "4.00"),  # no TCP in 1.0
        (["ep=a", "b=QU"], b"", "4.00"),
        (["ep=a", "b=SU"], b"", "4.00"),
        (["ep=a", "b=UU"], b"", "4.00"),
        (["ep=a", "b="], b"", "4.00"),
        (["ep=a", "b"], b"", "4.00"),
        (["ep=a", "lwm2m=1.1", "b=X"], b"", "4.00"),
        (["ep=a", "lwm2m=1.1", "b=UU"], b"", "4.00"),
        (["ep=a", "lwm2m=1.1", "b=Q"], b"", "4.00"),
        (["ep=a", "lwm2m=1.1", "b=UQQ"], b"", "4.00"),
        (["ep=a", "lwm2m=1.1", "b=u"], b"", "4.00"),
        (["ep=a", "lwm2m=1.1", "b=M"], b"", "4.00"),  # MQTT is 1.2
        # queue flag with a value
        (["ep=a", "lwm2m=1.1", "Q=1"], b"", "4.00"),
        (["ep=a", "lwm2m=1.1", "Q="], b"", "4.00"),
        # duplicates, malformed options
        (["ep=a", "ep=b"], b"", "4.00"),
        (["ep=a", "lt=60", "lt=60"], b"", "4.00"),
        (["ep=a", "lwm2m=1.1", "Q", "Q"], b"", "4.00"),
        (["ep=a", "x=1", "x=2"], b"", "4.00"),
        (["ep=a", ""], b"", "4.00"),
        (["ep=a", "=5"], b"", "4.00"),
        (["ep=a", "sms="], b"", "4.00"),
        # payload
        (["ep=a"], b"\xff\xfe", "4.00"),  # not UTF-8
        (["ep=a"], b"</3/0", "4.00"),  # unterminated target
        (["ep=a"], b"3/0", "4.00"),  # not a link
        (["ep=a"], b'</3/0>;ver="1.1', "4.00"),
        (["ep=a"], b"<3/0>", "4.00"),  # relative target
        (["ep=a"], b"</abc>", "4.00"),
        (["ep=a"], b"</3/x>", "4.00"),
        (["ep=a"], b"</3//0>", "4.00"),
        (["ep=a"], b"</3/0/>", "4.00"),
        (["ep=a"], b"</65535/0>", "4.00"),
        (["ep=a"], b"</3/65535>", "4.00"),
        (["ep=a"], b"</99999999>", "4.00"),
        (["ep=a"], b"</3>;ver=abc", "4.00"),
        (["ep=a"], b"</3>;ver", "4.00"),
        (["ep=a"], b"</3>;ver=1", "4.00"),
        (["ep=a"], b"</3>;ver=1.0,</3>;ver=1.1", "4.00"),
        (["ep=a"], b'</>;rt="oma.lwm2m",</lwm2m>;rt="oma.lwm2m"', "4.00"),
        (["ep=a"], b'</>;rt="oma.lwm2m";ct=abc', "4.00"),
        (["ep=a"], b'</>;rt="oma.lwm2m";ct', "4.00"),
        (["ep=a"], b'</>;rt="oma.lwm2m";ct=""', "4.00"),
        (["ep=a"], b'</>;rt="oma.lwm2m";ct=70000', "4.00"),
        (["ep=a"], b'</5>;rt="oma.lwm2m"', "4.00"),  # numeric alternate root
        (["ep=a"], b'<lwm2m>;rt="oma.lwm2m"', "4.00"),
        (["ep=a"], b'</lwm2m>;rt="oma.lwm2m",</3/0>', "4.00"),  # outside the alternate root
        (["ep=a"], b'</lwm2m>;rt="oma.lwm2m",</lwm2mx/3/0>', "4.00"),
    ],
)
def test_register_errors(query: list[str], payload: bytes, code: str) -> None:
    with pytest.raises(RegistrationError) as info:
        parse_register(query, payload)
    assert info.value.coap_code == code


def test_register_rejects_a_single_string_query() -> None:
    with pytest.raises(LocalProtocolError):
        parse_register("ep=a", b"")


# -- Update ------------------------------------------------------------------------------------


def test_update_empty() -> None:
    assert parse_update([], b"") == UpdateRequest()


@pytest.mark.parametrize(
    ("query", "version", "attrs"),
    [
        (["lt=120"], None, {"lifetime": 120, "binding": None, "queue_mode": None}),
        (["b=U"], None, {"binding": "U", "queue_mode": None}),
        (["b=U"], "1.0", {"binding": "U", "queue_mode": False}),  # 1.0: UQ -> U ends queue
        (["b=UQ"], "1.0", {"binding": "U", "queue_mode": True}),
        (["b=UQ"], None, {"binding": "U", "queue_mode": True}),
        (["b=UT"], "1.1", {"binding": "UT", "queue_mode": None}),
        (["b=UT", "Q"], None, {"binding": "UT", "queue_mode": True}),
        (["Q"], "1.1", {"queue_mode": True}),
        (["sms=123"], None, {"sms": "123"}),
        (["lt=0"], "1.2", {"lifetime": 0}),
        (["foo=bar"], None, {"extra": {"foo": "bar"}}),
    ],
)
def test_update_query(query: list[str], version: str | None, attrs: dict[str, object]) -> None:
    upd = parse_update(query, b"", lwm2m_version=version)
    assert upd.objects is None
    for name, value in attrs.items():
        assert getattr(upd, name) == value, name


def test_update_with_payload() -> None:
    upd = parse_update(["lt=60"], b"</1/0>,</3/0>,</5>;ver=1.1,</5/0>")
    assert upd.objects == {
        1: ObjectAnnouncement(1, None, (0,)),
        3: ObjectAnnouncement(3, None, (0,)),
        5: ObjectAnnouncement(5, "1.1", (0,)),
    }


@pytest.mark.parametrize(
    ("query", "payload", "version"),
    [
        (["ep=a"], b"", None),
        (["lwm2m=1.1"], b"", None),
        (["lt=x"], b"", None),
        (["lt=0"], b"", "1.1"),
        (["b=T"], b"", "1.0"),
        (["b=X"], b"", None),
        (["Q=1"], b"", None),
        (["lt=5", "lt=6"], b"", None),
        ([], b"</x>", None),
        ([], b"\xc3", None),
    ],
)
def test_update_errors(query: list[str], payload: bytes, version: str | None) -> None:
    with pytest.raises(RegistrationError) as info:
        parse_update(query, payload, lwm2m_version=version)
    assert info.value.coap_code == "4.00"


# -- client side -------------------------------------------------------------------------------


def test_register_query_shape() -> None:
    assert register_query("sim-1", 60) == ["lwm2m=1.1", "ep=sim-1", "lt=60", "b=U"]
    assert register_query("sim-1", 60, queue_mode=True) == [
        "lwm2m=1.1",
        "ep=sim-1",
        "lt=60",
        "b=U",
        "Q",
    ]
    assert register_query("sim-1", 60, "1.0", "US", queue_mode=True)[-1] == "b=UQS"
    assert register_query("sim-1", 60, "1.0", "S", queue_mode=True)[-1] == "b=SQ"
    assert register_query("sim-1", 60, "1.0", "UQ")[-1] == "b=UQ"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("", 60), {}),
        (("a", 0), {}),
        (("a", -1), {}),
        (("a", True), {}),
        (("a", 60, "2.0"), {}),
        (("a", 60, "1.0", "T"), {}),
        (("a", 60, "1.1", "X"), {}),
    ],
)
def test_register_query_misuse(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        register_query(*args, **kwargs)  # type: ignore[arg-type]


def test_register_links_shape() -> None:
    text = register_links(
        {
            5: ("1.2", [0]),
            0: (None, [0]),
            3: ("1.2", (0,)),
            1: ("1.2", {0}),
            4: (None, [0]),
            21: (None, [0]),
            7: (None, []),
            9: (None, [2, 0, 2]),
        }
    )
    assert text == (
        "</1>;ver=1.2,</1/0>,</3>;ver=1.2,</3/0>,</4/0>,</5>;ver=1.2,</5/0>,</7>,</9/0>,</9/2>"
    )
    assert register_links({}) == ""


@pytest.mark.parametrize(
    "objects",
    [
        {3: ("1", [0])},
        {3: ("1.x", [0])},
        {65535: (None, [0])},
        {3: (None, [65535])},
        {3: (None, [-1])},
    ],
)
def test_register_links_misuse(objects: dict[int, tuple[str | None, list[int]]]) -> None:
    with pytest.raises(LocalProtocolError):
        register_links(objects)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
@pytest.mark.parametrize(("binding", "queue"), [("U", False), ("U", True), ("US", True)])
def test_round_trip(version: str, binding: str, queue: bool) -> None:
    objects = {
        1: ("1.2", [0]),
        3: ("1.2", [0]),
        4: ("1.3", [0]),
        5: ("1.2", [0]),
        3303: (None, [0, 1]),
        10: (None, []),
    }
    query = register_query("sim-7", 300, version, binding, queue_mode=queue)
    req = parse_register(query, register_links(objects).encode())
    assert (req.endpoint, req.lifetime, req.lwm2m_version) == ("sim-7", 300, version)
    assert (req.binding, req.queue_mode) == (binding, queue)
    assert {k: (a.version, list(a.instances)) for k, a in req.objects.items()} == objects
    assert object_version(req, 5) == "1.2"


@given(
    endpoint=st.text(min_size=1).filter(lambda s: not s.startswith("=")),
    lifetime=st.integers(1, 2**32 - 1),
    version=st.sampled_from(["1.0", "1.1", "1.2"]),
    queue=st.booleans(),
    objects=st.dictionaries(
        st.integers(1, 65534),
        st.tuples(
            st.none() | st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
            st.lists(st.integers(0, 65534), max_size=4),
        ),
        max_size=6,
    ),
)
@settings(max_examples=150, deadline=None)
def test_round_trip_property(
    endpoint: str,
    lifetime: int,
    version: str,
    queue: bool,
    objects: dict[int, tuple[str | None, list[int]]],
) -> None:
    query = register_query(endpoint, lifetime, version, queue_mode=queue)
    req = parse_register(query, register_links(objects).encode())
    assert (req.endpoint, req.lifetime, req.queue_mode) == (endpoint, lifetime, queue)
    expected = {
        k: (v, tuple(sorted(set(ids)))) for k, (v, ids) in objects.items() if k not in (0, 21)
    }
    assert {k: (a.version, a.instances) for k, a in req.objects.items()} == expected


def test_object_version_defaults() -> None:
    req10 = parse_register(["ep=a"], b"</3/0>,</5/0>")
    assert object_version(req10, 5) == "1.0" and object_version(req10, 3) == "1.0"
    req11 = parse_register(["ep=a", "lwm2m=1.1"], b"</3/0>,</5>;ver=1.1,</5/0>")
    assert object_version(req11, 5) == "1.1"
    assert object_version(req11, 3) == "1.1"
    assert object_version(req11, 1) == "1.1"  # not announced: still the enabler default
    assert object_version(req11, 4242) == "1.0"


@pytest.mark.parametrize(
    ("lifetime", "delay"),
    [(30, 15.0), (60, 30.0), (186, 93.0), (300, 207.0), (86400, 86307.0), (1, 0.5)],
)
def test_update_delay(lifetime: float, delay: float) -> None:
    assert update_delay(lifetime) == pytest.approx(delay)


def test_update_delay_edges() -> None:
    assert update_delay(0) == math.inf
    with pytest.raises(LocalProtocolError):
        update_delay(-1)
    with pytest.raises(LocalProtocolError):
        update_delay(math.nan)


# -- fuzzing: bad input gives RegistrationError and nothing else --------------------------------

_QUERY_ITEM = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "ep=a",
            "lt=60",
            "lt=0",
            "lwm2m=1.0",
            "lwm2m=1.1",
            "lwm2m=1.2",
            "b=U",
            "b=UQ",
            "b=UQS",
            "b=T",
            "Q",
            "Q=1",
            "sms=1",
            "ep",
            "lt",
            "b",
            "lwm2m",
        ]
    ),
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(["ep", "lt", "b", "lwm2m", "sms", "Q"]),
        st.text(max_size=8),
    ),
)
_LINK = st.builds(
    lambda target, params: f"<{target}>" + "".join(params),
    st.one_of(
        st.from_regex(r"(/[0-9]{1,6}){0,5}", fullmatch=True),
        st.text(max_size=8),
        st.sampled_from(["/", "/lwm2m", "/lwm2m/3/0", "/0/0", "/21/0"]),
    ),
    st.lists(
        st.sampled_from(
            [
                ";ver=1.1",
                ';ver="1.0"',
                ";ver",
                ";ver=x",
                ';rt="oma.lwm2m"',
                ";ct=110",
                ';ct="110 112"',
                ";ct=x",
                ";obs",
                ";",
            ]
        ),
        max_size=3,
    ),
)
_PAYLOAD = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    st.lists(_LINK, max_size=6).map(lambda links: ",".join(links).encode()),
)


@given(query=st.lists(_QUERY_ITEM, max_size=6), payload=_PAYLOAD)
@settings(max_examples=400, deadline=None)
def test_parse_register_only_raises_registration_error(query: list[str], payload: bytes) -> None:
    try:
        req = parse_register(query, payload)
    except RegistrationError as exc:
        assert exc.coap_code in ("4.00", "4.12")
    else:
        assert req.endpoint
        assert 0 not in req.objects and 21 not in req.objects


@given(
    query=st.lists(_QUERY_ITEM, max_size=6),
    payload=_PAYLOAD,
    version=st.sampled_from([None, "1.0", "1.1", "1.2"]),
)
@settings(max_examples=200, deadline=None)
def test_parse_update_only_raises_registration_error(
    query: list[str], payload: bytes, version: str | None
) -> None:
    try:
        parse_update(query, payload, lwm2m_version=version)
    except RegistrationError as exc:
        assert exc.coap_code == "4.00"
