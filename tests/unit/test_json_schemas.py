"""The JSON Schema files: loadable package data, valid draft 2020-12, faithful to the contract."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schemas import dumps, loads
from schemas.json_schemas import SCHEMA_NAMES, load_schema

EXAMPLES = Path(__file__).parents[1] / "data" / "contract_examples"
# Messages the rebalancer writes carry "schema" always; on input it is optional (contract intro).
OUTPUTS = {"rebalance", "drift_alert", "dead_letter"}


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        load_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def examples() -> list[tuple[str, Path]]:
    return [(p.name.split(".v1")[0], p) for p in sorted(EXAMPLES.glob("*.json"))]


def example_ids() -> list[str]:
    return [p.name for _, p in examples()]


def read(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(path.read_text())
    return value


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_file_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == f"{name}/v1"
    assert schema["properties"]["schema"] == {
        **schema["properties"]["schema"],
        "const": f"{name}/v1",
    }


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_field_is_optional_on_input_and_required_on_output(name: str) -> None:
    assert ("schema" in load_schema(name)["required"]) == (name in OUTPUTS)


def test_every_schema_file_ships_and_every_message_has_one() -> None:
    shipped = {p.name for p in (Path(__file__).parents[2] / "schemas" / "json").glob("*.json")}
    assert shipped == {f"{n}.v1.schema.json" for n in SCHEMA_NAMES}
    assert {name for name, _ in examples()} == set(SCHEMA_NAMES)


def test_load_schema_accepts_the_versioned_name_and_returns_a_fresh_copy() -> None:
    first = load_schema("price/v1")
    first["title"] = "changed"
    assert load_schema("price")["title"] == "price/v1"


def test_load_schema_rejects_an_unknown_name() -> None:
    with pytest.raises(KeyError, match="orders"):
        load_schema("orders")


@pytest.mark.parametrize(("name", "path"), examples(), ids=example_ids())
def test_contract_example_validates(name: str, path: Path) -> None:
    validator(name).validate(read(path))


@pytest.mark.parametrize(("name", "path"), examples(), ids=example_ids())
def test_unknown_fields_are_allowed(name: str, path: Path) -> None:
    message = read(path)
    message["x_added_in_v2"] = {"anything": [1, "two"]}
    validator(name).validate(message)


@pytest.mark.parametrize(("name", "path"), examples(), ids=example_ids())
def test_every_required_field_is_required(name: str, path: Path) -> None:
    v = validator(name)
    message = read(path)
    for key in load_schema(name)["required"]:
        without = {k: val for k, val in message.items() if k != key}
        assert not v.is_valid(without), f"{name} without {key} passed"


@pytest.mark.parametrize(("name", "path"), examples(), ids=example_ids())
def test_schema_field_must_name_this_message(name: str, path: Path) -> None:
    message = read(path)
    message["schema"] = f"{name}/v2"
    assert not validator(name).is_valid(message)
    if name not in OUTPUTS:
        del message["schema"]
        validator(name).validate(message)


BAD_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("price", {"price": 0}),
    ("price", {"price": -1.5}),
    ("price", {"price": "241.1"}),
    ("price", {"ts": "2026-11-24"}),
    ("price", {"symbol": ""}),
    ("fill", {"side": "short"}),
    ("fill", {"quantity": 0}),
    ("fill", {"price": 0}),
    ("fill", {"lots": [{"lot_id": "L-1", "quantity": 0}]}),
    ("fill", {"lots": [{"quantity": 10}]}),
    ("cash_flow", {"amount": -3000.0}),
    ("cash_flow", {"amount": 0}),
    ("cash_flow", {"kind": "transfer"}),
    ("cash_flow", {"settles": ""}),
    ("security", {"exposures": {"us_equity": 1.0}}),  # both asset_class and exposures
    ("security", {"asset_class": None}),
    ("security", {"fractional": "no"}),
    ("drift_alert", {"action": "rebalanced"}),
    ("drift_alert", {"max_abs_drift": -0.1}),
    ("drift_alert", {"breaches": [{"asset_class": "us_equity", "weight": 0.5}]}),
    ("drift_alert", {"ts": "2026-11-24T15:30:00+01:00"}),
    ("dead_letter", {"partition": -1}),
    ("dead_letter", {"offset": 1.5}),
    ("dead_letter", {"value": {"fill_id": "F-9"}}),
    ("dead_letter", {"error": ""}),
]


@pytest.mark.parametrize(
    ("name", "change"), BAD_EVENTS, ids=[f"{n}-{next(iter(c))}" for n, c in BAD_EVENTS]
)
def test_section_4_messages_reject_what_the_contract_forbids(
    name: str, change: dict[str, Any]
) -> None:
    message = {**read(EXAMPLES / f"{name}.v1.json"), **change}
    message = {k: v for k, v in message.items() if v is not None}
    assert not validator(name).is_valid(message), message


def test_security_needs_an_asset_class_or_exposures() -> None:
    message = read(EXAMPLES / "security.v1.json")
    del message["asset_class"]
    assert not validator("security").is_valid(message)


def test_dead_letter_key_may_be_null() -> None:
    message = {**read(EXAMPLES / "dead_letter.v1.json"), "key": None}
    validator("dead_letter").validate(message)


def test_fill_without_lots_and_cash_flow_without_settles_are_valid() -> None:
    fill = read(EXAMPLES / "fill.v1.json")
    del fill["lots"]
    validator("fill").validate(fill)
    flow = {**read(EXAMPLES / "cash_flow.v1.json"), "kind": "deposit"}
    del flow["settles"]
    validator("cash_flow").validate(flow)


def test_section_4_examples_survive_the_wire_codec() -> None:
    for name, path in examples():
        message = read(path)
        assert loads(dumps(message)) == copy.deepcopy(message), name


@pytest.mark.parametrize(("name", "path"), examples(), ids=example_ids())
def test_parsers_accept_the_examples_and_their_output_validates(name: str, path: Path) -> None:
    from schemas import events, household, rebalance

    codecs: dict[str, tuple[Any, Any]] = {
        "household": (household.parse_household, household.household_to_json),
        "rebalance": (rebalance.parse_result, rebalance.result_to_json),
        "security": (events.parse_security_event, events.security_event_to_json),
        "price": (events.parse_price, events.price_to_json),
        "fill": (events.parse_fill, events.fill_to_json),
        "cash_flow": (events.parse_cash_flow, events.cash_flow_to_json),
        "drift_alert": (events.parse_drift_alert, events.drift_alert_to_json),
        "dead_letter": (events.parse_dead_letter, events.dead_letter_to_json),
    }
    parse, encode = codecs[name]
    record = parse(read(path))
    encoded = encode(record)
    validator(name).validate(encoded)
    assert parse(loads(dumps(encoded))) == record


# --------------------------------------------------------------------------- the contract's ranges

INVALID = Path(__file__).parents[1] / "data" / "invalid"
#: Bad inputs the schema language cannot see: NaN is not JSON (the lenient parser reads it as a
#: float that compares false with every bound), and two rules span fields.
BEYOND_THE_SCHEMA = {
    "cash_nan",
    "lot_after_as_of",
    "duplicate_lot_ids_across_accounts",
}


@pytest.mark.parametrize("path", sorted(INVALID.glob("*.json")), ids=lambda p: p.stem)
def test_the_household_schema_rejects_the_out_of_range_inputs(path: Path) -> None:
    raw = json.loads(path.read_text())
    if path.stem in BEYOND_THE_SCHEMA:
        assert validator("household").is_valid(raw), "the list above is out of date"
    else:
        assert not validator("household").is_valid(raw)


def full_household() -> dict[str, Any]:
    """The contract's example with every optional field of section 1 set, at its range edges."""
    raw = read(EXAMPLES / "household.v1.json")
    raw["options"].update(
        max_realized_gain=1e12,
        transaction_cost_bps=1000,
        max_realized_gain_year=0.0,
        allow_sells=False,
        max_turnover=1.0,
        defer_short_term_days=30,
        target_tax_budget_bps=10_000,
    )
    raw["bands"].update(absolute=1.0, relative=0.0, floor=1.0)
    raw["accounts"][0]["lots"][0].update(locked=True, quantity=1e12, cost_basis=1e12)
    raw["accounts"][0]["cash"] = 10**12  # an integer at the limit counts as that number
    raw["securities"]["VTI"]["price"] = 1e-6
    raw["securities"]["BAL"]["price"] = 1e12
    raw["realized_this_year"] = {"short_term_gain": -1e12, "long_term_gain": 1e12}
    return raw


