"""Suite-wide test hygiene: no test leaks an open matplotlib figure into the next one."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # only when a test used pyplot; importing it costs time
        pyplot.close("all")
