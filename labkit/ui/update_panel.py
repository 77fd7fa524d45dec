"""The update panel: choose a package, a delivery and a PUSH policy, then run a campaign.

:class:`UpdatePanel` is a form over :class:`labkit.fota.campaign.Campaign`:

* **package** -- a lab package made from a version and a size (:func:`labkit.course.package`)
  or an uploaded file (``FileUpload``; it wins while one is loaded);
* **delivery** -- PUSH or PULL, CoAP or HTTP (PULL only: a PUSH always goes over CoAP Block1),
  block size 16 .. 1024 bytes (CoAP SZX 0 .. 6);
* **policy** -- any policy of :data:`labkit.policy.POLICIES`, with one slider per numeric
  parameter of its factory, a drop-down per choice parameter, and a tick box in front of the
  parameters that can be switched off (``None``); :attr:`UpdatePanel.policy` is the policy
  built from the current values;
* **fleet** -- which devices (none chosen: every registered device when the campaign starts),
  updates in flight at most, canary size, and an optional failure threshold;
* **start / pause / resume / cancel** buttons, a progress bar and a status line.

Buttons only *schedule*: Start builds the campaign and hands ``campaign.run()`` to
:meth:`labkit.runtime.Lab.submit`; Pause, Resume and Cancel call the campaign's thread-safe
methods. Each returns at once; the lab keeps running in its own thread, and the status line
follows the campaign's events at most four times a second.

The panel holds no protocol logic: what a campaign does is :mod:`labkit.fota.campaign`'s
business, what a policy decides is :mod:`labkit.policy`'s.
"""

from __future__ import annotations

import inspect
import threading
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from labkit.fota.campaign import FINAL_STATUSES, Campaign
from labkit.policy import POLICIES, make_policy, policy_thresholds
from labkit.runtime import LabClosedError
from labkit.ui._common import FONT_CSS, Throttle, status_html

if TYPE_CHECKING:
    import concurrent.futures

    from labkit.events import Event
    from labkit.runtime import Lab
    from labkit.ui.dashboard import FleetDashboard

__all__ = ["BLOCK_SIZES", "UpdatePanel", "policy_parameters"]

#: CoAP block sizes (SZX 0..6, RFC 7959).
BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)

_WIDE = {"description_width": "160px"}


def _slider_range(name: str, default: float | None) -> tuple[float, float, float]:
    """Slider (min, max, step) for a policy parameter, from its name and unit."""
    if name.endswith("_dbm"):
        lo, hi, step = -140.0, -40.0, 1.0  # digest 2: LTE-M RSRP spans about -140 .. -44 dBm
    elif "link_quality" in name:
        # /4/0/3 is in the bearer's unit: RSRQ -20 .. -3 dB (LTE-M, NB-IoT), 0 .. 100 (Wi-Fi)
        lo, hi, step = -20.0, 100.0, 1.0
    elif "battery" in name:
        lo, hi, step = 0.0, 100.0, 1.0
    elif name == "max_wait_s":
        lo, hi, step = 0.0, 7200.0, 60.0
    elif name.endswith("_s"):
        lo, hi, step = 0.0, 3600.0, 5.0
    else:
        lo, hi, step = 0.0, 100.0, 1.0
    if default is not None:
        lo, hi = min(lo, float(default)), max(hi, float(default))
    return lo, hi, step


