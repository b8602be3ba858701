"""The baseline that account-level tools run: each account to the target on its own.

No coordination across accounts, first-in-first-out lot relief (or, for comparison, highest
cost per share first: `lot_order="hifo"`), the first permitted symbol of the buy list, whole
shares where required. Used by `umh bench solve` and the backtest to show what household
management saves; it knows nothing of wash sales across accounts or tax.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from schemas import Account, Household, Lot, LotRelief, Order

from .costs import cost_rate, outlay, proceeds
from .problem import primary_class
from .rounding import floor_quantity
from .tolerances import DUST_USD


def per_account_orders(
    h: Household, rid: str = "per-account", *, lot_order: str = "fifo"
) -> tuple[Order, ...]:
    """Orders that bring every account (that leaves its bands) to the target on its own."""
    orders: list[Order] = []
    for account in h.accounts:
        orders.extend(
            _account_orders(
                h,
                account,
                f"{rid}:{account.account_id}",
                only_if_out_of_band=True,
                lot_order=lot_order,
            )
        )
    return tuple(orders)


def relief_order(lots: Iterable[Lot], lot_order: str) -> list[Lot]:
    """Lots in the order they are relieved: `fifo` oldest first, `hifo` highest cost per share
    first (ties: oldest first)."""
    if lot_order == "fifo":
        return sorted(lots, key=lambda x: (x.acquired, x.lot_id))
    if lot_order == "hifo":
        return sorted(
            lots, key=lambda x: (-x.cost_basis / max(x.quantity, 1e-12), x.acquired, x.lot_id)
        )
    raise ValueError(f"lot_order must be 'fifo' or 'hifo', got {lot_order!r}")


def sell_orders(
    h: Household,
    account: Account,
    by_symbol: dict[str, list[LotRelief]],
    rid: str,
    reason: str,
    start: int = 0,
) -> list[Order]:
    """One sell order per symbol from the lots relieved, numbered from `start` under `rid`."""
    orders: list[Order] = []
    for symbol, relief in by_symbol.items():
        qty = sum(r.quantity for r in relief)
        price = float(h.securities[symbol].price or 0.0)
        orders.append(
            Order(
                f"{rid}:{start + len(orders)}",
                account.account_id,
                symbol,
                "sell",
                qty,
                price,
                round(qty * price, 2),
                reason,
                tuple(relief),
            )
        )
    return orders


def account_weights(h: Household, account: Account) -> tuple[dict[str, float], float]:
    """Class weights of one account (primary class of each holding) and its investable value."""
    values: dict[str, float] = {c: 0.0 for c in h.target}
    values["cash"] = values.get("cash", 0.0) + account.cash - account.cash_needed
    for lot in account.lots:
        sec = h.securities[lot.symbol]
        for cls, share in sec.exposures.items():
            values[cls] = values.get(cls, 0.0) + lot.quantity * float(sec.price or 0.0) * share
    total = sum(values.values())
    return ({c: v / total for c, v in values.items()} if total > 0 else values), total


def _account_orders(
    h: Household, account: Account, rid: str, only_if_out_of_band: bool, lot_order: str = "fifo"
) -> list[Order]:
    weights, total = account_weights(h, account)
    if total <= 0:
        return []
    out_of_band = any(
        abs(weights.get(c, 0.0) - h.target.get(c, 0.0)) > h.bands.tolerance(c, h.target.get(c, 0.0))
        for c in weights
    )
    if only_if_out_of_band and not out_of_band and account.cash >= account.cash_needed:
        return []
    k = cost_rate(h.options)
    orders: list[Order] = []
    cash = account.cash
    # Sell overweight classes, oldest lots first.
    for cls in sorted(weights):
        excess = (weights[cls] - h.target.get(cls, 0.0)) * total
        if cls == "cash" or excess <= h.options.min_trade_value:
            continue
        lots = relief_order(
            (lot for lot in account.lots if primary_class(h.securities[lot.symbol]) == cls),
            lot_order,
        )
        by_symbol: dict[str, list[LotRelief]] = {}
        for lot in lots:
            if excess <= DUST_USD:
                break
            sec = h.securities[lot.symbol]
            price = float(sec.price or 0.0)
            qty = min(lot.quantity, excess / price)
            qty = math.floor(qty) if not sec.fractional else round(qty, 6)
            if qty <= 0:
                continue
            by_symbol.setdefault(lot.symbol, []).append(LotRelief(lot.lot_id, qty))
            excess -= qty * price
        sold = sell_orders(h, account, by_symbol, rid, "rebalance", start=len(orders))
        orders.extend(sold)
        cash += proceeds(sum(o.est_value for o in sold), k)
    # Buy underweight classes with the first permitted symbol.
    lists = {**h.buy_list, **account.buy_list}
    for cls in sorted(weights):
        short = (h.target.get(cls, 0.0) - weights[cls]) * total
        choice = next(
            (
                s
                for s in lists.get(cls, ())
                if s in h.securities
                and h.securities[s].price
                and s not in account.excluded_symbols
                and cls not in account.no_buy_asset_classes
            ),
            None,
        )
        if cls == "cash" or choice is None or short <= h.options.min_trade_value:
            continue
        symbol = choice
        sec = h.securities[symbol]
        price = float(sec.price or 0.0)
        spend = min(short, max(cash - account.cash_needed, 0.0) / outlay(1.0, k))
        qty = math.floor(spend / price) if not sec.fractional else floor_quantity(spend / price)
        if qty <= 0 or qty * price < h.options.min_trade_value:
            continue
        orders.append(
            Order(
                f"{rid}:{len(orders)}",
                account.account_id,
                symbol,
                "buy",
                qty,
                price,
                round(qty * price, 2),
                "rebalance",
            )
        )
        cash -= outlay(qty * price, k)
    return orders
