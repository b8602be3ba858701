"""A household's streaming state and the pure functions that change it: fills, flows, snapshots.

No Kafka, no Faust, no clock: every time arrives as an argument (event time from the message,
wall time only for the order TTL). The Faust table stores `state_to_json(state)`; the agents call
these functions and nothing else decides what a fill or a cash flow does to a household.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta
from typing import Any

import orjson

from schemas import (
    Account,
    Household,
    Issue,
    Lot,
    RebalanceResult,
    RecentTrade,
    Security,
    ValidationError,
    YearRealized,
    household_to_json,
    parse_household,
    result_to_json,
    stored_result,
)
from schemas.events import CashFlow, Fill
from schemas.household import LOT_FIELDS, lot_values, new_lot, parse_securities, security_to_json
from schemas.reader import Reader
from solver.lots import is_long_term, relief_plan, relieve
from solver.tolerances import QUANTITY_EPS, USD_EPS

#: Trades are remembered this long by event time (the wash-sale window is 30 days).
TRADE_MEMORY_DAYS = 31
#: Applied fill and flow ids are remembered this long by event time, and at most this many.
ID_MEMORY_DAYS = 40
ID_MEMORY_MAX = 20_000


@dataclass(frozen=True, slots=True)
class OpenRebalance:
    """Orders published and waiting for fills. `filled` maps order_id -> quantity filled so far."""

    result: RebalanceResult
    opened_at_s: float  # wall clock (time.time()) when published: the TTL is operational
    filled: dict[str, float] = field(default_factory=dict)
    # False from the moment it is written until its orders are acknowledged on `orders`: a
    # worker that recovers an unpublished one publishes it (it may never have left)
    published: bool = True

    @property
    def complete(self) -> bool:
        return all(
            self.filled.get(o.order_id, 0.0) >= o.quantity - QUANTITY_EPS
            for o in self.result.orders
        )


@dataclass(frozen=True, slots=True)
class SnapshotMark:
    """Where a snapshot was read: its `households` partition offset and a digest of the
    record's value. Kafka re-delivers a record unchanged, at its offset; a snapshot sent again
    on purpose has a later offset."""

    offset: int
    digest: str

    def covers(self, other: SnapshotMark) -> bool:
        """`other` is this record read again, or an earlier record of the household's
        partition: one this state has already moved past (a partition read again from an
        older offset, `streams.worker.stall`). The same offset with another value is another
        record (the topic was made anew) and is not covered; a topic made anew starts at offset
        0, below every mark, so its snapshots apply only to households deleted (a tombstone)
        first."""
        if other.offset < self.offset:
            return True
        return other.offset == self.offset and other.digest == self.digest


@dataclass(frozen=True, slots=True)
class PendingWithdrawal:
    flow_id: str
    account_id: str
    amount: float
    requested: date


@dataclass(frozen=True, slots=True)
class HouseholdState:
    """The last snapshot with every later fill and cash flow applied, plus the stream's memory.

    `household` keeps its securities' classifications; its prices live in `prices`.
    `trades` are the trades this stream saw as fills (event time); the snapshot's own
    `recent_trades` stay in `household`. `band_state` is the last alerted breach (for de-dup).
    """

    household: Household
    prices: dict[str, float] = field(default_factory=dict)
    open_rebalance: OpenRebalance | None = None
    last_rebalance: RebalanceResult | None = None
    # id -> the latest event day when it was applied (so a late event is remembered long enough)
    applied_fills: dict[str, date] = field(default_factory=dict)
    applied_flows: dict[str, date] = field(default_factory=dict)
    trades: tuple[RecentTrade, ...] = ()
    pending_withdrawals: dict[str, PendingWithdrawal] = field(default_factory=dict)
    band_state: str | None = None
    sequence: int = 0
    event_day: date = date.min
    # the calendar year `household.realized_this_year` counts (0: the snapshot's as_of year)
    realized_year: int = 0
    # the `households` record this state's snapshot came from (`SnapshotMark`): the same
    # record read again (a re-delivery) must not replace the fills applied since
    snapshot_mark: SnapshotMark | None = None

    @property
    def household_id(self) -> str:
        return self.household.household_id

    @property
    def held_symbols(self) -> frozenset[str]:
        return frozenset(lot.symbol for a in self.household.accounts for lot in a.lots)


# --------------------------------------------------------------------------- snapshots


def _strip_prices(h: Household) -> tuple[Household, dict[str, float]]:
    prices = {s: sec.price for s, sec in h.securities.items() if sec.price is not None}
    securities = {s: replace(sec, price=None) for s, sec in h.securities.items()}
    return replace(h, securities=securities), prices


def from_snapshot(
    household: Household, previous: HouseholdState | None, mark: SnapshotMark | None = None
) -> HouseholdState:
    """A snapshot replaces holdings, cash and configuration; the stream's memory is kept.

    Kept from `previous`: prices not in the snapshot, remembered trades (loss memory), applied
    ids, pending withdrawal requests, the open and last rebalance, band state and sequence.
    `mark`: where the snapshot was read (None: not known, as in a direct call).
    """
    stripped, prices = _strip_prices(household)
    if previous is None:
        return HouseholdState(
            household=stripped,
            prices=prices,
            event_day=household.as_of,
            realized_year=household.as_of.year,
            snapshot_mark=mark,
        )
    return replace(
        previous,
        household=stripped,
        prices={**previous.prices, **prices},
        event_day=max(previous.event_day, household.as_of),
        realized_year=household.as_of.year,
        snapshot_mark=mark,
    )


def read_again(state: HouseholdState | None, mark: SnapshotMark | None) -> bool:
    """The snapshot at `mark` is one this state already holds (or an earlier one), read again."""
    held = None if state is None else state.snapshot_mark
    return held is not None and mark is not None and held.covers(mark)


def realized_on(state: HouseholdState, day: date) -> YearRealized:
    """`realized_this_year` as of `day`: what the snapshot said plus the taxable sell fills
    since, in that calendar year; zero from 1 January of a later year (event time)."""
    year = state.realized_year or state.household.as_of.year
    return state.household.realized_this_year if day.year <= year else YearRealized()


def _add_realized(
    state: HouseholdState, day: date, short_usd: float, long_usd: float
) -> tuple[YearRealized, int]:
    """The year's realized gains after a taxable sale on `day`, and the year they count.
    A fill dated in a year already closed (a late record) does not reopen it."""
    year = state.realized_year or state.household.as_of.year
    current = realized_on(state, day)
    if day.year < year:
        return current, year
    return (
        YearRealized(current.short_term_gain + short_usd, current.long_term_gain + long_usd),
        day.year,
    )


def household_day(state: HouseholdState, price_days: Mapping[str, date] | None = None) -> date:
    """The latest event date known for the household: its snapshot's `as_of`, its fills' and
    flows' dates (`event_day`), and the latest price-tick date of any symbol it holds.

    Every solve uses this as `as_of`, so the rebalance id (`household:as_of:sequence`) does not
    depend on which worker solves or on which event woke it up.
    """
    day = max(state.household.as_of, state.event_day)
    if price_days:
        for symbol in state.held_symbols:
            tick_day = price_days.get(symbol)
            if tick_day is not None and tick_day > day:
                day = tick_day
    return day


def with_event_day(state: HouseholdState, day: date) -> HouseholdState:
    """Move the household's event day forward to `day` (never back)."""
    return state if day <= state.event_day else replace(state, event_day=day)


