"""Campaigns over real CoAP/UDP: simulated devices behind link relays, a real LwM2MServer.

Failures come from device faults (``boot-fail`` -> Result 8, ``link-drop`` -> the link is cut
halfway through the download -> Result 4), links are steady (no fading, no random dips) so
that every outcome here is certain, not a matter of luck.
"""

from __future__ import annotations

import asyncio

import pandas as pd

from labkit.fota.campaign import FINAL_STATUSES
from tests.campaign.helpers import KIB, lab_package, run, sim_lab


def test_canary_failure_stops_the_next_wave() -> None:
    async def scenario() -> None:
        async with sim_lab(5, faults=[{"boot-fail"}, set(), set(), set(), set()]) as lab:
            c = lab.campaign(canary=1, waves=(50, 100), policy="always")
            await c.run()
            devices, waves = c.devices(), c.waves()
            assert c.status == "stopped" and "canaries failed" in (c.stop_reason or "")
            assert list(waves["kind"]) == ["canary", "wave", "wave"]
            assert bool(waves.loc[0, "stopped_campaign"])
            assert devices.set_index("device").loc["sim-0001", "result"] == 8
            later = devices[devices.wave > 0]
            assert set(later.status) == {"skipped"} and (later.attempts == 0).all()
            assert {e.device for e in lab.decisions()} == {"sim-0001"}  # nobody else asked

    run(scenario)


def test_failure_threshold_stops_the_campaign() -> None:
    async def scenario() -> None:
        faults = [{"boot-fail"}] * 3 + [set()] * 5
        async with sim_lab(8, faults=faults) as lab:
            c = lab.campaign(policy="always", max_concurrent=1, failure_threshold=0.5,
                             min_finished=2)
            await c.run()
            s = c.summary()
            assert c.status == "stopped" and "failure rate" in (c.stop_reason or "")
            assert s["failed"] == 2 and s["success"] == 0 and s["skipped"] == 6
            assert s["result_counts"] == {"UPDATE_FAILED": 2, "none": 6}

    run(scenario)


def test_pause_stops_new_starts_until_resume() -> None:
    async def scenario() -> None:
        async with sim_lab(3) as lab:
            paused_at: list[int] = []

            def progress(done: int, total: int) -> None:
                if done == 1:
                    c.pause()  # from the loop thread, after the first device
                    paused_at.append(len(lab.decisions()))

            c = lab.campaign(policy="always", max_concurrent=1, on_progress=progress)
            task = asyncio.create_task(c.run())
            async with asyncio.timeout(30):
                while not paused_at:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # 50 simulated seconds: nobody may start meanwhile
            assert c.status == "paused"
            assert len(lab.decisions()) == paused_at[0] == 1
            assert c.progress == (1, 3)
            assert sorted(r.status for r in c.runs.values()) == ["success", "waiting", "waiting"]
            await asyncio.to_thread(c.resume)  # from another thread
            await asyncio.wait_for(task, 60)
            assert c.status == "finished"
            assert set(c.devices().status) == {"success"}
            details = [e.detail for e in lab.events if e.source == "campaign"]
            assert "campaign paused" in details and "campaign resumed" in details

    run(scenario)


def test_paused_before_start_then_cancelled() -> None:
    async def scenario() -> None:
        async with sim_lab(3) as lab:
            c = lab.campaign(policy="always")
            c.pause()
            task = asyncio.create_task(c.run())
            await asyncio.sleep(0.3)
            assert c.status == "paused" and not lab.decisions()
            await asyncio.to_thread(c.cancel)
            await asyncio.wait_for(task, 30)
            assert c.status == "cancelled"
            assert set(c.devices().status) == {"cancelled"}
            assert c.summary()["attempts"] == 0

    run(scenario)


def test_cancel_mid_campaign() -> None:
    async def scenario() -> None:
        async with sim_lab(4) as lab:
            def progress(done: int, total: int) -> None:
                if done == 1:
                    c.cancel()

            c = lab.campaign(policy="always", max_concurrent=1, on_progress=progress)
            await asyncio.wait_for(c.run(), 60)
            counts = c.devices().status.value_counts()
            assert c.status == "cancelled"
            assert counts["success"] == 1 and counts["cancelled"] == 3

    run(scenario)


