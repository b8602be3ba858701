"""`umh solve` as a user runs it (CONTRACT.md section 5): exit codes, stdin, --batch, bad input.

Each test runs the installed console script in a subprocess; stdout must be exactly one JSON
document per household (no banner or log noise).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.tools.contract_check import violations

ROOT = Path(__file__).resolve().parents[2]
UMH = ROOT / ".venv" / "bin" / "umh"
EXAMPLE = ROOT / "examples" / "household.json"
EXIT_CODES = {
    "rebalanced": 0,
    "no_action": 0,
    "band_unreachable": 0,
    "infeasible": 1,
    "solver_error": 1,
    "invalid_input": 2,
}


def umh(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    exe = [str(UMH)] if UMH.exists() else [sys.executable, "-m", "streams.cli"]
    return subprocess.run(
        [*exe, "solve", *args], input=stdin, capture_output=True, timeout=60, cwd=ROOT, check=False
    )


def one_document(out: bytes) -> dict[str, Any]:
    text = out.decode("utf-8")
    assert text.strip(), "nothing on stdout"
    doc = json.loads(text)  # raises on any noise before or after the document
    assert isinstance(doc, dict)
    assert doc["schema"] == "rebalance/v1"
    return doc


def example() -> dict[str, Any]:
    return json.loads(EXAMPLE.read_text())


def infeasible_household() -> dict[str, Any]:
    h = example()
    h["accounts"][2]["cash_needed"] = 1_000_000.0  # the Roth holds far less than that
    return h


def invalid_household() -> dict[str, Any]:
    h = example()
    h["target"]["us_equity"] = 0.9  # weights no longer sum to 1
    del h["accounts"][0]["type"]
    return h


def test_exit_0_and_a_checked_result_for_the_example() -> None:
    p = umh(str(EXAMPLE))
    assert p.returncode == 0, p.stderr
    r = one_document(p.stdout)
    assert r["status"] in ("rebalanced", "no_action", "band_unreachable")
    assert violations(example(), r) == []


def test_stdin_gives_the_same_result_as_the_file() -> None:
    from_file = one_document(umh(str(EXAMPLE)).stdout)
    p = umh("-", stdin=EXAMPLE.read_bytes())
    assert p.returncode == 0, p.stderr
    from_stdin = one_document(p.stdout)
    from_file.pop("solve_ms")
    from_stdin.pop("solve_ms")
    assert from_file == from_stdin


def test_exit_1_for_infeasible_with_no_orders(tmp_path: Path) -> None:
    path = tmp_path / "infeasible.json"
    path.write_text(json.dumps(infeasible_household()))
    p = umh(str(path))
    assert p.returncode == 1, p.stdout
    r = one_document(p.stdout)
    assert r["status"] == "infeasible"
    assert r["orders"] == []
    assert r["messages"]


def test_exit_2_for_invalid_input_with_error_paths(tmp_path: Path) -> None:
    path = tmp_path / "invalid.json"
    path.write_text(json.dumps(invalid_household()))
    p = umh(str(path))
    assert p.returncode == 2
    r = one_document(p.stdout)
    assert r["status"] == "invalid_input"
    assert r["orders"] == []
    paths = {e["path"] for e in r["errors"]}
    assert "target" in paths
    assert any(p.startswith("accounts[0]") for p in paths), paths
    assert all(e["message"] for e in r["errors"])


def test_exit_2_for_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "garbage.json"
    path.write_text("{this is not json")
    p = umh(str(path))
    assert p.returncode == 2
    r = one_document(p.stdout)
    assert r["status"] == "invalid_input"
    assert r["errors"]


def test_exit_2_for_json_that_is_not_an_object() -> None:
    p = umh("-", stdin=b"[1, 2, 3]")
    assert p.returncode == 2
    assert one_document(p.stdout)["status"] == "invalid_input"


def test_exit_2_for_a_missing_file(tmp_path: Path) -> None:
    p = umh(str(tmp_path / "nope.json"))
    assert p.returncode == 2
    assert b"Traceback" not in p.stderr


def test_monitor_mode_exit_0_without_orders(tmp_path: Path) -> None:
    h = example()
    h["mode"] = "monitor"
    p = umh("-", stdin=json.dumps(h).encode())
    assert p.returncode == 0
    r = one_document(p.stdout)
    assert r["orders"] == []
    assert violations(h, r) == []


def test_batch_answers_every_line_in_order(tmp_path: Path) -> None:
    good = example()
    second = copy.deepcopy(good)
    second["household_id"] = "hh-second"
    second["mode"] = "guardrail"
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps(invalid_household()),
        json.dumps(second),
        json.dumps(infeasible_household()),
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n")
    p = umh("--batch", str(path))
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode().splitlines()
    assert len(out) == len(lines)
    results = [json.loads(line) for line in out]
    assert [r["status"] for r in results][1:3] == ["invalid_input", "invalid_input"]
    assert results[0]["household_id"] == "hh-smith"
    assert results[3]["household_id"] == "hh-second"
    assert results[4]["status"] == "infeasible"
    assert violations(good, results[0]) == []
    assert violations(second, results[3]) == []
    # the batch answers what the single-file command answers
    single = one_document(umh("-", stdin=lines[0].encode()).stdout)
    single.pop("solve_ms")
    results[0].pop("solve_ms")
    assert single == results[0]


def test_batch_from_stdin() -> None:
    lines = [json.dumps(example()), json.dumps(example())]
    p = umh("--batch", "-", stdin=("\n".join(lines) + "\n").encode())
    assert p.returncode == 0
    out = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert len(out) == 2
    assert [o["order_id"] for o in out[0]["orders"]] == [o["order_id"] for o in out[1]["orders"]]


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (ROOT / "tests" / "data" / "scenarios").glob("*.json"))
)
def test_saved_scenarios_obey_the_hard_rules_through_the_cli(name: str) -> None:
    path = ROOT / "tests" / "data" / "scenarios" / name
    p = umh(str(path))
    r = one_document(p.stdout)
    assert p.returncode == EXIT_CODES[r["status"]]
    assert violations(json.loads(path.read_text()), r) == []
    assert r["status"] != "solver_error", r["messages"]  # every saved household is valid


# --------------------------------------------------------------------------- out-of-range input

INVALID = ROOT / "tests" / "data" / "invalid"
#: Each file in tests/data/invalid (the bad inputs of issue 13 and the contract's ranges) and the
#: paths its `errors` must name: exactly those, so that one bad field does not hide or add others.
INVALID_PATHS = {
    "price_1e300": {"securities.VTI.price"},
    "price_1e-300": {"securities.VTI.price"},
    "price_below_1e-6": {"securities.BND.price"},
    "price_1e400": {"securities.MUB.price"},
    "price_infinity": {"securities.AGG.price"},
    "quantity_1e300": {"accounts[0].lots[1].quantity"},
    "cash_1e308": {"accounts[1].cash"},
    "cash_int_2pow64": {"accounts[0].cash"},
    "cash_nan": {"accounts[0].cash"},
    "cash_needed_above_1e12": {"accounts[3].cash_needed"},
    "cost_basis_int_2pow70": {"accounts[2].lots[0].cost_basis"},
    "band_parts_above_1": {"bands.relative", "bands.overrides.cash.absolute"},
    "lot_after_as_of": {"accounts[1].lots[1].acquired"},
    "duplicate_lot_ids_across_accounts": {"accounts[2].lots[0].lot_id"},
    "negative_max_realized_gain": {"options.max_realized_gain"},
    "cost_10000_bps": {"options.transaction_cost_bps"},
    "weights_and_rates_outside_0_1": {
        "target.us_equity",
        "target.fixed_income",
        "tax.short_term_rate",
    },
    "new_fields_out_of_range": {
        "options.max_realized_gain_year",
        "options.allow_sells",
        "options.max_turnover",
        "options.defer_short_term_days",
        "options.target_tax_budget_bps",
        "accounts[0].lots[0].locked",
        "realized_this_year.short_term_gain",
        "realized_this_year.long_term_gain",
    },
}


def test_every_invalid_file_has_its_expected_paths() -> None:
    assert {p.stem for p in INVALID.glob("*.json")} == set(INVALID_PATHS)


@pytest.mark.parametrize("name", sorted(INVALID_PATHS))
def test_out_of_range_input_is_invalid_input_naming_the_field(name: str) -> None:
    """Issue 13: 1e300 prices, 2**64 cash and the like ended in a traceback with empty output;
    band parts above 1, lots after as_of, repeated lot ids, a negative tax budget and 10,000 bps
    of costs were accepted. Each is now an `invalid_input` answer (exit 2) naming the field."""
    p = umh(str(INVALID / f"{name}.json"))
    assert b"Traceback" not in p.stderr, p.stderr.decode()
    assert p.returncode == 2
    r = one_document(p.stdout)
    assert r["status"] == "invalid_input"
    assert r["orders"] == []
    assert {e["path"] for e in r["errors"]} == INVALID_PATHS[name]
    assert all(e["message"] for e in r["errors"])


def test_batch_answers_every_line_whatever_it_holds(tmp_path: Path) -> None:
    """Issue 13: in --batch one line's exception ended the batch (5 lines in, 1 out)."""
    bad = [(INVALID / f"{n}.json").read_text() for n in ("price_1e300", "cash_int_2pow64")]
    lines = [
        json.dumps(example()),
        json.dumps(json.loads(bad[0])),
        "not json at all",
        json.dumps(json.loads(bad[1])),
        (INVALID / "cash_nan.json").read_text().replace("\n", " "),
        '"a string"',
        json.dumps(example()),
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n")
    p = umh("--batch", str(path))
    assert p.returncode == 0, p.stderr
    assert b"Traceback" not in p.stderr
    results = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert [r["status"] for r in results][1:6] == ["invalid_input"] * 5
    assert results[1]["household_id"] == "bad-price-1e300"
    assert [e["path"] for e in results[1]["errors"]] == ["securities.VTI.price"]
    assert [e["path"] for e in results[3]["errors"]] == ["accounts[0].cash"]
    assert [e["path"] for e in results[4]["errors"]] == ["accounts[0].cash"]
    assert results[0]["status"] == results[6]["status"] == "rebalanced"
    assert [o["order_id"] for o in results[0]["orders"]] == [
        o["order_id"] for o in results[6]["orders"]
    ]


def test_the_largest_valid_numbers_still_get_a_contract_answer(tmp_path: Path) -> None:
    """Inside the ranges (a lot of 1e12 shares at 1e12, bonds at 1e-6: a buy beyond 64-bit
    integers) the answer is one result document, never a traceback or an encoding failure."""
    h = example()
    h["securities"]["VTI"]["price"] = 1e12
    h["accounts"][0]["lots"][0]["quantity"] = 1e12
    h["accounts"][0]["cash"] = 1e12
    for symbol in ("BND", "AGG", "MUB", "VXUS", "IXUS"):
        h["securities"][symbol]["price"] = 1e-6
    p = umh("-", stdin=json.dumps(h).encode())
    assert b"Traceback" not in p.stderr, p.stderr.decode()
    r = one_document(p.stdout)
    assert p.returncode == EXIT_CODES[r["status"]]
    assert r["status"] != "invalid_input"
    assert r["household_id"] == "hh-smith"


EXTREME = ROOT / "tests" / "data" / "extreme_valid"


@pytest.mark.parametrize("name", sorted(p.name for p in EXTREME.glob("*.json")))
def test_valid_households_at_the_range_edges_get_a_contract_answer(name: str) -> None:
    """Households whose every number is inside the contract's ranges, at its edges (prices of
    1e12 beside 1e-6, a lot of 1e12 shares): validation accepts them and the CLI answers."""
    p = umh(str(EXTREME / name))
    assert b"Traceback" not in p.stderr, p.stderr.decode()
    r = one_document(p.stdout)
    assert r["status"] != "invalid_input", r.get("errors")
    assert p.returncode == EXIT_CODES[r["status"]]


@pytest.mark.parametrize("name", sorted(p.name for p in EXTREME.glob("*.json")))
def test_valid_households_at_the_range_edges_are_never_a_solver_error(name: str) -> None:
    r = one_document(umh(str(EXTREME / name)).stdout)
    assert r["status"] != "solver_error", r["messages"]
