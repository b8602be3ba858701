"""The decision core: every trigger and every alert action of the contract (section 4)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import Household, Order, RebalanceResult, parse_household
from solver.decide import Decision, Standing, after_solve, band_excess, decide
from solver.drift import household_drift

TS = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)

BASE: dict[str, Any] = {
    "household_id": "hh-1",
    "as_of": "2026-11-24",
    "target": {"us_equity": 0.6, "fixed_income": 0.4},
    "buy_list": {"us_equity": ["VTI"], "fixed_income": ["BND"]},
    "options": {"harvest_losses": False},
    "accounts": [
        {
            "account_id": "hh-1-IRA",
            "type": "tax_deferred",
            "cash": 0.0,
            "lots": [
                {
                    "lot_id": "L-1",
                    "symbol": "VTI",
                    "quantity": 60,
                    "cost_basis": 5000.0,
                    "acquired": "2020-01-02",
                },
                {
                    "lot_id": "L-2",
                    "symbol": "BND",
                    "quantity": 40,
                    "cost_basis": 4000.0,
                    "acquired": "2020-01-02",
                },
            ],
        }
    ],
    "securities": {
        "VTI": {"price": 100.0, "asset_class": "us_equity"},
        "BND": {"price": 100.0, "asset_class": "fixed_income"},
    },
}


def make_household(*, vti: float = 100.0, mode: str = "rebalance", **overrides: Any) -> Household:
    raw = copy.deepcopy(BASE)
    raw["mode"] = mode
    raw["securities"]["VTI"]["price"] = vti
    for key, value in overrides.items():
        raw[key] = value
    return parse_household(raw, prices_required=False)


def decided(h: Household, standing: Standing | None = None) -> Decision:
    report = household_drift(h) if all(s.price for s in h.securities.values()) else None
    return decide(h, report, standing or Standing(), TS)


def test_inside_every_band_nothing_to_do() -> None:
    d = decided(make_household())
    assert d.kind == "nothing" and d.alert is None and d.alerted is None


def test_band_breach_asks_for_a_solve_and_says_how_far() -> None:
    d = decided(make_household(vti=150.0))
    assert d.kind == "solve" and d.solve == ("band_breach",) and d.alert is None
    further = decided(make_household(vti=200.0))
    assert further.priority > d.priority > 0.0


def test_idle_cash_and_cash_needed_are_triggers() -> None:
    accounts = copy.deepcopy(BASE["accounts"])
    accounts[0]["cash"] = 2000.0
    assert "idle_cash" in decided(make_household(accounts=accounts)).solve
    accounts = copy.deepcopy(BASE["accounts"])
    accounts[0]["cash_needed"] = 500.0
    assert "cash_needed" in decided(make_household(accounts=accounts)).solve


def test_a_harvestable_loss_is_a_trigger() -> None:
    accounts = copy.deepcopy(BASE["accounts"])
    accounts[0]["type"] = "taxable"
    accounts[0]["lots"][0]["cost_basis"] = 9000.0  # 60 x 100 = 6000: a 3000 loss
    h = make_household(accounts=accounts, options={"harvest_losses": True})
    assert decided(h).solve == ("harvest",)


def test_awaiting_prices_is_alerted_once_naming_the_symbols() -> None:
    h = make_household()
    h = replace(h, securities={**h.securities, "VTI": replace(h.securities["VTI"], price=None)})
    d = decide(h, None, Standing(), TS)
    assert d.kind == "alert" and d.alert is not None
    assert d.alert.action == "awaiting_prices" and d.alert.missing_prices == ("VTI",)
    assert d.alert.breaches == () and d.alert.ts == TS
    again = decide(h, None, Standing(alerted=d.alerted), TS)
    assert again.kind == "nothing" and again.alerted == d.alerted
    # once the price is known the household is evaluated as any other
    assert decided(make_household(vti=150.0), Standing(alerted=d.alerted)).kind == "solve"


def test_an_unclassified_symbol_is_awaited_too() -> None:
    h = make_household()
    h = replace(h, securities={"BND": h.securities["BND"]})
    d = decide(h, None, Standing(), TS)
    assert d.alert is not None and d.alert.missing_prices == ("VTI",)


def test_pending_orders_no_second_solve() -> None:
    d = decided(make_household(vti=150.0), Standing(open_orders=True))
    assert d.kind == "alert" and d.alert is not None and d.alert.action == "pending_orders"
    assert d.alerted == "fixed_income,us_equity"
    quiet = decided(make_household(vti=150.0), Standing(open_orders=True, alerted=d.alerted))
    assert quiet.kind == "nothing"  # the same breach is alerted once


def test_monitor_only_never_solves() -> None:
    d = decided(make_household(vti=150.0, mode="monitor"))
    assert d.kind == "alert" and d.alert is not None and d.alert.action == "monitor_only"
    assert [b.asset_class for b in d.alert.breaches] == ["fixed_income", "us_equity"]


def test_paused_breach_is_band_unreachable() -> None:
    d = decided(make_household(vti=150.0), Standing(paused=True))
    assert d.kind == "alert" and d.alert is not None and d.alert.action == "band_unreachable"


def _result(h: Household, status: str, orders: bool) -> RebalanceResult:
    rid = f"{h.household_id}:{h.as_of}:1"
    placed = (Order(f"{rid}:0", "hh-1-IRA", "VTI", "sell", 5, 150, 750, "rebalance"),)
    return RebalanceResult(h.household_id, h.as_of, rid, status, placed if orders else ())


@pytest.mark.parametrize(
    ("mode", "status", "orders", "action"),
    [
        ("rebalance", "rebalanced", True, "rebalance_submitted"),
        ("guardrail", "rebalanced", True, "guardrail_breach"),
        ("rebalance", "band_unreachable", False, "band_unreachable"),
        ("rebalance", "infeasible", False, "band_unreachable"),
        ("rebalance", "no_action", False, "band_unreachable"),
        ("guardrail", "no_action", False, "guardrail_breach"),
    ],
)
def test_after_solve_actions(mode: str, status: str, orders: bool, action: str) -> None:
    h = make_household(vti=150.0, mode=mode)
    report = household_drift(h)
    d = after_solve(h, report, Standing(), _result(h, status, orders), TS)
    assert d.alert is not None and d.alert.action == action
    assert d.alerted == "fixed_income,us_equity"


def test_band_excess_is_zero_inside() -> None:
    assert band_excess(household_drift(make_household())) == 0.0
    assert band_excess(household_drift(make_household(vti=150.0))) > 0.0
