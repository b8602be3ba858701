"""Household -> arrays: the one frozen hand-off object between the contract and the HiGHS model.

Every trade amount in the model is in *weight units*: dollars divided by the household's
investable value V, so that the model is well scaled whatever the household's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from schemas import CASH, Household, Lot, Security

from .costs import cost_rate
from .drift import DriftReport, household_drift
from .harvest import HARVEST_BY_VALUE, HarvestRule, household_candidates
from .lots import days_to_long_term, gain_fractions, last_long_term_day, long_term_after
from .tolerances import CASH_MARGIN_SHARE, CASH_MARGIN_USD, USD_EPS
from .wash import blocked_loss_lots, recent_wash_groups

__all__ = ["HouseholdProblem", "build_problem", "long_term_after"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def primary_class(sec: Security) -> str:
    """The class a security counts for in rules that need one (swaps, location): its largest."""
    return max(sec.exposures.items(), key=lambda kv: (kv[1], kv[0]))[0]


@dataclass(frozen=True, slots=True)
class HouseholdProblem:
    """Arrays describing one household's rebalance. Axes: C classes, A accounts, L lots, B buys.

    Lots (L,): every lot of every account; `lot_value` is its market value in weight units,
    `lot_gain_frac` the realized gain per unit sold (0 outside taxable accounts), `lot_tax_rate`
    the rate that applies (short- or long-term; 0 outside taxable), `lot_exposure` (L, C).
    Buys (B,): every (account, symbol) pair the hard rules allow to be bought, `buy_exposure`
    (B, C), `buy_rank` its place in the applicable buy list, `buy_location_rank` the account
    type's place in the class's `location` preference.
    """

    household: Household
    drift: DriftReport
    classes: tuple[str, ...]
    accounts: tuple[str, ...]
    account_taxable: BoolArray  # (A,)
    account_free_cash: FloatArray  # (A,) (cash - cash_needed) / V
    value_usd: float  # V
    cost_rate: float  # transaction cost per unit traded
    # lots
    lot_ids: tuple[str, ...]
    lot_symbols: tuple[str, ...]
    lot_account: IntArray
    lot_quantity: FloatArray
    lot_price: FloatArray
    lot_value: FloatArray
    lot_exposure: FloatArray
    lot_gain_frac: FloatArray
    lot_tax_rate: FloatArray
    lot_long_term: BoolArray
    lot_class: IntArray
    lot_group: tuple[str, ...]
    lot_sell_blocked: BoolArray  # wash rule 4b: a loss sale that would follow a recent buy
    lot_harvestable: BoolArray
    lot_screened: BoolArray
    lot_whole_shares: BoolArray
    lot_locked: BoolArray  # never sold (a lot's `locked`)
    lot_defer: BoolArray  # a short-term gain that turns long-term within defer_short_term_days
    lot_order: IntArray  # index of the lot's (account, symbol) position: one sell order each
    # buys
    buy_account: IntArray
    buy_symbols: tuple[str, ...]
    buy_price: FloatArray
    buy_exposure: FloatArray
    buy_class: IntArray
    buy_group: tuple[str, ...]
    buy_rank: FloatArray
    buy_location_rank: FloatArray
    buy_whole_shares: BoolArray
    notes: tuple[str, ...]
    # rule 6: the cap on this rebalance's net realized gain in dollars (the smaller of
    # max_realized_gain and max_realized_gain_year less realized_this_year); None = no cap
    gain_cap_usd: float | None = None
    # The models solved for this household so far (solver.model.solve_model): the same model
    # built twice in one solve (a rounding re-solve that fixes what the last one fixed) is
    # solved once. Not part of the problem's value.
    solved: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def cash_margin_usd(self) -> float:
        """Cash the model leaves unspent beyond cash_needed: CASH_MARGIN_USD, but never more
        than CASH_MARGIN_SHARE of V (a household of a few dollars would end out of its cash
        band over the margin alone)."""
        return min(CASH_MARGIN_USD, CASH_MARGIN_SHARE * self.value_usd)

    @property
    def lot_is_loss(self) -> BoolArray:
        return self.lot_gain_frac < 0

    @property
    def lot_wash_loss(self) -> BoolArray:
        """Lots whose sale is a loss for the wash-sale rule (rule 4): proceeds net of the
        transaction cost below the basis, g < k (a lot at a gain smaller than its selling cost
        is sold at a loss). Stricter than `lot_is_loss` when k > 0, so rule 4 holds whichever
        way a loss is measured; meaningful for taxable lots only."""
        return self.lot_gain_frac < self.cost_rate

    @property
    def cash_index(self) -> int:
        return self.classes.index(CASH)


@dataclass(frozen=True, slots=True)
class SymbolTable:
    """Per-symbol facts gathered once, so that lots index into arrays instead of dicts."""

    index: dict[str, int]
    price: FloatArray  # (S,)
    exposure: FloatArray  # (S, C)
    primary: IntArray  # (S,)
    whole_shares: BoolArray  # (S,)
    group: tuple[str, ...]


def symbol_table(h: Household, symbols: list[str], cidx: dict[str, int]) -> SymbolTable:
    exposure = np.zeros((len(symbols), len(cidx)))
    for i, symbol in enumerate(symbols):
        for cls, share in h.securities[symbol].exposures.items():
            exposure[i, cidx[cls]] = share
    secs = [h.securities[s] for s in symbols]
    return SymbolTable(
        index={s: i for i, s in enumerate(symbols)},
        price=np.array([float(sec.price or 0.0) for sec in secs]),
        exposure=exposure,
        primary=np.array([cidx[primary_class(sec)] for sec in secs], dtype=np.int64),
        whole_shares=np.array([not sec.fractional for sec in secs], dtype=bool),
        group=tuple(sec.group for sec in secs),
    )


def build_problem(
    h: Household, report: DriftReport | None = None, harvest_rule: HarvestRule = HARVEST_BY_VALUE
) -> HouseholdProblem:
    """Collect the household's lots and permitted buys into arrays (see HouseholdProblem)."""
    report = report or household_drift(h)
    classes = report.classes
    cidx = {c: i for i, c in enumerate(classes)}
    value = max(report.investable_usd, USD_EPS)
    sold_at_loss, _ = recent_wash_groups(h)
    blocked_4b = blocked_loss_lots(h)
    notes: list[str] = []

    accounts = h.accounts
    lots = [lot for a in accounts for lot in a.lots]
    n_lots = len(lots)
    symbols = [lot.symbol for lot in lots]
    table = symbol_table(h, sorted(set(symbols)), cidx)
    sym = np.array([table.index[s] for s in symbols], dtype=np.int64)
    lot_account = np.repeat(
        np.arange(len(accounts), dtype=np.int64), [len(a.lots) for a in accounts]
    )
    taxable = np.array([a.type == "taxable" for a in accounts], dtype=bool)
    lot_quantity = np.array([lot.quantity for lot in lots], dtype=np.float64)
    basis = np.array([lot.cost_basis for lot in lots], dtype=np.float64)
    lot_price = table.price[sym]
    market = lot_quantity * lot_price
    in_taxable = taxable[lot_account] & (market > 0)
    lot_gain = np.where(in_taxable, gain_fractions(market, basis), 0.0)
    split = last_long_term_day(h.as_of)
    lot_long = in_taxable & np.array(
        [split is not None and lot.acquired <= split for lot in lots], dtype=bool
    )
    lot_rate = np.where(
        in_taxable, np.where(lot_long, h.tax.long_term_rate, h.tax.short_term_rate), 0.0
    )
    loss_usd = np.where(in_taxable, basis - market, 0.0)
    groups = tuple(table.group[i] for i in sym.tolist())
    # a sale whose proceeds net of costs fall below the basis is a loss sale (lot_wash_loss)
    net_loss_usd = np.where(in_taxable, basis - market * (1.0 - cost_rate(h.options)), 0.0)
    # solver.harvest: the losses worth harvesting, by value (none without harvest_losses)
    worth = household_candidates(h, blocked_4b, harvest_rule) if h.options.harvest_losses else {}
    keys = (
        [(a.account_id, lot.lot_id) for a in accounts for lot in a.lots]
        if blocked_4b or worth
        else []
    )
    lot_blocked = (net_loss_usd > USD_EPS) & _flags(
        n_lots, bool(blocked_4b), lambda: [k in blocked_4b for k in keys]
    )
    lot_harvest = _flags(n_lots, bool(worth), lambda: [k in worth for k in keys])
    lot_screened = _flags(
        n_lots,
        any(a.excluded_symbols for a in accounts),
        lambda: [lot.symbol in a.excluded_symbols for a in accounts for lot in a.lots],
    )
    lot_exposure = table.exposure[sym]
    lot_class = table.primary[sym]

    buys = permitted_buys(h, sold_at_loss, notes)
    n_buys = len(buys)
    buy_exposure = np.zeros((n_buys, len(classes)))
    for j, (_, _, sec, _, _) in enumerate(buys):
        for cls, share in sec.exposures.items():
            if cls in cidx:
                buy_exposure[j, cidx[cls]] = share
    return HouseholdProblem(
        household=h,
        drift=report,
        classes=classes,
        accounts=tuple(a.account_id for a in h.accounts),
        account_taxable=taxable,
        account_free_cash=np.array([(a.cash - a.cash_needed) / value for a in h.accounts]),
        value_usd=value,
        cost_rate=cost_rate(h.options),
        lot_ids=tuple(lot.lot_id for lot in lots),
        lot_symbols=tuple(symbols),
        lot_account=lot_account,
        lot_quantity=lot_quantity,
        lot_price=lot_price,
        lot_value=lot_quantity * lot_price / value,
        lot_exposure=lot_exposure,
        lot_gain_frac=lot_gain,
        lot_tax_rate=lot_rate,
        lot_long_term=lot_long,
        lot_class=lot_class,
        lot_group=groups,
        lot_sell_blocked=lot_blocked,
        lot_harvestable=lot_harvest & ~lot_blocked,
        lot_screened=lot_screened,
        lot_whole_shares=table.whole_shares[sym],
        lot_locked=np.array([lot.locked for lot in lots], dtype=bool),
        lot_defer=_deferred_lots(h, lots, in_taxable & ~lot_long & (loss_usd < 0)),
        lot_order=_position_index(lot_account * max(len(table.group), 1) + sym),
        buy_account=np.array([b[0] for b in buys], dtype=np.int64),
        buy_symbols=tuple(b[2].symbol for b in buys),
        buy_price=np.array([float(b[2].price or 0.0) for b in buys]),
        buy_exposure=buy_exposure,
        buy_class=np.array(
            [cidx.get(b[1], cidx[primary_class(b[2])]) for b in buys], dtype=np.int64
        ),
        buy_group=tuple(b[2].group for b in buys),
        buy_rank=np.array([float(b[3]) for b in buys]),
        buy_location_rank=np.array([float(b[4]) for b in buys]),
        buy_whole_shares=np.array([not b[2].fractional for b in buys], dtype=bool),
        notes=tuple(notes),
        gain_cap_usd=gain_cap(h, notes),
    )


