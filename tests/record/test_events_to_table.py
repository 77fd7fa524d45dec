"""Events straight to Arrow (:func:`labkit.record.schema.events_to_table`): the table the
recorder writes equals, metadata included, the one the pandas path (``events_to_frame`` then
``pa.Table.from_pandas``) makes, so part files hold the same data (written without column
statistics) and a closed run's file is the same bytes; values only the pandas path can judge
make it step aside, and the recorder then stores what it stored before."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.events import KINDS, SOURCES, Event
from labkit.lwm2m.objects import State, UpdateResult
from labkit.record import Recorder, read_run
from labkit.record.recorder import PART_OPTIONS
from labkit.record.runs import part_files
from labkit.record.schema import (
    arrow_schema,
    coerce,
    events_to_frame,
    events_to_table,
    frame_from_arrow,
    validate,
)
from tests.record.record_events import T0, scenario


def _pandas_table(events: list[Event], run_id: str, start: int = 0) -> pa.Table:
    frame = events_to_frame(events, run_id, start_seq=start)
    return pa.Table.from_pandas(frame, schema=arrow_schema(), preserve_index=False)


def _parquet(table: pa.Table, **options: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)  # type: ignore[arg-type]
    return sink.getvalue()


def _assert_same(events: list[Event], run_id: str = "r", start: int = 0) -> pa.Table:
    fast = events_to_table(events, run_id, start_seq=start)
    assert fast is not None
    slow = _pandas_table(events, run_id, start)
    assert fast.schema.equals(slow.schema, check_metadata=True)
    assert fast.equals(slow, check_metadata=True)
    assert _parquet(fast) == _parquet(slow)
    frame = frame_from_arrow(fast)
    assert frame is not None
    pd.testing.assert_frame_equal(frame, events_to_frame(events, run_id, start_seq=start),
                                  check_exact=True)
    return fast


_text = st.text(max_size=6)  # any code points (Hypothesis leaves out lone surrogates)
_events = st.builds(
    Event,
    ts=st.floats(min_value=0, max_value=4e9, allow_nan=False) | st.integers(0, 4_000_000_000),
    source=st.sampled_from(SOURCES),
    kind=st.sampled_from(KINDS),
    device=st.none() | _text,
    state=st.none() | st.integers(0, 3) | st.sampled_from(list(State)),
    result=st.none() | st.integers(0, 11) | st.sampled_from(list(UpdateResult)),
    rssi_dbm=st.none() | st.integers(-2**15, 2**15 - 1),
    link_quality=st.none() | st.integers(0, 100),
    battery=st.none() | st.integers(-128, 127),
    decision=st.none() | st.sampled_from(["push", "wait", "pull", "give_up", ""]),
    reason=st.none() | _text,
    method=st.none() | _text,
    protocol=st.none() | st.sampled_from(["coap", "http"]),
    path=st.none() | _text,
    code=st.none() | st.sampled_from(["2.05", "2.31", "4.04", "206"]),
    rtt_ms=st.none() | st.floats(allow_infinity=False) | st.integers(0, 10_000),
    bytes=st.none() | st.integers(-2**63, 2**63 - 1),
    block=st.none() | st.integers(0, 2**40),
    fw_version=st.none() | _text,
    detail=st.none() | _text,
    wave=st.none() | st.integers(0, 50),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_events, min_size=1, max_size=30), st.integers(0, 2**40))
def test_any_events_give_the_pandas_paths_table(events: list[Event], start: int) -> None:
    _assert_same(events, "run-x", start)


def test_a_recorded_scenario_and_columns_left_empty() -> None:
    table = _assert_same(scenario(), "r1", 5)
    assert table.column("seq").to_pylist()[:2] == [5, 6]
    _assert_same([Event(ts=T0, source="lab", kind="note")])  # every optional column missing
    # a NaN round-trip time is missing, as in the pandas path
    nan = _assert_same([Event(ts=T0, source="device", kind="block", rtt_ms=float("nan"))])
    assert nan.column("rtt_ms").null_count == 1
    # free categories: sorted dictionary (code point order), as pandas writes them
    names = ["zz", "é", "a", "Z", "é", "日本", "a"]
    table = _assert_same([Event(ts=T0 + i, source="server", kind="registered", device=d)
                          for i, d in enumerate(names)])
    assert table.column("device").chunk(0).dictionary.to_pylist() == sorted(set(names))


@pytest.mark.parametrize(
    "field, value",
    [
        ("battery", 300),  # overflows Int8: an error row (pandas path)
        ("rssi_dbm", 3.5),  # Arrow would truncate it: pandas refuses it
        ("rssi_dbm", 3.0),  # pandas takes it as 3
        ("bytes", True),
        ("block", np.float64(2.0)),
        ("rtt_ms", 2**60),  # not exactly a double
        ("rtt_ms", True),
        ("device", 7),  # pandas writes "7"
        ("detail", 12),
        ("path", b"/5/0/0"),
        ("state", 1.5),  # within 0..3: the pandas path takes it as its integer part
    ],
)
def test_values_only_pandas_judges_take_the_pandas_path(field: str, value: object) -> None:
    good = Event(ts=T0, source="device", kind="link", device="d", rssi_dbm=-80)
    fields: dict[str, object] = {"device": "d", field: value}
    odd = Event(ts=T0 + 1, source="device", kind="link", **fields)  # type: ignore[arg-type]
    assert events_to_table([good, odd], "r") is None
    # the recorder stores what the pandas path makes of them, as before
    with Recorder(None) as rec:
        rec(good)
        rec(odd)
        frame = rec.frame()
    validate(frame)
    try:
        expected = events_to_frame([good, odd], rec.run_id)
    except ValueError:  # the SchemaError path: the odd event becomes an error row
        assert frame["kind"].tolist() == ["link", "error"]
    else:
        pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def _batches() -> list[list[Event]]:
    events = scenario()
    odd = Event(ts=T0 + 50, source="device", kind="link", device="dev-c", rssi_dbm=3.0)  # type: ignore[arg-type]
    return [events[:7], events[7:20], [odd, *events[20:25]], events[25:]]


def test_retained_frame_equals_the_pandas_paths_concatenation() -> None:
    batches = _batches()
    rec = Recorder(None, flush_interval=60)
    expected: list[pd.DataFrame] = []
    seq = 0
    for i, batch in enumerate(batches):
        for event in batch:
            rec(event)
        rec.flush()
        expected.append(events_to_frame(batch, rec.run_id, start_seq=seq))
        seq += len(batch)
        if i == 1:  # a frame taken midway is cached and extended afterwards
            pd.testing.assert_frame_equal(
                rec.frame(), coerce(pd.concat(expected, ignore_index=True)), check_exact=True)
    rec.close()
    want = coerce(pd.concat(expected, ignore_index=True))
    pd.testing.assert_frame_equal(rec.frame(), want, check_exact=True)
    validate(want)


@pytest.mark.parametrize("retain", [True, False])
def test_parts_are_the_bytes_the_pandas_path_writes(tmp_path: Path, retain: bool) -> None:
    batches = _batches()
    rec = Recorder(tmp_path / "r", flush_interval=60, retain=retain)
    seq = 0
    try:
        for batch in batches:
            for event in batch:
                rec(event)
            rec.flush()
            part = part_files(tmp_path / "r" / "events.parquet")[-1]
            slow = _pandas_table(batch, rec.run_id, seq)
            assert part.read_bytes() == _parquet(slow, **PART_OPTIONS)
            seq += len(batch)
        live = read_run(tmp_path / "r").events
        pd.testing.assert_frame_equal(live, rec.frame(), check_exact=True)
    finally:
        rec.close()
    frame = read_run(tmp_path / "r").events
    pd.testing.assert_frame_equal(frame, live, check_exact=True)
    # the compacted file: the whole typed table, as pandas converts it, default options
    (final,) = part_files(tmp_path / "r" / "events.parquet")
    slow = pa.Table.from_pandas(frame, schema=arrow_schema(), preserve_index=False)
    assert final.read_bytes() == _parquet(slow)


def test_a_run_of_one_flush_closes_into_the_file_one_write_of_its_frame_makes(
    tmp_path: Path,
) -> None:
    events = scenario()
    rec = Recorder(tmp_path / "r", flush_interval=60, retain=False)
    for event in events:
        rec(event)
    rec.flush()
    (part,) = part_files(tmp_path / "r" / "events.parquet")
    rec.close()
    (final,) = part_files(tmp_path / "r" / "events.parquet")
    assert final != part  # rewritten with the default options
    assert final.read_bytes() == _parquet(_pandas_table(events, rec.run_id))
    assert pq.ParquetFile(final).metadata.row_group(0).column(0).statistics is not None
