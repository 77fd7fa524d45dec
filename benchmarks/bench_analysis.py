"""Analysis of a large run (10 million events; quick: 1 million) against a plain pyarrow scan.

A synthetic run directory is written once to a temporary directory: ``manifest.json`` and
``events.parquet`` with the event table's Arrow schema (:func:`labkit.record.schema.
arrow_schema`). The events look like a PUSH campaign: devices (one per 1,000 events) each make
10 attempts of 100 events (decision, link sample, the PUT, DOWNLOADING, 88 Block1 blocks,
DOWNLOADED, Execute and its answer, UPDATING, reboot, re-registration, the Update Result, the
firmware version), interleaved across devices in time order, with 85 % successes and a mix of
failure codes drawn from a seeded generator.

* lab: ``run = read_run(path)`` (read and check the Arrow tables), ``attempts(run)`` (from the
  run's Arrow columns; the pandas event table is never built) and ``result_counts(table)`` --
  what a notebook runs to get "how did the updates end" (``run.attempts()`` is the same).
* reference: ``pyarrow.parquet.read_table`` of the same file + counting the ``fw_result`` rows
  per result with pyarrow compute (a scan and a trivial aggregation, no pandas).

Interleaved repetitions; goal: lab <= 3x the reference. The result counts are checked
against what was generated, so a fast wrong answer cannot pass.
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.harness import Goal, Options, Row, interleaved, median, paired_ratio, register

GOAL = Goal(op="<=", value=3.0, text="<= 3x")
ATTEMPTS = 10  # per device
BLOCKS = 88  # per attempt; 100 events per attempt in all
EVENTS_PER_DEVICE = ATTEMPTS * (BLOCKS + 12)
RUN_ID = "bench-analysis"
SUCCESS_SHARE = 0.85
FAILURES = ("CONNECTION_LOST", "INTEGRITY_CHECK_FAILURE", "UPDATE_FAILED", "NOT_ENOUGH_FLASH")


def _attempt_template() -> list[dict[str, Any]]:
    """The 100 events of one PUSH attempt (device and result filled in later)."""
    rows: list[dict[str, Any]] = [
        {"source": "policy", "kind": "decision", "decision": "push", "reason": "link ok"},
        {"source": "server", "kind": "link", "rssi_dbm": -85, "link_quality": 60},
        {"source": "server", "kind": "request", "method": "PUT", "path": "/5/0/0",
         "bytes": BLOCKS * 1024, "protocol": "coap"},
        {"source": "device", "kind": "fw_state", "state": "DOWNLOADING", "path": "/5/0/3"},
    ]  # fmt: skip
    for i in range(BLOCKS):
        rows.append(
            {"source": "server", "kind": "block", "method": "PUT", "protocol": "coap",
             "path": "/5/0/0", "code": "2.31" if i < BLOCKS - 1 else "2.04", "block": i,
             "bytes": 1024, "rtt_ms": 1.5}
        )  # fmt: skip
    rows += [
        {"source": "device", "kind": "fw_state", "state": "DOWNLOADED", "path": "/5/0/3"},
        {"source": "server", "kind": "request", "method": "POST", "path": "/5/0/2"},
        {"source": "server", "kind": "response", "code": "2.04", "rtt_ms": 2.0, "path": "/5/0/2"},
        {"source": "device", "kind": "fw_state", "state": "UPDATING", "path": "/5/0/3"},
        {"source": "device", "kind": "reboot", "detail": "installing firmware"},
        {"source": "server", "kind": "registered", "path": "/rd/1"},
        {"source": "server", "kind": "fw_result", "result": None, "path": "/5/0/5"},
        {"source": "server", "kind": "fw_version", "fw_version": "2.0.0", "path": "/3/0/3"},
    ]
    assert len(rows) == BLOCKS + 12
    return rows


def _dict_column(values: list[Any], categories: tuple[str, ...] | None, index: Any) -> pa.Array:
    """A dictionary-encoded column: ``values`` per template row, repeated by ``index``."""
    cats = categories if categories is not None else tuple(sorted({v for v in values if v}))
    lookup = {c: i for i, c in enumerate(cats)}
    codes = np.array([lookup.get(v, -1) if v is not None else -1 for v in values], np.int32)
    full = codes[index]
    return pa.DictionaryArray.from_arrays(
        pa.array(full, mask=full < 0, type=pa.int32()), pa.array(cats, pa.string())
    )


def build_events(n_events: int, seed: int = 1) -> tuple[pa.Table, dict[str, int]]:
    """The synthetic event table (Arrow, the run schema) and the expected result counts."""
    from labkit.events import KINDS, SOURCES
    from labkit.record.schema import RESULT_NAMES, STATE_NAMES, arrow_schema

    devices = max(1, n_events // EVENTS_PER_DEVICE)
    template = _attempt_template()
    per_device = template * ATTEMPTS  # rows of one device, in its own time order
    rows_per_device = len(per_device)
    n = devices * rows_per_device
    # row r*devices + d is device d's r-th event: devices interleaved in time order
    tpl_index = np.repeat(np.arange(rows_per_device, dtype=np.int64), devices)
    device_idx = np.tile(np.arange(devices, dtype=np.int32), rows_per_device)

    rng = np.random.default_rng(seed)
    failure_codes = np.array([RESULT_NAMES.index(f) for f in FAILURES], np.int32)
    success = rng.random((ATTEMPTS, devices)) < SUCCESS_SHARE
    drawn = failure_codes[rng.integers(0, len(FAILURES), (ATTEMPTS, devices))]
    outcome = np.where(success, RESULT_NAMES.index("SUCCESS"), drawn).astype(np.int32)

    schema = arrow_schema()
    columns: dict[str, pa.Array] = {}
    ts_us = 1_767_225_600_000_000 + np.arange(n, dtype=np.int64) * 1_000  # 1 ms apart
    columns["ts"] = pa.array(ts_us, pa.timestamp("us", tz="UTC"))
    columns["seq"] = pa.array(np.arange(n, dtype=np.int64))
    columns["run_id"] = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, np.int32)), pa.array([RUN_ID])
    )
    names = pa.array([f"sim-{i:05d}" for i in range(devices)], pa.string())
    columns["device"] = pa.DictionaryArray.from_arrays(pa.array(device_idx), names)

    def col(name: str) -> list[Any]:
        return [row.get(name) for row in per_device]

    fixed = {"source": SOURCES, "kind": KINDS, "state": STATE_NAMES}
    for name, cats in fixed.items():
        columns[name] = _dict_column(col(name), cats, tpl_index)
    # result: only on fw_result rows; the attempt's drawn outcome
    is_result = np.array([row["kind"] == "fw_result" for row in per_device])
    attempt_of_row = np.repeat(np.arange(ATTEMPTS), len(template))
    result_codes = np.full(n, -1, np.int32)
    rows_with_result = np.flatnonzero(is_result[tpl_index])
    result_codes[rows_with_result] = outcome[
        attempt_of_row[tpl_index[rows_with_result]], device_idx[rows_with_result]
    ]
    columns["result"] = pa.DictionaryArray.from_arrays(
        pa.array(result_codes, mask=result_codes < 0, type=pa.int32()),
        pa.array(RESULT_NAMES, pa.string()),
    )
    for name in ("decision", "method", "protocol", "code"):
        columns[name] = _dict_column(col(name), None, tpl_index)
    for name in ("reason", "path", "fw_version", "detail"):
        columns[name] = _dict_column(col(name), None, tpl_index).cast(pa.string())
    for name in ("rssi_dbm", "link_quality", "battery", "rtt_ms", "bytes", "block", "wave"):
        values = col(name)
        mask = np.array([v is None for v in values])
        dense = np.array([0 if v is None else v for v in values])
        typ = schema.field(name).type
        columns[name] = pa.array(dense[tpl_index], mask=mask[tpl_index], type=typ)
    arrays = [columns[f.name].cast(f.type) for f in schema]
    table = pa.Table.from_arrays(arrays, schema=schema)
    codes, counts = np.unique(outcome, return_counts=True)
    expected = {RESULT_NAMES[c]: int(k) for c, k in zip(codes, counts, strict=True)}
    return table, expected


def write_run(run_dir: Path, table: pa.Table) -> Path:
    """A run directory ``read_run`` accepts: manifest plus one events.parquet file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "run_id": RUN_ID,
        "schema_version": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T01:00:00+00:00",
        "params": {"synthetic": True, "events": table.num_rows},
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    path = run_dir / "events.parquet"
    pq.write_table(table, path, row_group_size=1 << 20)
    return path


