"""The event table's schema: its columns, their dtypes, and the code that builds and checks frames.

This module owns the single definition of what a run's event table looks like (DESIGN.md
section 4): :data:`COLUMNS` lists every column with its pandas dtype and meaning, in order.
:func:`events_to_frame` turns :class:`~labkit.events.Event` rows into a typed frame,
:func:`coerce` restores the dtypes of a frame read back from disk, and :func:`validate` checks a
frame and reports every problem at once in a :class:`SchemaError`. It never reads or writes files.

Dtype choices, made so Parquet round-trips a frame exactly: timestamps are
``datetime64[us, UTC]``; sparse integers use the nullable ``Int8``/``Int16``/``Int64`` dtypes and
sparse floats ``Float64`` (missing = ``pd.NA``); free text uses the nullable ``"string"`` dtype.
Columns whose values come from a closed list (``source``, ``kind``, ``state``, ``result``) are
categoricals with *fixed* categories, in the spec's order (``state`` is ordered
IDLE < DOWNLOADING < DOWNLOADED < UPDATING, ``result`` lists the 12 /5/0/5 names by code), so
frames from different runs concatenate without losing the dtype. Open-ended labels (``run_id``,
``device``, ``decision``, ``method``, ``protocol``, ``code``) are categoricals whose categories
are the sorted values present (the canonical form :func:`coerce` produces).
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from labkit.events import EVENT_FIELDS, KINDS, SOURCES, Event
from labkit.lwm2m.objects import State, UpdateResult

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "KIND_DTYPE",
    "RESULT_DTYPE",
    "RESULT_NAMES",
    "SCHEMA_VERSION",
    "SOURCE_DTYPE",
    "STATE_DTYPE",
    "STATE_NAMES",
    "TS_DTYPE",
    "Column",
    "SchemaError",
    "arrow_schema",
    "coerce",
    "empty_frame",
    "events_to_frame",
    "events_to_table",
    "frame_from_arrow",
    "validate",
]

#: Version of the on-disk layout and columns; bumped whenever a column changes meaning or dtype.
SCHEMA_VERSION = 1

#: /5/0/3 names in code order (OMA /5: 0 Idle, 1 Downloading, 2 Downloaded, 3 Updating).
STATE_NAMES: tuple[str, ...] = tuple(s.name for s in sorted(State))
#: /5/0/5 names in code order (OMA /5 v1.1: 0 Initial ... 11 Deferred).
RESULT_NAMES: tuple[str, ...] = tuple(r.name for r in sorted(UpdateResult))

TS_DTYPE = pd.DatetimeTZDtype(unit="us", tz="UTC")
STATE_DTYPE = pd.CategoricalDtype(pd.Index(STATE_NAMES, dtype="str"), ordered=True)
RESULT_DTYPE = pd.CategoricalDtype(pd.Index(RESULT_NAMES, dtype="str"), ordered=False)
SOURCE_DTYPE = pd.CategoricalDtype(pd.Index(SOURCES, dtype="str"), ordered=False)
KIND_DTYPE = pd.CategoricalDtype(pd.Index(KINDS, dtype="str"), ordered=False)

#: Marker dtype for open-ended categoricals (categories = sorted values present).
FREE_CATEGORY = "category"


class SchemaError(ValueError):
    """A frame does not match the event table schema.

    Attributes
    ----------
    problems : tuple of str
        Every problem found, one sentence each.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"event table does not match schema v{SCHEMA_VERSION}:\n{lines}")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the event table: its name, pandas dtype and meaning."""

    name: str
    dtype: Any  # a pandas dtype object, or FREE_CATEGORY
    meaning: str


#: The event table's columns, in order (DESIGN.md section 4).
COLUMNS: tuple[Column, ...] = (
    Column("ts", TS_DTYPE, "when it was observed, in the lab's clock (simulated time if scaled)"),
    Column("seq", np.dtype("int64"), "order within the run: 0, 1, 2 ... in arrival order"),
    Column("run_id", FREE_CATEGORY, "run identifier (the run directory's name)"),
    Column("device", FREE_CATEGORY, "LwM2M endpoint name; missing for lab-wide events"),
    Column("source", SOURCE_DTYPE, "which part of the lab observed it (labkit.events.SOURCES)"),
    Column("kind", KIND_DTYPE, "what happened (labkit.events.KINDS)"),
    Column("state", STATE_DTYPE, "/5/0/3 State name, IDLE < DOWNLOADING < DOWNLOADED < UPDATING"),
    Column("result", RESULT_DTYPE, "/5/0/5 Update Result name, INITIAL ... DEFERRED"),
    Column("rssi_dbm", pd.Int16Dtype(), "/4/0/2 Radio Signal Strength, dBm"),
    Column("link_quality", pd.Int16Dtype(), "/4/0/3 Link Quality"),
    Column("battery", pd.Int8Dtype(), "/3/0/9 Battery Level, percent"),
    Column("decision", FREE_CATEGORY, "a PUSH-decision policy's output: push, wait, pull, give_up"),
    Column("reason", pd.StringDtype(), "why the policy decided so"),
    Column("method", FREE_CATEGORY, "push/pull, or the CoAP/HTTP method of a request"),
    Column("protocol", FREE_CATEGORY, "transfer protocol: coap, http"),
    Column("path", pd.StringDtype(), "LwM2M path or URI path of a request"),
    Column("code", FREE_CATEGORY, "CoAP response code (2.05) or HTTP status (206)"),
    Column("rtt_ms", pd.Float64Dtype(), "round-trip time of a request, milliseconds"),
    Column("bytes", pd.Int64Dtype(), "payload bytes of a block, request or response"),
    Column("block", pd.Int64Dtype(), "block number (CoAP Block1/Block2) or range index (HTTP)"),
    Column("fw_version", pd.StringDtype(), "/3/0/3 Firmware Version when known"),
    Column("detail", pd.StringDtype(), "anything else, human-readable"),
    Column("wave", pd.Int16Dtype(), "campaign wave of the device (0 = canary), when known"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
_FIXED_CATEGORIES = {"source": SOURCES, "kind": KINDS, "state": STATE_NAMES, "result": RESULT_NAMES}
_EVENT_COLUMNS = tuple(n for n in COLUMN_NAMES if n not in ("seq", "run_id"))

if set(_EVENT_COLUMNS) != set(EVENT_FIELDS):  # pragma: no cover - caught by the tests too
    raise ImportError(
        "labkit.record.schema is out of date with labkit.events.Event: "
        f"{sorted(set(_EVENT_COLUMNS) ^ set(EVENT_FIELDS))}"
    )


def _free_category(values: Any) -> pd.Series:
    """Canonical open-ended categorical: categories are the sorted non-missing values present."""
    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    if isinstance(s.dtype, pd.CategoricalDtype):
        cat = s.array
        assert isinstance(cat, pd.Categorical)
        codes = np.asarray(cat.codes, dtype=np.int64)
        names = [str(c) for c in cat.categories]
        used = np.bincount(codes[codes >= 0], minlength=len(names)) > 0
        present = sorted({names[i] for i in np.flatnonzero(used)})
        position = {name: i for i, name in enumerate(present)}
        remap = np.array([position.get(name, -1) for name in names] + [-1], dtype=np.int64)
        new_codes = remap[codes]  # code -1 (missing) picks the trailing -1
        dtype = pd.CategoricalDtype(pd.Index(present, dtype="str"), ordered=False)
        return pd.Series(pd.Categorical.from_codes(new_codes, dtype=dtype))
    strings = s.astype("string")
    present = sorted(strings.dropna().unique().tolist())
    dtype = pd.CategoricalDtype(pd.Index(present, dtype="str"), ordered=False)
    return pd.Series(pd.Categorical(strings.to_numpy(dtype=object, na_value=None), dtype=dtype))


def _fixed_category(name: str, s: pd.Series, dtype: pd.CategoricalDtype) -> pd.Series:
    """Values as a fixed-category column; unknown values raise instead of becoming missing."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cat = s.array
        assert isinstance(cat, pd.Categorical)
        used = np.bincount(cat.codes[cat.codes >= 0], minlength=len(cat.categories)) > 0
        seen = {str(c) for c in cat.categories[used]}
        if s.dtype == dtype:
            return s
    else:
        s = s.astype(object).where(s.notna(), None)
        seen = {str(v) for v in s.dropna().unique()}
    unknown = sorted(seen - set(dtype.categories))
    if unknown:
        raise ValueError(f"unknown categories {unknown}")
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.cat.rename_categories([str(c) for c in s.cat.categories])
    return s.astype(dtype)


