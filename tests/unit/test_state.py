"""Household streaming state: fills, cash flows, snapshots, expiry, serialisation (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    LotRelief,
    Order,
    RebalanceResult,
    ValidationError,
    parse_household,
)
from schemas.events import CashFlow, Fill
from streams.worker.state import (
    HouseholdState,
    SnapshotMark,
    apply_cash_flow,
    apply_fill,
    check_known_order,
    decode_state,
    encode_state,
    expire_open_rebalance,
    from_snapshot,
    household_day,
    open_rebalance,
    open_rebalance_expired,
    read_again,
    state_from_json,
    state_to_json,
    to_household,
    with_event_day,
)

TS = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


def make_snapshot(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "household_id": "hh-1",
        "as_of": "2026-11-24",
        "target": {"us_equity": 0.6, "fixed_income": 0.37, "cash": 0.03},
        "buy_list": {"us_equity": ["VTI", "ITOT"], "fixed_income": ["BND"]},
        "accounts": [
            {
                "account_id": "hh-1-TAX",
                "type": "taxable",
                "cash": 1000.0,
                "lots": [
                    {
                        "lot_id": "L-1",
                        "symbol": "VTI",
                        "quantity": 10,
                        "cost_basis": 2000.0,
                        "acquired": "2022-01-03",
                    },
                    {
                        "lot_id": "L-2",
                        "symbol": "VTI",
                        "quantity": 10,
                        "cost_basis": 3000.0,
                        "acquired": "2025-01-03",
                    },
                ],
            },
            {
                "account_id": "hh-1-IRA",
                "type": "tax_deferred",
                "cash": 500.0,
                "lots": [
                    {
                        "lot_id": "L-3",
                        "symbol": "BND",
                        "quantity": 50,
                        "cost_basis": 3600.0,
                        "acquired": "2021-05-01",
                    },
                ],
            },
        ],
        "securities": {
            "VTI": {"price": 250.0, "asset_class": "us_equity"},
            "BND": {"price": 72.0, "asset_class": "fixed_income"},
        },
        "recent_trades": [],
    }
    raw.update(overrides)
    return raw


def make_state(**overrides: Any) -> HouseholdState:
    return from_snapshot(parse_household(make_snapshot(**overrides), prices_required=False), None)


def fill(
    fill_id: str = "f1",
    side: str = "buy",
    qty: float = 2.0,
    price: float = 250.0,
    symbol: str = "VTI",
    account: str = "hh-1-TAX",
    order_id: str = "o1",
    ts: datetime = TS,
    lots: tuple[LotRelief, ...] = (),
) -> Fill:
    return Fill(fill_id, order_id, "hh-1", account, symbol, side, qty, price, ts, lots)


def flow(
    flow_id: str, kind: str, amount: float, settles: str | None = None, account: str = "hh-1-TAX"
) -> CashFlow:
    return CashFlow(flow_id, "hh-1", account, kind, amount, TS, settles)


def value(state: HouseholdState, prices: dict[str, float]) -> float:
    h = state.household
    return sum(
        a.cash + sum(lot.quantity * prices[lot.symbol] for lot in a.lots) for a in h.accounts
    )


def lots(state: HouseholdState, account: str = "hh-1-TAX") -> dict[str, float]:
    acc = state.household.account(account)
    assert acc is not None
    return {lot.lot_id: lot.quantity for lot in acc.lots}


def test_snapshot_strips_prices_into_state() -> None:
    s = make_state()
    assert s.prices == {"VTI": 250.0, "BND": 72.0}
    assert all(sec.price is None for sec in s.household.securities.values())
    h = to_household(s, prices={"VTI": 260.0})
    assert h.securities["VTI"].price == 260.0 and h.securities["BND"].price == 72.0


def test_valuing_at_every_tick_keeps_one_priced_record_per_security() -> None:
    """A worker values households at each new tick for months: what it keeps of the priced
    records must not grow with the number of prices seen."""
    from streams.worker import state as state_module

    s = make_state()
    state_module._PRICED.clear()
    for tick in range(5_000):
        h = to_household(s, prices={"VTI": 250.0 + tick / 100, "BND": 72.0 + tick / 1000})
        assert h.securities["VTI"].price == pytest.approx(250.0 + tick / 100)
    assert len(state_module._PRICED) == 2
    again = to_household(s, prices={"VTI": 250.0 + 4_999 / 100, "BND": 72.0 + 4_999 / 1000})
    assert again.securities["VTI"] is h.securities["VTI"]  # households at one tick share it


def test_a_snapshot_read_again_is_known_by_its_offset_and_digest() -> None:
    snap = parse_household(make_snapshot(), prices_required=False)
    s = from_snapshot(snap, None, SnapshotMark(41, "abc"))
    assert read_again(s, SnapshotMark(41, "abc"))  # the record again
    assert read_again(s, SnapshotMark(7, "abc"))  # an earlier copy of it
    # an earlier record of the partition read again: the state has moved past it
    assert read_again(s, SnapshotMark(40, "older"))
    assert not read_again(s, SnapshotMark(42, "abc"))  # sent again on purpose: a new offset
    assert not read_again(s, SnapshotMark(41, "other"))  # another record (a new topic)
    assert not read_again(s, None) and not read_again(make_state(), SnapshotMark(41, "abc"))
    # the mark is state: it survives the table encoding and the plain JSON
    assert decode_state(encode_state(s)).snapshot_mark == SnapshotMark(41, "abc")
    assert state_from_json(orjson.loads(orjson.dumps(state_to_json(s)))).snapshot_mark == (
        SnapshotMark(41, "abc")
    )
    assert decode_state(encode_state(make_state())).snapshot_mark is None


def test_buy_fill_adds_lot_and_takes_cash() -> None:
    s, changed = apply_fill(make_state(), fill(qty=2, price=250))
    assert changed
    acc = s.household.account("hh-1-TAX")
    assert acc is not None and acc.cash == pytest.approx(500.0)
    lot = acc.lots[-1]
    assert (lot.lot_id, lot.quantity, lot.cost_basis, lot.acquired) == (
        "f1",
        2.0,
        500.0,
        date(2026, 11, 24),
    )
    again, changed = apply_fill(s, fill(qty=2, price=250))
    assert not changed and again == s


def test_sell_fill_highest_cost_first_and_records_gain() -> None:
    s, _ = apply_fill(make_state(), fill(side="sell", qty=12, price=280))
    assert lots(s) == {"L-1": 8.0}
    # One trade per lot relieved, each with its own gain (a loss lot stays a loss sale).
    sells = [t for t in s.trades if t.side == "sell"]
    assert sum(t.realized_gain or 0.0 for t in sells) == pytest.approx(12 * 280 - 3000 - 400)
    assert len(sells) == 2
    acc = s.household.account("hh-1-TAX")
    assert acc is not None and acc.cash == pytest.approx(1000 + 12 * 280)


def test_sell_fill_uses_named_lots_then_order_lots() -> None:
    s, _ = apply_fill(make_state(), fill(side="sell", qty=3, lots=(LotRelief("L-1", 3),)))
    assert lots(s) == {"L-1": 7.0, "L-2": 10.0}
    order = Order(
        "hh-1:2026-11-24:1:0",
        "hh-1-TAX",
        "VTI",
        "sell",
        4,
        250,
        1000,
        "rebalance",
        (LotRelief("L-1", 4),),
    )
    result = RebalanceResult(
        "hh-1", date(2026, 11, 24), "hh-1:2026-11-24:1", "rebalanced", (order,)
    )
    s = open_rebalance(make_state(), result, opened_at_s=100.0)
    assert s.sequence == 1
    s, _ = apply_fill(s, fill(side="sell", qty=4, order_id=order.order_id))
    assert lots(s) == {"L-1": 6.0, "L-2": 10.0}
    assert s.open_rebalance is None and s.last_rebalance == result


def test_partial_fills_keep_rebalance_open_until_complete() -> None:
    order = Order("r:0", "hh-1-IRA", "BND", "buy", 10, 72, 720, "rebalance")
    result = RebalanceResult(
        "hh-1", date(2026, 11, 24), "hh-1:2026-11-24:1", "rebalanced", (order,)
    )
    s = open_rebalance(make_state(), result, 0.0)
    s, _ = apply_fill(
        s, fill("a", qty=4, price=72, symbol="BND", account="hh-1-IRA", order_id="r:0")
    )
    assert s.open_rebalance is not None and s.open_rebalance.filled == {"r:0": 4.0}
    s, _ = apply_fill(
        s, fill("b", qty=6, price=72, symbol="BND", account="hh-1-IRA", order_id="r:0")
    )
    assert s.open_rebalance is None


def test_bad_fills_raise_without_change() -> None:
    s = make_state()
    with pytest.raises(ValidationError):
        apply_fill(s, fill(account="nope"))
    with pytest.raises(ValidationError):
        apply_fill(s, fill(side="sell", qty=21))
    with pytest.raises(ValidationError):
        apply_fill(s, fill(side="sell", qty=2, lots=(LotRelief("L-3", 2),)))
    # the worker's check: an id in the rebalancer's own space (household:as_of:sequence:n)
    # that it never issued is invalid; any other order id is a trade placed outside it
    with pytest.raises(ValidationError, match="unknown order"):
        check_known_order(s, fill(order_id="hh-1:2026-11-24:9:0"))
    assert check_known_order(s, fill(order_id="manual-7")) is s


def test_cash_flows() -> None:
    s, _ = apply_cash_flow(make_state(), flow("d", "deposit", 100))
    acc = s.household.account("hh-1-TAX")
    assert acc is not None and acc.cash == 1100
    s, _ = apply_cash_flow(s, flow("r", "withdrawal_request", 400))
    acc = s.household.account("hh-1-TAX")
    assert acc is not None and acc.cash_needed == 400 and "r" in s.pending_withdrawals
    same, changed = apply_cash_flow(s, flow("r", "withdrawal_request", 400))
    assert not changed and same == s
    s, _ = apply_cash_flow(s, flow("w", "withdrawal", 400, settles="r"))
    acc = s.household.account("hh-1-TAX")
    assert acc is not None and acc.cash == 700 and acc.cash_needed == 0
    assert not s.pending_withdrawals
    with pytest.raises(ValidationError):
        apply_cash_flow(s, flow("x", "deposit", 1, account="other"))


def test_snapshot_keeps_memory() -> None:
    s, _ = apply_fill(make_state(), fill(side="sell", qty=10, price=200))  # a loss on L-2
    s, _ = apply_cash_flow(s, flow("r", "withdrawal_request", 50))
    new = parse_household(make_snapshot(as_of="2026-11-25"), prices_required=False)
    s2 = from_snapshot(new, s)
    assert lots(s2) == {"L-1": 10.0, "L-2": 10.0}  # holdings replaced
    assert s2.trades == s.trades and s2.applied_fills == s.applied_fills
    assert "r" in s2.pending_withdrawals and s2.event_day == date(2026, 11, 25)
    h = to_household(s2)
    assert [t.realized_gain for t in h.recent_trades] == [pytest.approx(-1000.0)]
    # 30 days by event time: a buy 30 days after the sale is still in the window, 31 is not
    assert to_household(s2, date(2026, 12, 24)).recent_trades
    assert not to_household(s2, date(2026, 12, 25)).recent_trades


def test_expiry_by_wall_clock() -> None:
    result = RebalanceResult("hh-1", date(2026, 11, 24), "hh-1:2026-11-24:1", "rebalanced", ())
    s = open_rebalance(make_state(), result, opened_at_s=1000.0)
    assert not open_rebalance_expired(s, 1899.0, 900)
    assert open_rebalance_expired(s, 1900.0, 900)
    s = expire_open_rebalance(s)
    assert s.open_rebalance is None and s.last_rebalance == result and s.sequence == 1


def test_serialisation_round_trip() -> None:
    order = Order(
        "r:0", "hh-1-TAX", "VTI", "sell", 4, 250, 1000, "rebalance", (LotRelief("L-1", 4),)
    )
    result = RebalanceResult(
        "hh-1",
        date(2026, 11, 24),
        "hh-1:2026-11-24:1",
        "rebalanced",
        (order,),
        drift_before={"cash": 0.1},
    )
    s = open_rebalance(make_state(), result, 5.0)
    s, _ = apply_fill(s, fill("b1", qty=10, price=250, symbol="ITOT"))  # cash goes negative
    s, _ = apply_fill(s, fill("s1", side="sell", qty=1, order_id="r:0"))
    s, _ = apply_cash_flow(s, flow("r", "withdrawal_request", 50))
    s = replace(s, band_state="us_equity|rebalance_submitted")
    raw = orjson.loads(orjson.dumps(state_to_json(s)))
    assert state_from_json(raw) == s


def test_a_buy_after_the_snapshots_as_of_survives_the_table() -> None:
    """A buy fill of a later event day adds a lot acquired after the snapshot's `as_of`; that is
    state, not a bad snapshot, so the stored state must still load (a snapshot with such a lot is
    invalid, contract section 1)."""
    s, _ = apply_fill(make_state(), fill("b9", ts=TS + timedelta(days=9)))
    assert s.household.accounts[0].lots[-1].acquired > s.household.as_of
    assert state_from_json(orjson.loads(orjson.dumps(state_to_json(s)))) == s
    assert to_household(s).as_of >= s.household.accounts[0].lots[-1].acquired


def test_household_day_is_the_latest_event_date() -> None:
    """Snapshot as_of, fills/flows (event_day) and ticks of held symbols; never an older one."""
    s = make_state()  # as_of 2026-11-24
    assert household_day(s) == date(2026, 11, 24)
    ticks = {"VTI": date(2026, 11, 25), "BND": date(2026, 11, 23), "XOM": date(2026, 12, 1)}
    assert household_day(s, ticks) == date(2026, 11, 25)  # XOM is not held: ignored
    later, _ = apply_fill(s, fill(ts=TS + timedelta(days=3)))
    assert household_day(later, ticks) == date(2026, 11, 27)
    assert with_event_day(later, date(2026, 11, 20)) is later  # never back
    assert with_event_day(s, date(2026, 11, 26)).event_day == date(2026, 11, 26)


def test_open_rebalance_survives_the_table_unchanged() -> None:
    """What a survivor re-publishes after a takeover is byte for byte what was published."""
    from schemas import dumps, result_to_json

    order = Order(
        "hh-1:2026-11-25:1:0",
        "hh-1-TAX",
        "VTI",
        "sell",
        4.5,
        250.25,
        1126.125,
        "rebalance",
        (LotRelief("L-1", 4.5),),
    )
    result = RebalanceResult(
        "hh-1",
        date(2026, 11, 25),
        "hh-1:2026-11-25:1",
        "rebalanced",
        (order,),
        drift_before={"us_equity": 0.0612345678901},
        drift_after={"us_equity": 0.1 + 0.2},
        turnover=0.021,
        solve_ms=3.14159,
    )
    s = open_rebalance(make_state(), result, 5.0)
    back = state_from_json(orjson.loads(orjson.dumps(state_to_json(s))))
    assert back.open_rebalance is not None
    assert dumps(result_to_json(back.open_rebalance.result)) == dumps(result_to_json(result))


sides = st.sampled_from(["buy", "sell"])
events = st.lists(
    st.tuples(
        sides,
        st.sampled_from(["VTI", "BND"]),
        st.integers(1, 30),
        st.floats(10, 500, allow_nan=False),
        st.integers(0, 60),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(events)
def test_fills_conserve_value_and_are_idempotent(
    evs: list[tuple[str, str, int, float, int]],
) -> None:
    s = make_state()
    for i, (side, symbol, qty, price, days) in enumerate(evs):
        account = "hh-1-TAX" if symbol == "VTI" else "hh-1-IRA"
        f = fill(f"f{i}", side, float(qty), price, symbol, account, ts=TS + timedelta(days=days))
        prices = {"VTI": 250.0, "BND": 72.0, symbol: price}
        before = value(s, prices)
        try:
            after_state, changed = apply_fill(s, f)
        except ValidationError:
            assert side == "sell"
            continue
        assert changed
        assert value(after_state, prices) == pytest.approx(before, rel=1e-9, abs=1e-6)
        again, changed = apply_fill(after_state, f)
        assert not changed and again == after_state
        s = after_state
    assert all(lot.quantity > 0 for a in s.household.accounts for lot in a.lots)


def test_batch_drift_agrees_with_household_drift() -> None:
    import numpy as np

    from solver.drift import household_drift
    from streams.worker.book import batch_drift, book_row

    states = [
        make_state(),
        make_state(household_id="hh-2", target={"us_equity": 0.5, "fixed_income": 0.5}),
    ]
    prices = {"VTI": 310.0, "BND": 70.0}
    rows = [book_row(to_household(s, prices=prices)) for s in states]
    assert all(r is not None for r in rows)
    batch = batch_drift([r for r in rows if r is not None], prices)
    for i, s in enumerate(states):
        ref = household_drift(to_household(s, prices=prices))
        k = len(ref.classes)
        assert np.allclose(batch.weight[i, :k], ref.weight)
        assert batch.out_of_band(i) == ref.out_of_band


def test_batch_drift_prices_a_symbol_without_a_tick_at_the_households_own_price() -> None:
    """A symbol never ticked (its price came with the snapshot) is valued as the household's
    own evaluation values it, so a restart's re-check need not decode such a household."""
    import numpy as np

    from solver.drift import household_drift
    from streams.worker.book import batch_drift, book_row

    state = make_state()  # VTI 250, BND 72 from the snapshot
    live = {"VTI": 180.0}  # only VTI has ticked since
    row = book_row(to_household(state))
    assert row is not None
    batch = batch_drift([row], live)
    ref = household_drift(to_household(state, prices=live))
    assert batch.priced[0]
    assert np.allclose(batch.weight[0, : len(ref.classes)], ref.weight)
    assert batch.out_of_band(0) == ref.out_of_band

    unpriced = book_row(to_household(replace(state, prices={"VTI": 250.0})))
    assert unpriced is not None
    assert not batch_drift([unpriced], {}).priced[0]  # BND priced nowhere
    assert batch_drift([unpriced], {"BND": 70.0}).priced[0]


