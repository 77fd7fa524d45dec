"""Plots of a lab run (matplotlib): timelines, link and decisions, results, progress.

Every plot function has the shape ``plot_x(data, *, ax=None, **kwargs) -> Axes``: it draws into
``ax`` or into a new figure sized for a projector, returns the Axes, never calls
``plt.show()`` and never changes matplotlib's global settings (``rcParams``). Empty data gives
an Axes with a centred "no data" note instead of an error. Colours, hatches and markers live in
:mod:`labkit.plots.style` (Okabe-Ito colours, plus shapes and hatches that survive grey print).
Pure helpers that compute the tables behind a plot (:func:`fleet_order`,
:func:`download_progress`, :func:`link_trace`) return DataFrames and never draw.

- :func:`plot_state_timeline` -- one device's /5 State bands, results, firmware, reboots
- :func:`plot_fleet_timeline` -- one swimlane per device, sorted by outcome or duration
- :func:`plot_link_decisions` -- RSSI and Link Quality over time with each decision marked
- :func:`plot_decision_scatter` -- every decision against the link sample it saw
- :func:`plot_result_counts` -- attempts per Update Result code, by group, count or share
- :func:`plot_download_progress` -- bytes received over time per device
- :func:`plot_time_to_success` -- share of attempts succeeded over time (Kaplan–Meier)
"""

from __future__ import annotations

from labkit.plots.link import (
    link_trace,
    plot_decision_scatter,
    plot_link_decisions,
    split_thresholds,
)
from labkit.plots.progress import download_progress, plot_download_progress, plot_time_to_success
from labkit.plots.results import plot_result_counts
from labkit.plots.timeline import fleet_order, plot_fleet_timeline, plot_state_timeline

__all__ = [
    "download_progress",
    "fleet_order",
    "link_trace",
    "plot_decision_scatter",
    "plot_download_progress",
    "plot_fleet_timeline",
    "plot_link_decisions",
    "plot_result_counts",
    "plot_state_timeline",
    "plot_time_to_success",
    "split_thresholds",
]
