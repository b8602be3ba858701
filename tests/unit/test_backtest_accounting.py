"""Backtest accounting: yearly tax with carry-forward, wash sales, lots and money conservation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from schemas import LotRelief, TaxRates, parse_household
from schemas.events import Fill
from solver import household_drift
from streams.tools.backtest.accounting import (
    Carry,
    LotGain,
    TaxLedger,
    TradeRecord,
    count_wash_sales,
    sell_gains,
    settle_year,
)
from streams.tools.backtest.engine import Market, simulate_household
from streams.tools.backtest.flows import make_flows
from streams.tools.backtest.prices import business_days, simulate_paths
from streams.tools.backtest.strategies import STRATEGIES
from streams.tools.synthetic import make_household, make_universe
from streams.worker.state import apply_fill, from_snapshot

RATES = TaxRates(short_term_rate=0.40, long_term_rate=0.20)
USD_TOL = 1e-6


# --------------------------------------------------------------------------- yearly tax


def test_losses_offset_across_kinds_then_3000_of_income_then_carry_forward() -> None:
    # Year 1: 10k short-term loss, 4k long-term gain: a 6k net short-term loss; 3k of it offsets
    # ordinary income (at the short-term rate: 1,200 saved), 3k is carried.
    y1 = settle_year(-10_000.0, 4_000.0, Carry(), RATES)
    assert y1.tax_usd == pytest.approx(-3_000.0 * 0.40)
    assert y1.ordinary_offset_usd == pytest.approx(3_000.0)
    assert y1.carry == Carry(short_usd=-3_000.0, long_usd=0.0)
    # Year 2: 2k short-term gain, 10k long-term gain; the 3k carried loss nets the 2k short
    # gain first (1k left) and then the long-term gain: 9k long-term taxed.
    y2 = settle_year(2_000.0, 10_000.0, y1.carry, RATES)
    assert y2.short_term_usd == 0.0
    assert y2.long_term_usd == pytest.approx(9_000.0)
    assert y2.tax_usd == pytest.approx(9_000.0 * 0.20)
    assert y2.carry == Carry()


def test_both_kinds_negative_offset_short_first_and_carry_with_their_character() -> None:
    # -1.5k short (with the carry) and -3k long: the 3k ordinary offset takes the short-term
    # loss first (1.5k), then 1.5k of the long-term loss; 1.5k long-term is carried.
    y = settle_year(-1_000.0, -3_000.0, Carry(-500.0, 0.0), RATES)
    assert y.tax_usd == pytest.approx(-3_000.0 * 0.40)
    assert y.carry == Carry(0.0, -1_500.0)
    # a long-term loss carried in offsets a short-term gain next year
    z = settle_year(5_000.0, 0.0, y.carry, RATES)
    assert z.short_term_usd == pytest.approx(3_500.0)
    assert z.tax_usd == pytest.approx(3_500.0 * 0.40)


def test_ledger_records_only_taxable_sells_and_settles_yearly() -> None:
    ledger = TaxLedger(RATES, 2026)

    def sale(gain: float, long_term: bool, taxable: bool = True, reason: str = "") -> TradeRecord:
        return TradeRecord(
            date(2026, 6, 1),
            "A",
            taxable,
            "VTI",
            "g",
            "sell",
            1.0,
            100.0,
            reason,
            (LotGain("L", 1.0, gain, long_term),),
        )

    ledger.record(sale(-3_000.0, False, reason="tax_loss_harvest"))
    ledger.record(sale(1_000.0, True))
    ledger.record(sale(50_000.0, True, taxable=False))  # an IRA sale: no tax
    # a 2k net loss: all of it offsets ordinary income, nothing is carried
    assert ledger.settle(2027) == pytest.approx(-2_000.0 * 0.40)
    assert ledger.harvested_usd == pytest.approx(3_000.0)
    assert ledger.ordinary_offset_usd == pytest.approx(2_000.0)
    assert ledger.carry == Carry(0.0, 0.0)
    ledger.record(sale(5_000.0, True))
    assert ledger.settle(2028) == pytest.approx(5_000.0 * 0.20)
    assert ledger.taxes == [(2026, pytest.approx(-800.0)), (2027, pytest.approx(1_000.0))]


# --------------------------------------------------------------------------- wash sales


def _loss_sale(day: date, account: str = "TAX", taxable: bool = True) -> TradeRecord:
    return TradeRecord(
        day,
        account,
        taxable,
        "VTI",
        "us-total-market",
        "sell",
        10.0,
        2_000.0,
        "tax_loss_harvest",
        (LotGain("L-1", 10.0, -500.0, True),),
    )


def _buy(
    day: date,
    account: str = "IRA",
    symbol: str = "ITOT",
    group: str = "us-total-market",
    lot: str = "B-1",
) -> TradeRecord:
    return TradeRecord(
        day,
        account,
        account == "TAX",
        symbol,
        group,
        "buy",
        5.0,
        1_000.0,
        "rebalance",
        created_lot=lot,
    )


def test_loss_sale_in_taxable_and_buy_in_ira_within_30_days_is_a_wash_sale() -> None:
    d = date(2026, 3, 2)
    assert count_wash_sales([_loss_sale(d), _buy(d + timedelta(days=30))]) == 1
    assert count_wash_sales([_buy(d - timedelta(days=30)), _loss_sale(d)]) == 1
    assert count_wash_sales([_loss_sale(d), _buy(d)]) == 1


def test_31_days_apart_or_other_group_or_ira_loss_is_not() -> None:
    d = date(2026, 3, 2)
    assert count_wash_sales([_loss_sale(d), _buy(d + timedelta(days=31))]) == 0
    assert count_wash_sales([_buy(d - timedelta(days=31)), _loss_sale(d)]) == 0
    assert count_wash_sales([_loss_sale(d), _buy(d, symbol="VOO", group="us-sp500")]) == 0
    ira_loss = _loss_sale(d, account="IRA", taxable=False)
    assert count_wash_sales([ira_loss, _buy(d)]) == 0


def test_buy_that_created_the_sold_lot_is_no_replacement_and_prior_pairs_do_not_count() -> None:
    d = date(2026, 3, 2)
    own = _buy(d - timedelta(days=10), account="TAX", symbol="VTI", lot="L-1")
    assert count_wash_sales([own, _loss_sale(d)]) == 0
    prior_sale = replace(_loss_sale(d), prior=True)
    prior_buy = replace(_buy(d), prior=True)
    assert count_wash_sales([prior_sale, prior_buy]) == 0
    assert count_wash_sales([prior_sale, _buy(d + timedelta(days=3))]) == 1
    # one sale, two replacement buys: counted once
    assert count_wash_sales([_loss_sale(d), _buy(d), _buy(d, lot="B-2")]) == 1


# --------------------------------------------------------------------------- fills and lots


def test_sell_gains_match_what_apply_fill_realizes() -> None:
    h = parse_household(
        {
            "household_id": "hh-1",
            "as_of": "2026-03-02",
            "target": {"us_equity": 0.97, "cash": 0.03},
            "accounts": [
                {
                    "account_id": "TAX",
                    "type": "taxable",
                    "cash": 100.0,
                    "lots": [
                        {
                            "lot_id": "L-1",
                            "symbol": "VTI",
                            "quantity": 10,
                            "cost_basis": 2_000.0,
                            "acquired": "2025-03-02",
                        },
                        {
                            "lot_id": "L-2",
                            "symbol": "VTI",
                            "quantity": 10,
                            "cost_basis": 3_000.0,
                            "acquired": "2025-03-01",
                        },
                    ],
                }
            ],
            "securities": {"VTI": {"price": 250.0, "asset_class": "us_equity"}},
        }
    )
    state = from_snapshot(h, None)
    account = h.accounts[0]
    relief = (LotRelief("L-1", 4.0), LotRelief("L-2", 10.0))
    day = date(2026, 3, 2)
    gains = sell_gains(account, relief, 250.0, day)
    # L-1's anniversary is 2026-03-02: sold on it, short-term; L-2's passed: long-term
    assert [(g.lot_id, g.long_term) for g in gains] == [("L-1", False), ("L-2", True)]
    assert [g.gain_usd for g in gains] == pytest.approx([4 * 250 - 800, 10 * 250 - 3_000])
    fill = Fill(
        "f1",
        "o1",
        "hh-1",
        "TAX",
        "VTI",
        "sell",
        14.0,
        250.0,
        datetime(2026, 3, 2, 16, tzinfo=UTC),
        relief,
    )
    after, applied = apply_fill(state, fill)
    assert applied
    sells = [t for t in after.trades if t.side == "sell"]
    assert [t.realized_gain for t in sells] == pytest.approx([g.gain_usd for g in gains])
    lots = {lot.lot_id: lot for lot in after.household.accounts[0].lots}
    assert set(lots) == {"L-1"}
    assert lots["L-1"].quantity == pytest.approx(6.0)
    assert lots["L-1"].cost_basis == pytest.approx(1_200.0)
    assert after.household.accounts[0].cash == pytest.approx(100.0 + 14 * 250.0)


# --------------------------------------------------------------------------- a tiny book


@pytest.fixture(scope="module")
def tiny_runs() -> list[tuple[object, object, Market]]:
    rng = np.random.default_rng(11)
    universe = make_universe(20, rng)
    days = business_days(date(2026, 1, 2), 1)
    market = Market.of(simulate_paths(universe, days, rng))
    out = []
    for i in range(2):
        h = make_household(
            f"hh-{i}", universe, rng, n_accounts=3, n_lots=40, as_of=days[0], drifted=True
        )
        h = replace(h, options=replace(h.options, harvest_min_loss=500.0))
        flows = make_flows(h, days, rng)
        out.append((h, simulate_household(h, flows, market, keep_trades=True), market))
    return out


def test_money_is_conserved_for_every_strategy(tiny_runs) -> None:  # type: ignore[no-untyped-def]
    for _h, result, _market in tiny_runs:
        assert set(result.runs) == {s.name for s in STRATEGIES}
        for name, run in result.runs.items():
            expected = (
                run.start_value_usd
                + run.deposits_usd
                - run.withdrawals_usd
                - run.tax_payments_usd
                + run.tax_refunds_usd
                + run.market_pnl_usd
                - run.costs_usd
            )
            assert run.final_value_usd == pytest.approx(expected, rel=1e-9, abs=1e-4), name
            assert run.value_usd[-1] == pytest.approx(run.final_value_usd, rel=1e-9), name
            assert not run.fill_errors, run.fill_errors


def test_lots_follow_fills(tiny_runs) -> None:  # type: ignore[no-untyped-def]
    for h0, result, _market in tiny_runs:
        for name, run in result.runs.items():
            final = run.final_household
            assert final is not None
            for account in h0.accounts:
                held: dict[str, float] = {}
                for lot in account.lots:
                    held[lot.symbol] = held.get(lot.symbol, 0.0) + lot.quantity
                for t in run.trades:
                    if t.prior or t.account_id != account.account_id:
                        continue
                    sign = 1.0 if t.side == "buy" else -1.0
                    held[t.symbol] = held.get(t.symbol, 0.0) + sign * t.quantity
                after = final.account(account.account_id)
                assert after is not None
                got: dict[str, float] = {}
                for lot in after.lots:
                    got[lot.symbol] = got.get(lot.symbol, 0.0) + lot.quantity
                for symbol in set(held) | set(got):
                    assert got.get(symbol, 0.0) == pytest.approx(held.get(symbol, 0.0), abs=1e-6), (
                        name,
                        symbol,
                    )
                # every buy fill is a lot acquired on its day (or sold since)
                lot_ids = {lot.lot_id: lot for lot in after.lots}
                for t in run.trades:
                    if (
                        t.side == "buy"
                        and t.account_id == account.account_id
                        and t.created_lot in lot_ids
                    ):
                        assert lot_ids[t.created_lot].acquired == t.day


def test_vectorised_drift_agrees_with_the_solver(tiny_runs) -> None:  # type: ignore[no-untyped-def]
    for _h0, result, market in tiny_runs:
        last = len(market.paths.days) - 1
        prices = dict(zip(market.paths.symbols, market.paths.price[last].tolist(), strict=True))
        for name, run in result.runs.items():
            final = run.final_household
            assert final is not None
            report = household_drift(final.with_prices(prices))
            assert run.max_abs_drift[last] == pytest.approx(report.max_abs_drift, abs=1e-9), name
            assert bool(run.out_of_band[last]) == bool(report.out_of_band), name


def test_umh_strategies_keep_the_hard_rules_and_avoid_wash_sales(tiny_runs) -> None:  # type: ignore[no-untyped-def]
    for _h0, result, _market in tiny_runs:
        for name in ("household", "household_harvest_always", "household_no_harvest", "guardrail"):
            run = result.runs[name]
            assert run.hard_rule_violations == 0, run.violation_samples
            assert run.wash_sales == 0
