"""Temporary flash folders of simulated devices: their names, and sweeping those left behind.

A device given no flash directory keeps its flash in a temporary folder
(:class:`labkit.client.model.FlashStorage`), removed with the device or at exit. A process
killed with SIGKILL (a crashed kernel, a killed sweep worker, a test that kills a run on
purpose) cannot remove anything, and its folders stay in the temporary folder for good.

This module owns where those folders go (:func:`scratch_root`), their names and their
clean-up: a folder is called
``labkit-device-<pid>-<random>`` after the process that made it, and
:func:`sweep_stale_flash` removes the folders of processes that no longer exist, when the folder
is also older than :data:`STALE_AFTER_S` (so a live process of another PID namespace sharing the
folder, which looks dead from here, keeps folders it touched recently) and belongs to this
user. Folders of other names (including the ``labkit-device-<random>`` folders of older
versions, whose owner cannot be told) are never touched. The lab sweeps once per process,
when the first :class:`labkit.Lab` starts (:func:`sweep_stale_flash_once`), outside any
virtual run.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import tempfile
import time

__all__ = [
    "STALE_AFTER_S", "flash_prefix", "scratch_root", "sweep_stale_flash", "sweep_stale_flash_once",
]

#: A dead process's folder is removed only when it was last changed at least this long ago.
STALE_AFTER_S = 6 * 3600.0

_NAME = re.compile(r"labkit-device-(\d+)-[A-Za-z0-9_]+")


def flash_prefix() -> str:
    """The :func:`tempfile.mkdtemp` prefix of this process's temporary flash folders."""
    return f"labkit-device-{os.getpid()}-"


def _alive(pid: int) -> bool:
    """True unless no process ``pid`` exists (a process of another user counts as alive)."""
    if pid <= 0:
        return True  # not a process id we can ask about: leave the folder alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError (another user's process) and anything unexpected
        return True
    return True


def sweep_stale_flash(root: str | None = None, *, older_than_s: float = STALE_AFTER_S,
                      now: float | None = None) -> list[str]:
    """Remove the temporary flash folders of processes that no longer exist.

    Parameters
    ----------
    root:
        The folder to sweep; None for the system's temporary folder (:func:`tempfile.gettempdir`).
    older_than_s:
        Only folders last changed at least this many seconds before ``now``.
    now:
        The wall-clock time to compare with (``time.time()`` when None).

    Returns
    -------
    list of str
        The removed folders' paths, sorted. Errors (a folder that vanished, one that cannot be
        read or removed) skip that folder; the sweep never raises for them.
    """
    base = root if root is not None else tempfile.gettempdir()
    now = time.time() if now is None else now
    me, uid = os.getpid(), os.getuid()
    removed: list[str] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == me or _alive(pid):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            continue
        if now - info.st_mtime < older_than_s:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(entry.path)
    return sorted(removed)


@functools.cache
def scratch_root() -> str | None:
    """Where devices without a flash directory make theirs: ``$LABKIT_FLASH_TMP`` if set,
    else None (the system's temporary folder, :func:`tempfile.mkdtemp`'s default). Decided
    once per process."""
    return os.environ.get("LABKIT_FLASH_TMP") or None


@functools.cache
def sweep_stale_flash_once() -> int:
    """:func:`sweep_stale_flash` of the folder devices use (:func:`scratch_root`), once per
    process; returns how many folders it removed."""
    return len(sweep_stale_flash(scratch_root()))
