"""Lot relief and realized gains: which lots a sale relieves and what it realizes. Pure.

One implementation for every sale the product accounts for: a fill on the stream
(`streams/worker/state.apply_fill`) and an order applied at its estimated price
(`solver.trades.apply_orders`, used for `drift_after` and the backtest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from schemas import Lot

from .tolerances import QUANTITY_EPS


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
    kept: list[Lot] = []
    relieved: list[Relieved] = []
    for lot in lots:
        take = plan.get(lot.lot_id, 0.0)
        if take <= 0.0:
            kept.append(lot)
            continue
        share = min(1.0, take / lot.quantity)
        basis = lot.cost_basis * share
        relieved.append(Relieved(lot, take, basis, take * price - basis))
        left = lot.quantity - take
        if left > QUANTITY_EPS:
            kept.append(replace(lot, quantity=left, cost_basis=lot.cost_basis - basis))
    return tuple(kept), tuple(relieved)
