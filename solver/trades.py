"""Orders applied to a household at their estimated prices: the state a rebalance leaves behind.

Used for `drift_after`, for the "a second solve proposes nothing" property, and by the backtest.
"""

from __future__ import annotations

from dataclasses import replace

from schemas import Account, Household, Lot, Order, RecentTrade

from .costs import outlay, proceeds
from .lots import sale_gain
from .tolerances import QUANTITY_EPS


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
    relieved: dict[str, float] = {}
    cash = account.cash
    new_lots: list[Lot] = []
    lots = {lot.lot_id: lot for lot in account.lots}
    for o in orders:
        if o.side == "sell":
            # One record per lot relieved, each with its own gain (as in the worker's apply_fill).
            for rel in o.lots:
                lot = lots[rel.lot_id]
                relieved[rel.lot_id] = relieved.get(rel.lot_id, 0.0) + rel.quantity
                gain = sale_gain(rel.quantity, o.est_price, lot.quantity, lot.cost_basis)
                trades.append(
                    RecentTrade(
                        account.account_id,
                        o.symbol,
                        "sell",
                        rel.quantity,
                        h.as_of,
                        gain if account.type == "taxable" else 0.0,
                    )
                )
            cash += proceeds(o.est_value, cost_rate)
        else:
            cash -= outlay(o.est_value, cost_rate)
            new_lots.append(Lot(o.order_id, o.symbol, o.quantity, o.est_value, h.as_of))
            trades.append(RecentTrade(account.account_id, o.symbol, "buy", o.quantity, h.as_of))
    if not orders:
        return account
    kept: list[Lot] = []
    for lot in account.lots:
        sold = relieved.get(lot.lot_id, 0.0)
        left = lot.quantity - sold
        if sold == 0.0:
            kept.append(lot)
        elif left > QUANTITY_EPS:
            basis = lot.cost_basis * left / lot.quantity
            kept.append(replace(lot, quantity=left, cost_basis=basis))
    return replace(account, cash=cash, lots=tuple(kept + new_lots))
