"""`umh solve FILE|-` and `umh solve --batch FILE.jsonl`: the solver without a broker.

Exit status: 0 rebalanced / no_action / band_unreachable, 1 infeasible / solver_error,
2 invalid_input or a file that is not JSON (contract section 5).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import Any, BinaryIO

import orjson

from schemas import Issue, RebalanceResult, ValidationError, loads, parse_household, result_to_json
from solver import rebalance_id, solve

EXIT_CODES = {
    "rebalanced": 0,
    "no_action": 0,
    "band_unreachable": 0,
    "infeasible": 1,
    "solver_error": 1,
    "invalid_input": 2,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a household/v1 JSON file, or - for standard input")
    parser.add_argument(
        "--batch",
        action="store_true",
        help="FILE is JSON Lines: one snapshot a line in, one result a line out",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="solver time limit per household (default 2)",
    )
    parser.add_argument("--pretty", action="store_true", help="indent the JSON output")


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
        return _internal_error(invalid_result(raw, ()), "validating the input", exc)
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
    try:
        raw = loads(data)
    except ValidationError as exc:
        return invalid_result(None, exc.issues)
    except Exception as exc:  # a decoder bug (loads turns every bad text into a ValidationError)
        return _internal_error(invalid_result(None, ()), "decoding the input", exc)
    return solve_raw(raw, time_limit_s)


def _internal_error(base: RebalanceResult, step: str, exc: Exception) -> RebalanceResult:
    """`solver_error` for an unexpected exception, keeping the household's id when known."""
    return RebalanceResult(
        base.household_id,
        base.as_of,
        base.rebalance_id,
        "solver_error",
        messages=(f"internal error {step}: {type(exc).__name__}: {exc}",),
    )


def answer(data: bytes, time_limit_s: float, option: int = 0) -> tuple[bytes, int]:
    """One input's result line and exit status, whatever the input holds or the solver does."""
    result = solve_bytes(data, time_limit_s)
    try:
        line = orjson.dumps(result_to_json(result), option=option)
    except Exception as exc:  # a result the wire cannot carry (e.g. an integer beyond 64 bits)
        result = _internal_error(result, "encoding the result", exc)
        line = orjson.dumps(result_to_json(result), option=option)
    return line + b"\n", EXIT_CODES[result.status]


def _open(path: str) -> BinaryIO:
    return sys.stdin.buffer if path == "-" else open(path, "rb")


def run(args: argparse.Namespace) -> int:
    option = orjson.OPT_INDENT_2 if args.pretty else 0
    try:
        source = _open(args.file)
    except OSError as exc:
        print(f"umh solve: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    with source:
        if not args.batch:
            line, status = answer(source.read(), args.time_limit, option)
            out.write(line)
            return status
        # A batch answers every line (its status is in the line), so it exits 0 once all are out.
        for raw_line in source:
            if raw_line.strip():
                out.write(answer(raw_line, args.time_limit)[0])
                out.flush()
        return 0
