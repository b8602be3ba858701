"""One deadline per solve (issue 13): below the documented size the answer never depends on the
time limit or the machine; above it a tiny limit still gives a rule-abiding answer."""

from __future__ import annotations

import time

import numpy as np

from schemas import result_to_json
from solver import solve
from solver.solve import SMALL_ACCOUNTS
from streams.tools.synthetic import make_book, make_universe


def _json(h, limit):  # type: ignore[no-untyped-def]
    out = result_to_json(solve(h, time_limit_s=limit))
    out.pop("solve_ms")
    return out


def test_a_small_household_does_not_depend_on_the_time_limit() -> None:
    rng = np.random.default_rng(5)
    universe = make_universe(60, rng)
    book = make_book(12, universe, rng, n_lots=60, drifted=True, mode="rebalance")
    for h in book:
        assert _json(h, 1e-6) == _json(h, 30.0)


def test_a_large_household_under_a_tiny_limit_is_never_a_solver_error() -> None:
    rng = np.random.default_rng(9)
    universe = make_universe(80, rng)
    (h,) = make_book(
        1, universe, rng, n_accounts=SMALL_ACCOUNTS + 2, n_lots=600, drifted=True, mode="rebalance"
    )
    started = time.perf_counter()
    r = solve(h, time_limit_s=0.01)
    assert r.status in ("rebalanced", "band_unreachable", "no_action"), r.messages
    # The limit bounds the whole solve (each HiGHS call gets at least MIN_CALL_S).
    assert time.perf_counter() - started < 5.0