def gain_cap(h: Household, notes: list[str] | None = None) -> float | None:
    """Rule 6 for one rebalance: at most max_realized_gain, and at most max_realized_gain_year
    less this year's net realized gains (both kinds). When the year's gains already exceed the
    yearly cap, the rebalance realizes no further net gain (cap 0)."""
    caps: list[float] = []
    o = h.options
    if o.max_realized_gain is not None:
        caps.append(o.max_realized_gain)
    if o.max_realized_gain_year is not None:
        done = h.realized_this_year.short_term_gain + h.realized_this_year.long_term_gain
        left = o.max_realized_gain_year - done
        if left < 0 and notes is not None:
            notes.append(
                f"this year's realized gains ({done:,.2f}) already exceed max_realized_gain_year "
                f"({o.max_realized_gain_year:,.2f}): no further net gain is realized"
            )
        caps.append(max(left, 0.0))
    return min(caps) if caps else None


def _flags(n: int, any_set: bool, flags: Callable[[], list[bool]]) -> BoolArray:
    """Per lot, `flags()` as a boolean array; all false without asking when `any_set` is
    false (the household has none of them)."""
    return np.array(flags(), dtype=bool) if any_set else np.zeros(n, dtype=bool)


def _deferred_lots(h: Household, lots: list[Lot], short_gain: BoolArray) -> BoolArray:
    """Taxable short-term lots at a gain that turn long-term within defer_short_term_days."""
    days = h.options.defer_short_term_days
    if days <= 0 or not len(lots):
        return np.zeros(len(lots), dtype=bool)
    soon = np.array([days_to_long_term(lot.acquired, h.as_of) <= days for lot in lots], dtype=bool)
    return np.asarray(short_gain & soon, dtype=bool)


