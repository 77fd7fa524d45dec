"""Reading recorded runs back: one run as a :class:`Run`, and the table of runs under a folder.

This module owns the reading side of the run layout written by :mod:`labkit.record.recorder`
(``<run_dir>/manifest.json`` plus ``<run_dir>/events.parquet/part-NNNNN.parquet``; a single
``events.parquet`` file is accepted too). Loaded events are validated against
:mod:`labkit.record.schema`, dtypes restored, sorted by ``seq``. It never writes or repairs a run:
a truncated part file raises :class:`RunError` naming it (or is skipped and listed in
:attr:`Run.skipped` with ``skip_broken=True``); a run that was killed before it was closed loads
with ``complete=False``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from labkit.events import KINDS, SOURCES
from labkit.record.schema import (
    RESULT_NAMES,
    STATE_NAMES,
    SchemaError,
    arrow_schema,
    coerce,
    empty_frame,
    frame_from_arrow,
    validate,
)

__all__ = [
    "DEFAULT_RUNS_DIR",
    "EVENTS_NAME",
    "MANIFEST_NAME",
    "Run",
    "RunError",
    "campaign_outcomes",
    "list_runs",
    "load_attempts",
    "part_files",
    "read_run",
]

#: Where runs live unless told otherwise (relative to the working directory).
DEFAULT_RUNS_DIR = Path("data/runs")
EVENTS_NAME = "events.parquet"
MANIFEST_NAME = "manifest.json"

_PART_RE = re.compile(r"^part-(\d+)\.parquet$")
_READ_PASSES = 20  # a part can vanish while a recorder compacts; list again and read the rest


class RunError(Exception):
    """A run directory or one of its files is missing, unreadable or inconsistent.

    Attributes
    ----------
    path : Path
        The offending file or directory.
    """

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


def part_files(events_dir: str | Path) -> list[Path]:
    """The complete part files of an ``events.parquet`` directory, in write order.

    Temporary files of a flush in progress (hidden ``.part-*.tmp`` names) are not listed.
    """
    d = Path(events_dir)
    if not d.is_dir():
        return []
    found = []
    for p in d.iterdir():
        m = _PART_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


class Run:
    """One recorded run: where it is, its manifest and its typed event table.

    ``complete`` is False when the manifest has no ``finished_at`` (the recorder was never
    closed, e.g. the process was killed). ``skipped`` lists part files left out because they
    were unreadable (only with ``read_run(..., skip_broken=True)``).

    ``events`` (the pandas event table) is built on first use: :func:`read_run` checks the
    Arrow tables it read and keeps them, and :func:`labkit.record.attempts` and
    :func:`labkit.record.result_counts` of a run work on those directly, without the pandas
    frame of every column (on a run of millions of events that frame is most of the cost).
    """

    __slots__ = ("_frame", "_late", "_table", "complete", "manifest", "path", "run_id", "skipped")

    def __init__(
        self,
        path: Path,
        run_id: str,
        manifest: dict[str, Any],
        events: pd.DataFrame | None,
        complete: bool,
        skipped: tuple[Path, ...] = (),
        *,
        table: pa.Table | None = None,
        late: tuple[Path, ...] = (),
    ) -> None:
        if events is None and table is None:
            raise ValueError("a Run needs its events or their Arrow table")
        self.path = path
        self.run_id = run_id
        self.manifest = manifest
        self.complete = complete
        self.skipped = skipped
        self._frame = events
        self._table = table
        self._late = late  # the parts to read the columns missing from ``table`` from

    @property
    def events(self) -> pd.DataFrame:
        """The validated event table (columns of :data:`labkit.record.schema.COLUMNS`),
        sorted by ``seq``, RangeIndex; built from the Arrow tables on first use."""
        if self._frame is None:
            assert self._table is not None
            table = self._whole_table()
            events = frame_from_arrow(table)
            try:
                if events is None:  # read_run checked what would make this happen
                    events = coerce(table.to_pandas())
                validate(events)
            except SchemaError as exc:
                raise RunError(self.path / EVENTS_NAME, str(exc)) from exc
            self._frame = events
            self._table = None  # the frame owns its data now
        return self._frame

    def _whole_table(self) -> pa.Table:
        """The Arrow table with every column of the schema (reading the late ones)."""
        assert self._table is not None
        if not self._late:
            return self._table
        names = [n for n in arrow_schema().names if n not in self._table.column_names]
        try:
            late = [pq.read_table(p, columns=names) for p in self._late]
        except (pa.ArrowException, OSError) as exc:
            raise RunError(self.path / EVENTS_NAME, f"cannot read the run again: {exc}") from exc
        extra = late[0] if len(late) == 1 else pa.concat_tables(late)
        if extra.num_rows != self._table.num_rows:
            raise RunError(self.path / EVENTS_NAME, "the part files changed since they were read")
        columns = {**dict(zip(self._table.column_names, self._table.columns, strict=True)),
                   **dict(zip(extra.column_names, extra.columns, strict=True))}
        schema = arrow_schema()
        return pa.Table.from_arrays([columns[n] for n in schema.names], schema=schema)

    @property
    def n_events(self) -> int:
        """The number of events (without building the event table)."""
        if self._frame is not None:
            return len(self._frame)
        assert self._table is not None
        return int(self._table.num_rows)

    def event_arrays(self) -> Any:
        """The columns :func:`labkit.record.attempts` reads (its internal
        ``EventArrays``), from the Arrow tables while the pandas table is not built."""
        from labkit.record.derived import arrays_from_arrow, arrays_of

        if self._frame is None and self._table is not None:
            found = arrays_from_arrow(self._table)
            if found is not None:
                return found
        return arrays_of(self.events)

    @property
    def params(self) -> dict[str, Any]:
        """The caller's parameters stored in the manifest (seed, profile, policy ...)."""
        params = self.manifest.get("params") or {}
        return dict(params) if isinstance(params, dict) else {}

    def attempts(self) -> pd.DataFrame:
        """:func:`labkit.record.derived.attempts` of this run's events."""
        from labkit.record.derived import attempts

        return attempts(self)

    def state_intervals(self) -> pd.DataFrame:
        """:func:`labkit.record.derived.state_intervals` of this run's events."""
        from labkit.record.derived import state_intervals

        return state_intervals(self.events)

    def decisions(self) -> pd.DataFrame:
        """:func:`labkit.record.derived.decisions` of this run's events."""
        from labkit.record.derived import decisions

        return decisions(self.events)

    def __repr__(self) -> str:
        status = "complete" if self.complete else "incomplete"
        return f"<Run {self.run_id} {status}, {self.n_events} events, {self.path}>"

    def _repr_html_(self) -> str:
        devices = self.events["device"].nunique() if len(self.events) else 0
        rows = [
            ("run", self.run_id),
            ("path", str(self.path)),
            ("created", self.manifest.get("created_at")),
            ("finished", self.manifest.get("finished_at") or "not closed (incomplete)"),
            ("events", len(self.events)),
            ("devices", devices),
            *((f"param {k}", v) for k, v in self.params.items()),
        ]
        if self.skipped:
            rows.append(("skipped parts", ", ".join(p.name for p in self.skipped)))
        body = "".join(
            f"<tr><th style='text-align:left'>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table>{body}</table>"


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunError(path, "no manifest.json: not a labkit run directory") from None
    except OSError as exc:
        raise RunError(path, f"cannot read manifest: {exc}") from exc
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunError(path, f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("run_id"), str):
        raise RunError(path, "manifest is not an object with a string run_id")
    return manifest


def _event_files(events_path: Path) -> list[Path]:
    if events_path.is_file():
        return [events_path]
    return part_files(events_path)


def _read_part(part: Path, columns: Sequence[str] | None = None) -> tuple[pa.Table, bool]:
    """One part file as a table of the schema, and whether it was written with that schema
    (False: its columns were cast); RunError if it is truncated or foreign. ``columns``: read
    only those when the part was written with the schema (all of them otherwise)."""
    target = arrow_schema()
    try:
        if columns is not None:
            written = pq.read_schema(part)
            if written.equals(target, check_metadata=False):
                table = pq.read_table(part, columns=list(columns))
                return table.replace_schema_metadata(None), True
        table = pq.read_table(part)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise RunError(part, f"unreadable part file ({type(exc).__name__}: {exc})") from exc
    if table.schema.names != target.names:
        raise RunError(part, f"part file has columns {table.schema.names}, not {target.names}")
    exact = table.schema.equals(target, check_metadata=False)
    if not exact:
        try:
            table = table.cast(target)
        except (pa.ArrowException, ValueError) as exc:
            raise RunError(part, f"part file columns have the wrong types: {exc}") from exc
    return table.replace_schema_metadata(None), exact


def _read_tables(
    events_path: Path, skip_broken: bool, columns: Sequence[str] | None = None
) -> tuple[list[tuple[pa.Table, bool]], list[Path], list[Path]]:
    """Read every part (the tables, the parts skipped, the parts read in order); cope with
    parts removed by a compaction running meanwhile.

    A compaction writes the merged part (with a higher number) before removing the old ones,
    so when a listed part has vanished the directory is listed again and the new parts read;
    rows read twice are dropped later by ``seq``.
    """
    tables: dict[Path, tuple[pa.Table, bool]] = {}
    skipped: list[Path] = []
    for _ in range(_READ_PASSES):
        vanished = False
        for part in _event_files(events_path):
            if part in tables or part in skipped:
                continue
            try:
                tables[part] = _read_part(part, columns)
            except FileNotFoundError:
                vanished = True
            except RunError:
                if not skip_broken:
                    raise
                skipped.append(part)
        if not vanished:
            break
    else:
        raise RunError(events_path, "part files kept disappearing while reading")
    ordered = sorted(tables, key=lambda p: (len(p.name), p.name))
    return [tables[p] for p in ordered], skipped, ordered


def _tables_to_frame(tables: list[tuple[pa.Table, bool]]) -> pd.DataFrame:
    if not tables:
        return empty_frame()
    parts = [table for table, _ in tables]
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    # parts written with the schema convert straight from Arrow; cast (foreign) parts, and
    # values the Arrow types do not rule out, take the full coerce path
    frame = frame_from_arrow(table) if all(exact for _, exact in tables) else None
    if frame is None:
        frame = coerce(table.to_pandas())
    seq = frame["seq"].to_numpy()
    if len(seq) > 1 and not (seq[1:] > seq[:-1]).all():
        # parts arrive in write order; only a compaction interrupted by a kill repeats rows
        frame = frame.sort_values("seq", kind="stable", ignore_index=True)
        repeated = frame["seq"].duplicated(keep=False)
        if repeated.any():
            rows = frame.loc[repeated]
            if len(rows.drop_duplicates()) != rows["seq"].nunique():
                clash = rows.loc[~rows.duplicated(keep=False), "seq"].iloc[0]
                raise SchemaError([f"seq {clash} appears more than once with different content"])
            frame = frame.drop_duplicates("seq", keep="first", ignore_index=True)
    return frame


#: Columns :func:`labkit.record.attempts` never reads: read on first use of ``Run.events``.
_LATE = ("rssi_dbm", "link_quality", "battery", "reason", "rtt_ms")
_NOT_NULL = ("ts", "seq", "run_id", "source", "kind")
_FIXED = {"source": SOURCES, "kind": KINDS, "state": STATE_NAMES, "result": RESULT_NAMES}
_FREE = ("run_id", "device", "decision", "method", "protocol", "code")


def _clean_table(tables: list[tuple[pa.Table, bool]], run_id: str) -> pa.Table | None:
    """The parts as one table when it is certain to pass validation as it is: every part
    written with the schema, no missing ``ts``/``seq``/``run_id``/``source``/``kind``, fixed
    categories within theirs, no missing value in a dictionary, ``seq`` strictly increasing
    and only ``run_id`` as run id. None otherwise (the full path then repairs or reports)."""
    if not tables or not all(exact for _, exact in tables):
        return None
    parts = [t for t, _ in tables]
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    if not table.num_rows or any(table.column(n).null_count for n in _NOT_NULL):
        return None
    for name, allowed in _FIXED.items():
        names = set(allowed)
        for chunk in table.column(name).chunks:
            d = chunk.dictionary
            if d.null_count or not names.issuperset(d.to_pylist()):
                return None
    for name in _FREE:
        if any(chunk.dictionary.null_count for chunk in table.column(name).chunks):
            return None
    if any(chunk.dictionary.to_pylist() != [run_id] for chunk in table.column("run_id").chunks
           if len(chunk)):
        return None
    # seq strictly increasing: chunk by chunk (no copy of the whole column), and across chunks
    last: int | None = None
    for chunk in table.column("seq").chunks:
        if not len(chunk):
            continue
        seq = chunk.to_numpy()
        if (last is not None and seq[0] <= last) or not (seq[1:] > seq[:-1]).all():
            return None
        last = int(seq[-1])
    return table


def read_run(path: str | Path, *, skip_broken: bool = False) -> Run:
    """Load one run directory.

    Parameters
    ----------
    path : str or Path
        The run directory (holding ``manifest.json`` and ``events.parquet``).
    skip_broken : bool
        Leave out unreadable part files (listed in :attr:`Run.skipped`) instead of raising.

    Returns
    -------
    Run
        ``events`` is a validated event table (columns of :data:`labkit.record.schema.COLUMNS`)
        sorted by ``seq``, RangeIndex. A run with no part files yet has an empty table.

    Raises
    ------
    RunError
        When the directory or manifest is missing or unreadable, a part file is truncated or
        not an event table (unless ``skip_broken``), the events fail validation, or their
        ``run_id`` differs from the manifest's.
    """
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise RunError(run_dir, "not a directory (expected a run directory)")
    manifest = _read_manifest(run_dir)
    run_id = manifest["run_id"]
    complete = manifest.get("finished_at") is not None
    # a closed run's parts no longer change: the columns attempts() never reads are read when
    # the event table is first used (an open run is read whole: a compaction may follow)
    columns = [n for n in arrow_schema().names if n not in _LATE] if complete else None
    tables, skipped, parts = _read_tables(run_dir / EVENTS_NAME, skip_broken, columns)
    table = _clean_table(tables, run_id)
    if table is not None:  # the event table is built when first used
        return Run(
            path=run_dir,
            run_id=run_id,
            manifest=manifest,
            events=None,
            complete=complete,
            skipped=tuple(skipped),
            table=table,
            late=tuple(parts) if columns is not None else (),
        )
    if columns is not None:  # the full path: every column
        tables, skipped, _ = _read_tables(run_dir / EVENTS_NAME, skip_broken)
    try:
        events = _tables_to_frame(tables)
        validate(events)
    except SchemaError as exc:
        raise RunError(run_dir / EVENTS_NAME, str(exc)) from exc
    if len(events):
        ids = set(events["run_id"].cat.categories)
        if ids != {run_id}:
            raise RunError(
                run_dir / EVENTS_NAME,
                f"events carry run_id {sorted(ids)}, manifest says {run_id!r}",
            )
    return Run(
        path=run_dir,
        run_id=run_id,
        manifest=manifest,
        events=events,
        complete=manifest.get("finished_at") is not None,
        skipped=tuple(skipped),
    )


_LIST_COLUMNS = (
    "run_id",
    "path",
    "created_at",
    "finished_at",
    "complete",
    "n_events",
    "n_devices",
    "error",
)


def _scalar(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def _summarise(run_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run_dir.name,
        "path": str(run_dir),
        "complete": False,
        "n_events": 0,
        "n_devices": 0,
        "error": None,
    }
    try:
        manifest = _read_manifest(run_dir)
    except RunError as exc:
        row["error"] = exc.message
        return row
    row.update(
        run_id=manifest["run_id"],
        created_at=manifest.get("created_at"),
        finished_at=manifest.get("finished_at"),
        complete=manifest.get("finished_at") is not None,
    )
    devices: set[str] = set()
    problems: list[str] = []
    for part in _event_files(run_dir / EVENTS_NAME):
        try:
            row["n_events"] += pq.read_metadata(part).num_rows
            column = pq.read_table(part, columns=["device"]).column("device")
            devices.update(v for v in column.to_pylist() if v is not None)
        except (pa.ArrowException, OSError) as exc:
            problems.append(f"{part.name}: {type(exc).__name__}")
    row["n_devices"] = len(devices)
    if problems:
        row["error"] = "unreadable part files: " + ", ".join(problems)
    params = manifest.get("params") or {}
    if isinstance(params, dict):
        for key, value in params.items():
            if key not in _LIST_COLUMNS:
                row[key] = _scalar(value)
    return row


def list_runs(root: str | Path = DEFAULT_RUNS_DIR) -> pd.DataFrame:
    """One row per run directory under ``root`` (folders without ``manifest.json`` are skipped).

    This reads manifests and Parquet footers, not the whole event tables, so it stays quick.
    A missing ``root`` gives an empty table.

    Returns
    -------
    pandas.DataFrame
        Columns ``run_id`` (string), ``path`` (string), ``created_at`` and ``finished_at``
        (datetime64[us, UTC]; NaT while a run is not closed), ``complete`` (bool), ``n_events``
        and ``n_devices`` (int64; counted over readable part files), ``error`` (string, NA
        when the run reads cleanly), then one column per manifest parameter (lists and dicts as
        JSON text). Sorted by ``created_at`` then ``run_id``; RangeIndex.
    """
    root = Path(root)
    dirs: Iterable[Path] = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ()
    rows = [_summarise(d) for d in dirs if (d / MANIFEST_NAME).exists()]
    frame = pd.DataFrame(rows)
    for name in _LIST_COLUMNS:
        if name not in frame.columns:
            frame[name] = pd.Series([None] * len(frame), dtype=object)
    params = [c for c in frame.columns if c not in _LIST_COLUMNS]
    frame = frame[[*_LIST_COLUMNS, *params]]
    frame = frame.astype(
        {
            "run_id": "string",
            "path": "string",
            "error": "string",
            "complete": bool,
            "n_events": "int64",
            "n_devices": "int64",
        }
    )
    for name in ("created_at", "finished_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601").astype(
            "datetime64[us, UTC]"
        )
    return frame.sort_values(["created_at", "run_id"], ignore_index=True, na_position="last")


def load_attempts(
    runs: Iterable[Run | str | Path], params: Sequence[str] = ("policy",)
) -> pd.DataFrame:
    """The attempts tables of several runs, one after the other, with run parameters as columns.

    Each run's attempts are computed on its own (:func:`labkit.record.attempts`): devices of
    different runs often share names (``sim-0001``...), so concatenating the event tables
    first would merge them. Run-level parameters such as the policy are not event columns;
    they are taken from each manifest, so ``result_counts(table, by="policy")`` and
    ``plot_result_counts(table, by="policy")`` compare runs directly.

    Parameters
    ----------
    runs : iterable of Run, str or Path
        Loaded runs or run directories (read with :func:`read_run`).
    params : sequence of str
        Manifest parameters to add as columns (dicts and lists as JSON text; NA when a run
        has no such parameter).

    Raises
    ------
    ValueError
        When a name in ``params`` is already a column of the attempts table (``method``).

    Returns
    -------
    pandas.DataFrame
        ``run_id`` (string), one column per name in ``params``, then the columns of
        :func:`labkit.record.attempts`; categorical columns whose categories differ between
        runs are re-made as categories of all their values. RangeIndex.
    """
    from labkit.record.derived import attempts

    frames: list[pd.DataFrame] = []
    for item in runs:
        run = item if isinstance(item, Run) else read_run(item)
        att = attempts(run).reset_index(drop=True)
        frames.append(pd.concat([_run_head(run, len(att), params, att.columns), att], axis=1))
    if not frames:
        head = {"run_id": pd.Series([], dtype="string")}
        head.update({name: pd.Series([], dtype="string") for name in params})
        return pd.concat([pd.DataFrame(head), attempts(empty_frame())], axis=1)
    table = pd.concat(frames, ignore_index=True)
    for name in params:
        column = table[name]
        if column.map(lambda v: isinstance(v, str) or v is None).all():
            table[name] = column.astype("string")
    for name, dtype in frames[0].dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype) and not isinstance(
            table[name].dtype, pd.CategoricalDtype
        ):
            table[name] = table[name].astype("category")
    return table


def _run_head(run: Run, n: int, params: Sequence[str], columns: Iterable[str]) -> pd.DataFrame:
    clash = sorted({"run_id", *params} & set(columns))
    if clash:
        raise ValueError(f"parameters {clash} are already columns of the table; leave them out")
    head = {"run_id": pd.Series([run.run_id] * n, dtype="string")}
    given = run.params
    for name in params:
        head[name] = pd.Series([_scalar(given.get(name))] * n, dtype=object)
    return pd.DataFrame(head)


def campaign_outcomes(
    runs: Iterable[Run | str | Path], params: Sequence[str] = ("policy",)
) -> pd.DataFrame:
    """The campaign's own verdict on each device of several campaign runs, one row per device.

    A run saved by :func:`labkit.fota.simulate.simulate` holds ``campaign_devices.parquet``
    (the campaign's per-device table) and ``links.parquet`` (each device's link profile and
    faults). The campaign's verdict includes results it inferred when the device could not
    report one (a PUSH stalled by a lost link is ``CONNECTION_LOST``, ``result_inferred``
    True); the attempts computed from the event table (:func:`~labkit.record.attempts`) take
    them from the campaign's ``campaign`` rows, so the two agree on the last attempt of each
    device, but only this table says which results were inferred.

    Parameters
    ----------
    runs : iterable of Run, str or Path
        Campaign runs or their directories.
    params : sequence of str
        Manifest parameters to add as columns (as :func:`load_attempts`).

    Returns
    -------
    pandas.DataFrame
        ``run_id``, the ``params`` columns, then the campaign table's columns (``device``,
        ``status``, ``attempts``, ``waits``, ``waited_s``, ``duration_s``, ``first_rssi_dbm``
        ...) with ``result`` as the Update Result name (category, NA when none was known) and
        ``result_code`` (Int64), ``success`` (bool: status ``success``), and ``profile`` and
        ``faults`` from ``links.parquet`` when the run has it. ``result_counts``,
        ``plot_result_counts`` and ``plot_time_to_success`` take it like an attempts table.

    Raises
    ------
    RunError
        When a run has no ``campaign_devices.parquet`` (it is not a simulated campaign).
    """
    from labkit.record.schema import RESULT_DTYPE

    frames: list[pd.DataFrame] = []
    for item in runs:
        run = item if isinstance(item, Run) else read_run(item)
        path = run.path / "campaign_devices.parquet"
        if not path.is_file():
            raise RunError(path, "no campaign table: not a run saved by labkit simulate")
        table = pd.read_parquet(path)
        table = table.assign(
            result_code=table["result"].astype("Int64"),
            result=table["result_name"].astype("string").astype(RESULT_DTYPE),
            success=(table["status"].astype("string") == "success").fillna(False).astype(bool),
        ).drop(columns=["result_name"])
        links = run.path / "links.parquet"
        if links.is_file():
            extra = pd.read_parquet(links, columns=["device", "profile", "faults"])
            table = table.merge(extra, on="device", how="left")
        table["device"] = table["device"].astype("category")
        head = _run_head(run, len(table), params, table.columns)
        frames.append(pd.concat([head, table], axis=1))
    if not frames:
        return pd.DataFrame({"run_id": pd.Series([], dtype="string")})
    out = pd.concat(frames, ignore_index=True)
    for name in params:
        if out[name].map(lambda v: isinstance(v, str) or v is None).all():
            out[name] = out[name].astype("string")
    for name in ("device", "status"):
        if not isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = out[name].astype("category")
    return out
