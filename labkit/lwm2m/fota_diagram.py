"""Mermaid ``stateDiagram-v2`` pictures of the /5 state machine, drawn from its table.

The diagrams are never written by hand; both come from :data:`labkit.lwm2m.fota.TRANSITIONS`:

* :func:`teaching_diagram` -- the one for students (README, notebook 02): the four States,
  at most one arrow per (from, to) pair, labelled with the triggers that take it, and the
  Update Results a State is entered with as one note per State. Staying in a State (the next
  block, a refused URI, a deferral) is no arrow; its result codes are in the note.
* :func:`mermaid_state_diagram` -- the complete one: every accepting rule becomes one arrow per
  hop, labelled with its rule id, guard and result (a rule that passes through intermediate
  states, like a single-message push ``IDLE -> DOWNLOADING -> DOWNLOADED``, draws each hop with
  the same label); rejections -- they change nothing -- are listed as one note per State.

``python -m labkit.lwm2m.fota_diagram`` prints the teaching diagram, ``--full`` the complete
one; paste either into a Markdown ``mermaid`` block.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from itertools import pairwise

from labkit.lwm2m.fota import TRANSITIONS, Rule
from labkit.lwm2m.objects import State, UpdateResult

__all__ = ["edge_label", "main", "mermaid_state_diagram", "teaching_diagram", "teaching_edges"]

#: Configuration writes (resources 11, 13, 14): self-loops in every state.
CONFIG_WRITE_EVENTS = frozenset({"WriteSeverity", "WriteMaxDeferPeriod", "WriteAutoUpgrade"})


def edge_label(rule: Rule, event_name: str) -> str:
    """The text on an arrow: ``"T1 WriteUri"``, the guard in brackets, the result set.

    Only characters Mermaid accepts in a transition label are used (no ``:``, ``;``, ``#``,
    quotes or angle brackets).
    """
    label = f"{rule.id} {event_name}"
    if rule.guard is not None:
        label += f" [{rule.guard.label}]"
    if rule.result == "event":
        label += " / result from event"
    elif rule.result is not None:
        label += f" / result {int(rule.result)}"
    return label


def mermaid_state_diagram(*, config_writes: bool = True, rejections: bool = False) -> str:
    """The machine as Mermaid ``stateDiagram-v2`` text.

    Parameters
    ----------
    config_writes : bool
        Draw the Severity/Max Defer Period/Auto Upgrade writes (W11/W13/W14), self-loops
        in every state. Leave them out for a README picture; they are then named in a note.
    rejections : bool
        Add one note per state listing the triggers it refuses, with code and rule id
        (configuration-write refusals only when ``config_writes``).

    Returns
    -------
    str
        Starts with ``stateDiagram-v2``; one ``A --> B: label`` line per hop of every
        accepting rule (duplicates dropped), in table order.
    """
    lines = ["stateDiagram-v2", "    [*] --> IDLE"]
    seen: set[str] = set()
    refused: dict[State, list[str]] = {state: [] for state in State}
    for (state, event_type), rules in TRANSITIONS.items():
        for rule in rules:
            is_config = event_type.__name__ in CONFIG_WRITE_EVENTS
            if is_config and not config_writes:
                continue
            if rule.rejects:
                text = f"{event_type.__name__} {rule.reply} {rule.id}"
                if text not in refused[state]:
                    refused[state].append(text)
                continue
            label = edge_label(rule, event_type.__name__)
            hops = [state, *rule.via, rule.to if rule.to is not None else state]
            for a, b in pairwise(hops):
                line = f"    {a.name} --> {b.name}: {label}"
                if line not in seen:
                    seen.add(line)
                    lines.append(line)
    if not config_writes:
        lines.append("    note left of IDLE: W11, W13, W14 config writes allowed in every state")
    if rejections:
        for state, texts in refused.items():
            lines.append(f"    note right of {state.name}")
            lines.append("        refused: " + ", ".join(texts))
            lines.append("    end note")
    return "\n".join(lines) + "\n"


#: How the teaching diagram names a trigger (the event types of :mod:`labkit.lwm2m.fota`).
TRIGGER_WORDS: dict[str, str] = {
    "WritePackage": "write package",
    "WriteUri": "write URI (PULL)",
    "ExecuteUpdate": "Execute Update",
    "ExecuteCancel": "Execute Cancel",
    "DownloadCompleted": "download complete",
    "DownloadFailed": "download failed",
    "DeferralEnded": "deferral over",
    "InstallSucceeded": "new image runs",
    "InstallFailed": "install failed",
}


def _hop_words(rule: Rule, event_name: str, to: State) -> str:
    """What takes one hop of ``rule``, in a student's words."""
    guard = rule.guard.label if rule.guard is not None else ""
    if to is State.UPDATING and "auto upgrade" in guard:
        return "auto upgrade"
    if event_name in ("WritePackage", "WriteUri") and to is State.IDLE:
        return "empty write (reset)"
    if event_name == "WritePackage":
        return "last block" if to is State.DOWNLOADED else "first block (PUSH)"
    return TRIGGER_WORDS.get(event_name, event_name)


