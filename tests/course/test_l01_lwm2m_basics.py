"""labkit.course.l01_lwm2m_basics:
the helpers and exercises of notebook 01_lwm2m_basics;
pure ones first, then on a live lab.
"""

from __future__ import annotations

import pytest

from labkit.course import l01_lwm2m_basics as lesson
from labkit.lwm2m.formats import ContentFormat, encode
from labkit.lwm2m.paths import Path


@pytest.fixture(scope="module")
def lab():  # type: ignore[no-untyped-def]
    from labkit import Lab

    with Lab() as lab:
        lab.add_device("sim-0001")
        yield lab


def test_tlv_fields_take_a_payload_apart() -> None:
    values = {Path.of(5, 0, 3): 2, Path.of(5, 0, 8, 0): 0, Path.of(5, 0, 8, 1): 1}
    payload = encode(int(ContentFormat.TLV), Path.of(5, 0), values)
    fields = lesson.tlv_fields(payload, "/5/0")
    assert fields["path"].tolist() == ["/5/0/3", "/5/0/8", "/5/0/8/0", "/5/0/8/1"]
    assert fields.loc[0, "header"] == "c1 03" and fields.loc[0, "value"] == "02"
    assert fields.loc[0, "name"] == "State"
    assert fields.loc[1, "kind"] == "multiple resource"
    assert fields.loc[2, "kind"] == "resource instance"


def test_tlv_fields_of_an_object_read_and_of_garbage() -> None:
    payload = encode(int(ContentFormat.TLV), Path.of(5), {Path.of(5, 0, 3): 1})
    fields = lesson.tlv_fields(payload, "/5")
    assert fields["kind"].tolist() == ["object instance", "resource"]
    assert fields["path"].tolist() == ["/5/0", "/5/0/3"]
    broken = lesson.tlv_fields(b"\xc1\x03", "/5/0")
    assert broken["kind"].tolist() == ["error"]
    assert lesson.tlv_fields(b"", "/5/0").empty


def test_values_table_names_resources_and_units() -> None:
    table = lesson.values_table({Path.of(4, 0, 2): -90, "/3/0/3": "1.0.0"})
    assert table["path"].tolist() == ["/3/0/3", "/4/0/2"]
    assert table["name"].tolist() == ["Firmware Version", "Radio Signal Strength"]
    assert table.loc[1, "units"] == "dBm"


def test_registration_tables(lab) -> None:  # type: ignore[no-untyped-def]
    reg = lab.device("sim-0001").registration
    query = lesson.registration_table(reg)
    assert query["parameter"].tolist() == ["ep", "lt", "lwm2m", "b", "Q"]
    assert query.loc[0, "value"] == "sim-0001"
    objects = lesson.objects_table(reg)
    assert {1, 3, 4, 5} <= set(objects["object"])
    assert 0 not in set(objects["object"])
    assert objects.set_index("object").loc[5, "name"] == "Firmware Update"


def test_read_formats_shows_the_same_values_three_ways(lab) -> None:  # type: ignore[no-untyped-def]
    formats = lesson.read_formats(lab.device("sim-0001"), "/5/0")
    sizes = formats.frame()
    assert sizes["content_format"].tolist() == [11542, 110, 112]
    assert (sizes["code"] == "2.05").all()
    assert sizes["bytes"].tolist() == [len(formats.payload(f)) for f in (11542, 110, 112)]
    values = formats.values()
    assert values.set_index("path").loc["/5/0/3"].tolist() == [0, 0, 0]
    assert formats.payload(110).startswith(b"[{")
    assert "TLV (11542)" in formats._repr_html_() and "/5/0" in repr(formats)
    with pytest.raises(KeyError):
        formats.payload(60)


def test_links_table_of_a_discover(lab) -> None:  # type: ignore[no-untyped-def]
    links = lesson.links_table(lab.device("sim-0001").discover("/5/0"))
    assert links.loc[0, "path"] == "/5/0"
    row = links.set_index("path").loc["/5/0/3"]
    assert row["name"] == "State" and row["link"] == "</5/0/3>"
