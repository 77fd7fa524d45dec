"""Result-code statistics: counts and shares per Update Result code, per group."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.axes import Axes

from labkit.events import Event
from labkit.lwm2m.objects import UpdateResult
from labkit.plots import plot_result_counts
from labkit.record import attempts, empty_frame
from tests.plots.campaign import campaign_frame
from tests.plots.helpers import final_results, no_data_text


def _bar_widths(ax: Axes) -> list[float]:
    return [p.get_width() for p in ax.patches]


def test_one_bar_per_code_present_with_names(
    campaign: list[Event], campaign_df: pd.DataFrame
) -> None:
    expected = final_results(campaign)
    ax = plot_result_counts(campaign_df)
    assert isinstance(ax, Axes)
    assert len(ax.patches) == len(expected)
    assert sorted(_bar_widths(ax)) == sorted(expected.values())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{c} {UpdateResult(c).name}" for c in sorted(expected)]
    assert labels[0] == "1 SUCCESS"
    # the count is written on each bar
    written = sorted(int(t.get_text()) for t in ax.texts)
    assert written == sorted(expected.values())
    assert (
        ax.get_title()
        == f"How {sum(expected.values())} update attempts ended (Update Result /5/0/5)"
    )


def test_attempts_table_gives_the_same_bars(campaign_df: pd.DataFrame) -> None:
    a = plot_result_counts(campaign_df)
    b = plot_result_counts(attempts(campaign_df))
    assert _bar_widths(a) == _bar_widths(b)


def test_split_by_group_one_bar_per_code_per_group(campaign_df: pd.DataFrame) -> None:
    att = attempts(campaign_df)
    pairs = att.dropna(subset=["result"]).groupby(["method", "result"], observed=True).size()
    ax = plot_result_counts(att, by="method")
    assert len(ax.patches) == len(pairs)
    assert sorted(_bar_widths(ax)) == sorted(pairs.tolist())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        f"{m} ({(att['method'] == m).sum()} attempts)" for m in sorted(att["method"].unique())
    ]
    # groups differ in hatch as well as colour (readable in grey)
    hatches = {p.get_hatch() for p in ax.patches}
    assert len(hatches) == 2


def test_share_sums_to_100_percent_per_group() -> None:
    att = attempts(campaign_frame(60, seed=3)).assign(
        policy=lambda d: d["wave"].map({0: "always", 1: "threshold", 2: "threshold"})
    )
    ax = plot_result_counts(att, by="policy", share=True)
    assert "share" in ax.get_xlabel()
    by_colour: dict[tuple[float, ...], float] = {}
    for p in ax.patches:
        key = tuple(round(c, 3) for c in p.get_facecolor())
        by_colour[key] = by_colour.get(key, 0.0) + p.get_width()
    assert len(by_colour) == 2
    assert all(total == pytest.approx(100.0) for total in by_colour.values())
    assert all(re.fullmatch(r"\d+ % \(\d+\)", t.get_text()) for t in ax.texts)


def test_existing_axes_and_empty_data() -> None:
    _fig, ax = plt.subplots()
    assert plot_result_counts(empty_frame(), ax=ax) is ax
    assert no_data_text(ax)
    assert no_data_text(plot_result_counts(attempts(empty_frame())))


def test_draws_into_an_existing_axes(campaign_df: pd.DataFrame) -> None:
    _fig, (left, right) = plt.subplots(1, 2)
    out = plot_result_counts(campaign_df, ax=right)
    assert out is right and len(right.patches) > 0 and len(left.patches) == 0
