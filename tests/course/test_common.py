"""labkit.course.common:
what several lessons share (fast mode, packages, the log, hex dumps, the course key).
"""

from __future__ import annotations

import pandas as pd
import pytest

from labkit.client.firmware import package_version
from labkit.course import common


def _events(rows: list[dict[str, object]]) -> pd.DataFrame:
    from labkit.record import empty_frame

    base = empty_frame()
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    frame["seq"] = range(len(frame))
    return pd.concat([base, frame], ignore_index=True)


@pytest.mark.parametrize(
    ("value", "fast"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("", False)],
)
def test_fast_mode_reads_labkit_fast(value: str, fast: bool) -> None:
    assert common.fast_mode({"LABKIT_FAST": value}) is fast
    assert common.fast_mode({}) is False


def test_fast_mode_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_FAST", "1")
    assert common.fast_mode()
    monkeypatch.delenv("LABKIT_FAST")
    assert not common.fast_mode()


def test_package_has_the_size_and_announces_the_version() -> None:
    data = common.package("2.0.0", 4096)
    assert len(data) == 4096
    assert package_version(data) == "2.0.0"
    assert common.package("2.0.0", 4096) == data  # deterministic
    assert common.package("2.0.0", 4096, seed=1) != data


@pytest.mark.parametrize(("version", "size"), [("", 100), ("1\n2", 100), ("2.0.0", 10)])
def test_package_refuses_bad_arguments(version: str, size: int) -> None:
    with pytest.raises(ValueError):
        common.package(version, size)


def test_wire_is_a_hex_dump() -> None:
    dump = common.wire(b"LABKIT-FW 2.0.0\n\x00\x01", width=8)
    lines = str(dump).splitlines()
    assert lines[0] == "0000  4c 41 42 4b 49 54 2d 46  |LABKIT-F|"
    assert lines[2].startswith("0010  00 01")
    assert len(dump) == 18
    assert "<pre" in dump._repr_html_()
    assert str(common.wire(b"")) == "(empty payload)"
    with pytest.raises(ValueError):
        common.wire(b"x", width=0)


def test_log_cuts_the_event_table_down() -> None:
    events = _events(
        [
            {"ts": 1.0, "device": "d", "source": "server", "kind": "request", "path": "/5/0/2"},
            {"ts": 1.5, "device": "d", "source": "device", "kind": "error", "code": "4.05"},
            {"ts": 2.0, "device": "e", "source": "server", "kind": "request", "path": "/3/0/3"},
        ]
    )
    log = common.log(events, "d", kinds=["error"])
    assert log["t_ms"].tolist() == [500.0] and log.loc[0, "code"] == "4.05"
    assert len(common.log(events, last=2)) == 2
    assert common.log(events).columns[0] == "t_ms"


def test_free_port_is_bindable() -> None:
    import socket

    port = common.free_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
