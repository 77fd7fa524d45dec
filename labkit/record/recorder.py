"""The recorder: an event sink that keeps a run's events in memory and writes them to disk.

This module owns writing a run: :class:`Recorder` accepts events from any thread (it is cheap
enough to call from the asyncio event loop: one lock-protected ``list.append``), and a background
thread converts them to Arrow tables of the schema (:func:`~labkit.record.schema.events_to_table`;
the pandas path for values only it can judge) and writes them out at least every
``flush_interval`` seconds. It never blocks the event loop on disk I/O and it never decides
anything about the events it stores.

On-disk layout of a run directory (read back by :mod:`labkit.record.runs`)::

    <run_dir>/manifest.json                 run_id, created_at, finished_at, schema_version,
                                            versions, params (the caller's parameters)
    <run_dir>/events.parquet/part-00000.parquet
    <run_dir>/events.parquet/part-00001.parquet ...

Each flush writes one new part file under a hidden temporary name, fsyncs it and renames it into
place with :func:`os.replace`, so a process killed at any moment (SIGKILL included) leaves only
complete part files; readers ignore the temporaries. ``manifest.json`` is replaced atomically the
same way at start (``finished_at`` null) and at :meth:`Recorder.close` (``finished_at`` set), so a
run whose manifest has no ``finished_at`` was not closed. At close the parts are compacted into
one file (the new part is written before the old ones are removed, and readers drop rows whose
``seq`` repeats, so a kill during compaction is harmless too). Parts of a running recorder are
written without column statistics (:data:`PART_OPTIONS`); the compacted file with pyarrow's
defaults, from the typed event table.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import math
import os
import platform
import threading
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from labkit.events import Event
from labkit.record.runs import DEFAULT_RUNS_DIR, EVENTS_NAME, MANIFEST_NAME, RunError, part_files
from labkit.record.schema import (
    RESULT_NAMES,
    SCHEMA_VERSION,
    STATE_NAMES,
    SchemaError,
    arrow_schema,
    coerce,
    empty_frame,
    events_to_frame,
    events_to_table,
    frame_from_arrow,
)

__all__ = ["Recorder", "new_run_id", "write_manifest"]

log = logging.getLogger(__name__)

_VERSIONED = ("labkit", "aiocoap", "pandas", "pyarrow", "numpy")

#: Converted events: an Arrow table of the schema (built without pandas), or, for a batch
#: holding a value only the pandas path can judge, the typed frame that path made.
_Chunk: TypeAlias = pa.Table | pd.DataFrame

#: Parquet options of the parts written while a run goes (flushes and merges): no column
#: statistics (nothing reads them from a part; a third of the cost of writing one). The file a
#: closed run is compacted into is written with pyarrow's defaults.
PART_OPTIONS: dict[str, Any] = {"write_statistics": False}
_counter = itertools.count(1)
_counter_lock = threading.Lock()


def new_run_id(root: str | Path | None = None, *, now: datetime | None = None) -> str:
    """A fresh run id: the UTC time and a counter, e.g. ``"20261127T093000Z-1"``.

    The counter is process-wide; when ``root`` is given, ids whose directory already exists under
    ``root`` are skipped, so two processes starting in the same second do not collide on disk.
    """
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    while True:
        with _counter_lock:
            n = next(_counter)
        run_id = f"{stamp}-{n}"
        if root is None or not (Path(root) / run_id).exists():
            return run_id


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def _json_default(value: Any) -> Any:
    """Make manifest parameters JSON: paths, enums, numpy scalars, dates, sets."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest`` as JSON to ``path`` atomically (temporary file, fsync, rename)."""
    text = json.dumps(manifest, indent=2, default=_json_default, sort_keys=False)
    _atomic_write_bytes(path, (text + "\n").encode())


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Recorder:
    """An :data:`~labkit.events.EventSink` that records a run, in memory and optionally on disk.

    Parameters
    ----------
    run_dir : str, Path or None
        The run's own directory (created if needed; it must not already hold events). ``None``
        keeps the events in memory only. :meth:`in_root` makes a fresh ``<root>/<run_id>``.
    run_id : str, optional
        Defaults to ``run_dir``'s name, or :func:`new_run_id` for a memory-only recorder.
    flush_interval : float
        Longest time, in seconds, events wait in memory before the background thread writes them.
    manifest : mapping, optional
        The caller's parameters (seed, profile, policy, package, time_scale ...), stored under
        ``"params"`` in ``manifest.json``.

    Notes
    -----
    Calling the recorder (``recorder(event)``) appends to a list under a lock and returns; all
    conversion and disk writes happen on the background thread or in :meth:`flush`. Event values
    that cannot be stored (a State outside 0..3, a Result outside 0..11, a non-finite ``ts``)
    raise ``ValueError`` in the caller, where the bug is; a value that does not fit its column
    (a battery level of 300) is found at conversion and that one event is stored as an ``error``
    row describing it. Calling a closed recorder raises ``RuntimeError``. A failed disk write
    is logged and kept in :attr:`error`; its events stay queued and go out with the next flush.
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        *,
        run_id: str | None = None,
        flush_interval: float = 0.5,
        manifest: Mapping[str, Any] | None = None,
        retain: bool = True,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        self.path: Path | None = Path(run_dir) if run_dir is not None else None
        if run_id is None:
            run_id = self.path.name if self.path is not None else new_run_id()
        self.run_id: str = run_id
        self.flush_interval = float(flush_interval)
        #: keep every event in memory (fast :meth:`frame`); False: events written to disk are
        #: released and :meth:`frame` reads the parts back (memory does not grow with the run)
        self.retain = bool(retain) or self.path is None
        self._levels: list[tuple[Path, int]] = []  # part files written by this recorder
        self._lock = threading.Lock()  # guards _pending and _closed; held for microseconds
        self._flush_lock = threading.RLock()  # serialises conversion and writes
        self._pending: list[Event] = []
        self._closed = False
        self._chunks: list[_Chunk] = []  # converted events, in seq order
        self._n_taken = 0  # events moved out of _pending (they get seq 0 .. _n_taken-1)
        self._unwritten: list[_Chunk] = []
        self._n_written = 0
        self._next_part = 0
        self._stop = threading.Event()
        self.error: BaseException | None = None  # last failure of a background flush
        self.manifest: dict[str, Any] = {
            "run_id": self.run_id,
            "created_at": _now_iso(),
            "finished_at": None,
            "schema_version": SCHEMA_VERSION,
            "n_events": None,
            "versions": _versions(),
            "params": dict(manifest or {}),
        }
        if self.path is not None:
            self._prepare_dir(self.path)
            write_manifest(self.path / MANIFEST_NAME, self.manifest)
        # The thread holds only a weak reference, so a recorder dropped without close() is
        # collected and its thread ends (its last < flush_interval of events are lost).
        self._thread = threading.Thread(
            target=_flush_loop,
            args=(weakref.ref(self), self._stop, self.flush_interval),
            name=f"labkit-recorder-{self.run_id}",
            daemon=True,
        )
        weakref.finalize(self, self._stop.set)
        self._thread.start()
        ref = weakref.ref(self)
        self._atexit = lambda: _flush_at_exit(ref)
        atexit.register(self._atexit)

    @classmethod
    def in_root(
        cls,
        root: str | Path = DEFAULT_RUNS_DIR,
        *,
        run_id: str | None = None,
        flush_interval: float = 0.5,
        manifest: Mapping[str, Any] | None = None,
        retain: bool = True,
    ) -> Recorder:
        """A recorder writing to a new directory ``<root>/<run_id>`` (default
        ``new_run_id(root)``, a fresh timestamped name)."""
        run_id = run_id or new_run_id(root)
        return cls(
            Path(root) / run_id,
            run_id=run_id,
            flush_interval=flush_interval,
            manifest=manifest,
            retain=retain,
        )

    def _prepare_dir(self, path: Path) -> None:
        events = path / EVENTS_NAME
        if events.exists() and (not events.is_dir() or part_files(events)):
            raise RunError(path, "the directory already holds a recorded run; use a new run_dir")
        events.mkdir(parents=True, exist_ok=True)

    # -- the sink --------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Record one event (thread-safe, non-blocking)."""
        if event.state is not None and not 0 <= event.state < len(STATE_NAMES):
            raise ValueError(f"state {event.state!r} is outside 0..{len(STATE_NAMES) - 1}")
        if event.result is not None and not 0 <= event.result < len(RESULT_NAMES):
            raise ValueError(f"result {event.result!r} is outside 0..{len(RESULT_NAMES) - 1}")
        if not math.isfinite(event.ts):
            raise ValueError(f"ts {event.ts!r} is not a finite number of seconds")
        with self._lock:
            if self._closed:
                raise RuntimeError(f"recorder {self.run_id} is closed")
            self._pending.append(event)

    def __len__(self) -> int:
        with self._lock:
            return self._n_taken + len(self._pending)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    @property
    def n_written(self) -> int:
        """How many events are in complete part files on disk (0 for a memory-only recorder)."""
        return self._n_written

    # -- conversion and writing ------------------------------------------------------------

    def _convert_pending(self) -> None:
        """Move pending events into a typed chunk (caller holds _flush_lock)."""
        with self._lock:
            batch, self._pending = self._pending, []
            start = self._n_taken
            self._n_taken += len(batch)
        if not batch:
            return
        chunk: _Chunk | None = events_to_table(batch, self.run_id, start_seq=start)
        if chunk is None:  # a value the pandas path converts or reports
            try:
                chunk = events_to_frame(batch, self.run_id, start_seq=start)
            except SchemaError:
                chunk = events_to_frame(self._replace_bad(batch), self.run_id, start_seq=start)
        if self.retain:
            self._chunks.append(chunk)
        self._unwritten.append(chunk)

    def _replace_bad(self, batch: list[Event]) -> list[Event]:
        """The batch with each unstorable event (say, a battery level of 300) replaced by an
        ``error`` event describing it, so one bad value never costs the other events."""
        fixed: list[Event] = []
        for event in batch:
            try:
                events_to_frame([event], self.run_id)
                fixed.append(event)
            except SchemaError as exc:
                log.error("recorder %s: cannot store %r: %s", self.run_id, event, exc)
                fixed.append(
                    Event(
                        ts=event.ts,
                        source="lab",
                        kind="error",
                        device=event.device if isinstance(event.device, str) else None,
                        detail=f"unrecordable {event.kind} event from {event.source}: "
                        + "; ".join(exc.problems),
                    )
                )
        return fixed

    def _write_unwritten(self) -> None:
        if self.path is None:
            self._unwritten.clear()
            return
        if not self._unwritten:
            return
        tables = [_arrow_of(chunk) for chunk in self._unwritten]
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        part = self._write_table(table, PART_OPTIONS)
        self._n_written += table.num_rows
        self._unwritten.clear()
        del table, tables
        self._levels.append((part, 0))
        self._merge_parts()
        if not self.retain:
            # What was just written is no longer ours: hand Arrow's buffers back to the OS
            # (its default pool, mimalloc, keeps freed memory for reuse: on a 2,000-device
            # simulated day that was 12 KiB per device of RSS the recorder did not use).
            pa.default_memory_pool().release_unused()

    #: parts of one size class merged into one part of the next (at most about
    #: MERGE_FANOUT x log_MERGE_FANOUT(flushes) part files, each event rewritten log times)
    MERGE_FANOUT = 8

    def _merge_parts(self) -> None:
        """Background compaction: whenever the newest MERGE_FANOUT parts have the same level,
        write them as one part of the next level (new part first, then remove the old ones;
        readers drop repeated ``seq``, so a kill in between is harmless)."""
        fan = self.MERGE_FANOUT
        levels = self._levels
        while len(levels) >= fan and len({lvl for _, lvl in levels[-fan:]}) == 1:
            group = levels[-fan:]
            tables = [pq.read_table(p, use_threads=False) for p, _ in group]
            merged = pa.concat_tables(tables)
            del tables
            part = self._write_table(merged, PART_OPTIONS)
            for p, _ in group:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            del levels[-fan:]
            levels.append((part, group[0][1] + 1))

    def _write_table(self, table: pa.Table, options: Mapping[str, Any]) -> Path:
        assert self.path is not None
        name = f"part-{self._next_part:05d}.parquet"
        final = self.path / EVENTS_NAME / name
        tmp = final.with_name(f".{name}.tmp")
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, **options)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self._next_part += 1
        return final

    def flush(self) -> None:
        """Convert every pending event and write it to a new part file (if recording to disk).

        Raises
        ------
        OSError
            When the part file cannot be written; the events stay queued for the next flush.
        """
        with self._flush_lock:
            self._convert_pending()
            self._write_unwritten()

    def _background_flush(self) -> None:
        try:
            self.flush()
            self.error = None
        except Exception as exc:  # keep recording; report once and retry next interval
            if self.error is None:
                log.exception("recorder %s: flush failed", self.run_id)
            self.error = exc

    def frame(self) -> pd.DataFrame:
        """All events recorded so far as a typed event table (does not touch the disk).

        Returns
        -------
        pandas.DataFrame
            The columns of :data:`labkit.record.schema.COLUMNS`, one row per event in ``seq``
            order, RangeIndex.
        """
        with self._flush_lock:
            self._convert_pending()
            if not self.retain:
                return self._frame_from_disk()
            if not self._chunks:
                return empty_frame()
            if len(self._chunks) > 1 or isinstance(self._chunks[0], pa.Table):
                self._chunks = [_frame_of(self._chunks)]
            frame = self._chunks[0]
            assert isinstance(frame, pd.DataFrame)
            return frame.copy(deep=False)

    def _frame_from_disk(self) -> pd.DataFrame:
        """The events written so far (read back from the parts) and those not yet written."""
        assert self.path is not None
        from labkit.record.runs import read_run

        on_disk = read_run(self.path).events if self._n_written else empty_frame()
        if not self._unwritten:
            return on_disk
        frame = coerce(pd.concat([on_disk, _frame_of(self._unwritten)], ignore_index=True))
        return frame.drop_duplicates("seq", keep="first", ignore_index=True)

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the background thread, write what is left, compact the parts, finish the manifest.

        Idempotent. After closing, ``manifest.json`` carries ``finished_at`` and ``n_events``.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._thread.join()
        atexit.unregister(self._atexit)
        with self._flush_lock:
            self._convert_pending()
            self._write_unwritten()
            if self.path is not None:
                self._compact()
            self.manifest["finished_at"] = _now_iso()
            self.manifest["n_events"] = self._n_taken
            if self.path is not None:
                write_manifest(self.path / MANIFEST_NAME, self.manifest)

    def _compact(self) -> None:
        """Rewrite the part files as one (new part first, then remove the old ones), from the
        typed event table with pyarrow's default options: a lone part too (parts are written
        with :data:`PART_OPTIONS`), so the closed run's file does not depend on how many
        flushes and merges the run took."""
        assert self.path is not None
        old = part_files(self.path / EVENTS_NAME)
        if not old:
            return
        frame = self.frame()
        new = self._write_table(_arrow_of(frame), {})
        for p in old:
            if p != new:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else "memory"
        state = "closed" if self._closed else "open"
        return f"<Recorder {self.run_id} {state}, {len(self)} events, {where}>"


