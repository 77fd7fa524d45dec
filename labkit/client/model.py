"""The simulated device's hardware model: flash slots on disk, a RAM buffer, a battery, faults.

What a real FOTA device has and the lab simulates (DESIGN.md 1, issue "devices that fail the
way real ones do"):

* **Flash with two slots** (MCUboot's A/B layout): the running image lives in one slot, a
  download goes into the other. Both are real files, ``slot-a.bin`` and ``slot-b.bin``, in the
  device's :class:`FlashStorage` directory, next to ``state.json``, the persisted record of
  what survives a power cut: the active slot and its version, /5 State/Result/URI, the
  downloaded (pending) image, a download in progress (offset + ETag, for resumption as Anjay
  does, digest 1.6/7.2/7.3) and an install in progress (which step). ``state.json`` is
  replaced atomically (write a temporary file, ``os.replace``), so a power cut leaves either
  the old or the new record, never a torn one. ``flash_size`` is the size of one slot: the
  largest package the device can take.

  Cost per block: the download slot is opened once when a transfer starts
  (:meth:`FlashStorage.begin_slot`) and stays open, unbuffered, until it completes
  (:meth:`FlashStorage.finish_slot`), is erased, or the power goes (:meth:`FlashStorage.close`);
  each block is one positioned write. ``state.json`` is not rewritten per block: the firmware
  agent saves it when the persisted record changes and, during a PULL, as a resume checkpoint
  (:mod:`labkit.client.firmware`). The slot may therefore hold more bytes than the last
  checkpoint names; a boot keeps only the checkpointed prefix (the rest is truncated). The
  only ``fsync`` calls are the ones the power-loss guarantee needs on a real machine: the
  slot's data, then the ``state.json`` that names the image complete (``save(sync=True)``).
  A device given no directory keeps its flash in a temporary one under :func:`scratch_root`:
  the system's temporary folder, or ``$LABKIT_FLASH_TMP`` (e.g. ``/dev/shm`` for a large fleet
  on a machine whose disk is slow; still real files, removed with the device). The default
  stays on disk: a worker killed mid-run leaves its folders behind, and in a RAM file system
  they would hold memory until the next reboot.
* **A RAM buffer** for one download block (``ram``): a block larger than it, or the
  ``no-ram`` fault, fails the download with Result 3.
* **A battery** (/3/0/9, percent) that drains a little per block and per install, from the
  device's seed (deterministic).
* **Faults** by name (:mod:`labkit.sim.faults`) with their timing knobs in
  :class:`FaultTiming`, and the seeded choice of *where* a fault strikes (:class:`FaultPlan`).

Pure apart from the file I/O of :class:`FlashStorage`; no sockets, no event loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.client.scratch import flash_prefix, scratch_root
from labkit.sim.faults import check_faults

__all__ = [
    "DEFAULT_FLASH_SIZE",
    "DEFAULT_RAM",
    "SLOTS",
    "Battery",
    "FaultPlan",
    "FaultTiming",
    "FlashStorage",
    "other_slot",
    "scratch_root",
]

#: Default size of one flash slot: the largest package a device takes (bytes).
DEFAULT_FLASH_SIZE = 4 * 1024 * 1024
#: Default RAM buffer for one download block (bytes).
DEFAULT_RAM = 16 * 1024
#: The two flash slots (MCUboot primary / secondary, swapped at each update).
SLOTS = ("a", "b")

#: Install steps at which power can be lost (see :mod:`labkit.client.bootloader`).
INSTALL_STEPS = ("verify", "swap", "self-test", "confirm")


def other_slot(slot: str) -> str:
    return "b" if slot == "a" else "a"


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultTiming:
    """How long faults last, in simulated seconds (a device with ``time_scale`` divides them).

    Attributes
    ----------
    power_off_s:
        How long a device stays off after a power cut before it boots again.
    link_drop_s:
        How long the link stays down after ``link-drop`` strikes (longer than a download
        survives: the device's retries and the server's request timeout).
    defer_s:
        How long the ``defer`` user postpones before accepting (capped by /5/0/13).
    default_max_defer_period:
        /5/0/13 a ``defer`` device starts with (a user who may defer needs a period > 0).
    """

    power_off_s: float = 0.3
    link_drop_s: float = 20.0
    defer_s: float = 1.0
    default_max_defer_period: int = 30


_NO_FAULTS: frozenset[str] = frozenset()


class FaultPlan:
    """The faults of one device and, from its seed, where each strikes.

    ``link-drop`` strikes after a seeded number of download blocks (1..3, or the last block of
    a short package); ``power-loss`` strikes once, at a seeded point: a download block or an
    install step (:data:`INSTALL_STEPS`), chosen when the transfer starts (when its size is
    known). Other faults apply to every attempt.
    """

    __slots__ = ("_rng", "_seed", "faults", "power_cut_done", "power_cut_point")

    def __init__(self, faults: Iterable[str] = (), seed: int = 0) -> None:
        self.faults = check_faults(faults) or _NO_FAULTS  # most devices: one shared empty set
        self._seed = seed
        self._rng: random.Random | None = None  # made on first use: most devices have none
        self.power_cut_point: tuple[str, int] | None = None
        self.power_cut_done = False

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(f"labkit-device-faults|{self._seed}")
        return self._rng

    def __contains__(self, name: object) -> bool:
        return name in self.faults

    def link_drop_block(self, total_blocks: int | None) -> int:
        """The block number after which the link goes down."""
        last = max(1, (total_blocks or 4) - 1)
        return min(self.rng.randint(1, 3), last)

    def plan_power_cut(self, total_blocks: int | None) -> tuple[str, int] | None:
        """Choose the cut point once (download block number or install step index)."""
        if "power-loss" not in self.faults or self.power_cut_done:
            return None
        if self.power_cut_point is None:
            blocks = max(1, total_blocks or 1)
            points = blocks + len(INSTALL_STEPS)
            pick = self.rng.randrange(points)
            if pick < blocks:
                self.power_cut_point = ("block", pick)
            else:
                self.power_cut_point = ("install", pick - blocks)
        return self.power_cut_point

    def cut_now(self, where: str, index: int) -> bool:
        """True (once) when power is to be lost at download block / install step ``index``."""
        point = self.power_cut_point
        if self.power_cut_done or point is None or "power-loss" not in self.faults:
            return False
        kind, at = point
        if kind == where and (index == at or (where == "block" and index > at)):
            self.power_cut_done = True
            return True
        return False

    def corrupt_offset(self, size: int) -> int:
        """Where ``corrupt-in-flash`` flips a bit: inside the payload, past the header."""
        low = min(size - 1, 0x200 + 1)
        return self.rng.randrange(max(0, low), max(low + 1, size - 128))

    def __repr__(self) -> str:
        return f"FaultPlan({sorted(self.faults)})"


class Battery:
    """/3/0/9: a level in percent that drains per block and per install (seeded).

    The draws come from a small 64-bit generator (SplitMix64) kept as one integer, so an idle
    device carries no ``random.Random`` state (2.5 KiB each) for its battery.
    """

    __slots__ = ("_state", "level")

    def __init__(self, level: float, seed: int = 0) -> None:
        if not 0 <= level <= 100:
            raise ValueError(f"battery level must be 0..100 %, not {level}")
        self.level = float(level)
        self._state = (int(seed) * 0x9E3779B97F4A7C15 + 0xB5297A4D) & _MASK64

    def _uniform(self, low: float, high: float) -> float:
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
        return low + (high - low) * (z >> 11) / float(1 << 53)

    @property
    def percent(self) -> int:
        return int(self.level)

    def drain_block(self, nbytes: int) -> int:
        """Drain for one received block; returns the new whole percent."""
        self.level = max(0.0, self.level - nbytes / 1024 * self._uniform(0.002, 0.006))
        return self.percent

    def drain_install(self) -> int:
        """Drain for one install (flash erase and write, reboot)."""
        self.level = max(0.0, self.level - self._uniform(0.5, 1.5))
        return self.percent


_MASK64 = (1 << 64) - 1


#: ``os.open`` flags of a file written from scratch (what ``open(path, "wb")`` uses).
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


def _holds(path: str, text: bytes) -> bool:
    """True when the file at ``path`` holds exactly ``text``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:
        return False
    try:
        return os.read(fd, len(text) + 1) == text
    except OSError:
        return False
    finally:
        os.close(fd)


