"""streams.tools.synthetic: valid, seeded, realistic households and universes."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import numpy as np
import pytest

from schemas import dumps, household_to_json, loads, parse_household
from solver.drift import household_drift
from streams.tools.synthetic import (
    MIN_SYMBOLS,
    make_book,
    make_household,
    make_universe,
    universe_prices,
)

SEED = 20261124


@pytest.fixture(scope="module")
def universe():
    return make_universe(100, np.random.default_rng(SEED))


def test_universe_classes_groups_and_prices(universe):
    assert len(universe) == 100
    prices = universe_prices(universe)
    assert all(20.0 <= p <= 500.0 for p in prices.values())
    classes = Counter(sec.asset_class for sec in universe.values())
    assert {"us_equity", "intl_equity", "fixed_income", None} <= set(classes)
    assert "cash" not in classes  # cash is account cash, never a security
    groups = Counter(sec.group for sec in universe.values())
    assert groups["us-total-market"] >= 2
    assert sum(1 for n in groups.values() if n >= 2) >= 6
    assert any(sec.group.startswith("muni-") for sec in universe.values())
    balanced = [sec for sec in universe.values() if sec.asset_class is None]
    assert balanced and all(abs(sum(s.exposures.values()) - 1.0) < 1e-9 for s in balanced)
    assert {True, False} <= {sec.fractional for sec in universe.values()}


def test_universe_is_deterministic_and_scales():
    a = make_universe(500, np.random.default_rng(1))
    b = make_universe(500, np.random.default_rng(1))
    assert a == b and len(a) == 500
    small = make_universe(MIN_SYMBOLS, np.random.default_rng(1))
    for cls in ("us_equity", "intl_equity", "fixed_income"):
        assert len({s.group for s in small.values() if s.asset_class == cls}) >= 2
    with pytest.raises(ValueError):
        make_universe(MIN_SYMBOLS - 1, np.random.default_rng(1))


@pytest.mark.parametrize("drifted", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_household_is_valid_and_drift_as_asked(universe, seed, drifted):
    h = make_household("hh-t", universe, np.random.default_rng(seed), drifted=drifted)
    again = parse_household(loads(dumps(household_to_json(h))))
    assert again == h
    assert bool(household_drift(h).breached.any()) is drifted


def test_household_shape(universe):
    rng = np.random.default_rng(SEED)
    h = make_household("hh-1", universe, rng, n_accounts=4, n_lots=200)
    assert {a.type for a in h.accounts} == {"taxable", "tax_deferred", "tax_exempt"}
    n_lots = sum(len(a.lots) for a in h.accounts)
    assert 150 <= n_lots <= 200
    lot_ids = [lot.lot_id for a in h.accounts for lot in a.lots]
    assert len(set(lot_ids)) == len(lot_ids)
    gains = [
        lot.quantity * (h.securities[lot.symbol].price or 0) - lot.cost_basis
        for a in h.accounts
        for lot in a.lots
    ]
    assert min(gains) < 0 < max(gains)
    assert all(lot.acquired < h.as_of for a in h.accounts for lot in a.lots)
    for cls, symbols in h.buy_list.items():
        assert 2 <= len(symbols) <= 3
        assert len({h.securities[s].group for s in symbols}) == len(symbols), cls
    for a in h.accounts:
        for lot in a.lots:
            sec = h.securities[lot.symbol]
            if sec.group.startswith("muni-"):
                assert a.type == "taxable"
            if not sec.fractional:
                assert lot.quantity == int(lot.quantity)
    assert h.options.min_trade_value == 250.0 and h.options.transaction_cost_bps == 2.0
    for t in h.recent_trades:
        assert h.as_of - timedelta(days=30) <= t.date < h.as_of
        assert h.account(t.account_id) is not None


def test_book_modes_rules_and_determinism(universe):
    book = make_book(300, universe, np.random.default_rng(7), n_lots=40)
    assert [h.household_id for h in book[:2]] == ["hh-00001", "hh-00002"]
    modes = Counter(h.mode for h in book)
    assert 0.7 < modes["rebalance"] / 300 < 0.9
    assert modes["guardrail"] > 10 and modes["monitor"] > 10
    drifted = sum(bool(household_drift(h).breached.any()) for h in book)
    assert 0.2 < drifted / 300 < 0.4
    assert any(h.options.harvest_losses for h in book)
    assert any(a.buy_list for h in book for a in h.accounts)
    assert any(a.excluded_symbols for h in book for a in h.accounts)
    assert any(a.no_buy_asset_classes for h in book for a in h.accounts)
    assert any(h.recent_trades for h in book)
    assert any(a.cash_needed > 0 for h in book for a in h.accounts)
    assert any(sec.asset_class is None for h in book for sec in h.securities.values())
    same = make_book(5, universe, np.random.default_rng(7), n_lots=40)
    assert same == book[:5]


def test_book_fixed_mode_and_dates(universe):
    day = date(2025, 1, 2)
    book = make_book(
        10, universe, np.random.default_rng(3), mode="monitor", drifted=False, as_of=day
    )
    assert {h.mode for h in book} == {"monitor"}
    assert all(h.as_of == day for h in book)
    assert not any(household_drift(h).breached.any() for h in book)


@pytest.mark.parametrize("n_accounts", [1, 2, 6])
def test_small_and_odd_households_are_valid(universe, n_accounts):
    for seed in range(5):
        h = make_household(
            "hh-s", universe, np.random.default_rng(seed), n_accounts=n_accounts, n_lots=12
        )
        parse_household(household_to_json(h))
        assert len(h.accounts) == n_accounts
