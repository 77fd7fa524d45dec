"""Derived analysis tables: pure functions of a run's event table.

This module owns the tables notebooks and plots read instead of raw events: /5 State intervals
for timelines (:func:`state_intervals`), per-device update attempts (:func:`attempts`), the
PUSH-decision log with its link sample (:func:`decisions`), Update Result counts by cohort
(:func:`result_counts`) and time-to-success survival tables (:func:`time_to_success`). Every
function takes frames and returns a new tidy DataFrame with a RangeIndex; none mutates its input
or draws. They are vectorised (sorting, cumulative sums, group-wise reductions) so they stay
usable on tens of millions of events. :func:`attempts` and :func:`result_counts` also take a
run (:func:`labkit.record.read_run`; anything with ``event_arrays()``, :class:`EventSource`):
they then work on the run's Arrow columns (:func:`arrays_from_arrow`) and never build its
pandas event table.

Events are taken in ``seq`` order; "per device" means rows with the same ``device`` value (rows
without a device are ignored except as the run's end time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from labkit.events import KINDS, SOURCES
from labkit.lwm2m.objects import State, UpdateResult
from labkit.record.schema import (
    KIND_DTYPE,
    RESULT_DTYPE,
    RESULT_NAMES,
    SOURCE_DTYPE,
    STATE_DTYPE,
    STATE_NAMES,
    _chunk_numpy,
    _dictionary_codes,
    _free_category,
    _numpy_of,
)

__all__ = [
    "FINAL_RESULTS",
    "attempts",
    "decisions",
    "result_counts",
    "state_intervals",
    "time_to_success",
]

#: Update Result codes that end an attempt: 1 SUCCESS through 10 CANCELLED. 0 INITIAL (reset)
#: and 11 DEFERRED (the device waits in DOWNLOADED, OMA /5 v1.1) leave it open.
FINAL_RESULTS: tuple[UpdateResult, ...] = tuple(
    r for r in UpdateResult if r not in (UpdateResult.INITIAL, UpdateResult.DEFERRED)
)
_K = {name: i for i, name in enumerate(KINDS)}
_NO_SEQ = np.iinfo(np.int64).max
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labkit-attempts")


# -- helpers --------------------------------------------------------------------------------


def _by_seq(events: pd.DataFrame) -> pd.DataFrame:
    seq = events["seq"].to_numpy()
    if len(seq) > 1 and not (seq[1:] > seq[:-1]).all():
        return events.sort_values("seq", kind="stable", ignore_index=True)
    return events


def _cat(s: pd.Series, dtype: pd.CategoricalDtype) -> pd.Series:
    return s if s.dtype == dtype else s.astype(dtype)


def _device(s: pd.Series) -> pd.Series:
    return s if isinstance(s.dtype, pd.CategoricalDtype) else _free_category(s)


def _ts_array(s: pd.Series) -> np.ndarray:
    return np.asarray(s.to_numpy(dtype="datetime64[us]"), dtype="datetime64[us]")


def _ts_series(values: np.ndarray) -> pd.Series:
    return pd.Series(values.astype("datetime64[us]")).dt.tz_localize("UTC")


def _seconds(delta: np.ndarray) -> np.ndarray:
    """timedelta64 array -> float seconds (NaT -> NaN)."""
    return (
        delta.astype("timedelta64[us]").astype(np.float64)
        / 1e6
        * np.where(np.isnat(delta), np.nan, 1.0)
    )


def _by_device(codes: np.ndarray) -> np.ndarray:
    """Positions that sort rows by device code, keeping ``seq`` order within a device (a
    stable sort; radix sort when the codes fit in 16 bits)."""
    small = np.int16 if len(codes) == 0 or int(codes.max()) < 2**15 else np.int32
    return np.argsort(codes.astype(small, copy=False), kind="stable")


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Start positions of runs of equal values in ``keys`` (which is grouped, e.g. sorted)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def _first_per_key(keys: np.ndarray, mask: np.ndarray, n_keys: int) -> np.ndarray:
    """Per key (0..n_keys-1, rows grouped by key), the position of its first row with mask set,
    or -1."""
    out = np.full(n_keys, -1, dtype=np.int64)
    pos = np.flatnonzero(mask & (keys >= 0))
    if len(pos):
        kp = keys[pos]
        if (kp[1:] >= kp[:-1]).all():  # grouped keys (the usual case): no sort needed
            first = np.flatnonzero(np.r_[True, kp[1:] != kp[:-1]])
            out[kp[first]] = pos[first]
        else:
            k, first = np.unique(kp, return_index=True)
            out[k] = pos[first]
    return out


def _last_at_or_before(mask: np.ndarray, group_first: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each position in ``at``, the last position <= it with ``mask`` set, within the same
    group (``group_first`` = each row's group start), or -1."""
    if len(mask) == 0:
        return np.full(len(at), -1, dtype=np.int64)
    set_pos = np.flatnonzero(mask)
    j = np.searchsorted(set_pos, at, side="right") - 1  # last set position <= at, or -1
    found = np.where(j >= 0, set_pos[np.maximum(j, 0)] if len(set_pos) else -1, -1)
    return np.where(found >= group_first[at], found, -1)


def _take(values: np.ndarray, pos: np.ndarray, missing: Any) -> np.ndarray:
    """values[pos], with ``missing`` where pos is -1."""
    out = values[np.where(pos >= 0, pos, 0)] if len(values) else np.empty(len(pos), values.dtype)
    if out.dtype.kind == "M":
        return np.where(pos >= 0, out, np.datetime64("NaT", "us"))
    return np.where(pos >= 0, out, missing)


def _by_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _check_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: no column(s) {missing}; available: {list(df.columns)}")


# -- state intervals ------------------------------------------------------------------------


