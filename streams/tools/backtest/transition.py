"""The transition scenario: a legacy household moved to its target under a yearly tax budget.

One taxable account of concentrated, low-basis, long-term lots (a single stock and a US equity
fund, 100% US equity against a 45/15/37/3 target) is managed by umh on the backtest's price
paths, twice: with `options.max_realized_gain_year` (the budget; the solver reads it with the
snapshot's `realized_this_year`, which the backtest keeps from its fills and resets on 1
January) and without it (the whole move at once). No client flows, no harvesting, so that the
budget is the only difference.

Reported: each year's net realized gain against the budget, the first day inside every band,
whether every calendar year before that day used its whole budget (then no path reaches the
bands in fewer years under that budget: each year took all it could), an estimate of the years
needed (the gain the unbudgeted move realizes on its first rebalance, divided by the budget,
rounded up; prices move, so only an estimate), and both runs' taxes and after-tax values.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np

from schemas import Account, Household, Lot, Options, Security, TaxRates

from .engine import Market, StrategyRun, simulate_household
from .strategies import Strategy

#: Default yearly budget of net realized gains (USD).
BUDGET_USD = 200_000.0
LEGACY_VALUE_USD = 2_000_000.0
TARGET = {"us_equity": 0.45, "intl_equity": 0.15, "fixed_income": 0.37, "cash": 0.03}
#: (share of the value, basis as a share of market value, years held) of each legacy lot.
STOCK_LOTS = ((0.30, 0.10, 14), (0.25, 0.20, 11), (0.15, 0.35, 8))
FUND_LOTS = ((0.20, 0.40, 9), (0.09, 0.55, 6))
CASH_SHARE = 0.01
#: A year's realized gain counts as within the budget up to this much above it.
BUDGET_TOL_USD = 1.0
#: A year "used its whole budget" when it realized at least this share of it (whole shares and
#: minimum trade sizes leave a little unused).
BUDGET_USED_SHARE = 0.98


def _first(universe: dict[str, Security], cls: str, *, single: bool | None = None) -> str:
    singles = {"AAPL", "MSFT", "XOM", "JNJ"}
    for symbol in sorted(universe):
        sec = universe[symbol]
        if sec.asset_class != cls or sec.group.startswith("muni-"):
            continue
        if single is None or (symbol in singles) == single:
            return symbol
    raise ValueError(f"the universe has no {cls} security for the transition scenario")


def legacy_household(universe: dict[str, Security], as_of: date) -> Household:
    """The legacy household (see the module docstring), priced with the universe's prices."""
    try:
        stock = _first(universe, "us_equity", single=True)
    except ValueError:
        stock = _first(universe, "us_equity", single=False)
    fund = _first(universe, "us_equity", single=False)
    buy_list: dict[str, tuple[str, ...]] = {
        "us_equity": (fund,),
        "intl_equity": (_first(universe, "intl_equity"),),
        "fixed_income": (_first(universe, "fixed_income"),),
    }
    lots = []
    for symbol, spec in ((stock, STOCK_LOTS), (fund, FUND_LOTS)):
        price = float(universe[symbol].price or 1.0)
        whole = not universe[symbol].fractional
        for i, (share, basis_share, years) in enumerate(spec):
            quantity = share * LEGACY_VALUE_USD / price
            quantity = float(math.floor(quantity)) if whole else round(quantity, 6)
            lots.append(
                Lot(
                    f"LEG-{symbol}-{i + 1}",
                    symbol,
                    quantity,
                    round(quantity * price * basis_share, 2),
                    as_of - timedelta(days=round(365.25 * years)),
                )
            )
    held = {lot.symbol for lot in lots} | {s for ss in buy_list.values() for s in ss}
    return Household(
        household_id="hh-legacy-transition",
        as_of=as_of,
        target=dict(TARGET),
        accounts=(
            Account(
                "hh-legacy-TAX", "taxable", cash=CASH_SHARE * LEGACY_VALUE_USD, lots=tuple(lots)
            ),
        ),
        securities={s: universe[s] for s in sorted(held)},
        tax=TaxRates(0.408, 0.238),
        buy_list=buy_list,
        options=Options(min_trade_value=250.0, transaction_cost_bps=2.0),
    )


@dataclass
class TransitionRun:
    name: str
    budget_usd: float | None
    realized_by_year: dict[int, float] = field(default_factory=dict)
    days_to_bands: int | None = None  # business days to the first day inside every band
    first_day_in_bands: str | None = None
    calendar_years_used: int | None = None
    taxes_paid_usd: float = 0.0
    after_tax_value_usd: float = 0.0
    first_rebalance_gain_usd: float = 0.0
    max_abs_drift: list[float] = field(default_factory=list)


def _realized_by_year(run: StrategyRun) -> dict[int, float]:
    out: dict[int, float] = defaultdict(float)
    for t in run.trades:
        if t.side == "sell" and t.taxable and not t.prior:
            out[t.day.year] += t.realized_usd
    return dict(sorted(out.items()))