def with_prices(state: HouseholdState, prices: Mapping[str, float]) -> HouseholdState:
    """Remember the latest prices of the symbols this household holds (for a warm restart)."""
    relevant = {s: p for s, p in prices.items() if s in state.held_symbols}
    if all(state.prices.get(s) == p for s, p in relevant.items()):
        return state
    return replace(state, prices={**state.prices, **relevant})


# --------------------------------------------------------------------------- fills


def _account(state: HouseholdState, account_id: str, household_id: str) -> Account:
    issues: list[Issue] = []
    if household_id != state.household_id:
        issues.append(Issue("household_id", f"does not match the key {state.household_id!r}"))
    account = state.household.account(account_id)
    if account is None:
        issues.append(
            Issue(
                "account_id", f"unknown account {account_id!r} in household {state.household_id!r}"
            )
        )
    if issues or account is None:
        raise ValidationError(issues)
    return account


def _replace_account(h: Household, account: Account) -> Household:
    return replace(
        h, accounts=tuple(account if a.account_id == account.account_id else a for a in h.accounts)
    )


def _prune_ids(ids: dict[str, date], today: date) -> dict[str, date]:
    horizon = today - timedelta(days=ID_MEMORY_DAYS)
    kept = {k: d for k, d in ids.items() if d >= horizon}
    if len(kept) > ID_MEMORY_MAX:
        kept = dict(sorted(kept.items(), key=lambda kv: kv[1])[-ID_MEMORY_MAX:])
    return kept


