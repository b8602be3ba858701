"""Household drift: class weights against target and band, and what should trigger a solve.

Pure numpy over a `Household`; the streaming shell calls this on every revaluation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from schemas import CASH, Household

from .harvest import HARVEST_BY_VALUE, HarvestRule, household_candidates
from .tolerances import BAND_EPS, USD_EPS, WEIGHT_DECIMALS
from .wash import blocked_loss_lots

FloatArray = NDArray[np.float64]


def asset_classes(h: Household, held: Iterable[str] | None = None) -> tuple[str, ...]:
    """The class axis: the target's classes in order, then any other class that a held or
    buy-listed security is exposed to (target 0), then cash. `held`: the symbols held, when
    known (by default those of the household's lots)."""
    classes = list(h.target)
    extra: set[str] = set()
    held_symbols = {lot.symbol for a in h.accounts for lot in a.lots} if held is None else held
    listed = {
        s
        for lists in (h.buy_list, *(a.buy_list for a in h.accounts))
        for symbols in lists.values()
        for s in symbols
    }
    for symbol in set(held_symbols) | listed:
        sec = h.securities.get(symbol)
        if sec is not None:
            extra.update(c for c in sec.exposures if c not in h.target)
    classes.extend(sorted(extra))
    if CASH not in classes:
        classes.append(CASH)
    return tuple(classes)


def missing_prices(h: Household) -> tuple[str, ...]:
    """Held symbols that have no known price (drift cannot be computed until they do)."""
    held = {lot.symbol for a in h.accounts for lot in a.lots}
    return tuple(
        sorted(s for s in held if (sec := h.securities.get(s)) is None or sec.price is None)
    )


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Weights of a household by class. All arrays have shape (C,) along `classes`."""

    classes: tuple[str, ...]
    value_usd: FloatArray  # exposure-weighted value per class, cash less cash_needed
    weight: FloatArray
    target: FloatArray
    tolerance: FloatArray
    investable_usd: float  # V = sum of account values less cash_needed

    @property
    def drift(self) -> FloatArray:
        return self.weight - self.target

    @property
    def breached(self) -> NDArray[np.bool_]:
        return np.abs(self.drift) > self.tolerance + BAND_EPS

    @property
    def out_of_band(self) -> tuple[str, ...]:
        return tuple(c for c, b in zip(self.classes, self.breached, strict=True) if b)

    @property
    def max_abs_drift(self) -> float:
        return float(np.max(np.abs(self.drift))) if len(self.classes) else 0.0

    def as_dict(self, values: FloatArray) -> dict[str, float]:
        """Per-class values for the wire, rounded to WEIGHT_DECIMALS."""
        return {
            c: round(float(v), WEIGHT_DECIMALS) + 0.0
            for c, v in zip(self.classes, values, strict=True)
        }


def class_values(h: Household, classes: tuple[str, ...]) -> FloatArray:
    """Exposure-weighted dollars per class; account cash counts in `cash`, less all cash_needed."""
    free, held = holdings(h)
    return values_by_class(h, classes, free, held)


def holdings(h: Household) -> tuple[list[float], dict[str, float]]:
    """Per account its cash less cash_needed; per symbol the shares held (summed in account
    and lot order)."""
    held: dict[str, float] = {}
    for account in h.accounts:
        for lot in account.lots:
            held[lot.symbol] = held.get(lot.symbol, 0.0) + lot.quantity
    return [a.cash - a.cash_needed for a in h.accounts], held


def values_by_class(
    h: Household, classes: tuple[str, ...], free: list[float], held: dict[str, float]
) -> FloatArray:
    """`class_values` from `holdings`: the accounts' free cash in `cash` (in account order),
    then each symbol's value spread over its exposures (in the order first held)."""
    index = {c: i for i, c in enumerate(classes)}
    values = np.zeros(len(classes))
    for cash in free:
        values[index[CASH]] += cash
    for symbol, quantity in held.items():
        sec = h.securities[symbol]
        if sec.price is None:
            raise ValueError(f"security {symbol} has no price")
        for cls, share in sec.exposures.items():
            values[index[cls]] += quantity * sec.price * share
    return values


def tolerances(h: Household, classes: tuple[str, ...]) -> FloatArray:
    return np.array([h.bands.tolerance(c, h.target.get(c, 0.0)) for c in classes])


def household_drift(h: Household) -> DriftReport:
    """Weights, drift and bands of the household as a whole (section 1 of the contract)."""
    return drift_of(h, *holdings(h))


def drift_of(h: Household, free: list[float], held: dict[str, float]) -> DriftReport:
    """`household_drift` of a household with `h`'s target, bands and securities whose
    `holdings` are (free, held): see `solver.trades.drift_after`."""
    classes = asset_classes(h, held)
    values = values_by_class(h, classes, free, held)
    investable = float(values.sum())
    weight = values / investable if investable > USD_EPS else np.zeros(len(classes))
    return DriftReport(
        classes=classes,
        value_usd=values,
        weight=weight,
        target=np.array([h.target.get(c, 0.0) for c in classes]),
        tolerance=tolerances(h, classes),
        investable_usd=investable,
    )


def cash_shortfalls(h: Household) -> dict[str, float]:
    """Accounts whose settled cash is below what they must keep (a pending withdrawal)."""
    return {
        a.account_id: a.cash_needed - a.cash for a in h.accounts if a.cash_needed - a.cash > USD_EPS
    }


def harvestable_lots(
    h: Household, rule: HarvestRule = HARVEST_BY_VALUE
) -> tuple[tuple[str, str], ...]:
    """(account_id, lot_id) of taxable lots worth harvesting (`solver.harvest`: a loss of at
    least harvest_min_loss and, by value, a positive after-tax value) that may be sold at a
    loss now (rule 4b, `solver.wash.blocked_loss_lots`)."""
    if not h.options.harvest_losses:
        return ()
    return tuple(household_candidates(h, blocked_loss_lots(h), rule))


def triggers(
    h: Household, report: DriftReport | None = None, harvest_rule: HarvestRule = HARVEST_BY_VALUE
) -> tuple[str, ...]:
    """Why this household wants a solve now: `band_breach`, `idle_cash`, `cash_needed`, `harvest`.

    In `guardrail` mode only a band breach or a pending withdrawal counts; in `monitor` mode
    nothing does (the stream still alerts). Idle cash is the cash class above its band.
    """
    if h.mode == "monitor":
        return ()
    report = report or household_drift(h)
    reasons: list[str] = []
    breached = set(report.out_of_band)
    cash_over = CASH in breached and report.drift[report.classes.index(CASH)] > 0
    if breached - ({CASH} if cash_over else set()):
        reasons.append("band_breach")
    if h.mode == "guardrail":
        # Rule 1 is hard in every trading mode, so a pending withdrawal is raised here too.
        return tuple(
            r
            for r, hit in (
                ("band_breach", bool(breached)),
                ("cash_needed", bool(cash_shortfalls(h))),
            )
            if hit
        )
    if cash_over:
        reasons.append("idle_cash")
    if cash_shortfalls(h):
        reasons.append("cash_needed")
    if harvestable_lots(h, harvest_rule):
        reasons.append("harvest")
    return tuple(reasons)
