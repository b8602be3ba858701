"""The after-tax value of a harvest (solver/harvest.py): hand-computed cases, and a household
where a small loss that costs more than it saves is not harvested while a large short-term one is.

Rates 40% / 20% unless said; the default rule: horizon 10 years, a carried loss funds next
year's 3,000 USD income offset (the rest waits for the horizon), 5% a year, so
d(10) = 1.05**-10 = 0.6139133, d(1) = 1 / 1.05 = 0.9523810.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import TaxRates, parse_household
from solver import solve
from solver.harvest import (
    HARVEST_ALWAYS,
    HarvestRule,
    LossLot,
    harvest_candidates,
    harvest_value,
    year_tax,
)

RATES = TaxRates(short_term_rate=0.40, long_term_rate=0.20)
D10 = 1.05**-10
D1 = 1.05**-1
SCENARIO = Path(__file__).resolve().parents[1] / "data" / "scenarios" / "harvest_by_value.json"


def test_year_tax_nets_kinds_then_offsets_3000_of_income_short_term_first() -> None:
    # 1k short gain, 5k long loss: the long loss takes the short gain (4k net loss); 3k offsets
    # income at 40%; 1k long-term is carried.
    y = year_tax(1_000.0, -5_000.0, RATES)
    assert y.tax_usd == pytest.approx(-1_200.0)
    assert y.ordinary_offset_usd == pytest.approx(3_000.0)
    assert (y.carry_short_usd, y.carry_long_usd) == pytest.approx((0.0, -1_000.0))
    # both kinds negative: the offset takes the short-term loss first
    y = year_tax(-2_000.0, -4_000.0, RATES)
    assert (y.carry_short_usd, y.carry_long_usd) == pytest.approx((0.0, -3_000.0))
    # a gain year pays at the two rates
    assert year_tax(1_000.0, 2_000.0, RATES).tax_usd == pytest.approx(400.0 + 400.0)


def test_short_term_loss_against_short_term_gains() -> None:
    v = harvest_value(
        5_000.0, 20_000.0, short_term=True, rates=RATES, realized_short_usd=10_000.0, cost_bps=2.0
    )
    assert v.saved_now_usd == pytest.approx(2_000.0)  # 5k at 40%
    assert v.carried_usd == pytest.approx(0.0)
    assert v.later_tax_usd == pytest.approx(5_000.0 * 0.20 * D10)  # 613.91
    assert v.cost_usd == pytest.approx(2 * 2e-4 * 20_000.0)  # 8
    assert v.value_usd == pytest.approx(2_000.0 - 613.9133 - 8.0, abs=1e-3)


def test_short_term_loss_takes_short_gains_first_then_long() -> None:
    # 1k short gain, 5k long gain; a 3k short-term loss: 1k at 40%, then 2k at 20%
    v = harvest_value(
        3_000.0,
        10_000.0,
        short_term=True,
        rates=RATES,
        realized_short_usd=1_000.0,
        realized_long_usd=5_000.0,
    )
    assert v.saved_now_usd == pytest.approx(1_000.0 * 0.40 + 2_000.0 * 0.20)


def test_loss_with_no_gains_offsets_3000_of_income_and_carries_the_rest() -> None:
    v = harvest_value(5_000.0, 20_000.0, short_term=False, rates=RATES, cost_bps=2.0)
    assert v.saved_now_usd == pytest.approx(3_000.0 * 0.40)
    assert v.carried_usd == pytest.approx(2_000.0)
    # the 2k carried offsets next year's income at 40%, a year later
    assert v.carry_value_usd == pytest.approx(2_000.0 * 0.40 * D1)  # 761.90
    assert v.value_usd == pytest.approx(1_200.0 + 761.9048 - 613.9133 - 8.0, abs=1e-3)


def test_carry_beyond_next_years_offset_waits_for_the_horizon() -> None:
    # 10k long-term loss, no gains: 3k offsets income now, 3k next year, 4k waits 10 years
    v = harvest_value(10_000.0, 50_000.0, short_term=False, rates=RATES)
    assert v.carried_usd == pytest.approx(7_000.0)
    assert v.carry_value_usd == pytest.approx(3_000.0 * 0.40 * D1 + 4_000.0 * 0.20 * D10)
    # the part carried to the horizon cancels its share of the replacement's later tax
    assert v.value_usd == pytest.approx(
        3_000.0 * 0.40 + 3_000.0 * 0.40 * D1 - 6_000.0 * 0.20 * D10, abs=1e-6
    )
    # two years of offsets: 3k more at 40%, two years later
    two = harvest_value(
        10_000.0, 50_000.0, short_term=False, rates=RATES, rule=HarvestRule(offset_years=2)
    )
    assert two.value_usd - v.value_usd == pytest.approx(3_000.0 * (0.40 * D1**2 - 0.20 * D10))


def test_a_carry_forward_only_harvest_pays_only_what_next_years_offset_still_needs() -> None:
    # the year already has a 5k net loss: this year's 3k offset is used and 2k of next year's
    # is already carried; of this 2k loss, 1k fills next year's offset, 1k waits for the horizon
    common = dict(short_term=False, rates=RATES, realized_short_usd=-5_000.0, cost_bps=2.0)
    v = harvest_value(2_000.0, 10_000.0, **common)  # type: ignore[arg-type]
    assert v.saved_now_usd == pytest.approx(0.0)
    assert v.value_usd == pytest.approx(1_000.0 * (0.40 * D1 - 0.20 * D10) - 4.0, abs=1e-6)
    # a year whose net loss already fills next year's offset: nothing but the costs
    full = dict(common, realized_short_usd=-6_000.0)
    w = harvest_value(2_000.0, 10_000.0, **full)  # type: ignore[arg-type]
    assert w.value_usd == pytest.approx(-4.0)
    flat = HarvestRule(offset_years=0)
    w = harvest_value(2_000.0, 10_000.0, rule=flat, **common)  # type: ignore[arg-type]
    assert w.value_usd == pytest.approx(-4.0)  # only the costs are left


def test_small_loss_with_high_costs_is_worth_less_than_nothing() -> None:
    # a 1k short-term loss against a long-term gain: saves 200; costs 2 x 5% of 2k = 200
    v = harvest_value(
        1_000.0,
        2_000.0,
        short_term=True,
        rates=RATES,
        realized_long_usd=4_000.0,
        cost_bps=500.0,
    )
    assert v.saved_now_usd == pytest.approx(200.0)
    assert v.value_usd == pytest.approx(200.0 - 1_000.0 * 0.20 * D10 - 200.0)
    assert v.value_usd < 0


def test_loss_must_be_positive() -> None:
    with pytest.raises(ValueError, match="loss_usd"):
        harvest_value(0.0, 1_000.0, short_term=True, rates=RATES)


def test_candidates_use_the_3000_offset_once() -> None:
    h = parse_household(json.loads(SCENARIO.read_text()))
    lots = [
        LossLot("TAX", "A", "VTI", 3_000.0, 10_000.0, short_term=False),
        LossLot("TAX", "B", "VTI", 3_000.0, 10_000.0, short_term=False),
    ]
    flat = HarvestRule(offset_years=0)  # a carried loss worth no more than its later tax
    chosen = harvest_candidates(h, lots, rule=flat)
    # the first takes the whole 3k income offset; the second could only be carried
    assert list(chosen) == [("TAX", "A")]
    assert chosen[("TAX", "A")].saved_now_usd == pytest.approx(3_000.0 * 0.408)
    # by default the second funds next year's offset, and a third only the horizon
    third = LossLot("TAX", "C", "VTI", 3_000.0, 10_000.0, short_term=False)
    assert list(harvest_candidates(h, [*lots, third])) == [("TAX", "A"), ("TAX", "B")]
    # the rule before values takes both, and none below harvest_min_loss
    small = LossLot("TAX", "C", "VTI", 400.0, 10_000.0, short_term=True)
    assert set(harvest_candidates(h, [*lots, small], rule=HARVEST_ALWAYS)) == {
        ("TAX", "A"),
        ("TAX", "B"),
    }


def test_household_harvests_the_large_short_term_loss_not_the_small_costly_one() -> None:
    h = parse_household(json.loads(SCENARIO.read_text()))
    r = solve(h)
    assert r.status == "rebalanced"
    sold = {x.lot_id for o in r.orders if o.side == "sell" for x in o.lots}
    assert sold == {"L-ST"}
    buys = [o for o in r.orders if o.side == "buy"]
    assert [(o.account_id, o.symbol, o.reason) for o in buys] == [
        ("TAX", "SCHB", "tax_loss_harvest")
    ]
    # 8k short-term against this year's gains: 8,000 x 40.8% = 3,264 saved now
    assert r.realized.short_term_gain == pytest.approx(-8_000.0)
    assert r.realized.tax_cost == pytest.approx(-3_264.0)
    assert any(m.startswith("harvest L-ST VTI: loss 8,000, worth ~1,695") for m in r.messages)
    # today's rule would have sold the small one too (its tax credit beats the trading costs,
    # but not once its replacement's lower basis is counted)
    always = solve(h, harvest_rule=HARVEST_ALWAYS)
    assert {x.lot_id for o in always.orders if o.side == "sell" for x in o.lots} == {
        "L-ST",
        "L-SMALL",
    }
