"""Live plots redraw in place, at most once per interval, and only when events arrived."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pandas as pd

from labkit.plots import plot_fleet_timeline, plot_link_decisions
from labkit.runtime import Lab
from labkit.ui import LivePlot, control_room
from tests.ui.conftest import wait_until

PNG = b"\x89PNG\r\n\x1a\n"


async def link_burst(lab: Lab, count: int, every: float = 0.005) -> int:
    """Change sim-0001's RSSI ``count`` times, every few milliseconds (on the lab loop).

    A fixed number of changes, not a fixed duration: a loaded machine makes the burst last
    longer, never smaller (the assertions below use the burst's measured duration)."""
    device = lab.devices[0].simulated
    for i in range(count):
        device.set_value("/4/0/2", -80 - i % 30)
        await asyncio.sleep(every)
    return count


def test_redraws_at_most_once_per_interval(lab: Lab, closing: Any) -> None:
    calls: list[int] = []

    def plot(data: pd.DataFrame, *, ax: Any) -> Any:
        calls.append(len(data))
        return plot_link_decisions(data, ax=ax, device="sim-0001")

    live = closing(LivePlot(lab, plot, interval=0.3))
    wait_until(lambda: live.draws >= 1, timeout=10)  # the first picture
    assert live.png.startswith(PNG)
    before = live.draws
    t0 = time.monotonic()
    events = lab.call(link_burst(lab, 300), timeout=60)
    elapsed = time.monotonic() - t0
    wait_until(lambda: calls[-1] >= events, timeout=5)  # the last state gets drawn
    draws = live.draws - before
    assert events > 100
    assert 2 <= draws <= elapsed / 0.3 + 2, (draws, elapsed)
    assert live.error is None and live.interval == 0.3


def test_quiet_lab_no_redraw_and_stop(lab: Lab, closing: Any) -> None:
    live = closing(LivePlot(lab, plot_fleet_timeline, interval=0.05, kinds=("link",)))
    wait_until(lambda: live.draws >= 1, timeout=10)
    draws = live.draws
    lab.emit("note", detail="not a link event")
    time.sleep(0.3)  # a window in which nothing may be drawn
    assert live.draws == draws
    lab.device("sim-0002").set_value("/4/0/2", -90)
    wait_until(lambda: live.draws == draws + 1, timeout=5)
    live.stop()
    lab.device("sim-0002").set_value("/4/0/2", -91)
    time.sleep(0.2)
    assert live.draws == draws + 1
    live.refresh()
    assert live.draws == draws + 2


def test_a_failing_plot_shows_its_error(lab: Lab, closing: Any) -> None:
    def broken(data: pd.DataFrame, *, ax: Any) -> Any:
        raise KeyError("no such column")

    live = closing(LivePlot(lab, broken, data=lambda lab: lab.registrations()))
    wait_until(lambda: live.draws >= 1, timeout=10)
    assert live.error == "KeyError: 'no such column'"
    assert live.png.startswith(PNG)


def test_control_room_tabs(lab: Lab) -> None:
    room = control_room(lab, plot_interval=0.2, timeout_s=30)
    try:
        assert room.widget.titles == (
            "Fleet",
            "Update",
            "Faults",
            "Timeline",
            "Link",
            "Progress",
            "Results",
        )
        assert room.update.dashboard is room.dashboard
        assert room.update.campaign_options == {"timeout_s": 30}
        wait_until(lambda: all(p.draws >= 1 for p in room.plots.values()), timeout=20)
        link = room.plots["Link"]
        draws = link.draws
        room.update.policy_name.value = "threshold"  # the threshold line is drawn
        wait_until(lambda: link.draws > draws, timeout=5)
        assert link._options is not None
        assert link._options() == {"thresholds": {"min_rssi_dbm": -105.0}}
        room.update.size.value = 2048
        room.update.start_button.click()
        room.update.future.result(timeout=60)
        wait_until(lambda: set(room.dashboard.frame()["campaign"]) == {"success"}, timeout=2)
        assert "application/vnd.jupyter.widget-view+json" in room._repr_mimebundle_()
    finally:
        room.close()
    bare = control_room(lab, plots=False)
    assert bare.plots == {} and bare.widget.titles == ("Fleet", "Update", "Faults")
    bare.close()


def test_options_are_asked_at_every_draw(lab: Lab, closing: Any) -> None:
    seen: list[dict[str, Any]] = []
    level = [-100]

    def plot(data: pd.DataFrame, *, ax: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return ax

    live = closing(
        LivePlot(
            lab,
            plot,
            interval=0.05,
            device="sim-0001",
            options=lambda: {"thresholds": {"min_rssi_dbm": level[0]}},
        )
    )
    wait_until(lambda: seen, timeout=10)
    assert seen[-1] == {"device": "sim-0001", "thresholds": {"min_rssi_dbm": -100}}
    level[0] = -90
    live.poke()
    wait_until(lambda: seen[-1]["thresholds"] == {"min_rssi_dbm": -90}, timeout=5)
