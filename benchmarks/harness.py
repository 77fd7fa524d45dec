"""The benchmark harness: the registry, interleaved timing, the result rows and the table.

This module owns how a figure is measured and shown, never what is measured (the
``bench_*`` modules do that). Every figure the suite reports is a **ratio measured side by
side in the same run**: the lab's operation and its reference run in alternation
(lab, reference, reference, lab, ...), each repeated, and the ratio is the median of the
per-pair ratios, so a machine that slows down halfway through (shared cores, another job)
slows both sides of a pair alike. Absolute times are printed for orientation only.

A benchmark is a function ``fn(options) -> list[Row]`` registered under a short name with
:func:`register`; the registry order is the table order. A benchmark whose feature is not
written yet returns :func:`not_yet` rows ("not yet measurable: <what is missing>"), never a
made-up figure. Benchmarks report; they never fail on a missed goal.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "Goal",
    "Options",
    "Row",
    "bounded_all",
    "format_table",
    "interleaved",
    "machine_info",
    "median",
    "not_yet",
    "paired_ratio",
    "register",
    "skipped",
]

#: Status of a row: a figure was measured, the feature is missing, the tool is absent, or the
#: benchmark itself crashed (a bug in the benchmark or the lab, reported, never hidden).
MEASURED = "measured"
NOT_YET = "not yet measurable"
SKIPPED = "skipped"
ERROR = "error"

_VERSIONED = ("labkit", "aiocoap", "pandas", "pyarrow", "numpy")


@dataclass(frozen=True, kw_only=True)
class Goal:
    """What a row aims at: ``on`` ("ratio" or "lab") compared with ``op`` to ``value``.

    ``op`` None means the figure is only reported (no goal).
    """

    on: str = "ratio"
    op: str | None = None
    value: float = 0.0
    text: str = "reported"

    def met(self, lab: float | None, ratio: float | None) -> bool | None:
        figure = ratio if self.on == "ratio" else lab
        if self.op is None or figure is None:
            return None
        return figure <= self.value if self.op == "<=" else figure >= self.value


@dataclass(frozen=True, kw_only=True)
class Options:
    """How hard to measure: ``quick`` is the reduced suite (``make bench-quick``)."""

    quick: bool = False

    def pick(self, full: Any, quick: Any) -> Any:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full


@dataclass(kw_only=True)
class Row:
    """One line of the table.

    ``lab``/``reference`` are figures in ``unit``/``ref_unit``; ``ratio`` is what the goal
    usually judges (see :class:`Goal`); ``note`` is printed under the table.
    """

    key: str
    what: str
    goal: Goal
    lab: float | None = None
    unit: str = "s"
    reference: float | None = None
    ref_unit: str | None = None
    ref_what: str = ""
    ratio: float | None = None
    ratio_text: str = "x"
    status: str = MEASURED
    note: str = ""
    caveat: str = ""  # shown next to "yes"/"NO" when the figure needs a qualifier
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.status != MEASURED:
            return None
        return self.goal.met(self.lab, self.ratio)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["met"] = self.met
        return out


def not_yet(key: str, what: str, goal: Goal, missing: str) -> Row:
    """A row whose feature does not exist yet: no figure, only what is missing."""
    return Row(key=key, what=what, goal=goal, status=NOT_YET, note=missing)


def skipped(key: str, what: str, goal: Goal, reason: str) -> Row:
    """A row that cannot run on this machine (a tool is absent)."""
    return Row(key=key, what=what, goal=goal, status=SKIPPED, note=reason)


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    fn: Callable[[Options], list[Row]]


#: Registered benchmarks by name, in table order (the order the modules register them).
BENCHMARKS: dict[str, Benchmark] = {}


def register(
    name: str, description: str
) -> Callable[[Callable[[Options], list[Row]]], Callable[[Options], list[Row]]]:
    """Decorator: add ``fn(options) -> list[Row]`` to :data:`BENCHMARKS` as ``name``."""

    def deco(fn: Callable[[Options], list[Row]]) -> Callable[[Options], list[Row]]:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = Benchmark(name, description, fn)
        return fn

    return deco


# -- timing ---------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def interleaved(
    lab: Callable[[], float],
    reference: Callable[[], float],
    repetitions: int,
    *,
    warmup: int = 1,
) -> tuple[list[float], list[float]]:
    """Run ``lab`` and ``reference`` alternately; each returns the seconds it measured.

    The order alternates per pair (lab first, then reference first) so neither side always
    runs on a cache the other warmed. ``warmup`` pairs run first and are discarded
    (imports, first socket, JIT-free but lazy-initialised code paths).
    """
    for _ in range(warmup):
        lab()
        reference()
    labs: list[float] = []
    refs: list[float] = []
    for i in range(repetitions):
        if i % 2 == 0:
            labs.append(lab())
            refs.append(reference())
        else:
            refs.append(reference())
            labs.append(lab())
    return labs, refs


def paired_ratio(labs: Sequence[float], refs: Sequence[float]) -> float:
    """Median of ``lab_i / ref_i`` over the interleaved pairs."""
    return median([a / b for a, b in zip(labs, refs, strict=True) if b > 0])


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` took (``time.perf_counter``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def bounded_all(coros: Sequence[Any], timeout: float) -> None:
    """Run coroutines (e.g. many ``ctx.shutdown()``) concurrently, at most ``timeout`` seconds
    in all; the ones still pending then are cancelled. Errors are swallowed (teardown)."""
    if not coros:
        return
    tasks = [asyncio.ensure_future(c) for c in coros]
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" warning


# -- machine --------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError):
        pass
    return None


def _libcoap_version() -> str | None:
    for name in ("coap-client", "coap-client-notls", "coap-client-openssl", "coap-client-gnutls"):
        path = shutil.which(name)
        if path is None:
            continue
        try:
            done = subprocess.run([path, "-h"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        for line in (done.stdout + done.stderr).decode(errors="replace").splitlines():
            if "v" in line and "coap-client" in line:
                return line.strip()
        return name
    return None


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, OS, Python and the versions of the packages measured."""
    versions: dict[str, str | None] = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    mem = _mem_total_gib()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu": _cpu_model(),
        "memory_gib": None if mem is None else round(mem, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
        "libcoap": _libcoap_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def format_machine(info: dict[str, Any]) -> str:
    pkgs = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
    lines = [
        f"Machine: {info['cpu']}, {info['usable_cores']} usable of {info['cores']} cores, "
        f"{info['memory_gib']} GiB RAM, {info['os']}",
        f"Python:  {info['python']}; {pkgs}",
    ]
    if info.get("libcoap"):
        lines.append(f"libcoap: {info['libcoap']}")
    lines.append(f"Date:    {info['date']}")
    return "\n".join(lines)


# -- the table ------------------------------------------------------------------------------


def _figure(value: float | None, unit: str | None) -> str:
    if value is None:
        return "-"
    if unit == "s":
        if value < 1:
            return f"{value * 1000:.0f} ms"
        return f"{value:.2f} s"
    if unit is None:
        return f"{value:.3g}"
    return f"{value:,.1f} {unit}" if abs(value) < 1000 else f"{value:,.0f} {unit}"


def _met_text(row: Row) -> str:
    if row.status == NOT_YET:
        return "not yet measurable"
    if row.status == SKIPPED:
        return "skipped"
    if row.status == ERROR:
        return "ERROR"
    met = row.met
    text = "-" if met is None else ("yes" if met else "NO")
    return f"{text} ({row.caveat})" if row.caveat else text


def table_cells(row: Row) -> list[str]:
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}{row.ratio_text}"
    return [
        row.what,
        _figure(row.lab, row.unit),
        _figure(row.reference, row.ref_unit or row.unit),
        ratio,
        row.goal.text,
        _met_text(row),
    ]


HEADER = ["benchmark", "lab", "reference", "ratio", "goal", "met?"]


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown pipe table (readable in a terminal, pasted as is into BENCHMARKS.md),
    followed by one numbered note per row that has one."""
    cells = [table_cells(r) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(HEADER)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(HEADER), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(c) for c in cells)
    notes = [(r.what, r) for r in rows if r.note or r.ref_what]
    if notes:
        out.append("")
        out.append("Notes:")
        for what, r in notes:
            parts = []
            if r.ref_what:
                parts.append(f"reference = {r.ref_what}")
            if r.status == NOT_YET:
                parts.append(f"not yet measurable: {r.note}")
            elif r.note:
                parts.append(r.note)
            out.append(f"- {what}: " + "; ".join(parts))
    return "\n".join(out)


def dump_json(path: str, info: dict[str, Any], rows: Sequence[Row], options: Options) -> None:
    doc = {"machine": info, "quick": options.quick, "rows": [r.as_dict() for r in rows]}
    text = json.dumps(doc, indent=2, default=str)
    if path == "-":
        sys.stdout.write(text + "\n")
    else:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