@register("analysis", "result counts of a large run vs a plain pyarrow scan")
def run(options: Options) -> list[Row]:
    from labkit.record import attempts, read_run, result_counts

    n_events = options.pick(10_000_000, 1_000_000)
    reps = options.pick(3, 3)
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        run_dir = Path(tmp) / RUN_ID
        started = time.perf_counter()
        table, expected = build_events(n_events)
        rows = table.num_rows
        path = write_run(run_dir, table)
        del table
        gc.collect()
        built = time.perf_counter() - started
        got: dict[str, int] = {}

        parts: dict[str, list[float]] = {"read_run": [], "attempts": [], "result_counts": []}

        def lab() -> float:
            gc.collect()
            start = time.perf_counter()
            events = read_run(run_dir)
            read = time.perf_counter()
            table = attempts(events)
            derived = time.perf_counter()
            counts = result_counts(table)
            took = time.perf_counter() - start
            parts["read_run"].append(read - start)
            parts["attempts"].append(derived - read)
            parts["result_counts"].append(took - (derived - start))
            del events, table
            got.clear()
            pairs = zip(counts["result"], counts["count"], strict=True)
            got.update({str(r): int(c) for r, c in pairs})
            del counts
            return took

        def reference() -> float:
            gc.collect()
            start = time.perf_counter()
            scanned = pq.read_table(path)
            results = scanned.filter(pc.equal(scanned["kind"], "fw_result"))["result"]
            pc.value_counts(results)
            took = time.perf_counter() - start
            del scanned, results
            return took

        labs, refs = interleaved(lab, reference, reps, warmup=0)
    if got != expected:
        raise RuntimeError(f"result_counts gave {got}, the synthetic run holds {expected}")
    return [
        Row(
            key="analysis",
            what=f"analysis over {rows / 1e6:g} million events",
            goal=GOAL,
            lab=median(labs),
            reference=median(refs),
            ref_what="pyarrow.parquet.read_table + pyarrow.compute value_counts of fw_result",
            ratio=paired_ratio(labs, refs),
            note=(
                "lab = "
                + " + ".join(f"{k} {median(v[-reps:]):.2f} s" for k, v in parts.items())
                + f"; median of {reps} interleaved pairs; "
                f"{rows:,} events of {rows // EVENTS_PER_DEVICE:,} devices "
                f"(built and written in {built:.0f} s)"
            ),
            samples={"lab": labs, "reference": refs},
        )
    ]