def _prune_trades(trades: Iterable[RecentTrade], today: date) -> tuple[RecentTrade, ...]:
    horizon = today - timedelta(days=TRADE_MEMORY_DAYS)
    return tuple(t for t in trades if t.date >= horizon)


def _order_lots(state: HouseholdState, order_id: str) -> tuple[tuple[str, float], ...]:
    for result in (
        state.open_rebalance.result if state.open_rebalance else None,
        state.last_rebalance,
    ):
        if result is None:
            continue
        for order in result.orders:
            if order.order_id == order_id:
                return tuple((x.lot_id, x.quantity) for x in order.lots)
    return ()


def _issued_sequence(state: HouseholdState, order_id: str) -> int | None:
    """The rebalance sequence of an order id in the rebalancer's own space
    (`household:as_of:sequence:n`), None for any other id."""
    prefix = f"{state.household_id}:"
    if not order_id.startswith(prefix):
        return None
    parts = order_id[len(prefix) :].split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1])


def check_known_order(state: HouseholdState, fill: Fill) -> HouseholdState:
    """The state, when the fill may apply to it; raises ValidationError for a fill that names
    an order in the rebalancer's own id space (`household:as_of:sequence:n`) that it never
    issued: a sequence beyond the household's last rebalance. A late fill of an earlier
    rebalance applies (it is a real trade: dropping it would lose holdings), and so does a fill
    of any other order id (a trade placed outside the rebalancer). A fill applied before passes
    (applying it again changes nothing)."""
    if fill.fill_id in state.applied_fills:
        return state
    sequence = _issued_sequence(state, fill.order_id)
    if sequence is None or sequence <= state.sequence:
        return state
    raise ValidationError(
        [
            Issue(
                "order_id",
                f"unknown order {fill.order_id!r}: household {state.household_id!r} has "
                f"rebalances up to sequence {state.sequence} only",
            )
        ]
    )


def _relief_plan(state: HouseholdState, account: Account, fill: Fill) -> dict[str, float]:
    """lot_id -> quantity to relieve for a sell fill (fill's lots, else order's, else HIFO)."""
    held = {lot.lot_id: lot for lot in account.lots if lot.symbol == fill.symbol}
    total_held = sum(lot.quantity for lot in held.values())
    if fill.quantity > total_held + QUANTITY_EPS:
        raise ValidationError(
            [
                Issue(
                    "quantity",
                    (
                        f"sells {fill.quantity:g} {fill.symbol} but account "
                        f"{account.account_id!r} holds {total_held:g}"
                    ),
                )
            ]
        )
    plan: dict[str, float] = {}
    if fill.lots:
        issues: list[Issue] = []
        for i, relief in enumerate(fill.lots):
            lot = held.get(relief.lot_id)
            if lot is None:
                issues.append(
                    Issue(
                        f"lots[{i}].lot_id",
                        f"no {fill.symbol} lot {relief.lot_id!r} in account {account.account_id!r}",
                    )
                )
            elif relief.quantity > lot.quantity + QUANTITY_EPS:
                issues.append(
                    Issue(
                        f"lots[{i}].quantity", f"lot {relief.lot_id!r} holds only {lot.quantity:g}"
                    )
                )
            else:
                plan[relief.lot_id] = plan.get(relief.lot_id, 0.0) + relief.quantity
        if abs(sum(x.quantity for x in fill.lots) - fill.quantity) > QUANTITY_EPS:
            issues.append(Issue("lots", "the lots' quantities must sum to the fill's quantity"))
        if issues:
            raise ValidationError(issues)
        return plan
    return relief_plan(tuple(held.values()), fill.quantity, _order_lots(state, fill.order_id))


