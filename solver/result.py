"""Rounded trades -> contract orders: lots relieved, reasons, realized gains, turnover."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from schemas import LotRelief, Order, Realized

from .lots import sale_gains
from .problem import FloatArray, HouseholdProblem
from .tolerances import QUANTITY_DECIMALS, QUANTITY_EPS


def _qty(q: float) -> float:
    """Quantities as the wire shows them: whole numbers as integers (10, not 10.0), else 6 dp."""
    r = round(q)
    return r if abs(q - r) < 1e-9 else round(q, QUANTITY_DECIMALS)


def _lot_qty(sold: float, held: float) -> float:
    return held if abs(sold - held) < QUANTITY_EPS else min(_qty(sold), held)


def build_orders(
    p: HouseholdProblem,
    sell_sh: FloatArray,
    buy_sh: FloatArray,
    rebalance_id: str,
    triggers: tuple[str, ...],
) -> tuple[Order, ...]:
    """Sells first, then buys, each sorted by (account, symbol), so ids are deterministic."""
    shortfall = (-p.account_free_cash).clip(min=0) > 0
    harvest_lots = p.lot_harvestable & p.lot_is_loss
    harvested_classes: set[int] = set()
    drafts: list[tuple[int, str, int, str, float, float, str, tuple[LotRelief, ...]]] = []
    sells: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i in np.flatnonzero(sell_sh > QUANTITY_EPS):
        sells[(int(p.lot_account[i]), p.lot_symbols[i])].append(int(i))
    for (a, symbol), lots in sorted(sells.items(), key=lambda kv: (p.accounts[kv[0][0]], kv[0][1])):
        idx = np.array(lots)
        price = float(p.lot_price[idx[0]])
        if bool(np.all(p.lot_screened[idx])):
            reason = "screen"
        elif bool(np.all(harvest_lots[idx])):
            reason = "tax_loss_harvest"
            harvested_classes.add(int(p.lot_class[idx[0]]))
        elif shortfall[a]:
            reason = "raise_cash"
        else:
            reason = "rebalance"
        # A whole lot is relieved at its exact quantity (custodians report up to 7+ decimals).
        relief = tuple(
            LotRelief(p.lot_ids[i], _lot_qty(float(sell_sh[i]), float(p.lot_quantity[i])))
            for i in lots
        )
        total = round(sum(r.quantity for r in relief), 9)
        drafts.append(
            (
                0,
                p.accounts[a],
                a,
                symbol,
                _qty(total) if abs(total - _qty(total)) < 1e-9 else total,
                price,
                reason,
                relief,
            )
        )
    for j in np.flatnonzero(buy_sh > QUANTITY_EPS):
        a = int(p.buy_account[j])
        if int(p.buy_class[j]) in harvested_classes:
            reason = "tax_loss_harvest"
        elif "idle_cash" in triggers and p.account_free_cash[a] > 0:
            reason = "invest_cash"
        else:
            reason = "rebalance"
        drafts.append(
            (
                1,
                p.accounts[a],
                a,
                p.buy_symbols[j],
                _qty(float(buy_sh[j])),
                float(p.buy_price[j]),
                reason,
                (),
            )
        )
    drafts.sort(key=lambda d: (d[0], d[1], d[3]))
    return tuple(
        Order(
            order_id=f"{rebalance_id}:{n}",
            account_id=account_id,
            symbol=symbol,
            side="sell" if side == 0 else "buy",
            quantity=qty,
            est_price=price,
            est_value=round(qty * price, 6),
            reason=reason,
            lots=relief,
        )
        for n, (side, account_id, _, symbol, qty, price, reason, relief) in enumerate(drafts)
    )


def net_gain_usd(p: HouseholdProblem, sell_sh: FloatArray) -> float:
    """Net realized gain of the taxable lots relieved, unrounded (rule 6's quantity)."""
    basis = np.array([lot.cost_basis for a in p.household.accounts for lot in a.lots])
    gains = sale_gains(sell_sh, p.lot_price, p.lot_quantity, basis)
    return float(np.where(p.account_taxable[p.lot_account] & (sell_sh > 0), gains, 0.0).sum())


def realized_gains(p: HouseholdProblem, sell_sh: FloatArray) -> Realized:
    """Short- and long-term gains of the taxable lots relieved, and the tax at the given rates."""
    h = p.household
    taxable = p.account_taxable[p.lot_account]
    basis = np.array([lot.cost_basis for a in h.accounts for lot in a.lots])
    gains = sale_gains(sell_sh, p.lot_price, p.lot_quantity, basis)
    gains = np.where(taxable & (sell_sh > 0), gains, 0.0)
    long_term = float(gains[p.lot_long_term].sum())
    short_term = float(gains[~p.lot_long_term].sum())
    tax = short_term * h.tax.short_term_rate + long_term * h.tax.long_term_rate
    return Realized(round(short_term, 2), round(long_term, 2), round(tax, 2))
