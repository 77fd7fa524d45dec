"""labkit.course.l00_tour:
the helpers and exercises of notebook 00_tour;
pure ones first, then on a live lab.
"""

from __future__ import annotations

import pandas as pd

from labkit.course import l00_tour as lesson


def _events(rows: list[dict[str, object]]) -> pd.DataFrame:
    from labkit.record import empty_frame

    base = empty_frame()
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    frame["seq"] = range(len(frame))
    return pd.concat([base, frame], ignore_index=True)


def test_story_keeps_changes_and_drops_repeats() -> None:
    events = _events(
        [
            {"ts": 0.0, "device": "d", "source": "device", "kind": "registered", "detail": "p1"},
            {"ts": 0.1, "device": "d", "source": "server", "kind": "fw_state", "state": "IDLE"},
            {"ts": 0.2, "device": "d", "source": "device", "kind": "fw_state", "state": "IDLE"},
            {"ts": 0.3, "device": "d", "source": "device", "kind": "fw_state", "state": "UPDATING"},
            {
                "ts": 0.4,
                "device": "d",
                "source": "device",
                "kind": "fw_result",
                "result": "SUCCESS",
            },
            {"ts": 0.5, "device": "e", "source": "device", "kind": "fw_state", "state": "IDLE"},
            {"ts": 0.6, "device": "d", "source": "server", "kind": "request", "path": "/5/0/3"},
        ]
    )
    story = lesson.story(events, "d")
    assert list(story.columns) == ["t_ms", "source", "what", "value"]
    assert story["value"].tolist() == ["p1", "0 IDLE", "3 UPDATING", "1 SUCCESS"]
    assert story["source"].tolist() == ["device", "server", "device", "device"]
    assert story["t_ms"].tolist() == [0.0, 100.0, 300.0, 400.0]
    assert lesson.story(events.iloc[:0]).empty
    assert lesson.story(events, "nobody").empty
