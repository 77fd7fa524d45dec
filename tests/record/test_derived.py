"""Derived tables on hand-built events: every expected row written out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.events import Event
from labkit.record import (
    attempts,
    decisions,
    empty_frame,
    events_to_frame,
    result_counts,
    state_intervals,
    time_to_success,
)
from tests.record.record_events import T0, scenario


def ts(dt: float) -> pd.Timestamp:
    return pd.Timestamp(round((T0 + dt) * 1e6), unit="us", tz="UTC")


@pytest.fixture
def events() -> pd.DataFrame:
    return events_to_frame(scenario(), "r")


def test_state_intervals(events: pd.DataFrame) -> None:
    got = state_intervals(events)
    assert isinstance(got.index, pd.RangeIndex)
    assert list(got.columns) == ["device", "state", "start", "end", "duration_s", "result_at_end"]
    expected = [
        ("dev-a", "IDLE", 0.2, 0.7, "INITIAL"),
        ("dev-a", "DOWNLOADING", 0.7, 1.1, "INITIAL"),
        ("dev-a", "DOWNLOADED", 1.1, 1.3, "INITIAL"),
        ("dev-a", "UPDATING", 1.3, 2.5, "INITIAL"),
        ("dev-a", "IDLE", 2.5, 2.7, "SUCCESS"),  # ends at dev-a's last event (fw_version)
        ("dev-b", "DOWNLOADING", 1.7, 2.0, "INITIAL"),
        ("dev-b", "IDLE", 2.0, 3.2, "CONNECTION_LOST"),
        ("dev-b", "DOWNLOADING", 3.2, 3.6, "INITIAL"),
        ("dev-b", "DOWNLOADED", 3.6, 3.8, "INITIAL"),
        ("dev-b", "UPDATING", 3.8, 4.6, "INITIAL"),
        ("dev-b", "DOWNLOADED", 4.6, 4.8, "UPDATE_FAILED"),
    ]
    assert [(r.device, r.state, r.start, r.end, r.result_at_end) for r in got.itertuples()] == [
        (d, s, ts(a), ts(b), res) for d, s, a, b, res in expected
    ]
    assert got["duration_s"].to_numpy() == pytest.approx([b - a for _, _, a, b, _ in expected])
    assert got["state"].dtype.ordered
    assert str(got["start"].dtype) == "datetime64[us, UTC]"


def test_state_intervals_merge_repeated_states(events: pd.DataFrame) -> None:
    extra = [
        *scenario(),
        Event(ts=T0 + 2.55, source="device", kind="fw_state", device="dev-a", state=0),
    ]
    extra.sort(key=lambda e: e.ts)
    got = state_intervals(events_to_frame(extra, "r"))
    assert len(got) == 11


def test_attempts(events: pd.DataFrame) -> None:
    got = attempts(events)
    assert isinstance(got.index, pd.RangeIndex)
    assert list(got.columns) == [
        "device",
        "attempt",
        "method",
        "protocol",
        "start",
        "end",
        "duration_s",
        "download_s",
        "update_s",
        "bytes",
        "blocks",
        "retransmissions",
        "final_state",
        "result",
        "fw_before",
        "fw_after",
        "success",
        "finished",
        "wave",
    ]
    rows = got.astype(object).where(got.notna(), None).to_dict("records")
    assert [(r["device"], r["attempt"], r["method"], r["protocol"]) for r in rows] == [
        ("dev-a", 1, "push", "coap"),
        ("dev-b", 1, "pull", "http"),
        ("dev-b", 2, "pull", "http"),
    ]
    assert [(r["start"], r["end"]) for r in rows] == [
        (ts(0.5), ts(2.6)),  # push decision .. SUCCESS after the reboot
        (ts(1.55), ts(2.05)),  # pull decision .. CONNECTION_LOST (the stale 1 at 1.65 ignored)
        (ts(3.0), ts(4.7)),  # retry .. UPDATE_FAILED
    ]
    assert got["duration_s"].to_numpy() == pytest.approx([2.1, 0.5, 1.7])
    assert got["download_s"].to_numpy(dtype=float) == pytest.approx([0.4, 0.3, 0.4])
    assert got["update_s"].to_numpy(dtype=float, na_value=np.nan) == pytest.approx(
        [1.2, np.nan, 0.8], nan_ok=True
    )
    assert [(r["bytes"], r["blocks"], r["retransmissions"]) for r in rows] == [
        (1124, 3, 1),  # block 1 sent twice: counted once, one retransmission
        (2048, 2, 0),
        (2548, 3, 0),
    ]
    assert [(r["final_state"], r["result"], r["success"], r["finished"]) for r in rows] == [
        ("IDLE", "SUCCESS", True, True),
        ("IDLE", "CONNECTION_LOST", False, True),
        ("DOWNLOADED", "UPDATE_FAILED", False, True),
    ]
    assert [(r["fw_before"], r["fw_after"]) for r in rows] == [
        ("1.0.0", "1.1.0"),
        ("1.0.0", None),
        ("1.0.0", "1.0.0"),
    ]
    assert got["result"].dtype == events["result"].dtype
    assert got["final_state"].dtype == events["state"].dtype


def test_attempts_do_not_depend_on_row_order(events: pd.DataFrame) -> None:
    shuffled = events.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(attempts(shuffled), attempts(events))
    pd.testing.assert_frame_equal(state_intervals(shuffled), state_intervals(events))


def test_unfinished_and_deferred_attempts() -> None:
    def e(dt: float, kind: str, **kw: object) -> Event:
        return Event(ts=T0 + dt, source="server", kind=kind, device="d", **kw)  # type: ignore[arg-type]

    evs = [
        e(0, "request", method="PUT", path="5/0/1"),  # no decision: the write starts it
        e(1, "fw_state", state=1),
        e(2, "fw_state", state=2),
        e(3, "request", method="POST", path="/5/0/2"),
        e(4, "fw_result", result=11),  # deferred: still open
        e(5, "fw_state", state=3),
        e(6, "reboot", wave=2),
        Event(ts=T0 + 9, source="lab", kind="note"),  # the run ends here
    ]
    got = attempts(events_to_frame(evs, "r"))
    assert len(got) == 1
    row = got.iloc[0]
    assert row["method"] == "pull" and pd.isna(row["protocol"])
    assert row["start"] == ts(0) and row["end"] == ts(9)
    assert not row["finished"] and not row["success"]
    assert row["result"] == "DEFERRED" and row["final_state"] == "UPDATING"
    assert row["download_s"] == 1.0 and row["update_s"] == 4.0  # UPDATING until the run end
    assert pd.isna(row["bytes"]) and row["blocks"] == 0
    assert row["wave"] == 2


def test_a_get_of_the_package_uri_does_not_start_an_attempt() -> None:
    evs = [
        Event(ts=T0, source="server", kind="request", device="d", method="GET", path="/5/0/1"),
        Event(ts=T0 + 1, source="server", kind="fw_result", device="d", result=1),
    ]
    assert len(attempts(events_to_frame(evs, "r"))) == 0


def _rows(table: pd.DataFrame) -> list[tuple[object, ...]]:
    return [
        (r.device, r.attempt, r.start, r.end, r.result, r.finished)
        for r in table.astype(object).where(table.notna(), None).itertuples()
    ]


def test_a_campaign_verdict_ends_the_attempt_it_judged() -> None:
    def e(dt: float, source: str, kind: str, device: str = "d", **kw: object) -> Event:
        return Event(ts=T0 + dt, source=source, kind=kind, device=device, wave=0, **kw)  # type: ignore[arg-type]

    evs = [
        # d: a PUSH stalls in DOWNLOADING; the device never reports a result; the campaign
        # infers 4 CONNECTION_LOST, retries, the retry stalls before any State change and is
        # judged 4 again (the same code, nothing seen since: still a verdict)
        e(0, "server", "fw_result", result=0),
        e(1, "policy", "decision", decision="push"),
        e(2, "server", "request", method="PUT", path="/5/0/0"),
        e(3, "device", "fw_state", state=1),
        e(4, "server", "fw_state", state=1),
        e(5, "device", "request", method="PUT", path="/5/0/0", detail="not answered"),
        e(6, "server", "error", method="PUT", path="/5/0/0", detail="no answer"),
        e(7, "campaign", "campaign", result=4, detail="retry 2 of 2 after CONNECTION_LOST"),
        e(8, "policy", "decision", decision="push"),
        e(9, "server", "request", method="PUT", path="/5/0/0"),
        e(10, "campaign", "campaign", result=4, detail="device failed: CONNECTION_LOST"),
        e(11, "device", "fw_result", result=4),  # the device's own report, once the link is back
        e(12, "device", "fw_state", state=0),
        # s: no persistence, Result 0 after the reboot; the campaign judged SUCCESS from /3/0/3
        e(1, "policy", "decision", "s", decision="push"),
        e(2, "server", "request", "s", method="PUT", path="/5/0/0"),
        e(3, "server", "fw_state", "s", state=1),
        e(4, "server", "fw_state", "s", state=2),
        e(5, "server", "request", "s", method="POST", path="/5/0/2"),
        e(6, "server", "fw_state", "s", state=3),
        e(7, "server", "fw_state", "s", state=0),
        e(8, "server", "fw_result", "s", result=0),
        e(9, "campaign", "campaign", "s", result=1, detail="device success"),
        # v: the verdict repeats the result the device reported: one attempt, ended by the device
        e(1, "policy", "decision", "v", decision="push"),
        e(2, "server", "request", "v", method="PUT", path="/5/0/0"),
        e(3, "server", "fw_state", "v", state=1),
        e(4, "device", "fw_result", "v", result=5),
        e(5, "server", "fw_result", "v", result=5),
        e(6, "campaign", "campaign", "v", result=5, detail="device failed"),
        Event(ts=T0 + 20, source="lab", kind="note"),
    ]
    got = attempts(events_to_frame(sorted(evs, key=lambda x: x.ts), "r"))
    assert _rows(got) == [
        ("d", 1, ts(1), ts(7), "CONNECTION_LOST", True),
        ("d", 2, ts(8), ts(10), "CONNECTION_LOST", True),
        ("s", 1, ts(1), ts(9), "SUCCESS", True),
        ("v", 1, ts(1), ts(4), "INTEGRITY_CHECK_FAILURE", True),
    ]
    assert got["success"].tolist() == [False, False, True, False]
    assert got["wave"].tolist() == [0, 0, 0, 0]
    assert got["final_state"].astype(str).tolist() == ["DOWNLOADING", "IDLE", "IDLE", "DOWNLOADING"]


def test_requests_the_device_refused_start_no_attempt() -> None:
    def e(dt: float, source: str, kind: str, device: str = "d", **kw: object) -> Event:
        return Event(ts=T0 + dt, source=source, kind=kind, device=device, **kw)  # type: ignore[arg-type]

    evs = [
        # d (sim-0040 of the samples): the device refuses the package with 4.13 after
        # reporting Result 2; server and campaign repeat Result 2
        e(0, "policy", "decision", decision="push"),
        e(1, "server", "request", method="PUT", path="/5/0/0"),
        e(2, "device", "fault", detail="no-flash"),
        e(3, "device", "fw_state", state=1),
        e(4, "device", "fw_result", result=2),
        e(5, "device", "fw_state", state=0),
        e(6, "device", "request", method="PUT", path="/5/0/0", code="4.13"),
        e(6.5, "device", "block", block=0, bytes=1024),
        e(7, "server", "response", method="PUT", path="/5/0/0", code="4.13"),
        e(8, "server", "fw_result", result=2),
        e(9, "campaign", "campaign", result=2, detail="device failed: NOT_ENOUGH_FLASH"),
        # u: a successful update; after the reboot the device answers a duplicate Execute
        # with 4.05, and the server's late notification of DOWNLOADING (logged after the
        # device's own records) is the same change, not a new attempt
        e(0, "policy", "decision", "u", decision="push"),
        e(1, "server", "request", "u", method="PUT", path="/5/0/0"),
        e(2, "device", "fw_state", "u", state=1),
        e(3, "device", "fw_state", "u", state=2),
        e(4, "server", "request", "u", method="POST", path="/5/0/2"),
        e(5, "device", "request", "u", method="POST", path="/5/0/2", code="2.04"),
        e(6, "device", "fw_state", "u", state=3),
        e(7, "device", "reboot", "u"),
        e(8, "device", "fw_state", "u", state=0),
        e(9, "device", "fw_result", "u", result=1),
        e(10, "device", "request", "u", method="POST", path="/5/0/2", code="4.05"),
        e(11, "server", "fw_state", "u", state=1),  # late
        e(12, "server", "fw_state", "u", state=0),
        e(13, "server", "fw_result", "u", result=1),
        Event(ts=T0 + 20, source="lab", kind="note"),
    ]
    got = attempts(events_to_frame(sorted(evs, key=lambda x: x.ts), "r"))
    assert _rows(got) == [
        ("d", 1, ts(0), ts(4), "NOT_ENOUGH_FLASH", True),
        ("u", 1, ts(0), ts(9), "SUCCESS", True),
    ]
    assert got["blocks"].tolist() == [0, 0]  # the refused write's block is in no attempt


def test_a_device_side_log_starts_attempts_from_what_the_device_accepted() -> None:
    def e(dt: float, kind: str, **kw: object) -> Event:
        return Event(ts=T0 + dt, source="device", kind=kind, device="d", **kw)  # type: ignore[arg-type]

    evs = [
        e(0, "request", method="PUT", path="/5/0/0", code="4.13"),  # refused: nothing
        e(1, "request", method="PUT", path="/5/0/1", code="2.04"),  # accepted: attempt 1
        e(2, "fw_state", state=1),
        e(3, "fw_result", result=4),
        e(4, "fw_state", state=0),
        e(5, "request", method="PUT", path="/5/0/0", detail="not answered"),  # nothing
        e(6, "fw_state", state=1),  # attempt 2 (its request was not recorded)
        e(7, "fw_state", state=2),
        e(8, "request", method="POST", path="/5/0/2", code="2.04"),
        e(9, "fw_state", state=3),
        e(10, "fw_state", state=0),
        e(11, "fw_result", result=1),
        e(12, "request", method="POST", path="/5/0/2", code="4.05"),  # duplicate: nothing
        e(13, "fw_result", result=1),
    ]
    got = attempts(events_to_frame(evs, "r"))
    assert _rows(got) == [
        ("d", 1, ts(1), ts(3), "CONNECTION_LOST", True),
        ("d", 2, ts(6), ts(11), "SUCCESS", True),
    ]
    assert got["method"].iloc[0] == "pull" and pd.isna(got["method"].iloc[1])  # no write seen


def test_decisions(events: pd.DataFrame) -> None:
    got = decisions(events)
    assert list(got.columns) == [
        "ts",
        "seq",
        "device",
        "decision",
        "reason",
        "rssi_dbm",
        "link_quality",
        "battery",
        "sample_age_s",
    ]
    rows = got.astype(object).where(got.notna(), None).to_dict("records")
    assert [
        (r["device"], r["decision"], r["rssi_dbm"], r["link_quality"], r["battery"]) for r in rows
    ] == [
        ("dev-b", "wait", -110, 10, None),  # carried on the decision row itself
        ("dev-a", "push", -75, 80, 90),  # from the link sample at 0.40
        ("dev-b", "pull", -90, None, None),  # from the link sample at 1.50 (RSSI only)
        ("dev-b", "pull", -90, None, None),
    ]
    assert got["sample_age_s"].to_numpy(dtype=float) == pytest.approx([0.0, 0.1, 0.05, 1.5])
    assert got["reason"].tolist() == ["weak signal", "good link", "link recovered", "retry after 4"]
    assert str(got["rssi_dbm"].dtype) == "Int16" and str(got["battery"].dtype) == "Int8"


def test_result_counts(events: pd.DataFrame) -> None:
    overall = result_counts(events)  # from events: attempts first
    assert list(overall.columns) == ["result", "code", "count", "share"]
    assert overall[["result", "code", "count"]].astype(object).values.tolist() == [
        ["SUCCESS", 1, 1],
        ["CONNECTION_LOST", 4, 1],
        ["UPDATE_FAILED", 8, 1],
    ]
    assert overall["share"].sum() == pytest.approx(1.0)

    by_device = result_counts(attempts(events), by="device")
    assert by_device[["device", "result", "count"]].astype(object).values.tolist() == [
        ["dev-a", "SUCCESS", 1],
        ["dev-b", "CONNECTION_LOST", 1],
        ["dev-b", "UPDATE_FAILED", 1],
    ]
    assert by_device["share"].tolist() == [1.0, 0.5, 0.5]
    assert isinstance(by_device.index, pd.RangeIndex)


def test_result_counts_shares_per_group_with_missing_groups() -> None:
    table = pd.DataFrame(
        {
            "policy": ["a", "a", "a", "b", None, None],
            "result": pd.Categorical(
                ["SUCCESS", "SUCCESS", "CONNECTION_LOST", "SUCCESS", "UPDATE_FAILED", None],
                dtype=events_to_frame([], "r")["result"].dtype,
            ),
        }
    )
    got = result_counts(table, by=["policy"])
    assert got.groupby("policy", dropna=False)["share"].sum().tolist() == pytest.approx(
        [1.0, 1.0, 1.0]
    )
    a = got[got["policy"] == "a"]
    assert a["result"].tolist() == ["SUCCESS", "CONNECTION_LOST"]
    assert a["share"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert got["count"].sum() == 5  # the attempt without a result is left out
    with pytest.raises(KeyError, match="profile"):
        result_counts(table, by="profile")


def test_time_to_success(events: pd.DataFrame) -> None:
    got = time_to_success(attempts(events))
    assert list(got.columns) == [
        "t_s",
        "n_at_risk",
        "n_success",
        "n_censored",
        "surviving",
        "success_fraction",
    ]
    assert got["t_s"].to_numpy() == pytest.approx([0.5, 1.7, 2.1])
    assert got["n_at_risk"].tolist() == [3, 2, 1]
    assert got["n_success"].tolist() == [0, 0, 1]
    assert got["n_censored"].tolist() == [1, 1, 0]
    assert got["surviving"].tolist() == [1.0, 1.0, 0.0]


def test_time_to_success_by_group_matches_a_hand_kaplan_meier() -> None:
    table = pd.DataFrame(
        {
            "method": ["push"] * 5 + ["pull"] * 3,
            "duration_s": [1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 5.0, 6.0],
            "success": [True, True, False, True, False, False, True, True],
        }
    )
    got = time_to_success(table, by="method")
    push = got[got["method"] == "push"]
    assert push["t_s"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert push["n_at_risk"].tolist() == [5, 4, 2, 1]
    # S = 4/5, then * (1 - 1/4), then * (1 - 1/2), then unchanged by the censored 4.0
    assert push["surviving"].to_numpy() == pytest.approx([0.8, 0.6, 0.3, 0.3])
    pull = got[got["method"] == "pull"]
    assert pull["surviving"].to_numpy() == pytest.approx([2 / 3, 0.0])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("xyz"), st.floats(0, 100), st.booleans()),
        min_size=1,
        max_size=40,
    )
)
def test_time_to_success_is_monotone(rows: list[tuple[str, float, bool]]) -> None:
    table = pd.DataFrame(rows, columns=["wave", "duration_s", "success"])
    got = time_to_success(table, by="wave")
    for _, group in got.groupby("wave"):
        surviving = group["surviving"].to_numpy()
        assert (np.diff(surviving) <= 1e-12).all()
        assert ((surviving >= 0) & (surviving <= 1)).all()
        assert (np.diff(group["t_s"].to_numpy()) > 0).all()
        assert (np.diff(group["n_at_risk"].to_numpy()) < 0).all()
    assert got["n_success"].sum() == sum(s for _, _, s in rows)


def test_empty_event_table_gives_empty_typed_tables() -> None:
    empty = empty_frame()
    assert len(state_intervals(empty)) == 0
    a = attempts(empty)
    assert len(a) == 0 and str(a["start"].dtype) == "datetime64[us, UTC]"
    assert len(decisions(empty)) == 0
    assert len(result_counts(empty)) == 0
    assert len(time_to_success(a)) == 0