def state_intervals(events: pd.DataFrame) -> pd.DataFrame:
    """Time each device spent in each /5/0/3 State, from its ``fw_state`` rows.

    Consecutive ``fw_state`` rows with the same State (a notification and a read reporting the
    same value) are one interval. An interval ends when the next different State is observed;
    the device's last interval ends at its last event of any kind.

    Returns
    -------
    pandas.DataFrame
        ``device`` (category), ``state`` (ordered category IDLE < ... < UPDATING), ``start``,
        ``end`` (datetime64[us, UTC]), ``duration_s`` (float64), ``result_at_end`` (category of
        /5/0/5 names: the last Update Result the device reported before the next State change,
        or before its last event for the last interval; NA if none yet). Sorted by device and
        start; RangeIndex.
    """
    ev = _by_seq(events)
    device = _device(ev["device"])
    dcode = device.cat.codes.to_numpy().astype(np.int64)
    kcode = _cat(ev["kind"], KIND_DTYPE).cat.codes.to_numpy()
    scode = _cat(ev["state"], STATE_DTYPE).cat.codes.to_numpy().astype(np.int64)
    rcode = _cat(ev["result"], RESULT_DTYPE).cat.codes.to_numpy().astype(np.int64)
    ts = _ts_array(ev["ts"])
    keep = (dcode >= 0) & (
        ((kcode == _K["fw_state"]) & (scode >= 0)) | ((kcode == _K["fw_result"]) & (rcode >= 0))
    )
    has_dev = dcode >= 0
    # last event per device (any kind)
    last_ts = np.full(len(device.cat.categories), np.datetime64("NaT", "us"))
    if has_dev.any():
        last_ts_s = pd.Series(ts[has_dev]).groupby(dcode[has_dev]).max()
        last_ts[last_ts_s.index.to_numpy()] = last_ts_s.to_numpy()

    order = np.flatnonzero(keep)
    order = order[_by_device(dcode[order])]  # by device, then seq
    d, s, r, t = dcode[order], scode[order], rcode[order], ts[order]
    is_state = (kcode[order] == _K["fw_state"]) & (s >= 0)
    st = np.flatnonzero(is_state)
    ds, ss = d[st], s[st]
    change = (
        np.r_[True, (ds[1:] != ds[:-1]) | (ss[1:] != ss[:-1])] if len(st) else np.zeros(0, bool)
    )
    iv = st[change]  # positions (in the sorted subset) where an interval starts
    div = d[iv]
    same_next = np.r_[div[1:] == div[:-1], False] if len(iv) else np.zeros(0, bool)
    nxt = np.r_[iv[1:], 0] if len(iv) else np.zeros(0, np.int64)
    start = t[iv]
    end = np.where(same_next, t[nxt], last_ts[div] if len(iv) else start)
    # result at end: last result row of the device before the next interval's start position
    group_first_pos = np.zeros(len(d), dtype=np.int64)
    starts = _group_starts(d)
    if len(d):
        group_first_pos = np.repeat(starts, np.diff(np.r_[starts, len(d)]))
    is_result = (kcode[order] == _K["fw_result"]) & (r >= 0)
    group_last_pos = np.zeros(len(d), dtype=np.int64)
    if len(d):
        ends = np.r_[starts[1:], len(d)] - 1
        group_last_pos = np.repeat(ends, np.diff(np.r_[starts, len(d)]))
    upto = np.where(same_next, nxt - 1, group_last_pos[iv] if len(iv) else iv)
    rpos = _last_at_or_before(is_result, group_first_pos, upto)
    result_codes = _take(r, rpos, -1)
    return pd.DataFrame(
        {
            "device": pd.Categorical.from_codes(div, dtype=device.dtype),
            "state": pd.Categorical.from_codes(s[iv], dtype=STATE_DTYPE),
            "start": _ts_series(start),
            "end": _ts_series(end),
            "duration_s": _seconds(end - start),
            "result_at_end": pd.Categorical.from_codes(result_codes, dtype=RESULT_DTYPE),
        }
    )


# -- attempts -------------------------------------------------------------------------------


def _labels(
    column: tuple[np.ndarray, list[str]], sel: np.ndarray, transform: Callable[[str], str]
) -> tuple[np.ndarray, np.ndarray]:
    """Codes of a categorical ``column`` (codes, categories) at rows ``sel`` and the
    transformed label of each code.

    ``labels[codes]`` gives each row's label; the last label is ``""`` so a missing value
    (code -1) maps to it. Works per category, never per row.
    """
    codes, names = column
    labels = np.array([transform(c) for c in names] + [""], dtype=object)
    return codes[sel], labels


