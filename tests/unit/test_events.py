"""The stream events: decode(encode(x)) == x, every issue with its path, schema always written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import ValidationError
from schemas.events import (
    Breach,
    CashFlow,
    DeadLetter,
    DriftAlert,
    Fill,
    Price,
    cash_flow_to_json,
    dead_letter_to_json,
    drift_alert_to_json,
    fill_to_json,
    parse_cash_flow,
    parse_dead_letter,
    parse_drift_alert,
    parse_fill,
    parse_price,
    parse_security_event,
    price_to_json,
    security_event_to_json,
)
from schemas.rebalance import LotRelief

TS = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


def paths(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {i.path for i in exc.value.issues}


def test_price_round_trip() -> None:
    p = Price("VTI", 240.5, TS)
    raw = price_to_json(p)
    assert raw == {
        "schema": "price/v1",
        "symbol": "VTI",
        "price": 240.5,
        "ts": "2026-11-24T15:30:00Z",
    }
    assert parse_price(raw) == p


def test_price_issues_all_found() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_price({"schema": "price/v2", "price": -1, "ts": "yesterday"})
    assert paths(exc) == {"schema", "symbol", "price", "ts"}


def test_fill_round_trip_with_lots() -> None:
    f = Fill(
        "f1",
        "o1",
        "hh",
        "hh-TAX",
        "VTI",
        "sell",
        10.0,
        241.0,
        TS,
        (LotRelief("L-1", 4.0), LotRelief("L-2", 6.0)),
    )
    assert fill_to_json(f)["schema"] == "fill/v1"
    assert parse_fill(fill_to_json(f)) == f


def test_fill_issues_have_paths() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_fill(
            {
                "fill_id": "f",
                "order_id": "o",
                "household_id": "h",
                "account_id": "a",
                "symbol": "X",
                "side": "hold",
                "quantity": 0,
                "price": "1",
                "ts": TS.isoformat(),
                "lots": [{"lot_id": "L", "quantity": -1}],
            }
        )
    assert paths(exc) == {"side", "quantity", "price", "lots[0].quantity"}


def test_cash_flow_round_trip_and_rules() -> None:
    c = CashFlow("w1", "hh", "hh-TAX", "withdrawal", 100.0, TS, settles="r1")
    assert parse_cash_flow(cash_flow_to_json(c)) == c
    d = CashFlow("d1", "hh", "hh-TAX", "deposit", 5.0, TS)
    assert "settles" not in cash_flow_to_json(d)
    with pytest.raises(ValidationError) as exc:
        parse_cash_flow({**cash_flow_to_json(d), "amount": 0, "settles": "r1", "kind": "gift"})
    assert paths(exc) == {"amount", "kind"}


def test_security_event() -> None:
    sec = parse_security_event(
        {"symbol": "BAL", "exposures": {"us_equity": 0.6, "fixed_income": 0.4}}
    )
    assert sec.group == "BAL" and sec.fractional
    raw = security_event_to_json(sec)
    assert raw["schema"] == "security/v1" and raw["symbol"] == "BAL" and "price" not in raw
    assert parse_security_event(raw) == sec
    with pytest.raises(ValidationError):
        parse_security_event({"symbol": "X"})


def test_drift_alert_and_dead_letter_round_trip() -> None:
    a = DriftAlert("hh", TS, 0.07, (Breach("us_equity", 0.52, 0.45, 0.05),), "pending_orders")
    assert parse_drift_alert(drift_alert_to_json(a)) == a
    d = DeadLetter("fills", 2, 17, "hh", "{not json", "not valid JSON", TS)
    raw = dead_letter_to_json(d)
    assert raw["schema"] == "dead_letter/v1"
    assert parse_dead_letter(raw) == d


# --------------------------------------------------------------------------- the contract's ranges

LIMIT = "must be at most 1e12 in absolute value"


def messages(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {i.path: i.message for i in exc.value.issues}


def price_message(price: object) -> dict[str, object]:
    return {"symbol": "VTI", "price": price, "ts": "2026-11-24T15:30:00Z"}


@pytest.mark.parametrize(
    ("price", "message"),
    [
        (1e300, LIMIT),
        (2**64, LIMIT),
        (10**400, LIMIT),
        (1.000001e12, LIMIT),
        (1e-300, "must be >= 1e-6"),
        (9.99e-7, "must be >= 1e-6"),
        (0, "must be >= 1e-6"),
        (float("nan"), "must be finite"),
        (float("inf"), "must be finite"),
    ],
)
def test_a_price_tick_outside_the_range_is_invalid(price: object, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_price(price_message(price))
    assert messages(exc) == {"price": message}


def test_a_price_tick_at_the_range_edges_is_valid() -> None:
    assert parse_price(price_message(1e-6)).price == 1e-6
    assert parse_price(price_message(10**12)).price == 1e12


def fill_message(**change: object) -> dict[str, object]:
    base: dict[str, object] = {
        "fill_id": "f1",
        "order_id": "o1",
        "household_id": "hh",
        "account_id": "A",
        "symbol": "VTI",
        "side": "sell",
        "quantity": 10,
        "price": 240.5,
        "ts": "2026-11-24T15:30:00Z",
        "lots": [{"lot_id": "L-1", "quantity": 10}],
    }
    return {**base, **change}


def test_a_fill_holds_quantity_price_and_lots_to_the_ranges() -> None:
    parse_fill(fill_message(quantity=1e12, price=1e12, lots=[{"lot_id": "L", "quantity": 1e12}]))
    with pytest.raises(ValidationError) as exc:
        parse_fill(
            fill_message(quantity=1e300, price=1e-7, lots=[{"lot_id": "L-1", "quantity": 2**70}])
        )
    assert messages(exc) == {
        "quantity": LIMIT,
        "price": "must be >= 1e-6",
        "lots[0].quantity": LIMIT,
    }


def flow_message(amount: object) -> dict[str, object]:
    return {
        "flow_id": "c1",
        "household_id": "hh",
        "account_id": "A",
        "kind": "deposit",
        "amount": amount,
        "ts": "2026-11-24T15:30:00Z",
    }


@pytest.mark.parametrize(
    ("amount", "message"),
    [(1.5e12, LIMIT), (2**64, LIMIT), (1e308, LIMIT), (0, "must be > 0"), (-5.0, "must be > 0")],
)
def test_a_cash_flow_amount_is_positive_and_at_most_1e12(amount: object, message: str) -> None:
    assert parse_cash_flow(flow_message(1e12)).amount == 1e12
    with pytest.raises(ValidationError) as exc:
        parse_cash_flow(flow_message(amount))
    assert messages(exc) == {"amount": message}


def test_a_security_event_holds_exposures_to_weights() -> None:
    raw = {"symbol": "BAL", "exposures": {"us_equity": 1.5, "fixed_income": -0.5}}
    with pytest.raises(ValidationError) as exc:
        parse_security_event(raw)
    assert messages(exc) == {
        "exposures.us_equity": "must be <= 1",
        "exposures.fixed_income": "must be >= 0",
    }
    with pytest.raises(ValidationError) as exc:
        parse_security_event({"symbol": "BAL", "asset_class": "us_equity", "price": 1e300})
    assert messages(exc) == {"price": LIMIT}


def test_events_on_the_wire_with_numbers_json_cannot_carry_name_the_field() -> None:
    from schemas import loads

    for text in (b"NaN", b"Infinity", b"1e400"):
        wire = b'{"symbol":"VTI","price":%s,"ts":"2026-11-24T15:30:00Z"}' % text
        with pytest.raises(ValidationError) as exc:
            loads(wire)
        assert paths(exc) == {"price"}


def test_the_rebalancers_own_outputs_are_not_held_to_the_input_limit() -> None:
    """A result is derived from inputs: 1e12 shares at 1e12 is a valid order worth 1e24."""
    import json
    from pathlib import Path

    from schemas import parse_result

    example = Path(__file__).parents[1] / "data" / "contract_examples" / "rebalance.v1.json"
    raw = json.loads(example.read_text())
    raw["orders"][0].update(quantity=1e12, est_price=1e12, est_value=1e24)
    raw["orders"][0]["lots"][0]["quantity"] = 1e12
    assert parse_result(raw).orders[0].est_value == 1e24