def apply_fill(state: HouseholdState, fill: Fill) -> tuple[HouseholdState, bool]:
    """Apply one fill; `(state, False)` when its fill_id was applied before.

    A buy adds lot `fill_id` acquired on the fill's date at cost quantity*price and takes that
    from cash; a sell relieves lots (the fill's, else its order's, else highest cost per share
    first), adds the proceeds to cash and records the realized gain. Raises ValidationError for
    an unknown account or a sell of more than is held (no state change).
    """
    if fill.fill_id in state.applied_fills:
        return state, False
    account = _account(state, fill.account_id, fill.household_id)
    day = fill.ts.date()
    value = fill.quantity * fill.price
    # One trade record per lot relieved, each with its own gain: a sale that takes one lot at a
    # gain and another at a loss is still a loss sale for the wash-sale rule.
    new_trades: list[RecentTrade] = []
    short_usd = long_usd = 0.0
    if fill.side == "buy":
        lot = Lot(fill.fill_id, fill.symbol, fill.quantity, value, day)
        account = replace(account, cash=account.cash - value, lots=(*account.lots, lot))
        new_trades.append(RecentTrade(fill.account_id, fill.symbol, "buy", fill.quantity, day))
    else:
        plan = _relief_plan(state, account, fill)
        lots, relieved = relieve(account.lots, plan, fill.price)
        new_trades.extend(
            RecentTrade(fill.account_id, fill.symbol, "sell", r.quantity, day, r.gain_usd)
            for r in relieved
        )
        if account.type == "taxable":
            for r in relieved:
                if is_long_term(r.lot.acquired, day):
                    long_usd += r.gain_usd
                else:
                    short_usd += r.gain_usd
        account = replace(account, cash=account.cash + value, lots=tuple(lots))
    today = max(state.event_day, day)
    open_rb = state.open_rebalance
    last_rb = state.last_rebalance
    if open_rb is not None and any(o.order_id == fill.order_id for o in open_rb.result.orders):
        filled = {
            **open_rb.filled,
            fill.order_id: open_rb.filled.get(fill.order_id, 0.0) + fill.quantity,
        }
        open_rb = replace(open_rb, filled=filled)
        if open_rb.complete:
            last_rb = open_rb.result
            open_rb = None
    prices = (
        state.prices if fill.symbol in state.prices else {**state.prices, fill.symbol: fill.price}
    )
    household = _replace_account(state.household, account)
    realized_year = state.realized_year
    if fill.side == "sell" and account.type == "taxable":
        realized, realized_year = _add_realized(state, day, short_usd, long_usd)
        household = replace(household, realized_this_year=realized)
    return replace(
        state,
        household=household,
        realized_year=realized_year,
        prices=prices,
        open_rebalance=open_rb,
        last_rebalance=last_rb,
        applied_fills=_prune_ids({**state.applied_fills, fill.fill_id: today}, today),
        trades=_prune_trades((*state.trades, *new_trades), today),
        event_day=today,
    ), True


# --------------------------------------------------------------------------- cash flows


