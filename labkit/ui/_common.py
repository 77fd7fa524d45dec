"""Plumbing shared by the panels: a refresh throttle and small display helpers.

Lab events arrive on the lab's loop thread, often hundreds a second during a transfer. A panel
must neither redraw for each of them nor do any drawing on the loop thread (that would slow the
lab down). :class:`Throttle` solves both: the event listener only sets a flag
(:meth:`Throttle.poke`, a few microseconds), and a worker thread of the panel runs the refresh
at most once per ``interval`` seconds while pokes keep coming, and not at all when nothing
happened. Widget trait changes from that thread are sent to the front end by ipywidgets'
comm layer (ipykernel sends them from any thread).

Nothing here knows about LwM2M.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Throttle", "esc", "status_html"]

log = logging.getLogger(__name__)

#: Text size of the panels (a projector at the back of a lecture room).
FONT_CSS = "font-size:15px;"


class Throttle:
    """Run ``fn()`` in a worker thread after :meth:`poke`, at most once per ``interval`` s.

    Several pokes during one interval give one run; a poke while ``fn`` runs gives one more run
    afterwards (so the last change is always shown). Exceptions of ``fn`` are logged, never
    raised. :meth:`flush` runs ``fn`` at once in the caller's thread (for tests and for a
    manual refresh); :meth:`close` stops the worker.
    """

    def __init__(self, fn: Callable[[], None], interval: float, *, name: str = "labkit-ui") -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 s, got {interval!r}")
        self._fn = fn
        self.interval = float(interval)
        self._cond = threading.Condition()
        self._run_lock = threading.Lock()
        self._dirty = False
        self._closed = False
        self._last = -float("inf")  # monotonic start time of the last run
        #: How many times ``fn`` ran (by the worker or :meth:`flush`).
        self.runs = 0
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Ask for a run (cheap; callable from any thread, including the lab loop)."""
        with self._cond:
            if not self._dirty:
                self._dirty = True
                self._cond.notify()

    def flush(self) -> None:
        """Run ``fn`` now, in the calling thread (waits for a run in progress)."""
        with self._cond:
            self._dirty = False
        self._run()

    def _run(self) -> None:
        with self._run_lock:
            self._last = time.monotonic()
            self.runs += 1
            try:
                self._fn()
            except Exception:  # a broken refresh must not kill the worker or the lab
                log.exception("labkit.ui refresh %r failed", self._fn)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                # Keep at least ``interval`` between two runs; pokes meanwhile are merged.
                delay = self._last + self.interval - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    if self._closed:
                        return
                    continue  # re-check: a flush() may have done the work meanwhile
                self._dirty = False
            self._run()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the worker (a run in progress finishes). Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed


def esc(value: Any) -> str:
    """HTML-escaped text of ``value`` (``""`` for None / NA)."""
    if value is None:
        return ""
    try:
        import pandas as pd

        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return html.escape(str(value))


def status_html(text: str, *, kind: str = "info") -> str:
    """A one-line status message, coloured by ``kind`` (info, ok, warn, error)."""
    colour = {"info": "#333333", "ok": "#007A55", "warn": "#A05A00", "error": "#B03A00"}.get(
        kind, "#333333"
    )
    return f'<span style="{FONT_CSS}color:{colour}">{html.escape(text)}</span>'
