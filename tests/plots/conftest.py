"""Plot tests draw with the Agg backend and close every figure they opened."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from labkit.events import Event
from labkit.record import events_to_frame
from tests.plots.campaign import campaign_events


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def campaign() -> list[Event]:
    """The seeded 20-device campaign as Event rows (the expected counts come from these)."""
    return campaign_events(20, seed=1)


@pytest.fixture(scope="session")
def campaign_df(campaign: list[Event]) -> pd.DataFrame:
    return events_to_frame(campaign, "plot-tests")
