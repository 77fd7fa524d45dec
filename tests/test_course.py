"""labkit.course: the small helpers behind the notebooks (pure ones first, then on a live lab)."""

from __future__ import annotations

import pandas as pd
import pytest

from labkit import course
from labkit.client.firmware import package_version
from labkit.lwm2m.formats import ContentFormat, encode
from labkit.lwm2m.fota import (
    DownloadCompleted,
    ExecuteUpdate,
    FirmwareUpdateMachine,
    InstallSucceeded,
    WriteUri,
)
from labkit.lwm2m.fota_diagram import mermaid_state_diagram
from labkit.lwm2m.objects import State, UpdateResult
from labkit.lwm2m.paths import Path


@pytest.mark.parametrize(
    ("value", "fast"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("", False)],
)
def test_fast_mode_reads_labkit_fast(value: str, fast: bool) -> None:
    assert course.fast_mode({"LABKIT_FAST": value}) is fast
    assert course.fast_mode({}) is False


def test_fast_mode_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_FAST", "1")
    assert course.fast_mode()
    monkeypatch.delenv("LABKIT_FAST")
    assert not course.fast_mode()


def test_package_has_the_size_and_announces_the_version() -> None:
    data = course.package("2.0.0", 4096)
    assert len(data) == 4096
    assert package_version(data) == "2.0.0"
    assert course.package("2.0.0", 4096) == data  # deterministic
    assert course.package("2.0.0", 4096, seed=1) != data


@pytest.mark.parametrize(("version", "size"), [("", 100), ("1\n2", 100), ("2.0.0", 10)])
def test_package_refuses_bad_arguments(version: str, size: int) -> None:
    with pytest.raises(ValueError):
        course.package(version, size)


def test_state_and_result_tables_follow_the_seed() -> None:
    states = course.state_table()
    assert list(states.columns) == ["state", "name", "description"]
    assert states["state"].tolist() == [0, 1, 2, 3]
    assert states.loc[1, "description"] == "The new firmware is on the way"
    results = course.result_table()
    assert results["result"].tolist() == list(range(12))
    assert results.loc[10, "description"] == "Firmware update cancelled"
    assert results.loc[5, "name"] == "INTEGRITY_CHECK_FAILURE"


def test_wire_is_a_hex_dump() -> None:
    dump = course.wire(b"LABKIT-FW 2.0.0\n\x00\x01", width=8)
    lines = str(dump).splitlines()
    assert lines[0] == "0000  4c 41 42 4b 49 54 2d 46  |LABKIT-F|"
    assert lines[2].startswith("0010  00 01")
    assert len(dump) == 18
    assert "<pre" in dump._repr_html_()
    assert str(course.wire(b"")) == "(empty payload)"
    with pytest.raises(ValueError):
        course.wire(b"x", width=0)


def test_tlv_fields_take_a_payload_apart() -> None:
    values = {Path.of(5, 0, 3): 2, Path.of(5, 0, 8, 0): 0, Path.of(5, 0, 8, 1): 1}
    payload = encode(int(ContentFormat.TLV), Path.of(5, 0), values)
    fields = course.tlv_fields(payload, "/5/0")
    assert fields["path"].tolist() == ["/5/0/3", "/5/0/8", "/5/0/8/0", "/5/0/8/1"]
    assert fields.loc[0, "header"] == "c1 03" and fields.loc[0, "value"] == "02"
    assert fields.loc[0, "name"] == "State"
    assert fields.loc[1, "kind"] == "multiple resource"
    assert fields.loc[2, "kind"] == "resource instance"


def test_tlv_fields_of_an_object_read_and_of_garbage() -> None:
    payload = encode(int(ContentFormat.TLV), Path.of(5), {Path.of(5, 0, 3): 1})
    fields = course.tlv_fields(payload, "/5")
    assert fields["kind"].tolist() == ["object instance", "resource"]
    assert fields["path"].tolist() == ["/5/0", "/5/0/3"]
    broken = course.tlv_fields(b"\xc1\x03", "/5/0")
    assert broken["kind"].tolist() == ["error"]
    assert course.tlv_fields(b"", "/5/0").empty