def _column(name: str, values: Any) -> pd.Series:
    """Values converted to column ``name``'s dtype (raises ValueError/TypeError on bad values)."""
    col = _BY_NAME[name]
    if isinstance(col.dtype, str):
        return _free_category(values)
    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    if name == "ts":
        return _ts_column(s)
    if isinstance(col.dtype, pd.CategoricalDtype):
        return _fixed_category(name, s, col.dtype)
    return s.astype(col.dtype)


def _ts_column(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").astype(TS_DTYPE)
    if s.dtype.kind == "M":
        raise TypeError("ts holds naive datetimes; timestamps must be UTC")
    secs = s.to_numpy(dtype=np.float64)
    return _epoch_to_ts(secs)


def _epoch_to_ts(secs: np.ndarray) -> pd.Series:
    if not np.isfinite(secs).all():
        raise ValueError("ts holds missing or non-finite timestamps")
    micros = np.rint(secs * 1e6).astype(np.int64)
    return pd.Series(micros.astype("datetime64[us]")).dt.tz_localize("UTC")


def _codes(values: list[int | None], n_names: int, column: str) -> np.ndarray:
    codes = np.fromiter((-1 if v is None else int(v) for v in values), np.int64, len(values))
    bad = (codes < -1) | (codes >= n_names)
    bad |= np.fromiter((v is not None and int(v) < 0 for v in values), bool, len(values))
    if bad.any():
        wrong = sorted({values[i] for i in np.flatnonzero(bad)}, key=repr)
        raise SchemaError([f"{column}: codes {wrong} are outside 0..{n_names - 1}"])
    return codes


def empty_frame() -> pd.DataFrame:
    """An event table with no rows and every column typed.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`COLUMNS` (``ts``, ``seq``, ``run_id``, ``device``, ``source``,
        ``kind``, ``state``, ``result``, ``rssi_dbm``, ``link_quality``, ``battery``, ``decision``,
        ``reason``, ``method``, ``protocol``, ``path``, ``code``, ``rtt_ms``, ``bytes``,
        ``block``, ``fw_version``, ``detail``, ``wave``), zero rows.
    """
    return coerce(pd.DataFrame({name: pd.Series([], dtype=object) for name in COLUMN_NAMES}))


def events_to_frame(events: Iterable[Event], run_id: str, start_seq: int = 0) -> pd.DataFrame:
    """Build a typed event table from events, numbering them from ``start_seq``.

    Parameters
    ----------
    events : iterable of Event
        Rows in arrival order.
    run_id : str
        Written to every row's ``run_id``.
    start_seq : int
        ``seq`` of the first event.

    Returns
    -------
    pandas.DataFrame
        One row per event with the columns of :data:`COLUMNS`; RangeIndex.

    Raises
    ------
    SchemaError
        When an event's value cannot be represented (a State outside 0..3, a Result outside
        0..11, a non-finite timestamp, an integer that overflows its column).
    """
    rows = list(events)
    n = len(rows)
    data: dict[str, Any] = {}
    problems: list[str] = []
    for name in COLUMN_NAMES:
        if name == "seq":
            data[name] = pd.Series(np.arange(start_seq, start_seq + n, dtype=np.int64))
            continue
        if name == "run_id":
            dtype = pd.CategoricalDtype(pd.Index([run_id] if n else [], dtype="str"))
            data[name] = pd.Series(pd.Categorical.from_codes(np.zeros(n, np.int8), dtype=dtype))
            continue
        values = [getattr(e, name) for e in rows]
        try:
            if name == "ts":
                data[name] = _epoch_to_ts(np.asarray(values, dtype=np.float64))
            elif name in ("state", "result"):
                dtype = STATE_DTYPE if name == "state" else RESULT_DTYPE
                codes = _codes(values, len(dtype.categories), name)
                data[name] = pd.Series(pd.Categorical.from_codes(codes, dtype=dtype))
            elif name in ("source", "kind"):
                dtype = SOURCE_DTYPE if name == "source" else KIND_DTYPE
                data[name] = pd.Series(pd.Categorical(values, dtype=dtype))
            else:
                data[name] = _column(name, pd.Series(values, dtype=object))
        except SchemaError as exc:
            problems.extend(exc.problems)
        except (TypeError, ValueError, OverflowError) as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise SchemaError(problems)
    return pd.DataFrame(data, columns=list(COLUMN_NAMES))


#: Arrow types a column's Python values may be inferred as for :func:`events_to_table` to
#: take them as they are (anything else: the pandas path of :func:`events_to_frame` decides)
_INT_LIKE = (pa.int64(), pa.null())
_FLOAT_LIKE = (pa.float64(), pa.int64(), pa.null())
_STR_LIKE = (pa.string(), pa.null())
_STATE_DICT = pa.array(STATE_NAMES, pa.string())
_RESULT_DICT = pa.array(RESULT_NAMES, pa.string())
_SOURCE_DICT = pa.array(SOURCES, pa.string())
_KIND_DICT = pa.array(KINDS, pa.string())
_GETTERS = {name: operator.attrgetter(name) for name in _EVENT_COLUMNS}


def _inferred(values: Sequence[Any], allowed: tuple[pa.DataType, ...]) -> pa.Array | None:
    """``values`` as an Arrow array of an inferred type in ``allowed`` (NaN = missing), or
    None when Arrow would infer another type (bools, mixed types) or cannot convert them."""
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    return array if array.type in allowed else None


def _fixed_dictionary(
    values: Sequence[Any], dictionary: pa.Array, ordered: bool, *, codes: bool
) -> pa.Array | None:
    """A fixed-category column as a dictionary array of int8 indices (None: not certain)."""
    if codes:  # state/result: integer codes, missing = None
        array = _inferred(values, _INT_LIKE)
        if array is None:
            return None
        if array.type == pa.null():
            indices = pa.nulls(len(array), pa.int8())
        else:
            lo, hi = pc.min_max(array).values()
            if array.null_count < len(array) and (
                lo.as_py() < 0 or hi.as_py() >= len(dictionary)
            ):
                return None
            indices = array.cast(pa.int8())
    else:  # source/kind: names, never missing, always among the categories
        array = _inferred(values, (pa.string(),))
        if array is None or array.null_count:
            return None
        found = pc.index_in(array, value_set=dictionary)
        if found.null_count:
            return None
        indices = found.cast(pa.int8())
    return pa.DictionaryArray.from_arrays(indices, dictionary, ordered=ordered)


def events_to_table(events: Sequence[Event], run_id: str, start_seq: int = 0) -> pa.Table | None:
    """The events as an Arrow table of :func:`arrow_schema`, built column by column without
    pandas; None when a value needs the pandas path's judgement (a bool or float in an integer
    column, a number in a text column, an integer that overflows its column, a State outside
    0..3 ...): call :func:`events_to_frame` then, which converts or reports it.

    The table equals, schema metadata included, ``pa.Table.from_pandas`` of the frame
    :func:`events_to_frame` makes (sorted dictionaries of the free categories, the ``pandas``
    metadata), so a part file written from it holds the same bytes, and
    ``frame_from_arrow(events_to_table(events, ...))`` equals ``events_to_frame(events, ...)``.
    """
    n = len(events)
    if not n:
        return None
    # one pass per column (map with an attrgetter is the cheapest way to read slots in bulk)
    columns = {name: list(map(getter, events)) for name, getter in _GETTERS.items()}
    secs = np.asarray(columns["ts"], dtype=np.float64)
    if not np.isfinite(secs).all():
        return None
    micros = np.rint(secs * 1e6).astype(np.int64)
    arrays: list[pa.Array] = []
    for field in _ARROW_SCHEMA:
        name = field.name
        array: pa.Array | None
        if name == "ts":
            array = pa.array(micros, type=field.type)
        elif name == "seq":
            array = pa.array(np.arange(start_seq, start_seq + n, dtype=np.int64))
        elif name == "run_id":
            array = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, np.int32)), pa.array([run_id], pa.string())
            )
        elif name == "state":
            array = _fixed_dictionary(columns[name], _STATE_DICT, True, codes=True)
        elif name == "result":
            array = _fixed_dictionary(columns[name], _RESULT_DICT, False, codes=True)
        elif name == "source":
            array = _fixed_dictionary(columns[name], _SOURCE_DICT, False, codes=False)
        elif name == "kind":
            array = _fixed_dictionary(columns[name], _KIND_DICT, False, codes=False)
        elif pa.types.is_dictionary(field.type):  # free categories
            array = _free_dictionary(columns[name])
        elif field.type == pa.string():
            array = _inferred(columns[name], _STR_LIKE)
            if array is not None:
                array = array.cast(pa.string())
        elif field.type == pa.float64():
            array = _inferred(columns[name], _FLOAT_LIKE)
            if array is not None:
                array = _cast(array, pa.float64())
        else:  # nullable integers
            array = _inferred(columns[name], _INT_LIKE)
            if array is not None:
                array = _cast(array, field.type)
        if array is None:
            return None
        arrays.append(array)
    schema = _ARROW_SCHEMA.with_metadata(_pandas_metadata(arrays))
    return pa.Table.from_arrays(arrays, schema=schema)


