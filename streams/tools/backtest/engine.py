"""The backtest's day loop: one household, one strategy, every business day of the paths.

Each day, in this order: the holdings are marked to the close; the orders decided the day before
fill at today's close (`streams.worker.state.apply_fill`: sells name the order's lots, buys create a
lot; the fill price carries the transaction cost, `price * (1 +/- cost)`; a buy that today's
price makes dearer than the cash left above `cash_needed` is cut to fit); on the first business
day of a year last year's tax is assessed and asked for as a withdrawal request on the taxable
account; the client's scheduled flows apply (`worker.state.apply_cash_flow`); every request the
account's cash now covers is paid (a `withdrawal` that settles it). Then the strategy looks at
the close: umh strategies solve only when `solver.triggers` says so, `per_account` when an
account leaves its bands or lacks cash, `buy_and_hold` only when cash is needed.

Between events nothing changes but prices, so the loop does not visit every day: it computes the
drift of the whole stretch up to the next scheduled event in one numpy pass over the price
matrix (the household's weights by `streams.worker.book.book_row`, the same arithmetic as
`solver.household_drift`) and jumps to the first day that might trigger, where the real
`solver.triggers` decides. After a solve that leaves the household not `rebalanced` (no action,
band unreachable, infeasible), the household is quiet for `QUIET_DAYS` business days unless a
client cash flow or tax bill arrives: like the stream's quiet period, so that a band that cannot
be reached or a loss that may not be harvested yet is not re-solved every day.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from schemas import (
    Household,
    Order,
    RebalanceResult,
    RecentTrade,
    YearRealized,
)
from schemas.events import CashFlow, Fill
from solver import cash_shortfalls, hard_rule_violations, solve, triggers
from solver.per_account import per_account_orders
from solver.rounding import floor_quantity
from solver.tolerances import BAND_EPS, USD_EPS
from streams.worker.book import book_row
from streams.worker.state import (
    HouseholdState,
    apply_cash_flow,
    apply_fill,
    from_snapshot,
    to_household,
)

from .accounting import (
    WASH_WINDOW_DAYS,
    LotGain,
    TaxLedger,
    TradeRecord,
    after_tax_value,
    find_wash_sales,
    sell_gains,
)
from .flows import ScheduledFlow, timestamp, withdrawal_account
from .prices import PricePaths
from .strategies import STRATEGIES, Strategy, raise_cash

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Checker = Callable[[Household, RebalanceResult], list[str]]

QUIET_DAYS = 5
MAX_VIOLATION_SAMPLES = 5


def own_check(h: Household, r: RebalanceResult) -> list[str]:
    """The solver's own hard-rule check, the checker when the caller gives none. A result that
    trades nothing (`infeasible`, `no_action`, ...) breaks no rule by its trades."""
    if r.status not in ("rebalanced", "band_unreachable"):
        return []
    return hard_rule_violations(h, r.orders)


# --------------------------------------------------------------------------- inputs, outputs


@dataclass(frozen=True, slots=True)
class Market:
    """The price paths and the calendar facts every household shares."""

    paths: PricePaths
    sample_days: tuple[int, ...]  # month ends (and the last day): after-tax value samples
    year_starts: frozenset[int]  # first day index of each year after the first

    @classmethod
    def of(cls, paths: PricePaths) -> Market:
        days = paths.days
        samples = [t for t in range(len(days) - 1) if days[t + 1].month != days[t].month]
        samples.append(len(days) - 1)
        starts = frozenset(t for t in range(1, len(days)) if days[t].year != days[t - 1].year)
        return cls(paths, tuple(samples), starts)


@dataclass
class StrategyRun:
    """What one strategy did to one household. Arrays are per day (D,) or per sample (M,)."""

    name: str
    max_abs_drift: FloatArray
    out_of_band: BoolArray
    value_usd: FloatArray
    after_tax_usd: FloatArray
    held_for_life_usd: FloatArray
    start_value_usd: float = 0.0
    final_value_usd: float = 0.0
    after_tax_value_usd: float = 0.0
    held_for_life_value_usd: float = 0.0
    taxes_by_year: dict[int, float] = field(default_factory=dict)
    realized_short_usd: float = 0.0
    realized_long_usd: float = 0.0
    harvested_usd: float = 0.0
    traded_usd: float = 0.0
    orders: int = 0
    solves: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    hard_rule_violations: int | None = None
    violation_samples: list[str] = field(default_factory=list)
    wash_sales: int = 0
    wash_sale_samples: list[str] = field(default_factory=list)
    deposits_usd: float = 0.0
    withdrawals_usd: float = 0.0
    tax_payments_usd: float = 0.0
    tax_refunds_usd: float = 0.0
    ordinary_offset_usd: float = 0.0
    owed_usd: float = 0.0
    costs_usd: float = 0.0
    market_pnl_usd: float = 0.0
    fill_errors: list[str] = field(default_factory=list)
    trades: list[TradeRecord] = field(default_factory=list)
    final_household: Household | None = None


@dataclass
class HouseholdResult:
    household_id: str
    runs: dict[str, StrategyRun]


@dataclass(frozen=True, slots=True)
class _Arrays:
    """The price-independent parts of the state, for the vectorised scans (S held symbols)."""

    cols: NDArray[np.int64]  # (S,) columns of the household's price matrix
    quantity: FloatArray  # (S,) shares held, all accounts
    exposure: FloatArray  # (S, C)
    fixed: FloatArray  # (C,) cash less cash_needed, in the cash column
    target: FloatArray  # (C,)
    tolerance: FloatArray  # (C,)
    needed_usd: float  # sum of cash_needed
    shortfall: bool
    harvest_cols: NDArray[np.int64]  # (L,) taxable lots that may be harvested
    harvest_qty: FloatArray
    harvest_basis: FloatArray
    harvest_min_usd: float
    account_qty: FloatArray  # (A, S)
    account_fixed: FloatArray  # (A, C)


# --------------------------------------------------------------------------- one strategy


def _describe_wash(hid: str, sale: TradeRecord, buy: TradeRecord) -> str:
    lots = ", ".join(f"{x.lot_id} {x.gain_usd:+.2f}" for x in sale.lots)
    return (
        f"{hid}: {sale.reason or 'sell'} {sale.symbol} in {sale.account_id} on {sale.day} "
        f"(lots {lots}) and buy {buy.symbol} in {buy.account_id} on {buy.day}"
        f"{' (before the backtest)' if buy.prior else ''}"
    )


def with_recent_buys(h: Household) -> Household:
    """The snapshot with a `recent_trades` buy for every lot acquired within the wash window
    before `as_of` that has none: the record a custodian's snapshot carries, which the
    synthetic book leaves out. Without it, once such a lot is sold, nothing tells the solver
    that its group was bought within the last 30 days (rule 4b)."""
    known = {(t.account_id, t.symbol, t.date) for t in h.recent_trades if t.side == "buy"}
    extra = tuple(
        RecentTrade(a.account_id, lot.symbol, "buy", lot.quantity, lot.acquired)
        for a in h.accounts
        for lot in a.lots
        if 0 <= (h.as_of - lot.acquired).days <= WASH_WINDOW_DAYS
        and (a.account_id, lot.symbol, lot.acquired) not in known
    )
    return replace(h, recent_trades=(*h.recent_trades, *extra)) if extra else h


class Simulation:
    def __init__(
        self,
        strategy: Strategy,
        h0: Household,
        market: Market,
        flows: tuple[ScheduledFlow, ...],
        *,
        time_limit_s: float = 1.0,
        quiet_days: int = QUIET_DAYS,
        keep_trades: bool = False,
        checker: Checker = own_check,
    ) -> None:
        self.strategy = strategy
        h = strategy.configure(h0)
        self.groups = {s: sec.group for s, sec in h.securities.items()}
        self.types = {a.account_id: a.type for a in h.accounts}
        self.days = market.paths.days
        self.trades: list[TradeRecord] = [self._prior(h, t) for t in h.recent_trades]
        self.trades += self._prior_lots(h)
        h = with_recent_buys(h)
        self.hid = h.household_id
        self.state: HouseholdState = from_snapshot(h, None)
        self.market = market
        self.symbols = tuple(sorted(h.securities))
        self.col = {s: i for i, s in enumerate(self.symbols)}
        self.price = market.paths.price[:, [market.paths.column(s) for s in self.symbols]]
        self.flows = flows
        self.time_limit_s = time_limit_s
        self.quiet_days = quiet_days
        self.keep_trades = keep_trades
        self.checker = checker
        self.cost_rate = h.options.transaction_cost_bps / 1e4
        self.has_taxable = any(a.type == "taxable" for a in h.accounts)
        self.ledger = TaxLedger(h.tax, self.days[0].year)
        self.requests: dict[str, tuple[str, float, bool]] = {}
        self.pending: list[Order] = []
        self.quiet_until = 0
        self.harvest_quiet_until = 0
        self.sequence = 0
        self._arrays_cache: _Arrays | None = None
        n_days = len(self.days)
        self.run_out = StrategyRun(
            strategy.name,
            max_abs_drift=np.zeros(n_days),
            out_of_band=np.zeros(n_days, dtype=bool),
            value_usd=np.zeros(n_days),
            after_tax_usd=np.zeros(len(market.sample_days)),
            held_for_life_usd=np.zeros(len(market.sample_days)),
            hard_rule_violations=0 if strategy.kind == "umh" else None,
        )
        self.sample_index = {t: i for i, t in enumerate(market.sample_days)}

    def _prior(self, h: Household, t: RecentTrade) -> TradeRecord:
        lots: tuple[LotGain, ...] = ()
        if t.side == "sell" and t.realized_gain is not None:
            lots = (LotGain("", t.quantity, t.realized_gain, False),)
        return TradeRecord(
            t.date,
            t.account_id,
            self.types.get(t.account_id) == "taxable",
            t.symbol,
            self.groups.get(t.symbol, t.symbol),
            t.side,
            t.quantity,
            0.0,
            lots=lots,
            prior=True,
        )

    def _prior_lots(self, h: Household) -> list[TradeRecord]:
        """The starting lots acquired within the wash window before the first day: each is the
        record of a buy (contract rule 4b), counted against loss sales in the backtest."""
        first = self.days[0]
        out = []
        for a in h.accounts:
            for lot in a.lots:
                if 0 <= (first - lot.acquired).days <= WASH_WINDOW_DAYS:
                    out.append(
                        TradeRecord(
                            lot.acquired,
                            a.account_id,
                            a.type == "taxable",
                            lot.symbol,
                            self.groups.get(lot.symbol, lot.symbol),
                            "buy",
                            lot.quantity,
                            lot.cost_basis,
                            created_lot=lot.lot_id,
                            prior=True,
                        )
                    )
        return out

    # ------------------------------------------------------------------ the loop

    def run(self) -> StrategyRun:
        out = self.run_out
        n_days = len(self.days)
        flows_at: dict[int, list[ScheduledFlow]] = {}
        for f in self.flows:
            flows_at.setdefault(f.day_index, []).append(f)
        events = sorted(set(flows_at) | set(self.market.year_starts))
        out.start_value_usd = self._value(0)
        t = 0
        while t < n_days:
            if t > 0:
                self._mark(t)
            if self.pending:
                self._fill(t)
            if t in self.market.year_starts:
                self._settle_taxes(t)
            for f in flows_at.get(t, ()):
                self._client_flow(f, t)
            self._pay(t)
            nxt = next((e for e in events if e > t), n_days)
            hit = self._scan(t, nxt)
            if hit is None:
                t = nxt
            else:
                if hit < n_days - 1:  # the last close only values the book
                    self._decide(hit)
                if self.pending:  # orders fill at the close they were decided on
                    self._fill(hit)
                    self._pay(hit)
                t = hit + 1
        self._finish()
        return out

    def _finish(self) -> None:
        out = self.run_out
        last = len(self.days) - 1
        h = self.state.household
        out.final_value_usd = self._value(last)
        out.owed_usd = sum(amount for _, amount, _ in self.requests.values())
        prices = dict(zip(self.symbols, self.price[last].tolist(), strict=True))
        final = replace(h, as_of=self.days[last])
        out.after_tax_value_usd = after_tax_value(final, prices, self.ledger, out.owed_usd)
        out.held_for_life_value_usd = after_tax_value(
            final, prices, self.ledger, out.owed_usd, liquidate=False
        )
        self.ledger.settle(self.days[last].year + 1)
        out.taxes_by_year = dict(self.ledger.taxes)
        out.realized_short_usd = self.ledger.total_short_usd
        out.realized_long_usd = self.ledger.total_long_usd
        out.harvested_usd = self.ledger.harvested_usd
        out.ordinary_offset_usd = self.ledger.ordinary_offset_usd
        washes = find_wash_sales(self.trades)
        out.wash_sales = len(washes)
        out.wash_sale_samples = [_describe_wash(self.hid, sale, buy) for sale, buy in washes[:3]]
        if self.keep_trades:
            out.trades = list(self.trades)
            out.final_household = h

    # ------------------------------------------------------------------ state and arrays

    def _set_state(self, state: HouseholdState) -> None:
        self.state = state
        self._arrays_cache = None

    def _value(self, t: int) -> float:
        h = self.state.household
        cash = sum(a.cash for a in h.accounts)
        return cash + sum(
            lot.quantity * float(self.price[t, self.col[lot.symbol]])
            for a in h.accounts
            for lot in a.lots
        )

    def _arrays(self) -> _Arrays:
        if self._arrays_cache is not None:
            return self._arrays_cache
        h = self.state.household
        row = book_row(h)
        assert row is not None
        held = {s: i for i, s in enumerate(row.symbols)}
        cash_col = row.classes.index("cash")
        account_qty = np.zeros((len(h.accounts), len(row.symbols)))
        account_fixed = np.zeros((len(h.accounts), len(row.classes)))
        h_cols, h_qty, h_basis = [], [], []
        for i, a in enumerate(h.accounts):
            account_fixed[i, cash_col] = a.cash - a.cash_needed
            for lot in a.lots:
                account_qty[i, held[lot.symbol]] += lot.quantity
                if a.type == "taxable":
                    h_cols.append(self.col[lot.symbol])
                    h_qty.append(lot.quantity)
                    h_basis.append(lot.cost_basis)
        self._arrays_cache = _Arrays(
            cols=np.array([self.col[s] for s in row.symbols], dtype=np.int64),
            quantity=row.quantity,
            exposure=row.exposure,
            fixed=row.fixed_usd,
            target=row.target,
            tolerance=row.tolerance,
            needed_usd=sum(a.cash_needed for a in h.accounts),
            shortfall=bool(cash_shortfalls(h)),
            harvest_cols=np.array(h_cols, dtype=np.int64),
            harvest_qty=np.array(h_qty),
            harvest_basis=np.array(h_basis),
            harvest_min_usd=max(h.options.harvest_min_loss, USD_EPS),
            account_qty=account_qty,
            account_fixed=account_fixed,
        )
        return self._arrays_cache

    def _mark(self, t: int) -> None:
        a = self._arrays()
        move = self.price[t, a.cols] - self.price[t - 1, a.cols]
        self.run_out.market_pnl_usd += float(a.quantity @ move)

    # ------------------------------------------------------------------ scanning

    def _scan(self, t: int, end: int) -> int | None:
        """Record the metrics of days t.. and return the first that may trigger, if any."""
        a = self._arrays()
        held_px = self.price[t:end][:, a.cols]  # (W, S)
        values = (held_px * a.quantity) @ a.exposure + a.fixed  # (W, C)
        investable = values.sum(axis=1)
        safe = np.where(investable > USD_EPS, investable, 1.0)
        drift = values / safe[:, None] - a.target
        drift[investable <= USD_EPS] = 0.0
        breached = np.abs(drift) > a.tolerance + BAND_EPS
        hit = self._trigger_mask(a, held_px, breached, t)
        hits = np.flatnonzero(hit)
        last = t + int(hits[0]) if hits.size else end - 1
        n = last - t + 1
        out = self.run_out
        out.max_abs_drift[t : last + 1] = np.abs(drift[:n]).max(axis=1)
        out.out_of_band[t : last + 1] = breached[:n].any(axis=1)
        out.value_usd[t : last + 1] = investable[:n] + a.needed_usd
        out.market_pnl_usd += float(a.quantity @ (held_px[n - 1] - held_px[0]))
        for d in range(t, last + 1):
            i = self.sample_index.get(d)
            if i is not None:
                out.after_tax_usd[i] = self._after_tax(d)
                out.held_for_life_usd[i] = self._after_tax(d, liquidate=False)
        return last if hits.size else None

    def _trigger_mask(
        self, a: _Arrays, held_px: FloatArray, breached: BoolArray, t: int
    ) -> BoolArray:
        n = held_px.shape[0]
        kind, mode = self.strategy.kind, self.strategy.mode
        hit = np.full(n, a.shortfall)
        if kind == "umh":
            hit |= breached.any(axis=1)
            if mode == "rebalance" and self.strategy.harvest and a.harvest_cols.size:
                lot_px = self.price[t : t + n][:, a.harvest_cols]
                loss = a.harvest_basis - lot_px * a.harvest_qty
                harvest = np.asarray((loss >= a.harvest_min_usd).any(axis=1), dtype=bool)
                # A loss the solver found not worth harvesting is looked at again only after
                # the quiet days (bands and cash still trigger at once).
                wait = self.harvest_quiet_until - t
                if wait > 0:
                    harvest[:wait] = False
                hit |= harvest
        elif kind == "per_account":
            values = np.einsum("ws,as,sc->wac", held_px, a.account_qty, a.exposure)
            values += a.account_fixed
            total = values.sum(axis=2)  # (W, A)
            ok = total > 0
            weight = values / np.where(ok, total, 1.0)[:, :, None]
            out = (np.abs(weight - a.target) > a.tolerance - 1e-12) & ok[:, :, None]
            hit |= out.any(axis=(1, 2))
        quiet = self.quiet_until - t
        if quiet > 0:
            hit[:quiet] = False
        return hit

    def _after_tax(self, t: int, *, liquidate: bool = True) -> float:
        prices = dict(zip(self.symbols, self.price[t].tolist(), strict=True))
        owed = sum(amount for _, amount, _ in self.requests.values())
        h = replace(self.state.household, as_of=self.days[t])
        return after_tax_value(h, prices, self.ledger, owed, liquidate=liquidate)

    # ------------------------------------------------------------------ deciding

    def _decide(self, t: int) -> None:
        day = self.days[t]
        prices = dict(zip(self.symbols, self.price[t].tolist(), strict=True))
        h = replace(
            to_household(self.state, day, prices=prices),
            realized_this_year=YearRealized(self.ledger.short_usd, self.ledger.long_usd),
        )
        h = self.strategy.prepare(h)
        self.sequence += 1
        kind = self.strategy.kind
        orders: list[Order] = []
        if kind == "umh":
            rule = self.strategy.harvest_rule
            if not triggers(h, harvest_rule=rule):
                self.harvest_quiet_until = t + 1 + self.quiet_days
                return
            r = solve(h, sequence=self.sequence, time_limit_s=self.time_limit_s, harvest_rule=rule)
            out = self.run_out
            out.solves += 1
            out.statuses[r.status] += 1
            problems = self.checker(h, r)
            if problems:
                out.hard_rule_violations = (out.hard_rule_violations or 0) + len(problems)
                room = MAX_VIOLATION_SAMPLES - len(out.violation_samples)
                out.violation_samples.extend(f"{self.hid} {day}: {p}" for p in problems[:room])
            if r.status in ("rebalanced", "band_unreachable"):
                orders = list(r.orders)
            if r.status != "rebalanced":
                self.quiet_until = t + 1 + self.quiet_days
        else:
            rid = f"{kind}:{self.hid}:{day.isoformat()}:{self.sequence}"
            if kind == "per_account":
                orders = list(per_account_orders(h, rid, lot_order=self.strategy.lot_order))
            sellers = {o.account_id for o in orders if o.side == "sell"}
            for account in h.accounts:
                short = account.cash_needed - account.cash
                if short > USD_EPS and account.account_id not in sellers:
                    orders += raise_cash(
                        h, account, short, f"{rid}:{account.account_id}", self.strategy.lot_order
                    )
            if kind == "per_account":
                self.run_out.solves += 1
            if not orders:
                self.quiet_until = t + 1 + self.quiet_days
        self.pending = orders

    # ------------------------------------------------------------------ fills and flows

    def _fill(self, t: int) -> None:
        day = self.days[t]
        ts = timestamp(day)
        k = self.cost_rate
        out = self.run_out
        orders, self.pending = self.pending, []
        for o in sorted(orders, key=lambda o: o.side != "sell"):
            market = float(self.price[t, self.col[o.symbol]])
            account = self.state.household.account(o.account_id)
            assert account is not None
            if o.side == "sell":
                price = market * (1.0 - k)
                qty = o.quantity
                gains = sell_gains(account, o.lots, price, day)
                fill = Fill(
                    f"{o.order_id}:f",
                    o.order_id,
                    self.hid,
                    o.account_id,
                    o.symbol,
                    "sell",
                    qty,
                    price,
                    ts,
                    o.lots,
                )
            else:
                price = market * (1.0 + k)
                qty = o.quantity
                room = account.cash - account.cash_needed
                if qty * price > room:
                    qty = self._fit(o.symbol, room / price)
                if qty <= 0:
                    continue
                gains = ()
                fill = Fill(
                    f"{o.order_id}:f",
                    o.order_id,
                    self.hid,
                    o.account_id,
                    o.symbol,
                    "buy",
                    qty,
                    price,
                    ts,
                )
            try:
                state, _ = apply_fill(self.state, fill)
            except Exception as exc:  # a fill the state refuses is a finding, not a crash
                out.fill_errors.append(f"{self.hid} {day} {o.order_id}: {exc}")
                continue
            self._set_state(state)
            record = TradeRecord(
                day,
                o.account_id,
                self.types[o.account_id] == "taxable",
                o.symbol,
                self.groups.get(o.symbol, o.symbol),
                o.side,
                qty,
                qty * price,
                o.reason,
                gains,
                fill.fill_id if o.side == "buy" else "",
            )
            self.trades.append(record)
            self.ledger.record(record)
            out.orders += 1
            out.traded_usd += qty * market
            out.costs_usd += qty * market * k

    def _fit(self, symbol: str, quantity: float) -> float:
        sec = self.state.household.securities[symbol]
        if quantity <= 0:
            return 0.0
        return float(math.floor(quantity)) if not sec.fractional else floor_quantity(quantity)

    def _apply_flow(self, flow: CashFlow) -> None:
        state, _ = apply_cash_flow(self.state, flow)
        self._set_state(state)

    def _client_flow(self, scheduled: ScheduledFlow, t: int) -> None:
        flow = scheduled.flow
        if scheduled.prefer:
            prices = dict(zip(self.symbols, self.price[t].tolist(), strict=True))
            account_id = withdrawal_account(
                self.state.household, prices, scheduled.prefer, flow.amount
            )
            flow = replace(flow, account_id=account_id)
        self._apply_flow(flow)
        if flow.kind == "deposit":
            self.run_out.deposits_usd += flow.amount
        elif flow.kind == "withdrawal_request":
            self.requests[flow.flow_id] = (flow.account_id, flow.amount, False)
        self.quiet_until = 0

    def _settle_taxes(self, t: int) -> None:
        day = self.days[t]
        tax = round(self.ledger.settle(day.year), 2)
        if abs(tax) < 0.01 or not self.has_taxable:
            return
        fid = f"{self.hid}:tax:{day.year - 1}"
        prices = dict(zip(self.symbols, self.price[t].tolist(), strict=True))
        if tax < 0:
            # The ordinary-income offset saved tax on income earned outside the portfolio:
            # that money is the household's, invested where the taxable account is.
            account_id = withdrawal_account(self.state.household, prices, ("taxable",), -tax)
            self._apply_flow(CashFlow(fid, self.hid, account_id, "deposit", -tax, timestamp(day)))
            self.run_out.tax_refunds_usd += -tax
            self.quiet_until = 0
            return
        account_id = withdrawal_account(self.state.household, prices, ("taxable",), tax)
        self._apply_flow(
            CashFlow(fid, self.hid, account_id, "withdrawal_request", tax, timestamp(day))
        )
        self.requests[fid] = (account_id, tax, True)
        self.quiet_until = 0

    def _pay(self, t: int) -> None:
        for fid, (account_id, amount, is_tax) in list(self.requests.items()):
            account = self.state.household.account(account_id)
            if account is None or account.cash < amount - 1e-6:
                continue
            self._apply_flow(
                CashFlow(
                    f"{fid}:paid",
                    self.hid,
                    account_id,
                    "withdrawal",
                    amount,
                    timestamp(self.days[t]),
                    settles=fid,
                )
            )
            del self.requests[fid]
            if is_tax:
                self.run_out.tax_payments_usd += amount
            else:
                self.run_out.withdrawals_usd += amount


# --------------------------------------------------------------------------- one household


def simulate_household(
    h0: Household,
    flows: tuple[ScheduledFlow, ...],
    market: Market,
    *,
    strategies: tuple[Strategy, ...] = STRATEGIES,
    time_limit_s: float = 1.0,
    keep_trades: bool = False,
    checker: Checker = own_check,
) -> HouseholdResult:
    """Every strategy on one household, on the same paths and flows; `checker` judges every
    umh result against the hard rules (the solver's own check unless one is given)."""
    runs = {
        s.name: Simulation(
            s,
            h0,
            market,
            flows,
            time_limit_s=time_limit_s,
            keep_trades=keep_trades,
            checker=checker,
        ).run()
        for s in strategies
    }
    return HouseholdResult(h0.household_id, runs)
