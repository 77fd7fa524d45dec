"""What a virtual lab keeps per device and per event: streamed events, lean generators."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from labkit import Lab
from labkit.client.device import _BACKOFF_FIRST, _BACKOFF_MAX
from labkit.record import read_run
from labkit.virtual.rng import SplitMix64


def test_streamed_events_leave_memory_and_lab_events_reads_them_back(tmp_path: Path) -> None:
    with Lab(clock="virtual", seed=2, record=tmp_path, retain_events=False) as lab:
        lab.add_devices(3, lifetime=600)
        lab.run_for(1800)
        recorder = lab.recorder
        recorder.flush()  # what the background thread does every 0.5 s of wall time
        assert recorder.retain is False and recorder._chunks == []
        assert recorder.n_written == len(recorder)
        events = lab.events()
        assert (events["kind"] == "reg_updated").sum() >= 3 * 5  # every 300 s, half a lifetime
        run_dir = lab.run_dir
        assert run_dir is not None
        manifest_params = recorder.manifest["params"]
    assert manifest_params["retain_events"] is False
    on_disk = read_run(run_dir).events
    assert len(on_disk) >= len(events)
    assert on_disk.iloc[: len(events)]["seq"].tolist() == events["seq"].tolist()


def test_streamed_and_retained_runs_record_the_same_table(tmp_path: Path) -> None:
    tables = []
    for retain in (True, False):
        with Lab(clock="virtual", seed=5, record=tmp_path / str(retain),
                 retain_events=retain) as lab:
            lab.add_devices(2, lifetime=300)
            lab.run_for(900)
            run_dir = lab.run_dir
        assert run_dir is not None
        tables.append(read_run(run_dir).events.drop(columns=["run_id"]))
    assert tables[0].equals(tables[1])


def test_streaming_needs_a_run_directory() -> None:
    with pytest.raises(ValueError, match="record="):
        Lab(clock="virtual", retain_events=False)


def test_a_device_keeps_no_mersenne_twister_until_it_backs_off() -> None:
    with Lab(clock="virtual", seed=3) as lab:
        device = lab.add_device("sim-a").simulated
        assert device._rng is None  # an idle device carries no 2.5 KiB generator
        delays = [device._retry_delay(attempt) for attempt in (0, 1, 2)]
        assert device._rng is not None
        battery, cell_id = device.store.get("/3/0/9"), device.store.get("/4/0/8")
    # the same numbers as one generator kept since the device was built
    rng = random.Random(device._seed)
    assert battery == 100 - rng.randrange(0, 20)
    assert cell_id == rng.randrange(1, 268_435_455)
    expected = [min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0**attempt) * rng.uniform(1.0, 1.5)
                for attempt in (0, 1, 2)]
    assert delays == expected


def test_splitmix64_is_seeded_bounded_and_independent_per_seed() -> None:
    a, b, c = SplitMix64(7), SplitMix64(7), SplitMix64(8)
    xs = [a.randint(0, 65535) for _ in range(500)]
    assert xs == [b.randint(0, 65535) for _ in range(500)]
    assert xs != [c.randint(0, 65535) for _ in range(500)]
    assert min(xs) >= 0 and max(xs) <= 65535 and len(set(xs)) > 400
    floats = [a.uniform(2.0, 3.0) for _ in range(2000)]
    assert all(2.0 <= f < 3.0 for f in floats)
    assert 2.45 < sum(floats) / len(floats) < 2.55
    assert all(0 <= a.randrange(0, 3) < 3 for _ in range(100))
    with pytest.raises(ValueError):
        a.randrange(5, 5)


def test_splitmix64_neighbouring_seeds_do_not_share_a_shifted_stream() -> None:
    a = [SplitMix64(100).next64() for _ in range(50)]
    b = [SplitMix64(101).next64() for _ in range(50)]
    assert not set(a) & set(b)
    assert SplitMix64(3).randrange(4, 5) == 4


def test_idle_devices_share_what_is_equal_and_make_the_rest_on_first_use() -> None:
    with Lab(clock="virtual", seed=4) as lab:
        handles = lab.add_devices(2, lifetime=600)
        lab.run_for(700)  # an Update each
        a, b = (handle.simulated for handle in handles)
        site = vars(a._site)
        assert "_block1" not in site and "_block2" not in site and "_observations" not in site
        assert a._tasks is None and b._tasks is None  # no task runs between Updates
        assert a.store._inst[3, 0].shape is b.store._inst[3, 0].shape
        regs = lab.server.registrations
        first, second = (regs[handle.endpoint] for handle in handles)
        assert first.objects is second.objects  # one announcement map for both
        # a block-wise request would find the site's spool, made then
        assert a._site._block1.max_assemblies == 16 and "_block1" in vars(a._site)
