"""labkit.sweep.grid: axes, effective parameters, cell identity (pure)."""

from __future__ import annotations

import pytest

from labkit.sweep.grid import Cell, Grid, GridError, parse_axis, parse_value


def test_values_are_typed() -> None:
    assert parse_value("-110") == -110
    assert parse_value("0.5") == 0.5
    assert parse_value("none") is None
    assert parse_value("true") is True
    assert parse_value("nb-iot") == "nb-iot"


def test_axis_parsing() -> None:
    assert parse_axis("min_rssi_dbm=-115,-110") == ("min_rssi_dbm", [-115, -110])
    assert parse_axis("min-rssi-dbm=-100") == ("min_rssi_dbm", [-100])
    assert parse_axis("faults=link-drop:0.05,boot-fail:0.05;none") == (
        "faults", ["link-drop:0.05,boot-fail:0.05", ""])
    with pytest.raises(GridError):
        parse_axis("policy")
    with pytest.raises(GridError):
        parse_axis("policy=always,always")


def test_policy_parameters_a_policy_does_not_take_collapse() -> None:
    g = Grid({"policy": ["always", "threshold"], "min_rssi_dbm": [-115, -110, -105, -100]},
             fixed={"profile": "nb-iot", "devices": 200}, seeds=range(5))
    points = g.points()
    assert len(points) == 5  # always once, threshold at four thresholds
    assert sum(p["policy"] == "always" for p in points) == 1
    assert all("min_rssi_dbm" not in p for p in points if p["policy"] == "always")
    cells = g.cells()
    assert len(cells) == 25
    assert len({c.id for c in cells}) == 25
    assert len({c.point for c in cells}) == 5


def test_cell_identity_depends_on_parameters_and_seed_only() -> None:
    a = Cell({"policy": "threshold", "min_rssi_dbm": -110, "devices": 10}, 1)
    b = Cell({"devices": 10, "min_rssi_dbm": -110, "policy": "threshold"}, 1)
    c = Cell({"devices": 10, "min_rssi_dbm": -110, "policy": "threshold"}, 2)
    assert a.id == b.id and a.point == b.point
    assert a.id != c.id and a.point == c.point


def test_simulate_kwargs_split_policy_and_campaign_options() -> None:
    cell = Grid({"min_rssi_dbm": [-110]}, fixed={"policy": "threshold", "max_wait_s": 600.0,
                                                  "devices": 7}).cells()[0]
    kw = cell.simulate_kwargs()
    assert kw["policy"] == "threshold"
    assert kw["policy_params"] == {"min_rssi_dbm": -110}
    assert kw["max_wait_s"] == 600.0
    assert kw["devices"] == 7 and kw["seed"] == 0
    assert "min_rssi_dbm" not in kw


def test_bad_grids_are_refused() -> None:
    with pytest.raises(GridError, match="unknown parameter"):
        Grid({"colour": ["red"]})
    with pytest.raises(GridError, match="both"):
        Grid({"profile": ["wifi"]}, fixed={"profile": "nb-iot"})
    with pytest.raises(GridError, match="repeat"):
        Grid({"profile": ["wifi"]}, seeds=[1, 1])
    with pytest.raises(GridError, match="seeds"):
        Grid({"seed": [1, 2]})


def test_explicit_list_and_round_trip() -> None:
    g = Grid(explicit=[{"policy": "always"}, {"policy": "threshold", "min_rssi_dbm": -100}],
             fixed={"profile": "wifi"}, seeds=[3])
    assert g.varied == ["policy", "min_rssi_dbm"]
    again = Grid.from_dict(g.as_dict())
    assert [c.id for c in again.cells()] == [c.id for c in g.cells()]
