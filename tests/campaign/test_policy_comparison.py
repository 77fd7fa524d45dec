"""Always vs threshold on the same fleet and seed: fewer Result 4 failures, a longer campaign,
and the same outcome tables every time.

Three devices have a good link all along; three start weak (a 25 dB dip: -115 dBm, below the
threshold policy's -105 dBm, but still loss-free) and lose their link completely from 30 to
200 simulated seconds after the campaign starts, then recover at 300 s. ``always`` pushes at
once and the weak devices' 48 KiB downloads (about a minute each) die in the outage: Result 4.
``threshold`` waits until the signal is back above -105 dBm and then succeeds. The links have
no fading and no random dips, so these outcomes do not depend on luck. The runs are on virtual
time, so a seed reproduces the whole event table (timestamps included), not only the outcomes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from labkit.fota.simulate import simulate
from labkit.record import decisions, read_run
from labkit.sim import Dip, outage
from tests.linkem.links import steady_link

SEED = 5
GOOD = (0, 2, 4)
WEAK = (1, 3, 5)


def links() -> list:
    out = []
    for i in range(6):
        dips = [Dip(0.0, 300.0, 25.0), outage(30.0, 170.0)] if i in WEAK else []
        out.append(steady_link(i, SEED, rssi_dbm=-90.0, delay_s=0.6, dips=dips))
    return out


def campaign_run(policy: str, out: Path) -> Path:
    return simulate(
        devices=6, profile="lte-m", policy=policy, method="push", image_size=48 * 1024,
        seed=SEED, out=out, links=links(), block_size=1024, max_wait_s=1200.0,
    )


def outcome_table(run_dir: Path) -> pd.DataFrame:
    """What a seed must reproduce: each device's final status and result. Not compared: whether
    a result 4 came from the device's own report or was inferred by the campaign first
    (``result_inferred``), which is a race of wall-clock scheduling, as are timestamps."""
    d = pd.read_parquet(run_dir / "campaign_devices.parquet")
    return d[["device", "status", "result"]].reset_index(drop=True)


def test_threshold_avoids_result_4_and_the_comparison_is_reproducible(tmp_path: Path) -> None:
    runs = {
        (policy, k): campaign_run(policy, tmp_path / f"{policy}-{k}")
        for policy in ("always", "threshold")
        for k in (1, 2)
    }
    tables = {key: outcome_table(path) for key, path in runs.items()}
    for policy in ("always", "threshold"):
        pd.testing.assert_frame_equal(tables[(policy, 1)], tables[(policy, 2)])
        first, second = (read_run(runs[(policy, k)]).events for k in (1, 2))
        pd.testing.assert_frame_equal(first.drop(columns="run_id"), second.drop(columns="run_id"))

    always, threshold = tables[("always", 1)], tables[("threshold", 1)]
    weak = [f"sim-{i + 1:04d}" for i in WEAK]
    a = always.set_index("device")
    assert list(a.loc[weak, "result"]) == [4, 4, 4]
    assert set(a.drop(index=weak)["result"]) == {1}
    assert set(threshold["result"]) == {1}

    def summary(path: Path) -> dict:
        return json.loads((path / "manifest.json").read_text())["params"]["campaign"]

    s_always, s_threshold = summary(runs[("always", 1)]), summary(runs[("threshold", 1)])
    assert s_always["result_4"] == 3 and s_threshold["result_4"] == 0
    assert s_threshold["time_to_complete_s"] > s_always["time_to_complete_s"]

    # Every decision in the saved run carries the link sample behind it, or says it had none
    # (the read of /4 failed during the outage).
    run = read_run(runs[("threshold", 1)])
    dec = decisions(run.events)
    assert len(dec) > 6 and set(dec["decision"].astype(str)) == {"wait", "push"}
    known = dec["rssi_dbm"].notna() & dec["link_quality"].notna()
    assert (known | dec["reason"].str.startswith("no link sample")).all()
    weak_waits = dec[dec["device"].isin(weak) & (dec["decision"] == "wait") & known]
    assert (weak_waits["rssi_dbm"] == -115).all() and len(weak_waits) >= 3
    pushes = dec[dec["decision"] == "push"]
    assert (pushes["rssi_dbm"] == -90).all() and len(pushes) == 6
    assert json.loads((runs[("threshold", 1)] / "manifest.json").read_text())["params"][
        "thresholds"] == {"min_rssi_dbm": -105.0}