# --------------------------------------------------------------------------- realized this year


def test_taxable_sell_fills_add_to_realized_this_year_by_holding_period() -> None:
    s = make_state(realized_this_year={"short_term_gain": 100.0, "long_term_gain": -50.0})
    # L-1: 10 VTI at 200/share bought 2022 (long-term); L-2: 10 at 300/share bought 2025-01-03
    # (long-term on 2026-11-24 too); sell 5 of each at 250
    sells = (LotRelief("L-1", 5.0), LotRelief("L-2", 5.0))
    s, _ = apply_fill(s, fill("s1", "sell", 10, 250.0, lots=sells))
    r = to_household(s).realized_this_year
    assert r.short_term_gain == pytest.approx(100.0)
    assert r.long_term_gain == pytest.approx(-50.0 + 5 * 50.0 - 5 * 50.0)
    # a lot bought this year is short-term
    s, _ = apply_fill(s, fill("b1", "buy", 4, 200.0, ts=TS - timedelta(days=60)))
    s, _ = apply_fill(s, fill("s2", "sell", 4, 250.0, lots=(LotRelief("b1", 4.0),)))
    assert to_household(s).realized_this_year.short_term_gain == pytest.approx(100.0 + 4 * 50.0)
    # the same fill again changes nothing
    again, changed = apply_fill(s, fill("s2", "sell", 4, 250.0, lots=(LotRelief("b1", 4.0),)))
    assert not changed and again.household.realized_this_year == s.household.realized_this_year


