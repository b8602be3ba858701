"""The household solve: drift -> model -> lazy integer rules -> rounding -> checked orders.

`solve` is the one entry point the CLI, the stream and the backtest call. It is pure: the only
date it knows is the snapshot's `as_of`; `solve_ms` is measured with a monotonic counter.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from schemas import Household, Order, RebalanceResult

from .check import hard_rule_violations
from .diagnose import infeasible_reasons, unreachable_reasons
from .drift import household_drift, missing_prices, triggers
from .harvest import HARVEST_BY_VALUE, HarvestRule, harvest_messages
from .model import Restrictions, Solution, cash_to_raise, solve_model, swap_exempt_lots
from .problem import HouseholdProblem, build_problem
from .result import build_orders, realized_gains
from .rounding import round_trades
from .tolerances import QUANTITY_EPS
from .trades import apply_orders

MAX_LAZY_ROUNDS = 8
# The exact MIP (binaries for the conflicting groups and classes) explores at most this many
# branch-and-bound nodes; the greedy solution it must beat is always there as the fallback.
MIP_MAX_NODES = 200
MAX_ROUNDING_ROUNDS = 3
# Amounts (weight units) below this count as zero when reading a solution for rule breaks.
ACTIVE = 1e-9
# A swap smaller than this many dollars is solver noise, not a swap.
CONFLICT_USD = 0.01


def rebalance_id(h: Household, sequence: int) -> str:
    return f"{h.household_id}:{h.as_of.isoformat()}:{sequence}"


def solve(
    h: Household,
    *,
    sequence: int = 1,
    time_limit_s: float = 2.0,
    harvest_rule: HarvestRule = HARVEST_BY_VALUE,
) -> RebalanceResult:
    """Trades that bring the household back inside its bands at the least tax and trading."""
    started = time.perf_counter()
    result = _solve(h, rebalance_id(h, sequence), time_limit_s, harvest_rule)
    return replace(result, solve_ms=round((time.perf_counter() - started) * 1000.0, 3))


def _solve(
    h: Household, rid: str, time_limit_s: float, harvest_rule: HarvestRule
) -> RebalanceResult:
    unpriced = missing_prices(h)
    if unpriced:
        return RebalanceResult(
            h.household_id,
            h.as_of,
            rid,
            "infeasible",
            messages=(f"no price for held securities: {', '.join(unpriced)}",),
        )
    report = household_drift(h)
    drift = report.as_dict(report.drift)
    base = RebalanceResult(
        h.household_id, h.as_of, rid, "no_action", drift_before=drift, drift_after=drift
    )
    if report.investable_usd <= 0:
        return replace(
            base,
            status="infeasible",
            messages=("the household's cash_needed exceeds its whole value",),
        )
    if h.mode == "monitor":
        return replace(base, messages=_monitor_messages(report.out_of_band))
    why = triggers(h, report, harvest_rule)
    if not why:
        return replace(base, messages=("inside every band; nothing to do",))
    reasons = infeasible_reasons(h)
    if reasons:
        return replace(base, status="infeasible", messages=reasons)
    p = build_problem(h, report, harvest_rule)
    mode = "harvest" if why == ("harvest",) else h.mode
    solution, restrictions = _solve_with_rules(p, mode, time_limit_s)
    if solution.status == "infeasible":
        return replace(base, status="infeasible", messages=infeasible_reasons(h, model=True))
    if solution.status == "error":
        return replace(base, status="solver_error", messages=(f"HiGHS returned {solution.detail}",))
    result = _finish(p, base, rid, why, solution, restrictions, time_limit_s, mode)
    notes = harvest_messages(h, result.orders, harvest_rule)
    return replace(result, messages=(*result.messages, *notes)) if notes else result


def _monitor_messages(out_of_band: tuple[str, ...]) -> tuple[str, ...]:
    if out_of_band:
        return (f"monitor mode: out of band: {', '.join(out_of_band)}; no trades",)
    return ("monitor mode: inside every band; no trades",)


def _solve_with_rules(
    p: HouseholdProblem, mode: str, time_limit_s: float, restrictions: Restrictions | None = None
) -> tuple[Solution, Restrictions]:
    """Solve the LP; where its solution breaks a wash-sale or swap rule, fix it greedily (forbid
    the smaller side by bounds, re-solve) and then let a time-boxed MIP with one binary per
    conflicting group or class try to do better. Returns the best rule-abiding solution."""
    base = restrictions or Restrictions()
    r = base
    solution = solve_model(p, mode, r, time_limit_s)
    groups: set[str] = set()
    classes: set[int] = set()
    for _ in range(MAX_LAZY_ROUNDS):
        if solution.status not in ("optimal", "time_limit"):
            break  # the greedy choice made the rules unsatisfiable: the MIP decides
        new_groups, new_classes = _conflicts(p, solution)
        if not new_groups and not new_classes:
            break
        groups |= new_groups
        classes |= new_classes
        r = _forbid_smaller_sides(p, solution, r, new_groups, new_classes)
        solution = solve_model(p, mode, r, time_limit_s)
    if not groups and not classes:
        return solution, r
    exact = replace(
        base, wash_groups=base.wash_groups | groups, swap_classes=base.swap_classes | classes
    )
    greedy_ok = solution.status in ("optimal", "time_limit") and not any(_conflicts(p, solution))
    # The polish is bounded by branch-and-bound nodes, not seconds, so that the same input gives
    # the same orders however loaded the machine is; without a greedy answer to fall back on the
    # MIP runs to the time limit.
    mip = solve_model(p, mode, exact, time_limit_s, max_nodes=MIP_MAX_NODES if greedy_ok else None)
    if mip.status == "infeasible" and not greedy_ok:
        return mip, exact
    if mip.status == "error" and not greedy_ok:
        return mip, exact
    mip_ok = mip.status in ("optimal", "time_limit") and not wash_conflicts(p, mip.sells, mip.buys)
    # The MIP may keep a swap the hard rules force (its penalty is below the bands'); the greedy
    # way cannot, so the MIP wins whenever its objective is lower.
    if mip_ok and (not greedy_ok or mip.objective < solution.objective - 1e-12):
        # Keep the MIP's choices as bounds, so that the rounding re-solves stay LPs; a class
        # whose swap the MIP kept stays free.
        kept = swap_conflicts(p, mip.sells, mip.buys)
        return mip, _forbid_smaller_sides(p, mip, base, groups, classes - kept)
    return solution, r


def _conflicts(p: HouseholdProblem, solution: Solution) -> tuple[set[str], set[int]]:
    groups = wash_conflicts(p, solution.sells, solution.buys)
    classes = (
        set()
        if p.household.options.allow_cross_account_swaps
        else swap_conflicts(p, solution.sells, solution.buys)
    )
    return groups, classes


def _forbid_smaller_sides(
    p: HouseholdProblem, s: Solution, r: Restrictions, groups: set[str], classes: set[int]
) -> Restrictions:
    """For each conflict keep the side that moves more money and forbid the other."""
    group_of_lot = np.array(p.lot_group)
    group_of_buy = np.array(p.buy_group)
    taxable_loss = p.lot_is_loss & p.account_taxable[p.lot_account]
    no_buy, no_loss = set(r.no_buy_groups), set(r.no_loss_sale_groups)
    for g in groups:
        sold = float(s.sells[taxable_loss & (group_of_lot == g)].sum())
        bought = float(s.buys[group_of_buy == g].sum())
        (no_buy if sold >= bought else no_loss).add(g)
    no_buy_cls, no_sell_cls = set(r.no_buy_classes), set(r.no_sell_classes)
    for c in classes:
        sold = float(s.sells[p.lot_class == c].sum())
        bought = float(s.buys[p.buy_class == c].sum())
        (no_buy_cls if sold >= bought else no_sell_cls).add(c)
    return replace(
        r,
        no_buy_groups=frozenset(no_buy),
        no_loss_sale_groups=frozenset(no_loss),
        no_buy_classes=frozenset(no_buy_cls),
        no_sell_classes=frozenset(no_sell_cls),
    )


def wash_conflicts(p: HouseholdProblem, sells: np.ndarray, buys: np.ndarray) -> set[str]:
    """Groups sold at a loss in a taxable account and bought somewhere in the same solution."""
    sold = {
        p.lot_group[i]
        for i in np.flatnonzero((sells > ACTIVE) & p.lot_is_loss & p.account_taxable[p.lot_account])
    }
    bought = {p.buy_group[j] for j in np.flatnonzero(buys > ACTIVE)}
    return sold & bought


def swap_conflicts(p: HouseholdProblem, sells: np.ndarray, buys: np.ndarray) -> set[int]:
    """Classes sold (beyond harvests, screens and raised cash) while being bought."""
    exempt = swap_exempt_lots(p)
    shortfall = cash_to_raise(p)
    out: set[int] = set()
    for c in set(p.buy_class[buys > ACTIVE].tolist()):
        counted = (p.lot_class == c) & ~exempt & (sells > ACTIVE)
        per_account = np.bincount(
            p.lot_account[counted], weights=sells[counted], minlength=len(p.accounts)
        )
        if float((per_account - shortfall).clip(min=0).sum()) * p.value_usd > CONFLICT_USD:
            out.add(int(c))
    return out


def _finish(
    p: HouseholdProblem,
    base: RebalanceResult,
    rid: str,
    why: tuple[str, ...],
    solution: Solution,
    restrictions: Restrictions,
    time_limit_s: float,
    mode: str,
) -> RebalanceResult:
    h = p.household
    messages: list[str] = list(p.notes)
    if solution.status == "time_limit":
        messages.append(f"time limit reached: best solution found, MIP gap {solution.mip_gap:.4f}")
    orders: tuple[Order, ...] = ()
    sell_sh = np.zeros(len(p.lot_ids))
    for sells_up in (True, False):
        attempt = _round_and_resolve(p, mode, solution, restrictions, time_limit_s, sells_up)
        if attempt is None:
            continue
        sell_sh, buy_sh = attempt
        orders = build_orders(p, sell_sh, buy_sh, rid, why)
        if not hard_rule_violations(h, orders):
            break
    else:
        return replace(
            base,
            status="solver_error",
            messages=("no rounding of the solution satisfies every hard rule",),
        )
    after = apply_orders(h, orders, p.cost_rate)
    report = household_drift(after)
    traded = sum(o.est_value for o in orders)
    status = "rebalanced" if orders else "no_action"
    if h.mode != "monitor" and report.out_of_band:
        status = "band_unreachable"
        messages.extend(unreachable_reasons(p, report))
    elif not orders:
        messages.append("no trade is worth its cost")
    return replace(
        base,
        status=status,
        orders=orders,
        drift_after=report.as_dict(report.drift),
        realized=realized_gains(p, sell_sh),
        turnover=round(traded / p.value_usd, 6),
        messages=tuple(messages),
    )


def _round_and_resolve(
    p: HouseholdProblem,
    mode: str,
    solution: Solution,
    r: Restrictions,
    time_limit_s: float,
    sells_up: bool,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Round to tradable quantities; re-solve with the rounded amounts fixed so that the free
    (fractional) trades adapt; repeat until rounding changes nothing."""
    current = solution
    for _ in range(MAX_ROUNDING_ROUNDS):
        rounded = round_trades(p, current.sells, current.buys, sells_up)
        if not rounded.changed:
            return rounded.sell_shares, rounded.buy_shares
        fixed = replace(
            r,
            fixed_sells={**r.fixed_sells, **rounded.sell_fixed},
            fixed_buys={**r.fixed_buys, **rounded.buy_fixed},
        )
        current, r = _solve_with_rules(p, mode, time_limit_s, fixed)
        if current.status not in ("optimal", "time_limit"):
            return None
    rounded = round_trades(p, current.sells, current.buys, sells_up)
    if np.any(rounded.sell_shares > p.lot_quantity + QUANTITY_EPS):
        return None
    return rounded.sell_shares, rounded.buy_shares