def _close_all(handles: dict[str, Any]) -> None:
    """Close the slot files of a storage object that is garbage collected."""
    for fh in handles.values():
        fh.close()
    handles.clear()


class FlashStorage:
    """The device's flash: ``slot-a.bin``, ``slot-b.bin`` and ``state.json`` in a directory.

    Parameters
    ----------
    directory:
        Where the files live; None makes a temporary directory on first use (removed when
        the storage object is garbage collected or the process exits).
    slot_size:
        Bytes per slot (the device's flash size).
    """

    __slots__ = (
        "__weakref__", "_at", "_closer", "_dir", "_finalizer", "_open", "_saved", "slot_size",
        "writes",
    )

    def __init__(self, directory: Path | str | None, slot_size: int) -> None:
        if slot_size <= 0:
            raise ValueError(f"flash size must be > 0, not {slot_size}")
        self._dir = None if directory is None else Path(directory)
        self._finalizer: Any = None
        #: Slot files open for a transfer (made on first use: most devices never download).
        self._open: dict[str, Any] | None = None
        #: Position of each open slot file (what ``tell()`` would answer: no system call per
        #: block).
        self._at: dict[str, int] | None = None
        #: ``state.json`` is known to exist (this object wrote or saw it).
        self._saved = False
        self._closer: Any = None
        self.slot_size = int(slot_size)
        self.writes = 0  # state.json replacements (for tests and curiosity)

    @property
    def directory(self) -> Path:
        if self._dir is None:
            path = Path(tempfile.mkdtemp(prefix=flash_prefix(), dir=scratch_root()))
            self._finalizer = weakref.finalize(self, shutil.rmtree, path, True)
            self._dir = path
        self._dir.mkdir(parents=True, exist_ok=True)
        return self._dir

    @property
    def materialised(self) -> bool:
        if not self._saved:
            self._saved = self._dir is not None and (self._dir / "state.json").exists()
        return self._saved

    def slot_path(self, slot: str) -> Path:
        if slot not in SLOTS:
            raise ValueError(f"no slot {slot!r}")
        return self.directory / f"slot-{slot}.bin"

    def _handle(self, slot: str) -> Any:
        """The slot's open file (unbuffered: every write reaches the file at once)."""
        if self._open is None:
            self._open = {}
            self._at = {}
            self._closer = weakref.finalize(self, _close_all, self._open)
        fh = self._open.get(slot)
        if fh is None:
            fd = os.open(self.slot_path(slot), os.O_RDWR | os.O_CREAT, 0o644)
            fh = self._open[slot] = os.fdopen(fd, "r+b", buffering=0)
            self._at[slot] = 0  # type: ignore[index]
        return fh

    def _drop(self, slot: str, *, sync: bool = False) -> None:
        fh = self._open.pop(slot, None) if self._open else None
        if self._at:
            self._at.pop(slot, None)
        if fh is not None:
            try:
                if sync:
                    os.fsync(fh.fileno())
            finally:
                fh.close()

    def read_slot(self, slot: str, length: int | None = None) -> bytes:
        try:
            with self.slot_path(slot).open("rb") as fh:
                return fh.read() if length is None else fh.read(length)
        except FileNotFoundError:
            return b""

    def write_slot(self, slot: str, data: bytes) -> None:
        """Replace a slot's whole content (atomically)."""
        self._drop(slot)
        path = self.slot_path(slot)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def begin_slot(self, slot: str, keep: int = 0) -> None:
        """Prepare ``slot`` for a download that continues at byte ``keep`` (0: erase).

        The slot file stays open until :meth:`finish_slot`, :meth:`erase` or :meth:`close`.
        """
        fh = self._handle(slot)
        fh.truncate(keep)
        fh.seek(keep)
        self._at[slot] = keep  # type: ignore[index]

    def append(self, slot: str, offset: int, data: bytes) -> None:
        """Write a download block at ``offset`` (blocks come in order: no seek then)."""
        fh = self._handle(slot)
        at = self._at
        assert at is not None
        if at[slot] != offset:
            fh.seek(offset)
            fh.truncate(offset)
        written = fh.write(data)  # one write() system call (unbuffered) ...
        if written != len(data):  # ... unless the kernel took only part of it
            view = memoryview(data)[written:]
            while view:
                view = view[fh.write(view) :]
        at[slot] = offset + len(data)

    def finish_slot(self, slot: str, *, sync: bool = True) -> None:
        """The transfer into ``slot`` is complete: flush it to disk (``sync``) and close it."""
        self._drop(slot, sync=sync)

    def close(self) -> None:
        """Close every open slot file (the power goes; nothing is flushed on purpose)."""
        if self._open:
            for slot in list(self._open):
                self._drop(slot)

    def erase(self, slot: str) -> None:
        self._drop(slot)
        with contextlib.suppress(FileNotFoundError):
            self.slot_path(slot).unlink()

    def load(self) -> dict[str, Any] | None:
        """The persisted record, or None for a factory-fresh device."""
        if self._dir is None:
            return None
        try:
            data = json.loads((self._dir / "state.json").read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable: boot as from the factory (an atomic write never tears)
        return data if isinstance(data, dict) else None

    def save(self, record: dict[str, Any], *, sync: bool = False, unless_same: bool = False
             ) -> None:
        """Persist ``record`` atomically (temporary file + ``os.replace``).

        ``sync`` flushes the new record to disk before it replaces the old one (for the record
        that names a downloaded image complete: a real power cut must not lose it).
        ``unless_same`` leaves ``state.json`` alone when it already holds exactly this record
        (read back and compared byte for byte): a boot that changed nothing rewrites nothing.
        """
        # Plain descriptors and path strings (no pathlib objects, no buffered file object, no
        # mkdir per save): the firmware agent saves on every change of the record. A directory
        # removed meanwhile is made again, as :attr:`directory` would.
        base = os.fspath(self.directory if self._dir is None else self._dir)
        tmp = os.path.join(base, ".state.json.tmp")
        text = json.dumps(record, sort_keys=True).encode("utf-8")
        if unless_same and _holds(os.path.join(base, "state.json"), text):
            self._saved = True
            return
        try:
            fd = os.open(tmp, _NEW_FILE, 0o666)
        except FileNotFoundError:
            os.makedirs(base, exist_ok=True)
            fd = os.open(tmp, _NEW_FILE, 0o666)
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(base, "state.json"))
        self._saved = True
        self.writes += 1

    def __repr__(self) -> str:
        where = self._dir if self._dir is not None else "(temporary, not created yet)"
        return f"<FlashStorage {where} slot={self.slot_size} B>"
