"""An independent checker of `rebalance/v1` results against CONTRACT.md sections 1-3.

Written from the contract text only: it imports nothing from the product and works on the JSON
dicts (the `household/v1` input and the `rebalance/v1` output). `violations(household, result)`
returns one sentence per broken rule; an empty list means the result obeys every hard rule the
checker can judge from the outside.

Readings assumed where the contract leaves room (see the test report):
- wash-sale window: a trade dated d is "within 30 days" of as_of when 0 <= as_of - d <= 30 days;
- a taxable `recent_trades` sell counts as a loss sale only when its `realized_gain` is < 0
  (unknown gains are not held against the solver here);
- a "loss sale" is judged per lot relieved (price * qty below the lot's pro-rata basis);
- realized gains are price-based (transaction costs are not deducted from them);
- a security is buyable in an account when it is on the account's applicable list for a class
  it is exposed to (an `asset_class` security: its class);
- a lot acquired on 29 February may be long- or short-term on 1 March of the next year.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

CASH = "cash"
USD_TOL = 1e-4
QTY_TOL = 1e-9
WEIGHT_TOL = 1e-6
WASH_DAYS = 30
# Raising cash_needed may overshoot the need by cents of margin and share rounding (reading).
RAISE_SLACK_USD = 1.0
REASONS = ("rebalance", "tax_loss_harvest", "raise_cash", "invest_cash", "screen")
STATUSES = (
    "rebalanced",
    "no_action",
    "band_unreachable",
    "infeasible",
    "invalid_input",
    "solver_error",
)
NO_ORDER_STATUSES = ("infeasible", "invalid_input", "solver_error")


# --------------------------------------------------------------------------- household reading


def _day(s: str) -> date:
    return date.fromisoformat(s)


def exposures(sec: dict[str, Any]) -> dict[str, float]:
    if sec.get("asset_class") is not None:
        return {sec["asset_class"]: 1.0}
    return {c: float(w) for c, w in (sec.get("exposures") or {}).items()}


def wash_group(household: dict[str, Any], symbol: str) -> str:
    sec = household.get("securities", {}).get(symbol) or {}
    return sec.get("wash_group") or symbol


def is_fractional(household: dict[str, Any], symbol: str) -> bool:
    sec = household.get("securities", {}).get(symbol) or {}
    return bool(sec.get("fractional", True))


def price(household: dict[str, Any], symbol: str) -> float:
    return float(household["securities"][symbol]["price"])


def options(household: dict[str, Any]) -> dict[str, Any]:
    defaults = {
        "min_trade_value": 0.0,
        "allow_cross_account_swaps": False,
        "harvest_losses": False,
        "harvest_min_loss": 500.0,
        "max_realized_gain": None,
        "max_realized_gain_year": None,
        "allow_sells": True,
        "max_turnover": None,
        "defer_short_term_days": 0,
        "target_tax_budget_bps": 0.0,
        "transaction_cost_bps": 0.0,
    }
    return {**defaults, **{k: v for k, v in (household.get("options") or {}).items()}}


def gain_cap(household: dict[str, Any]) -> float | None:
    """Rule 6: the net realized gain this rebalance may add: at most max_realized_gain, and at
    most max_realized_gain_year less realized_this_year (both kinds). Reading: once the year's
    gains exceed the yearly cap, the rebalance may add no net gain (0, not a negative cap)."""
    opts = options(household)
    caps = []
    if opts["max_realized_gain"] is not None:
        caps.append(float(opts["max_realized_gain"]))
    if opts["max_realized_gain_year"] is not None:
        done = household.get("realized_this_year") or {}
        left = (
            float(opts["max_realized_gain_year"])
            - float(done.get("short_term_gain", 0.0))
            - float(done.get("long_term_gain", 0.0))
        )
        caps.append(max(left, 0.0))
    return min(caps) if caps else None


def shortfall(account: dict[str, Any]) -> float:
    return max(float(account.get("cash_needed", 0.0)) - float(account.get("cash", 0.0)), 0.0)


def tolerance(household: dict[str, Any], cls: str) -> float:
    bands = household.get("bands") or {}
    rule = (bands.get("overrides") or {}).get(cls) or {}

    def part(name: str, default: float) -> float:
        v = rule.get(name)
        if v is None:
            v = bands.get(name, default)
        return float(v)

    target = float(household["target"].get(cls, 0.0))
    return max(part("floor", 0.005), min(part("absolute", 0.05), part("relative", 0.25) * target))


def class_values(household: dict[str, Any]) -> dict[str, float]:
    """Exposure-weighted dollars per class; cash in `cash`, less every cash_needed."""
    values: dict[str, float] = defaultdict(float)
    for c in household["target"]:
        values[c] += 0.0
    values[CASH] += 0.0
    for a in household["accounts"]:
        values[CASH] += float(a.get("cash", 0.0)) - float(a.get("cash_needed", 0.0))
        for lot in a.get("lots", []):
            p = price(household, lot["symbol"])
            for c, w in exposures(household["securities"][lot["symbol"]]).items():
                values[c] += float(lot["quantity"]) * p * w
    return dict(values)


def investable(household: dict[str, Any]) -> float:
    return sum(class_values(household).values())


def drift(household: dict[str, Any]) -> dict[str, float]:
    values = class_values(household)
    v = sum(values.values())
    if v <= 0:
        return {c: 0.0 for c in values}
    return {c: x / v - float(household["target"].get(c, 0.0)) for c, x in values.items()}


def out_of_band(household: dict[str, Any], slack: float = WEIGHT_TOL) -> dict[str, float]:
    """Classes whose |drift| exceeds their tolerance by more than `slack`: class -> drift."""
    return {c: d for c, d in drift(household).items() if abs(d) > tolerance(household, c) + slack}


def applicable_list(household: dict[str, Any], account: dict[str, Any], cls: str) -> list[str]:
    own = account.get("buy_list") or {}
    if cls in own:
        return list(own[cls])
    return list((household.get("buy_list") or {}).get(cls, []))


def anniversary_bounds(acquired: date) -> tuple[date, date]:
    """The anniversary date(s) of a lot: a sale after the later one is long-term, on or before
    the earlier one short-term (29 February has two readings)."""
    try:
        a = acquired.replace(year=acquired.year + 1)
        return a, a
    except ValueError:
        return date(acquired.year + 1, 2, 28), date(acquired.year + 1, 3, 1)


def _within_window(as_of: date, d: date) -> bool:
    return timedelta(0) <= as_of - d <= timedelta(days=WASH_DAYS)


def recent_groups(household: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(groups sold at a loss in a taxable account, groups bought in any account), last 30 days."""
    as_of = _day(household["as_of"])
    types = {a["account_id"]: a["type"] for a in household["accounts"]}
    loss, bought = set(), set()
    for t in household.get("recent_trades") or []:
        if not _within_window(as_of, _day(t["date"])):
            continue
        g = wash_group(household, t["symbol"])
        if t["side"] == "buy":
            bought.add(g)
        elif types.get(t["account_id"]) == "taxable" and (t.get("realized_gain") or 0.0) < 0:
            loss.add(g)
    return loss, bought


