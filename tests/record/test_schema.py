"""The event table schema: building frames from events, coercion, and validation errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.events import EVENT_FIELDS, KINDS, SOURCES, Event
from labkit.record.schema import (
    COLUMN_NAMES,
    COLUMNS,
    RESULT_NAMES,
    SCHEMA_VERSION,
    STATE_NAMES,
    SchemaError,
    arrow_schema,
    coerce,
    empty_frame,
    events_to_frame,
    frame_from_arrow,
    validate,
)
from tests.record.record_events import T0, scenario


def frame() -> pd.DataFrame:
    return events_to_frame(scenario(), "run-1")


def problems_of(df: pd.DataFrame) -> tuple[str, ...]:
    with pytest.raises(SchemaError) as info:
        validate(df)
    return info.value.problems


def test_columns_cover_every_event_field_plus_seq_and_run_id() -> None:
    assert SCHEMA_VERSION == 1
    assert set(COLUMN_NAMES) == {*EVENT_FIELDS, "seq", "run_id"}
    assert COLUMN_NAMES[:3] == ("ts", "seq", "run_id")
    assert all(c.meaning for c in COLUMNS)


def test_labels_follow_the_spec() -> None:
    assert STATE_NAMES == ("IDLE", "DOWNLOADING", "DOWNLOADED", "UPDATING")
    assert RESULT_NAMES[0] == "INITIAL" and RESULT_NAMES[1] == "SUCCESS"
    assert RESULT_NAMES[11] == "DEFERRED" and len(RESULT_NAMES) == 12


def test_events_to_frame_types_every_column() -> None:
    df = frame()
    validate(df)
    assert isinstance(df.index, pd.RangeIndex)
    assert df["seq"].tolist() == list(range(len(df)))
    assert str(df["ts"].dtype) == "datetime64[us, UTC]"
    assert df["ts"].iloc[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert df["state"].dtype.ordered
    assert df["state"].max() == "UPDATING"
    assert df.loc[df["kind"] == "fw_result", "result"].tolist()[:2] == ["SUCCESS", "INITIAL"]
    assert str(df["rssi_dbm"].dtype) == "Int16" and str(df["battery"].dtype) == "Int8"
    assert df["rssi_dbm"].notna().sum() == 4  # three link rows and one decision
    assert df["detail"].dtype == pd.StringDtype()
    assert list(df["device"].cat.categories) == ["dev-a", "dev-b"]
    assert df["device"].isna().sum() == 1
    assert list(df["source"].cat.categories) == list(SOURCES)
    assert list(df["kind"].cat.categories) == list(KINDS)


def test_events_to_frame_start_seq_and_empty() -> None:
    df = events_to_frame(scenario()[:3], "r", start_seq=10)
    assert df["seq"].tolist() == [10, 11, 12]
    empty = events_to_frame([], "r")
    validate(empty)
    assert len(empty) == 0 and list(empty.columns) == list(COLUMN_NAMES)
    pd.testing.assert_frame_equal(empty, empty_frame())


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("state", 4, "state"),
        ("result", 12, "result"),
        ("result", -1, "result"),
        ("ts", float("nan"), "ts"),
        ("battery", 300, "battery"),
    ],
)
def test_events_to_frame_rejects_unrepresentable_values(
    field: str, value: object, needle: str
) -> None:
    kw: dict[str, object] = {"ts": T0, "source": "device", "kind": "note", field: value}
    with pytest.raises(SchemaError) as info:
        events_to_frame([Event(**kw)], "r")  # type: ignore[arg-type]
    assert any(p.startswith(needle) for p in info.value.problems)


def test_validate_reports_missing_and_extra_columns() -> None:
    df = frame().drop(columns=["detail", "rtt_ms"]).assign(bogus=1)
    probs = problems_of(df)
    assert any("missing columns" in p and "detail" in p and "rtt_ms" in p for p in probs)
    assert any("extra columns" in p and "bogus" in p for p in probs)


def test_validate_reports_column_order() -> None:
    df = frame()
    cols = list(df.columns)
    cols[3], cols[4] = cols[4], cols[3]
    assert any("out of order" in p for p in problems_of(df[cols]))


def test_validate_reports_wrong_dtypes() -> None:
    df = frame()
    df["rssi_dbm"] = df["rssi_dbm"].astype("float64")
    df["device"] = df["device"].astype(object)
    df["reason"] = df["reason"].astype(object)
    probs = problems_of(df)
    assert len(probs) == 3
    assert {p.split(":")[0] for p in probs} == {"rssi_dbm", "device", "reason"}


def test_validate_reports_unknown_categories() -> None:
    df = frame()
    kind = df["kind"].astype(object)
    kind.iloc[3] = "teleported"
    df["kind"] = kind
    state = df["state"].astype(object)
    state.iloc[4] = "EXPLODING"
    df["state"] = state
    probs = problems_of(df)
    assert any("kind: unknown categories ['teleported']" in p for p in probs)
    assert any("state: unknown categories ['EXPLODING']" in p for p in probs)


def test_validate_reports_unordered_state_and_missing_kind() -> None:
    df = frame()
    df["state"] = df["state"].cat.as_unordered()
    kind = df["kind"].copy()
    kind.iloc[0] = np.nan
    df["kind"] = kind
    probs = problems_of(df)
    assert any(p.startswith("state: dtype") for p in probs)
    assert any("kind: 1 missing values" in p for p in probs)


def test_validate_reports_seq_not_increasing() -> None:
    df = frame()
    seq = df["seq"].to_numpy().copy()
    seq[5] = seq[4]
    df["seq"] = seq
    probs = problems_of(df)
    assert len(probs) == 1 and "seq: not strictly increasing" in probs[0]
    assert "row 5" in probs[0]


def test_validate_reports_timestamps_not_utc() -> None:
    df = frame()
    df["ts"] = df["ts"].dt.tz_convert("Europe/Berlin")
    assert any("not UTC" in p for p in problems_of(df))
    df["ts"] = df["ts"].dt.tz_localize(None)
    assert any(p.startswith("ts: dtype") for p in problems_of(df))


def test_validate_lists_every_problem_at_once() -> None:
    df = frame().drop(columns=["wave"])
    df["bytes"] = df["bytes"].astype("float64")
    df["seq"] = df["seq"].to_numpy()[::-1].copy()
    probs = problems_of(df)
    assert len(probs) == 3
    assert "schema v1" in str(SchemaError(probs))


def test_coerce_restores_dtypes_from_plain_objects() -> None:
    df = frame()
    plain = df.astype(object)
    plain["ts"] = df["ts"].astype("datetime64[ns, UTC]")
    back = coerce(plain)
    validate(back)
    pd.testing.assert_frame_equal(back, df)


def test_coerce_rejects_unknown_fixed_categories() -> None:
    df = frame().astype({"source": object})
    df.loc[0, "source"] = "martians"
    with pytest.raises(SchemaError, match="source"):
        coerce(df)


def test_parquet_round_trip_is_exact() -> None:
    df = frame()
    table = pa.Table.from_pandas(df, schema=arrow_schema(), preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    back = pq.read_table(pa.BufferReader(sink.getvalue())).to_pandas()
    validate(back)  # Parquet keeps ordered categories and the time zone
    pd.testing.assert_frame_equal(coerce(back), df)


_events = st.builds(
    Event,
    ts=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    source=st.sampled_from(SOURCES),
    kind=st.sampled_from(KINDS),
    device=st.none() | st.text(min_size=1, max_size=5),
    state=st.none() | st.integers(0, 3),
    result=st.none() | st.integers(0, 11),
    rssi_dbm=st.none() | st.integers(-140, 0),
    battery=st.none() | st.integers(0, 100),
    decision=st.none() | st.sampled_from(["push", "wait", "pull", "give_up"]),
    rtt_ms=st.none() | st.floats(0, 1e4),
    bytes=st.none() | st.integers(0, 2**40),
    detail=st.none() | st.text(max_size=10),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_events, max_size=20))
def test_any_events_round_trip_through_parquet(events: list[Event]) -> None:
    df = events_to_frame(events, "r")
    validate(df)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(df, schema=arrow_schema(), preserve_index=False), sink)
    back = coerce(pq.read_table(pa.BufferReader(sink.getvalue())).to_pandas())
    pd.testing.assert_frame_equal(back, df)


def _arrow_of(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False).cast(arrow_schema())


def test_frame_from_arrow_equals_the_coerce_path() -> None:
    frame = events_to_frame(scenario(), "r1")
    frame["rtt_ms"] = frame["rtt_ms"].astype("Float64")
    table = _arrow_of(frame)
    # several chunks with their own dictionaries, one sliced (buffer offsets)
    chunks = [table.slice(0, 3), table.slice(3, 5), table.slice(8)]
    for t in (table, pa.concat_tables(chunks), table.slice(2, 7)):
        fast = frame_from_arrow(t.replace_schema_metadata(None))
        assert fast is not None
        slow = coerce(t.replace_schema_metadata(None).to_pandas())
        pd.testing.assert_frame_equal(fast, slow, check_exact=True)
        validate(fast)
    # a NaN round-trip time becomes NA, as the coerce path does
    nan = table.set_column(
        table.schema.get_field_index("rtt_ms"),
        "rtt_ms",
        pa.array([float("nan")] * table.num_rows, pa.float64()),
    )
    fast = frame_from_arrow(nan)
    assert fast is not None and fast["rtt_ms"].isna().all()


def test_frame_from_arrow_leaves_what_needs_checking_to_coerce() -> None:
    table = _arrow_of(events_to_frame(scenario(), "r1"))
    assert frame_from_arrow(table.slice(0, 0)) is None  # empty: full path
    assert frame_from_arrow(table.drop_columns(["wave"])) is None  # another schema
    kind = table.schema.get_field_index("kind")
    unknown = pa.DictionaryArray.from_arrays(
        pa.array([0] * table.num_rows, pa.int8()), pa.array(["teleport"])
    )
    assert frame_from_arrow(table.set_column(kind, "kind", unknown)) is None
    missing = pa.DictionaryArray.from_arrays(
        pa.array([None] * table.num_rows, pa.int8()), pa.array(["note"])
    )
    assert frame_from_arrow(table.set_column(kind, "kind", missing)) is None
    # an unknown but unused dictionary value is fine, as on the coerce path
    state = table.schema.get_field_index("state")
    spare = pa.DictionaryArray.from_arrays(
        pa.array([None] * table.num_rows, pa.int8()), pa.array(["IDLE", "LIMBO"])
    )
    fast = frame_from_arrow(table.set_column(state, "state", spare.cast(table["state"].type)))
    assert fast is not None and fast["state"].isna().all()
