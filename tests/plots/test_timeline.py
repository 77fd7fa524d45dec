"""State timeline of one device and the fleet timeline."""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.axes import Axes

from labkit.events import Event
from labkit.plots import fleet_order, plot_fleet_timeline, plot_state_timeline
from labkit.record import attempts, empty_frame, events_to_frame
from tests.plots.campaign import campaign_frame
from tests.plots.helpers import (
    devices,
    n_paths,
    n_points,
    no_data_text,
    result_changes,
    state_changes,
)

# sim-15 loses the connection (4), retries and succeeds (1): 1.0.0 -> 2.0.0
DEVICE = "sim-15"


def _bars(ax: Axes) -> list[object]:
    return [p for c in ax.containers for p in c]


def test_state_timeline_draws_one_band_per_state_interval(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    ax = plot_state_timeline(campaign_df, DEVICE)
    assert isinstance(ax, Axes)
    expected = state_changes(campaign, DEVICE)
    assert expected == [0, 1, 0, 1, 2, 3, 0]
    assert len(_bars(ax)) == len(expected) == len(ax.patches)
    # each band sits in its State's lane
    lanes = sorted(round(p.get_y() + p.get_height() / 2) for p in ax.patches)
    assert lanes == sorted(expected)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:4] == ["0 IDLE", "1 DOWNLOADING", "2 DOWNLOADED", "3 UPDATING"]


def test_state_timeline_marks_results_firmware_registrations_and_reboots(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    ax = plot_state_timeline(campaign_df, DEVICE)
    results = result_changes(campaign, DEVICE)
    assert results == [4, 1]
    assert n_points(ax, "result:") == len(results)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "1 SUCCESS" in legend and "4 CONNECTION_LOST" in legend
    texts = [t.get_text() for t in ax.texts]
    assert "1.0.0" in texts and "→ 2.0.0" in texts
    assert "1.0.0 → 2.0.0" in ax.get_title()
    regs = [e for e in campaign if e.device == DEVICE and e.kind == "registered"]
    reboots = [e for e in campaign if e.device == DEVICE and e.kind == "reboot"]
    assert len([ln for ln in ax.lines if ln.get_gid() == "registered"]) == len(regs) == 2
    assert len([ln for ln in ax.lines if ln.get_gid() == "reboot"]) == len(reboots) == 1


def test_state_timeline_default_device_and_existing_axes(campaign_df: pd.DataFrame) -> None:
    fig, ax = plt.subplots()
    out = plot_state_timeline(campaign_df, ax=ax)
    assert out is ax and out.figure is fig
    first_started = sorted(attempts(campaign_df)["device"].astype(str), key=lambda d: int(d[4:]))[0]
    assert out.get_title().startswith(f"{first_started}:")
    assert len(ax.patches) > 0


def test_state_timeline_of_a_device_without_states_is_a_note() -> None:
    ev = events_to_frame([Event(ts=1.0, source="server", kind="registered", device="quiet")], "r")
    ax = plot_state_timeline(ev, "quiet")
    assert no_data_text(ax)


def test_state_timeline_empty_data_draws_no_data() -> None:
    ax = plot_state_timeline(empty_frame())
    assert isinstance(ax, Axes) and no_data_text(ax)


def test_fleet_timeline_one_band_per_interval_and_marker_per_finished_attempt(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    ax = plot_fleet_timeline(campaign_df)
    assert isinstance(ax, Axes)
    n_intervals = sum(len(state_changes(campaign, d)) for d in devices(campaign))
    assert n_paths(ax, "state:") == n_intervals
    n_results = sum(len(result_changes(campaign, d)) for d in devices(campaign))
    assert n_points(ax, "result:") == n_results
    gave_up = [e for e in campaign if e.kind == "decision" and e.decision == "give_up"]
    assert n_points(ax, "decision:give_up") == len(gave_up) > 0
    assert len(ax.get_yticklabels()) == len(devices(campaign)) == 20
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"0 IDLE", "1 DOWNLOADING", "2 DOWNLOADED", "3 UPDATING", "1 SUCCESS"} <= set(legend)


def test_fleet_order_sorts_by_outcome_duration_and_name(campaign_df: pd.DataFrame) -> None:
    by_outcome = fleet_order(campaign_df, "outcome")
    assert list(by_outcome.columns) == ["device", "outcome", "outcome_rank", "attempts", "update_s"]
    ranks = by_outcome["outcome_rank"].tolist()
    assert ranks == sorted(ranks)
    assert by_outcome["outcome"].iloc[0] == "1 SUCCESS"
    assert "gave up" in set(by_outcome["outcome"])
    by_duration = fleet_order(campaign_df, "duration")
    spans = by_duration["update_s"].dropna().tolist()
    assert spans == sorted(spans, reverse=True)
    by_name = fleet_order(campaign_df, "device")["device"].tolist()
    assert by_name[:3] == ["sim-1", "sim-2", "sim-3"] and by_name[-1] == "sim-20"
    with pytest.raises(ValueError, match="sort_by"):
        fleet_order(campaign_df, "colour")  # type: ignore[arg-type]


def test_fleet_timeline_lane_order_follows_sort_by(campaign_df: pd.DataFrame) -> None:
    for sort_by in ("outcome", "duration", "device"):
        ax = plot_fleet_timeline(campaign_df, sort_by=sort_by)  # type: ignore[arg-type]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == fleet_order(campaign_df, sort_by)["device"].tolist()  # type: ignore[arg-type]
        assert (
            sort_by in ax.get_title() or "update time" in ax.get_title() or "name" in ax.get_title()
        )


def test_fleet_timeline_max_devices_and_existing_axes(campaign_df: pd.DataFrame) -> None:
    _fig, ax = plt.subplots()
    out = plot_fleet_timeline(campaign_df, max_devices=5, ax=ax)
    assert out is ax
    assert len(ax.get_yticklabels()) == 5
    assert "first 5 of 20" in ax.get_title()


def test_fleet_timeline_empty_data_draws_no_data() -> None:
    ax = plot_fleet_timeline(empty_frame())
    assert no_data_text(ax)


def test_fleet_timeline_of_200_devices_is_fast_and_readable() -> None:
    ev = campaign_frame(200, seed=2)
    start = time.perf_counter()
    ax = plot_fleet_timeline(ev, sort_by="duration")
    ax.figure.canvas.draw()
    elapsed = time.perf_counter() - start
    assert elapsed < 15, f"fleet timeline of 200 devices took {elapsed:.1f} s"
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    assert 0 < len(labels) <= 40  # thinned
    assert all(t.get_fontsize() >= 6 for t in labels)
    assert n_paths(ax, "state:") > 200
    assert "200 devices" in ax.get_title()


def test_fleet_timeline_names_every_nth_device_in_english() -> None:
    from labkit.plots.timeline import _ordinal

    assert [_ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 102)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "102nd",
    ]  # fmt: skip
    label = plot_fleet_timeline(campaign_frame(200, seed=2)).get_ylabel()
    step = int("".join(c for c in label if c.isdigit()))
    assert label == f"device (every {_ordinal(step)} named)"
