"""Virtual time (:mod:`labkit.virtual`): fleets whose results no CPU can distort.

Four rows:

* ``virtual-fleet`` -- 1,000 NB-IoT devices (quick: 50), a 64 KiB image pushed in 1024-byte
  blocks, threshold policy, link-drop on 5 % of the devices, on virtual time: simulated time /
  wall time (goal >= 100) and the wall time (goal <= 180 s), every device final.
* ``virtual-idle`` -- 10,000 devices (quick: 500) with a 1-hour lifetime, registered and idle
  for 24 simulated hours (registration Updates only): wall time (goal <= 300 s) and RSS per
  device (goal <= 40 KiB), measured in a fresh process (RSS after the day minus RSS of the
  same process with the lab started and no device). The lab records to a temporary run
  directory with ``retain_events=False``: the day's events are on disk, not in memory (the
  event count in the note is read back from there).
* ``virtual-block`` -- one 1 MiB PUSH in 1024-byte blocks, virtual network vs real loopback
  UDP, measured side by side (interleaved): wall per block, ratio virtual / sockets (goal
  <= 1.0x).
* ``virtual-issue`` -- the issue's command (200 mixed devices, 32 KiB, threshold, link-drop and
  boot-fail 5 %, seed 7): wall time on virtual time over wall time at ``--time-scale 100``
  (goal <= 1.0x); quick: 40 devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Goal, Options, Row, interleaved, median, paired_ratio, register

ROOT = Path(__file__).resolve().parents[1]


def _fleet_run(out: str, **kwargs: Any) -> tuple[float, Path]:
    from labkit.fota.simulate import simulate

    start = time.perf_counter()
    cpu = time.process_time()
    run_dir = simulate(out=out, **kwargs)
    _CPU[out] = time.process_time() - cpu
    return time.perf_counter() - start, Path(run_dir)


_CPU: dict[str, float] = {}  # CPU seconds of the process per run (the machine may be shared)


def _summary(run_dir: Path) -> tuple[dict[str, Any], float]:
    import pandas as pd

    from labkit.record import read_run

    params = json.loads((run_dir / "manifest.json").read_text())["params"]
    events = read_run(run_dir).events
    sim = (events["ts"].max() - events["ts"].min()).total_seconds()
    devices = pd.read_parquet(run_dir / "campaign_devices.parquet")
    from labkit.fota.campaign import FINAL_STATUSES

    params["_final"] = int(devices["status"].astype(str).isin(list(FINAL_STATUSES)).sum())
    params["_devices"] = len(devices)
    params["_statuses"] = devices["status"].astype(str).value_counts().to_dict()
    return params, sim


def _lost_explained(run_dir: Path, seed: int) -> dict[str, Any]:
    """Every CONNECTION_LOST (Result 4) of a saved run checked against its device's faults and
    link trace (as ``tests/campaign/test_simulate_virtual.py`` does): a ``link-drop`` fault, or
    :func:`labkit.sim.link.link_trouble` during its download (a second losing at least every
    other datagram, or at the profile's worst signal); anything else is unexplained, a bug.
    For plausibility the same test runs on the devices that did *not* lose the connection:
    how many of them met such trouble and came through."""
    import pandas as pd

    from labkit.sim.link import device_link, link_trouble

    table = pd.read_parquet(run_dir / "campaign_devices.parquet")
    links = pd.read_parquet(run_dir / "links.parquet")
    merged = table.merge(links, on="device")
    lost = merged[merged["result"] == 4]
    drop_faulted = merged[merged["faults"].str.split(",").map(lambda f: "link-drop" in f)]
    out: dict[str, Any] = {"lost": len(lost), "link_drop": 0, "fade": 0, "unexplained": [],
                           "fade_devices": [], "link_drop_faulted": len(drop_faulted),
                           "link_drop_not_lost": sorted(
                               drop_faulted.loc[drop_faulted["result"] != 4, "device"]),
                           "trouble_survived": 0, "clean": 0}
    for row in merged.itertuples(index=False):
        was_lost = not pd.isna(row.result) and int(row.result) == 4
        if "link-drop" in str(row.faults).split(","):
            out["link_drop"] += was_lost
            continue
        if pd.isna(row.started_s) or pd.isna(row.finished_s):
            continue  # never started a download (gave up waiting for a signal)
        index = int(str(row.device).removeprefix("sim-")) - 1
        trouble = link_trouble(device_link(str(row.profile), index, seed).trace,
                               float(row.started_s), float(row.finished_s))
        if not was_lost:
            out["trouble_survived" if trouble else "clean"] += 1
        elif trouble:
            out["fade"] += 1
            out["fade_devices"].append(f"{row.device}: {trouble}")
        else:
            out["unexplained"].append(str(row.device))
    return out


def _lost_line(check: dict[str, Any]) -> str:
    line = (f"{check['lost']} CONNECTION_LOST: {check['link_drop']} link-drop + {check['fade']} "
            f"bad link during the download (loss >= 50 % or signal at the profile's worst), "
            f"{len(check['unexplained'])} unexplained; of the other downloads "
            f"{check['trouble_survived']} met a bad link and came through, "
            f"{check['clean']} never did")
    if check["unexplained"]:
        line += f" {check['unexplained']}"
    if check["link_drop_not_lost"]:
        line += f"; link-drop devices without Result 4: {check['link_drop_not_lost']}"
    return line


@register("virtual-fleet", "1,000 NB-IoT devices, 64 KiB PUSH, on virtual time: sim / wall")
def fleet(options: Options) -> list[Row]:
    n = options.pick(1000, 50)
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        wall, run_dir = _fleet_run(
            tmp, devices=n, profile="nb-iot", policy="threshold", method="push",
            image_size=64 * 1024, faults="link-drop:0.05", seed=1, clock="virtual",
        )
        params, sim = _summary(run_dir)
        check = _lost_explained(run_dir, seed=1)
    summary = params.get("campaign", {})
    print(f"    {_lost_line(check)}")
    for device in check["fade_devices"]:
        print(f"      {device}")
    note = (f"{sim:,.0f} simulated s in {wall:.1f} wall s ({_CPU.get(tmp, 0):.1f} CPU s); "
            f"{params['_final']}/{n} final; "
            f"statuses {params['_statuses']}; "
            f"results {summary.get('result_counts')}; {_lost_line(check)}")
    return [
        Row(key="virtual-fleet", what=f"{n} NB-IoT devices, 64 KiB PUSH, virtual: sim / wall",
            goal=Goal(on="lab", op=">=", value=100.0, text=">= 100 (sim s / wall s)"),
            lab=sim / wall, unit="x", note=note, samples={"lab": [sim / wall]}),
        Row(key="virtual-fleet-wall", what=f"{n} NB-IoT devices, 64 KiB PUSH, virtual: wall",
            goal=Goal(on="lab", op="<=", value=180.0, text="<= 180 s wall"),
            lab=wall, unit="s", note=f"campaign {summary.get('status')}",
            samples={"lab": [wall]}),
    ]


IDLE = """
import gc, json, sys, time
from labkit import Lab

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

n, hours, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
# what an experimenter running a day of a large fleet does: the events go to the run's files
# as they happen instead of staying in memory (Lab(retain_events=False))
with Lab(clock="virtual", seed=1, record=out, retain_events=False) as lab:
    lab.server  # started
    base = rss_kib()
    start = time.perf_counter()
    lab.add_devices(n, lifetime=3600, concurrency=256, timeout=600)
    lab.run_for(hours * 3600)
    wall = time.perf_counter() - start
    after = rss_kib()
    updates = int((lab.events()["kind"] == "reg_updated").sum())
    registered = len(lab.server.registrations)
    full_gcs = gc.get_stats()[2]["collections"]
print(json.dumps({"wall": wall, "base_kib": base, "after_kib": after, "updates": updates,
                  "registered": registered, "full_gcs": full_gcs}))
"""


@register("virtual-idle", "10,000 idle devices, 1 h lifetime, 24 simulated hours")
def idle(options: Options) -> list[Row]:
    n = options.pick(10_000, 500)
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", IDLE, str(n), "24", tmp], capture_output=True, text=True,
            timeout=3600, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    per_device = (got["after_kib"] - got["base_kib"]) / n
    note = (f"{n} devices, {got['registered']} registered at the end, {got['updates']} "
            f"registration-update events in 24 simulated h; RSS {got['base_kib'] / 1024:.0f} -> "
            f"{got['after_kib'] / 1024:.0f} MiB; {got.get('full_gcs')} full garbage collections")
    return [
        Row(key="virtual-idle", what=f"{n} idle devices x 24 simulated h: wall",
            goal=Goal(on="lab", op="<=", value=300.0, text="<= 300 s wall"),
            lab=got["wall"], unit="s", note=note, samples={"lab": [got["wall"]]}),
        Row(key="virtual-idle-rss", what=f"{n} idle devices: RSS per device",
            goal=Goal(on="lab", op="<=", value=40.0, text="<= 40 KiB"),
            lab=per_device, unit="KiB", samples={"lab": [per_device]}),
    ]


@register("virtual-block", "1 MiB PUSH per block: virtual network vs loopback UDP")
def block(options: Options) -> list[Row]:
    from labkit import Lab
    from labkit.repo.images import build_image

    size = options.pick(1024 * 1024, 256 * 1024)
    reps = options.pick(3, 1)
    image = build_image(version="2.0.0", size=size - 1024)
    blocks = -(-len(image) // 1024)
    labs = {"virtual": Lab(clock="virtual", seed=1).start(), "sockets": Lab(seed=1).start()}
    counters = {"virtual": 0, "sockets": 0}

    def push(kind: str) -> float:
        lab = labs[kind]
        counters[kind] += 1
        endpoint = f"bench-{counters[kind]:03d}"
        lab.add_device(endpoint, flash_size=4 * 1024 * 1024, ram=4096)
        start = time.perf_counter()
        outcome = lab.update(endpoint, image, method="push", block_size=1024, timeout=60)
        wall = time.perf_counter() - start
        if not outcome.success:
            raise RuntimeError(f"{kind} PUSH failed: {outcome.result_line}")
        return wall

    try:
        v, s = interleaved(lambda: push("virtual"), lambda: push("sockets"), reps)
    finally:
        for lab in labs.values():
            lab.close()
    ratio = paired_ratio(v, s)
    return [
        Row(key="virtual-block", what=f"PUSH of {len(image) // 1024} KiB: wall per block",
            goal=Goal(on="ratio", op="<=", value=1.0, text="<= 1.0x sockets"),
            lab=median(v) / blocks * 1e3, unit="ms", reference=median(s) / blocks * 1e3,
            ref_unit="ms", ref_what="loopback UDP (same lab, same aiocoap)", ratio=ratio,
            samples={"lab": v, "reference": s}),
    ]


@register("virtual-issue", "the issue's 200-device command: virtual vs --time-scale 100 wall")
def issue(options: Options) -> list[Row]:
    n = options.pick(200, 40)
    common = dict(devices=n, profile="mixed", policy="threshold", method="push",
                  image_size=32768, faults="link-drop:0.05,boot-fail:0.05", seed=7)
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        v_wall, v_dir = _fleet_run(tmp + "/v", clock="virtual", **common)
        s_wall, s_dir = _fleet_run(tmp + "/s", clock="scaled", time_scale=100.0, **common)
        v_params, _ = _summary(v_dir)
        s_params, _ = _summary(s_dir)
    v_res = v_params["campaign"].get("result_counts")
    s_res = s_params["campaign"].get("result_counts")
    note = (f"virtual {v_wall:.1f} s: {v_res}; scaled 100x {s_wall:.1f} s: {s_res}, "
            f"distorted={s_params.get('distorted')}")
    return [
        Row(key="virtual-issue", what=f"issue command, {n} devices: wall virtual / scaled 100x",
            goal=Goal(on="ratio", op="<=", value=1.0, text="<= 1.0x"),
            lab=v_wall, unit="s", reference=s_wall, ref_unit="s",
            ref_what="--clock scaled --time-scale 100", ratio=v_wall / s_wall, note=note,
            samples={"lab": [v_wall], "reference": [s_wall]}),
    ]
