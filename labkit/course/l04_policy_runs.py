"""Lesson 04's small campaigns: one PUSH campaign per policy over a fresh fleet on calm links
where some devices are weak (:func:`weak_links`, :func:`policy_run`), runs compared
(:func:`compare_runs`) and re-run from a slider (:class:`ThresholdExplorer`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.course.common import package
from labkit.course.staging import LabFleet, events_between, lab_clock, sim_budget, start_fleet

if TYPE_CHECKING:
    import weakref

    import pandas as pd

    from labkit.fota.campaign import Campaign
    from labkit.fota.simulate import SimFleet
    from labkit.policy import Policy
    from labkit.runtime import Lab


__all__ = [
    "OUTAGE_FROM_S",
    "OUTAGE_UNTIL_S",
    "WEAK_DEPTH_DB",
    "WEAK_UNTIL_S",
    "PolicyRun",
    "ThresholdExplorer",
    "compare_runs",
    "policy_run",
    "weak_links",
]


#: Simulated seconds of the weak devices' scripted trouble, from the campaign's start: the
#: signal is 25 dB down (about -115 dBm, below the threshold policy's -105) until
#: ``WEAK_UNTIL_S``, and the link is gone entirely from ``OUTAGE_FROM_S`` to ``OUTAGE_UNTIL_S``.
WEAK_UNTIL_S = 260.0


OUTAGE_FROM_S = 30.0


OUTAGE_UNTIL_S = 200.0


WEAK_DEPTH_DB = 25.0


def weak_links(
    devices: int, weak: Iterable[int], *, profile: str = "lte-m", seed: int = 0
) -> list[Any]:
    """Links for a fleet of ``devices`` in which devices ``weak`` (0-based) have trouble.

    Every link uses the numbers of ``profile`` (loss, delay and data rate against the
    signal) but *calm*: no fading and no random dips, the signal at -90 dBm, so that only
    the scripted trouble matters and a run gives the same outcome every time. A weak device
    starts 25 dB down (:data:`WEAK_UNTIL_S`) and loses its link for minutes in between
    (:data:`OUTAGE_FROM_S` .. :data:`OUTAGE_UNTIL_S`): a van parked in front of the meter.
    """
    import dataclasses

    from labkit.sim import PROFILES, Dip, LinkImpairment, SignalTrace, derive_seed, outage
    from labkit.sim.profiles import DipModel

    calm = dataclasses.replace(
        PROFILES[profile],
        rssi_mean_dbm=-90.0,
        rssi_sigma_db=0.0,
        dips=DipModel(rate_per_hour=0.0, depth_db=0.0, duration_s=1.0),
    )
    trouble = [
        Dip(0.0, WEAK_UNTIL_S, WEAK_DEPTH_DB),
        outage(OUTAGE_FROM_S, OUTAGE_UNTIL_S - OUTAGE_FROM_S),
    ]
    weak_set = set(weak)
    links = []
    for i in range(devices):
        s = derive_seed(seed, "course-link", i)
        trace = SignalTrace(calm, s, dips=trouble if i in weak_set else ())
        links.append(LinkImpairment(trace, s))
    return links


@dataclass
class PolicyRun:
    """One small campaign of :func:`policy_run`: its campaign, its devices, its events."""

    label: str
    campaign: Campaign
    devices: list[str]
    weak: list[str]
    events: pd.DataFrame
    wall_s: float

    @property
    def policy(self) -> Policy:
        return self.campaign.policy

    @property
    def thresholds(self) -> dict[str, float]:
        from labkit.policy import policy_thresholds

        return policy_thresholds(self.campaign.policy)

    def summary(self) -> dict[str, Any]:
        """One row of :func:`compare_runs`."""
        from labkit.policy import policy_name

        s = self.campaign.summary()
        d = self.campaign.devices()
        return {
            "run": self.label,
            "policy": policy_name(self.campaign.policy),
            "thresholds": ", ".join(f"{k} {v:g}" for k, v in self.thresholds.items()) or "-",
            "devices": s["devices"],
            "success": s["success"],
            "failed": s["failed"],
            "result_4": s["result_4"],
            "waits": int(d["waits"].sum()),
            "time_to_complete_s": round(float(s["time_to_complete_s"] or 0.0), 1),
        }

    def table(self) -> pd.DataFrame:
        """Per device: weak or not, status, Update Result, decisions, waits, RSSI at the first
        and the last decision, when it finished (simulated seconds)."""
        d = self.campaign.devices()
        out = d[
            [
                "device",
                "status",
                "result",
                "result_name",
                "decisions",
                "waits",
                "first_rssi_dbm",
                "last_rssi_dbm",
                "finished_s",
            ]
        ].copy()
        out.insert(1, "weak", out["device"].isin(self.weak))
        out["finished_s"] = out["finished_s"].round(1)
        return out

    def decisions(self, device: str | None = None) -> pd.DataFrame:
        """The policy's decisions (of one device, or all), each with the link sample it saw:
        ``t_s`` (simulated seconds since the run started), ``device``, ``decision``,
        ``rssi_dbm``, ``link_quality``, ``reason``."""
        from labkit.record import decisions

        d = decisions(self.events)
        if device is not None:
            d = d[d["device"].astype("string") == device]
        start = self.events["ts"].min()
        out = d[["device", "decision", "rssi_dbm", "link_quality", "reason"]].copy()
        out.insert(0, "t_s", ((d["ts"] - start).dt.total_seconds()).round(1))
        out["device"] = out["device"].astype("string")
        out["decision"] = out["decision"].astype("string")
        return out.reset_index(drop=True)

    def _repr_html_(self) -> str:
        return self.table().to_html(index=False)

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"<PolicyRun {self.label}: {s['success']} success, {s['failed']} failed "
            f"({s['result_4']} with Result 4) in {s['time_to_complete_s']} s>"
        )


#: The run labels each lab has used (:func:`policy_run` names devices after them).
_LAB_RUN_LABELS: Any = None


def _run_labels() -> weakref.WeakKeyDictionary[Lab, set[str]]:
    global _LAB_RUN_LABELS
    if _LAB_RUN_LABELS is None:
        import weakref

        _LAB_RUN_LABELS = weakref.WeakKeyDictionary()
    return _LAB_RUN_LABELS


def _unique_label(lab: Lab, wanted: str) -> str:
    taken = _run_labels().setdefault(lab, set())
    label, k = wanted, 1
    while label in taken:
        k += 1
        label = f"{wanted}{k}"
    taken.add(label)
    return label


def policy_run(
    lab: Lab,
    policy: str | Policy = "always",
    *,
    devices: int = 6,
    weak: Iterable[int] | None = None,
    image_size: int = 128 * 1024,
    seed: int = 0,
    label: str | None = None,
    timeout: float = 120.0,
    **policy_params: Any,
) -> PolicyRun:
    """Run one PUSH campaign with ``policy`` over a small fresh fleet and wait for its end.

    The fleet has ``devices`` simulated devices behind link relays (:func:`weak_links`:
    calm LTE-M links; ``weak``, default every second device, are weak and lose their link
    for minutes soon after the start), all pushed at once with ``policy`` (a registry name
    built with ``policy_params``, or a policy object). The devices are named
    ``<label>-0001`` ... (``label`` defaults to the policy's name, made unique in the lab),
    so that several runs share one event table. ``lab`` is a :func:`scaled_lab`; ``timeout``
    bounds the campaign in wall seconds (it is cancelled then).
    """
    import time

    from labkit.policy import make_policy, policy_name

    clock = lab_clock(lab)
    built = make_policy(policy, **policy_params) if isinstance(policy, str) else policy
    name = _unique_label(lab, label or policy_name(built).replace("(", "-").replace(")", ""))
    weak_idx = list(range(1, devices, 2)) if weak is None else sorted(set(weak))
    links = weak_links(devices, weak_idx, seed=seed)
    image = package("2.0.0", image_size, seed=seed)
    started = time.monotonic()
    t0 = clock()

    async def run() -> tuple[Campaign, SimFleet]:

        # Register in calm conditions (trace time far past the trouble); the fleet's start
        # then makes "now" time 0 of the traces, so the trouble starts with the campaign.
        sim = await start_fleet(
            lab,
            clock,
            devices,
            links=links,
            prefix=f"{name}-",
            feed_interval_s=15.0,
            origin=clock.elapsed() - 10 * WEAK_UNTIL_S,
        )
        try:
            campaign = LabFleet(lab, sim, clock).campaign(image, policy=built)
            await campaign.run_until(sim_budget(lab, timeout))
        finally:
            await sim.stop()
        return campaign, sim

    campaign, sim = lab.call(run(), timeout=sim_budget(lab, timeout + 90.0))
    endpoints = list(sim.endpoints)
    events = events_between(lab, t0, clock(), endpoints)
    return PolicyRun(
        label=name,
        campaign=campaign,
        devices=endpoints,
        weak=[endpoints[i] for i in weak_idx if i < len(endpoints)],
        events=events,
        wall_s=time.monotonic() - started,
    )


def compare_runs(runs: Iterable[PolicyRun]) -> pd.DataFrame:
    """Runs side by side, one row each: ``run``, ``policy``, ``thresholds``, ``devices``,
    ``success``, ``failed``, ``result_4`` (failed with Update Result 4, connection lost),
    ``waits`` (how often the policy said wait, in all), ``time_to_complete_s`` (simulated
    seconds until the last device finished)."""
    import pandas as pd

    return pd.DataFrame([run.summary() for run in runs])


class ThresholdExplorer:
    """A slider for the threshold policy's ``min_rssi_dbm`` and a *re-run* button.

    Each press runs :func:`policy_run` with the slider's threshold in a background thread
    (the notebook stays free) and shows every run so far side by side. :meth:`run` does
    the same from code and waits for it.

    Parameters
    ----------
    lab:
        A :func:`scaled_lab`.
    runs:
        Earlier runs to compare with (e.g. the always and threshold runs).
    **run_options:
        More keyword arguments of :func:`policy_run` (``devices``, ``seed`` ...).
    """

    def __init__(self, lab: Lab, runs: Iterable[PolicyRun] = (), **run_options: Any) -> None:
        import threading

        import ipywidgets as w

        self.lab = lab
        self.runs: list[PolicyRun] = list(runs)
        self.run_options = run_options
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.slider = w.FloatSlider(
            value=-105.0,
            min=-130.0,
            max=-80.0,
            step=1.0,
            description="min_rssi_dbm",
            continuous_update=False,
            style={"description_width": "110px"},
            layout=w.Layout(width="460px"),
        )
        self.button = w.Button(description="re-run", icon="play", button_style="success")
        self.button.on_click(lambda _b: self.start())
        self.status = w.HTML()
        self.table = w.HTML()
        self.widget = w.VBox([w.HBox([self.slider, self.button]), self.status, self.table])
        self._show("move the threshold, then press re-run")

    def _show(self, text: str) -> None:
        self.status.value = f"<i>{html.escape(text)}</i>"
        if self.runs:
            self.table.value = compare_runs(self.runs).to_html(index=False)

    def run(self, min_rssi_dbm: float | None = None) -> PolicyRun:
        """Run the threshold policy at ``min_rssi_dbm`` (default: the slider's value) and
        wait for the end; the run joins :attr:`runs`."""
        threshold = float(self.slider.value if min_rssi_dbm is None else min_rssi_dbm)
        self._show(f"running threshold {threshold:g} dBm ...")
        run = policy_run(self.lab, "threshold", min_rssi_dbm=threshold, **self.run_options)
        with self._lock:
            self.runs.append(run)
        self._show(
            f"threshold {threshold:g} dBm: {run.summary()['success']} of "
            f"{len(run.devices)} updated, {run.summary()['result_4']} with Result 4"
        )
        return run

    def start(self) -> None:
        """What the button does: :meth:`run` in a background thread (one at a time)."""
        import threading

        if self._thread is not None and self._thread.is_alive():
            self._show("a run is still going: wait for it")
            return

        def work() -> None:
            try:
                self.run()
            except Exception as exc:  # shown in the widget: a thread has no cell to raise in
                self._show(f"the run failed: {exc!r}")
            finally:
                self.button.disabled = False

        self.button.disabled = True
        self._thread = threading.Thread(target=work, name="labkit-threshold-explorer", daemon=True)
        self._thread.start()

    def comparison(self) -> pd.DataFrame:
        """:func:`compare_runs` of every run so far."""
        return compare_runs(self.runs)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
