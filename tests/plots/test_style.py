"""The shared look: colour-blind-safe, readable in grey, one marker per decision; and the
house rules every plot keeps (returns an Axes, never shows, never changes rcParams)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb

import labkit.plots as plots
from labkit.events import Event
from labkit.lwm2m.objects import State, UpdateResult
from labkit.plots.style import (
    DECISION_STYLES,
    OKABE_ITO,
    RESULT_MARKERS,
    STATE_STYLES,
    decision_label,
    result_label,
    state_label,
)
from labkit.record import events_to_frame


def _grey(colour: str) -> float:
    r, g, b = to_rgb(colour)
    return 0.299 * r + 0.587 * g + 0.114 * b


def test_states_get_lighter_to_darker_and_distinct_hatches() -> None:
    greys = [_grey(STATE_STYLES[s.name].color) for s in State]
    assert greys == sorted(greys, reverse=True)
    assert min(a - b for a, b in itertools.pairwise(greys)) > 0.1
    hatches = [STATE_STYLES[s.name].hatch for s in State]
    assert len(set(hatches)) == 4
    assert [STATE_STYLES[s.name].label for s in State] == [
        "0 IDLE",
        "1 DOWNLOADING",
        "2 DOWNLOADED",
        "3 UPDATING",
    ]


def test_decisions_have_their_own_shapes() -> None:
    assert {d: s.marker for d, s in DECISION_STYLES.items()} == {
        "push": "^",
        "wait": "o",
        "pull": "s",
        "give_up": "X",
    }
    assert len({s.color for s in DECISION_STYLES.values()}) == 4
    assert all(s.color in OKABE_ITO.values() for s in DECISION_STYLES.values())
    assert decision_label("give_up") == "give up"


def test_result_markers_distinct_and_never_the_give_up_cross() -> None:
    shapes = [RESULT_MARKERS[int(r)] for r in UpdateResult]
    assert len(set(shapes)) == len(shapes)
    assert DECISION_STYLES["give_up"].marker not in shapes


def test_labels_carry_code_and_name() -> None:
    assert result_label(1) == "1 SUCCESS"
    assert result_label("CONNECTION_LOST") == "4 CONNECTION_LOST"
    assert state_label(State.UPDATING) == "3 UPDATING"


def _every_plot(df: pd.DataFrame) -> list[tuple[str, Callable[..., Axes], dict[str, Any]]]:
    th = {"min_rssi_dbm": -105}
    return [
        ("state", plots.plot_state_timeline, {}),
        ("fleet", plots.plot_fleet_timeline, {}),
        ("link", plots.plot_link_decisions, {"thresholds": th}),
        ("scatter", plots.plot_decision_scatter, {"thresholds": th}),
        ("results", plots.plot_result_counts, {"by": "method", "share": True}),
        ("progress", plots.plot_download_progress, {}),
        ("tts", plots.plot_time_to_success, {"by": "method"}),
    ]


def test_every_plot_returns_axes_keeps_rcparams_and_never_shows(
    campaign_df: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_show(*args: object, **kwargs: object) -> None:
        raise AssertionError("a plot function called plt.show()")

    monkeypatch.setattr(plt, "show", no_show)
    before = dict(matplotlib.rcParams)
    for name, fn, kwargs in _every_plot(campaign_df):
        ax = fn(campaign_df, **kwargs)
        assert isinstance(ax, Axes), name
        ax.figure.canvas.draw()  # renders without warnings (warnings are errors)
        title = ax.get_title()
        assert title and len(max(title.split("\n"), key=len)) <= 70, (name, title)
        assert ax.title.get_fontsize() >= 14, name
        assert ax.figure.get_size_inches()[0] >= 10, name
        plt.close(ax.figure)
    after = dict(matplotlib.rcParams)
    assert {k for k in before if before[k] != after[k]} == set()


def test_every_plot_draws_into_a_given_axes_of_a_grid(campaign_df: pd.DataFrame) -> None:
    fig, axes = plt.subplots(2, 4, figsize=(24, 8))
    for target, (name, fn, kwargs) in zip(axes.flat, _every_plot(campaign_df), strict=False):
        out = fn(campaign_df, ax=target, **kwargs)
        assert out is target, name
        assert out.figure is fig, name
    fig.canvas.draw()


ODD_RUNS: dict[str, list[Event]] = {
    "one registration": [Event(ts=5.0, source="server", kind="registered", device="d")],
    "lab notes only": [Event(ts=5.0, source="lab", kind="note")],
    "states at one instant": [
        Event(ts=0.0, source="server", kind="fw_state", device="d", state=1),
        Event(ts=0.0, source="server", kind="fw_state", device="d", state=2),
    ],
    "blocks without sizes": [Event(ts=0.0, source="server", kind="block", device="d", block=0)],
    "unfinished attempt": [
        Event(ts=0.0, source="policy", kind="decision", device="d", decision="push"),
        Event(ts=1.0, source="server", kind="fw_state", device="d", state=1),
        Event(ts=2.0, source="server", kind="block", device="d", block=0, bytes=512),
    ],
    "unknown decision": [
        Event(ts=0.0, source="policy", kind="decision", device="d", decision="maybe", rssi_dbm=-9)
    ],
}


@pytest.mark.parametrize("name", list(ODD_RUNS))
def test_odd_runs_draw_without_errors_or_warnings(name: str) -> None:
    ev = events_to_frame(ODD_RUNS[name], "odd")
    for _, fn, _kwargs in _every_plot(ev):
        ax = fn(ev)
        assert isinstance(ax, Axes)
        ax.figure.canvas.draw()
        plt.close(ax.figure)
    for fn in (plots.plot_state_timeline, plots.plot_link_decisions):
        ax = fn(ev, "nobody")
        assert any(t.get_gid() == "no-data" for t in ax.texts)
