"""Households for the console's browser test: one family with three accounts, a few simple ones.

`VTI` ticks from 240 to 290 and `VXUS` from 68 to 60: the family and two of the simple households
leave their bands, and the family's taxable VXUS lot becomes a loss worth harvesting.
"""

from __future__ import annotations

from typing import Any

AS_OF = "2026-11-24"
BEFORE = {"VTI": 240.0, "ITOT": 120.0, "VXUS": 68.0, "IXUS": 70.0, "BND": 72.0, "AGG": 98.0}
AFTER = {"VTI": 290.0, "VXUS": 60.0}
SECURITIES = {
    "VTI": {"asset_class": "us_equity", "wash_group": "us-total-market", "fractional": False},
    "ITOT": {"asset_class": "us_equity", "wash_group": "us-total-market-2", "fractional": False},
    "VXUS": {"asset_class": "intl_equity", "wash_group": "intl-a", "fractional": False},
    "IXUS": {"asset_class": "intl_equity", "wash_group": "intl-b", "fractional": False},
    "BND": {"asset_class": "fixed_income", "wash_group": "us-agg-a", "fractional": False},
    "AGG": {"asset_class": "fixed_income", "wash_group": "us-agg-b", "fractional": False},
}


def securities(prices: dict[str, float]) -> dict[str, Any]:
    return {s: {**sec, "price": prices[s]} for s, sec in SECURITIES.items()}


def lot(lot_id: str, symbol: str, quantity: float, basis: float, acquired: str) -> dict[str, Any]:
    return {
        "lot_id": lot_id,
        "symbol": symbol,
        "quantity": quantity,
        "cost_basis": basis,
        "acquired": acquired,
    }


def family(household_id: str = "hh-smith") -> dict[str, Any]:
    """Taxable, IRA and Roth; in band at BEFORE prices, out of band at AFTER."""
    return {
        "schema": "household/v1",
        "household_id": household_id,
        "as_of": AS_OF,
        "mode": "rebalance",
        "target": {"us_equity": 0.50, "intl_equity": 0.18, "fixed_income": 0.29, "cash": 0.03},
        "tax": {"short_term_rate": 0.408, "long_term_rate": 0.238},
        "buy_list": {
            "us_equity": ["VTI", "ITOT"],
            "intl_equity": ["VXUS", "IXUS"],
            "fixed_income": ["BND", "AGG"],
        },
        "location": {
            "fixed_income": ["tax_deferred", "tax_exempt", "taxable"],
            "us_equity": ["taxable", "tax_exempt", "tax_deferred"],
        },
        "options": {
            "min_trade_value": 250.0,
            "harvest_losses": True,
            "harvest_min_loss": 500.0,
            "transaction_cost_bps": 2.0,
        },
        "accounts": [
            {
                "account_id": f"{household_id}-TAX",
                "type": "taxable",
                "cash": 2000.0,
                "lots": [
                    lot("T-1", "VTI", 100, 18000.0, "2021-05-10"),
                    lot("T-2", "VTI", 40, 9200.0, "2025-12-01"),
                    lot("T-3", "VXUS", 150, 10500.0, "2024-02-01"),
                ],
            },
            {
                "account_id": f"{household_id}-IRA",
                "type": "tax_deferred",
                "cash": 500.0,
                "lots": [
                    lot("I-1", "BND", 300, 22500.0, "2019-03-04"),
                    lot("I-2", "VTI", 30, 6000.0, "2020-07-15"),
                ],
            },
            {
                "account_id": f"{household_id}-ROTH",
                "type": "tax_exempt",
                "cash": 300.0,
                "lots": [
                    lot("R-1", "VXUS", 100, 5000.0, "2020-01-06"),
                    lot("R-2", "VTI", 20, 4000.0, "2020-01-06"),
                ],
            },
        ],
        "securities": securities(BEFORE),
    }


def simple(household_id: str, equity_share: float, value_usd: float) -> dict[str, Any]:
    """One IRA holding VTI and BND, `equity_share` of `value_usd` in VTI; target 60/40."""
    eq = round(value_usd * equity_share / BEFORE["VTI"])
    fi = round(value_usd * (1 - equity_share) / BEFORE["BND"])
    return {
        "schema": "household/v1",
        "household_id": household_id,
        "as_of": AS_OF,
        "target": {"us_equity": 0.6, "fixed_income": 0.4},
        "buy_list": {"us_equity": ["VTI"], "fixed_income": ["BND"]},
        "options": {"min_trade_value": 100.0, "transaction_cost_bps": 2.0},
        "accounts": [
            {
                "account_id": f"{household_id}-IRA",
                "type": "tax_deferred",
                "cash": 0.0,
                "lots": [
                    lot("L-1", "VTI", eq, eq * 180.0, "2019-06-03"),
                    lot("L-2", "BND", fi, fi * 75.0, "2019-06-03"),
                ],
            }
        ],
        "securities": securities(BEFORE),
    }


def book() -> list[dict[str, Any]]:
    return [
        family("hh-smith"),
        simple("hh-garcia", 0.64, 412_000),
        simple("hh-chen", 0.63, 96_500),
        simple("hh-okafor", 0.61, 1_250_000),
        simple("hh-novak", 0.60, 58_000),
        simple("hh-patel", 0.58, 230_000),
    ]