def test_every_new_field_at_its_range_edge_is_valid_to_the_schema_and_the_parser() -> None:
    from schemas import parse_household

    raw = full_household()
    validator("household").validate(raw)
    h = parse_household(raw)
    assert h.options.max_realized_gain_year == 0.0 and not h.options.allow_sells
    assert h.accounts[0].lots[0].locked
    assert h.realized_this_year.long_term_gain == 1e12


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("options", "max_realized_gain_year"), -0.01),
        (("options", "max_turnover"), 1.01),
        (("options", "max_turnover"), -0.1),
        (("options", "defer_short_term_days"), -1),
        (("options", "defer_short_term_days"), 1.5),
        (("options", "target_tax_budget_bps"), 10_000.5),
        (("options", "transaction_cost_bps"), 1000.5),
        (("options", "allow_sells"), "false"),
        (("options", "min_trade_value"), 1e12 * 1.01),
        (("realized_this_year", "short_term_gain"), -2e12),
        (("realized_this_year", "long_term_gain"), 2**64),
        (("bands", "floor"), 1.5),
    ],
    ids=lambda v: str(v),
)
def test_the_schema_and_the_parser_agree_on_each_range(where: tuple[str, str], value: Any) -> None:
    from schemas import ValidationError, parse_household

    raw = full_household()
    raw[where[0]][where[1]] = value
    assert not validator("household").is_valid(raw)
    with pytest.raises(ValidationError) as info:
        parse_household(raw)
    assert [i.path for i in info.value.issues] == [".".join(where)]


