"""labkit.sweep.analysis on hand-made device tables (known answers) and on a real sweep."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labkit.sweep.analysis import (
    best_point,
    pareto_front,
    parse_goal,
    read_sweep,
    result_rates,
    summary,
    time_to_update,
)


def devices(spec: dict[str, list[tuple[int, int, int]]]) -> pd.DataFrame:
    """spec: point -> per seed (n_success, n_result_4, n_no_result); success i finishes at
    100 * (i + 1) s."""
    rows = []
    for point, seeds in spec.items():
        for seed, (ok, r4, none) in enumerate(seeds):
            cell = f"{point}-s{seed}"
            for i in range(ok):
                rows.append((cell, point, seed, "success", 1, "SUCCESS", 100.0 * (i + 1)))
            for _ in range(r4):
                rows.append((cell, point, seed, "failed", 4, "CONNECTION_LOST", 50.0))
            for _ in range(none):
                rows.append((cell, point, seed, "gave_up", None, None, np.nan))
    frame = pd.DataFrame(rows, columns=["cell", "point", "seed", "status", "result",
                                        "result_name", "finished_s"])
    frame["policy"] = frame["point"]
    frame["device"] = [f"sim-{i}" for i in range(len(frame))]
    return frame


SPEC = {
    "pa": [(8, 2, 0), (6, 4, 0), (7, 3, 0)],
    "pb": [(10, 0, 0), (9, 0, 1), (10, 0, 0)],
}


def test_result_rates_pool_seeds_and_list_every_result_for_every_point() -> None:
    rates = result_rates(devices(SPEC), varied=["policy"], n_boot=500, seed=1)
    assert set(rates["result"]) == {"SUCCESS", "CONNECTION_LOST", "none"}
    assert len(rates) == 6  # 3 results x 2 points, zero counts included
    a = rates.set_index(["point", "result"])
    assert a.loc[("pa", "SUCCESS"), "rate"] == pytest.approx(21 / 30)
    assert a.loc[("pa", "CONNECTION_LOST"), "count"] == 9
    assert a.loc[("pb", "CONNECTION_LOST"), "count"] == 0
    assert a.loc[("pb", "none"), "rate"] == pytest.approx(1 / 30)
    assert (rates["low"] <= rates["rate"] + 1e-12).all()
    assert (rates["rate"] <= rates["high"] + 1e-12).all()
    assert a.loc[("pa", "SUCCESS"), "high"] > a.loc[("pa", "SUCCESS"), "low"]
    assert a.loc[("pb", "CONNECTION_LOST"), "high"] == 0.0  # never seen: [0, 0]
    assert (rates["n_seeds"] == 3).all()


def test_bootstrap_is_seeded() -> None:
    spec = {"p": [(10 - k, k, 0) for k in range(8)]}  # 8 distinct seeds: many resamples
    a = result_rates(devices(spec), n_boot=300, seed=7)
    b = result_rates(devices(spec), n_boot=300, seed=7)
    c = result_rates(devices(spec), n_boot=300, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["low"], c["low"]) or not np.allclose(a["high"], c["high"])


def test_more_seeds_give_narrower_intervals() -> None:
    few = {"p": [(8, 2, 0), (6, 4, 0), (7, 3, 0)]}
    many = {"p": few["p"] * 6}
    w_few = result_rates(devices(few), n_boot=2000).query("result == 'SUCCESS'")
    w_many = result_rates(devices(many), n_boot=2000).query("result == 'SUCCESS'")
    assert float((w_many["high"] - w_many["low"]).iloc[0]) < float(
        (w_few["high"] - w_few["low"]).iloc[0])


def test_time_to_update_counts_successes_only() -> None:
    t = time_to_update(devices({"p": [(10, 5, 0)]}), n_boot=200).iloc[0]
    assert t["n_success"] == 10
    assert t["median_s"] == pytest.approx(np.quantile(np.arange(1, 11) * 100.0, 0.5))
    assert t["p90_s"] == pytest.approx(np.quantile(np.arange(1, 11) * 100.0, 0.9))
    assert t["median_low"] == t["median_high"] == t["median_s"]  # one seed: no spread


def test_summary_rates_and_pareto() -> None:
    table = summary(devices(SPEC), varied=["policy"], n_boot=500)
    by = table.set_index("point")
    assert by.loc["pa", "failure_rate"] == pytest.approx(9 / 30)
    assert by.loc["pb", "failure_rate"] == pytest.approx(1 / 30)
    assert by.loc["pa", "result_4_rate"] == pytest.approx(9 / 30)
    assert by.loc["pb", "failure_rate_low"] <= by.loc["pb", "failure_rate"]
    # pa: p90 of 100..800 etc. is lower than pb's (100..1000), but fails more: both on front
    assert by["pareto"].all()


def test_pareto_front_by_hand() -> None:
    t = pd.DataFrame({"p90_s": [1.0, 2.0, 3.0, 2.5, np.nan], "failure_rate": [0.5, 0.2, 0.1,
                                                                              0.3, 0.0]})
    assert pareto_front(t).tolist() == [True, True, True, False, False]


def test_best_point_with_a_condition() -> None:
    t = pd.DataFrame({
        "point": ["a", "b", "c"],
        "failure_rate": [0.05, 0.01, 0.02], "failure_rate_low": [0.045, 0.0, 0.01],
        "failure_rate_high": [0.07, 0.03, 0.04], "p90_s": [3600.0, 9000.0, 5000.0],
    })
    ranked = best_point(t, "failure_rate", where="p90_s <= 7200")
    assert ranked["point"].tolist() == ["c", "a"]
    assert ranked["overlaps_best"].tolist() == [True, False]
    assert parse_goal("minimise result_4_rate where p90_s <= 7200") == (
        "result_4_rate", "p90_s <= 7200")
    assert parse_goal("failure_rate") == ("failure_rate", None)
    with pytest.raises(ValueError):
        parse_goal("")


def test_on_a_real_sweep(serial_sweep: Path) -> None:
    sweep = read_sweep(serial_sweep)
    assert sweep.varied == ["policy", "min_rssi_dbm"]
    table = summary(sweep, n_boot=200)
    assert len(table) == 2 and set(table["policy"]) == {"always", "threshold"}
    assert (table["n_seeds"] == 2).all() and (table["n_devices"] == 12).all()
    rates = result_rates(sweep, n_boot=200)
    # the rates agree with the campaign verdicts recorded in the events of every run
    counts = sweep.result_counts(engine="pyarrow")
    if importlib.util.find_spec("duckdb") is not None:
        pd.testing.assert_frame_equal(counts, sweep.result_counts(engine="duckdb"))
    dev = sweep.devices()
    per_cell = dev.groupby(["cell", "result_name"]).size().rename("n").reset_index()
    merged = counts.merge(per_cell, left_on=["cell", "result"], right_on=["cell",
                                                                          "result_name"])
    assert len(merged) == len(per_cell)
    assert (merged["count"] >= merged["n"]).all()  # retries add verdicts, never remove one
    assert rates.groupby("point")["rate"].sum().round(9).eq(1.0).all()
