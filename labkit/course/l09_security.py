"""Lesson 09, security section (``notebooks/09_real_device``): handshakes and bootstrap sequences.

Pure views of a run's event table (``lab.events()``): :func:`handshake_table` lists the DTLS
handshakes (``security`` events) with their outcome and reason; :func:`bootstrap_sequence`
lists one device's Bootstrap exchanges in order, as both sides recorded them; and
:func:`plot_bootstrap` draws that sequence as a message sequence chart (device, Bootstrap
server, LwM2M server). Nothing here opens a socket; keys never appear in events, so never here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["SECURITY_MODES", "bootstrap_sequence", "handshake_table", "plot_bootstrap"]

#: /0/x/2 Security Mode values (LwM2M 1.1 Security object); the lab implements 0 and 3.
SECURITY_MODES = {
    0: "Pre-Shared Key (DTLS-PSK) -- in the lab",
    1: "Raw Public Key",
    2: "Certificate",
    3: "NoSec (plain CoAP) -- in the lab",
    4: "Certificate with EST",
}

_REQUESTS = {
    "Bootstrap-Request": ("device", "bootstrap", "POST /bs?ep="),
    "Bootstrap-Discover": ("bootstrap", "device", "GET (Discover)"),
    "Bootstrap-Delete": ("bootstrap", "device", "DELETE"),
    "Bootstrap-Write": ("bootstrap", "device", "PUT (Write)"),
    "Bootstrap-Finish": ("bootstrap", "device", "POST /bs (Finish)"),
}


def handshake_table(events: pd.DataFrame) -> pd.DataFrame:
    """One row per DTLS handshake: who saw it, the device, outcome, reason and detail."""
    rows = events[events["kind"] == "security"]
    cols = ["ts", "source", "device", "code", "reason", "detail"]
    out = rows[cols].rename(columns={"code": "outcome"}).reset_index(drop=True)
    return out


def bootstrap_sequence(events: pd.DataFrame, endpoint: str) -> pd.DataFrame:
    """``endpoint``'s DTLS handshake with the Bootstrap server and the Bootstrap exchanges as
    that server recorded them, then its handshake and Register at the LwM2M server; ``t_ms``
    counts from the first row."""
    mine = events[events["device"] == endpoint]
    bs = mine[(mine["source"] == "bootstrap") & mine["kind"].isin(["security", "bootstrap"])]
    later = mine[(mine["source"] == "server") & mine["kind"].isin(["security", "registered"])]
    if len(bs):
        later = later[later["ts"] >= bs["ts"].min()]
    rows = pd.concat([bs, later]).sort_values("ts", kind="stable")
    out = rows[["ts", "source", "kind", "method", "path", "code", "reason", "detail"]].copy()
    if len(out):
        t0 = out["ts"].iloc[0]
        delta = out["ts"] - t0
        out.insert(0, "t_ms", delta.dt.total_seconds() * 1000 if hasattr(delta, "dt") else delta)
    return out.drop(columns=["ts"]).reset_index(drop=True)


def plot_bootstrap(events: pd.DataFrame, endpoint: str, ax: Any = None) -> Any:
    """A message sequence chart of ``endpoint``'s bootstrap and registration; returns ``ax``."""
    import matplotlib.pyplot as plt

    seq = bootstrap_sequence(events, endpoint)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.45 * (len(seq) + 3)))
    lanes = {"device": 0.0, "bootstrap": 1.0, "server": 2.0}
    names = ["device\n" + endpoint, "Bootstrap server", "LwM2M server"]
    steps = []
    for row in seq.itertuples(index=False):
        if row.kind == "bootstrap" and row.method in _REQUESTS:
            src, dst, label = _REQUESTS[row.method]
            if row.method in ("Bootstrap-Discover", "Bootstrap-Delete", "Bootstrap-Write"):
                label = f"{label} {row.path or ''}".strip()
            steps.append((src, dst, f"{label}  → {row.code}", "C0"))
        elif row.kind == "bootstrap":
            steps.append(("bootstrap", "bootstrap", f"sequence {row.reason}", "C2"))
        elif row.kind == "security":
            color = "C2" if row.reason == "ok" else "C3"
            peer = "bootstrap" if row.source == "bootstrap" else "server"
            steps.append(("device", peer, f"DTLS-PSK handshake: {row.reason}", color))
        elif row.kind == "registered":
            steps.append(("device", "server", "POST /rd (Register) → 2.01", "C1"))
    n = len(steps)
    for x in lanes.values():
        ax.plot([x, x], [0.5, n + 0.5], color="0.6", lw=1)
    for i, (src, dst, label, color) in enumerate(steps, start=1):
        y = n + 1 - i
        x0, x1 = lanes[src], lanes[dst]
        if x0 == x1:
            ax.annotate(label, (x0, y), xytext=(x0 + 0.05, y), va="center", fontsize=8, color=color)
            continue
        ax.annotate("", xy=(x1, y), xytext=(x0, y), arrowprops={"arrowstyle": "->", "color": color})
        ax.text((x0 + x1) / 2, y + 0.12, label, ha="center", va="bottom", fontsize=8, color=color)
    ax.set_xticks(list(lanes.values()), names)
    ax.xaxis.tick_top()
    ax.set_yticks([])
    ax.set_xlim(-0.3, 2.3)
    ax.set_ylim(0.3, n + 1)
    for side in ("right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"Bootstrap of {endpoint}, from the event table", fontsize=10, pad=28)
    return ax
