"""rebalance/v1: the contract's example, result_to_json against the JSON Schema, parse_result."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schemas import (
    Issue,
    LotRelief,
    Order,
    Realized,
    RebalanceResult,
    ValidationError,
    dumps,
    loads,
    parse_household,
    parse_result,
    result_to_json,
)
from schemas.json_schemas import load_schema

EXAMPLE = Path(__file__).parents[1] / "data" / "contract_examples" / "rebalance.v1.json"
SCHEMA = Draft202012Validator(
    load_schema("rebalance"), format_checker=Draft202012Validator.FORMAT_CHECKER
)


def contract_example() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return value


SELL = Order(
    order_id="hh-1:2026-11-24:1:0",
    account_id="hh-1-IRA",
    symbol="VTI",
    side="sell",
    quantity=12.0,
    est_price=240.5,
    est_value=2886.0,
    reason="rebalance",
    lots=(LotRelief("L-1", 10.0), LotRelief("L-2", 2.0)),
)
BUY = Order(
    order_id="hh-1:2026-11-24:1:1",
    account_id="hh-1-IRA",
    symbol="BND",
    side="buy",
    quantity=39.5,
    est_price=72.0,
    est_value=2844.0,
    reason="invest_cash",
)


def make_result(**overrides: Any) -> RebalanceResult:
    fields: dict[str, Any] = {
        "household_id": "hh-1",
        "as_of": date(2026, 11, 24),
        "rebalance_id": "hh-1:2026-11-24:1",
        "status": "rebalanced",
        "orders": (SELL, BUY),
        "drift_before": {"us_equity": 0.061, "fixed_income": -0.061},
        "drift_after": {"us_equity": 0.002, "fixed_income": -0.002},
        "realized": Realized(short_term_gain=-120.0, long_term_gain=1200.0, tax_cost=236.64),
        "turnover": 0.021,
        "messages": (),
        "solve_ms": 3.2,
    }
    fields.update(overrides)
    return RebalanceResult(**fields)


def wire(res: RebalanceResult) -> dict[str, Any]:
    value: dict[str, Any] = loads(dumps(result_to_json(res)))
    return value


# --------------------------------------------------------------------------- the contract's example


def test_contract_example_validates_and_parses() -> None:
    raw = contract_example()
    SCHEMA.validate(raw)
    res = parse_result(raw)
    assert res.status == "rebalanced" and res.as_of == date(2026, 11, 24)
    (order,) = res.orders
    assert (order.side, order.quantity, order.reason) == ("sell", 10.0, "rebalance")
    assert order.lots == (LotRelief("L-1", 10.0),)
    assert res.realized.tax_cost == 285.6
    assert res.drift_before["us_equity"] == 0.061
    assert result_to_json(res) == raw  # the example is exactly what the encoder writes


# --------------------------------------------------------------------------- result_to_json


def test_a_rebalanced_result_validates_and_round_trips() -> None:
    res = make_result()
    encoded = wire(res)
    SCHEMA.validate(encoded)
    assert encoded["schema"] == "rebalance/v1"
    assert "lots" not in encoded["orders"][1]  # a buy relieves no lots
    assert "errors" not in encoded
    assert parse_result(encoded) == res


@pytest.mark.parametrize("status", ["no_action", "infeasible", "solver_error"])
def test_results_without_orders_validate(status: str) -> None:
    res = make_result(
        status=status,
        orders=(),
        realized=Realized(),
        turnover=0.0,
        drift_after={},
        messages=("account hh-1-TAX cannot raise 9000.00",),
    )
    SCHEMA.validate(wire(res))
    assert parse_result(wire(res)) == res


def test_band_unreachable_may_carry_orders_or_none() -> None:
    for orders in ((BUY,), ()):
        res = make_result(
            status="band_unreachable",
            orders=orders,
            messages=("class fixed_income cannot reach its band",),
        )
        SCHEMA.validate(wire(res))


def test_invalid_input_carries_every_error_from_parse_household() -> None:
    with pytest.raises(ValidationError) as info:
        parse_household({"as_of": "2026-11-31", "accounts": [{"type": "roth"}]})
    res = RebalanceResult(
        household_id="",
        as_of=None,
        rebalance_id="",
        status="invalid_input",
        errors=info.value.issues,
    )
    encoded = wire(res)
    SCHEMA.validate(encoded)
    assert encoded["as_of"] is None
    assert {e["path"] for e in encoded["errors"]} == {
        "household_id",
        "as_of",
        "target",
        "accounts[0].account_id",
        "accounts[0].type",
    }
    assert parse_result(encoded) == res  # errors survive decoding


# ------------------------------------------------------------------------- what the schema refuses


def refused(change: dict[str, Any], *, order: dict[str, Any] | None = None) -> bool:
    raw = {**contract_example(), **change}
    if order is not None:
        raw["orders"] = [{**raw["orders"][0], **order}]
    return not SCHEMA.is_valid(raw)


def test_statuses_constrain_orders_and_errors() -> None:
    assert refused({"status": "finished"})
    assert refused({"status": "rebalanced", "orders": []})
    assert refused({"status": "no_action"})  # the example has an order
    assert refused({"status": "infeasible"})
    assert refused({"status": "solver_error"})
    assert refused({"status": "invalid_input", "orders": []})  # no errors
    assert refused({"status": "invalid_input", "orders": [], "errors": []})
    assert refused({"status": "invalid_input", "orders": [], "errors": [{"path": "as_of"}]})
    assert not refused(
        {
            "status": "invalid_input",
            "orders": [],
            "errors": [{"path": "as_of", "message": "is required"}],
        }
    )
    assert not refused({"status": "band_unreachable"})


def test_orders_are_checked() -> None:
    assert refused({}, order={"reason": "because"})
    assert refused({}, order={"side": "short"})
    assert refused({}, order={"quantity": 0})
    assert refused({}, order={"est_price": 0})
    assert refused({}, order={"est_value": -1.0})
    assert refused({}, order={"lots": []})  # a sell names its lots
    assert refused({}, order={"lots": [{"lot_id": "L-1", "quantity": -10}]})
    buy = {k: v for k, v in contract_example()["orders"][0].items() if k != "lots"}
    assert not refused({"orders": [{**buy, "side": "buy"}]})
    assert refused({"orders": [{**buy, "side": "sell"}]})


def test_output_always_carries_schema_and_every_field() -> None:
    for key in ("schema", "as_of", "drift_before", "realized", "messages", "solve_ms"):
        raw = contract_example()
        del raw[key]
        assert not SCHEMA.is_valid(raw), key
    assert refused({"as_of": "24.11.2026"})
    assert refused({"turnover": -0.1})
    assert refused({"realized": {"short_term_gain": 0.0}})


# --------------------------------------------------------------------------- parse_result


def parse_issues(raw: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        parse_result(raw)
    return {i.path: i.message for i in info.value.issues}


def test_parse_result_reports_bad_fields_with_paths() -> None:
    raw = contract_example()
    raw["drift_before"] = {"us_equity": "lots"}
    raw["drift_after"] = [0.1]
    raw["messages"] = "all good"
    raw["orders"][0]["lots"][0]["quantity"] = 0
    raw["orders"][0]["side"] = "hold"
    raw["errors"] = [{"path": 3, "message": ""}]
    assert parse_issues(raw) == {
        "drift_before.us_equity": "must be a number",
        "drift_after": "must be an object",
        "messages": "must be an array of strings",
        "orders[0].lots[0].quantity": "must be > 0",
        "orders[0].side": "must be one of buy, sell (got 'hold')",
        "errors[0].path": "must be a string",
        "errors[0].message": "must be a non-empty string",
    }


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        "x",
        {"orders": [None]},
        {"orders": [{"lots": [3]}]},
        {"realized": [1]},
        {"errors": "bad"},
        {"messages": [1, None]},
        {"schema": "rebalance/v2"},
    ],
)
def test_parse_result_never_raises_anything_but_validation_error(raw: Any) -> None:
    assert parse_issues(raw)


def test_ids_may_be_empty_only_for_invalid_input() -> None:
    raw = contract_example()
    raw["household_id"] = ""
    assert parse_issues(raw) == {"household_id": "must be a non-empty string"}


def test_issue_order_is_preserved() -> None:
    errors = (Issue("b", "second"), Issue("a", "first"))
    res = RebalanceResult(
        household_id="", as_of=None, rebalance_id="", status="invalid_input", errors=errors
    )
    assert parse_result(wire(res)).errors == errors
