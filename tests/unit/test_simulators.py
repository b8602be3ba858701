"""The simulators' pure parts: the market model's statistics, fills from orders, cash flows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from schemas import LotRelief, Order, RebalanceResult, dumps, loads, result_to_json
from schemas.events import (
    CashFlow,
    cash_flow_to_json,
    fill_to_json,
    parse_cash_flow,
    parse_fill,
    parse_price,
    price_to_json,
)
from streams.tools.simulators import (
    CLASS_PARAMS,
    FACTOR_CORRELATION,
    MarketModel,
    MarketSimulator,
    OmsSimulator,
    draw_flow,
    event_clock,
    fill_for_order,
    fills_for_result,
    settling_withdrawal,
    topic,
    wire,
)
from streams.tools.simulators.custodian import CustodianSimulator, Pending, apply_fill_to_cash
from streams.tools.synthetic import make_book, make_universe

TS = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
DAY = 1.0 / 252


@pytest.fixture(scope="module")
def universe():
    return make_universe(45, np.random.default_rng(5))


def test_topic_prefix():
    assert topic("", "prices") == "prices"
    assert topic("t1.", "cash-flows") == "t1.cash-flows"


def test_price_paths_match_the_documented_parameters(universe):
    model = MarketModel.from_universe(universe)
    r = model.log_returns(DAY, 20_000, np.random.default_rng(1))
    assert r.shape == (20_000, len(universe))
    symbols = model.symbols
    cls = {s: universe[s].asset_class for s in symbols}
    vol = r.std(axis=0) / math.sqrt(DAY)
    mean = r.mean(axis=0) / DAY
    for i, s in enumerate(symbols):
        if cls[s] is None:  # balanced funds: between bond and equity vol
            assert 0.05 < vol[i] < 0.17
            continue
        p = CLASS_PARAMS[cls[s]]
        assert vol[i] == pytest.approx(p.sigma, rel=0.03)
        # drift is small against noise: only check it is the right size
        assert abs(mean[i] - (p.mu - p.sigma**2 / 2)) < 4 * p.sigma / math.sqrt(20_000 * DAY)
    corr = np.corrcoef(r.T)
    idx = {c: [i for i, s in enumerate(symbols) if cls[s] == c] for c in CLASS_PARAMS}
    for c, members in idx.items():
        a, b = members[0], members[1]
        assert corr[a, b] == pytest.approx(CLASS_PARAMS[c].rho, abs=0.03)
    us, fi = idx["us_equity"][0], idx["fixed_income"][0]
    expected = (
        FACTOR_CORRELATION[0, 2]
        * math.sqrt(CLASS_PARAMS["us_equity"].rho)
        * math.sqrt(CLASS_PARAMS["fixed_income"].rho)
    )
    assert corr[us, fi] == pytest.approx(expected, abs=0.03)


def test_market_simulator_advances_and_encodes(universe):
    sim = MarketSimulator("127.0.0.1:1", "p.", universe, seed=3)
    before = dict(sim.prices)
    assert before == {s: sec.price for s, sec in universe.items()}
    sim.advance(1.0)
    assert all(sim.prices[s] > 0 and sim.prices[s] != before[s] for s in universe)
    sim.advance(0.0)
    msg = parse_price(loads(sim.message("VTI", TS)))
    assert msg.symbol == "VTI" and msg.price == sim.prices["VTI"] and msg.ts == TS
    assert loads(sim.message("VTI", TS)) == price_to_json(msg)


def _result(status: str = "rebalanced") -> RebalanceResult:
    return RebalanceResult(
        household_id="hh-1",
        as_of=None,
        rebalance_id="hh-1:2026-11-24:1",
        status=status,
        orders=(
            Order(
                "hh-1:2026-11-24:1:0",
                "hh-1-TAX",
                "VTI",
                "sell",
                10.0,
                240.0,
                2400.0,
                "rebalance",
                (LotRelief("L-1", 6.0), LotRelief("L-2", 4.0)),
            ),
            Order("hh-1:2026-11-24:1:1", "hh-1-IRA", "BND", "buy", 30.0, 73.0, 2190.0, "rebalance"),
        ),
    )


def test_fill_for_a_sell_names_the_lots_and_is_deterministic():
    order = _result().orders[0]
    fill = fill_for_order("hh-1", order, 241.5, TS)
    assert fill.fill_id == fill_for_order("hh-1", order, 200.0, TS).fill_id
    assert fill.fill_id.startswith(order.order_id)
    assert (fill.side, fill.quantity, fill.price, fill.account_id) == (
        "sell",
        10.0,
        241.5,
        "hh-1-TAX",
    )
    assert fill.lots == order.lots
    assert parse_fill(loads(dumps(fill_to_json(fill)))) == fill


def test_fills_for_result_use_live_prices_else_estimates():
    fills = fills_for_result(_result(), {"VTI": 250.0}, TS)
    assert [f.price for f in fills] == [250.0, 73.0]
    assert fills[1].lots == () and fills[1].side == "buy"
    assert len({f.fill_id for f in fills}) == 2
    assert fills_for_result(_result("no_action"), {}, TS) == []


def test_oms_accept_dedupes_and_schedules():
    oms = OmsSimulator("127.0.0.1:1", "", {"VTI": 250.0}, delay_s=1.0, jitter_s=0.0)
    raw = dumps(result_to_json(_result()))
    rng = np.random.default_rng(0)
    assert oms.accept(raw, 100.0, rng) == 2
    assert oms.accept(raw, 100.5, rng) == 0  # same rebalance_id again
    assert oms.accept(b"{not json", 101.0, rng) == 0
    assert oms.pending() == 2 and oms._due[0][0] == pytest.approx(101.0)
    assert oms.counters.received == {
        "orders_messages": 3,
        "orders": 2,
        "duplicates": 1,
        "invalid": 1,
    }
    assert oms.statuses == {"rebalanced": 1}


def test_the_event_clock_moves_one_day_per_day_seconds_and_stamps_the_fills(monkeypatch):
    wall = [1000.0]
    monkeypatch.setattr(wire.time, "monotonic", lambda: wall[0])
    monkeypatch.setattr(wire, "utc_now", lambda: TS)
    clock = event_clock(20.0)
    days = []
    for elapsed in (0.0, 19.9, 20.0, 59.0, 60.0, 1800.0):
        wall[0] = 1000.0 + elapsed
        days.append((clock() - TS) / timedelta(days=1))
    assert days == [0, 0, 1, 2, 3, 90]  # a 30-minute soak spans 90 event days
    assert event_clock(None) is wire.utc_now
    with pytest.raises(ValueError, match="day_seconds"):
        event_clock(0.0)
    oms = OmsSimulator("127.0.0.1:1", "", {"VTI": 250.0}, jitter_s=0.0, clock=clock)
    oms.accept(dumps(result_to_json(_result())), 0.0, np.random.default_rng(0))
    assert {f.ts for _, _, f in oms._due} == {TS + timedelta(days=90)}


def test_cash_flows_are_valid_and_settle_requests(universe):
    book = make_book(20, universe, np.random.default_rng(2), n_lots=20, mode="rebalance")
    rng = np.random.default_rng(4)
    flows = [draw_flow(h, i, TS, rng, withdraw_share=0.5) for i, h in enumerate(book)]
    kinds = {f.kind for f in flows}
    assert kinds == {"deposit", "withdrawal_request"}
    for f in flows:
        assert parse_cash_flow(loads(dumps(cash_flow_to_json(f)))) == f
        assert f.amount > 0
    request = next(f for f in flows if f.kind == "withdrawal_request")
    w = settling_withdrawal(request, TS)
    assert (w.kind, w.settles, w.amount) == ("withdrawal", request.flow_id, request.amount)
    assert parse_cash_flow(loads(dumps(cash_flow_to_json(w)))) == w


def test_monitor_households_never_get_withdrawal_requests(universe):
    book = make_book(5, universe, np.random.default_rng(2), n_lots=12, mode="monitor")
    rng = np.random.default_rng(4)
    assert {draw_flow(h, i, TS, rng, 1.0).kind for i, h in enumerate(book)} == {"deposit"}


def test_custodian_settles_when_cash_covers_the_request(universe):
    book = make_book(2, universe, np.random.default_rng(2), n_lots=12, mode="rebalance")
    cust = CustodianSimulator("127.0.0.1:1", "", book, universe, settle_delay_s=1.0)
    h = book[0]
    account = h.accounts[0]
    request = CashFlow(
        flow_id="r1",
        household_id=h.household_id,
        account_id=account.account_id,
        kind="withdrawal_request",
        amount=cust.cash[account.account_id] + 5000.0,
        ts=TS,
    )
    cust.pending["r1"] = Pending(request, 10.0)
    assert cust.due_settlements(20.0) == []  # not covered yet
    sell = fill_for_order(
        h.household_id,
        Order("o1", account.account_id, "VTI", "sell", 100.0, 60.0, 6000.0, "raise_cash"),
        60.0,
        TS,
    )
    apply_fill_to_cash(cust.cash, sell)
    assert cust.due_settlements(20.0) == [request]
    assert cust.pending == {}
    cust.pending["r2"] = Pending(request, 0.0)
    cust.cash[account.account_id] = 0.0
    assert cust.due_settlements(500.0) == [] and cust.counters.sent["expired"] == 1


def test_market_shock_moves_by_exposure(universe):
    sim = MarketSimulator("127.0.0.1:1", "", universe)
    before = dict(sim.prices)
    sim.shock({"us_equity": 0.10})
    for s, sec in universe.items():
        expected = before[s] * (1 + 0.10 * sec.exposures.get("us_equity", 0.0))
        assert sim.prices[s] == pytest.approx(expected, abs=1e-4)