def policy_parameters(name: str) -> list[dict[str, Any]]:
    """The parameters of the registered policy ``name`` that the panel shows.

    Returns
    -------
    list of dict
        One per keyword parameter of the factory: ``name``, ``kind`` (``"number"``,
        ``"choice"`` or ``"policy"``), ``default``, ``optional`` (``None`` allowed),
        ``choices`` (for a choice or an inner policy), ``range`` (min, max, step for a
        number).
    """
    factory = POLICIES[name]
    hints = typing.get_type_hints(factory)
    out: list[dict[str, Any]] = []
    for p in inspect.signature(factory).parameters.values():
        if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        hint = hints.get(p.name)
        args = typing.get_args(hint)
        default = None if p.default is inspect.Parameter.empty else p.default
        entry: dict[str, Any] = {
            "name": p.name,
            "default": default,
            "optional": type(None) in args,
        }
        if typing.get_origin(hint) is Literal:
            entry.update(kind="choice", choices=tuple(args))
        elif p.name == "inner":
            entry.update(kind="policy", choices=tuple(n for n in POLICIES if n != name))
        elif hint in (float, int) or float in args or int in args:
            entry.update(kind="number", range=_slider_range(p.name, default))
        else:
            continue  # nothing a widget can set
        out.append(entry)
    return out


