"""``labkit simulate``: run a whole simulated campaign with a progress line, save the run.

::

    labkit simulate --devices 200 --profile mixed --policy threshold --method push \\
        --image-size 8192 --faults link-drop:0.05,boot-fail:0.05 --seed 1 --time-scale 100 \\
        --out data/runs

The work is :func:`labkit.fota.simulate.simulate`; this module parses, shows progress on
stderr (a plain text line redrawn in place on a terminal, one line per 10 % otherwise; no
dependency) and prints the summary on stdout: one ``wave`` line per wave, one ``result`` line
per Update Result, the ``run`` directory, and a ``warning`` line when the event loop's lag
distorted the simulated timings. Exit codes: 0 when the campaign finished (whatever the
devices' results), 1 when it was stopped by its brakes, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any, TextIO

__all__ = ["ProgressLine", "configure_simulate", "run_simulate"]


class ProgressLine:
    """A text progress bar on a stream: ``[#####.....] 120/200 devices 12.3 s``.

    Thread-safe (the lab calls it from its loop thread). On a terminal the line is redrawn
    in place at most ``min_interval`` seconds apart; on anything else (a log file, a pipe)
    one line is written per ``step`` percent, so logs stay short.
    """

    def __init__(self, stream: TextIO = sys.stderr, *, width: int = 30,
                 min_interval: float = 0.2, step: int = 10) -> None:
        self.stream = stream
        self.width = width
        self.min_interval = min_interval
        self.step = step
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._last_pct = -1
        self._started = time.monotonic()
        self._drawn = False

    def render(self, done: int, total: int) -> str:
        frac = done / total if total else 1.0
        filled = round(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        return f"[{bar}] {done}/{total} devices {time.monotonic() - self._started:.1f} s"

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            now = time.monotonic()
            pct = int(100 * done / total) if total else 100
            if self.tty:
                if done < total and now - self._last_draw < self.min_interval:
                    return
                self.stream.write("\r" + self.render(done, total))
            else:
                bucket = pct // self.step
                if bucket == self._last_pct and done < total:
                    return
                self._last_pct = bucket
                self.stream.write(self.render(done, total) + "\n")
            self.stream.flush()
            self._last_draw = now
            self._drawn = True

    def close(self) -> None:
        with self._lock:
            if self.tty and self._drawn:
                self.stream.write("\n")
                self.stream.flush()


def _percents(text: str) -> list[float]:
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected percentages like 10,50,100: {text!r}") from exc
    return values


def _codes(text: str) -> list[int]:
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected result codes like 4,8: {text!r}") from exc


def _policy_params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--policy-params must be JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--policy-params must be a JSON object")
    return value


def configure_simulate(p: argparse.ArgumentParser) -> None:
    from labkit.cliutil import positive_int
    from labkit.policy import POLICIES
    from labkit.sim.profiles import PROFILE_NAMES

    p.add_argument("--devices", type=positive_int, default=10, help="fleet size (default 10)")
    p.add_argument("--profile", choices=PROFILE_NAMES, default="mixed")
    p.add_argument("--policy", choices=sorted(POLICIES), default="threshold")
    p.add_argument("--policy-params", type=_policy_params, default=None, metavar="JSON",
                   help='policy parameters, e.g. \'{"min_rssi_dbm": -110}\'')
    p.add_argument("--method", choices=("push", "pull"), default="push")
    p.add_argument("--image-size", type=positive_int, default=8192, metavar="BYTES")
    p.add_argument("--block-size", type=int, choices=(16, 32, 64, 128, 256, 512, 1024),
                   default=1024)
    p.add_argument("--faults", default="", metavar="SPEC",
                   help="NAME:FRACTION,... e.g. link-drop:0.05,boot-fail:0.05")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", choices=("virtual", "scaled"), default="virtual",
                   help="virtual (default): simulated time that jumps from event to event, "
                        "exact and reproducible; scaled: wall clock x --time-scale over "
                        "loopback sockets, to watch live (the CPU can distort it)")
    p.add_argument("--time-scale", type=float, default=None, metavar="X",
                   help="with --clock scaled: simulated seconds per wall second (default 100)")
    p.add_argument("--out", default="data/runs", metavar="DIR", help="folder of runs")
    p.add_argument("--canary", type=int, default=0, metavar="N")
    p.add_argument("--waves", type=_percents, default=[100.0], metavar="P,P,...",
                   help="cumulative percentages after the canary (default 100)")
    p.add_argument("--max-concurrent", type=positive_int, default=50)
    p.add_argument("--pacing", type=float, default=0.0, metavar="S",
                   help="simulated seconds between update starts")
    p.add_argument("--failure-threshold", type=float, default=None, metavar="FRACTION")
    p.add_argument("--retry-on", type=_codes, default=[], metavar="CODES",
                   help="Update Result codes to retry, e.g. 4")
    p.add_argument("--max-attempts", type=positive_int, default=3)
    p.add_argument("--max-wait", type=float, default=3600.0, metavar="S",
                   help="simulated seconds a device may wait for the policy (default 3600)")
    p.add_argument("--deadline", type=float, default=None, metavar="S",
                   help="bound of the campaign: simulated s with --clock virtual (default "
                        "86400), wall s with --clock scaled (default 1800)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def run_simulate(args: argparse.Namespace) -> int:
    from labkit.sim.faults import FaultSpecError, parse_fault_spec

    try:
        if args.faults:
            parse_fault_spec(args.faults)
        if args.time_scale is not None and not args.time_scale > 0:
            raise ValueError("--time-scale must be > 0")
    except (FaultSpecError, ValueError) as exc:
        from labkit.runstart import discard_early

        discard_early()
        print(f"labkit simulate: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.time_scale is not None and args.clock == "virtual":
        print("labkit simulate: note: --time-scale applies to --clock scaled; this run is on "
              "virtual time (simulated time jumps from event to event)", file=sys.stderr,
              flush=True)
    # the run directory and a first manifest before the heavy imports: a run killed at any
    # moment from here on is a loadable (if empty) run (labkit.runstart)
    from labkit.runstart import start_run_dir, take_early

    run_id = take_early(args.out) or start_run_dir(
        args.out, {"command": "simulate", **{k: v for k, v in vars(args).items() if k != "func"}}
    )
    import pandas as pd

    from labkit.fota.simulate import simulate

    progress = None if args.no_progress else ProgressLine(sys.stderr)
    try:
        run_dir = simulate(
            run_id=run_id,
            devices=args.devices,
            profile=args.profile,
            policy=args.policy,
            method=args.method,
            image_size=args.image_size,
            faults=args.faults,
            seed=args.seed,
            time_scale=100.0 if args.time_scale is None else args.time_scale,
            clock=args.clock,
            out=args.out,
            policy_params=args.policy_params,
            block_size=args.block_size,
            on_progress=progress,
            deadline_s=args.deadline,
            canary=args.canary,
            waves=args.waves,
            max_concurrent=args.max_concurrent,
            pacing_s=args.pacing,
            failure_threshold=args.failure_threshold,
            retry_on=args.retry_on,
            max_attempts=args.max_attempts,
            max_wait_s=args.max_wait,
        )
    except (ValueError, TypeError) as exc:
        if progress is not None:
            progress.close()
        print(f"labkit simulate: {exc}", file=sys.stderr, flush=True)
        return 2
    if progress is not None:
        progress.close()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    params = manifest.get("params", {})
    waves = pd.read_parquet(run_dir / "campaign_waves.parquet")
    for row in waves.itertuples(index=False):
        print(f"wave {row.wave} {row.kind}: {row.devices} devices, {row.success} success, "
              f"{row.failed} failed, {row.gave_up} gave up, {row.skipped} skipped, "
              f"{row.result_4} result 4", flush=True)
    summary = params.get("campaign", {})
    for name, count in sorted(summary.get("result_counts", {}).items()):
        print(f"result {name} {count}", flush=True)
    ttc = summary.get("time_to_complete_s")
    print(f"campaign {summary.get('status')} in {ttc if ttc is None else round(ttc, 1)} s "
          f"(simulated), {params.get('wall_s', 0):.1f} s wall", flush=True)
    if params.get("clock") == "virtual":
        print(f"clock virtual from {params.get('epoch')} (exact: no loop lag)", flush=True)
    else:
        lag = params.get("loop_lag", {})
        print(f"loop lag p95 {lag.get('p95_ms', 0):.1f} ms wall "
              f"({lag.get('p95_sim_ms', 0) / 1000:.2f} s simulated)", flush=True)
    if params.get("distorted"):
        print(f"warning {params.get('distortion_warning', 'timings distorted')}", flush=True)
    print(f"run {run_dir}", flush=True)
    return 0 if summary.get("status") == "finished" else 1
