"""Orders applied to a household at their estimated prices: the state a rebalance leaves behind.

Used for `drift_after`, for the "a second solve proposes nothing" property, and by the backtest.
"""

from __future__ import annotations

from dataclasses import replace

from schemas import Account, Household, Lot, Order, RecentTrade

from .costs import outlay, proceeds
from .drift import DriftReport, drift_of
from .lots import relieve
from .tolerances import QUANTITY_EPS


def sell_plan(order: Order) -> dict[str, float]:
    """The shares a sell order takes from each lot it names (a lot named twice, summed)."""
    plan: dict[str, float] = {}
    for rel in order.lots:
        plan[rel.lot_id] = plan.get(rel.lot_id, 0.0) + rel.quantity
    return plan


def apply_orders(h: Household, orders: tuple[Order, ...], cost_rate: float) -> Household:
    """Sells relieve their named lots (basis pro rata), buys add a lot named by the order id
    acquired on `as_of`; cash moves by the value less the transaction cost. Trades are recorded
    in `recent_trades` (with realized gain for sells) for the wash-sale rule."""
    by_account: dict[str, list[Order]] = {}
    for o in orders:
        by_account.setdefault(o.account_id, []).append(o)
    trades: list[RecentTrade] = []
    accounts = []
    for account in h.accounts:
        own = by_account.get(account.account_id, [])
        accounts.append(_apply_to_account(h, account, own, cost_rate, trades))
    return replace(h, accounts=tuple(accounts), recent_trades=h.recent_trades + tuple(trades))


def _apply_to_account(
    h: Household, account: Account, orders: list[Order], cost_rate: float, trades: list[RecentTrade]
) -> Account:
    if not orders:
        return account
    cash = account.cash
    lots: tuple[Lot, ...] = account.lots
    new_lots: list[Lot] = []
    for o in orders:
        if o.side == "sell":
            lots, relieved = relieve(lots, sell_plan(o), o.est_price)
            # One record per lot relieved, each with its own gain (as the worker's fills do).
            trades.extend(
                RecentTrade(
                    account.account_id,
                    o.symbol,
                    "sell",
                    r.quantity,
                    h.as_of,
                    r.gain_usd if account.type == "taxable" else 0.0,
                )
                for r in relieved
            )
            cash += proceeds(o.est_value, cost_rate)
        else:
            cash -= outlay(o.est_value, cost_rate)
            new_lots.append(Lot(o.order_id, o.symbol, o.quantity, o.est_value, h.as_of))
            trades.append(RecentTrade(account.account_id, o.symbol, "buy", o.quantity, h.as_of))
    return replace(account, cash=cash, lots=(*lots, *new_lots))


def drift_after(h: Household, orders: tuple[Order, ...], cost_rate: float) -> DriftReport:
    """`household_drift(apply_orders(h, orders, cost_rate))` without building the household:
    the same cash and shares, summed in the same order, so the same report to the last bit
    (tests/property/test_drift_after.py holds the two together)."""
    by_account: dict[str, list[Order]] = {}
    for o in orders:
        by_account.setdefault(o.account_id, []).append(o)
    free: list[float] = []
    held: dict[str, float] = {}
    for account in h.accounts:
        own = by_account.get(account.account_id)
        if not own:
            free.append(account.cash - account.cash_needed)
            for lot in account.lots:
                held[lot.symbol] = held.get(lot.symbol, 0.0) + lot.quantity
            continue
        # Each lot's shares as `relieve` leaves them (None: sold down to dust, gone).
        left: list[float | None] = [lot.quantity for lot in account.lots]
        where: dict[str, list[int]] = {}
        for i, lot in enumerate(account.lots):
            where.setdefault(lot.lot_id, []).append(i)
        cash = account.cash
        bought: list[Order] = []
        for o in own:
            if o.side == "sell":
                for lot_id, take in sell_plan(o).items():
                    for i in where.get(lot_id, ()):
                        q = left[i]
                        if q is None or take <= 0.0:
                            continue
                        rest = q - take
                        left[i] = rest if rest > QUANTITY_EPS else None
                cash += proceeds(o.est_value, cost_rate)
            else:
                cash -= outlay(o.est_value, cost_rate)
                bought.append(o)
        free.append(cash - account.cash_needed)
        for lot, q in zip(account.lots, left, strict=True):
            if q is not None:
                held[lot.symbol] = held.get(lot.symbol, 0.0) + q
        for o in bought:
            held[o.symbol] = held.get(o.symbol, 0.0) + o.quantity
    return drift_of(h, free, held)
