"""Solve a `household/v1` document (bytes or decoded JSON) into a `rebalance/v1` result.

The one entry point shared by `umh solve`, the console's what-if and the benches: bad input
is an `invalid_input` result naming every problem, a solver defect a `solver_error` result;
neither ever raises.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from schemas import Household, Issue, RebalanceResult, ValidationError, loads, parse_household
from schemas.typed import decode_household
from solver.solve import rebalance_id, solve


def invalid_result(raw: Any, issues: tuple[Issue, ...]) -> RebalanceResult:
    """The `invalid_input` result, naming the household when its id could be read."""
    obj = raw if isinstance(raw, dict) else {}
    raw_id = obj.get("household_id")
    hid = raw_id if isinstance(raw_id, str) else ""
    as_of = _valid_day(obj.get("as_of"))
    rid = f"{hid}:{as_of}:1" if hid and as_of else ""
    return RebalanceResult(
        household_id=hid,
        as_of=date.fromisoformat(as_of) if as_of else None,
        rebalance_id=rid,
        status="invalid_input",
        errors=issues,
        messages=(f"{len(issues)} problem(s) in the input",),
    )


def _valid_day(value: Any) -> str:
    try:
        return date.fromisoformat(value).isoformat() if isinstance(value, str) else ""
    except ValueError:
        return ""


def solve_raw(raw: Any, time_limit_s: float = 2.0) -> RebalanceResult:
    """Validate one decoded snapshot and solve it; never raises for bad input."""
    try:
        household = parse_household(raw)
    except ValidationError as exc:
        return invalid_result(raw, exc.issues)
    except Exception as exc:  # a validator bug: still an answer, naming the defect
        return internal_error(invalid_result(raw, ()), "validating the input", exc)
    return _solve_valid(household, time_limit_s)


def _solve_valid(household: Household, time_limit_s: float) -> RebalanceResult:
    try:
        return solve(household, time_limit_s=time_limit_s)
    except Exception as exc:  # a solver bug must still answer in the contract's terms
        return RebalanceResult(
            household.household_id,
            household.as_of,
            rebalance_id(household, 1),
            "solver_error",
            messages=(f"internal error: {type(exc).__name__}: {exc}",),
        )


def solve_bytes(data: bytes, time_limit_s: float = 2.0) -> RebalanceResult:
    """`solve_raw` of a text, decoded in one typed pass when it is valid (schemas.typed);
    a text that pass refuses is read again by `loads` and `solve_raw`, whose issues it gets."""
    try:
        household = decode_household(data)
    except Exception:  # invalid (or a fast-path defect): the reference path answers
        return _decode_and_solve(data, time_limit_s)
    return _solve_valid(household, time_limit_s)


def _decode_and_solve(data: bytes, time_limit_s: float) -> RebalanceResult:
    try:
        raw = loads(data)
    except ValidationError as exc:
        return invalid_result(None, exc.issues)
    except Exception as exc:  # a decoder bug (loads turns every bad text into a ValidationError)
        return internal_error(invalid_result(None, ()), "decoding the input", exc)
    return solve_raw(raw, time_limit_s)


def internal_error(base: RebalanceResult, step: str, exc: Exception) -> RebalanceResult:
    """`solver_error` for an unexpected exception, keeping the household's id when known."""
    return RebalanceResult(
        base.household_id,
        base.as_of,
        base.rebalance_id,
        "solver_error",
        messages=(f"internal error {step}: {type(exc).__name__}: {exc}",),
    )
