"""labkit.course.l03_pull_vs_push:
the helpers and exercises of notebook 03_pull_vs_push;
pure ones first, then on a live lab.
"""

from __future__ import annotations

import pandas as pd
import pytest

from labkit.course import l03_pull_vs_push as lesson
from labkit.lwm2m.objects import UpdateResult
from labkit.lwm2m.paths import Path


def _outcome(**kwargs):  # type: ignore[no-untyped-def]
    from labkit.fota import Outcome

    base = {"endpoint": "sim", "started_at": 100.0, "finished_at": 101.5, "success": True}
    base["result"] = UpdateResult.SUCCESS
    return Outcome(**{**base, **kwargs})


def test_delivery_table_explains_protocols_and_method() -> None:
    values = {Path.parse("/5/0/8/0"): 0, Path.parse("/5/0/8/1"): 2, "/5/0/9": 2, "/5/0/3": 0}
    table = lesson.delivery_table(values)
    assert list(table.columns) == ["path", "name", "value", "meaning"]
    assert table["path"].tolist() == ["/5/0/8/0", "/5/0/8/1", "/5/0/9"]
    assert table.loc[0, "meaning"].startswith("coap://")
    assert table.loc[1, "meaning"].startswith("http://")
    assert table.loc[2, "name"] == "Firmware Update Delivery Method"
    assert "the server picks" in table.loc[2, "meaning"]


def test_delivery_table_of_a_silent_or_odd_device() -> None:
    table = lesson.delivery_table({"/5/0/8/0": 42, "/5/0/9": 7})
    assert "does not know" in table.loc[0, "meaning"]
    assert "not a Delivery Method" in table.loc[1, "meaning"]
    absent = lesson.delivery_table({"/5/0/3": 0})
    assert absent["value"].tolist() == ["(absent)", "(absent)"]
    assert "CoAP is assumed" in absent.loc[0, "meaning"]


def test_compare_tabulates_push_pull_and_http() -> None:
    outcomes = [
        _outcome(method="push", protocol="coap", block_size=256, blocks=256, bytes_sent=65536,
                 download_s=0.512, check_s=0.01, update_s=0.01, reboot_s=0.2),
        _outcome(method="pull", protocol="coap", blocks=65, bytes_sent=65600, download_s=0.13),
        _outcome(method="pull", protocol="http", bytes_sent=65536, download_s=0.02),
        _outcome(method="pull", protocol="http", refused=True, success=False, result=None),
    ]  # fmt: skip
    table = lesson.compare(outcomes)
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
    assert lesson.compare([]).empty
