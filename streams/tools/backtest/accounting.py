"""Backtest accounting, the same for every strategy: realized gains lot by lot, the yearly tax
with loss carry-forward, wash sales, and the after-tax value of a household.

- A lot sold after its anniversary (`solver.lots.long_term_after`) is long-term, else short.
- Only taxable accounts realize taxable gains. Each calendar year nets its short- and long-term
  gains with the losses carried in (each keeps its character), a net loss of one kind offsets a
  net gain of the other; a net loss left over offsets up to 3,000 USD of ordinary income at
  `short_term_rate` (short-term loss first) and the rest is carried forward
  (`solver.harvest.year_tax`, the same netting the solver prices harvests with). Net
  short-term gains pay `short_term_rate`, long-term `long_term_rate`; a year whose ordinary
  offset saves more than its gains cost has a negative tax (a refund, paid into the portfolio).
- A wash sale is a sale at a loss in a taxable account with a buy of the same wash group in any
  account of the household within 30 days before or after it (the buy that created the lot being
  sold does not count). Counted once per loss sale, judged lot by lot.
- After-tax value (liquidation basis, the headline) = value of every account, less the tax on
  this year's realized gains plus the gains of liquidating every taxable lot (with the carried
  losses), less the tax-deferred accounts' value taxed as ordinary income (`short_term_rate`),
  less requests not yet paid. "Held for life": the same without the liquidation of the taxable
  lots (their gains are never taxed: a step-up in basis), only this year's realized gains.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from schemas import Account, Household, LotRelief, TaxRates
from solver.harvest import year_tax
from solver.lots import long_term_after

#: A relieved lot whose gain is below this (USD) is a loss for the wash-sale count.
LOSS_EPS_USD = 0.01
WASH_WINDOW_DAYS = 30


@dataclass(frozen=True, slots=True)
class LotGain:
    lot_id: str
    quantity: float
    gain_usd: float
    long_term: bool


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One fill (or a trade from before the backtest, `prior`), as the accounting sees it."""

    day: date
    account_id: str
    taxable: bool
    symbol: str
    group: str
    side: str
    quantity: float
    value_usd: float
    reason: str = ""
    lots: tuple[LotGain, ...] = ()  # sells: what each relieved lot realized
    created_lot: str = ""  # buys: the lot the fill created
    prior: bool = False

    @property
    def realized_usd(self) -> float:
        return sum(x.gain_usd for x in self.lots)

    @property
    def is_loss_sale(self) -> bool:
        return (
            self.side == "sell"
            and self.taxable
            and any(x.gain_usd < -LOSS_EPS_USD for x in self.lots)
        )