def _free_dictionary(values: Sequence[Any]) -> pa.Array | None:
    """An open-ended categorical as pandas writes it: the sorted values present as dictionary
    (UTF-8 byte order is code point order, as Python sorts), int32 indices."""
    array = _inferred(values, _STR_LIKE)
    if array is None:
        return None
    encoded = array.cast(pa.string()).dictionary_encode()
    dictionary = encoded.dictionary
    order = pc.sort_indices(dictionary).to_numpy()
    if (order[1:] < order[:-1]).any():
        position = np.empty(len(order), dtype=np.int32)
        position[order] = np.arange(len(order), dtype=np.int32)
        indices = pc.take(pa.array(position), encoded.indices)
        encoded = pa.DictionaryArray.from_arrays(indices, dictionary.take(order))
    return encoded


@functools.cache
def _pandas_metadata_template() -> dict[str, Any]:
    empty = pa.Table.from_pandas(empty_frame(), schema=_ARROW_SCHEMA, preserve_index=False)
    return dict(json.loads(empty.schema.metadata[b"pandas"]))


def _pandas_metadata(arrays: Sequence[pa.Array]) -> dict[bytes, bytes]:
    """The schema metadata ``pa.Table.from_pandas`` gives the frame of these columns (pandas
    readers of a part file get the schema's dtypes from it): the template of the empty frame
    with each categorical's number of categories and code dtype."""
    meta = dict(_pandas_metadata_template())
    columns: list[dict[str, Any]] = []
    for column, array in zip(meta["columns"], arrays, strict=True):
        if column["pandas_type"] == "categorical":
            n = len(array.dictionary)
            column = {**column, "numpy_type": np.dtype(_code_dtype(n)).name,
                      "metadata": {**column["metadata"], "num_categories": n}}
        columns.append(column)
    meta["columns"] = columns
    return {b"pandas": json.dumps(meta).encode()}


