"""The client's cash-flow schedule: deposits and withdrawal requests, seeded, one per household.

Every strategy sees the same schedule. About 60% of households are savers: a deposit at the start
of each quarter (0.5-1.5% of the starting value; into the taxable account 60% of the time, else
into a retirement account). The others draw an income: a withdrawal request each quarter
(0.75-1.25% of the starting value) from the tax-deferred account when there is one, else the
taxable one. On top, each year has a 15% chance of a one-off withdrawal request of 2-6% of the
starting value. Amounts are rounded to 100 USD. A request is paid (a `withdrawal` that settles
it) as soon as the account's cash covers it; raising that cash is the strategy's job.

Dates and amounts are fixed in advance; the account a withdrawal is asked from is chosen when it
arrives, by one rule for every strategy (`withdrawal_account`): the largest account, by value
that day, of the first preferred type that can pay it four times over (else the largest
account of a preferred type), so that a long backtest does not empty one small IRA and then
ask it for more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from schemas import Household
from schemas.events import CashFlow

#: Account types a withdrawal is taken from, in order of preference.
WITHDRAW_FROM = ("tax_deferred", "taxable", "tax_exempt")
ANY_ACCOUNT = ("taxable", "tax_deferred", "tax_exempt")


@dataclass(frozen=True, slots=True)
class ScheduledFlow:
    """A flow on a day; a withdrawal request's account is chosen on arrival (`prefer`)."""

    day_index: int
    flow: CashFlow
    prefer: tuple[str, ...] = ()


def timestamp(day: date) -> datetime:
    """Event time of everything that happens on a backtest day: the close, 16:00 UTC."""
    return datetime(day.year, day.month, day.day, 16, 0, tzinfo=UTC)


def account_values(h: Household) -> dict[str, float]:
    return {
        a.account_id: a.cash
        + sum(lot.quantity * float(h.securities[lot.symbol].price or 0.0) for lot in a.lots)
        for a in h.accounts
    }


def make_flows(
    h: Household, days: tuple[date, ...], rng: np.random.Generator
) -> tuple[ScheduledFlow, ...]:
    """The schedule of one household over `days` (see the module docstring)."""
    values = account_values(h)
    start_value = sum(values.values())
    types = {a.account_id: a.type for a in h.accounts}
    ids = [a.account_id for a in h.accounts]
    taxable = [i for i in ids if types[i] == "taxable"]
    retirement = [i for i in ids if types[i] != "taxable"]
    saver = bool(rng.random() < 0.6)
    quarter_starts = [
        t
        for t, d in enumerate(days)
        if t > 0 and d.month in (1, 4, 7, 10) and days[t - 1].month != d.month
    ]
    out: list[ScheduledFlow] = []

    def add(t: int, account_id: str, kind: str, share: float, prefer: tuple[str, ...] = ()) -> None:
        amount = round(share * start_value / 100.0) * 100.0
        if amount <= 0 or t >= len(days):
            return
        tag = "dep" if kind == "deposit" else "wr"
        flow = CashFlow(
            f"{h.household_id}:{tag}:{len(out)}",
            h.household_id,
            account_id,
            kind,
            amount,
            timestamp(days[t]),
        )
        out.append(ScheduledFlow(t, flow, prefer))

    for t in quarter_starts:
        t = min(t + int(rng.integers(0, 10)), len(days) - 1)
        if saver:
            pool = taxable if taxable and (rng.random() < 0.6 or not retirement) else retirement
            add(t, pool[int(rng.integers(len(pool)))], "deposit", float(rng.uniform(0.005, 0.015)))
        else:
            add(t, ids[0], "withdrawal_request", float(rng.uniform(0.0075, 0.0125)), WITHDRAW_FROM)
    for year in sorted({d.year for d in days}):
        in_year = [t for t, d in enumerate(days) if d.year == year]
        if rng.random() < 0.15:
            t = in_year[int(rng.integers(len(in_year)))]
            add(
                t,
                ids[int(rng.integers(len(ids)))],
                "withdrawal_request",
                float(rng.uniform(0.02, 0.06)),
            )
    return tuple(sorted(out, key=lambda f: (f.day_index, f.flow.flow_id)))


def withdrawal_account(
    h: Household, prices: dict[str, float], prefer: tuple[str, ...], amount: float
) -> str:
    """The account a withdrawal of `amount` is asked from today (see the module docstring)."""
    value = {
        a.account_id: a.cash
        - a.cash_needed
        + sum(lot.quantity * prices[lot.symbol] for lot in a.lots)
        for a in h.accounts
    }
    for kind in prefer:
        able = [
            a.account_id
            for a in h.accounts
            if a.type == kind and value[a.account_id] >= 4.0 * amount
        ]
        if able:
            return max(able, key=lambda i: value[i])
    preferred = [a.account_id for a in h.accounts if a.type in prefer] or list(value)
    return max(preferred, key=lambda i: value[i])
