"""The fleet dashboard follows the lab's events, at most four renders a second."""

from __future__ import annotations

import threading
import time
from typing import Any

from labkit.course import package
from labkit.events import Event
from labkit.fota import update
from labkit.runtime import Lab
from labkit.ui import FleetDashboard
from labkit.ui.dashboard import COLUMNS
from tests.ui.conftest import SLOW_BLOCK, SLOW_SIZE, wait_until


def test_the_frame_shows_every_device(lab: Lab, closing: Any) -> None:
    dash = closing(FleetDashboard(lab))
    frame = dash.frame()
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["endpoint"]) == ["sim-0001", "sim-0002", "sim-0003"]
    assert frame["registered"].all()
    assert set(frame["state"]) == {"IDLE"}
    assert set(frame["result"]) == {"0 INITIAL"}
    assert set(frame["firmware"]) == {"1.0.0"}
    assert frame["rssi_dbm"].notna().all()
    assert frame["progress_pct"].isna().all()
    assert frame["campaign"].isna().all()
    assert str(frame["state"].dtype) == "category" and frame["state"].cat.ordered
    html = dash.table.value
    assert "sim-0002" in html and "0 IDLE" in html and "0 INITIAL" in html
    assert "3 devices, 3 registered" in dash.title.value
    bundle = dash._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_a_state_change_shows_within_a_second(lab: Lab, closing: Any) -> None:
    dash = closing(FleetDashboard(lab))
    seen: dict[int, float] = {}

    def listener(event: Event) -> None:
        if event.kind == "fw_state" and event.device == "sim-0001" and event.state is not None:
            seen.setdefault(event.state, time.monotonic())

    unsubscribe = lab.subscribe(listener)
    try:
        pkg = package("2.0.0", SLOW_SIZE)
        future = lab.submit(update(lab.server, "sim-0001", pkg, block_size=SLOW_BLOCK))
        wait_until(lambda: 1 in seen, timeout=10)

        def shown() -> bool:
            row = dash.frame().set_index("endpoint").loc["sim-0001"]
            return row["state"] in ("DOWNLOADING", "DOWNLOADED", "UPDATING")

        wait_until(shown, timeout=2)
        assert time.monotonic() - seen[1] < 1.0
        # Progress grows during the transfer (from the block rows) ...
        wait_until(lambda: (dash.frame()["progress_pct"].fillna(0) > 10).any(), timeout=10)
        outcome = future.result(timeout=60)
        assert outcome.success
        # ... and the end of the update shows too: result, new firmware, 100 %.

        def finished() -> bool:
            row = dash.frame().set_index("endpoint").loc["sim-0001"]
            return bool(
                row["result"] == "1 SUCCESS"
                and row["firmware"] == "2.0.0"
                and row["state"] == "IDLE"
                and row["registered"]
            )

        wait_until(finished, timeout=2)
        row = dash.frame().set_index("endpoint").loc["sim-0001"]
        assert row["progress_pct"] == 100.0
        others = dash.frame().set_index("endpoint").loc[["sim-0002", "sim-0003"]]
        assert set(others["state"]) == {"IDLE"}
    finally:
        unsubscribe()


def test_renders_are_throttled(lab: Lab, closing: Any) -> None:
    dash = closing(FleetDashboard(lab, interval=0.25))
    before = dash.renders
    started = time.monotonic()
    pkg = package("2.0.0", SLOW_SIZE)
    outcome = lab.call(update(lab.server, "sim-0002", pkg, block_size=SLOW_BLOCK), timeout=60)
    assert outcome.success
    wait_until(lambda: dash.frame().set_index("endpoint").loc["sim-0002", "firmware"] == "2.0.0")
    elapsed = time.monotonic() - started
    renders = dash.renders - before
    events = len(lab.events())
    assert events > 500  # a burst of block, notify and request rows
    assert 2 <= renders <= elapsed / 0.25 + 2, (renders, elapsed)


def test_new_devices_and_link_changes_appear(lab: Lab, closing: Any) -> None:
    dash = closing(FleetDashboard(lab))
    handle = lab.add_device("extra-7", firmware_version="0.9")
    wait_until(lambda: "extra-7" in set(dash.frame()["endpoint"]), timeout=2)
    handle.set_value("/4/0/2", -117)
    handle.set_value("/4/0/3", -15)

    def link() -> bool:
        row = dash.frame().set_index("endpoint").loc["extra-7"]
        return bool(row["rssi_dbm"] == -117 and row["link_quality"] == -15)

    wait_until(link, timeout=2)
    row = dash.frame().set_index("endpoint").loc["extra-7"]
    assert row["firmware"] == "0.9" and row["state"] == "IDLE"
    handle.stop()
    wait_until(lambda: not dash.frame().set_index("endpoint").loc["extra-7", "registered"])


def test_the_listener_is_quick_and_runs_no_widget_code(lab: Lab, closing: Any) -> None:
    dash = closing(FleetDashboard(lab, interval=10.0))
    dash.refresh()
    renders = dash.renders
    threads: set[str] = set()
    original = dash._render

    def spy() -> None:
        threads.add(threading.current_thread().name)
        original()

    dash._throttle._fn = spy
    lab.device("sim-0003").set_value("/4/0/2", -99)
    # With a 10 s interval right after a render, nothing is drawn on the loop thread.
    assert dash.renders == renders
    dash.refresh()
    assert threads == {threading.current_thread().name}
    assert dash.frame().set_index("endpoint").loc["sim-0003", "rssi_dbm"] == -99


def test_close_unsubscribes(lab: Lab) -> None:
    dash = FleetDashboard(lab)
    dash.close()
    renders = dash.renders
    lab.device("sim-0001").set_value("/4/0/2", -70)
    dash.refresh()  # a manual refresh still works on the last state ...
    assert dash.renders == renders + 1
    assert dash.frame().set_index("endpoint").loc["sim-0001", "rssi_dbm"] != -70  # ... not fed
