"""Parameter sweeps: many simulated campaigns across a grid of parameters and seeds.

A sweep answers questions one campaign cannot ("which PUSH policy, which threshold, for
which fleet?") with an uncertainty. :class:`Grid` says which campaigns to run
(:mod:`labkit.sweep.grid`), :func:`run_sweep` runs them on Dask distributed or serially
(:mod:`labkit.sweep.engine`; one cell = one campaign in its own worker process, written
idempotently by :mod:`labkit.sweep.store`), and :mod:`labkit.sweep.analysis` reads the
Parquet dataset back: Update Result rates with bootstrap intervals across seeds, time to
update, the failure-rate versus completion-time Pareto front, and the best point for a goal.
The command line is ``labkit sweep`` (:mod:`labkit.sweep.cli`).
"""

from __future__ import annotations

from labkit.sweep.grid import Cell, Grid, GridError, parse_axis
from labkit.sweep.progress import SweepProgress

__all__ = [
    "Cell",
    "Grid",
    "GridError",
    "SweepProgress",
    "SweepResult",
    "parse_axis",
    "run_sweep",
]


def __getattr__(name: str) -> object:
    # run_sweep pulls in the simulator (aiocoap, pandas); import it when it is used
    if name in ("run_sweep", "SweepResult"):
        from labkit.sweep import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'labkit.sweep' has no attribute {name!r}")