def blocked_by_recent_buy(household: dict[str, Any], account_id: str, lot: dict[str, Any]) -> bool:
    """Rule 4b's "bought within the 30 days before": a buy of the lot's group in recent_trades,
    or any other lot of the group, in any account, acquired within the 30 days before as_of."""
    as_of = _day(household["as_of"])
    g = wash_group(household, lot["symbol"])
    if g in recent_groups(household)[1]:
        return True
    for a in household["accounts"]:
        for other in a.get("lots", []):
            if (a["account_id"], other["lot_id"]) == (account_id, lot["lot_id"]):
                continue
            if wash_group(household, other["symbol"]) == g and _within_window(
                as_of, _day(other["acquired"])
            ):
                return True
    return False


# --------------------------------------------------------------------------- applying orders


def apply_orders(household: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The household after the result's orders at est_price: sells relieve their lots (basis pro
    rata), buys add a lot acquired as_of, cash moves by value less cost, trades are appended to
    recent_trades (sells with their realized gain)."""
    k = float(options(household)["transaction_cost_bps"]) / 1e4
    out = {**household, "accounts": [], "recent_trades": list(household.get("recent_trades") or [])}
    orders_by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in result.get("orders", []):
        orders_by_account[o["account_id"]].append(o)
    for a in household["accounts"]:
        lots = {lot["lot_id"]: dict(lot) for lot in a.get("lots", [])}
        cash = float(a.get("cash", 0.0))
        new_lots = []
        for o in orders_by_account.get(a["account_id"], []):
            value = float(o["quantity"]) * float(o["est_price"])
            if o["side"] == "sell":
                gain = 0.0
                for rel in o.get("lots", []):
                    lot = lots[rel["lot_id"]]
                    q = float(rel["quantity"])
                    basis = float(lot["cost_basis"]) * q / float(lot["quantity"])
                    gain += q * float(o["est_price"]) - basis
                    lot["cost_basis"] = float(lot["cost_basis"]) - basis
                    lot["quantity"] = float(lot["quantity"]) - q
                cash += value * (1 - k)
                out["recent_trades"].append(
                    {
                        "account_id": a["account_id"],
                        "symbol": o["symbol"],
                        "side": "sell",
                        "quantity": o["quantity"],
                        "date": household["as_of"],
                        "realized_gain": round(gain, 6),
                    }
                )
            else:
                cash -= value * (1 + k)
                new_lots.append(
                    {
                        "lot_id": "N-" + o["order_id"],
                        "symbol": o["symbol"],
                        "quantity": o["quantity"],
                        "cost_basis": round(value, 6),
                        "acquired": household["as_of"],
                    }
                )
                out["recent_trades"].append(
                    {
                        "account_id": a["account_id"],
                        "symbol": o["symbol"],
                        "side": "buy",
                        "quantity": o["quantity"],
                        "date": household["as_of"],
                    }
                )
        kept = [lot for lot in lots.values() if float(lot["quantity"]) > 1e-9]
        out["accounts"].append({**a, "cash": max(cash, 0.0), "lots": kept + new_lots})
    return out


# --------------------------------------------------------------------------- the checks


def violations(household: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """Every hard rule of CONTRACT.md section 3 (and the result's own consistency) broken."""
    out: list[str] = []
    status = result.get("status")
    orders = result.get("orders") or []
    if result.get("schema") != "rebalance/v1":
        out.append(f"schema is {result.get('schema')!r}, not rebalance/v1")
    if status not in STATUSES:
        out.append(f"unknown status {status!r}")
        return out
    if status in NO_ORDER_STATUSES:
        if orders:
            out.append(f"status {status} carries {len(orders)} orders")
        if status == "invalid_input" and not result.get("errors"):
            out.append("invalid_input without errors")
        if status == "infeasible" and household.get("mode", "rebalance") != "monitor":
            witness = feasible_witness(household)
            if witness is not None:
                out.append(
                    "status infeasible, yet these orders obey rules 1-6: "
                    f"{witness or 'no orders at all'}"
                )
        return out
    if result.get("household_id") != household["household_id"]:
        out.append("household_id differs from the input's")
    if result.get("as_of") != household["as_of"]:
        out.append("as_of differs from the input's")
    mode = household.get("mode", "rebalance")
    if mode == "monitor" and orders:
        out.append("monitor mode produced orders")
    if status == "rebalanced" and not orders:
        out.append("status rebalanced without orders")
    if status == "no_action" and orders:
        out.append("status no_action with orders")
    ids = [o.get("order_id") for o in orders]
    if len(set(ids)) != len(ids) or not all(isinstance(i, str) and i for i in ids):
        out.append(f"order ids not unique and non-empty: {ids}")

    out.extend(_check_orders(household, orders))
    if any("unknown" in v for v in out):
        return out
    if mode != "monitor":
        out.extend(_check_cash(household, orders))
    out.extend(_check_wash(household, orders))
    out.extend(_check_options(household, orders))
    out.extend(_check_realized(household, result))
    out.extend(_check_drift(household, result))
    return out


def feasible_witness(household: dict[str, Any]) -> list[tuple[str, str]] | None:
    """A simple set of sells that obeys hard rules 1-6, if there is one: nothing for accounts
    whose cash covers cash_needed, every lot that may be sold (rule 4b) for the others. Returns
    the (account, lot) pairs sold, or None when this witness fails (the household may still be
    feasible otherwise). Only for households with a positive investable value."""
    if investable(household) <= USD_TOL:
        return None
    opts = options(household)
    k = float(opts["transaction_cost_bps"]) / 1e4
    mtv = float(opts["min_trade_value"] or 0.0)
    sold: list[tuple[str, str]] = []
    gains = 0.0
    for a in household["accounts"]:
        cash, need = float(a.get("cash", 0.0)), float(a.get("cash_needed", 0.0))
        if cash >= need:
            continue
        by_symbol: dict[str, list[tuple[dict[str, Any], bool]]] = defaultdict(list)
        for lot in a.get("lots", []):
            value = float(lot["quantity"]) * price(household, lot["symbol"])
            gain = value - float(lot["cost_basis"])
            blocked = bool(lot.get("locked")) or (
                a["type"] == "taxable"
                and gain < -USD_TOL
                and blocked_by_recent_buy(household, a["account_id"], lot)
            )
            by_symbol[lot["symbol"]].append((lot, blocked))
        for sym, lots in by_symbol.items():
            free = [lot for lot, blocked in lots if not blocked]
            value = sum(float(lot["quantity"]) for lot in free) * price(household, sym)
            if not free or (len(free) < len(lots) and value < mtv):
                continue
            cash += value * (1 - k)
            for lot in free:
                sold.append((a["account_id"], lot["lot_id"]))
                if a["type"] == "taxable":
                    gains += float(lot["quantity"]) * price(household, sym) - float(
                        lot["cost_basis"]
                    )
        if cash < need + 1e-3:
            return None
    cap = gain_cap(household)
    if cap is not None and gains > float(cap):
        return None
    return sold


def _check_orders(household: dict[str, Any], orders: list[dict[str, Any]]) -> list[str]:
    """Rules 2, 3, 5 and the shape of each order."""
    out: list[str] = []
    accounts = {a["account_id"]: a for a in household["accounts"]}
    securities = household.get("securities", {})
    opts = options(household)
    mtv = float(opts["min_trade_value"] or 0.0)
    relieved: dict[tuple[str, str], float] = defaultdict(float)
    sold_qty: dict[tuple[str, str], float] = defaultdict(float)
    for o in orders:
        oid = o.get("order_id")
        a = accounts.get(o.get("account_id"))
        sec = securities.get(o.get("symbol"))
        if a is None or sec is None:
            out.append(f"{oid}: unknown account or security")
            continue
        sym, side = o["symbol"], o.get("side")
        q, p = float(o.get("quantity", 0)), float(o.get("est_price", 0))
        if side not in ("buy", "sell"):
            out.append(f"{oid}: side {side!r}")
        if o.get("reason") not in REASONS:
            out.append(f"{oid}: reason {o.get('reason')!r}")
        if not q > 0 or not math.isfinite(q):
            out.append(f"{oid}: quantity {q} not > 0")
        if abs(p - float(sec["price"])) > 1e-9 * max(1.0, p):
            out.append(f"{oid}: est_price {p} is not the security's price {sec['price']}")
        if abs(float(o.get("est_value", 0)) - q * p) > 0.01 + 1e-9 * q * p:
            out.append(f"{oid}: est_value {o.get('est_value')} != quantity * est_price {q * p}")
        value = q * p
        if side == "sell":
            lots = {lot["lot_id"]: lot for lot in a.get("lots", [])}
            rels = o.get("lots") or []
            if not rels:
                out.append(f"{oid}: a sell that names no lots")
            total = 0.0
            for rel in rels:
                lot = lots.get(rel.get("lot_id"))
                rq = float(rel.get("quantity", 0))
                total += rq
                if lot is None or lot["symbol"] != sym:
                    out.append(
                        f"{oid}: lot {rel.get('lot_id')} is not a {sym} lot of {a['account_id']}"
                    )
                    continue
                if not rq > 0:
                    out.append(f"{oid}: lot {lot['lot_id']} relieved quantity {rq}")
                relieved[(a["account_id"], lot["lot_id"])] += rq
                if (
                    not is_fractional(household, sym)
                    and abs(rq - round(rq)) > QTY_TOL
                    and abs(rq - float(lot["quantity"])) > QTY_TOL
                ):
                    out.append(f"{oid}: {sym} whole shares only, lot {lot['lot_id']} relieves {rq}")
            if abs(total - q) > QTY_TOL * max(1.0, q):
                out.append(f"{oid}: lot quantities sum to {total}, the order's quantity is {q}")
            sold_qty[(a["account_id"], sym)] += q
        elif side == "buy":
            if not is_fractional(household, sym) and abs(q - round(q)) > QTY_TOL:
                out.append(f"{oid}: {sym} whole shares only, buys {q}")
            exp = exposures(sec)
            if not any(sym in applicable_list(household, a, c) for c, w in exp.items() if w > 0):
                out.append(f"{oid}: {sym} is not on {a['account_id']}'s applicable buy list")
            if sym in (a.get("excluded_symbols") or []):
                out.append(f"{oid}: {sym} is excluded in {a['account_id']}")
            banned = [c for c in (a.get("no_buy_asset_classes") or []) if exp.get(c, 0.0) > 0]
            if banned:
                out.append(f"{oid}: {sym} is exposed to {banned}, no-buy in {a['account_id']}")
        if value < mtv - USD_TOL:
            held = sum(float(lot["quantity"]) for lot in a.get("lots", []) if lot["symbol"] == sym)
            if not (side == "sell" and abs(q - held) <= QTY_TOL * max(1.0, held)):
                out.append(f"{oid}: value {value:.4f} below min_trade_value {mtv}")
    for (aid, lot_id), rq in relieved.items():
        lot = next(lot for lot in accounts[aid]["lots"] if lot["lot_id"] == lot_id)
        if rq > float(lot["quantity"]) + QTY_TOL:
            out.append(f"lot {lot_id} of {aid}: sells {rq} of {lot['quantity']} held")
    for (aid, sym), q in sold_qty.items():
        held = sum(float(lot["quantity"]) for lot in accounts[aid]["lots"] if lot["symbol"] == sym)
        if q > held + QTY_TOL:
            out.append(f"{aid}: sells {q} {sym}, holds {held} (short)")
    return out


def _check_cash(household: dict[str, Any], orders: list[dict[str, Any]]) -> list[str]:
    """Rule 1: sells before buys at est_price, less cost; every account keeps cash_needed."""
    k = float(options(household)["transaction_cost_bps"]) / 1e4
    out = []
    for a in household["accounts"]:
        cash = float(a.get("cash", 0.0))
        mine = [o for o in orders if o["account_id"] == a["account_id"]]
        for o in mine:
            v = float(o["quantity"]) * float(o["est_price"])
            cash += v * (1 - k) if o["side"] == "sell" else -v * (1 + k)
        need = float(a.get("cash_needed", 0.0))
        if mine and cash < need - USD_TOL:
            out.append(f"{a['account_id']}: cash after trades {cash:.6f} below cash_needed {need}")
        elif not mine and cash < need - USD_TOL:
            out.append(f"{a['account_id']}: cash {cash:.6f} below cash_needed {need}, no trades")
    return out


def lot_gains(
    household: dict[str, Any], orders: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], float, float]]:
    """(account, order, lot, relieved quantity, gain) for every lot relief of every sell."""
    accounts = {a["account_id"]: a for a in household["accounts"]}
    out = []
    for o in orders:
        if o["side"] != "sell":
            continue
        a = accounts[o["account_id"]]
        lots = {lot["lot_id"]: lot for lot in a.get("lots", [])}
        for rel in o.get("lots") or []:
            lot = lots.get(rel["lot_id"])
            if lot is None:
                continue
            q = float(rel["quantity"])
            gain = q * float(o["est_price"]) - float(lot["cost_basis"]) * q / float(lot["quantity"])
            out.append((a, o, lot, q, gain))
    return out


