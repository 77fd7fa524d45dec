"""The refresh throttle: pokes merge, runs keep their distance, flush and close work."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from labkit.ui._common import Throttle, esc, status_html
from tests.ui.conftest import wait_until


def test_a_burst_of_pokes_gives_few_runs() -> None:
    starts: list[float] = []
    throttle = Throttle(lambda: starts.append(time.monotonic()), 0.1)
    try:
        end = time.monotonic() + 0.55
        while time.monotonic() < end:
            throttle.poke()
            time.sleep(0.001)
        wait_until(lambda: throttle.runs >= 2, timeout=2)
        count = len(starts)
        assert 2 <= count <= 0.55 / 0.1 + 2
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(g >= 0.1 - 0.01 for g in gaps), gaps
    finally:
        throttle.close()


def test_no_poke_no_run_and_the_last_poke_is_shown() -> None:
    seen: list[int] = []
    value = [0]
    throttle = Throttle(lambda: seen.append(value[0]), 0.05)
    try:
        time.sleep(0.15)
        assert seen == []
        for i in range(1, 50):
            value[0] = i
            throttle.poke()
        wait_until(lambda: seen and seen[-1] == 49, timeout=2)
    finally:
        throttle.close()


def test_flush_runs_in_the_caller_and_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    threads: list[str] = []

    def fn() -> None:
        threads.append(threading.current_thread().name)
        raise RuntimeError("boom")

    throttle = Throttle(fn, 0.05, name="tw")
    try:
        throttle.flush()
        assert threads == [threading.current_thread().name]
        throttle.poke()
        wait_until(lambda: len(threads) == 2, timeout=2)
        assert threads[1] == "tw"
        assert "boom" in caplog.text
    finally:
        throttle.close()
    assert throttle.closed
    throttle.poke()  # harmless after close


def test_bad_interval_and_escaping() -> None:
    with pytest.raises(ValueError, match="interval"):
        Throttle(lambda: None, 0)
    assert esc("<b>") == "&lt;b&gt;"
    assert esc(None) == ""
    assert "error" not in status_html("x", kind="error")  # the kind is a colour, not text
    assert "&lt;" in status_html("<")
