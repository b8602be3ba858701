"""The household solve: drift -> model -> lazy integer rules -> rounding -> checked orders.

`solve` is the one entry point the CLI, the stream and the backtest call. It is pure: the only
date it knows is the snapshot's `as_of`; `solve_ms` is measured with a monotonic counter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from schemas import Account, Household, Order, RebalanceResult

from .check import hard_rule_violations
from .diagnose import infeasible_reasons, unreachable_reasons
from .drift import DriftReport, household_drift, missing_prices, triggers
from .harvest import HARVEST_BY_VALUE, HarvestRule, harvest_messages
from .lots import relief_key
from .model import (
    BAND_MARGIN,
    MAX_INT,
    Limits,
    Restrictions,
    Solution,
    cash_to_raise,
    raise_room,
    solve_model,
    swap_exempt_lots,
)
from .problem import HouseholdProblem, build_problem
from .result import build_orders, net_gain_usd, realized_gains
from .rounding import exact_trades, round_trades
from .tolerances import BAND_EPS, GAIN_MARGIN_USD, QUANTITY_EPS, TURNOVER_EPS, USD_EPS
from .trades import drift_after

MAX_LAZY_ROUNDS = 8
MAX_LADDER_ROUNDS = 4
# Households up to this size are bounded by work (iterations, nodes), not by seconds.
SMALL_ACCOUNTS = 20
SMALL_LOTS = 5000
SMALL_MAX_ITERATIONS = 500_000
# A HiGHS call of a large household gets at least this long, even past the deadline, so that
# the LP that every fallback starts from always has a chance to finish.
MIN_CALL_S = 0.05
# The band margin of the ladder's wide rung (weight units; the model caps it at BAND_MARGIN of
# each band).
WIDE_MARGIN = 1.0
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
    """Trades that bring the household back inside its bands at the least tax and trading.

    `time_limit_s` bounds the whole solve (every HiGHS call and re-solve shares it). Below
    SMALL_ACCOUNTS accounts and SMALL_LOTS lots the work is bounded by simplex iterations and
    branch-and-bound nodes instead, so that the answer does not depend on machine speed.
    """
    started = time.perf_counter()
    h = canonical(h)
    n_lots = sum(len(a.lots) for a in h.accounts)
    small = len(h.accounts) <= SMALL_ACCOUNTS and n_lots <= SMALL_LOTS
    deadline = Deadline(None if small else started + max(time_limit_s, 0.0))
    rid = rebalance_id(h, sequence)
    result = _solve(h, rid, deadline, harvest_rule)
    if h.mode == "guardrail" and result.status == "rebalanced":
        full = _solve(replace(h, mode="rebalance"), rid, deadline, harvest_rule)
        result = _cheaper_in_band(result, full)
    return replace(result, solve_ms=round((time.perf_counter() - started) * 1000.0, 3))


def _cheaper_in_band(edge: RebalanceResult, full: RebalanceResult) -> RebalanceResult:
    """Guardrail: whole shares, minimum trades and the band-edge margins can make the band-edge
    answer trade more than going to target does (the property tests found households at 0.26
    against 0.20, and 0.75 against 0.70, of their value). A full rebalance that also ends inside
    the bands, trades less and pays no more tax is then the better guardrail answer: the
    guardrail's aim is the least trading that restores the bands. It costs a second solve for
    the guardrail households that trade."""
    if (
        full.status == "rebalanced"
        and full.turnover < edge.turnover - TURNOVER_EPS
        and full.realized.tax_cost <= edge.realized.tax_cost + USD_EPS
    ):
        note = "guardrail: the answer that goes to target trades less; it is used"
        return replace(full, messages=(*full.messages, note))
    return edge


def canonical(h: Household) -> Household:
    """The household in one canonical order (accounts by id, lots by id, securities, target
    classes and recent trades sorted), so that the order of the snapshot's JSON keys and lists
    never changes the answer. Buy lists and `location` keep their order: it is a preference."""
    accounts = tuple(sorted((_lots_sorted(a) for a in h.accounts), key=lambda a: a.account_id))
    trades = tuple(
        sorted(h.recent_trades, key=lambda t: (t.date, t.account_id, t.symbol, t.side, t.quantity))
    )
    if _same(accounts, h.accounts) and _same(trades, h.recent_trades):
        return h  # already canonical (its maps always are: the records keep them sorted)
    return replace(
        h,
        accounts=accounts,
        securities=dict(sorted(h.securities.items())),
        target=dict(sorted(h.target.items())),
        recent_trades=trades,
    )


def _same(new: tuple[object, ...], old: tuple[object, ...]) -> bool:
    return all(x is y for x, y in zip(new, old, strict=True))


def _lots_sorted(a: Account) -> Account:
    ids = [lot.lot_id for lot in a.lots]
    if ids == sorted(ids):
        return a  # a stable sort would keep this order
    return replace(a, lots=tuple(sorted(a.lots, key=lambda lot: lot.lot_id)))


@dataclass(frozen=True, slots=True)
class Deadline:
    """The one deadline of a solve (perf_counter seconds), or None: bounded by work alone."""

    end: float | None

    def limits(self, mip: bool = False) -> Limits:
        nodes = MIP_MAX_NODES if mip else MAX_INT
        if self.end is None:
            return Limits(max_nodes=nodes, max_iterations=SMALL_MAX_ITERATIONS)
        left = max(self.end - time.perf_counter(), MIN_CALL_S)
        return Limits(time_limit_s=left, max_nodes=nodes)

    @property
    def expired(self) -> bool:
        return self.end is not None and time.perf_counter() >= self.end


def _solve(
    h: Household, rid: str, deadline: Deadline, harvest_rule: HarvestRule
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
    solution, restrictions = _solve_with_rules(p, mode, deadline)
    if solution.status == "infeasible":
        return replace(base, status="infeasible", messages=infeasible_reasons(h, model=True))
    result = _finish(p, base, rid, why, solution, restrictions, deadline, mode)
    notes = harvest_messages(h, result.orders, harvest_rule)
    return replace(result, messages=(*result.messages, *notes)) if notes else result


def _monitor_messages(out_of_band: tuple[str, ...]) -> tuple[str, ...]:
    if out_of_band:
        return (f"monitor mode: out of band: {', '.join(out_of_band)}; no trades",)
    return ("monitor mode: inside every band; no trades",)


def _usable(s: Solution) -> bool:
    return s.status in ("optimal", "time_limit")


def _solve_with_rules(
    p: HouseholdProblem, mode: str, deadline: Deadline, restrictions: Restrictions | None = None
) -> tuple[Solution, Restrictions]:
    """Solve the LP; where its solution breaks a wash-sale or swap rule, fix it greedily (forbid
    the smaller side by bounds, re-solve); then the MIP with one binary per conflicting group or
    class, re-run on every new conflict its answer creates until it has none (a fixed point), as
    long as the deadline allows. Returns the best rule-abiding solution of the two."""
    base = restrictions or Restrictions()
    r = base
    # The exact rung's integer shares make every call a MIP: bounded by nodes like the binaries.
    integer = base.integer_shares
    solution = solve_model(p, mode, r, deadline.limits(mip=integer))
    groups: set[str] = set()
    classes: set[int] = set()
    for _ in range(MAX_LAZY_ROUNDS):
        if not _usable(solution):
            break  # the greedy choice made the rules unsatisfiable: the MIP decides
        new_groups, new_classes = _conflicts(p, solution, base)
        if not new_groups and not new_classes:
            break
        groups |= new_groups
        classes |= new_classes
        r = _forbid_smaller_sides(p, solution, r, new_groups, new_classes)
        solution = solve_model(p, mode, r, deadline.limits(mip=integer))
    if not groups and not classes:
        return solution, r
    greedy_ok = _usable(solution) and not any(_conflicts(p, solution, base))
    best: tuple[Solution, Restrictions] | None = (solution, r) if greedy_ok else None
    last = solution
    for _ in range(MAX_LAZY_ROUNDS):
        if deadline.expired and best is not None:
            break
        exact = replace(
            base, wash_groups=base.wash_groups | groups, swap_classes=base.swap_classes | classes
        )
        mip = solve_model(p, mode, exact, deadline.limits(mip=True))
        last = mip
        if not _usable(mip):
            break
        new_groups = wash_conflicts(p, mip.sells, mip.buys) - groups
        new_classes = _conflicts(p, mip, base)[1] - classes
        if new_groups or new_classes:
            groups |= new_groups
            classes |= new_classes
            continue
        if wash_conflicts(p, mip.sells, mip.buys):
            break  # solver noise on a binary's side: keep the greedy answer
        # The MIP may keep a swap the hard rules force (its penalty is below the bands'); the
        # greedy way cannot, so the MIP wins whenever its objective is lower. Its choices become
        # bounds, so that the rounding re-solves stay LPs; a class whose swap it kept stays free.
        if best is None or mip.objective < best[0].objective - 1e-12:
            kept = swap_conflicts(p, mip.sells, mip.buys)
            best = (mip, _forbid_smaller_sides(p, mip, base, groups, classes - kept))
        break
    if best is not None:
        return best
    return last, r


def _conflicts(
    p: HouseholdProblem, solution: Solution, r: Restrictions
) -> tuple[set[str], set[int]]:
    groups = wash_conflicts(p, solution.sells, solution.buys)
    classes = (
        set()
        if p.household.options.allow_cross_account_swaps or r.swaps_free
        else swap_conflicts(p, solution.sells, solution.buys)
    )
    return groups, classes


def _forbid_smaller_sides(
    p: HouseholdProblem, s: Solution, r: Restrictions, groups: set[str], classes: set[int]
) -> Restrictions:
    """For each conflict keep the side that moves more money and forbid the other."""
    group_of_lot = np.array(p.lot_group)
    group_of_buy = np.array(p.buy_group)
    taxable_loss = p.lot_wash_loss & p.account_taxable[p.lot_account]
    no_buy, no_loss = set(r.no_buy_groups), set(r.no_loss_sale_groups)
    for g in groups:
        sold = float(s.sells[taxable_loss & (group_of_lot == g)].sum())
        bought = float(s.buys[group_of_buy == g].sum())
        (no_buy if sold >= bought else no_loss).add(g)
    no_buy_cls, no_sell_cls = set(r.no_buy_classes), set(r.no_sell_classes)
    counted = swap_counted_sells(p, s.sells)
    for c in classes:
        # Harvests, screens and raised cash are no swap: only the rest decides the side.
        sold = float(counted[p.lot_class == c].sum())
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
    """Groups sold at a loss (net of costs) in a taxable account and bought somewhere in the
    same solution."""
    sold = {
        p.lot_group[i]
        for i in np.flatnonzero(
            (sells > ACTIVE) & p.lot_wash_loss & p.account_taxable[p.lot_account]
        )
    }
    bought = {p.buy_group[j] for j in np.flatnonzero(buys > ACTIVE)}
    return sold & bought


def swap_counted_sells(p: HouseholdProblem, sells: np.ndarray) -> np.ndarray:
    """Per lot, the part of its sell that counts toward a swap: none of a harvest or a screen,
    and in an account that must raise cash, only what its sells exceed that need by (pro rata)."""
    counted = np.where(swap_exempt_lots(p), 0.0, sells)
    need = cash_to_raise(p)
    total = np.bincount(p.lot_account, weights=counted, minlength=len(p.accounts)).astype(float)
    keep = np.divide((total - need).clip(min=0.0), total, out=np.ones(len(total)), where=total > 0)
    return np.asarray(counted * keep[p.lot_account], dtype=np.float64)


def swap_conflicts(p: HouseholdProblem, sells: np.ndarray, buys: np.ndarray) -> set[int]:
    """Classes sold (beyond harvests, screens and raised cash) while being bought."""
    counted = swap_counted_sells(p, sells)
    out: set[int] = set()
    for c in set(p.buy_class[buys > ACTIVE].tolist()):
        if float(counted[p.lot_class == c].sum()) * p.value_usd > CONFLICT_USD:
            out.add(int(c))
    return out


INFEASIBLE = "infeasible"


@dataclass(frozen=True, slots=True)
class _Attempt:
    sell_sh: np.ndarray
    orders: tuple[Order, ...]
    problems: tuple[str, ...]
    after: DriftReport  # the household's drift once the orders are applied

    @property
    def out_of_band(self) -> int:
        """Classes left out of band."""
        return len(self.after.out_of_band)


def _attempt(
    p: HouseholdProblem, sell_sh: np.ndarray, buy_sh: np.ndarray, rid: str, why: tuple[str, ...]
) -> _Attempt:
    orders = build_orders(p, sell_sh, buy_sh, rid, why)
    problems = tuple(hard_rule_violations(p.household, orders))
    return _Attempt(sell_sh, orders, problems, drift_after(p.household, orders, p.cost_rate))


def _finish(
    p: HouseholdProblem,
    base: RebalanceResult,
    rid: str,
    why: tuple[str, ...],
    solution: Solution,
    restrictions: Restrictions,
    deadline: Deadline,
    mode: str,
) -> RebalanceResult:
    h = p.household
    messages: list[str] = list(p.notes)
    if solution.status == "time_limit":
        messages.append(f"time limit reached: best solution found, MIP gap {solution.mip_gap:.4f}")
    chosen = _ladder(p, rid, why, solution, restrictions, deadline, mode, messages)
    if chosen is INFEASIBLE:
        return replace(
            base,
            status="infeasible",
            messages=(
                *infeasible_reasons(h, model=True),
                "no whole-share trades satisfy every hard rule (solved exactly)",
            ),
        )
    if not isinstance(chosen, _Attempt):
        return replace(
            base,
            status="solver_error",
            messages=(*messages, "no rule-abiding answer found, not even trading nothing"),
        )
    orders = chosen.orders
    report = chosen.after
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
        realized=realized_gains(p, chosen.sell_sh),
        turnover=round(traded / p.value_usd, 6),
        messages=tuple(messages),
    )


def _ladder(
    p: HouseholdProblem,
    rid: str,
    why: tuple[str, ...],
    solution: Solution,
    restrictions: Restrictions,
    deadline: Deadline,
    mode: str,
    messages: list[str],
) -> _Attempt | str | None:
    """The fallback ladder, from the exact answer down to simpler rule-abiding ones:
    1. round the model's answer (whole-share sells up, then down), re-solving the rest;
    2. where a rounding broke a cap (tax budget, turnover) or left a band just outside, re-solve
       with the cap tightened by the excess (or the band margin widened) and round again;
    3. the exact rung, when no rounding obeys the hard rules, or when the best one leaves a
       band out that the continuous model reaches (whole shares strand cash, a minimum trade
       cannot be met on the preferred security): whole shares as integers and min_trade_value
       as semi-continuous trades (a node-bounded MIP), its answer taken as it is; where only a
       cross-account swap reaches the bands, the swap ban gives way (see _exact_rung); when even
       that is infeasible and nothing else obeys the rules, the household has no answer;
    4. drop the offending orders (buys first) and re-check;
    5. a greedy rule-abiding repair: raise each account's cash_needed alone;
    6. no orders at all.
    The first answer that obeys every hard rule and leaves the fewest classes out of band wins;
    every step below the first says so in `messages`."""
    best: _Attempt | None = None
    r = restrictions
    # Where even the continuous model misses a band, no whole-share answer can reach it: the
    # exact rung is then only worth its work when no rounding obeys the hard rules.
    reachable = _bands_reachable(p, solution, restrictions)
    for round_no in range(MAX_LADDER_ROUNDS):
        tried: list[_Attempt] = []
        if _usable(solution):
            for sells_up in (True, False):
                got = _round_and_resolve(p, mode, solution, r, deadline, sells_up)
                if got is not None:
                    tried.append(_attempt(p, *got, rid, why))
                    if not tried[-1].problems and not tried[-1].out_of_band:
                        break  # rule-abiding and inside every band: nothing better to find
        ok = [a for a in tried if not a.problems]
        for a in ok:
            if best is None or a.out_of_band < best.out_of_band:
                best = a
        if best is not None and best.out_of_band == 0:
            break
        tighter = _tighten(p, r, tried, best)
        if tighter is None or (deadline.expired and best is not None):
            break
        if round_no == 0:
            messages.append("fallback: re-solved with tighter caps or band margins after rounding")
        r = tighter
        solution, r = _solve_with_rules(p, mode, deadline, _reset_lazy(r))
    if best is not None and best.out_of_band and not reachable and not deadline.expired:
        reachable = _reachable_if_swaps_give_way(p, mode, deadline)
    if (best is None or (best.out_of_band and reachable)) and not deadline.expired:
        notes: list[str] = []
        exact = _exact_rung(p, mode, rid, why, deadline, notes)
        if exact is INFEASIBLE:
            if best is None:
                return INFEASIBLE
        elif isinstance(exact, _Attempt) and (best is None or exact.out_of_band < best.out_of_band):
            best = exact
            messages.append(
                "fallback: whole shares solved exactly (MIP) after rounding missed a band or a rule"
            )
            messages.extend(notes)
    if best is not None:
        return best
    for a in tried:
        dropped = _drop_offending(p, a, rid, why)
        if dropped is not None:
            messages.append("fallback: dropped the orders that broke a hard rule after rounding")
            return dropped
    greedy = _attempt(p, raise_cash_sells(p), np.zeros(len(p.buy_symbols)), rid, why)
    if not greedy.problems:
        messages.append("fallback: only raised the cash needed (greedy, rule-abiding)")
        return greedy
    nothing = _attempt(p, np.zeros(len(p.lot_ids)), np.zeros(len(p.buy_symbols)), rid, why)
    if not nothing.problems:
        messages.append("fallback: no rule-abiding trades found; nothing is traded")
        return nothing
    return None


def _reachable_if_swaps_give_way(p: HouseholdProblem, mode: str, deadline: Deadline) -> bool:
    """Whether the continuous model reaches the bands once the swap ban gives way: the exact
    rung may then find the swap the hard rules leave as the only way (see _exact_rung). The
    model under the ban missed them (s21-q-03200: a band reached only by selling a fund whose
    class is bought in another account)."""
    if p.household.options.allow_cross_account_swaps:
        return False
    free, r = _solve_with_rules(p, mode, deadline, Restrictions(swaps_free=True))
    return _usable(free) and _bands_reachable(p, free, r)


def _bands_reachable(p: HouseholdProblem, solution: Solution, r: Restrictions) -> bool:
    """Whether the continuous model may reach every band: it aims inside each band by its
    margin, so an answer inside every band has band slack of at most the margins' sum, and the
    model (which minimises that slack first) finds one at least as small when one exists."""
    if not _usable(solution):
        return True
    margins = np.minimum(p.drift.tolerance * BAND_MARGIN, r.band_margin)
    return float(solution.band_slack.sum()) <= float(margins.sum()) + BAND_EPS


def _exact_rung(
    p: HouseholdProblem,
    mode: str,
    rid: str,
    why: tuple[str, ...],
    deadline: Deadline,
    messages: list[str],
) -> _Attempt | str | None:
    """Step 3: whole shares as integers and min_trade_value as semi-continuous trades, the caps
    untightened (so that "infeasible" proves the household has no whole-share answer: see
    _finish). Its answer is taken as it is (solver/rounding.py: exact_trades); only when that
    breaks a hard rule (solver tolerances) is it rounded and re-solved like the others.
    The rule-abiding answer with the fewest classes out of band, or None."""
    exact = Restrictions(integer_shares=True)
    solution, r = _solve_with_rules(p, mode, deadline, exact)
    if solution.status == "infeasible":
        return INFEASIBLE
    best = _take_exact(p, mode, rid, why, deadline, solution, r)
    if (best is not None and not best.out_of_band) or p.household.options.allow_cross_account_swaps:
        return best
    if deadline.expired:
        return best
    # The swap ban is soft and gives way where the hard rules leave no other way to the bands:
    # the bands as far as the model without the ban reaches them, then the fewest swaps.
    free, _ = _solve_with_rules(p, mode, deadline, replace(exact, swaps_free=True))
    if not (_usable(free) and _bands_reachable(p, free, exact)):
        return best
    capped = replace(exact, max_band_slack=float(free.band_slack.sum()) + BAND_EPS)
    solution, r = _solve_with_rules(p, mode, deadline, capped)
    if not _usable(solution):
        solution, r = free, replace(exact, swaps_free=True)
    swapped = _take_exact(p, mode, rid, why, deadline, solution, r)
    if swapped is None or (best is not None and swapped.out_of_band >= best.out_of_band):
        return best
    names = sorted(p.classes[c] for c in swap_conflicts(p, solution.sells, solution.buys))
    if names:
        messages.append(
            f"cross-account swap of {', '.join(names)}: the hard rules leave no other way to "
            "reach the bands"
        )
    return swapped


def _take_exact(
    p: HouseholdProblem,
    mode: str,
    rid: str,
    why: tuple[str, ...],
    deadline: Deadline,
    solution: Solution,
    r: Restrictions,
) -> _Attempt | None:
    """The exact rung's solution as orders: as it is, or rounded and re-solved when that breaks
    a hard rule; None when no rule-abiding answer comes of it."""
    if not _usable(solution):
        return None
    got = exact_trades(p, solution.sells, solution.buys)
    first = _attempt(p, got.sell_shares, got.buy_shares, rid, why)
    if not first.problems:
        return first
    best: _Attempt | None = None
    for sells_up in (True, False):
        rounded = _round_and_resolve(p, mode, solution, r, deadline, sells_up)
        if rounded is not None:
            a = _attempt(p, *rounded, rid, why)
            if not a.problems and (best is None or a.out_of_band < best.out_of_band):
                best = a
    return best


def _reset_lazy(r: Restrictions) -> Restrictions:
    """The same tightening, with the rounding's fixed amounts and the greedy bounds cleared."""
    return Restrictions(
        gain_shrink_usd=r.gain_shrink_usd,
        turnover_shrink=r.turnover_shrink,
        band_margin=r.band_margin,
        integer_shares=r.integer_shares,
    )