def _check_wash(household: dict[str, Any], orders: list[dict[str, Any]]) -> list[str]:
    """Rule 4 a and b, across all accounts; and rule 6 (the tax budget)."""
    out = []
    loss_recent, _ = recent_groups(household)
    loss_now: set[str] = set()
    net_gain = 0.0
    for a, o, lot, _q, gain in lot_gains(household, orders):
        if a["type"] != "taxable":
            continue
        net_gain += gain
        if gain < -USD_TOL:
            g = wash_group(household, o["symbol"])
            loss_now.add(g)
            if blocked_by_recent_buy(household, a["account_id"], lot):
                out.append(
                    f"{o['order_id']}: loss sale of lot {lot['lot_id']} ({g}) in taxable "
                    f"{a['account_id']} within 30 days after a buy of {g} (rule 4b)"
                )
    for o in orders:
        if o["side"] != "buy":
            continue
        g = wash_group(household, o["symbol"])
        if g in loss_recent:
            out.append(
                f"{o['order_id']}: buys {g} within 30 days after a recent taxable loss "
                "sale (rule 4a)"
            )
        if g in loss_now:
            out.append(
                f"{o['order_id']}: buys {g} while this rebalance sells it at a loss in a "
                "taxable account (rule 4a)"
            )
    cap = gain_cap(household)
    if cap is not None and net_gain > float(cap) + USD_TOL:
        out.append(
            f"net realized gain {net_gain:.4f} above the cap {cap} (max_realized_gain, "
            "max_realized_gain_year less realized_this_year; rule 6)"
        )
    return out


