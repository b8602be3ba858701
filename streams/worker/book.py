"""Vectorised drift: revalue many households at once when a batch of price ticks arrives.

Pure numpy. Each household is reduced once (when its state changes) to a `BookRow` of the
price-independent parts on its own symbol and class axes; a tick batch then stacks the affected
rows, pads them to a common shape and computes every weight, drift and breach in a few array
operations. `solver.drift.household_drift` is the one-household reference this must agree with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from schemas import CASH, Household
from solver.drift import DriftReport, asset_classes
from solver.tolerances import BAND_EPS, USD_EPS

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class BookRow:
    """One household's price-independent inputs. S = held symbols, C = its classes."""

    household_id: str
    symbols: tuple[str, ...]  # (S,)
    classes: tuple[str, ...]  # (C,)
    quantity: FloatArray  # (S,) shares held across all accounts
    exposure: FloatArray  # (S, C) look-through weights of each symbol
    fixed_usd: FloatArray  # (C,) value that does not move with prices: cash less cash_needed
    target: FloatArray  # (C,)
    tolerance: FloatArray  # (C,)
    #: (S,) the household's own price of each symbol (its snapshot's, as `to_household` gives
    #: it), NaN where it has none: used where no live tick has priced the symbol yet
    own_price: FloatArray


def book_row(h: Household) -> BookRow | None:
    """The row of a household, or None when a held symbol has no classification yet."""
    held: dict[str, float] = {}
    for account in h.accounts:
        for lot in account.lots:
            held[lot.symbol] = held.get(lot.symbol, 0.0) + lot.quantity
    if any(s not in h.securities for s in held):
        return None
    classes = asset_classes(h)
    index = {c: i for i, c in enumerate(classes)}
    symbols = tuple(sorted(held))
    exposure = np.zeros((len(symbols), len(classes)))
    for i, s in enumerate(symbols):
        for c, share in h.securities[s].exposures.items():
            exposure[i, index[c]] = share
    fixed = np.zeros(len(classes))
    fixed[index[CASH]] = sum(a.cash - a.cash_needed for a in h.accounts)
    return BookRow(
        household_id=h.household_id,
        symbols=symbols,
        classes=classes,
        quantity=np.array([held[s] for s in symbols], dtype=np.float64),
        exposure=exposure,
        fixed_usd=fixed,
        target=np.array([h.target.get(c, 0.0) for c in classes]),
        tolerance=np.array([h.bands.tolerance(c, h.target.get(c, 0.0)) for c in classes]),
        own_price=np.array(
            [np.nan if (p := h.securities[s].price) is None else p for s in symbols],
            dtype=np.float64,
        ),
    )


@dataclass(frozen=True, slots=True)
class BatchDrift:
    """Drift of H households on a padded class axis of width K (row h's classes come first)."""

    rows: tuple[BookRow, ...]  # (H,)
    priced: BoolArray  # (H,) every held symbol has a price
    weight: FloatArray  # (H, K)
    drift: FloatArray  # (H, K)
    breached: BoolArray  # (H, K)
    max_abs_drift: FloatArray  # (H,)
    values: FloatArray  # (H, K) exposure-weighted dollars per class
    investable: FloatArray  # (H,)
    excess: FloatArray  # (H,) the largest |drift| - tolerance, 0 when inside every band

    def report(self, h: int) -> DriftReport:
        """Row h as `solver.drift.household_drift` reports it (no second computation)."""
        row = self.rows[h]
        k = len(row.classes)
        return DriftReport(
            classes=row.classes,
            value_usd=self.values[h, :k].copy(),
            weight=self.weight[h, :k].copy(),
            target=row.target,
            tolerance=row.tolerance,
            investable_usd=float(self.investable[h]),
        )

    def out_of_band(self, h: int) -> tuple[str, ...]:
        row = self.rows[h]
        return tuple(
            c for c, b in zip(row.classes, self.breached[h, : len(row.classes)], strict=True) if b
        )


def batch_drift(rows: Sequence[BookRow], prices: Mapping[str, float]) -> BatchDrift:
    """Weights and breaches of every row at `prices` (symbol -> price), all at once; a symbol
    without a live price takes the row's own (as `to_household` does), else the row is
    unpriced."""
    n = len(rows)
    s_max = max((len(r.symbols) for r in rows), default=0)
    k_max = max((len(r.classes) for r in rows), default=0)
    qty = np.zeros((n, s_max))
    px = np.zeros((n, s_max))
    exposure = np.zeros((n, s_max, k_max))
    fixed = np.zeros((n, k_max))
    target = np.zeros((n, k_max))
    tolerance = np.full((n, k_max), np.inf)  # padding never breaches
    priced = np.ones(n, dtype=bool)
    for h, row in enumerate(rows):
        s, k = len(row.symbols), len(row.classes)
        row_prices = [prices.get(sym) for sym in row.symbols]
        if any(p is None for p in row_prices):
            live = np.array([np.nan if p is None else p for p in row_prices], dtype=np.float64)
            filled = np.where(np.isnan(live), row.own_price, live)
            if np.isnan(filled).any():
                priced[h] = False
                continue
            px[h, :s] = filled
        else:
            px[h, :s] = row_prices
        qty[h, :s] = row.quantity
        exposure[h, :s, :k] = row.exposure
        fixed[h, :k] = row.fixed_usd
        target[h, :k] = row.target
        tolerance[h, :k] = row.tolerance
    values = np.einsum("hs,hs,hsk->hk", qty, px, exposure) + fixed
    investable = values.sum(axis=1)
    ok = investable > USD_EPS
    weight = np.divide(values, investable[:, None], out=np.zeros_like(values), where=ok[:, None])
    drift = np.where(np.isfinite(tolerance), weight - target, 0.0)
    breached = (np.abs(drift) > tolerance + BAND_EPS) & priced[:, None]
    max_abs = np.abs(drift).max(axis=1) if k_max else np.zeros(n)
    gap = np.where(np.isfinite(tolerance), np.abs(drift) - tolerance, 0.0)
    excess = np.maximum(gap.max(axis=1), 0.0) if k_max else np.zeros(n)
    return BatchDrift(
        tuple(rows), priced, weight, drift, breached, max_abs, values, investable, excess
    )