def _tighten(
    p: HouseholdProblem, r: Restrictions, tried: list[_Attempt], best: _Attempt | None
) -> Restrictions | None:
    """The next rung of step 2, or None when nothing is left to tighten."""
    h = p.household
    gain_excess = 0.0
    turnover_excess = 0.0
    for a in tried:
        gains = net_gain_usd(p, a.sell_sh)
        if p.gain_cap_usd is not None:
            gain_excess = max(gain_excess, gains - (p.gain_cap_usd - r.gain_shrink_usd))
        if h.options.max_turnover is not None:
            traded = sum(o.est_value for o in a.orders) / p.value_usd
            cap = h.options.max_turnover + _raised(p, a.sell_sh) - r.turnover_shrink
            turnover_excess = max(turnover_excess, traded - cap)
    if gain_excess > 0 or turnover_excess > 0:
        return replace(
            r,
            gain_shrink_usd=r.gain_shrink_usd + max(gain_excess, 0.0) + GAIN_MARGIN_USD,
            turnover_shrink=r.turnover_shrink + max(turnover_excess, 0.0) + 1e-6,
        )
    if (best is None or best.out_of_band) and r.band_margin < WIDE_MARGIN:
        return replace(r, band_margin=WIDE_MARGIN)
    return None


def _raised(p: HouseholdProblem, sell_sh: np.ndarray) -> float:
    """Raised cash under max_turnover (weight units): per account that must raise cash, what it
    sells, up to its raise room (the self-check's reading)."""
    sold = np.bincount(
        p.lot_account, weights=sell_sh * p.lot_price / p.value_usd, minlength=len(p.accounts)
    )
    return float(np.minimum(sold, raise_room(p)).sum())


