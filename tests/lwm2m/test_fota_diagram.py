"""labkit.lwm2m.fota_diagram: the teaching diagram (one arrow per State pair) and the complete
one, both generated from the /5 transition table."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from labkit.lwm2m.fota import TRANSITIONS
from labkit.lwm2m.fota_diagram import (
    CONFIG_WRITE_EVENTS,
    main,
    mermaid_state_diagram,
    teaching_diagram,
    teaching_edges,
)
from labkit.lwm2m.objects import State

ROOT = Path(__file__).resolve().parents[2]
ARROW = re.compile(r"^\s+(\w+) --> (\w+): (.+)$")
NAMES = {s.name for s in State}


def arrows(text: str) -> list[tuple[str, str, str]]:
    return [m.groups() for line in text.splitlines() if (m := ARROW.match(line))]


def test_teaching_diagram_has_at_most_one_arrow_per_state_pair() -> None:
    pairs = Counter((a, b) for a, b, _ in arrows(teaching_diagram()))
    assert pairs and max(pairs.values()) == 1, pairs
    assert all(a in NAMES and b in NAMES and a != b for a, b in pairs)


def test_teaching_diagram_has_the_pairs_of_the_complete_one() -> None:
    full = {(a, b) for a, b, _ in arrows(mermaid_state_diagram(config_writes=False)) if a != b}
    teaching = {(a, b) for a, b, _ in arrows(teaching_diagram())}
    assert teaching == full
    assert ("UPDATING", "DOWNLOADED") in teaching  # the rollback of T17 is drawn
    assert len(arrows(mermaid_state_diagram(config_writes=False))) > 3 * len(teaching)


def test_every_state_change_of_the_table_is_on_its_arrow() -> None:
    edges = teaching_edges()
    for (state, event_type), rules in TRANSITIONS.items():
        if event_type.__name__ in CONFIG_WRITE_EVENTS:
            continue
        for rule in rules:
            if rule.rejects:
                continue
            hops = [state, *rule.via, rule.to if rule.to is not None else state]
            for a, b in pairwise(hops):
                if a is not b:
                    assert edges[(a, b)], (rule.id, a, b)
    labels = {(a, b): label for a, b, label in arrows(teaching_diagram())}
    assert "Execute Update" in labels[("DOWNLOADED", "UPDATING")]
    assert "Execute Cancel" in labels[("DOWNLOADING", "IDLE")]
    assert labels[("UPDATING", "DOWNLOADED")] == "install failed"


def test_teaching_notes_name_the_result_codes() -> None:
    notes = {
        m.group(1): m.group(2)
        for line in teaching_diagram().splitlines()
        if (m := re.match(r"^\s+note (?:left|right) of (\w+): (.+)$", line))
    }
    assert set(notes) == NAMES
    assert "1 SUCCESS" in notes["IDLE"] and "10 CANCELLED" in notes["IDLE"]
    assert "failure's code" in notes["IDLE"]
    assert "8 UPDATE_FAILED" in notes["DOWNLOADED"] and "11 DEFERRED" in notes["DOWNLOADED"]
    for bad in (";", "#", '"', "<", ">"):
        assert all(bad not in label for _, _, label in arrows(teaching_diagram()))


def test_command_prints_the_teaching_diagram_and_full_on_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == teaching_diagram()
    assert main(["--full"]) == 0
    full = capsys.readouterr().out
    assert full == mermaid_state_diagram(config_writes=False, rejections=True)
    assert "note right of UPDATING" in full


def test_python_dash_m_runs_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "labkit.lwm2m.fota_diagram"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    ).stdout
    assert out == teaching_diagram()


def test_readme_shows_the_teaching_diagram() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"```mermaid\n{teaching_diagram()}```" in readme, (
        "README.md: paste `python -m labkit.lwm2m.fota_diagram` into its mermaid block"
    )
