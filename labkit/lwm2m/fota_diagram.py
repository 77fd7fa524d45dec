"""A Mermaid ``stateDiagram-v2`` of the /5 state machine, drawn from its table.

The diagram is never written by hand: every accepting rule of
:data:`labkit.lwm2m.fota.TRANSITIONS` becomes one arrow per hop (a rule that passes through
intermediate states, like a single-message push ``IDLE -> DOWNLOADING -> DOWNLOADED``, draws
each hop with the same label). Rejections are not arrows -- they change nothing -- but are
listed as one note per state, so the picture still shows what a device refuses and with which
code. Print it with ``python -m labkit.lwm2m.fota_diagram`` and paste it into a Markdown
``mermaid`` block.
"""

from __future__ import annotations

from itertools import pairwise

from labkit.lwm2m.fota import TRANSITIONS, Rule
from labkit.lwm2m.objects import State

__all__ = ["edge_label", "mermaid_state_diagram"]

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


if __name__ == "__main__":  # pragma: no cover
    print(mermaid_state_diagram(config_writes=False, rejections=True), end="")
