"""Console output of the long-running commands: never blocks the event loop, never forges lines.

``labkit serve`` prints one line per registration change. With ``print(..., flush=True)`` on
the event-loop thread, a reader that stops reading (an unread pipe) froze the whole server once
the pipe buffer (64 KiB) was full. :class:`Console` puts lines on a bounded queue that a daemon
thread writes out; when the queue is full, lines are dropped and counted, and the next line
that gets through is preceded by ``labkit: N lines dropped (stdout not read)``.

:func:`escape` makes every line one line: control characters (C0, DEL, C1, line and paragraph
separators, bidi controls) are shown as ``\\xNN``/``\\uNNNN``. An endpoint name is chosen by
whoever sends the Register, so ``ep="z\\nderegistered victim-0001"`` must not print a second,
forged line.

:func:`say` is the one place the command line prints a line to stdout: through the active
console if one is open (:meth:`Console.activate`), else directly (escaped either way).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import unicodedata
from typing import IO, Any

__all__ = ["Console", "EscapingFormatter", "escape", "log_to_stderr", "say"]

_SAFE_CACHE: dict[str, bool] = {}


def _unsafe(ch: str) -> bool:
    hit = _SAFE_CACHE.get(ch)
    if hit is None:
        hit = unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")
        if len(_SAFE_CACHE) < 4096:
            _SAFE_CACHE[ch] = hit
    return hit


def escape(text: str) -> str:
    """``text`` with every control or format character replaced by a visible escape."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == " " or not _unsafe(ch):
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


_STOP = object()


class Console:
    """Lines to ``stream`` from a writer thread, through a queue of at most ``maxsize`` lines."""

    _active: Console | None = None

    def __init__(self, stream: IO[str] | None = None, maxsize: int = 10_000) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="labkit-console", daemon=True)
        self._thread.start()

    def line(self, text: str) -> bool:
        """Queue one line (escaped); False when it was dropped because the queue is full."""
        try:
            self._queue.put_nowait(escape(text))
            return True
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False

    def _run(self) -> None:
        reported = 0
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                with self._lock:
                    dropped = self.dropped
                if dropped > reported:
                    self.stream.write(
                        f"labkit: {dropped - reported} lines dropped (stdout not read)\n"
                    )
                    reported = dropped
                self.stream.write(item + "\n")
                self.stream.flush()
                self.written += 1
            except (OSError, ValueError):  # closed or broken stdout: keep draining, say nothing
                continue

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting at most ``timeout`` s) and stop the writer thread."""
        if Console._active is self:
            Console._active = None
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def activate(self) -> Console:
        """Make :func:`say` print through this console until :meth:`close`."""
        Console._active = self
        return self

    def __enter__(self) -> Console:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.close()


def say(text: str) -> None:
    """Print one line to stdout: through the active :class:`Console`, else directly."""
    console = Console._active  # noqa: SLF001 - this module's own class
    if console is not None:
        console.line(text)
    else:
        print(escape(text), flush=True)


class EscapingFormatter(logging.Formatter):
    """A log formatter that escapes control characters in the message (an endpoint name or a
    Uri-Path in a WARNING cannot forge lines on stderr either); tracebacks keep their lines."""

    def format(self, record: logging.LogRecord) -> str:
        record.msg, record.args = escape(record.getMessage()), None
        return super().format(record)


def log_to_stderr(level: int = logging.WARNING) -> logging.Handler:
    """Send the lab's log records at ``level`` and above to stderr, escaped (the long-running
    commands call it; without it Python's last-resort handler prints them unescaped)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(EscapingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    return handler