def _cast(array: pa.Array, typ: pa.DataType) -> pa.Array | None:
    """A safe cast (None when a value overflows ``typ`` or loses precision)."""
    try:
        return array.cast(typ)
    except (pa.ArrowException, ValueError, OverflowError):
        return None


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Restore the schema's dtypes on a frame (after reading Parquet, CSV or concatenating runs).

    Columns are put in schema order; open-ended categoricals get their canonical categories
    (the sorted values present), so two frames with the same rows compare equal. Extra columns
    are kept at the end and missing columns are left missing: :func:`validate` reports both.

    Returns
    -------
    pandas.DataFrame
        The same rows, schema columns first, with a RangeIndex.

    Raises
    ------
    SchemaError
        When a column's values cannot be converted to its dtype.
    """
    out: dict[str, pd.Series] = {}
    problems: list[str] = []
    for name in COLUMN_NAMES:
        if name not in df.columns:
            continue
        try:
            out[name] = _column(name, df[name].reset_index(drop=True))
        except (TypeError, ValueError, OverflowError) as exc:
            problems.append(f"{name}: cannot convert to {_BY_NAME[name].dtype}: {exc}")
    if problems:
        raise SchemaError(problems)
    extra = [c for c in df.columns if c not in _BY_NAME]
    for name in extra:
        out[name] = df[name].reset_index(drop=True)
    result = pd.DataFrame(out)
    result.index = pd.RangeIndex(len(df))
    return result


def validate(df: pd.DataFrame) -> None:
    """Check that ``df`` is an event table of this schema; report every problem at once.

    Checks: columns missing, extra or out of order; each column's dtype; values outside the
    fixed categories of ``source``/``kind``/``state``/``result``; missing ``ts``/``source``/
    ``kind``; timestamps not in UTC; ``seq`` not strictly increasing within each run.

    Raises
    ------
    SchemaError
        Listing every problem found.
    """
    problems: list[str] = []
    missing = [c for c in COLUMN_NAMES if c not in df.columns]
    extra = [c for c in df.columns if c not in _BY_NAME]
    if missing:
        problems.append(f"missing columns: {missing}")
    if extra:
        problems.append(f"extra columns: {extra}")
    present = [c for c in df.columns if c in _BY_NAME]
    if not missing and present != list(COLUMN_NAMES):
        problems.append(f"columns out of order: {present}; expected {list(COLUMN_NAMES)}")
    for name in present:
        problems.extend(_check_column(name, df[name]))
    if "seq" in df.columns and df["seq"].dtype == np.dtype("int64") and len(df):
        problems.extend(_check_seq(df))
    if problems:
        raise SchemaError(problems)


def _check_column(name: str, s: pd.Series) -> list[str]:
    col = _BY_NAME[name]
    problems: list[str] = []
    if name == "ts":
        if isinstance(s.dtype, pd.DatetimeTZDtype) and str(s.dtype.tz) != "UTC":
            problems.append(f"ts: timestamps are in {s.dtype.tz}, not UTC")
        elif s.dtype != TS_DTYPE:
            problems.append(f"ts: dtype {s.dtype}, expected {TS_DTYPE} (UTC)")
        if s.isna().any():
            problems.append(f"ts: {int(s.isna().sum())} missing timestamps")
        return problems
    if name in _FIXED_CATEGORIES:
        allowed = _FIXED_CATEGORIES[name]
        values = s.dropna()
        unknown = sorted({str(v) for v in values.unique()} - set(allowed))
        if unknown:
            problems.append(f"{name}: unknown categories {unknown}")
        elif s.dtype != col.dtype:
            problems.append(f"{name}: dtype {s.dtype!r}, expected {col.dtype!r}")
        if name in ("source", "kind") and s.isna().any():
            problems.append(f"{name}: {int(s.isna().sum())} missing values")
        return problems
    if isinstance(col.dtype, str):
        if not isinstance(s.dtype, pd.CategoricalDtype):
            problems.append(f"{name}: dtype {s.dtype}, expected category")
        elif s.dtype.ordered:
            problems.append(f"{name}: categorical must be unordered")
        elif len(s.dtype.categories) and s.dtype.categories.inferred_type != "string":
            problems.append(f"{name}: categories must be strings")
        if name == "run_id" and s.isna().any():
            problems.append("run_id: missing values")
        return problems
    if s.dtype != col.dtype:
        problems.append(f"{name}: dtype {s.dtype}, expected {col.dtype}")
    return problems


def _check_seq(df: pd.DataFrame) -> list[str]:
    seq = df["seq"]
    if "run_id" in df.columns and df["run_id"].nunique(dropna=False) > 1:
        bad = df.groupby("run_id", observed=True, sort=False)["seq"].diff() <= 0
    else:
        bad = seq.diff() <= 0
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        return [
            f"seq: not strictly increasing ({int(bad.sum())} rows; first at row {first}, "
            f"seq {int(seq.iloc[first])} after {int(seq.iloc[first - 1])})"
        ]
    return []


def arrow_schema() -> pa.Schema:
    """The Arrow schema part files are written with (categoricals as dictionaries)."""
    fields: list[pa.Field] = []
    for col in COLUMNS:
        if col.name == "ts":
            typ: pa.DataType = pa.timestamp("us", tz="UTC")
        elif col.name == "seq":
            typ = pa.int64()
        elif isinstance(col.dtype, str):
            typ = pa.dictionary(pa.int32(), pa.string())
        elif isinstance(col.dtype, pd.CategoricalDtype):
            typ = pa.dictionary(pa.int8(), pa.string(), ordered=bool(col.dtype.ordered))
        elif isinstance(col.dtype, pd.StringDtype):
            typ = pa.string()
        else:
            typ = pa.from_numpy_dtype(col.dtype.numpy_dtype)
        fields.append(pa.field(col.name, typ, nullable=col.name not in ("ts", "seq")))
    return pa.schema(fields)


_ARROW_SCHEMA = arrow_schema()


def _code_dtype(n_categories: int) -> type[np.signedinteger[Any]]:
    """The codes dtype pandas uses for a categorical with ``n_categories`` categories."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_categories < np.iinfo(dtype).max:
            return dtype
    return np.int64


