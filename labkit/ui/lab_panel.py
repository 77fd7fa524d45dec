"""One control room for a class: the dashboard, the update and fault panels and live plots.

:func:`control_room` puts the panels of :mod:`labkit.ui` into tabs, wired together: the
dashboard follows the campaigns the update panel starts (its ``campaign`` column and the
download progress use them). Every part is also usable alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.ui.dashboard import FleetDashboard
from labkit.ui.fault_panel import FaultPanel
from labkit.ui.live_plot import LivePlot
from labkit.ui.update_panel import UpdatePanel

if TYPE_CHECKING:
    from labkit.runtime import Lab

__all__ = ["ControlRoom", "control_room"]


@dataclass
class ControlRoom:
    """The panels of :func:`control_room`; displays as its tabs."""

    dashboard: FleetDashboard
    update: UpdatePanel
    faults: FaultPanel
    plots: dict[str, LivePlot] = field(default_factory=dict)
    widget: Any = None

    def close(self) -> None:
        """Stop every panel and close the widgets."""
        for plot in self.plots.values():
            plot.close()
        self.faults.close()
        self.update.close()
        self.dashboard.close()
        if self.widget is not None:
            self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _thresholds(update: UpdatePanel) -> dict[str, float]:
    try:
        return dict(update.policy.thresholds)
    except (TypeError, ValueError):  # the sliders describe no valid policy right now
        return {}


def control_room(
    lab: Lab, *, plots: bool = True, plot_interval: float = 1.0, **campaign_options: Any
) -> ControlRoom:
    """Tabs "Fleet", "Update", "Faults" and (with ``plots``) "Timeline", "Link", "Progress",
    "Results": the whole lab on one projector screen.

    ``campaign_options`` go to every campaign the update panel starts. Live plots redraw at
    most every ``plot_interval`` seconds.
    """
    import ipywidgets as w

    from labkit.plots import (
        plot_download_progress,
        plot_fleet_timeline,
        plot_link_decisions,
        plot_result_counts,
    )

    dashboard = FleetDashboard(lab)
    update = UpdatePanel(lab, dashboard=dashboard, **campaign_options)
    faults = FaultPanel(lab)
    live: dict[str, LivePlot] = {}
    if plots:
        state_kinds = ("fw_state", "fw_result", "fw_version", "registered", "reboot")
        live = {
            "Timeline": LivePlot(
                lab, plot_fleet_timeline, interval=plot_interval, kinds=state_kinds
            ),
            "Link": LivePlot(
                lab,
                plot_link_decisions,
                interval=plot_interval,
                kinds=("link", "decision"),
                options=lambda: {"thresholds": _thresholds(update)},
            ),
            "Progress": LivePlot(
                lab, plot_download_progress, interval=plot_interval, kinds=("block",)
            ),
            "Results": LivePlot(
                lab, plot_result_counts, interval=plot_interval, kinds=("fw_result",)
            ),
        }
        # moving a threshold slider moves its line on the link plot
        update.policy_info.observe(lambda _change: live["Link"].poke(), names="value")
    tabs = {"Fleet": dashboard.widget, "Update": update.widget, "Faults": faults.widget}
    tabs.update({name: plot.widget for name, plot in live.items()})
    widget = w.Tab(children=list(tabs.values()), titles=tuple(tabs))
    return ControlRoom(dashboard, update, faults, live, widget)