def test_retries_only_for_the_listed_codes() -> None:
    async def scenario() -> None:
        # sim-0001: its link is cut for 100 simulated seconds once 8 KiB of blocks went
        # through (the first download dies: Result 4, the device's own when it can be read
        # after the stall, else inferred); sim-0002: the new image fails its self-test -> 8.
        async with sim_lab(3, faults=[set(), {"boot-fail"}, set()]) as lab:
            lab.fleet.member("sim-0001").relay.cut_after(8 * KIB, 100.0, min_size=256)
            c = lab.campaign(lab_package(size=16 * KIB), policy="always", block_size=512,
                             retry_on={4}, max_attempts=3, backoff_s=150.0)
            await asyncio.wait_for(c.run(), 90)
            d = c.devices().set_index("device")
            assert d.loc["sim-0001", "attempts"] == 2
            assert d.loc["sim-0001", "status"] == "success"
            first = c.runs["sim-0001"].outcomes[0]  # the cut one
            assert first.stuck_in is not None or first.result == 4
            assert d.loc["sim-0002", "attempts"] == 1  # 8 is not in retry_on
            assert d.loc["sim-0002", "result"] == 8 and d.loc["sim-0002", "status"] == "failed"
            assert d.loc["sim-0003", "attempts"] == 1 and d.loc["sim-0003", "result"] == 1
            retries = [e for e in lab.events
                       if e.source == "campaign" and (e.detail or "").startswith("retry")]
            assert [e.device for e in retries] == ["sim-0001"]
            assert retries[0].result == 4

    run(scenario)


def test_summary_tables_and_wave_order() -> None:
    async def scenario() -> None:
        async with sim_lab(5, faults=[set(), set(), {"boot-fail"}, set(), set()]) as lab:
            c = lab.campaign(canary=1, waves=(60, 100), policy="threshold")
            await c.run()
            devices, waves = c.devices(), c.waves()
            assert list(devices.columns[:6]) == [
                "device", "wave", "status", "result", "result_name", "result_inferred"]
            assert devices["result"].dtype == "Int64"
            assert isinstance(devices["status"].dtype, pd.CategoricalDtype)
            assert set(devices.status) <= set(FINAL_STATUSES)
            assert list(waves.devices) == [1, 2, 2]
            assert int(waves[list(FINAL_STATUSES)].to_numpy().sum()) == 5
            assert int(waves.failed.sum()) == 1 and int(waves.success.sum()) == 4
            # wave k starts only after wave k-1 finished
            for k in (1, 2):
                assert waves.started_s[k] >= waves.finished_s[k - 1]
            # decision rows carry the wave and the link sample behind them
            for e in lab.decisions():
                assert e.wave is not None and e.rssi_dbm == -85 and e.link_quality is not None
                assert e.decision == "push" and "RSSI -85 dBm" in (e.reason or "")

    run(scenario)


def test_a_user_function_as_policy_and_pacing() -> None:
    from labkit.policy import Decision, LinkSnapshot, PolicyContext
    from tests.linkem.links import steady_link

    def strong_only(snapshot: LinkSnapshot, context: PolicyContext) -> Decision:
        if snapshot.rssi_dbm is not None and snapshot.rssi_dbm >= -100:
            return Decision("push", f"RSSI {snapshot.rssi_dbm} dBm is strong")
        return Decision("give_up", f"RSSI {snapshot.rssi_dbm} dBm: not this one")

    async def scenario() -> None:
        links = [steady_link(0, rssi_dbm=-85.0), steady_link(1, rssi_dbm=-110.0),
                 steady_link(2, rssi_dbm=-85.0)]
        async with sim_lab(3, links=links) as lab:
            c = lab.campaign(policy=strong_only, pacing_s=100.0, max_concurrent=3)
            await asyncio.wait_for(c.run(), 60)
            d = c.devices().set_index("device")
            assert list(d.status) == ["success", "gave_up", "success"]
            assert d.loc["sim-0002", "attempts"] == 0
            assert "not this one" in d.loc["sim-0002", "reason"]
            # pacing: update starts at least 100 simulated seconds apart
            starts = sorted(d.started_s.dropna())
            assert starts[1] - starts[0] >= 95.0
            assert c.summary()["policy"] == "strong_only"

    run(scenario)