def _duplicated(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows whose (key, value) pair occurred in an earlier row (values: float, NaN allowed;
    or int64 >= -1 with -1 for a missing value)."""
    if values.dtype.kind == "i":
        v = values
    else:
        v = np.where(np.isnan(values), -1, values).astype(np.int64)
    span = int(v.max()) + 2 if len(v) else 1
    if len(keys) and int(keys.max()) < np.iinfo(np.int64).max // span - 1 and v.min() >= -1:
        combined = keys.astype(np.int64) * span + (v + 1)
        out = np.zeros(len(combined), dtype=bool)
        step = combined[1:] >= combined[:-1]
        if step.all():
            # already in key order (blocks of a transfer come in order): a row repeats an
            # earlier pair exactly when it equals the row before it; no sort needed
            out[1:] = combined[1:] == combined[:-1]
            return out
        # a stable sort keeps equal keys in row order: a row repeats the key before it in
        # sorted order exactly when an earlier row has its key (rows are mostly in key order
        # already, which the stable sort exploits)
        order = np.argsort(combined, kind="stable")
        ranked = combined[order]
        out[order[1:]] = ranked[1:] == ranked[:-1]
        return out
    if values.dtype.kind == "i":
        values = np.where(values < 0, np.nan, values)
    return np.asarray(pd.DataFrame({"k": keys, "v": values}).duplicated().to_numpy(), dtype=bool)


def _norm_path(path: pd.Series) -> np.ndarray:
    normalised = path.astype("string").str.strip().str.strip("/").fillna("")
    return np.asarray(normalised.to_numpy(dtype=object), dtype=object)


def attempts(events: pd.DataFrame | EventSource) -> pd.DataFrame:
    """Per-device firmware update attempts.

    An attempt **starts** at the first of these rows for a device that has no open attempt:

    - a ``decision`` row with decision ``push`` or ``pull`` (the policy started an update);
    - a ``request`` row the lab sent (any source but ``device``: the server, an imported
      capture ...) writing the package or its URI (path ``/5/0/0`` or ``/5/0/1``, method
      PUT/POST or unknown) or executing Update (``/5/0/2``, POST or unknown), unless it carries
      an error code (anything but 2.xx / HTTP 2xx-3xx).

    Only for a device none of those rows was recorded for (a device-side log, a partial
    recording), what the device observed starts attempts too: its own record of such a request
    answered with a success code (2.04, 2.31 ...; a write it refused with 4.13, a duplicate
    Execute answered 4.05 after the reboot or a request it did not answer starts nothing), and
    a ``fw_state`` row entering DOWNLOADING (the previous State reported was not DOWNLOADING).
    Where the lab's side is recorded, the device's and the server's records of a request or a
    State change belong to the attempt the lab started and never start one of their own.

    It **ends** at the first of these rows:

    - a ``campaign`` row carrying a final result (1 SUCCESS ... 10 CANCELLED): the campaign's
      verdict on the attempt, including a result it inferred (4 CONNECTION_LOST for a download
      that stalled while the device reported nothing, digest 1.3) and a SUCCESS judged from
      /3/0/3 while the device reported Result 0;
    - a ``fw_result`` row with a final code that is *news*: it differs from the result the
      device reported (or the campaign judged) before, or a DOWNLOADING or UPDATING State row
      was seen since that previous result (so the reset to INITIAL was merely not observed).

    So each change of the result is taken once: the server and the device both record the same
    /5/0/5 change, and a campaign repeats it in its verdict; the later copies, like re-reads of
    an unchanged result (a stale SUCCESS read after the decision but before the download resets
    it), neither end nor start anything. INITIAL and DEFERRED (11) keep the attempt open. An
    attempt with no final result runs to the end of the run (the last event of any device) and
    has ``finished=False``. Limitations: an attempt reset without a result (State back to IDLE
    with result INITIAL, e.g. an empty URI written) stays open until the next final result; a
    result the server observes only after the next attempt started (a lag longer than the
    back-off) ends that attempt.

    ``events`` is an event table, or a run (:class:`~labkit.record.Run`, from
    :func:`~labkit.record.read_run`): then the columns are taken from the run's Arrow tables
    without building its pandas event table (the same attempts, several times faster on a
    large run).

    Returns
    -------
    pandas.DataFrame
        One row per attempt, sorted by device and start; RangeIndex. Columns:

        - ``device`` (category), ``attempt`` (int64, 1, 2 ... per device)
        - ``method`` (category push/pull): from the first push/pull decision, else a row whose
          ``method`` is push/pull, else the first write (``/5/0/0`` push, ``/5/0/1`` pull); NA
        - ``protocol`` (category): first ``protocol`` value seen in the attempt; NA
        - ``start``, ``end`` (datetime64[us, UTC]); ``duration_s`` (float64)
        - ``download_s`` (Float64): from the first DOWNLOADING row to the next State row that
          is not DOWNLOADING (or the attempt's end); NA if DOWNLOADING was never seen
        - ``update_s`` (Float64): the same for UPDATING (covers install and reboot)
        - ``bytes`` (Int64): sum of ``bytes`` over ``block`` rows, each block number counted
          once (NA when no block row carried bytes)
        - ``blocks`` (int64): distinct block numbers among ``block`` rows (rows without a block
          number count one each)
        - ``retransmissions`` (int64): ``block`` rows repeating a (source, block) pair already
          seen in the attempt, plus rows whose ``detail`` is ``"retransmission"`` that are not
          such repeats
        - ``final_state`` (ordered category): last State reported before the device's next
          attempt starts (or the run ends); ``result`` (category): the final code, or for an
          unfinished attempt the last result reported during it (NA if none)
        - ``fw_before``, ``fw_after`` (string): last /3/0/3 seen at or before the start, and last
          one seen after the start and before the next attempt (NA if none)
        - ``success`` (bool, result is SUCCESS), ``finished`` (bool, a final result was seen
          or judged)
        - ``wave`` (Int16): last ``wave`` value of the device before its next attempt; NA
    """
    return _attempts_of(_arrays(events))


@dataclass(frozen=True, slots=True)
class EventArrays:
    """The columns :func:`attempts` reads, as full-length numpy arrays (codes of categorical
    columns, -1 missing), plus accessors for the columns it needs only at some rows.

    Built from a pandas event table (:func:`_arrays_of`) or straight from an Arrow table of
    the run schema (:func:`labkit.record.runs.Run` does that), so a run's attempts never need
    its whole pandas frame. Rows are in ``seq`` order.
    """

    n: int
    device_dtype: pd.CategoricalDtype
    device: np.ndarray
    kind: np.ndarray  # KIND_DTYPE codes
    ts: np.ndarray  # datetime64[us]
    state: np.ndarray  # STATE_DTYPE codes
    result: np.ndarray  # RESULT_DTYPE codes
    source: np.ndarray  # SOURCE_DTYPE codes
    decision: tuple[np.ndarray, list[str]]  # codes and categories
    method: tuple[np.ndarray, list[str]]
    protocol: tuple[np.ndarray, list[str]]
    code: tuple[np.ndarray, list[str]]
    retrans: np.ndarray  # bool: detail == "retransmission"
    wave_valid: np.ndarray  # bool
    version_valid: np.ndarray  # bool
    wave_at: Callable[[np.ndarray], np.ndarray]  # float64, NaN missing
    block_at: Callable[[np.ndarray], np.ndarray]  # float64 NaN missing, or int64 >= -1 (-1)
    block_bounds: tuple[int, int]  # lowest and highest block number ((0, -1): none)
    bytes_at: Callable[[np.ndarray], np.ndarray]  # float64, NaN missing
    path_at: Callable[[np.ndarray], np.ndarray]  # object: stripped of blanks and "/", "" missing
    version_at: Callable[[np.ndarray], np.ndarray]  # object, None missing


def _float_at(s: pd.Series) -> Callable[[np.ndarray], np.ndarray]:
    def at(rows: np.ndarray) -> np.ndarray:
        return np.asarray(s.take(rows).to_numpy(dtype=np.float64, na_value=np.nan))

    return at


def _bounds(low: Any, high: Any) -> tuple[int, int]:
    return (0, -1) if pd.isna(low) or pd.isna(high) else (int(low), int(high))


def _codes_and_names(s: pd.Series) -> tuple[np.ndarray, list[str]]:
    cat = s if isinstance(s.dtype, pd.CategoricalDtype) else _free_category(s)
    return cat.cat.codes.to_numpy(), [str(c) for c in cat.cat.categories]


def arrays_of(events: pd.DataFrame) -> EventArrays:
    """:class:`EventArrays` of a pandas event table (sorted by ``seq`` first if need be)."""
    ev = _by_seq(events)
    device = _device(ev["device"])
    detail = ev["detail"]
    has_wave = "wave" in ev.columns
    wave = ev["wave"] if has_wave else pd.Series(np.full(len(ev), np.nan))
    version = ev["fw_version"]

    def path_at(rows: np.ndarray) -> np.ndarray:
        return _norm_path(ev["path"].take(rows))

    def version_at(rows: np.ndarray) -> np.ndarray:
        return np.asarray(version.take(rows).to_numpy(dtype=object), dtype=object)

    return EventArrays(
        n=len(ev),
        device_dtype=device.dtype,
        device=device.cat.codes.to_numpy(),
        kind=_cat(ev["kind"], KIND_DTYPE).cat.codes.to_numpy(),
        ts=_ts_array(ev["ts"]),
        state=_cat(ev["state"], STATE_DTYPE).cat.codes.to_numpy(),
        result=_cat(ev["result"], RESULT_DTYPE).cat.codes.to_numpy(),
        source=_cat(ev["source"], SOURCE_DTYPE).cat.codes.to_numpy(),
        decision=_codes_and_names(ev["decision"]),
        method=_codes_and_names(ev["method"]),
        protocol=_codes_and_names(ev["protocol"]),
        code=_codes_and_names(ev["code"]),
        retrans=(detail == "retransmission").fillna(False).to_numpy(dtype=bool),
        wave_valid=wave.notna().to_numpy(dtype=bool),
        version_valid=version.notna().to_numpy(dtype=bool),
        wave_at=_float_at(wave),
        block_at=_float_at(ev["block"]),
        block_bounds=_bounds(ev["block"].min(), ev["block"].max()),
        bytes_at=_float_at(ev["bytes"]),
        path_at=path_at,
        version_at=version_at,
    )


class EventSource(Protocol):
    """What :func:`attempts` takes besides a frame: a loaded run
    (:class:`labkit.record.Run`), which gives the columns from its Arrow tables."""

    def event_arrays(self) -> EventArrays: ...


def _arrays(events: pd.DataFrame | EventSource) -> EventArrays:
    if isinstance(events, pd.DataFrame):
        return arrays_of(events)
    if not hasattr(events, "event_arrays"):
        raise TypeError(f"expected an event table or a run (read_run), not {type(events).__name__}")
    arrays = events.event_arrays()
    assert isinstance(arrays, EventArrays)
    return arrays


def _chunks_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-width column without missing values as one numpy array (zero-copy for one
    chunk)."""
    parts = [_chunk_numpy(c)[0] for c in column.chunks if len(c)]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def arrays_from_arrow(table: pa.Table) -> EventArrays | None:
    """:class:`EventArrays` of an Arrow table of exactly the run schema, sorted by ``seq``,
    without building a pandas frame; None when a column needs the pandas path (a dictionary
    value outside a fixed category, a missing value in a dictionary, missing ``ts``/``kind``).

    The codes are those :func:`labkit.record.schema.frame_from_arrow` would give, so the
    attempts equal those of the pandas table :func:`labkit.record.read_run` builds.
    """
    import pyarrow.compute as pc

    if table.column("ts").null_count or table.column("kind").null_count:
        return None
    codes: dict[str, tuple[np.ndarray, list[str]]] = {}
    fixed = {"kind": KINDS, "state": STATE_NAMES, "result": RESULT_NAMES, "source": SOURCES}
    names = ("device", "kind", "state", "result", "source", "decision", "method", "protocol",
             "code")
    # half the columns decoded in the second thread (numpy lets go of the GIL in its loops)
    elsewhere = {n: _POOL.submit(_dictionary_codes, table.column(n), fixed.get(n))
                 for n in names[1::2]}
    found_here = {n: _dictionary_codes(table.column(n), fixed.get(n)) for n in names[::2]}
    for name in names:
        found = found_here[name] if name in found_here else elsewhere[name].result()
        if found is None:
            return None
        codes[name] = found
    device_codes, device_names = codes["device"]

    def valid(name: str) -> np.ndarray:
        return np.asarray(pc.is_valid(table.column(name)).to_numpy(), dtype=bool)

    bounds = pc.min_max(table.column("block"))
    block_bounds = _bounds(bounds["min"].as_py(), bounds["max"].as_py())

    def numpy_at(name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values (arbitrary where missing) and missing flags of a column at ``rows``; only
        the rows' span of the column is converted (the callers' rows are in row order, often
        within a window of the table)."""
        first, stop = int(rows.min()), int(rows.max()) + 1
        values, missing = _numpy_of(table.column(name).slice(first, stop - first))
        if first:
            rows = rows - first
        return values[rows], missing[rows]

    def block_at(rows: np.ndarray) -> np.ndarray:
        """Block numbers as int64, -1 where missing (float64 if a number is negative)."""
        if block_bounds[0] < 0:
            return float_at("block")(rows)
        if not len(rows):
            return np.zeros(0, dtype=np.int64)
        values, missing = numpy_at("block", rows)
        out = values.astype(np.int64, copy=False)
        out[missing] = -1
        return out

    def float_at(name: str) -> Callable[[np.ndarray], np.ndarray]:
        def at(rows: np.ndarray) -> np.ndarray:
            if not len(rows):
                return np.zeros(0, dtype=np.float64)
            values, missing = numpy_at(name, rows)
            out = values.astype(np.float64)
            out[missing] = np.nan
            return out

        return at

    def path_at(rows: np.ndarray) -> np.ndarray:
        """Normalised paths at ``rows``: each distinct path normalised once."""
        taken = table.column("path").take(pa.array(rows, pa.int64()))
        encoded = pa.chunked_array(taken).combine_chunks().dictionary_encode()
        distinct = _norm_path(pd.Series(encoded.dictionary.to_pylist(), dtype="string"))
        lookup = np.concatenate([distinct, np.array([""], dtype=object)])  # last: missing
        codes, valid = _chunk_numpy(encoded.indices)
        index = codes.astype(np.intp)
        if valid is not None:
            index[~valid] = len(distinct)
        return np.asarray(lookup[index], dtype=object)

    def version_at(rows: np.ndarray) -> np.ndarray:
        taken = table.column("fw_version").take(pa.array(rows, pa.int64()))
        return np.array(taken.to_pylist(), dtype=object)

    retrans = pc.fill_null(pc.equal(table.column("detail"), "retransmission"), False)
    return EventArrays(
        n=table.num_rows,
        device_dtype=pd.CategoricalDtype(pd.Index(device_names, dtype="str"), ordered=False),
        device=device_codes,
        kind=codes["kind"][0],
        ts=_chunks_numpy(table.column("ts")).view("datetime64[us]"),
        state=codes["state"][0],
        result=codes["result"][0],
        source=codes["source"][0],
        decision=codes["decision"],
        method=codes["method"],
        protocol=codes["protocol"],
        code=codes["code"],
        retrans=np.asarray(retrans.to_numpy(), dtype=bool),
        wave_valid=valid("wave"),
        version_valid=valid("fw_version"),
        wave_at=float_at("wave"),
        block_at=block_at,
        block_bounds=block_bounds,
        bytes_at=float_at("bytes"),
        path_at=path_at,
        version_at=version_at,
    )


def _block_counts(
    a: EventArrays, brows: np.ndarray, batt: np.ndarray, n_att: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per attempt, from its block rows (``brows``, in seq order; ``batt`` their
    attempts): distinct blocks, bytes, whether any block carried bytes, and the block rows
    that are retransmissions."""
    blk = a.block_at(brows)
    nbytes = a.bytes_at(brows)
    has_blk = blk >= 0 if blk.dtype.kind == "i" else ~np.isnan(blk)
    dup_block = np.zeros(len(brows), dtype=bool)
    dup_source_block = np.zeros(len(brows), dtype=bool)
    if len(brows):
        dup_block = _duplicated(batt, blk) & has_blk
        # per source: each side's record of a transfer is usually in block order, which
        # _duplicated checks without sorting (the sides interleave, so together they are not)
        bsrc = a.source[brows]
        sources = np.flatnonzero(np.bincount(bsrc.astype(np.int64) + 1)) - 1
        if len(sources) == 1:  # one side recorded the blocks: the same pairs as above
            dup_source_block = dup_block
        for src in sources if len(sources) > 1 else ():
            rows = np.flatnonzero(bsrc == src)
            dup_source_block[rows] = _duplicated(batt[rows], blk[rows]) & has_blk[rows]
    counted = ~dup_block
    a_blocks = np.bincount(batt[counted], minlength=n_att).astype(np.int64)
    with_bytes = counted & ~np.isnan(nbytes)
    a_bytes = np.bincount(batt[with_bytes], weights=nbytes[with_bytes], minlength=n_att)
    a_has_bytes = np.bincount(batt[with_bytes], minlength=n_att) > 0
    bretrans = dup_source_block | (a.retrans[brows] & ~dup_source_block)
    a_retrans = np.bincount(batt[bretrans], minlength=n_att).astype(np.int64)
    return a_blocks, a_bytes, a_has_bytes, a_retrans


#: Rows of the event table the block pass looks at at once: its temporaries stay small (and
#: are reused by the allocator, not mapped and faulted in afresh for every one of them).
_WINDOW = 1 << 18
#: The distinct block numbers of attempts are counted with a bitmap of (attempt, block number)
#: pairs when it has at most this many cells per row of the table (plus 32,768); else, and
#: when a number repeats in an attempt, the repeats are told apart row by row.
_BITMAP_CELLS_PER_ROW = 2


@dataclass(frozen=True, slots=True)
class _Blocks:
    """What :func:`attempts` takes from the ``block`` rows, per attempt."""

    counts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # as _block_counts
    protocol_row: np.ndarray  # the first block row carrying a protocol (_NO_SEQ: none)
    protocol: np.ndarray  # its protocol code
    hint_row: np.ndarray  # the first block row with a push/pull method (_NO_SEQ: none)
    hint: np.ndarray  # its hint (1 push, 2 pull)
    wave_rows: np.ndarray  # block rows of a device carrying a wave (any attempt or none)


def _block_stats(
    a: EventArrays, a_dev: np.ndarray, a_row: np.ndarray, a_end: np.ndarray, met_hint: np.ndarray
) -> _Blocks:
    """The block rows' share of :func:`attempts` (attempts by device then start: device
    ``a_dev``, first row ``a_row``, last row ``a_end``, -1 if unfinished).

    A block row belongs to its device's latest attempt started before it, unless that attempt
    ended before it. The rows are taken in row order a window at a time (the later half of the
    windows on the second core meanwhile); the attempt of each is a search among the attempts'
    starts and ends (sorted by device, then row). The distinct block numbers are counted with
    a bitmap per attempt; only when a block number repeats in an attempt (a retransmission)
    are the repeats told apart row by row (:func:`_block_counts`).
    """
    n_att = len(a_dev)
    span = a.n + 1
    # the places where a device's current attempt changes: a start (to it), an end (to none);
    # a sentinel first, so that every search lands on an entry
    finished = np.flatnonzero(a_end >= 0)
    ev_key = np.r_[-1, a_dev * span + a_row, a_dev[finished] * span + a_end[finished]]
    ev_dev = np.r_[-1, a_dev, a_dev[finished]].astype(np.int64)
    ev_att = np.r_[-1, np.arange(n_att), np.full(len(finished), -1)].astype(np.int32)
    order = np.argsort(ev_key, kind="stable")
    ev_key, ev_dev, ev_att = ev_key[order], ev_dev[order], ev_att[order]
    block_kind = _K["block"]
    low, high = a.block_bounds
    width = high + 1
    # the bitmap: one cell per (attempt, block number) pair; else the exact path at once
    room = _BITMAP_CELLS_PER_ROW * (a.n + (1 << 15))
    use_bitmap = n_att > 0 and low >= 0 and n_att * width <= room
    seen = np.zeros(n_att * width if use_bitmap else 0, dtype=bool)  # (only set, never reset)

    def window(c0: int, c1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The block rows of a device in rows c0..c1 that are in an attempt, and theirs;
        and the block rows carrying a wave (in an attempt or not)."""
        dev = a.device[c0:c1]
        rows = np.flatnonzero((a.kind[c0:c1] == block_kind) & (dev >= 0))
        bd = dev[rows].astype(np.int64)
        rows += c0
        key = bd * span
        key += rows
        i = np.searchsorted(ev_key, key, side="right")
        i -= 1
        att = ev_att[i]
        att[ev_dev[i] != bd] = -1
        wave = a.wave_valid[rows]
        inside = np.flatnonzero(att >= 0)
        return rows[inside], att[inside], rows[wave] if wave.any() else rows[:0]

    def count(start: int, stop: int) -> tuple[Any, ...]:
        """Per attempt sums over the windows from row ``start`` to ``stop``."""
        numbered = 0  # block rows in attempts carrying a block number
        a_blocks = np.zeros(n_att, dtype=np.int64)
        a_bytes = np.zeros(n_att, dtype=np.float64)
        a_with_bytes = np.zeros(n_att, dtype=np.int64)
        a_retrans = np.zeros(n_att, dtype=np.int64)
        protocol_row = np.full(n_att, _NO_SEQ, dtype=np.int64)
        hint_row = np.full(n_att, _NO_SEQ, dtype=np.int64)
        wave_rows: list[np.ndarray] = []
        for c0 in range(start, stop, _WINDOW):
            rows, att, waves = window(c0, min(c0 + _WINDOW, stop))
            if len(waves):
                wave_rows.append(waves)
            if not len(rows):
                continue
            pro = a.protocol[0][rows] >= 0
            np.minimum.at(protocol_row, att[pro], rows[pro])
            hinted = met_hint[a.method[0][rows]] > 0
            if hinted.any():
                np.minimum.at(hint_row, att[hinted], rows[hinted])
            if not use_bitmap:
                continue
            blk = a.block_at(rows)
            has_blk = blk >= 0  # (NaN: False)
            numbered += int(np.count_nonzero(has_blk))
            where = att[has_blk].astype(np.int64)
            where *= width
            where += blk[has_blk].astype(np.int64, copy=False)
            seen[where] = True
            a_blocks += np.bincount(att, minlength=n_att)
            nbytes = a.bytes_at(rows)
            with_bytes = ~np.isnan(nbytes)
            a_bytes += np.bincount(att[with_bytes], weights=nbytes[with_bytes], minlength=n_att)
            a_with_bytes += np.bincount(att[with_bytes], minlength=n_att)
            a_retrans += np.bincount(att[a.retrans[rows]], minlength=n_att)
        return (numbered, a_blocks, a_bytes, a_with_bytes, a_retrans, protocol_row, hint_row,
                wave_rows)  # fmt: skip

    # the later half of the windows on the second core, the first half here
    half = min(a.n, -(-a.n // (2 * _WINDOW)) * _WINDOW) if n_att else 0
    later = _POOL.submit(count, half, a.n if n_att else 0)
    parts = (count(0, half), later.result())
    numbered = sum(p[0] for p in parts)
    a_blocks, a_bytes, a_with_bytes, a_retrans = (parts[0][i] + parts[1][i] for i in range(1, 5))
    protocol_row = np.minimum(parts[0][5], parts[1][5])
    hint_row = np.minimum(parts[0][6], parts[1][6])
    wave_rows = parts[0][7] + parts[1][7]
    if use_bitmap and int(np.count_nonzero(seen)) < numbered:  # a block number repeats
        use_bitmap = False
    if use_bitmap or not n_att:
        counts = (a_blocks, a_bytes, a_with_bytes > 0, a_retrans)
    else:
        collected = [window(c0, min(c0 + _WINDOW, a.n)) for c0 in range(0, a.n, _WINDOW)]
        brows = np.concatenate([r for r, _, _ in collected])
        batt = np.concatenate([t for _, t, _ in collected])
        counts = _block_counts(a, brows, batt, n_att)
    found = protocol_row != _NO_SEQ
    protocol = np.full(n_att, -1, dtype=np.int64)
    protocol[found] = a.protocol[0][protocol_row[found]]
    found = hint_row != _NO_SEQ
    hint = np.zeros(n_att, dtype=np.int64)
    hint[found] = met_hint[a.method[0][hint_row[found]]]
    return _Blocks(
        counts=counts,
        protocol_row=protocol_row,
        protocol=protocol,
        hint_row=hint_row,
        hint=hint,
        wave_rows=np.concatenate(wave_rows) if wave_rows else np.zeros(0, np.int64),
    )


def _attempts_of(a: EventArrays) -> pd.DataFrame:
    """:func:`attempts` of the arrays of an event table.

    The ``block`` rows (most of a run: one per block of every transfer) take no part in
    deciding where attempts start and end; they are kept out of that work and assigned to
    attempts afterwards (each belongs to the attempt of the device's previous other row,
    unless that row ended it), then counted for ``blocks``, ``bytes`` and
    ``retransmissions`` and looked at for the first ``protocol``, method hint and wave.
    """
    dcode_all = a.device
    kcode_all = a.kind
    run_end = a.ts.max() if a.n else np.datetime64("NaT", "us")
    has_dev = dcode_all >= 0
    is_block_all = kcode_all == _K["block"]
    control_kinds = ("fw_state", "fw_result", "fw_version", "decision", "request", "campaign")
    wanted = np.isin(kcode_all, [_K[k] for k in control_kinds])
    sel = np.flatnonzero(has_dev & ~is_block_all & (wanted | a.retrans | a.wave_valid))
    sel = sel[_by_device(dcode_all[sel])]  # by device, then seq
    del has_dev, is_block_all, wanted
    n = len(sel)
    d = dcode_all[sel].astype(np.int64)
    k = kcode_all[sel]
    ts = a.ts[sel]
    scode = a.state[sel].astype(np.int64)
    rcode = a.result[sel].astype(np.int64)
    dec_codes, dec_labels = _labels(a.decision, sel, str.lower)
    met_codes, met_labels = _labels(a.method, sel, str.strip)
    pro_codes, pro_labels = _labels(a.protocol, sel, str.strip)
    source = a.source[sel]
    pos = np.arange(n)

    dev_starts = _group_starts(d)
    dev_len = np.diff(np.r_[dev_starts, n])
    dev_first = np.repeat(dev_starts, dev_len)
    dev_last = np.repeat(np.r_[dev_starts[1:], n] - 1, dev_len) if n else dev_first

    def prev_in_device(mask: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of masked rows, and each one's previous masked code in the device (-2)."""
        p = np.flatnonzero(mask)
        c = codes[p]
        prev = np.r_[-2, c[:-1]] if len(p) else c
        if len(p):
            prev = np.where(np.r_[True, d[p][1:] != d[p][:-1]], -2, prev)
        return p, prev

    # ends: a campaign's verdict on the device (a ``campaign`` row carrying a final result),
    # or a final result that differs from the previous result of the device (reported,
    # observed or judged by the campaign), or that follows a DOWNLOADING/UPDATING State row
    # seen since that previous result (the reset to INITIAL in between was not observed)
    is_verdict = (k == _K["campaign"]) & (rcode >= 0)
    is_result = ((k == _K["fw_result"]) & (rcode >= 0)) | is_verdict
    is_state = (k == _K["fw_state"]) & (scode >= 0)
    rp, rprev = prev_in_device(is_result, rcode)
    progress = np.cumsum(is_state & np.isin(scode, [int(State.DOWNLOADING), int(State.UPDATING)]))
    since = progress[rp] - progress[np.r_[0, rp[:-1]]] if len(rp) else rp
    final_codes = np.array([int(r) for r in FINAL_RESULTS])
    is_end = np.zeros(n, dtype=bool)
    is_end[rp] = np.isin(rcode[rp], final_codes) & (
        (rcode[rp] != rprev) | (since > 0) | is_verdict[rp]
    )

    # starts: what the lab did (policy decisions, requests sent by the server); what the
    # device observed (its record of requests it accepted, DOWNLOADING entered) only for a
    # device none of the former was recorded for
    dec_push_pull = (k == _K["decision"]) & np.isin(dec_labels, ["push", "pull"])[dec_codes]
    is_request = k == _K["request"]
    requests = np.flatnonzero(is_request)
    rpath = a.path_at(sel[requests])  # per request row
    code_codes, code_labels = _labels(a.code, sel[requests], str.strip)
    met_upper = np.array([m.upper() for m in met_labels], dtype=object)
    rmet = met_codes[requests]
    write_ok = np.isin(met_upper, ["PUT", "POST", ""])[rmet]  # "" = no method logged
    exec_ok = np.isin(met_upper, ["POST", ""])[rmet]
    # answered: 2.xx (CoAP) or 2xx/3xx (HTTP); refused: any other code; "" = no code logged
    answer = np.array(
        [2 if c[:1] in ("2", "3") else (0 if c == "" else 1) for c in code_labels], dtype=np.int8
    )[code_codes]
    is_package, is_uri = rpath == "5/0/0", rpath == "5/0/1"
    starting = (((is_package | is_uri) & write_ok) | ((rpath == "5/0/2") & exec_ok)) & (answer != 1)
    by_device = source[requests] == SOURCE_DTYPE.categories.get_loc("device")
    acted = dec_push_pull.copy()
    acted[requests] |= starting & ~by_device
    observed = np.zeros(n, dtype=bool)
    observed[requests] = starting & by_device & (answer == 2)
    sp, sprev = prev_in_device(is_state, scode)
    downloading = int(State.DOWNLOADING)
    observed[sp] |= (scode[sp] == downloading) & (sprev != downloading)
    device_acted = (
        np.repeat(np.add.reduceat(acted.astype(np.int64), dev_starts) > 0, dev_len) if n else acted
    )
    is_start = acted | (observed & ~device_acted)

    # epochs: rows of a device between two ends (each end is the last row of its epoch)
    cum_end = np.cumsum(is_end)
    epoch = cum_end - is_end - (cum_end[dev_first] - is_end[dev_first]) if n else cum_end
    group = np.cumsum(np.r_[True, (d[1:] != d[:-1]) | (epoch[1:] != epoch[:-1])]) - 1 if n else d
    n_groups = int(group[-1]) + 1 if n else 0
    g_first_start = _first_per_key(group, is_start, n_groups)
    g_starts = _group_starts(group)
    g_last = np.r_[g_starts[1:], n] - 1 if n else g_starts
    has_attempt = g_first_start >= 0
    a_start = g_first_start[has_attempt]  # position of each attempt's first row
    a_last = g_last[has_attempt]  # position of the last row of its epoch
    a_finished = is_end[a_last]
    n_att = len(a_start)
    att_of_group = np.full(n_groups, -1, dtype=np.int64)
    att_of_group[has_attempt] = np.arange(n_att)
    row_att = att_of_group[group] if n else group
    in_att = (row_att >= 0) & (pos >= _take(g_first_start, group, n + 1)) if n else row_att >= 0
    row_att = np.where(in_att, row_att, -1)

    a_dev = d[a_start]
    a_start_ts = ts[a_start]
    a_end_ts = np.where(a_finished, ts[a_last], run_end)
    # the next attempt of the same device (to bound "after" look-ups)
    same_next = np.r_[a_dev[1:] == a_dev[:-1], False] if n_att else np.zeros(0, bool)
    next_start = np.r_[a_start[1:], 0] if n_att else a_start
    upto = np.where(same_next, next_start - 1, dev_last[a_start] if n_att else a_start)

    # block rows: each belongs to the attempt of its device that started before it, unless
    # that attempt ended before it (then it precedes the device's next attempt: in none); they
    # are looked at in row order, a window at a time, half of them on the second core (numpy
    # lets go of the GIL in its loops)
    a_row = sel[a_start]  # each attempt's first and (if finished) last row in the table
    met_lower = [m.lower() for m in met_labels]
    met_hint = np.array([1 if m == "push" else 2 if m == "pull" else 0 for m in met_lower])
    met_hint = met_hint.astype(np.int8)
    blocks = _block_stats(a, a_dev, a_row, np.where(a_finished, sel[a_last], -1), met_hint)

    def first_of_both(
        ctrl_mask: np.ndarray, block_row: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per attempt, whether its first row with the mask set (or the first block row
        ``block_row`` of it, _NO_SEQ if none) is that block row, and the position of the
        first control row with the mask set (-1 if none or the block row came first)."""
        fc = _first_per_key(row_att, ctrl_mask, n_att)
        gc = np.where(fc >= 0, _take(sel, fc, 0), _NO_SEQ)
        use_block = block_row < gc
        return use_block, np.where(use_block, -1, fc)

    # result: the final code, or the last result reported during an unfinished attempt
    last_res = np.full(n_att, -1, dtype=np.int64)
    rmask = is_result & in_att
    if n_att and rmask.any():
        rs = pd.Series(pos[rmask]).groupby(row_att[rmask]).max()
        last_res[rs.index.to_numpy()] = rs.to_numpy()
    a_result = np.where(a_finished, rcode[a_last], _take(rcode, last_res, -1))

    # method hint
    # (labels of a code: labels[code], "" for a missing value)
    hint_names = np.array(["", "push", "pull"], dtype=object)
    hint = met_hint[met_codes]
    rhint = hint[requests]
    rhint = np.where((rhint == 0) & is_uri, 2, np.where((rhint == 0) & is_package, 1, rhint))
    hint[requests] = rhint
    first_dec = _first_per_key(row_att, dec_push_pull, n_att)
    hint_in_block, first_hint = first_of_both(hint > 0, blocks.hint_row)
    a_hint = np.where(hint_in_block, blocks.hint, _take(hint, first_hint, 0))
    a_method = np.where(
        first_dec >= 0,
        dec_labels[_take(dec_codes, first_dec, -1)],
        np.where(a_hint > 0, hint_names[a_hint], ""),
    )
    a_method = a_method.astype(object)
    a_method[a_method == ""] = None
    pro_in_block, first_pro = first_of_both(pro_codes >= 0, blocks.protocol_row)
    a_pro_code = np.where(pro_in_block, blocks.protocol, _take(pro_codes, first_pro, -1))
    a_protocol = np.where(a_pro_code >= 0, pro_labels[a_pro_code], np.array(None, dtype=object))

    # stage durations
    def stage_seconds(state: int) -> np.ndarray:
        first = _first_per_key(row_att, is_state & (scode == state), n_att)
        first_of_row = _take(first, row_att, n + 1) if n else row_att
        leave = is_state & (scode != state) & (pos > first_of_row) & (first_of_row >= 0)
        left = _first_per_key(row_att, leave, n_att)
        t0 = _take(ts, first, None)
        t1 = np.where(left >= 0, _take(ts, left, None), a_end_ts)
        return np.where(first >= 0, _seconds(t1 - t0), np.nan)

    a_download = stage_seconds(downloading)
    a_update = stage_seconds(int(State.UPDATING))

    # blocks, bytes, retransmissions (counted with the block rows above)
    a_blocks, a_bytes, a_has_bytes, a_retrans = blocks.counts
    cretrans = a.retrans[sel] & in_att
    a_retrans += np.bincount(row_att[cretrans], minlength=n_att).astype(np.int64)

    # firmware versions, final state, wave
    is_version = (k == _K["fw_version"]) & a.version_valid[sel]
    versions = np.full(n, None, dtype=object)
    version_rows = np.flatnonzero(is_version)
    versions[version_rows] = a.version_at(sel[version_rows])
    before = _last_at_or_before(is_version, dev_first, a_start)
    after = _last_at_or_before(is_version, dev_first, upto)
    after = np.where(after > a_start, after, -1)
    state_pos = _last_at_or_before(is_state, dev_first, upto)
    wave_rows = np.flatnonzero(a.wave_valid[sel])
    wave = np.full(n, np.nan)
    wave[wave_rows] = a.wave_at(sel[wave_rows])
    wave_pos = _last_at_or_before(~np.isnan(wave), dev_first, upto)
    a_wave = _take(wave, wave_pos, np.nan)
    # a block row carrying a wave value: the device's last one before its next attempt
    wrows = blocks.wave_rows
    if len(wrows) and n_att:
        span = a.n + 1
        wd = a.device[wrows].astype(np.int64)
        wkey = wd * span + wrows
        order = np.argsort(wkey, kind="stable")
        wkey, wd, wrows = wkey[order], wd[order], wrows[order]
        limit = np.where(same_next, _take(sel, next_start, 0) - 1, a.n)
        j = np.searchsorted(wkey, a_dev * span + limit, side="right") - 1
        jv = np.maximum(j, 0)
        found = (j >= 0) & (wd[jv] == a_dev)
        later = found & ((wave_pos < 0) | (wrows[jv] > _take(sel, wave_pos, -1)))
        a_wave = np.where(later, a.wave_at(wrows)[jv], a_wave)

    result_cat = pd.Categorical.from_codes(a_result.astype(np.int64), dtype=RESULT_DTYPE)
    attempt_no = (
        np.arange(n_att)
        - np.repeat(_group_starts(a_dev), np.diff(np.r_[_group_starts(a_dev), n_att]))
        + 1
        if n_att
        else np.zeros(0, np.int64)
    )
    return pd.DataFrame(
        {
            "device": pd.Categorical.from_codes(a_dev, dtype=a.device_dtype),
            "attempt": attempt_no.astype(np.int64),
            "method": _free_category(pd.Series(a_method, dtype=object)),
            "protocol": _free_category(pd.Series(a_protocol, dtype=object)),
            "start": _ts_series(a_start_ts),
            "end": _ts_series(a_end_ts),
            "duration_s": _seconds(a_end_ts - a_start_ts),
            "download_s": pd.array(a_download, dtype="Float64"),
            "update_s": pd.array(a_update, dtype="Float64"),
            "bytes": pd.array(np.where(a_has_bytes, a_bytes, np.nan), dtype="Float64").astype(
                "Int64"
            ),
            "blocks": a_blocks,
            "retransmissions": a_retrans,
            "final_state": pd.Categorical.from_codes(
                _take(scode, state_pos, -1), dtype=STATE_DTYPE
            ),
            "result": result_cat,
            "fw_before": pd.array(
                _take(np.asarray(versions, object), before, None), dtype="string"
            ),
            "fw_after": pd.array(_take(np.asarray(versions, object), after, None), dtype="string"),
            "success": np.asarray(a_result == int(UpdateResult.SUCCESS), dtype=bool),
            "finished": np.asarray(a_finished, dtype=bool),
            "wave": pd.array(a_wave, dtype="Float64").astype("Int16"),
        }
    )


# -- decisions ------------------------------------------------------------------------------


def decisions(events: pd.DataFrame) -> pd.DataFrame:
    """The PUSH-decision log: every ``decision`` row with the link sample it was based on.

    When a decision row does not carry ``rssi_dbm``/``link_quality`` itself, the device's latest
    row carrying them (normally a ``link`` row) at or before the decision is used; ``battery``
    likewise from the latest row carrying a battery level.

    Returns
    -------
    pandas.DataFrame
        ``ts`` (datetime64[us, UTC]), ``seq`` (int64), ``device`` (category), ``decision``
        (category), ``reason`` (string), ``rssi_dbm``, ``link_quality`` (Int16), ``battery``
        (Int8), ``sample_age_s`` (Float64: seconds between the link sample used and the
        decision; 0 when the decision row carries it, NA when no sample was known). In ``seq``
        order; RangeIndex.
    """
    ev = _by_seq(events)
    device = _device(ev["device"])
    kcode = _cat(ev["kind"], KIND_DTYPE).cat.codes.to_numpy()
    dcode = device.cat.codes.to_numpy().astype(np.int64)
    ts = _ts_array(ev["ts"])
    is_dec = kcode == _K["decision"]
    has_link = (ev["rssi_dbm"].notna() | ev["link_quality"].notna()).to_numpy()
    has_batt = ev["battery"].notna().to_numpy()
    order = _by_device(dcode)  # by device, then seq
    d = dcode[order]
    starts = _group_starts(d)
    first = np.repeat(starts, np.diff(np.r_[starts, len(d)])) if len(d) else d
    inv = np.empty(len(order), dtype=np.int64)
    inv[order] = np.arange(len(order))
    dec_idx = np.flatnonzero(is_dec)
    at = inv[dec_idx]  # positions of decision rows in the device-sorted order

    def source_rows(mask: np.ndarray) -> np.ndarray:
        """Row index (in ``ev``) of the latest masked row of the same device, or -1."""
        found = _last_at_or_before(mask[order], first, at)
        return np.where(found >= 0, order[np.maximum(found, 0)], -1) if len(at) else at

    link_idx = source_rows(has_link)
    batt_idx = source_rows(has_batt)

    def pick(column: str, idx: np.ndarray) -> pd.Series:
        values = ev[column].take(np.maximum(idx, 0)).reset_index(drop=True)
        return values.where(pd.Series(idx >= 0), pd.NA).astype(ev[column].dtype)

    age = _seconds(ts[dec_idx] - _take(ts, link_idx, None)) if len(dec_idx) else np.zeros(0)
    return pd.DataFrame(
        {
            "ts": ev["ts"].take(dec_idx).reset_index(drop=True),
            "seq": ev["seq"].take(dec_idx).reset_index(drop=True).astype(np.int64),
            "device": pd.Categorical.from_codes(dcode[dec_idx], dtype=device.dtype),
            "decision": _free_category(ev["decision"].take(dec_idx).reset_index(drop=True)),
            "reason": ev["reason"].take(dec_idx).reset_index(drop=True).astype("string"),
            "rssi_dbm": pick("rssi_dbm", link_idx).astype("Int16"),
            "link_quality": pick("link_quality", link_idx).astype("Int16"),
            "battery": pick("battery", batt_idx).astype("Int8"),
            "sample_age_s": pd.array(np.where(link_idx >= 0, age, np.nan), dtype="Float64"),
        }
    )


# -- result counts and survival -------------------------------------------------------------


def result_counts(
    data: pd.DataFrame | EventSource, by: str | Sequence[str] | None = None
) -> pd.DataFrame:
    """How often each Update Result ended an attempt, overall or per group.

    Parameters
    ----------
    data : pandas.DataFrame or Run
        An attempts table (:func:`attempts`), or an event table or a run
        (:func:`labkit.record.read_run`), whose attempts are computed first (counting raw
        ``fw_result`` rows would count re-reads and duplicates).
    by : str or list of str, optional
        Columns of ``data`` to group by (``method``, ``fw_before``, ``wave``, ``device`` ...).
        Run-level parameters (policy, profile) are not event columns: add them first, e.g.
        ``attempts(run.events).assign(policy=run.params["policy"])``, and concatenate runs.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, ``result`` (category of /5/0/5 names), ``code`` (int64), ``count``
        (int64), ``share`` (float64, sums to 1 within each group). Only results that occur;
        attempts without a result are left out; missing group values form their own group.
        Sorted by group then code; RangeIndex.
    """
    if not isinstance(data, pd.DataFrame) or (
        "kind" in data.columns and "attempt" not in data.columns
    ):
        data = attempts(data)
    keys = _by_list(by)
    _check_columns(data, [*keys, "result"], "result_counts")
    df = data.loc[data["result"].notna(), [*keys, "result"]]
    result = _cat(df["result"], RESULT_DTYPE)
    codes = result.cat.codes.to_numpy().astype(np.int64)
    frame = df[keys].reset_index(drop=True).assign(_code=codes)
    counts = (
        frame.groupby([*keys, "_code"], observed=True, dropna=False, sort=True)
        .size()
        .rename("count")
        .reset_index()
    )
    if keys:
        totals = counts.groupby(keys, observed=True, dropna=False)["count"].transform("sum")
    else:
        totals = pd.Series(counts["count"].sum(), index=counts.index)
    code = counts["_code"].to_numpy().astype(np.int64)
    out = counts[keys].copy()
    out["result"] = pd.Categorical.from_codes(code, dtype=RESULT_DTYPE)
    out["code"] = code
    out["count"] = counts["count"].to_numpy().astype(np.int64)
    out["share"] = (counts["count"] / totals).to_numpy(dtype=np.float64)
    return out.reset_index(drop=True)


def time_to_success(attempts: pd.DataFrame, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Kaplan–Meier table of attempt duration until SUCCESS.

    Each attempt is observed for ``duration_s``; a successful attempt is an event at that time,
    any other attempt (failed, cancelled, or still open at the run's end) is censored then.

    Parameters
    ----------
    attempts : pandas.DataFrame
        An attempts table (:func:`attempts`): needs ``duration_s`` and ``success``.
    by : str or list of str, optional
        Columns to compute one curve per group for (``method``, ``wave`` ...).

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, ``t_s`` (float64, each distinct duration in the group), ``n_at_risk``
        (attempts still open just before ``t_s``), ``n_success`` and ``n_censored`` (int64, at
        ``t_s``), ``surviving`` (float64, Kaplan–Meier estimate of the share not yet succeeded
        after ``t_s``; non-increasing), ``success_fraction`` (1 - surviving). Sorted by group
        and ``t_s``; RangeIndex. Plot as a step starting at (0, 1).
    """
    keys = _by_list(by)
    _check_columns(attempts, [*keys, "duration_s", "success"], "time_to_success")
    df = attempts[keys].reset_index(drop=True).copy()
    df["t_s"] = attempts["duration_s"].to_numpy(dtype=np.float64)
    success = attempts["success"].to_numpy(dtype=bool)
    df["n_success"] = success.astype(np.int64)
    df["n_censored"] = (~success).astype(np.int64)
    df = df.loc[~np.isnan(df["t_s"].to_numpy())]
    agg = (
        df.groupby([*keys, "t_s"], observed=True, dropna=False, sort=True)[
            ["n_success", "n_censored"]
        ]
        .sum()
        .reset_index()
    )
    leaving = agg["n_success"] + agg["n_censored"]
    if keys:
        grouped = leaving.groupby([agg[c] for c in keys], observed=True, dropna=False)
        total = grouped.transform("sum")
        left_before = grouped.cumsum() - leaving
    else:
        total = pd.Series(leaving.sum(), index=agg.index)
        left_before = leaving.cumsum() - leaving
    agg["n_at_risk"] = (total - left_before).astype(np.int64)
    factor = pd.Series(1.0 - agg["n_success"] / agg["n_at_risk"], index=agg.index)
    if keys:
        surviving = factor.groupby([agg[c] for c in keys], observed=True, dropna=False).cumprod()
    else:
        surviving = factor.cumprod()
    out = agg[keys].copy()
    out["t_s"] = agg["t_s"].astype(np.float64)
    out["n_at_risk"] = agg["n_at_risk"].astype(np.int64)
    out["n_success"] = agg["n_success"].astype(np.int64)
    out["n_censored"] = agg["n_censored"].astype(np.int64)
    out["surviving"] = surviving.to_numpy(dtype=np.float64)
    out["success_fraction"] = 1.0 - out["surviving"]
    return out.reset_index(drop=True)