def _drop_offending(
    p: HouseholdProblem, a: _Attempt, rid: str, why: tuple[str, ...]
) -> _Attempt | None:
    """Step 3: drop the buys, then the sells, that the self-check names, until it passes."""
    orders = list(a.orders)
    for _ in range(len(orders)):
        problems = hard_rule_violations(p.household, tuple(orders))
        if not problems:
            kept = tuple(orders)
            sold = _sold_shares(p, kept)
            return _Attempt(sold, kept, (), drift_after(p.household, kept, p.cost_rate))
        named = {
            o.order_id for o in orders if any(pr.startswith(o.order_id + ":") for pr in problems)
        }
        victims = (
            [o for o in orders if o.order_id in named and o.side == "buy"]
            or [o for o in orders if o.order_id in named]
            or [o for o in orders if o.side == "buy"][-1:]
        )
        if not victims:
            return None
        orders = [o for o in orders if o not in victims]
    return None


def _sold_shares(p: HouseholdProblem, orders: tuple[Order, ...]) -> np.ndarray:
    index = {
        (p.accounts[int(a)], lot): i
        for i, (a, lot) in enumerate(zip(p.lot_account, p.lot_ids, strict=True))
    }
    out = np.zeros(len(p.lot_ids))
    for o in orders:
        for rel in o.lots:
            out[index[(o.account_id, rel.lot_id)]] += rel.quantity
    return out


