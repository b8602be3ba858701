"""Lots: the holding period, the gain of a sale, and the order lots are relieved in.

The one home of these rules; the model, the orders, the self-check and the diagnostics read them
from here.
"""

from __future__ import annotations

from datetime import date

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def long_term_after(acquired: date) -> date:
    """The anniversary: a sale after it is long-term, on or before it short-term.

    A lot bought on 29 February has its anniversary on 1 March (the conservative reading).
    """
    try:
        return acquired.replace(year=acquired.year + 1)
    except ValueError:
        return date(acquired.year + 1, 3, 1)


def is_long_term(acquired: date, sold: date) -> bool:
    return sold > long_term_after(acquired)


def days_to_long_term(acquired: date, as_of: date) -> int:
    """Days until a sale becomes long-term (0 when it already is)."""
    return max(0, (long_term_after(acquired) - as_of).days + 1)


def sale_gains(
    quantity_sold: FloatArray, price: FloatArray, quantity_held: FloatArray, basis: FloatArray
) -> FloatArray:
    """Realized gain of selling `quantity_sold` of each lot: proceeds less pro-rata basis
    (before transaction costs, as the contract's `realized` reports it)."""
    held = np.maximum(quantity_held, 1e-300)
    return np.asarray(quantity_sold * price - basis * quantity_sold / held, dtype=np.float64)


def sale_gain(quantity_sold: float, price: float, quantity_held: float, basis: float) -> float:
    """`sale_gains` for one lot."""
    one = np.array
    return float(
        sale_gains(one([quantity_sold]), one([price]), one([quantity_held]), one([basis]))[0]
    )


def gain_fractions(market_value: FloatArray, basis: FloatArray) -> FloatArray:
    """Gain per dollar sold, per lot: 1 - basis / market value (negative for a loss; 0 for a
    lot worth nothing). `sale_gain` of x dollars of a lot is x times this."""
    safe = np.where(market_value > 0, market_value, 1.0)
    return np.asarray(np.where(market_value > 0, 1.0 - basis / safe, 0.0), dtype=np.float64)


def relief_key(gain_fraction: float, long_term: bool, lot_id: str) -> tuple[float, bool, str]:
    """The order lots are relieved in when the model does not decide (the greedy raise-cash
    step): losses first, then the highest basis (lowest gain per dollar), long-term before
    short-term at the same gain, then by id. The model itself reaches the same order through
    its tax costs (rate x gain per dollar), so both agree."""
    return (gain_fraction, not long_term, lot_id)
