"""A solve depends on its household alone, never on what the process solved before it.

Guards against solver state leaking between households (a reused HiGHS instance once did:
the backtest saw `solver_error` for households that solve cleanly on their own).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from schemas import result_to_json
from solver import solve
from streams.tools.synthetic import make_book, make_universe


def _json(h):  # type: ignore[no-untyped-def]
    out = result_to_json(solve(h))
    out.pop("solve_ms")
    return out


def test_results_do_not_depend_on_the_order_of_solves() -> None:
    rng = np.random.default_rng(11)
    universe = make_universe(60, rng)
    book = make_book(40, universe, rng, n_lots=40, drifted_share=0.7)
    book += [replace(h, mode="guardrail") for h in book[:10]]
    forward = [_json(h) for h in book]
    backward = [_json(h) for h in reversed(book)][::-1]
    assert forward == backward
    assert all(r["status"] != "solver_error" for r in forward)


def test_a_backtest_book_never_sees_solver_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The sequence of solves a real run makes (the history that exposed the leak)."""
    import json

    from streams.cli import main

    out = tmp_path / "bt"
    argv = ["backtest", "--households", "15", "--years", "3", "--seed", "7"]
    assert main([*argv, "--out", str(out), "--jobs", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    strategies = summary.get("strategies", summary)
    errors = {name: s.get("statuses", {}).get("solver_error", 0) for name, s in strategies.items()}
    assert errors == dict.fromkeys(strategies, 0)
