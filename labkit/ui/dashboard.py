"""The fleet dashboard: one live table row per device, fed by the lab's events.

:class:`FleetDashboard` shows, for every simulated device of the lab and every registered
endpoint, whether it is registered, its /5/0/3 State, its /5/0/5 Update Result (code and
name), its /3/0/3 Firmware Version, the last /4/0/2 Radio Signal Strength and /4/0/3 Link
Quality seen, the progress of its current download and, when a campaign is followed, the
campaign's status of the device::

    dash = FleetDashboard(lab)
    dash                      # in a notebook: the live table
    dash.frame()              # the same table as a DataFrame

How it stays live without slowing the lab: a listener on the lab loop copies the few columns
an event carries into a per-device record (microseconds), and a :class:`~labkit.ui._common.
Throttle` re-renders the HTML table from a worker thread at most ``1 / interval`` times a
second (4 Hz by default). The first picture comes from the devices themselves, read once on
the loop thread when the dashboard is made; the listener is subscribed in that same loop step,
so no event falls between the two.

The dashboard only reads: it sends nothing to devices and decides nothing.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.lwm2m.objects import State, UpdateResult
from labkit.plots.style import OKABE_ITO, STATE_STYLES, result_color, result_label
from labkit.ui._common import FONT_CSS, Throttle, esc

if TYPE_CHECKING:
    import pandas as pd

    from labkit.events import Event
    from labkit.runtime import Lab

__all__ = ["COLUMNS", "FleetDashboard"]

#: Columns of :meth:`FleetDashboard.frame`, in display order.
COLUMNS = (
    "endpoint",
    "registered",
    "state",
    "result",
    "firmware",
    "rssi_dbm",
    "link_quality",
    "progress_pct",
    "campaign",
)

_SIZE_IN_NOTE = re.compile(r"(\d+) B\b")
_RSSI = "/4/0/2"
_LQ = "/4/0/3"


@dataclass(slots=True)
class _Row:
    """What the dashboard knows about one endpoint (mutated on the loop thread only)."""

    endpoint: str
    registered: bool = False
    state: int | None = None
    result: int | None = None
    firmware: str | None = None
    rssi_dbm: int | None = None
    link_quality: int | None = None
    total_bytes: int | None = None  # size of the current download, when known
    received: dict[str, tuple[int, int]] = field(default_factory=dict)  # source -> (block, B)
    downloaded: bool = False  # State 2 reached in the current transfer

    def progress(self, expected: int | None) -> float | None:
        total = self.total_bytes or expected
        if self.downloaded:
            return 100.0
        done = max((b for _, b in self.received.values()), default=0)
        if not self.received:
            return None
        if not total:
            return None
        return min(100.0, 100.0 * done / total)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _natural(name: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


class FleetDashboard:
    """A live table of the lab's devices (see the module docstring).

    Parameters
    ----------
    lab:
        A running :class:`~labkit.runtime.Lab`.
    interval:
        Minimum seconds between two re-renders (default 0.25: at most 4 per second).
    expected_bytes:
        Size of the package being delivered, for the progress column when the run's own
        "download started" note does not say it (the update panel sets it).

    Attributes
    ----------
    widget:
        The ipywidgets box to display (also shown when the dashboard itself is displayed).
    campaign:
        A :class:`~labkit.fota.campaign.Campaign` whose per-device status fills the
        ``campaign`` column (see :meth:`follow`).
    """

    def __init__(
        self, lab: Lab, *, interval: float = 0.25, expected_bytes: int | None = None
    ) -> None:
        import ipywidgets as w

        self.lab = lab
        self.expected_bytes = expected_bytes
        self.campaign: Any = None
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()
        self._shown: pd.DataFrame | None = None
        self.title = w.HTML(f'<b style="{FONT_CSS}">Fleet</b>')
        self.table = w.HTML()
        self.widget = w.VBox([self.title, self.table])
        self._throttle = Throttle(self._render, interval, name="labkit-ui-dashboard")
        self._unsubscribe = lab.call(self._attach, timeout=lab.request_timeout)
        self.refresh()

    # -- lab side (loop thread) -------------------------------------------------------------
    def _attach(self) -> Any:
        """Read every device once and subscribe, in one step of the lab loop."""
        from labkit.runtime import DeviceHandle

        lab = self.lab
        for endpoint in list(lab.server.registrations):
            self._row(endpoint).registered = True
        for handle in lab.devices:
            self._read_device(handle.endpoint, DeviceHandle(lab, handle.endpoint).simulated)
        return lab.subscribe(self._on_event)

    def _row(self, endpoint: str) -> _Row:
        row = self._rows.get(endpoint)
        if row is None:
            with self._lock:
                row = self._rows.setdefault(endpoint, _Row(endpoint))
        return row

    def _read_device(self, endpoint: str, device: Any) -> None:
        if device is None:
            return
        row = self._row(endpoint)
        try:
            row.registered = bool(device.registered)
            row.state = int(device.fw.state)
            row.result = int(device.fw.result)
            row.firmware = str(device.firmware_version)
            row.rssi_dbm = _int(device.value(_RSSI))
            row.link_quality = _int(device.value(_LQ))
        except Exception:  # a device without /4 or /5: show what there is
            pass

    def _on_event(self, event: Event) -> None:
        endpoint = event.device
        if not endpoint:
            if event.kind == "campaign":
                self._throttle.poke()
            return
        row = self._row(endpoint)
        kind = event.kind
        if kind == "registered":
            row.registered = True
            if row.state is None:
                from labkit.runtime import DeviceHandle

                self._read_device(endpoint, DeviceHandle(self.lab, endpoint).simulated)
        elif kind in ("deregistered", "reg_expired") and event.source == "server":
            row.registered = False
            if event.detail and event.detail.startswith("replaced"):
                row.registered = True  # a new Register replaced the old one
        elif kind == "reboot":
            row.registered = False
        elif kind == "fw_state" and event.state is not None:
            if event.state == State.DOWNLOADED:
                row.downloaded = True
            elif event.state == State.DOWNLOADING and row.state != State.DOWNLOADING:
                row.downloaded = False
            row.state = int(event.state)
        elif kind == "fw_result" and event.result is not None:
            row.result = int(event.result)
        elif kind == "fw_version" and event.fw_version:
            row.firmware = event.fw_version
        elif kind == "block":
            self._on_block(row, event)
        elif kind == "note" and event.detail and event.detail.startswith("stage download"):
            found = _SIZE_IN_NOTE.search(event.detail)
            row.total_bytes = int(found.group(1)) if found else None
            row.received.clear()
            row.downloaded = False
        else:
            rssi, lq = _int(event.rssi_dbm), _int(event.link_quality)
            if rssi is None and lq is None:
                if kind not in ("campaign", "decision", "fault"):
                    return
            else:
                row.rssi_dbm = rssi if rssi is not None else row.rssi_dbm
                row.link_quality = lq if lq is not None else row.link_quality
        self._throttle.poke()

    def _on_block(self, row: _Row, event: Event) -> None:
        if event.detail == "retransmission" or event.block is None:
            return
        source = event.source
        last_block, done = row.received.get(source, (-1, 0))
        if event.block < last_block or (event.block == 0 and last_block >= 0):
            done = 0  # a new transfer (a retry) starts again
            row.downloaded = False
        elif event.block == last_block:
            return  # the same block again
        row.received[source] = (event.block, done + (event.bytes or 0))

    # -- display side (worker thread) -------------------------------------------------------
    def follow(self, campaign: Any) -> None:
        """Show ``campaign``'s per-device status in the ``campaign`` column."""
        self.campaign = campaign
        self._throttle.poke()

    def _campaign_status(self, endpoint: str) -> str | None:
        campaign = self.campaign
        if campaign is None:
            return None
        run = campaign.runs.get(endpoint)
        return None if run is None else str(run.status)

    def _build(self) -> pd.DataFrame:
        import pandas as pd

        with self._lock:
            rows = list(self._rows.values())
        records = []
        for row in sorted(rows, key=lambda r: _natural(r.endpoint)):
            records.append(
                {
                    "endpoint": row.endpoint,
                    "registered": row.registered,
                    "state": None if row.state is None else _name(State, row.state),
                    "result": None if row.result is None else _result_text(row.result),
                    "firmware": row.firmware,
                    "rssi_dbm": row.rssi_dbm,
                    "link_quality": row.link_quality,
                    "progress_pct": row.progress(self.expected_bytes),
                    "campaign": self._campaign_status(row.endpoint),
                }
            )
        frame = pd.DataFrame(records, columns=list(COLUMNS))
        frame["endpoint"] = frame["endpoint"].astype("string")
        frame["registered"] = frame["registered"].astype(bool)
        frame["state"] = pd.Categorical(
            frame["state"], categories=[s.name for s in State], ordered=True
        )
        for col in ("result", "firmware", "campaign"):
            frame[col] = frame[col].astype("string")
        for col in ("rssi_dbm", "link_quality"):
            frame[col] = frame[col].astype("Int64")
        frame["progress_pct"] = frame["progress_pct"].astype("Float64")
        return frame

    def _render(self) -> None:
        frame = self._build()
        self._shown = frame
        self.table.value = _table_html(frame)
        registered = int(frame["registered"].sum())
        self.title.value = (
            f'<b style="{FONT_CSS}">Fleet</b> '
            f'<span style="{FONT_CSS}">{len(frame)} devices, {registered} registered</span>'
        )

    def refresh(self) -> None:
        """Re-render now (in the calling thread)."""
        self._throttle.flush()

    def frame(self) -> pd.DataFrame:
        """The table as last shown.

        Returns
        -------
        pandas.DataFrame
            ``endpoint`` (string), ``registered`` (bool), ``state`` (ordered category of
            /5/0/3 names, NA when unknown), ``result`` (string "1 SUCCESS"), ``firmware``
            (string), ``rssi_dbm``, ``link_quality`` (Int64), ``progress_pct`` (Float64,
            0..100 of the current download, NA when none), ``campaign`` (string status of the
            followed campaign). One row per device in natural endpoint order; RangeIndex.
        """
        shown = self._shown
        if shown is None:
            shown = self._shown = self._build()
        return shown.copy()

    @property
    def renders(self) -> int:
        """How many times the table was rendered."""
        return self._throttle.runs

    def close(self) -> None:
        """Stop following the lab and close the widgets."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        self._throttle.close()
        self.widget.close()
        self.title.close()
        self.table.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<FleetDashboard {len(self._rows)} devices>"


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _name(enum: type[State] | type[UpdateResult], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def _result_text(code: int) -> str:
    try:
        return result_label(code)
    except ValueError:
        return str(code)


# Inline styles only where a cell differs: the table can have hundreds of rows, re-sent a few
# times a second; padding comes from the table's ``cellpadding``, rules from the rows.
_ROW = '<tr style="border-bottom:1px solid #ddd">'
_DASH = "<td>–</td>"


def _state_cell(state: Any) -> str:
    if _missing(state):
        return _DASH
    style = STATE_STYLES.get(str(state))
    if style is None:
        return f"<td>{esc(state)}</td>"
    dark = str(state) in ("DOWNLOADED", "UPDATING")
    colour = "#ffffff" if dark else "#000000"
    return (
        f'<td style="background:{style.color};color:{colour};font-weight:bold">'
        f"{esc(style.label)}</td>"
    )


def _result_cell(result: Any) -> str:
    text = esc(result)
    if not text:
        return _DASH
    code = int(text.split(" ", 1)[0]) if text.split(" ", 1)[0].isdigit() else None
    colour = result_color(code) if code is not None and 0 <= code <= 11 else "#333333"
    return f'<td style="color:{colour};font-weight:bold">{text}</td>'


def _progress_cell(pct: Any) -> str:
    if _missing(pct):
        return _DASH
    value = float(pct)
    bar = (
        f'<div style="width:120px;height:12px;background:#eee;display:inline-block;'
        f'vertical-align:middle;margin-right:6px">'
        f'<div style="width:{value:.0f}%;height:12px;background:{OKABE_ITO["sky_blue"]}">'
        f"</div></div>"
    )
    return f'<td style="white-space:nowrap">{bar}{value:.0f} %</td>'


def _table_html(frame: pd.DataFrame) -> str:
    heads: tuple[str, ...] = (
        "endpoint",
        "registered",
        "State /5/0/3",
        "Result /5/0/5",
        "firmware /3/0/3",
        "RSSI dBm /4/0/2",
        "LQ /4/0/3",
        "download",
        "campaign",
    )
    show_campaign = frame["campaign"].notna().any()
    if not show_campaign:
        heads = heads[:-1]
    head = "".join(f'<th style="text-align:left">{h}</th>' for h in heads)
    body = []
    for rec in frame.itertuples(index=False):
        cells = [
            f'<td style="font-family:monospace">{esc(rec.endpoint)}</td>',
            f"<td>{'yes' if rec.registered else '<b>no</b>'}</td>",
            _state_cell(rec.state),
            _result_cell(rec.result),
            f'<td style="font-family:monospace">{esc(rec.firmware) or "–"}</td>',
            f'<td style="text-align:right">{esc(rec.rssi_dbm) or "–"}</td>',
            f'<td style="text-align:right">{esc(rec.link_quality) or "–"}</td>',
            _progress_cell(rec.progress_pct),
        ]
        if show_campaign:
            cells.append(f"<td>{esc(rec.campaign) or '–'}</td>")
        body.append(f"{_ROW}{''.join(cells)}</tr>")
    if not body:
        body.append(f'{_ROW}<td colspan="{len(heads)}">no devices yet</td></tr>')
    return (
        f'<table cellpadding="5" style="{FONT_CSS}border-collapse:collapse">'
        f'<thead><tr style="border-bottom:2px solid #444">{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