def apply_cash_flow(state: HouseholdState, flow: CashFlow) -> tuple[HouseholdState, bool]:
    """Apply one cash flow; `(state, False)` when its flow_id was applied before.

    `deposit`: cash grows. `withdrawal_request`: the account's cash_needed grows and the request
    is remembered by flow_id. `withdrawal`: cash shrinks; if it `settles` a remembered request,
    that request's cash_needed goes too (a settle naming an unknown request moves cash only).
    """
    if flow.flow_id in state.applied_flows:
        return state, False
    account = _account(state, flow.account_id, flow.household_id)
    day = flow.ts.date()
    household = state.household
    pending = state.pending_withdrawals
    if flow.kind == "deposit":
        household = _replace_account(household, replace(account, cash=account.cash + flow.amount))
    elif flow.kind == "withdrawal_request":
        household = _replace_account(
            household, replace(account, cash_needed=account.cash_needed + flow.amount)
        )
        pending = {
            **pending,
            flow.flow_id: PendingWithdrawal(flow.flow_id, flow.account_id, flow.amount, day),
        }
    else:
        household = _replace_account(household, replace(account, cash=account.cash - flow.amount))
        request = pending.get(flow.settles) if flow.settles else None
        if request is not None:
            pending = {k: v for k, v in pending.items() if k != request.flow_id}
            target = household.account(request.account_id)
            if target is not None:
                needed = max(0.0, target.cash_needed - request.amount)
                household = _replace_account(
                    household, replace(target, cash_needed=0.0 if needed < USD_EPS else needed)
                )
    today = max(state.event_day, day)
    return replace(
        state,
        household=household,
        pending_withdrawals=pending,
        applied_flows=_prune_ids({**state.applied_flows, flow.flow_id: today}, today),
        event_day=today,
    ), True


# --------------------------------------------------------------------------- rebalances


def next_sequence(state: HouseholdState) -> int:
    """The sequence number the next solve uses (rebalance_id = household:as_of:sequence)."""
    return state.sequence + 1


def open_rebalance(
    state: HouseholdState, result: RebalanceResult, opened_at_s: float
) -> HouseholdState:
    """Remember orders about to be published as the household's one open rebalance
    (unpublished until `mark_published`)."""
    sequence = int(result.rebalance_id.rsplit(":", 1)[-1]) if result.rebalance_id else 0
    return replace(
        state,
        open_rebalance=OpenRebalance(result, opened_at_s, {}, published=False),
        sequence=max(sequence, state.sequence + 1),
    )


def mark_published(state: HouseholdState) -> HouseholdState:
    """The open rebalance's orders are on `orders` (acknowledged)."""
    opened = state.open_rebalance
    if opened is None or opened.published:
        return state
    return replace(state, open_rebalance=replace(opened, published=True))


def open_rebalance_expired(state: HouseholdState, now_s: float, ttl_s: float) -> bool:
    return state.open_rebalance is not None and now_s - state.open_rebalance.opened_at_s >= ttl_s


def expire_open_rebalance(state: HouseholdState) -> HouseholdState:
    """Forget the open rebalance (its orders expired); it becomes the last rebalance."""
    if state.open_rebalance is None:
        return state
    return replace(state, open_rebalance=None, last_rebalance=state.open_rebalance.result)


def with_band_state(state: HouseholdState, band_state: str | None) -> HouseholdState:
    return state if state.band_state == band_state else replace(state, band_state=band_state)


# --------------------------------------------------------------------------- the solver's view


def referenced_symbols(h: Household) -> frozenset[str]:
    """Symbols the solver needs to know: held, on any buy list, or recently traded."""
    out = {lot.symbol for a in h.accounts for lot in a.lots}
    for lists in (h.buy_list, *(a.buy_list for a in h.accounts)):
        for symbols in lists.values():
            out.update(symbols)
    out.update(t.symbol for t in h.recent_trades)
    return frozenset(out)


_PRICED: dict[int, tuple[Security, float | None, Security]] = {}
_PRICED_MAX = 200_000  # a bound far above any security master's size


