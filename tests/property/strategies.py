"""Hypothesis strategies of random, valid `household/v1` snapshots as JSON dicts.

Households have 1-5 accounts of mixed types, 2-12 securities (some whole-share only, some
look-through funds, wash groups shared by some), lots with gains and losses acquired on various
dates (anniversary edges included), targets summing to 1, cash and cash_needed, recent trades
inside and just outside the 30-day window, buy lists with per-account overrides, no-buy classes,
screens, and options (min_trade_value, harvesting, a tax budget, costs) in every mode.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

#: The property tests' common ground: the same examples every run (a fixed seed, no example
#: database) and no deadline (a solve's time depends on the machine). Each test's own settings
#: take this as their parent and add their budget.
REPRODUCIBLE = settings(deadline=None, derandomize=True, database=None)

AS_OF = date(2026, 11, 24)
CLASSES = ("us_equity", "intl_equity", "fixed_income", "real_estate")
ACCOUNT_TYPES = ("taxable", "tax_deferred", "tax_exempt")
# Holding periods in days before as_of: the anniversary edges (365 = sold on the anniversary,
# short-term; 366 = the day after, long-term) and plenty of others.
HOLDING_DAYS = st.one_of(st.sampled_from([0, 1, 30, 31, 364, 365, 366, 367]), st.integers(2, 3000))
PRICES = st.one_of(
    st.sampled_from([1.0, 10.0, 50.0, 72.5, 100.0, 240.5, 499.99]),
    st.floats(2.0, 600.0).map(lambda x: round(x, 2)),
)


def _day(days_before: int) -> str:
    return (AS_OF - timedelta(days=days_before)).isoformat()


@st.composite
def weights(draw: st.DrawFn, names: list[str]) -> dict[str, float]:
    """Weights over `names` that sum to 1 (within 1e-9), some possibly zero."""
    raw = [draw(st.integers(0, 20)) for _ in names]
    if sum(raw) == 0:
        raw[0] = 1
    total = sum(raw)
    out = {n: round(r / total, 6) for n, r in zip(names, raw, strict=True)}
    last = names[-1] if raw[-1] else next(n for n, r in zip(names, raw, strict=True) if r)
    out[last] = round(out[last] + 1.0 - sum(out.values()), 9)
    return out


@st.composite
def securities(draw: st.DrawFn, classes: list[str]) -> dict[str, dict[str, Any]]:
    n = draw(st.integers(2, 12))
    groups = [f"grp-{i}" for i in range(draw(st.integers(1, 4)))]
    out: dict[str, dict[str, Any]] = {}
    for i in range(n):
        # Make sure every class has at least one plain security when there are enough of them.
        fund = len(classes) > 1 and i >= len(classes) and draw(st.integers(0, 5)) == 0
        sec: dict[str, Any] = {"price": draw(PRICES)}
        if fund:
            a, b = draw(st.permutations(classes))[:2]
            share = draw(st.sampled_from([0.6, 0.5, 0.8, 0.25]))
            sec["exposures"] = {a: share, b: round(1.0 - share, 6)}
        else:
            sec["asset_class"] = (
                classes[i % len(classes)] if i < len(classes) else draw(st.sampled_from(classes))
            )
        if draw(st.booleans()):
            sec["wash_group"] = draw(st.sampled_from(groups))
        sec["fractional"] = draw(st.booleans())
        out[f"S{i}"] = sec
    return out


def _main_class(sec: dict[str, Any]) -> str:
    if "asset_class" in sec:
        return str(sec["asset_class"])
    return max(sec["exposures"].items(), key=lambda kv: (kv[1], kv[0]))[0]


@st.composite
def buy_lists(
    draw: st.DrawFn, secs: dict[str, dict[str, Any]], classes: list[str], p_missing: int = 6
) -> dict[str, list[str]]:
    """class -> symbols exposed to that class (most preferred first); a class may lack a list."""
    out: dict[str, list[str]] = {}
    for c in classes:
        members = [s for s, sec in secs.items() if _main_class(sec) == c]
        if not members or draw(st.integers(0, p_missing)) == 0:
            continue
        chosen = draw(st.lists(st.sampled_from(members), min_size=1, max_size=3, unique=True))
        out[c] = chosen
    return out


@st.composite
def lots(
    draw: st.DrawFn, secs: dict[str, dict[str, Any]], prefix: str, decimals: int = 7
) -> list[dict[str, Any]]:
    out = []
    for j in range(draw(st.integers(0, 4))):
        sym = draw(st.sampled_from(sorted(secs)))
        sec = secs[sym]
        if sec["fractional"]:
            qty = draw(
                st.one_of(
                    st.integers(1, 800).map(float),
                    st.floats(0.01, 800.0).map(lambda x: round(x, decimals)),
                )
            )
        elif draw(st.integers(0, 9)) == 0:
            qty = draw(st.integers(1, 300)) + 0.5  # a fractional remnant (dividend reinvested)
        else:
            qty = float(draw(st.integers(1, 800)))
        factor = draw(st.one_of(st.sampled_from([0.5, 0.9, 1.0, 1.1, 1.5]), st.floats(0.3, 2.0)))
        out.append(
            {
                "lot_id": f"{prefix}-L{j}",
                "symbol": sym,
                "quantity": qty,
                "cost_basis": round(qty * sec["price"] * factor, 2),
                "acquired": _day(draw(HOLDING_DAYS)),
            }
        )
    return out


@st.composite
def accounts(
    draw: st.DrawFn, secs: dict[str, dict[str, Any]], classes: list[str], decimals: int = 7
) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 5))):
        aid = f"A{i}"
        acct: dict[str, Any] = {
            "account_id": aid,
            "type": draw(st.sampled_from(ACCOUNT_TYPES)),
            "cash": draw(
                st.one_of(
                    st.just(0.0),
                    st.sampled_from([100.0, 5000.0, 25000.0]),
                    st.floats(0.0, 60000.0).map(lambda x: round(x, 2)),
                )
            ),
            "lots": draw(lots(secs, aid, decimals)),
        }
        if draw(st.integers(0, 4)) == 0:
            acct["cash_needed"] = draw(st.sampled_from([500.0, 2000.0, 10000.0]))
        if draw(st.integers(0, 3)) == 0:
            acct["buy_list"] = draw(buy_lists(secs, classes, p_missing=1))
        if draw(st.integers(0, 4)) == 0:
            acct["no_buy_asset_classes"] = draw(
                st.lists(st.sampled_from(classes), max_size=2, unique=True)
            )
        if draw(st.integers(0, 4)) == 0:
            acct["excluded_symbols"] = draw(
                st.lists(st.sampled_from(sorted(secs)), max_size=2, unique=True)
            )
        out.append(acct)
    return out


@st.composite
def recent_trades(
    draw: st.DrawFn, accts: list[dict[str, Any]], secs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        side = draw(st.sampled_from(["buy", "sell"]))
        trade: dict[str, Any] = {
            "account_id": draw(st.sampled_from([a["account_id"] for a in accts])),
            "symbol": draw(st.sampled_from(sorted(secs))),
            "side": side,
            "quantity": float(draw(st.integers(1, 100))),
            "date": _day(
                draw(st.one_of(st.sampled_from([0, 1, 10, 29, 30, 31]), st.integers(0, 30)))
            ),
        }
        if side == "sell":
            trade["realized_gain"] = draw(st.sampled_from([-1500.0, -200.0, 0.0, 300.0, 2500.0]))
        out.append(trade)
    return out


@st.composite
def households(
    draw: st.DrawFn,
    modes: tuple[str, ...] = ("rebalance", "rebalance", "guardrail", "monitor"),
    decimals: int = 7,
    controls: bool = False,
) -> dict[str, Any]:
    """A household; `decimals` is how many decimals fractional lot quantities may have;
    `controls` adds the advisor controls of CONTRACT.md section 1 (yearly tax budget with this
    year's realized gains, allow_sells, max_turnover, defer_short_term_days,
    target_tax_budget_bps, locked lots)."""
    n_classes = draw(st.integers(1, len(CLASSES)))
    classes = list(CLASSES[:n_classes])
    secs = draw(securities(classes))
    accts = draw(accounts(secs, classes, decimals))
    target_names = [*classes, "cash"] if draw(st.integers(0, 3)) else classes
    target = draw(weights(target_names))
    h: dict[str, Any] = {
        "schema": "household/v1",
        "household_id": f"hh-{draw(st.integers(0, 9999)):04d}",
        "as_of": AS_OF.isoformat(),
        "mode": draw(st.sampled_from(modes)),
        "target": target,
        "tax": {"short_term_rate": 0.408, "long_term_rate": 0.238},
        "buy_list": draw(buy_lists(secs, classes)),
        "options": {
            "min_trade_value": draw(st.sampled_from([0.0, 0.0, 50.0, 250.0, 1000.0])),
            "allow_cross_account_swaps": draw(st.booleans()),
            "harvest_losses": draw(st.booleans()),
            "harvest_min_loss": draw(st.sampled_from([100.0, 500.0, 2000.0])),
            "max_realized_gain": draw(
                st.one_of(st.none(), st.none(), st.sampled_from([0.0, 500.0, 5000.0]))
            ),
            "transaction_cost_bps": draw(st.sampled_from([0.0, 2.0, 10.0])),
        },
        "accounts": accts,
        "securities": secs,
        "recent_trades": draw(recent_trades(accts, secs)),
    }
    if draw(st.booleans()):
        h["bands"] = {
            "absolute": draw(st.sampled_from([0.02, 0.05, 0.1])),
            "relative": draw(st.sampled_from([0.1, 0.25, 0.5])),
            "floor": draw(st.sampled_from([0.0, 0.005, 0.01])),
            "overrides": {"cash": {"absolute": 0.02}} if draw(st.booleans()) else {},
        }
    if draw(st.booleans()):
        h["location"] = {c: list(draw(st.permutations(ACCOUNT_TYPES))) for c in classes[:2]}
    if controls:
        h["options"].update(draw(control_options()))
        if draw(st.booleans()):
            h["realized_this_year"] = {
                "short_term_gain": draw(st.sampled_from([0.0, -2000.0, 1500.0, 8000.0])),
                "long_term_gain": draw(st.sampled_from([0.0, 3000.0, -500.0, 12000.0])),
            }
        for a in accts:
            for lot in a["lots"]:
                if draw(st.integers(0, 5)) == 0:
                    lot["locked"] = True
    return h


@st.composite
def control_options(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "max_realized_gain_year": draw(
            st.one_of(st.none(), st.sampled_from([0.0, 1000.0, 10000.0]))
        ),
        "allow_sells": draw(st.sampled_from([True, True, False])),
        "max_turnover": draw(st.one_of(st.none(), st.sampled_from([0.0, 0.02, 0.1, 0.5]))),
        "defer_short_term_days": draw(st.sampled_from([0, 0, 30, 90])),
        "target_tax_budget_bps": draw(st.sampled_from([0.0, 0.0, 5.0, 100.0])),
    }