def test_values_table_names_resources_and_units() -> None:
    table = course.values_table({Path.of(4, 0, 2): -90, "/3/0/3": "1.0.0"})
    assert table["path"].tolist() == ["/3/0/3", "/4/0/2"]
    assert table["name"].tolist() == ["Firmware Version", "Radio Signal Strength"]
    assert table.loc[1, "units"] == "dBm"


def test_walk_tabulates_a_pull_and_a_refusal() -> None:
    machine = FirmwareUpdateMachine()
    triggers = [
        ExecuteUpdate(),
        WriteUri(uri="coap://127.0.0.1/fw/a.bin"),
        DownloadCompleted(),
        ExecuteUpdate(),
        InstallSucceeded(),
    ]
    table = course.walk(machine, triggers)
    assert table["rule"].tolist() == ["T15", "T1", "T7", "T12", "T16"]
    assert table["reply"].tolist() == ["4.05 refused", "2.04", "(internal)", "2.04", "(internal)"]
    assert table["state"].tolist() == [
        "0 IDLE",
        "1 DOWNLOADING",
        "2 DOWNLOADED",
        "3 UPDATING",
        "0 IDLE",
    ]
    assert table["result"].iloc[-1] == "1 SUCCESS"
    assert table.loc[0, "actions"] == ""
    assert "StartDownload" in table.loc[1, "actions"]
    assert machine.state is State.IDLE and machine.result is UpdateResult.SUCCESS


def test_rules_filter_the_transition_table() -> None:
    rows = course.rules("ExecuteUpdate", state="idle")
    assert rows["id"].tolist() == ["T15"] and rows.loc[0, "reply"] == "4.05"
    assert len(course.rules()) > len(course.rules("ExecuteUpdate"))


def test_mermaid_wraps_the_diagram_in_a_fence() -> None:
    shown = course.mermaid(mermaid_state_diagram(config_writes=False))
    assert shown.data.startswith("```mermaid\nstateDiagram-v2\n")
    assert shown.data.endswith("\n```")


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
    story = course.story(events, "d")
    assert list(story.columns) == ["t_ms", "source", "what", "value"]
    assert story["value"].tolist() == ["p1", "0 IDLE", "3 UPDATING", "1 SUCCESS"]
    assert story["source"].tolist() == ["device", "server", "device", "device"]
    assert story["t_ms"].tolist() == [0.0, 100.0, 300.0, 400.0]
    assert course.story(events.iloc[:0]).empty
    assert course.story(events, "nobody").empty


def test_log_cuts_the_event_table_down() -> None:
    events = _events(
        [
            {"ts": 1.0, "device": "d", "source": "server", "kind": "request", "path": "/5/0/2"},
            {"ts": 1.5, "device": "d", "source": "device", "kind": "error", "code": "4.05"},
            {"ts": 2.0, "device": "e", "source": "server", "kind": "request", "path": "/3/0/3"},
        ]
    )
    log = course.log(events, "d", kinds=["error"])
    assert log["t_ms"].tolist() == [500.0] and log.loc[0, "code"] == "4.05"
    assert len(course.log(events, last=2)) == 2
    assert course.log(events).columns[0] == "t_ms"


# -- on a live lab ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab():  # type: ignore[no-untyped-def]
    from labkit import Lab

    with Lab() as lab:
        lab.add_device("sim-0001")
        yield lab


def test_registration_tables(lab) -> None:  # type: ignore[no-untyped-def]
    reg = lab.device("sim-0001").registration
    query = course.registration_table(reg)
    assert query["parameter"].tolist() == ["ep", "lt", "lwm2m", "b", "Q"]
    assert query.loc[0, "value"] == "sim-0001"
    objects = course.objects_table(reg)
    assert {1, 3, 4, 5} <= set(objects["object"])
    assert 0 not in set(objects["object"])
    assert objects.set_index("object").loc[5, "name"] == "Firmware Update"