def test_sells_outside_taxable_accounts_realize_nothing() -> None:
    s, _ = apply_fill(make_state(), fill("s1", "sell", 10, 80.0, symbol="BND", account="hh-1-IRA"))
    r = to_household(s).realized_this_year
    assert r.short_term_gain == 0.0 and r.long_term_gain == 0.0


def test_realized_this_year_resets_on_1_january_in_event_time() -> None:
    s = make_state(realized_this_year={"short_term_gain": 0.0, "long_term_gain": 900.0})
    new_year = date(2027, 1, 1)
    assert to_household(s, date(2026, 12, 31)).realized_this_year.long_term_gain == 900.0
    assert to_household(s, new_year).realized_this_year.long_term_gain == 0.0
    jan = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)
    s, _ = apply_fill(s, fill("s1", "sell", 1, 250.0, lots=(LotRelief("L-1", 1.0),), ts=jan))
    assert to_household(s).realized_this_year.long_term_gain == pytest.approx(50.0)
    # a late record of a December sale does not reopen the closed year
    dec = datetime(2026, 12, 30, 15, 0, tzinfo=UTC)
    s, _ = apply_fill(s, fill("s2", "sell", 1, 250.0, lots=(LotRelief("L-1", 1.0),), ts=dec))
    assert to_household(s).realized_this_year.long_term_gain == pytest.approx(50.0)
    back = state_from_json(orjson.loads(orjson.dumps(state_to_json(s))))
    assert to_household(back).realized_this_year == to_household(s).realized_this_year