def raise_cash_sells(p: HouseholdProblem) -> np.ndarray:
    """Step 4: per account that must raise cash, sell its sellable lots (screened first, then
    losses, then the highest basis) until the shortfall and the margin are covered."""
    need = cash_to_raise(p) * p.value_usd
    sell = np.zeros(len(p.lot_ids))
    sellable = ~(p.lot_sell_blocked | p.lot_locked)
    for a in np.flatnonzero(need > 0):
        lots = [int(i) for i in np.flatnonzero((p.lot_account == a) & sellable)]
        lots.sort(
            key=lambda i: (
                not p.lot_screened[i],
                relief_key(float(p.lot_gain_frac[i]), bool(p.lot_long_term[i]), p.lot_ids[i]),
            )
        )
        left = float(need[a])
        for i in lots:
            if left <= USD_EPS:
                break  # float crumbs are no shortfall (a crumb sold at min_trade_value is)
            price = float(p.lot_price[i])
            q = min(float(p.lot_quantity[i]), left / price)
            q = float(np.ceil(q - 1e-9)) if p.lot_whole_shares[i] else q
            q = min(float(p.lot_quantity[i]), q)
            minimum = p.household.options.min_trade_value
            if q * price < minimum:
                q = min(float(p.lot_quantity[i]), float(np.ceil(minimum / price)))
            sell[i] = q
            left -= q * price
    return sell


def _round_and_resolve(
    p: HouseholdProblem,
    mode: str,
    solution: Solution,
    r: Restrictions,
    deadline: Deadline,
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
        current, r = _solve_with_rules(p, mode, deadline, fixed)
        if not _usable(current):
            return None
    rounded = round_trades(p, current.sells, current.buys, sells_up)
    if np.any(rounded.sell_shares > p.lot_quantity + QUANTITY_EPS):
        return None
    return rounded.sell_shares, rounded.buy_shares
