"""Continuous trade amounts -> tradable quantities: whole shares and minimum order sizes.

The LP gives weight units per lot and per buy; orders are per (account, symbol). Whole-share
securities are rounded (sells up, buys down, so cash never runs short), fractional ones to
QUANTITY_DECIMALS, and orders below `min_trade_value` are dropped unless they sell a whole
position. The caller re-solves with these amounts fixed so the rest of the model adapts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .problem import FloatArray, HouseholdProblem
from .tolerances import DUST_USD, QUANTITY_DECIMALS, QUANTITY_EPS

_SCALE = 10**QUANTITY_DECIMALS


def floor_quantity(q: float) -> float:
    return math.floor(q * _SCALE + 1e-6) / _SCALE


def ceil_quantity(q: float) -> float:
    return math.ceil(q * _SCALE - 1e-6) / _SCALE


@dataclass(frozen=True, slots=True)
class Rounded:
    """Shares per lot sold (L,) and per permitted buy (B,), and which of them are now final."""

    sell_shares: FloatArray
    buy_shares: FloatArray
    sell_fixed: dict[int, float]  # lot -> weight units
    buy_fixed: dict[int, float]  # buy -> weight units
    changed: bool  # whether any amount moved beyond rounding noise


def round_trades(p: HouseholdProblem, sells: FloatArray, buys: FloatArray,
                 whole_sells_up: bool = True) -> Rounded:
    """Round one LP solution; see the module docstring for the rules."""
    V = p.value_usd
    whole = _whole_share_symbols(p)
    sell_sh = np.zeros(len(sells))
    for i, w in enumerate(sells):
        held = float(p.lot_quantity[i])
        shares = float(w) * V / p.lot_price[i] if p.lot_price[i] > 0 else 0.0
        if shares >= held - 1e-6:
            sell_sh[i] = held
        elif p.lot_symbols[i] in whole:
            sell_sh[i] = min(held, math.ceil(shares - 1e-6) if whole_sells_up else
                             math.floor(shares + 1e-6))
        else:
            sell_sh[i] = min(held, ceil_quantity(shares))
        if sell_sh[i] < QUANTITY_EPS:
            sell_sh[i] = 0.0
    buy_sh = np.zeros(len(buys))
    for j, w in enumerate(buys):
        shares = float(w) * V / p.buy_price[j]
        buy_sh[j] = (math.floor(shares + 1e-6) if p.buy_whole_shares[j]
                     else floor_quantity(shares))
    _drop_small_orders(p, sell_sh, buy_sh)
    sell_fixed = {i: sell_sh[i] * p.lot_price[i] / V for i in range(len(sells))
                  if p.lot_symbols[i] in whole or sell_sh[i] == 0.0}
    buy_fixed = {j: buy_sh[j] * p.buy_price[j] / V for j in range(len(buys))
                 if p.buy_whole_shares[j] or buy_sh[j] == 0.0}
    new_sells = sell_sh * p.lot_price / V
    new_buys = buy_sh * p.buy_price / V
    tol = 1e-6 / max(V, 1.0) * 100
    changed = bool(np.any(np.abs(new_sells - sells) > tol) or np.any(np.abs(new_buys - buys) > tol))
    return Rounded(sell_sh, buy_sh, sell_fixed, buy_fixed, changed)


def _whole_share_symbols(p: HouseholdProblem) -> set[str]:
    secs = p.household.securities
    return {s for s in set(p.lot_symbols) if not secs[s].fractional}


def _drop_small_orders(p: HouseholdProblem, sell_sh: FloatArray, buy_sh: FloatArray) -> None:
    """Zero orders below min_trade_value (a whole-position sell is exempt) and dust."""
    minimum = max(p.household.options.min_trade_value, DUST_USD)
    orders: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, sym in enumerate(p.lot_symbols):
        orders[(int(p.lot_account[i]), sym)].append(i)
    for lots in orders.values():
        idx = np.array(lots)
        value = float((sell_sh[idx] * p.lot_price[idx]).sum())
        whole_position = bool(np.all(np.abs(sell_sh[idx] - p.lot_quantity[idx]) < QUANTITY_EPS))
        if value < minimum and not (whole_position and value > 0):
            sell_sh[idx] = 0.0
    for j in range(len(buy_sh)):
        if buy_sh[j] * p.buy_price[j] < minimum:
            buy_sh[j] = 0.0
