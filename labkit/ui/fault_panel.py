"""The fault panel: strike chosen simulated devices with a fault, or change their link.

:class:`FaultPanel` lists the lab's simulated devices, offers every fault name of
:data:`labkit.sim.faults.FAULTS` (with the Update Result it leads to) and an **Inject** button
that schedules ``device.inject_fault(name)`` for each chosen device on the lab loop. A second
row sets the chosen devices' Radio Signal Strength (/4/0/2) and Link Quality (/4/0/3), the
values a PUSH policy looks at, so a class can watch a policy wait for a better link.

Every button returns at once: the work is handed to :meth:`labkit.runtime.Lab.submit`, and the
log under the buttons confirms each injection (or says why it failed) when the lab has done
it. What a fault does is the device's business (:mod:`labkit.client`); the panel only asks.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING, Any

from labkit.sim.faults import FAULT_RESULTS, FAULTS
from labkit.ui._common import FONT_CSS, Throttle, esc, status_html

if TYPE_CHECKING:
    import concurrent.futures

    from labkit.runtime import Lab

__all__ = ["FaultPanel", "inject_fault"]

_WIDE = {"description_width": "140px"}


def _fault_label(name: str) -> str:
    result = FAULT_RESULTS.get(name)
    return f"{name} (Result {result})" if result is not None else f"{name} (1, 4 or 8)"


async def inject_fault(device: Any, name: str) -> None:
    """Ask a simulated device to take fault ``name`` from now on (runs on the lab loop).

    Raises
    ------
    NotImplementedError
        When the device offers no ``inject_fault`` (faults only at creation then:
        ``lab.add_device(faults=[...])``).
    """
    inject = getattr(device, "inject_fault", None)
    if inject is None:
        raise NotImplementedError(
            f"{type(device).__name__} has no inject_fault(name): this labkit version takes "
            f"faults only when a device is made, e.g. lab.add_device(faults=[{name!r}])"
        )
    result = inject(name)
    if hasattr(result, "__await__"):
        await result


class FaultPanel:
    """Inject faults into chosen simulated devices, or change their link (see the module
    docstring).

    Attributes
    ----------
    widget:
        The ipywidgets box (also shown when the panel itself is displayed).
    devices, fault, inject_button, rssi, link_quality, link_button:
        The controls, for scripts and tests.
    log:
        The confirmations so far, newest last (plain text).
    futures:
        The futures of the scheduled work, newest last.
    """

    def __init__(self, lab: Lab, *, interval: float = 0.25, log_lines: int = 8) -> None:
        import ipywidgets as w

        self.lab = lab
        wide = {"style": _WIDE, "layout": w.Layout(width="440px")}
        self.devices = w.SelectMultiple(
            options=self._endpoints(), rows=6, description="devices", **wide
        )
        self.reload = w.Button(description="reload list", icon="refresh")
        self.reload.on_click(lambda _b: self.reload_devices())
        self.fault = w.Dropdown(
            options=[(_fault_label(f), f) for f in FAULTS],
            value=FAULTS[0],
            description="fault",
            **wide,
        )
        self.inject_button = w.Button(description="Inject", button_style="danger", icon="bolt")
        self.inject_button.on_click(lambda _b: self.inject())
        self.rssi = w.IntSlider(
            value=-80,
            min=-140,
            max=-40,
            description="RSSI dBm /4/0/2",
            continuous_update=False,
            **wide,
        )
        self.link_quality = w.IntSlider(
            value=-10, min=-20, max=100, description="LQ /4/0/3", continuous_update=False, **wide
        )
        self.link_button = w.Button(description="Set link", button_style="info", icon="signal")
        self.link_button.on_click(lambda _b: self.set_link())
        self.status = w.HTML()
        self.log: collections.deque[str] = collections.deque(maxlen=max(1, log_lines))
        self.futures: list[concurrent.futures.Future[Any]] = []
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._throttle = Throttle(self._render, interval, name="labkit-ui-fault-panel")

        def section(title: str) -> Any:
            return w.HTML(f'<b style="{FONT_CSS}">{title}</b>')

        self.widget = w.VBox(
            [
                section("Devices"),
                w.HBox([self.devices, self.reload]),
                section("Fault"),
                w.HBox([self.fault, self.inject_button]),
                section("Link"),
                self.rssi,
                w.HBox([self.link_quality, self.link_button]),
                self.status,
            ]
        )
        self._render()

    # -- devices ------------------------------------------------------------------------------
    def _endpoints(self) -> list[str]:
        return [d.endpoint for d in self.lab.devices]

    def reload_devices(self) -> None:
        """Refresh the device list (keeps the selection)."""
        chosen = tuple(ep for ep in self.devices.value if ep in self._endpoints())
        self.devices.options = self._endpoints()
        self.devices.value = chosen

    def _chosen(self, devices: Any) -> list[str]:
        if devices is None:
            return list(self.devices.value)
        if isinstance(devices, str):
            return [devices]
        return [getattr(d, "endpoint", d) for d in devices]

    def _simulated(self, endpoint: str) -> Any:
        from labkit.runtime import DeviceHandle

        device = DeviceHandle(self.lab, endpoint).simulated
        if device is None:
            raise LookupError(f"{endpoint} is not a simulated device of this lab")
        return device

    # -- actions ------------------------------------------------------------------------------
    def inject(self, fault: str | None = None, devices: Any = None) -> list[Any]:
        """Schedule fault ``fault`` (default: the drop-down's) on ``devices`` (default: the
        chosen ones); returns the futures at once."""
        name = fault or self.fault.value
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; one of {', '.join(FAULTS)}")
        targets = self._chosen(devices)
        if not targets:
            self._note("choose one or more devices first", "warn")
            return []
        futures = []
        for endpoint in targets:

            async def work(endpoint: str = endpoint) -> None:
                await inject_fault(self._simulated(endpoint), name)

            future = self._schedule(
                work, f"{name} into {endpoint}", f"{name} injected into {endpoint}"
            )
            if future is not None:
                futures.append(future)
        self.status.value = status_html(f"injecting {name} into {', '.join(targets)} ...")
        return futures

    def set_link(
        self, rssi_dbm: int | None = None, link_quality: int | None = None, devices: Any = None
    ) -> list[Any]:
        """Schedule new /4/0/2 and /4/0/3 values (default: the sliders') on ``devices``."""
        rssi = int(self.rssi.value if rssi_dbm is None else rssi_dbm)
        lq = int(self.link_quality.value if link_quality is None else link_quality)
        targets = self._chosen(devices)
        if not targets:
            self._note("choose one or more devices first", "warn")
            return []
        futures = []
        for endpoint in targets:

            def work(endpoint: str = endpoint) -> None:
                device = self._simulated(endpoint)
                device.set_values({"/4/0/2": rssi, "/4/0/3": lq})  # one link row

            text = f"{endpoint}: RSSI {rssi} dBm, Link Quality {lq}"
            future = self._schedule(work, f"link of {endpoint}", text)
            if future is not None:
                futures.append(future)
        return futures

    def _schedule(self, work: Any, what: str, done_text: str) -> Any:
        from labkit.runtime import LabClosedError

        try:
            future = self.lab.submit(work)
        except LabClosedError as exc:
            self._note(f"{what} failed: {exc}", "error")
            return None
        self.futures.append(future)

        def done(f: concurrent.futures.Future[Any]) -> None:
            if f.cancelled():
                self._note(f"{what}: cancelled", "warn")
            elif f.exception() is not None:
                self._note(f"{what} failed: {f.exception()}", "error")
            else:
                self._note(done_text, "ok")

        future.add_done_callback(done)
        return future

    # -- display ------------------------------------------------------------------------------
    def _note(self, text: str, kind: str) -> None:
        with self._lock:
            self._pending.append((time.strftime("%H:%M:%S"), f"{kind}|{text}"))
        self._throttle.poke()

    def _render(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for stamp, entry in pending:
            self.log.append(f"{stamp} {entry}")
        colours = {"ok": "#007A55", "warn": "#A05A00", "error": "#B03A00"}
        lines = []
        for line in self.log:
            stamp, _, rest = line.partition(" ")
            kind, _, text = rest.partition("|")
            lines.append(
                f'<div style="{FONT_CSS}color:{colours.get(kind, "#333")}">'
                f"{esc(stamp)} {esc(text)}</div>"
            )
        self.status.value = "".join(lines) or status_html("nothing injected yet")

    @property
    def messages(self) -> list[str]:
        """The log lines as plain text ("12:00:01 link-drop injected into sim-0001")."""
        self._throttle.flush()
        return [f"{ln.split(' ', 1)[0]} {ln.split('|', 1)[1]}" for ln in self.log]

    def refresh(self) -> None:
        """Update the log now (in the calling thread)."""
        self._throttle.flush()

    def close(self) -> None:
        self._throttle.close()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<FaultPanel {len(self.devices.options)} devices>"