class UpdatePanel:
    """Package, delivery, policy and fleet controls driving a :class:`Campaign`.

    Parameters
    ----------
    lab:
        A running :class:`~labkit.runtime.Lab`.
    devices:
        Endpoints (or device handles) selected at first; none: every registered device.
    dashboard:
        A :class:`~labkit.ui.dashboard.FleetDashboard` that follows each new campaign.
    interval:
        Minimum seconds between two status refreshes.
    **campaign_options:
        More keyword arguments for every :class:`~labkit.fota.campaign.Campaign` (e.g.
        ``timeout_s=30``, ``retry_on={4}``).

    Attributes
    ----------
    widget:
        The ipywidgets box (also shown when the panel itself is displayed).
    campaign:
        The newest campaign (``None`` before the first Start).
    future:
        The :class:`concurrent.futures.Future` of its ``run()`` on the lab loop.
    """

    def __init__(
        self,
        lab: Lab,
        devices: Iterable[Any] | None = None,
        *,
        dashboard: FleetDashboard | None = None,
        interval: float = 0.25,
        **campaign_options: Any,
    ) -> None:
        import ipywidgets as w

        self.lab = lab
        self.dashboard = dashboard
        self.campaign_options = dict(campaign_options)
        self.campaign: Campaign | None = None
        self.future: concurrent.futures.Future[Any] | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        # The repository serves PULL downloads (and a policy's "pull instead"). Starting it
        # here keeps the Start button from ever waiting for it.
        self._repository = lab.repository

        wide = {"style": _WIDE, "layout": w.Layout(width="460px")}
        # -- package
        self.version = w.Text(value="2.0.0", description="version", **wide)
        self.size = w.BoundedIntText(
            value=64 * 1024,
            min=64,
            max=16 * 1024 * 1024,
            step=1024,
            description="size (bytes)",
            **wide,
        )
        self.upload = w.FileUpload(accept="", multiple=False, description="upload image")
        self.upload.observe(self._on_upload, names="value")
        self.package_info = w.HTML()
        # -- delivery
        self.method = w.ToggleButtons(
            options=[("PUSH", "push"), ("PULL", "pull")],
            value="push",
            description="method",
            style=_WIDE,
        )
        self.protocol = w.ToggleButtons(
            options=[("CoAP", "coap"), ("HTTP", "http")],
            value="coap",
            description="protocol",
            style=_WIDE,
        )
        self.block_size = w.Dropdown(
            options=list(BLOCK_SIZES), value=1024, description="block size (B)", **wide
        )
        self.method.observe(self._on_method, names="value")
        # -- policy
        self.policy_name = w.Dropdown(
            options=list(POLICIES), value="always", description="policy", **wide
        )
        self.policy_box = w.VBox()
        self.policy_info = w.HTML()
        self._params: dict[str, tuple[dict[str, Any], Any, Any]] = {}
        self.policy_name.observe(self._on_policy, names="value")
        # -- fleet
        self.targets = w.SelectMultiple(
            options=self._endpoints(), description="devices", rows=6, **wide
        )
        if devices is not None:
            chosen = [getattr(d, "endpoint", d) for d in devices]
            self.targets.options = sorted(set(self.targets.options) | set(chosen))
            self.targets.value = tuple(chosen)
        self.reload = w.Button(description="reload list", icon="refresh")
        self.reload.on_click(lambda _b: self.reload_devices())
        self.max_concurrent = w.IntSlider(
            value=4, min=1, max=50, description="in flight at most", **wide
        )
        self.canary = w.IntSlider(value=0, min=0, max=10, description="canary devices", **wide)
        self.use_threshold = w.Checkbox(
            value=False, description="stop above failure rate", style=_WIDE
        )
        self.failure_threshold = w.FloatSlider(
            value=0.5,
            min=0.0,
            max=1.0,
            step=0.05,
            description="failure rate",
            readout_format=".0%",
            **wide,
        )
        # -- control
        self.start_button = w.Button(description="Start", button_style="success", icon="play")
        self.pause_button = w.Button(description="Pause", button_style="warning", icon="pause")
        self.resume_button = w.Button(description="Resume", button_style="info", icon="play")
        self.cancel_button = w.Button(description="Cancel", button_style="danger", icon="stop")
        self.abort = w.Checkbox(value=False, description="cancel also interrupts transfers")
        self.start_button.on_click(lambda _b: self.start())
        self.pause_button.on_click(lambda _b: self.pause())
        self.resume_button.on_click(lambda _b: self.resume())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.progress = w.IntProgress(
            value=0,
            min=0,
            max=1,
            description="finished",
            style=_WIDE,
            layout=w.Layout(width="460px"),
        )
        self.status = w.HTML(status_html("no campaign yet"))

        def section(title: str) -> Any:
            return w.HTML(f'<b style="{FONT_CSS}">{title}</b>')

        self.widget = w.VBox(
            [
                w.HBox(
                    [
                        w.VBox(
                            [
                                section("Package"),
                                self.version,
                                self.size,
                                w.HBox([self.upload]),
                                self.package_info,
                                section("Delivery"),
                                self.method,
                                self.protocol,
                                self.block_size,
                            ]
                        ),
                        w.VBox(
                            [
                                section("PUSH policy"),
                                self.policy_name,
                                self.policy_box,
                                self.policy_info,
                                section("Fleet"),
                                self.targets,
                                self.reload,
                                self.max_concurrent,
                                self.canary,
                                self.use_threshold,
                                self.failure_threshold,
                            ]
                        ),
                    ]
                ),
                w.HBox(
                    [
                        self.start_button,
                        self.pause_button,
                        self.resume_button,
                        self.cancel_button,
                        self.abort,
                    ]
                ),
                self.progress,
                self.status,
            ]
        )
        self._on_method(None)
        self._on_policy(None)
        self._on_upload(None)
        self._throttle = Throttle(self._render, interval, name="labkit-ui-update-panel")
        self._unsubscribe: Any = lab.subscribe(self._on_event)
        self._buttons()

    # -- form ---------------------------------------------------------------------------------
    def _endpoints(self) -> list[str]:
        names = {d.endpoint for d in self.lab.devices}
        names |= set(self.lab.registrations()["endpoint"])
        return sorted(names)

    def reload_devices(self) -> None:
        """Refresh the device list (keeps the selection)."""
        chosen = self.targets.value
        self.targets.options = sorted(set(self._endpoints()) | set(chosen))
        self.targets.value = tuple(chosen)

    def _on_method(self, _change: Any) -> None:
        self.protocol.disabled = self.method.value == "push"  # PUSH is CoAP Block1 only

    def _on_upload(self, _change: Any) -> None:
        upload = self._uploaded()
        if upload is not None:
            name, data = upload
            self.package_info.value = status_html(
                f"uploaded {name} ({len(data)} B) is used; version and size are ignored", kind="ok"
            )
        else:
            self.package_info.value = status_html("a lab package of this version and size")
        self.version.disabled = self.size.disabled = upload is not None

    def _uploaded(self) -> tuple[str, bytes] | None:
        value = self.upload.value
        if not value:
            return None
        item = value[0]
        return str(item["name"]), bytes(item["content"])

    def _on_policy(self, _change: Any) -> None:
        import ipywidgets as w

        name = self.policy_name.value
        rows = []
        self._params = {}
        wide = {"style": _WIDE, "layout": w.Layout(width="460px")}
        for entry in policy_parameters(name):
            pname, default = entry["name"], entry["default"]
            toggle = None
            if entry["kind"] == "number":
                lo, hi, step = entry["range"]
                value = default if default is not None else (lo + hi) / 2
                control: Any = w.FloatSlider(
                    value=float(value),
                    min=lo,
                    max=hi,
                    step=step,
                    description=pname,
                    continuous_update=False,
                    **wide,
                )
                if entry["optional"]:
                    toggle = w.Checkbox(
                        value=default is not None,
                        description="",
                        indent=False,
                        layout=w.Layout(width="30px"),
                    )
                    toggle.observe(self._on_param, names="value")
                    control.disabled = default is None
            else:
                choices = entry["choices"]
                control = w.Dropdown(
                    options=list(choices),
                    value=default if default in choices else choices[0],
                    description=pname,
                    **wide,
                )
            control.observe(self._on_param, names="value")
            self._params[pname] = (entry, control, toggle)
            rows.append(w.HBox([toggle, control]) if toggle is not None else control)
        if not rows:
            rows.append(w.HTML(status_html("this policy has no parameters")))
        self.policy_box.children = rows
        self._on_param(None)

    def _on_param(self, _change: Any) -> None:
        for _entry, control, toggle in self._params.values():
            if toggle is not None:
                control.disabled = not toggle.value
        try:
            policy = self.policy
        except (TypeError, ValueError) as exc:
            self.policy_info.value = status_html(f"not a valid policy: {exc}", kind="error")
            return
        thresholds = policy_thresholds(policy)
        text = ", ".join(f"{k} = {v:g}" for k, v in thresholds.items()) or "no thresholds"
        self.policy_info.value = status_html(f"{getattr(policy, 'name', '')}: {text}")

    @property
    def policy_params(self) -> dict[str, Any]:
        """The policy's keyword arguments as set in the form."""
        params: dict[str, Any] = {}
        for name, (entry, control, toggle) in self._params.items():
            if toggle is not None and not toggle.value:
                params[name] = None
            elif entry["kind"] == "number":
                params[name] = float(control.value)
            else:
                params[name] = control.value
        return params

    @property
    def policy(self) -> Any:
        """The policy built from the current form (raises for an invalid combination)."""
        return make_policy(self.policy_name.value, **self.policy_params)

    def slider(self, name: str) -> Any:
        """The widget of policy parameter ``name`` (a slider or a drop-down)."""
        return self._params[name][1]

    def switch(self, name: str) -> Any:
        """The tick box of optional policy parameter ``name`` (``None`` if it has none)."""
        return self._params[name][2]

    def package(self) -> bytes:
        """The package the next campaign delivers (the uploaded file, or a lab package)."""
        upload = self._uploaded()
        if upload is not None:
            return upload[1]
        from labkit.course import package

        return package(self.version.value.strip(), int(self.size.value))

    def campaign_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the next :class:`Campaign` (without server and package)."""
        chosen = list(self.targets.value)
        kwargs: dict[str, Any] = {
            "fleet": chosen or None,
            "policy": self.policy,
            "method": self.method.value,
            "protocol": "coap" if self.method.value == "push" else self.protocol.value,
            "block_size": int(self.block_size.value),
            "max_concurrent": int(self.max_concurrent.value),
            "canary": int(self.canary.value),
            "failure_threshold": (
                float(self.failure_threshold.value) if self.use_threshold.value else None
            ),
            "repository": self._repository,
            "on_progress": lambda _done, _total: self._throttle.poke(),
        }
        kwargs.update(self.campaign_options)
        return kwargs

    # -- actions --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the newest campaign's ``run()`` has not returned."""
        return self.future is not None and not self.future.done()

    def start(self) -> Campaign | None:
        """Build a campaign from the form and schedule it on the lab loop; returns at once.

        Returns the campaign, or ``None`` when it could not start (the status line says why).
        """
        with self._lock:
            if self.running:
                self._say("a campaign is already running: pause or cancel it first", "warn")
                return None
            try:
                package = self.package()
                campaign = Campaign(self.lab.server, package, **self.campaign_kwargs())
                future = self.lab.submit(campaign.run())
            except (TypeError, ValueError, LabClosedError) as exc:
                self.error = str(exc)
                self._say(f"cannot start: {exc}", "error")
                return None
            self.error = None
            self.campaign, self.future = campaign, future
            if self.dashboard is not None:
                self.dashboard.expected_bytes = len(package)
                self.dashboard.follow(campaign)
            future.add_done_callback(lambda _f: self._throttle.poke())
        self._say(f"campaign starting: {len(package)} B, policy {self.policy_name.value}", "ok")
        self._buttons()
        return campaign

    def pause(self) -> None:
        """Pause the campaign: no new device starts; running updates finish."""
        if not self._require():
            return
        assert self.campaign is not None
        self.campaign.pause()
        self._say("pausing: running updates finish, no new one starts", "warn")
        self._buttons(paused=True)

    def resume(self) -> None:
        """Resume a paused campaign."""
        if not self._require():
            return
        assert self.campaign is not None
        self.campaign.resume()
        self._say("resuming", "ok")
        self._buttons(paused=False)

    def cancel(self) -> None:
        """Cancel the campaign (with the "interrupts transfers" box ticked: abort them too)."""
        if not self._require():
            return
        assert self.campaign is not None
        self.campaign.cancel(abort=bool(self.abort.value))
        self._say("cancelling", "warn")
        self._throttle.poke()

    def _require(self) -> bool:
        if self.campaign is None or not self.running:
            self._say("no campaign is running", "warn")
            return False
        return True

    # -- display --------------------------------------------------------------------------
    def _say(self, text: str, kind: str = "info") -> None:
        self.status.value = status_html(text, kind=kind)

    @property
    def status_text(self) -> str:
        """The status line as plain text."""
        import re

        return re.sub(r"<[^>]+>", "", self.status.value)

    def _buttons(self, paused: bool | None = None) -> None:
        running = self.running
        if paused is None:
            paused = bool(self.campaign is not None and self.campaign.paused)
        self.start_button.disabled = running
        self.pause_button.disabled = not running or paused
        self.resume_button.disabled = not running or not paused
        self.cancel_button.disabled = not running

    def _on_event(self, event: Event) -> None:
        if event.source == "campaign" or event.kind == "decision":
            self._throttle.poke()

    def _render(self) -> None:
        campaign, future = self.campaign, self.future
        if campaign is None:
            return
        done, total = campaign.progress
        self.progress.max = max(1, total)
        self.progress.value = min(done, max(1, total))
        statuses = [run.status for run in list(campaign.runs.values())]
        parts = ", ".join(f"{s} {statuses.count(s)}" for s in FINAL_STATUSES if statuses.count(s))
        text = f"campaign {campaign.status}: {done}/{total} finished"
        if parts:
            text += f" ({parts})"
        if campaign.stop_reason:
            text += f"; {campaign.stop_reason}"
        kind = {"finished": "ok", "running": "info", "paused": "warn"}.get(campaign.status, "warn")
        if future is not None and future.done() and not future.cancelled():
            exc = future.exception()
            if exc is not None:
                self.error = f"{type(exc).__name__}: {exc}"
                text, kind = f"campaign failed: {self.error}", "error"
        self._say(text, kind)
        self._buttons()

    def refresh(self) -> None:
        """Update the status line now (in the calling thread)."""
        self._throttle.flush()

    def close(self) -> None:
        """Stop following the lab and close the widgets (a running campaign goes on)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        self._throttle.close()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<UpdatePanel campaign={self.campaign!r}>"
