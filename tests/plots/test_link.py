"""Link quality versus PUSH decisions: the per-device trace and the campaign strip plot."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from labkit.events import Event
from labkit.plots import link_trace, plot_decision_scatter, plot_link_decisions, split_thresholds
from labkit.record import decisions, empty_frame, events_to_frame
from tests.plots.helpers import n_points, no_data_text

THRESHOLDS = {"min_rssi_dbm": -105.0, "min_link_quality": 30.0, "max_wait_s": 600.0}


def _decisions_of(events: list[Event], device: str | None = None) -> list[Event]:
    return [e for e in events if e.kind == "decision" and (device is None or e.device == device)]


def test_split_thresholds_by_unit() -> None:
    rssi, lq = split_thresholds(THRESHOLDS)
    assert rssi == {"min_rssi_dbm": -105.0}
    assert lq == {"min_link_quality": 30.0}
    assert split_thresholds({"rssi_dbm": -100, "link_quality": -12}) == (
        {"rssi_dbm": -100.0},
        {"link_quality": -12.0},
    )

    class FakePolicy:
        thresholds = {"push_above_dbm": -90.0, "stop_below_dbm": -105.0}  # noqa: RUF012

    assert split_thresholds(FakePolicy())[0] == FakePolicy.thresholds
    assert split_thresholds(None) == ({}, {})


def test_link_trace_lists_every_sample_of_the_device(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    trace = link_trace(campaign_df, "sim-2")
    expected = [e for e in campaign if e.device == "sim-2" and e.rssi_dbm is not None]
    assert list(trace.columns) == ["ts", "rssi_dbm", "link_quality"]
    assert trace["rssi_dbm"].tolist() == [e.rssi_dbm for e in expected]


def test_link_decisions_one_marker_per_decision(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    ax = plot_link_decisions(campaign_df, "sim-2", thresholds=THRESHOLDS)
    assert isinstance(ax, Axes)
    expected = _decisions_of(campaign, "sim-2")
    assert {e.decision for e in expected} == {"push", "wait", "give_up"}
    assert n_points(ax, "decision:") == len(expected)
    for kind in ("push", "wait", "give_up"):
        assert n_points(ax, f"decision:{kind}") == sum(e.decision == kind for e in expected)
    # markers sit at the RSSI the decision saw
    table = decisions(campaign_df)
    table = table.loc[(table["device"] == "sim-2").to_numpy()]
    drawn = np.sort(
        np.concatenate(
            [
                c.get_offsets()[:, 1]
                for c in ax.collections
                if str(c.get_gid()).startswith("decision:")
            ]
        )
    )
    assert np.allclose(drawn, np.sort(table["rssi_dbm"].to_numpy(dtype=float)))
    rssi_lines = [ln for ln in ax.lines if ln.get_gid() == "rssi"]
    assert len(rssi_lines) == 1
    n_samples = sum(1 for e in campaign if e.device == "sim-2" and e.rssi_dbm is not None)
    assert len(rssi_lines[0].get_xdata()) == n_samples
    thresholds = [ln for ln in ax.lines if ln.get_gid() == "threshold:min_rssi_dbm"]
    assert len(thresholds) == 1 and thresholds[0].get_ydata()[0] == -105.0
    twins = [a for a in ax.figure.axes if a is not ax]
    assert len(twins) == 1
    assert [ln.get_gid() for ln in twins[0].lines] == ["link_quality", "threshold:min_link_quality"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"push", "wait", "give up"} <= set(legend)


def test_link_decisions_default_device_and_existing_axes(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    _fig, ax = plt.subplots()
    out = plot_link_decisions(campaign_df, ax=ax)
    assert out is ax
    counts: dict[str, int] = {}
    for e in _decisions_of(campaign):
        counts[e.device or ""] = counts.get(e.device or "", 0) + 1
    busiest = max(counts.values())
    assert n_points(ax, "decision:") == busiest
    assert ax.get_title().split(":")[0] in {d for d, n in counts.items() if n == busiest}


def test_link_decisions_without_rssi_puts_markers_at_the_bottom() -> None:
    ev = events_to_frame(
        [
            Event(ts=0.0, source="policy", kind="decision", device="d", decision="wait"),
            Event(ts=1.0, source="server", kind="link", device="d", rssi_dbm=-100),
            Event(ts=2.0, source="policy", kind="decision", device="d", decision="push"),
        ],
        "r",
    )
    ax = plot_link_decisions(ev, "d")
    assert n_points(ax, "decision:") == 2
    assert n_points(ax, "decision:wait") == 1


def test_link_decisions_empty_data_draws_no_data() -> None:
    assert no_data_text(plot_link_decisions(empty_frame()))
    ev = events_to_frame([Event(ts=0.0, source="server", kind="registered", device="d")], "r")
    assert no_data_text(plot_link_decisions(ev, "d"))


def test_decision_scatter_one_marker_per_decision_from_events_or_table(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    expected = _decisions_of(campaign)
    for data in (campaign_df, decisions(campaign_df)):
        ax = plot_decision_scatter(data, thresholds=THRESHOLDS)
        assert isinstance(ax, Axes)
        assert n_points(ax, "decision:") == len(expected)
        for kind in ("push", "wait", "pull", "give_up"):
            assert n_points(ax, f"decision:{kind}") == sum(e.decision == kind for e in expected)
        labels = [t.get_text().split("\n")[0] for t in ax.get_yticklabels()]
        assert labels == ["push", "wait", "pull", "give up"]
        assert [ln.get_gid() for ln in ax.lines] == ["threshold:min_rssi_dbm"]
        plt.close(ax.figure)


def test_decision_scatter_wait_is_below_and_push_above_the_threshold(
    campaign_df: pd.DataFrame,
) -> None:
    ax = plot_decision_scatter(campaign_df, thresholds=THRESHOLDS)
    (push,) = [c for c in ax.collections if c.get_gid() == "decision:push"]
    (wait,) = [c for c in ax.collections if c.get_gid() == "decision:wait"]
    assert push.get_offsets()[:, 0].min() >= -105
    assert wait.get_offsets()[:, 0].max() < -105


def test_decision_scatter_link_quality_and_existing_axes(campaign_df: pd.DataFrame) -> None:
    _fig, ax = plt.subplots()
    out = plot_decision_scatter(campaign_df, x="link_quality", thresholds=THRESHOLDS, ax=ax)
    assert out is ax
    assert [ln.get_gid() for ln in ax.lines] == ["threshold:min_link_quality"]
    assert "Link Quality" in ax.get_xlabel()


def test_decision_scatter_empty_data_draws_no_data() -> None:
    assert no_data_text(plot_decision_scatter(empty_frame()))
    assert no_data_text(plot_decision_scatter(decisions(empty_frame())))