def run_transition(
    universe: dict[str, Security],
    market: Market,
    *,
    budget_usd: float = BUDGET_USD,
    time_limit_s: float = 1.0,
) -> dict[str, Any]:
    """Both runs on the market's paths; the figures summary.json and report.md show."""
    days = market.paths.days
    prices = {s: float(market.paths.price[0, market.paths.column(s)]) for s in universe}
    priced = {s: replace(sec, price=prices[s]) for s, sec in universe.items()}
    h = legacy_household(priced, days[0])
    strategies = (
        Strategy("transition_budget", "umh", yearly_gain_budget=budget_usd),
        Strategy("transition_unbudgeted", "umh"),
    )
    result = simulate_household(
        h, (), market, strategies=strategies, time_limit_s=time_limit_s, keep_trades=True
    )
    runs: dict[str, TransitionRun] = {}
    for s in strategies:
        run = result.runs[s.name]
        out = TransitionRun(s.name, s.yearly_gain_budget)
        out.realized_by_year = _realized_by_year(run)
        inside = np.flatnonzero(~run.out_of_band)
        if inside.size:
            t = int(inside[0])
            out.days_to_bands = t
            out.first_day_in_bands = days[t].isoformat()
            out.calendar_years_used = days[t].year - days[0].year + 1
        out.taxes_paid_usd = sum(run.taxes_by_year.values())
        out.after_tax_value_usd = run.after_tax_value_usd
        sells = [t for t in run.trades if t.side == "sell" and not t.prior]
        if sells:
            first = sells[0].day
            out.first_rebalance_gain_usd = sum(t.realized_usd for t in sells if t.day == first)
        out.max_abs_drift = [float(run.max_abs_drift[i]) for i in market.sample_days]
        runs[s.name] = out
    budgeted, free = runs["transition_budget"], runs["transition_unbudgeted"]
    needed = free.first_rebalance_gain_usd
    fewest = max(1, math.ceil(needed / budget_usd)) if budget_usd > 0 else None
    within = all(v <= budget_usd + BUDGET_TOL_USD for v in budgeted.realized_by_year.values())
    arrival = (
        int(budgeted.first_day_in_bands[:4]) if budgeted.first_day_in_bands is not None else None
    )
    # The years before the bands; never reached: every year the run saw to its December.
    last_full = days[-1].year if days[-1].month == 12 else days[-1].year - 1
    before = range(days[0].year, arrival if arrival is not None else last_full + 1)
    full = all(
        budgeted.realized_by_year.get(y, 0.0) >= BUDGET_USED_SHARE * budget_usd for y in before
    )
    return {
        "household": h.household_id,
        "start_value": round(LEGACY_VALUE_USD, 2),
        "budget_per_year": budget_usd,
        "gain_to_reach_bands_at_once": round(needed, 2),
        "estimated_calendar_years": fewest,
        "within_budget_every_year": within,
        "whole_budget_used_every_year_before_bands": full,
        "runs": {
            name: {
                "budget_per_year": r.budget_usd,
                "realized_by_year": {str(y): round(v, 2) for y, v in r.realized_by_year.items()},
                "first_day_in_bands": r.first_day_in_bands,
                "business_days_to_bands": r.days_to_bands,
                "calendar_years_used": r.calendar_years_used,
                "taxes_paid": round(r.taxes_paid_usd, 2),
                "after_tax_value": round(r.after_tax_value_usd, 2),
            }
            for name, r in runs.items()
        },
        "path": {
            "days": [days[i].isoformat() for i in market.sample_days],
            **{name: [round(x, 6) for x in r.max_abs_drift] for name, r in runs.items()},
        },
        "tolerance": 0.05,
    }


def plot_transition(summary: dict[str, Any], out: Any) -> str:
    """transition.png: the path (max |drift| by month) and each year's realized gain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = summary["path"]
    days = [date.fromisoformat(d) for d in path["days"]]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7))
    for name in summary["runs"]:
        ax1.plot(days, np.array(path[name]) * 100, label=name)
    ax1.axhline(summary["tolerance"] * 100, color="grey", linestyle="--", label="band (5 pp)")
    ax1.set_title("Legacy household: largest |weight - target| (month ends)")
    ax1.set_ylabel("percentage points")
    ax1.legend()
    ax1.grid(alpha=0.3)
    years = sorted({int(y) for r in summary["runs"].values() for y in r["realized_by_year"]})
    width = 0.4
    for k, (name, r) in enumerate(summary["runs"].items()):
        values = [r["realized_by_year"].get(str(y), 0.0) / 1e3 for y in years]
        ax2.bar([y + (k - 0.5) * width for y in years], values, width=width, label=name)
    ax2.axhline(summary["budget_per_year"] / 1e3, color="grey", linestyle="--", label="budget")
    ax2.set_title("Net realized gain by calendar year")
    ax2.set_ylabel("thousand USD")
    ax2.set_xlabel("year")
    ax2.set_xticks(years)
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "transition.png", dpi=110)
    plt.close(fig)
    return "transition.png"
