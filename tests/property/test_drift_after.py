"""`drift_after` (the solver's drift once its orders are applied, computed without building the
household) is `household_drift(apply_orders(...))` to the last bit: the same weights, the same
classes, so `drift_after` and `band_unreachable` never depend on which of the two ran.

Equality here is exact on purpose: both add the same numbers in the same order.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas import Household, LotRelief, Order, parse_household
from solver import apply_orders, household_drift, solve
from solver.drift import DriftReport
from solver.trades import drift_after

sys.path.insert(0, str(Path(__file__).resolve().parent))

from strategies import REPRODUCIBLE, households

PROFILE = settings(
    REPRODUCIBLE,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def same(a: DriftReport, b: DriftReport) -> bool:
    return (
        a.classes == b.classes
        and a.investable_usd == b.investable_usd
        and all(
            np.array_equal(getattr(a, f), getattr(b, f))
            for f in ("value_usd", "weight", "target", "tolerance")
        )
    )


@PROFILE
@given(households(modes=("rebalance", "guardrail")))
def test_drift_after_the_solvers_orders_is_that_of_the_household_they_leave(
    raw: dict[str, Any],
) -> None:
    h = parse_household(copy.deepcopy(raw))
    result = solve(h)
    assume(result.orders)
    k = h.options.transaction_cost_bps / 1e4
    assert same(
        drift_after(h, result.orders, k), household_drift(apply_orders(h, result.orders, k))
    )


def _orders(h: Household, choice: list[tuple[int, float, bool]]) -> tuple[Order, ...]:
    """Sells of the chosen lots (a share of each, or all of it, or all but dust) and a buy of
    each sold symbol in the next account."""
    lots = [(a, lot) for a in h.accounts for lot in a.lots]
    out: list[Order] = []
    for n, (pick, share, dust) in enumerate(choice):
        a, lot = lots[pick % len(lots)]
        price = float(h.securities[lot.symbol].price or 1.0)
        q = lot.quantity - 1e-12 if dust else lot.quantity * share
        out.append(
            Order(
                f"o:{n}",
                a.account_id,
                lot.symbol,
                "sell",
                q,
                price,
                q * price,
                "rebalance",
                (LotRelief(lot.lot_id, q),),
            )
        )
        other = h.accounts[(h.accounts.index(a) + 1) % len(h.accounts)]
        out.append(
            Order(
                f"o:{n}b",
                other.account_id,
                lot.symbol,
                "buy",
                round(q, 3) + 1,
                price,
                (round(q, 3) + 1) * price,
                "rebalance",
            )
        )
    return tuple(out)


@PROFILE
@given(
    households(),
    st.lists(st.tuples(st.integers(0, 10_000), st.floats(0.0, 1.0), st.booleans()), max_size=6),
    st.sampled_from([0.0, 0.001, 0.01]),
)
def test_drift_after_any_orders_is_that_of_the_household_they_leave(
    raw: dict[str, Any], choice: list[tuple[int, float, bool]], k: float
) -> None:
    h = parse_household(copy.deepcopy(raw))
    assume(any(a.lots for a in h.accounts))
    orders = _orders(h, choice)
    assert same(drift_after(h, orders, k), household_drift(apply_orders(h, orders, k)))
