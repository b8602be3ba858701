"""household/v1: the contract's example, JSON Schema agreement, and parse_household's validation.

Validation must report every problem at once, each with its JSON path, and never a traceback.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas import Household, ValidationError, dumps, household_to_json, loads, parse_household
from schemas.json_schemas import load_schema

EXAMPLE = Path(__file__).parents[1] / "data" / "contract_examples" / "household.v1.json"
SCHEMA = Draft202012Validator(
    load_schema("household"), format_checker=Draft202012Validator.FORMAT_CHECKER
)


def contract_example() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return value


def lot(lot_id: str, symbol: str = "VTI", quantity: Any = 10, **extra: Any) -> dict[str, Any]:
    return {
        "lot_id": lot_id,
        "symbol": symbol,
        "quantity": quantity,
        "cost_basis": 2000.0,
        "acquired": "2023-01-10",
        **extra,
    }


def make_household(**overrides: Any) -> dict[str, Any]:
    """A small valid snapshot: two accounts, the second with five lots; overrides replace keys."""
    raw: dict[str, Any] = {
        "household_id": "hh-7",
        "as_of": "2026-11-24",
        "target": {"us_equity": 0.6, "fixed_income": 0.4},
        "accounts": [
            {"account_id": "A", "type": "taxable", "cash": 100.0, "lots": [lot("A-1")]},
            {
                "account_id": "B",
                "type": "tax_deferred",
                "cash": 0.0,
                "lots": [lot(f"B-{i}", "BND" if i % 2 else "VTI") for i in range(5)],
            },
        ],
        "securities": {
            "VTI": {"price": 240.5, "asset_class": "us_equity"},
            "BND": {"price": 72.0, "asset_class": "fixed_income"},
        },
    }
    raw.update(overrides)
    return raw


def issues_of(raw: Any, **kwargs: Any) -> dict[str, str]:
    """path -> message for every issue parse_household reports (asserting that it fails)."""
    with pytest.raises(ValidationError) as info:
        parse_household(raw, **kwargs)
    issues = info.value.issues
    assert issues, "a ValidationError lists its issues"
    return {i.path: i.message for i in issues}


# --------------------------------------------------------------------------- the contract's example


def test_contract_example_validates_against_the_json_schema() -> None:
    SCHEMA.validate(contract_example())


def test_contract_example_parses() -> None:
    h = parse_household(contract_example())
    assert h.household_id == "hh-0001"
    assert h.as_of == date(2026, 11, 24)
    assert h.mode == "rebalance"
    assert h.target == {"us_equity": 0.45, "intl_equity": 0.15, "fixed_income": 0.37, "cash": 0.03}
    assert h.bands.overrides["cash"].absolute == 0.02
    assert h.bands.tolerance("cash", 0.03) == 0.0075  # max(floor, min(0.02, 0.25 * 0.03))
    assert h.options.harvest_losses is True and h.options.max_realized_gain is None
    (account,) = h.accounts
    assert account.type == "taxable" and account.cash == 5000.0
    assert account.lots[0].acquired == date(2022, 3, 15)
    assert account.buy_list == {"fixed_income": ("MUB",)}
    assert account.excluded_symbols == ("XOM",)
    assert h.securities["VTI"].group == "us-total-market"
    assert h.securities["VTI"].fractional is False
    assert h.securities["BAL"].exposures == {"us_equity": 0.6, "fixed_income": 0.4}
    assert h.securities["BAL"].group == "BAL"  # wash_group defaults to the symbol
    assert h.recent_trades[0].realized_gain == -1200.0


def test_household_to_json_validates_and_parses_back() -> None:
    h = parse_household(contract_example())
    encoded = household_to_json(h)
    SCHEMA.validate(encoded)
    assert encoded["schema"] == "household/v1"
    assert parse_household(loads(dumps(encoded))) == h


def test_defaults_fill_what_the_snapshot_omits() -> None:
    h = parse_household(make_household())
    assert h.mode == "rebalance"
    assert (h.bands.absolute, h.bands.relative, h.bands.floor) == (0.05, 0.25, 0.005)
    assert h.accounts[0].cash_needed == 0.0
    assert h.securities["VTI"].fractional is True
    SCHEMA.validate(household_to_json(h))


def test_securities_may_be_omitted_on_the_households_topic() -> None:
    raw = make_household()
    del raw["securities"]
    assert parse_household(raw, prices_required=False).securities == {}
    assert set(issues_of(raw)) == {"accounts[0].lots[0].symbol"} | {
        f"accounts[1].lots[{i}].symbol" for i in range(5)
    }


def test_schema_field_is_optional_but_must_name_household_v1() -> None:
    assert isinstance(parse_household(make_household()), Household)
    assert issues_of(make_household(schema="household/v2")) == {
        "schema": "must be household/v1 (got 'household/v2')"
    }
    assert not SCHEMA.is_valid(make_household(schema="household/v2"))


# --------------------------------------------------------------------------- validation, one by one


def test_the_path_names_the_lot_inside_the_account() -> None:
    raw = make_household()
    raw["accounts"][1]["lots"][4]["quantity"] = 0
    assert issues_of(raw) == {"accounts[1].lots[4].quantity": "must be > 0"}
    assert not SCHEMA.is_valid(raw)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_reported_where_they_are(bad: float) -> None:
    raw = make_household(target={"us_equity": bad, "fixed_income": 0.4})
    raw["accounts"][0]["cash"] = bad
    raw["accounts"][1]["lots"][2]["cost_basis"] = bad
    raw["securities"]["BND"]["price"] = bad
    raw["bands"] = {"absolute": bad}
    raw["options"] = {"max_realized_gain": bad}
    assert issues_of(raw) == {
        "target.us_equity": "must be finite",
        "accounts[0].cash": "must be finite",
        "accounts[1].lots[2].cost_basis": "must be finite",
        "securities.BND.price": "must be finite",
        "bands.absolute": "must be finite",
        "options.max_realized_gain": "must be finite",
    }


def test_missing_top_level_fields_are_all_reported() -> None:
    assert issues_of({}) == {
        "household_id": "is required",
        "as_of": "is required",
        "target": "is required",
        "accounts": "is required",
    }


def test_null_counts_as_missing_for_a_required_field() -> None:
    assert issues_of(make_household(household_id=None, as_of=None)) == {
        "household_id": "is required",
        "as_of": "is required",
    }


def test_missing_lot_fields_are_all_reported() -> None:
    raw = make_household()
    raw["accounts"][1]["lots"][3] = {}
    assert issues_of(raw) == {
        f"accounts[1].lots[3].{key}": "is required"
        for key in ("lot_id", "symbol", "quantity", "cost_basis", "acquired")
    }
    assert not SCHEMA.is_valid(raw)


def test_an_account_needs_an_id_and_a_type_and_there_must_be_an_account() -> None:
    raw = make_household()
    raw["accounts"][0] = {"cash": 10.0}
    assert issues_of(raw) == {
        "accounts[0].account_id": "is required",
        "accounts[0].type": "is required",
    }
    assert issues_of(make_household(accounts=[])) == {"accounts": "must list at least one account"}


def test_unknown_account_type_and_mode() -> None:
    raw = make_household(mode="aggressive")
    raw["accounts"][1]["type"] = "roth"
    issues = issues_of(raw)
    assert set(issues) == {"mode", "accounts[1].type"}
    assert "rebalance, guardrail, monitor" in issues["mode"]
    assert "taxable, tax_deferred, tax_exempt" in issues["accounts[1].type"]
    assert not SCHEMA.is_valid(raw)


def test_location_names_only_account_types() -> None:
    raw = make_household(location={"fixed_income": ["tax_deferred", "ira"]})
    assert set(issues_of(raw)) == {"location.fixed_income[1]"}
    assert not SCHEMA.is_valid(raw)


def test_target_must_sum_to_one() -> None:
    assert issues_of(make_household(target={"us_equity": 0.6, "fixed_income": 0.5})) == {
        "target": "weights must sum to 1 (sum is 1.1)"
    }
    parse_household(make_household(target={"us_equity": 0.6, "fixed_income": 0.4 + 5e-7}))


def test_target_weights_are_not_negative_and_the_target_is_not_empty() -> None:
    issues = issues_of(make_household(target={"us_equity": 1.2, "fixed_income": -0.2}))
    # Each bad weight is named; no misleading sum issue on top.
    assert issues == {"target.us_equity": "must be <= 1", "target.fixed_income": "must be >= 0"}
    assert issues_of(make_household(target={})) == {"target": "must name at least one asset class"}
    assert issues_of(make_household(target=[0.6, 0.4])) == {"target": "must be an object"}


def test_held_security_without_price_or_unknown() -> None:
    raw = make_household()
    del raw["securities"]["BND"]["price"]
    raw["accounts"][0]["lots"].append(lot("A-2", "XYZ"))
    assert issues_of(raw) == {
        "securities.BND.price": "is required",
        "accounts[0].lots[1].symbol": "security 'XYZ' is not in securities",
    }
    assert not SCHEMA.is_valid(raw)
    # Without prices (the households topic) an unpriced security is fine, an unknown one is not.
    assert issues_of(raw, prices_required=False) == {
        "accounts[0].lots[1].symbol": "security 'XYZ' is not in securities"
    }


def test_price_must_be_positive() -> None:
    raw = make_household()
    raw["securities"]["VTI"]["price"] = 0
    raw["securities"]["BND"]["price"] = -72.0
    assert issues_of(raw) == {
        "securities.VTI.price": "must be >= 1e-6",
        "securities.BND.price": "must be >= 1e-6",
    }


def test_duplicate_lot_ids_within_an_account() -> None:
    raw = make_household()
    raw["accounts"][1]["lots"][3]["lot_id"] = "B-1"
    issues = issues_of(raw)
    assert list(issues) == ["accounts[1].lots[3].lot_id"]
    assert (
        "duplicate lot id 'B-1' (also at accounts[1].lots[1])"
        in issues["accounts[1].lots[3].lot_id"]
    )


def test_lot_ids_are_unique_across_the_household() -> None:
    """Contract section 1: `lot_id`s are unique within the household, not just the account."""
    raw = make_household()
    raw["accounts"][0]["lots"][0]["lot_id"] = "B-1"
    issues = issues_of(raw)
    assert list(issues) == ["accounts[1].lots[1].lot_id"]
    assert "(also at accounts[0].lots[0])" in issues["accounts[1].lots[1].lot_id"]


def test_duplicate_account_ids() -> None:
    raw = make_household()
    raw["accounts"].append({"account_id": "A", "type": "tax_exempt"})
    assert issues_of(raw) == {"accounts[2].account_id": "duplicate account id 'A'"}


def test_exposures_must_sum_to_one() -> None:
    raw = make_household()
    raw["securities"]["BAL"] = {"price": 50.0, "exposures": {"us_equity": 0.6, "fixed_income": 0.3}}
    assert issues_of(raw) == {"securities.BAL.exposures": "must sum to 1 (sum is 0.9)"}


def test_exposures_are_weights() -> None:
    raw = make_household()
    raw["securities"]["BAL"] = {"price": 50.0, "exposures": {"us_equity": 1.5, "cash": -0.5}}
    assert issues_of(raw) == {
        "securities.BAL.exposures.us_equity": "must be <= 1",
        "securities.BAL.exposures.cash": "must be >= 0",
    }
    raw["securities"]["BAL"] = {"price": 50.0, "exposures": {}}
    assert set(issues_of(raw)) == {"securities.BAL.exposures"}
    assert not SCHEMA.is_valid(raw)


def test_asset_class_and_exposures_both_given_or_neither() -> None:
    raw = make_household()
    raw["securities"]["BAL"] = {
        "price": 50.0,
        "asset_class": "us_equity",
        "exposures": {"us_equity": 1.0},
    }
    raw["securities"]["NIL"] = {"price": 1.0}
    assert issues_of(raw) == {
        "securities.BAL": "give either asset_class or exposures, not both",
        "securities.NIL": "needs asset_class or exposures",
    }
    assert not SCHEMA.is_valid(raw)


@pytest.mark.parametrize(
    "bad",
    [
        "2026-13-01",
        "2026-02-30",
        "24/11/2026",
        "20261124",
        "2026-W48-1",
        "2026-11-24junk",
        "2026-11-24T00:00:00Z",
        "",
        20261124,
    ],
)
def test_dates_that_do_not_parse(bad: Any) -> None:
    raw = make_household(as_of=bad)
    raw["accounts"][1]["lots"][0]["acquired"] = bad
    raw["recent_trades"] = [
        {"account_id": "A", "symbol": "VTI", "side": "sell", "quantity": 1, "date": bad}
    ]
    paths = {"as_of", "accounts[1].lots[0].acquired", "recent_trades[0].date"}
    assert issues_of(raw) == dict.fromkeys(paths, "must be a date YYYY-MM-DD")
    assert not SCHEMA.is_valid(raw)


def test_wrong_types() -> None:
    raw = make_household(household_id=7)
    raw["accounts"][1]["lots"][4]["quantity"] = "120"
    raw["accounts"][0]["cash"] = True
    raw["accounts"][0]["excluded_symbols"] = "XOM"
    raw["options"] = {"harvest_losses": "yes"}
    raw["securities"]["VTI"]["wash_group"] = 5
    assert issues_of(raw) == {
        "household_id": "must be a non-empty string",
        "accounts[1].lots[4].quantity": "must be a number",
        "accounts[0].cash": "must be a number",
        "accounts[0].excluded_symbols": "must be an array of strings",
        "options.harvest_losses": "must be true or false",
        "securities.VTI.wash_group": "must be a non-empty string",
    }
    assert not SCHEMA.is_valid(raw)


def test_negative_cash_and_cash_needed() -> None:
    raw = make_household()
    raw["accounts"][0]["cash"] = -1.0
    raw["accounts"][1]["cash_needed"] = -500.0
    assert issues_of(raw) == {
        "accounts[0].cash": "must be >= 0",
        "accounts[1].cash_needed": "must be >= 0",
    }
    assert not SCHEMA.is_valid(raw)


def test_many_problems_come_out_together() -> None:
    raw = make_household(
        mode="yolo", as_of="2026-11-31", target={"us_equity": 0.7, "fixed_income": 0.4}
    )
    raw["accounts"][0]["type"] = "brokerage"
    raw["accounts"][0]["cash"] = -5.0
    raw["accounts"][1]["lots"][4]["quantity"] = -3
    raw["accounts"][1]["lots"][1]["lot_id"] = "B-0"
    raw["accounts"][1]["lots"][2]["acquired"] = "yesterday"
    raw["accounts"].append({"account_id": "B", "type": "tax_exempt"})
    raw["securities"]["VTI"]["price"] = math.nan
    raw["securities"]["BAL"] = {"price": 10.0, "asset_class": "x", "exposures": {"x": 1.0}}
    issues = issues_of(raw)
    assert set(issues) == {
        "mode",
        "as_of",
        "target",
        "accounts[0].type",
        "accounts[0].cash",
        "accounts[1].lots[4].quantity",
        "accounts[1].lots[1].lot_id",
        "accounts[1].lots[2].acquired",
        "accounts[2].account_id",
        "securities.VTI.price",
        "securities.BAL",
    }


# --------------------------------------------------------------------------- never a traceback


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        "household",
        3,
        True,
        {"accounts": "A"},
        {"accounts": [None, 3, "x", []]},
        {"accounts": [{"lots": {"L-1": {}}}]},
        {"accounts": [{"lots": [None, 1, "x"]}]},
        {
            "target": "all equities",
            "bands": [],
            "options": 3,
            "tax": "x",
            "securities": [],
            "recent_trades": {},
            "buy_list": [],
        },
        {"bands": {"overrides": {"cash": 0.02}}},
        {"buy_list": {"us_equity": "VTI"}, "location": {"cash": [1]}},
        {"securities": {"VTI": None, "BND": {"exposures": [1]}}},
    ],
)
def test_malformed_input_is_a_validation_error(raw: Any) -> None:
    issues_of(raw)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths_of(v, (*prefix, i))
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_corruption_of_a_valid_snapshot_fails_cleanly(data: st.DataObject) -> None:
    raw = copy.deepcopy(contract_example())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths_of(raw)[1:]))
        parent = raw
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = data.draw(JSON)
    try:
        parse_household(raw)
    except ValidationError as exc:
        assert exc.issues
        assert all(isinstance(i.path, str) and i.message for i in exc.issues)


# --------------------------------------------------------------------------- the new fields


def test_the_new_fields_default_as_the_contract_says() -> None:
    h = parse_household(make_household())
    o = h.options
    assert o.max_realized_gain_year is None and o.max_turnover is None
    assert o.allow_sells is True
    assert o.defer_short_term_days == 0 and o.target_tax_budget_bps == 0.0
    assert not any(lot.locked for a in h.accounts for lot in a.lots)
    assert (h.realized_this_year.short_term_gain, h.realized_this_year.long_term_gain) == (0, 0)
    # null is "not given" for each of them
    raw = make_household(
        options=dict.fromkeys(
            ("max_realized_gain_year", "allow_sells", "max_turnover", "defer_short_term_days"),
            None,
        ),
        realized_this_year=None,
    )
    assert parse_household(raw) == h


def test_the_new_fields_are_read_and_round_trip() -> None:
    raw = make_household(
        options={
            "max_realized_gain_year": 12_000.0,
            "allow_sells": False,
            "max_turnover": 0.1,
            "defer_short_term_days": 45.0,  # a whole number written as a float is that number
            "target_tax_budget_bps": 5,
        },
        realized_this_year={"short_term_gain": -2500.0, "long_term_gain": 8000},
    )
    raw["accounts"][1]["lots"][2]["locked"] = True
    h = parse_household(raw)
    o = h.options
    assert (o.max_realized_gain_year, o.allow_sells, o.max_turnover) == (12_000.0, False, 0.1)
    assert o.defer_short_term_days == 45 and isinstance(o.defer_short_term_days, int)
    assert o.target_tax_budget_bps == 5.0
    assert [lot.locked for lot in h.accounts[1].lots] == [False, False, True, False, False]
    assert h.realized_this_year.net == 5500.0
    encoded = household_to_json(h)
    SCHEMA.validate(encoded)
    assert encoded["accounts"][1]["lots"][2]["locked"] is True
    assert "locked" not in encoded["accounts"][1]["lots"][0]  # the default is left out
    assert encoded["realized_this_year"] == {"short_term_gain": -2500.0, "long_term_gain": 8000.0}
    assert parse_household(loads(dumps(encoded))) == h


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_realized_gain_year", -1.0, "must be >= 0"),
        ("max_realized_gain_year", "1000", "must be a number"),
        ("allow_sells", 0, "must be true or false"),
        ("max_turnover", 1.5, "must be <= 1"),
        ("max_turnover", -0.01, "must be >= 0"),
        ("defer_short_term_days", -1, "must be >= 0"),
        ("defer_short_term_days", 2.5, "must be a whole number"),
        ("defer_short_term_days", True, "must be a number"),
        ("defer_short_term_days", 10**13, "must be at most 1e12 in absolute value"),
        ("target_tax_budget_bps", 10_000.01, "must be <= 10000"),
        ("target_tax_budget_bps", -1, "must be >= 0"),
    ],
)
def test_the_new_options_are_validated(key: str, value: Any, message: str) -> None:
    raw = make_household(options={key: value})
    assert issues_of(raw) == {f"options.{key}": message}
    assert not SCHEMA.is_valid(raw)


def test_locked_and_realized_this_year_are_validated() -> None:
    raw = make_household(realized_this_year={"short_term_gain": math.inf, "long_term_gain": "x"})
    raw["accounts"][0]["lots"][0]["locked"] = "true"
    assert issues_of(raw) == {
        "accounts[0].lots[0].locked": "must be true or false",
        "realized_this_year.short_term_gain": "must be finite",
        "realized_this_year.long_term_gain": "must be a number",
    }
    assert issues_of(make_household(realized_this_year=[1, 2])) == {
        "realized_this_year": "must be an object"
    }


# --------------------------------------------------------------------------- the contract's ranges

LIMIT = "must be at most 1e12 in absolute value"


def set_at(raw: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = raw
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value


#: (where, a value just inside the range, a value just outside, the message for the outside one)
RANGES: list[tuple[tuple[Any, ...], Any, Any, str]] = [
    (("securities", "VTI", "price"), 1e12, 1.000001e12, LIMIT),
    (("securities", "VTI", "price"), 1e-6, 9.99e-7, "must be >= 1e-6"),
    (("securities", "BND", "price"), 10**12, 2**64, LIMIT),
    (("securities", "BND", "price"), 1e-6, 1e-300, "must be >= 1e-6"),
    (("accounts", 1, "lots", 4, "quantity"), 1e12, 1e300, LIMIT),
    (("accounts", 1, "lots", 4, "quantity"), 1e-12, 0.0, "must be > 0"),
    (("accounts", 1, "lots", 4, "cost_basis"), 1e12, 2**70, LIMIT),
    (("accounts", 0, "cash"), 1e12, 1e308, LIMIT),
    (("accounts", 0, "cash"), 10**12, 2**64, LIMIT),
    (("accounts", 0, "cash"), 0, -1e-9, "must be >= 0"),
    (("accounts", 0, "cash_needed"), 1e12, 10**400, LIMIT),
    (("options", "min_trade_value"), 1e12, 1e13, LIMIT),
    (("options", "harvest_min_loss"), 0.0, -1.0, "must be >= 0"),
    (("options", "max_realized_gain"), 0.0, -100.0, "must be >= 0"),
    (("options", "max_realized_gain"), 1e12, 1e15, LIMIT),
    (("options", "max_realized_gain_year"), 1e12, -(2**64), LIMIT),
    (("options", "max_realized_gain_year"), 0, -0.5, "must be >= 0"),
    (("options", "transaction_cost_bps"), 1000, 10_000, "must be <= 1000"),
    (("options", "target_tax_budget_bps"), 10_000, 10_001, "must be <= 10000"),
    (("options", "max_turnover"), 1, 1.0000001, "must be <= 1"),
    (("bands", "absolute"), 1.0, 1.2, "must be <= 1"),
    (("bands", "relative"), 1.0, 1.5, "must be <= 1"),
    (("bands", "floor"), 0.0, 2.0, "must be <= 1"),
    (("bands", "overrides", "cash", "absolute"), 1.0, 2.0, "must be <= 1"),
    (("bands", "overrides", "cash", "floor"), 0.0, -0.1, "must be >= 0"),
    (("tax", "short_term_rate"), 1.0, 1.01, "must be <= 1"),
    (("tax", "long_term_rate"), 0.0, -0.2, "must be >= 0"),
    (("realized_this_year", "short_term_gain"), -1e12, -1.5e12, LIMIT),
    (("realized_this_year", "long_term_gain"), 1e12, 2**64, LIMIT),
]


@pytest.mark.parametrize(
    ("where", "inside", "outside", "message"),
    RANGES,
    ids=[f"{'.'.join(map(str, w))}={o!r:.12}" for w, _, o, _ in RANGES],
)
def test_each_number_is_held_to_its_range(
    where: tuple[Any, ...], inside: Any, outside: Any, message: str
) -> None:
    raw = make_household(bands={"overrides": {"cash": {}}})
    set_at(raw, where, inside)
    parse_household(raw)
    set_at(raw, where, outside)
    path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in where).lstrip(".")
    assert issues_of(raw) == {path: message}


def test_recent_trades_and_exposures_are_held_to_their_ranges() -> None:
    trade: dict[str, Any] = {"account_id": "A", "symbol": "VTI", "side": "sell"}
    trade.update(date="2026-11-10", quantity=1e12)
    raw = make_household(recent_trades=[{**trade, "realized_gain": -1e12}])
    raw["securities"]["BAL"] = {"price": 1.0, "exposures": {"us_equity": 0.5, "cash": 0.5}}
    parse_household(raw)
    raw["recent_trades"] = [{**trade, "quantity": 2**64, "realized_gain": -1e300}]
    raw["securities"]["BAL"]["exposures"] = {"us_equity": 1.5, "cash": -0.5}
    assert issues_of(raw) == {
        "recent_trades[0].quantity": LIMIT,
        "recent_trades[0].realized_gain": LIMIT,
        "securities.BAL.exposures.us_equity": "must be <= 1",
        "securities.BAL.exposures.cash": "must be >= 0",
    }


def test_a_lot_acquired_after_as_of_is_invalid_and_on_as_of_is_fine() -> None:
    raw = make_household()
    raw["accounts"][1]["lots"][3]["acquired"] = "2026-11-24"
    parse_household(raw)
    raw["accounts"][1]["lots"][3]["acquired"] = "2026-11-25"
    raw["accounts"][0]["lots"][0]["acquired"] = "2027-01-01"
    issues = issues_of(raw)
    assert set(issues) == {"accounts[1].lots[3].acquired", "accounts[0].lots[0].acquired"}
    assert "on or before as_of (2026-11-24)" in issues["accounts[1].lots[3].acquired"]


def test_a_bad_as_of_does_not_also_blame_every_lot() -> None:
    assert set(issues_of(make_household(as_of="1999-02-30"))) == {"as_of"}


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (b'"cash": NaN', "accounts[0].cash"),
        (b'"cash": Infinity', "accounts[0].cash"),
        (b'"cash": -Infinity', "accounts[0].cash"),
        (b'"cash": 1e400', "accounts[0].cash"),
        (b'"cash": 1' + b"0" * 5000, "accounts[0].cash"),
    ],
)
def test_numbers_json_cannot_carry_are_located_by_path(text: bytes, path: str) -> None:
    """orjson refuses NaN, Infinity and overflowing numbers without naming a field; loads finds
    where they are, so the invalid_input answer still says which field is wrong."""
    wire = dumps(make_household()).replace(b'"cash":100.0', text, 1)
    assert text in wire
    with pytest.raises(ValidationError) as info:
        loads(wire)
    (issue,) = info.value.issues
    assert issue.path == path
    assert "must be a finite number of at most 1e12" in issue.message


def test_huge_integers_that_decode_are_rejected_by_range_not_by_a_crash() -> None:
    for big in (2**63, 2**64 - 1, 2**64, 2**70, 10**30):
        wire = dumps(make_household()).replace(b'"cash":100.0', b'"cash":%d' % big, 1)
        assert issues_of(loads(wire)) == {"accounts[0].cash": LIMIT}


# --------------------------------------------------------------------------- one canonical form


def test_maps_are_canonical_whatever_the_key_order() -> None:
    """Contract section 5: the answer does not depend on JSON key order; the records hold every
    map with its keys sorted, so two snapshots that differ only in key order are one household."""
    raw = make_household(
        buy_list={"us_equity": ["VTI", "ITOT"], "fixed_income": ["BND"]},
        location={"us_equity": ["taxable"], "fixed_income": ["tax_deferred", "taxable"]},
        bands={"overrides": {"us_equity": {"absolute": 0.03}, "cash": {"absolute": 0.02}}},
    )
    raw["securities"]["BAL"] = {"price": 5.0, "exposures": {"us_equity": 0.5, "fixed_income": 0.5}}
    raw["accounts"][0]["buy_list"] = {"us_equity": ["ITOT"], "fixed_income": ["MUB"]}
    reordered = json.loads(json.dumps(raw), object_pairs_hook=lambda pairs: dict(pairs[::-1]))
    assert list(reordered["securities"]) != list(raw["securities"])
    a, b = parse_household(raw), parse_household(reordered)
    assert a == b
    for h in (a, b):
        assert list(h.securities) == ["BAL", "BND", "VTI"]
        assert list(h.target) == ["fixed_income", "us_equity"]
        assert list(h.buy_list) == list(h.location) == ["fixed_income", "us_equity"]
        assert list(h.bands.overrides) == ["cash", "us_equity"]
        assert list(h.securities["BAL"].exposures) == ["fixed_income", "us_equity"]
        assert list(h.accounts[0].buy_list) == ["fixed_income", "us_equity"]
        assert h.buy_list["us_equity"] == ("VTI", "ITOT")  # a list's order is a preference: kept
    assert dumps(household_to_json(a)) == dumps(household_to_json(b))


def test_records_built_in_code_are_canonical_too() -> None:
    h = parse_household(make_household())
    built = Household(
        household_id=h.household_id,
        as_of=h.as_of,
        target={"us_equity": 0.6, "fixed_income": 0.4},
        accounts=h.accounts,
        securities={"VTI": h.securities["VTI"], "BND": h.securities["BND"]},
    )
    assert list(built.target) == ["fixed_income", "us_equity"]
    assert list(built.securities) == ["BND", "VTI"]
    assert list(built.with_prices({"VTI": 250.0}).securities) == ["BND", "VTI"]


LOT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([2**63, 10**13, -0.0, 0.0, 1e-9, 1e12, 1e12 + 1, math.nan, math.inf]),
    st.floats(-10.0, 1e13),
    st.sampled_from(["", "L1", "VTI", "2026-11-24", "2026-02-30", "20261124", "2026-11-24x"]),
    st.lists(st.integers(), max_size=1),
)
LOT_KEYS = ("lot_id", "symbol", "quantity", "cost_basis", "acquired", "locked")


@given(
    fields=st.dictionaries(st.sampled_from(LOT_KEYS), LOT_VALUES),
    base=st.booleans(),
)
def test_the_fast_lot_reader_accepts_exactly_what_the_full_one_accepts(
    fields: dict[str, Any], base: bool
) -> None:
    from schemas.household import parse_lot, plain_lot
    from schemas.reader import Reader

    good = {"lot_id": "L1", "symbol": "VTI", "quantity": 3, "cost_basis": 10.5}
    raw = {**(good if base else {}), "acquired": "2026-01-02", **fields}
    full = Reader()
    expected = parse_lot(full, raw, "accounts[0].lots[0]")
    fast = plain_lot(Reader(), raw)
    if full.issues:
        assert fast is None
    else:
        assert fast == expected
        assert fast is not None and type(fast.quantity) is float


def _parsed(decode: Any, text: bytes) -> Household | tuple[Any, ...]:
    """The Household a decoder gives for `text`, or the issues it raises."""
    try:
        return decode(text)  # type: ignore[no-any-return]
    except ValidationError as exc:
        return tuple(exc.issues)


FIELD_VALUES = st.one_of(
    LOT_VALUES,
    st.dictionaries(st.sampled_from(["us_equity", "VTI", ""]), LOT_VALUES, max_size=2),
    st.lists(LOT_VALUES, max_size=2),
)


def _same_as_the_reader(raw: dict[str, Any]) -> None:
    from schemas.typed import decode_household

    text = json.dumps(raw).encode()  # NaN and Infinity as the invalid JSON a sender may write
    expected = _parsed(lambda t: parse_household(loads(t)), text)
    assert _parsed(decode_household, text) == expected
    if isinstance(expected, Household):
        for account in expected.accounts:
            assert all(type(lot.quantity) is float for lot in account.lots)


@settings(max_examples=400, deadline=None)
@given(lot=st.dictionaries(st.sampled_from(LOT_KEYS), LOT_VALUES, max_size=2), base=st.booleans())
@example(lot={"quantity": 0}, base=True)
@example(lot={"quantity": -0.0}, base=True)
@example(lot={"quantity": 1e12 + 1}, base=True)
@example(lot={"cost_basis": 2**63}, base=True)
@example(lot={"cost_basis": -1e-9}, base=True)
@example(lot={"lot_id": ""}, base=True)
@example(lot={"locked": None}, base=True)
@example(lot={"acquired": "2026-02-30"}, base=True)
def test_the_typed_decoder_reads_lots_as_the_reader_does(lot: dict[str, Any], base: bool) -> None:
    """`schemas.typed.decode_household` (msgspec, lots typed) is only a fast path: for any lot
    it returns the Household the Reader returns, or raises the Reader's very issues."""
    raw = make_household()
    lots = raw["accounts"][1]["lots"]
    lots[2] = {**(lots[2] if base else {}), **lot}
    _same_as_the_reader(raw)


@given(
    where=st.sampled_from(["account", "household", "lots", "accounts"]),
    key=st.sampled_from(
        ["cash", "type", "account_id", "buy_list", "as_of", "target", "options", "mode", "x"]
    ),
    value=FIELD_VALUES,
)
def test_the_typed_decoder_reads_the_rest_as_the_reader_does(
    where: str, key: str, value: Any
) -> None:
    """The same for the fields around the lots, and for lots or accounts that are no list."""
    raw = make_household()
    if where == "account":
        raw["accounts"][0][key] = value
    elif where == "household":
        raw[key] = value
    elif where == "lots":
        raw["accounts"][0]["lots"] = value
    else:
        raw["accounts"] = value
    _same_as_the_reader(raw)


def test_the_typed_decoder_reads_the_schemas_fields() -> None:
    """Its structs come from the JSON Schema: a field the schema has is never dropped."""
    from schemas.typed import _DECODER

    schema = load_schema("household")
    top = _DECODER.type
    assert set(top.__struct_fields__) == set(schema["properties"])
