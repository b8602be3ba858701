"""The backtest's outputs: `summary.json`, `report.md` and PNG plots (matplotlib, Agg).

Every figure is a sum over the households of the book (or a mean over household-days); the
tax alpha of a strategy is its after-tax value against the per-account baseline's, annualised,
on the liquidation basis (the headline) and held for life. The alpha of `household` is
attributed to location, lot relief, harvesting and deferral by paired runs (`attribution`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import prices as price_model
from .engine import HouseholdResult, Market
from .strategies import BASELINE, STRATEGIES
from .transition import plot_transition

FIELDS = (
    "taxes_paid",
    "realized_short_term",
    "realized_long_term",
    "harvested_losses",
    "after_tax_value",
    "tax_alpha_bps_per_year",
    "tax_alpha_held_for_life_bps_per_year",
    "mean_abs_drift",
    "pct_days_out_of_band",
    "turnover_per_year",
    "orders",
    "wash_sale_violations",
    "hard_rule_violations",
)


@dataclass
class Totals:
    """One strategy summed over households (arrays per day or per sample)."""

    value_usd: np.ndarray
    after_tax_usd: np.ndarray
    held_for_life_usd: np.ndarray
    drift_sum: np.ndarray
    out_of_band: np.ndarray
    taxes_by_year: Counter[int] = field(default_factory=Counter)
    scalars: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    violations: int | None = None
    samples: list[str] = field(default_factory=list)
    wash_samples: list[str] = field(default_factory=list)
    households: int = 0


def aggregate(results: Iterable[HouseholdResult], market: Market) -> dict[str, Totals]:
    n_days, n_samples = len(market.paths.days), len(market.sample_days)
    totals = {
        s.name: Totals(
            np.zeros(n_days),
            np.zeros(n_samples),
            np.zeros(n_samples),
            np.zeros(n_days),
            np.zeros(n_days),
        )
        for s in STRATEGIES
    }
    for result in sorted(results, key=lambda r: r.household_id):
        for name, run in result.runs.items():
            t = totals[name]
            t.households += 1
            t.value_usd += run.value_usd
            t.after_tax_usd += run.after_tax_usd
            t.held_for_life_usd += run.held_for_life_usd
            t.drift_sum += run.max_abs_drift
            t.out_of_band += run.out_of_band
            t.taxes_by_year.update(run.taxes_by_year)
            t.statuses.update(run.statuses)
            for key in (
                "start_value_usd",
                "final_value_usd",
                "after_tax_value_usd",
                "held_for_life_value_usd",
                "realized_short_usd",
                "realized_long_usd",
                "harvested_usd",
                "traded_usd",
                "orders",
                "solves",
                "wash_sales",
                "deposits_usd",
                "withdrawals_usd",
                "tax_payments_usd",
                "tax_refunds_usd",
                "ordinary_offset_usd",
                "owed_usd",
                "costs_usd",
            ):
                t.scalars[key] += getattr(run, key)
            t.scalars["fill_errors"] += len(run.fill_errors)
            if run.hard_rule_violations is not None:
                t.violations = (t.violations or 0) + run.hard_rule_violations
            t.samples.extend(run.violation_samples + run.fill_errors)
            t.wash_samples.extend(run.wash_sale_samples)
    return totals


#: The literature's figures for the value of loss harvesting, quoted beside ours.
LITERATURE = (
    "Chaudhuri, Burnham and Lo (FAJ 2020): 0.82%/yr with the wash-sale rule, simulated "
    "US equity (S&P 500 stocks), fresh cash invested at the start, 1926-2018, "
    "35%/15% tax rates; Betterment's TLH+ white paper: ~0.77%/yr, fund portfolios with "
    "fresh cash, 2000-2013 history"
)


def _alpha(value: float, base: float, years: float) -> float:
    """(value / base) ^ (1 / years) - 1, in bp a year (0 when either is not positive)."""
    if base <= 0 or value <= 0:
        return 0.0
    return (math.pow(value / base, 1.0 / years) - 1.0) * 1e4


def _log_bp(value: float, base: float, years: float) -> float:
    """ln(value / base) / years in bp a year: additive along a chain of paired runs."""
    if base <= 0 or value <= 0:
        return 0.0
    return math.log(value / base) / years * 1e4


#: The attribution's chain of paired runs: (component, better run, worse run).
ATTRIBUTION = (
    ("harvesting", "household", "household_no_harvest"),
    ("location", "household_no_harvest", "household_no_location"),
    ("deferral", "household_no_location", "per_account_hifo"),
    ("lot_relief", "per_account_hifo", "per_account"),
)


def attribution(totals: Mapping[str, Totals], years: float, key: str) -> dict[str, float]:
    """`household` against `per_account` in bp a year, split along `ATTRIBUTION` (each link a
    difference of two runs on the same paths and flows; the links sum to the total)."""
    value = {name: t.scalars[key] for name, t in totals.items()}
    if any(run not in value for _, a, b in ATTRIBUTION for run in (a, b)):
        return {}
    out = {name: round(_log_bp(value[a], value[b], years), 2) for name, a, b in ATTRIBUTION}
    out["total"] = round(_log_bp(value["household"], value[BASELINE], years), 2)
    return out


def summarize(
    totals: Mapping[str, Totals],
    market: Market,
    parameters: Mapping[str, Any],
    transition: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    days = market.paths.days
    years = max((days[-1] - days[0]).days / 365.25, 1e-9)
    base = totals[BASELINE].scalars["after_tax_value_usd"]
    base_life = totals[BASELINE].scalars["held_for_life_value_usd"]
    strategies: dict[str, Any] = {}
    for name, t in totals.items():
        s = t.scalars
        hh_days = max(t.households * len(days), 1)
        mean_value = float(t.value_usd.mean()) if len(days) else 0.0
        after_tax = s["after_tax_value_usd"]
        alpha = _alpha(after_tax, base, years)
        strategies[name] = {
            "taxes_paid": round(sum(t.taxes_by_year.values()), 2),
            "realized_short_term": round(s["realized_short_usd"], 2),
            "realized_long_term": round(s["realized_long_usd"], 2),
            "harvested_losses": round(s["harvested_usd"], 2),
            "after_tax_value": round(after_tax, 2),
            "tax_alpha_bps_per_year": round(alpha, 2),
            "after_tax_value_held_for_life": round(s["held_for_life_value_usd"], 2),
            "tax_alpha_held_for_life_bps_per_year": round(
                _alpha(s["held_for_life_value_usd"], base_life, years), 2
            ),
            "mean_abs_drift": round(float(t.drift_sum.sum()) / hh_days, 6),
            "pct_days_out_of_band": round(100.0 * float(t.out_of_band.sum()) / hh_days, 3),
            "turnover_per_year": round(s["traded_usd"] / mean_value / years, 4)
            if mean_value > 0
            else 0.0,
            "orders": int(s["orders"]),
            "wash_sale_violations": int(s["wash_sales"]),
            "hard_rule_violations": t.violations,
            # context
            "pre_tax_value": round(s["final_value_usd"], 2),
            "start_value": round(s["start_value_usd"], 2),
            "deposits": round(s["deposits_usd"], 2),
            "withdrawals_paid": round(s["withdrawals_usd"], 2),
            "tax_payments": round(s["tax_payments_usd"], 2),
            "tax_refunds": round(s["tax_refunds_usd"], 2),
            "ordinary_income_offset": round(s["ordinary_offset_usd"], 2),
            "unpaid_requests": round(s["owed_usd"], 2),
            "transaction_costs": round(s["costs_usd"], 2),
            "solves": int(s["solves"]),
            "statuses": dict(sorted(t.statuses.items())),
            "fill_errors": int(s["fill_errors"]),
            "taxes_by_year": {str(y): round(v, 2) for y, v in sorted(t.taxes_by_year.items())},
            "violation_samples": t.samples[:10],
            "wash_sale_samples": t.wash_samples[:10],
        }

    def versus(a: str, b: str, key: str) -> float | None:
        if a not in totals or b not in totals:
            return None
        return round(_log_bp(totals[a].scalars[key], totals[b].scalars[key], years), 2)

    harvesting = {
        f"{a}_vs_household_no_harvest_bps_per_year": {
            "liquidation": versus(a, "household_no_harvest", "after_tax_value_usd"),
            "held_for_life": versus(a, "household_no_harvest", "held_for_life_value_usd"),
        }
        for a in ("household", "household_harvest_always")
    }
    harvesting["literature"] = LITERATURE  # type: ignore[assignment]
    return {
        "schema": "backtest_summary/v1",
        "parameters": dict(parameters),
        "period": {
            "first_day": days[0].isoformat(),
            "last_day": days[-1].isoformat(),
            "business_days": len(days),
            "years": round(years, 3),
        },
        "baseline": BASELINE,
        "strategies": strategies,
        "harvesting": harvesting,
        "attribution": {
            "liquidation": attribution(totals, years, "after_tax_value_usd"),
            "held_for_life": attribution(totals, years, "held_for_life_value_usd"),
            "chain": [list(link) for link in ATTRIBUTION],
        },
        "transition": dict(transition) if transition is not None else None,
    }


# --------------------------------------------------------------------------- plots


def plot(totals: Mapping[str, Totals], market: Market, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = market.paths.days
    names: list[str] = []

    fig, ax = plt.subplots(figsize=(8, 4.5))
    years = sorted({d.year for d in days})
    for name, t in totals.items():
        cumulative = np.cumsum([t.taxes_by_year.get(y, 0.0) for y in years]) / 1e6
        ax.step(years, cumulative, where="post", label=name, marker="o", markersize=3)
    ax.set_title("Cumulative taxes assessed (all households)")
    ax.set_xlabel("tax year")
    ax.set_ylabel("million USD")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "taxes.png", dpi=110)
    plt.close(fig)
    names.append("taxes.png")

    sample_days = [days[i] for i in market.sample_days]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    base = totals[BASELINE].after_tax_usd
    for name, t in totals.items():
        ax1.plot(sample_days, t.after_tax_usd / 1e6, label=name)
        rel = np.divide(t.after_tax_usd - base, base, out=np.zeros_like(base), where=base > 0)
        ax2.plot(sample_days, rel * 1e4, label=name)
    ax1.set_title("After-tax wealth (liquidation value net of all taxes), all households")
    ax1.set_ylabel("million USD")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.set_title(f"After-tax wealth against {BASELINE}")
    ax2.set_ylabel("bps of the baseline")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "wealth.png", dpi=110)
    plt.close(fig)
    names.append("wealth.png")

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    window = 21
    kernel = np.ones(window) / window
    for name, t in totals.items():
        n = max(t.households, 1)
        drift = np.convolve(t.drift_sum / n, kernel, mode="same")
        oob = np.convolve(t.out_of_band / n, kernel, mode="same")
        ax1.plot(days, drift * 100, label=name)
        ax2.plot(days, oob * 100, label=name)
    ax1.set_title("Mean household max |drift| (21-day average)")
    ax1.set_ylabel("percentage points")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.set_title("Households out of band (21-day average)")
    ax2.set_ylabel("% of households")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "drift.png", dpi=110)
    plt.close(fig)
    names.append("drift.png")
    return names


# --------------------------------------------------------------------------- report.md


def table(summary: Mapping[str, Any]) -> str:
    head = (
        "| strategy | taxes paid | realized ST | realized LT | harvested | after-tax value "
        "| tax alpha bps/yr | held for life bps/yr | mean max drift | days out of band "
        "| turnover/yr | orders | wash sales | hard-rule violations |"
    )
    rows = [head, "|" + " --- |" * 14]
    for name, s in summary["strategies"].items():
        hrv = "n/a" if s["hard_rule_violations"] is None else str(s["hard_rule_violations"])
        rows.append(
            f"| {name} | {s['taxes_paid']:,.0f} | {s['realized_short_term']:,.0f} "
            f"| {s['realized_long_term']:,.0f} | {s['harvested_losses']:,.0f} "
            f"| {s['after_tax_value']:,.0f} | {s['tax_alpha_bps_per_year']:+.1f} "
            f"| {s['tax_alpha_held_for_life_bps_per_year']:+.1f} "
            f"| {s['mean_abs_drift'] * 100:.2f}% | {s['pct_days_out_of_band']:.2f}% "
            f"| {s['turnover_per_year']:.1%} | {s['orders']:,} | {s['wash_sale_violations']} "
            f"| {hrv} |"
        )
    return "\n".join(rows)


def markdown(summary: Mapping[str, Any], plots: list[str]) -> str:
    p = summary["parameters"]
    period = summary["period"]
    pm = price_model
    corr = pm.CLASS_CORR
    lines = [
        "# umh backtest",
        "",
        f"`{p['command']}`",
        "",
        f"{p['households']} households, {period['first_day']} to {period['last_day']} "
        f"({period['business_days']} business days, {period['years']} years), seed {p['seed']}, "
        f"{p['symbols']} securities, prices: {p['prices']}. Wall time {p['elapsed_s']:.0f} s "
        f"on {p['jobs']} worker process(es). Hard rules checked by `{p['checker']}`.",
        "",
        "## Results (sums over all households)",
        "",
        table(summary),
        "",
        "Money in USD. Context per strategy (solves, statuses, deposits, withdrawals, "
        "transaction costs, unpaid requests, tax by year, violation samples) is in "
        "`summary.json`.",
        "",
        "What the columns mean:",
        "",
        "- **taxes paid**: the tax assessed on gains realized in taxable accounts during the "
        "backtest, year by year (the last, partial year included), after netting short- and "
        "long-term gains and losses, setting up to 3,000 USD a year of net loss against "
        "ordinary income (at the short-term rate; a year where that saves more than the gains "
        "cost counts negative, and the saving is paid into the taxable account) and carrying "
        "the rest forward (`solver.harvest.year_tax`).",
        "- **realized ST / LT**: net short- and long-term gains realized in taxable accounts "
        "(negative: net losses). **harvested**: losses realized by `tax_loss_harvest` sells.",
        "- **after-tax value**: at the end, the value of every account less the tax still owed "
        "on this year's gains and on liquidating every taxable lot (with the carried losses), "
        "less the tax-deferred accounts taxed as ordinary income (the short-term rate), less "
        "requests not yet paid. Tax bills were paid from the portfolio along the way.",
        f"- **tax alpha**: (after-tax value / {summary['baseline']}'s) ^ (1 / years) - 1, in "
        "basis points a year, on this liquidation basis (the headline). **held for life**: "
        "the same with the taxable lots never sold (no tax on their unrealized gains, as with "
        "a step-up in basis; the tax-deferred accounts still taxed as income): harvesting's "
        "lower replacement basis then costs nothing.",
        "- **mean max drift**: the household's largest |weight - target| over its classes "
        "(section 1 of the contract), averaged over household-days. **days out of band**: "
        "share of household-days with any class out of its band, measured on the whole "
        "household for every strategy (also for per_account, which manages accounts).",
        "- **turnover/yr**: traded value over the mean portfolio value, per year.",
        "- **wash sales**: sales at a loss in a taxable account with a buy of the same wash "
        "group in any account within 30 days before or after, counted once per sale, lot by lot, "
        "by one function for every strategy.",
        "- **hard-rule violations**: problems the independent checker found in umh solve "
        "results (n/a: not a umh strategy).",
        "",
        "## Plots",
        "",
        *[f"![{name}]({name})" for name in plots],
        "",
        "## Parameters",
        "",
        "### Prices",
        "",
        "Business days (Monday-Friday, no holidays). Daily log returns: class factor "
        "(one per class) + wash-group factor + idiosyncratic noise, with drift "
        "mu - sigma^2/2 (see `streams/backtest/prices.py`):",
        "",
        "| class | drift (annual) | factor volatility (annual) |",
        "| --- | --- | --- |",
        *[f"| {c} | {pm.CLASS_DRIFT[c]:.1%} | {pm.CLASS_VOL[c]:.1%} |" for c in pm.CLASSES],
        "",
        f"Factor correlations: US/intl equity {corr[0][1]}, equity/bonds {corr[0][2]}. "
        f"Wash-group factor volatility: equity funds {pm.GROUP_VOL['equity_fund']:.1%}, bond "
        f"funds {pm.GROUP_VOL['bond_fund']:.1%}, single stocks "
        f"{pm.GROUP_VOL['single_stock']:.1%}; idiosyncratic {pm.IDIO_VOL:.1%}. Funds in one "
        "wash group correlate ~0.999 daily; two groups of one equity class ~0.93. Balanced "
        "funds move with their look-through exposures.",
        "",
        "### Book and flows",
        "",
        "Households from `tools.synthetic.make_household`: 2-5 accounts (30/35/20/15%) mixing "
        "taxable, tax-deferred and tax-exempt, 40-120 lots with embedded gains and losses "
        "(bought over the past 12 years), targets and 5/25 bands (some cash overrides), "
        "per-account muni buy lists, screens, no-bond rules, `max_realized_gain` budgets on "
        "~10%, 2 bp transaction cost, 250 USD minimum trade. ~30% start out of band.",
        "",
        "Cash flows (`streams/backtest/flows.py`), the same for every strategy: 60% of "
        "households deposit 0.5-1.5% of their starting value each quarter, the others request "
        "a 0.75-1.25% withdrawal each quarter (from the IRA when there is one); each year "
        "has a 15% chance of a one-off 2-6% withdrawal request. Requests are paid once the "
        "account's cash covers them. Taxes are assessed on the first business day of the next "
        "year and requested from the largest taxable account like a withdrawal: every strategy "
        "must raise that cash itself.",
        "",
        "### Execution",
        "",
        "Orders decided on a day's close fill at the next day's close, through "
        "`worker.state.apply_fill` (sells relieve the order's lots, buys create lots); the "
        "fill price carries the 2 bp cost. A buy the new price makes dearer than the account's "
        "cash above `cash_needed` is cut to fit. umh strategies solve only when "
        "`solver.triggers` fires; after a solve that does not end `rebalanced` the household "
        "is quiet for 5 business days unless a cash flow or tax bill arrives.",
        "",
        "Strategies: `household` = umh rebalance mode, harvesting by value (below); "
        "`household_harvest_always` = the same harvesting every loss of at least "
        "`harvest_min_loss` (the rule before values); `household_no_harvest` = harvesting off; "
        "`household_no_location` = harvesting off and no `location` preferences; `guardrail` = "
        "umh guardrail mode; `per_account` = `solver.per_account.per_account_orders` when an "
        "account leaves its bands or lacks cash (FIFO lots; cash still short is raised FIFO); "
        "`per_account_hifo` = the same relieving the highest-cost lots first; `buy_and_hold` = "
        "never trades except to raise requested cash, selling the account's oldest lots first; "
        "deposits stay cash. Every umh solve sees the year's `realized_this_year` (kept from "
        "the fills, reset on 1 January).",
        "",
        *_harvest_section(summary),
        *_wash_section(summary),
        *_attribution_section(summary),
        *_transition_section(summary),
    ]
    return "\n".join(lines)


def _harvest_section(summary: Mapping[str, Any]) -> list[str]:
    h = summary["harvesting"]
    by_value = h["household_vs_household_no_harvest_bps_per_year"]
    always = h["household_harvest_always_vs_household_no_harvest_bps_per_year"]
    s = summary["strategies"]

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.2f}"

    return [
        "## Harvest by value",
        "",
        "A loss is harvested only when `solver.harvest.harvest_value` is positive: the tax it "
        "saves this year (against the year's gains, short-term first for a short-term loss, "
        "then up to 3,000 USD of ordinary income at the short-term rate, priced with the "
        "snapshot's `realized_this_year`), plus what its carry-forward saves against next "
        "year's 3,000 USD of ordinary income (the rest of the carry-forward is assumed to wait "
        "for the replacement's own gain, which it cancels), less the tax its replacement's "
        "lower basis adds "
        "later (long-term rate, discounted 10 years at 5%), less the round trip's trading "
        "costs; and only above `harvest_min_loss`. The assumptions are "
        "`solver.harvest.HarvestRule`'s, documented in `harvest_value`.",
        "",
        "| against household_no_harvest | liquidation bp/yr | held for life bp/yr "
        "| harvested | turnover/yr |",
        "| --- | --- | --- | --- | --- |",
        f"| household (by value) | {fmt(by_value['liquidation'])} "
        f"| {fmt(by_value['held_for_life'])} | {s['household']['harvested_losses']:,.0f} "
        f"| {s['household']['turnover_per_year']:.1%} |",
        f"| household_harvest_always | {fmt(always['liquidation'])} "
        f"| {fmt(always['held_for_life'])} "
        f"| {s['household_harvest_always']['harvested_losses']:,.0f} "
        f"| {s['household_harvest_always']['turnover_per_year']:.1%} |",
        "",
        "(ln of the after-tax value ratio / years.) Conditions here: a book of mixed accounts "
        "(only the taxable ones can harvest), lots bought over 12 years before the start (so "
        "most carry gains), 2-5 accounts, bonds and equities, 2 bp costs, quarterly flows, "
        "a 10-year horizon ending in liquidation. The literature's figures, for comparison, "
        f"come from other conditions: {h['literature']}. Fresh cash in volatile single stocks "
        "finds far more losses than seasoned fund lots.",
        "",
    ]


def _wash_section(summary: Mapping[str, Any]) -> list[str]:
    umh = {
        name: s
        for name, s in summary["strategies"].items()
        if s["hard_rule_violations"] is not None and s["wash_sale_violations"]
    }
    if not umh:
        return []
    samples = [x for s in umh.values() for x in s["wash_sale_samples"]][:6]
    return [
        "## Wash sales in umh strategies",
        "",
        ", ".join(f"`{n}` {s['wash_sale_violations']}" for n, s in umh.items())
        + ". The solver judges a loss at `est_price`, as the contract's `realized` does; the "
        "fill realizes the price less the transaction cost. Every case examined (seed 23) is "
        "a lot sold at a gain smaller than its selling cost, in a wash group bought within 30 "
        "days: a loss sale at the fill (see each lot's gain at the fill below). Samples:",
        "",
        *[f"- {x}" for x in samples],
        "",
    ]


def _attribution_section(summary: Mapping[str, Any]) -> list[str]:
    a = summary["attribution"]
    liq, life = a["liquidation"], a["held_for_life"]
    if not liq:
        return []
    names = {
        "location": "location (umh with `location` against umh without)",
        "lot_relief": "lot relief (per-account HIFO against per-account FIFO)",
        "harvesting": "harvesting (household against household_no_harvest)",
        "deferral": "deferral and household-level trading (umh without location or "
        "harvesting against per-account HIFO)",
    }
    return [
        "## Where the alpha comes from",
        "",
        "`household` against `per_account`, split along a chain of paired runs on the same "
        "paths, flows and book, each link changing one thing: ln(after-tax value of the better "
        "run / the worse) / years, in bp a year, so the links add up to the total exactly.",
        "",
        "| component | liquidation bp/yr | held for life bp/yr |",
        "| --- | --- | --- |",
        *[
            f"| {names[k]} | {liq[k]:+.2f} | {life[k]:+.2f} |"
            for k in ("location", "lot_relief", "harvesting", "deferral")
        ],
        f"| **total** | {liq['total']:+.2f} | {life['total']:+.2f} |",
        "",
        "Method: location = what umh's `location` preferences add (new money for a class goes "
        "to the account type the class is best held in); lot relief = what relieving the "
        "highest-cost lots first adds to the account-level baseline, with nothing else "
        "changed; harvesting = what harvesting by value adds to umh; deferral = the rest of "
        "the gap between umh (no location, no harvesting) and the HIFO baseline: trading in "
        "tax-deferred and tax-exempt accounts first, one household-wide trade instead of one "
        "per account, band-edge trading, long-term lots first; gains not realized compound "
        "untaxed until the end. A chain's split depends on its order (a link measured on "
        "another base may differ): this one adds each capability to the one before.",
        "",
    ]


def _transition_section(summary: Mapping[str, Any]) -> list[str]:
    t = summary.get("transition")
    if not t:
        return []
    b = t["runs"]["transition_budget"]
    f = t["runs"]["transition_unbudgeted"]
    rows = sorted({y for r in t["runs"].values() for y in r["realized_by_year"]})
    return [
        "## Transition of a legacy household under a yearly tax budget",
        "",
        f"`{t['household']}`: {t['start_value']:,.0f} USD in one taxable account, all US "
        "equity (a single stock and a fund, long-term lots with 10-55% basis) against a "
        "45/15/37/3 target. Managed by umh with `options.max_realized_gain_year` = "
        f"{t['budget_per_year']:,.0f} USD (the solver reads the snapshot's "
        "`realized_this_year`, kept from the fills and reset on 1 January) and, for "
        "comparison, without a budget. No flows, no harvesting.",
        "",
        "| year | realized (budget) | realized (unbudgeted) |",
        "| --- | --- | --- |",
        *[
            f"| {y} | {b['realized_by_year'].get(y, 0.0):,.0f} "
            f"| {f['realized_by_year'].get(y, 0.0):,.0f} |"
            for y in rows
        ],
        "",
        f"- Within the budget every year: **{t['within_budget_every_year']}**.",
        f"- Inside every band: budgeted on {b['first_day_in_bands']} "
        f"(calendar years used: {b['calendar_years_used']}); unbudgeted on "
        f"{f['first_day_in_bands']}. Every year before the bands used its whole budget "
        f"(>= 98% of it): **{t['whole_budget_used_every_year_before_bands']}**, so no path "
        "gets there in fewer calendar years under this budget. Estimated at the start: "
        f"{t['estimated_calendar_years']} years (the {t['gain_to_reach_bands_at_once']:,.0f} "
        "USD of gain the unbudgeted move realizes on its first rebalance / the budget, "
        "rounded up; prices move on the way).",
        "- The after-tax values differ mostly by the market: the budgeted run holds the "
        "concentrated position for longer, for better or worse on this path.",
        f"- Taxes paid: {b['taxes_paid']:,.0f} budgeted against {f['taxes_paid']:,.0f} "
        f"unbudgeted; after-tax value at the end {b['after_tax_value']:,.0f} against "
        f"{f['after_tax_value']:,.0f}. With flat rates the budget buys deferral (and keeps "
        "the concentration longer), not a lower rate; with progressive brackets it would also "
        "keep each year's gains in a lower bracket. The path: `transition.png`.",
        "",
    ]


def write(
    out: Path,
    totals: Mapping[str, Totals],
    market: Market,
    parameters: Mapping[str, Any],
    transition: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(totals, market, parameters, transition)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plots = plot(totals, market, out)
    if transition is not None:
        plots.append(plot_transition(dict(transition), out))
    (out / "report.md").write_text(markdown(summary, plots))
    return summary
