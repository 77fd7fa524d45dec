"""Run records: the event table schema, the recorder, run loading and derived analysis tables.

``labkit.record`` owns everything between an :class:`~labkit.events.Event` and a DataFrame a
notebook plots: :mod:`~labkit.record.schema` (columns and dtypes), :mod:`~labkit.record.recorder`
(the non-blocking sink writing runs incrementally), :mod:`~labkit.record.runs` (loading) and
:mod:`~labkit.record.derived` (pure functions of the event table). It never draws.
"""

from __future__ import annotations

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
