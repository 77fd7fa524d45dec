"""A running lab with three simulated devices, and helpers to wait for the widgets.

Every wait is bounded (:func:`wait_until` polls with a deadline); nothing sleeps for a fixed
time except where a test must show that something does *not* happen within a window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import matplotlib
import pytest

from labkit.runtime import Lab

matplotlib.use("Agg")

T = TypeVar("T")

#: A package that takes ~1 s to PUSH in 16-byte blocks over loopback: long enough to click
#: pause and cancel while a campaign runs.
SLOW_SIZE = 16 * 1024
SLOW_BLOCK = 16


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``predicate()`` until it is truthy; its value. TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{getattr(predicate, '__name__', predicate)} within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(request_timeout=5.0) as lab:
        lab.add_devices(3)
        yield lab


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    """Register panels to close at the end of the test (their worker threads stop)."""
    panels: list[Any] = []

    def add(panel: Any) -> Any:
        panels.append(panel)
        return panel

    yield add
    for panel in reversed(panels):
        panel.close()
