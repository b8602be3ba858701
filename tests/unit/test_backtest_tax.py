"""Backtest tax behaviour a user reads off the report: the transition under a yearly budget,
rule 4b records for the starting lots, the checker given to the backtest, HIFO lot relief."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from schemas import (
    Account,
    Household,
    Lot,
    RebalanceResult,
    Security,
    parse_household,
    result_to_json,
)
from solver import solve
from solver.per_account import relief_order
from streams.tools.backtest.engine import Market, simulate_household, with_recent_buys
from streams.tools.backtest.prices import business_days, simulate_paths
from streams.tools.backtest.strategies import Strategy
from streams.tools.backtest.transition import BUDGET_USED_SHARE, run_transition
from streams.tools.synthetic import make_household, make_universe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.tools.contract_check import violations

START = date(2026, 1, 2)
SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "scenarios"


@pytest.fixture(scope="module")
def world() -> tuple[dict[str, Security], Market]:
    rng = np.random.default_rng(5)
    universe = make_universe(30, rng)
    market = Market.of(simulate_paths(universe, business_days(START, 3), rng))
    return universe, market


def test_transition_keeps_its_yearly_budget_and_uses_all_of_it_until_inside_the_bands(
    world: tuple[dict[str, Security], Market],
) -> None:
    universe, market = world
    budget = 250_000.0
    t = run_transition(universe, market, budget_usd=budget)
    budgeted = t["runs"]["transition_budget"]
    free = t["runs"]["transition_unbudgeted"]
    realized = budgeted["realized_by_year"]
    assert realized, "the budgeted transition sold nothing"
    assert all(v <= budget + 1.0 for v in realized.values()), realized
    assert t["within_budget_every_year"]
    # the move needs more than one year's budget: the budget spreads it over years
    assert t["gain_to_reach_bands_at_once"] > budget
    assert free["calendar_years_used"] == 1
    assert budgeted["first_day_in_bands"] is not None
    assert budgeted["calendar_years_used"] >= 2
    arrival = int(budgeted["first_day_in_bands"][:4])
    for year in range(START.year, arrival):
        assert realized[str(year)] >= BUDGET_USED_SHARE * budget, (year, realized)
    assert t["whole_budget_used_every_year_before_bands"]
    # unbudgeted, the whole gain comes in the first year
    assert free["realized_by_year"][str(START.year)] > 2 * budget


def _lot(lot_id: str, symbol: str, acquired: date, quantity: float = 10.0) -> Lot:
    return Lot(lot_id, symbol, quantity, 1_000.0, acquired)


def test_starting_lots_bought_within_30_days_get_their_buy_record() -> None:
    as_of = date(2026, 1, 5)
    h = Household(
        "hh",
        as_of,
        {"us_equity": 1.0},
        (
            Account(
                "TAX",
                "taxable",
                lots=(
                    _lot("old", "VTI", as_of - timedelta(days=400)),
                    _lot("recent", "VTI", as_of - timedelta(days=26)),
                ),
            ),
            Account("IRA", "tax_deferred", lots=(_lot("edge", "VTI", as_of - timedelta(30)),)),
        ),
        securities={"VTI": Security("VTI", {"us_equity": 1.0}, 100.0, asset_class="us_equity")},
    )
    out = with_recent_buys(h)
    assert {(t.account_id, t.side, t.date) for t in out.recent_trades} == {
        ("TAX", "buy", as_of - timedelta(days=26)),
        ("IRA", "buy", as_of - timedelta(days=30)),
    }
    assert with_recent_buys(out) == out  # a record already there is not added twice


def test_the_backtest_judges_umh_results_with_the_checker_it_is_given(
    world: tuple[dict[str, Security], Market],
) -> None:
    universe, market = world
    h = make_household(
        "hh-c", universe, np.random.default_rng(2), n_accounts=2, n_lots=20, as_of=START
    )
    seen: list[str] = []

    def strict(hh: Household, r: RebalanceResult) -> list[str]:
        seen.append(r.rebalance_id)
        return ["always one"]

    run = simulate_household(
        h,
        (),
        market,
        strategies=(Strategy("household", "umh", harvest=True),),
        checker=strict,
    ).runs["household"]
    assert seen and run.solves == len(seen)
    assert run.hard_rule_violations == len(seen)
    assert run.violation_samples[0].endswith("always one")


def test_hifo_relieves_the_highest_cost_per_share_first() -> None:
    d = date(2020, 1, 1)
    lots = [
        Lot("cheap-old", "VTI", 10.0, 500.0, d),
        Lot("dear", "VTI", 10.0, 3_000.0, d + timedelta(days=400)),
        Lot("mid", "VTI", 20.0, 2_000.0, d + timedelta(days=10)),
    ]
    assert [x.lot_id for x in relief_order(lots, "hifo")] == ["dear", "mid", "cheap-old"]
    assert [x.lot_id for x in relief_order(lots, "fifo")] == ["cheap-old", "mid", "dear"]
    with pytest.raises(ValueError, match="lot_order"):
        relief_order(lots, "lifo")


def test_strategy_budget_emulation_caps_the_rebalance_at_what_is_left(
    world: tuple[dict[str, Security], Market],
) -> None:
    universe, _ = world
    h = make_household("hh-b", universe, np.random.default_rng(3), n_accounts=2, as_of=START)
    s = Strategy("b", "umh", yearly_gain_budget=10_000.0, emulate_year_budget=True)
    h = s.configure(h)
    assert h.options.max_realized_gain_year == 10_000.0
    spent = replace(h, realized_this_year=replace(h.realized_this_year, long_term_gain=7_500.0))
    assert s.prepare(spent).options.max_realized_gain == pytest.approx(2_500.0)
    native = Strategy("n", "umh", yearly_gain_budget=10_000.0)
    assert native.prepare(spent).options.max_realized_gain == spent.options.max_realized_gain


def test_backtest_household_that_harvested_against_a_recent_ira_lot_no_longer_does() -> None:
    # Found by the backtest (tiny book, seed 11, day 1): the solver harvested VB in the taxable
    # account while the IRA held a VB lot acquired 25 days before (rule 4b by lots).
    doc = json.loads((SCENARIOS / "wash_4b_recent_ira_lot_harvest.json").read_text())
    h = parse_household(doc)
    recent = [
        lot
        for a in h.accounts
        for lot in a.lots
        if a.type != "taxable" and lot.symbol == "VB" and (h.as_of - lot.acquired).days <= 30
    ]
    assert recent
    r = solve(h)
    assert r.status == "rebalanced"
    taxable = {a.account_id for a in h.accounts if a.type == "taxable"}
    assert not [
        o for o in r.orders if o.symbol == "VB" and o.side == "sell" and o.account_id in taxable
    ]
    assert violations(doc, result_to_json(r)) == []


def _sold_at_a_loss_after_costs(h: Household, r: RebalanceResult) -> list[str]:
    """Lots of recently bought groups that the orders sell at a loss once the selling cost
    (`transaction_cost_bps` of the proceeds) is taken off, as a fill at the bid realizes it."""
    k = h.options.transaction_cost_bps / 1e4
    bought = {h.securities[t.symbol].group for t in h.recent_trades if t.side == "buy"}
    lots = {lot.lot_id: (a, lot) for a in h.accounts for lot in a.lots}
    out = []
    for o in r.orders:
        if o.side != "sell" or h.securities[o.symbol].group not in bought:
            continue
        for x in o.lots:
            a, lot = lots[x.lot_id]
            proceeds = x.quantity * o.est_price * (1.0 - k)
            if a.type == "taxable" and proceeds < lot.cost_basis * x.quantity / lot.quantity:
                out.append(x.lot_id)
    return out


def test_backtest_household_whose_tiny_gain_is_a_loss_after_the_selling_cost() -> None:
    # Found by the backtest (seed 23, hh-00009, household_no_harvest, 2035-02-09): ITOT bought
    # on 2035-01-16 and 2035-02-01; the solver sells an ITOT lot whose gain at est_price is
    # +0.01 USD, which the fill at price * (1 - 2 bp) realizes as a 5.30 USD loss: a wash sale.
    doc = json.loads((SCENARIOS / "wash_4b_gain_below_selling_cost.json").read_text())
    h = parse_household(doc)
    r = solve(h)
    assert violations(doc, result_to_json(r)) == []  # the contract's price-based reading holds
    assert _sold_at_a_loss_after_costs(h, r) == []