def _check_options(household: dict[str, Any], orders: list[dict[str, Any]]) -> list[str]:
    """Rule 6's options: locked lots, allow_sells, max_turnover (CONTRACT.md section 1).

    Readings: a sell "raises cash_needed" when its account starts short; an account's non-screen
    sells may exceed its shortfall (grossed up by costs) by at most the larger of
    min_trade_value and the account's dearest whole share (what the smallest allowed order may
    force), and at least RAISE_SLACK_USD (cents of margin, fractional rounding). The same
    allowance applies to max_turnover's raised cash."""
    opts = options(household)
    k = float(opts["transaction_cost_bps"]) / 1e4
    mtv = float(opts["min_trade_value"] or 0.0)
    out: list[str] = []
    accounts = {a["account_id"]: a for a in household["accounts"]}
    for a, o, lot, _q, _gain in lot_gains(household, orders):
        if lot.get("locked"):
            out.append(f"{o['order_id']}: sells locked lot {lot['lot_id']} ({a['account_id']})")
    raised = 0.0
    for aid, a in accounts.items():
        mine = [o for o in orders if o["account_id"] == aid and o["side"] == "sell"]
        excluded = set(a.get("excluded_symbols") or [])
        plain = [o for o in mine if o["symbol"] not in excluded]
        value = sum(float(o["quantity"]) * float(o["est_price"]) for o in plain)
        whole = [
            price(household, lot["symbol"])
            for lot in a.get("lots", [])
            if not is_fractional(household, lot["symbol"])
        ]
        allowance = max([mtv, RAISE_SLACK_USD, *whole]) + USD_TOL
        need = shortfall(a) / (1 - k) if shortfall(a) > 0 else 0.0
        if need > 0:  # every sell of a short account raises cash, screened or not
            raised += min(
                sum(float(o["quantity"]) * float(o["est_price"]) for o in mine), need + allowance
            )
        if opts["allow_sells"] is False and plain:
            if need <= 0:
                out.append(f"{aid}: sells with allow_sells false and no cash_needed to raise")
            elif value > need + allowance:
                out.append(
                    f"{aid}: sells {value:.2f} with allow_sells false, more than the "
                    f"{need:.2f} cash_needed requires"
                )
    cap = opts["max_turnover"]
    if cap is not None:
        v = investable(household)
        traded = sum(float(o["quantity"]) * float(o["est_price"]) for o in orders)
        if traded > float(cap) * v + raised + USD_TOL:
            out.append(
                f"traded {traded:.2f} above max_turnover {cap} of V ({float(cap) * v:.2f}) "
                f"plus raised cash {raised:.2f}"
            )
    return out


