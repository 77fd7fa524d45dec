"""The outcome of one device's firmware update: what happened, how long each stage took.

:class:`Outcome` is what :func:`labkit.fota.update` returns and what ``labkit fota`` prints.
It is plain data (frozen), renders itself in a notebook (``_repr_html_``), flattens to a dict
(:meth:`Outcome.as_row`) for a DataFrame of many runs, and maps to the exit code of the
command (DESIGN.md section 5): 0 SUCCESS, 1 any other final result (or a refusal), 3 timeout or
stuck. It never talks to a device.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from html import escape
from typing import Any

from labkit.lwm2m.objects import State, UpdateResult

__all__ = ["EXIT_FAILURE", "EXIT_SUCCESS", "EXIT_TIMEOUT", "EXIT_USAGE", "Outcome"]

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How one firmware update attempt ended.

    Attributes
    ----------
    endpoint, method, protocol:
        The device and how the package was delivered (``"push"``/``"pull"``, ``"coap"``/
        ``"http"``).
    result:
        The last Update Result (/5/0/5) the device reported (None when never read). For a
        device that does not persist /5 across the reboot this is INITIAL even on success
        (see ``success`` and :attr:`effective_result`).
    final_state:
        The last State (/5/0/3) the device reported.
    success:
        True when the device runs the new firmware: Result 1, or (no persistence) /3/0/3
        changed as expected.
    stuck_in:
        The State the device stayed in without progress until the timeout (None otherwise).
    reason:
        A sentence saying why the attempt ended as it did.
    fw_before, fw_after:
        /3/0/3 before and after (None when unknown).
    started_at, finished_at:
        Lab clock (seconds since the epoch).
    check_s, download_s, update_s, reboot_s:
        Stage durations in seconds (None for a stage not reached): reading the device's /5
        and setting up the observations; delivery until DOWNLOADED; Execute /5/0/2 until the
        device was last heard before its reboot (or until the final State without a reboot);
        from then until the new registration.
    bytes_sent, blocks:
        PUSH: bytes and Block1 blocks acknowledged. PULL: bytes and CoAP blocks the repository
        served for the package.
    retries:
        Requests repeated after a timeout (reads, polls, the observe set-up).
    notifications, polls:
        Observe notifications received for /5/0/3 and /5/0/5, and poll rounds (reads because a
        notification was overdue or the device does not notify).
    refused:
        True when nothing was sent because the device does not allow the request.
    timed_out:
        True when the attempt ended on a timeout (stuck, unreachable, never re-registered).
    rebooted:
        True when the device registered again after Execute.
    cancelled:
        True when the orchestrator cancelled (``cancel_after``).
    package_size, block_size, uri, expected_version:
        The request's parameters (``uri`` for PULL; ``expected_version`` as announced by the
        package).
    state_source, result_source:
        Where ``final_state`` and ``result`` came from: ``"notification"``, ``"poll"``,
        ``"read"`` or ``"read-after-state"`` (a read just before the verdict; see
        :data:`labkit.fota.update.SOURCES`); None when never known.
    confirmed:
        True when the verdict rests on values read from the device just before it (not on
        notifications alone, which may be reordered, coalesced, late or lost).
    confirm_reads:
        How many times State and Result were read before a verdict.
    """

    endpoint: str
    method: str
    protocol: str
    result: UpdateResult | None = None
    final_state: State | None = None
    success: bool = False
    stuck_in: State | None = None
    reason: str = ""
    fw_before: str | None = None
    fw_after: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    check_s: float | None = None
    download_s: float | None = None
    update_s: float | None = None
    reboot_s: float | None = None
    bytes_sent: int = 0
    blocks: int = 0
    retries: int = 0
    notifications: int = 0
    polls: int = 0
    refused: bool = False
    timed_out: bool = False
    rebooted: bool = False
    cancelled: bool = False
    package_size: int = 0
    block_size: int | None = None
    uri: str | None = None
    expected_version: str | None = None
    state_source: str | None = None
    result_source: str | None = None
    confirmed: bool = False
    confirm_reads: int = 0

    # -- derived ----------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at

    @property
    def effective_result(self) -> UpdateResult | None:
        """The result to report: SUCCESS when success was judged from /3/0/3 (Result 0);
        None for a Result 1 that was not accepted as this attempt's success (stale)."""
        if self.success:
            return UpdateResult.SUCCESS
        if self.result is UpdateResult.SUCCESS:
            return None  # a stale or unconfirmed SUCCESS is not reported as one
        return self.result

    @property
    def exit_code(self) -> int:
        """0 success, 3 timeout/stuck, 1 anything else (another final result, a refusal)."""
        if self.success:
            return EXIT_SUCCESS
        if self.timed_out or self.stuck_in is not None:
            return EXIT_TIMEOUT
        return EXIT_FAILURE

    @property
    def result_line(self) -> str:
        """``RESULT <code> <NAME>``; ``RESULT - STUCK|TIMEOUT|REFUSED`` when there is no final
        result code to report."""
        if self.refused:
            return "RESULT - REFUSED"
        if self.stuck_in is not None:
            return "RESULT - STUCK"
        if self.timed_out:
            return "RESULT - TIMEOUT"
        r = self.effective_result
        if r is None:
            return "RESULT - UNKNOWN"
        return f"RESULT {int(r)} {r.name}"

    @property
    def summary(self) -> str:
        """One line: endpoint, method, result, reason."""
        head = self.result_line.removeprefix("RESULT ")
        if self.stuck_in is not None:
            head = f"stuck in state {self.stuck_in.name}"
        return f"{self.endpoint}: {self.method}/{self.protocol} {head} -- {self.reason}"

    def as_row(self) -> dict[str, Any]:
        """A flat dict (enum members as names) for ``pandas.DataFrame([o.as_row() ...])``."""
        row: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, State | UpdateResult):
                value = value.name
            row[f.name] = value
        effective = self.effective_result
        row["effective_result"] = None if effective is None else effective.name
        row["duration_s"] = self.duration_s
        row["exit_code"] = self.exit_code
        return row

    def __str__(self) -> str:
        return self.summary

    def _repr_html_(self) -> str:
        colour = "#2e7d32" if self.success else ("#b26a00" if self.exit_code == 3 else "#c62828")
        head = escape(self.result_line.removeprefix("RESULT "))
        if self.stuck_in is not None:
            head = f"stuck in state {escape(self.stuck_in.name)}"

        def secs(v: float | None) -> str:
            return "—" if v is None else f"{v:.2f} s"

        rows = [
            ("device", self.endpoint),
            (
                "method",
                f"{self.method} over {self.protocol}"
                + (f", {self.block_size} B blocks" if self.block_size else ""),
            ),
            ("firmware", f"{self.fw_before or '?'} → {self.fw_after or '?'}"),
            (
                "state / result",
                f"{self.final_state.name if self.final_state is not None else '?'}"
                f" / {self.result.name if self.result is not None else '?'}",
            ),
            ("reason", self.reason),
            (
                "state / result from",
                f"{self.state_source or '?'} / {self.result_source or '?'}",
            ),
            ("check", secs(self.check_s)),
            ("download", secs(self.download_s)),
            ("update", secs(self.update_s)),
            ("reboot", secs(self.reboot_s)),
            ("total", secs(self.duration_s)),
            ("bytes", f"{self.bytes_sent} of {self.package_size} in {self.blocks} blocks"),
            (
                "notifications / polls / retries",
                f"{self.notifications} / {self.polls} / {self.retries}",
            ),
        ]
        if self.uri:
            rows.insert(2, ("package URI", self.uri))
        body = "".join(
            f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<div><b style='color:{colour}'>{head}</b><table>{body}</table></div>"