def _position_index(key: IntArray) -> IntArray:
    """Per lot, its (account, symbol) position's number (`key` tells positions apart),
    positions numbered in the order they first occur."""
    if not len(key):
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first), dtype=np.int64)
    return np.asarray(rank[inverse.reshape(-1)], dtype=np.int64)


def permitted_buys(
    h: Household, sold_at_loss: set[str], notes: list[str]
) -> list[tuple[int, str, Security, int, int]]:
    """(account index, listed class, security, buy-list rank, location rank) for every buy that
    rules 3 and 4a allow. An account's own buy_list replaces the household's for its classes."""
    out: dict[tuple[int, str], tuple[int, str, Security, int, int]] = {}
    unknown: set[str] = set()
    for ai, account in enumerate(h.accounts):
        lists = {**h.buy_list, **account.buy_list}
        for cls, symbols in lists.items():
            if cls in account.no_buy_asset_classes:
                continue
            preference = h.location.get(cls, ())
            location_rank = (
                preference.index(account.type) if account.type in preference else len(preference)
            )
            for rank, symbol in enumerate(symbols):
                sec = h.securities.get(symbol)
                if sec is None or sec.price is None:
                    unknown.add(symbol)
                    continue
                if symbol in account.excluded_symbols or sec.group in sold_at_loss:
                    continue
                if any(sec.exposures.get(c, 0.0) > 0 for c in account.no_buy_asset_classes):
                    continue
                key = (ai, symbol)
                if key not in out or out[key][3] > rank:
                    out[key] = (ai, cls, sec, rank, location_rank)
    if unknown:
        notes.append(f"not buyable (no security or price): {', '.join(sorted(unknown))}")
    return [out[k] for k in sorted(out)]
