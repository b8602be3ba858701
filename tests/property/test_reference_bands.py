"""umh never says `band_unreachable` (or `infeasible`) where an exact reference reaches the bands.

The reference (streams.tools.reference_mip) is a MIP of every hard rule written from the contract,
independent of the product; each answer it gives is re-checked by the contract checker before it
counts. Twenty tiny generated households (every option mixed) run in a few seconds; the saved
households of tests/data/quality/ are defects found by `umh bench quality`, each expected to fail
(strict) until the solver is fixed: when one starts passing, remove it from KNOWN_DEFECTS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streams.tools import reference_mip
from streams.tools.bench_quality import judge_household
from streams.tools.quality_households import make_quality_household

DATA = Path(__file__).parent.parent / "data" / "quality"
SEED = 13
BANDED_MODES = ("rebalance", "guardrail")
#: file stem -> why the current solver fails it (found by `umh bench quality`).
KNOWN_DEFECTS: dict[str, str] = {}


def _saved() -> list[Any]:
    out = []
    for path in sorted(DATA.glob("*.json")):
        reason = KNOWN_DEFECTS.get(path.stem)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(path, id=path.stem, marks=marks))
    return out


def _defects(h: dict[str, Any]) -> list[str]:
    row = judge_household(h, tax=False)
    return [d for d in row["defects"] if d != "reference_witness_fails"]


@pytest.mark.parametrize("i", range(20))
def test_tiny_household_matches_the_reference(i: int) -> None:
    h = make_quality_household(i, np.random.default_rng([SEED, i]), "tiny")
    row = judge_household(h, tax=False)
    assert row["defects"] == [], (row["defects"], row.get("violations"), row.get("reference"))
    if h["mode"] in BANDED_MODES and row["status"] in ("rebalanced", "no_action"):
        # the other direction: where umh ends in band, the reference agrees the bands are
        # reachable (a check of the reference itself)
        assert reference_mip.reach_bands(h, margin=-reference_mip.WEIGHT_TOL).status == "feasible"


def test_the_reference_finds_an_unreachable_band() -> None:
    """No intl_equity held and none may be bought: its 15% target is out of reach (0 < 11.25%),
    while the same household with intl_equity on the buy list reaches every band."""
    h = make_quality_household(0, np.random.default_rng([SEED, 0]), "tiny")
    h["mode"] = "rebalance"
    h["target"] = {"us_equity": 0.45, "intl_equity": 0.15, "fixed_income": 0.37, "cash": 0.03}
    h["securities"] = {
        "VTI": {"price": 100.0, "asset_class": "us_equity"},
        "VXUS": {"price": 50.0, "asset_class": "intl_equity"},
        "BND": {"price": 80.0, "asset_class": "fixed_income"},
    }
    h["accounts"] = [
        {
            "account_id": "A",
            "type": "tax_deferred",
            "cash": 5000.0,
            "lots": [
                {
                    "lot_id": "1",
                    "symbol": "VTI",
                    "quantity": 600.0,
                    "cost_basis": 30000.0,
                    "acquired": "2020-01-02",
                },
                {
                    "lot_id": "2",
                    "symbol": "BND",
                    "quantity": 500.0,
                    "cost_basis": 40000.0,
                    "acquired": "2020-01-02",
                },
            ],
        }
    ]
    h["recent_trades"] = []
    h["options"] = {"min_trade_value": 100.0}
    h["buy_list"] = {"us_equity": ["VTI"], "fixed_income": ["BND"]}
    assert reference_mip.reach_bands(h).status == "infeasible"
    h["buy_list"]["intl_equity"] = ["VXUS"]
    outcome = reference_mip.reach_bands(h)
    assert outcome.status == "feasible"
    assert reference_mip.witness_problems(h, outcome) == []


@pytest.mark.parametrize("path", _saved())
def test_saved_defect_household(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert _defects(doc["household"]) == [], doc["why"]
