"""The look of every labkit plot: colours, hatches, markers and text sizes, in one place.

This module owns the visual vocabulary the plots share, so that DOWNLOADING, SUCCESS or a
``push`` decision look the same in every picture. It never draws and never touches matplotlib's
global ``rcParams``: plots pass these values explicitly to each call.

Choices, made for a lecture-room projector and for every reader:

- Colours come from the Okabe-Ito palette (safe for the common colour-vision deficiencies);
  /5 States, which are drawn as filled bands, are ordered by lightness (IDLE lightest,
  UPDATING darkest) *and* carry distinct hatches, so they stay apart in a grey print-out.
- Every PUSH decision has its own marker shape as well as its colour: push ▲, wait ●, pull ■,
  give up ✕.
- Update Results are always written with their /5/0/5 code and name ("1 SUCCESS"); SUCCESS is
  a green disc, each failure code a vermillion marker of its own shape (never the ✕ of "give
  up"), CANCELLED purple, DEFERRED an orange star.
- Text is large (titles 15 pt, labels 13 pt, ticks 12 pt) and figures are 10 in wide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from labkit.lwm2m.objects import State, UpdateResult

__all__ = [
    "DECISION_ORDER",
    "DECISION_STYLES",
    "FIGSIZE",
    "FONT",
    "GROUP_COLORS",
    "GROUP_HATCHES",
    "GROUP_LINESTYLES",
    "GROUP_MARKERS",
    "LQ_COLOR",
    "OKABE_ITO",
    "RESULT_MARKERS",
    "RSSI_COLOR",
    "STATE_STYLES",
    "MarkStyle",
    "PatchStyle",
    "decision_label",
    "decision_style",
    "group_style",
    "result_color",
    "result_label",
    "result_marker",
    "state_label",
]

#: Okabe & Ito (2008), "Color Universal Design": eight colours distinguishable by readers with
#: the common colour-vision deficiencies.
OKABE_ITO: Mapping[str, str] = MappingProxyType(
    {
        "black": "#000000",
        "orange": "#E69F00",
        "sky_blue": "#56B4E9",
        "bluish_green": "#009E73",
        "yellow": "#F0E442",
        "blue": "#0072B2",
        "vermillion": "#D55E00",
        "reddish_purple": "#CC79A7",
    }
)
_GREY = "#999999"
_LIGHT_GREY = "#E8E8E8"
_INDIGO = "#332288"  # Paul Tol's "indigo": darker than any Okabe-Ito colour, for UPDATING

#: Text sizes in points, chosen for a projector at the back of a lecture room.
FONT: Mapping[str, float] = MappingProxyType(
    {"title": 15, "label": 13, "tick": 12, "legend": 11, "note": 12, "small": 9}
)

#: Default figure size (inches) of a new figure.
FIGSIZE: tuple[float, float] = (10.0, 4.5)


@dataclass(frozen=True, slots=True)
class PatchStyle:
    """How a filled area (a State band, a bar) is drawn."""

    label: str
    color: str
    hatch: str | None
    hatch_color: str
    edge_color: str


@dataclass(frozen=True, slots=True)
class MarkStyle:
    """How a point (a decision, a result) is drawn."""

    label: str
    color: str
    marker: str
    size: float  # marker size in points (``plot``'s markersize; ``scatter`` wants size**2)


def state_label(state: State | int | str) -> str:
    """``"1 DOWNLOADING"``: a /5/0/3 State as code and name."""
    s = State[state] if isinstance(state, str) else State(state)
    return f"{int(s)} {s.name}"


def result_label(result: UpdateResult | int | str) -> str:
    """``"1 SUCCESS"``: a /5/0/5 Update Result as code and name."""
    r = _result(result)
    return f"{int(r)} {r.name}"


#: /5/0/3 States: lightness falls as the update progresses, and each has its own hatch.
STATE_STYLES: Mapping[str, PatchStyle] = MappingProxyType(
    {
        "IDLE": PatchStyle(state_label(State.IDLE), _LIGHT_GREY, None, "#777777", "#BBBBBB"),
        "DOWNLOADING": PatchStyle(
            state_label(State.DOWNLOADING), OKABE_ITO["sky_blue"], "///", "#1F4E6B", "#1F4E6B"
        ),
        "DOWNLOADED": PatchStyle(
            state_label(State.DOWNLOADED), OKABE_ITO["bluish_green"], "..", "#FFFFFF", "#00523C"
        ),
        "UPDATING": PatchStyle(state_label(State.UPDATING), _INDIGO, "xx", "#FFFFFF", "#1A1144"),
    }
)


#: Marker shape of each /5/0/5 code: SUCCESS a disc, each failure its own shape (none of them
#: the ✕ that marks a "give up" decision), DEFERRED a star, INITIAL a dot.
RESULT_MARKERS: Mapping[int, str] = MappingProxyType(
    {
        0: ".",
        1: "o",
        2: "<",
        3: ">",
        4: "v",
        5: "D",
        6: "h",
        7: "p",
        8: "s",
        9: "H",
        10: "8",
        11: "*",
    }
)


def _result(result: UpdateResult | int | str) -> UpdateResult:
    return UpdateResult[result] if isinstance(result, str) else UpdateResult(result)


def result_color(result: UpdateResult | int | str) -> str:
    """Green for SUCCESS, vermillion for failures 2..9, purple for CANCELLED, orange for
    DEFERRED, grey for INITIAL."""
    r = _result(result)
    if r is UpdateResult.SUCCESS:
        return OKABE_ITO["bluish_green"]
    if r is UpdateResult.INITIAL:
        return _GREY
    if r is UpdateResult.DEFERRED:
        return OKABE_ITO["orange"]
    if r is UpdateResult.CANCELLED:
        return OKABE_ITO["reddish_purple"]
    return OKABE_ITO["vermillion"]


def result_marker(result: UpdateResult | int | str) -> str:
    """The marker shape of a result (:data:`RESULT_MARKERS`)."""
    return RESULT_MARKERS[int(_result(result))]


#: The policy's four answers, in the order legends and strip plots list them.
DECISION_ORDER: tuple[str, ...] = ("push", "wait", "pull", "give_up")

#: PUSH decisions: push ▲, wait ●, pull ■, give up ✕ (shape alone tells them apart).
DECISION_STYLES: Mapping[str, MarkStyle] = MappingProxyType(
    {
        "push": MarkStyle("push", OKABE_ITO["bluish_green"], "^", 11),
        "wait": MarkStyle("wait", OKABE_ITO["blue"], "o", 9),
        "pull": MarkStyle("pull", OKABE_ITO["orange"], "s", 9),
        "give_up": MarkStyle("give up", OKABE_ITO["vermillion"], "X", 11),
    }
)
_OTHER_DECISION = MarkStyle("other", _GREY, "d", 9)


def decision_label(decision: str) -> str:
    """``"give up"`` for ``"give_up"``; other decisions as they are."""
    return DECISION_STYLES[decision].label if decision in DECISION_STYLES else str(decision)


def decision_style(decision: str) -> MarkStyle:
    """The marker of a decision; unknown decisions get a grey diamond."""
    style = DECISION_STYLES.get(str(decision))
    if style is not None:
        return style
    other = _OTHER_DECISION
    return MarkStyle(str(decision), other.color, other.marker, other.size)


#: Radio Signal Strength (/4/0/2) and Link Quality (/4/0/3) traces.
RSSI_COLOR = "#333333"
LQ_COLOR = OKABE_ITO["reddish_purple"]

#: Groups (policy, method, wave ...) in a grouped plot: colour, hatch, line style and marker
#: all change together, so groups stay apart without colour.
GROUP_COLORS: tuple[str, ...] = (
    OKABE_ITO["blue"],
    OKABE_ITO["orange"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["vermillion"],
    OKABE_ITO["black"],
    OKABE_ITO["yellow"],
)
GROUP_HATCHES: tuple[str | None, ...] = (None, "//", "..", "xx", "\\\\", "oo", "--", "++")
GROUP_LINESTYLES: tuple[object, ...] = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
GROUP_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")


def group_style(i: int) -> dict[str, object]:
    """Colour, hatch, line style and marker of the ``i``-th group (cycling)."""
    return {
        "color": GROUP_COLORS[i % len(GROUP_COLORS)],
        "hatch": GROUP_HATCHES[i % len(GROUP_HATCHES)],
        "linestyle": GROUP_LINESTYLES[i % len(GROUP_LINESTYLES)],
        "marker": GROUP_MARKERS[i % len(GROUP_MARKERS)],
    }
