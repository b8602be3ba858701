"""The fallback ladder's exact rung and the model rows it relies on (issue 13: no false
`band_unreachable`). The saved households of tests/data/quality/ are the end-to-end regressions;
these pin the parts one at a time on small hand-made households."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from test_solver_scenarios import account, checked, household, lot

from schemas import parse_household
from solver.model import Limits, Restrictions, solve_model
from solver.problem import HouseholdProblem, build_problem
from solver.rounding import exact_trades

# One HiGHS call's work, bounded by nodes as the solver bounds a small household's.
LIMITS = Limits(max_nodes=200, max_iterations=500_000)


def _problem(h: dict[str, Any]) -> HouseholdProblem:
    return build_problem(parse_household(copy.deepcopy(h)))


def _remnant_household() -> dict[str, Any]:
    """An IRA holds 10.5 whole-share VTI (a fractional remnant from a past corporate action)
    against a 0% us_equity target: the band (0 +/- 0.5%) needs nearly all of it sold."""
    h = household(
        [
            account(
                "IRA",
                "tax_deferred",
                0.0,
                [lot("I1", "VTI", 10.5, 2000.0), lot("I2", "BND", 60, 4000.0)],
            )
        ],
        target={"us_equity": 0.0, "fixed_income": 0.98, "cash": 0.02},
    )
    h["buy_list"] = {"fixed_income": ["BND"]}
    return h


def test_the_exact_rung_sells_a_remnant_lot_whole_or_in_whole_shares() -> None:
    """A whole-share lot with a fractional remnant may be sold whole or by whole shares, never
    in between (rule 5): the exact model's integer shares say so, and the answer keeps it."""
    h = _remnant_household()
    p = _problem(h)
    s = solve_model(p, "rebalance", Restrictions(integer_shares=True), LIMITS)
    assert s.status == "optimal"
    i = p.lot_ids.index("I1")
    sold = float(s.sells[i] * p.value_usd / p.lot_price[i])
    assert abs(sold - 10.5) < 1e-6 or abs(sold - round(sold)) < 1e-6, sold
    got = exact_trades(p, s.sells, s.buys)
    assert got.sell_shares[i] in (10.5, float(round(got.sell_shares[i])))
    j = p.buy_symbols.index("BND")
    assert got.buy_shares[j] == round(got.buy_shares[j])
    r = checked(h)
    assert r["status"] == "rebalanced", r["messages"]


def test_exact_trades_keep_the_solvers_whole_shares_and_round_fractions_safely() -> None:
    """The exact rung's answer is taken as it is: whole shares to the nearest integer (solver
    noise only), fractional sells up and buys down to 6 decimals (cash only gains), dust none."""
    h = _remnant_household()
    h["securities"]["BND"]["fractional"] = True
    p = _problem(h)
    V = p.value_usd
    i1, i2 = p.lot_ids.index("I1"), p.lot_ids.index("I2")
    j = p.buy_symbols.index("BND")
    sells = np.zeros(len(p.lot_ids))
    sells[i1] = (3.0 + 1e-9) * p.lot_price[i1] / V  # 3 whole shares and solver noise
    sells[i2] = 0.001 / V  # dust
    buys = np.zeros(len(p.buy_symbols))
    buys[j] = 12.3456789 * p.buy_price[j] / V
    got = exact_trades(p, sells, buys)
    assert got.sell_shares[i1] == 3.0
    assert got.sell_shares[i2] == 0.0
    assert abs(got.buy_shares[j] - 12.345678) < 1e-12


def test_raised_cash_lends_max_turnover_only_what_the_account_sells() -> None:
    """max_turnover allows raising cash_needed on top of the cap; what counts as raised is
    what the short account sells, up to its need plus the smallest order (the self-check's
    reading). The model once added the whole allowance whatever was sold, so its answers broke
    the cap after rounding and the ladder lost the bands (q-01735)."""
    h = household(
        [
            account(
                "IRA",
                "tax_deferred",
                0.0,
                [lot("I1", "VTI", 40, 8000.0), lot("I2", "BND", 100, 7000.0)],
                cash_needed=3000.0,
            ),
            account("ROTH", "tax_exempt", 0.0, [lot("R1", "VTI", 60, 9000.0)]),
        ],
        options={"max_turnover": 0.0, "min_trade_value": 1000.0},
    )
    p = _problem(h)
    s = solve_model(p, "rebalance", Restrictions(), LIMITS)
    assert s.status == "optimal"
    V = p.value_usd
    ira = np.array([p.accounts[a] == "IRA" for a in p.lot_account])
    raised = min(float(s.sells[ira].sum()) * V, 3000.0 + 1000.0)
    traded = float(s.sells.sum() + s.buys.sum()) * V
    assert traded <= raised + 1e-4
    r = checked(h)
    assert r["status"] in ("rebalanced", "band_unreachable"), r["messages"]