def _priced(sec: Security, price: float | None) -> Security:
    """`sec` at `price`, shared by the households valued at the same price.

    One entry per security record, at the last price asked for it: the cache's size is the
    number of records, not of prices. (Keyed by record and price, it gained an entry with every
    tick until its 200,000-entry bound cleared it: 165,642 records for 100 symbols in a soak's
    worker after 4 minutes.)"""
    if sec.price == price:  # the same number, not a tolerance: a cache hit is exact
        return sec
    hit = _PRICED.get(id(sec))
    if hit is not None and hit[0] is sec and hit[1] == price:
        return hit[2]
    out = replace(sec, price=price)
    if len(_PRICED) >= _PRICED_MAX:
        _PRICED.clear()
    _PRICED[id(sec)] = (sec, price, out)
    return out


def to_household(
    state: HouseholdState,
    as_of: date | None = None,
    *,
    securities: Mapping[str, Security] | None = None,
    prices: Mapping[str, float] | None = None,
) -> Household:
    """The household as the solver sees it on `as_of` (default: the latest event date).

    Securities: the security master's records (`securities`) for the symbols the household
    references, overridden by the snapshot's own. Prices: the state's, overridden by `prices`
    (the live ticks). Recent trades: the snapshot's plus the remembered fills, last 30 days by
    event time.
    """
    h = state.household
    day = as_of or state.event_day
    merged: dict[str, Security] = {}
    if securities:
        for symbol in referenced_symbols(h):
            sec = securities.get(symbol)
            if sec is not None:
                merged[symbol] = sec
    merged.update(h.securities)
    live = prices or {}
    priced: dict[str, Security] = {}
    for symbol, sec in merged.items():
        price = live.get(symbol, state.prices.get(symbol, sec.price))
        priced[symbol] = _priced(sec, price)
    horizon = day - timedelta(days=TRADE_MEMORY_DAYS - 1)
    trades = tuple(t for t in (*h.recent_trades, *state.trades) if horizon <= t.date <= day)
    return replace(
        h,
        as_of=day,
        securities=priced,
        recent_trades=trades,
        realized_this_year=realized_on(state, day),
    )


# --------------------------------------------------------------------------- serialisation


def _day(value: str) -> date:
    return date.fromisoformat(value)


def _trade_json(t: RecentTrade) -> dict[str, Any]:
    return {
        "account_id": t.account_id,
        "symbol": t.symbol,
        "side": t.side,
        "quantity": t.quantity,
        "date": t.date.isoformat(),
        "realized_gain": t.realized_gain,
    }


def _household_json(h: Household) -> dict[str, Any]:
    """The part of `state_to_json` that the household (holdings, cash, configuration) fixes."""
    household = household_to_json(replace(h, securities={}))
    # Cash can go below zero between a buy fill and its funding sell fill; household/v1 cannot
    # say that, so the true balances ride alongside.
    cash = {a.account_id: a.cash for a in h.accounts if a.cash < 0}
    for account in household["accounts"]:
        account["cash"] = max(0.0, account["cash"])
    return {
        "household": household,
        "cash": cash,
        "securities": {s: security_to_json(sec) for s, sec in h.securities.items()},
    }


def state_to_json(state: HouseholdState) -> dict[str, Any]:
    """A JSON-able dict for the Faust table (orjson); `state_from_json` inverts it."""
    return {**_household_json(state.household), **_memory_json(state)}


def _memory_json(state: HouseholdState) -> dict[str, Any]:
    """The stream's memory of a household: everything of `state_to_json` but the household."""
    opened = state.open_rebalance
    return {
        "v": 1,
        "prices": state.prices,
        "open_rebalance": None
        if opened is None
        else {
            "result": result_to_json(opened.result),
            "opened_at_s": opened.opened_at_s,
            "filled": opened.filled,
            "published": opened.published,
        },
        "last_rebalance": (
            None if state.last_rebalance is None else result_to_json(state.last_rebalance)
        ),
        "applied_fills": {k: d.isoformat() for k, d in state.applied_fills.items()},
        "applied_flows": {k: d.isoformat() for k, d in state.applied_flows.items()},
        "trades": [_trade_json(t) for t in state.trades],
        "pending_withdrawals": {
            k: {
                "account_id": p.account_id,
                "amount": p.amount,
                "requested": p.requested.isoformat(),
            }
            for k, p in state.pending_withdrawals.items()
        },
        "band_state": state.band_state,
        "sequence": state.sequence,
        "event_day": state.event_day.isoformat(),
        "realized_year": state.realized_year,
        "snapshot_mark": None
        if state.snapshot_mark is None
        else [state.snapshot_mark.offset, state.snapshot_mark.digest],
    }