def _check_realized(household: dict[str, Any], result: dict[str, Any]) -> list[str]:
    out = []
    orders = result.get("orders") or []
    as_of = _day(household["as_of"])
    st_lo = st_hi = lt_lo = lt_hi = 0.0  # ranges, for 29 February lots
    for a, _o, lot, _q, gain in lot_gains(household, orders):
        if a["type"] != "taxable":
            continue
        early, late = anniversary_bounds(_day(lot["acquired"]))
        if as_of > late:
            lt_lo += gain
            lt_hi += gain
        elif as_of <= early:
            st_lo += gain
            st_hi += gain
        else:  # ambiguous: either reading
            lt_lo, lt_hi = lt_lo + min(gain, 0.0), lt_hi + max(gain, 0.0)
            st_lo, st_hi = st_lo + min(gain, 0.0), st_hi + max(gain, 0.0)
    realized = result.get("realized") or {}
    st_got = float(realized.get("short_term_gain", 0.0))
    lt_got = float(realized.get("long_term_gain", 0.0))
    tol = 0.011
    if not st_lo - tol <= st_got <= st_hi + tol:
        out.append(f"realized short_term_gain {st_got} != {st_lo:.4f}")
    if not lt_lo - tol <= lt_got <= lt_hi + tol:
        out.append(f"realized long_term_gain {lt_got} != {lt_lo:.4f}")
    tax = household.get("tax") or {}
    st_rate = float(tax.get("short_term_rate", 0.408))
    lt_rate = float(tax.get("long_term_rate", 0.238))
    want_tax = st_got * st_rate + lt_got * lt_rate
    if abs(float(realized.get("tax_cost", 0.0)) - want_tax) > 0.02:
        out.append(f"realized tax_cost {realized.get('tax_cost')} != {want_tax:.4f}")
    v = investable(household)
    traded = sum(float(o["quantity"]) * float(o["est_price"]) for o in orders)
    if v > 0 and abs(float(result.get("turnover", 0.0)) - traded / v) > 2e-6:
        out.append(f"turnover {result.get('turnover')} != traded / V = {traded / v:.8f}")
    return out


