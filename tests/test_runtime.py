"""The lab runtime: a real LwM2M server and simulated devices behind a synchronous API.

Everything runs over real CoAP/UDP on 127.0.0.1 with ephemeral ports; the lab's event loop
lives in its own thread, which these tests rely on (the caller blocks, the lab keeps serving).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.runtime import Lab, LabClosedError, derive_seed, format_address


def lab_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "labkit-lab-loop"]


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab(request_timeout=5.0)
    lab.start()
    try:
        yield lab
    finally:
        lab.close()


def test_three_devices_show_up_and_answer_reads(lab: Lab) -> None:
    lab.add_devices(3, firmware_version="2.3.4", lifetime=120)

    frame = lab.registrations()
    assert len(frame) == 3
    assert list(frame["endpoint"]) == ["sim-0001", "sim-0002", "sim-0003"]
    assert set(frame["lifetime"]) == {120}
    assert set(frame["lwm2m"]) == {"1.1"}
    assert frame["address"].str.match(r"^127\.0\.0\.1:\d+$").all()
    assert str(frame["registered_at"].dtype) == "datetime64[us, UTC]"
    assert (frame["expires_at"] > frame["registered_at"]).all()

    assert lab.device("sim-0002").read("/3/0/3") == "2.3.4"
    handle = lab.device("sim-0003")
    assert handle.firmware_version == "2.3.4"
    assert handle.state == 0
    assert handle.result == 0
    values = handle.read("/5/0")  # an instance read gives a {Path: value} dict
    assert values[next(p for p in values if str(p) == "/5/0/3")] == 0

    events = lab.events()
    registered = events[(events["kind"] == "registered") & (events["source"] == "server")]
    assert set(registered["device"].astype(str)) == {"sim-0001", "sim-0002", "sim-0003"}


def test_device_endpoints_and_seeds_are_stable(lab: Lab) -> None:
    first = lab.add_device()
    named = lab.add_device("my-board")
    assert first.endpoint == "sim-0001"
    assert named.endpoint == "my-board"
    assert [d.endpoint for d in lab.devices] == ["sim-0001", "my-board"]
    assert derive_seed(0, "sim-0001") == derive_seed(0, "sim-0001") != derive_seed(1, "sim-0001")
    with pytest.raises(ValueError, match="already has"):
        lab.add_device("my-board")
    with pytest.raises(KeyError):
        lab.device("nobody")


def test_lab_keeps_serving_while_the_caller_blocks(lab: Lab) -> None:
    # lt=4 -> the device sends its Update at lt - min(93, lt/2) = 2 s (spec 4.2).
    handle = lab.add_device(lifetime=4)
    before = handle.registration.updated_at
    time.sleep(3.5)  # the caller's thread is blocked; only the lab thread can answer
    after = handle.registration.updated_at
    assert after > before, "the lifetime Update was not handled while the caller slept"
    events = lab.events()
    updates = events[(events["kind"] == "reg_updated") & (events["device"] == handle.endpoint)]
    assert len(updates) >= 1
    assert handle.read("/3/0/3") == "1.0.0"


def test_blocking_call_does_not_stall_the_lab(lab: Lab) -> None:
    handle = lab.add_device()

    async def slow_then_read() -> str:
        await asyncio.sleep(0.3)
        response = await lab.server.device(handle.endpoint).read("/3/0/3")
        return str(response.values[next(iter(response.values))])

    assert lab.call(slow_then_read(), timeout=10) == "1.0.0"
    assert lab.call(lambda: 6 * 7) == 42  # plain functions run on the loop too


def test_submit_returns_at_once(lab: Lab) -> None:
    started = time.monotonic()
    future = lab.submit(asyncio.sleep(2.0, result="done"))
    assert time.monotonic() - started < 1.0
    assert not future.done()
    assert future.result(timeout=10) == "done"


def test_call_timeout_is_clear_and_cancels_the_work(lab: Lab) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"within 0\.2 s"):
        lab.call(forever(), timeout=0.2)
    assert time.monotonic() - started < 2
    assert cancelled.wait(2)


def test_call_from_the_loop_thread_is_refused(lab: Lab) -> None:
    def inner() -> None:
        lab.call(lambda: 1)

    with pytest.raises(RuntimeError, match="dead-lock"):
        lab.call(inner)


def test_wait_for_polls_a_predicate(lab: Lab) -> None:
    handle = lab.add_device()
    assert lab.wait_for(lambda: handle.registered, timeout=5)
    with pytest.raises(TimeoutError, match="did not become true"):
        lab.wait_for(lambda: False, timeout=0.2)


def test_observe_and_local_changes(lab: Lab) -> None:
    handle = lab.add_device()
    seen: list[object] = []
    observation = handle.observe("/3/0/9", lambda response: seen.append(response))
    handle.set_value("/3/0/9", 42)
    lab.wait_for(lambda: observation.value == 42, timeout=10)
    assert seen
    assert observation.active
    assert observation.count >= 1
    observation.cancel()
    assert not observation.active


def test_set_values_is_one_link_row_with_both_values(lab: Lab) -> None:
    handle = lab.add_device("sv-1")
    handle.set_values({"/4/0/2": -117, "/4/0/3": 3})
    assert handle.value("/4/0/2") == -117 and handle.value("/4/0/3") == 3
    events = lab.events()
    rows = events[(events["kind"] == "link") & (events["device"] == "sv-1")]
    assert rows[["rssi_dbm", "link_quality"]].astype(int).values.tolist()[-1:] == [[-117, 3]]
    assert not ((rows["rssi_dbm"] != -117) & (rows["link_quality"] == 3)).any()  # no mixed row


def test_reboot_and_stop_a_simulated_device(lab: Lab) -> None:
    handle = lab.add_device("rb-1")
    before = handle.registration
    old_port, registered_at = before.address[1], before.registered_at
    handle.reboot()
    after = lab.wait_for_registration("rb-1", timeout=10, after=registered_at)
    assert after.address[1] == handle.port != old_port  # a new socket after the power cycle
    assert handle.read("/3/0/3") == "1.0.0"

    handle.stop()
    assert handle.simulated is None
    lab.wait_for(lambda: not handle.registered, timeout=10)
    assert "rb-1" not in set(lab.registrations()["endpoint"])
    with pytest.raises(LookupError):
        handle.reboot()


def test_close_is_idempotent_and_leaves_no_threads() -> None:
    lab = Lab()
    lab.start()
    handle = lab.add_device()
    assert handle.registered
    assert len(lab_threads()) == 1
    lab.close()
    lab.close()
    assert lab.closed
    assert lab_threads() == []
    assert not [t for t in threading.enumerate() if t.name.startswith("labkit-recorder")]
    # The devices de-registered before the server stopped; the run is still readable.
    events = lab.events()
    kinds = set(events.loc[events["device"] == handle.endpoint, "kind"].astype(str))
    assert "deregistered" in kinds
    with pytest.raises(LabClosedError):
        lab.call(asyncio.sleep(0))
    with pytest.raises(LabClosedError):
        lab.start()


def test_a_garbage_collected_lab_closes_itself() -> None:
    import gc

    def make() -> None:
        lab = Lab()
        lab.add_device()  # starts implicitly

    make()
    gc.collect()
    deadline = time.monotonic() + 15
    while lab_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab_threads() == []


def test_a_forgotten_lab_does_not_hang_interpreter_exit() -> None:
    script = textwrap.dedent(
        """
        from labkit.runtime import Lab
        lab = Lab()
        lab.add_devices(2)
        print("ready", flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ready"
    assert "Traceback" not in proc.stderr, proc.stderr


def test_record_saves_a_run(tmp_path: Path) -> None:
    from labkit.record import read_run

    with Lab(record=tmp_path, run_id="runtime-test") as lab:
        lab.add_device("rec-1")
        lab.emit("note", detail="hello")
    run = read_run(tmp_path / "runtime-test")
    assert run.complete
    assert run.run_id == "runtime-test"
    frame = run.events
    assert "hello" in set(frame["detail"].dropna())
    assert "registered" in set(frame["kind"].astype(str))


def test_html_repr_lists_server_and_devices(lab: Lab) -> None:
    lab.add_device("html-1")
    text = lab._repr_html_()
    assert lab.server_uri in text
    assert "html-1" in text
    assert "simulated" in text
    assert "html-1" in lab.device("html-1")._repr_html_()
    assert "closed" in Lab()._repr_html_() or "not started" in Lab()._repr_html_()


def test_format_address() -> None:
    assert format_address(("127.0.0.1", 5683)) == "127.0.0.1:5683"
    assert format_address(("::1", 5683)) == "[::1]:5683"
    assert format_address(("::ffff:127.0.0.1", 40000)) == "127.0.0.1:40000"
    assert format_address(None) == ""
