"""``labkit`` commands run in the background with a bound (lesson 09: a real device's
stand-in): :func:`labkit_command` builds one, :func:`shell` shows it as a person types it,
:func:`run_in_background` starts it and collects its output (:class:`Background`,
:class:`CommandResult`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "STOP_GRACE",
    "Background",
    "CommandResult",
    "labkit_command",
    "run_in_background",
    "shell",
]


#: Seconds a stopped command gets to shut down cleanly before it is killed.
STOP_GRACE = 5.0


def labkit_command(*args: Any) -> list[str]:
    """``labkit ARGS...`` as an argument list, run by this Python (the notebook's venv).

    Either one argument per item (``labkit_command("fota", "--listen", address)``) or the
    whole command line as one string, split as a shell would
    (``labkit_command(f"fota --listen {address} --method push")``). :func:`shell` shows it
    to a person as ``labkit ARGS...``.
    """
    import shlex
    import sys

    if len(args) == 1 and isinstance(args[0], str):
        words = shlex.split(args[0])
    else:
        words = [str(a) for a in args]
    return [sys.executable, "-m", "labkit", *words]


def shell(argv: Sequence[Any]) -> str:
    """A command as a person types it in a terminal: ``labkit fota --listen ...`` for a
    :func:`labkit_command`, else the arguments quoted as a shell needs them."""
    import shlex
    import sys

    words = [str(a) for a in argv]
    if words[:3] == [sys.executable, "-m", "labkit"]:
        return shlex.join(["labkit", *words[3:]])
    return shlex.join(words)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How a command run by :func:`run_in_background` ended.

    Attributes
    ----------
    command:
        The command as a person types it (``labkit fota --listen ...``).
    lines:
        Everything it printed (stdout and stderr, in order), one line per item.
    exit_code:
        Its exit code (negative: killed by that signal).
    seconds:
        From start to end.
    stopped:
        True when it was stopped from outside (:meth:`Background.stop`) rather than ending
        on its own.
    timed_out:
        True when it was stopped because its time bound ran out.
    """

    command: str
    lines: tuple[str, ...]
    exit_code: int | None
    seconds: float
    stopped: bool = False
    timed_out: bool = False

    @property
    def result_line(self) -> str | None:
        """The last ``RESULT ...`` line (``labkit fota``), or None."""
        return next((line for line in reversed(self.lines) if line.startswith("RESULT ")), None)

    def _status(self) -> str:
        how = _exit_text(self.exit_code)
        if self.timed_out:
            how += ", stopped: its time bound ran out"
        elif self.stopped:
            how += ", stopped"
        return f"{how} after {self.seconds:.1f} s"

    def __str__(self) -> str:
        return "\n".join([f"$ {self.command}", *self.lines, f"({self._status()})"])

    def __repr__(self) -> str:
        return f"<CommandResult {self.command!r}: {self._status()}, {len(self.lines)} lines>"

    def _repr_html_(self) -> str:
        esc = html.escape
        ok = self.exit_code == 0
        colour = "#00734d" if ok else "#a3370f"
        body = "\n".join(esc(line) for line in self.lines)
        return (
            f"<div><pre style='font-size:11px;white-space:pre-wrap'><b>$ {esc(self.command)}"
            f"</b>\n{body}</pre><b style='color:{colour}'>{esc(self._status())}</b></div>"
        )


def _kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a background command and whatever it started (its own process group: the
    ``timeout`` wrapper and the command under it); also its finalizer, so that it never
    outlives its notebook."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (AttributeError, OSError):  # no process groups (Windows), or already gone
            proc.kill()
        proc.wait()


class Background:
    """A command running in the background, its output collected line by line.

    Made by :func:`run_in_background`. It never runs longer than ``timeout`` seconds: a timer
    stops it then (and where coreutils' ``timeout`` exists, the command is wrapped in it, so
    the bound holds even if the notebook's kernel dies). Use it as a context manager so that
    it is stopped however the block ends::

        with lesson.run_in_background(lesson.labkit_command("device", ...)) as device:
            ...
        device.result  # what it printed, and its exit code
    """

    def __init__(
        self,
        argv: Sequence[Any],
        *,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        import shutil
        import subprocess
        import threading
        import time
        import weakref

        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        self.argv = [str(a) for a in argv]
        self.command = shell(self.argv)
        self.timeout = float(timeout)
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._timed_out = False
        self._ended: float | None = None
        wrapper = shutil.which("timeout")
        bound = (
            [wrapper, "--kill-after", f"{STOP_GRACE:g}", f"{self.timeout + 1:g}"] if wrapper else []
        )
        environment = dict(os.environ if env is None else env)
        environment.setdefault("PYTHONUNBUFFERED", "1")
        self._started = time.monotonic()
        self._proc = subprocess.Popen(
            [*bound, *self.argv],
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,  # its own process group: Ctrl-C in the notebook spares it
        )
        self._finalizer = weakref.finalize(self, _kill, self._proc)
        self._reader = threading.Thread(target=self._read, name="labkit-course-output")
        self._reader.daemon = True
        self._reader.start()
        self._timer = threading.Timer(self.timeout, self._time_is_up)
        self._timer.daemon = True
        self._timer.start()

    # -- output ----------------------------------------------------------------------------
    def _read(self) -> None:
        import time

        assert self._proc.stdout is not None
        with self._proc.stdout:
            for line in self._proc.stdout:
                with self._cond:
                    self._lines.append(line.rstrip("\r\n"))
                    self._cond.notify_all()
        self._proc.wait()
        with self._cond:
            self._ended = time.monotonic()
            self._cond.notify_all()

    def _time_is_up(self) -> None:
        if self._proc.poll() is None:
            self._timed_out = True
            self.stop()

    @property
    def lines(self) -> list[str]:
        """What the command printed so far."""
        with self._cond:
            return list(self._lines)

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def wait_for_line(self, text: str, timeout: float = 10.0) -> str:
        """Block until the command prints a line containing ``text``; return that line.

        Raises
        ------
        TimeoutError
            When no such line came within ``timeout`` seconds (the output so far is in the
            message).
        RuntimeError
            When the command ended without printing it.
        """
        import time

        deadline = time.monotonic() + timeout
        with self._cond:
            checked = 0
            while True:
                for line in self._lines[checked:]:
                    if text in line:
                        return line
                checked = len(self._lines)
                if self._ended is not None:
                    raise RuntimeError(
                        f"{self.command!r} ended ({_exit_text(self._proc.returncode)}) without "
                        f"printing {text!r}; it printed: {self._lines[-5:]}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self.command!r} printed no line with {text!r} within {timeout:g} s; "
                        f"so far: {self._lines[-5:]}"
                    )
                self._cond.wait(left)

    # -- ending ----------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> CommandResult:
        """Wait until the command ends by itself (at most ``timeout`` seconds, default: the
        rest of its time bound), then return its :class:`CommandResult`. A command still
        running then is stopped (``timed_out``)."""
        import time

        left = self.timeout - (time.monotonic() - self._started)
        limit = max(0.0, left if timeout is None else min(timeout, left))
        with self._cond:
            self._cond.wait_for(lambda: self._ended is not None, timeout=limit)
        if self._ended is None:
            self._timed_out = True
        return self.stop()

    def stop(self, grace: float = STOP_GRACE) -> CommandResult:
        """Stop the command if it still runs: SIGTERM (the ``labkit`` commands then shut down
        cleanly, a device de-registers), SIGKILL after ``grace`` seconds. Returns its
        :class:`CommandResult`; calling it again returns the same."""
        import subprocess

        self._timer.cancel()
        if self._proc.poll() is None:
            self._stopped = True
            self._proc.terminate()
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                _kill(self._proc)
        self._reader.join(grace)
        result = self.result
        assert result is not None
        return result

    @property
    def result(self) -> CommandResult | None:
        """The :class:`CommandResult` once the command has ended, else None."""
        import time

        code = self._proc.poll()
        if code is None:
            return None
        with self._cond:
            ended = self._ended if self._ended is not None else time.monotonic()
            lines = tuple(self._lines)
        return CommandResult(
            command=self.command,
            lines=lines,
            exit_code=code,
            seconds=ended - self._started,
            stopped=self._stopped,
            timed_out=self._timed_out,
        )

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else _exit_text(self._proc.returncode)
        return f"<Background {self.command!r}: {state}, {len(self.lines)} lines>"

    def _repr_html_(self) -> str:
        result = self.result
        if result is not None:
            return result._repr_html_()
        body = "\n".join(html.escape(line) for line in self.lines)
        return (
            f"<div><pre style='font-size:11px;white-space:pre-wrap'><b>$ "
            f"{html.escape(self.command)}</b>\n{body}</pre><i>running</i></div>"
        )


def run_in_background(
    argv: Sequence[Any],
    *,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> Background:
    """Start ``argv`` (e.g. :func:`labkit_command`) in the background and return at once.

    The command runs at most ``timeout`` seconds; its output (stdout and stderr together) is
    collected line by line and never reaches the notebook's own stderr. See
    :class:`Background` for waiting on a line, waiting for the end and stopping it.
    """
    return Background(argv, cwd=cwd, timeout=timeout)