def _chunk_numpy(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """A fixed-width chunk's values (zero-copy; arbitrary under nulls) and validity (None: all)."""
    validity, data = chunk.buffers()[:2]
    if not len(chunk) or data is None:
        return np.zeros(0, dtype=np.int64), None
    width = chunk.type.bit_width // 8
    dtype = np.dtype(f"i{width}") if width > 1 else np.dtype(np.int8)
    if pa.types.is_floating(chunk.type):
        dtype = np.dtype(f"f{width}")
    values = np.frombuffer(data, dtype=dtype, count=len(chunk), offset=chunk.offset * width)
    if validity is None or not chunk.null_count:
        return values, None
    bits = np.frombuffer(validity, dtype=np.uint8)
    first, stop = chunk.offset, chunk.offset + len(chunk)
    valid = np.unpackbits(bits[first // 8 : (stop + 7) // 8], bitorder="little")
    return values, valid[first % 8 : first % 8 + len(chunk)].view(bool)


def _numpy_of(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A fixed-width column's values (arbitrary under nulls) and its null mask."""
    parts = [_chunk_numpy(c) for c in column.chunks]
    if len(parts) == 1:
        values, valid = parts[0]
        values = values.copy()  # the frame owns (and may write) its data
    else:
        dtype = parts[0][0].dtype if parts else np.dtype(np.int64)
        values = np.concatenate([v for v, _ in parts]) if parts else np.zeros(0, dtype)
    mask = np.zeros(len(values), dtype=bool)
    start = 0
    for v, valid in parts:
        if valid is not None:
            np.logical_not(valid, out=mask[start : start + len(v)])
        start += len(v)
    return values, mask


def _dictionary_codes(
    column: pa.ChunkedArray, categories: Sequence[str] | None
) -> tuple[np.ndarray, list[str]] | None:
    """Codes of a dictionary column against ``categories`` (None: the sorted values present).

    None when a dictionary holds a missing value, or a value outside fixed ``categories`` is
    used (the caller then takes the full coerce/validate path, which reports it).
    """
    chunks = [c for c in column.chunks if len(c)]
    indices: list[np.ndarray] = []
    names: list[list[str]] = []
    last: pa.Array | None = None
    for chunk in chunks:
        if chunk.dictionary.null_count:
            return None
        if last is not None and chunk.dictionary.equals(last):
            names.append(names[-1])  # row groups often share one dictionary: decode it once
        else:
            last = chunk.dictionary
            names.append([str(v) for v in last.to_pylist()])
        values, valid = _chunk_numpy(chunk.indices)
        # indices under nulls are arbitrary; -1 marks a missing value
        idx = values if valid is None else np.where(valid, values, -1)
        if int(idx.max()) >= len(names[-1]) or int(idx.min()) < -1:
            return None  # not a valid dictionary array
        indices.append(idx)
    used: list[np.ndarray | None] = [None] * len(chunks)
    if categories is None:
        present: set[str] = set()
        seen_of: dict[int, np.ndarray] = {}  # per distinct dictionary: the values used
        for i, (idx, chunk_names) in enumerate(zip(indices, names, strict=True)):
            seen = np.bincount(idx[idx >= 0], minlength=len(chunk_names)) > 0
            used[i] = seen
            key = id(chunk_names)
            seen_of[key] = seen | seen_of[key] if key in seen_of else seen
        for chunk_names in names:
            if id(chunk_names) in seen_of:
                seen = seen_of.pop(id(chunk_names))
                present.update(chunk_names[j] for j in np.flatnonzero(seen))
        categories = sorted(present)
    dtype = _code_dtype(len(categories))
    position = {name: i for i, name in enumerate(categories)}
    out = np.empty(len(column), dtype=dtype)
    start = 0
    remaps: dict[int, np.ndarray] = {}
    for i, (idx, chunk_names) in enumerate(zip(indices, names, strict=True)):
        remap = remaps.get(id(chunk_names))
        if remap is None:
            remap = np.array(
                [position.get(name, -1) for name in chunk_names] + [-1], dtype=dtype
            )
            remaps[id(chunk_names)] = remap
        unknown = remap[:-1] < 0
        if unknown.any():
            seen_here = used[i]
            if seen_here is None:
                seen_here = np.bincount(idx[idx >= 0], minlength=len(chunk_names)) > 0
            if (unknown & seen_here).any():
                return None
        np.take(remap, idx, out=out[start : start + len(idx)], mode="wrap")  # -1 -> last
        start += len(idx)
    return out, list(categories)


def frame_from_arrow(table: pa.Table) -> pd.DataFrame | None:
    """A table of exactly :func:`arrow_schema` as a typed event table, without re-checking
    what the Arrow types already guarantee; None when the table needs :func:`coerce`.

    The frame equals ``coerce(table.to_pandas())`` and passes :func:`validate` except for its
    ``seq`` order check (the caller's business). None is returned when the schema differs
    (nullability aside), ``ts``, ``seq``, ``run_id``, ``source`` or ``kind`` has missing values
    or a fixed-category column uses a value outside its categories: the full path reports those.
    """
    if not table.num_rows or not table.schema.equals(arrow_schema(), check_metadata=False):
        return None
    data: dict[str, Any] = {}
    for col in COLUMNS:
        name = col.name
        column = table.column(name)
        if name in ("ts", "seq", "run_id", "source", "kind") and column.null_count:
            return None
        if name == "ts":
            values, _ = _numpy_of(column)
            data[name] = pd.DatetimeIndex(values.view("datetime64[us]")).tz_localize("UTC").array
        elif name == "seq":
            data[name], _ = _numpy_of(column)
        elif isinstance(col.dtype, str) or name in _FIXED_CATEGORIES:
            fixed = _FIXED_CATEGORIES.get(name)
            found = _dictionary_codes(column, fixed)
            if found is None:
                return None
            codes, categories = found
            dtype = (
                col.dtype
                if fixed is not None
                else pd.CategoricalDtype(pd.Index(categories, dtype="str"), ordered=False)
            )
            data[name] = pd.Categorical.from_codes(codes, dtype=dtype, validate=False)
        elif isinstance(col.dtype, pd.StringDtype):
            data[name] = col.dtype.__from_arrow__(column)
        elif isinstance(col.dtype, pd.Float64Dtype):
            values, mask = _numpy_of(column)
            values[mask] = 0.0  # NaN and missing both become NA, as astype("Float64") does
            mask |= np.isnan(values)
            data[name] = pd.arrays.FloatingArray(values, mask)
        else:
            values, mask = _numpy_of(column)
            values[mask] = 0
            data[name] = pd.arrays.IntegerArray(values, mask)
    frame = pd.DataFrame(data, columns=list(COLUMN_NAMES), copy=False)
    frame.index = pd.RangeIndex(table.num_rows)
    return frame
