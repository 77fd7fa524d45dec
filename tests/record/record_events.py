"""Shared event sequences for the record tests: a hand-built two-device FOTA run."""

from __future__ import annotations

from labkit.events import Event

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def _e(dt: float, source: str, kind: str, device: str | None = None, **kw: object) -> Event:
    return Event(ts=T0 + dt, source=source, kind=kind, device=device, **kw)  # type: ignore[arg-type]


def scenario() -> list[Event]:
    """Two devices, three attempts, in the order a lab would log them.

    dev-a: PUSH over CoAP, one retransmitted block, reboot, SUCCESS, 1.0.0 -> 1.1.0.
    dev-b: a stale SUCCESS from an earlier update, a "wait" decision on a weak link, then PULL
    over HTTP losing the connection (4), then PULL again failing at install (8, back to
    DOWNLOADED).
    """
    a, b = "dev-a", "dev-b"
    return [
        _e(0.00, "server", "registered", a),
        _e(0.05, "server", "registered", b),
        _e(0.10, "server", "fw_version", a, fw_version="1.0.0"),
        _e(0.15, "server", "fw_version", b, fw_version="1.0.0"),
        _e(0.20, "server", "fw_state", a, state=0),
        _e(0.25, "server", "fw_result", b, result=1),  # stale, from an earlier update
        _e(0.30, "server", "fw_result", a, result=0),
        _e(0.35, "server", "link", b, rssi_dbm=-110, link_quality=10),
        _e(0.40, "server", "link", a, rssi_dbm=-75, link_quality=80, battery=90),
        _e(
            0.45,
            "policy",
            "decision",
            b,
            decision="wait",
            reason="weak signal",
            rssi_dbm=-110,
            link_quality=10,
        ),
        _e(0.50, "policy", "decision", a, decision="push", reason="good link"),
        _e(0.60, "server", "request", a, method="PUT", path="/5/0/0"),
        _e(0.70, "server", "fw_state", a, state=1),
        _e(0.80, "server", "block", a, block=0, bytes=512, protocol="coap"),
        _e(0.90, "server", "block", a, block=1, bytes=512, protocol="coap"),
        _e(
            0.95, "server", "block", a, block=1, bytes=512, protocol="coap", detail="retransmission"
        ),
        _e(1.00, "server", "block", a, block=2, bytes=100, protocol="coap"),
        _e(1.10, "server", "fw_state", a, state=2),
        _e(1.20, "server", "request", a, method="POST", path="/5/0/2"),
        _e(1.30, "server", "fw_state", a, state=3),
        _e(1.40, "device", "reboot", a),
        _e(1.50, "server", "link", b, rssi_dbm=-90),
        _e(1.55, "policy", "decision", b, decision="pull", reason="link recovered"),
        _e(1.60, "server", "request", b, method="PUT", path="/5/0/1"),
        _e(1.65, "server", "fw_result", b, result=1),  # stale re-read: must not end anything
        _e(1.70, "server", "fw_state", b, state=1),
        _e(1.75, "server", "fw_result", b, result=0),
        _e(1.80, "repo", "block", b, block=0, bytes=1024, protocol="http", code="206"),
        _e(1.90, "repo", "block", b, block=1, bytes=1024, protocol="http", code="206"),
        _e(2.00, "server", "fw_state", b, state=0),
        _e(2.05, "device", "fw_result", b, result=4),
        _e(2.10, "server", "fw_result", b, result=4),  # the same change seen by the server
        _e(2.40, "server", "registered", a),
        _e(2.50, "server", "fw_state", a, state=0),
        _e(2.60, "server", "fw_result", a, result=1),
        _e(2.70, "server", "fw_version", a, fw_version="1.1.0"),
        _e(3.00, "policy", "decision", b, decision="pull", reason="retry after 4"),
        _e(3.10, "server", "request", b, method="PUT", path="/5/0/1"),
        _e(3.20, "server", "fw_state", b, state=1),
        _e(3.25, "server", "fw_result", b, result=0),
        _e(3.30, "repo", "block", b, block=0, bytes=1024, protocol="http", code="206"),
        _e(3.40, "repo", "block", b, block=1, bytes=1024, protocol="http", code="206"),
        _e(3.50, "repo", "block", b, block=2, bytes=500, protocol="http", code="206"),
        _e(3.60, "server", "fw_state", b, state=2),
        _e(3.70, "server", "request", b, method="POST", path="/5/0/2"),
        _e(3.75, "server", "response", b, code="2.04", rtt_ms=12.5),
        _e(3.80, "server", "fw_state", b, state=3),
        _e(4.00, "device", "reboot", b),
        _e(4.50, "server", "registered", b),
        _e(4.60, "server", "fw_state", b, state=2),
        _e(4.70, "server", "fw_result", b, result=8),
        _e(4.80, "server", "fw_version", b, fw_version="1.0.0"),
        _e(5.00, "lab", "note", None, detail="run over"),
    ]
