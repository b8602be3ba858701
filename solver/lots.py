"""Lots: the holding period, the gain of a sale, and the order lots are relieved in.

The one home of these rules; the model, the orders, the self-check and the diagnostics read them
from here, and so does every sale the product accounts for: a fill on the stream
(`streams/worker/state.apply_fill`) and an order applied at its estimated price
(`solver.trades.apply_orders`, used for `drift_after` and the backtest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from schemas import Lot

from .tolerances import QUANTITY_EPS

FloatArray = NDArray[np.float64]


def long_term_after(acquired: date) -> date:
    """The anniversary: a sale after it is long-term, on or before it short-term.

    A lot bought on 29 February has its anniversary on 1 March (the conservative reading).
    """
    try:
        return acquired.replace(year=acquired.year + 1)
    except ValueError:
        return date(acquired.year + 1, 3, 1)


def is_long_term(acquired: date, sold: date) -> bool:
    return sold > long_term_after(acquired)


def last_long_term_day(sold: date) -> date | None:
    """The last day a lot may have been acquired for a sale on `sold` to be long-term: a lot
    acquired on or before it is long-term, a later one short-term (the anniversary moves
    forward with the day acquired, so one day splits them). None: no day is that early.

    An anniversary is 365 or 366 days after the day acquired, so the split is 366 or 367 days
    before `sold`."""
    for back in (366, 367):
        try:
            day = sold - timedelta(days=back)
        except OverflowError:
            return None
        if is_long_term(day, sold):
            return day
    return None  # not reached: 367 days back is always long-term


def days_to_long_term(acquired: date, as_of: date) -> int:
    """Days until a sale becomes long-term (0 when it already is)."""
    return max(0, (long_term_after(acquired) - as_of).days + 1)


def sale_gains(
    quantity_sold: FloatArray, price: FloatArray, quantity_held: FloatArray, basis: FloatArray
) -> FloatArray:
    """Realized gain of selling `quantity_sold` of each lot: proceeds less pro-rata basis
    (before transaction costs, as the contract's `realized` reports it)."""
    held = np.maximum(quantity_held, 1e-300)
    return np.asarray(quantity_sold * price - basis * quantity_sold / held, dtype=np.float64)


def sale_gain(quantity_sold: float, price: float, quantity_held: float, basis: float) -> float:
    """`sale_gains` for one lot, in plain floats: the same operations in the same order, so the
    same result to the last bit."""
    held = max(quantity_held, 1e-300)
    return float(quantity_sold * price - basis * quantity_sold / held)


def gain_fractions(market_value: FloatArray, basis: FloatArray) -> FloatArray:
    """Gain per dollar sold, per lot: 1 - basis / market value (negative for a loss; 0 for a
    lot worth nothing). `sale_gain` of x dollars of a lot is x times this."""
    safe = np.where(market_value > 0, market_value, 1.0)
    return np.asarray(np.where(market_value > 0, 1.0 - basis / safe, 0.0), dtype=np.float64)


def relief_key(gain_fraction: float, long_term: bool, lot_id: str) -> tuple[float, bool, str]:
    """The order lots are relieved in when the model does not decide (the greedy raise-cash
    step): losses first, then the highest basis (lowest gain per dollar), long-term before
    short-term at the same gain, then by id. The model itself reaches the same order through
    its tax costs (rate x gain per dollar), so both agree."""
    return (gain_fraction, not long_term, lot_id)


@dataclass(frozen=True, slots=True)
class Relieved:
    """`quantity` shares of `lot` sold at `price`: `basis_usd` relieved, `gain_usd` realized."""

    lot: Lot
    quantity: float
    basis_usd: float
    gain_usd: float


def relief_plan(
    held: Sequence[Lot], quantity: float, named: Iterable[tuple[str, float]] = ()
) -> dict[str, float]:
    """lot_id -> shares to relieve for a sale of `quantity` from `held` (lots of one symbol):
    the `named` (lot_id, shares) first as far as those lots hold them, then highest cost per
    share first (ties by lot_id). The caller checks that `held` covers `quantity`."""
    by_id = {lot.lot_id: lot for lot in held}
    plan: dict[str, float] = {}
    remaining = quantity
    for lot_id, shares in named:
        lot = by_id.get(lot_id)
        if lot is None or remaining <= QUANTITY_EPS:
            continue
        take = min(shares, lot.quantity - plan.get(lot_id, 0.0), remaining)
        if take > 0:
            plan[lot_id] = plan.get(lot_id, 0.0) + take
            remaining -= take
    for lot in sorted(held, key=lambda x: (-x.cost_basis / x.quantity, x.lot_id)):
        if remaining <= QUANTITY_EPS:
            break
        take = min(lot.quantity - plan.get(lot.lot_id, 0.0), remaining)
        if take > 0:
            plan[lot.lot_id] = plan.get(lot.lot_id, 0.0) + take
            remaining -= take
    return plan


def relieve(
    lots: Sequence[Lot], plan: Mapping[str, float], price: float
) -> tuple[tuple[Lot, ...], tuple[Relieved, ...]]:
    """The lots left after selling `plan` (lot_id -> shares) at `price` (basis leaves pro rata;
    a lot sold down to dust is gone), and what each relieved lot realized, in lot order."""
    kept = list(lots)
    relieved: list[Relieved] = []
    gone: list[int] = []
    for i in [i for i, lot in enumerate(lots) if lot.lot_id in plan]:  # in lot order
        lot = lots[i]
        take = plan[lot.lot_id]
        if take <= 0.0:
            continue
        share = min(1.0, take / lot.quantity)
        basis = lot.cost_basis * share
        relieved.append(
            Relieved(lot, take, basis, sale_gain(take, price, lot.quantity, lot.cost_basis))
        )
        left = lot.quantity - take
        if left > QUANTITY_EPS:
            kept[i] = replace(lot, quantity=left, cost_basis=lot.cost_basis - basis)
        else:
            gone.append(i)
    for i in reversed(gone):
        del kept[i]
    return tuple(kept), tuple(relieved)