def _compare_drift(name: str, mine: dict[str, float], theirs: dict[str, float]) -> list[str]:
    out = []
    for c in set(mine) | set(theirs):
        if c in mine and c not in theirs:
            out.append(f"{name} lacks class {c}")
        elif abs(mine.get(c, 0.0) - float(theirs.get(c, 0.0))) > WEIGHT_TOL:
            out.append(f"{name}[{c}] = {theirs.get(c)}, computed {mine.get(c, 0.0):.8f}")
    return out


def _check_drift(household: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """drift_before/after as computed here, and rule 7 (bands) with the status it implies."""
    out = _compare_drift("drift_before", drift(household), result.get("drift_before") or {})
    status = result["status"]
    if investable(household) <= 0:
        return out
    after = apply_orders(household, result)
    if investable(after) <= 0:
        out.append("no investable value left after the trades")
        return out
    out.extend(_compare_drift("drift_after", drift(after), result.get("drift_after") or {}))
    mode = household.get("mode", "rebalance")
    if mode in ("rebalance", "guardrail"):
        outside = out_of_band(after)
        if status in ("rebalanced", "no_action") and outside:
            out.append(
                f"status {status} but out of band after the trades: "
                f"{ {c: round(d, 6) for c, d in outside.items()} } (rule 7)"
            )
        if status == "band_unreachable" and not out_of_band(after, slack=-WEIGHT_TOL):
            out.append("status band_unreachable but every class ends within its band")
    return out


def swaps(household: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """Classes sold in one account and bought in another (cross-account swaps), excluding sells
    with reasons tax_loss_harvest / raise_cash / screen and buys with reason tax_loss_harvest.
    Single-class securities only; a fund counts for its largest exposure."""

    def cls(symbol: str) -> str:
        exp = exposures(household["securities"][symbol])
        return max(exp.items(), key=lambda kv: (kv[1], kv[0]))[0]

    sold: dict[str, set[str]] = defaultdict(set)
    bought: dict[str, set[str]] = defaultdict(set)
    for o in result.get("orders") or []:
        if o["side"] == "sell" and o["reason"] in ("rebalance", "invest_cash"):
            sold[cls(o["symbol"])].add(o["account_id"])
        if o["side"] == "buy" and o["reason"] != "tax_loss_harvest":
            bought[cls(o["symbol"])].add(o["account_id"])
    out = []
    for c in set(sold) & set(bought):
        if any(s != b for s in sold[c] for b in bought[c]):
            out.append(f"class {c} sold in {sorted(sold[c])} and bought in {sorted(bought[c])}")
    return out
