"""Signal traces and per-datagram impairment: determinism, statistics, dips, loss, memory."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import statistics
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.lwm2m.objects import NetworkBearer
from labkit.sim import (
    PROFILES,
    Dip,
    LinkImpairment,
    LinkSample,
    SignalTrace,
    device_link,
    outage,
)
from labkit.sim.link import CACHED_CHUNKS, CHUNK_STEPS
from labkit.sim.profiles import DipModel, LinkProfile

NO_DIPS = DipModel(rate_per_hour=0.0, depth_db=10.0, duration_s=10.0)


def calm(name: str, **changes: object) -> LinkProfile:
    """A lab profile without random dips (and with ``changes``)."""
    return replace(PROFILES[name], dips=NO_DIPS, **changes)  # type: ignore[arg-type]


def values(samples: list[LinkSample]) -> list[tuple[int, int, float, float]]:
    return [(s.rssi_dbm, s.link_quality, s.loss, s.delay_s) for s in samples]


# -- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PROFILES))
def test_same_seed_same_trace_different_seed_different_trace(name: str) -> None:
    a = SignalTrace(PROFILES[name], seed=5).samples(0, 2000, 1.0)
    b = SignalTrace(PROFILES[name], seed=5).samples(0, 2000, 1.0)
    c = SignalTrace(PROFILES[name], seed=6).samples(0, 2000, 1.0)
    assert repr(a) == repr(b)  # byte for byte, floats included
    assert values(a) != values(c)


def test_trace_is_pinned() -> None:
    # A change of the algorithm (or of numpy's PCG64 normals) changes every saved run.
    trace = SignalTrace(PROFILES["lte-m"], 42)
    assert [s.rssi_dbm for s in trace.samples(0, 10, 1)] == [
        -100,
        -101,
        -101,
        -101,
        -100,
        -100,
        -100,
        -100,
        -100,
        -101,
    ]
    pairs = [(s.rssi_dbm, s.link_quality) for s in trace.samples(0, 1000, 1)]
    assert (
        hashlib.sha256(repr(pairs).encode()).hexdigest()
        == "08bae54af1bf5c1330ceb9f5999f92e491d8ec6e82ef8fce85e8bec5f446e32c"
    )


def test_sampling_order_does_not_matter() -> None:
    profile = PROFILES["lte-m"]
    times = [i * 7.3 for i in range(700)]  # ~5,100 s: many chunks, more than the cache holds
    in_order = SignalTrace(profile, 9)
    expected = {t: in_order.sample(t) for t in times}
    shuffled = times[:]
    random.Random(1).shuffle(shuffled)
    out_of_order = SignalTrace(profile, 9)
    assert out_of_order.sample(times[-1]) == expected[times[-1]]  # jump far ahead first
    for t in shuffled:
        assert out_of_order.sample(t) == expected[t]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=3 * CHUNK_STEPS * 5.0), min_size=1, max_size=20))
def test_any_access_pattern_gives_the_same_values(times: list[float]) -> None:
    profile = PROFILES["nb-iot"]
    reference = SignalTrace(profile, 3, step_s=5.0)
    for t in sorted(times):
        reference.sample(t)
    probe = SignalTrace(profile, 3, step_s=5.0)
    for t in times:
        assert probe.sample(t) == reference.sample(t)


def test_values_are_held_between_grid_steps() -> None:
    trace = SignalTrace(calm("wifi"), 2, start=100.0, step_s=10.0)
    a, b, c = trace.sample(130.0), trace.sample(139.9), trace.sample(140.0)
    assert (a.rssi_dbm, a.link_quality) == (b.rssi_dbm, b.link_quality)
    assert (b.t, c.t) == (139.9, 140.0)
    with pytest.raises(ValueError, match="start"):
        trace.sample(99.0)
    with pytest.raises(ValueError):
        trace.sample(math.nan)


def test_samples_is_half_open_like_range() -> None:
    trace = SignalTrace(PROFILES["lte-m"], 1)
    got = trace.samples(10, 20, 2.5)
    assert [s.t for s in got] == [10, 12.5, 15, 17.5]
    assert trace.samples(5, 5, 1) == []
    assert all(s.bearer is NetworkBearer.LTE_FDD for s in got)
    assert got[0].as_dict()["rssi_dbm"] == got[0].rssi_dbm
    with pytest.raises(ValueError):
        trace.samples(0, 10, 0)
    with pytest.raises(ValueError):
        SignalTrace(PROFILES["lte-m"], 1, step_s=0)


# -- statistics --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PROFILES))
def test_long_trace_matches_the_profile(name: str) -> None:
    profile = calm(name)
    duration = 400 * profile.correlation_time_s
    step = profile.correlation_time_s / 20
    rssi = [s.rssi_dbm for s in SignalTrace(profile, 77, step_s=step).samples(0, duration, step)]
    # An OU process has about duration / (2 tau) independent values.
    n_eff = duration / (2 * profile.correlation_time_s)
    se = profile.rssi_sigma_db / math.sqrt(n_eff)
    assert abs(statistics.fmean(rssi) - profile.rssi_mean_dbm) < 5 * se + 0.5
    assert statistics.pstdev(rssi) == pytest.approx(profile.rssi_sigma_db, rel=0.2)
    assert all(profile.rssi_min_dbm <= x <= profile.rssi_max_dbm for x in rssi)


def test_shadowing_is_correlated_over_the_correlation_time() -> None:
    profile = calm("lte-m")
    xs = np.array([s.rssi_dbm for s in SignalTrace(profile, 4).samples(0, 100_000, 1.0)])
    xs = xs - xs.mean()

    def autocorr(lag: int) -> float:
        return float(np.dot(xs[:-lag], xs[lag:]) / np.dot(xs, xs))

    tau = int(profile.correlation_time_s)
    assert autocorr(1) > 0.95
    assert autocorr(tau) == pytest.approx(math.exp(-1), abs=0.12)
    assert abs(autocorr(10 * tau)) < 0.15


@pytest.mark.parametrize("name", list(PROFILES))
def test_values_are_clamped_to_the_range(name: str) -> None:
    profile = replace(PROFILES[name], rssi_sigma_db=60.0, correlation_time_s=5.0)
    samples = SignalTrace(profile, 8).samples(0, 5000, 1.0)
    rssi = [s.rssi_dbm for s in samples]
    assert min(rssi) == math.ceil(profile.rssi_min_dbm)
    assert max(rssi) == math.floor(profile.rssi_max_dbm)
    lq = profile.link_quality
    assert all(lq.min_value <= s.link_quality <= lq.max_value for s in samples)
    assert all(0.0 <= s.loss <= 1.0 for s in samples)
    assert all(isinstance(s.rssi_dbm, int) and isinstance(s.link_quality, int) for s in samples)


def test_link_quality_follows_the_signal() -> None:
    samples = SignalTrace(calm("lte-m"), 12).samples(0, 50_000, 5.0)
    strong = [s.link_quality for s in samples if s.rssi_dbm > -90]
    weak = [s.link_quality for s in samples if s.rssi_dbm < -105]
    assert strong and weak
    assert statistics.fmean(strong) > statistics.fmean(weak) + 1.5


def test_loss_increases_as_the_signal_falls_along_a_trace() -> None:
    samples = SignalTrace(PROFILES["nb-iot"], 21).samples(0, 20_000, 1.0)
    by_rssi = sorted(samples, key=lambda s: -s.rssi_dbm)  # strong -> weak
    losses = [s.loss for s in by_rssi]
    assert all(b >= a for a, b in itertools.pairwise(losses))
    delays = [s.delay_s for s in by_rssi]
    assert all(b >= a for a, b in itertools.pairwise(delays))


# -- dips and outages --------------------------------------------------------------------------


def test_scripted_dip_lowers_the_signal_by_its_depth_inside_its_window() -> None:
    profile = calm("lte-m", rssi_mean_dbm=-80.0)  # far from the clamp
    dip = Dip(1000.0, 200.0, 20.0)
    plain = SignalTrace(profile, 31).samples(0, 2000, 1.0)
    dipped = SignalTrace(profile, 31, dips=[dip]).samples(0, 2000, 1.0)
    for p, d in zip(plain, dipped, strict=True):
        expected = 20 if dip.active(p.t) else 0
        # Both sides round half up: the difference is the depth, give or take the rounding.
        assert p.rssi_dbm - d.rssi_dbm == pytest.approx(expected, abs=1)
    inside = [
        p.rssi_dbm - d.rssi_dbm for p, d in zip(plain, dipped, strict=True) if dip.active(p.t)
    ]
    assert len(inside) == 200
    assert statistics.fmean(inside) == pytest.approx(20, abs=0.1)


def test_overlapping_dips_add_up_and_edges_are_exact() -> None:
    profile = calm("wifi", rssi_sigma_db=0.0)  # a constant -62 dBm
    trace = SignalTrace(profile, 0, dips=[Dip(10.5, 5, 10), Dip(12.5, 1, 5)], step_s=4.0)
    assert [trace.sample(t).rssi_dbm for t in (10.4, 10.5, 12.5, 13.4, 13.5, 15.4, 15.5)] == [
        -62,
        -72,
        -77,
        -77,
        -72,
        -72,
        -62,
    ]


def test_outage_cuts_the_link_completely() -> None:
    profile = PROFILES["nb-iot"]
    cut = outage(30.0, 10.0)
    assert cut.is_outage and not Dip(0, 1, 3).is_outage
    trace = SignalTrace(profile, 4, dips=[cut])
    for t in (30.0, 35.5, 39.99):
        s = trace.sample(t)
        assert s.loss == 1.0
        assert s.rssi_dbm == -140
    assert trace.sample(29.99).loss < 1.0
    assert trace.sample(40.0).loss < 1.0
    impairment = LinkImpairment(trace, 4)
    assert all(impairment.decide(30 + i * 0.01, 64).drop for i in range(1000))
    assert impairment.sent == impairment.dropped == 1000


def test_random_dips_follow_the_profile() -> None:
    profile = PROFILES["lte-m"]  # 4 per hour
    hours = 100
    trace = SignalTrace(profile, 50)
    trace.sample(hours * 3600.0 - 1)
    dips = trace.random_dips(0, hours * 3600.0)
    expected = profile.dips.rate_per_hour * hours
    assert abs(len(dips) - expected) < 5 * math.sqrt(expected)
    assert all(d.duration_s <= profile.dips.max_duration_s for d in dips)
    assert statistics.fmean(d.depth_db for d in dips) == pytest.approx(
        profile.dips.depth_db, rel=0.15
    )
    assert statistics.fmean(d.duration_s for d in dips) == pytest.approx(
        profile.dips.duration_s, rel=0.25
    )


def test_random_dips_lower_the_signal_and_nothing_else() -> None:
    base = replace(PROFILES["lte-m"], rssi_mean_dbm=-75.0)
    calm_trace = SignalTrace(replace(base, dips=NO_DIPS), 13)
    dippy = SignalTrace(base, 13)
    dips = dippy.random_dips(0, 20_000)
    assert dips
    for t in range(0, 20_000, 3):
        depth = sum(d.depth_db for d in dips if d.active(t))
        diff = calm_trace.sample(t).rssi_dbm - dippy.sample(t).rssi_dbm
        assert diff == pytest.approx(depth, abs=1)


def test_bad_dips_are_rejected() -> None:
    with pytest.raises(ValueError):
        Dip(0, 0, 10)
    with pytest.raises(ValueError):
        Dip(0, 10, -1)
    with pytest.raises(ValueError):
        Dip(math.inf, 10, 1)


# -- impairment --------------------------------------------------------------------------------


def test_drop_rate_matches_the_loss_probability() -> None:
    # sigma 0 and the mean at the loss curve's midpoint: loss is (floor + 1) / 2 throughout.
    profile = calm("lte-m", rssi_sigma_db=0.0, rssi_mean_dbm=-126.0)
    trace = SignalTrace(profile, 1)
    p = trace.sample(0).loss
    assert p == pytest.approx(0.501)
    impairment = LinkImpairment(trace, 99)
    n = 20_000
    drops = sum(impairment.decide(i * 0.1, 100).drop for i in range(n))
    assert abs(drops - n * p) < 4 * math.sqrt(n * p * (1 - p))


def test_drop_count_follows_a_varying_trace() -> None:
    profile = replace(PROFILES["nb-iot"], rssi_mean_dbm=-128.0)
    trace = SignalTrace(profile, 2)
    impairment = LinkImpairment(trace, 2)
    times = [i * 0.5 for i in range(40_000)]
    probabilities = [trace.sample(t).loss for t in times]
    drops = sum(impairment.decide(t, 50).drop for t in times)
    mean = sum(probabilities)
    sd = math.sqrt(sum(q * (1 - q) for q in probabilities))
    assert 0.05 * len(times) < mean < 0.95 * len(times)  # the test means something
    assert abs(drops - mean) < 4 * sd


def test_impairment_is_deterministic_and_does_not_touch_the_trace() -> None:
    profile = PROFILES["lte-m"]
    a = LinkImpairment(SignalTrace(profile, 7), 8)
    b = LinkImpairment(SignalTrace(profile, 7), 8)
    c = LinkImpairment(SignalTrace(profile, 7), 9)
    times = [i * 0.37 for i in range(3000)]
    va = [a.decide(t, 200) for t in times]
    assert va == [b.decide(t, 200) for t in times]
    assert va != [c.decide(t, 200) for t in times]
    assert a.trace.samples(0, 1000, 1) == SignalTrace(profile, 7).samples(0, 1000, 1)
    # Same seed for trace and impairment: the streams are still independent.
    same = LinkImpairment(SignalTrace(profile, 7), 7)
    assert [same.decide(t, 200) for t in times] != va


def test_verdicts_are_pinned_and_judge_is_decide_as_a_pair() -> None:
    # A change of the verdict stream (draw order, loss/delay/jitter/rate terms) changes every
    # saved run; the hash was taken before the relay's fast path (judge, the per-profile
    # table of terms, the most-recent chunk) existed.
    imp = device_link("nb-iot", 5, seed=3, dips=[outage(700.0, 60.0)])
    times = [i * 0.61 for i in range(4000)]
    out = [imp.decide(t, (i * 37) % 1100) for i, t in enumerate(times)]
    assert (
        hashlib.sha256(repr([(v.drop, v.delay_s) for v in out]).encode()).hexdigest()
        == "78542aa6c7a9f60c103c80d6230c5c0f6b42ecdc3c68ac216108b94e8e4800b1"
    )
    assert imp.dropped == 116 and imp.sent == 4000
    twin = device_link("nb-iot", 5, seed=3, dips=[outage(700.0, 60.0)])
    pairs = [twin.judge(t, (i * 37) % 1100) for i, t in enumerate(times)]
    assert pairs == [(v.drop, v.delay_s) for v in out]
    assert (twin.sent, twin.dropped) == (imp.sent, imp.dropped)
    # the terms a verdict uses are the profile's own
    trace = imp.trace
    for t in (0.0, 333.3, 720.0, 1999.0):
        sample = trace.sample(t)
        expected = 1.0 if 700.0 <= t < 760.0 else trace.profile.loss(sample.rssi_dbm)
        assert sample.loss == expected
        assert sample.delay_s == trace.profile.delay_at(sample.rssi_dbm)


def test_delay_is_base_plus_jitter_plus_transmission_time() -> None:
    profile = calm("nb-iot", rssi_sigma_db=0.0, rssi_mean_dbm=-110.0)
    trace = SignalTrace(profile, 3)
    impairment = LinkImpairment(trace, 3)
    sample = trace.sample(0)
    size = 1024
    transmit = size / profile.data_rate_at(sample.rssi_dbm)
    delays = [impairment.decide(i * 1.0, size).delay_s for i in range(20_000)]
    assert min(delays) >= sample.delay_s + transmit
    jitter = statistics.fmean(delays) - sample.delay_s - transmit
    assert jitter == pytest.approx(profile.jitter_at(sample.rssi_dbm), rel=0.05)
    assert impairment.decide(0.0, 0).delay_s < impairment.decide(0.0, 100_000).delay_s
    with pytest.raises(ValueError):
        impairment.decide(0.0, -1)


# -- memory ------------------------------------------------------------------------------------


def test_memory_per_device_stays_small() -> None:
    trace = SignalTrace(PROFILES["lte-m"], 1)
    trace.sample(0)
    small = trace.memory_bytes()
    for t in range(0, 36_000, 10):  # ten simulated hours
        trace.sample(float(t))
    chunk_bytes = 2 * 8 * CHUNK_STEPS
    checkpoints = 8 * (36_000 // CHUNK_STEPS + 2)
    assert small <= chunk_bytes + 16
    assert trace.memory_bytes() <= CACHED_CHUNKS * chunk_bytes + checkpoints + 24 * 200
    assert trace.memory_bytes() < 12_000


def test_device_link_is_reproducible_per_device() -> None:
    a = device_link("mixed", 17, seed=1)
    b = device_link("mixed", 17, seed=1)
    assert a.trace.profile is b.trace.profile
    assert a.trace.samples(0, 500, 1) == b.trace.samples(0, 500, 1)
    assert [a.decide(t, 100) for t in range(200)] == [b.decide(t, 100) for t in range(200)]
    names = {device_link("mixed", i, seed=1).trace.profile.name for i in range(60)}
    assert names == set(PROFILES)
    other = device_link("lte-m", 18, seed=1, dips=[outage(5, 5)], start=2.0, step_s=0.5)
    assert other.trace.profile is PROFILES["lte-m"]
    assert other.trace.sample(7.0).loss == 1.0
    assert other.trace.start == 2.0 and other.trace.step_s == 0.5


def test_an_endless_outage_and_read_only_settings() -> None:
    trace = SignalTrace(PROFILES["wifi"], 5, dips=[outage(100.0, math.inf)])
    assert trace.sample(99.0).loss < 1.0
    assert all(trace.sample(t).loss == 1.0 for t in (100.0, 5e3, 1e5))
    with pytest.raises(AttributeError):
        trace.seed = 6  # type: ignore[misc]
    with pytest.raises(AttributeError):
        LinkImpairment(trace, 1).trace = trace  # type: ignore[misc]


def test_link_trouble_names_an_outage_a_worst_signal_and_nothing_on_a_good_link() -> None:
    from labkit.sim.link import link_trouble
    from labkit.sim.profiles import NB_IOT

    calm = replace(NB_IOT, rssi_mean_dbm=-80.0, rssi_sigma_db=0.5, dips=NO_DIPS)
    trace = SignalTrace(calm, seed=3, dips=[outage(100.0, 10.0)])
    assert link_trouble(trace, 0.0, 50.0) is None  # good signal all along
    outage_found = link_trouble(trace, 90.0, 120.0)
    assert outage_found is not None and outage_found.startswith("deep fade or outage (")
    # the window is widened by one second each side: a download ending 1 s before still counts
    assert link_trouble(trace, 50.0, 99.0) is not None
    assert link_trouble(trace, 50.0, 98.0) is None
    # a signal at the profile's worst level (-130 dBm) loses little but is at its slowest
    weak = replace(NB_IOT, rssi_mean_dbm=-131.0, rssi_sigma_db=0.5, dips=NO_DIPS)
    slow = link_trouble(SignalTrace(weak, seed=3), 0.0, 20.0)
    assert slow is not None and slow.startswith("link at its worst (")
