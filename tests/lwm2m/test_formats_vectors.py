"""Real payloads captured from Anjay 3.14 and Wakaama (shared/vectors/*.json).

Every 2.05 read decodes with the decoder its content format names; the same path read in
several formats gives the same values (except the resources that move between reads);
re-encoding in the same format decodes to the same values; Discover and Register link
payloads parse.
"""

from __future__ import annotations

import json
import os
from pathlib import Path as FsPath
from typing import Any

import pytest

from labkit.lwm2m.formats import decode, encode, parse_links
from labkit.lwm2m.paths import Path


def _vector_dir() -> FsPath | None:
    candidates = [
        os.environ.get("LABKIT_VECTORS", ""),
        str(FsPath(__file__).resolve().parents[1] / "data" / "vectors"),
        "/work/shared/vectors",
    ]
    for candidate in candidates:
        if candidate and (FsPath(candidate) / "README.md").is_file():
            return FsPath(candidate)
    return None


VECTOR_DIR = _vector_dir()
pytestmark = pytest.mark.skipif(VECTOR_DIR is None, reason="captured vectors not found")
FILES = sorted(p.name for p in VECTOR_DIR.glob("*.json")) if VECTOR_DIR is not None else []

# Resources whose values move between two reads (vectors/README.md).
VOLATILE = {Path.parse(p) for p in ("/3/0/13", "/4/0/2", "/4/0/3", "/3/0/9", "/3/0/7", "/3/0/8")}


def _load(name: str) -> dict[str, Any]:
    assert VECTOR_DIR is not None
    data: dict[str, Any] = json.loads((VECTOR_DIR / name).read_text())
    return data


def _reads(name: str) -> list[dict[str, Any]]:
    return [r for r in _load(name)["reads"] if r["code"].startswith("2.05")]


READS = [
    pytest.param(name, read, id=f"{name}:{read['path']}:{read['content_format']}")
    for name in FILES
    for read in _reads(name)
]


def _stable(values: dict[Path, object]) -> dict[Path, object]:
    return {p: v for p, v in values.items() if not any(p.startswith(vol) for vol in VOLATILE)}


def test_vectors_are_there() -> None:
    assert len(FILES) == 3
    assert len(READS) >= 30


@pytest.mark.parametrize(("name", "read"), READS)
def test_every_read_decodes(name: str, read: dict[str, Any]) -> None:
    base = Path.parse(read["path"])
    values = decode(read["content_format"], bytes.fromhex(read["payload_hex"]), base)
    assert values
    assert all(p.startswith(base) and p.level in (3, 4) for p in values)


@pytest.mark.parametrize(("name", "read"), READS)
def test_reencoding_decodes_to_the_same_values(name: str, read: dict[str, Any]) -> None:
    base, fmt = Path.parse(read["path"]), read["content_format"]
    values = decode(fmt, bytes.fromhex(read["payload_hex"]), base)
    assert decode(fmt, encode(fmt, base, values), base) == values


@pytest.mark.parametrize("name", FILES)
def test_formats_agree_on_the_same_path(name: str) -> None:
    by_path: dict[str, list[tuple[int, dict[Path, object]]]] = {}
    for read in _reads(name):
        base = Path.parse(read["path"])
        values = decode(read["content_format"], bytes.fromhex(read["payload_hex"]), base)
        by_path.setdefault(read["path"], []).append((read["content_format"], values))
    compared = 0
    for path, decoded in by_path.items():
        first_fmt, first = decoded[0]
        for fmt, values in decoded[1:]:
            assert _stable(values) == _stable(first), (path, first_fmt, fmt)
            assert set(values) == set(first), (path, first_fmt, fmt)
            compared += 1
    assert compared >= 2


def test_known_values_from_the_vectors() -> None:
    anjay = {(r["path"], r["content_format"]): r for r in _reads("anjay-3.14-lwm2m-1.1.json")}
    tlv = anjay[("/5/0", 11542)]
    values = decode(11542, bytes.fromhex(tlv["payload_hex"]), Path.of(5, 0))
    assert values[Path.of(5, 0, 9)] == 2
    assert [values[Path.of(5, 0, 8, i)] for i in range(6)] == [0, 1, 2, 3, 4, 5]
    conn = anjay[("/4/0", 112)]
    values = decode(112, bytes.fromhex(conn["payload_hex"]), Path.of(4, 0))
    assert values[Path.of(4, 0, 4, 0)] == "10.10.53.53"
    server = anjay[("/1/1", 110)]
    values = decode(110, bytes.fromhex(server["payload_hex"]), Path.of(1, 1))
    assert values[Path.of(1, 1, 6)] is True and values[Path.of(1, 1, 1)] == 60
    wakaama = {(r["path"], r["content_format"]): r for r in _reads("wakaama-example-client.json")}
    fw = wakaama[("/5/0", 110)]
    values = decode(110, bytes.fromhex(fw["payload_hex"]), Path.of(5, 0))
    assert values[Path.of(5, 0, 6)] == "lwm2mclient"


@pytest.mark.parametrize("name", FILES)
def test_discover_and_registration_payloads_parse(name: str) -> None:
    data = _load(name)
    links = parse_links(data["registration"]["payload"])
    assert links and all(link.target.startswith("/") for link in links)
    discover = data["discover_5_0"]
    if discover["code"].startswith("2.05"):
        found = {link.target: link.params for link in parse_links(discover["payload"])}
        assert found["/5/0/8"] == {"dim": "6"}
        assert "/5/0/3" in found
    if name.startswith("wakaama"):
        assert links[0].target == "/" and links[0].params == {"rt": "oma.lwm2m", "ct": "110"}
        assert links[1].params == {"ver": "1.1"}
