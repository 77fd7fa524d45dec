"""An NB-IoT-profile campaign at time scale 100: simulated time / wall time (goal >= 50).

Runs :func:`labkit.fota.simulate.simulate` -- a :class:`~labkit.runtime.Lab` on a
:class:`~labkit.timebase.ScaledClock` at 100x, N simulated devices behind NB-IoT link relays
(profile ``nb-iot``), a signed 64 KiB image pushed by a campaign with policy ``always`` --
into a temporary directory, and reports the simulated span of the recorded run (first to last
event timestamp, in the lab's simulated clock) over the wall time of the whole call (lab
start, fleet registration, image signing, campaign, saving). N = 100 (quick: 5).

What the figure means: simulated time is derived from the wall clock (scale x wall), so while
the CPU keeps up the ratio approaches the scale minus start-up and saving overhead. Whether it
kept up is the event loop's lag, which the run records (``loop_lag``, ``distorted`` in the
manifest); the note repeats it, since a lagging loop stretches simulated timings (a 10 ms
late timer is a simulated second at 100x) without lowering the ratio. There is no reference
run: the goal is on the figure itself. A distorted run, or one where updates failed, gets a
caveat next to "yes"/"NO": the ratio alone would hide it.

Detected, not assumed: when ``labkit.fota.simulate`` (and so the scaled clock and the
campaign runner) does not exist, the row is "not yet measurable".
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Goal, Options, Row, not_yet, register

GOAL = Goal(on="lab", op=">=", value=50.0, text=">= 50 (sim s / wall s)")
SCALE = 100.0
IMAGE_SIZE = 64 * 1024


def missing() -> str | None:
    """What is missing for this row, or None when it can be measured."""
    gaps = []
    if importlib.util.find_spec("labkit.timebase") is None:
        gaps.append("no time-scaled clock (labkit.timebase)")
    if importlib.util.find_spec("labkit.fota.campaign") is None:
        gaps.append("no fleet campaign runner (labkit.fota.campaign)")
    if importlib.util.find_spec("labkit.fota.simulate") is None:
        gaps.append("no simulated-campaign driver (labkit.fota.simulate)")
    return "; ".join(gaps) or None


@register("timescale", "NB-IoT campaign at time scale 100: simulated / wall time")
def run(options: Options) -> list[Row]:
    n = options.pick(100, 5)
    what = f"NB-IoT campaign, {n} devices, time scale 100: sim / wall"
    reason = missing()
    if reason is not None:
        return [not_yet("timescale", what, GOAL, reason)]
    from labkit.fota.simulate import simulate
    from labkit.record import read_run

    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        start = time.perf_counter()
        run_dir = simulate(
            devices=n,
            profile="nb-iot",
            policy="always",
            method="push",
            image_size=IMAGE_SIZE,
            time_scale=SCALE,
            out=tmp,
            seed=1,
            deadline_s=900.0,
            clock="scaled",
        )
        wall = time.perf_counter() - start
        params = json.loads((Path(run_dir) / "manifest.json").read_text())["params"]
        events = read_run(run_dir).events
        sim = (events["ts"].max() - events["ts"].min()).total_seconds()
    summary = params.get("campaign", {})
    lag = params.get("loop_lag", {})
    note = (
        f"{sim:,.0f} simulated s in {wall:.1f} wall s; campaign {summary.get('status')}: "
        f"{summary.get('success', 0)}/{n} succeeded {summary.get('result_counts')}; "
        f"loop lag p95 {lag.get('p95_ms', float('nan')):.1f} ms wall "
        f"= {lag.get('p95_sim_ms', float('nan')) / 1000:.2f} s simulated; "
        f"distorted={params.get('distorted')}"
    )
    caveats = []
    if params.get("distorted"):
        note += " (the CPU did not keep up: simulated timings are stretched)"
        caveats.append("distorted")
    failed = n - int(summary.get("success", 0) or 0)
    if failed:
        caveats.append(f"{failed}/{n} updates failed")
    return [
        Row(
            key="timescale",
            what=what,
            goal=GOAL,
            lab=sim / wall,
            unit="x",
            note=note,
            caveat=", ".join(caveats),
            samples={"lab": [sim / wall]},
        )
    ]
