"""``python -m benchmarks [--quick] [--only NAME ...] [--json OUT]``: run and print the table.

Exit status: 0 whether goals are met or not (benchmarks report, they do not gate); 1 when a
benchmark crashed (its row says ERROR and why), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from benchmarks import load
from benchmarks.harness import (
    ERROR,
    Goal,
    Options,
    Row,
    dump_json,
    format_machine,
    format_table,
    machine_info,
)


def _parser(names: list[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run labkit's benchmarks and print one table of side-by-side ratios.",
    )
    p.add_argument(
        "--quick", action="store_true", help="reduced sizes and repetitions (under a minute)"
    )
    p.add_argument(
        "--only", nargs="+", metavar="NAME", choices=names, help=f"run only: {', '.join(names)}"
    )
    p.add_argument("--json", metavar="OUT", help="also write the rows and machine info as JSON")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    registry = load()
    args = _parser(list(registry)).parse_args(argv)
    if args.list:
        for bench in registry.values():
            print(f"{bench.name:12} {bench.description}")
        return 0
    options = Options(quick=args.quick)
    selected = [registry[n] for n in registry if not args.only or n in args.only]
    info = machine_info()
    mode = "quick" if options.quick else "full"
    print(f"labkit benchmarks ({mode} run)", flush=True)
    print(format_machine(info), flush=True)
    rows: list[Row] = []
    crashed = False
    for bench in selected:
        print(f"... {bench.name}: {bench.description}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            got = bench.fn(options)
        except Exception as exc:  # report it as a row; the rest of the suite still runs
            traceback.print_exc()
            crashed = True
            got = [
                Row(
                    key=bench.name,
                    what=bench.description,
                    goal=Goal(),
                    status=ERROR,
                    note=f"benchmark crashed: {type(exc).__name__}: {exc}",
                )
            ]
        took = time.perf_counter() - started
        print(f"    {bench.name} took {took:.1f} s", file=sys.stderr, flush=True)
        rows.extend(got)
    print()
    print(format_table(rows))
    if args.json:
        dump_json(args.json, info, rows, options)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
