"""Continuous trade amounts -> tradable quantities: whole shares and minimum order sizes.

The LP gives weight units per lot and per buy; orders are per (account, symbol). Whole-share
securities are rounded (sells up, buys to the nearest share, trimmed where cash is short and
topped up where stranded cash is over its band), fractional ones to QUANTITY_DECIMALS, and
orders below `min_trade_value` are dropped unless they sell a whole position. The caller
re-solves with these amounts fixed so the rest of the model adapts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .costs import outlay, proceeds
from .problem import FloatArray, HouseholdProblem
from .tolerances import (
    DUST_USD,
    QUANTITY_DECIMALS,
    QUANTITY_EPS,
    ROUNDING_NOISE_USD,
    SELL_NOISE_USD,
)

_SCALE = 10.0**QUANTITY_DECIMALS


def floor_quantity(q: float) -> float:
    """Round a fractional quantity down to QUANTITY_DECIMALS."""
    return float(np.floor(q * _SCALE + 1e-6) / _SCALE)


@dataclass(frozen=True, slots=True)
class Rounded:
    """Shares per lot sold (L,) and per permitted buy (B,), and which of them are now final."""

    sell_shares: FloatArray
    buy_shares: FloatArray
    sell_fixed: dict[int, float]  # lot -> weight units
    buy_fixed: dict[int, float]  # buy -> weight units
    changed: bool  # whether any amount moved by more than rounding noise


def round_trades(
    p: HouseholdProblem, sells: FloatArray, buys: FloatArray, whole_sells_up: bool = True
) -> Rounded:
    """Round one LP solution; see the module docstring for the rules."""
    V = p.value_usd
    held = p.lot_quantity
    # Sells worth less than SELL_NOISE_USD are solver noise (a phase-2 slack, a tolerance), not
    # a decision: rounding them up to a whole share would trade for nothing. Accounts that must
    # raise cash keep theirs (the cash row asked for them).
    must_raise = (p.account_free_cash < 0)[p.lot_account]
    sells = np.where((sells * V < SELL_NOISE_USD) & ~must_raise, 0.0, sells)
    shares = np.divide(sells * V, p.lot_price, out=np.zeros_like(sells), where=p.lot_price > 0)
    whole = p.lot_whole_shares
    fractional = np.ceil(shares * _SCALE - 1e-6) / _SCALE
    whole_shares = np.ceil(shares - 1e-6) if whole_sells_up else np.floor(shares + 1e-6)
    rounded = np.where(whole, whole_shares, fractional)
    sell_sh = np.where(shares >= held - 1e-6, held, np.minimum(held, rounded))
    sell_sh[sell_sh < QUANTITY_EPS] = 0.0

    buy_raw = buys * V / p.buy_price
    # Whole-share buys go to the nearest share (a floor would strand up to a share's worth of
    # cash in every account); _repair_cash takes back any share the cash cannot pay for.
    buy_sh = np.where(
        p.buy_whole_shares, np.floor(buy_raw + 0.5), np.floor(buy_raw * _SCALE + 1e-6) / _SCALE
    )
    _drop_small_orders(p, sell_sh, buy_sh)
    _repair_cash(p, sell_sh, buy_sh)
    _spend_leftover(p, sell_sh, buy_sh)

    new_sells = sell_sh * p.lot_price / V
    new_buys = buy_sh * p.buy_price / V
    fixed_sells = np.flatnonzero(whole | (sell_sh == 0.0))
    sell_fixed = dict(zip(fixed_sells.tolist(), new_sells[fixed_sells].tolist(), strict=True))
    fixed_buys = np.flatnonzero(p.buy_whole_shares | (buy_sh == 0.0))
    buy_fixed = dict(zip(fixed_buys.tolist(), new_buys[fixed_buys].tolist(), strict=True))
    noise = ROUNDING_NOISE_USD / V
    changed = bool(
        np.any(np.abs(new_sells - sells) > noise) or np.any(np.abs(new_buys - buys) > noise)
    )
    return Rounded(sell_sh, buy_sh, sell_fixed, buy_fixed, changed)


def exact_trades(p: HouseholdProblem, sells: FloatArray, buys: FloatArray) -> Rounded:
    """The exact rung's answer (whole shares as integers, min_trade_value as semi-continuous
    trades: solver/model.py) as quantities, with no heuristic on top: whole-share amounts are
    integers already, up to the solver's tolerance, and are rounded to them; fractional ones go
    to QUANTITY_DECIMALS (sells up, buys down, so that cash only gains); dust is no order."""
    V = p.value_usd
    held = p.lot_quantity
    sells = np.where(sells * V < DUST_USD, 0.0, sells)
    shares = np.divide(sells * V, p.lot_price, out=np.zeros_like(sells), where=p.lot_price > 0)
    rounded = np.where(
        p.lot_whole_shares, np.round(shares), np.ceil(shares * _SCALE - 1e-6) / _SCALE
    )
    sell_sh = np.where(shares >= held - 1e-6, held, np.minimum(held, rounded))
    sell_sh[sell_sh < QUANTITY_EPS] = 0.0
    buys = np.where(buys * V < DUST_USD, 0.0, buys)
    buy_raw = buys * V / p.buy_price
    buy_sh = np.where(
        p.buy_whole_shares, np.round(buy_raw), np.floor(buy_raw * _SCALE + 1e-6) / _SCALE
    )
    return Rounded(sell_sh, buy_sh, {}, {}, False)


def _drop_small_orders(p: HouseholdProblem, sell_sh: FloatArray, buy_sh: FloatArray) -> None:
    """Zero orders below min_trade_value (a whole-position sell is exempt) and dust, in place."""
    minimum = max(p.household.options.min_trade_value, DUST_USD)
    order = p.lot_order  # (L,) index of the (account, symbol) position each lot belongs to
    n = int(order.max()) + 1 if len(order) else 0
    value = np.bincount(order, weights=sell_sh * p.lot_price, minlength=n)
    short = np.bincount(
        order, weights=(np.abs(sell_sh - p.lot_quantity) >= QUANTITY_EPS).astype(float), minlength=n
    )
    drop = (value < minimum) & ~((short == 0) & (value > 0))
    shortfall = p.account_free_cash < 0
    for position in np.flatnonzero(drop & (value > 0)):
        lots = np.flatnonzero(order == position)
        if shortfall[p.lot_account[lots[0]]]:
            # Cash must be raised here: sell up to the minimum (or the whole position) rather
            # than drop a sell the withdrawal depends on.
            _raise_to_minimum(p, sell_sh, lots, minimum)
            drop[position] = False
    sell_sh[drop[order]] = 0.0
    buy_sh[buy_sh * p.buy_price < minimum] = 0.0


def _raise_to_minimum(
    p: HouseholdProblem, sell_sh: FloatArray, lots: NDArray[np.int64], minimum: float
) -> None:
    """Grow one position's sell to `minimum` dollars (whole position at most), filling the lots
    the model chose first; whole-share lots stay whole."""
    need = minimum - float((sell_sh[lots] * p.lot_price[lots]).sum())
    # Never a locked lot, nor a loss lot rule 4b blocks (the model's bounds hold them at zero).
    free = [int(i) for i in lots if not (p.lot_locked[i] or p.lot_sell_blocked[i])]
    for i in sorted(free, key=lambda i: -sell_sh[i]):
        if need <= 0:
            break
        room = p.lot_quantity[i] - sell_sh[i]
        extra = min(room, need / p.lot_price[i])
        extra = (
            min(room, np.ceil(extra - 1e-9))
            if p.lot_whole_shares[i]
            else min(room, np.ceil(extra * _SCALE - 1e-6) / _SCALE)
        )
        sell_sh[i] += extra
        need -= extra * p.lot_price[i]


def _repair_cash(p: HouseholdProblem, sell_sh: FloatArray, buy_sh: FloatArray) -> None:
    """Rule 1 after rounding: where a dropped sell left an account short, buy less there
    (largest buys first, whole shares stay whole, a buy that falls below the minimum goes)."""
    k = p.cost_rate
    minimum = max(p.household.options.min_trade_value, DUST_USD)
    margin = p.cash_margin_usd
    V = p.value_usd
    for a in range(len(p.accounts)):
        lots, buys = p.lot_account == a, np.flatnonzero(p.buy_account == a)
        cash = (
            float(p.account_free_cash[a]) * V
            + proceeds(float((sell_sh[lots] * p.lot_price[lots]).sum()), k)
            - outlay(float((buy_sh[buys] * p.buy_price[buys]).sum()), k)
        )
        if cash >= 0.0:
            continue
        for j in sorted(buys, key=lambda j: -buy_sh[j] * p.buy_price[j]):
            if cash >= 0.0:
                break
            unit = 1.0 if p.buy_whole_shares[j] else 1.0 / _SCALE
            cut = min(
                buy_sh[j], np.ceil((margin - cash) / outlay(float(p.buy_price[j]), k) / unit) * unit
            )
            if (buy_sh[j] - cut) * p.buy_price[j] < minimum:
                cut = buy_sh[j]
            buy_sh[j] -= cut
            cash += outlay(cut * p.buy_price[j], k)


def _class_weights_after(
    p: HouseholdProblem, sell_sh: FloatArray, buy_sh: FloatArray
) -> FloatArray:
    V = p.value_usd
    sells = sell_sh * p.lot_price / V
    buys = buy_sh * p.buy_price / V
    w = p.drift.weight - p.lot_exposure.T @ sells + p.buy_exposure.T @ buys
    w[p.cash_index] += sells.sum() - buys.sum()
    return np.asarray(w, dtype=np.float64)


def _spend_leftover(p: HouseholdProblem, sell_sh: FloatArray, buy_sh: FloatArray) -> None:
    """Whole-share rounding strands cash; while the household's cash is above target and an
    account's leftover pays for one more share of a buy it already makes, without pushing that
    share's classes past their bands, buy it."""
    k = p.cost_rate
    V = p.value_usd
    # Up to each band's edge less the model's default margin (1 bp of V, at most a tenth of the
    # band), so that stranded cash is spent wherever a share still fits.
    band_top = p.drift.target + p.drift.tolerance - np.minimum(p.drift.tolerance * 0.1, 1e-4)
    for a in range(len(p.accounts)):
        buys = np.flatnonzero((p.buy_account == a) & p.buy_whole_shares & (buy_sh > 0))
        if not len(buys):
            continue
        lots = p.lot_account == a
        left = (
            float(p.account_free_cash[a]) * V
            - p.cash_margin_usd
            + proceeds(float((sell_sh[lots] * p.lot_price[lots]).sum()), k)
            - outlay(float((buy_sh[p.buy_account == a] * p.buy_price[p.buy_account == a]).sum()), k)
        )
        for j in sorted(buys, key=lambda j: -buy_sh[j]):
            cost = outlay(float(p.buy_price[j]), k)
            if left < cost:
                continue
            w = _class_weights_after(p, sell_sh, buy_sh)
            step = p.buy_exposure[j] * p.buy_price[j] / V
            if w[p.cash_index] <= p.drift.target[p.cash_index]:
                return
            if np.any((step > 0) & (w + step > band_top)):
                continue
            buy_sh[j] += 1.0
            left -= cost
