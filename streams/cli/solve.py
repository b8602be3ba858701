"""`umh solve FILE|-` and `umh solve --batch FILE.jsonl`: the solver without a broker.

Exit status: 0 rebalanced / no_action / band_unreachable, 1 infeasible / solver_error,
2 invalid_input or a file that is not JSON (contract section 5).
"""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

import orjson

from schemas import result_to_json
from solver.documents import internal_error, solve_bytes

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


def answer(data: bytes, time_limit_s: float, option: int = 0) -> tuple[bytes, int]:
    """One input's result line and exit status, whatever the input holds or the solver does."""
    result = solve_bytes(data, time_limit_s)
    try:
        line = orjson.dumps(result_to_json(result), option=option)
    except Exception as exc:  # a result the wire cannot carry (e.g. an integer beyond 64 bits)
        result = internal_error(result, "encoding the result", exc)
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
