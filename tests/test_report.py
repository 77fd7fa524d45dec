"""``labkit report``: PNG plots and summary.md for a saved run."""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from labkit.events import Event
from labkit.record import Recorder, read_run
from labkit.report import (
    SUMMARY_NAME,
    add_report_parser,
    configure_parser,
    run_report,
    write_report,
)
from tests.plots.campaign import campaign_events

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PARAMS = {"seed": 1, "devices": 20, "profile": "lte-m", "policy": "threshold"}


@pytest.fixture(autouse=True)
def _close_figures() -> object:
    yield
    plt.close("all")


def record(run_dir: Path, events: list[Event], params: dict[str, object] | None = None) -> Path:
    rec = Recorder(run_dir, manifest=params if params is not None else PARAMS)
    for e in events:
        rec(e)
    rec.close()
    return run_dir


@pytest.fixture(scope="module")
def campaign_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("runs") / "campaign-1", campaign_events(20, seed=1))


def test_write_report_writes_every_picture_and_the_summary(
    campaign_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    open_before = set(plt.get_fignums())
    files = write_report(campaign_run, out)
    names = [f.name for f in files]
    assert names[-1] == SUMMARY_NAME
    assert names[:-1] == [
        "fleet_timeline.png",
        "state_timeline_sim-8.png",  # first device (natural order) with two attempts
        "state_timeline_sim-2.png",  # first device whose last attempt failed
        "link_decisions.png",
        "decision_scatter.png",
        "result_counts.png",
        "result_share_by_method.png",
        "result_share_by_wave.png",
        "download_progress.png",
        "time_to_success.png",
    ]
    for f in files:
        assert f.parent == out and f.stat().st_size > 0
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == PNG_MAGIC
    assert set(plt.get_fignums()) <= open_before  # the report closed every figure it made

    summary = (out / SUMMARY_NAME).read_text(encoding="utf-8")
    assert summary.startswith("# Run `campaign-1`")
    assert "| policy | threshold |" in summary and "| profile | lte-m |" in summary
    assert "Policy thresholds drawn in the link plots: min_rssi_dbm = -105." in summary
    assert "| 1 | SUCCESS | Firmware updated successfully | 13 | 59% |" in summary
    assert "| 4 | CONNECTION_LOST |" in summary
    assert "**22** update attempts" in summary and "**13** succeeded (59%)" in summary
    assert "| push | 15 | 10 | 67% |" in summary
    for name in names[:-1]:
        assert f"]({name})" in summary


def test_report_draws_the_policy_thresholds_from_the_manifest(
    campaign_run: Path, tmp_path: Path
) -> None:
    from labkit import report

    run = read_run(campaign_run)
    thresholds = report._thresholds(run, None)
    assert thresholds.get("min_rssi_dbm") == -105.0  # the threshold policy's default
    assert report._thresholds(run, {"min_rssi_dbm": -90}) == {"min_rssi_dbm": -90}


def test_report_of_a_run_without_updates_draws_what_it_can(tmp_path: Path) -> None:
    run_dir = record(
        tmp_path / "quiet",
        [
            Event(ts=1.0, source="server", kind="registered", device="d1"),
            Event(ts=2.0, source="server", kind="fw_state", device="d1", state=0),
            Event(ts=3.0, source="server", kind="link", device="d1", rssi_dbm=-90),
        ],
        params={},
    )
    files = write_report(run_dir, tmp_path / "out")
    assert [f.name for f in files] == ["fleet_timeline.png", SUMMARY_NAME]
    summary = files[-1].read_text(encoding="utf-8")
    assert "No update attempt was started in this run." in summary
    assert "Not drawn:" in summary and "no policy decisions were recorded" in summary
    assert "No parameters were stored" in summary


def test_report_of_an_empty_run(tmp_path: Path) -> None:
    run_dir = record(tmp_path / "empty", [], params={})
    files = write_report(read_run(run_dir), tmp_path / "out")
    assert [f.name for f in files] == [SUMMARY_NAME]
    assert "the run has no events" in files[0].read_text(encoding="utf-8")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="labkit")
    add_report_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_writes_the_report_and_exits_0(
    campaign_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(["report", str(campaign_run), "--out", str(tmp_path / "r"), "--dpi", "60"])
    assert args.func is run_report
    assert run_report(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"wrote {tmp_path / 'r' / SUMMARY_NAME}"
    assert len(printed) == 11
    assert (tmp_path / "r" / "fleet_timeline.png").stat().st_size > 0


def test_cli_finds_a_run_id_under_runs_dir(campaign_run: Path, tmp_path: Path) -> None:
    args = _parse(
        ["report", campaign_run.name, "--runs-dir", str(campaign_run.parent),
         "--out", str(tmp_path / "r"), "--dpi", "50"]
    )  # fmt: skip
    assert run_report(args) == 0
    assert (tmp_path / "r" / SUMMARY_NAME).exists()


def test_cli_unreadable_run_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert run_report(args) == 1
    assert "labkit:" in capsys.readouterr().err
    p = argparse.ArgumentParser()
    configure_parser(p)
    with pytest.raises(SystemExit):
        p.parse_args([str(tmp_path)])  # --out is required


def test_labkit_report_command(campaign_run: Path, tmp_path: Path) -> None:
    from labkit import cli

    if "report" not in cli.COMMANDS:
        pytest.skip("labkit.cli does not register `report` yet")
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "report", str(campaign_run), "--out", str(out),
         "--dpi", "50"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (out / SUMMARY_NAME).exists() and (out / "fleet_timeline.png").exists()


def test_report_of_a_live_push_update(tmp_path: Path) -> None:
    """A real server updates a simulated device over loopback; the recorded run reports."""
    client = pytest.importorskip("labkit.client")
    from labkit.server import LwM2MServer

    run_dir = tmp_path / "live"
    rec = Recorder(run_dir, manifest={"method": "push"})
    package = b"LABKIT-FW 2.0.0\n" + random.Random(3).randbytes(16 * 1024)

    async def scenario() -> None:
        server = LwM2MServer(on_event=rec)
        await server.start()
        try:
            dev = client.SimulatedDevice("sim-live", server.uri, lifetime=60, on_event=rec)
            await dev.start(timeout=10)
            try:
                reg = await server.wait_for_registration("sim-live", timeout=10)
                d = server.device("sim-live")
                await d.read("/3/0/3")
                await d.observe("/5/0/3", lambda r: None, timeout=10)
                (await d.write("/5/0/0", package, block_size=512)).raise_for_status()
                for _ in range(500):
                    if (await d.read("/5/0/3")).value == 2:
                        break
                    await asyncio.sleep(0.01)
                (await d.execute("/5/0/2")).raise_for_status()
                await server.wait_for_registration("sim-live", timeout=15, after=reg.registered_at)
                await d.read("/5/0/5")
                await d.read("/3/0/3")
                await d.read("/5/0/3")
            finally:
                await asyncio.wait_for(dev.stop(), 10)
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    rec.close()
    run = read_run(run_dir)
    from labkit.plots import plot_download_progress, plot_state_timeline

    ax = plot_state_timeline(run.events, "sim-live")
    states = sorted({round(p.get_y() + p.get_height() / 2) for p in ax.patches})
    assert states == [0, 1, 2, 3]
    assert "1.0.0 → 2.0.0" in ax.get_title()
    prog = plot_download_progress(run.events)
    assert len([ln for ln in prog.lines if str(ln.get_gid()).startswith("progress:")]) == 1
    files = write_report(run, tmp_path / "out")
    names = [f.name for f in files]
    assert "state_timeline_sim-live.png" in names and "download_progress.png" in names
    summary = files[-1].read_text(encoding="utf-8")
    assert "| 1 | SUCCESS |" in summary