def teaching_edges() -> dict[tuple[State, State], list[str]]:
    """``{(from, to): [trigger words, in table order]}`` for every change of State an
    accepting rule of the table makes (each hop of a multi-hop rule; no self-loops, no
    configuration writes)."""
    edges: dict[tuple[State, State], list[str]] = {}
    for (state, event_type), rules in TRANSITIONS.items():
        if event_type.__name__ in CONFIG_WRITE_EVENTS:
            continue
        for rule in rules:
            if rule.rejects:
                continue
            hops = [state, *rule.via, rule.to if rule.to is not None else state]
            for a, b in pairwise(hops):
                if a is b:
                    continue
                words = edges.setdefault((a, b), [])
                word = _hop_words(rule, event_type.__name__, b)
                if word not in words:
                    words.append(word)
    return edges


def _entry_results() -> dict[State, tuple[list[int], bool]]:
    """Per State: the Update Results a rule leaves it with (sorted), and whether a failure
    event brings its own code there."""
    found: dict[State, tuple[list[int], bool]] = {s: ([], False) for s in State}
    for (state, event_type), rules in TRANSITIONS.items():
        if event_type.__name__ in CONFIG_WRITE_EVENTS:
            continue
        for rule in rules:
            if rule.rejects or rule.result is None:
                continue
            end = rule.to if rule.to is not None else state
            codes, _ = found[end]
            if rule.result == "event":
                found[end] = (codes, True)
            elif int(rule.result) not in codes:
                codes.append(int(rule.result))
                codes.sort()
    return found


def teaching_diagram() -> str:
    """The /5 machine for students, as Mermaid ``stateDiagram-v2`` text.

    Returns
    -------
    str
        Starts with ``stateDiagram-v2``; the four States; one ``A --> B: triggers`` line per
        (from, to) pair that some rule takes (:func:`teaching_edges`, in table order); one
        note per State with the Update Results it is entered (or kept) with.
    """
    lines = ["stateDiagram-v2", "    [*] --> IDLE"]
    for (a, b), words in teaching_edges().items():
        lines.append(f"    {a.name} --> {b.name}: {', '.join(words)}")
    for state, (codes, from_event) in _entry_results().items():
        parts = [f"{c} {UpdateResult(c).name}" for c in codes]
        if from_event:
            parts.append("or the failure's code")
        side = "left" if state in (State.IDLE, State.DOWNLOADED) else "right"
        lines.append(f"    note {side} of {state.name}: Update Result {', '.join(parts)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m labkit.lwm2m.fota_diagram [--full]``: print a diagram."""
    parser = argparse.ArgumentParser(
        prog="python -m labkit.lwm2m.fota_diagram",
        description="Print the /5 state machine as Mermaid text, generated from its table.",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="every rule as its own arrow, with rule ids, guards and the refusals per state",
    )
    args = parser.parse_args(argv)
    if args.full:
        print(mermaid_state_diagram(config_writes=False, rejections=True), end="")
    else:
        print(teaching_diagram(), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
