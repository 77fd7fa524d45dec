"""labkit's benchmark suite: ``python -m benchmarks`` (``make bench``) and ``--quick``.

Every figure is a ratio against a reference measured side by side in the same run (see
:mod:`benchmarks.harness`). Benchmarks report; they never fail the build on a missed goal.

To add a benchmark, write a ``bench_<name>.py`` module whose function decorated with
:func:`benchmarks.harness.register` returns :class:`~benchmarks.harness.Row` objects, and
add the module to :data:`MODULES` (its position is its place in the table).
"""

from __future__ import annotations

import importlib

from benchmarks.harness import BENCHMARKS, Benchmark

__all__ = ["MODULES", "load"]

#: The benchmark modules, in the table's order (the issue's order).
MODULES = (
    "benchmarks.bench_transfer",
    "benchmarks.bench_libcoap",
    "benchmarks.bench_dtls",
    "benchmarks.bench_campaign",
    "benchmarks.bench_memory",
    "benchmarks.bench_timescale",
    "benchmarks.bench_virtual",
    "benchmarks.bench_analysis",
    "benchmarks.bench_sweep",
    "benchmarks.bench_notebooks",
    "benchmarks.bench_mislabel",
    "benchmarks.bench_soak",
)


def load() -> dict[str, Benchmark]:
    """Import every benchmark module (each registers itself) and return the registry."""
    for name in MODULES:
        importlib.import_module(name)
    return BENCHMARKS
