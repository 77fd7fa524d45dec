"""labkit.client.scratch: temporary flash folder names and the sweep of those killed runs left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from labkit.client.model import FlashStorage
from labkit.client.scratch import STALE_AFTER_S, flash_prefix, sweep_stale_flash


def _dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def _folder(root: Path, name: str, age_s: float, now: float) -> Path:
    path = root / name
    path.mkdir()
    (path / "state.json").write_text("{}")
    os.utime(path, (now - age_s, now - age_s))
    return path


def test_only_old_folders_of_dead_processes_are_removed(tmp_path: Path) -> None:
    now = 2_000_000_000.0
    dead = _dead_pid()
    old = STALE_AFTER_S + 60
    gone = _folder(tmp_path, f"labkit-device-{dead}-abc123", old, now)
    recent = _folder(tmp_path, f"labkit-device-{dead}-def456", STALE_AFTER_S - 60, now)
    mine = _folder(tmp_path, f"labkit-device-{os.getpid()}-x1", old, now)
    parent = _folder(tmp_path, f"labkit-device-{os.getppid()}-x2", old, now)
    legacy = _folder(tmp_path, "labkit-device-k2j3h4", old, now)  # older name: owner unknown
    other = _folder(tmp_path, f"something-{dead}-abc", old, now)
    a_file = tmp_path / f"labkit-device-{dead}-file"
    a_file.write_text("not a folder")
    os.utime(a_file, (now - old, now - old))

    removed = sweep_stale_flash(str(tmp_path), now=now)

    assert removed == [str(gone)]
    assert not gone.exists()
    for kept in (recent, mine, parent, legacy, other, a_file):
        assert kept.exists(), kept


def test_a_missing_root_sweeps_nothing(tmp_path: Path) -> None:
    assert sweep_stale_flash(str(tmp_path / "nowhere")) == []


def test_temporary_flash_is_named_after_its_process(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    storage = FlashStorage(None, slot_size=4096)
    folder = storage.directory
    assert folder.parent == tmp_path
    assert flash_prefix() == f"labkit-device-{os.getpid()}-"
    assert folder.name.startswith(flash_prefix())
    # while this process lives, a sweep leaves its folder alone however old it is
    os.utime(folder, (0, 0))
    assert sweep_stale_flash(str(tmp_path)) == []
    assert folder.exists()
