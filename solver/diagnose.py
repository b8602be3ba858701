"""Why a household cannot be rebalanced: messages a person can act on."""

from __future__ import annotations

import numpy as np

from schemas import CASH, Household

from .costs import cost_rate, proceeds
from .drift import DriftReport
from .problem import HouseholdProblem
from .tolerances import USD_EPS
from .wash import blocked_loss_lots


def infeasible_reasons(h: Household, *, model: bool = False) -> tuple[str, ...]:
    """Accounts whose cash_needed exceeds all they could raise; with `model`, the combined rules."""
    k = cost_rate(h.options)
    blocked_4b = blocked_loss_lots(h)
    out: list[str] = []
    for a in h.accounts:
        if a.cash >= a.cash_needed:
            continue  # proceeds are never negative: such an account always keeps its cash
        sellable, n_blocked = 0.0, 0
        for lot in a.lots:
            sec = h.securities[lot.symbol]
            value = lot.quantity * float(sec.price or 0.0)
            blocked = (
                a.type == "taxable"
                and value < lot.cost_basis
                and (a.account_id, lot.lot_id) in blocked_4b
            )
            sellable += 0.0 if blocked else value
            n_blocked += blocked
        can_raise = a.cash + proceeds(sellable, k)
        if can_raise < a.cash_needed - USD_EPS:
            out.append(_short_of_cash(a.account_id, a.cash, a.cash_needed, can_raise, n_blocked))
    if out or not model:
        return tuple(out)
    cap = h.options.max_realized_gain
    return (
        f"cash_needed cannot be raised within max_realized_gain ({cap}) and the wash-sale rules"
        if cap is not None
        else "the hard rules cannot all hold together",
    )


def _short_of_cash(
    account_id: str, cash: float, needed: float, can_raise: float, n_blocked: int
) -> str:
    """Why one account cannot keep cash >= cash_needed. Overdrawn cash (a buy filled above its
    estimate, a withdrawal beyond the cash: the stream applies fills as the facts they are)
    must be brought back to cash_needed like a withdrawal."""
    if cash < 0:
        text = (
            f"account {account_id}: its cash is overdrawn ({cash:,.2f}); with its sellable "
            f"lots it comes to {can_raise:,.2f}, short of cash_needed {needed:,.2f}"
        )
    else:
        text = (
            f"account {account_id}: cash_needed {needed:,.2f} exceeds what it can raise "
            f"({can_raise:,.2f} in cash and sellable lots)"
        )
    if n_blocked:
        lots = "lot" if n_blocked == 1 else "lots"
        text += f" ({n_blocked} {lots} at a loss may not be sold: wash-sale rule 4b)"
    return text


def unreachable_reasons(p: HouseholdProblem, after: DriftReport) -> list[str]:
    """One sentence per class left out of band, naming the rule that most likely stopped it."""
    out: list[str] = []
    for c in after.out_of_band:
        i = after.classes.index(c)
        drift, tol = after.drift[i], after.tolerance[i]
        head = (
            f"class {c} cannot reach its band: weight {after.weight[i]:.4f} against target "
            f"{after.target[i]:.4f} +/- {tol:.4f}"
        )
        if c == CASH:
            why = (
                "raising it would break min_trade_value, whole shares, max_realized_gain or the "
                "wash-sale rules"
                if drift < 0
                else "too little may be bought with it (buy_list, no_buy_asset_classes, "
                "excluded_symbols, wash-sale blocks, min_trade_value or whole shares)"
            )
        elif drift < 0:
            buyable = bool(np.any(p.buy_exposure[:, i] > 0)) if len(p.buy_symbols) else False
            why = (
                "no account may buy it (buy_list, no_buy_asset_classes, excluded_symbols or a "
                "30-day wash-sale block)"
                if not buyable
                else "not enough cash or sellable holdings in the accounts that may buy it "
                "(cash_needed, max_realized_gain, min_trade_value, whole shares)"
            )
        else:
            held = p.lot_exposure[:, i] > 0
            sellable = held & ~p.lot_sell_blocked
            why = (
                "nothing of it may be sold (wash-sale rule 4b)"
                if held.any() and not sellable.any()
                else "selling enough would break max_realized_gain, min_trade_value or whole "
                "shares, or nothing else may be bought with the proceeds"
            )
        out.append(f"{head}: {why}{_controls(p)}")
    return out


def _controls(p: HouseholdProblem) -> str:
    """The advisor controls that may have stopped the trades, as a clause."""
    o = p.household.options
    named: list[str] = []
    if not o.allow_sells:
        named.append("allow_sells is false")
    if o.max_turnover is not None:
        named.append(f"max_turnover {o.max_turnover}")
    if bool(p.lot_locked.any()):
        named.append("locked lots")
    if o.max_realized_gain_year is not None and p.gain_cap_usd is not None:
        named.append(f"the yearly tax budget leaves {p.gain_cap_usd:,.2f}")
    return f" (controls in force: {', '.join(named)})" if named else ""