def test_read_formats_shows_the_same_values_three_ways(lab) -> None:  # type: ignore[no-untyped-def]
    formats = course.read_formats(lab.device("sim-0001"), "/5/0")
    sizes = formats.frame()
    assert sizes["content_format"].tolist() == [11542, 110, 112]
    assert (sizes["code"] == "2.05").all()
    assert sizes["bytes"].tolist() == [len(formats.payload(f)) for f in (11542, 110, 112)]
    values = formats.values()
    assert values.set_index("path").loc["/5/0/3"].tolist() == [0, 0, 0]
    assert formats.payload(110).startswith(b"[{")
    assert "TLV (11542)" in formats._repr_html_() and "/5/0" in repr(formats)
    with pytest.raises(KeyError):
        formats.payload(60)


def test_links_table_of_a_discover(lab) -> None:  # type: ignore[no-untyped-def]
    links = course.links_table(lab.device("sim-0001").discover("/5/0"))
    assert links.loc[0, "path"] == "/5/0"
    row = links.set_index("path").loc["/5/0/3"]
    assert row["name"] == "State" and row["link"] == "</5/0/3>"


# -- PUSH and PULL (notebook 03) --------------------------------------------------------------


def test_delivery_table_explains_protocols_and_method() -> None:
    values = {Path.parse("/5/0/8/0"): 0, Path.parse("/5/0/8/1"): 2, "/5/0/9": 2, "/5/0/3": 0}
    table = course.delivery_table(values)
    assert list(table.columns) == ["path", "name", "value", "meaning"]
    assert table["path"].tolist() == ["/5/0/8/0", "/5/0/8/1", "/5/0/9"]
    assert table.loc[0, "meaning"].startswith("coap://")
    assert table.loc[1, "meaning"].startswith("http://")
    assert table.loc[2, "name"] == "Firmware Update Delivery Method"
    assert "the server picks" in table.loc[2, "meaning"]


def test_delivery_table_of_a_silent_or_odd_device() -> None:
    table = course.delivery_table({"/5/0/8/0": 42, "/5/0/9": 7})
    assert "does not know" in table.loc[0, "meaning"]
    assert "not a Delivery Method" in table.loc[1, "meaning"]
    absent = course.delivery_table({"/5/0/3": 0})
    assert absent["value"].tolist() == ["(absent)", "(absent)"]
    assert "CoAP is assumed" in absent.loc[0, "meaning"]


def _outcome(**kwargs):  # type: ignore[no-untyped-def]
    from labkit.fota import Outcome

    base = {"endpoint": "sim", "started_at": 100.0, "finished_at": 101.5, "success": True}
    base["result"] = UpdateResult.SUCCESS
    return Outcome(**{**base, **kwargs})


def test_compare_tabulates_push_pull_and_http() -> None:
    outcomes = [
        _outcome(method="push", protocol="coap", block_size=256, blocks=256, bytes_sent=65536,
                 download_s=0.512, check_s=0.01, update_s=0.01, reboot_s=0.2),
        _outcome(method="pull", protocol="coap", blocks=65, bytes_sent=65600, download_s=0.13),
        _outcome(method="pull", protocol="http", bytes_sent=65536, download_s=0.02),
        _outcome(method="pull", protocol="http", refused=True, success=False, result=None),
    ]  # fmt: skip
    table = course.compare(outcomes)
    assert list(table.columns[:7]) == [
        "endpoint", "delivery", "method", "protocol", "block_size", "blocks", "bytes",
    ]  # fmt: skip
    assert table["delivery"].tolist() == [
        "PUSH CoAP 256 B", "PULL CoAP 1024 B", "PULL HTTP", "PULL HTTP",
    ]  # fmt: skip
    assert table.loc[0, "ms_per_block"] == pytest.approx(2.0)
    assert table.loc[1, "block_size"] == 1024  # 65600 B in 65 blocks: 1024-byte blocks
    assert pd.isna(table.loc[2, "blocks"]) and pd.isna(table.loc[2, "ms_per_block"])
    assert table.loc[0, "total_s"] == pytest.approx(1.5)
    assert table["result"].tolist()[:3] == ["1 SUCCESS"] * 3
    assert table.loc[3, "result"] == "- REFUSED" and pd.isna(table.loc[3, "download_s"])
    assert str(table["blocks"].dtype) == "Int64"
    assert course.compare([]).empty


