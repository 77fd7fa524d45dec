"""The sample data in data/samples (``python -m labkit.samples``) and the helpers that read it.

Every committed sample run loads with :func:`labkit.record.read_run`, validates, is listed by
:func:`labkit.record.list_runs` and reports (``labkit report``) to non-empty PNG files; the
capture imports to the same /5 story as the run it captured; the samples stay small and carry
no key. ``make_samples`` itself is run on the two single-device samples (a few seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from labkit.record import (
    RunError,
    campaign_outcomes,
    import_capture,
    list_runs,
    load_attempts,
    read_run,
    result_counts,
    validate,
)
from labkit.report import write_report
from labkit.samples import (
    CAMPAIGN,
    CAPTURE_NAME,
    DEFAULT_SEED,
    SAMPLES,
    build_parser,
    make_samples,
    sample_path,
    samples_dir,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = ROOT / "data" / "samples"
RUN_NAMES = [name for name in SAMPLES if name != CAPTURE_NAME]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 3 * 1024 * 1024


@pytest.fixture(autouse=True)
def _close_figures() -> object:
    yield
    plt.close("all")


def test_samples_dir_is_the_checkouts() -> None:
    assert samples_dir() == SAMPLES_DIR
    assert sample_path("campaign-threshold") == SAMPLES_DIR / "campaign-threshold"
    with pytest.raises(KeyError, match="push-single"):
        sample_path("no-such-sample")


def test_every_sample_is_there_and_nothing_else() -> None:
    present = sorted(p.name for p in SAMPLES_DIR.iterdir() if not p.name.startswith("."))
    assert present == sorted(SAMPLES)


def test_the_samples_are_small() -> None:
    size = sum(p.stat().st_size for p in SAMPLES_DIR.rglob("*") if p.is_file())
    assert size < MAX_BYTES, f"data/samples holds {size / 1e6:.1f} MB"


def test_the_samples_hold_no_key() -> None:
    for path in SAMPLES_DIR.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes(), path
            assert not path.name.endswith((".pem", ".key")), path


def test_list_runs_lists_the_four_sample_runs() -> None:
    runs = list_runs(SAMPLES_DIR)
    assert sorted(runs["run_id"]) == sorted(RUN_NAMES)
    assert runs["complete"].all() and runs["error"].isna().all()
    assert (runs["n_events"] > 0).all()
    assert dict(zip(runs["run_id"], runs["n_devices"], strict=True)) == {
        "push-single": 1,
        "pull-single": 1,
        "campaign-always": CAMPAIGN["devices"],
        "campaign-threshold": CAMPAIGN["devices"],
    }


@pytest.mark.parametrize("name", RUN_NAMES)
def test_sample_run_loads_validates_and_names_its_command(name: str) -> None:
    run = read_run(SAMPLES_DIR / name)
    validate(run.events)
    assert run.complete and run.run_id == name and len(run.events)
    assert run.params["sample"] == name and run.params["seed"] == DEFAULT_SEED
    assert run.params["generated_by"].startswith("python -m labkit.samples ")
    assert f"--seed {DEFAULT_SEED}" in run.params["generated_by"]


@pytest.mark.parametrize("name", ["push-single", "pull-single"])
def test_single_samples_are_one_successful_update(name: str) -> None:
    run = read_run(SAMPLES_DIR / name)
    att = run.attempts()
    assert len(att) == 1 and bool(att["success"].iloc[0])
    assert att["method"].iloc[0] == run.params["method"]
    assert (att["fw_before"].iloc[0], att["fw_after"].iloc[0]) == ("1.0.0", "2.0.0")
    assert run.params["result"] == "RESULT 1 SUCCESS"


def test_the_campaigns_differ_only_in_policy() -> None:
    a, t = (read_run(SAMPLES_DIR / f"campaign-{p}").params for p in ("always", "threshold"))
    assert (a["policy"], t["policy"]) == ("always", "threshold")
    for key, value in CAMPAIGN.items():
        assert a[key] == t[key] == value, key
    assert a["seed"] == t["seed"] and a["fault_counts"] == t["fault_counts"]
    assert a["campaign"]["status"] == t["campaign"]["status"] == "finished"


def test_the_capture_is_the_push_single_update() -> None:
    result = import_capture(SAMPLES_DIR / CAPTURE_NAME)
    assert not result.skipped, result.summary()
    assert list(result.devices) == ["sim-0001"] and len(result.devices["sim-0001"]) == 2
    run = read_run(SAMPLES_DIR / "push-single")
    assert run.params["capture"] == CAPTURE_NAME
    assert run.params["capture_packets"] == result.packets
    server = run.events[run.events["source"] == "server"]
    for kind in ("fw_state", "fw_result", "block", "registered"):
        mine = result.frame[result.frame["kind"] == kind]
        assert len(mine) == int((server["kind"] == kind).sum()), kind
    states = result.frame.loc[result.frame["kind"] == "fw_state", "state"].astype(str).tolist()
    assert states == ["IDLE", "DOWNLOADING", "DOWNLOADED", "UPDATING", "IDLE"]


@pytest.mark.parametrize("name", RUN_NAMES)
def test_report_of_each_sample_writes_pngs(name: str, tmp_path: Path) -> None:
    files = write_report(SAMPLES_DIR / name, tmp_path, dpi=40)
    pngs = [f for f in files if f.suffix == ".png"]
    assert "fleet_timeline.png" in [p.name for p in pngs]
    assert all(f.stat().st_size > 0 and f.read_bytes()[:8] == PNG_MAGIC for f in pngs)
    assert files[-1].name == "summary.md" and files[-1].stat().st_size > 0


# -- the helpers that compare runs ------------------------------------------------------------


def test_load_attempts_adds_run_and_policy_columns() -> None:
    paths = [SAMPLES_DIR / "campaign-always", SAMPLES_DIR / "campaign-threshold"]
    table = load_attempts(paths, params=["policy", "seed", "thresholds"])
    assert list(table.columns[:4]) == ["run_id", "policy", "seed", "thresholds"]
    for path in paths:
        run = read_run(path)
        mine = table[table["run_id"] == run.run_id].drop(
            columns=["run_id", "policy", "seed", "thresholds"]
        )
        pd.testing.assert_frame_equal(
            mine.reset_index(drop=True), run.attempts(), check_categorical=False
        )
        assert set(table.loc[table["run_id"] == run.run_id, "policy"]) == {run.params["policy"]}
    assert table["policy"].dtype == "string" and isinstance(
        table["device"].dtype, pd.CategoricalDtype
    )
    assert json.loads(table["thresholds"].iloc[-1]) == {"min_rssi_dbm": -105.0}
    counts = result_counts(table, by="policy")
    assert set(counts["policy"]) == {"always", "threshold"}


def test_load_attempts_of_runs_and_of_nothing() -> None:
    run = read_run(SAMPLES_DIR / "push-single")
    table = load_attempts([run], params=["policy", "block_size"])
    assert len(table) == 1 and table["policy"].isna().all() and table["block_size"].iloc[0] == 512
    with pytest.raises(ValueError, match="method"):
        load_attempts([run], params=["method"])
    empty = load_attempts([])
    assert len(empty) == 0 and {"run_id", "policy", "device", "result"} <= set(empty.columns)


def test_campaign_outcomes_are_the_campaigns_own_verdicts() -> None:
    runs = [read_run(SAMPLES_DIR / f"campaign-{p}") for p in ("always", "threshold")]
    table = campaign_outcomes(runs)
    assert len(table) == 2 * CAMPAIGN["devices"]
    for run in runs:
        mine = table[table["run_id"] == run.run_id]
        counts = mine["result"].astype("string").fillna("none").value_counts().to_dict()
        assert counts == run.params["campaign"]["result_counts"]
        assert int(mine["success"].sum()) == run.params["campaign"]["success"]
        faults = mine["faults"].str.split(",").explode()
        assert faults[faults != ""].value_counts().to_dict() == run.params["fault_counts"]
    assert {"profile", "faults", "result_code", "result_inferred"} <= set(table.columns)
    shares = result_counts(table, by="policy")
    assert shares.groupby("policy")["share"].sum().round(9).eq(1).all()


def test_campaign_outcomes_refuses_a_run_that_is_no_campaign() -> None:
    with pytest.raises(RunError, match="no campaign table"):
        campaign_outcomes([SAMPLES_DIR / "push-single"])


def test_attempts_from_events_agree_with_the_campaign() -> None:
    for policy in ("always", "threshold"):
        run = read_run(SAMPLES_DIR / f"campaign-{policy}")
        att = run.attempts()
        assert len(att) == run.params["campaign"]["attempts"]
        last = att.groupby("device", observed=True).tail(1)
        counts = last["result"].astype("string").fillna("none").value_counts().to_dict()
        assert counts == run.params["campaign"]["result_counts"]


# -- making them ------------------------------------------------------------------------------


def test_the_command_line() -> None:
    args = build_parser().parse_args([])
    assert (args.out, args.seed, args.fast, args.only) == (Path("data/samples"), 7, False, None)
    args = build_parser().parse_args(["--only", "pull-single", "--seed", "3", "--no-capture"])
    assert (args.only, args.seed, args.no_capture) == (["pull-single"], 3, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--only", "nothing"])


def test_make_samples_refuses_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="unknown samples"):
        make_samples(tmp_path / "s", only=["nothing"], say=lambda _: None)


def test_make_samples_makes_the_single_runs(tmp_path: Path) -> None:
    out = tmp_path / "samples"
    (out / CAPTURE_NAME).parent.mkdir(parents=True)
    (out / CAPTURE_NAME).write_bytes(b"an old capture of another update")
    said: list[str] = []
    report = make_samples(
        out, seed=3, only=["push-single", "pull-single"], capture=False, say=said.append
    )
    assert list(report.written) == ["push-single", "pull-single"]
    assert not (out / CAPTURE_NAME).exists()  # it showed an update that is gone
    assert any("left out" in n for n in report.notes) and said
    runs = list_runs(out)
    assert sorted(runs["run_id"]) == ["pull-single", "push-single"]
    assert set(runs["seed"]) == {3} and runs["complete"].all()
    assert [p.name for p in tmp_path.iterdir()] == ["samples"]  # no staging folder left
    assert report.size_bytes() > 0 and "total" in report.summary()
    again = make_samples(out, seed=3, only=["pull-single"], capture=False, say=said.append)
    assert read_run(again.written["pull-single"]).complete  # replaced in place
