"""Run records: the event table schema, the recorder, run loading and derived analysis tables.

``labkit.record`` owns everything between an :class:`~labkit.events.Event` and a DataFrame a
notebook plots: :mod:`~labkit.record.schema` (columns and dtypes), :mod:`~labkit.record.recorder`
(the non-blocking sink writing runs incrementally), :mod:`~labkit.record.runs` (loading) and
:mod:`~labkit.record.derived` (pure functions of the event table). It never draws.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.record.capture import CaptureImport, import_capture, import_pcap
    from labkit.record.derived import (
        attempts,
        decisions,
        result_counts,
        state_intervals,
        time_to_success,
    )
    from labkit.record.pcap import CaptureError, read_packets
    from labkit.record.recorder import Recorder, new_run_id
    from labkit.record.runs import (
        DEFAULT_RUNS_DIR,
        Run,
        RunError,
        campaign_outcomes,
        list_runs,
        load_attempts,
        read_run,
    )
    from labkit.record.schema import (
        COLUMNS,
        SCHEMA_VERSION,
        Column,
        SchemaError,
        coerce,
        empty_frame,
        events_to_frame,
        validate,
    )

# Imported on first use (``labkit.record.X``): the package is light to import, so the command
# line can start a run directory before pandas and pyarrow are loaded (labkit.runstart).
_LAZY = {
    "CaptureImport": "capture", "import_capture": "capture", "import_pcap": "capture",
    "attempts": "derived", "decisions": "derived", "result_counts": "derived",
    "state_intervals": "derived", "time_to_success": "derived",
    "CaptureError": "pcap", "read_packets": "pcap",
    "Recorder": "recorder", "new_run_id": "recorder",
    "DEFAULT_RUNS_DIR": "runs", "Run": "runs", "RunError": "runs",
    "campaign_outcomes": "runs", "list_runs": "runs", "load_attempts": "runs", "read_run": "runs",
    "COLUMNS": "schema", "SCHEMA_VERSION": "schema", "Column": "schema", "SchemaError": "schema",
    "coerce": "schema", "empty_frame": "schema", "events_to_frame": "schema", "validate": "schema",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'labkit.record' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"labkit.record.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "COLUMNS",
    "DEFAULT_RUNS_DIR",
    "SCHEMA_VERSION",
    "CaptureError",
    "CaptureImport",
    "Column",
    "Recorder",
    "Run",
    "RunError",
    "SchemaError",
    "attempts",
    "campaign_outcomes",
    "coerce",
    "decisions",
    "empty_frame",
    "events_to_frame",
    "import_capture",
    "import_pcap",
    "list_runs",
    "load_attempts",
    "new_run_id",
    "read_packets",
    "read_run",
    "result_counts",
    "state_intervals",
    "time_to_success",
    "validate",
]
