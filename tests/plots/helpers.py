"""Counting what a plot drew, and what the seeded campaign should make it draw."""

from __future__ import annotations

from collections import Counter

from matplotlib.axes import Axes
from matplotlib.collections import Collection

from labkit.events import Event


def collections(ax: Axes, prefix: str) -> list[Collection]:
    return [c for c in ax.collections if str(c.get_gid() or "").startswith(prefix)]


def n_points(ax: Axes, prefix: str) -> int:
    """Markers drawn by scatter collections whose gid starts with ``prefix``."""
    return sum(len(c.get_offsets()) for c in collections(ax, prefix))


def n_paths(ax: Axes, prefix: str) -> int:
    """Polygons in collections whose gid starts with ``prefix``."""
    return sum(len(c.get_paths()) for c in collections(ax, prefix))


def no_data_text(ax: Axes) -> bool:
    return any(t.get_gid() == "no-data" for t in ax.texts)


def state_changes(events: list[Event], device: str) -> list[int]:
    """The device's /5 States with consecutive repeats removed: one entry per interval."""
    out: list[int] = []
    for e in events:
        is_state = e.device == device and e.kind == "fw_state" and e.state is not None
        if is_state and (not out or out[-1] != e.state):
            out.append(e.state)  # type: ignore[arg-type]
    return out


def result_changes(events: list[Event], device: str) -> list[int]:
    """The device's Update Results with consecutive repeats and INITIAL removed."""
    seen: list[int] = []
    for e in events:
        is_result = e.device == device and e.kind == "fw_result" and e.result is not None
        if is_result and (not seen or seen[-1] != e.result):
            seen.append(e.result)  # type: ignore[arg-type]
    return [r for r in seen if r != 0]


def devices(events: list[Event]) -> list[str]:
    return sorted({e.device for e in events if e.device is not None})


def final_results(events: list[Event]) -> Counter[int]:
    """Each attempt's final result in the campaign (every attempt reports exactly one)."""
    return Counter(r for d in devices(events) for r in result_changes(events, d))