# -- commands in the background (notebook 09) -------------------------------------------------


def test_labkit_command_and_shell() -> None:
    import sys

    argv = course.labkit_command("fota --listen 127.0.0.1:5683 --package 'my fw.bin'")
    assert argv[:3] == [sys.executable, "-m", "labkit"]
    assert argv[3:] == ["fota", "--listen", "127.0.0.1:5683", "--package", "my fw.bin"]
    assert course.labkit_command("device", "--seed", 3)[3:] == ["device", "--seed", "3"]
    assert course.shell(argv) == "labkit fota --listen 127.0.0.1:5683 --package 'my fw.bin'"
    assert course.shell(["echo", "a b"]) == "echo 'a b'"


def test_free_port_is_bindable() -> None:
    import socket

    port = course.free_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))


def _python(code: str) -> list[str]:
    import sys

    return [sys.executable, "-c", code]


def test_background_collects_lines_and_exit_code() -> None:
    code = (
        "import sys; print('one'); print('RESULT 1 SUCCESS'); "
        "sys.stderr.write('err\\n'); sys.exit(3)"
    )
    with course.run_in_background(_python(code), timeout=30) as job:
        assert job.wait_for_line("RESULT", timeout=20) == "RESULT 1 SUCCESS"
        result = job.wait()
    assert result.exit_code == 3 and not result.stopped and not result.timed_out
    assert result.lines == ("one", "RESULT 1 SUCCESS", "err")
    assert result.result_line == "RESULT 1 SUCCESS"
    assert job.result == result and job.stop() == result  # stopping again changes nothing
    assert "exit code 3" in str(result) and str(result).startswith("$ ")
    assert "RESULT 1 SUCCESS" in result._repr_html_() and "exit code 3" in repr(result)


def test_background_is_stopped_at_the_end_of_its_block() -> None:
    code = "import time; print('ready', flush=True); time.sleep(60)"
    with course.run_in_background(_python(code), timeout=30) as job:
        job.wait_for_line("ready", timeout=20)
        assert job.running and "running" in job._repr_html_()
    result = job.result
    assert result is not None and result.stopped and not result.timed_out
    assert result.exit_code != 0 and "stopped" in str(result)


def test_background_never_outlives_its_bound() -> None:
    job = course.run_in_background(_python("import time; time.sleep(60)"), timeout=1)
    result = job.wait()
    assert result.timed_out and result.seconds < 10
    assert "time bound ran out" in str(result)
    assert not job.running


def test_wait_for_line_says_why_it_gave_up() -> None:
    quick = course.run_in_background(_python("print('hello')"), timeout=30)
    with quick, pytest.raises(RuntimeError, match="without printing"):
        quick.wait_for_line("RESULT", timeout=20)
    code = "import time; print('x', flush=True); time.sleep(60)"
    slow = course.run_in_background(_python(code), timeout=30)
    with slow, pytest.raises(TimeoutError, match="so far"):
        slow.wait_for_line("RESULT", timeout=0.5)
    assert slow.result is not None and slow.result.stopped
    with pytest.raises(ValueError):
        course.run_in_background(_python("pass"), timeout=0)


# -- Failure modes (notebook 05) -------------------------------------------------------------


