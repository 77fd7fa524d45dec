"""Progress of a sweep: cells done / total with an ETA, in a terminal or a notebook.

:class:`SweepProgress` is what the sweep reports after every cell; :class:`TextProgress`
writes it as a plain line (redrawn in place on a terminal, one line per 10 % in a log), and
:class:`NotebookProgress` as one output line of a notebook cell updated in place (an
``IPython.display`` handle; no widget library needed). :func:`auto_progress` picks one.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["NotebookProgress", "SweepProgress", "TextProgress", "auto_progress", "format_s"]


def format_s(seconds: float | None) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``; ``"?"`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands: cells finished in this run (``done`` + ``failed``), cells skipped
    because an earlier run finished them, the total, seconds elapsed, and the estimated
    seconds left (None until a cell finished)."""

    done: int
    failed: int
    skipped: int
    total: int
    elapsed_s: float
    last: str = ""

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped

    @property
    def eta_s(self) -> float | None:
        ran = self.done + self.failed
        left = self.total - self.finished
        if left <= 0:
            return 0.0
        if ran == 0:
            return None
        return self.elapsed_s / ran * left

    def line(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        skipped = f", {self.skipped} already done" if self.skipped else ""
        return (
            f"sweep: {self.finished}/{self.total} cells{failed}{skipped}, "
            f"{format_s(self.elapsed_s)} elapsed, ETA {format_s(self.eta_s)}"
        )


class TextProgress:
    """Writes :meth:`SweepProgress.line` to ``stream`` (stderr by default): redrawn in place
    on a terminal, else one line per ``step`` percent and the last one."""

    def __init__(self, stream: TextIO | None = None, *, step: int = 10) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.step = step
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bucket = -1
        self._drawn = False
        self._lock = threading.Lock()

    def __call__(self, p: SweepProgress) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r" + p.line() + "\x1b[K")
                if p.finished >= p.total:
                    self.stream.write("\n")
            else:
                bucket = int(100 * p.finished / p.total) // self.step if p.total else 0
                if bucket == self._bucket and p.finished < p.total:
                    return
                self._bucket = bucket
                self.stream.write(p.line() + "\n")
            self.stream.flush()
            self._drawn = True


class NotebookProgress:
    """One line in the notebook cell's output, replaced as cells finish."""

    def __init__(self) -> None:
        self._handle: Any = None
        self._lock = threading.Lock()

    def __call__(self, p: SweepProgress) -> None:
        from IPython.display import Pretty, display

        with self._lock:
            text = Pretty(p.line())
            if self._handle is None:
                self._handle = display(text, display_id=True)
            else:
                self._handle.update(text)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def auto_progress() -> TextProgress | NotebookProgress:
    """A notebook line inside Jupyter, a text line on stderr elsewhere."""
    return NotebookProgress() if _in_notebook() else TextProgress()


def now() -> float:
    return time.monotonic()