RANGE_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    ("price", {"price": 1e300}, "price"),
    ("price", {"price": 1e-7}, "price"),
    ("price", {"price": 2**64}, "price"),
    ("fill", {"quantity": 1e13}, "quantity"),
    ("fill", {"price": 5e-7}, "price"),
    ("fill", {"lots": [{"lot_id": "L-1", "quantity": 2**70}]}, "lots[0].quantity"),
    ("cash_flow", {"amount": 1.5e12}, "amount"),
    ("cash_flow", {"amount": 2**64}, "amount"),
    ("security", {"asset_class": None, "exposures": {"us_equity": 1.5, "cash": -0.5}}, "*"),
]


@pytest.mark.parametrize(
    ("name", "change", "path"), RANGE_EVENTS, ids=[f"{n}-{p}" for n, _, p in RANGE_EVENTS]
)
def test_section_4_inputs_hold_their_numbers_to_the_ranges(
    name: str, change: dict[str, Any], path: str
) -> None:
    from schemas import ValidationError, events

    parsers = {
        "price": events.parse_price,
        "fill": events.parse_fill,
        "cash_flow": events.parse_cash_flow,
        "security": events.parse_security_event,
    }
    message = {**read(EXAMPLES / f"{name}.v1.json"), **change}
    message = {k: v for k, v in message.items() if v is not None}
    assert not validator(name).is_valid(message), message
    with pytest.raises(ValidationError) as info:
        parsers[name](message)
    paths = [i.path for i in info.value.issues]
    assert paths == [path] if path != "*" else paths == ["exposures.us_equity", "exposures.cash"]