def test_operator_guide_has_one_row_per_code_with_advice() -> None:
    guide = course.operator_guide()
    assert guide.columns.tolist() == ["code", "name", "description", "likely_cause", "next_step"]
    assert guide["code"].tolist() == list(range(12))
    assert guide["description"].tolist() == [r.description for r in UpdateResult]
    assert (guide["likely_cause"].str.len() > 10).all() and (
        guide["next_step"].str.len() > 10
    ).all()
    assert "roll" in guide.set_index("code").loc[8, "likely_cause"]
    assert isinstance(guide.index, pd.RangeIndex)


def test_failure_cases_cover_every_final_code() -> None:
    codes = {case.expected for case in course.FAILURE_CASES}
    assert codes == set(range(1, 12))
    names = [case.endpoint for case in course.FAILURE_CASES]
    assert len(set(names)) == len(names) and names == sorted(names)


def test_failure_matrix_produces_every_code_on_purpose(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from labkit import Lab
    from labkit.plots import plot_result_counts

    key = course.lab_key(tmp_path / "keys")
    assert key.exists() and key.parent == tmp_path / "keys"
    with Lab() as lab:
        matrix = course.failure_matrix(lab, fast=True, key=key)
        slots = course.flash_table(lab, ["r01-success", "r08-boot-fail", "r05-wrong-key"])
    assert matrix["device"].tolist() == [c.endpoint for c in course.FAILURE_CASES]
    problems = matrix.loc[~matrix["match"], ["device", "expected", "observed", "reported"]]
    assert problems.empty, problems.to_string()
    assert set(matrix["observed"]) == set(range(1, 12))
    assert (matrix["final_state"] == 0).all()  # nobody left in 1, 2 or 3
    assert (matrix["fw_before"] == course.OLD_VERSION).all()
    winners = set(matrix.loc[matrix["fw_after"] == course.NEW_VERSION, "device"])
    assert winners == {"r01-success", "r11-defer"}
    defer = matrix.set_index("device").loc["r11-defer"]
    assert defer["reported"] == "11 → 1" and defer["final_result"] == 1
    assert str(matrix["result"].dtype) == "category"
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_result_counts(matrix)
    assert len(ax.patches) == 11
    by_device = slots.set_index("device")
    assert by_device.loc["r01-success", "running"] == "b"
    assert by_device.loc["r01-success", "slot_b"] == "MCUboot image 2.0.0"
    assert by_device.loc["r08-boot-fail", "running"] == "a"
    assert by_device.loc["r08-boot-fail", "fw_version"] == "1.0.0"
    assert by_device.loc["r05-wrong-key", "result"].startswith("5 ")


# -- Secure boot (notebook 06) ---------------------------------------------------------------


def test_flip_byte_changes_one_payload_byte_only() -> None:
    from labkit.repo.images import inspect_image

    image = course.package("2.0.0", 64)
    flipped = course.flip_byte(image)
    assert len(flipped) == len(image)
    assert [i for i in range(len(image)) if image[i] != flipped[i]] == [32]
    assert course.flip_byte(image, 0)[0] == image[0] ^ 1
    with pytest.raises(ValueError):
        course.flip_byte(image, len(image))
    with pytest.raises(ValueError):
        course.flip_byte(b"")
    from labkit.repo.images import build_image

    signed = build_image(version="2.0.0", size=1024, key=course.lab_key())
    info = inspect_image(signed)
    diff = [i for i in range(len(signed)) if signed[i] != course.flip_byte(signed)[i]]
    assert diff == [info.header_size + info.image_size // 2]


def test_verify_table_names_the_reason_of_each_refusal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from labkit.repo.images import build_image, public_key

    key = course.lab_key(tmp_path)
    good = build_image(version="2.0.0", size=2048, key=key)
    table = course.verify_table(
        {
            "good": good,
            "tampered": course.flip_byte(good),
            "wrong key": build_image(version="2.0.0", size=2048, key=key, broken="wrong-key"),
            "noise": build_image(version="2.0.0", size=2048, broken="not-an-image"),
        },
        key=public_key("ed25519", tmp_path),
    )
    rows = table.set_index("image")
    assert rows["ok"].tolist() == [True, False, False, False]
    assert rows["reason"].tolist() == ["ok", "bad hash", "bad signature", "bad magic"]
    assert rows.loc["good", "hash_tlv"] == rows.loc["good", "hash_now"]
    assert rows.loc["tampered", "hash_tlv"] != rows.loc["tampered", "hash_now"]
    assert rows.loc["tampered", "hash_tlv"] == rows.loc["good", "hash_tlv"]
    assert pd.isna(rows.loc["noise", "hash_tlv"]) and rows.loc["good", "version"] == "2.0.0"


# -- 04 link quality versus PUSH decisions, 07 fleet campaigns ---------------------------------


def test_link_traces_are_tidy_and_distinct_per_trace() -> None:
    traces = course.link_traces(["nb-iot", "wifi", "mixed"], devices=2, minutes=10, step_s=60)
    assert list(traces.columns) == [
        "trace",
        "profile",
        "device",
        "t_min",
        "rssi_dbm",
        "link_quality",
        "loss",
        "band",
    ]
    assert len(traces) == 3 * 2 * 10 and isinstance(traces.index, pd.RangeIndex)
    assert traces["trace"].nunique() == 6
    assert traces["trace"].str.match(r"mixed #\d \((nb-iot|lte-m|wifi)\)").sum() == 20
    wide = traces.pivot(index="t_min", columns="trace", values="rssi_dbm")
    assert not wide.T.duplicated().any()  # no two traces are the same link
    assert set(traces["band"]) <= {"good", "fair", "poor"}
    assert traces.equals(
        course.link_traces(["nb-iot", "wifi", "mixed"], devices=2, minutes=10, step_s=60)
    )


def test_trace_summary_counts_the_time_below_the_threshold() -> None:
    traces = pd.DataFrame(
        {
            "trace": ["a"] * 4 + ["b"] * 2,
            "rssi_dbm": [-100, -110, -120, -90, -80, -81],
            "loss": [0.0, 0.1, 0.2, 0.0, 0.0, 0.0],
        }
    )
    summary = course.trace_summary(traces, threshold_dbm=-105)
    assert list(summary["trace"]) == ["a", "b"]
    assert list(summary["below_pct"]) == [50.0, 0.0]
    assert list(summary["rssi_min"]) == [-120, -81]
    assert summary.loc[0, "max_loss"] == 0.2


def test_policy_examples_ask_every_policy_about_every_sample() -> None:
    table = course.policy_examples()
    assert len(table) == len(course.EXAMPLE_POLICIES) * len(course.EXAMPLE_SNAPSHOTS)
    by = table.set_index(["link", "policy"])["action"]
    assert by[("poor", "always")] == "push" and by[("poor", "threshold")] == "wait"
    assert by[("fair", "threshold")] == "push" and by[("fair", "hysteresis")] == "wait"
    assert by[("no /4 answer", "threshold")] == "wait"
    assert by[("good, battery 12 %", "battery-floor(threshold)")] == "give_up"
    assert table["reason"].str.len().min() > 5


def test_policy_walk_carries_memory_like_a_campaign() -> None:
    walk = course.policy_walk("hysteresis", [-95, -88, -100, -107])
    assert list(walk["action"]) == ["wait", "push", "push", "wait"]
    window = course.policy_walk("best-window", [-100, -99, -98], max_wait_s=120)
    assert list(window["waited_s"]) == [0.0, 60.0, 120.0]
    assert list(window["action"]) == ["wait", "wait", "push"]
    assert "falling back" in window.loc[2, "reason"]


def test_weak_links_are_calm_except_for_the_scripted_trouble() -> None:
    links = course.weak_links(3, [1])
    good, weak = links[0].trace, links[1].trace
    assert {good.sample(t).rssi_dbm for t in (0, 100, 300, 1000)} == {-90}
    assert weak.sample(1.0).rssi_dbm == -115
    middle = (course.OUTAGE_FROM_S + course.OUTAGE_UNTIL_S) / 2
    assert weak.sample(middle).loss == 1.0
    assert weak.sample(course.WEAK_UNTIL_S + 1).rssi_dbm == -90


def test_bad_package_is_no_firmware() -> None:
    from labkit.client.bootloader import classify_package

    bad = course.bad_package(1000)
    assert len(bad) == 1000 and classify_package(bad) is None
    assert classify_package(course.package("2.0.0", 1000)) is not None


def test_a_lab_without_a_scaled_clock_is_refused() -> None:
    from labkit.runtime import Lab

    with Lab() as plain, pytest.raises(ValueError, match="scaled_lab"):
        course.policy_run(plain, "always", devices=1)


@pytest.fixture(scope="module")
def scaled():  # type: ignore[no-untyped-def]
    lab = course.scaled_lab(50.0)
    yield lab
    lab.close()


def test_threshold_waits_out_the_outage_and_always_loses_the_weak_device(scaled) -> None:  # type: ignore[no-untyped-def]
    always = course.policy_run(scaled, "always", devices=2, image_size=64 * 1024)
    threshold = course.policy_run(scaled, "threshold", devices=2, image_size=64 * 1024)
    assert always.devices == ["always-0001", "always-0002"] and always.weak == ["always-0002"]
    a = always.table().set_index("device")
    assert a.loc["always-0001", "result"] == 1 and a.loc["always-0002", "result"] == 4
    assert set(threshold.table()["result"]) == {1}
    table = course.compare_runs([always, threshold])
    assert list(table["run"]) == ["always", "threshold"]
    assert list(table["result_4"]) == [1, 0]
    assert table.loc[1, "thresholds"] == "min_rssi_dbm -105"
    assert table.loc[1, "time_to_complete_s"] > table.loc[0, "time_to_complete_s"]
    weak = threshold.decisions(threshold.weak[0])
    assert weak["decision"].iloc[0] == "wait" and weak["rssi_dbm"].iloc[0] == -115
    assert weak["decision"].iloc[-1] == "push" and weak["rssi_dbm"].iloc[-1] == -90
    assert set(threshold.events["device"].dropna().astype(str)) <= set(threshold.devices)


def test_threshold_explorer_reruns_with_the_sliders_value(scaled) -> None:  # type: ignore[no-untyped-def]
    explorer = course.ThresholdExplorer(scaled, devices=2, image_size=32 * 1024)
    explorer.slider.value = -120.0
    run = explorer.run()
    assert run.thresholds == {"min_rssi_dbm": -120.0} and run.label.startswith("threshold")
    assert list(explorer.comparison()["thresholds"]) == ["min_rssi_dbm -120"]
    assert "threshold -120 dBm" in explorer.status.value and "<table" in explorer.table.value


def test_fleet_canary_stops_a_bad_release_and_pause_holds_new_starts(scaled) -> None:  # type: ignore[no-untyped-def]
    fleet = course.fleet(scaled, 4, profile="wifi", faults="boot-fail:0.25", seed=1, clean=1)
    try:
        table = fleet.table()
        assert list(table["faults"]).count("boot-fail") == 1 and table.loc[0, "faults"] == ""
        broken = fleet.run(fleet.campaign(course.bad_package(4096), canary=1))
        assert broken.status == "stopped"
        assert list(broken.devices()["status"]) == ["failed", "skipped", "skipped", "skipped"]
        campaign = fleet.campaign(course.package("2.0.0", 4096), max_concurrent=1)
        moments = course.pause_and_resume(campaign, fleet.start(campaign), after=1, hold_s=0.5)
        assert list(moments["moment"])[::3] == ["paused", "finished"]
        assert moments.loc[0, "started"] == moments.loc[1, "started"]  # nothing new while paused
        assert moments.loc[3, "success"] == 3 and moments.loc[3, "failed"] == 1
        assert len(fleet.events(campaign)) > 0
    finally:
        fleet.close()
