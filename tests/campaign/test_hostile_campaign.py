"""A campaign over hostile-notification devices: its per-device table equals their own results.

30 devices in the suite (fixed seed); ``python -m tests.campaign.hostile_campaign --devices
200`` runs the long version.
"""

from __future__ import annotations

import asyncio

import pytest

from labkit.fota.update import SOURCES
from tests.campaign.hostile_campaign import run_campaign


@pytest.mark.parametrize("method", ["push", "pull"])
def test_campaign_table_equals_the_devices_own_results(method: str) -> None:
    async def main():  # type: ignore[no-untyped-def]
        async with asyncio.timeout(240):
            return await run_campaign(30, seed=13, method=method)

    check = asyncio.run(main())
    table = check.table
    assert len(table) == 30
    assert check.disagreeing.empty, check.disagreeing[
        ["device", "status", "result", "own_result", "reason"]
    ].to_string()
    # the fleet really failed in several ways, and the table says which
    assert {1, 2, 3, 5, 8} <= set(table["own_result"].dropna().astype(int))
    assert (table.loc[table["own_result"] == 1, "status"] == "success").all()
    # and where each result came from (read before the verdict, in these runs)
    assert set(table["result_source"]) <= {*SOURCES, "inferred"}
    assert "read-after-state" in set(table["result_source"])
