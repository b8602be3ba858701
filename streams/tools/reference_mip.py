"""An exact, slow reference of the hard rules: one MIP of a `household/v1` snapshot, written from
CONTRACT.md sections 1-3 and the independent checker's readings (streams.tools.contract_check).

It imports nothing from the product (only the checker and highspy) and works on the JSON dict, so
that it can judge the solver from the outside:

- `reach_bands(h)`: can every class end within its band under hard rules 1-6? A feasibility MIP
  with every rule as binaries and integers, bands tightened by `BAND_MARGIN` so that "reachable"
  is robust (a band_unreachable answer where this is feasible is a false one).
- `feasible(h)`: do rules 1-6 hold for some set of orders at all (no bands)? (for `infeasible`)
- `min_tax(h)`: the least realized tax (by `tax_measure`) over the answers that obey rules 1-6
  and, when reachable, the bands: a lower bound for any rule-abiding answer, solved to a zero gap.

The model, per account a, security s, lot l (held in a), all in dollars at the security's price p:
  x_l      quantity sold of lot l, 0 <= x_l <= q_l (0 for a locked lot, for a taxable loss lot of a
           group bought within 30 days (rule 4b), and for any lot of a security that is not sold
           anywhere: never); integer for whole-share securities (or the whole lot when q_l is not
           integral: x_l = n_l + frac(q_l) z_l, n_l >= floor(q_l) z_l);
  y_as, w_as binaries: a sells s at all; a sells its whole position of s. Rule 5:
           p sum_l x_l >= mtv (y_as - w_as), sum_l x_l <= Q_as y_as, sum_l x_l >= Q_as w_as
           (w_as only when the position is smaller than min_trade_value);
  b_as, u_as  quantity bought (integer for whole shares) and its binary: p b_as <= M u_as,
           p b_as >= mtv u_as; b_as exists only where rule 3 allows it and rule 4a (recent loss
           sales) does not forbid its group;
  L_g      binary: a taxable lot of wash group g is sold at a loss now: x_l <= q_l L_g for every
           taxable loss lot of g, and b_as <= (M / p) (1 - L_g) for every s of group g (rule 4a);
  cash (rule 1): cash_a + (1-k) p sells - (1+k) p buys >= cash_needed_a;
  gains (rule 6): sum over taxable lots of (p - basis_l / q_l) x_l <= cap;
  allow_sells false: sells of non-excluded symbols in a <= need_a + A_a, none when need_a = 0;
           A_a <= mtv + sum_s (max(mtv, p_s) - mtv) pick_as, pick_as <= y_as, sum_s pick_as <= 1
           (the checker's allowance: the largest of mtv and the price of a symbol sold);
  max_turnover: traded <= cap V + sum_a r_a, r_a <= plain sells_a, r_a <= need_a + A_a;
  bands (rule 7): (t_c - tol_c + m) V' <= value'_c <= (t_c + tol_c - m) V', with V' = V - k traded
           and value'_c the exposure-weighted holdings after the trades (cash in `cash`, less every
           cash_needed), m = BAND_MARGIN for reachability and -WEIGHT_TOL for the tax bound.

A "loss lot" (rules 4a and 4b) is one whose sale realizes a loss net of the selling cost:
(1 - k) p q_l < basis_l. The checker judges a loss before costs; the contract leaves the cost's
treatment open, and the net reading (the one the tax return uses, and umh's) is the stricter, so
an answer of this model obeys rule 4 under both readings.

Beyond the hard rules, one symbol is never both sold and bought in one account (u_as + y_as <= 1):
such a round trip is no answer a person would accept, so "reachable" never rests on one.

Soft rules (swaps, location, defer_short_term_days, target) are not constraints: they never make
the bands unreachable (the contract lets them yield to the hard rules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import highspy
import numpy as np

from streams.tools import contract_check as cc
from streams.tools.contract_check import (
    CASH,
    anniversary_bounds,
    applicable_list,
    blocked_by_recent_buy,
    exposures,
    gain_cap,
    investable,
    is_fractional,
    options,
    price,
    recent_groups,
    shortfall,
    tolerance,
    wash_group,
)

#: Bands tightened by this much (a weight) when asking whether they are reachable.
BAND_MARGIN = 1e-5
#: Slack on the bands for the tax lower bound (the checker's own tolerance on weights).
WEIGHT_TOL = 1e-6
INF = highspy.kHighsInf
#: Work bounds of one reference solve (seconds are only a safety net: small households).
TIME_LIMIT_S = 60.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """`status`: "feasible", "infeasible" or "unknown" (the work bound hit); `objective` the tax
    of the best answer found (min_tax only); `proven` when the optimum is proven (zero gap)."""

    status: str
    objective: float | None = None
    proven: bool = False
    orders: tuple[tuple[str, str, str, float], ...] = ()


class _Model:
    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.cost: list[float] = []
        self.integer: list[bool] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def var(self, lb: float, ub: float, cost: float = 0.0, integer: bool = False) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.cost.append(cost)
        self.integer.append(integer)
        return len(self.lb) - 1

    def binary(self) -> int:
        return self.var(0.0, 1.0, integer=True)

    def row(self, coefs: dict[int, float], lo: float, hi: float) -> None:
        self.rows.append(({j: v for j, v in coefs.items() if v != 0.0}, lo, hi))

    def solve(self, time_limit_s: float) -> tuple[str, np.ndarray | None, float | None, bool]:
        h = highspy._core._Highs()  # the bare core: no banner on stdout
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", time_limit_s)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 1e-3)
        h.setOptionValue("threads", 1)
        h.setOptionValue("mip_feasibility_tolerance", 1e-9)
        h.setOptionValue("primal_feasibility_tolerance", 1e-9)
        lp = highspy.HighsLp()
        n = len(self.lb)
        lp.num_col_ = n
        lp.num_row_ = len(self.rows)
        lp.col_cost_ = np.array(self.cost, dtype=np.float64)
        lp.col_lower_ = np.array(self.lb, dtype=np.float64)
        lp.col_upper_ = np.array(self.ub, dtype=np.float64)
        lp.row_lower_ = np.array([r[1] for r in self.rows], dtype=np.float64)
        lp.row_upper_ = np.array([r[2] for r in self.rows], dtype=np.float64)
        cols: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        for i, (coefs, _lo, _hi) in enumerate(self.rows):
            for j, v in coefs.items():
                cols[j].append((i, v))
        start = [0]
        index: list[int] = []
        value: list[float] = []
        for c in cols:
            for i, v in c:
                index.append(i)
                value.append(v)
            start.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.array(start, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(value, dtype=np.float64)
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
            for i in self.integer
        ]
        h.passModel(lp)
        h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        if status == highspy.HighsModelStatus.kInfeasible:
            return "infeasible", None, None, True
        if status == highspy.HighsModelStatus.kOptimal:
            return (
                "feasible",
                np.array(h.getSolution().col_value),
                info.objective_function_value,
                True,
            )
        if has_solution:
            sol = np.array(h.getSolution().col_value)
            return "feasible", sol, info.objective_function_value, False
        return "unknown", None, None, False


def tax_measure(h: dict[str, Any], *, credit_losses: bool = True) -> dict[tuple[str, str], float]:
    """(account_id, lot_id) -> tax per share sold, the measure both answers are judged by.

    Realized gain times the lot's rate (long-term after the anniversary, section 1) in taxable
    accounts, 0 elsewhere. A loss counts as a credit only when it is a harvest the household asked
    for (`harvest_losses` and the lot's whole unrealized loss at least `harvest_min_loss`); other
    losses count 0, so that neither side is scored for harvesting the household did not ask for.
    With `credit_losses` False no loss counts (the tax paid on gains alone).
    """
    opts = options(h)
    tax = h.get("tax") or {}
    st = float(tax.get("short_term_rate", 0.408))
    lt = float(tax.get("long_term_rate", 0.238))
    as_of = date.fromisoformat(h["as_of"])
    out: dict[tuple[str, str], float] = {}
    for a in h["accounts"]:
        for lot in a.get("lots", []):
            if a["type"] != "taxable":
                out[(a["account_id"], lot["lot_id"])] = 0.0
                continue
            p = price(h, lot["symbol"])
            q = float(lot["quantity"])
            g = p - float(lot["cost_basis"]) / q
            rate = lt if as_of > anniversary_bounds(date.fromisoformat(lot["acquired"]))[1] else st
            if g < 0:
                worth = (
                    credit_losses
                    and bool(opts["harvest_losses"])
                    and -g * q >= float(opts["harvest_min_loss"])
                )
                out[(a["account_id"], lot["lot_id"])] = g * rate if worth else 0.0
            else:
                out[(a["account_id"], lot["lot_id"])] = g * rate
    return out


def answer_tax(h: dict[str, Any], result: dict[str, Any], *, credit_losses: bool = True) -> float:
    """The tax measure of a `rebalance/v1` answer's sells."""
    per_share = tax_measure(h, credit_losses=credit_losses)
    total = 0.0
    for o in result.get("orders") or []:
        if o["side"] == "sell":
            for rel in o.get("lots") or []:
                total += per_share.get((o["account_id"], rel["lot_id"]), 0.0) * float(
                    rel["quantity"]
                )
    return total


def _build(
    h: dict[str, Any], *, bands: bool, margin: float, tax: bool, credit_losses: bool = True
) -> tuple[_Model, list[tuple[str, str, str, int, str]]]:
    opts = options(h)
    k = float(opts["transaction_cost_bps"]) / 1e4
    mtv = float(opts["min_trade_value"] or 0.0)
    v0 = investable(h)
    big = 4.0 * max(sum(abs(float(a.get("cash", 0.0))) for a in h["accounts"]) + v0, 1.0) + 1e3
    loss_recent, _bought = recent_groups(h)
    per_share = tax_measure(h, credit_losses=credit_losses) if tax else {}
    m = _Model()
    classes = sorted(
        set(h["target"]) | {CASH} | {c for sec in h["securities"].values() for c in exposures(sec)}
    )
    value_c: dict[str, dict[int, float]] = {c: {} for c in classes}
    const_c: dict[str, float] = {c: 0.0 for c in classes}
    traded: dict[int, float] = {}
    gain_row: dict[int, float] = {}
    loss_vars: dict[str, list[tuple[int, float]]] = {}
    buy_vars: dict[str, list[tuple[int, float]]] = {}
    decode: list[tuple[str, str, str, int, str]] = []  # (account, symbol, side, var, lot_id)
    turnover_raise: list[int] = []
    for a in h["accounts"]:
        aid = a["account_id"]
        cash_row: dict[int, float] = {}
        const_c[CASH] += float(a.get("cash", 0.0)) - float(a.get("cash_needed", 0.0))
        need = shortfall(a) / (1 - k) if shortfall(a) > 0 else 0.0
        excluded = set(a.get("excluded_symbols") or [])
        plain_sells: dict[int, float] = {}
        # the checker's allowance: max(mtv, price of each plain symbol sold), as a max of binaries
        allowance = m.var(0.0, INF)
        allowance_row: dict[int, float] = {allowance: 1.0}
        by_symbol: dict[str, list[dict[str, Any]]] = {}
        sell_flag: dict[str, int] = {}
        for lot in a.get("lots", []):
            by_symbol.setdefault(lot["symbol"], []).append(lot)
        for sym in sorted(by_symbol):
            lots = by_symbol[sym]
            p = price(h, sym)
            exp = exposures(h["securities"][sym])
            held = sum(float(lot["quantity"]) for lot in lots)
            for c, w in exp.items():
                const_c[c] = const_c.get(c, 0.0) + held * p * w
            whole = not is_fractional(h, sym)
            y = m.binary()
            sell_flag[sym] = y
            sells: dict[int, float] = {}
            for lot in lots:
                q = float(lot["quantity"])
                g = p - float(lot["cost_basis"]) / q
                # rule 4's "loss sale": proceeds net of the selling cost below the basis (a gain
                # smaller than its cost is realized as a loss); the stricter of the two readings,
                # the one umh obeys, so the reference never claims an answer umh may not give
                wash_loss = p * (1.0 - k) * q - float(lot["cost_basis"]) < -1e-4
                blocked = bool(lot.get("locked")) or (
                    a["type"] == "taxable" and wash_loss and blocked_by_recent_buy(h, aid, lot)
                )
                ub = 0.0 if blocked else q
                cost = per_share.get((aid, lot["lot_id"]), 0.0)
                if whole and abs(q - round(q)) > 1e-9 and ub > 0:
                    n_ = m.var(0.0, math.floor(q), integer=True)
                    z = m.binary()
                    x = m.var(0.0, ub, cost)
                    m.row({x: 1.0, n_: -1.0, z: -(q - math.floor(q))}, 0.0, 0.0)
                    m.row({n_: 1.0, z: -math.floor(q)}, 0.0, INF)
                else:
                    x = m.var(0.0, ub, cost, integer=whole)
                decode.append((aid, sym, "sell", x, lot["lot_id"]))
                sells[x] = 1.0
                if a["type"] == "taxable":
                    gain_row[x] = g
                    if wash_loss:
                        loss_vars.setdefault(wash_group(h, sym), []).append((x, q))
            row = {**sells, y: -held}
            m.row(row, -INF, 0.0)
            if mtv > 0:
                w_ = m.binary() if held * p < mtv else None
                row = {x: p for x in sells}
                row[y] = -mtv
                if w_ is not None:
                    row[w_] = mtv
                    m.row({**sells, w_: -held}, 0.0, INF)
                m.row(row, 0.0, INF)
            for x in sells:
                traded[x] = p
                cash_row[x] = (1 - k) * p
                for c, wc in exp.items():
                    value_c[c][x] = value_c[c].get(x, 0.0) - p * wc
                value_c[CASH][x] = value_c[CASH].get(x, 0.0) + (1 - k) * p
                if sym not in excluded:
                    plain_sells[x] = p
            if sym not in excluded and p > mtv:
                pick = m.binary()
                m.row({pick: 1.0, y: -1.0}, -INF, 0.0)
                allowance_row[pick] = -(p - mtv)
        m.row(allowance_row, -INF, mtv)
        m.row({j: 1.0 for j in allowance_row if j != allowance}, -INF, 1.0)
        # buys
        for sym in sorted(h["securities"]):
            sec = h["securities"][sym]
            exp = exposures(sec)
            if not any(sym in applicable_list(h, a, c) for c, w in exp.items() if w > 0):
                continue
            if sym in excluded:
                continue
            if any(exp.get(c, 0.0) > 0 for c in (a.get("no_buy_asset_classes") or [])):
                continue
            group = wash_group(h, sym)
            if group in loss_recent:
                continue
            p = price(h, sym)
            whole = not is_fractional(h, sym)
            b = m.var(0.0, big / p, integer=whole)
            decode.append((aid, sym, "buy", b, ""))
            buy_vars.setdefault(group, []).append((b, big / p))
            traded[b] = p
            cash_row[b] = -(1 + k) * p
            for c, wc in exp.items():
                value_c.setdefault(c, {})
                value_c[c][b] = value_c[c].get(b, 0.0) + p * wc
            value_c[CASH][b] = value_c[CASH].get(b, 0.0) - (1 + k) * p
            u = m.binary()
            m.row({b: p, u: -big}, -INF, 0.0)
            if mtv > 0:
                m.row({b: p, u: -mtv}, 0.0, INF)
            if sym in sell_flag:  # no round trip of one symbol in one account
                m.row({u: 1.0, sell_flag[sym]: 1.0}, -INF, 1.0)
        # rule 1
        m.row(cash_row, float(a.get("cash_needed", 0.0)) - float(a.get("cash", 0.0)), INF)
        # allow_sells and the raised cash of max_turnover
        if opts["allow_sells"] is False:
            if need <= 0:
                for x in plain_sells:
                    m.row({x: 1.0}, 0.0, 0.0)
            else:
                m.row({**plain_sells, allowance: -1.0}, -INF, need)
        if opts["max_turnover"] is not None and need > 0:
            r = m.var(0.0, INF)
            m.row({r: 1.0, **{x: -p for x, p in plain_sells.items()}}, -INF, 0.0)
            m.row({r: 1.0, allowance: -1.0}, -INF, need)
            turnover_raise.append(r)
    # rule 4a within the rebalance
    for group, xs in loss_vars.items():
        if group not in buy_vars:
            continue
        lg = m.binary()
        for x, q in xs:
            m.row({x: 1.0, lg: -q}, -INF, 0.0)
        for b, ub in buy_vars[group]:
            m.row({b: 1.0, lg: ub}, -INF, ub)
    cap = gain_cap(h)
    if cap is not None and gain_row:
        m.row(gain_row, -INF, float(cap))
    if opts["max_turnover"] is not None:
        row = dict(traded)
        for r in turnover_raise:
            row[r] = -1.0
        m.row(
            row, -INF, float(opts["max_turnover"]) * v0 - 1e-3
        )  # a tenth of a cent inside the cap
    if bands:
        # V' = v0 - k traded; value'_c = const_c + value_c
        for c in classes:
            t = float(h["target"].get(c, 0.0))
            tol = tolerance(h, c)
            for sign, bound in ((1.0, t + tol - margin), (-1.0, t - tol + margin)):
                # sign*(value'_c - bound V') <= 0
                row = {j: sign * v for j, v in value_c[c].items()}
                for j, p in traded.items():
                    row[j] = row.get(j, 0.0) + sign * bound * k * p
                rhs = -sign * (const_c.get(c, 0.0) - bound * v0)
                m.row(row, -INF, rhs)
    return m, decode


def _run(
    h: dict[str, Any], *, bands: bool, margin: float, tax: bool, credit_losses: bool = True
) -> Outcome:
    m, decode = _build(h, bands=bands, margin=margin, tax=tax, credit_losses=credit_losses)
    status, sol, obj, proven = m.solve(TIME_LIMIT_S)
    if sol is None:
        return Outcome(status, proven=proven)
    orders = tuple(
        (aid, sym, side if side == "buy" else f"sell {lot}", float(sol[j]))
        for aid, sym, side, j, lot in decode
        if sol[j] > 1e-7
    )
    return Outcome(status, obj, proven, orders)


def reach_bands(h: dict[str, Any], margin: float = BAND_MARGIN) -> Outcome:
    """Whether every band is reachable (tightened by `margin`) under hard rules 1-6."""
    return _run(h, bands=True, margin=margin, tax=False)


def feasible(h: dict[str, Any]) -> Outcome:
    """Whether hard rules 1-6 hold for some set of orders."""
    return _run(h, bands=False, margin=0.0, tax=False)


def min_tax(h: dict[str, Any], *, bands: bool = True, credit_losses: bool = True) -> Outcome:
    """The least `tax_measure` over rule-abiding answers (within the bands when `bands`)."""
    return _run(h, bands=bands, margin=-WEIGHT_TOL, tax=True, credit_losses=credit_losses)


def as_result(h: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The reference's orders as a `rebalance/v1` answer (for the checker): one order per account,
    symbol and side, sells naming their lots; integral quantities snapped to whole numbers."""
    sells: dict[tuple[str, str], list[tuple[str, float]]] = {}
    buys: dict[tuple[str, str], float] = {}
    for aid, sym, side, q in outcome.orders:
        q = float(round(q)) if abs(q - round(q)) < 1e-6 else q
        if q <= 0:
            continue
        if side == "buy":
            buys[(aid, sym)] = q
        else:
            sells.setdefault((aid, sym), []).append((side.split(" ", 1)[1], q))
    orders: list[dict[str, Any]] = []
    for (aid, sym), rels in sorted(sells.items()):
        q = sum(r[1] for r in rels)
        orders.append(_order(h, len(orders), aid, sym, "sell", q, rels))
    for (aid, sym), q in sorted(buys.items()):
        orders.append(_order(h, len(orders), aid, sym, "buy", q, []))
    return {"schema": "rebalance/v1", "status": "rebalanced", "orders": orders}


def _order(
    h: dict[str, Any],
    n: int,
    aid: str,
    sym: str,
    side: str,
    q: float,
    rels: list[tuple[str, float]],
) -> dict[str, Any]:
    p = price(h, sym)
    return {
        "order_id": f"ref:{n}",
        "account_id": aid,
        "symbol": sym,
        "side": side,
        "quantity": q,
        "est_price": p,
        "est_value": q * p,
        "lots": [{"lot_id": lot_id, "quantity": x} for lot_id, x in rels],
        "reason": "rebalance",
    }


def witness_problems(h: dict[str, Any], outcome: Outcome, *, bands: bool = True) -> list[str]:
    """What the independent checker finds wrong with the reference's own answer (hard rules 1-6
    and, with `bands`, a class out of its band after the trades): empty when the witness holds."""
    result = as_result(h, outcome)
    orders = result["orders"]
    out = cc._check_orders(h, orders) + cc._check_cash(h, orders) + cc._check_wash(h, orders)
    out += cc._check_options(h, orders)
    if bands:
        outside = cc.out_of_band(cc.apply_orders(h, result), slack=0.0)
        out += [f"class {c} out of band after the reference's trades" for c in outside]
    return out
