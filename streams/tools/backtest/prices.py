"""Daily price paths for the backtest: correlated random walks, or a CSV of real prices.

The synthetic model is a one-factor-per-class walk with a wash-group factor and a small
idiosyncratic part, on business days (Monday to Friday; holidays are ignored):

    log P[t+1, s] - log P[t, s] = (mu_s - sigma_s^2 / 2) dt
                                  + sum_c x_sc * F[t, c] + G[t, g(s)] + e[t, s]

with dt = 1/252, x_sc the security's exposure to class c (1 for a pure fund; the look-through
weights for a balanced fund), F the class factors (normal, annual volatility `CLASS_VOL`,
correlation `CLASS_CORR`), G one factor per wash group (annual volatility `GROUP_VOL`: funds
that track different indexes of one class differ a little, single stocks a lot) and e an
idiosyncratic part (annual volatility `IDIO_VOL`). mu_s is the exposure-weighted `CLASS_DRIFT`
(arithmetic, annual) and sigma_s the security's total volatility, so that E[P] grows at mu_s.

Securities in one wash group share every factor and differ only by e: their daily returns have
a correlation of about 0.999 (they are substantially identical); two groups of one equity class
correlate about 0.93, US and international equity about 0.8, bonds and equities about 0.1.

A CSV (`--prices FILE`) is long format with a header: `date,symbol,price`, one row per symbol
and day (YYYY-MM-DD). Every symbol of the universe needs a price on the first date; a missing
later day keeps the last price. Its dates, from the first, are the backtest's days.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from schemas import Security

TRADING_DAYS_PER_YEAR = 252
US, INTL, FI = "us_equity", "intl_equity", "fixed_income"
CLASSES = (US, INTL, FI)
#: Arithmetic annual drift of each class factor.
CLASS_DRIFT = {US: 0.07, INTL: 0.06, FI: 0.03}
#: Annual volatility of each class factor.
CLASS_VOL = {US: 0.15, INTL: 0.16, FI: 0.045}
#: Correlation of the class factors, in CLASSES order.
CLASS_CORR = ((1.0, 0.8, 0.1), (0.8, 1.0, 0.1), (0.1, 0.1, 1.0))
#: Annual volatility of a wash group's own factor: equity funds, bond funds, single stocks.
GROUP_VOL = {"equity_fund": 0.04, "bond_fund": 0.015, "single_stock": 0.22}
#: Annual volatility of a security's own noise (funds of one group differ by this only).
IDIO_VOL = 0.004
SINGLE_STOCKS = frozenset({"AAPL", "MSFT", "XOM", "JNJ"})

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PricePaths:
    """Closing prices: `price[t, j]` is the close of `symbols[j]` on `days[t]`. Shape (D, S)."""

    days: tuple[date, ...]
    symbols: tuple[str, ...]
    price: FloatArray

    def column(self, symbol: str) -> int:
        return self.symbols.index(symbol)


def business_days(start: date, years: int) -> tuple[date, ...]:
    """Monday-to-Friday days from `start` (moved to a weekday) for `years` calendar years."""
    end = date(start.year + years, start.month, min(start.day, 28))
    out: list[date] = []
    d = start
    while d < end:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return tuple(out)


def _group_kind(sec: Security) -> str:
    if sec.symbol in SINGLE_STOCKS:
        return "single_stock"
    if sec.exposures.get(FI, 0.0) >= 0.5:
        return "bond_fund"
    return "equity_fund"


def simulate_paths(
    universe: dict[str, Security], days: tuple[date, ...], rng: np.random.Generator
) -> PricePaths:
    """Correlated random walks starting at the universe's prices (see the module docstring)."""
    symbols = tuple(sorted(universe))
    n_days, n_sym = len(days), len(symbols)
    dt = 1.0 / TRADING_DAYS_PER_YEAR
    exposure = np.array([[universe[s].exposures.get(c, 0.0) for c in CLASSES] for s in symbols])
    vol = np.array([CLASS_VOL[c] for c in CLASSES])
    cov = np.array(CLASS_CORR) * np.outer(vol, vol)
    groups = sorted({universe[s].group for s in symbols})
    g_index = np.array([groups.index(universe[s].group) for s in symbols])
    g_vol = np.zeros(len(groups))
    for s, g in zip(symbols, g_index, strict=True):
        g_vol[g] = GROUP_VOL[_group_kind(universe[s])]
    # total annual variance and drift of each security
    variance = np.einsum("sc,cd,sd->s", exposure, cov, exposure) + g_vol[g_index] ** 2 + IDIO_VOL**2
    mu = exposure @ np.array([CLASS_DRIFT[c] for c in CLASSES])
    steps = max(n_days - 1, 0)
    factors = rng.standard_normal((steps, len(CLASSES))) @ np.linalg.cholesky(cov).T
    group_shocks = rng.standard_normal((steps, len(groups))) * g_vol
    idio = rng.standard_normal((steps, n_sym)) * IDIO_VOL
    log_ret = (mu - 0.5 * variance) * dt + (
        factors @ exposure.T + group_shocks[:, g_index] + idio
    ) * math.sqrt(dt)
    start = np.array([float(universe[s].price or 1.0) for s in symbols])
    log_path = np.vstack([np.zeros((1, n_sym)), np.cumsum(log_ret, axis=0)])
    return PricePaths(days, symbols, start * np.exp(log_path))


def read_prices_csv(path: Path, symbols: tuple[str, ...], years: int) -> PricePaths:
    """Prices of `symbols` from a long CSV (`date,symbol,price`), first `years` years of it."""
    by_day: dict[date, dict[str, float]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing_cols = {"date", "symbol", "price"} - set(reader.fieldnames or ())
        if missing_cols:
            raise ValueError(
                f"{path}: needs columns date,symbol,price (missing "
                f"{', '.join(sorted(missing_cols))})"
            )
        for n, row in enumerate(reader, start=2):
            try:
                day = date.fromisoformat(row["date"])
                price = float(row["price"])
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from None
            if not (price > 0 and math.isfinite(price)):
                raise ValueError(f"{path}:{n}: price must be > 0 and finite")
            by_day.setdefault(day, {})[row["symbol"]] = price
    if not by_day:
        raise ValueError(f"{path}: no prices")
    days = sorted(by_day)
    first = days[0]
    end = date(first.year + years, first.month, min(first.day, 28))
    days = [d for d in days if d < end]
    missing = [s for s in symbols if s not in by_day[first]]
    if missing:
        raise ValueError(
            f"{path}: no price on {first} for {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else "")
        )
    out = np.zeros((len(days), len(symbols)))
    last = dict(by_day[first])
    for t, d in enumerate(days):
        last.update(by_day[d])
        out[t] = [last[s] for s in symbols]
    return PricePaths(tuple(days), symbols, out)
