"""A run directory and its manifest, created in the first moments of a command (stdlib only).

``labkit simulate`` needs about a second to import pandas and pyarrow (the recorder) and more
to build its image; a run killed in that time used to leave no directory at all. This module
imports nothing but the standard library, so the command line can create
``<root>/<run_id>/events.parquet/`` and a ``manifest.json`` (``finished_at`` null, the
command's parameters) right after parsing its arguments. The :class:`~labkit.record.Recorder`
then opens that same directory (it holds no events yet) and rewrites the manifest in full.

It also writes the campaign's summary tables atomically (:func:`atomic_write`): a temporary
file with a hidden name, fsync, then :func:`os.replace`, so a reader never sees half a table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "start_run_dir"]

#: what :data:`labkit.record.schema.SCHEMA_VERSION` is (a test checks they agree)
SCHEMA_VERSION = 1


def start_run_dir(root: str | Path, params: Mapping[str, Any], run_id: str | None = None) -> str:
    """Create ``<root>/<run_id>/`` with an empty ``events.parquet/`` and a first manifest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if run_id is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        n = 1
        while (root / f"{stamp}-{n}").exists():
            n += 1
        run_id = f"{stamp}-{n}"
    run_dir = root / run_id
    (run_dir / "events.parquet").mkdir(parents=True, exist_ok=True)
    manifest = {
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "finished_at": None,
        "schema_version": SCHEMA_VERSION,
        "n_events": None,
        "params": dict(params),
    }
    text = json.dumps(manifest, indent=2, default=str) + "\n"
    atomic_write(run_dir / "manifest.json", lambda fh: fh.write(text.encode()))
    return run_id


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write ``path`` through ``write(fh)`` into ``.<name>.tmp``, fsync, rename into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            tmp.unlink()
        raise


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


#: the run started by :func:`early_run` in this process: (root, run_id), or None
EARLY: tuple[Path, str] | None = None


def early_run(words: list[str], command: str = "simulate", default_root: str = "data/runs") -> None:
    """Create the run directory of ``labkit <command> ... --out DIR`` from the raw arguments,
    before the command's modules are even imported (:data:`EARLY` remembers it; the command
    takes it over, :func:`discard_early` removes it again after a usage error)."""
    global EARLY
    if not words or words[0] != command or any(w in ("-h", "--help") for w in words):
        return
    root = default_root
    for i, word in enumerate(words):
        if word == "--out" and i + 1 < len(words):
            root = words[i + 1]
        elif word.startswith("--out="):
            root = word.split("=", 1)[1]
    try:
        run_id = start_run_dir(root, {"command": command, "argv": words[1:]})
    except OSError:
        return  # the command reports the problem with --out itself
    EARLY = (Path(root), run_id)


def take_early(root: str | Path) -> str | None:
    """The run id :func:`early_run` created under ``root`` (once), else None."""
    global EARLY
    if EARLY is None or Path(root) != EARLY[0]:
        return None
    run_id = EARLY[1]
    EARLY = None
    return run_id


def discard_early() -> None:
    """Remove the early run directory again if nothing was recorded into it."""
    global EARLY
    if EARLY is None:
        return
    run_dir = EARLY[0] / EARLY[1]
    EARLY = None
    events = run_dir / "events.parquet"
    if events.is_dir() and not any(events.iterdir()):
        with _suppress():
            events.rmdir()
            (run_dir / "manifest.json").unlink()
            run_dir.rmdir()
