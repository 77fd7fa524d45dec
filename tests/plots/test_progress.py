"""Download progress and time to success."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

from labkit.events import Event
from labkit.plots import download_progress, plot_download_progress, plot_time_to_success
from labkit.record import attempts, empty_frame, events_to_frame
from tests.plots.campaign import IMAGE_BYTES
from tests.plots.helpers import devices, final_results, no_data_text


def _progress_lines(ax: Axes) -> list[object]:
    return [ln for ln in ax.lines if str(ln.get_gid()).startswith("progress:")]


def test_download_progress_table_counts_each_block_once() -> None:
    ev = events_to_frame(
        [
            Event(ts=0, source="server", kind="block", device="d", block=0, bytes=512),
            Event(ts=1, source="server", kind="block", device="d", block=1, bytes=512),
            Event(
                ts=2,
                source="server",
                kind="block",
                device="d",
                block=1,
                bytes=512,
                detail="retransmission",
            ),
            Event(ts=2.5, source="device", kind="block", device="d", block=1, bytes=512),
            Event(ts=3, source="server", kind="block", device="d", block=1, bytes=512),
            Event(ts=4, source="server", kind="block", device="d", block=2, bytes=100),
            Event(ts=9, source="server", kind="block", device="d", block=0, bytes=512),  # retry
            Event(ts=10, source="server", kind="block", device="d", block=1, bytes=512),
        ],
        "r",
    )
    table = download_progress(ev)
    assert list(table.columns) == [
        "device",
        "transfer",
        "protocol",
        "ts",
        "transfer_start",
        "block",
        "bytes",
        "cumulative_bytes",
    ]
    assert table["transfer"].tolist() == [1, 1, 1, 2, 2]
    assert table["cumulative_bytes"].tolist() == [512, 1024, 1124, 512, 1024]
    assert download_progress(empty_frame()).empty


def test_one_line_per_device_reaching_the_image_size(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    downloading = sorted({e.device for e in campaign if e.kind == "block" and e.device})
    ax = plot_download_progress(campaign_df)
    assert isinstance(ax, Axes)
    lines = _progress_lines(ax)
    assert len(lines) == len(downloading)
    top = max(np.nanmax(np.asarray(ln.get_ydata(), dtype=float)) for ln in lines)
    assert top == pytest.approx(IMAGE_BYTES / 1024)  # KiB
    assert "KiB" in ax.get_ylabel()
    transfers = sum(1 for e in campaign if e.kind == "request" and e.path in ("/5/0/0", "/5/0/1"))
    (ends,) = [c for c in ax.collections if c.get_gid() == "transfer-end"]
    assert len(ends.get_offsets()) == transfers


def test_selected_devices_get_their_own_style_and_legend(campaign_df: pd.DataFrame) -> None:
    _fig, ax = plt.subplots()
    out = plot_download_progress(campaign_df, devices=["sim-3", "sim-15"], align="run", ax=ax)
    assert out is ax
    lines = _progress_lines(ax)
    assert [ln.get_gid() for ln in lines] == ["progress:sim-3", "progress:sim-15"]
    assert lines[0].get_linestyle() != lines[1].get_linestyle()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["sim-3", "sim-15"]
    assert "run start" in ax.get_xlabel()


def test_lines_coloured_by_protocol(campaign: list[Event], campaign_df: pd.DataFrame) -> None:
    ax = plot_download_progress(campaign_df, by="protocol")
    lines = _progress_lines(ax)
    assert len(lines) == len({e.device for e in campaign if e.kind == "block"})
    assert len({ln.get_color() for ln in lines}) == 2  # coap, http
    assert len({str(ln.get_linestyle()) for ln in lines}) == 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["coap (one line per device)", "http (one line per device)"]
    with pytest.raises(ValueError, match="by"):
        plot_download_progress(campaign_df, by="colour")  # type: ignore[arg-type]


def test_download_progress_empty_data() -> None:
    assert no_data_text(plot_download_progress(empty_frame()))
    ev = events_to_frame([Event(ts=0, source="server", kind="registered", device="d")], "r")
    assert no_data_text(plot_download_progress(ev))


def test_time_to_success_one_line_per_group_ending_at_the_success_rate(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    ax = plot_time_to_success(campaign_df)
    lines = [ln for ln in ax.lines if str(ln.get_gid()).startswith("tts:")]
    assert len(lines) == 1
    results = final_results(campaign)
    rate = results[1] / sum(results.values())
    y = np.asarray(lines[0].get_ydata(), dtype=float)
    assert y[0] == 0 and y[-1] == pytest.approx(100 * rate)
    assert np.all(np.diff(y) >= 0)

    att = attempts(campaign_df)
    ax2 = plot_time_to_success(att, by="method")
    lines2 = [ln for ln in ax2.lines if str(ln.get_gid()).startswith("tts:")]
    assert len(lines2) == att["method"].nunique() == 2
    assert lines2[0].get_linestyle() != lines2[1].get_linestyle()
    legend = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert legend[0].startswith("pull:") and "attempts succeeded" in legend[0]


def test_time_to_success_kaplan_meier_marks_censored_attempts(campaign_df: pd.DataFrame) -> None:
    _fig, ax = plt.subplots()
    out = plot_time_to_success(campaign_df, kind="km", ax=ax)
    assert out is ax
    att = attempts(campaign_df)
    censored = [c for c in ax.collections if str(c.get_gid()).startswith("censored:")]
    n_censored_times = att.loc[~att["success"], "duration_s"].nunique()
    assert sum(len(c.get_offsets()) for c in censored) == n_censored_times
    with pytest.raises(ValueError, match="kind"):
        plot_time_to_success(campaign_df, kind="pdf")  # type: ignore[arg-type]


def test_time_to_success_empty_data(campaign: list[Event]) -> None:
    assert no_data_text(plot_time_to_success(empty_frame()))
    assert no_data_text(plot_time_to_success(attempts(empty_frame())))
    assert len(devices(campaign)) == 20