def state_from_json(
    raw: Mapping[str, Any],
    *,
    securities: dict[str, Security] | None = None,
    lots: list[list[Lot]] | None = None,
) -> HouseholdState:
    """The inverse of `state_to_json`. `securities` and `lots` (per account), when given, are
    the household's already decoded (the compact encoding keeps them apart): the household is
    assembled once, not replaced field by field (each copy re-runs its canonical sorting)."""
    # Lots of buy fills after the snapshot's as_of are state, not a bad snapshot.
    household = parse_household(raw["household"], prices_required=False, acquired_by_as_of=False)
    if securities is None:
        r = Reader()
        securities = parse_securities(r, raw.get("securities"), "securities", price_required=False)
        r.raise_if_any()
    cash = raw.get("cash") or {}
    accounts = household.accounts
    if cash or lots:
        accounts = tuple(
            _restored(a, cash.get(a.account_id), lots[i] if lots else None)
            for i, a in enumerate(accounts)
        )
    household = replace(household, securities=securities, accounts=accounts)
    opened = raw.get("open_rebalance")
    return HouseholdState(
        household=household,
        prices={k: float(v) for k, v in (raw.get("prices") or {}).items()},
        open_rebalance=None
        if opened is None
        else OpenRebalance(
            result=stored_result(opened["result"]),
            opened_at_s=float(opened["opened_at_s"]),
            filled={k: float(v) for k, v in (opened.get("filled") or {}).items()},
            published=bool(opened.get("published", True)),  # older states: published first
        ),
        last_rebalance=(
            None if raw.get("last_rebalance") is None else stored_result(raw["last_rebalance"])
        ),
        applied_fills={k: _day(v) for k, v in (raw.get("applied_fills") or {}).items()},
        applied_flows={k: _day(v) for k, v in (raw.get("applied_flows") or {}).items()},
        trades=tuple(
            RecentTrade(
                t["account_id"],
                t["symbol"],
                t["side"],
                float(t["quantity"]),
                _day(t["date"]),
                None if t.get("realized_gain") is None else float(t["realized_gain"]),
            )
            for t in raw.get("trades") or ()
        ),
        pending_withdrawals={
            k: PendingWithdrawal(k, p["account_id"], float(p["amount"]), _day(p["requested"]))
            for k, p in (raw.get("pending_withdrawals") or {}).items()
        },
        band_state=raw.get("band_state"),
        sequence=int(raw.get("sequence") or 0),
        event_day=_day(raw.get("event_day") or date.min.isoformat()),
        realized_year=int(raw.get("realized_year") or household.as_of.year),
        snapshot_mark=_mark(raw.get("snapshot_mark")),
    )


def _restored(account: Account, cash: Any, lots: list[Lot] | None) -> Account:
    """The account with its true cash (below zero between fills) and its lots, when kept apart."""
    if cash is None and not lots:
        return account
    return replace(
        account,
        cash=account.cash if cash is None else float(cash),
        lots=tuple(lots) if lots else account.lots,
    )


def _mark(raw: Any) -> SnapshotMark | None:
    return None if not raw else SnapshotMark(int(raw[0]), str(raw[1]))


# --------------------------------------------------------------------------- the table's encoding

#: Tag of the compact table encoding (first byte of the value), then the 4-byte length of the
#: household part, the household part (zlib over the JSON of the household with every lot as a
#: positional row) and the stream's memory (zlib over its JSON). The household part is cached
#: per household object: the writes of one rebalance (open, then published) encode it once.
#: The JSON of `state_to_json` (a value starting with "{") is still read.
COMPACT_TAG = b"\x03"
_LOT_FIELDS = LOT_FIELDS
_LOT_DATE_INDEX = tuple(i for i, f in enumerate(fields(Lot)) if f.type in ("date", date))
_LOT_SYMBOL_INDEX = _LOT_FIELDS.index("symbol")
_DAYS: dict[str, date] = {}  # one date object per distinct day (lots share them)
_ENCODED: dict[int, tuple[Household, bytes]] = {}  # id(household) -> (it, its encoded part)
_ENCODED_MAX = 512


