"""What the operations console shows of a household: list summaries and the detail document.

Pure functions over `HouseholdState` (no Faust, no I/O): the HTTP routes and the live event feed
call them with the worker's security master and live prices. Summaries are computed for many
households at once with `streams.worker.book` (the vectorised drift of the rebalancer on ticks); the
detail uses `solver.household_drift`, the one-household reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas import Household, Security, household_to_json, result_to_json
from solver.drift import household_drift, missing_prices
from solver.tolerances import WEIGHT_DECIMALS
from streams.worker.book import BookRow, batch_drift
from streams.worker.state import HouseholdState, to_household


@dataclass(frozen=True, slots=True)
class Summary:
    """One row of `GET /api/households`."""

    household_id: str
    max_abs_drift: float
    out_of_band: tuple[str, ...]
    open_rebalance_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "household_id": self.household_id,
            "max_abs_drift": self.max_abs_drift,
            "out_of_band": list(self.out_of_band),
            "open_rebalance_id": self.open_rebalance_id,
        }


def open_rebalance_id(state: HouseholdState) -> str | None:
    return state.open_rebalance.result.rebalance_id if state.open_rebalance else None


def summarize(
    entries: Sequence[tuple[HouseholdState, BookRow | None]], prices: Mapping[str, float]
) -> list[Summary]:
    """Summaries of households given with their book rows, at `prices` (the state's own prices
    fill in symbols without a live tick). A household without a row or a price shows 0 drift."""
    merged: dict[str, float] = {}
    for state, _row in entries:
        merged.update(state.prices)
    merged.update(prices)
    rows = [row for _state, row in entries if row is not None]
    batch = batch_drift(rows, merged)
    out: list[Summary] = []
    i = 0
    for state, row in entries:
        drift = 0.0
        breached: tuple[str, ...] = ()
        if row is not None:
            if batch.priced[i]:
                drift = round(float(batch.max_abs_drift[i]), WEIGHT_DECIMALS) + 0.0
                breached = batch.out_of_band(i)
            i += 1
        out.append(Summary(state.household_id, drift, breached, open_rebalance_id(state)))
    return out


def select(rows: Iterable[Summary], *, out_of_band: bool, limit: int | None) -> list[Summary]:
    """Largest drift first (ties by id); only the out-of-band ones when asked; at most `limit`."""
    chosen = [r for r in rows if r.out_of_band or not out_of_band]
    chosen.sort(key=lambda r: (-r.max_abs_drift, r.household_id))
    return chosen if limit is None else chosen[:limit]


def summary_from_json(raw: Mapping[str, Any]) -> Summary:
    """A row as another worker sent it (the list endpoint merges every worker's rows)."""
    return Summary(
        household_id=str(raw["household_id"]),
        max_abs_drift=float(raw["max_abs_drift"]),
        out_of_band=tuple(str(c) for c in raw.get("out_of_band") or ()),
        open_rebalance_id=raw.get("open_rebalance_id"),
    )


# --------------------------------------------------------------------------- the detail


def _round(value: float, digits: int = 2) -> float:
    return round(float(value), digits) + 0.0


def _holdings(
    h: Household, account_lots: Iterable[Any]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    by_symbol: dict[str, list[Any]] = {}
    for lot in account_lots:
        by_symbol.setdefault(lot.symbol, []).append(lot)
    holdings: list[dict[str, Any]] = []
    by_class: dict[str, float] = {}
    for symbol in sorted(by_symbol):
        lots = by_symbol[symbol]
        sec: Security | None = h.securities.get(symbol)
        price = sec.price if sec is not None else None
        quantity = sum(lot.quantity for lot in lots)
        value = quantity * price if price is not None else None
        exposures = dict(sec.exposures) if sec is not None else {}
        if value is not None:
            for cls, share in exposures.items():
                by_class[cls] = by_class.get(cls, 0.0) + value * share
        holdings.append(
            {
                "symbol": symbol,
                "quantity": quantity,
                "price": price,
                "value": None if value is None else _round(value),
                "asset_class": sec.asset_class if sec is not None else None,
                "exposures": exposures,
                "lots": [
                    {
                        "lot_id": lot.lot_id,
                        "quantity": lot.quantity,
                        "cost_basis": _round(lot.cost_basis),
                        "acquired": lot.acquired.isoformat(),
                        "locked": lot.locked,
                        "unrealized_gain": (
                            None if price is None else _round(lot.quantity * price - lot.cost_basis)
                        ),
                    }
                    for lot in lots
                ],
            }
        )
    return holdings, by_class


def _controls(h: Household) -> dict[str, Any]:
    """The tax and trading controls an advisor set (contract section 1 options)."""
    o = h.options
    return {
        "max_realized_gain": o.max_realized_gain,
        "max_realized_gain_year": o.max_realized_gain_year,
        "allow_sells": o.allow_sells,
        "max_turnover": o.max_turnover,
        "defer_short_term_days": o.defer_short_term_days,
        "target_tax_budget_bps": o.target_tax_budget_bps,
        "harvest_losses": o.harvest_losses,
        "locked_lots": sum(lot.locked for a in h.accounts for lot in a.lots),
    }


def household_detail(
    state: HouseholdState, securities: Mapping[str, Security], prices: Mapping[str, float]
) -> dict[str, Any]:
    """`GET /api/households/{id}`: the contract's fields, plus `target`, `max_abs_drift`,
    `missing_prices` and `snapshot` (the household/v1 the what-if panel starts from)."""
    h = to_household(state, securities=securities, prices=prices)
    missing = missing_prices(h)
    accounts = []
    for account in h.accounts:
        holdings, by_class = _holdings(h, account.lots)
        if account.cash:
            by_class["cash"] = by_class.get("cash", 0.0) + account.cash
        value = account.cash + sum(x["value"] or 0.0 for x in holdings)
        accounts.append(
            {
                "account_id": account.account_id,
                "type": account.type,
                "cash": _round(account.cash),
                "cash_needed": _round(account.cash_needed),
                "value": _round(value),
                "by_class": {c: _round(v) for c, v in sorted(by_class.items())},
                "holdings": holdings,
            }
        )
    weights: dict[str, float] = {}
    drift: dict[str, float] = {}
    tolerance: dict[str, float] = {}
    target = dict(h.target)
    out_of_band: list[str] = []
    value = 0.0
    max_abs = 0.0
    if not missing:
        report = household_drift(h)
        weights = report.as_dict(report.weight)
        drift = report.as_dict(report.drift)
        tolerance = report.as_dict(report.tolerance)
        target = report.as_dict(report.target)
        out_of_band = list(report.out_of_band)
        value = _round(report.investable_usd)
        max_abs = round(report.max_abs_drift, WEIGHT_DECIMALS) + 0.0
    opened = state.open_rebalance
    return {
        "household_id": h.household_id,
        "as_of": h.as_of.isoformat(),
        "mode": h.mode,
        "value": value,
        "weights": weights,
        "drift": drift,
        "tolerance": tolerance,
        "target": target,
        "max_abs_drift": max_abs,
        "out_of_band": out_of_band,
        "missing_prices": list(missing),
        "realized_this_year": {
            "short_term_gain": _round(h.realized_this_year.short_term_gain),
            "long_term_gain": _round(h.realized_this_year.long_term_gain),
        },
        "controls": _controls(h),
        "accounts": accounts,
        "open_rebalance": None if opened is None else result_to_json(opened.result),
        "last_rebalance": (
            None if state.last_rebalance is None else result_to_json(state.last_rebalance)
        ),
        "snapshot": household_to_json(h),
    }
