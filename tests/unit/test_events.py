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
