"""Small generated `household/v1` snapshots (JSON dicts) mixing every option of the contract, for
`umh bench quality` and the reference-MIP property test.

Pure and seeded: `make_quality_household(i, rng, size)` draws one snapshot from a
`numpy.random.Generator`. Sizes: "small" (1-3 accounts, 3-8 securities, <= 20 lots: the exact
reference solves it in well under a second) and "medium" (2-4 accounts, up to 14 securities,
<= 60 lots). Every option of CONTRACT.md section 1 is drawn with its own probability (see
`OPTION_SHARES`), so that any combination occurs in a few thousand households.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import numpy as np

AS_OF = date(2026, 11, 24)
US, INTL, FI, CASH = "us_equity", "intl_equity", "fixed_income", "cash"

# symbol, class ("bal" = look-through), wash group, base price
CATALOGUE: tuple[tuple[str, str, str, float], ...] = (
    ("VTI", US, "us-total", 285.0),
    ("ITOT", US, "us-total", 125.0),
    ("VOO", US, "us-sp500", 480.0),
    ("SPLG", US, "us-sp500", 66.0),
    ("AAPL", US, "AAPL", 230.0),
    ("VXUS", INTL, "intl-total", 64.0),
    ("IXUS", INTL, "intl-total", 70.0),
    ("VEA", INTL, "intl-dev", 51.0),
    ("IEFA", INTL, "intl-dev", 75.0),
    ("BND", FI, "us-agg", 73.0),
    ("AGG", FI, "us-agg", 99.0),
    ("IEF", FI, "treasury", 95.0),
    ("VGIT", FI, "treasury", 59.0),
    ("MUB", FI, "muni", 107.0),
    ("AOR", "bal", "AOR", 58.0),
)
BALANCED = {"AOR": {US: 0.36, INTL: 0.24, FI: 0.40}}
TARGETS = (
    {US: 0.45, INTL: 0.15, FI: 0.37, CASH: 0.03},
    {US: 0.60, INTL: 0.20, FI: 0.17, CASH: 0.03},
    {US: 0.30, INTL: 0.10, FI: 0.57, CASH: 0.03},
    {US: 0.70, INTL: 0.25, FI: 0.04, CASH: 0.01},
    {US: 0.50, INTL: 0.00, FI: 0.48, CASH: 0.02},
)
#: Probability of each option being set (away from its default) in a household.
OPTION_SHARES = {
    "whole_shares": 0.5,  # per security
    "min_trade_value": 0.7,
    "transaction_cost_bps": 0.6,
    "max_realized_gain": 0.2,
    "max_realized_gain_year": 0.15,
    "allow_sells_false": 0.1,
    "max_turnover": 0.15,
    "locked": 0.2,
    "defer_short_term_days": 0.2,
    "target_tax_budget_bps": 0.2,
    "harvest_losses": 0.5,
    "allow_cross_account_swaps": 0.3,
    "no_buy_asset_classes": 0.15,
    "excluded_symbols": 0.15,
    "account_buy_list": 0.25,
    "recent_trades": 0.4,
    "recent_lots": 0.25,
    "cash_needed": 0.15,
    "band_overrides": 0.3,
}
MODES = (("rebalance", 0.75), ("guardrail", 0.15), ("monitor", 0.10))
SIZES = {"tiny": (2, 5, 8), "small": (3, 8, 20), "medium": (4, 14, 60)}


def _chance(rng: np.random.Generator, name: str) -> bool:
    return bool(rng.random() < OPTION_SHARES[name])


def make_quality_household(i: int, rng: np.random.Generator, size: str = "small") -> dict[str, Any]:
    """One valid snapshot, id `q-<i>`; see the module docstring."""
    max_acc, max_sec, max_lots = SIZES[size]
    hid = f"q-{i:05d}"
    n_acc = int(rng.integers(1, max_acc + 1))
    types = [("taxable", "tax_deferred", "tax_exempt")[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]]
    types += [
        ("taxable", "tax_deferred", "tax_exempt")[int(rng.integers(3))] for _ in range(n_acc - 1)
    ]
    target = dict(TARGETS[int(rng.integers(len(TARGETS)))])
    n_sec = int(rng.integers(3, max_sec + 1))
    # always one fund of each targeted class (so the bands can be reachable), then random others
    picks: list[int] = []
    for cls in (US, INTL, FI):
        if target[cls] > 0:
            idx = [k for k, e in enumerate(CATALOGUE) if e[1] == cls]
            picks.append(idx[int(rng.integers(len(idx)))])
    rest = [k for k in rng.permutation(len(CATALOGUE)) if k not in picks]
    picks += [int(k) for k in rest[: max(0, n_sec - len(picks))]]
    securities: dict[str, dict[str, Any]] = {}
    for k in sorted(picks):
        sym, cls, group, base = CATALOGUE[k]
        p = round(base * math.exp(float(rng.normal(0, 0.2))), 2)
        sec: dict[str, Any] = {"price": p, "wash_group": group}
        if cls == "bal":
            sec["exposures"] = dict(BALANCED[sym])
        else:
            sec["asset_class"] = cls
        sec["fractional"] = not _chance(rng, "whole_shares")
        securities[sym] = sec
    syms = sorted(securities)

    def cls_of(s: str) -> str:
        return securities[s].get("asset_class") or "bal"

    buy_list: dict[str, list[str]] = {}
    for cls in (US, INTL, FI):
        cands = [s for s in syms if cls_of(s) == cls]
        rng.shuffle(cands)
        if cands:
            buy_list[cls] = cands[: int(rng.integers(1, len(cands) + 1))]
    value = float(math.exp(rng.uniform(math.log(3e4), math.log(3e6))))
    n_lots = int(rng.integers(1, max_lots + 1))
    # class weights of the holdings: around target, often drifted
    w = np.array([target[US], target[INTL], target[FI]]) + rng.normal(0, 0.08, 3)
    w = np.clip(w, 0.0, None)
    w = w / max(w.sum(), 1e-9)
    cash_w = float(np.clip(target[CASH] + rng.normal(0, 0.03), 0.0, 0.3))
    accounts: list[dict[str, Any]] = []
    lots_by_acc: list[list[dict[str, Any]]] = [[] for _ in range(n_acc)]
    held_syms = [s for s in syms]
    sym_w = np.array(
        [
            (w[(US, INTL, FI).index(cls_of(s))] if cls_of(s) != "bal" else 0.1) + 1e-3
            for s in held_syms
        ]
    )
    sym_w = sym_w / sym_w.sum()
    for n in range(1, n_lots + 1):
        s = held_syms[int(rng.choice(len(held_syms), p=sym_w))]
        p = float(securities[s]["price"])
        a = int(rng.integers(n_acc))
        lot_value = value * (1 - cash_w) / n_lots * float(rng.uniform(0.3, 1.7))
        q = lot_value / p
        q = float(max(1, round(q))) if not securities[s]["fractional"] else round(q, 3)
        if rng.random() < OPTION_SHARES["recent_lots"] / 4:
            days = int(rng.integers(0, 30))
        elif rng.random() < 0.3:
            days = int(rng.integers(30, 366))
        else:
            days = int(rng.integers(366, 4000))
        growth = math.exp(float(rng.normal(0.06 * days / 365, 0.2 * math.sqrt(days / 365 + 0.01))))
        lot: dict[str, Any] = {
            "lot_id": f"{hid}-L{n}",
            "symbol": s,
            "quantity": q,
            "cost_basis": round(q * p / growth, 2),
            "acquired": (AS_OF - timedelta(days=days)).isoformat(),
        }
        lots_by_acc[a].append(lot)
    locked = _chance(rng, "locked")
    for lots in lots_by_acc:
        for lot in lots:
            if locked and rng.random() < 0.25:
                lot["locked"] = True
    cash_total = value * cash_w
    split = rng.dirichlet(np.ones(n_acc)) * cash_total
    need_acc = int(rng.integers(n_acc)) if _chance(rng, "cash_needed") else -1
    no_buy_acc = int(rng.integers(n_acc)) if _chance(rng, "no_buy_asset_classes") else -1
    for a in range(n_acc):
        acc: dict[str, Any] = {
            "account_id": f"{hid}-A{a}",
            "type": types[a],
            "cash": round(float(split[a]), 2),
            "cash_needed": 0.0,
            "lots": lots_by_acc[a],
        }
        if a == need_acc:
            acc["cash_needed"] = round(float(split[a]) + value * float(rng.uniform(-0.01, 0.08)), 2)
            acc["cash_needed"] = max(acc["cash_needed"], 0.0)
        if a == no_buy_acc:
            acc["no_buy_asset_classes"] = [[FI, US, INTL][int(rng.integers(3))]]
        if _chance(rng, "excluded_symbols"):
            acc["excluded_symbols"] = [syms[int(rng.integers(len(syms)))]]
        if _chance(rng, "account_buy_list"):
            cls = (US, INTL, FI)[int(rng.integers(3))]
            cands = [s for s in syms if cls_of(s) == cls]
            acc["buy_list"] = {cls: cands[: int(rng.integers(0, len(cands) + 1))]}
        accounts.append(acc)
    opts: dict[str, Any] = {
        "min_trade_value": float(rng.choice([100.0, 250.0, 1000.0]))
        if _chance(rng, "min_trade_value")
        else 0.0,
        "transaction_cost_bps": float(rng.choice([1.0, 2.0, 10.0, 50.0, 100.0]))
        if _chance(rng, "transaction_cost_bps")
        else 0.0,
        "harvest_losses": _chance(rng, "harvest_losses"),
        "harvest_min_loss": float(rng.choice([100.0, 500.0, 2500.0])),
        "allow_cross_account_swaps": _chance(rng, "allow_cross_account_swaps"),
        "max_realized_gain": round(float(rng.uniform(0, 0.01)) * value, 2)
        if _chance(rng, "max_realized_gain")
        else None,
        "allow_sells": not _chance(rng, "allow_sells_false"),
        "max_turnover": float(rng.choice([0.01, 0.03, 0.1, 0.3]))
        if _chance(rng, "max_turnover")
        else None,
        "defer_short_term_days": int(rng.choice([30, 90, 180]))
        if _chance(rng, "defer_short_term_days")
        else 0,
        "target_tax_budget_bps": float(rng.choice([1.0, 5.0, 20.0]))
        if _chance(rng, "target_tax_budget_bps")
        else 0.0,
    }
    h: dict[str, Any] = {
        "schema": "household/v1",
        "household_id": hid,
        "as_of": AS_OF.isoformat(),
        "mode": MODES[int(rng.choice(3, p=[m[1] for m in MODES]))][0],
        "target": target,
        "bands": {"absolute": 0.05, "relative": 0.25, "floor": 0.005},
        "tax": {"short_term_rate": 0.408, "long_term_rate": 0.238},
        "buy_list": buy_list,
        "options": opts,
        "accounts": accounts,
        "securities": securities,
        "recent_trades": [],
    }
    if _chance(rng, "band_overrides"):
        h["bands"]["overrides"] = {CASH: {"absolute": 0.02}}
    if _chance(rng, "max_realized_gain_year"):
        opts["max_realized_gain_year"] = round(float(rng.uniform(0, 0.02)) * value, 2)
        h["realized_this_year"] = {
            "short_term_gain": round(float(rng.uniform(-0.005, 0.01)) * value, 2),
            "long_term_gain": round(float(rng.uniform(-0.005, 0.01)) * value, 2),
        }
    if _chance(rng, "recent_trades"):
        for _ in range(int(rng.integers(1, 4))):
            acc = accounts[int(rng.integers(n_acc))]
            s = syms[int(rng.integers(len(syms)))]
            day = (AS_OF - timedelta(days=int(rng.integers(0, 40)))).isoformat()
            if acc["type"] == "taxable" and rng.random() < 0.6:
                h["recent_trades"].append(
                    {
                        "account_id": acc["account_id"],
                        "symbol": s,
                        "side": "sell",
                        "quantity": 5.0,
                        "date": day,
                        "realized_gain": -round(float(rng.uniform(50, 5000)), 2),
                    }
                )
            else:
                h["recent_trades"].append(
                    {
                        "account_id": acc["account_id"],
                        "symbol": s,
                        "side": "buy",
                        "quantity": 3.0,
                        "date": day,
                    }
                )
    return h