def test_console_detail_shows_realized_this_year_and_the_controls() -> None:
    from streams.console.view import household_detail

    raw = make_snapshot(options={"max_realized_gain_year": 5000.0, "allow_sells": False})
    raw["accounts"][0]["lots"][0]["locked"] = True
    s = from_snapshot(parse_household(raw, prices_required=False), None)
    s, _ = apply_fill(s, fill("s1", "sell", 2, 250.0, lots=(LotRelief("L-2", 2.0),)))
    detail = household_detail(s, {}, {})
    assert detail["realized_this_year"] == {"short_term_gain": 0.0, "long_term_gain": -100.0}
    controls = detail["controls"]
    assert controls["max_realized_gain_year"] == 5000.0 and controls["allow_sells"] is False
    assert controls["locked_lots"] == 1
    lots_shown = detail["accounts"][0]["holdings"][0]["lots"]
    assert [lot["locked"] for lot in lots_shown] == [True, False]


def test_a_late_fill_of_an_earlier_rebalance_still_applies() -> None:
    # two rebalances issued: a fill of the first arrives after the second was opened
    s = replace(make_state(), sequence=2)
    assert check_known_order(s, fill(order_id="hh-1:2026-11-20:1:0")) is s
    with pytest.raises(ValidationError, match="unknown order"):
        check_known_order(s, fill(order_id="hh-1:2026-11-24:3:0"))
