"""Lesson 01, LwM2M basics (``notebooks/01_lwm2m_basics``): a registration explained
(:func:`registration_table`, :func:`objects_table`), a Read answer with names and units
(:func:`values_table`), a Discover answer (:func:`links_table`), bytes on the wire
(:func:`tlv_fields`, :func:`read_formats`, in :mod:`labkit.course.l01_wire_formats`), and the
lesson's exercises ``basics.*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from labkit.course.common import fast_mode, objects_table, resource_name, wire
from labkit.course.exercises import check, hint, path_name, plain_words, question, register
from labkit.course.l01_wire_formats import WIRE_FORMATS, FormatComparison, read_formats, tlv_fields
from labkit.lwm2m.errors import PathError
from labkit.lwm2m.formats import ContentFormat, encode
from labkit.lwm2m.objects import resource_def
from labkit.lwm2m.paths import Path

if TYPE_CHECKING:
    import pandas as pd

    from labkit.lwm2m.formats import Link
    from labkit.server.registry import Registration


__all__ = [
    "WIRE_FORMATS",
    "FormatComparison",
    "check",
    "fast_mode",
    "hint",
    "links_table",
    "objects_table",
    "question",
    "read_formats",
    "registration_table",
    "tlv_fields",
    "values_table",
    "wire",
]


def values_table(values: Mapping[str | Path, Any]) -> pd.DataFrame:
    """A Read's ``{Path: value}`` answer as a table, with each resource's name and units.

    Returns
    -------
    DataFrame
        Columns ``path``, ``name`` (registry name, "" if unknown), ``value`` and ``units``;
        one row per resource (instance), in path order.
    """
    import pandas as pd

    rows = []
    for key, value in sorted(values.items(), key=lambda kv: Path.parse(kv[0])):
        path = Path.parse(key)
        rdef = (
            resource_def(path.object_id, path.resource_id)
            if path.object_id is not None and path.resource_id is not None
            else None
        )
        rows.append(
            {
                "path": str(path),
                "name": "" if rdef is None else rdef.name,
                "value": value,
                "units": "" if rdef is None else rdef.units,
            }
        )
    return pd.DataFrame(rows, columns=["path", "name", "value", "units"])


def links_table(links: Iterable[Link]) -> pd.DataFrame:
    """A Discover answer (CoRE link format) as a table.

    Returns
    -------
    DataFrame
        Columns ``link`` (as written on the wire, ``</5/0/8>;dim=1``), ``path``, ``name``
        (resource name, "" for an object or instance) and ``attributes`` (``dim=1``...).
    """
    import pandas as pd

    from labkit.lwm2m.formats import format_links

    rows = []
    for link in links:
        path = link.path
        rows.append(
            {
                "link": format_links([link]),
                "path": str(path) if path is not None else link.target,
                "name": "" if path is None else resource_name(path),
                "attributes": ";".join(
                    k if v is None else f"{k}={v}" for k, v in link.params.items()
                ),
            }
        )
    return pd.DataFrame(rows, columns=["link", "path", "name", "attributes"])


_QUERY_MEANINGS = {
    "ep": "Endpoint Client Name: the device's unique name at this server",
    "lt": "Lifetime in seconds: without an Update within it, the server drops the registration",
    "lwm2m": "LwM2M enabler version the client speaks",
    "b": "Binding: the transport (U = UDP)",
    "Q": "Queue mode: the device sleeps and is reachable only shortly after it sends",
}


def registration_table(registration: Registration) -> pd.DataFrame:
    """The query parameters of a Register request, with what each means.

    ``registration`` is the server's record (``lab.device(ep).registration``).

    Returns
    -------
    DataFrame
        Columns ``parameter`` (ep, lt, lwm2m, b, Q), ``value`` (as text) and ``meaning``.
    """
    import pandas as pd

    values = {
        "ep": registration.endpoint,
        "lt": str(registration.lifetime),
        "lwm2m": str(registration.lwm2m_version),
        "b": str(registration.binding),
        "Q": "present" if registration.queue_mode else "absent",
    }
    rows = [{"parameter": k, "value": v, "meaning": _QUERY_MEANINGS[k]} for k, v in values.items()]
    return pd.DataFrame(rows, columns=["parameter", "value", "meaning"])


_RSSI = Path.of(4, 0, 2)


@register(
    "basics.rssi_path",
    notebook="01_lwm2m_basics",
    question=(
        "Which path holds the Radio Signal Strength that a server looks at before it decides "
        "to PUSH? Answer like '/3/0/3'."
    ),
    hint="It is a resource of Connectivity Monitoring (/4); it is in dBm.",
    solution="/4/0/2",
)
def _basics_rssi_path(answer: Any) -> tuple[bool, str]:
    try:
        path = Path.parse(answer.strip() if isinstance(answer, str) else answer)
    except PathError:
        return False, "a path looks like '/4/0/1': object, instance, resource"
    if path == _RSSI:
        return True, (
            "/4/0/2 is Radio Signal Strength (dBm) of Connectivity Monitoring, instance 0 — "
            "what the seed's PUSH method says the server should decide on."
        )
    if path.ids[:1] == (4,) and path.ids[2:3] == (2,):
        return False, "the device has only instance 0 of /4, so the path is /4/0/2"
    if path == Path.of(4, 0, 3):
        return False, "/4/0/3 is Link Quality, the second link measure; signal strength is /4/0/2"
    return False, path_name(path)


def _sample_values() -> dict[Path, Any]:
    """/5/0 of a fresh simulated device (obj 1.1, CoAP pull, both delivery methods)."""
    from labkit.lwm2m.fota import FirmwareUpdateMachine

    values: dict[Path, Any] = {}
    for rid, value in FirmwareUpdateMachine().resources().items():
        if isinstance(value, tuple):
            values.update({Path.of(5, 0, rid, i): v for i, v in enumerate(value)})
        else:
            values[Path.of(5, 0, rid)] = value
    values[Path.of(5, 0, 6)] = ""
    values[Path.of(5, 0, 7)] = ""
    return dict(sorted(values.items()))


_COMPARED = (ContentFormat.TLV, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR)


def _sizes() -> dict[ContentFormat, int]:
    values = _sample_values()
    return {fmt: len(encode(int(fmt), Path.of(5, 0), values)) for fmt in _COMPARED}


def _as_format(answer: Any) -> ContentFormat | None:
    if isinstance(answer, ContentFormat):
        return answer
    if isinstance(answer, int) and not isinstance(answer, bool):
        return ContentFormat(answer) if answer in ContentFormat._value2member_map_ else None
    if not isinstance(answer, str):
        return None
    words = plain_words(answer).replace(" ", "").removeprefix("oma")
    if words.isdigit():
        return _as_format(int(words))
    for fmt in ContentFormat:
        if words == fmt.name.lower().replace("_", ""):
            return fmt
    aliases = {"senml": None, "json": ContentFormat.SENML_JSON, "cbor": ContentFormat.SENML_CBOR}
    return aliases.get(words)


@register(
    "basics.smallest_format",
    notebook="01_lwm2m_basics",
    question=(
        "Reading /5/0 in TLV, SenML JSON and SenML CBOR: which format put it on the wire in "
        "the fewest bytes? Answer the name or the Content-Format number."
    ),
    hint="Compare the 'bytes' column of the format comparison.",
    solution="TLV",
)
def _basics_smallest_format(answer: Any) -> tuple[bool, str]:
    fmt = _as_format(answer)
    sizes = _sizes()
    if fmt is None or fmt not in sizes:
        names = ", ".join(f"{f.name} ({int(f)})" for f in _COMPARED)
        return False, f"the three formats compared are {names}"
    ranking = " < ".join(f.name for f in sorted(sizes, key=sizes.__getitem__))
    if fmt is min(sizes, key=sizes.__getitem__):
        return True, (
            f"{fmt.name} ({ranking} for /5/0). TLV spends 2-3 header bytes per resource and "
            "writes ids and integers in binary; SenML repeats a name for every record."
        )
    if fmt is ContentFormat.SENML_JSON:
        return False, f"JSON writes every name, key and number as text: {ranking}"
    return False, f"SenML CBOR is binary but still names every record: {ranking}"


_QUERY = {
    "ep": "the Endpoint Client Name",
    "lwm2m": "the LwM2M version",
    "b": "the binding (transport)",
    "q": "the queue-mode flag",
    "lt": "the lifetime",
}


@register(
    "basics.lifetime_parameter",
    notebook="01_lwm2m_basics",
    question=(
        "Which query parameter of the Register request tells the server how long to keep the "
        "registration if no Update arrives? Answer its name as it appears in the query."
    ),
    hint="Look at the registration table: one row per query parameter.",
    solution="lt",
)
def _basics_lifetime(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str):
        return False, "the answer is the parameter's name, a short text like 'ep'"
    word = answer.strip().lower().split("=", 1)[0].strip()
    if word in ("lt", "lifetime"):
        return True, (
            "lt (lifetime, seconds). The device sends an Update before it runs out; a server "
            "that hears nothing for lt seconds removes the registration."
        )
    if word in _QUERY:
        return False, f"{word} is {_QUERY[word]}, not the lifetime"
    return False, "the Register query has ep, lt, lwm2m, b and (optionally) Q"
