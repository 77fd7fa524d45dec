"""Hypothesis round trips: decode(encode(values)) == values for every encodable format.

Content is generated for random paths with a random type per resource; the resolver given to
both sides tells those types. Floats are compared exactly: every encoder keeps them (TLV and
CBOR fall back to 8 bytes, JSON and text write ``repr``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.lwm2m.formats import ContentFormat, decode, encode
from labkit.lwm2m.objects import ResourceType
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import ObjLink, Value

RT = ResourceType
VALUE_TYPES = [t for t in RT if t is not RT.NONE]

_VALUES: dict[ResourceType, st.SearchStrategy[Value]] = {
    RT.STRING: st.text(max_size=20),
    RT.CORELNK: st.text(max_size=20),
    RT.INTEGER: st.integers(-(2**63), 2**63 - 1),
    RT.TIME: st.integers(-(2**63), 2**63 - 1),
    RT.UNSIGNED_INTEGER: st.integers(0, 2**64 - 1),
    RT.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
    RT.BOOLEAN: st.booleans(),
    RT.OPAQUE: st.binary(max_size=40),
    RT.OBJLNK: st.builds(ObjLink, st.integers(0, 65535), st.integers(0, 65535)),
}
_ids = st.integers(0, 65534)
_small_ids = st.one_of(st.integers(0, 20), _ids)


@dataclass
class Case:
    base: Path
    values: dict[Path, Value]
    types: Callable[[Path], ResourceType | None]


@st.composite
def cases(draw: st.DrawFn, *, single: bool = False, only: ResourceType | None = None) -> Case:
    """An object's content; ``base`` is an ancestor of (or equal to) one of its paths."""
    obj = draw(_small_ids)
    rtypes = draw(
        st.dictionaries(
            _small_ids,
            st.tuples(
                st.sampled_from(VALUE_TYPES) if only is None else st.just(only), st.booleans()
            ),
            min_size=1,
            max_size=5,
        )
    )
    values: dict[Path, Value] = {}
    for iid in draw(st.lists(_small_ids, min_size=1, max_size=3, unique=True)):
        for rid, (rtype, multiple) in rtypes.items():
            if not draw(st.booleans()) and values:
                continue
            if multiple:
                for riid in draw(st.lists(_small_ids, min_size=1, max_size=3, unique=True)):
                    values[Path.of(obj, iid, rid, riid)] = draw(_VALUES[rtype])
            else:
                values[Path.of(obj, iid, rid)] = draw(_VALUES[rtype])

    def types(path: Path) -> ResourceType | None:
        if path.object_id != obj or path.resource_id is None:
            return None
        entry = rtypes.get(path.resource_id)
        return None if entry is None else entry[0]

    anchor = draw(st.sampled_from(sorted(values)))
    if single:
        return Case(anchor, {anchor: values[anchor]}, types)
    base = Path(anchor.ids[: draw(st.integers(1, anchor.level))])
    return Case(base, {p: v for p, v in values.items() if p.startswith(base)}, types)


def _round_trip(fmt: ContentFormat, case: Case) -> None:
    wire = encode(fmt, case.base, case.values, case.types)
    assert decode(fmt, wire, case.base, case.types) == case.values


SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(cases())
def test_tlv_round_trip(case: Case) -> None:
    _round_trip(ContentFormat.TLV, case)


@SETTINGS
@given(cases())
def test_senml_json_round_trip(case: Case) -> None:
    _round_trip(ContentFormat.SENML_JSON, case)


@SETTINGS
@given(cases())
def test_senml_cbor_round_trip(case: Case) -> None:
    _round_trip(ContentFormat.SENML_CBOR, case)


@SETTINGS
@given(cases())
def test_lwm2m_cbor_round_trip(case: Case) -> None:
    _round_trip(ContentFormat.LWM2M_CBOR, case)


@SETTINGS
@given(cases(single=True))
def test_text_round_trip(case: Case) -> None:
    _round_trip(ContentFormat.TEXT, case)


@SETTINGS
@given(cases(single=True))
def test_plain_cbor_round_trip(case: Case) -> None:
    _round_trip(ContentFormat.CBOR, case)


@SETTINGS
@given(cases(single=True, only=RT.OPAQUE))
def test_opaque_round_trip(case: Case) -> None:
    _round_trip(ContentFormat.OPAQUE, case)


@SETTINGS
@given(cases())
def test_senml_round_trip_without_types(case: Case) -> None:
    # SenML is self-describing: with an "unknown type" resolver every value comes back as the
    # same Python value (vs str, vb bool, vd bytes, vlo ObjLink, v int or float).
    for fmt in (ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR):
        wire = encode(fmt, case.base, case.values, lambda p: None)
        assert decode(fmt, wire, case.base, lambda p: None) == case.values