def _encode_household(h: Household) -> bytes:
    cached = _ENCODED.get(id(h))
    if cached is not None and cached[0] is h:
        return cached[1]
    # the lots go as positional rows (orjson writes their dates), not as household/v1 objects
    raw = _household_json(replace(h, accounts=tuple(replace(a, lots=()) for a in h.accounts)))
    raw["lots"] = [[i, *lot_values(lot)] for i, a in enumerate(h.accounts) for lot in a.lots]
    part = zlib.compress(orjson.dumps(raw), 1)
    _remember_encoded(h, part)
    return part


def _remember_encoded(h: Household, part: bytes) -> None:
    if len(_ENCODED) >= _ENCODED_MAX:
        _ENCODED.pop(next(iter(_ENCODED)))
    _ENCODED[id(h)] = (h, part)


def encode_state(state: HouseholdState) -> bytes:
    """The table value of a household: ~2.3 KB for 60 lots (the plain JSON is ~10 KB)."""
    part = _encode_household(state.household)
    memory = zlib.compress(orjson.dumps(_memory_json(state)), 1)
    return COMPACT_TAG + len(part).to_bytes(4, "big") + part + memory


def _day_of(text: str) -> date:
    day = _DAYS.get(text)
    if day is None:
        day = _DAYS[text] = date.fromisoformat(text)
    return day


_SECURITIES: dict[bytes, Security] = {}  # one object per distinct security record
_SECURITIES_MAX = 100_000


def _shared_securities(raw: Mapping[str, Any]) -> dict[str, Security]:
    """The state's own security records, one object per distinct record across households."""
    out: dict[str, Security] = {}
    for symbol, record in raw.items():
        key = orjson.dumps([symbol, record], option=orjson.OPT_SORT_KEYS)
        sec = _SECURITIES.get(key)
        if sec is None:
            r = Reader()
            parsed = parse_securities(r, {symbol: record}, "securities", price_required=False)
            r.raise_if_any()
            sec = parsed[symbol]
            if len(_SECURITIES) >= _SECURITIES_MAX:
                _SECURITIES.clear()
            _SECURITIES[key] = sec
        out[sys.intern(symbol)] = sec
    return out


def decode_state(value: bytes) -> HouseholdState:
    """The inverse of `encode_state` (and of the older plain JSON of `state_to_json`)."""
    if not value.startswith(COMPACT_TAG):
        return state_from_json(orjson.loads(value))
    size = int.from_bytes(value[1:5], "big")
    raw = orjson.loads(zlib.decompress(value[5 : 5 + size]))
    raw.update(orjson.loads(zlib.decompress(value[5 + size :])))
    rows = raw.pop("lots", ())
    shared = _shared_securities(raw.pop("securities", None) or {})
    by_account: list[list[Lot]] = [[] for _ in raw["household"]["accounts"]]
    intern = sys.intern
    dates = _LOT_DATE_INDEX
    symbol = _LOT_SYMBOL_INDEX
    n_fields = len(_LOT_FIELDS)  # a row of an older encoding may lack the later fields
    for row in rows:
        values = row[1:]
        for i in dates:
            values[i] = _day_of(values[i])
        values[symbol] = intern(values[symbol])
        by_account[row[0]].append(new_lot(*values) if len(values) == n_fields else Lot(*values))
    state = state_from_json(raw, securities=shared, lots=by_account)
    # The household part just read is an encoding of this very household: the next write of
    # the state (a band state, an open rebalance) reuses it instead of encoding 60 lots again.
    _remember_encoded(state.household, value[5 : 5 + size])
    return state