def _arrow_of(chunk: _Chunk) -> pa.Table:
    """A converted chunk as the Arrow table of the schema a part file is written from
    (:func:`~labkit.record.schema.events_to_table` builds the same table as this conversion
    of the frame :func:`~labkit.record.schema.events_to_frame` makes, metadata included)."""
    if isinstance(chunk, pa.Table):
        return chunk
    return pa.Table.from_pandas(chunk, schema=arrow_schema(), preserve_index=False)


def _frame_of(chunks: list[_Chunk]) -> pd.DataFrame:
    """Converted chunks, in order, as one typed event table (RangeIndex)."""
    frames: list[pd.DataFrame] = []
    run: list[pa.Table] = []  # consecutive Arrow tables, converted together

    def close_run() -> None:
        if run:
            table = run[0] if len(run) == 1 else pa.concat_tables(run)
            frame = frame_from_arrow(table)
            frames.append(frame if frame is not None else coerce(table.to_pandas()))
            run.clear()

    for chunk in chunks:
        if isinstance(chunk, pa.Table):
            run.append(chunk)
        else:
            close_run()
            frames.append(chunk)
    close_run()
    if len(frames) == 1:
        return frames[0]
    return coerce(pd.concat(frames, ignore_index=True))


def _flush_loop(
    ref: weakref.ReferenceType[Recorder], stop: threading.Event, interval: float
) -> None:
    """The background thread: flush every ``interval`` seconds until stopped or collected."""
    while not stop.wait(interval):
        recorder = ref()
        if recorder is None:
            return
        recorder._background_flush()  # noqa: SLF001 - the recorder's own thread
        del recorder


def _flush_at_exit(ref: weakref.ReferenceType[Recorder]) -> None:
    """Write a still-open recorder's pending events when the interpreter exits normally."""
    recorder = ref()
    if recorder is not None and not recorder.closed:
        with contextlib.suppress(Exception):
            recorder.flush()
