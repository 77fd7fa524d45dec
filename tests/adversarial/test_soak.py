"""A short soak (the figures of the long one are in benchmarks/bench_soak.py): ``labkit serve
--record`` with a fleet at lifetime 60 s and a garbage flood loses no registration, keeps
answering, and its RSS and descriptors stay within loose bounds over 90 seconds."""

from __future__ import annotations

import pytest

from benchmarks.bench_soak import soak


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_short_soak() -> None:
    got = soak(minutes=1.5, devices=100, rate=300, seed=3)
    assert got["answering_at_end"]
    assert got["registered"] == 100 and got["lost"] == 0
    assert got["growth"] <= 1.5, got["samples"]
    assert got["fds_end"] <= got["fds_base"] + 8
