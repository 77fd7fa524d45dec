"""``labkit sweep``: run a grid of simulated campaigns times seeds, on Dask or serially.

::

    labkit sweep --grid policy=always,threshold --grid min_rssi_dbm=-115,-110,-105,-100 \\
        --profile nb-iot --devices 200 --seeds 5 [--workers N | --scheduler ADDR] --out DIR

Each ``--grid NAME=V1,V2`` is an axis (values of ``faults``, ``waves`` and ``retry_on``
are separated by ``;``); the cells are the product of the axes times the seeds. Fixed
options (``--profile``, ``--devices`` ...) apply to every cell unless an axis varies them.
Progress goes to stderr; stdout gets one ``failed`` line per failed cell (with its
parameters; the traceback is in ``DIR/failed/<cell>.json``), then ``sweep DIR: N/M cells
done``. Exit codes: 0 every cell done, 1 some cells failed (rerun to retry them; done
cells are skipped), 2 usage errors. ``labkit report DIR --out OUT`` draws it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["configure_sweep", "run_sweep_cli"]


def _axis(text: str) -> tuple[str, list[Any]]:
    from labkit.sweep.grid import GridError, parse_axis

    try:
        return parse_axis(text)
    except GridError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _seeds(text: str) -> list[int]:
    """``5`` -> seeds 0..4; ``1,2,7`` -> those seeds."""
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        n = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a count or a list of seeds: {text!r}") from exc
    if n < 1:
        raise argparse.ArgumentTypeError("--seeds must be at least 1")
    return list(range(n))


def configure_sweep(p: argparse.ArgumentParser) -> None:
    from labkit.cliutil import positive_int

    p.add_argument("--grid", type=_axis, action="append", default=[], metavar="NAME=V1,V2",
                   help="an axis of the grid (repeatable), e.g. min_rssi_dbm=-115,-110")
    p.add_argument("--seeds", type=_seeds, default=[0], metavar="N|S1,S2",
                   help="number of seeds (0..N-1) or a list (default 1 seed: 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="the sweep directory")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="worker processes of the embedded Dask LocalCluster (default: one "
                            "per core); 1 runs serially in this process")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="an existing Dask scheduler to send the cells to")
    for name, typ, help_ in (
        ("devices", positive_int, "fleet size of each campaign"),
        ("profile", str, "link profile (nb-iot, lte-m, wifi, mixed)"),
        ("policy", str, "PUSH policy"),
        ("method", str, "push or pull"),
        ("image-size", positive_int, "image payload size, bytes"),
        ("block-size", positive_int, "PUSH block size"),
        ("faults", str, "NAME:FRACTION,..."),
        ("max-concurrent", positive_int, "updates in flight per campaign"),
        ("max-wait", float, "simulated seconds a device may wait for the policy"),
    ):
        p.add_argument(f"--{name}", type=typ, default=None, help=help_)
    p.add_argument("--time-scale", type=float, default=None, metavar="X",
                   help="scaled time only (when simulate has no virtual time): default 100")
    p.add_argument("--deadline", type=float, default=None, metavar="S",
                   help="bound of each campaign: simulated seconds in virtual time (default "
                        "one simulated day), wall seconds in scaled time (default 1800)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


_FIXED = {"devices": "devices", "profile": "profile", "policy": "policy", "method": "method",
          "image_size": "image_size", "block_size": "block_size", "faults": "faults",
          "max_concurrent": "max_concurrent", "max_wait": "max_wait_s"}


def run_sweep_cli(args: argparse.Namespace) -> int:
    from labkit.sweep.engine import run_sweep
    from labkit.sweep.grid import Grid, GridError
    from labkit.sweep.progress import TextProgress

    axes = dict(args.grid)
    if len(axes) != len(args.grid):
        print("labkit sweep: an axis is given twice", file=sys.stderr, flush=True)
        return 2
    fixed = {key: getattr(args, attr) for attr, key in _FIXED.items()
             if getattr(args, attr, None) is not None}
    try:
        grid = Grid(axes, fixed=fixed, seeds=args.seeds)
        cells = grid.cells()
    except GridError as exc:
        print(f"labkit sweep: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"sweep {args.out}: {len(grid.points())} points x {len(grid.seeds)} seeds = "
          f"{len(cells)} cells", flush=True)
    progress = False if args.no_progress else TextProgress(sys.stderr)
    try:
        result = run_sweep(grid, args.out, workers=args.workers, scheduler=args.scheduler,
                           progress=progress, time_scale=args.time_scale,
                           deadline_s=args.deadline)
    except (OSError, TimeoutError) as exc:
        print(f"labkit sweep: {exc}", file=sys.stderr, flush=True)
        return 1
    for cid, rec in sorted(result.failed.items()):
        print(f"failed {cid} {rec.get('params')} seed {rec.get('seed')}: {rec.get('error')}",
              flush=True)
    print(f"sweep {result.path}: {len(result.done)}/{result.total} cells done, "
          f"{len(result.failed)} failed, {result.skipped} skipped (already done), "
          f"{result.wall_s:.1f} s on {result.executor}", flush=True)
    return 0 if result.ok else 1