def sell_gains(
    account: Account, relief: Iterable[LotRelief], price: float, day: date
) -> tuple[LotGain, ...]:
    """Gain of each relieved lot sold at `price` on `day` (basis pro rata, as fills relieve it)."""
    lots = {lot.lot_id: lot for lot in account.lots}
    out = []
    for r in relief:
        lot = lots[r.lot_id]
        basis = lot.cost_basis * min(1.0, r.quantity / lot.quantity)
        out.append(
            LotGain(
                r.lot_id,
                r.quantity,
                r.quantity * price - basis,
                day > long_term_after(lot.acquired),
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Carry:
    """Losses carried into a year, each with its character (both <= 0)."""

    short_usd: float = 0.0
    long_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class YearTax:
    short_term_usd: float  # net short-term gain taxed
    long_term_usd: float  # net long-term gain taxed
    tax_usd: float  # negative: the ordinary-income offset saved more than the gains cost
    carry: Carry  # carried into the next year
    ordinary_offset_usd: float = 0.0  # net loss set against ordinary income


def settle_year(short_gain: float, long_gain: float, carry: Carry, rates: TaxRates) -> YearTax:
    """One year's tax: net each kind with its carried loss, offset across kinds, set up to
    3,000 USD of net loss against ordinary income, carry the rest."""
    y = year_tax(
        short_gain, long_gain, rates, carry_short_usd=carry.short_usd, carry_long_usd=carry.long_usd
    )
    return YearTax(
        y.short_term_usd,
        y.long_term_usd,
        y.tax_usd,
        Carry(y.carry_short_usd, y.carry_long_usd),
        y.ordinary_offset_usd,
    )


@dataclass
class TaxLedger:
    """Realized gains of the current year and what earlier years left behind."""

    rates: TaxRates
    year: int
    short_usd: float = 0.0
    long_usd: float = 0.0
    carry: Carry = field(default_factory=Carry)
    total_short_usd: float = 0.0
    total_long_usd: float = 0.0
    harvested_usd: float = 0.0  # losses realized by tax_loss_harvest sells (> 0)
    taxes: list[tuple[int, float]] = field(default_factory=list)  # (year, tax assessed)
    ordinary_offset_usd: float = 0.0  # net losses set against ordinary income, all years

    def record(self, trade: TradeRecord) -> None:
        if trade.side != "sell" or not trade.taxable:
            return
        for x in trade.lots:
            if x.long_term:
                self.long_usd += x.gain_usd
                self.total_long_usd += x.gain_usd
            else:
                self.short_usd += x.gain_usd
                self.total_short_usd += x.gain_usd
            if trade.reason == "tax_loss_harvest" and x.gain_usd < 0:
                self.harvested_usd -= x.gain_usd

    def settle(self, next_year: int) -> float:
        """Close the current year: its tax (assessed), and start `next_year`."""
        result = settle_year(self.short_usd, self.long_usd, self.carry, self.rates)
        self.taxes.append((self.year, result.tax_usd))
        self.ordinary_offset_usd += result.ordinary_offset_usd
        self.carry = result.carry
        self.short_usd = self.long_usd = 0.0
        self.year = next_year
        return result.tax_usd

    @property
    def taxes_usd(self) -> float:
        return sum(t for _, t in self.taxes)


def count_wash_sales(trades: Sequence[TradeRecord], window_days: int = WASH_WINDOW_DAYS) -> int:
    """Loss sales in taxable accounts with a buy of the same wash group, in any account, within
    `window_days` before or after (the buy that created a relieved lot excepted). Pairs where
    both trades predate the backtest (`prior`) are not counted."""
    return len(find_wash_sales(trades, window_days))


def find_wash_sales(
    trades: Sequence[TradeRecord], window_days: int = WASH_WINDOW_DAYS
) -> list[tuple[TradeRecord, TradeRecord]]:
    """(loss sale, the first buy that makes it a wash sale) for each sale `count_wash_sales`
    counts."""
    buys: dict[str, list[tuple[int, str, bool, int]]] = defaultdict(list)
    for i, t in enumerate(trades):
        if t.side == "buy":
            buys[t.group].append((t.day.toordinal(), t.created_lot, t.prior, i))
    for group_buys in buys.values():
        group_buys.sort()
    out: list[tuple[TradeRecord, TradeRecord]] = []
    for t in trades:
        if not t.is_loss_sale:
            continue
        group_buys = buys.get(t.group, [])
        day = t.day.toordinal()
        lo = bisect.bisect_left(group_buys, (day - window_days, "", False, -1))
        relieved = {x.lot_id for x in t.lots}
        for d, created, prior, i in group_buys[lo:]:
            if d > day + window_days:
                break
            if created and created in relieved:
                continue
            if t.prior and prior:
                continue
            out.append((t, trades[i]))
            break
    return out


def after_tax_value(
    h: Household,
    prices: Mapping[str, float],
    ledger: TaxLedger,
    owed_usd: float,
    *,
    liquidate: bool = True,
) -> float:
    """The household's value after every tax it owes or would owe on liquidation (see above);
    `liquidate=False`: held for life, the taxable lots' unrealized gains never taxed."""
    total = 0.0
    short, long_ = ledger.short_usd, ledger.long_usd
    deferred = 0.0
    day = h.as_of
    for a in h.accounts:
        value = a.cash
        for lot in a.lots:
            lot_value = lot.quantity * prices[lot.symbol]
            value += lot_value
            if a.type == "taxable" and liquidate:
                if day > long_term_after(lot.acquired):
                    long_ += lot_value - lot.cost_basis
                else:
                    short += lot_value - lot.cost_basis
        total += value
        if a.type == "tax_deferred":
            deferred += value
    tax = settle_year(short, long_, ledger.carry, ledger.rates).tax_usd
    return total - tax - deferred * ledger.rates.short_term_rate - owed_usd
