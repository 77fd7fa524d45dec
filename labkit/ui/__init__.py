"""Interactive widgets (ipywidgets) over a running :class:`~labkit.runtime.Lab`.

- :class:`FleetDashboard` -- a live table of the devices: State, Result, firmware, RSSI,
  Link Quality, download progress, campaign status
- :class:`UpdatePanel` -- package, PUSH/PULL, protocol, block size, policy with its thresholds
  as sliders; start / pause / resume / cancel a campaign
- :class:`FaultPanel` -- inject any fault of :data:`labkit.sim.faults.FAULTS` into chosen
  devices, or change their link
- :class:`LivePlot` -- any :mod:`labkit.plots` function, redrawn in place a few times a second
- :func:`control_room` -- all of them in tabs

Rules every panel keeps: the ui holds no protocol logic (it only calls into the lab,
:mod:`labkit.fota`, :mod:`labkit.policy` and :mod:`labkit.plots`); a button schedules work
with :meth:`~labkit.runtime.Lab.submit` and returns at once; lab events are taken on the loop
thread in microseconds and shown by a worker thread at most a few times a second.
"""

from __future__ import annotations

from labkit.ui.dashboard import FleetDashboard
from labkit.ui.fault_panel import FaultPanel
from labkit.ui.lab_panel import ControlRoom, control_room
from labkit.ui.live_plot import LivePlot
from labkit.ui.update_panel import UpdatePanel, policy_parameters

__all__ = [
    "ControlRoom",
    "FaultPanel",
    "FleetDashboard",
    "LivePlot",
    "UpdatePanel",
    "control_room",
    "policy_parameters",
]
